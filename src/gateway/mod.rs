//! The egress gateway: a task's only way out. One gateway container per run, on the engine
//! host's network, listening on a Unix socket in the run's gateway directory. Task containers
//! have no network at all (`--network none`: no route to the engine host, to each other or to
//! a resolver); each reaches the socket through a relay on its own loopback (`relay`). So they
//! reach nothing but the gateway: it is their model API
//! (`ANTHROPIC_BASE_URL`, with a per-task token instead of the real key, which stays with
//! sandpen and the gateway) and their HTTP proxy (`HTTPS_PROXY`, allowlisted hosts only). It
//! meters each task's model usage and cost, enforces budgets, and reports every egress attempt
//! and model request, which sandpen writes to `egress.jsonl`.
//!
//! The runner sees only [`TaskGateway`]: mounts for each task container, an admission per
//! task, a meter per task when it ends, and a shutdown.

pub mod allow;
pub mod budget;
pub(crate) mod files;
pub mod gate;
mod host;
pub mod meter;
pub mod price;
pub mod protocol;
pub mod relay;
pub mod reports;
pub mod serve;
mod starting;
pub mod usage;
pub mod window;

pub use host::{Gateway, GatewayOptions, Launched, network_name};
pub use meter::GatewayUsage;
pub use starting::Starting;

use std::net::SocketAddr;

use futures_util::future::BoxFuture;
use secrecy::SecretString;

use crate::engine::EngineError;

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("the run's gateway: {0}")]
    Start(String),
    /// A start that failed, as every admission after it tells it.
    #[error("{0}")]
    Failed(String),
}

impl crate::exit::HasExitCode for GatewayError {
    fn exit_code(&self) -> i32 {
        match self {
            Self::Engine(e) => e.exit_code(),
            _ => crate::exit::FAILURE,
        }
    }
}

/// The model API limits the run (429 or 529): the gateway holds `task`'s request, and the run
/// should start no new task, for `resume_in`.
#[derive(Debug, Clone, PartialEq)]
pub struct RateLimit {
    pub task: String,
    pub status: u16,
    pub resume_in: std::time::Duration,
}

/// Where the gateway tells its rate limits: a callback, so the gateway knows nothing of the
/// runner's events.
pub type OnRateLimit = std::sync::Arc<dyn Fn(RateLimit) + Send + Sync>;

/// What a task's container gets from the gateway before it starts: its token, as its API key
/// (and its proxy password). The gateway's address reaches the container later, through its
/// gate (`gate.rs`), once the gateway has admitted the token.
#[derive(Clone)]
pub struct Admission {
    pub token: SecretString,
}

impl Admission {
    /// Plain settings of a task's container in gateway mode.
    pub fn env(&self) -> Vec<(String, String)> {
        // Nothing but the model API: the allowlist can stay small.
        vec![("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC".into(), "1".into())]
    }

    pub fn secrets(&self) -> Vec<(String, SecretString)> {
        vec![(gate::TOKEN.to_string(), self.token.clone())]
    }

    /// Every variable a task's container gets from the gateway, gate included, for the list
    /// of names a task may not set itself.
    pub fn names() -> Vec<String> {
        let a = Self {
            token: SecretString::from(String::new()),
        };
        a.env()
            .into_iter()
            .map(|(k, _)| k)
            .chain(gate::names().map(String::from))
            .collect()
    }
}

/// The gateway as the runner uses it.
pub trait TaskGateway: Send + Sync {
    /// What every task container mounts to reach the gateway (its network is none).
    fn task_mounts(&self) -> Vec<crate::engine::spec::BindMount>;
    /// Whether a task's container waits at its gate for the gateway's address (`gate.rs`).
    /// False: the task is admitted before its container is made (on a Swarm, where a service
    /// has no input to write to and its gateway must serve before it starts), and runs ungated.
    fn gated(&self) -> bool {
        true
    }
    /// Waits until a task may start (its mounts exist; the upstream does not limit the run)
    /// and gives it a new token, not yet live.
    fn prepare<'a>(&'a self, task: &'a str) -> BoxFuture<'a, Result<Admission, GatewayError>>;
    /// Makes `task`'s token live (`allow` adds to the run's allowlist) and says the address its
    /// container connects to (its relay's, on its own loopback), for its gate.
    fn admit<'a>(
        &'a self,
        task: &'a str,
        admission: &'a Admission,
        allow: &'a [String],
        max_cost_usd: Option<f64>,
    ) -> BoxFuture<'a, Result<SocketAddr, GatewayError>>;
    /// Ends `task`'s token; what the gateway metered for it. `wait`: for the gateway's
    /// acknowledgement, after which every report about the task has been read (not worth
    /// waiting for when the engine, which carries it, does not answer).
    fn release<'a>(&'a self, task: &'a str, wait: bool) -> BoxFuture<'a, GatewayUsage>;
    /// Resolves once `task`'s metered cost has reached its budget (the runner then stops its
    /// container). Never, by default.
    fn spent<'a>(&'a self, task: &'a str) -> BoxFuture<'a, ()> {
        let _ = task;
        Box::pin(std::future::pending())
    }
    /// Ends the gateway and removes it, its socket and the relay; says what could not be removed.
    /// `engine_answers` false: only ends it (its input closes), leaving the rest for `gc`.
    fn shutdown(&self, engine_answers: bool) -> BoxFuture<'_, Vec<String>>;
}

/// The run's gateway as the run's configuration holds it. It also knows how many tasks may
/// still use it: when the last one is done with it (its container gone, or it never started),
/// the gateway is removed at once, while collections go on, so that their
/// cost is off the run's critical path.
#[derive(Clone)]
pub struct GatewayHandle {
    pub gw: std::sync::Arc<dyn TaskGateway>,
    users: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// False once a task ended without the engine confirming its container gone.
    settled: std::sync::Arc<std::sync::atomic::AtomicBool>,
    ended: std::sync::Arc<tokio::sync::OnceCell<Vec<String>>>,
}

impl GatewayHandle {
    pub fn new(gw: std::sync::Arc<dyn TaskGateway>, tasks: usize) -> Self {
        Self {
            gw,
            users: std::sync::Arc::new(tasks.into()),
            settled: std::sync::Arc::new(true.into()),
            ended: Default::default(),
        }
    }

    /// Some task container may still be there (the engine did not answer).
    pub fn unsettled(&self) {
        self.settled.store(false, std::sync::atomic::Ordering::SeqCst);
    }

    /// A task will not use the gateway again; `settled`: its container is known to be gone.
    /// One more use to wait for: a task run again (`--retries`). The scheduler holds a use of
    /// its own while retries may come, so the count never reaches zero before this.
    pub fn task_again(&self) {
        self.users.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn task_done(&self, settled: bool) {
        use std::sync::atomic::Ordering;
        if !settled {
            self.unsettled();
        }
        if self.users.fetch_sub(1, Ordering::SeqCst) == 1 {
            let me = self.clone();
            tokio::spawn(async move { me.end().await });
        }
    }

    /// Ends the gateway (once; later calls get the first one's outcome). With a task whose
    /// container the engine never confirmed gone, only its input is closed: `gc` removes the
    /// rest once the engine answers.
    pub async fn end(&self) -> Vec<String> {
        let settled = self.settled.load(std::sync::atomic::Ordering::SeqCst);
        self.ended.get_or_init(|| self.gw.shutdown(settled)).await.clone()
    }

    /// Marks the end of one task's use when dropped (a panic counts as unsettled).
    pub fn user(&self) -> GatewayUser {
        GatewayUser {
            handle: self.clone(),
            settled: true,
        }
    }
}

/// One task's use of the gateway; see [`GatewayHandle::user`].
pub struct GatewayUser {
    handle: GatewayHandle,
    pub settled: bool,
}

impl Drop for GatewayUser {
    fn drop(&mut self) {
        self.handle.task_done(self.settled && !std::thread::panicking());
    }
}

impl std::fmt::Debug for GatewayHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GatewayHandle({} mounts)", self.gw.task_mounts().len())
    }
}
