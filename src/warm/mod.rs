//! Warm environments: a Python project's dependencies fetched once per lock, not once per task.
//!
//! When the run's base commit has `uv.lock` (or a `pyproject.toml` without one), a preparation
//! container (the task image, the tasks' hardening, the run's network, no task token or
//! credential) runs `uv sync` once into a named volume content-addressed by the image id and
//! the lock (`sandpen-env-<hash>`, labelled [`LABEL`], kept between runs). Each task mounts it
//! read-only at [`ENV_MOUNT`] and copies the environment into its own checkout (`shell`: its
//! own directories, links to the shared files): it starts warm, may change its own copy (`uv
//! add`), and never writes the shared one (a write through a link meets the read-only mount).
//! The rule, named once: **the shared environment is read-only to tasks.**
//!
//! Tasks need not wait for the preparation: the volume is made first (`Prepare::open`), the
//! tasks start beside the preparation, their CLIs send their first requests, and their tools
//! wait until the task's copy is made (`shell::tool_gate`). A failed preparation stops them.

mod layer;
mod prepare;
mod project;
mod shell;
pub mod stored;

pub use layer::{GatewayMaker, Layered};
pub use prepare::Preparation;
pub use project::Project;
pub use shell::{CACHE_DIR, task_shell, tool_gate};

use std::sync::{Arc, OnceLock};

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};

use crate::gateway::GatewayHandle;

/// The label on every environment volume: its value is the key (`key`).
pub const LABEL: &str = "sandpen.env";
/// Which file the volume was made from (`uv.lock` or `pyproject.toml`), and the image's id.
pub const LABEL_FROM: &str = "sandpen.env-from";
pub const LABEL_IMAGE: &str = "sandpen.env-image";
/// The run that made it.
pub const LABEL_RUN: &str = "sandpen.env-run";
/// Where a task sees the shared environment (read-only).
pub const ENV_MOUNT: &str = "/run/sandpen/env";
/// The name the preparation goes by in the gateway's audit (`egress.jsonl`'s `task`): a task id
/// never holds `:`.
pub const AUDIT_NAME: &str = "env:prepare";

/// The volume of an environment: its name says what it holds.
pub fn volume_name(key: &str) -> String {
    format!("sandpen-env-{key}")
}

/// What became of the run's environment, for the live view, `--json` and the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Environment {
    /// The volume tasks start from.
    pub volume: String,
    /// The file it was made from: `uv.lock`, or `pyproject.toml` when there is no lock.
    pub from: String,
    pub state: EnvState,
    pub started_at: String,
    pub duration_s: f64,
    /// Bytes the preparation received through the gateway (0: nothing fetched, or no gateway).
    pub bytes_fetched: u64,
    /// The preparation's output (its last 16 KiB) when it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// On a Swarm: the image tasks run, the environment as a layer (`layer.rs`), by digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EnvState {
    /// Made in this run.
    Prepared,
    /// Made by an earlier run: nothing fetched.
    Reused,
    /// The preparation failed: the tasks that needed it did not run.
    Failed,
}

impl Environment {
    pub fn failed(&self) -> bool {
        self.state == EnvState::Failed
    }

    /// One line for the live view.
    pub fn describe(&self) -> String {
        let what = match self.state {
            EnvState::Prepared => "prepared",
            EnvState::Reused => "reused",
            EnvState::Failed => "FAILED",
        };
        let layer = self
            .image
            .as_deref()
            .map_or(String::new(), |i| format!(", as image {i}"));
        format!(
            "environment {} (from {}): {what} in {:.1}s, {} fetched{layer}",
            self.volume,
            self.from,
            self.duration_s,
            indicatif::HumanBytes(self.bytes_fetched)
        )
    }
}

/// The preparation as the runner uses it.
pub trait Prepare: Send + Sync {
    /// Makes what a task mounts before the environment is in it (a local volume), so that
    /// tasks start while it is prepared: the volume's name. None (the default, as for a layer
    /// on a Swarm, which the task's image is made of): tasks wait for the preparation's end.
    fn open(&self) -> BoxFuture<'_, Option<String>> {
        Box::pin(std::future::ready(None))
    }

    /// Makes the environment ready (or finds it ready), through the run's gateway when there
    /// is one. Never fails: a failure is an `Environment` in the `Failed` state.
    fn prepare<'a>(&'a self, gateway: Option<&'a GatewayHandle>) -> BoxFuture<'a, Environment>;

    /// Removes what a failed preparation left, once no task uses it any more.
    fn discard<'a>(&'a self, _env: &'a Environment) -> BoxFuture<'a, ()> {
        Box::pin(std::future::ready(()))
    }
}

/// What a task starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartFrom<'a> {
    /// The volume, mounted read-only at [`ENV_MOUNT`] (ready, or still being prepared).
    Volume(&'a str),
    /// The task image with the environment in it (a Swarm's layer).
    Image(&'a str),
}

/// The run's environment: how to prepare it, and once prepared, what it is.
#[derive(Clone)]
pub struct Warm {
    pub preparer: Arc<dyn Prepare>,
    /// The volume tasks may mount while it is prepared (`Prepare::open`).
    opened: Arc<OnceLock<String>>,
    ready: Arc<OnceLock<Environment>>,
}

impl Warm {
    pub fn new(preparer: Arc<dyn Prepare>) -> Self {
        Self {
            preparer,
            opened: Default::default(),
            ready: Default::default(),
        }
    }

    /// Opens the environment's volume for tasks to start with (`Prepare::open`): whether they
    /// may start before the preparation ends.
    pub async fn open(&self) -> bool {
        match self.preparer.open().await {
            Some(volume) => self.opened.set(volume).is_ok(),
            None => false,
        }
    }

    pub fn set(&self, env: Environment) {
        let _ = self.ready.set(env);
    }

    /// The environment, once prepared.
    pub fn get(&self) -> Option<&Environment> {
        self.ready.get()
    }

    /// The volume a task that got a container started from (its report's `environment`): the
    /// one being prepared when it started, which a task that ended quickly may end before the
    /// preparation is said done; None once the preparation failed.
    pub fn task_environment(&self) -> Option<&str> {
        match self.get() {
            Some(e) if e.failed() => None,
            Some(e) => Some(&e.volume),
            None => self.opened.get().map(String::as_str),
        }
    }

    /// Whether a task may start now: the environment is prepared, or its volume is open.
    pub fn may_start(&self) -> bool {
        self.get().is_some() || self.opened.get().is_some()
    }

    /// What a task starting now starts from: the prepared environment, or the volume being
    /// prepared; None once the preparation failed (no task starts then).
    pub fn start_from(&self) -> Option<StartFrom<'_>> {
        match self.get() {
            Some(e) if e.failed() => None,
            Some(e) => Some(match &e.image {
                Some(image) => StartFrom::Image(image),
                None => StartFrom::Volume(&e.volume),
            }),
            None => self.opened.get().map(|v| StartFrom::Volume(v)),
        }
    }
}

impl std::fmt::Debug for Warm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Warm({:?})", self.get())
    }
}
