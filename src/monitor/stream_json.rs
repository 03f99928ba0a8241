//! Parses the Claude Code CLI's `--output-format stream-json --verbose` output: one JSON object
//! per stdout line. Parsing is liberal: a line that is not JSON, is of an unknown type, or lacks
//! fields gives `None` or defaults, never an error.

use std::collections::HashSet;

use serde::Deserialize;
use serde_json::Value;

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
}

/// The fields of every line type we read, all optional and type-tolerant.
#[derive(Deserialize, Default)]
#[serde(default)]
struct RawLine {
    #[serde(rename = "type", deserialize_with = "lenient::string")]
    kind: Option<String>,
    #[serde(deserialize_with = "lenient::string")]
    subtype: Option<String>,
    // system/init
    #[serde(deserialize_with = "lenient::string")]
    session_id: Option<String>,
    #[serde(deserialize_with = "lenient::string")]
    model: Option<String>,
    #[serde(deserialize_with = "lenient::strings")]
    agents: Vec<String>,
    #[serde(deserialize_with = "lenient::string")]
    claude_code_version: Option<String>,
    #[serde(deserialize_with = "lenient::string")]
    cwd: Option<String>,
    #[serde(rename = "permissionMode", deserialize_with = "lenient::string")]
    permission_mode: Option<String>,
    // assistant / user
    message: Option<Value>,
    // system/api_retry
    #[serde(deserialize_with = "lenient::u64")]
    attempt: Option<u64>,
    #[serde(deserialize_with = "lenient::u64")]
    max_retries: Option<u64>,
    #[serde(deserialize_with = "lenient::u64")]
    retry_delay_ms: Option<u64>,
    error: Option<Value>,
    // result
    #[serde(deserialize_with = "lenient::bool")]
    is_error: Option<bool>,
    #[serde(deserialize_with = "lenient::u64")]
    num_turns: Option<u64>,
    #[serde(deserialize_with = "lenient::u64")]
    duration_ms: Option<u64>,
    #[serde(deserialize_with = "lenient::f64")]
    total_cost_usd: Option<f64>,
    #[serde(deserialize_with = "lenient::object")]
    usage: Option<RawUsage>,
    #[serde(deserialize_with = "lenient::string")]
    result: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawUsage {
    #[serde(deserialize_with = "lenient::u64")]
    input_tokens: Option<u64>,
    #[serde(deserialize_with = "lenient::u64")]
    output_tokens: Option<u64>,
    #[serde(deserialize_with = "lenient::u64")]
    cache_creation_input_tokens: Option<u64>,
    #[serde(deserialize_with = "lenient::u64")]
    cache_read_input_tokens: Option<u64>,
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
        ("assistant", _) => Some(assistant(raw.message.as_ref())),
        ("user", _) => tool_result(raw.message.as_ref()),
        ("result", _) => Some(AgentEvent::Result(result(raw))),
        _ => None,
    }
}

fn content_blocks(message: Option<&Value>) -> &[Value] {
    message
        .and_then(|m| m.get("content"))
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn block_type(block: &Value) -> Option<&str> {
    block.get("type").and_then(Value::as_str)
}

fn assistant(message: Option<&Value>) -> AgentEvent {
    let blocks = content_blocks(message);
    let text = blocks
        .iter()
        .filter(|b| block_type(b) == Some("text"))
        .filter_map(|b| b.get("text").and_then(Value::as_str))
        .map(str::trim)
        .find(|t| !t.is_empty())
        .map(|t| truncate_chars(t.to_owned(), TEXT_CHARS));
    let tools = blocks
        .iter()
        .filter(|b| block_type(b) == Some("tool_use"))
        .map(|b| b.get("name").and_then(Value::as_str).unwrap_or("?").to_owned())
        .collect();
    let message_id = message
        .and_then(|m| m.get("id"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    AgentEvent::Assistant {
        text,
        tools,
        message_id,
    }
}

fn tool_result(message: Option<&Value>) -> Option<AgentEvent> {
    let mut results = content_blocks(message)
        .iter()
        .filter(|b| block_type(b) == Some("tool_result"))
        .peekable();
    results.peek()?;
    let is_error = results.any(|b| b.get("is_error").and_then(Value::as_bool) == Some(true));
    Some(AgentEvent::ToolResult { is_error })
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

/// Field deserializers that accept any JSON value and yield `None` (or empty) on a type mismatch,
/// so that one odd field never loses a whole line.
mod lenient {
    use serde::Deserialize;
    use serde::de::{self, DeserializeOwned, Deserializer, IgnoredAny, MapAccess, SeqAccess};
    use serde_json::Value;
    use std::fmt;

    enum Scalar {
        Bool(bool),
        U64(u64),
        I64(i64),
        F64(f64),
        Str(String),
        Other,
    }

    struct ScalarVisitor;

    impl<'de> de::Visitor<'de> for ScalarVisitor {
        type Value = Scalar;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_bool<E>(self, v: bool) -> Result<Scalar, E> {
            Ok(Scalar::Bool(v))
        }
        fn visit_u64<E>(self, v: u64) -> Result<Scalar, E> {
            Ok(Scalar::U64(v))
        }
        fn visit_i64<E>(self, v: i64) -> Result<Scalar, E> {
            Ok(Scalar::I64(v))
        }
        fn visit_f64<E>(self, v: f64) -> Result<Scalar, E> {
            Ok(Scalar::F64(v))
        }
        fn visit_str<E>(self, v: &str) -> Result<Scalar, E> {
            Ok(Scalar::Str(v.to_owned()))
        }
        fn visit_string<E>(self, v: String) -> Result<Scalar, E> {
            Ok(Scalar::Str(v))
        }
        fn visit_unit<E>(self) -> Result<Scalar, E> {
            Ok(Scalar::Other)
        }
        fn visit_none<E>(self) -> Result<Scalar, E> {
            Ok(Scalar::Other)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Scalar, D::Error> {
            d.deserialize_any(self)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Scalar, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(Scalar::Other)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Scalar, A::Error> {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            Ok(Scalar::Other)
        }
    }

    fn scalar<'de, D: Deserializer<'de>>(d: D) -> Result<Scalar, D::Error> {
        d.deserialize_any(ScalarVisitor)
    }

    fn float_to_u64(f: f64) -> Option<u64> {
        // `as` saturates at u64::MAX.
        (f.is_finite() && f >= 0.0).then(|| f.round() as u64)
    }

    /// Non-negative integers; floats are rounded, numeric strings parsed.
    pub fn u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        Ok(match scalar(d)? {
            Scalar::U64(n) => Some(n),
            Scalar::I64(n) => u64::try_from(n).ok(),
            Scalar::F64(f) => float_to_u64(f),
            Scalar::Str(s) => {
                let s = s.trim();
                s.parse().ok().or_else(|| s.parse().ok().and_then(float_to_u64))
            }
            Scalar::Bool(_) | Scalar::Other => None,
        })
    }

    /// Finite numbers; numeric strings parsed.
    pub fn f64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        let f = match scalar(d)? {
            Scalar::U64(n) => Some(n as f64),
            Scalar::I64(n) => Some(n as f64),
            Scalar::F64(f) => Some(f),
            Scalar::Str(s) => s.trim().parse().ok(),
            Scalar::Bool(_) | Scalar::Other => None,
        };
        Ok(f.filter(|f: &f64| f.is_finite()))
    }

    /// Booleans, and the strings "true" / "false".
    pub fn bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
        Ok(match scalar(d)? {
            Scalar::Bool(b) => Some(b),
            Scalar::Str(s) => s.trim().parse().ok(),
            _ => None,
        })
    }

    /// Strings only.
    pub fn string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        Ok(match scalar(d)? {
            Scalar::Str(s) => Some(s),
            _ => None,
        })
    }

    /// An array's string elements (or the `name` of object elements); anything else is empty.
    pub fn strings<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        let value = Value::deserialize(d)?;
        let Some(items) = value.as_array() else {
            return Ok(Vec::new());
        };
        Ok(items
            .iter()
            .filter_map(|v| v.as_str().or_else(|| v.get("name")?.as_str()))
            .map(str::to_owned)
            .collect())
    }

    /// A nested struct, or `None` when the value does not fit it.
    pub fn object<'de, D: Deserializer<'de>, T: DeserializeOwned>(d: D) -> Result<Option<T>, D::Error> {
        let value = Value::deserialize(d)?;
        Ok(T::deserialize(value).ok())
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const INIT: &str = r#"{"type":"system","subtype":"init","cwd":"/workspace","session_id":"5f1c-77","tools":["Task","Bash","Glob","Read","Edit","Write"],"mcp_servers":[],"model":"claude-sonnet-4-5-20250929","permissionMode":"bypassPermissions","slash_commands":["compact"],"apiKeySource":"ANTHROPIC_API_KEY","claude_code_version":"2.1.331","output_style":"default","agents":["general-purpose","workflow-manager"],"skills":[],"plugins":[],"uuid":"0d9e"}"#;
    const ASSISTANT_TEXT: &str = r#"{"type":"assistant","message":{"model":"claude-sonnet-4-5-20250929","id":"msg_01A","type":"message","role":"assistant","content":[{"type":"text","text":"\n\nI'll look at the tests first."}],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":4,"cache_creation_input_tokens":2300,"cache_read_input_tokens":11000,"output_tokens":1,"service_tier":"standard"}},"parent_tool_use_id":null,"session_id":"5f1c-77","uuid":"a1"}"#;
    const ASSISTANT_TOOL: &str = r#"{"type":"assistant","message":{"model":"claude-sonnet-4-5-20250929","id":"msg_01A","type":"message","role":"assistant","content":[{"type":"tool_use","id":"toolu_1","name":"Bash","input":{"command":"cargo test","description":"Run tests"}}],"stop_reason":null,"usage":{"input_tokens":4,"output_tokens":1}},"parent_tool_use_id":null,"session_id":"5f1c-77","uuid":"a2"}"#;
    const TOOL_RESULT: &str = r#"{"type":"user","message":{"role":"user","content":[{"tool_use_id":"toolu_1","type":"tool_result","content":"test result: ok","is_error":false}]},"parent_tool_use_id":null,"session_id":"5f1c-77","uuid":"u1","tool_use_result":{"stdout":"test result: ok","stderr":"","interrupted":false}}"#;
    const RETRY: &str = r#"{"type":"system","subtype":"api_retry","attempt":2,"max_retries":10,"retry_delay_ms":1137.5,"error_status":529,"error":{"type":"overloaded_error","message":"Overloaded"},"session_id":"5f1c-77","uuid":"r1"}"#;
    const RESULT: &str = r#"{"type":"result","subtype":"success","is_error":false,"duration_ms":1234,"duration_api_ms":1000,"num_turns":3,"result":"All tests pass.","session_id":"5f1c-77","total_cost_usd":0.0024,"usage":{"input_tokens":300,"cache_creation_input_tokens":5,"cache_read_input_tokens":7,"output_tokens":60,"server_tool_use":{"web_search_requests":0},"service_tier":"standard"},"modelUsage":{},"permission_denials":[],"terminal_reason":"completed","uuid":"z"}"#;

    fn parse(s: &str) -> Option<AgentEvent> {
        parse_line(s.as_bytes())
    }

    #[test]
    fn parses_init() {
        assert_eq!(
            parse(INIT),
            Some(AgentEvent::Init(AgentInit {
                session_id: "5f1c-77".into(),
                model: "claude-sonnet-4-5-20250929".into(),
                agents: vec!["general-purpose".into(), "workflow-manager".into()],
                claude_code_version: "2.1.331".into(),
                cwd: "/workspace".into(),
                permission_mode: "bypassPermissions".into(),
            }))
        );
    }

    #[test]
    fn parses_assistant_text_and_tools() {
        assert_eq!(
            parse(ASSISTANT_TEXT),
            Some(AgentEvent::Assistant {
                text: Some("I'll look at the tests first.".into()),
                tools: vec![],
                message_id: Some("msg_01A".into()),
            })
        );
        assert_eq!(
            parse(ASSISTANT_TOOL),
            Some(AgentEvent::Assistant {
                text: None,
                tools: vec!["Bash".into()],
                message_id: Some("msg_01A".into()),
            })
        );
        let both = r#"{"type":"assistant","message":{"content":[{"type":"thinking","thinking":"hm"},{"type":"text","text":"  "},{"type":"text","text":"a"},{"type":"tool_use","name":"Read","input":{}},{"type":"tool_use","name":"Grep","input":{}}]}}"#;
        assert_eq!(
            parse(both),
            Some(AgentEvent::Assistant {
                text: Some("a".into()),
                tools: vec!["Read".into(), "Grep".into()],
                message_id: None,
            })
        );
    }

    #[test]
    fn truncates_text_char_safely() {
        let long = "é".repeat(500);
        let line =
            serde_json::json!({"type":"assistant","message":{"content":[{"type":"text","text":long}]}})
                .to_string();
        let Some(AgentEvent::Assistant { text: Some(t), .. }) = parse(&line) else {
            panic!("no text");
        };
        assert_eq!(t.chars().count(), 200);
        assert!(t.ends_with('…'));

        assert_eq!(truncate_chars("abc".into(), 3), "abc");
        assert_eq!(truncate_chars("abcd".into(), 3), "ab…");
        assert_eq!(truncate_chars("日本語です".into(), 4), "日本語…");
        assert_eq!(truncate_chars("".into(), 0), "");
    }

    #[test]
    fn parses_tool_results() {
        assert_eq!(
            parse(TOOL_RESULT),
            Some(AgentEvent::ToolResult { is_error: false })
        );
        let failed = r#"{"type":"user","message":{"content":[{"type":"tool_result","tool_use_id":"a","content":"ok"},{"type":"tool_result","tool_use_id":"b","content":[{"type":"text","text":"boom"}],"is_error":true}]}}"#;
        assert_eq!(parse(failed), Some(AgentEvent::ToolResult { is_error: true }));
        // A user message that is not a tool result (e.g. a prompt) is not an event.
        assert_eq!(parse(r#"{"type":"user","message":{"content":"hello"}}"#), None);
        assert_eq!(
            parse(r#"{"type":"user","message":{"content":[{"type":"text","text":"x"}]}}"#),
            None
        );
    }

    #[test]
    fn parses_api_retry_with_object_or_string_error() {
        assert_eq!(
            parse(RETRY),
            Some(AgentEvent::ApiRetry {
                attempt: 2,
                max_retries: 10,
                retry_delay_ms: 1138,
                error: r#"{"message":"Overloaded","type":"overloaded_error"}"#.into(),
            })
        );
        assert_eq!(
            parse(
                r#"{"type":"system","subtype":"api_retry","attempt":1,"max_retries":10,"retry_delay_ms":500,"error":"rate_limit"}"#
            ),
            Some(AgentEvent::ApiRetry {
                attempt: 1,
                max_retries: 10,
                retry_delay_ms: 500,
                error: "rate_limit".into(),
            })
        );
        assert_eq!(
            parse(r#"{"type":"system","subtype":"api_retry"}"#),
            Some(AgentEvent::ApiRetry {
                attempt: 0,
                max_retries: 0,
                retry_delay_ms: 0,
                error: String::new(),
            })
        );
    }

    #[test]
    fn parses_result() {
        assert_eq!(
            parse(RESULT),
            Some(AgentEvent::Result(AgentResult {
                subtype: "success".into(),
                is_error: false,
                num_turns: 3,
                duration_ms: 1234,
                cost_usd: Some(0.0024),
                input_tokens: 300,
                output_tokens: 60,
                cache_creation_input_tokens: 5,
                cache_read_input_tokens: 7,
                result: Some("All tests pass.".into()),
            }))
        );
        let long = "x".repeat(5000);
        let line = serde_json::json!({"type":"result","result":long}).to_string();
        let Some(AgentEvent::Result(r)) = parse(&line) else {
            panic!()
        };
        assert_eq!(r.result.map(|s| s.chars().count()), Some(2000));
    }

    #[test]
    fn result_with_missing_and_odd_fields() {
        let line = r#"{"type":"result","subtype":"error_max_turns","num_turns":null,"total_cost_usd":"0.5","usage":"n/a","duration_ms":-3}"#;
        assert_eq!(
            parse(line),
            Some(AgentEvent::Result(AgentResult {
                subtype: "error_max_turns".into(),
                is_error: true,
                num_turns: 0,
                duration_ms: 0,
                cost_usd: Some(0.5),
                input_tokens: 0,
                output_tokens: 0,
                cache_creation_input_tokens: 0,
                cache_read_input_tokens: 0,
                result: None,
            }))
        );
        let Some(AgentEvent::Result(r)) = parse(r#"{"type":"result"}"#) else {
            panic!()
        };
        assert_eq!((r.subtype.as_str(), r.is_error, r.cost_usd), ("", false, None));
    }

    #[test]
    fn ignores_everything_else() {
        for line in [
            "",
            "   ",
            "\r",
            "plain text from a hook",
            "[1,2]",
            "{",
            "{}",
            "{\"type\":5}",
            r#"{"type":"system","subtype":"compact_boundary"}"#,
            r#"{"type":"stream_event","event":{"type":"content_block_delta"}}"#,
            r#"{"type":"result"} trailing"#,
        ] {
            assert_eq!(parse(line), None, "{line:?}");
        }
        assert!(parse_line(&[0xff, b'{', 0xfe]).is_none());
        // Leading whitespace and a trailing '\r' are fine.
        assert!(matches!(
            parse(" {\"type\":\"assistant\"}\r"),
            Some(AgentEvent::Assistant { .. })
        ));
        // A non-object message still counts as an assistant message.
        assert_eq!(
            parse(r#"{"type":"assistant","message":"?"}"#),
            Some(AgentEvent::Assistant {
                text: None,
                tools: vec![],
                message_id: None
            })
        );
    }

    #[test]
    fn progress_through_a_session() {
        let mut p = AgentProgress::default();
        assert_eq!(p.activity(), "starting");
        let mut apply = |line: &str| {
            p.apply(&parse(line).expect(line));
            p.activity()
        };
        assert_eq!(apply(INIT), "running");
        assert_eq!(apply(RETRY), "API retry 2/10");
        assert_eq!(apply(ASSISTANT_TEXT), "turn 1");
        assert_eq!(apply(ASSISTANT_TOOL), "turn 1 · Bash"); // same message id
        assert_eq!(apply(TOOL_RESULT), "turn 1 · Bash");
        let next = ASSISTANT_TEXT.replace("msg_01A", "msg_01B");
        assert_eq!(apply(&next), "turn 2 · Bash");
        assert_eq!(apply(RESULT), "done (3 turns)");
        assert_eq!(p.api_retries, 1);
        assert_eq!(
            p.last_retry_error.as_deref(),
            Some(r#"{"message":"Overloaded","type":"overloaded_error"}"#)
        );
        assert_eq!(
            p.init.as_ref().map(|i| i.model.as_str()),
            Some("claude-sonnet-4-5-20250929")
        );

        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(json["turns"], 2);
        assert_eq!(json["tool"], "Bash");
        assert_eq!(json["result"]["num_turns"], 3);
        assert_eq!(json["init"]["permission_mode"], "bypassPermissions");
        assert!(json.get("seen_messages").is_none());
    }

    #[test]
    fn assistant_lines_without_id_each_count() {
        let mut p = AgentProgress::default();
        let e = parse(r#"{"type":"assistant","message":{"content":[]}}"#).unwrap();
        p.apply(&e);
        p.apply(&e);
        assert_eq!(p.activity(), "turn 2");
    }

    #[test]
    fn activity_for_failures() {
        let mut p = AgentProgress::default();
        let result = |subtype: &str, is_error: bool, turns: u32| {
            AgentEvent::Result(AgentResult {
                subtype: subtype.into(),
                is_error,
                num_turns: turns,
                duration_ms: 0,
                cost_usd: None,
                input_tokens: 0,
                output_tokens: 0,
                cache_creation_input_tokens: 0,
                cache_read_input_tokens: 0,
                result: None,
            })
        };
        p.apply(&result("error_max_turns", true, 30));
        assert_eq!(p.activity(), "error_max_turns (30 turns)");
        p.apply(&result("success", true, 1));
        assert_eq!(p.activity(), "failed (1 turn)");
        p.apply(&result("", false, 0));
        assert_eq!(p.activity(), "failed (0 turns)");
    }

    proptest! {
        #[test]
        fn never_panics_on_bytes(line in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse_line(&line);
        }

        #[test]
        fn never_panics_on_json_ish(
            kind in prop_oneof![Just("system"), Just("assistant"), Just("user"), Just("result"), Just("other")],
            subtype in prop_oneof![Just("init"), Just("api_retry"), Just("success")],
            key in prop_oneof![Just("message"), Just("error"), Just("usage"), Just("num_turns"), Just("agents"), Just("attempt"), Just("result")],
            value in prop_oneof![
                Just("null".to_owned()), Just("true".to_owned()), Just("-1".to_owned()), Just("1e400".to_owned()),
                Just("[1,{}]".to_owned()), Just(r#"{"content":[1,"x",{"type":"text","text":7}]}"#.to_owned()),
                "[a-z ]{0,10}".prop_map(|s| format!("{s:?}")),
            ],
        ) {
            let line = format!(r#"{{"type":"{kind}","subtype":"{subtype}","{key}":{value}}}"#);
            let _ = parse_line(line.as_bytes());
        }
    }
}
