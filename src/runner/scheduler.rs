use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use super::RunConfig;
use super::admission::{Admission, MemoryHold, Verdict};
use super::attempts::{self, Attempt};
use super::base;
use super::channel::EventSender;
use super::events::{Event, RunReport, TaskResult, TaskStatus, now_rfc3339};
use super::not_run::{never_started, not_run};
use super::retry;
use super::task::{Stop, container_name};
use crate::engine::spec::LABEL_RUN;
use crate::engine::{ContainerEngine, EngineError, left_for_gc, short};
use crate::plan::{Plan, TaskSpec};

/// The final sweep's limits: listing, and each removal. Short, so a dead engine delays the end
/// of the run by seconds, not minutes; shorter still once a task's container went without
/// the engine confirming it (the engine was not answering a moment ago: a last look, within
/// the `STOP_MARGIN` of a stop).
const SWEEP_LIST_LIMIT: Duration = Duration::from_secs(3);
const SWEEP_LIST_WHEN_HUNG: Duration = Duration::from_secs(1);
const SWEEP_REMOVE_LIMIT: Duration = Duration::from_secs(5);

/// Runs every task of `plan`. Returns when all tasks have an outcome; cancelled runs included.
/// `stop.graceful` cancels the run (Ctrl-C); fail-fast cancels it from inside. A task whose
/// runner panics ends as `error`; the others go on, and the final sweep removes whatever
/// container of the run is left.
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

    // Said at the start when the engine's memory will hold back `--jobs` (tasks ready at once).
    let first: Vec<i64> = plan
        .tasks
        .iter()
        .filter(|t| t.depends_on.is_empty())
        .map(|t| t.memory_request_bytes)
        .collect();
    let mut memory_held = MemoryHold::estimate(cfg.jobs, cfg.engine_memory, &first);
    if let Some(hold) = &memory_held {
        events.send(Event::MemoryHold { hold: hold.clone() });
    }
    let mut waited: std::collections::HashSet<String> = Default::default();

    // The run's own token: cancelled by the caller's, or by fail-fast; one per task below it.
    let run_stop = stop.for_run(plan.tasks.iter().map(|t| t.id.as_str()));
    let mut done: HashMap<String, TaskResult> = HashMap::new();
    // The attempts of this run that ended `error` and were retried (`--retries`), by task.
    let mut retried: HashMap<String, Vec<Attempt>> = HashMap::new();
    // A rerun's tasks that are not run again: done as they were, in the report from the start.
    for kept in &cfg.earlier.kept {
        events.send(Event::TaskFinished {
            task: kept.id.clone(),
            result: Box::new(kept.clone()),
        });
        done.insert(kept.id.clone(), kept.clone());
    }
    let mut pending: Vec<TaskSpec> = plan
        .tasks
        .iter()
        .filter(|t| !done.contains_key(&t.id))
        .cloned()
        .collect();
    // The project's environment, once, before the first task.
    warm_up(&cfg, &events, &run_stop, &retried, &mut done, &mut pending).await;
    let mut running = JoinSet::new();
    let mut running_ids: HashMap<tokio::task::Id, TaskSpec> = HashMap::new();
    // When each task could have started but for the jobs limit or memory: the report's `queued_at`.
    let mut ready_at: HashMap<String, String> = HashMap::new();
    let mut admission = Admission::new(cfg.jobs, cfg.engine_memory);
    // The task last told to wait for memory, and the free memory it was told of.
    let mut told: Option<(String, u64)> = None;

    loop {
        // Skip what can no longer run, start what may, up to the jobs limit and the engine's
        // memory. One place decides. A ready task waiting for memory holds back the ready tasks
        // after it, so a large task is not starved by smaller ones overtaking it.
        let mut held = false;
        let mut i = 0;
        while i < pending.len() {
            let t = &pending[i];
            let blocked = t
                .depends_on
                .iter()
                .find_map(|d| done.get(d).filter(|r| r.status != TaskStatus::Succeeded));
            if let Some(dep) = blocked {
                // A dependency cancelled by the run means this task was cancelled too.
                let (status, msg) = if dep.status == TaskStatus::Cancelled && run_stop.graceful.is_cancelled()
                {
                    (
                        TaskStatus::Cancelled,
                        format!("cancelled: its dependency {} was cancelled", dep.id),
                    )
                } else {
                    (
                        TaskStatus::Skipped,
                        format!("skipped: its dependency {} did not succeed", dep.id),
                    )
                };
                let t = pending.remove(i);
                finish(
                    &cfg,
                    &retried,
                    &mut done,
                    &events,
                    never_started(&cfg, &t, status, msg),
                );
                i = 0; // a skip can make later tasks skippable too
                continue;
            }
            if run_stop.task_stopped(&t.id) {
                let t = pending.remove(i);
                let msg = "cancelled before it started".to_string();
                finish(
                    &cfg,
                    &retried,
                    &mut done,
                    &events,
                    never_started(&cfg, &t, TaskStatus::Cancelled, msg),
                );
                continue;
            }
            let ready = t.depends_on.iter().all(|d| done.contains_key(d));
            if ready && !ready_at.contains_key(&t.id) {
                ready_at.insert(t.id.clone(), now_rfc3339());
            }
            match (ready && !held).then(|| admission.check(t.memory_request_bytes)) {
                Some(Verdict::Start) => {
                    let t = pending.remove(i);
                    admission.take(t.memory_request_bytes);
                    // From its dependencies' results as they are now, all of them done.
                    let from = base::start_points(&cfg.base, cfg.deps_from, &t.depends_on, &done);
                    // A rerun continues from the task's own result, with its dependencies'
                    // new results merged in.
                    let from = base::continued(cfg.earlier.from.get(&t.id), from, |d| cfg.earlier.is_kept(d));
                    let handle = running.spawn(base::run_from(
                        engine.clone(),
                        cfg.clone(),
                        t.clone(),
                        from,
                        events.clone(),
                        run_stop.for_task(&t.id),
                    ));
                    running_ids.insert(handle.id(), t);
                    continue;
                }
                Some(Verdict::Memory { needs, free, total }) => {
                    held = true;
                    waited.insert(t.id.clone());
                    if told.as_ref() != Some(&(t.id.clone(), free)) {
                        told = Some((t.id.clone(), free));
                        events.send(Event::WaitingForMemory {
                            task: t.id.clone(),
                            needs_bytes: needs,
                            free_bytes: free,
                            total_bytes: total,
                        });
                    }
                }
                Some(Verdict::NoSlot) | None => {}
            }
            i += 1;
        }
        let Some(joined) = running.join_next_with_id().await else {
            break;
        };
        let (mut result, spec) = match joined {
            Ok((id, result)) => {
                let t = running_ids.remove(&id);
                if let Some(t) = &t {
                    admission.release(t.memory_request_bytes);
                }
                (result, t)
            }
            Err(e) => {
                let t = running_ids
                    .remove(&e.id())
                    .expect("every task is known by its id");
                admission.release(t.memory_request_bytes);
                let msg = format!(
                    "internal error: sandpen's runner for this task failed ({e}); its container \
                     is removed by the final sweep and its checkout is kept uncollected at {}",
                    cfg.layout.checkout(&t.id).display()
                );
                (not_run(&cfg, &t, TaskStatus::Error, msg), None)
            }
        };
        result.queued_at = ready_at.get(&result.id).cloned();
        // An `error` attempt, retries left: the task runs again, from what it brought back.
        if let Some(t) = spec.filter(|_| retry_wanted(&cfg, &run_stop, &retried, &result))
            && let Some(delay) = retry(&cfg, &events, &mut retried, &result)
        {
            // What the attempt brought back holds every result it started from; without it,
            // the task starts as the attempt did.
            let (own, holds_all) = match result.head_commit.clone() {
                Some(head) => (Some(head), true),
                None => (cfg.earlier.from.get(&t.id).cloned(), false),
            };
            admission.take(t.memory_request_bytes);
            if let Some(g) = &cfg.gateway {
                g.task_again();
            }
            let from = base::start_points(&cfg.base, cfg.deps_from, &t.depends_on, &done);
            let from = base::continued(own.as_ref(), from, |d| holds_all || cfg.earlier.is_kept(d));
            let ended =
                cfg.earlier.attempts.get(&t.id).map_or(0, Vec::len) + retried.get(&t.id).map_or(0, Vec::len);
            let again = base::run_from(
                engine.clone(),
                retry::next_config(&cfg, &result, ended as u32),
                t.clone(),
                from,
                events.clone(),
                run_stop.for_task(&t.id),
            );
            let handle = running.spawn(async move {
                tokio::time::sleep(delay).await;
                again.await
            });
            running_ids.insert(handle.id(), t);
            continue;
        }
        // Skipped (its dependencies' results conflict) is not a failure of its own.
        let failed = !matches!(
            result.status,
            TaskStatus::Succeeded | TaskStatus::Cancelled | TaskStatus::Skipped
        );
        if cfg.fail_fast && failed {
            run_stop.cancel(super::CancelReason::FailFast);
        }
        finish(&cfg, &retried, &mut done, &events, result);
    }

    // Belt and braces: nothing of this run stays on the engine, whatever happened above.
    let (mut cleanup_failures, engine_answers) = if cfg.keep_containers {
        (Vec::new(), true)
    } else {
        let unconfirmed: Vec<String> = plan
            .tasks
            .iter()
            .filter_map(|t| done.get(&t.id))
            .filter(|r| r.left_for_gc)
            .filter_map(|r| {
                let id = r.container_id.as_deref()?;
                Some(format!(
                    "container {} ({})",
                    container_name(&cfg.run_id, &r.id),
                    short(id)
                ))
            })
            .collect();
        // The gateway's container is its handle's to remove (below): a second removal here
        // would only wait for that one to finish.
        let gateway = cfg.gateway.is_some();
        sweep(&engine, &cfg.run_id, &unconfirmed, gateway).await
    };
    // The gateway: ended already when the last task was done with it (this waits for that),
    // else now.
    if let Some(g) = &cfg.gateway {
        if !engine_answers {
            g.unsettled();
        }
        let left = g.end().await;
        if left.is_empty() || !engine_answers || cfg.keep_containers {
            cleanup_failures.extend(left);
        } else {
            // Left when a task's container was not confirmed gone; the engine answers now.
            cleanup_failures.extend(sweep(&engine, &cfg.run_id, &[], false).await.0);
        }
    }
    for message in &cleanup_failures {
        events.send(Event::CleanupFailed {
            message: message.clone(),
        });
    }

    if !waited.is_empty() {
        let hold = memory_held.get_or_insert_with(|| MemoryHold::fit(cfg.jobs, cfg.engine_memory, &first));
        hold.waited = waited.len();
    }
    let wall_s = started.elapsed().as_secs_f64();
    let tasks: Vec<TaskResult> = plan.tasks.iter().filter_map(|t| done.remove(&t.id)).collect();
    let busy: f64 = tasks
        .iter()
        .filter(|t| !cfg.earlier.is_kept(&t.id))
        .map(|t| t.duration_s)
        .sum();
    let report = RunReport {
        finished_at: now_rfc3339(),
        wall_s,
        concurrency: if wall_s > 0.0 { busy / wall_s } else { 0.0 },
        cancelled: stop.graceful.is_cancelled(),
        cancel_reason: run_stop.reason(),
        complete: true,
        tasks,
        cleanup_failures,
        memory_held,
        environment: cfg.warm.as_ref().and_then(|w| w.get().cloned()),
        ..RunReport::started(
            &cfg.run_id,
            &cfg.repo.root.display().to_string(),
            &cfg.image,
            cfg.jobs,
            &started_at,
        )
    };
    events.send(Event::RunFinished {
        report: Box::new(report.clone()),
    });
    report
}

/// Removes every container still labelled with the run; says what it could not, and whether
/// the engine answered at all. `unconfirmed`: the task containers the engine never confirmed
/// gone, named when it does not answer now either.
async fn sweep<E: ContainerEngine>(
    engine: &E,
    run_id: &str,
    unconfirmed: &[String],
    skip_gateway: bool,
) -> (Vec<String>, bool) {
    let limit = match unconfirmed.is_empty() {
        true => SWEEP_LIST_LIMIT,
        false => SWEEP_LIST_WHEN_HUNG,
    };
    let listed = EngineError::limited(
        "listing the run's containers",
        limit,
        engine.list(LABEL_RUN, Some(run_id)),
    )
    .await;
    let left = match listed {
        Ok(left) => left,
        Err(e) if unconfirmed.is_empty() => {
            let failure = format!(
                "could not check the engine for containers of run {run_id} ({e}); `sandpen gc` removes any that are left"
            );
            return (vec![failure], false);
        }
        Err(e) => return (vec![format!("{e}; {}", left_for_gc(unconfirmed))], false),
    };
    let mut failures = Vec::new();
    let gateway = |c: &crate::engine::ListedContainer| {
        skip_gateway
            && c.labels.get(crate::engine::spec::LABEL_ROLE).map(String::as_str)
                == Some(crate::engine::spec::ROLE_GATEWAY)
    };
    for c in left.into_iter().filter(|c| !gateway(c)) {
        tracing::debug!("removing leftover container {}", c.name);
        if let Err(e) =
            EngineError::limited("removing a container", SWEEP_REMOVE_LIMIT, engine.remove(&c.id)).await
        {
            failures.push(format!(
                "container {} could not be removed ({e}); `sandpen gc` removes it",
                c.name
            ));
        }
    }
    (failures, true)
}

/// The project's warm environment (`warm/`), prepared before the first task; a failed one
/// fails every task that would have started from it, said once, in its own event.
async fn warm_up(
    cfg: &RunConfig,
    events: &EventSender,
    run_stop: &Stop,
    retried: &HashMap<String, Vec<Attempt>>,
    done: &mut HashMap<String, TaskResult>,
    pending: &mut Vec<TaskSpec>,
) {
    if let Some(warm) = cfg.warm.as_ref().filter(|_| !pending.is_empty()) {
        events.send(Event::EnvironmentPreparing);
        let env = warm.preparer.prepare(cfg.gateway.as_ref()).await;
        events.send(Event::Environment { env: env.clone() });
        if env.failed() {
            let (status, msg) = match run_stop.graceful.is_cancelled() {
                true => (TaskStatus::Cancelled, "cancelled before it started".to_string()),
                false => (
                    TaskStatus::Failed,
                    format!(
                        "its environment ({}, from {}) could not be prepared: see the run's `environment`",
                        env.volume, env.from
                    ),
                ),
            };
            for t in pending.drain(..) {
                let r = never_started(cfg, &t, status, msg.clone());
                finish(cfg, retried, done, events, r);
            }
        }
        warm.set(env);
    }
}

fn finish(
    cfg: &RunConfig,
    retried: &HashMap<String, Vec<Attempt>>,
    done: &mut HashMap<String, TaskResult>,
    events: &EventSender,
    result: TaskResult,
) {
    let this_run = retried.get(&result.id).map_or(&[][..], Vec::as_slice);
    let mut result = cfg.earlier.with_attempts(result, this_run);
    if result.container_id.is_some() && result.environment.is_none() {
        result.environment = cfg
            .warm
            .as_ref()
            .and_then(|w| w.usable())
            .map(|e| e.volume.clone());
    }
    // Once, at its end, so every reporter shows the same lines (bounded reads of its logs).
    if !matches!(result.status, TaskStatus::Succeeded | TaskStatus::Skipped) {
        result.stderr_tail = crate::task_log::tail::failure_tail(&result.stderr_log, &result.log);
    }
    events.send(Event::TaskFinished {
        task: result.id.clone(),
        result: Box::new(result.clone()),
    });
    done.insert(result.id.clone(), result);
}

/// The first wait before a retry; it doubles with each retry of the task, up to a minute.
const RETRY_BACKOFF: Duration = match cfg!(test) {
    true => Duration::from_millis(20),
    false => Duration::from_secs(2),
};

/// Whether the task of `r` runs again: its attempt ended as `retry` retries (`error`,
/// `overloaded`, what `--retry-on` adds), it was not stopped, and it has retries left.
fn retry_wanted(
    cfg: &RunConfig,
    stop: &Stop,
    retried: &HashMap<String, Vec<Attempt>>,
    r: &TaskResult,
) -> bool {
    let used = retried.get(&r.id).map_or(0, Vec::len);
    retry::kind(r).is_some_and(|k| retry::wanted(k, &cfg.retry_on))
        && used < cfg.retries as usize
        && !stop.task_stopped(&r.id)
}

/// Keeps `result` as an earlier attempt (its files under numbered names) and says that the
/// task runs again: after how long. Its files in the way: no retry (None).
fn retry(
    cfg: &RunConfig,
    events: &EventSender,
    retried: &mut HashMap<String, Vec<Attempt>>,
    result: &TaskResult,
) -> Option<Duration> {
    let before = cfg.earlier.attempts.get(&result.id).map_or(0, Vec::len);
    let list = retried.entry(result.id.clone()).or_default();
    let mut attempt = Attempt::of(result, (before + list.len() + 1) as u32);
    if let Err(e) = attempts::set_aside(&cfg.layout, &result.id, &mut attempt) {
        tracing::warn!(task = %result.id, "not retried: {e}");
        return None;
    }
    list.push(attempt);
    let delay = RETRY_BACKOFF
        .saturating_mul(1 << (list.len() - 1).min(5))
        .min(Duration::from_secs(60));
    events.send(Event::TaskRetrying {
        task: result.id.clone(),
        attempt: (before + list.len() + 1) as u32,
        of: before as u32 + cfg.retries + 1,
        after_s: delay.as_secs_f64(),
        message: result.message.clone().unwrap_or_else(|| "error".into()),
    });
    Some(delay)
}
