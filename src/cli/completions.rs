use std::path::PathBuf;

use clap::{Args, ValueEnum};

/// Shell completion scripts, printed to stdout.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell: bash, zsh or fish.
    #[arg(value_enum)]
    pub shell: ShellArg,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ShellArg {
    Bash,
    Zsh,
    Fish,
}

/// `sandpen man`.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write every page (sandpen.1 and one per command, sandpen-run.1, ...) into this
    /// directory instead of the top-level page to stdout.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}
