//! One task, top to bottom: checkout, container, output and stats, timeout and cancellation,
//! exit state, removal, result branch. Never prints; reports through events.

use std::fs::File;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use super::RunConfig;
use super::events::{AgentSummary, Event, EventSender, StopReason, TaskResult, TaskStatus, now_rfc3339};
use crate::agent::{self, phases};
use crate::engine::spec::{
    ContainerSpec, HOME, LABEL_OWNER, LABEL_OWNER_START, LABEL_RUN, LABEL_TASK, ReadOnlyMount, WORKDIR,
};
use crate::engine::{ContainerEngine, Stream, short};
use crate::monitor::{AgentEvent, AgentProgress, LineAssembler, StatsSummary, parse_line, sample};
use crate::plan::TaskSpec;
use crate::workspace::Checkout;

/// Cleanup calls get their own limit and run even after cancellation.
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(30);
/// When stats start being read after the container starts.
const STATS_DELAY: Duration = Duration::from_secs(1);
/// How long output may keep arriving after the container stopped.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Tokens that stop a run: the first asks containers to stop (with the grace), the second
/// kills them at once.
#[derive(Debug, Clone, Default)]
pub struct Stop {
    pub graceful: CancellationToken,
    pub kill: CancellationToken,
}

pub(crate) async fn run<E: ContainerEngine>(
    engine: E,
    cfg: Arc<RunConfig>,
    task: TaskSpec,
    events: EventSender,
    stop: Stop,
) -> TaskResult {
    let started = Instant::now();
    let log = cfg.run_dir.join(format!("{}.log", task.id));
    let stderr_log = cfg.run_dir.join(format!("{}.stderr.log", task.id));
    let mut result = TaskResult {
        log: log.display().to_string(),
        stderr_log: stderr_log.display().to_string(),
        checkout: cfg.run_dir.join(&task.id).display().to_string(),
        ..TaskResult::new(&task.id, &cfg.image, task.limits)
    };

    events.send(Event::TaskPreparing {
        task: task.id.clone(),
    });
    let user = cfg.repo.task_user();
    let checkout = match Checkout::create(&cfg.repo, &cfg.run_dir, &task.id, &cfg.base, user).await {
        Ok(c) => {
            result.timings.checkout_s = started.elapsed().as_secs_f64();
            c
        }
        Err(e) => return finish(result, TaskStatus::Error, Some(e.to_string()), started),
    };

    let outcome = match agent::check_definition(&checkout.path) {
        Ok(()) => {
            let t = Instant::now();
            let r = run_container(&engine, &cfg, &task, &events, &stop, &mut result, user).await;
            result.timings.container_s = Some(t.elapsed().as_secs_f64());
            r
        }
        Err(why) => Ok((
            TaskStatus::Failed,
            Some(format!("governance violation: {why}; the task was not started")),
        )),
    };
    if let Some(state) = phases::read_state(&checkout.path, &task.id) {
        result.last_phase = Some(state.phase);
        result.last_phase_name = Some(state.name);
        result.phases_completed = state.completed.len() as u32;
    }
    let (status, message) = match outcome {
        Ok(s) => s,
        Err(msg) => (TaskStatus::Error, Some(msg)),
    };

    // The work comes back whatever happened to the container, cancelled runs included.
    let collecting = Instant::now();
    let collected = checkout.collect(&cfg.repo, &cfg.run_id).await;
    result.timings.collect_s = collecting.elapsed().as_secs_f64();
    match collected {
        Ok(c) => {
            result.branch = c.branch;
            result.commits = c.commits;
            result.salvaged = c.salvaged;
        }
        Err(e) => {
            let msg = match &message {
                Some(m) => format!("{m}; and bringing its work back failed: {e}"),
                None => format!("bringing its work back failed: {e}"),
            };
            return finish(result, TaskStatus::Error, Some(msg), started);
        }
    }
    finish(result, status, message, started)
}

fn finish(mut r: TaskResult, status: TaskStatus, message: Option<String>, started: Instant) -> TaskResult {
    r.status = status;
    r.message = message;
    r.duration_s = started.elapsed().as_secs_f64();
    r
}

/// Creates, starts, watches and removes the container. Ok carries the status the container's
/// end implies; Err an engine failure in words.
async fn run_container<E: ContainerEngine>(
    engine: &E,
    cfg: &RunConfig,
    task: &TaskSpec,
    events: &EventSender,
    stop: &Stop,
    result: &mut TaskResult,
    user: (u32, u32),
) -> Result<(TaskStatus, Option<String>), String> {
    let spec = container_spec(cfg, task, user);
    let t0 = Instant::now();
    let id = engine.create(&spec).await.map_err(|e| e.to_string())?;
    tracing::debug!(task = %task.id, "created at {:?}", t0.elapsed());
    result.container_id = Some(id.clone());
    let outcome = watch(engine, cfg, task, events, stop, result, &id).await;
    if !cfg.keep_containers {
        match tokio::time::timeout(CLEANUP_TIMEOUT, engine.remove(&id)).await {
            Ok(Ok(())) => tracing::debug!(task = %task.id, "removed at {:?}", t0.elapsed()),
            Ok(Err(e)) => tracing::warn!("{e}"),
            Err(_) => tracing::warn!("removing container {} took over {CLEANUP_TIMEOUT:?}", short(&id)),
        }
    }
    outcome
}

async fn watch<E: ContainerEngine>(
    engine: &E,
    cfg: &RunConfig,
    task: &TaskSpec,
    events: &EventSender,
    stop: &Stop,
    result: &mut TaskResult,
    id: &str,
) -> Result<(TaskStatus, Option<String>), String> {
    if stop.graceful.is_cancelled() {
        return Ok((
            TaskStatus::Cancelled,
            Some("the run was cancelled before the task started".into()),
        ));
    }
    let log = File::create(&result.log).map_err(|e| format!("creating {}: {e}", result.log))?;
    let stderr_log =
        File::create(&result.stderr_log).map_err(|e| format!("creating {}: {e}", result.stderr_log))?;
    // Attached before start: output is read from the container's first byte.
    let t0 = Instant::now();
    let attached = engine.attach(id).await.map_err(|e| e.to_string())?;
    tracing::debug!(task = %task.id, "attached after {:?}", t0.elapsed());
    engine.start(id).await.map_err(|e| e.to_string())?;
    tracing::debug!(task = %task.id, "started after {:?}", t0.elapsed());
    result.started_at = Some(now_rfc3339());
    events.send(Event::TaskStarted {
        task: task.id.clone(),
        container_id: id.to_string(),
        at: now_rfc3339(),
    });

    let violation = CancellationToken::new();
    let state_file_seen = Arc::new(AtomicBool::new(false));
    let output = tokio::spawn(pump_output(
        attached,
        log,
        stderr_log,
        task.id.clone(),
        events.clone(),
        violation.clone(),
        state_file_seen.clone(),
    ));
    let stats_stop = CancellationToken::new();
    let stats = tokio::spawn(pump_stats(
        engine.stats(id),
        task.id.clone(),
        events.clone(),
        stats_stop.clone(),
    ));
    let phase_watch = tokio::spawn(watch_phases(
        cfg.run_dir.join(&task.id),
        task.id.clone(),
        events.clone(),
        stats_stop.clone(),
        state_file_seen,
    ));

    let mut stopped_for = None;
    let waited = tokio::select! {
        r = engine.wait(id) => Some(r),
        _ = tokio::time::sleep(task.timeout) => { stopped_for = Some(StopReason::Timeout); None }
        _ = stop.graceful.cancelled() => { stopped_for = Some(StopReason::Cancelled); None }
        _ = violation.cancelled() => { stopped_for = Some(StopReason::Governance); None }
    };
    let waited = match waited {
        Some(r) => r,
        None => {
            let reason = stopped_for.expect("set when the wait did not finish");
            events.send(Event::TaskStopping {
                task: task.id.clone(),
                reason,
            });
            tokio::select! {
                r = engine.stop(id, cfg.grace) => if let Err(e) = r { tracing::warn!("{e}") },
                _ = stop.kill.cancelled() => if let Err(e) = engine.kill(id).await { tracing::warn!("{e}") },
            }
            match tokio::time::timeout(CLEANUP_TIMEOUT, engine.wait(id)).await {
                Ok(r) => r,
                Err(_) => {
                    let _ = engine.kill(id).await;
                    engine.wait(id).await
                }
            }
        }
    };
    result.finished_at = Some(now_rfc3339());
    stats_stop.cancel();
    tracing::debug!(task = %task.id, "exited after {:?}", t0.elapsed());
    let _ = phase_watch.await;

    let agent = match tokio::time::timeout(DRAIN_TIMEOUT, output).await {
        Ok(Ok(Ok((progress, marker)))) => {
            // The state file, read after the container, overrides this when there is one.
            if marker > 0 {
                result.last_phase = Some(marker);
                result.last_phase_name = Some(phases::PHASES[marker as usize - 1].to_string());
            }
            progress
        }
        Ok(Ok(Err(e))) => return Err(e),
        Ok(Err(join)) => return Err(format!("reading output failed: {join}")),
        Err(_) => {
            return Err(format!(
                "output kept coming {DRAIN_TIMEOUT:?} after the container stopped"
            ));
        }
    };
    if let Ok(summary) = stats.await {
        result.peak_memory_bytes = (summary.samples > 0).then_some(summary.peak_memory_bytes);
        result.mean_cpu_percent = summary.mean_cpu_percent;
        result.peak_cpu_percent = summary.peak_cpu_percent;
    }
    result.agent = agent_summary(&agent);
    result.api_retries = agent.api_retries;

    let waited_code = waited.map_err(|e| e.to_string())?;
    tracing::debug!(task = %task.id, "output drained after {:?}", t0.elapsed());
    let state = engine.exit_state(id).await.map_err(|e| e.to_string())?;
    tracing::debug!(task = %task.id, "inspected after {:?}", t0.elapsed());
    let exit_code = if state.exit_code >= 0 {
        state.exit_code
    } else {
        waited_code
    };
    result.exit_code = Some(exit_code);
    Ok(classify(
        stopped_for,
        state.oom_killed,
        exit_code,
        state.error,
        &agent,
        task.timeout,
    ))
}

/// The task's status from how its container ended. OOM comes from the engine's OOMKilled
/// state, never from exit code 137 alone.
fn classify(
    stopped_for: Option<StopReason>,
    oom_killed: bool,
    exit_code: i64,
    error: Option<String>,
    agent: &AgentProgress,
    timeout: Duration,
) -> (TaskStatus, Option<String>) {
    match stopped_for {
        Some(StopReason::Timeout) => {
            return (
                TaskStatus::TimedOut,
                Some(format!(
                    "stopped after its timeout of {}",
                    humantime::format_duration(timeout)
                )),
            );
        }
        Some(StopReason::Governance) => {
            let agents = agent
                .init
                .as_ref()
                .map(|i| i.agents.join(", "))
                .unwrap_or_default();
            return (
                TaskStatus::Failed,
                Some(format!(
                    "governance violation: the CLI did not load the {} agent (it listed: {agents}); \
                     the task was stopped",
                    crate::agent::AGENT_NAME
                )),
            );
        }
        Some(StopReason::Cancelled) => {
            return (
                TaskStatus::Cancelled,
                Some("stopped: the run was cancelled".into()),
            );
        }
        None => {}
    }
    if oom_killed {
        return (
            TaskStatus::OomKilled,
            Some("the kernel killed it for exceeding its memory limit".into()),
        );
    }
    if let Some(e) = error {
        return (TaskStatus::Error, Some(e));
    }
    let agent_error = agent.result.as_ref().map(|r| r.is_error);
    match (exit_code, agent_error) {
        (0, Some(false)) => (TaskStatus::Succeeded, None),
        (0, Some(true)) => (
            TaskStatus::Failed,
            Some("the CLI reported an error result".into()),
        ),
        (0, None) => (
            TaskStatus::Failed,
            Some("the CLI exited without reporting a result".into()),
        ),
        (code, _) => (TaskStatus::Failed, Some(format!("exited with code {code}"))),
    }
}

fn container_spec(cfg: &RunConfig, task: &TaskSpec, user: (u32, u32)) -> ContainerSpec {
    let mut env = vec![
        format!("SANDPEN_RUN_ID={}", cfg.run_id),
        format!("SANDPEN_TASK_ID={}", task.id),
        format!("ORCHESTRATOR_TASK_ID={}", task.id),
        format!("ORCHESTRATOR_WORKTREE={WORKDIR}"),
        format!("HOME={HOME}"),
        "IS_SANDBOX=1".to_string(),
    ];
    // `{task}` in a passed-through value becomes the task's id: one ANTHROPIC_BASE_URL can
    // then give each task its own path (a scripted model server, a per-task proxy route).
    env.extend(
        cfg.passthrough_env
            .iter()
            .map(|kv| kv.replace("{task}", &task.id)),
    );
    env.extend(task.env.iter().map(|(k, v)| format!("{k}={v}")));
    let labels = [
        (LABEL_RUN, cfg.run_id.clone()),
        (LABEL_TASK, task.id.clone()),
        (LABEL_OWNER, cfg.owner.clone()),
        (LABEL_OWNER_START, cfg.owner_start.clone()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    ContainerSpec {
        name: format!("sandpen-{}-{}", cfg.run_id, task.id),
        image: cfg.image.clone(),
        cmd: crate::agent::command(&task.prompt, cfg.max_turns),
        env,
        user,
        labels,
        workspace: cfg.run_dir.join(&task.id),
        read_only: vec![ReadOnlyMount {
            source: cfg.agents_dir.clone(),
            target: format!("{HOME}/.claude/agents"),
        }],
        limits: task.limits,
        network: cfg.network.clone(),
        engine_log: cfg.keep_containers,
    }
}

/// Appends every chunk to the task's log files as it arrives (nothing buffered in sandpen, so
/// a crash loses nothing), and follows the CLI's stream-json on stdout.
async fn pump_output(
    mut output: crate::engine::OutputStream,
    mut log: File,
    mut stderr_log: File,
    task: String,
    events: EventSender,
    violation: CancellationToken,
    state_file_seen: Arc<AtomicBool>,
) -> Result<(AgentProgress, u32), String> {
    let mut lines = LineAssembler::new();
    let mut progress = AgentProgress::default();
    let mut last_activity = String::new();
    let mut marker_phase = 0;
    let mut on_line = |line: &[u8], progress: &mut AgentProgress| {
        if let Some(ev) = parse_line(line) {
            // The command line guarantees the agent is asked for; the init event proves the CLI
            // found it. Without it the task is stopped: no work outside the WorkflowManager.
            if let AgentEvent::Init(init) = &ev
                && !init.agents.iter().any(|a| a == agent::AGENT_NAME)
            {
                violation.cancel();
            }
            // The stream's own phase markers, shown while the task has no state file.
            if let AgentEvent::Assistant { text: Some(text), .. } = &ev
                && let Some(n) = phases::marker(text)
                && n > marker_phase
            {
                marker_phase = n;
                if !state_file_seen.load(Ordering::Relaxed) {
                    events.send(Event::Phase {
                        task: task.clone(),
                        phase: n,
                        name: phases::PHASES[n as usize - 1].to_string(),
                        completed: Vec::new(),
                    });
                }
            }
            progress.apply(&ev);
            let activity = progress.activity();
            if activity != last_activity {
                last_activity.clone_from(&activity);
                events.send(Event::Agent {
                    task: task.clone(),
                    activity,
                    turns: progress.turns,
                    tool: progress.tool.clone(),
                    api_retries: progress.api_retries,
                });
            }
        }
    };
    while let Some(chunk) = output.next().await {
        let (stream, bytes) = chunk.map_err(|e| e.to_string())?;
        match stream {
            Stream::Stdout => {
                log.write_all(&bytes)
                    .map_err(|e| format!("writing the task's log: {e}"))?;
                for line in lines.push(&bytes) {
                    on_line(&line, &mut progress);
                }
            }
            Stream::Stderr => stderr_log
                .write_all(&bytes)
                .map_err(|e| format!("writing the task's stderr log: {e}"))?,
        }
    }
    if let Some(rest) = lines.finish() {
        on_line(&rest, &mut progress);
    }
    Ok((progress, marker_phase))
}

async fn pump_stats(
    mut stats: crate::engine::StatsStream,
    task: String,
    events: EventSender,
    stop: CancellationToken,
) -> StatsSummary {
    let mut summary = StatsSummary::default();
    // The engine samples once a second and the first sample has no CPU figure: a task that
    // ends within a second would cost the engine a stats subscription and show nothing.
    tokio::select! {
        _ = tokio::time::sleep(STATS_DELAY) => {}
        _ = stop.cancelled() => return summary,
    }
    loop {
        let next = tokio::select! {
            s = stats.next() => s,
            _ = stop.cancelled() => None,
        };
        let Some(Ok(raw)) = next else { break };
        let s = sample(&raw);
        // A stopped container reports zeros; they are not a sample of the task.
        if s.memory_bytes == 0 && s.pids.unwrap_or(0) == 0 {
            continue;
        }
        summary.add(&s);
        events.send(Event::Stats {
            task: task.clone(),
            sample: s,
        });
    }
    summary
}

/// Follows the task's workflow state file while it runs (about once a second).
async fn watch_phases(
    checkout: std::path::PathBuf,
    task: String,
    events: EventSender,
    stop: CancellationToken,
    seen: Arc<AtomicBool>,
) {
    let mut last: Option<phases::PhaseState> = None;
    loop {
        let (c, t) = (checkout.clone(), task.clone());
        let now = tokio::task::spawn_blocking(move || phases::read_state(&c, &t))
            .await
            .ok()
            .flatten();
        if now.is_some() && now != last {
            seen.store(true, Ordering::Relaxed);
            let s = now.clone().expect("checked");
            events.send(Event::Phase {
                task: task.clone(),
                phase: s.phase,
                name: s.name,
                completed: s.completed,
            });
            last = now;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.cancelled() => return,
        }
    }
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
    })
}
