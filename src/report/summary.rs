//! The human summary that ends a run.

use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};

use crate::runner::RunReport;
use indicatif::HumanBytes;

pub fn summary_table(report: &RunReport) -> String {
    let mut table = Table::new();
    table.load_style(UTF8_FULL_CONDENSED);
    table.set_header([
        "task",
        "status",
        "exit",
        "time",
        "peak mem",
        "cpu mean/peak",
        "turns",
        "cost",
        "branch",
    ]);
    for t in &report.tasks {
        let cpu = match (t.mean_cpu_percent, t.peak_cpu_percent) {
            (Some(m), Some(p)) => format!("{m:.0}% / {p:.0}%"),
            _ => "-".into(),
        };
        let agent = t.agent.as_ref();
        table.add_row([
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
        ]);
    }
    let ok = report
        .tasks
        .iter()
        .filter(|t| t.status == crate::runner::TaskStatus::Succeeded)
        .count();
    let mut out = table.to_string();
    out.push_str(&format!(
        "\n{ok}/{} succeeded in {:.1}s wall (-j {}; concurrency {:.1}: task time / wall time)\n",
        report.tasks.len(),
        report.wall_s,
        report.jobs,
        report.concurrency
    ));
    for t in report
        .tasks
        .iter()
        .filter(|t| t.message.is_some() && t.status != crate::runner::TaskStatus::Succeeded)
    {
        out.push_str(&format!(
            "  {}: {}\n",
            t.id,
            t.message.as_deref().unwrap_or_default()
        ));
    }
    for t in &report.tasks {
        for line in work_notes(t) {
            out.push_str(&format!("  {}: {line}\n", t.id));
        }
    }
    out
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
    use crate::runner::{TaskResult, TaskStatus};

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
        let text = summary_table(&report);
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
}
