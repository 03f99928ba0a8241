//! Writes report.json into the run directory (and to --report FILE): when the run starts, as
//! tasks end, and when the run ends, so it describes the run as far as it has gone (a crash or
//! a SIGKILL leaves the last state written). Each write is atomic. A write is the whole report,
//! so one per task would cost O(n²) for n tasks (500 trivial tasks: 290 MB written, 3 s); tasks
//! that end within `BATCH` of the last write are written together, at most `BATCH` later.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::Consumer;
use crate::atomic_file::write_atomically;
use crate::runner::{Event, RunReport};

/// The most often report.json is rewritten as tasks end.
pub const BATCH: Duration = Duration::from_millis(250);

pub struct ReportWriter {
    paths: Vec<PathBuf>,
    report: Option<RunReport>,
    /// Tasks have ended since the last write.
    dirty: bool,
    last_write: Option<Instant>,
    /// Problems writing, for the command to show after the display has finished.
    pub errors: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl ReportWriter {
    pub fn new(paths: Vec<PathBuf>) -> Self {
        Self {
            paths,
            report: None,
            dirty: false,
            last_write: None,
            errors: Default::default(),
        }
    }

    /// Writes what is new, unless the last write was less than `BATCH` ago.
    fn catch_up(&mut self) {
        if self.dirty && self.last_write.is_none_or(|t| t.elapsed() >= BATCH) {
            self.write();
        }
    }

    fn write(&mut self) {
        self.dirty = false;
        self.last_write = Some(Instant::now());
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
                self.dirty = true;
                return self.catch_up();
            }
            Event::Environment { env } => {
                if let Some(r) = self.report.as_mut() {
                    r.environment = Some(env.clone());
                }
            }
            Event::RunCancelling { .. } => {
                if let Some(r) = self.report.as_mut() {
                    r.cancelled = true;
                }
            }
            Event::RunFinished { report } => self.report = Some((**report).clone()),
            _ => return self.catch_up(),
        }
        self.write();
    }

    fn tick(&mut self) {
        self.catch_up();
    }

    fn finish(&mut self) {
        if self.dirty {
            self.write();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::spec::Limits;
    use crate::runner::TaskResult;
    use std::path::Path;

    fn tasks_in(path: &Path) -> usize {
        let r: RunReport = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        r.tasks.len()
    }

    fn ended(w: &mut ReportWriter, i: usize) {
        let limits = Limits {
            nano_cpus: 1,
            memory_bytes: 1 << 30,
            pids: 1,
        };
        let result = TaskResult::new(&format!("t{i}"), "i", limits);
        w.on_event(&Event::TaskFinished {
            task: result.id.clone(),
            result: Box::new(result),
        });
    }

    #[test]
    fn tasks_that_end_together_are_written_together_and_none_is_lost() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("report.json");
        let mut w = ReportWriter::new(vec![path.clone()]);
        let started = Instant::now();
        w.on_event(&Event::RunStarted {
            run_id: "r".into(),
            repo: "/r".into(),
            image: "i".into(),
            jobs: 1,
            tasks: Vec::new(),
            at: "now".into(),
        });
        assert_eq!(tasks_in(&path), 0, "written when the run starts");
        for i in 0..100 {
            ended(&mut w, i);
        }
        if started.elapsed() < BATCH {
            assert_eq!(tasks_in(&path), 0, "not rewritten for each task");
        }
        std::thread::sleep(BATCH);
        w.tick();
        assert_eq!(
            tasks_in(&path),
            100,
            "a quiet moment after BATCH writes what waited"
        );
        ended(&mut w, 100);
        w.finish();
        assert_eq!(tasks_in(&path), 101, "the end writes what is left");
        assert!(w.errors.lock().unwrap().is_empty());
    }
}
