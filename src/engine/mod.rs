//! The Docker Engine API, through bollard. This is the only module that talks to the engine;
//! the rest of sandpen asks it for what it needs in sandpen's own terms.

mod cgroup;
pub(crate) mod containers;
pub mod dialect;
pub(crate) mod error;
pub mod hardening;
mod images;
mod networks;
pub mod runtimes;
mod service;
pub mod spec;
mod system;
mod volumes;

pub use containers::{ContainerEngine, ExitState, ListedContainer, OutputStream, StatsStream, Stream, short};
pub use dialect::{Dialect, EngineKind};
pub use error::{EngineError, left_for_gc};
pub use images::{BuildContext, BuildFailure, BuildLine, ImageSummary};
pub use networks::NetworkMode;
pub use runtimes::RuntimeInfo;
pub use service::{Input, ServiceSpec};
pub use system::EngineInfo;
pub use volumes::VolumeSummary;

use std::time::Duration;

use bollard::Docker;

/// Where bollard connects when neither --host nor DOCKER_HOST says otherwise.
pub const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";

/// The time limit of every engine call but the wait (which races the task's own timeout) and
/// the stop (which adds the grace): a hung engine must never hang sandpen.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// How long the first ping may take before we call the engine unreachable.
const PING_TIMEOUT: Duration = Duration::from_secs(5);

/// A connected engine. Cheap to clone (bollard's client is an `Arc` inside).
#[derive(Clone)]
pub struct Engine {
    docker: Docker,
    address: String,
    dialect: Dialect,
    /// What the engine said of itself at connect (`/version`, `/info`).
    info: std::sync::Arc<EngineInfo>,
    /// Containers whose cgroup counted an OOM kill (`cgroup.rs`), for engines that do not say.
    oom_seen: std::sync::Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
    /// The cgroups of running containers that this host shows (found by `stats`), for a kill
    /// that does not wait for the engine.
    cgroups: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, cgroup::Cgroup>>>,
}

impl Engine {
    /// Connects to `host`, else `DOCKER_HOST`, else the default socket, and checks that the
    /// engine answers. Every scheme bollard supports works: unix, tcp/http, https, ssh.
    pub async fn connect(host: Option<&str>) -> Result<Self, EngineError> {
        let address = match host {
            Some(h) => h.to_string(),
            None => std::env::var("DOCKER_HOST")
                .ok()
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| DEFAULT_HOST.to_string()),
        };
        let docker =
            Docker::connect_with_host(&address).map_err(|e| EngineError::unreachable(&address, &e))?;
        match tokio::time::timeout(PING_TIMEOUT, docker.ping()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(EngineError::unreachable(&address, &e)),
            Err(_) => {
                return Err(EngineError::Unreachable {
                    address,
                    reason: format!("no answer within {}s", PING_TIMEOUT.as_secs()),
                });
            }
        }
        let (dialect, version, info) = dialect::detect(&docker, &address).await?;
        let info = std::sync::Arc::new(EngineInfo::new(&address, dialect, version, info));
        Ok(Self {
            docker,
            address,
            dialect,
            info,
            oom_seen: Default::default(),
            cgroups: Default::default(),
        })
    }

    /// Which engine this is and how its API differs from Docker Engine's.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The address this engine was reached at, for messages.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The raw client, for the engine module's own submodules.
    pub(crate) fn docker(&self) -> &Docker {
        &self.docker
    }
}
