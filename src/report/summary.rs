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
            t.branch.clone().unwrap_or_else(|| "-".into()),
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
    out
}
