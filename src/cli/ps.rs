use std::path::PathBuf;

use clap::Args;

#[derive(Debug, Args)]
pub struct PsArgs {
    #[command(flatten)]
    pub engine: super::EngineArg,

    /// A run id: list its tasks (state, elapsed, CPU, memory, turns, phase). Without it, list
    /// the repository's runs.
    #[arg(value_name = "RUN", add = clap_complete::engine::ArgValueCompleter::new(crate::runs::complete::run))]
    pub run: Option<String>,

    /// The git repository whose runs to list (default: the one around the working directory).
    #[arg(long, value_name = "DIR")]
    pub repo: Option<PathBuf>,

    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub color: super::ColorArg,
}
