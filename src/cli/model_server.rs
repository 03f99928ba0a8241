use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

#[derive(Debug, Args)]
pub struct ModelServerArgs {
    #[command(flatten)]
    pub engine: super::EngineArg,

    /// The script to play (TOML, or JSON with a .json name); see docs/model-server.md.
    #[arg(long, value_name = "FILE")]
    pub script: PathBuf,

    /// Address to listen on. Task containers reach the host at the bridge gateway
    /// (usually 172.17.0.1), which is the default when the engine has a bridge network.
    #[arg(long, value_name = "ADDR")]
    pub bind: Option<SocketAddr>,

    /// Append every request (credentials left out) to this file as JSON lines.
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,
}
