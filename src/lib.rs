//! sandpen: run many AI coding tasks in parallel, each sealed in its own Docker container.
//!
//! The binary (`main.rs`) parses arguments and maps errors to exit codes; everything else
//! lives in this library so that integration tests can drive the same code.

pub mod agent;
pub mod atomic_file;
pub mod blocking_writer;
pub mod capped_log;
pub mod cli;
pub mod collect;
pub mod commands;
pub mod demo;
pub mod disk_watch;
pub mod engine;
pub mod exit;
pub mod gateway;
pub mod gc;
pub mod http_serve;
pub mod image;
pub mod manifest;
pub mod model_server;
pub mod monitor;
pub mod owner;
pub mod plan;
pub mod prune;
pub mod report;
pub mod runner;
pub mod runs;
pub mod swarm;
pub mod task_log;
#[cfg(test)]
mod test_git;
pub mod token;
pub mod transcript;
pub mod warm;
pub mod workspace;
