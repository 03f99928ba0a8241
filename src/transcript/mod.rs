//! A task's session as a readable transcript, from the CLI's stream-json lines: the prompt,
//! the agent's text, each tool call and its result (shortened), API retries, the final result.
//!
//! Pure logic: lines in, entries out, entries to text. A log is whatever the container wrote,
//! so nothing here fails: plain text (a hook's output, the probe's script) is shown as
//! output, a line cut short is shown as such, and JSON of a type it does not know is skipped.

mod render;
mod shorten;

#[cfg(test)]
mod tests;

pub use render::render;

use std::collections::HashMap;

use serde_json::Value;

use crate::monitor::{AgentEvent, parse_line};

/// Characters of a tool's input shown, and lines.
const INPUT_CHARS: usize = 400;
const INPUT_LINES: usize = 6;
/// Characters of a tool's result shown, and lines.
const RESULT_CHARS: usize = 800;
const RESULT_LINES: usize = 10;
/// A line of plain output, or the start of a line that is not whole JSON.
const OUTPUT_CHARS: usize = 500;

/// One thing that happened in the session.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    /// The task's prompt (the prompt file, or the first user message of the stream).
    Prompt(String),
    /// A later user message that is not a tool result.
    User {
        text: String,
        sub: bool,
    },
    /// The CLI's init line.
    Session {
        model: String,
        version: String,
        cwd: String,
    },
    /// The agent's text; `sub` when a subagent wrote it (the line has a parent tool use).
    Text {
        text: String,
        sub: bool,
    },
    ToolCall {
        name: String,
        input: String,
        sub: bool,
    },
    ToolResult {
        /// The name of the call it answers, when the call was seen.
        tool: Option<String>,
        text: String,
        is_error: bool,
        sub: bool,
    },
    ApiRetry {
        attempt: u32,
        max_retries: u32,
        delay_ms: u64,
        error: String,
    },
    Result {
        subtype: String,
        is_error: bool,
        turns: u32,
        cost_usd: Option<f64>,
        duration_ms: u64,
        text: Option<String>,
    },
    /// A line that is not JSON: output the CLI passed through.
    Output(String),
    /// A line that starts like JSON but does not parse (cut short, or garbled).
    Partial(String),
    /// The bytes of a line past the reader's bound (`task_log::lines`): not read.
    Cut(u64),
}

/// The state a transcript needs across lines.
#[derive(Debug, Default)]
pub struct Transcript {
    prompt_seen: bool,
    /// Tool names by `tool_use` id, to name the result that answers each call.
    tools: HashMap<String, String>,
    ended: bool,
    /// The agent's last text: the result usually repeats it, and once is enough.
    last_text: Option<String>,
    /// JSON lines of types or subtypes the transcript does not show.
    pub skipped: u64,
}

impl Transcript {
    pub fn new() -> Self {
        Self::default()
    }

    /// The prompt from the run directory: the CLI does not echo a prompt it read on stdin,
    /// so this is the one place it is known. A first user message in the stream is then shown
    /// as a user message.
    pub fn prompt(&mut self, text: &str) -> Entry {
        self.prompt_seen = true;
        Entry::Prompt(text.trim_end().to_string())
    }

    /// Whether the session's result line has been seen.
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// The entries of a line of which the reader left out the last `cut` bytes.
    pub fn push_cut(&mut self, line: &[u8], cut: u64) -> Vec<Entry> {
        let mut entries = self.push(line);
        if cut > 0 {
            entries.push(Entry::Cut(cut));
        }
        entries
    }

    /// The entries of one line of the log (without its newline).
    pub fn push(&mut self, line: &[u8]) -> Vec<Entry> {
        let line = line.trim_ascii();
        if line.is_empty() {
            return Vec::new();
        }
        let text = || shorten::chars(&String::from_utf8_lossy(line), OUTPUT_CHARS);
        if line[0] != b'{' {
            return vec![Entry::Output(text())];
        }
        let Ok(Value::Object(obj)) = serde_json::from_slice::<Value>(line) else {
            return vec![Entry::Partial(text())];
        };
        let kind = obj.get("type").and_then(Value::as_str).unwrap_or_default();
        let sub = obj.get("parent_tool_use_id").is_some_and(Value::is_string);
        let entries = match kind {
            "assistant" => self.assistant(obj.get("message"), sub),
            "user" => self.user(obj.get("message"), sub),
            // The shared parser reads these leniently (numbers as strings, odd errors).
            "system" | "result" => match parse_line(line) {
                Some(AgentEvent::Init(i)) => vec![Entry::Session {
                    model: i.model,
                    version: i.claude_code_version,
                    cwd: i.cwd,
                }],
                Some(AgentEvent::ApiRetry {
                    attempt,
                    max_retries,
                    retry_delay_ms,
                    error,
                }) => vec![Entry::ApiRetry {
                    attempt,
                    max_retries,
                    delay_ms: retry_delay_ms,
                    error,
                }],
                Some(AgentEvent::Result(r)) => {
                    self.ended = true;
                    let repeated = r.result.as_deref().map(str::trim) == self.last_text.as_deref();
                    vec![Entry::Result {
                        subtype: r.subtype,
                        is_error: r.is_error,
                        turns: r.num_turns,
                        cost_usd: r.cost_usd,
                        duration_ms: r.duration_ms,
                        text: r.result.filter(|_| !repeated),
                    }]
                }
                _ => Vec::new(),
            },
            _ => Vec::new(),
        };
        if entries.is_empty() {
            self.skipped += 1;
        }
        entries
    }

    fn assistant(&mut self, message: Option<&Value>, sub: bool) -> Vec<Entry> {
        let mut out = Vec::new();
        for block in blocks(message) {
            match block.get("type").and_then(Value::as_str) {
                Some("text") => {
                    let text = block.get("text").and_then(Value::as_str).unwrap_or_default();
                    if !text.trim().is_empty() {
                        if !sub {
                            self.last_text = Some(text.trim().to_string());
                        }
                        out.push(Entry::Text {
                            text: text.trim().to_string(),
                            sub,
                        });
                    }
                }
                Some("tool_use") => {
                    let name = block
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or("?")
                        .to_string();
                    if let Some(id) = block.get("id").and_then(Value::as_str) {
                        self.tools.insert(id.to_string(), name.clone());
                    }
                    let input = shorten::tool_input(&name, block.get("input"));
                    let input = shorten::lines(&input, INPUT_LINES, INPUT_CHARS);
                    out.push(Entry::ToolCall { name, input, sub });
                }
                _ => {} // thinking, images, and blocks of later CLIs
            }
        }
        out
    }

    fn user(&mut self, message: Option<&Value>, sub: bool) -> Vec<Entry> {
        let mut out = Vec::new();
        // A plain string content is a prompt or a user message.
        if let Some(text) = message.and_then(|m| m.get("content")).and_then(Value::as_str) {
            out.extend(self.user_text(text, sub));
            return out;
        }
        for block in blocks(message) {
            match block.get("type").and_then(Value::as_str) {
                Some("tool_result") => {
                    let tool = block
                        .get("tool_use_id")
                        .and_then(Value::as_str)
                        .and_then(|id| self.tools.get(id).cloned());
                    let text = shorten::result_text(block.get("content"));
                    out.push(Entry::ToolResult {
                        tool,
                        text: shorten::lines(&text, RESULT_LINES, RESULT_CHARS),
                        is_error: block.get("is_error").and_then(Value::as_bool) == Some(true),
                        sub,
                    });
                }
                Some("text") => {
                    let text = block.get("text").and_then(Value::as_str).unwrap_or_default();
                    out.extend(self.user_text(text, sub));
                }
                _ => {}
            }
        }
        out
    }

    fn user_text(&mut self, text: &str, sub: bool) -> Option<Entry> {
        let text = text.trim();
        if text.is_empty() {
            return None;
        }
        if !self.prompt_seen && !sub {
            return Some(self.prompt(text));
        }
        Some(Entry::User {
            text: text.to_string(),
            sub,
        })
    }
}

/// The content blocks of a message; none when it has no array of them.
fn blocks(message: Option<&Value>) -> impl Iterator<Item = &Value> {
    message
        .and_then(|m| m.get("content"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

/// A whole log as text: the prompt (if known) and every line's entries. A last line without
/// its newline (a task still writing) is read as far as it goes.
pub fn render_log(prompt: Option<&str>, log: &[u8]) -> String {
    let mut t = Transcript::new();
    let mut out = String::new();
    if let Some(p) = prompt {
        out.push_str(&render(&t.prompt(p)));
    }
    for line in log.split(|&b| b == b'\n') {
        for e in t.push(line) {
            out.push_str(&render(&e));
        }
    }
    out
}
