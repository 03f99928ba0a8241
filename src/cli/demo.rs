use std::path::PathBuf;

use clap::Args;

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Create the sample repository here (a new or empty directory) instead of a temporary one.
    #[arg(long, value_name = "DIR")]
    pub repo: Option<PathBuf>,

    /// Also write the JSON report to this file.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,

    /// Containers at once.
    #[arg(short, long, value_name = "N", default_value_t = 4)]
    pub jobs: usize,

    /// CA certificate (PEM) to add when the agent image has to be built. Repeatable.
    #[arg(
        long = "ca-cert",
        value_name = "FILE",
        env = "SANDPEN_CA_CERT",
        value_delimiter = ':'
    )]
    pub ca_certs: Vec<PathBuf>,

    /// NDJSON events on stdout instead of the live view.
    #[arg(long)]
    pub json: bool,
}
