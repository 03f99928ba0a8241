//! What a run writes and shows besides the engine's work: report.json (and `--report`'s copy),
//! JUnit, HTML, NDJSON or the live view, as consumers of the run's events; and, once the
//! display has finished, what could not be written and where the rest went.

use std::path::{Path, PathBuf};
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
    /// True when a file could not be written: the run then fails (exit 1) rather than lose it.
    pub fn say(&self, layout: &RunDir) -> bool {
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
        let cwd = std::env::current_dir().ok();
        let shown = |p: &Path| near(p, cwd.as_deref()).display().to_string();
        note(&format!("report: {}", shown(&layout.report())));
        for (label, path, errors) in self.files.iter().skip(1) {
            if errors.lock().unwrap().is_empty() {
                note(&format!("{label}{}", shown(path)));
            }
        }
        note(&format!("logs:   {}", shown(&layout.root.join("<task>.log"))));
        !said.is_empty()
    }
}

/// `path` relative to the working directory when it lies under it (the run's files are under
/// the repository's git directory, where the user usually stands), so the lines fit 80
/// columns; as given otherwise.
fn near<'a>(path: &'a Path, cwd: Option<&Path>) -> &'a Path {
    match cwd.and_then(|c| path.strip_prefix(c).ok()) {
        Some(rel) if !rel.as_os_str().is_empty() => rel,
        _ => path,
    }
}

#[cfg(test)]
mod tests {
    use super::near;
    use std::path::Path;

    #[test]
    fn paths_under_the_working_directory_are_shown_relative() {
        let cwd = Some(Path::new("/home/u/repo"));
        let inside = Path::new("/home/u/repo/.git/sandpen/runs/r1/report.json");
        assert_eq!(near(inside, cwd), Path::new(".git/sandpen/runs/r1/report.json"));
        let outside = Path::new("/tmp/out/report.json");
        assert_eq!(near(outside, cwd), outside);
        // A sibling whose name merely starts with the same text is not under it.
        let sibling = Path::new("/home/u/repo2/x.json");
        assert_eq!(near(sibling, cwd), sibling);
        assert_eq!(near(inside, None), inside);
    }
}
