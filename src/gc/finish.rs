//! Completing a dead run: each task its sandpen never finished gets its work collected (in the
//! collection sandbox, as a live run does), its checkout handed back, and an entry in the
//! report, which is then marked complete.

use std::collections::HashMap;

use crate::atomic_file::write_atomically;
use crate::collect::{self, Job};
use crate::engine::ContainerEngine;
use crate::engine::spec::Owner;
use crate::manifest::{Manifest, ManifestTask};
use crate::runner::events::now_rfc3339;
use crate::runner::{RunReport, TaskResult, TaskStatus};
use crate::workspace::{Repo, RunDir};

/// Finishes the run in `layout`; `exit_codes` are what the engine said of its task containers
/// before they were removed. Returns one line per task it completed.
pub async fn finish_run<E: ContainerEngine>(
    engine: &E,
    layout: &RunDir,
    exit_codes: &HashMap<String, i64>,
) -> anyhow::Result<Vec<String>> {
    let manifest = Manifest::read(&layout.manifest())
        .map_err(|e| anyhow::anyhow!("reading {}: {e}", layout.manifest().display()))?;
    let mut report: RunReport = std::fs::read(layout.report())
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_else(|| RunReport::started(&manifest.run_id, &manifest.repo, &manifest.image, 0, ""));
    let unfinished = |r: &RunReport, id: &str| r.tasks.iter().all(|t| t.id != id || t.left_for_gc);
    if report.complete && !manifest.tasks.iter().any(|t| unfinished(&report, &t.id)) {
        return Ok(Vec::new());
    }
    let repo = Repo::discover(Some(std::path::Path::new(&manifest.repo))).await?;
    let owner = Owner {
        run_id: manifest.run_id.clone(),
        process: crate::owner::this_owner(),
        process_start: crate::owner::this_start_time(),
        run_dir: layout.root.clone(),
    };
    let mut lines = Vec::new();
    let saved = crate::runner::attempts::load(&layout.earlier_attempts());
    for task in &manifest.tasks {
        if !unfinished(&report, &task.id) {
            continue;
        }
        let earlier = report
            .tasks
            .iter()
            .position(|t| t.id == task.id)
            .map(|i| report.tasks.remove(i));
        let mut result = earlier.unwrap_or_else(|| TaskResult {
            checkout: layout.checkout(&task.id).display().to_string(),
            log: layout.log(&task.id).display().to_string(),
            stderr_log: layout.stderr_log(&task.id).display().to_string(),
            stats_log: Some(layout.stats_log(&task.id).display().to_string()),
            exit_code: exit_codes.get(&task.id).copied(),
            limits_enforced: manifest.limits_enforced,
            memory_request_bytes: task.memory_request_bytes,
            ..TaskResult::new(&task.id, &manifest.image, task.limits)
        });
        result.left_for_gc = false;
        if !layout.checkout(&task.id).is_dir() {
            result.status = TaskStatus::Cancelled;
            result.message = Some("sandpen ended before the task started".into());
        } else {
            let dead = DeadRun {
                repo: &repo,
                layout,
                owner: &owner,
                manifest: &manifest,
            };
            bring_back(
                engine,
                &dead,
                task,
                &mut result,
                exit_codes.get(&task.id).copied(),
            )
            .await;
        }
        result.stderr_tail = crate::task_log::tail::failure_tail(&result.stderr_log, &result.log);
        let result = crate::runner::attempts::completed(result, &saved);
        lines.push(line_of(&result));
        report.tasks.push(result);
    }
    // In the manifest's order, as a live run writes them.
    let order: HashMap<&str, usize> = manifest
        .tasks
        .iter()
        .enumerate()
        .map(|(i, t)| (t.id.as_str(), i))
        .collect();
    report
        .tasks
        .sort_by_key(|t| order.get(t.id.as_str()).copied().unwrap_or(usize::MAX));
    report.complete = true;
    report.cancelled = true;
    report.finished_at = now_rfc3339();
    let json = serde_json::to_vec_pretty(&report)?;
    write_atomically(&layout.report(), &json)?;
    Ok(lines)
}

/// What a dead run's tasks share.
struct DeadRun<'a> {
    repo: &'a Repo,
    layout: &'a RunDir,
    owner: &'a Owner,
    manifest: &'a Manifest,
}

/// Collects the work of a task that has a checkout (in the sandbox, as a live run does) into
/// its result, which ends `error` either way: its sandpen did not finish it.
async fn bring_back<E: ContainerEngine>(
    engine: &E,
    dead: &DeadRun<'_>,
    task: &ManifestTask,
    result: &mut TaskResult,
    exit_code: Option<i64>,
) {
    // The task's own base: its dependencies' results, perhaps, not the run's.
    let base = collect::recorded_base(dead.layout, &task.id).unwrap_or_else(|| dead.manifest.base.clone());
    result.base_commit = Some(base.clone());
    let job = Job {
        repo: dead.repo,
        run: dead.layout,
        owner: dead.owner,
        task: &task.id,
        base: &base,
        image: &dead.manifest.image,
        user: dead.manifest.user,
        handed: true,
        limits: task.limits,
        runtime: task.runtime.as_deref(),
        salvage: task.salvage,
        // gc may have removed the container while it ran: the sandbox collects.
        ended_by_itself: false,
    };
    let ended = match exit_code {
        Some(124) => " (its container stopped itself at its deadline)".to_string(),
        Some(c) => format!(" (its container exited with code {c})"),
        None => String::new(),
    };
    result.status = TaskStatus::Error;
    match collect::collect(engine, &job).await {
        Ok(c) => {
            result.message = Some(match result.message.take() {
                Some(m) => format!("{m}; `sandpen gc` brought its work back{ended}"),
                None => {
                    format!("sandpen ended while the task ran{ended}; `sandpen gc` brought its work back")
                }
            });
            result.set_collected(c);
            result.changes = dead
                .repo
                .report_changes(&base, result.head_commit.as_deref())
                .await;
        }
        Err(e) => {
            result.message = Some(format!(
                "sandpen ended while the task ran{ended}; bringing its work back failed: {e}; the checkout is kept"
            ));
        }
    }
}

/// "task ID: branch B (message)", for gc's output.
fn line_of(result: &TaskResult) -> String {
    let branch = result
        .branch
        .as_deref()
        .map_or("no new commits".to_string(), |b| format!("branch {b}"));
    let message = result
        .message
        .as_deref()
        .map_or(String::new(), |m| format!(" ({m})"));
    format!("task {}: {branch}{message}", result.id)
}
