//! Whether the Swarm's nodes reach the run's exchange, found before any task starts: a probe
//! service of the task image whose entry step only fetches (an empty delivery) and exits. An
//! `--advertise-addr` the nodes cannot reach would otherwise fail every task, one by one.

use std::time::Duration;

use super::SwarmEngine;
use crate::engine::spec::{ContainerSpec, Limits, Owner};
use crate::engine::{ContainerEngine, EngineError};

/// How long the probe may take, its image's pull on a node included.
pub const PROBE_LIMIT: Duration = Duration::from_secs(180);

#[derive(Debug, thiserror::Error)]
pub enum ReachError {
    #[error(
        "the Swarm's nodes cannot reach this machine at {addr} (--advertise-addr): a probe task on \
         node {node} could not fetch from it{said}\n\
         fix: give an address of this machine that the nodes reach, and open its port to them \
         (a fixed one: --advertise-addr IP:PORT)"
    )]
    Unreachable {
        addr: String,
        node: String,
        said: String,
    },
    #[error("the probe task that checks --advertise-addr did not end within {}s{said}\nfix: `docker service ps` on the manager says why (no node with room, an image that cannot be pulled)", PROBE_LIMIT.as_secs())]
    TimedOut { said: String },
    #[error("interrupted while the probe task checked --advertise-addr (its service is removed)")]
    Interrupted,
    #[error("the probe task that checks --advertise-addr: {0}")]
    Engine(#[from] EngineError),
}

impl crate::exit::HasExitCode for ReachError {
    fn exit_code(&self) -> i32 {
        match self {
            Self::Interrupted => crate::exit::INTERRUPTED,
            _ => crate::exit::ENGINE_UNREACHABLE,
        }
    }
}

/// Runs the probe through `swarm` (which serves its exchange); Ok once a node fetched from it.
/// When `stopped` resolves first, the probe is removed and the check is `Interrupted`.
pub async fn check(
    swarm: &SwarmEngine,
    image: &str,
    owner: &Owner,
    stopped: impl std::future::Future<Output = ()>,
) -> Result<(), ReachError> {
    let empty = tempfile::tempdir().map_err(|e| EngineError::Api {
        context: "making the probe's delivery".into(),
        reason: e.to_string(),
    })?;
    let labels = owner.labels("reach-probe", "probe");
    let spec = ContainerSpec {
        name: format!("sandpen-{}-reach-probe", owner.run_id),
        image: image.to_string(),
        cmd: vec!["true".into()],
        env: vec![],
        secrets: vec![],
        user: (65534, 65534),
        labels,
        workspace: empty.path().to_path_buf(),
        mounts: vec![],
        limits: Limits {
            nano_cpus: 250_000_000,
            memory_bytes: 64 << 20,
            pids: 64,
        },
        network: crate::engine::NetworkMode::Bridge,
        engine_log: false,
        gated: false,
        self_collect: None,
        runtime: None,
        memory_request: None,
    };
    let id = swarm.create(&spec).await?;
    // Stopped (Ctrl-C, say) while it runs: the probe goes before sandpen does.
    let waited = tokio::select! {
        w = tokio::time::timeout(PROBE_LIMIT, swarm.wait(&id)) => w,
        _ = stopped => {
            let _ = swarm.remove(&id).await;
            return Err(ReachError::Interrupted);
        }
    };
    let fetched = swarm.fetched(&id);
    let node = swarm.node(&id).await.unwrap_or_else(|| "?".into());
    let said = match fetched {
        true => String::new(),
        false => last_words(swarm, &id).await,
    };
    let _ = swarm.remove(&id).await;
    match (waited, fetched) {
        (_, true) => Ok(()),
        (Err(_), false) => Err(ReachError::TimedOut { said }),
        (Ok(_), false) => Err(ReachError::Unreachable {
            addr: swarm.exchange_addr().unwrap_or_default(),
            node,
            said,
        }),
    }
}

/// What the probe printed last, as ": ..." for a message.
async fn last_words(swarm: &SwarmEngine, id: &str) -> String {
    use futures_util::StreamExt;
    let Ok(Ok(mut out)) = tokio::time::timeout(Duration::from_secs(10), swarm.attach(id)).await else {
        return String::new();
    };
    let mut text = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok((_, bytes))) = out.next().await {
            text.push_str(&String::from_utf8_lossy(&bytes));
        }
    })
    .await;
    let line = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_default();
    match line.trim() {
        "" => String::new(),
        l => format!(" ({})", l.chars().take(300).collect::<String>()),
    }
}
