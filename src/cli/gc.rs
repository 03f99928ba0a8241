use std::path::PathBuf;

use clap::Args;

#[derive(Debug, Args)]
pub struct GcArgs {
    #[command(flatten)]
    pub engine: super::EngineArg,

    /// Show what would be removed without removing it.
    #[arg(long)]
    pub dry_run: bool,

    /// The git repository whose runs to finish besides those the engine has containers of
    /// (default: the one around the working directory, if any).
    #[arg(long, value_name = "DIR")]
    pub repo: Option<PathBuf>,
}
