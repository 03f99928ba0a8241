//! `run --backend swarm`: the flags it needs, checked before anything is made, and what a run
//! on a Swarm adds to a prepared one (the manager as `SwarmEngine`, the exchange, the task
//! image with its entry step, pushed and pinned by digest).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::signals::Signals;
use crate::cli::{BackendArg, SwarmArgs};
use crate::engine::Engine;
use crate::exit::UsageError;
use crate::swarm::{Capacity, Exchange, Placement, SwarmEngine};

/// What a run on a Swarm was asked for.
pub struct SwarmInput {
    pub registry: String,
    pub advertise: SocketAddr,
    pub constraints: Vec<String>,
}

/// A run's Swarm, ready: tasks go to `engine`.
pub struct OnSwarm {
    pub engine: SwarmEngine,
    pub capacity: Capacity,
    /// Listening since the reach probe, for the run to take over.
    pub signals: Option<Signals>,
    /// Where the nodes pull from (`--registry`).
    pub registry: String,
    /// Once `ready`: the task image as given and its local tag with the entry step (the warm
    /// environment's layer builds on it, `warm::Layered`).
    pub images: Option<(String, String)>,
}

/// The Swarm flags, or their absence: refused when they do not fit together.
pub fn check_input(
    s: &SwarmArgs,
    network: &crate::runner::TaskNetwork,
) -> anyhow::Result<Option<SwarmInput>> {
    if s.backend == BackendArg::Local {
        let stray = [
            ("--registry", s.registry.is_some()),
            ("--advertise-addr", s.advertise_addr.is_some()),
            ("--constraint", !s.constraints.is_empty()),
        ];
        if let Some((flag, _)) = stray.iter().find(|(_, given)| *given) {
            return Err(usage(format!(
                "{flag} is for tasks on a Docker Swarm\nfix: add --backend swarm, or leave {flag} out"
            )));
        }
        return Ok(None);
    }
    let Some(registry) = s.registry.clone() else {
        return Err(usage(
            "--backend swarm needs --registry HOST:PORT: the Swarm's nodes pull the task image from it\n\
             fix: run a registry the nodes reach (Debian's docker-registry will do) and name it"
                .into(),
        ));
    };
    crate::swarm::check_address(&registry)?;
    let Some(addr) = s.advertise_addr.as_deref() else {
        return Err(usage(
            "--backend swarm needs --advertise-addr ADDR: the address of this machine the nodes \
             reach, where each task fetches its files and sends its work back\n\
             fix: pass this machine's address on the nodes' network (for example --advertise-addr 10.0.0.5)"
                .into(),
        ));
    };
    let advertise = addr
        .parse::<SocketAddr>()
        .or_else(|_| addr.parse::<std::net::IpAddr>().map(|ip| SocketAddr::new(ip, 0)))
        .map_err(|_| {
            usage(format!(
                "--advertise-addr {addr:?} is not an IP address or IP:PORT\nfix: give an address of this machine, for example 10.0.0.5 or 10.0.0.5:7070"
            ))
        })?;
    // The gateway (the default) and the node's bridge: no task on a Swarm can be without a
    // network of its own choosing otherwise.
    if !matches!(
        network,
        crate::runner::TaskNetwork::Gateway | crate::runner::TaskNetwork::Bridge
    ) {
        return Err(usage(format!(
            "--network {network}: on a Swarm a task runs behind its gateway (the default: no route \
             but to it, no key in its container) or on its node's bridge\nfix: leave --network out \
             for the gateway, pass --network bridge, or run on this engine (--backend local)"
        )));
    }
    Ok(Some(SwarmInput {
        registry,
        advertise,
        constraints: s.constraints.clone(),
    }))
}

/// Checks that `engine` manages a Swarm and reads what its nodes hold; before any image.
pub async fn connect(engine: &Engine, input: &SwarmInput, grace: Duration) -> anyhow::Result<OnSwarm> {
    let placement = Placement {
        constraints: input.constraints.clone(),
        grace,
    };
    let engine = SwarmEngine::new(engine.clone(), placement).await?;
    let capacity = engine.capacity().await?;
    if capacity.nodes == 0 {
        return Err(usage(
            "the Swarm has no ready, active node to run tasks on\nfix: `docker node ls` on the manager shows why".into(),
        ));
    }
    Ok(OnSwarm {
        engine,
        capacity,
        signals: None,
        registry: input.registry.clone(),
        images: None,
    })
}

/// The task image with its entry step, pushed to the registry; the exchange serving. Returns
/// the reference the services pull.
pub async fn ready(on: &mut OnSwarm, input: &SwarmInput, task_image: &str) -> anyhow::Result<String> {
    let manager = on.engine.engine().clone();
    let mut display = crate::report::build::BuildDisplay::stderr();
    let tag = crate::swarm::with_entry(&manager, task_image, &mut |e| display.on_event(e)).await;
    display.finish();
    let tag = tag?;
    let pinned = crate::swarm::publish(&manager, &tag, &input.registry).await?;
    on.images = Some((task_image.to_string(), tag));
    let exchange = Exchange::start(input.advertise).await.map_err(|e| {
        usage(format!(
            "--advertise-addr {}: cannot listen there ({e})\nfix: give an address of this machine that the Swarm's nodes reach",
            input.advertise
        ))
    })?;
    on.engine = on.engine.clone().with_exchange(Arc::new(exchange));
    // Before any task: a node must reach the exchange, or every task would fail alone.
    let probe = crate::engine::spec::Owner {
        run_id: format!("probe-{}", std::process::id()),
        process: crate::owner::this_owner(),
        process_start: crate::owner::this_start_time(),
        run_dir: std::path::PathBuf::new(),
    };
    // Ctrl-C from here on stops the probe, and later the run: listened for once, never lost.
    on.signals = on.signals.take().or_else(Signals::new);
    let (engine, signals) = (&on.engine, &mut on.signals);
    let stopped = async {
        match signals {
            Some(s) => s.next().await,
            None => std::future::pending().await,
        }
    };
    crate::swarm::check_reach(engine, &pinned, &probe, stopped).await?;
    Ok(pinned)
}

fn usage(message: String) -> anyhow::Error {
    UsageError(message).into()
}
