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

/// The run's gateway as the run's configuration holds it.
#[derive(Clone)]
pub struct GatewayHandle(pub std::sync::Arc<dyn TaskGateway>);

impl std::fmt::Debug for GatewayHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GatewayHandle({})", self.0.network())
    }
}
