//! The runs of a repository as they stand, for `sandpen ps` and `sandpen logs`: found where
//! they live (`workspace::RunsHome`), their owner judged as `gc` judges it (`gc::judge`: the
//! lease, else the containers' owner label), and described from whatever exists so far: the
//! manifest, the report (partial while the run goes on), the logs, the engine's containers.

pub mod complete;
pub mod control;
mod follow;
pub mod results;
mod status;

pub use follow::follow;
pub use status::{RunSummary, RunView, TaskState, TaskView, describe, task_state};

use std::path::PathBuf;

use crate::exit::{self, HasExitCode};
use crate::manifest::Manifest;
use crate::runner::RunReport;
use crate::workspace::{RunDir, RunsHome};

/// How many known names an error lists before it says how many more there are.
const LISTED: usize = 10;

#[derive(Debug, thiserror::Error)]
pub enum RunsError {
    #[error("no runs in {}\nfix: start one with `sandpen run TASKS`, or pass --repo DIR of a repository that has runs", dir.display())]
    NoRuns { dir: PathBuf },

    #[error("no run {run} in {}\nfix: pass one of its runs (`sandpen ps` lists them): {}", dir.display(), listing(known))]
    UnknownRun {
        run: String,
        dir: PathBuf,
        known: Vec<String>,
    },

    #[error("{prefix} begins several runs: {}\nfix: pass more of the run id", matching.join(", "))]
    AmbiguousRun { prefix: String, matching: Vec<String> },

    #[error(
        "run {run} has no task {task}\nfix: {}pass one of its tasks (`sandpen ps {run}` lists them): {}",
        elsewhere.as_ref().map(|r| format!("it is a task of run {r}: name that run first (e.g. `sandpen logs {r} {task}`); or ")).unwrap_or_default(),
        listing(known)
    )]
    UnknownTask {
        run: String,
        task: String,
        known: Vec<String>,
        /// The latest other run beside it that has the task.
        elsewhere: Option<String>,
    },

    #[error("reading {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
}

impl HasExitCode for RunsError {
    fn exit_code(&self) -> i32 {
        match self {
            Self::Read { .. } => exit::FAILURE,
            _ => exit::INVALID_INPUT,
        }
    }
}

/// The newest names last, as `ps` lists them; long lists keep their newest.
fn listing(known: &[String]) -> String {
    if known.is_empty() {
        return "(none)".into();
    }
    let skip = known.len().saturating_sub(LISTED);
    let mut s = known[skip..].join(", ");
    if skip > 0 {
        s = format!("{s} (and {skip} older)");
    }
    s
}

/// The run directories of the repository, oldest first.
pub fn runs(home: &RunsHome) -> Vec<RunDir> {
    home.runs().into_iter().map(RunDir::new).collect()
}

/// The run directory's name: its run id.
pub fn run_id(layout: &RunDir) -> String {
    layout
        .root
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The run `id`, or the latest run when None.
pub fn find_run(home: &RunsHome, id: Option<&str>) -> Result<RunDir, RunsError> {
    let all = runs(home);
    let dir = home.dir();
    let Some(id) = id else {
        return all.into_iter().last().ok_or(RunsError::NoRuns { dir });
    };
    if let Some(found) = all.iter().find(|r| run_id(r) == id) {
        return Ok(found.clone());
    }
    if all.is_empty() {
        return Err(RunsError::NoRuns { dir });
    }
    Err(RunsError::UnknownRun {
        run: id.to_string(),
        dir,
        known: all.iter().map(run_id).collect(),
    })
}

/// As `find_run`, and a unique beginning of a run id names it too, or a unique end (its last
/// four characters, `3f2a`, are what tells runs of the same second apart). Every command that
/// reads or stops a run takes these; commands that remove things take whole ids only.
pub fn find_run_by_prefix(home: &RunsHome, id: Option<&str>) -> Result<RunDir, RunsError> {
    let found = find_run(home, id);
    let (Some(id), Err(RunsError::UnknownRun { known, .. })) = (id, &found) else {
        return found;
    };
    let by = |m: fn(&str, &str) -> bool| -> Vec<&String> {
        known.iter().filter(|r| !id.is_empty() && m(r, id)).collect()
    };
    let mut matching = by(|r, id| r.starts_with(id));
    if matching.is_empty() {
        matching = by(|r, id| r.ends_with(id));
    }
    match matching.as_slice() {
        [one] => find_run(home, Some(one.as_str())),
        [_, _, ..] => Err(RunsError::AmbiguousRun {
            prefix: id.to_string(),
            matching: matching.into_iter().cloned().collect(),
        }),
        [] => found,
    }
}

/// The task ids of a run: the manifest's (written before the first task starts), else the
/// report's, else the logs in the directory (a run of an older sandpen).
pub fn task_ids(layout: &RunDir) -> Vec<String> {
    if let Ok(m) = Manifest::read(&layout.manifest()) {
        return m.tasks.into_iter().map(|t| t.id).collect();
    }
    if let Some(r) = read_report(layout) {
        return r.tasks.into_iter().map(|t| t.id).collect();
    }
    let mut ids: Vec<String> = std::fs::read_dir(&layout.root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let id = name.strip_suffix(".log")?;
            (!id.ends_with(".stderr") && id != "gateway").then(|| id.to_string())
        })
        .collect();
    ids.sort();
    ids
}

/// Checks that the run has task `task`.
pub fn find_task(layout: &RunDir, task: &str) -> Result<(), RunsError> {
    let known = task_ids(layout);
    if known.iter().any(|t| t == task) {
        return Ok(());
    }
    Err(RunsError::UnknownTask {
        run: run_id(layout),
        task: task.to_string(),
        known,
        elsewhere: other_run_with(layout, task),
    })
}

/// The latest run beside `layout` (in the same directory of runs) that has task `task`.
fn other_run_with(layout: &RunDir, task: &str) -> Option<String> {
    let parent = layout.root.parent()?;
    let mut ids: Vec<PathBuf> = std::fs::read_dir(parent)
        .ok()?
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .filter(|p| *p != layout.root)
        .collect();
    ids.sort();
    ids.into_iter()
        .rev()
        .map(RunDir::new)
        .find(|r| task_ids(r).iter().any(|t| t == task))
        .map(|r| run_id(&r))
}

/// The report as far as it goes; None before the run wrote one (or if it cannot be read).
pub fn read_report(layout: &RunDir) -> Option<RunReport> {
    let bytes = std::fs::read(layout.report()).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Whether task `task` has ended: its entry is in the report (and not left for `gc`).
pub fn task_ended(layout: &RunDir, task: &str) -> bool {
    read_report(layout).is_some_and(|r| r.tasks.iter().any(|t| t.id == task && !t.left_for_gc))
}

/// Whether the run's sandpen lives, judged by its lease as `gc` judges it.
pub fn owner_alive(layout: &RunDir) -> bool {
    let run = crate::gc::RunOnEngine {
        run_id: run_id(layout),
        run_dir: Some(layout.root.clone()),
        containers: Vec::new(),
    };
    crate::gc::judge(&run) == crate::owner::OwnerState::Alive
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_are_found_by_id_or_latest_and_unknown_ones_are_named() {
        let repo = tempfile::tempdir().unwrap();
        let root = &RunsHome::new(&repo.path().join(".git"), repo.path());
        let err = find_run(root, None).unwrap_err();
        assert!(matches!(err, RunsError::NoRuns { .. }));
        assert_eq!(err.exit_code(), exit::INVALID_INPUT);
        for id in ["20260101-100000-aaaa", "20260102-100000-bbbb"] {
            std::fs::create_dir_all(root.dir().join(id)).unwrap();
        }
        assert_eq!(run_id(&find_run(root, None).unwrap()), "20260102-100000-bbbb");
        assert_eq!(
            run_id(&find_run(root, Some("20260101-100000-aaaa")).unwrap()),
            "20260101-100000-aaaa"
        );
        assert!(find_run(root, Some("20260101")).is_err(), "whole ids only");
        assert_eq!(
            run_id(&find_run_by_prefix(root, Some("20260101")).unwrap()),
            "20260101-100000-aaaa"
        );
        let err = find_run_by_prefix(root, Some("2026010")).unwrap_err().to_string();
        assert!(err.contains("begins several runs"), "{err}");
        let err = find_run(root, Some("nope")).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("no run nope"), "{text}");
        assert!(
            text.contains("20260101-100000-aaaa, 20260102-100000-bbbb"),
            "{text}"
        );
        assert_eq!(err.exit_code(), exit::INVALID_INPUT);
    }

    #[test]
    fn tasks_come_from_the_logs_without_a_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let layout = RunDir::new(dir.path());
        for f in ["b.log", "b.stderr.log", "a.log", "gateway.log", "report.json"] {
            std::fs::write(dir.path().join(f), "").unwrap();
        }
        assert_eq!(task_ids(&layout), ["a", "b"]);
        assert!(find_task(&layout, "a").is_ok());
        let err = find_task(&layout, "c").unwrap_err().to_string();
        assert!(err.contains("has no task c") && err.contains("a, b"), "{err}");
    }

    #[test]
    fn long_listings_keep_the_newest() {
        let known: Vec<String> = (0..15).map(|i| format!("r{i:02}")).collect();
        let s = listing(&known);
        assert!(s.starts_with("r05, ") && s.ends_with("r14 (and 5 older)"), "{s}");
    }
}
