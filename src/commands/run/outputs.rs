//! What a run writes and shows besides the engine's work: report.json (and `--report`'s copy),
//! JUnit, HTML, NDJSON or the live view, as consumers of the run's events; and, once the
//! display has finished, what could not be written and where the rest went.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use super::{RunOptions, note, warn};
use crate::report::{Consumer, HtmlWriter, JunitWriter, LiveView, Ndjson, ReportWriter};
use crate::workspace::RunDir;

type Errors = Arc<Mutex<Vec<String>>>;

/// The run's consumers, and the files they write with the errors each met.
pub(super) struct Outputs {
    pub consumers: Vec<Box<dyn Consumer>>,
    /// Each file as named at the end, with its writer's errors (none: it was written).
    files: Vec<(&'static str, PathBuf, Errors)>,
}

impl Outputs {
    pub fn new(opts: &RunOptions, layout: &RunDir) -> Self {
        let mut report_paths = vec![layout.report()];
        report_paths.extend(opts.report.clone());
        let writer = ReportWriter::new(report_paths.clone());
        let mut files: Vec<_> = report_paths
            .into_iter()
            .map(|p| ("report: ", p, writer.errors.clone()))
            .collect();
        let mut consumers: Vec<Box<dyn Consumer>> = vec![Box::new(writer)];
        if let Some(path) = &opts.junit {
            let junit = JunitWriter::new(path.clone());
            files.push(("junit: ", path.clone(), junit.errors.clone()));
            consumers.push(Box::new(junit));
        }
        if let Some(path) = &opts.html {
            let html = HtmlWriter::new(path.clone());
            files.push(("html:  ", path.clone(), html.errors.clone()));
            consumers.push(Box::new(html));
        }
        if opts.json {
            consumers.push(Box::new(Ndjson));
        } else {
            consumers.push(Box::new(LiveView::new(false, opts.color)));
        }
        Self { consumers, files }
    }

    /// The files' places and handles, without the consumers (which go to the display).
    pub fn split(self) -> (Vec<Box<dyn Consumer>>, Written) {
        (self.consumers, Written { files: self.files })
    }
}

/// The files of a run, to be named once the display has finished.
pub(super) struct Written {
    files: Vec<(&'static str, PathBuf, Errors)>,
}

impl Written {
    /// What could not be written (each error once), then where the files and the logs are.
    pub fn say(&self, layout: &RunDir) {
        let mut said: Vec<String> = Vec::new();
        for (_, _, errors) in &self.files {
            for e in errors.lock().unwrap().iter() {
                if !said.contains(e) {
                    warn(e);
                    said.push(e.clone());
                }
            }
        }
        // The run's own report.json is named even when it failed: the warning says why.
        note(&format!("report: {}", layout.report().display()));
        for (label, path, errors) in self.files.iter().skip(1) {
            if errors.lock().unwrap().is_empty() {
                note(&format!("{label}{}", path.display()));
            }
        }
        note(&format!("logs:   {}/<task>.log", layout.root.display()));
    }
}
