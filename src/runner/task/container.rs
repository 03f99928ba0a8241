//! One task's container, from create to remove: attach before start, the wait raced against
//! the timeout, cancellation, governance and disk watchers, then a stop with a bounded budget,
//! the exit state, and the removal. Every engine call has a time limit, so a hung or dead
//! engine ends the task as `error` within its timeout plus the grace plus `STOP_MARGIN`.

use std::fs::File;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::watch::OutputSummary;
use super::watchers::{LogFiles, Watchers};
use super::{Ctx, gate, spec};
use crate::capped_log::{CappedLog, Marker};
use crate::disk_watch::DiskSummary;
use crate::engine::{ContainerEngine, EngineError, ExitState, OutputStream, left_for_gc, short};
use crate::monitor::StatsSummary;
use crate::runner::events::{Event, StopReason, now_rfc3339};

/// How a task's logs are given more room, named in their marker.
const LOG_MARKER: Marker = Marker::Text("--log-limit");
/// What the engine gets beyond the grace to stop a run, all calls together: a task's stop,
/// kill, wait and removal take up to `STOP_CALLS_MARGIN` of it, the run's last look for
/// leftovers (`scheduler::SWEEP_LIST_WHEN_HUNG`) and the report the rest, so that a first
/// Ctrl-C ends sandpen within the grace plus this even when the engine does not answer.
pub const STOP_MARGIN: Duration = Duration::from_secs(5);
const STOP_CALLS_MARGIN: Duration = Duration::from_secs(2);
/// The least time an engine call is given: a call given less fails for nothing.
const MIN_CALL: Duration = Duration::from_secs(1);
/// The budget of the calls after a container ended by itself (drain, inspect, remove).
const CLEANUP_BUDGET: Duration = Duration::from_secs(30);

/// How the container ended, as far as the engine and the watchers could tell.
#[derive(Debug, Default)]
pub struct ContainerEnd {
    pub id: Option<String>,
    /// Where it ran, when the engine spans several machines.
    pub node: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub stopped_for: Option<StopReason>,
    pub exit: Option<ExitState>,
    pub waited_code: Option<i64>,
    pub output: OutputSummary,
    pub stats: StatsSummary,
    pub disk: DiskSummary,
    /// Bytes of stdout and of stderr the capped logs left out (`--log-limit`).
    pub log_dropped: (u64, u64),
    /// What went wrong with the engine or the logs, in words; a task with any is `error`.
    pub problems: Vec<String>,
    /// The engine confirmed that no process of the task runs any more (the container is
    /// removed, or stopped and kept): only then may its checkout be collected.
    pub settled: bool,
}

/// Runs the task's container to its end. Never fails: what went wrong is in `problems`.
pub async fn run<E: ContainerEngine>(ctx: &Ctx<E>, checkout: &std::path::Path) -> ContainerEnd {
    let mut end = ContainerEnd::default();
    let spec = spec::task_container(ctx, checkout);
    let id = match ctx.engine.create(&spec).await {
        Ok(id) => id,
        Err(e) => {
            // A create that timed out may still happen on the engine: only a refusal is final.
            end.settled = !matches!(e, EngineError::TimedOut { .. });
            end.problems.push(e.to_string());
            return end;
        }
    };
    end.id = Some(id.clone());
    // The calls after the end share a deadline: generous when the engine answered, short when
    // it did not (then the task is left for `gc` rather than waited on).
    let deadline = if ctx.stop.graceful.is_cancelled() {
        end.stopped_for = Some(StopReason::Cancelled);
        end.settled = true; // created, never started
        Instant::now() + CLEANUP_BUDGET
    } else {
        watch_running(ctx, &id, checkout, &mut end).await
    };
    if end.started_at.is_some() {
        let left = deadline.saturating_duration_since(Instant::now());
        end.node = tokio::time::timeout(left, ctx.engine.node(&id))
            .await
            .ok()
            .flatten();
    }
    if end.settled && end.started_at.is_some() {
        match within(deadline, "inspecting the container", ctx.engine.exit_state(&id)).await {
            Ok(s) => {
                // A container far from sandpen's disk stopped its own task at the limit.
                if let (Some(bytes), None) = (s.disk_over, end.stopped_for) {
                    end.stopped_for = Some(StopReason::Disk);
                    end.disk.peak_bytes = end.disk.peak_bytes.max(Some(bytes));
                }
                end.exit = Some(s)
            }
            Err(e) => end.problems.push(e.to_string()),
        }
    }
    if ctx.cfg.keep_containers && end.settled {
        return end;
    }
    let what = format!(
        "container {} ({})",
        spec::container_name(&ctx.cfg.run_id, &ctx.task.id),
        short(&id)
    );
    // A container the engine did not confirm stopped, once the stop's time is up: the engine
    // is not answering, and another call would only hold the run's end.
    if !end.settled && deadline.saturating_duration_since(Instant::now()) < MIN_CALL {
        end.problems.push(left_for_gc(&[what]));
        return end;
    }
    match within(deadline, "removing the container", ctx.engine.remove(&id)).await {
        Ok(()) => end.settled = true,
        Err(e) => {
            end.settled = false;
            end.problems.push(format!("{e}; {}", left_for_gc(&[what])));
        }
    }
    end
}

/// Attach, start, watch, and wait for the end (or stop it); `end.settled` says whether the
/// engine confirmed that the container stopped. Returns the deadline of the calls after it.
async fn watch_running<E: ContainerEngine>(
    ctx: &Ctx<E>,
    id: &str,
    checkout: &std::path::Path,
    end: &mut ContainerEnd,
) -> Instant {
    let Started {
        files,
        attached,
        gate,
    } = match Box::pin(attach_and_start(ctx, id, end)).await {
        Ok(started) => started,
        Err(deadline) => return deadline,
    };
    let task = &ctx.task.id;
    let started = Instant::now();
    end.started_at = Some(now_rfc3339());
    ctx.events.send(Event::TaskStarted {
        task: task.clone(),
        container_id: id.to_string(),
        at: now_rfc3339(),
    });
    test_hooks::after_start(task);
    let watchers = Watchers::spawn(ctx, id, checkout, files, attached, started);

    let waited = tokio::select! {
        r = ctx.engine.wait(id) => Some(r),
        _ = tokio::time::sleep(ctx.task.timeout) => { end.stopped_for = Some(StopReason::Timeout); None }
        _ = ctx.stop.graceful.cancelled() => { end.stopped_for = Some(StopReason::Cancelled); None }
        _ = watchers.violation.cancelled() => { end.stopped_for = Some(StopReason::Governance); None }
        _ = watchers.disk_over.cancelled() => { end.stopped_for = Some(StopReason::Disk); None }
        _ = budget_spent(ctx) => { end.stopped_for = Some(StopReason::Budget); None }
    };
    let deadline = match waited {
        Some(Ok(code)) => {
            end.waited_code = Some(code);
            end.settled = true;
            ctx.exited.cancel();
            Instant::now() + CLEANUP_BUDGET
        }
        Some(Err(e)) => {
            // The engine failed while the task ran: the task may still be running.
            end.problems.push(e.to_string());
            Box::pin(stop(ctx, id, None, end)).await
        }
        None => Box::pin(stop(ctx, id, end.stopped_for, end)).await,
    };
    end.finished_at = Some(now_rfc3339());
    if let Some(refused) = match gate {
        Some(gate) => gate::outcome(gate).await,
        None => None,
    } {
        end.problems.push(refused);
    }
    tracing::debug!(task = %ctx.task.id, settled = end.settled, "the container ended or was given up");
    let found = watchers.finish(task, end.settled, deadline).await;
    (end.output, end.log_dropped) = (found.output, found.log_dropped);
    (end.stats, end.disk) = (found.stats, found.disk);
    end.problems.extend(found.problems);
    deadline
}

/// A container that started: its log files, its output, and its gateway admission.
struct Started {
    files: LogFiles,
    attached: OutputStream,
    gate: Option<tokio::task::JoinHandle<Result<(), String>>>,
}

/// Makes the task's log files, attaches (before start: output is read from the container's
/// first byte), hands the task's admission to the gateway while the container starts, and
/// starts it. On failure, or a stop before it started, returns the deadline of the calls after.
async fn attach_and_start<E: ContainerEngine>(
    ctx: &Ctx<E>,
    id: &str,
    end: &mut ContainerEnd,
) -> Result<Started, Instant> {
    let limit = ctx.task.log_limit_bytes;
    let files = (
        CappedLog::create(&ctx.log, limit, LOG_MARKER),
        CappedLog::create(&ctx.stderr_log, limit, LOG_MARKER),
        File::create(ctx.cfg.layout.stats_log(&ctx.task.id)),
    );
    let files = match files {
        (Ok(log), Ok(stderr_log), Ok(stats_log)) => LogFiles {
            log,
            stderr_log,
            stats_log,
        },
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
            end.problems.push(format!("creating the task's log files: {e}"));
            end.settled = true; // never started
            return Err(Instant::now() + CLEANUP_BUDGET);
        }
    };
    let attaching = async {
        let gated = ctx.cfg.gateway.as_ref().is_some_and(|g| g.gw.gated());
        match &ctx.admission {
            Some(_) if gated => (ctx.engine.attach_with_input(id).await).map(|(o, i)| (o, Some(i))),
            _ => ctx.engine.attach(id).await.map(|o| (o, None)),
        }
    };
    // A Swarm's service may be slow to get its task: a stop does not wait for that.
    let attached = tokio::select! {
        r = attaching => r,
        _ = ctx.stop.graceful.cancelled() => {
            end.stopped_for = Some(StopReason::Cancelled);
            return Err(Box::pin(stop(ctx, id, end.stopped_for, end)).await);
        }
    };
    let (attached, input) = match attached {
        Ok(a) => a,
        Err(e) => {
            end.problems.push(e.to_string());
            end.settled = true;
            return Err(Instant::now() + CLEANUP_BUDGET);
        }
    };
    // In gateway mode the token's admission goes to the gateway while the container starts.
    let gate_opens = CancellationToken::new();
    let gate = match (input, &ctx.admission, &ctx.cfg.gateway) {
        (Some(input), Some(a), Some(g)) => Some(gate::open(
            g.clone(),
            ctx.task.id.clone(),
            a.clone(),
            ctx.task.allow_hosts.clone(),
            ctx.task.max_cost,
            input,
            gate_opens.clone(),
        )),
        _ => None,
    };
    // A Swarm's task may wait for its node to pull the image: a stop does not wait for that.
    let starting = tokio::select! {
        r = ctx.engine.start(id) => Some(r),
        _ = ctx.stop.graceful.cancelled() => None,
    };
    if !matches!(starting, Some(Ok(()))) {
        gate.iter().for_each(|g| g.abort());
    }
    match starting {
        Some(Ok(())) => {
            gate_opens.cancel();
            Ok(Started {
                files,
                attached,
                gate,
            })
        }
        Some(Err(e)) => {
            end.problems.push(e.to_string());
            end.settled = !matches!(e, EngineError::TimedOut { .. });
            Err(Instant::now() + STOP_MARGIN)
        }
        None => {
            end.stopped_for = Some(StopReason::Cancelled);
            Err(Box::pin(stop(ctx, id, end.stopped_for, end)).await)
        }
    }
}

/// How long a task whose budget is spent has to end by itself before it is stopped. The CLI
/// ends at its next (refused) model request; stopped at once, it could be cut off in the
/// middle of a git command and leave the checkout locked for the collection.
const BUDGET_GRACE: Duration = Duration::from_secs(15);

/// Resolves [`BUDGET_GRACE`] after the gateway says the task's budget is spent (never without
/// a gateway).
async fn budget_spent<E>(ctx: &Ctx<E>) {
    match (&ctx.cfg.gateway, &ctx.admission) {
        (Some(g), Some(_)) => {
            g.gw.spent(&ctx.task.id).await;
            tokio::time::sleep(BUDGET_GRACE).await;
        }
        _ => std::future::pending().await,
    }
}

/// Stops the container: SIGTERM, SIGKILL after the grace (at once on a second Ctrl-C, or for a
/// task over its disk limit, which gets no grace to write more), and a wait, all within the
/// grace plus `STOP_MARGIN`. Returns the deadline the remaining cleanup
/// calls share. `end.settled` is set only when the engine confirmed the container stopped.
async fn stop<E: ContainerEngine>(
    ctx: &Ctx<E>,
    id: &str,
    reason: Option<StopReason>,
    end: &mut ContainerEnd,
) -> Instant {
    if let Some(reason) = reason {
        ctx.events.send(Event::TaskStopping {
            task: ctx.task.id.clone(),
            reason,
        });
    }
    let deadline = Instant::now() + ctx.cfg.grace + STOP_CALLS_MARGIN;
    let grace = match reason {
        Some(StopReason::Disk) => Duration::ZERO,
        _ => ctx.cfg.grace,
    };
    let stopped = tokio::select! {
        r = within(deadline, "stopping the container", stop_within(ctx, id, grace)) => r,
        _ = ctx.stop.kill.cancelled() => within(deadline, "killing the container", ctx.engine.kill(id)).await,
    };
    tracing::debug!(task = %ctx.task.id, ok = stopped.is_ok(), "stop answered");
    let mut waited = match stopped {
        Ok(()) => within(deadline, "waiting for the container", ctx.engine.wait(id)).await,
        Err(e) => Err(e),
    };
    // A kill after a stop the engine refused; not after one it never answered (no time is
    // left then, and it would not answer the kill either).
    if waited.is_err() && deadline.saturating_duration_since(Instant::now()) >= MIN_CALL {
        let _ = within(deadline, "killing the container", ctx.engine.kill(id)).await;
        waited = within(deadline, "waiting for the container", ctx.engine.wait(id)).await;
    }
    match waited {
        Ok(code) => {
            end.waited_code = Some(code);
            end.settled = true;
            ctx.exited.cancel();
            deadline.max(Instant::now() + Duration::from_secs(2))
        }
        Err(e) => {
            end.problems.push(format!(
                "the engine did not confirm that container {} stopped ({e})",
                short(id)
            ));
            deadline
        }
    }
}

/// SIGTERM then SIGKILL after `grace`, or SIGKILL alone without one.
async fn stop_within<E: ContainerEngine>(ctx: &Ctx<E>, id: &str, grace: Duration) -> Result<(), EngineError> {
    match grace.is_zero() {
        true => ctx.engine.kill(id).await,
        false => ctx.engine.stop(id, grace).await,
    }
}

/// An engine call cut off at `deadline`, or after `MIN_CALL` if less is left.
async fn within<T>(
    deadline: Instant,
    what: &str,
    call: impl std::future::Future<Output = Result<T, EngineError>>,
) -> Result<T, EngineError> {
    let left = deadline.saturating_duration_since(Instant::now());
    EngineError::limited(what, left.max(MIN_CALL), call).await
}

/// Failure injection for the tests of every exit path, only in test builds (the
/// `fault-injection` feature, which `cargo test` turns on): `SANDPEN_TEST_PANIC_AFTER_START=<task
/// id>` makes that task's runner panic right after its container started.
mod test_hooks {
    #[cfg(feature = "fault-injection")]
    pub fn after_start(task: &str) {
        if std::env::var("SANDPEN_TEST_PANIC_AFTER_START").is_ok_and(|t| t == task) {
            panic!("SANDPEN_TEST_PANIC_AFTER_START: injected panic in task {task}");
        }
    }

    #[cfg(not(feature = "fault-injection"))]
    pub fn after_start(_task: &str) {}
}
