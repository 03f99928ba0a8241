use std::path::PathBuf;

use clap::Args;

#[derive(Debug, Args)]
#[command(override_usage = "sandpen diff [OPTIONS] [RUN] [TASK]...")]
pub struct DiffArgs {
    /// The run (its id, or a unique beginning of it; default: the latest run of the
    /// repository), then the tasks to show (default: all of them).
    #[arg(value_name = "RUN|TASK", add = clap_complete::engine::ArgValueCompleter::new(crate::runs::complete::run_or_task))]
    pub args: Vec<String>,

    /// The git repository of the run (default: the one around the working directory).
    #[arg(long, value_name = "DIR")]
    pub repo: Option<PathBuf>,

    /// Also show each result's changes as a patch.
    #[arg(long)]
    pub patch: bool,
}
