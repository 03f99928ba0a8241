//! The script a model server plays: per task, the assistant turns in order.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// All tasks' scripts. Tasks are told apart by the URL path each container is given
/// (`/task/<task-id>`), never by guessing.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Script {
    pub tasks: BTreeMap<String, TaskScript>,
    /// Answer every model request with 429 for a while from the first one (testing how rate
    /// limits are handled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
    /// Answer the first N requests of each task's conversation (side requests aside) with 529
    /// `overloaded_error` (testing what a task does when the API stays overloaded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overloaded: Option<u32>,
}

/// A window of 429 answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// How long after the first model request the server answers 429.
    pub for_ms: u64,
    /// The `retry-after` header it sends with them (seconds); none when absent.
    pub retry_after_s: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskScript {
    pub turns: Vec<Turn>,
}

/// One assistant message. It ends with `tool_use` when it holds a tool call, `end_turn`
/// otherwise.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Turn {
    /// Stands for model latency: the answer starts after this long.
    #[serde(default)]
    pub delay_ms: u64,
    pub content: Vec<Block>,
    #[serde(default)]
    pub usage: Usage,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Block {
    Text {
        text: String,
    },
    /// A tool call, e.g. `Bash` with `{"command": "...", "description": "..."}`, or `Write`
    /// with `{"file_path": "/abs/path", "content": "..."}`.
    ToolUse {
        name: String,
        input: serde_json::Value,
    },
}

/// The tokens the server reports for a turn; the CLI computes its cost from them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
}

impl Default for Usage {
    fn default() -> Self {
        Self {
            input_tokens: 100,
            output_tokens: 20,
        }
    }
}

impl Turn {
    pub fn has_tool_use(&self) -> bool {
        self.content.iter().any(|b| matches!(b, Block::ToolUse { .. }))
    }

    /// A turn that runs one shell command through the CLI's Bash tool.
    pub fn bash(command: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            content: vec![Block::ToolUse {
                name: "Bash".into(),
                input: serde_json::json!({ "command": command.into(), "description": description.into() }),
            }],
            ..Default::default()
        }
    }

    /// A closing turn: text, no tool call.
    pub fn text(text: impl Into<String>) -> Self {
        Self {
            content: vec![Block::Text { text: text.into() }],
            ..Default::default()
        }
    }

    pub fn with_usage(mut self, usage: Usage) -> Self {
        self.usage = usage;
        self
    }

    pub fn with_delay(mut self, ms: u64) -> Self {
        self.delay_ms = ms;
        self
    }
}

impl TaskScript {
    /// Totals a task's usage, for checking what the CLI reports back.
    pub fn total_usage(&self) -> Usage {
        self.turns.iter().fold(
            Usage {
                input_tokens: 0,
                output_tokens: 0,
            },
            |acc, t| Usage {
                input_tokens: acc.input_tokens + t.usage.input_tokens,
                output_tokens: acc.output_tokens + t.usage.output_tokens,
            },
        )
    }
}

impl Script {
    /// A script for one task.
    pub fn one(task: &str, turns: Vec<Turn>) -> Self {
        Self {
            tasks: [(task.to_string(), TaskScript { turns })].into(),
            rate_limit: None,
            overloaded: None,
        }
    }

    /// Reads a script from JSON (`.json`) or TOML (anything else).
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
        let parsed = if path.extension().is_some_and(|e| e == "json") {
            serde_json::from_str(&text).map_err(|e| e.to_string())
        } else {
            toml::from_str(&text).map_err(|e| e.to_string())
        };
        parsed.map_err(|e| format!("{}: {e}", path.display()))
    }
}
