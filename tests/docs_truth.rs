//! The docs against the code: every flag README's command table names is one the command's
//! `--help` offers, every command the parser has is in that table, and docs/report.md
//! documents exactly the fields report.json has (run and task level, both ways). A flag,
//! command or field that disappears, or appears undocumented, fails here. No engine needed.

mod common;

use std::collections::BTreeSet;

use common::*;
use sandpen::engine::spec::Limits;
use sandpen::runner::{Attempt, MemoryHold, RunReport, TaskResult};

const README: &str = include_str!("../README.md");
const REPORT_MD: &str = include_str!("../docs/report.md");

/// The rows of the first markdown table under the heading `heading`: their cells.
fn table_rows(doc: &str, heading: &str) -> Vec<Vec<String>> {
    let start = doc.find(heading).unwrap_or_else(|| panic!("no {heading:?}"));
    let rows = doc[start..]
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2); // the header and its rule
    // `\|` inside a cell is a literal bar (e.g. `bash\|zsh`), not a cell boundary.
    rows.map(|l| {
        let l = l.replace("\\|", "\u{1}");
        let cells = l.trim_matches('|').split('|');
        cells.map(|c| c.trim().replace('\u{1}', "|")).collect()
    })
    .collect()
}

/// The backticked spans of `text`.
fn code_spans(text: &str) -> Vec<&str> {
    text.split('`').skip(1).step_by(2).collect()
}

/// The long and short flags in `text` (`--max-cost`, `-j`), without values.
fn flags(text: &str) -> BTreeSet<String> {
    let words = text.split(|c: char| c.is_whitespace() || "[]|=,()`;.".contains(c));
    let flag = |w: &&str| {
        let long = w.len() > 2 && w.starts_with("--") && w[2..].starts_with(|c: char| c.is_ascii_lowercase());
        let short =
            w.len() == 2 && w.starts_with('-') && w[1..].starts_with(|c: char| c.is_ascii_alphabetic());
        long || short
    };
    words.filter(flag).map(str::to_string).collect()
}

/// The command words of `sandpen image build [--target ...]`: `["image", "build"]`.
fn command_words(span: &str) -> Vec<String> {
    let rest = span.strip_prefix("sandpen ").unwrap_or_default();
    let word = |w: &&str| w.chars().all(|c| c.is_ascii_lowercase() || c == '-') && !w.starts_with('-');
    rest.split_whitespace()
        .take_while(word)
        .map(str::to_string)
        .collect()
}

/// Whether `help` lists `flag` (as `--flag <V>`, `--flag,`, `-j, --jobs`, or at a line's end).
fn offers(help: &str, flag: &str) -> bool {
    [" ", ",", "\n", "="]
        .iter()
        .any(|end| help.contains(&format!("{flag}{end}")))
}

fn help_of(words: &[String]) -> String {
    let out = output(sandpen().args(words).arg("--help"));
    assert!(out.status.success(), "sandpen {words:?} --help: {}", stderr(&out));
    stdout(&out)
}

#[test]
fn every_flag_in_readmes_command_table_is_in_that_commands_help() {
    let mut documented = BTreeSet::new();
    for row in table_rows(README, "### Commands") {
        let spans: Vec<&str> = code_spans(&row[0])
            .into_iter()
            .filter(|s| s.starts_with("sandpen "))
            .collect();
        assert!(
            !spans.is_empty(),
            "a row of the command table names no command: {row:?}"
        );
        let mut helps = Vec::new();
        for span in &spans {
            let words = command_words(span);
            documented.insert(words[0].clone());
            let help = help_of(&words);
            helps.push(help.clone());
            for flag in flags(span) {
                assert!(
                    help.contains(&format!("{flag} "))
                        || help.contains(&format!("{flag},"))
                        || help.contains(&format!("{flag}\n")),
                    "README's command table names `{flag}` for `sandpen {}`, which its --help does not offer:\n{help}",
                    words.join(" ")
                );
            }
        }
        // The flags its description names belong to one of the row's commands.
        for flag in code_spans(&row[1]).iter().flat_map(|s| flags(s)) {
            assert!(
                helps.iter().any(|h| offers(h, &flag)),
                "README's command table names `{flag}` in the row of {spans:?}, whose --help does not offer it"
            );
        }
    }
    // And the other way: every command `sandpen --help` lists is in the table.
    let top = help_of(&[]);
    let commands = top
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        // A command's line, not its description's wrapped continuation.
        .filter(|l| !l[2..].starts_with(' '))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help");
    for command in commands {
        assert!(
            documented.contains(command),
            "`sandpen {command}` is missing from README's command table"
        );
    }
}

/// The field names of the first table under `heading` (`a`, `b` in one cell name two).
fn documented_fields(heading: &str) -> BTreeSet<String> {
    let rows = table_rows(REPORT_MD, heading);
    rows.iter()
        .flat_map(|r| {
            code_spans(&r[0])
                .into_iter()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect()
}

fn keys(value: &serde_json::Value) -> BTreeSet<String> {
    value.as_object().expect("an object").keys().cloned().collect()
}

#[test]
fn report_md_documents_exactly_the_fields_report_json_has() {
    let limits = Limits {
        nano_cpus: 1,
        memory_bytes: 1,
        pids: 1,
    };
    let mut task = TaskResult::new("t", "img", limits);
    // The fields left out when empty, filled so that they are serialized too.
    task.stderr_tail = vec!["error".into()];
    task.environment = Some("sandpen-env-0123".into());
    task.session = Some(Default::default());
    task.attempts = vec![Attempt::of(&task, 1)];
    let mut run = RunReport::started("r", "/repo", "img", 1, "2026-12-05T00:00:00Z");
    run.memory_held = Some(MemoryHold {
        jobs: 2,
        at_once: 1,
        request_bytes: 1,
        total_bytes: 1,
        waited: 1,
    });
    run.cancel_reason = Some(sandpen::runner::CancelReason::FailFast);
    run.environment = Some(sandpen::warm::Environment {
        volume: "sandpen-env-0123".into(),
        from: "uv.lock".into(),
        state: sandpen::warm::EnvState::Prepared,
        started_at: "2026-12-05T00:00:00Z".into(),
        duration_s: 1.0,
        bytes_fetched: 1,
        output: None,
        image: Some("registry:5000/sandpen-env@sha256:0123".into()),
    });
    run.tasks.push(task);
    let json = serde_json::to_value(&run).unwrap();
    for (level, heading, fields) in [
        ("run", "## Run", keys(&json)),
        ("task", "## Task", keys(&json["tasks"][0])),
    ] {
        let documented = documented_fields(heading);
        let undocumented: Vec<_> = fields.difference(&documented).collect();
        let gone: Vec<_> = documented.difference(&fields).collect();
        assert!(
            undocumented.is_empty(),
            "{level} fields report.json has and docs/report.md does not: {undocumented:?}"
        );
        assert!(
            gone.is_empty(),
            "{level} fields docs/report.md documents and report.json lacks: {gone:?}"
        );
    }
}

/// The `--flag`'s entry in `help`: from its line to the next option's (a line whose text
/// starts with `-` at the options' indentation, not a wrapped description's).
fn entry<'a>(help: &'a str, flag: &str) -> &'a str {
    let start = help
        .find(&format!("{flag} "))
        .unwrap_or_else(|| panic!("{flag} not in:\n{help}"));
    let rest = &help[start..];
    let mut end = rest.len();
    let mut at = rest.find('\n').unwrap_or(rest.len());
    while at < rest.len() {
        let line = &rest[at + 1..];
        let text = line.trim_start_matches(' ');
        if text.starts_with('-') && line.len() - text.len() <= 6 {
            end = at;
            break;
        }
        at += 1 + line.find('\n').unwrap_or(line.len());
    }
    &rest[..end]
}

/// README's sample task file gives the defaults of the limits: each is `run --help`'s default
/// for the flag of the same meaning.
#[test]
fn readmes_defaults_are_runs_defaults() {
    let help = help_of(&["run".to_string()]);
    let sample = &README[README.find("[defaults]").expect("README's [defaults] sample")..];
    let sample = &sample[..sample.find("[[task]]").unwrap()];
    let flag_of = [
        ("cpus", "--cpus"),
        ("memory", "--memory"),
        ("memory_request", "--memory-request"),
        ("pids", "--pids-limit"),
        ("timeout", "--timeout"),
        ("disk", "--disk"),
        ("log_limit", "--log-limit"),
        ("salvage_max_file", "--salvage-max-file"),
        ("salvage_max_total", "--salvage-max-total"),
    ];
    let mut checked = 0;
    for line in sample.lines() {
        let Some((key, value)) = line.split('#').next().unwrap().split_once('=') else {
            continue;
        };
        let Some((_, flag)) = flag_of.iter().find(|(k, _)| *k == key.trim()) else {
            continue;
        };
        let value = value.trim().trim_matches('"').trim_end_matches(".0");
        let text = entry(&help, flag)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        let said = [format!("default: {value}"), format!("{value} (default")];
        assert!(
            said.iter().any(|s| text.contains(s.as_str())),
            "README's sample says {} = {value}; `run --help` says of {flag}: {text}",
            key.trim()
        );
        checked += 1;
    }
    assert_eq!(checked, flag_of.len(), "every limit of the sample was checked");
}

/// The exit codes README states are the ones sandpen's `--help` states and its code uses.
#[test]
fn readmes_exit_codes_are_sandpens() {
    use sandpen::exit;
    let para = &README[README.find("Exit codes").expect("README states the exit codes")..];
    let para = &para[..para.find("\n\n").unwrap()];
    let numbers = |text: &str| -> BTreeSet<i32> {
        let words = text.split(|c: char| !c.is_ascii_digit());
        words.filter_map(|w| w.parse().ok()).collect()
    };
    let code: BTreeSet<i32> = [
        exit::SUCCESS,
        exit::FAILURE,
        exit::INVALID_INPUT,
        exit::ENGINE_UNREACHABLE,
        exit::INTERRUPTED,
    ]
    .into();
    assert_eq!(numbers(para), code, "README: {para}");
    assert_eq!(numbers(exit::HELP), code, "--help: {}", exit::HELP);
    assert!(
        help_of(&[]).contains("Exit codes: 0"),
        "sandpen --help states them"
    );
}
