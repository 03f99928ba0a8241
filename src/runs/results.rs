//! A run's results as `sandpen diff` and `sandpen merge` take them: which run and tasks the
//! arguments name, and each task's result branch and the commit it started from, as its report
//! entry says, in the run's order.

use crate::runner::{RunReport, TaskResult, TaskStatus};
use crate::workspace::{RunDir, RunsHome};

use super::{RunsError, find_run, find_run_by_prefix, find_task, run_id, task_ids};

/// One task of the run, with its result or why it has none.
#[derive(Debug, Clone, PartialEq)]
pub struct Pick {
    pub task: String,
    /// Its status; None while it has not ended.
    pub status: Option<TaskStatus>,
    pub result: Result<Branch, String>,
}

/// A result branch and the commit its task started from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Branch {
    pub name: String,
    /// None in a report of an older sandpen (the merge base with HEAD stands in).
    pub base: Option<String>,
}

/// The run and the tasks `args` name (`[RUN] [TASK...]`): the first argument is a run when it
/// is one (or a unique beginning of one), else the tasks are the latest run's.
pub fn target(home: &RunsHome, args: &[String]) -> Result<(RunDir, Vec<String>), RunsError> {
    let (run, tasks) = match args.split_first() {
        None => (find_run(home, None)?, Vec::new()),
        Some((first, rest)) => match find_run_by_prefix(home, Some(first)) {
            Ok(run) => (run, rest.to_vec()),
            Err(e @ RunsError::AmbiguousRun { .. }) => return Err(e),
            // A run id's shape (its date) is a run that is not there, not a task.
            Err(e) if looks_like_run(first) => return Err(e),
            Err(_) => (find_run(home, None)?, args.to_vec()),
        },
    };
    for t in &tasks {
        find_task(&run, t)?;
    }
    Ok((run, tasks))
}

/// `YYYYMMDD...`: how run ids begin (`20261201-103727-be3f`).
fn looks_like_run(arg: &str) -> bool {
    arg.len() >= 8 && arg.bytes().take(8).all(|b| b.is_ascii_digit())
}

/// Each task of the run in its order (or those named, in the run's order), with its result.
pub fn picks(layout: &RunDir, report: Option<&RunReport>, named: &[String]) -> Vec<Pick> {
    task_ids(layout)
        .into_iter()
        .filter(|t| named.is_empty() || named.contains(t))
        .map(|task| {
            let entry = report.and_then(|r| r.tasks.iter().find(|e| e.id == task && !e.left_for_gc));
            let status = entry.map(|e| e.status);
            let result = match entry {
                None => Err(format!("not ended (see `sandpen ps {}`)", run_id(layout))),
                Some(e) => branch_of(e),
            };
            Pick { task, status, result }
        })
        .collect()
}

fn branch_of(e: &TaskResult) -> Result<Branch, String> {
    match &e.branch {
        // Against where the task first started: a rerun moved the same branch forward, so
        // it holds every attempt's commits.
        Some(name) => Ok(Branch {
            name: name.clone(),
            base: e
                .attempts
                .first()
                .and_then(|a| a.base_commit.clone())
                .or_else(|| e.base_commit.clone()),
        }),
        None if !e.branches.is_empty() => Err(format!(
            "HEAD unchanged; its other branches: {}",
            e.branches
                .iter()
                .map(|b| b.branch.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
        None => Err("no commits".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::spec::Limits;

    const LIMITS: Limits = Limits {
        nano_cpus: 1_000_000_000,
        memory_bytes: 1 << 30,
        pids: 64,
    };

    fn entry(id: &str, status: TaskStatus, branch: Option<&str>) -> TaskResult {
        TaskResult {
            status,
            branch: branch.map(String::from),
            base_commit: Some("b4se".into()),
            ..TaskResult::new(id, "img", LIMITS)
        }
    }

    #[test]
    fn picks_follow_the_run_and_say_why_a_task_has_no_result() {
        let dir = tempfile::tempdir().unwrap();
        let layout = RunDir::new(dir.path());
        for f in ["a.log", "b.log", "c.log"] {
            std::fs::write(dir.path().join(f), "").unwrap();
        }
        let mut report = RunReport::started("r", "/repo", "img", 2, "now");
        report.tasks = vec![
            entry("b", TaskStatus::Failed, None),
            entry("a", TaskStatus::Succeeded, Some("sandpen/a/r")),
        ];
        let all = picks(&layout, Some(&report), &[]);
        assert_eq!(
            all.iter().map(|p| p.task.as_str()).collect::<Vec<_>>(),
            ["a", "b", "c"]
        );
        assert_eq!(all[0].result.as_ref().unwrap().name, "sandpen/a/r");
        assert_eq!(all[0].result.as_ref().unwrap().base.as_deref(), Some("b4se"));
        assert_eq!(all[1].result, Err("no commits".into()));
        assert_eq!(all[1].status, Some(TaskStatus::Failed));
        assert!(all[2].result.as_ref().unwrap_err().starts_with("not ended"));
        // After a rerun: against the first attempt's base.
        let mut rerun = entry("b", TaskStatus::Succeeded, Some("sandpen/b/r"));
        rerun.attempts = vec![crate::runner::Attempt::of(&rerun, 1)];
        rerun.base_commit = Some("attempt2".into());
        rerun.attempts.push(crate::runner::Attempt::of(&rerun, 2));
        report.tasks[0] = rerun;
        let b = &picks(&layout, Some(&report), &["b".into()])[0];
        assert_eq!(b.result.as_ref().unwrap().base.as_deref(), Some("b4se"));
        let named = picks(&layout, Some(&report), &["c".into(), "a".into()]);
        assert_eq!(
            named.iter().map(|p| p.task.as_str()).collect::<Vec<_>>(),
            ["a", "c"]
        );
    }

    #[test]
    fn the_first_argument_is_a_run_when_it_names_one() {
        let repo = tempfile::tempdir().unwrap();
        let home = &RunsHome::new(&repo.path().join(".git"), repo.path());
        for id in ["20260101-100000-aaaa", "20260102-100000-bbbb"] {
            std::fs::create_dir_all(home.dir().join(id)).unwrap();
            std::fs::write(home.dir().join(id).join("t.log"), "").unwrap();
        }
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let (run, tasks) = target(home, &args(&["20260101", "t"])).unwrap();
        assert_eq!(
            (run_id(&run).as_str(), tasks),
            ("20260101-100000-aaaa", args(&["t"]))
        );
        let (run, tasks) = target(home, &args(&["t"])).unwrap();
        assert_eq!(
            (run_id(&run).as_str(), tasks),
            ("20260102-100000-bbbb", args(&["t"]))
        );
        let err = target(home, &args(&["20250101-000000-zzzz"]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("no run 20250101-000000-zzzz"), "{err}");
        let err = target(home, &args(&["nope"])).unwrap_err().to_string();
        assert!(err.contains("has no task nope"), "{err}");
    }
}
