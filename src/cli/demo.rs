use std::path::PathBuf;

use clap::Args;

use super::CaCerts;

#[derive(Debug, Args)]
pub struct DemoArgs {
    #[command(flatten)]
    pub engine: super::EngineArg,

    /// Create the sample repository here (a new or empty directory) instead of a temporary one.
    #[arg(long, value_name = "DIR")]
    pub repo: Option<PathBuf>,

    /// Also write the JSON report to this file.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,

    /// Write the run as JUnit XML to this file when it ends (one test case per task).
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,

    /// Write the run as one self-contained HTML page to this file when it ends: a timeline of
    /// the tasks, CPU and memory over time, a table of the tasks.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,

    /// The engine's OCI runtime for the tasks, as `run --runtime` (e.g. `runsc`).
    #[arg(long, value_name = "NAME")]
    pub runtime: Option<String>,

    /// Containers at once.
    #[arg(short, long, value_name = "N", default_value_t = 4)]
    pub jobs: usize,

    #[command(flatten)]
    pub ca: CaCerts,

    /// NDJSON events on stdout instead of the live view.
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub color: super::ColorArg,
}
