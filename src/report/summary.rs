//! The human summary that ends a run.

use comfy_table::{Cell, Table, presets::UTF8_FULL_CONDENSED};

use super::style::{self, Column, Style};
use crate::runner::{RunReport, TaskResult};
use indicatif::HumanBytes;

const HEADERS: [&str; 9] = [
    "task",
    "status",
    "exit",
    "time",
    "peak mem",
    "cpu mean/peak",
    "turns",
    "cost",
    "branch",
];

/// How each column gives way on a narrow terminal: the id and the branch narrow (cut with
/// `…`), then the figures go, least telling first; task, status, time and branch stay.
const GIVE: [(usize, Option<u8>); 9] = [
    (12, None),
    (0, None),
    (0, Some(3)),
    (0, None),
    (0, Some(4)),
    (0, Some(0)),
    (0, Some(1)),
    (0, Some(2)),
    (16, None),
];

/// The table and what follows it, fitted to the terminal `style` names (as wide as it takes
/// otherwise), statuses coloured when `style` colours.
pub fn summary_table(report: &RunReport, style: &Style) -> String {
    let rows: Vec<[String; 9]> = report.tasks.iter().map(cells).collect();
    let widths = column_widths(&rows, style.width());
    let mut table = Table::new();
    table.load_style(UTF8_FULL_CONDENSED);
    if style.color() {
        table.enforce_styling();
    } else {
        table.force_no_tty();
    }
    let fitted = |cells: Vec<String>| -> Vec<Cell> {
        cells
            .into_iter()
            .zip(&widths)
            .filter_map(|(c, w)| w.map(|w| Cell::new(style::truncate(&c, w))))
            .collect()
    };
    table.set_header(fitted(HEADERS.map(String::from).to_vec()));
    for (t, row) in report.tasks.iter().zip(rows) {
        let mut cells = fitted(row.to_vec());
        if style.color()
            && let Some(color) = style::table_color(style::tone_of(t.status.as_str()))
        {
            cells[1] = cells[1].clone().fg(color);
        }
        table.add_row(cells);
    }
    let ok = report
        .tasks
        .iter()
        .filter(|t| t.status == crate::runner::TaskStatus::Succeeded)
        .count();
    let mut out = table.to_string();
    out.push('\n');
    let mut say = |line: String, indent: usize| match style.width() {
        Some(w) => style::wrap(&line, w, indent)
            .into_iter()
            .for_each(|l| out.push_str(&format!("{l}\n"))),
        None => out.push_str(&format!("{line}\n")),
    };
    say(
        format!(
            "{ok}/{} succeeded in {:.1}s wall (-j {}; concurrency {:.1}: task time / wall time)",
            report.tasks.len(),
            report.wall_s,
            report.jobs,
            report.concurrency
        ),
        2,
    );
    for t in report.tasks.iter().filter(|t| super::failure::explained(t)) {
        for (i, line) in super::failure::block(t).lines().enumerate() {
            say(line.to_string(), if i == 0 { 4 } else { 6 });
        }
    }
    for t in &report.tasks {
        for line in work_notes(t) {
            say(format!("  {}: {line}", t.id), 4);
        }
    }
    if let Some(hold) = &report.memory_held {
        say(hold.describe(), 2);
    }
    if let Some(why) = report.cancel_reason {
        say(why.describe().to_string(), 2);
    }
    if let Some(pointer) = super::failure::pointer(report) {
        say(pointer.trim_end().to_string(), 2);
    }
    out
}

/// One task's cells, in the order of `HEADERS`.
fn cells(t: &TaskResult) -> [String; 9] {
    let cpu = match (t.mean_cpu_percent, t.peak_cpu_percent) {
        (Some(m), Some(p)) => format!("{m:.0}% / {p:.0}%"),
        _ => "-".into(),
    };
    let agent = t.agent.as_ref();
    [
        t.id.clone(),
        t.status.as_str().to_string(),
        t.exit_code.map(|c| c.to_string()).unwrap_or_else(|| "-".into()),
        format!("{:.1}s", t.duration_s),
        t.peak_memory_bytes
            .map(|b| HumanBytes(b).to_string())
            .unwrap_or_else(|| "-".into()),
        cpu,
        agent
            .map(|a| a.num_turns.to_string())
            .unwrap_or_else(|| "-".into()),
        agent
            .and_then(|a| a.cost_usd)
            .map(|c| format!("${c:.4}"))
            .unwrap_or_else(|| "-".into()),
        match (&t.branch, t.branches.is_empty()) {
            (Some(b), _) => b.clone(),
            (None, false) => "(HEAD unchanged; see below)".into(),
            (None, true) => "no commits".into(),
        },
    ]
}

/// Each column's width on a terminal `width` wide (None: dropped); every column at its
/// natural width without a terminal. A column costs 3 beyond its text (`│ x `), the table 1.
fn column_widths(rows: &[[String; 9]], width: Option<usize>) -> Vec<Option<usize>> {
    let natural = |i: usize| {
        rows.iter()
            .map(|r| style::width_of(&r[i]))
            .chain([style::width_of(HEADERS[i])])
            .max()
            .unwrap_or(0)
    };
    let cols: Vec<Column> = (0..HEADERS.len())
        .map(|i| {
            let (min, drop) = GIVE[i];
            let natural = natural(i);
            Column {
                natural,
                min: if min == 0 { natural } else { min.min(natural) },
                drop,
            }
        })
        .collect();
    match width {
        Some(w) => style::fit_columns(&cols, w, 3, 1),
        None => cols.iter().map(|c| Some(c.natural)).collect(),
    }
}

/// What a task left beyond its HEAD's branch, one line each: nothing of it goes unsaid.
fn work_notes(t: &crate::runner::TaskResult) -> Vec<String> {
    let mut notes: Vec<String> = t
        .branches
        .iter()
        .map(|b| {
            format!(
                "branch {} -> {} ({} commit{})",
                b.task_branch,
                b.branch,
                b.commits,
                if b.commits == 1 { "" } else { "s" }
            )
        })
        .collect();
    notes.splice(0..0, t.changes.map(|c| format!("{} commit(s), {c}", t.commits)));
    // A task run more than once: its attempts, oldest first (the figures above are the last's).
    if let [earlier @ .., last] = t.attempts.as_slice()
        && !earlier.is_empty()
    {
        let before: Vec<String> = earlier
            .iter()
            .map(|a| format!("{} {}", a.number, a.status.as_str()))
            .collect();
        notes.insert(
            0,
            format!(
                "attempt {} of this run (earlier: {})",
                last.number,
                before.join(", ")
            ),
        );
    }
    if t.branches_not_collected > 0 {
        notes.push(format!(
            "{} more branches stay in the checkout {}",
            t.branches_not_collected, t.checkout
        ));
    }
    if t.unreachable_commits > 0 {
        let kept = match (t.unreachable_refs.is_empty(), &t.branch) {
            (false, _) => format!("kept on {}", t.unreachable_refs.join(", ")),
            (true, Some(b)) => format!("kept on {b}"),
            (true, None) => "kept in the checkout".into(),
        };
        notes.push(format!(
            "{} commit{} reachable from no branch (a detached HEAD, a deleted branch, a stash), {kept}",
            t.unreachable_commits,
            if t.unreachable_commits == 1 { "" } else { "s" }
        ));
    }
    if !t.tags.is_empty() {
        notes.push(format!("tags made (not imported): {}", t.tags.join(", ")));
    }
    for n in &t.nested_repos {
        notes.push(match (&n.reason, n.salvaged) {
            (_, true) => format!(
                "nested repository {}: its files were saved, not its history",
                n.path
            ),
            (Some(why), false) => format!("nested repository {} kept in the checkout: {why}", n.path),
            (None, false) => format!("nested repository {} kept in the checkout", n.path),
        });
    }
    if let Some(g) = &t.gateway {
        for dest in &g.denied {
            notes.push(format!("tried {dest}: denied"));
        }
        let limited = g.upstream_429 + g.upstream_529;
        if limited > 0 {
            notes.push(format!(
                "the model API limited it {limited} time{} (429/529); the gateway held its requests",
                if limited == 1 { "" } else { "s" }
            ));
        }
    }
    if !t.salvage_left_out.is_empty() {
        notes.push(format!(
            "left out of the salvage as possible credentials (still in the checkout): {}",
            t.salvage_left_out.join(", ")
        ));
    }
    if !t.salvage_left_out_large.is_empty() {
        let files: Vec<String> = t
            .salvage_left_out_large
            .iter()
            .map(|f| {
                format!(
                    "{} ({})",
                    f.path,
                    crate::report::html::scale::bytes(f.bytes as f64)
                )
            })
            .collect();
        notes.push(format!(
            "left out of the salvage for their size (still in the checkout): {}",
            files.join(", ")
        ));
    }
    notes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::spec::Limits;
    use crate::gateway::GatewayUsage;
    use crate::runner::TaskStatus;

    #[test]
    fn the_summary_names_what_no_branch_shows_and_what_the_gateway_refused() {
        let limits = Limits {
            nano_cpus: 1_000_000_000,
            memory_bytes: 1 << 30,
            pids: 64,
        };
        let mut t = TaskResult::new("fix-count", "img", limits);
        t.status = TaskStatus::Succeeded;
        t.unreachable_commits = 2;
        t.unreachable_refs = vec!["refs/sandpen/fix-count/r/unreachable-1".into()];
        t.tags = vec!["v1".into()];
        t.gateway = Some(GatewayUsage {
            denied: vec!["pastebin.example:443".into()],
            upstream_429: 2,
            ..Default::default()
        });
        let mut idle = TaskResult::new("idle", "img", limits);
        idle.status = TaskStatus::Succeeded;
        let mut report = crate::runner::RunReport::started("r", "/repo", "img", 2, "now");
        report.tasks = vec![t, idle];
        let text = summary_table(&report, &Style::plain());
        assert!(
            text.contains("fix-count: tried pastebin.example:443: denied"),
            "{text}"
        );
        assert!(
            text.contains("fix-count: 2 commits reachable from no branch"),
            "{text}"
        );
        assert!(text.contains("refs/sandpen/fix-count/r/unreachable-1"), "{text}");
        assert!(text.contains("fix-count: tags made (not imported): v1"), "{text}");
        assert!(text.contains("no commits"), "the idle task says so: {text}");
        assert!(
            text.contains("fix-count: the model API limited it 2 times"),
            "{text}"
        );
    }

    fn three_tasks() -> RunReport {
        let limits = Limits {
            nano_cpus: 1_000_000_000,
            memory_bytes: 1 << 30,
            pids: 64,
        };
        let mut report = RunReport::started("r", "/repo", "img", 4, "now");
        for (id, status) in [
            ("alpha-task-with-a-rather-long-identifier", TaskStatus::Succeeded),
            ("beta", TaskStatus::Failed),
            ("gamma", TaskStatus::Cancelled),
        ] {
            let mut t = TaskResult::new(id, "img", limits);
            t.status = status;
            t.mean_cpu_percent = Some(12.0);
            t.peak_cpu_percent = Some(40.0);
            t.peak_memory_bytes = Some(7 << 20);
            t.branch = Some(format!("sandpen/{id}/20261205-055141-dfd4"));
            t.message = (status == TaskStatus::Failed)
                .then(|| "exited with code 3 after a long and winding road of a message".into());
            report.tasks.push(t);
        }
        report
    }

    fn widest(text: &str) -> usize {
        text.lines().map(style::width_of).max().unwrap_or(0)
    }

    #[test]
    fn a_task_run_more_than_once_names_its_attempts() {
        let limits = crate::engine::spec::Limits {
            nano_cpus: 1,
            memory_bytes: 1,
            pids: 1,
        };
        let mut t = crate::runner::TaskResult::new("t", "img", limits);
        assert!(work_notes(&t).is_empty());
        t.status = crate::runner::TaskStatus::TimedOut;
        t.attempts = vec![crate::runner::Attempt::of(&t, 1)];
        assert!(work_notes(&t).is_empty(), "one attempt: nothing to say");
        t.status = crate::runner::TaskStatus::Succeeded;
        t.attempts.push(crate::runner::Attempt::of(&t, 2));
        assert_eq!(work_notes(&t), ["attempt 2 of this run (earlier: 1 timed_out)"]);
    }

    #[test]
    fn without_a_terminal_the_table_is_as_wide_as_it_takes() {
        let text = summary_table(&three_tasks(), &Style::plain());
        assert!(
            text.contains("alpha-task-with-a-rather-long-identifier"),
            "{text}"
        );
        assert!(text.contains("cpu mean/peak") && !text.contains('…'), "{text}");
        assert!(widest(&text) > 120, "{text}");
        assert!(!text.contains('\x1b'), "no colour: {text}");
    }

    #[test]
    fn at_80_columns_ids_and_branches_are_cut_and_everything_fits() {
        let text = summary_table(&three_tasks(), &Style::fixed(80, false));
        assert!(widest(&text) <= 80, "{text}");
        assert!(text.contains("alpha-task-") && text.contains('…'), "{text}");
        assert!(text.contains("status") && text.contains("branch"), "{text}");
        // The footer is wrapped, not cut: the whole message is there.
        let words: Vec<&str> = text.split_whitespace().collect();
        assert!(
            words.join(" ").contains("a long and winding road of a message"),
            "{text}"
        );
    }

    #[test]
    fn at_60_columns_the_figures_go_first() {
        let text = summary_table(&three_tasks(), &Style::fixed(60, false));
        assert!(widest(&text) <= 60, "{text}");
        assert!(!text.contains("cpu mean/peak"), "{text}");
        assert!(!text.contains("turns"), "{text}");
        for kept in ["task", "status", "time", "branch", "beta", "failed"] {
            assert!(text.contains(kept), "{kept}: {text}");
        }
    }

    #[test]
    fn statuses_are_coloured_only_when_the_style_colours() {
        let text = summary_table(&three_tasks(), &Style::fixed(100, true));
        assert!(text.contains("\x1b[38;5;9m failed"), "red: {text}");
        assert!(text.contains("\x1b[38;5;10m succeeded"), "green: {text}");
        assert!(text.contains("\x1b[38;5;11m cancelled"), "yellow: {text}");
        let plain = summary_table(&three_tasks(), &Style::fixed(100, false));
        assert!(!plain.contains('\x1b'), "{plain}");
    }
}
