//! Parses the Claude Code CLI's `--output-format stream-json --verbose` output: one JSON object
//! per stdout line. Parsing is liberal: a line that is not JSON, is of an unknown type, or lacks
//! fields gives `None` or defaults, never an error.

mod progress;
mod wire;

#[cfg(test)]
mod tests;

pub use progress::AgentProgress;

use serde_json::Value;
use wire::{RawBlock, RawLine, RawMessage};

/// Characters kept of an assistant text block.
const TEXT_CHARS: usize = 200;
/// Characters kept of the final result text.
const RESULT_CHARS: usize = 2000;
/// Characters kept of an API retry error.
const ERROR_CHARS: usize = 500;

/// One event of interest from the agent's stream.
#[derive(Debug, Clone, PartialEq)]
pub enum AgentEvent {
    /// `{"type":"system","subtype":"init",…}`: the first line.
    Init(AgentInit),
    /// `{"type":"assistant",…}`. The CLI emits one such line per content block, all carrying the
    /// same `message_id`; [`AgentProgress`] uses it to count each API message once.
    Assistant {
        /// The first non-blank text block, trimmed, at most 200 characters.
        text: Option<String>,
        /// Names of the `tool_use` blocks.
        tools: Vec<String>,
        /// `message.id`, shared by the lines of one API message.
        message_id: Option<String>,
    },
    /// `{"type":"user",…}` carrying `tool_result` blocks; `is_error` if any of them is.
    ToolResult { is_error: bool },
    /// `{"type":"system","subtype":"api_retry",…}`.
    ApiRetry {
        attempt: u32,
        max_retries: u32,
        retry_delay_ms: u64,
        /// The error as text (objects rendered as compact JSON), at most 500 characters.
        error: String,
    },
    /// `{"type":"result",…}`: the last line.
    Result(AgentResult),
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AgentInit {
    pub session_id: String,
    pub model: String,
    pub agents: Vec<String>,
    pub claude_code_version: String,
    pub cwd: String,
    pub permission_mode: String,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AgentResult {
    pub subtype: String,
    pub is_error: bool,
    pub num_turns: u32,
    pub duration_ms: u64,
    pub cost_usd: Option<f64>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_creation_input_tokens: u64,
    pub cache_read_input_tokens: u64,
    /// The final text, at most 2000 characters.
    pub result: Option<String>,
    /// The API error's HTTP status when the session ended on one (529: overloaded).
    pub api_error_status: Option<u16>,
}

/// Parses one stdout line. `None` for anything that is not an event of interest (non-JSON text,
/// blank lines, other types and subtypes, user messages without tool results).
pub fn parse_line(line: &[u8]) -> Option<AgentEvent> {
    // Cheap rejection of plain text before serde sees it.
    if line.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return None;
    }
    let raw: RawLine = serde_json::from_slice(line).ok()?;
    match (raw.kind.as_deref()?, raw.subtype.as_deref()) {
        ("system", Some("init")) => Some(AgentEvent::Init(AgentInit {
            session_id: raw.session_id.unwrap_or_default(),
            model: raw.model.unwrap_or_default(),
            agents: raw.agents,
            claude_code_version: raw.claude_code_version.unwrap_or_default(),
            cwd: raw.cwd.unwrap_or_default(),
            permission_mode: raw.permission_mode.unwrap_or_default(),
        })),
        ("system", Some("api_retry")) => Some(AgentEvent::ApiRetry {
            attempt: to_u32(raw.attempt),
            max_retries: to_u32(raw.max_retries),
            retry_delay_ms: raw.retry_delay_ms.unwrap_or(0),
            error: truncate_chars(error_text(raw.error), ERROR_CHARS),
        }),
        ("assistant", _) => Some(assistant(raw.message)),
        ("user", _) => tool_result(raw.message),
        ("result", _) => Some(AgentEvent::Result(result(raw))),
        _ => None,
    }
}

fn assistant(message: Option<RawMessage>) -> AgentEvent {
    let message = message.unwrap_or_default();
    let text = message
        .content
        .iter()
        .filter_map(|b| match b {
            RawBlock::Text { text: Some(t) } => Some(t.trim()),
            _ => None,
        })
        .find(|t| !t.is_empty())
        .map(|t| truncate_chars(t.to_owned(), TEXT_CHARS));
    let tools = message
        .content
        .iter()
        .filter_map(|b| match b {
            RawBlock::ToolUse { name } => Some(name.clone().unwrap_or_else(|| "?".into())),
            _ => None,
        })
        .collect();
    AgentEvent::Assistant {
        text,
        tools,
        message_id: message.id,
    }
}

fn tool_result(message: Option<RawMessage>) -> Option<AgentEvent> {
    let results: Vec<bool> = message?
        .content
        .iter()
        .filter_map(|b| match b {
            RawBlock::ToolResult { is_error } => Some(*is_error == Some(true)),
            _ => None,
        })
        .collect();
    (!results.is_empty()).then(|| AgentEvent::ToolResult {
        is_error: results.contains(&true),
    })
}

fn result(raw: RawLine) -> AgentResult {
    let subtype = raw.subtype.unwrap_or_default();
    let usage = raw.usage.unwrap_or_default();
    AgentResult {
        is_error: raw.is_error.unwrap_or_else(|| subtype.starts_with("error")),
        subtype,
        num_turns: to_u32(raw.num_turns),
        duration_ms: raw.duration_ms.unwrap_or(0),
        cost_usd: raw.total_cost_usd,
        input_tokens: usage.input_tokens.unwrap_or(0),
        output_tokens: usage.output_tokens.unwrap_or(0),
        cache_creation_input_tokens: usage.cache_creation_input_tokens.unwrap_or(0),
        cache_read_input_tokens: usage.cache_read_input_tokens.unwrap_or(0),
        result: raw.result.map(|r| truncate_chars(r, RESULT_CHARS)),
        api_error_status: raw.api_error_status.and_then(|s| u16::try_from(s).ok()),
    }
}

fn error_text(error: Option<Value>) -> String {
    match error {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s,
        Some(other) => other.to_string(),
    }
}

fn to_u32(n: Option<u64>) -> u32 {
    n.map_or(0, |n| u32::try_from(n).unwrap_or(u32::MAX))
}

/// Keeps at most `max` characters; a cut string ends in '…' (counted in `max`).
fn truncate_chars(mut s: String, max: usize) -> String {
    if let Some((cut, _)) = s.char_indices().nth(max) {
        let keep = s
            .char_indices()
            .nth(max.saturating_sub(1))
            .map_or(cut, |(i, _)| i);
        s.truncate(keep);
        if max > 0 {
            s.push('…');
        }
    }
    s
}
