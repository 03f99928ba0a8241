use std::path::PathBuf;

use clap::Args;

#[derive(Debug, Args)]
#[command(override_usage = "sandpen stop [OPTIONS] [RUN] [TASK]")]
pub struct StopArgs {
    /// The run (default: the latest run of the repository); with one argument that is not a
    /// run of the repository, a task of the latest run.
    #[arg(value_name = "RUN", add = clap_complete::engine::ArgValueCompleter::new(crate::runs::complete::run_or_task))]
    pub first: Option<String>,

    /// The task to stop; without it, the whole run.
    #[arg(value_name = "TASK", add = clap_complete::engine::ArgValueCompleter::new(crate::runs::complete::task))]
    pub second: Option<String>,

    /// The git repository of the run (default: the one around the working directory).
    #[arg(long, value_name = "DIR")]
    pub repo: Option<PathBuf>,
}
