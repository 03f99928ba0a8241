//! What the gateway saw of one task, for its report entry: model usage and cost as metered at
//! the gateway (beside the CLI's own figures), upstream rate limits, and egress.

use serde::{Deserialize, Serialize};

use super::protocol::Report;

/// Denied destinations kept per task.
const DENIED_LIMIT: usize = 100;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GatewayUsage {
    /// Model requests sent upstream.
    pub requests: u32,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_creation_input_tokens: u64,
    pub cache_read_input_tokens: u64,
    /// From the price table (docs/gateway.md).
    pub cost_usd: f64,
    pub max_cost_usd: Option<f64>,
    /// The task's model requests were refused once its cost reached `max_cost_usd`.
    pub budget_exceeded: bool,
    /// Upstream answers 429 (rate limited) and 529 (overloaded).
    pub upstream_429: u32,
    pub upstream_529: u32,
    /// Connections and requests through the proxy that were let through.
    pub egress_allowed: u32,
    /// Bytes those brought back.
    #[serde(default)]
    pub egress_bytes_down: u64,
    /// Destinations refused (`host:port`), and model API calls refused (`METHOD /path`), each
    /// once.
    pub denied: Vec<String>,
}

impl GatewayUsage {
    pub fn add(&mut self, report: &Report) {
        match report {
            Report::Model {
                status,
                usage,
                cost_usd,
                ..
            } => {
                self.requests += 1;
                self.input_tokens += usage.input_tokens;
                self.output_tokens += usage.output_tokens;
                self.cache_creation_input_tokens += usage.cache_creation_input_tokens;
                self.cache_read_input_tokens += usage.cache_read_input_tokens;
                self.cost_usd += cost_usd;
                match status {
                    429 => self.upstream_429 += 1,
                    529 => self.upstream_529 += 1,
                    _ => {}
                }
            }
            Report::Egress {
                allowed: true,
                bytes_down,
                ..
            } => {
                self.egress_allowed += 1;
                self.egress_bytes_down += bytes_down;
            }
            Report::Egress {
                allowed: false,
                host,
                port,
                ..
            } => {
                let dest = format!("{host}:{port}");
                if !self.denied.contains(&dest) && self.denied.len() < DENIED_LIMIT {
                    self.denied.push(dest);
                }
            }
            Report::ApiDenied { method, path, .. } => {
                let call = format!("{method} {path}");
                if !self.denied.contains(&call) && self.denied.len() < DENIED_LIMIT {
                    self.denied.push(call);
                }
            }
            Report::BudgetExceeded { max_cost_usd, .. } => {
                self.budget_exceeded = true;
                self.max_cost_usd = Some(*max_cost_usd);
            }
            _ => {}
        }
    }
}

/// The task a report is about.
pub fn task_of(report: &Report) -> Option<&str> {
    match report {
        Report::Egress { task, .. } | Report::ApiDenied { task, .. } => task.as_deref(),
        Report::Model { task, .. }
        | Report::BudgetExceeded { task, .. }
        | Report::RateLimited { task, .. }
        | Report::Admitted { task }
        | Report::Released { task } => Some(task),
        Report::Ready { .. } | Report::Refused { .. } | Report::Dropped { .. } => None,
    }
}
