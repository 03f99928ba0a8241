//! The egress gateway: a task's only way out. One gateway container per run, on the engine
//! host's network, listening on the address of the run's internal network (no route out,
//! inter-container traffic off). Task containers reach nothing but it: it is their model API
//! (`ANTHROPIC_BASE_URL`, with a per-task token instead of the real key, which stays with
//! sandpen and the gateway) and their HTTP proxy (`HTTPS_PROXY`, allowlisted hosts only). It
//! meters each task's model usage and cost, enforces budgets, and reports every egress attempt
//! and model request, which sandpen writes to `egress.jsonl`.
//!
//! The runner sees only [`TaskGateway`]: a network to join, an admission per task, a meter
//! per task when it ends, and a shutdown.

pub mod allow;
mod host;
pub mod meter;
pub mod price;
pub mod protocol;
pub mod serve;
pub mod usage;
pub mod window;

pub use host::{Gateway, GatewayOptions};
pub use meter::GatewayUsage;

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
}

/// What a task's container gets to reach the gateway: plain settings, and its token in
/// secrets (the proxy URLs carry it too).
pub struct Admission {
    pub env: Vec<(String, String)>,
    pub secrets: Vec<(String, SecretString)>,
}

impl Admission {
    pub fn new(addr: SocketAddr, token: &str) -> Self {
        let proxy = format!("http://sandpen:{token}@{addr}");
        let host = addr.ip().to_string();
        let mut secrets = vec![(
            "ANTHROPIC_API_KEY".to_string(),
            SecretString::from(token.to_string()),
        )];
        for name in ["HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"] {
            secrets.push((name.to_string(), SecretString::from(proxy.clone())));
        }
        let no_proxy = format!("{host},localhost,127.0.0.1");
        Self {
            env: vec![
                ("ANTHROPIC_BASE_URL".into(), format!("http://{addr}")),
                ("NO_PROXY".into(), no_proxy.clone()),
                ("no_proxy".into(), no_proxy),
                // Nothing but the model API: the allowlist can stay small.
                ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC".into(), "1".into()),
            ],
            secrets,
        }
    }
}

impl Admission {
    /// Every variable an admission sets, for the list of names a task may not set itself.
    pub fn names() -> Vec<String> {
        let a = Self::new(SocketAddr::from(([127, 0, 0, 1], 1)), "");
        a.env
            .into_iter()
            .map(|(k, _)| k)
            .chain(a.secrets.into_iter().map(|(k, _)| k))
            .collect()
    }
}

/// The gateway as the runner uses it.
pub trait TaskGateway: Send + Sync {
    /// The network task containers join.
    fn network(&self) -> &str;
    /// A new token for `task`, live once this returns; `allow` adds to the run's allowlist.
    fn admit<'a>(
        &'a self,
        task: &'a str,
        allow: &'a [String],
        max_cost_usd: Option<f64>,
    ) -> BoxFuture<'a, Result<Admission, GatewayError>>;
    /// Ends `task`'s token; what the gateway metered for it. `wait`: for the gateway's
    /// acknowledgement, after which every report about the task has been read (not worth
    /// waiting for when the engine, which carries it, does not answer).
    fn release<'a>(&'a self, task: &'a str, wait: bool) -> BoxFuture<'a, GatewayUsage>;
    /// Ends the gateway and removes it and the network; says what could not be removed.
    /// `engine_answers` false: only ends it (its input closes), leaving the rest for `gc`.
    fn shutdown(&self, engine_answers: bool) -> BoxFuture<'_, Vec<String>>;
}

/// The run's gateway as the run's configuration holds it. It also knows how many tasks may
/// still use it: when the last one is done with it (its container gone, or it never started),
/// the gateway and the network are removed at once, while collections go on, so that their
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

    /// Something of the run may still be attached to the network (the engine did not answer).
    pub fn unsettled(&self) {
        self.settled.store(false, std::sync::atomic::Ordering::SeqCst);
    }

    /// A task will not use the gateway again; `settled`: its container is known to be gone.
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
        write!(f, "GatewayHandle({})", self.gw.network())
    }
}
