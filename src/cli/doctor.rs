use clap::Args;

#[derive(Debug, Args)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub engine: super::EngineArg,

    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}
