use std::path::PathBuf;

use clap::Args;

#[derive(Debug, Args)]
#[command(override_usage = "sandpen logs [OPTIONS] [RUN] TASK")]
pub struct LogsArgs {
    /// The run (default: the latest run of the repository); with one argument, the task.
    #[arg(value_name = "RUN", add = clap_complete::engine::ArgValueCompleter::new(crate::runs::complete::run_or_task))]
    pub first: String,

    /// The task whose session to show.
    #[arg(value_name = "TASK", add = clap_complete::engine::ArgValueCompleter::new(crate::runs::complete::task))]
    pub second: Option<String>,

    /// The git repository of the run (default: the one around the working directory).
    #[arg(long, value_name = "DIR")]
    pub repo: Option<PathBuf>,

    /// Follow a live task until it ends.
    #[arg(short, long)]
    pub follow: bool,

    /// The log's bytes as stored (the CLI's stream-json), not the transcript.
    #[arg(long)]
    pub raw: bool,

    /// Only the task's standard error log, as stored. By default its lines follow the
    /// session's (the logs keep no timestamps to interleave them by).
    #[arg(long, conflicts_with = "stdout")]
    pub stderr: bool,

    /// Only the session (its standard output), without its standard error.
    #[arg(long)]
    pub stdout: bool,

    /// Only the last N lines of what would be shown (the task's end line aside).
    #[arg(short = 'n', long, value_name = "N")]
    pub tail: Option<usize>,

    /// The task's attempt N (1 is the first; default: the last). `sandpen rerun` makes more.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub attempt: Option<u32>,

    /// Refused: the logs are stored as the container wrote them, without timestamps.
    #[arg(long)]
    pub timestamps: bool,
}
