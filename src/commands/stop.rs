//! `sandpen stop [RUN] [TASK]`: stops a live run, or one of its tasks, from another terminal,
//! with the outcome of Ctrl-C in the run's own (statuses `cancelled`, containers removed, work
//! brought back, report written). The request goes through the run directory
//! (`runs::control`); this waits until the owning process has done it.

use std::time::{Duration, Instant};

use crate::cli::StopArgs;
use crate::exit::{self, UsageError};
use crate::runs::{self, control};
use crate::workspace::{Repo, RunDir};

/// How long the owning process may take to pick a request up (it looks four times a second).
const TAKE_LIMIT: Duration = Duration::from_secs(5);

pub async fn run(args: StopArgs) -> anyhow::Result<i32> {
    let repo = Repo::discover(args.repo.as_deref()).await?;
    let (layout, task) = target(&repo, &args)?;
    let run = runs::run_id(&layout);
    if !runs::owner_alive(&layout) {
        return Err(UsageError(format!(
            "run {run} is not live: its sandpen process has ended\nfix: nothing to stop; \
             `sandpen gc` finishes a run whose sandpen died, `sandpen ps` shows what runs"
        ))
        .into());
    }
    if let Some(t) = &task
        && let Some(entry) = ended(&layout, t)
    {
        note(&format!("task {t} of run {run} has already ended: {entry}"));
        return Ok(exit::SUCCESS);
    }
    let sent = control::send(&layout, &control::StopRequest { task: task.clone() })
        .map_err(|e| anyhow::anyhow!("writing the request in {}: {e}", layout.control().display()))?;
    let what = match &task {
        Some(t) => format!("task {t} of run {run}"),
        None => format!("run {run}"),
    };
    note(&format!("stopping {what}"));
    let asked = Instant::now();
    while sent.exists() {
        if asked.elapsed() > TAKE_LIMIT || !runs::owner_alive(&layout) {
            let _ = std::fs::remove_file(&sent);
            anyhow::bail!(
                "the run's sandpen did not take the request within {}s; stop it in its own \
                 terminal (Ctrl-C), or end its process",
                TAKE_LIMIT.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The owner stops, collects and reports with its own time limits: wait for its word.
    loop {
        if let Some(t) = &task
            && let Some(entry) = ended(&layout, t)
        {
            note(&format!("{t}: {entry}"));
            break;
        }
        if !runs::owner_alive(&layout) {
            note(&format!("run {run} ended; report: {}", layout.report().display()));
            break;
        }
        tokio::time::sleep(control::POLL).await;
    }
    Ok(exit::SUCCESS)
}

/// The run and the task that the arguments name.
fn target(repo: &Repo, args: &StopArgs) -> anyhow::Result<(RunDir, Option<String>)> {
    let known_run = |id: &str| runs::runs(&repo.runs).iter().any(|r| runs::run_id(r) == id);
    let (run, task) = match (&args.first, &args.second) {
        (Some(run), Some(task)) => (Some(run.as_str()), Some(task.clone())),
        (Some(one), None) if known_run(one) => (Some(one.as_str()), None),
        (Some(task), None) => (None, Some(task.clone())),
        (None, _) => (None, None),
    };
    let layout = runs::find_run_by_prefix(&repo.runs, run)?;
    if let Some(t) = &task {
        runs::find_task(&layout, t)?;
    }
    Ok((layout, task))
}

/// The task's outcome in the report, once it has one.
fn ended(layout: &RunDir, task: &str) -> Option<String> {
    let report = runs::read_report(layout)?;
    let t = report
        .tasks
        .into_iter()
        .find(|t| t.id == task && !t.left_for_gc)?;
    let status = serde_json::to_value(t.status).ok()?;
    let status = status.as_str().unwrap_or("ended").to_string();
    Some(match t.message {
        Some(m) => format!("{status}: {m}"),
        None => status,
    })
}

fn note(line: &str) {
    eprintln!("{line}");
}
