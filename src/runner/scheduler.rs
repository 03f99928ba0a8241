use std::collections::{HashMap, HashSet};
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
use super::task::Stop;
use crate::engine::ContainerEngine;
use crate::plan::{Plan, TaskSpec};

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

    let mut s = Scheduler::new(engine, cfg.clone(), events.clone(), &stop, &plan);
    // The project's environment, once: prepared beside the tasks where they can start
    // without it (`warm_up`), polled in the same loop.
    let prep_cfg = cfg.clone();
    let mut preparing = super::warm_up::begin(&prep_cfg, &events, !s.pending.is_empty()).await;
    loop {
        s.start_ready();
        tokio::select! {
            env = async { preparing.as_mut().expect("polled while there").await }, if preparing.is_some() => {
                preparing = None;
                s.on_environment(env);
            }
            Some(joined) = s.running.join_next_with_id(), if !s.running.is_empty() => s.on_joined(joined),
            else => break,
        }
    }
    if let Some(env) = cfg.warm.as_ref().and_then(|w| w.get()).filter(|e| e.failed()) {
        // What the tasks that started beside it mounted: gone now that they are.
        cfg.warm.as_ref().unwrap().preparer.discard(env).await;
    }

    let cleanup_failures = super::sweep::cleanup(&s.engine, &cfg, &plan, &s.done).await;
    for message in &cleanup_failures {
        events.send(Event::CleanupFailed {
            message: message.clone(),
        });
    }
    if !s.waited.is_empty() {
        let hold = memory_held.get_or_insert_with(|| MemoryHold::fit(cfg.jobs, cfg.engine_memory, &first));
        hold.waited = s.waited.len();
    }
    let wall_s = started.elapsed().as_secs_f64();
    let tasks: Vec<TaskResult> = plan.tasks.iter().filter_map(|t| s.done.remove(&t.id)).collect();
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
        cancel_reason: s.run_stop.reason(),
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

/// The run as the scheduler holds it between two task ends: what is done, pending and
/// running, and what admission has handed out. The loop in `execute` alternates starting what
/// may start and taking in what ended.
struct Scheduler<E> {
    engine: E,
    cfg: Arc<RunConfig>,
    events: EventSender,
    /// The run's own token: cancelled by the caller's, or by fail-fast; one per task below it.
    run_stop: Stop,
    done: HashMap<String, TaskResult>,
    /// The attempts of this run that ended `error` and were retried (`--retries`), by task.
    retried: HashMap<String, Vec<Attempt>>,
    pending: Vec<TaskSpec>,
    running: JoinSet<TaskResult>,
    running_ids: HashMap<tokio::task::Id, TaskSpec>,
    /// When each task could have started but for the jobs limit or memory: its `queued_at`.
    ready_at: HashMap<String, String>,
    admission: Admission,
    /// The task last told to wait for memory, and the free memory it was told of.
    told: Option<(String, u64)>,
    /// The tasks that waited for memory at some point.
    waited: HashSet<String>,
    /// The tasks stopped because the environment they started beside failed: how they end.
    env_stopped: HashMap<String, (TaskStatus, String)>,
}

impl<E: ContainerEngine> Scheduler<E> {
    fn new(engine: E, cfg: Arc<RunConfig>, events: EventSender, stop: &Stop, plan: &Plan) -> Self {
        let run_stop = stop.for_run(plan.tasks.iter().map(|t| t.id.as_str()));
        let mut done = HashMap::new();
        // A rerun's tasks that are not run again: done as they were, in the report from the start.
        for kept in &cfg.earlier.kept {
            events.send(Event::TaskFinished {
                task: kept.id.clone(),
                result: Box::new(kept.clone()),
            });
            done.insert(kept.id.clone(), kept.clone());
        }
        let pending = plan
            .tasks
            .iter()
            .filter(|t| !done.contains_key(&t.id))
            .cloned()
            .collect();
        let admission = Admission::new(cfg.jobs, cfg.engine_memory);
        Self {
            engine,
            cfg,
            events,
            run_stop,
            done,
            retried: HashMap::new(),
            pending,
            running: JoinSet::new(),
            running_ids: HashMap::new(),
            ready_at: HashMap::new(),
            admission,
            told: None,
            waited: HashSet::new(),
            env_stopped: HashMap::new(),
        }
    }

    /// Skips what can no longer run, starts what may, up to the jobs limit and the engine's
    /// memory. One place decides. A ready task waiting for memory holds back the ready tasks
    /// after it, so a large task is not starved by smaller ones overtaking it.
    fn start_ready(&mut self) {
        if self.cfg.warm.as_ref().is_some_and(|w| !w.may_start()) {
            return; // until its volume is open, or it is prepared
        }
        let mut held = false;
        let mut i = 0;
        while i < self.pending.len() {
            let t = &self.pending[i];
            if let Some((status, msg)) = self.not_to_run(t) {
                let t = self.pending.remove(i);
                let r = never_started(&self.cfg, &t, status, msg);
                self.finish(r);
                i = 0; // a skip can make later tasks skippable too
                continue;
            }
            let ready = t.depends_on.iter().all(|d| self.done.contains_key(d));
            if ready && !self.ready_at.contains_key(&t.id) {
                self.ready_at.insert(t.id.clone(), now_rfc3339());
            }
            match (ready && !held).then(|| self.admission.check(t.memory_request_bytes)) {
                Some(Verdict::Start) => {
                    let t = self.pending.remove(i);
                    self.admission.take(t.memory_request_bytes);
                    // From its dependencies' results as they are now, all of them done. A rerun
                    // continues from the task's own result, with their new results merged in.
                    let from =
                        base::start_points(&self.cfg.base, self.cfg.deps_from, &t.depends_on, &self.done);
                    let earlier = &self.cfg.earlier;
                    let from = base::continued(earlier.from.get(&t.id), from, |d| earlier.is_kept(d));
                    self.spawn(t, from, self.cfg.clone(), None);
                    continue;
                }
                Some(Verdict::Memory { needs, free, total }) => {
                    held = true;
                    self.waited.insert(t.id.clone());
                    if self.told.as_ref() != Some(&(t.id.clone(), free)) {
                        self.told = Some((t.id.clone(), free));
                        self.events.send(Event::WaitingForMemory {
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
    }

    /// Why `t` will not run at all: a dependency that did not succeed (cancelled with it when
    /// the run was), or a stop before its start.
    fn not_to_run(&self, t: &TaskSpec) -> Option<(TaskStatus, String)> {
        let blocked = t
            .depends_on
            .iter()
            .find_map(|d| self.done.get(d).filter(|r| r.status != TaskStatus::Succeeded));
        if let Some(dep) = blocked {
            return Some(
                match dep.status == TaskStatus::Cancelled && self.run_stop.graceful.is_cancelled() {
                    true => (
                        TaskStatus::Cancelled,
                        format!("cancelled: its dependency {} was cancelled", dep.id),
                    ),
                    false => (
                        TaskStatus::Skipped,
                        format!("skipped: its dependency {} did not succeed", dep.id),
                    ),
                },
            );
        }
        let stopped = self.run_stop.task_stopped(&t.id);
        stopped.then(|| (TaskStatus::Cancelled, "cancelled before it started".to_string()))
    }

    /// Runs one attempt of `t` from `from` (after `delay`, for a retry).
    fn spawn(
        &mut self,
        t: TaskSpec,
        from: Vec<base::StartPoint>,
        cfg: Arc<RunConfig>,
        delay: Option<Duration>,
    ) {
        let attempt = base::run_from(
            self.engine.clone(),
            cfg,
            t.clone(),
            from,
            self.events.clone(),
            self.run_stop.for_task(&t.id),
        );
        let handle = self.running.spawn(async move {
            if let Some(delay) = delay {
                tokio::time::sleep(delay).await;
            }
            attempt.await
        });
        self.running_ids.insert(handle.id(), t);
    }

    /// A task's runner ended: its result is done, or (an attempt `--retries` retries) it runs
    /// again from what it brought back.
    fn on_joined(&mut self, joined: Result<(tokio::task::Id, TaskResult), tokio::task::JoinError>) {
        let (mut result, spec) = match joined {
            Ok((id, result)) => {
                let t = self.running_ids.remove(&id);
                if let Some(t) = &t {
                    self.admission.release(t.memory_request_bytes);
                }
                (result, t)
            }
            Err(e) => {
                let t = self
                    .running_ids
                    .remove(&e.id())
                    .expect("every task is known by its id");
                self.admission.release(t.memory_request_bytes);
                let msg = format!(
                    "internal error: sandpen's runner for this task failed ({e}); its container \
                     is removed by the final sweep and its checkout is kept uncollected at {}",
                    self.cfg.layout.checkout(&t.id).display()
                );
                (not_run(&self.cfg, &t, TaskStatus::Error, msg), None)
            }
        };
        result.queued_at = self.ready_at.get(&result.id).cloned();
        if let Some((status, msg)) = self.env_stopped.remove(&result.id)
            && result.status == TaskStatus::Cancelled
        {
            (result.status, result.message) = (status, Some(msg));
        }
        if let Some(t) = spec.filter(|_| retry_wanted(&self.cfg, &self.run_stop, &self.retried, &result))
            && let Some(delay) = retry(&self.cfg, &self.events, &mut self.retried, &result)
        {
            return self.again(t, &result, delay);
        }
        // Skipped (its dependencies' results conflict) is not a failure of its own.
        let failed = !matches!(
            result.status,
            TaskStatus::Succeeded | TaskStatus::Cancelled | TaskStatus::Skipped
        );
        if self.cfg.fail_fast && failed {
            self.run_stop.cancel(super::CancelReason::FailFast);
        }
        self.finish(result);
    }

    /// `t` runs again after `delay`, from what its attempt (`result`) brought back: that holds
    /// every result it started from; without it, the task starts as the attempt did.
    fn again(&mut self, t: TaskSpec, result: &TaskResult, delay: Duration) {
        let cfg = self.cfg.clone();
        let (own, holds_all) = match result.head_commit.clone() {
            Some(head) => (Some(head), true),
            None => (cfg.earlier.from.get(&t.id).cloned(), false),
        };
        self.admission.take(t.memory_request_bytes);
        if let Some(g) = &cfg.gateway {
            g.task_again();
        }
        let from = base::start_points(&cfg.base, cfg.deps_from, &t.depends_on, &self.done);
        let from = base::continued(own.as_ref(), from, |d| holds_all || cfg.earlier.is_kept(d));
        let ended =
            cfg.earlier.attempts.get(&t.id).map_or(0, Vec::len) + self.retried.get(&t.id).map_or(0, Vec::len);
        let next = retry::next_config(&cfg, result, ended as u32);
        self.spawn(t, from, next, Some(delay));
    }

    /// The preparation ended. Failed: the tasks that needed it fail, said once (its own
    /// event); those not started never start, those started beside it are stopped.
    fn on_environment(&mut self, env: crate::warm::Environment) {
        self.events.send(Event::Environment { env: env.clone() });
        if env.failed() {
            let (status, msg) = super::warm_up::failure(&env, self.run_stop.graceful.is_cancelled());
            for t in std::mem::take(&mut self.pending) {
                let r = never_started(&self.cfg, &t, status, msg.clone());
                self.finish(r);
            }
            for t in self.running_ids.values() {
                self.run_stop.stop_task(&t.id);
                self.env_stopped.insert(t.id.clone(), (status, msg.clone()));
            }
        }
        if let Some(warm) = &self.cfg.warm {
            warm.set(env);
        }
    }

    fn finish(&mut self, result: TaskResult) {
        finish(&self.cfg, &self.retried, &mut self.done, &self.events, result);
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
            .and_then(|w| w.task_environment())
            .map(String::from);
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
