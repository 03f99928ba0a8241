//! The run's warm environment as the scheduler sees it (`warm/`): prepared beside the first
//! tasks, which start once its volume is open and wait for it at their first tool, or before
//! them where they cannot start without it (a Swarm's layer is their image). A failed one
//! fails every task that needed it: those not started never start, those started are stopped.

use futures_util::future::BoxFuture;

use super::RunConfig;
use super::channel::EventSender;
use super::events::{Event, TaskStatus};
use crate::warm::Environment;

/// The preparation under way, polled by the scheduler's loop beside its tasks.
pub(super) type Preparing<'a> = BoxFuture<'a, Environment>;

/// Opens the run's environment and starts preparing it, when the run has one and a task to
/// run: said once (`EnvironmentPreparing`), before any task starts.
pub(super) async fn begin<'a>(
    cfg: &'a RunConfig,
    events: &EventSender,
    tasks_to_run: bool,
) -> Option<Preparing<'a>> {
    let warm = cfg.warm.as_ref().filter(|_| tasks_to_run)?;
    events.send(Event::EnvironmentPreparing);
    warm.open().await;
    let gateway = cfg.gateway.as_ref();
    // A use of the gateway of its own: tasks that end before it (none used a tool) must not
    // end the gateway under its downloads.
    let user = gateway.map(|g| {
        g.task_again();
        g.user()
    });
    let prepared = warm.preparer.prepare(gateway);
    Some(Box::pin(async move {
        let env = prepared.await;
        drop(user);
        env
    }))
}

/// How a task that needed a failed environment ends, and why: cancelled when the run was
/// stopped (the preparation was stopped with it), else failed.
pub(super) fn failure(env: &Environment, run_cancelled: bool) -> (TaskStatus, String) {
    match run_cancelled {
        true => (TaskStatus::Cancelled, "cancelled before it started".to_string()),
        false => (
            TaskStatus::Failed,
            format!(
                "its environment ({}, from {}) could not be prepared: see the run's `environment`",
                env.volume, env.from
            ),
        ),
    }
}
