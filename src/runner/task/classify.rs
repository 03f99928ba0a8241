//! A task's status from how its container ended: pure logic, no engine, no I/O.

use std::time::Duration;

use crate::engine::ExitState;
use crate::monitor::AgentProgress;
use crate::runner::events::{StopReason, TaskStatus};

/// Everything the classification looks at.
#[derive(Debug, Default)]
pub struct Ending<'a> {
    /// Why sandpen stopped the container, when it did.
    pub stopped_for: Option<StopReason>,
    /// The container's state after it stopped, as the engine reported it.
    pub exit: Option<ExitState>,
    /// The code the wait returned, used when the state has none.
    pub waited_code: Option<i64>,
    pub agent: Option<&'a AgentProgress>,
}

/// What the report says about the task's end.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub status: TaskStatus,
    pub message: Option<String>,
    /// The main process's exit code; None when it does not describe the end (see `classify`).
    pub exit_code: Option<i64>,
}

impl Verdict {
    fn new(status: TaskStatus, message: impl Into<Option<String>>, exit_code: Option<i64>) -> Self {
        Self {
            status,
            message: message.into(),
            exit_code,
        }
    }
}

/// OOM comes from the engine's OOMKilled state, never from exit code 137 alone. When the
/// kernel killed a process for memory but the main process survived it and exited 0, that 0
/// would mislead: the exit code is then reported as null, and the message says why.
pub fn classify(end: &Ending, timeout: Duration, disk_limit: Option<u64>) -> Verdict {
    let code = end
        .exit
        .as_ref()
        .map(|s| s.exit_code)
        .filter(|c| *c >= 0)
        .or(end.waited_code);
    match end.stopped_for {
        Some(StopReason::Timeout) => {
            let msg = format!(
                "stopped after its timeout of {}",
                humantime::format_duration(timeout)
            );
            return Verdict::new(TaskStatus::TimedOut, msg, code);
        }
        Some(StopReason::Governance) => {
            let agents = end
                .agent
                .and_then(|a| a.init.as_ref())
                .map(|i| i.agents.join(", "))
                .unwrap_or_default();
            let msg = format!(
                "governance violation: the CLI did not load the {} agent (it listed: {agents}); \
                 the task was stopped",
                crate::agent::AGENT_NAME
            );
            return Verdict::new(TaskStatus::Failed, msg, code);
        }
        Some(StopReason::Cancelled) => {
            return Verdict::new(
                TaskStatus::Cancelled,
                "stopped by an interrupt or `sandpen stop`".to_string(),
                code,
            );
        }
        Some(StopReason::Disk) => {
            let limit = disk_limit.map(|b| indicatif::HumanBytes(b).to_string());
            let msg = format!(
                "stopped: its checkout and out directory grew past its disk limit of {}; the \
                 work up to then is kept",
                limit.unwrap_or_else(|| "?".into())
            );
            return Verdict::new(TaskStatus::DiskExceeded, msg, code);
        }
        Some(StopReason::Budget) => {
            let msg = "stopped: its model requests reached its budget (metered at the gateway); \
                       the work up to then is kept";
            return Verdict::new(TaskStatus::BudgetExceeded, msg.to_string(), code);
        }
        None => {}
    }
    if let Some(state) = &end.exit {
        if state.oom_killed {
            return match code {
                Some(0) | None => Verdict::new(
                    TaskStatus::OomKilled,
                    "the kernel killed a process of the task for exceeding its memory limit \
                     (OOMKilled); the main process went on and exited 0 afterwards, so no exit \
                     code is reported"
                        .to_string(),
                    None,
                ),
                Some(c) => Verdict::new(
                    TaskStatus::OomKilled,
                    format!(
                        "the kernel killed a process of the task for exceeding its memory limit \
                         (OOMKilled); the main process exited with code {c}"
                    ),
                    Some(c),
                ),
            };
        }
        if let Some(e) = &state.error {
            return Verdict::new(TaskStatus::Error, e.clone(), code);
        }
    }
    let agent_error = end.agent.and_then(|a| a.result.as_ref()).map(|r| r.is_error);
    match (code, agent_error) {
        (Some(0), Some(false)) => Verdict::new(TaskStatus::Succeeded, None, code),
        (Some(0), Some(true)) => Verdict::new(
            TaskStatus::Failed,
            "the CLI reported an error result".to_string(),
            code,
        ),
        (Some(0), None) => Verdict::new(
            TaskStatus::Failed,
            "the CLI exited without reporting a result".to_string(),
            code,
        ),
        (Some(c), _) => Verdict::new(TaskStatus::Failed, format!("exited with code {c}"), code),
        (None, _) => Verdict::new(
            TaskStatus::Error,
            "the engine did not say how the container ended".to_string(),
            None,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::parse_line;

    fn agent(lines: &[&str]) -> AgentProgress {
        let mut p = AgentProgress::default();
        for l in lines {
            if let Some(ev) = parse_line(l.as_bytes()) {
                p.apply(&ev);
            }
        }
        p
    }

    fn exited(code: i64, oom: bool) -> Option<ExitState> {
        Some(ExitState {
            exit_code: code,
            oom_killed: oom,
            error: None,
            disk_over: None,
        })
    }

    const OK: &str = r#"{"type":"result","subtype":"success","is_error":false,"num_turns":2}"#;
    const ERR: &str = r#"{"type":"result","subtype":"error_during_execution","is_error":true,"num_turns":2}"#;
    const T: Duration = Duration::from_secs(60);

    #[test]
    fn success_needs_exit_zero_and_a_result_that_is_not_an_error() {
        let ok = agent(&[OK]);
        let end = Ending {
            exit: exited(0, false),
            agent: Some(&ok),
            ..Default::default()
        };
        assert_eq!(classify(&end, T, None).status, TaskStatus::Succeeded);

        let err = agent(&[ERR]);
        let end = Ending {
            exit: exited(0, false),
            agent: Some(&err),
            ..Default::default()
        };
        let v = classify(&end, T, None);
        assert_eq!(v.status, TaskStatus::Failed);
        assert!(v.message.unwrap().contains("error result"));

        let none = agent(&[]);
        let end = Ending {
            exit: exited(0, false),
            agent: Some(&none),
            ..Default::default()
        };
        assert!(
            classify(&end, T, None)
                .message
                .unwrap()
                .contains("without reporting")
        );

        let end = Ending {
            exit: exited(3, false),
            agent: Some(&ok),
            ..Default::default()
        };
        let v = classify(&end, T, None);
        assert_eq!((v.status, v.exit_code), (TaskStatus::Failed, Some(3)));
    }

    #[test]
    fn oom_comes_from_the_engine_and_never_reports_a_misleading_zero() {
        let ok = agent(&[OK]);
        let survived = Ending {
            exit: exited(0, true),
            agent: Some(&ok),
            ..Default::default()
        };
        let v = classify(&survived, T, None);
        assert_eq!(v.status, TaskStatus::OomKilled);
        assert_eq!(v.exit_code, None, "exit 0 after an OOM kill is not reported");
        assert!(v.message.unwrap().contains("exited 0 afterwards"));

        let killed = Ending {
            exit: exited(137, true),
            ..Default::default()
        };
        let v = classify(&killed, T, None);
        assert_eq!((v.status, v.exit_code), (TaskStatus::OomKilled, Some(137)));

        let not_oom = Ending {
            exit: exited(137, false),
            ..Default::default()
        };
        assert_eq!(
            classify(&not_oom, T, None).status,
            TaskStatus::Failed,
            "137 alone is not OOM"
        );
    }

    #[test]
    fn the_reason_sandpen_stopped_a_task_wins_over_its_exit() {
        for (reason, status) in [
            (StopReason::Timeout, TaskStatus::TimedOut),
            (StopReason::Cancelled, TaskStatus::Cancelled),
            (StopReason::Governance, TaskStatus::Failed),
            (StopReason::Disk, TaskStatus::DiskExceeded),
            (StopReason::Budget, TaskStatus::BudgetExceeded),
        ] {
            let end = Ending {
                stopped_for: Some(reason),
                exit: exited(143, true),
                ..Default::default()
            };
            let v = classify(&end, T, Some(1 << 30));
            assert_eq!(v.status, status, "{reason:?}");
            assert_eq!(v.exit_code, Some(143));
        }
        let end = Ending {
            stopped_for: Some(StopReason::Timeout),
            ..Default::default()
        };
        assert!(classify(&end, T, None).message.unwrap().contains("1m"));
    }

    #[test]
    fn an_engine_error_or_silence_is_an_error() {
        let end = Ending {
            exit: Some(ExitState {
                exit_code: 127,
                oom_killed: false,
                disk_over: None,
                error: Some("exec: no such file".into()),
            }),
            ..Default::default()
        };
        assert_eq!(classify(&end, T, None).status, TaskStatus::Error);
        let silent = Ending::default();
        let v = classify(&silent, T, None);
        assert_eq!((v.status, v.exit_code), (TaskStatus::Error, None));
        let waited = Ending {
            exit: exited(-1, false),
            waited_code: Some(2),
            ..Default::default()
        };
        assert_eq!(
            classify(&waited, T, None).exit_code,
            Some(2),
            "the wait's code fills in"
        );
    }
}
