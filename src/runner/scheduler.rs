use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use tokio::task::JoinSet;

use super::RunConfig;
use super::events::{Event, EventSender, RunReport, TaskResult, TaskStatus, now_rfc3339};
use super::task::{self, Stop};
use crate::engine::ContainerEngine;
use crate::plan::{Plan, TaskSpec};

/// Runs every task of `plan`. Returns when all tasks have an outcome; cancelled runs included.
/// `stop.graceful` cancels the run (Ctrl-C); fail-fast cancels it from inside.
pub async fn execute<E: ContainerEngine>(
    engine: E,
    plan: Plan,
    cfg: RunConfig,
    events: EventSender,
    stop: Stop,
) -> RunReport {
    let cfg = Arc::new(cfg);
    let started = Instant::now();
    let started_at = now_rfc3339();
    events.send(Event::RunStarted {
        run_id: cfg.run_id.clone(),
        repo: cfg.repo.root.display().to_string(),
        image: cfg.image.clone(),
        jobs: cfg.jobs,
        tasks: plan.tasks.iter().map(|t| t.id.clone()).collect(),
        at: started_at.clone(),
    });

    // The run's own token: cancelled by the caller's, or by fail-fast.
    let run_stop = Stop {
        graceful: stop.graceful.child_token(),
        kill: stop.kill.clone(),
    };
    let mut done: HashMap<String, TaskResult> = HashMap::new();
    let mut pending: Vec<TaskSpec> = plan.tasks.clone();
    let mut running = JoinSet::new();

    loop {
        // Skip what can no longer run, start what may, up to the jobs limit. One place decides.
        let mut i = 0;
        while i < pending.len() {
            let t = &pending[i];
            let failed_dep = t
                .depends_on
                .iter()
                .find(|d| done.get(*d).is_some_and(|r| r.status != TaskStatus::Succeeded))
                .cloned();
            if let Some(dep) = failed_dep {
                let t = pending.remove(i);
                let msg = format!("skipped: its dependency {dep} did not succeed");
                finish(&mut done, &events, not_run(&cfg, &t, TaskStatus::Skipped, msg));
                i = 0; // a skip can make later tasks skippable too
                continue;
            }
            if run_stop.graceful.is_cancelled() {
                let t = pending.remove(i);
                let msg = "cancelled before it started".to_string();
                finish(&mut done, &events, not_run(&cfg, &t, TaskStatus::Cancelled, msg));
                continue;
            }
            let ready = t.depends_on.iter().all(|d| done.contains_key(d));
            if ready && running.len() < cfg.jobs {
                let t = pending.remove(i);
                running.spawn(task::run(
                    engine.clone(),
                    cfg.clone(),
                    t,
                    events.clone(),
                    run_stop.clone(),
                ));
                continue;
            }
            i += 1;
        }
        let Some(joined) = running.join_next().await else {
            break;
        };
        let result = joined.expect("a task panicked");
        if cfg.fail_fast && !matches!(result.status, TaskStatus::Succeeded | TaskStatus::Cancelled) {
            run_stop.graceful.cancel();
        }
        finish(&mut done, &events, result);
    }

    let wall_s = started.elapsed().as_secs_f64();
    let tasks: Vec<TaskResult> = plan.tasks.iter().filter_map(|t| done.remove(&t.id)).collect();
    let busy: f64 = tasks.iter().map(|t| t.duration_s).sum();
    let report = RunReport {
        run_id: cfg.run_id.clone(),
        repo: cfg.repo.root.display().to_string(),
        image: cfg.image.clone(),
        started_at,
        finished_at: now_rfc3339(),
        wall_s,
        jobs: cfg.jobs,
        speedup: if wall_s > 0.0 { busy / wall_s } else { 0.0 },
        cancelled: stop.graceful.is_cancelled(),
        tasks,
    };
    events.send(Event::RunFinished {
        report: Box::new(report.clone()),
    });
    report
}

fn finish(done: &mut HashMap<String, TaskResult>, events: &EventSender, result: TaskResult) {
    events.send(Event::TaskFinished {
        task: result.id.clone(),
        result: Box::new(result.clone()),
    });
    done.insert(result.id.clone(), result);
}

/// The result of a task that never got a container.
fn not_run(cfg: &RunConfig, t: &TaskSpec, status: TaskStatus, message: String) -> TaskResult {
    TaskResult {
        status,
        message: Some(message),
        ..TaskResult::new(&t.id, &cfg.image, t.limits)
    }
}
