//! The files of one run, under `<git-dir>/sandpen/runs/<run-id>/` (`RunsHome`): one place that knows the
//! layout. Task ids start with a letter or digit, so sandpen's own files live under `_sandpen/`
//! and can never collide with a task's checkout (a task named `agents` is fine).

use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunDir {
    pub root: PathBuf,
}

impl RunDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The name under which attempt `n` of `task` keeps its files once a later attempt runs:
    /// `<task>.<n>.log`, `<task>.<n>/` (its checkout), ... Task ids hold no `.`, so it is no
    /// task's name.
    pub fn attempt_key(task: &str, n: u32) -> String {
        format!("{task}.{n}")
    }

    /// The task's checkout: the only directory of the run a task container can write.
    pub fn checkout(&self, task: &str) -> PathBuf {
        self.root.join(task)
    }

    pub fn log(&self, task: &str) -> PathBuf {
        self.root.join(format!("{task}.log"))
    }

    pub fn stderr_log(&self, task: &str) -> PathBuf {
        self.root.join(format!("{task}.stderr.log"))
    }

    /// Where the task's output switched between stdout and stderr (`task_log::streams`).
    pub fn streams_log(&self, task: &str) -> PathBuf {
        self.root.join(format!("{task}.streams"))
    }

    /// The task's CPU and memory samples over time, one JSON line each (`StatsPoint`).
    pub fn stats_log(&self, task: &str) -> PathBuf {
        self.root.join(format!("{task}.stats.jsonl"))
    }

    pub fn report(&self) -> PathBuf {
        self.root.join("report.json")
    }

    /// Every egress attempt and model request the run's gateway saw, one JSON line each.
    pub fn egress(&self) -> PathBuf {
        self.root.join("egress.jsonl")
    }

    /// The gateway's own messages.
    pub fn gateway_log(&self) -> PathBuf {
        self.root.join("gateway.log")
    }

    /// Where the run's gateway listens (its socket), mounted into its container and, read-only,
    /// into every task's (`gateway::relay`).
    /// The warm environment's preparation works here (the project's files, its `.venv`),
    /// removed once it ended.
    pub fn env_prepare(&self) -> PathBuf {
        self.internal().join("env-prepare")
    }

    pub fn gateway_dir(&self) -> PathBuf {
        self.internal().join("gateway")
    }

    /// The relay every gateway-mode task container runs, mounted read-only.
    pub fn relay(&self) -> PathBuf {
        self.internal().join("sandpen-relay")
    }

    /// sandpen's own files of the run.
    pub fn internal(&self) -> PathBuf {
        self.root.join("_sandpen")
    }

    /// Requests to the run's owning process (`sandpen stop`), one file each.
    pub fn control(&self) -> PathBuf {
        self.internal().join("control")
    }

    /// The agent definitions mounted read-only into every task container.
    pub fn agents(&self) -> PathBuf {
        self.internal().join("agents")
    }

    /// The task's prompt, mounted read-only into its container.
    pub fn prompt(&self, task: &str) -> PathBuf {
        self.internal().join("prompts").join(format!("{task}.md"))
    }

    /// The task's agent session (`agent::session`): mounted writable into each of its
    /// attempts' containers, kept across them.
    pub fn session(&self, task: &str) -> PathBuf {
        self.internal().join("sessions").join(task)
    }

    /// Where the collection sandbox writes the task's result bundle.
    pub fn collect_out(&self, task: &str) -> PathBuf {
        self.internal().join("out").join(task)
    }

    /// Each task's exchange URL on a Swarm (`<url> <task>` lines; mode 0600, for a URL holds
    /// the task's token), so that `gc` can take the work a task sends after sandpen died.
    pub fn swarm_tokens(&self) -> PathBuf {
        self.internal().join("swarm-tokens")
    }

    /// The collection script, mounted read-only into task containers that collect in place.
    pub fn collect_script(&self) -> PathBuf {
        self.internal().join("collect.sh")
    }

    /// The refs of the task's checkout as sandpen made it ("<oid> <ref>" lines); its mtime
    /// is when the checkout was made.
    pub fn start_refs(&self, task: &str) -> PathBuf {
        self.internal().join("refs").join(task)
    }

    /// sandpen's own copy of a result bundle, out of every container's reach.
    pub fn bundle_copy(&self, task: &str) -> PathBuf {
        self.internal().join("bundles").join(format!("{task}.bundle"))
    }

    /// A rerun's earlier attempts of the tasks it runs again, for `gc` (`runner::attempts`).
    pub fn earlier_attempts(&self) -> PathBuf {
        self.internal().join("attempts.json")
    }

    /// Locked by the live sandpen process that owns the run (see `owner`).
    pub fn lease(&self) -> PathBuf {
        self.internal().join("lease")
    }

    /// What `gc` needs to finish a run whose sandpen died: repository, base, image, tasks.
    pub fn manifest(&self) -> PathBuf {
        self.internal().join("run.json")
    }

    pub fn path(&self) -> &Path {
        &self.root
    }
}
