use std::path::PathBuf;

use clap::Args;

use super::CaCerts;

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Prompt files (*.md, one task each) and/or task files (*.toml).
    #[arg(required = true, value_name = "TASKS")]
    pub tasks: Vec<PathBuf>,

    /// The git repository to work on (default: the one around the working directory).
    #[arg(long, value_name = "DIR")]
    pub repo: Option<PathBuf>,

    /// Containers at once.
    #[arg(short, long, value_name = "N", default_value_t = 4)]
    pub jobs: usize,

    /// CPUs per task (Docker's --cpus).
    #[arg(long, value_name = "N")]
    pub cpus: Option<String>,

    /// Memory per task (Docker's meaning: 512m is 512 MiB).
    #[arg(long, value_name = "SIZE")]
    pub memory: Option<String>,

    /// Maximum processes per task.
    #[arg(long = "pids-limit", value_name = "N")]
    pub pids_limit: Option<String>,

    /// Wall-clock limit per task, e.g. 45m.
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<String>,

    /// Image to run (default: build or reuse the agent image).
    #[arg(long, value_name = "TAG")]
    pub image: Option<String>,

    /// Network for the containers: none, bridge or a network name.
    #[arg(long, default_value = "bridge")]
    pub network: String,

    /// The CLI's --max-turns.
    #[arg(long, value_name = "N", default_value_t = 50)]
    pub max_turns: u32,

    /// Where tasks start (a commit-ish).
    #[arg(long, value_name = "REF", default_value = "HEAD")]
    pub base: String,

    /// Also write the JSON report to this file.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,

    /// NDJSON events on stdout instead of the live view.
    #[arg(long)]
    pub json: bool,

    /// Cancel the remaining tasks after the first failure.
    #[arg(long)]
    pub fail_fast: bool,

    /// Keep containers after they exit (for debugging).
    #[arg(long)]
    pub keep_containers: bool,

    #[command(flatten)]
    pub ca: CaCerts,
}
