//! Which checkouts of a finished run can go (`sandpen prune`): those whose result is safely in
//! the user's repository. Judged from the run's report (what the collection brought back, and
//! the commit the checkout's HEAD held) and the refs of the user's repository, never by
//! reading the checkout: host git does not run in a task-controlled tree. Whether the run is
//! live or still has containers is the caller's to check first.

mod judge;

pub use judge::{Refs, Verdict, judge};

use std::path::PathBuf;
use std::time::SystemTime;

use crate::manifest::Manifest;
use crate::runs;
use crate::workspace::RunDir;

/// A task's checkout in the run directory, judged.
#[derive(Debug)]
pub struct Checkout {
    pub task: String,
    pub path: PathBuf,
    pub verdict: Verdict,
}

/// The checkouts the run directory holds, in the run's task order, each judged.
pub fn checkouts(layout: &RunDir, refs: &Refs) -> Vec<Checkout> {
    let base = Manifest::read(&layout.manifest()).ok().map(|m| m.base);
    let report = runs::read_report(layout);
    let tasks = runs::task_ids(layout);
    let internal = layout.internal();
    let mut dirs: Vec<(usize, String, PathBuf)> = std::fs::read_dir(&layout.root)
        .into_iter()
        .flatten()
        .flatten()
        // The entry's own type: a link is not a checkout.
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()) && e.path() != internal)
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let order = tasks.iter().position(|t| *t == name).unwrap_or(usize::MAX);
            (order, name, e.path())
        })
        .collect();
    dirs.sort();
    dirs.into_iter()
        .map(|(order, task, path)| {
            let verdict = if let Some((t, n)) = earlier_attempt(&task, &tasks) {
                // The report does not record what such a checkout left out: never judged gone.
                Verdict::Keep(format!(
                    "the checkout of attempt {n} of task {t} (a rerun's earlier attempt: prune keeps it; remove it by hand once you have looked)"
                ))
            } else if order == usize::MAX {
                Verdict::Keep("not the checkout of a task of the run".into())
            } else if let Some(report) = &report {
                judge(report.tasks.iter().find(|t| t.id == task), base.as_deref(), refs)
            } else {
                Verdict::Keep("the run has no report: nothing says what came back".into())
            };
            Checkout { task, path, verdict }
        })
        .collect()
}

/// `<task>.<n>`: the name of an earlier attempt's checkout (`RunDir::attempt_key`).
fn earlier_attempt<'a>(name: &'a str, tasks: &[String]) -> Option<(&'a str, u32)> {
    let (task, n) = name.rsplit_once('.')?;
    let n = n.parse().ok()?;
    tasks.iter().any(|t| t == task).then_some((task, n))
}

/// The commits the run's report says came back whose branch no longer holds them exactly:
/// whether some other branch has them decides whether their checkouts can go.
pub fn displaced(layout: &RunDir, refs: &Refs) -> Vec<String> {
    let Some(report) = runs::read_report(layout) else {
        return Vec::new();
    };
    let mut commits = Vec::new();
    for t in &report.tasks {
        let results = t.branch.iter().zip(t.head_commit.iter()).chain(
            t.branches
                .iter()
                .filter_map(|b| Some((&b.branch, b.tip.as_ref()?))),
        );
        for (branch, commit) in results {
            if !refs.holds(branch, commit) {
                commits.push(commit.clone());
            }
        }
    }
    commits
}

/// When the run ended, or, when its report does not say, when it started.
pub fn run_time(layout: &RunDir) -> Option<SystemTime> {
    let report = runs::read_report(layout);
    let stamp = report.as_ref().and_then(|r| {
        [&r.finished_at, &r.started_at]
            .into_iter()
            .find_map(|s| humantime::parse_rfc3339_weak(s).ok())
    });
    stamp.or_else(|| {
        // A run without a report: when its manifest (or directory) was made.
        [layout.manifest(), layout.root.clone()]
            .iter()
            .find_map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::spec::Limits;
    use crate::runner::{RunReport, TaskResult};

    #[test]
    fn each_checkout_is_judged_by_its_report_entry_and_strays_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let layout = RunDir::new(dir.path().join("20260101-100000-abcd"));
        std::fs::create_dir_all(layout.internal()).unwrap();
        for d in ["b", "a", "stray", "a.1"] {
            std::fs::create_dir(layout.checkout(d)).unwrap();
        }
        std::os::unix::fs::symlink(dir.path(), layout.checkout("link")).unwrap();
        let head = "2".repeat(40);
        let limits = Limits {
            nano_cpus: 0,
            memory_bytes: 0,
            pids: 0,
        };
        let mut report = RunReport::started("r", "/repo", "img", 1, "2026-01-01T10:00:00Z");
        for id in ["a", "b"] {
            report.tasks.push(TaskResult {
                branch: Some(format!("sandpen/{id}/r")),
                head_commit: Some(head.clone()),
                ..TaskResult::new(id, "img", limits)
            });
        }
        // No report yet: every checkout is kept.
        let refs = Refs::parse(&format!("{head} refs/heads/sandpen/a/r\n"));
        let all = checkouts(&layout, &refs);
        assert!(
            all.iter().all(|c| matches!(c.verdict, Verdict::Keep(_))),
            "{all:?}"
        );
        std::fs::write(layout.report(), serde_json::to_vec(&report).unwrap()).unwrap();
        let all = checkouts(&layout, &refs);
        // The report's order; the stray last; the link is not a checkout.
        let names: Vec<&str> = all.iter().map(|c| c.task.as_str()).collect();
        assert_eq!(names, ["a", "b", "a.1", "stray"]);
        assert_eq!(all[0].verdict, Verdict::Remove);
        assert_eq!(
            all[1].verdict,
            Verdict::Keep("branch sandpen/b/r was deleted".into())
        );
        assert!(matches!(&all[2].verdict, Verdict::Keep(w) if w.contains("attempt 1 of task a")));
        assert!(matches!(&all[3].verdict, Verdict::Keep(w) if w.contains("not the checkout")));
        // The run's end decides its age; its start when it has none.
        let ended = humantime::parse_rfc3339("2026-01-01T10:00:00Z").unwrap();
        assert_eq!(run_time(&layout), Some(ended));
    }
}
