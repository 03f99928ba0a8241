//! The result of a task that never got a container (skipped, cancelled before its start, or
//! failed before it): apart from the scheduler, so that `base.rs` and the scheduler both
//! make it without importing each other.

use super::{RunConfig, TaskResult, TaskStatus};
use crate::plan::TaskSpec;

/// The result of a task skipped or cancelled before it started: it will not use the gateway.
pub(super) fn never_started(
    cfg: &RunConfig,
    t: &TaskSpec,
    status: TaskStatus,
    message: String,
) -> TaskResult {
    if let Some(g) = &cfg.gateway {
        g.task_done(true);
    }
    not_run(cfg, t, status, message)
}

/// The result of a task that never got a container.
pub(super) fn not_run(cfg: &RunConfig, t: &TaskSpec, status: TaskStatus, message: String) -> TaskResult {
    TaskResult {
        status,
        message: Some(message),
        limits_enforced: cfg.limits_enforced,
        memory_request_bytes: Some(t.memory_request_bytes.max(0) as u64),
        ..TaskResult::new(&t.id, &cfg.image, t.limits)
    }
}
