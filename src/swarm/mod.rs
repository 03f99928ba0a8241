//! Docker Swarm as the place tasks run (issue 11, in progress): each task's container is a
//! one-replica service on whichever node the Swarm picks. `SwarmEngine` puts services behind
//! the same `ContainerEngine` trait the runner uses for local containers, so the scheduler,
//! the events and the reports keep their shape. Nodes share no disk with sandpen's machine, so
//! nothing is bind-mounted (`job.rs`: what a service can and cannot say): the task's files
//! travel through the run's exchange (`exchange.rs`) to the entry step in its container
//! (`entry.rs`), which runs the command, collects, and sends the out directory back.

mod delivered;
mod entry;
mod exchange;
mod files_tar;
mod gateway;
mod history;
mod image;
mod job;
mod lifecycle;
mod parts;
mod pipe;
mod reach;
mod registry;
mod reopen;
mod sample;
mod transfer;

pub use entry::{EXCHANGE_ENV, EntryArgs, run as entry};
pub use exchange::{Delivery, Exchange};
pub use gateway::SwarmGateway;
pub use image::{ENTRY, with_entry};
pub use job::{JobError, Placement, deliverable, service_spec};
pub use reach::{ReachError, check as check_reach};
pub use registry::{RegistryError, check_address, publish};
pub use reopen::reopen;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::engine::{CALL_TIMEOUT, Engine, EngineError};

/// A Swarm manager, and the task of each service sandpen made, as last seen.
#[derive(Clone)]
pub struct SwarmEngine {
    engine: Engine,
    placement: Placement,
    tasks: Arc<Mutex<HashMap<String, bollard::models::Task>>>,
    /// Where tasks' files are served and their work received; each service's URL there.
    exchange: Option<Arc<Exchange>>,
    urls: Arc<Mutex<HashMap<String, String>>>,
    /// The services sandpen made, by id: their names and whether they are behind a gateway
    /// (gateway mode); their secrets and gateway parts go when they do.
    made: Arc<Mutex<HashMap<String, (String, bool)>>>,
}

/// Why an engine cannot run sandpen's tasks as services.
#[derive(Debug, thiserror::Error)]
pub enum SwarmError {
    #[error(
        "the engine at {address} is not a Swarm manager ({state})\n\
         fix: point DOCKER_HOST or --host at a manager node (`docker node ls` works there), \
         or make this engine one with `docker swarm init`"
    )]
    NotManager { address: String, state: String },
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl crate::exit::HasExitCode for SwarmError {
    fn exit_code(&self) -> i32 {
        match self {
            Self::NotManager { .. } => crate::exit::INVALID_INPUT,
            Self::Engine(e) => e.exit_code(),
        }
    }
}

/// What the Swarm's ready, active nodes hold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Capacity {
    pub nodes: usize,
    pub max_cpus: i64,
    pub max_memory: i64,
    pub total_memory: i64,
}

/// The engine's place in a Swarm, as `sandpen doctor` tells it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SwarmStatus {
    /// A manager: `run --backend swarm` can run here, on these nodes.
    Manager(Capacity),
    /// Not a manager, and why (a worker, or in no Swarm).
    NotManager(String),
}

/// Whether `engine` can run tasks as services, and on what.
pub async fn status(engine: &Engine) -> Result<SwarmStatus, EngineError> {
    match SwarmEngine::new(engine.clone(), Placement::default()).await {
        Ok(swarm) => Ok(SwarmStatus::Manager(swarm.capacity().await?)),
        Err(SwarmError::NotManager { state, .. }) => Ok(SwarmStatus::NotManager(state)),
        Err(SwarmError::Engine(e)) => Err(e),
    }
}

/// A node of the Swarm, as the report names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeName {
    pub id: String,
    pub hostname: String,
}

impl SwarmEngine {
    /// Checks that `engine` manages a Swarm: only a manager can create services.
    pub async fn new(engine: Engine, placement: Placement) -> Result<Self, SwarmError> {
        let context = "asking the engine about its Swarm";
        let info = EngineError::limited(context, CALL_TIMEOUT, async {
            engine
                .docker()
                .info()
                .await
                .map_err(|e| EngineError::api(context, &e))
        })
        .await?;
        let swarm = info.swarm.unwrap_or_default();
        if swarm.control_available != Some(true) {
            let state = match swarm.local_node_state.map(|s| s.to_string()) {
                Some(s) if s == "active" => "a worker: it cannot create services".to_string(),
                Some(s) if s == "inactive" => "it is in no Swarm".to_string(),
                Some(s) if !s.is_empty() => format!("its Swarm state is {s:?}"),
                _ => "it is in no Swarm".to_string(),
            };
            return Err(SwarmError::NotManager {
                address: engine.address().to_string(),
                state,
            });
        }
        Ok(Self {
            engine,
            placement,
            tasks: Default::default(),
            exchange: None,
            urls: Default::default(),
            made: Default::default(),
        })
    }

    /// Delivers tasks' files through `exchange` (without one, a spec may mount nothing).
    pub fn with_exchange(mut self, exchange: Arc<Exchange>) -> Self {
        self.exchange = Some(exchange);
        self
    }

    /// What the Swarm's ready nodes hold: the most CPUs and memory of one node (no task may
    /// ask for more) and the memory of all (what the running tasks' limits share).
    pub async fn capacity(&self) -> Result<Capacity, EngineError> {
        let context = "listing the Swarm's nodes";
        let nodes = EngineError::limited(context, CALL_TIMEOUT, async {
            let opts = None::<bollard::query_parameters::ListNodesOptions>;
            self.engine
                .docker()
                .list_nodes(opts)
                .await
                .map_err(|e| EngineError::api(context, &e))
        })
        .await?;
        let mut cap = Capacity::default();
        for node in nodes {
            let ready = node.status.and_then(|s| s.state) == Some(bollard::models::NodeState::READY);
            let active = node.spec.and_then(|s| s.availability)
                == Some(bollard::models::NodeSpecAvailabilityEnum::ACTIVE);
            let res = node.description.and_then(|d| d.resources).unwrap_or_default();
            if !(ready && active) {
                continue;
            }
            let (cpus, mem) = (
                res.nano_cpus.unwrap_or(0) / 1_000_000_000,
                res.memory_bytes.unwrap_or(0),
            );
            cap.nodes += 1;
            cap.max_cpus = cap.max_cpus.max(cpus);
            cap.max_memory = cap.max_memory.max(mem);
            cap.total_memory += mem;
        }
        Ok(cap)
    }

    /// Whether the service's task fetched its files from the exchange.
    pub fn fetched(&self, service: &str) -> bool {
        let url = self.urls.lock().unwrap().get(service).cloned();
        match (&self.exchange, url) {
            (Some(exchange), Some(url)) => exchange.fetched(&url),
            _ => false,
        }
    }

    /// Removes what is left of run `run_id`'s gateways (services, secrets, overlays) and its
    /// tasks' secrets, once its services are gone (`gc`); what could not be removed, said.
    pub async fn sweep_gateways(&self, run_id: &str) -> Vec<String> {
        parts::sweep(&self.engine, run_id, true).await
    }

    /// Where the exchange serves, for messages.
    pub fn exchange_addr(&self) -> Option<String> {
        self.exchange.as_ref().map(|e| e.addr().to_string())
    }

    /// The manager's engine (images, registry pushes).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The node the service's task was placed on, once the Swarm placed it.
    pub async fn node_of(&self, service: &str) -> Result<Option<NodeName>, EngineError> {
        let Some(task) = self.task_of(service).await? else {
            return Ok(None);
        };
        let Some(node) = task.node_id.filter(|n| !n.is_empty()) else {
            return Ok(None);
        };
        let context = format!("inspecting Swarm node {node}");
        let info = EngineError::limited(&context, CALL_TIMEOUT, async {
            self.engine
                .docker()
                .inspect_node(&node)
                .await
                .map_err(|e| EngineError::api(&context, &e))
        })
        .await?;
        let hostname = info.description.and_then(|d| d.hostname).unwrap_or_default();
        Ok(Some(NodeName { id: node, hostname }))
    }
}
