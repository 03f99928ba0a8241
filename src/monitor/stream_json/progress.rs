//! A running summary of one task's agent activity, folded from its events.

use std::collections::HashSet;

use super::{AgentEvent, AgentInit, AgentResult};

/// Running summary of one task's agent activity, for the live view and the report.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct AgentProgress {
    pub init: Option<AgentInit>,
    /// Assistant API messages seen (lines sharing a message id count once). Includes subagents'
    /// messages, so it can exceed the final `num_turns`.
    pub turns: u32,
    /// The last tool used.
    pub tool: Option<String>,
    pub api_retries: u32,
    pub last_retry_error: Option<String>,
    pub result: Option<AgentResult>,
    /// Message ids already counted in `turns`.
    #[serde(skip)]
    seen_messages: HashSet<String>,
    /// `(attempt, max_retries)` of a retry not yet followed by any other activity.
    #[serde(skip)]
    retrying: Option<(u32, u32)>,
}

impl AgentProgress {
    pub fn apply(&mut self, event: &AgentEvent) {
        match event {
            AgentEvent::Init(init) => self.init = Some(init.clone()),
            AgentEvent::Assistant {
                tools, message_id, ..
            } => {
                let new_message = match message_id {
                    Some(id) => self.seen_messages.insert(id.clone()),
                    None => true,
                };
                if new_message {
                    self.turns = self.turns.saturating_add(1);
                }
                if let Some(last) = tools.last() {
                    self.tool = Some(last.clone());
                }
                self.retrying = None;
            }
            AgentEvent::ToolResult { .. } => self.retrying = None,
            AgentEvent::ApiRetry {
                attempt,
                max_retries,
                error,
                ..
            } => {
                self.api_retries = self.api_retries.saturating_add(1);
                self.last_retry_error = Some(error.clone());
                self.retrying = Some((*attempt, *max_retries));
            }
            AgentEvent::Result(result) => {
                self.result = Some(result.clone());
                self.retrying = None;
            }
        }
    }

    /// Short human text for a live view: "starting", "running", "turn 3 · Bash",
    /// "API retry 2/10", "done (3 turns)", "error_max_turns (30 turns)", "failed (1 turn)".
    pub fn activity(&self) -> String {
        if let Some(r) = &self.result {
            let outcome = if !r.is_error && r.subtype == "success" {
                "done"
            } else if r.subtype.is_empty() || r.subtype == "success" {
                "failed"
            } else {
                &r.subtype
            };
            let plural = if r.num_turns == 1 { "" } else { "s" };
            return format!("{outcome} ({} turn{plural})", r.num_turns);
        }
        if let Some((attempt, max)) = self.retrying {
            return if max > 0 {
                format!("API retry {attempt}/{max}")
            } else {
                format!("API retry {attempt}")
            };
        }
        match (self.turns, &self.tool) {
            (0, _) if self.init.is_some() => "running".to_owned(),
            (0, _) => "starting".to_owned(),
            (n, Some(tool)) => format!("turn {n} · {tool}"),
            (n, None) => format!("turn {n}"),
        }
    }
}
