//! What sandpen does with a gateway's reports, wherever the gateway runs (a container of the
//! run on this engine, `host.rs`; a service per task on a Swarm, `swarm::gateway`): each one,
//! but the gateway's readiness and admissions, goes to `egress.jsonl` and its task's meter; a
//! spent budget signals its task; an upstream rate limit holds new tasks and is told.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use futures_util::StreamExt;

use super::files::GatewayLine;
use super::meter::{GatewayUsage, task_of};
use super::protocol::Report;
use super::window::Window;
use super::{OnRateLimit, RateLimit};
use crate::blocking_writer::BlockingWriter;
use crate::engine::{OutputStream, Stream};
use crate::monitor::LineAssembler;

/// Each task's metered use, as its gateway reported it.
pub type Meters = Arc<Mutex<HashMap<String, GatewayUsage>>>;
/// Each task's budget-spent signal.
pub type Spent = Arc<Mutex<HashMap<String, CancellationToken>>>;

/// Where a run's gateway reports go.
#[derive(Clone)]
pub struct Reports {
    pub meters: Meters,
    pub spent: Spent,
    /// New tasks wait while an upstream rate limit holds.
    pub paused: Arc<Window>,
    pub on_rate_limit: Option<OnRateLimit>,
}

impl Reports {
    /// Follows a gateway's output to its end: its stderr goes to its log, and each line of its
    /// stdout is a report; the gateway's own (ready, admitted, released) go to `own`, the rest
    /// are taken. `lines` holds what came before (a line begun while sandpen waited for it).
    pub async fn follow(
        &self,
        mut output: OutputStream,
        mut lines: LineAssembler,
        files: &BlockingWriter<GatewayLine>,
        mut own: impl FnMut(&Report),
    ) {
        while let Some(Ok((stream, bytes))) = output.next().await {
            if stream == Stream::Stderr {
                files.send(GatewayLine::Log(bytes)).await;
                continue;
            }
            for line in lines.push(&bytes) {
                let Ok(report) = serde_json::from_slice::<Report>(&line) else {
                    continue;
                };
                match &report {
                    Report::Ready { .. } | Report::Admitted { .. } | Report::Released { .. } => own(&report),
                    _ => self.take(&report, line, files).await,
                }
            }
        }
    }

    /// Takes one report, `line` as the gateway wrote it (without its newline).
    pub async fn take(&self, report: &Report, mut line: Vec<u8>, files: &BlockingWriter<GatewayLine>) {
        match report {
            Report::BudgetExceeded { task, .. } => spent_signal(&self.spent, task).cancel(),
            Report::RateLimited {
                task,
                status,
                retry_after_ms,
                ..
            } => {
                let wait = Duration::from_millis(*retry_after_ms);
                self.paused.extend(wait);
                if let Some(tell) = &self.on_rate_limit {
                    tell(RateLimit {
                        task: task.clone(),
                        status: *status,
                        resume_in: wait,
                    });
                }
            }
            _ => {}
        }
        // One write per line: the cap keeps whole lines.
        line.push(b'\n');
        files.send(GatewayLine::Audit(line)).await;
        if let Some(task) = task_of(report) {
            let mut meters = self.meters.lock().unwrap();
            meters.entry(task.to_string()).or_default().add(report);
        }
    }
}

/// The signal that `task`'s budget is spent, made by whichever side asks first.
pub fn spent_signal(spent: &Mutex<HashMap<String, CancellationToken>>, task: &str) -> CancellationToken {
    spent.lock().unwrap().entry(task.to_string()).or_default().clone()
}
