//! Watching a running task, as pure logic (no I/O, no engine calls):
//!
//! - [`LineAssembler`] reassembles lines from Docker's chunked log frames;
//! - [`parse_line`] turns a line of the Claude Code CLI's `stream-json` output into an
//!   [`AgentEvent`], and [`AgentProgress`] folds those events into a running summary;
//! - [`sample`] reduces a Docker stats sample to a [`StatsSample`] (CPU %, memory as
//!   `docker stats` computes them), and [`StatsSummary`] aggregates samples for the report.

mod lines;
mod stats;
mod stream_json;

pub use lines::{LineAssembler, MAX_LINE};
pub use stats::{StatsPoint, StatsSample, StatsSummary, sample, sample_after};
pub use stream_json::{AgentEvent, AgentInit, AgentProgress, AgentResult, parse_line};
