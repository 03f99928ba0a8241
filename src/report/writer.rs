//! Writes report.json into the run directory (and to --report FILE): when the run starts, again
//! as each task ends, and when the run ends, so it always describes the run as far as it has
//! gone (a crash or a SIGKILL leaves the last complete state). Each write is atomic.

use std::path::{Path, PathBuf};

use super::Consumer;
use crate::runner::{Event, RunReport};

pub struct ReportWriter {
    paths: Vec<PathBuf>,
    report: Option<RunReport>,
    /// Problems writing, for the command to show after the display has finished.
    pub errors: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl ReportWriter {
    pub fn new(paths: Vec<PathBuf>) -> Self {
        Self {
            paths,
            report: None,
            errors: Default::default(),
        }
    }

    fn write(&self) {
        let Some(report) = &self.report else { return };
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
            if let Err(e) = write_atomically(path, &json) {
                self.errors
                    .lock()
                    .unwrap()
                    .push(format!("writing {}: {e}", path.display()));
            }
        }
    }
}

impl Consumer for ReportWriter {
    fn on_event(&mut self, event: &Event) {
        match event {
            Event::RunStarted {
                run_id,
                repo,
                image,
                jobs,
                at,
                ..
            } => self.report = Some(RunReport::started(run_id, repo, image, *jobs, at)),
            Event::TaskFinished { result, .. } => {
                let Some(r) = self.report.as_mut() else { return };
                r.tasks.retain(|t| t.id != result.id);
                r.tasks.push((**result).clone());
            }
            Event::RunCancelling { .. } => {
                if let Some(r) = self.report.as_mut() {
                    r.cancelled = true;
                }
            }
            Event::RunFinished { report } => self.report = Some((**report).clone()),
            _ => return,
        }
        self.write();
    }
}

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename: a
/// reader sees the old file or the new one, never half of one.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_data()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}
