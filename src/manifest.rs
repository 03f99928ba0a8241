//! The run's manifest (`_sandpen/run.json`), written before the first task starts: what
//! `sandpen gc` needs to finish a run whose sandpen process died (collect each task's work,
//! hand the checkouts back, complete the report).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::engine::spec::Limits;
use crate::plan::TaskSpec;

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
    /// How the run ran, for `rerun` to do the same unless told otherwise: `--network`,
    /// `--max-turns`, `--allow-host` (none in manifests of older sandpens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings: Option<RunSettings>,
    pub tasks: Vec<ManifestTask>,
}

/// The run-wide choices of `run` that `rerun` takes over when not given again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSettings {
    pub network: String,
    pub max_turns: u32,
    #[serde(default)]
    pub allow_hosts: Vec<String>,
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
    /// The rest of its definition, as the plan had it: what `sandpen rerun` runs again (none
    /// in manifests of older sandpens, whose runs cannot be rerun).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub definition: Option<Definition>,
}

fn yes() -> bool {
    true
}

/// Whether the run's tasks ran on a Docker Swarm (its manifest says so).
pub fn on_swarm(layout: &crate::workspace::RunDir) -> bool {
    Manifest::read(&layout.manifest()).is_ok_and(|m| m.backend.as_deref() == Some("swarm"))
}

/// A task as the run's plan defined it, beyond its limits: `rerun` runs this, never the task
/// file as it stands on disk later.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Definition {
    pub prompt: String,
    /// The file it was defined in, and a SHA-256 of that file's bytes then, so that `rerun`
    /// can say when the file changed since.
    pub source: PathBuf,
    pub source_sha256: Option<String>,
    pub timeout_ms: u64,
    pub depends_on: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub disk_bytes: Option<u64>,
    pub log_limit_bytes: u64,
    pub allow_hosts: Vec<String>,
    pub max_cost: Option<f64>,
}

impl ManifestTask {
    /// The manifest's record of a planned task.
    pub fn of(t: &TaskSpec) -> Self {
        Self {
            id: t.id.clone(),
            limits: t.limits,
            memory_request_bytes: Some(t.memory_request_bytes.max(0) as u64),
            salvage: t.salvage,
            runtime: t.runtime.clone(),
            definition: Some(Definition {
                prompt: t.prompt.clone(),
                source: t.source.clone(),
                source_sha256: file_sha256(&t.source),
                timeout_ms: t.timeout.as_millis() as u64,
                depends_on: t.depends_on.clone(),
                env: t.env.clone(),
                disk_bytes: t.disk_bytes,
                log_limit_bytes: t.log_limit_bytes,
                allow_hosts: t.allow_hosts.clone(),
                max_cost: t.max_cost,
            }),
        }
    }

    /// The task as the run planned it; None for a manifest of an older sandpen.
    pub fn spec(&self) -> Option<TaskSpec> {
        let d = self.definition.as_ref()?;
        Some(TaskSpec {
            id: self.id.clone(),
            prompt: d.prompt.clone(),
            source: d.source.clone(),
            limits: self.limits,
            memory_request_bytes: self
                .memory_request_bytes
                .map_or(crate::plan::DEFAULT_MEMORY_REQUEST, |b| b as i64)
                .min(self.limits.memory_bytes),
            timeout: Duration::from_millis(d.timeout_ms),
            depends_on: d.depends_on.clone(),
            env: d.env.clone(),
            disk_bytes: d.disk_bytes,
            log_limit_bytes: d.log_limit_bytes,
            salvage: self.salvage,
            allow_hosts: d.allow_hosts.clone(),
            max_cost: d.max_cost,
            runtime: self.runtime.clone(),
        })
    }

    /// Whether the file the task was defined in differs from what the run read (or is gone).
    pub fn source_changed(&self) -> bool {
        self.definition
            .as_ref()
            .is_some_and(|d| d.source_sha256.is_some() && file_sha256(&d.source) != d.source_sha256)
    }
}

/// A SHA-256 of a task file's bytes (task files are small: the plan caps them).
fn file_sha256(path: &Path) -> Option<String> {
    use sha2::Digest;
    let bytes = std::fs::read(path).ok()?;
    Some(hex::encode(sha2::Sha256::digest(bytes)))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_comes_back_as_planned_and_a_changed_task_file_is_noticed() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("tasks.toml");
        std::fs::write(&source, "[[task]]\nid = \"a\"\n").unwrap();
        let t = TaskSpec {
            id: "a".into(),
            prompt: "do it".into(),
            source: source.clone(),
            limits: Limits {
                nano_cpus: 1_000_000_000,
                memory_bytes: 1 << 30,
                pids: 64,
            },
            memory_request_bytes: 256 << 20,
            timeout: Duration::from_secs(90),
            depends_on: vec!["b".into()],
            env: BTreeMap::from([("K".into(), "v".into())]),
            disk_bytes: Some(1 << 20),
            log_limit_bytes: 1 << 20,
            salvage: Default::default(),
            allow_hosts: vec!["example.com".into()],
            max_cost: Some(0.5),
            runtime: Some("runsc".into()),
        };
        let recorded = ManifestTask::of(&t);
        let json = serde_json::to_string(&recorded).unwrap();
        let back: ManifestTask = serde_json::from_str(&json).unwrap();
        assert_eq!(back.spec().as_ref(), Some(&t));
        assert!(!back.source_changed());
        std::fs::write(&source, "[[task]]\nid = \"a\"\ntimeout = \"1h\"\n").unwrap();
        assert!(back.source_changed());
        std::fs::remove_file(&source).unwrap();
        assert!(back.source_changed(), "a file that is gone differs too");
        // A manifest of an older sandpen: no definition, nothing to rerun.
        let old: ManifestTask =
            serde_json::from_str(r#"{"id":"a","limits":{"nano_cpus":1,"memory_bytes":1,"pids":1}}"#).unwrap();
        assert!(old.spec().is_none() && !old.source_changed());
    }
}
