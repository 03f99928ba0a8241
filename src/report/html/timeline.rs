//! The run as a timeline: one row per task, from when it could start (queued, waiting for a
//! slot) through its checkout, its container and the collection of its work. Rows that
//! overlap are the parallelism.

use std::fmt::Write;

use super::escape::esc;
use super::scale::{self, Scale, epoch};
use crate::runner::{RunReport, TaskResult};

const WIDTH: f64 = 1000.0;
const LABEL: f64 = 190.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 26.0;
const ROW: f64 = 26.0;
const BAR: f64 = 16.0;

/// One stretch of a task's life, in seconds since the run started.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    /// `queued`, `prepare`, `run` or `collect`: the bar's CSS class.
    pub kind: &'static str,
    pub from: f64,
    pub to: f64,
}

/// A task's stretches. Reports written before the times were recorded lack `queued_at`,
/// `began_at` and `ended_at`: those are estimated from the container's times and `timings`.
pub fn segments(t: &TaskResult, origin: f64) -> Vec<Segment> {
    let at = |s: &Option<String>| epoch(s.as_deref()).map(|v| v - origin);
    let (start, finish) = (at(&t.started_at), at(&t.finished_at));
    let began = at(&t.began_at).or(start.map(|s| s - t.timings.checkout_s));
    let Some(began) = began else {
        return Vec::new();
    };
    let ended = at(&t.ended_at)
        .or(finish.map(|f| f + t.timings.collect_s))
        .unwrap_or(began + t.duration_s);
    let queued = at(&t.queued_at).unwrap_or(0.0).min(began);
    let mut out = Vec::new();
    let mut push = |kind, from: f64, to: f64| {
        if to > from {
            out.push(Segment { kind, from, to });
        }
    };
    push("queued", queued, began);
    match (start, finish) {
        (Some(s), Some(f)) => {
            push("prepare", began, s);
            push("run", s, f);
            push("collect", f, ended);
        }
        _ => push("prepare", began, ended),
    }
    out
}

/// The timeline as inline SVG.
pub fn svg(run: &RunReport) -> String {
    let origin = epoch(Some(&run.started_at)).unwrap_or(0.0);
    let rows: Vec<(&TaskResult, Vec<Segment>)> = run.tasks.iter().map(|t| (t, segments(t, origin))).collect();
    let end = rows
        .iter()
        .flat_map(|(_, s)| s.iter().map(|s| s.to))
        .fold(run.wall_s, f64::max);
    let (top, ticks) = scale::ticks(end, 8);
    let x = Scale::new((0.0, top), (LABEL, WIDTH - RIGHT));
    let height = TOP + ROW * rows.len().max(1) as f64 + 8.0;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="timeline" viewBox="0 0 {WIDTH} {height}" width="100%" role="img" aria-label="timeline of the tasks">"#
    );
    for t in &ticks {
        let px = x.at(*t);
        let _ = write!(
            s,
            r#"<line class="grid" x1="{px:.1}" x2="{px:.1}" y1="{}" y2="{height}"/><text class="tick" x="{px:.1}" y="14" text-anchor="middle">{}</text>"#,
            TOP - 6.0,
            scale::tick_secs(*t)
        );
    }
    if rows.is_empty() {
        let _ = write!(
            s,
            r#"<text class="empty" x="{LABEL}" y="{}">no tasks</text>"#,
            TOP + 16.0
        );
    }
    for (i, (t, segs)) in rows.iter().enumerate() {
        let y = TOP + ROW * i as f64;
        let id = esc(&t.id);
        let short: String = t.id.chars().take(26).collect();
        let ellipsis = if t.id.chars().count() > 26 { "…" } else { "" };
        let _ = write!(
            s,
            r#"<text class="label" x="{}" y="{:.1}" text-anchor="end"><title>{id}</title>{}{ellipsis}</text>"#,
            LABEL - 8.0,
            y + BAR - 3.0,
            esc(&short)
        );
        if segs.is_empty() {
            let _ = write!(
                s,
                r#"<text class="not-run" x="{}" y="{:.1}">{}: not started</text>"#,
                LABEL + 4.0,
                y + BAR - 3.0,
                t.status.as_str()
            );
        }
        for seg in segs {
            let (x0, x1) = (x.at(seg.from), x.at(seg.to));
            let status = match seg.kind {
                "run" => format!(" st-{}", t.status.as_str()),
                _ => String::new(),
            };
            let _ = write!(
                s,
                r#"<rect class="bar {}{status}" data-task="{id}" x="{x0:.1}" y="{y:.1}" width="{:.1}" height="{BAR}"><title>{id}: {} {} → {} ({})</title></rect>"#,
                seg.kind,
                (x1 - x0).max(1.0),
                seg.kind,
                scale::tick_secs((seg.from * 10.0).round() / 10.0),
                scale::tick_secs((seg.to * 10.0).round() / 10.0),
                scale::secs(seg.to - seg.from),
            );
        }
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::spec::Limits;
    use crate::runner::TaskStatus;

    fn task(id: &str) -> TaskResult {
        let limits = Limits {
            nano_cpus: 1_000_000_000,
            memory_bytes: 1 << 30,
            pids: 64,
        };
        TaskResult::new(id, "img", limits)
    }

    #[test]
    fn a_task_has_its_four_stretches_in_order() {
        let mut t = task("a");
        t.queued_at = Some("2026-01-01T00:00:00Z".into());
        t.began_at = Some("2026-01-01T00:00:01Z".into());
        t.started_at = Some("2026-01-01T00:00:02Z".into());
        t.finished_at = Some("2026-01-01T00:00:05Z".into());
        t.ended_at = Some("2026-01-01T00:00:06Z".into());
        let origin = epoch(Some("2026-01-01T00:00:00Z")).unwrap();
        let kinds: Vec<_> = segments(&t, origin)
            .iter()
            .map(|s| (s.kind, s.from, s.to))
            .collect();
        assert_eq!(
            kinds,
            vec![
                ("queued", 0.0, 1.0),
                ("prepare", 1.0, 2.0),
                ("run", 2.0, 5.0),
                ("collect", 5.0, 6.0)
            ]
        );
    }

    #[test]
    fn an_old_report_is_estimated_and_a_skipped_task_has_no_bar() {
        let mut t = task("old");
        t.started_at = Some("2026-01-01T00:00:02Z".into());
        t.finished_at = Some("2026-01-01T00:00:04Z".into());
        t.timings.checkout_s = 0.5;
        t.timings.collect_s = 1.0;
        let origin = epoch(Some("2026-01-01T00:00:00Z")).unwrap();
        let s = segments(&t, origin);
        assert_eq!(s.first().map(|s| (s.kind, s.to)), Some(("queued", 1.5)));
        assert_eq!(s.last().map(|s| (s.kind, s.to)), Some(("collect", 5.0)));
        let mut skipped = task("later");
        skipped.status = TaskStatus::Skipped;
        assert!(segments(&skipped, origin).is_empty());
        let mut run = RunReport::started("r", "/repo", "img", 1, "2026-01-01T00:00:00Z");
        run.tasks = vec![t, skipped];
        let svg = svg(&run);
        assert!(svg.contains("skipped: not started"), "{svg}");
        assert_eq!(svg.matches(r#"class="bar run st-error""#).count(), 1, "{svg}");
    }
}
