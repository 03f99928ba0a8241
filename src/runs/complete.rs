//! Shell completion of run and task ids: asked by the shell at each TAB (`COMPLETE=bash
//! sandpen -- ...`, clap_complete's dynamic engine), answered from the repository around the
//! working directory. Anything that fails answers nothing: a completion never prints an error.

use std::ffi::OsStr;

use clap_complete::engine::CompletionCandidate;

use super::{run_id, runs, task_ids};
use crate::workspace::{Repo, RunDir};

/// The runs of the repository, newest first, and the tasks of its latest run: what the first
/// positional argument of `logs`, `stop`, `diff`, `merge`, `rerun` names.
pub fn run_or_task(current: &OsStr) -> Vec<CompletionCandidate> {
    let all = repo_runs();
    let mut out = run_candidates(&all);
    if let Some(latest) = all.last() {
        out.extend(task_candidates(latest));
    }
    matching(out, current)
}

/// The runs of the repository, newest first.
pub fn run(current: &OsStr) -> Vec<CompletionCandidate> {
    matching(run_candidates(&repo_runs()), current)
}

/// The tasks of the latest run.
pub fn task(current: &OsStr) -> Vec<CompletionCandidate> {
    let tasks = repo_runs().last().map(task_candidates).unwrap_or_default();
    matching(tasks, current)
}

fn run_candidates(all: &[RunDir]) -> Vec<CompletionCandidate> {
    let ids = all.iter().rev().map(run_id);
    ids.map(|id| CompletionCandidate::new(id).help(Some("run".into())))
        .collect()
}

fn task_candidates(latest: &RunDir) -> Vec<CompletionCandidate> {
    let help = format!("task of {}", run_id(latest));
    let tasks = task_ids(latest).into_iter();
    tasks
        .map(|t| CompletionCandidate::new(t).help(Some(help.clone().into())))
        .collect()
}

fn matching(all: Vec<CompletionCandidate>, current: &OsStr) -> Vec<CompletionCandidate> {
    let current = current.to_string_lossy();
    all.into_iter()
        .filter(|c| c.get_value().to_string_lossy().starts_with(current.as_ref()))
        .collect()
}

/// The runs of the repository around the working directory, oldest first; none outside one.
fn repo_runs() -> Vec<RunDir> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build();
    let repo = rt.ok().and_then(|rt| rt.block_on(Repo::discover(None)).ok());
    repo.map(|r| runs(&r.runs)).unwrap_or_default()
}
