//! `sandpen gateway`: serves one run's egress and model traffic until its input ends.

use crate::cli::GatewayArgs;

pub async fn run(args: GatewayArgs) -> anyhow::Result<i32> {
    crate::gateway::serve::run(args.listen).await?;
    Ok(crate::exit::SUCCESS)
}
