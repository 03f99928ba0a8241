use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

/// The program in a run's gateway container (started by `sandpen run`; not for use by hand).
#[derive(Debug, Args)]
pub struct GatewayArgs {
    /// Address to listen on (port 0 for any free one). Without it or --socket, where to
    /// listen arrives on stdin as the first `listen` command.
    #[arg(long, value_name = "ADDR", conflicts_with = "socket")]
    pub listen: Option<SocketAddr>,
    /// Unix socket to listen on, as a run's gateway does.
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Reads its commands from this file (a Swarm secret) instead of stdin, and serves until
    /// it is stopped.
    #[arg(long, value_name = "FILE")]
    pub commands: Option<PathBuf>,
}
