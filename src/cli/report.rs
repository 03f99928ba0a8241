use std::path::PathBuf;

use clap::Args;

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The run's id: a directory under the repository's `.git/sandpen/runs/` (`sandpen ps` lists them).
    #[arg(value_name = "RUN")]
    pub run: String,

    /// Write the run as one self-contained HTML page to this file.
    #[arg(long, value_name = "FILE", required = true)]
    pub html: PathBuf,

    /// The repository (default: the one around the current directory).
    #[arg(long, value_name = "PATH")]
    pub repo: Option<PathBuf>,
}
