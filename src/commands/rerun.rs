//! `sandpen rerun [RUN] [TASK...]`: the tasks of a finished run that did not succeed (or the
//! ones named), run again in the same run as new attempts, each from its result so far, from
//! the definitions the run recorded. The earlier attempts' files are moved to numbered names
//! (`runner::attempts::set_aside`) only once everything is checked and the image is ready.

use std::collections::HashMap;

use crate::agent::session::{self, Resume};
use crate::cli::{RerunArgs, RunFlags};
use crate::exit;
use crate::manifest::{Manifest, ManifestTask};
use crate::owner::Lease;
use crate::plan::{self, Plan};
use crate::runner::attempts::{self, Attempt};
use crate::runner::rerun::{self, RerunError};
use crate::runner::{Earlier, RunReport, TaskResult, TaskStatus};
use crate::runs::{self, results};
use crate::workspace::{Repo, RunDir};

use super::run::{InRun, RunOptions, RunTarget};

pub async fn run(host: Option<&str>, args: RerunArgs) -> anyhow::Result<i32> {
    let RerunArgs {
        args,
        repo,
        force,
        fresh,
        mut flags,
        ..
    } = args;
    super::run::check_flags(&flags)?;
    let repo_handle = Repo::discover(repo.as_deref()).await?;
    let (layout, named) = results::target(&repo_handle.runs, &args)?;
    let run_id = runs::run_id(&layout);
    if runs::owner_alive(&layout) {
        return Err(RerunError::Live { run: run_id }.into());
    }
    let manifest =
        Manifest::read(&layout.manifest()).map_err(|_| RerunError::Unfinished { run: run_id.clone() })?;
    // A task whose container the engine never confirmed gone may still write its checkout:
    // `gc` first, which collects it.
    let report = match runs::read_report(&layout) {
        Some(r) if r.complete && !r.tasks.iter().any(|t| t.left_for_gc) => r,
        _ => return Err(RerunError::Unfinished { run: run_id }.into()),
    };
    if manifest.backend.is_some() {
        return Err(RerunError::OnSwarm { run: run_id }.into());
    }
    let mut plan = recorded_plan(&manifest, &run_id)?;
    let chosen = rerun::select(&run_id, &plan.tasks, &report.tasks, &named, force)?;
    if chosen.is_empty() {
        eprintln!(
            "run {run_id}: every task succeeded; nothing to run again (name a task and pass --force to run it again)"
        );
        return Ok(exit::SUCCESS);
    }
    let (mut again, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut plan.tasks)
        .into_iter()
        .partition(|t| chosen.contains(&t.id));
    plan::apply_flags(&mut again, &super::run::plan_flags(&flags))?;
    plan.tasks = manifest
        .tasks
        .iter()
        .filter_map(|m| again.iter().chain(&kept).find(|t| t.id == m.id).cloned())
        .collect();
    for source in changed_sources(&manifest, &chosen) {
        eprintln!(
            "note: {} changed since run {run_id}; the rerun runs the tasks as the run recorded them",
            source.display()
        );
    }
    // Held from here: a second rerun of the same run is refused while this one goes on.
    let lease = Lease::take(&layout.lease()).map_err(|_| RerunError::Live { run: run_id.clone() })?;
    recorded_settings(&mut flags, &manifest);
    let target = RunTarget {
        repo: Some(&repo_handle.root),
        base: &manifest.base,
    };
    let prepared = super::run::prepare_plan(host, &flags, plan, target, None).await?;
    let mut earlier = set_aside(&prepared.repo, &layout, &report, &chosen).await?;
    if !fresh {
        earlier.resume = resumes(&layout, &earlier.attempts);
    }
    attempts::save(&layout.earlier_attempts(), &earlier.attempts)?;
    // Tasks the run never started, not named now: kept as not started, so that nothing waits
    // for them.
    for m in manifest.tasks.iter().filter(|m| !chosen.contains(&m.id)) {
        if !report.tasks.iter().any(|t| t.id == m.id) {
            earlier.kept.push(TaskResult {
                status: crate::runner::TaskStatus::Cancelled,
                message: Some("never started (its run was stopped); not named in this rerun".into()),
                ..TaskResult::new(&m.id, &manifest.image, m.limits)
            });
        }
    }
    let manifest = Manifest {
        image: prepared.image.clone(),
        settings: None,
        tasks: manifest
            .tasks
            .iter()
            .map(|m| updated(m, &prepared.plan))
            .collect(),
        ..manifest
    };
    let mut opts = RunOptions::from(&flags);
    // Within a rerun, dependents start from their dependencies' results, as they did before.
    opts.deps_from = crate::runner::DepsFrom::Results;
    let run = InRun {
        run_id,
        layout,
        _lease: lease,
        earlier,
        manifest: Some(manifest),
    };
    super::run::execute_in(prepared, opts, run).await
}

/// What the run recorded where no flag says otherwise: its image, network, turns, allowlist
/// (each task's limits and runtime come with its definition). Says what the rerun uses.
fn recorded_settings(flags: &mut RunFlags, manifest: &Manifest) {
    flags.image.get_or_insert_with(|| manifest.image.clone());
    if let Some(s) = &manifest.settings {
        // Any name parses (a named network is checked against the engine later).
        flags
            .network
            .get_or_insert_with(|| s.network.parse().unwrap_or_default());
        flags.max_turns.get_or_insert(s.max_turns);
        if flags.allow_hosts.is_empty() {
            flags.allow_hosts = s.allow_hosts.clone();
        }
    }
    let whose = match manifest.settings {
        Some(_) => "the run's, unless given",
        None => "the run recorded no network nor turns: the defaults, unless given",
    };
    eprintln!(
        "rerun of run {}: image {}, --network {}, --max-turns {} ({whose})",
        manifest.run_id,
        flags.image.as_deref().unwrap_or_default(),
        flags.network(),
        flags.max_turns()
    );
}

/// The run's tasks as its manifest recorded them, in its order (a topological one).
fn recorded_plan(manifest: &Manifest, run: &str) -> Result<Plan, RerunError> {
    let tasks: Option<Vec<_>> = manifest.tasks.iter().map(ManifestTask::spec).collect();
    let tasks = tasks.ok_or_else(|| RerunError::NotRecorded { run: run.to_string() })?;
    Ok(Plan { tasks })
}

/// The task files that differ now from what the run read, each once.
fn changed_sources(manifest: &Manifest, chosen: &[String]) -> Vec<std::path::PathBuf> {
    let mut sources: Vec<std::path::PathBuf> = Vec::new();
    for m in manifest.tasks.iter().filter(|m| chosen.contains(&m.id)) {
        let source = m.definition.as_ref().map(|d| d.source.clone());
        if let Some(s) = source.filter(|s| m.source_changed() && !sources.contains(s)) {
            sources.push(s);
        }
    }
    sources
}

/// A task's record with the limits this rerun gives it, what the run recorded otherwise.
fn updated(m: &ManifestTask, plan: &Plan) -> ManifestTask {
    let Some(t) = plan.tasks.iter().find(|t| t.id == m.id) else {
        return m.clone();
    };
    let mut new = ManifestTask::of(t);
    if let (Some(d), Some(old)) = (new.definition.as_mut(), m.definition.as_ref()) {
        d.source_sha256 = old.source_sha256.clone();
    }
    new
}

/// Moves each chosen task's last attempt out of the next one's way, and says what carries over:
/// the tasks kept as they are, the earlier attempts, the commit each chosen task continues from.
async fn set_aside(
    repo: &Repo,
    layout: &RunDir,
    report: &RunReport,
    chosen: &[String],
) -> anyhow::Result<Earlier> {
    let mut earlier = Earlier::default();
    for entry in &report.tasks {
        if !chosen.contains(&entry.id) {
            earlier.kept.push(entry.clone());
            continue;
        }
        let mut all: Vec<Attempt> = attempts::recorded(entry);
        if let Some(last) = all.last_mut().filter(|a| a.ran()) {
            attempts::set_aside(layout, &entry.id, last).map_err(|e| {
                anyhow::anyhow!(
                    "keeping attempt {} of task {}: {e}\nfix: move the file aside and rerun",
                    last.number,
                    entry.id
                )
            })?;
        }
        earlier.attempts.insert(entry.id.clone(), all);
        if let Some(from) = result_commit(repo, entry).await {
            earlier.from.insert(entry.id.clone(), from);
        }
    }
    Ok(earlier)
}

/// The sessions the tasks run again resume: each one's last attempt's, when it left one that
/// can be (a note says why not otherwise).
fn resumes(layout: &RunDir, all: &HashMap<String, Vec<Attempt>>) -> HashMap<String, Resume> {
    let mut resume = HashMap::new();
    for (task, attempts) in all {
        // A task that succeeded, run again (`--force`), starts over: nothing stopped it.
        let Some(last) = attempts.last().filter(|a| a.status != TaskStatus::Succeeded) else {
            continue;
        };
        let Some(id) = last.session.as_ref().and_then(|s| s.id.clone()) else {
            continue;
        };
        match session::resumable(&layout.session(task), &id) {
            Ok(()) => {
                let prompt =
                    session::resume_prompt(last.number, last.status.as_str(), last.message.as_deref());
                resume.insert(
                    task.clone(),
                    Resume {
                        session_id: id,
                        prompt,
                    },
                );
            }
            Err(why) => {
                eprintln!("note: task {task} starts its agent over: its session cannot be resumed ({why})")
            }
        }
    }
    resume
}

/// Where a task continues from: its result branch as it stands (the salvage included), or the
/// commit it came back with.
async fn result_commit(repo: &Repo, entry: &TaskResult) -> Option<String> {
    if let Some(branch) = &entry.branch
        && let Ok(tip) = repo.commit_of(&format!("refs/heads/{branch}")).await
    {
        return Some(tip);
    }
    entry.head_commit.clone()
}
