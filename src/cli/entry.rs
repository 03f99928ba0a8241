use clap::Args;

/// The entry step of a task's container on a Swarm node (started by the task's service; not
/// for use by hand). Reads the run's exchange address from SANDPEN_EXCHANGE.
#[derive(Debug, Args)]
pub struct EntryArgs {
    /// The task's timeout, in seconds, as sandpen counts it.
    #[arg(long, value_name = "SECONDS")]
    pub deadline_secs: u64,

    /// The grace of a stop, in seconds.
    #[arg(long, value_name = "SECONDS")]
    pub grace_secs: u64,

    /// Shell lines that collect the task's work once the command ended (they read `$left`).
    #[arg(long, value_name = "SHELL")]
    pub collect: Option<String>,

    /// The task's disk limit: its checkout and out directory are stopped past this many bytes.
    #[arg(long, value_name = "BYTES")]
    pub disk_bytes: Option<u64>,

    /// The task's command.
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}
