use std::path::PathBuf;

use clap::Args;

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The run: its id as `sandpen ps` lists it, a unique beginning or end of it
    /// (default: the repository's latest run).
    #[arg(value_name = "RUN", add = clap_complete::engine::ArgValueCompleter::new(crate::runs::complete::run))]
    pub run: Option<String>,

    /// Write the run as one self-contained HTML page to this file.
    #[arg(long, value_name = "FILE", required = true)]
    pub html: PathBuf,

    /// The repository (default: the one around the current directory).
    #[arg(long, value_name = "PATH")]
    pub repo: Option<PathBuf>,
}
