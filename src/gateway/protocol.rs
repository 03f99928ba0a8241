//! What sandpen and its gateway container say to each other: commands as JSON lines on the
//! gateway's standard input (through the engine's attach stream, so the real credential is in
//! no environment, file or `docker inspect`), reports as JSON lines on its standard output.
//! The gateway ends when its input ends: a sandpen that dies takes its gateway with it.

use serde::{Deserialize, Serialize};

/// In the reports below; `usage.rs` reads it from the model API's answers.
pub use super::usage::Usage;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Command {
    /// Where to listen, when not given on the command line (the container is made before the
    /// run's gateway directory is ready for it, off the run's critical path).
    Listen { on: Endpoint },
    /// Once, before any admission: where model requests go and with what credential.
    Config {
        /// The model API: `https://api.anthropic.com`, or the host's own `ANTHROPIC_BASE_URL`
        /// (`{task}` in it becomes the task's id).
        upstream: String,
        /// How the credential is sent; None sends none.
        credential_kind: Option<CredentialKind>,
        credential: Option<String>,
        /// Per-model prices, USD per million tokens.
        prices: crate::gateway::price::PriceTable,
    },
    /// A task's token, before its container starts.
    Admit {
        task: String,
        token: String,
        /// Everything the task may reach through the proxy (the defaults included).
        allow: Vec<String>,
        max_cost_usd: Option<f64>,
    },
    /// The task has ended: its token dies.
    Release { task: String },
    /// On a Swarm (a gateway per task): the run's exchange, at `addr` (`HOST:PORT`). The
    /// task's entry step fetches its files and sends its work back through the gateway, its
    /// only way out; the gateway passes the exchange's paths there and nothing else.
    Exchange { addr: String },
}

/// Where the gateway listens: in a run, a Unix socket in the run's gateway directory, which
/// task containers reach through their relay (`gateway::relay`); an address for tests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    Tcp(std::net::SocketAddr),
    Unix(std::path::PathBuf),
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Tcp(a) => write!(f, "{a}"),
            Self::Unix(p) => write!(f, "{}", p.display()),
        }
    }
}

/// The host's credential for the model API, by the variable it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialKind {
    /// `ANTHROPIC_API_KEY`: sent as `x-api-key`.
    ApiKey,
    /// `ANTHROPIC_AUTH_TOKEN`: sent as `Authorization: Bearer`.
    AuthToken,
    /// `CLAUDE_CODE_OAUTH_TOKEN` (a subscription's, from `claude setup-token`): sent as
    /// `Authorization: Bearer` with the OAuth beta the CLI itself names.
    OauthToken,
}

impl CredentialKind {
    /// In the order a run picks them when several are set.
    pub const ALL: [Self; 3] = [Self::ApiKey, Self::AuthToken, Self::OauthToken];

    pub fn env(self) -> &'static str {
        match self {
            Self::ApiKey => "ANTHROPIC_API_KEY",
            Self::AuthToken => "ANTHROPIC_AUTH_TOKEN",
            Self::OauthToken => "CLAUDE_CODE_OAUTH_TOKEN",
        }
    }
}

/// The `anthropic-beta` value that OAuth tokens need upstream.
pub const OAUTH_BETA: &str = "oauth-2025-04-20";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Report {
    /// Listening; `addr` is where (an address, or the socket's path in the container).
    Ready {
        addr: String,
    },
    /// One connection or request through the proxy (never its content).
    Egress {
        at: String,
        task: Option<String>,
        method: String,
        host: String,
        port: u16,
        allowed: bool,
        /// Why it was denied, or why it failed.
        reason: Option<String>,
        bytes_up: u64,
        bytes_down: u64,
    },
    /// One model request (never its body, never a credential).
    Model {
        at: String,
        task: String,
        model: String,
        status: u16,
        #[serde(flatten)]
        usage: Usage,
        cost_usd: f64,
        latency_ms: u64,
    },
    /// The upstream answered 429 or 529: the task's request is held (and every task's next
    /// one) for `retry_after_ms`, then sent again.
    RateLimited {
        at: String,
        task: String,
        status: u16,
        retry_after_ms: u64,
    },
    /// The task's metered cost reached its budget: its next model request is refused.
    BudgetExceeded {
        task: String,
        cost_usd: f64,
        max_cost_usd: f64,
    },
    /// A model request without a live token of this run.
    Refused {
        at: String,
        reason: String,
    },
    /// A call to the model API that the gateway does not pass (`serve::route`), or a task
    /// over its limit of requests in flight: answered by the gateway, never sent upstream.
    ApiDenied {
        at: String,
        task: Option<String>,
        method: String,
        /// The target as the task sent it, shortened.
        path: String,
        status: u16,
        reason: String,
    },
    /// Traffic reports the gateway dropped because its reader was too slow to take them.
    Dropped {
        count: u64,
    },
    /// A command was applied (sandpen waits for these: every report about a task before its
    /// `released` has been read when it arrives).
    Admitted {
        task: String,
    },
    Released {
        task: String,
    },
}
