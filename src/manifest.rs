//! The run's manifest (`_sandpen/run.json`), written before the first task starts: what
//! `sandpen gc` needs to finish a run whose sandpen process died (collect each task's work,
//! hand the checkouts back, complete the report).

use serde::{Deserialize, Serialize};

use crate::engine::spec::Limits;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub run_id: String,
    pub repo: String,
    pub base: String,
    pub image: String,
    /// The uid:gid the tasks ran as.
    pub user: (u32, u32),
    /// Whether the engine applied the tasks' limits (`Dialect::cgroup_per_container`).
    #[serde(default = "yes")]
    pub limits_enforced: bool,
    /// Where the tasks ran, when not in containers of one engine: `swarm` (a Swarm's
    /// services, whose work `gc` can only take from what came back, never from a sandbox).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    pub tasks: Vec<ManifestTask>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManifestTask {
    pub id: String,
    pub limits: Limits,
    /// What admission reserved for it from the engine's memory (`memory_request`; none in
    /// manifests of older sandpens).
    #[serde(default)]
    pub memory_request_bytes: Option<u64>,
    /// What its salvage may commit (the defaults in manifests of older sandpens).
    #[serde(default)]
    pub salvage: crate::collect::SalvageLimits,
    /// The engine's OCI runtime it ran under (`--runtime`), which `gc`'s sandbox uses too;
    /// none for the engine's default (and in manifests of older sandpens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
}

fn yes() -> bool {
    true
}

/// Whether the run's tasks ran on a Docker Swarm (its manifest says so).
pub fn on_swarm(layout: &crate::workspace::RunDir) -> bool {
    Manifest::read(&layout.manifest()).is_ok_and(|m| m.backend.as_deref() == Some("swarm"))
}

impl Manifest {
    pub fn write(&self, path: &std::path::Path) -> std::io::Result<()> {
        let json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        crate::atomic_file::write_atomically(path, &json)
    }

    pub fn read(path: &std::path::Path) -> std::io::Result<Self> {
        let text = std::fs::read(path)?;
        serde_json::from_slice(&text).map_err(std::io::Error::other)
    }
}
