//! One task, top to bottom: checkout, container, collection. Never prints; reports through
//! events. The container's lifecycle, the watchers and the classification are apart.

mod classify;
mod container;
mod gate;
mod session;
mod spec;
mod watch;
mod watchers;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use tokio_util::sync::CancellationToken;

use self::classify::{Ending, classify};
use self::container::ContainerEnd;
use super::RunConfig;
use super::channel::EventSender;
use super::events::{AgentSummary, Event, TaskResult, TaskStatus, now_rfc3339};
use crate::agent::{self, phases};
use crate::collect;
use crate::engine::ContainerEngine;
use crate::monitor::AgentProgress;
use crate::plan::TaskSpec;
use crate::workspace::{Checkout, Repo};

pub use container::STOP_MARGIN;
pub(crate) use spec::container_name;

/// Tokens that stop a run: the first asks containers to stop (with the grace), the second
/// kills them at once. Each task also has its own graceful token, a child of the run's, that
/// stops it alone (`sandpen stop RUN TASK`).
#[derive(Debug, Clone, Default)]
pub struct Stop {
    pub graceful: CancellationToken,
    pub kill: CancellationToken,
    tasks: Arc<std::sync::Mutex<std::collections::HashMap<String, CancellationToken>>>,
    /// Why the run was cancelled: the first to cancel it says.
    reason: Arc<std::sync::OnceLock<crate::runner::CancelReason>>,
}

impl Stop {
    /// A run's own tokens under `self`, each of `tasks` with its own; the per-task tokens are
    /// shared with `self`, so that `self.stop_task` reaches them.
    pub fn for_run<'a>(&self, tasks: impl IntoIterator<Item = &'a str>) -> Self {
        let run = Self {
            graceful: self.graceful.child_token(),
            kill: self.kill.clone(),
            tasks: self.tasks.clone(),
            reason: self.reason.clone(),
        };
        let mut known = self.tasks.lock().unwrap();
        for id in tasks {
            known.insert(id.to_string(), run.graceful.child_token());
        }
        drop(known);
        run
    }

    /// The tokens one task's runner watches: its own graceful one, the run's kill.
    pub fn for_task(&self, task: &str) -> Self {
        let graceful = self.tasks.lock().unwrap().get(task).cloned();
        Self {
            graceful: graceful.unwrap_or_else(|| self.graceful.child_token()),
            kill: self.kill.clone(),
            tasks: self.tasks.clone(),
            reason: self.reason.clone(),
        }
    }

    /// Cancels the run (its containers stop with the grace), saying why; the first reason
    /// given is the run's.
    pub fn cancel(&self, why: crate::runner::CancelReason) {
        let _ = self.reason.set(why);
        self.graceful.cancel();
    }

    /// Why the run was cancelled, if it was.
    pub fn reason(&self) -> Option<crate::runner::CancelReason> {
        self.reason.get().copied()
    }

    /// Stops one task as Ctrl-C stops them all. False for a task the run does not have.
    pub fn stop_task(&self, task: &str) -> bool {
        match self.tasks.lock().unwrap().get(task) {
            Some(token) => {
                token.cancel();
                true
            }
            None => false,
        }
    }

    /// Whether `task` was stopped, alone or with the run.
    pub fn task_stopped(&self, task: &str) -> bool {
        let stopped = self.tasks.lock().unwrap().get(task).map(|t| t.is_cancelled());
        stopped.unwrap_or(false) || self.graceful.is_cancelled()
    }
}

/// What every step of one task needs.
pub(crate) struct Ctx<E> {
    pub engine: E,
    pub cfg: Arc<RunConfig>,
    pub task: TaskSpec,
    pub events: EventSender,
    pub stop: Stop,
    pub log: PathBuf,
    pub stderr_log: PathBuf,
    /// The task's way to the run's gateway, once admitted.
    pub admission: Option<crate::gateway::Admission>,
    /// How its container collects its work once the CLI ended (else the sandbox does).
    pub in_place: Option<collect::InPlace>,
    /// Cancelled once the engine said the container's processes ended: nothing in it can use
    /// the gateway any more, so its token goes while the container is still being removed.
    pub exited: CancellationToken,
}

/// Runs `task` from the commit `base` (the scheduler's choice: `--base` or its dependencies'
/// results).
pub(crate) async fn run<E: ContainerEngine>(
    engine: E,
    cfg: Arc<RunConfig>,
    task: TaskSpec,
    base: String,
    events: EventSender,
    stop: Stop,
) -> TaskResult {
    let started = Instant::now();
    // Counted off when the container is gone (or the task returns early, or panics).
    let mut gateway_use = cfg.gateway.as_ref().map(|g| g.user());
    let mut usage = None;
    let layout = &cfg.layout;
    let mut ctx = Ctx {
        admission: None,
        in_place: None,
        exited: CancellationToken::new(),
        log: layout.log(&task.id),
        stderr_log: layout.stderr_log(&task.id),
        engine,
        cfg: cfg.clone(),
        task,
        events,
        stop,
    };
    let id = ctx.task.id.clone();
    let mut result = new_result(&ctx, &base);
    ctx.events.send(Event::TaskPreparing {
        task: id.clone(),
        base_commit: base.clone(),
    });
    let user = cfg.repo.task_user();
    let checkout = match Checkout::create(&cfg.repo, layout, &id, &base, user).await {
        Ok(c) => c,
        Err(e) => return finish(result, TaskStatus::Error, Some(e.to_string()), started),
    };
    result.timings.checkout_s = started.elapsed().as_secs_f64();
    // Cancelled while its checkout was made: no container.
    let early = match ctx.stop.graceful.is_cancelled() {
        true => Err((TaskStatus::Cancelled, "cancelled before it started".to_string())),
        false => session::prepare(&ctx, checkout.handed_to())
            .and_then(|()| write_prompt(&ctx))
            .map_err(|e| (TaskStatus::Error, e)),
    };
    if let Err((status, msg)) = early {
        return end_before_container(&cfg, &checkout, result, status, msg, started).await;
    }
    let runtime = ctx.task.runtime.clone();
    let mut job = collect::Job {
        repo: &cfg.repo,
        run: layout,
        owner: &cfg.owner,
        task: &id,
        base: &base,
        image: &cfg.image,
        user,
        handed: checkout.handed_to().is_some(),
        limits: ctx.task.limits,
        runtime: runtime.as_deref(),
        salvage: ctx.task.salvage,
        ended_by_itself: false,
    };
    // Without it the sandbox collects, as it does for a task that was stopped.
    ctx.in_place = collect::prepare_in_place(&job, ctx.task.timeout)
        .await
        .inspect_err(|e| tracing::warn!(task = %id, "collecting in place: {e}; the sandbox will"))
        .ok();

    let end = start_container(
        &mut ctx,
        &checkout.path,
        &mut result,
        &mut gateway_use,
        &mut usage,
    )
    .await;
    let settled = end.as_ref().is_none_or(|e| e.settled);
    // Not when sandpen stopped it: for a reason, or because the engine failed while it ran.
    job.ended_by_itself = end
        .as_ref()
        .is_some_and(|e| e.stopped_for.is_none() && e.problems.is_empty());
    if let Some(end) = end {
        apply_end(&mut result, &ctx, end);
    }
    if usage.is_none() {
        usage = release_gateway(&ctx, settled, &mut gateway_use).await;
    }
    if settled {
        session::scrub(&ctx).await;
    }
    if let Some(usage) = usage {
        apply_usage(&mut result, usage);
    }
    // A container on this machine wrote its state file into the checkout here; one elsewhere
    // left this checkout as it was made (its state is read from the work that comes back).
    if ctx.engine.shares_disk()
        && let Some(state) = read_state(&checkout.path, &id).await
    {
        set_state(&mut result, state);
    }
    if !settled {
        result.left_for_gc = true;
        let msg = format!(
            "{}; its work was not collected because the engine did not confirm that its \
             container is gone (`sandpen gc` collects it later)",
            result.message.take().unwrap_or_default()
        );
        return finish(result, TaskStatus::Error, Some(msg), started);
    }

    // A container on another machine that never ran did nothing, and can send nothing back:
    // the task ends as it was classified (cancelled while its node pulled the image, say).
    if !ctx.engine.shares_disk() && result.started_at.is_none() {
        let (status, message) = (result.status, result.message.take());
        return finish(result, status, message, started);
    }
    bring_back(&ctx, &job, result, started).await
}

/// The task's result before anything ran: its files, limits and base.
fn new_result<E>(ctx: &Ctx<E>, base: &str) -> TaskResult {
    let (cfg, id) = (&ctx.cfg, &ctx.task.id);
    TaskResult {
        log: ctx.log.display().to_string(),
        stderr_log: ctx.stderr_log.display().to_string(),
        stats_log: Some(cfg.layout.stats_log(id).display().to_string()),
        began_at: Some(now_rfc3339()),
        checkout: cfg.layout.checkout(id).display().to_string(),
        disk_limit_bytes: ctx.task.disk_bytes,
        base_commit: Some(base.to_string()),
        limits_enforced: cfg.limits_enforced,
        memory_request_bytes: Some(ctx.task.memory_request_bytes.max(0) as u64),
        ..TaskResult::new(id, &cfg.image, ctx.task.limits)
    }
}

/// A task that ends before its container was made: its checkout, which no task touched, goes
/// back to the repository's owner.
async fn end_before_container(
    cfg: &RunConfig,
    checkout: &Checkout,
    result: TaskResult,
    status: TaskStatus,
    mut msg: String,
    started: Instant,
) -> TaskResult {
    let handed = checkout.handed_to().is_some();
    if let Err(e) = crate::workspace::hand_back(&checkout.path, handed, cfg.repo.owner).await {
        msg = format!("{msg}; and {e}");
    }
    finish(result, status, Some(msg), started)
}

/// Checks the task's agent definition, admits it at the gateway and runs its container; None
/// when it never started (the reason is in `result`).
async fn start_container<E: ContainerEngine>(
    ctx: &mut Ctx<E>,
    checkout: &std::path::Path,
    result: &mut TaskResult,
    gateway_use: &mut Option<crate::gateway::GatewayUser>,
    usage: &mut Option<crate::gateway::GatewayUsage>,
) -> Option<container::ContainerEnd> {
    if let Err(why) = agent::check_definition(checkout) {
        result.status = TaskStatus::Failed;
        result.message = Some(format!("governance violation: {why}; the task was not started"));
        return None;
    }
    if let Err(e) = admit(ctx).await {
        result.status = TaskStatus::Error;
        result.message = Some(format!("{e}; the task was not started"));
        return None;
    }
    let t = Instant::now();
    let end = run_container(ctx, checkout, gateway_use, usage).await;
    result.timings.container_s = Some(t.elapsed().as_secs_f64());
    Some(end)
}

/// The gateway's meter of the task; past its budget, a task that did not succeed ended for it.
fn apply_usage(result: &mut TaskResult, usage: crate::gateway::GatewayUsage) {
    if usage.budget_exceeded && result.status != TaskStatus::Succeeded {
        result.status = TaskStatus::BudgetExceeded;
        result.message = Some(format!(
            "its model requests reached the budget of ${:.4} (${:.4} metered at the gateway); \
             the gateway refused the next one",
            usage.max_cost_usd.unwrap_or_default(),
            usage.cost_usd
        ));
    }
    result.gateway = Some(usage);
}

/// The work comes back whatever happened to the container, cancelled runs included.
async fn bring_back<E: ContainerEngine>(
    ctx: &Ctx<E>,
    job: &collect::Job<'_>,
    mut result: TaskResult,
    started: Instant,
) -> TaskResult {
    let collecting = Instant::now();
    let collected = collect::collect(&ctx.engine, job).await;
    result.timings.collect_s = collecting.elapsed().as_secs_f64();
    let (status, message) = (result.status, result.message.take());
    match collected {
        Ok(c) => {
            result.set_collected(c);
            let repo = &ctx.cfg.repo;
            result.changes = repo.report_changes(job.base, result.head_commit.as_deref()).await;
            if !ctx.engine.shares_disk()
                && let Some(head) = result.head_commit.clone()
                && let Some(state) = state_at(repo, &head, job.task).await
            {
                set_state(&mut result, state);
            }
            finish(result, status, message, started)
        }
        Err(e) => {
            let msg = match message {
                Some(m) => format!("{m}; and bringing its work back failed: {e}"),
                None => format!("bringing its work back failed: {e}; the checkout is kept"),
            };
            finish(result, TaskStatus::Error, Some(msg), started)
        }
    }
}

/// The container's whole life; in gateway mode the task's token is released, and its use of
/// the gateway counted off, as soon as its processes ended, so that the last task's removal
/// and the gateway's own removal overlap instead of following each other.
async fn run_container<E: ContainerEngine>(
    ctx: &Ctx<E>,
    checkout: &std::path::Path,
    gateway_use: &mut Option<crate::gateway::GatewayUser>,
    usage: &mut Option<crate::gateway::GatewayUsage>,
) -> container::ContainerEnd {
    let run = container::run(ctx, checkout);
    tokio::pin!(run);
    tokio::select! {
        biased;
        end = &mut run => end,
        _ = ctx.exited.cancelled(), if ctx.admission.is_some() => {
            *usage = release_gateway(ctx, true, gateway_use).await;
            run.await
        }
    }
}

/// Releases the task's token (waiting for the gateway's answer when `settled`) and counts its
/// use of the gateway off; its meter, when it had a token.
async fn release_gateway<E>(
    ctx: &Ctx<E>,
    settled: bool,
    gateway_use: &mut Option<crate::gateway::GatewayUser>,
) -> Option<crate::gateway::GatewayUsage> {
    let usage = match (&ctx.cfg.gateway, &ctx.admission) {
        (Some(g), Some(_)) => Some(g.gw.release(&ctx.task.id, settled).await),
        _ => None,
    };
    if let Some(mut u) = gateway_use.take() {
        u.settled = settled;
    }
    usage
}

/// In gateway mode, the task's token, once the run's network exists and the upstream does not
/// limit the run. The gateway makes it live later, while the container starts (`gate`).
async fn admit<E>(ctx: &mut Ctx<E>) -> Result<(), crate::gateway::GatewayError> {
    if let Some(g) = &ctx.cfg.gateway {
        let admission = g.gw.prepare(&ctx.task.id).await?;
        // Ungated (a Swarm): live before the container is made, as no gate waits for it.
        if !g.gw.gated() {
            let (task, allow) = (&ctx.task.id, &ctx.task.allow_hosts);
            g.gw.admit(task, &admission, allow, ctx.task.max_cost).await?;
        }
        ctx.admission = Some(admission);
    }
    Ok(())
}

/// The task's state file, read off the async workers and given up after a second.
async fn read_state(checkout: &std::path::Path, id: &str) -> Option<phases::PhaseState> {
    let (c, t) = (checkout.to_path_buf(), id.to_string());
    let read = tokio::task::spawn_blocking(move || phases::read_state(&c, &t));
    tokio::time::timeout(std::time::Duration::from_secs(1), read)
        .await
        .ok()?
        .ok()
        .flatten()
}

/// The WorkflowManager's progress as its state file tells it (it overrides the output's marker).
fn set_state(result: &mut TaskResult, state: phases::PhaseState) {
    result.last_phase = Some(state.phase);
    result.last_phase_name = Some(state.name);
    result.phases_completed = state.completed.len() as u32;
}

/// The task's state file as committed at `rev` of the user's repository.
async fn state_at(repo: &Repo, rev: &str, id: &str) -> Option<phases::PhaseState> {
    let path = phases::state_path(id);
    let text = repo.small_file_at(rev, &path, phases::STATE_LIMIT).await?;
    phases::parse_state(&text)
}

/// The prompt, as a file mounted read-only into the container (it reaches the CLI on stdin):
/// the task's, or a resumed session's short one.
fn write_prompt<E: ContainerEngine>(ctx: &Ctx<E>) -> Result<(), String> {
    let path = ctx.cfg.layout.prompt(&ctx.task.id);
    let dir = path.parent().expect("prompts live in a directory");
    let prompt = session::resume(ctx).map_or(&ctx.task.prompt, |r| &r.prompt);
    std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::write(&path, prompt))
        .map_err(|e| format!("writing the prompt to {}: {e}", path.display()))
}

/// The container's end into the task's report entry: what was measured, and the verdict.
fn apply_end<E: ContainerEngine>(result: &mut TaskResult, ctx: &Ctx<E>, end: ContainerEnd) {
    result.container_id = end.id;
    result.node = end.node;
    result.started_at = end.started_at;
    result.finished_at = end.finished_at;
    let stats = &end.stats;
    result.peak_memory_bytes = (stats.samples > 0).then_some(stats.peak_memory_bytes);
    result.mean_cpu_percent = stats.mean_cpu_percent;
    result.peak_cpu_percent = stats.peak_cpu_percent;
    result.peak_disk_bytes = end.disk.peak_bytes;
    (result.log_dropped_bytes, result.stderr_dropped_bytes) = end.log_dropped;
    let progress: &AgentProgress = &end.output.progress;
    result.agent = agent_summary(progress);
    result.api_retries = progress.api_retries;
    result.session = session::used(ctx, progress);
    // The state file, read after the container, overrides this when there is one.
    let marker = end.output.marker_phase;
    if marker > 0 {
        result.last_phase = Some(marker);
        result.last_phase_name = Some(phases::PHASES[marker as usize - 1].to_string());
    }
    let verdict = classify(
        &Ending {
            stopped_for: end.stopped_for,
            exit: end.exit,
            waited_code: end.waited_code,
            agent: Some(progress),
        },
        ctx.task.timeout,
        ctx.task.disk_bytes,
    );
    result.exit_code = verdict.exit_code;
    if end.problems.is_empty() {
        result.status = verdict.status;
        result.message = verdict.message;
    } else {
        result.status = TaskStatus::Error;
        result.message = Some(end.problems.join("; "));
    }
}

fn finish(mut r: TaskResult, status: TaskStatus, message: Option<String>, started: Instant) -> TaskResult {
    r.status = status;
    r.message = message;
    r.duration_s = started.elapsed().as_secs_f64();
    r.ended_at = Some(now_rfc3339());
    r
}

fn agent_summary(p: &AgentProgress) -> Option<AgentSummary> {
    let r = p.result.as_ref()?;
    Some(AgentSummary {
        num_turns: r.num_turns,
        cost_usd: r.cost_usd,
        input_tokens: r.input_tokens,
        output_tokens: r.output_tokens,
        is_error: r.is_error,
        subtype: r.subtype.clone(),
        api_error_status: r.api_error_status,
    })
}
