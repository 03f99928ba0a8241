//! Docker Swarm as the place tasks run (issue 11, in progress): each task's container is a
//! one-replica service on whichever node the Swarm picks. `SwarmEngine` puts services behind
//! the same `ContainerEngine` trait the runner uses for local containers, so the scheduler,
//! the events and the reports keep their shape. Nodes share no disk with sandpen's machine, so
//! nothing is bind-mounted (`job.rs`: what a service can and cannot say), and the task's files
//! must be delivered over the network (not yet: `sandpen run --backend swarm` does not exist).

mod job;
mod lifecycle;
mod registry;

pub use job::{JobError, Placement, deliverable, service_spec};
pub use registry::{RegistryError, check_address, publish};

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::engine::{CALL_TIMEOUT, Engine, EngineError};

/// A Swarm manager, and the task of each service sandpen made, as last seen.
#[derive(Clone)]
pub struct SwarmEngine {
    engine: Engine,
    placement: Placement,
    tasks: Arc<Mutex<HashMap<String, bollard::models::Task>>>,
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
        })
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
