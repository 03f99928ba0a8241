//! sandpen on a terminal of a given width (a pseudo-terminal made by `script`), and into
//! pipes: the summary fits the width, statuses are coloured only where they should be, and a
//! run finds its gateway image without building one.

mod common;

use std::process::Command;

use common::*;

/// Three tasks: one with an id too long for a narrow table, one that fails, one that passes.
const TASKS: &str = r#"
[[task]]
id = "alpha-task-with-a-rather-long-identifier"
prompt_text = "echo hi"
memory = "256m"
timeout = "2m"

[[task]]
id = "beta"
prompt_text = "echo fail; exit 3"
memory = "256m"
timeout = "2m"

[[task]]
id = "gamma"
prompt_text = "echo ok"
memory = "256m"
timeout = "2m"
"#;

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// `sandpen run` of TASKS in a pseudo-terminal `cols` wide; everything the terminal was sent.
fn run_in_pty(cols: u16, extra: &[&str], env: &[(&str, &str)]) -> String {
    image("gateway");
    let repo = make_repo();
    let tasks = task_file(TASKS);
    let mut words = vec![env!("CARGO_BIN_EXE_sandpen").to_string(), "run".into()];
    words.extend(["--image".into(), image("probe"), "--repo".into()]);
    words.push(repo.path().display().to_string());
    words.extend(extra.iter().map(|s| s.to_string()));
    words.push(tasks.path.display().to_string());
    let line: Vec<String> = words.iter().map(|w| quote(w)).collect();
    let shell = format!("stty rows 40 cols {cols}; exec {}", line.join(" "));
    let mut cmd = Command::new("script");
    cmd.args(["-qfec", &shell, "/dev/null"]).env_remove("NO_COLOR");
    with_test_credentials(&mut cmd);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = output(&mut cmd);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.contains("3/3 done") && text.contains("beta: exited with code 3"),
        "the run did not end as expected:\n{text}\n{}",
        stderr(&out)
    );
    text
}

/// Plays what the terminal was sent on a screen `cols` wide, and returns the lines whose text
/// ran past the width: a character the terminal wrapped onto the next row while the row's last
/// column held text (the live view pads its lines with spaces to the width, which wraps
/// harmlessly). Cursor movement, erasing and colours are followed as a terminal would.
fn overflowing_lines(text: &str, cols: usize) -> Vec<String> {
    let mut rows: Vec<Vec<char>> = vec![vec![' '; cols]];
    let (mut r, mut c) = (0usize, 0usize);
    let mut over = Vec::new();
    let mut chars = text.chars().peekable();
    let row_text = |row: &Vec<char>| row.iter().collect::<String>().trim_end().to_string();
    while let Some(ch) = chars.next() {
        match ch {
            '\x1b' if chars.next_if_eq(&'[').is_some() => {
                let mut params = String::new();
                let mut fin = ' ';
                for p in chars.by_ref() {
                    if ('@'..='~').contains(&p) {
                        fin = p;
                        break;
                    }
                    params.push(p);
                }
                let n: usize = params.parse().unwrap_or(1).max(1);
                match fin {
                    'A' => r = r.saturating_sub(n),
                    'B' => r += n,
                    'K' => rows[r] = vec![' '; cols],
                    'J' => rows.truncate(r + 1),
                    _ => {}
                }
            }
            '\x1b' => {
                chars.next();
            }
            '\r' => c = 0,
            '\n' => r += 1,
            ch => {
                if c >= cols {
                    if rows[r][cols - 1] != ' ' {
                        over.push(row_text(&rows[r]));
                    }
                    r += 1;
                    c = 0;
                }
                while rows.len() <= r {
                    rows.push(vec![' '; cols]);
                }
                rows[r][c] = ch;
                c += 1;
            }
        }
        while rows.len() <= r {
            rows.push(vec![' '; cols]);
        }
    }
    over
}

/// `text` without its escape sequences (for reading the table).
fn strip_escapes(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\x1b' {
            out.push(c);
            continue;
        }
        if chars.next_if_eq(&'[').is_some() {
            for p in chars.by_ref() {
                if ('@'..='~').contains(&p) {
                    break;
                }
            }
        } else {
            chars.next();
        }
    }
    out
}

/// Whether `text` holds an SGR sequence (ESC [ digits/semicolons m).
fn has_sgr(text: &str) -> bool {
    text.match_indices("\x1b[").any(|(i, _)| {
        let rest = &text[i + 2..];
        let params = rest
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == ';')
            .count();
        params > 0 && rest[params..].starts_with('m')
    })
}

/// No line the run drew ran past `cols`: not the live lines, not the summary. The run's
/// closing `report:` and `logs:` paths are not part of the summary (a path is not cut).
fn assert_fits(text: &str, cols: usize) {
    let wide: Vec<String> = overflowing_lines(text, cols)
        .into_iter()
        .filter(|l| !l.starts_with("report: ") && !l.starts_with("logs: "))
        .collect();
    assert!(
        wide.is_empty(),
        "lines wider than {cols}: {wide:#?}\n{}",
        strip_escapes(text)
    );
}

fn table_lines(text: &str) -> Vec<String> {
    strip_escapes(text)
        .split(['\r', '\n'])
        .filter(|l| l.starts_with('│'))
        .map(String::from)
        .collect()
}

#[test]
fn an_80_column_terminal_gets_a_fitted_coloured_summary() {
    let text = run_in_pty(80, &["--color", "auto"], &[]);
    assert_fits(&text, 80);
    let rows = table_lines(&text);
    assert!(
        rows.iter().any(|l| l.contains("alpha-task-") && l.contains('…')),
        "the long id is cut with an ellipsis: {rows:#?}"
    );
    assert!(rows.iter().any(|l| l.contains("beta")), "{rows:#?}");
    assert!(has_sgr(&text), "a terminal gets colour:\n{text}");
    // The failed status is red (comfy-table's 256-colour red, or the live view's).
    assert!(
        text.contains("\x1b[38;5;9m") || text.contains("\x1b[31m"),
        "{text}"
    );
}

#[test]
fn a_60_column_terminal_gets_fewer_columns_and_no_colour_under_no_color() {
    let text = run_in_pty(60, &[], &[("NO_COLOR", "1")]);
    assert_fits(&text, 60);
    let rows = table_lines(&text);
    let header = rows.first().expect("a table header");
    assert!(header.contains("task") && header.contains("status"), "{header}");
    assert!(
        !header.contains("cpu mean/peak"),
        "the figures go first: {header}"
    );
    assert!(!has_sgr(&text), "NO_COLOR: no colour:\n{text}");
}

#[test]
fn pipes_get_colour_only_when_asked_and_a_second_run_builds_no_image() {
    let repo = make_repo();
    let first = run_tasks(repo.path(), TASKS, &[]);
    let before = gateway_id();
    let plain = format!("{}{}", stdout(&first.out), stderr(&first.out));
    assert!(plain.contains("beta"), "{}", first.dump());
    assert!(!has_sgr(&plain), "a pipe gets no colour:\n{}", first.dump());

    let second = run_tasks(repo.path(), TASKS, &["--color", "always"]);
    assert!(
        has_sgr(&stdout(&second.out)),
        "--color always colours the summary in a pipe:\n{}",
        second.dump()
    );
    for run in [&first, &second] {
        let err = stderr(&run.out);
        assert!(
            !err.contains("Step ") && !err.contains("building sandpen-gateway"),
            "no image is built: {}",
            run.dump()
        );
    }
    assert_eq!(gateway_id(), before, "the gateway image is the same");
    // Nothing in the files takes colour.
    let report = std::fs::read_to_string(&second.tasks.report).unwrap();
    assert!(!report.contains('\x1b'), "report.json holds no escapes");
    // `ps` colours the states as `run` does.
    let run_id = second.report()["run_id"].as_str().expect("a run id").to_string();
    let ps = |extra: &[&str]| {
        let mut cmd = sandpen();
        cmd.current_dir(repo.path()).args(["ps", &run_id]).args(extra);
        run_ok(&mut cmd)
    };
    let coloured = ps(&["--color", "always"]);
    assert!(has_sgr(&coloured) && coloured.contains("failed"), "{coloured}");
    let plain = ps(&[]);
    assert!(!has_sgr(&plain) && plain.contains("failed"), "{plain}");
}

#[test]
fn a_copy_of_the_executable_reuses_the_current_gateway_image() {
    let before = gateway_id();
    // A copy: the same bytes under another inode and time, as `cargo install` or `cp` make.
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("sandpen");
    std::fs::copy(env!("CARGO_BIN_EXE_sandpen"), &copy).unwrap();
    let repo = make_repo();
    let tasks = task_file(TASKS);
    let mut cmd = Command::new(&copy);
    with_test_credentials(&mut cmd);
    cmd.current_dir(repo.path())
        .args(["run", "--image", &image("probe"), "--repo"])
        .arg(repo.path())
        .arg(&tasks.path);
    for attempt in ["first", "second"] {
        let out = output(&mut cmd);
        let err = stderr(&out);
        assert!(err.contains("3/3 done"), "{attempt} run: {err}");
        assert!(
            !err.contains("Step ") && !err.contains("building sandpen-gateway"),
            "the {attempt} run of a copy builds no gateway image: {err}"
        );
    }
    assert_eq!(gateway_id(), before, "the gateway image is the same");
}

/// The id of the gateway image this build of sandpen made (other builds of sandpen may make
/// theirs on the same engine meanwhile).
fn gateway_id() -> String {
    let tag = image("gateway");
    let id = stdout(&docker(&["image", "inspect", "-f", "{{.Id}}", &tag]));
    assert!(id.starts_with("sha256:"), "no image {tag}: {id}");
    id
}

#[test]
fn a_current_image_is_reused_without_a_word_about_its_base() {
    image("probe");
    let out = output(sandpen().args(["image", "build", "--target", "probe"]));
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("is current, reusing it"), "{err}");
    // Where debian:bookworm-slim cannot be pulled, the offline base stands in; that is said
    // only when something is built on it.
    assert!(!err.contains("failed") && !err.contains("building on"), "{err}");
}

#[test]
fn the_screen_player_tells_overflow_from_padding() {
    assert_eq!(overflowing_lines("abcdef\r\n", 4), vec!["abcd"]);
    assert!(
        overflowing_lines("ab  cd\r\n", 4).is_empty(),
        "padding wraps harmlessly"
    );
    assert!(overflowing_lines("abcd\r\nefgh\r\n", 4).is_empty());
    // A line redrawn shorter after moving up and erasing is not an overflow.
    assert!(overflowing_lines("abc\r\n\x1b[1A\x1b[2Kxy\r\n", 4).is_empty());
}
