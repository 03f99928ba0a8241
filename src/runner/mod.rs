//! The scheduler: runs a plan's tasks in containers under a jobs limit, honouring
//! dependencies, timeouts, fail-fast and cancellation. It emits events and never prints.

mod admission;
pub mod attempts;
mod base;
mod channel;
pub mod events;
mod network;
mod not_run;
pub mod rerun;
pub mod retry;
mod scheduler;
mod sweep;
mod task;
mod warm_up;

#[cfg(test)]
mod fake;
#[cfg(test)]
mod tests;

pub use admission::MemoryHold;
pub use attempts::{Attempt, Earlier};
pub use base::DepsFrom;
pub use channel::{EventReceiver, EventSender, Received};
pub use events::{CancelReason, Event, RunReport, TaskResult, TaskStatus};
pub use network::TaskNetwork;
pub use scheduler::execute;
pub use task::{STOP_MARGIN, Stop};

use std::time::Duration;

use secrecy::SecretString;

use crate::engine::spec::Owner;
use crate::gateway::GatewayHandle;
use crate::workspace::{Repo, RunDir};

/// How long a container may take to stop after SIGTERM before it is killed.
pub const STOP_GRACE: Duration = Duration::from_secs(10);

/// Everything about a run that is the same for every task.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub run_id: String,
    pub repo: Repo,
    /// `<git-dir>/sandpen/runs/<run-id>` (`RunsHome`): checkouts, logs, report.
    pub layout: RunDir,
    /// The run's base (`--base`, resolved): where a task without dependencies starts.
    pub base: String,
    /// Where a task with dependencies starts: their results (the default) or the base.
    pub deps_from: DepsFrom,
    pub image: String,
    /// The tasks' network as the user chose it (`--network`).
    pub network: TaskNetwork,
    pub max_turns: u32,
    pub jobs: usize,
    /// The engine's memory (`MemTotal`, bytes): the running tasks' memory limits add up to no
    /// more (0: unknown, not checked).
    pub engine_memory: u64,
    /// Whether the engine applies the tasks' limits (`Dialect::cgroup_per_container`).
    pub limits_enforced: bool,
    pub fail_fast: bool,
    /// How often a task whose attempt ended `error` runs again, as a new attempt (`--retries`).
    pub retries: u32,
    /// The agent's own endings that `retries` covers too (`--retry-on`).
    pub retry_on: Vec<retry::RetryOn>,
    pub keep_containers: bool,
    pub grace: Duration,
    /// Credentials passed from the host, by name; never logged.
    pub credentials: Vec<(String, SecretString)>,
    /// The labels that tie every container to this run and this process, for `gc`.
    pub owner: Owner,
    /// In gateway mode: the run's gateway (tasks mount its socket and relay, get a token
    /// instead of `credentials`, and are metered).
    pub gateway: Option<GatewayHandle>,
    /// A rerun's earlier attempts: the tasks kept as they were, and where the others continue.
    pub earlier: Earlier,
    /// The project's warm environment, prepared before the first task (None: no Python project,
    /// `--no-warm`, or a Swarm).
    pub warm: Option<crate::warm::Warm>,
}

/// A run id that sorts by time and does not collide between runs started the same second.
pub fn new_run_id() -> String {
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let stamp: String = now.chars().filter(|c| c.is_ascii_digit()).collect();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let salt = (nanos ^ std::process::id().rotate_left(16)) & 0xffff;
    format!("{}-{}-{salt:04x}", &stamp[..8], &stamp[8..14])
}
