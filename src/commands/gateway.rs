//! `sandpen gateway`: serves one run's egress and model traffic until its input ends.

use crate::cli::GatewayArgs;
use crate::gateway::protocol::Endpoint;

pub async fn run(args: GatewayArgs) -> anyhow::Result<i32> {
    let on = match (args.listen, args.socket) {
        (Some(addr), _) => Some(Endpoint::Tcp(addr)),
        (None, Some(path)) => Some(Endpoint::Unix(path)),
        (None, None) => None,
    };
    crate::gateway::serve::run(on).await?;
    Ok(crate::exit::SUCCESS)
}
