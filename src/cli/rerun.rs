use std::path::PathBuf;

use clap::Args;

use super::RunFlags;

#[derive(Debug, Args)]
#[command(
    override_usage = "sandpen rerun [OPTIONS] [RUN] [TASK]...",
    after_help = "The tasks are those the run recorded, not the task files as they are now. A limit \
                  flag given replaces the value the run recorded for each task run again; one not \
                  given keeps the recorded value (the defaults shown are `run`'s). --image defaults \
                  to the run's image; --network to gateway, as for `run`."
)]
pub struct RerunArgs {
    #[command(flatten)]
    pub engine: super::EngineArg,

    /// The run (its id, or a unique beginning of it; default: the latest run of the
    /// repository), then the tasks to run again (default: every task that did not succeed).
    #[arg(value_name = "RUN|TASK", add = clap_complete::engine::ArgValueCompleter::new(crate::runs::complete::run_or_task))]
    pub args: Vec<String>,

    /// The git repository of the run (default: the one around the working directory).
    #[arg(long, value_name = "DIR")]
    pub repo: Option<PathBuf>,

    /// Run again a named task that succeeded (refused without it).
    #[arg(long)]
    pub force: bool,

    /// Start each task's agent over: without it, a task whose last attempt left an agent
    /// session resumes it (`claude --resume`), told why that attempt stopped.
    #[arg(long)]
    pub fresh: bool,

    /// The flags `run` takes. A limit given here replaces the one the run recorded for each
    /// task run again; one not given keeps the recorded value.
    #[command(flatten)]
    pub flags: RunFlags,
}
