use clap::Args;

#[derive(Debug, Args)]
pub struct GcArgs {
    /// Show what would be removed without removing it.
    #[arg(long)]
    pub dry_run: bool,
}
