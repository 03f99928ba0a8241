//! `sandpen entry`: a task's container on a Swarm node, from fetching its files to sending its
//! result back (`swarm::entry`).

use std::time::Duration;

use crate::cli::EntryArgs;

pub async fn run(args: EntryArgs) -> anyhow::Result<i32> {
    crate::swarm::entry(crate::swarm::EntryArgs {
        deadline: Duration::from_secs(args.deadline_secs),
        grace: Duration::from_secs(args.grace_secs),
        collect: args.collect,
        disk_limit: args.disk_bytes,
        command: args.command,
    })
    .await
}
