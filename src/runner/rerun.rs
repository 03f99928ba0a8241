//! Which tasks of a run `sandpen rerun` runs again, decided from the run's plan (its manifest)
//! and its report: pure logic, so every case is a unit test.

use std::collections::HashSet;

use super::events::{TaskResult, TaskStatus};
use crate::exit::{self, HasExitCode};
use crate::plan::TaskSpec;

#[derive(Debug, thiserror::Error)]
pub enum RerunError {
    #[error(
        "task {task} of run {run} succeeded; a rerun runs only what did not succeed\n\
         fix: pass --force to run it again (from its result), or leave it out"
    )]
    Succeeded { run: String, task: String },

    #[error(
        "run {run} is still going (its sandpen lives)\n\
         fix: wait for it to end, or stop it with `sandpen stop {run}`, then rerun"
    )]
    Live { run: String },

    #[error(
        "run {run} did not finish: its sandpen is gone and its report is incomplete, or a task's \
         work was left for gc\n\
         fix: run `sandpen gc` to finish it (it collects its tasks' work), then rerun"
    )]
    Unfinished { run: String },

    #[error(
        "run {run} was made by an older sandpen, which did not record its tasks' definitions\n\
         fix: start a new run with `sandpen run TASKS`"
    )]
    NotRecorded { run: String },

    #[error(
        "run {run} ran on a Docker Swarm; rerun runs on one engine only, for now\n\
         fix: start a new run with `sandpen run --backend swarm TASKS`"
    )]
    OnSwarm { run: String },
}

impl HasExitCode for RerunError {
    fn exit_code(&self) -> i32 {
        exit::INVALID_INPUT
    }
}

/// Whether a task's entry says it succeeded (no entry: it never started, the run was killed).
fn succeeded(report: &[TaskResult], task: &str) -> bool {
    report
        .iter()
        .any(|r| r.id == task && r.status == TaskStatus::Succeeded && !r.left_for_gc)
}

/// The tasks to run again, in the plan's order: those `named`, or else every task that did not
/// succeed; then every task that did not succeed and depends, directly or not, on one of them
/// (it runs after it, from its new result). A named task that succeeded is refused unless
/// `force`. The names are known to be the run's.
pub fn select(
    run: &str,
    plan: &[TaskSpec],
    report: &[TaskResult],
    named: &[String],
    force: bool,
) -> Result<Vec<String>, RerunError> {
    if let Some(t) = named.iter().find(|t| !force && succeeded(report, t)) {
        return Err(RerunError::Succeeded {
            run: run.to_string(),
            task: t.clone(),
        });
    }
    let mut chosen: HashSet<&str> = HashSet::new();
    // The plan is in topological order: a dependency is decided before its dependents.
    for t in plan {
        let seed = match named.is_empty() {
            true => !succeeded(report, &t.id),
            false => named.contains(&t.id),
        };
        let after_one = !succeeded(report, &t.id) && t.depends_on.iter().any(|d| chosen.contains(d.as_str()));
        if seed || after_one {
            chosen.insert(&t.id);
        }
    }
    Ok(plan
        .iter()
        .filter(|t| chosen.contains(t.id.as_str()))
        .map(|t| t.id.clone())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::spec::Limits;

    const LIMITS: Limits = Limits {
        nano_cpus: 1,
        memory_bytes: 1 << 30,
        pids: 1,
    };

    fn task(id: &str, deps: &[&str]) -> TaskSpec {
        TaskSpec {
            id: id.into(),
            prompt: String::new(),
            source: "t.toml".into(),
            limits: LIMITS,
            memory_request_bytes: 1,
            timeout: std::time::Duration::from_secs(1),
            depends_on: deps.iter().map(|d| d.to_string()).collect(),
            env: Default::default(),
            disk_bytes: None,
            log_limit_bytes: 1,
            salvage: Default::default(),
            allow_hosts: Vec::new(),
            max_cost: None,
            runtime: None,
        }
    }

    fn entry(id: &str, status: TaskStatus) -> TaskResult {
        TaskResult {
            status,
            ..TaskResult::new(id, "img", LIMITS)
        }
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    /// a fails, ok succeeds, d (after a) is skipped, e (after d) and f (after ok) never
    /// started: the run was killed.
    fn run() -> (Vec<TaskSpec>, Vec<TaskResult>) {
        let plan = vec![
            task("a", &[]),
            task("ok", &[]),
            task("d", &["a"]),
            task("e", &["d"]),
            task("f", &["ok"]),
        ];
        let report = vec![
            entry("a", TaskStatus::Failed),
            entry("ok", TaskStatus::Succeeded),
            entry("d", TaskStatus::Skipped),
        ];
        (plan, report)
    }

    #[test]
    fn by_default_every_task_that_did_not_succeed_runs_again() {
        let (plan, report) = run();
        let chosen = select("r", &plan, &report, &[], false).unwrap();
        assert_eq!(chosen, names(&["a", "d", "e", "f"]));
        // Every status but succeeded, and an entry left for gc, counts as not succeeded.
        for status in [
            TaskStatus::Error,
            TaskStatus::TimedOut,
            TaskStatus::Cancelled,
            TaskStatus::OomKilled,
            TaskStatus::DiskExceeded,
            TaskStatus::BudgetExceeded,
        ] {
            let chosen = select("r", &plan[..1], &[entry("a", status)], &[], false).unwrap();
            assert_eq!(chosen, names(&["a"]), "{status:?}");
        }
        let mut left = entry("a", TaskStatus::Succeeded);
        left.left_for_gc = true;
        assert_eq!(
            select("r", &plan[..1], &[left], &[], false).unwrap(),
            names(&["a"])
        );
        // All succeeded: nothing.
        let all: Vec<_> = plan.iter().map(|t| entry(&t.id, TaskStatus::Succeeded)).collect();
        assert!(select("r", &plan, &all, &[], false).unwrap().is_empty());
    }

    #[test]
    fn a_named_task_brings_its_dependents_that_did_not_succeed() {
        let (plan, report) = run();
        assert_eq!(
            select("r", &plan, &report, &names(&["a"]), false).unwrap(),
            names(&["a", "d", "e"])
        );
        // Only what is named and follows it: f is not after d.
        assert_eq!(
            select("r", &plan, &report, &names(&["d"]), false).unwrap(),
            names(&["d", "e"])
        );
    }

    #[test]
    fn a_named_task_that_succeeded_needs_force_and_its_succeeded_dependents_stay() {
        let (plan, mut report) = run();
        let err = select("r1", &plan, &report, &names(&["ok"]), false).unwrap_err();
        assert!(
            err.to_string().starts_with("task ok of run r1 succeeded") && err.to_string().contains("--force"),
            "{err}"
        );
        assert_eq!(err.exit_code(), exit::INVALID_INPUT);
        // Forced: ok, and f that never started; once f had succeeded, ok alone.
        assert_eq!(
            select("r", &plan, &report, &names(&["ok"]), true).unwrap(),
            names(&["ok", "f"])
        );
        report.push(entry("f", TaskStatus::Succeeded));
        assert_eq!(
            select("r", &plan, &report, &names(&["ok"]), true).unwrap(),
            names(&["ok"])
        );
    }
}
