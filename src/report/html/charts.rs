//! CPU and memory over time for one task, from its stats samples: two small line charts,
//! time since the container started on x.

use std::fmt::Write;

use super::escape::esc;
use super::scale::{self, Scale, epoch};
use crate::monitor::StatsPoint;
use crate::runner::TaskResult;

const W: f64 = 480.0;
const H: f64 = 150.0;
const LEFT: f64 = 62.0;
const RIGHT: f64 = 10.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 22.0;
/// Up to this many samples each also gets a dot (a single sample is no line).
const DOTS: usize = 120;

/// The task's two charts, or a line saying it has no samples.
pub fn task_charts(t: &TaskResult, points: &[StatsPoint]) -> String {
    let id = esc(&t.id);
    let mut s = format!(r#"<section class="task-stats" data-task="{id}"><h3>{id}</h3>"#);
    if points.is_empty() {
        let why = match t.started_at {
            Some(_) => "its container ended before a sample was taken, or its stats log is missing",
            None => "it never ran in a container",
        };
        let _ = write!(
            s,
            r#"<p class="no-samples">No CPU or memory samples for this task: {why}.</p></section>"#
        );
        return s;
    }
    let cpu_peak = points.iter().filter_map(|p| p.cpu_percent).fold(0.0, f64::max);
    let mem_peak = points.iter().map(|p| p.memory_bytes).max().unwrap_or(0);
    let limit = points.iter().map(|p| p.memory_limit).max().unwrap_or(0);
    let ran = match (epoch(t.started_at.as_deref()), epoch(t.finished_at.as_deref())) {
        (Some(a), Some(b)) => b - a,
        _ => 0.0,
    };
    let last = points.iter().map(|p| p.t).fold(ran, f64::max);
    let mut caption = format!(
        "{} samples · peak memory {}",
        points.len(),
        scale::bytes(mem_peak as f64)
    );
    if limit > 0 {
        let _ = write!(caption, " (limit {})", scale::bytes(limit as f64));
    }
    // The report's figures, or (a report without them) the samples'.
    let cpus: Vec<f64> = points.iter().filter_map(|p| p.cpu_percent).collect();
    let from_samples = (!cpus.is_empty()).then(|| cpus.iter().sum::<f64>() / cpus.len() as f64);
    let mean = t.mean_cpu_percent.or(from_samples);
    let peak = t.peak_cpu_percent.or(from_samples.map(|_| cpu_peak));
    match (mean, peak) {
        (Some(m), Some(p)) => {
            let _ = write!(caption, " · CPU mean {m:.1}%, peak {p:.1}% (100% = one CPU)");
        }
        _ => caption.push_str(" · no CPU figure (one sample is no interval)"),
    }
    let _ = write!(
        s,
        r#"<p class="caption">{}</p><div class="charts">"#,
        esc(&caption)
    );
    let cpu: Vec<(f64, f64)> = points
        .iter()
        .filter_map(|p| Some((p.t, p.cpu_percent?)))
        .collect();
    let mem: Vec<(f64, f64)> = points.iter().map(|p| (p.t, p.memory_bytes as f64)).collect();
    let cpu_ticks = scale::ticks(cpu_peak.max(10.0), 4);
    s.push_str(&chart(
        "cpu",
        &id,
        "CPU, % of one CPU",
        &cpu,
        last,
        cpu_ticks,
        |v| format!("{v:.0}%"),
    ));
    let mem_ticks = scale::byte_ticks(mem_peak as f64, 4);
    s.push_str(&chart("mem", &id, "memory", &mem, last, mem_ticks, scale::bytes));
    s.push_str("</div></section>");
    s
}

/// One line chart: `class` names the series (`cpu`, `mem`) for the stylesheet and the tests.
fn chart(
    class: &str,
    id: &str,
    title: &str,
    series: &[(f64, f64)],
    x_max: f64,
    (y_top, y_ticks): (f64, Vec<f64>),
    label: impl Fn(f64) -> String,
) -> String {
    let (x_top, x_ticks) = scale::ticks(x_max, 6);
    let x = Scale::new((0.0, x_top), (LEFT, W - RIGHT));
    let y = Scale::new((0.0, y_top), (H - BOTTOM, TOP));
    let mut s = format!(
        r#"<svg class="chart {class}" viewBox="0 0 {W} {H}" role="img" aria-label="{title} of {id}"><title>{title} of {id}</title>"#
    );
    for v in &y_ticks {
        let py = y.at(*v);
        let _ = write!(
            s,
            r#"<line class="grid" x1="{LEFT}" x2="{}" y1="{py:.1}" y2="{py:.1}"/><text class="tick" x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
            W - RIGHT,
            LEFT - 4.0,
            py + 4.0,
            esc(&label(*v))
        );
    }
    for v in &x_ticks {
        let _ = write!(
            s,
            r#"<text class="tick" x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
            x.at(*v),
            H - 6.0,
            scale::tick_secs(*v)
        );
    }
    if series.is_empty() {
        let _ = write!(
            s,
            r#"<text class="empty" x="{}" y="{}">no figure</text>"#,
            LEFT + 10.0,
            H / 2.0
        );
    } else {
        let pts: Vec<String> = series
            .iter()
            .map(|(t, v)| format!("{:.1},{:.1}", x.at(*t), y.at(*v)))
            .collect();
        let _ = write!(
            s,
            r#"<polyline class="{class}" data-task="{id}" points="{}"/>"#,
            pts.join(" ")
        );
        if series.len() <= DOTS {
            for (t, v) in series {
                let _ = write!(
                    s,
                    r#"<circle class="{class}-dot" cx="{:.1}" cy="{:.1}" r="2.5"><title>{}: {}</title></circle>"#,
                    x.at(*t),
                    y.at(*v),
                    scale::tick_secs((t * 100.0).round() / 100.0),
                    esc(&label(*v))
                );
            }
        }
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::spec::Limits;

    fn point(t: f64, cpu: Option<f64>, mem: u64) -> StatsPoint {
        StatsPoint {
            t,
            at: String::new(),
            cpu_percent: cpu,
            memory_bytes: mem,
            memory_limit: 1 << 30,
            pids: Some(1),
        }
    }

    fn task(id: &str) -> TaskResult {
        let limits = Limits {
            nano_cpus: 1_000_000_000,
            memory_bytes: 1 << 30,
            pids: 64,
        };
        TaskResult::new(id, "img", limits)
    }

    #[test]
    fn samples_become_a_line_per_series_with_the_peak_at_the_top() {
        let mut t = task("two<s>");
        t.started_at = Some("2026-01-01T00:00:00Z".into());
        t.mean_cpu_percent = Some(25.0);
        t.peak_cpu_percent = Some(40.0);
        let pts = [
            point(0.0, None, 1 << 20),
            point(0.25, Some(40.0), 3 << 20),
            point(1.0, Some(10.0), 2 << 20),
        ];
        let html = task_charts(&t, &pts);
        assert_eq!(html.matches(r#"<polyline class="cpu""#).count(), 1, "{html}");
        assert_eq!(html.matches(r#"<polyline class="mem""#).count(), 1, "{html}");
        assert_eq!(
            html.matches("cpu-dot").count(),
            2,
            "CPU only where it has a figure"
        );
        assert!(
            html.contains("two&lt;s&gt;") && !html.contains("two<s>"),
            "{html}"
        );
        assert!(html.contains("peak memory 3.0 MiB (limit 1.0 GiB)"), "{html}");
        // Memory ticks are in binary units, and the peak is the top one.
        assert!(html.contains(">3.0 MiB</text>"), "{html}");
    }

    #[test]
    fn a_task_without_samples_says_so() {
        let html = task_charts(&task("never"), &[]);
        assert!(html.contains("never ran in a container"), "{html}");
        assert!(!html.contains("<svg"), "{html}");
        let mut ran = task("short");
        ran.started_at = Some("2026-01-01T00:00:00Z".into());
        assert!(task_charts(&ran, &[]).contains("ended before a sample"));
    }
}
