//! A scripted stand-in for the Anthropic Messages API, enough for the real Claude Code CLI:
//! streaming (SSE) and plain answers, text and tool calls, usage. It plays one script per task,
//! records every request (credentials left out) as JSON lines, and answers anything it has no
//! script for with an API error the CLI reports, so a run never hangs on it.
//!
//! Used by `sandpen demo`, by `sandpen model-server`, and by the end-to-end tests.

mod script;
mod server;

pub use script::{Block, RateLimit, Script, TaskScript, Turn, Usage};
pub use server::{ModelServer, Recorded};

/// The path prefix that tells tasks apart: a task's base URL is `http://HOST:PORT/task/<id>`.
pub const TASK_PREFIX: &str = "/task/";
