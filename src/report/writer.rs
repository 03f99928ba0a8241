//! Writes report.json into the run directory (and to --report FILE) when the run ends.

use std::path::PathBuf;

use super::Consumer;
use crate::runner::Event;

pub struct ReportWriter {
    paths: Vec<PathBuf>,
    /// Problems writing, for the command to show after the display has finished.
    pub errors: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl ReportWriter {
    pub fn new(paths: Vec<PathBuf>) -> Self {
        Self {
            paths,
            errors: Default::default(),
        }
    }
}

impl Consumer for ReportWriter {
    fn on_event(&mut self, event: &Event) {
        let Event::RunFinished { report } = event else {
            return;
        };
        let json = match serde_json::to_vec_pretty(report) {
            Ok(j) => j,
            Err(e) => {
                return self
                    .errors
                    .lock()
                    .unwrap()
                    .push(format!("serialising the report: {e}"));
            }
        };
        for path in &self.paths {
            if let Err(e) = std::fs::write(path, &json) {
                self.errors
                    .lock()
                    .unwrap()
                    .push(format!("writing {}: {e}", path.display()));
            }
        }
    }
}
