//! The page around the charts: the header with the run's totals, the stylesheet, the order of
//! the sections. One self-contained file: inline CSS and SVG, no script, nothing fetched.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::escape::esc;
use super::samples::Samples;
use super::{charts, scale, table, timeline};
use crate::runner::RunReport;

const STYLE: &str = r#"
:root { color-scheme: light; --fg: #1d2330; --muted: #667085; --line: #e4e7ec; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg);
  margin: 0; padding: 24px 32px; background: #fff; }
h1 { font-size: 20px; margin: 0 0 4px; } h2 { font-size: 16px; margin: 28px 0 8px; }
h3 { font-size: 14px; margin: 18px 0 2px; font-family: ui-monospace, monospace; }
code { font: 12px ui-monospace, SFMono-Regular, Menlo, monospace; word-break: break-all; }
.meta { color: var(--muted); margin: 0; }
.totals { display: flex; flex-wrap: wrap; gap: 8px 24px; margin: 14px 0; padding: 0; list-style: none; }
.totals li b { display: block; font-size: 18px; }
.totals li span { color: var(--muted); font-size: 12px; }
.note { background: #fff6e5; border: 1px solid #f5c26b; padding: 6px 10px; border-radius: 4px; }
svg { display: block; max-width: 100%; height: auto; }
svg text { font: 11px system-ui, sans-serif; fill: var(--fg); }
svg .tick { fill: var(--muted); font-size: 10px; } svg .empty, svg .not-run { fill: var(--muted); }
svg .grid { stroke: var(--line); stroke-width: 1; }
.bar.queued { fill: #d0d5dd; } .bar.prepare { fill: #98a2b3; } .bar.collect { fill: #7a8ba8; }
.bar.run { fill: #2e90fa; }
.bar.run.st-succeeded { fill: #12b76a; } .bar.run.st-failed, .bar.run.st-error { fill: #f04438; }
.bar.run.st-oom_killed, .bar.run.st-timed_out, .bar.run.st-disk_exceeded,
.bar.run.st-budget_exceeded { fill: #f79009; } .bar.run.st-cancelled { fill: #475467; }
.legend { display: flex; gap: 16px; color: var(--muted); font-size: 12px; margin: 6px 0 0 190px; }
.legend i { display: inline-block; width: 12px; height: 10px; margin-right: 4px; vertical-align: -1px; }
.charts { display: flex; flex-wrap: wrap; gap: 12px; }
.charts svg { width: 480px; border: 1px solid var(--line); border-radius: 4px; }
polyline.cpu, polyline.mem { fill: none; stroke-width: 1.8; stroke-linejoin: round; }
polyline.cpu { stroke: #7a5af8; } .cpu-dot { fill: #7a5af8; }
polyline.mem { stroke: #0ba5ec; } .mem-dot { fill: #0ba5ec; }
.caption, .no-samples { color: var(--muted); margin: 0 0 6px; font-size: 12px; }
table.tasks { border-collapse: collapse; width: 100%; font-size: 12px; }
table.tasks th, table.tasks td { border-bottom: 1px solid var(--line); padding: 6px 8px; text-align: left; vertical-align: top; }
table.tasks th { background: #f9fafb; font-weight: 600; }
td.message { max-width: 360px; white-space: pre-wrap; } td.message pre.tail { margin: 4px 0 0; font-size: 11px; white-space: pre-wrap; } td.id code { word-break: normal; white-space: nowrap; }
.badge { display: inline-block; padding: 1px 7px; border-radius: 10px; background: #eaecf0; font-weight: 600; }
.badge.st-succeeded { background: #d1fadf; color: #05603a; }
.badge.st-failed, .badge.st-error { background: #fee4e2; color: #912018; }
.badge.st-oom_killed, .badge.st-timed_out, .badge.st-disk_exceeded, .badge.st-budget_exceeded { background: #fef0c7; color: #93370d; }
"#;

const LEGEND: &str = r##"<div class="legend"><span><i style="background:#d0d5dd"></i>queued</span><span><i style="background:#98a2b3"></i>checkout</span><span><i style="background:#12b76a"></i>container (succeeded)</span><span><i style="background:#f04438"></i>container (failed)</span><span><i style="background:#f79009"></i>container (stopped at a limit)</span><span><i style="background:#475467"></i>container (cancelled)</span><span><i style="background:#7a8ba8"></i>collecting the work</span></div>"##;

/// The whole page.
pub fn render(run: &RunReport, samples: &Samples) -> String {
    let id = esc(&run.run_id);
    let mut s = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>sandpen run {id}</title><style>{STYLE}</style></head><body>"
    );
    header(&mut s, run);
    s.push_str("<h2>Timeline</h2>");
    s.push_str(&timeline::svg(run));
    s.push_str(LEGEND);
    s.push_str("<h2>CPU and memory</h2>");
    if run.tasks.is_empty() {
        s.push_str(r#"<p class="no-samples">No tasks, no samples.</p>"#);
    }
    for t in &run.tasks {
        let points = samples.get(&t.id).map(Vec::as_slice).unwrap_or_default();
        s.push_str(&charts::task_charts(t, points));
    }
    s.push_str("<h2>Tasks</h2>");
    s.push_str(&table::table(&run.tasks));
    s.push_str("</body></html>\n");
    s
}

fn header(s: &mut String, run: &RunReport) {
    let _ = write!(
        s,
        r#"<h1>sandpen run <code>{}</code></h1><p class="meta">repository <code>{}</code> · image <code>{}</code> · started {} · finished {}</p>"#,
        esc(&run.run_id),
        esc(&run.repo),
        esc(&run.image),
        esc(&run.started_at),
        if run.finished_at.is_empty() {
            "–".to_string()
        } else {
            esc(&run.finished_at)
        },
    );
    let mut by_status: BTreeMap<&str, usize> = BTreeMap::new();
    for t in &run.tasks {
        *by_status.entry(t.status.as_str()).or_default() += 1;
    }
    let cost = run.tasks.iter().filter_map(table::cost).fold(0.0, |a, b| a + b);
    let turns: u32 = run
        .tasks
        .iter()
        .filter_map(|t| t.agent.as_ref())
        .map(|a| a.num_turns)
        .sum();
    let task_time: f64 = run.tasks.iter().map(|t| t.duration_s).sum();
    let mut totals = vec![
        (run.tasks.len().to_string(), "tasks".to_string()),
        (scale::secs(run.wall_s), "wall time".to_string()),
        (scale::secs(task_time), "task time, summed".to_string()),
        (
            format!("{:.2}", run.concurrency),
            "tasks at once, on average".to_string(),
        ),
        (run.jobs.to_string(), "jobs".to_string()),
        (turns.to_string(), "turns".to_string()),
        (format!("${cost:.4}"), "cost".to_string()),
    ];
    totals.extend(by_status.iter().map(|(k, n)| (n.to_string(), (*k).to_string())));
    s.push_str(r#"<ul class="totals">"#);
    for (value, what) in totals {
        let _ = write!(s, "<li><b>{}</b><span>{}</span></li>", esc(&value), esc(&what));
    }
    s.push_str("</ul>");
    if !run.complete {
        s.push_str(r#"<p class="note">This report is incomplete: the run was still going, or its sandpen died (<code>sandpen gc</code> completes it).</p>"#);
    }
    match run.cancel_reason {
        Some(why) => {
            let _ = write!(s, r#"<p class="note">{}.</p>"#, esc(why.describe()));
        }
        None if run.cancelled => s.push_str(r#"<p class="note">The run was interrupted.</p>"#),
        None => {}
    }
    for f in &run.cleanup_failures {
        let _ = write!(s, r#"<p class="note">Cleanup: {}</p>"#, esc(f));
    }
}
