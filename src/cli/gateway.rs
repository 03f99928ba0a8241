use std::net::SocketAddr;

use clap::Args;

/// The program in a run's gateway container (started by `sandpen run`; not for use by hand).
#[derive(Debug, Args)]
pub struct GatewayArgs {
    /// Address to listen on: the run network's gateway address, port 0 for any free one.
    /// Without it, the address arrives on stdin as the first `listen` command.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
}
