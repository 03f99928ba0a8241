use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

#[derive(Debug, Args)]
pub struct PruneArgs {
    #[command(flatten)]
    pub engine: super::EngineArg,

    /// Only runs that ended longer ago than this (e.g. `7d`, `12h`, `30min`); a run that
    /// never ended counts from its start.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub older_than: Option<Duration>,

    /// Say what would be removed, and remove nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Only this run (repeatable; default: every run of the repository).
    #[arg(long = "run", value_name = "ID")]
    pub runs: Vec<String>,

    /// Also remove the run's logs and report (its whole directory), once none of its
    /// checkouts is left.
    #[arg(long)]
    pub logs: bool,

    /// Also remove the warm environments (volumes, `sandpen doctor` lists them) made longer
    /// ago than --older-than (all without it), whatever repository made them; a run then
    /// prepares its environment anew.
    #[arg(long)]
    pub envs: bool,

    /// The git repository of the runs (default: the one around the working directory).
    #[arg(long, value_name = "DIR")]
    pub repo: Option<PathBuf>,
}
