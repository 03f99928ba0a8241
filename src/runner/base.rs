//! Where a task starts: the run's base, or what its dependencies brought back (`--deps-from`).
//! The scheduler picks the commits once the dependencies are done (`start_points`, pure); the
//! merge of several, git in the user's repository, runs in the task's own future
//! (`run_from`), so that a merge waiting for the repository never holds up the scheduler.

use std::collections::HashMap;
use std::sync::Arc;

use super::RunConfig;
use super::channel::EventSender;
use super::events::{TaskResult, TaskStatus};
use super::task::{self, Stop};
use crate::engine::ContainerEngine;
use crate::plan::TaskSpec;
use crate::workspace::Merged;

/// What a task with dependencies starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DepsFrom {
    /// Its dependencies' results: one's commit, or the merge of several.
    #[default]
    Results,
    /// The run's base, as a task without dependencies (the order still holds).
    Base,
}

/// A commit a task starts from, and the dependencies whose result it is (none: the run's base).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct StartPoint {
    pub commit: String,
    pub deps: Vec<String>,
}

/// The commits a task starts from, once each, in the order of its `depends_on`. A dependency's
/// result is the commit its branch holds, or, when it made no commit, the one it started from.
pub(super) fn start_points(
    base: &str,
    deps_from: DepsFrom,
    depends_on: &[String],
    done: &HashMap<String, TaskResult>,
) -> Vec<StartPoint> {
    let mut points: Vec<StartPoint> = Vec::new();
    if deps_from == DepsFrom::Results {
        for d in depends_on {
            let result = done
                .get(d)
                .and_then(|r| r.head_commit.as_ref().or(r.base_commit.as_ref()));
            let commit = result.map_or(base, String::as_str);
            match points.iter_mut().find(|p| p.commit == commit) {
                Some(p) => p.deps.push(d.clone()),
                None => points.push(StartPoint {
                    commit: commit.to_string(),
                    deps: vec![d.clone()],
                }),
            }
        }
    }
    if points.is_empty() {
        points.push(StartPoint {
            commit: base.to_string(),
            deps: Vec::new(),
        });
    }
    points
}

/// Where a task of a rerun starts: from `own`, its earlier attempt's result, when it has one,
/// merged with the results of the dependencies that ran again (those `kept` are in `own`
/// already, as the earlier attempt started from them); else from `points` as in any run.
pub(super) fn continued(
    own: Option<&String>,
    points: Vec<StartPoint>,
    kept: impl Fn(&str) -> bool,
) -> Vec<StartPoint> {
    let Some(own) = own else { return points };
    let mut all = vec![StartPoint {
        commit: own.clone(),
        deps: vec!["its earlier attempt".into()],
    }];
    for mut p in points {
        p.deps.retain(|d| !kept(d));
        if !p.deps.is_empty() && p.commit != *own {
            all.push(p);
        }
    }
    all
}

/// Runs `t` from `points`: the one commit, or their merge. A conflict skips the task, naming
/// the paths; a merge git could not make ends it `error`. Neither gets a checkout.
pub(super) async fn run_from<E: ContainerEngine>(
    engine: E,
    cfg: Arc<RunConfig>,
    t: TaskSpec,
    points: Vec<StartPoint>,
    events: EventSender,
    stop: Stop,
) -> TaskResult {
    match resolve(&cfg, &t.id, &points).await {
        Ok(base) => task::run(engine, cfg, t, base, events, stop).await,
        Err((status, msg)) => super::not_run::never_started(&cfg, &t, status, msg),
    }
}

async fn resolve(cfg: &RunConfig, task: &str, points: &[StartPoint]) -> Result<String, (TaskStatus, String)> {
    if let [only] = points {
        return Ok(only.commit.clone());
    }
    let commits: Vec<String> = points.iter().map(|p| p.commit.clone()).collect();
    let all = names(points.iter());
    // Beside the task's other refs of the run (its lost commits), out of `git branch`.
    let keep_as = cfg
        .repo
        .free_ref(&format!("refs/sandpen/{task}/{}/base", cfg.run_id))
        .await;
    let message = format!(
        "sandpen: the start of task {task}: the results of {all}\n\n\
         Sandpen-Run: {}\nSandpen-Task: {task}",
        cfg.run_id
    );
    // Attributes (which may name a merge driver) as the run's base has them.
    match cfg
        .repo
        .merge_results(&commits, &cfg.base, &keep_as, &message)
        .await
    {
        Ok(Merged::Commit(c)) => Ok(c),
        Ok(Merged::Conflict { at, paths }) => {
            Err((TaskStatus::Skipped, conflict_message(points, at, &paths)))
        }
        Err(e) => Err((
            TaskStatus::Error,
            format!("merging the results of its dependencies {all} failed: {e}; the task was not started"),
        )),
    }
}

/// Why a task whose dependencies' results conflict was skipped: whose, and where.
fn conflict_message(points: &[StartPoint], at: usize, paths: &[String]) -> String {
    const SHOWN: usize = 20;
    let mut listed: Vec<String> = paths.iter().take(SHOWN).map(|p| shown(p)).collect();
    if paths.len() > SHOWN {
        listed.push(format!("and {} more", paths.len() - SHOWN));
    }
    format!(
        "skipped: its dependencies' results conflict in {} (merging {} into {})\n\
         fix: make one of them depend on the other, or pass --deps-from base",
        listed.join(", "),
        names(points[at..=at].iter()),
        names(points[..at].iter()),
    )
}

fn names<'a>(points: impl Iterator<Item = &'a StartPoint>) -> String {
    let names: Vec<&str> = points.flat_map(|p| p.deps.iter().map(String::as_str)).collect();
    match names.split_last() {
        Some((last, [_, ..])) => format!("{} and {last}", names[..names.len() - 1].join(", ")),
        _ => names.join(""),
    }
}

/// A path as a message shows it: as is when plain, quoted when it holds control characters.
fn shown(path: &str) -> String {
    if path.chars().any(char::is_control) {
        format!("{path:?}")
    } else {
        path.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::spec::Limits;

    fn done(entries: &[(&str, Option<&str>, Option<&str>)]) -> HashMap<String, TaskResult> {
        let limits = Limits {
            nano_cpus: 1,
            memory_bytes: 1,
            pids: 1,
        };
        entries
            .iter()
            .map(|(id, base, head)| {
                let r = TaskResult {
                    status: TaskStatus::Succeeded,
                    base_commit: base.map(String::from),
                    head_commit: head.map(String::from),
                    ..TaskResult::new(id, "i", limits)
                };
                (id.to_string(), r)
            })
            .collect()
    }

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn point(commit: &str, deps: &[&str]) -> StartPoint {
        StartPoint {
            commit: commit.into(),
            deps: ids(deps),
        }
    }

    #[test]
    fn a_task_starts_from_its_dependencies_results_or_their_bases() {
        let d = done(&[
            ("a", Some("B"), Some("A1")),
            ("b", Some("B"), Some("B1")),
            ("n", Some("A1"), None),
        ]);
        let from = |deps: &[&str], how| start_points("B", how, &ids(deps), &d);
        // No dependency, or --deps-from base: the run's base.
        assert_eq!(from(&[], DepsFrom::Results), [point("B", &[])]);
        assert_eq!(from(&["a", "b"], DepsFrom::Base), [point("B", &[])]);
        // One: its branch's commit.
        assert_eq!(from(&["a"], DepsFrom::Results), [point("A1", &["a"])]);
        // One that made no commit: what it started from.
        assert_eq!(from(&["n"], DepsFrom::Results), [point("A1", &["n"])]);
        // Several, in order, each commit once.
        assert_eq!(
            from(&["b", "a", "n"], DepsFrom::Results),
            [point("B1", &["b"]), point("A1", &["a", "n"])]
        );
    }

    #[test]
    fn a_rerun_continues_from_its_own_result_with_its_rerun_dependencies() {
        let own = "O".to_string();
        let points = vec![point("A2", &["a"]), point("K", &["k"]), point("B", &[])];
        // Without an earlier result: as in any run.
        assert_eq!(continued(None, points.clone(), |_| false), points);
        // With one: it first; `k` was kept (its result is in O already), `a` ran again.
        assert_eq!(
            continued(Some(&own), points, |d| d == "k"),
            [point("O", &["its earlier attempt"]), point("A2", &["a"])]
        );
        // A task without dependencies continues from its result alone.
        assert_eq!(
            continued(Some(&own), vec![point("B", &[])], |_| false),
            [point("O", &["its earlier attempt"])]
        );
    }

    #[test]
    fn a_conflict_names_whose_results_and_the_paths() {
        let points = [point("1", &["a"]), point("2", &["b", "c"]), point("3", &["d"])];
        let msg = conflict_message(&points, 2, &ids(&["src/x.rs", "new\nline"]));
        assert!(
            msg.starts_with(
                "skipped: its dependencies' results conflict in src/x.rs, \"new\\nline\" \
                 (merging d into a, b and c)\nfix: "
            ),
            "{msg}"
        );
        let many: Vec<String> = (0..25).map(|i| format!("f{i}")).collect();
        let msg = conflict_message(&points, 1, &many);
        assert!(
            msg.contains("f19, and 5 more (merging b and c into a)\n"),
            "{msg}"
        );
    }
}
