//! Which ended attempts `--retries` runs again: failures that are not the agent's always (an
//! `error` of the engine or the set-up, and a session whose model requests ran out of retries
//! on 529 overloaded), the agent's own only when `--retry-on` names them.

use std::sync::Arc;

use super::RunConfig;
use super::events::{TaskResult, TaskStatus};
use crate::agent::session::{self, Resume};

/// What an ended attempt was, as far as retrying goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum RetryOn {
    /// An engine or set-up failure (always retried).
    Error,
    /// The model API answered 529 past the CLI's own retries (always retried).
    Overloaded,
    /// The agent failed (its CLI ended with an error, or exited non-zero).
    Failed,
    /// The task ran past its timeout.
    TimedOut,
}

/// The model API's status for "overloaded".
const OVERLOADED: u16 = 529;

/// What `r`'s attempt was; None for one never retried (it succeeded, was cancelled or
/// skipped, was left for gc, or hit a limit of its own: memory, disk, budget).
pub fn kind(r: &TaskResult) -> Option<RetryOn> {
    if r.left_for_gc {
        return None;
    }
    let overloaded = r
        .agent
        .as_ref()
        .is_some_and(|a| a.api_error_status == Some(OVERLOADED));
    match r.status {
        TaskStatus::Error => Some(RetryOn::Error),
        TaskStatus::Failed | TaskStatus::TimedOut if overloaded => Some(RetryOn::Overloaded),
        TaskStatus::Failed => Some(RetryOn::Failed),
        TaskStatus::TimedOut => Some(RetryOn::TimedOut),
        _ => None,
    }
}

/// Whether an attempt of `kind` runs again: `error` and `overloaded` always, the others when
/// `on` (`--retry-on`) names them.
pub fn wanted(kind: RetryOn, on: &[RetryOn]) -> bool {
    matches!(kind, RetryOn::Error | RetryOn::Overloaded) || on.contains(&kind)
}

/// The run's settings for the attempt after `r`'s (attempt `ended`): it resumes the agent's
/// session `r` left, told why that attempt stopped, when its transcript is there; it starts
/// over otherwise (never with a resume meant for an earlier attempt).
pub fn next_config(cfg: &Arc<RunConfig>, r: &TaskResult, ended: u32) -> Arc<RunConfig> {
    let resume = r
        .session
        .as_ref()
        .and_then(|s| s.id.clone())
        .filter(|id| session::resumable(&cfg.layout.session(&r.id), id).is_ok())
        .map(|id| Resume {
            session_id: id,
            prompt: session::resume_prompt(ended, r.status.as_str(), r.message.as_deref()),
        });
    if resume.is_none() && !cfg.earlier.resume.contains_key(&r.id) {
        return cfg.clone();
    }
    let mut next = (**cfg).clone();
    match resume {
        Some(resume) => next.earlier.resume.insert(r.id.clone(), resume),
        None => next.earlier.resume.remove(&r.id),
    };
    Arc::new(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::events::AgentSummary;

    fn ended(status: TaskStatus, api_error_status: Option<u16>) -> TaskResult {
        let limits = crate::engine::spec::Limits {
            nano_cpus: 1,
            memory_bytes: 1,
            pids: 1,
        };
        TaskResult {
            status,
            agent: Some(AgentSummary {
                is_error: api_error_status.is_some(),
                api_error_status,
                ..Default::default()
            }),
            ..TaskResult::new("t", "img", limits)
        }
    }

    #[test]
    fn infrastructure_failures_are_retried_and_the_agents_own_only_when_asked() {
        use RetryOn::*;
        let overloaded = ended(TaskStatus::Failed, Some(529));
        assert_eq!(kind(&overloaded), Some(Overloaded));
        assert!(wanted(Overloaded, &[]) && wanted(Error, &[]));
        assert_eq!(kind(&ended(TaskStatus::Failed, Some(400))), Some(Failed));
        assert!(!wanted(Failed, &[]) && wanted(Failed, &[Failed]));
        assert_eq!(kind(&ended(TaskStatus::TimedOut, None)), Some(TimedOut));
        assert!(!wanted(TimedOut, &[Failed]) && wanted(TimedOut, &[TimedOut]));
        assert_eq!(kind(&ended(TaskStatus::Error, None)), Some(Error));
        for never in [
            TaskStatus::Succeeded,
            TaskStatus::Cancelled,
            TaskStatus::Skipped,
            TaskStatus::OomKilled,
            TaskStatus::DiskExceeded,
            TaskStatus::BudgetExceeded,
        ] {
            assert_eq!(kind(&ended(never, Some(529))), None, "{never:?}");
        }
        let mut left = ended(TaskStatus::Error, None);
        left.left_for_gc = true;
        assert_eq!(kind(&left), None);
    }
}
