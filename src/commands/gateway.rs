//! `sandpen gateway`: serves one run's egress and model traffic until its input ends.

use crate::cli::GatewayArgs;
use crate::gateway::protocol::Endpoint;

pub async fn run(args: GatewayArgs) -> anyhow::Result<i32> {
    let on = match (args.listen, args.socket) {
        (Some(addr), _) => Some(Endpoint::Tcp(addr)),
        (None, Some(path)) => Some(Endpoint::Unix(path)),
        (None, None) => None,
    };
    // A Swarm's gateway (a service: nothing set no-new-privileges for it) sets it on itself.
    if args.commands.is_some() {
        crate::engine::hardening::in_container()
            .map_err(|e| anyhow::anyhow!("forbidding privilege gain (no-new-privileges): {e}"))?;
    }
    crate::gateway::serve::run(on, args.commands).await?;
    Ok(crate::exit::SUCCESS)
}
