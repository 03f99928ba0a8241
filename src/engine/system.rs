use bollard::models::{SystemInfo, SystemVersion};
use serde::Serialize;

use super::{CALL_TIMEOUT, Engine, EngineError};

/// What `sandpen doctor` and the run's checks need to know about the engine.
#[derive(Debug, Clone, Serialize)]
pub struct EngineInfo {
    pub address: String,
    /// Which engine: "Docker Engine", "Podman", "Podman (rootless)", ...
    pub name: String,
    pub dialect: super::Dialect,
    /// What this engine does not do that sandpen would use (`Dialect::warnings`).
    pub warnings: Vec<String>,
    pub version: String,
    pub api_version: String,
    pub os: String,
    pub arch: String,
    pub kernel: String,
    pub operating_system: String,
    pub cgroup_version: String,
    pub cgroup_driver: String,
    pub storage_driver: String,
    pub ncpu: i64,
    pub mem_total: i64,
    pub init_binary: String,
    /// The OCI runtimes a container may name (`--runtime`), with their executables and
    /// arguments, and the one used when none is named.
    pub runtimes: Vec<super::RuntimeInfo>,
    pub default_runtime: String,
}

impl EngineInfo {
    /// From the `/version` and `/info` the engine answered at connect.
    pub(super) fn new(
        address: &str,
        dialect: super::Dialect,
        version: SystemVersion,
        info: SystemInfo,
    ) -> Self {
        let text = |v: Option<String>| v.unwrap_or_else(|| "unknown".into());
        let (runtimes, default_runtime) = super::runtimes::from_info(&info);
        Self {
            runtimes,
            default_runtime,
            address: address.to_string(),
            name: dialect.name().into(),
            dialect,
            warnings: dialect.warnings(),
            version: text(version.version),
            api_version: text(version.api_version),
            os: text(version.os),
            arch: text(version.arch),
            kernel: text(version.kernel_version),
            operating_system: text(info.operating_system),
            cgroup_version: info
                .cgroup_version
                .map(|v| v.to_string())
                .unwrap_or_else(|| "unknown".into()),
            cgroup_driver: info
                .cgroup_driver
                .map(|v| v.to_string())
                .unwrap_or_else(|| "unknown".into()),
            storage_driver: text(info.driver),
            ncpu: info.ncpu.unwrap_or(0),
            mem_total: info.mem_total.unwrap_or(0),
            init_binary: text(info.init_binary),
        }
    }
}

impl EngineInfo {
    /// Why containers cannot run under the runtime `name` here, its fix included: the engine
    /// cannot choose one per container, lacks it, or (gateway mode) its gVisor cannot reach
    /// the gateway's socket.
    pub fn runtime_refusal(&self, name: &str, gateway_mode: bool) -> Option<String> {
        if let Some(why) = self.dialect.runtime_refused() {
            return Some(format!("runtime `{name}`: {why}"));
        }
        super::runtimes::refusal(&self.runtimes, name, gateway_mode)
    }
}

impl Engine {
    /// What the engine said of itself at connect.
    pub fn info(&self) -> &EngineInfo {
        &self.info
    }
}

impl Engine {
    /// Whether a network of that name (or id) exists.
    pub async fn network_exists(&self, name: &str) -> Result<bool, EngineError> {
        let context = format!("inspecting network {name}");
        EngineError::limited(&context, CALL_TIMEOUT, async {
            match self
                .docker()
                .inspect_network(name, None::<bollard::query_parameters::InspectNetworkOptions>)
                .await
            {
                Ok(_) => Ok(true),
                Err(e) if super::error::is_not_found(&e) => Ok(false),
                Err(e) => Err(EngineError::api(&context, &e)),
            }
        })
        .await
    }
}

impl Engine {
    /// The gateway of the default bridge network: the host as containers on it see it.
    pub async fn bridge_gateway(&self) -> Result<std::net::IpAddr, EngineError> {
        self.network_gateway("bridge").await
    }

    /// The gateway address of a network: the engine host as containers on it see it.
    pub async fn network_gateway(&self, name: &str) -> Result<std::net::IpAddr, EngineError> {
        let context = format!("inspecting network {name}");
        let net = EngineError::limited(&context, CALL_TIMEOUT, async {
            self.docker()
                .inspect_network(name, None::<bollard::query_parameters::InspectNetworkOptions>)
                .await
                .map_err(|e| EngineError::api(&context, &e))
        })
        .await?;
        let configs = net.ipam.and_then(|i| i.config).unwrap_or_default();
        let gateway = configs
            .iter()
            .filter_map(|c| c.gateway.as_deref())
            .find_map(|g| g.parse().ok());
        // Some engines leave Gateway empty: the bridge then takes the subnet's first address.
        let first_host = || {
            configs.iter().filter_map(|c| c.subnet.as_deref()).find_map(|s| {
                let (addr, _) = s.split_once('/')?;
                let v4: std::net::Ipv4Addr = addr.parse().ok()?;
                Some(std::net::IpAddr::V4(std::net::Ipv4Addr::from(u32::from(v4) + 1)))
            })
        };
        gateway.or_else(first_host).ok_or_else(|| EngineError::Api {
            context: format!("finding the gateway of network {name}"),
            reason: "the network has no IPv4 gateway".into(),
        })
    }
}
