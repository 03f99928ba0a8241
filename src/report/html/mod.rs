//! `--html FILE` and `sandpen report RUN --html FILE`: a run as one self-contained HTML page
//! (inline CSS and SVG, no script, nothing fetched): the totals, a timeline of the tasks,
//! CPU and memory over time from the stats logs, and a table of the tasks. Every string from
//! the report is escaped (`escape`): task ids and messages are not sandpen's.

mod charts;
mod escape;
mod page;
mod samples;
pub(crate) mod scale;
mod table;
mod timeline;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

pub use page::render;
pub use samples::{Samples, load as load_samples};

use super::Consumer;
use crate::atomic_file::write_atomically;
use crate::runner::{Event, RunReport};
use crate::workspace::RunDir;

/// Renders `run` with the samples of its stats logs (read from `dir` when given, else from the
/// report's paths) and writes it to `path`, atomically.
pub fn write(run: &RunReport, dir: Option<&RunDir>, path: &std::path::Path) -> std::io::Result<()> {
    let html = render(run, &load_samples(run, dir));
    write_atomically(path, html.as_bytes())
}

/// Writes the page when the run ends, like the JUnit writer.
pub struct HtmlWriter {
    path: PathBuf,
    /// A problem writing, for the command to show after the display has finished.
    pub errors: Arc<Mutex<Vec<String>>>,
}

impl HtmlWriter {
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            errors: Default::default(),
        }
    }
}

impl Consumer for HtmlWriter {
    fn on_event(&mut self, event: &Event) {
        let Event::RunFinished { report } = event else {
            return;
        };
        if let Err(e) = write(report, None, &self.path) {
            self.errors
                .lock()
                .unwrap()
                .push(format!("writing {}: {e}", self.path.display()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::spec::Limits;
    use crate::monitor::StatsPoint;
    use crate::runner::{TaskResult, TaskStatus};

    fn run_with(tasks: Vec<TaskResult>) -> RunReport {
        let mut run = RunReport::started("20260101-000000-abcd", "/repo", "img", 2, "2026-01-01T00:00:00Z");
        run.finished_at = "2026-01-01T00:00:10Z".into();
        run.wall_s = 10.0;
        run.complete = true;
        run.tasks = tasks;
        run
    }

    #[test]
    fn an_empty_run_renders_a_whole_page() {
        let html = render(&run_with(Vec::new()), &Samples::new());
        assert!(html.starts_with("<!DOCTYPE html>") && html.ends_with("</html>\n"));
        assert!(html.contains("no tasks"));
        assert_eq!(html.matches("<svg").count(), html.matches("</svg>").count());
    }

    #[test]
    fn nothing_external_and_nothing_unescaped() {
        let limits = Limits {
            nano_cpus: 1_000_000_000,
            memory_bytes: 1 << 30,
            pids: 64,
        };
        let evil = "x\"><script>alert(1)</script>";
        let mut t = TaskResult::new(evil, "img", limits);
        t.status = TaskStatus::Failed;
        t.began_at = Some("2026-01-01T00:00:00.5Z".into());
        t.started_at = Some("2026-01-01T00:00:01Z".into());
        t.finished_at = Some("2026-01-01T00:00:03Z".into());
        t.ended_at = Some("2026-01-01T00:00:04Z".into());
        t.message = Some("</td></tr></table><iframe src=//evil>".into());
        let mut run = run_with(vec![t]);
        run.repo = "/r<b>".into();
        let mut samples = Samples::new();
        let point = |t: f64| StatsPoint {
            t,
            at: String::new(),
            cpu_percent: Some(5.0),
            memory_bytes: 1 << 20,
            memory_limit: 1 << 30,
            pids: Some(1),
        };
        samples.insert(evil.to_string(), vec![point(0.0), point(1.0)]);
        let html = render(&run, &samples);
        for bad in ["<script", "<iframe", "http:", "https:", "@import", "url("] {
            assert!(!html.contains(bad), "{bad} in {html}");
        }
        assert!(html.contains("x&quot;&gt;&lt;script&gt;"), "{html}");
        assert!(html.contains("/r&lt;b&gt;"), "{html}");
        assert!(
            html.contains("CPU mean 5.0%, peak 5.0%"),
            "from the samples: {html}"
        );
        assert!(html.contains("<b>$0.0000</b>"), "{html}");
        assert!(html.contains(r#"class="bar run st-failed""#), "{html}");
        assert!(html.contains(r#"<polyline class="cpu""#), "{html}");
    }
}
