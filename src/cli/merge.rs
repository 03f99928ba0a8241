use std::path::PathBuf;

use clap::Args;

#[derive(Debug, Args)]
#[command(override_usage = "sandpen merge [OPTIONS] [RUN] [TASK]...")]
pub struct MergeArgs {
    /// The run (its id, or a unique beginning of it; default: the latest run of the
    /// repository), then the tasks to take in (default: those that succeeded).
    #[arg(value_name = "RUN|TASK", add = clap_complete::engine::ArgValueCompleter::new(crate::runs::complete::run_or_task))]
    pub args: Vec<String>,

    /// The git repository to merge into, on its current branch (default: the one around the
    /// working directory).
    #[arg(long, value_name = "DIR")]
    pub repo: Option<PathBuf>,

    /// One commit per task with the result's changes, instead of a merge commit.
    #[arg(long)]
    pub squash: bool,

    /// Leave this path's changes out (from the repository's top, e.g. the WorkflowManager's
    /// `.github/workflow-states`). Repeatable.
    #[arg(long, value_name = "PATH")]
    pub exclude: Vec<String>,
}
