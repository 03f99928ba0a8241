//! What a task's container is: limits, hardening, labels, mounts. Built here, in one place, so
//! that every container sandpen creates gets the same protections.

use std::collections::HashMap;
use std::path::PathBuf;

use bollard::models::{
    ContainerCreateBody, HostConfig, HostConfigLogConfig, Mount, MountType, MountVolumeOptions,
};
use secrecy::{ExposeSecret, SecretString};

use super::Dialect;

/// Label keys on every container sandpen creates.
pub const LABEL_RUN: &str = "sandpen.run";
pub const LABEL_TASK: &str = "sandpen.task";
pub const LABEL_OWNER: &str = "sandpen.owner";
/// The owner process's start time (clock ticks since boot), so that `gc` can tell a live
/// owner from a new process that reused its pid.
pub const LABEL_OWNER_START: &str = "sandpen.owner-start";
/// What the container is for: `task` (the agent), `collect` (the collection sandbox) or
/// `gateway` (the run's gateway).
pub const LABEL_ROLE: &str = "sandpen.role";
/// The role of the run's gateway container: set by `gateway::host`, and the one container the
/// runner's final sweep leaves to the gateway's own handle.
pub const ROLE_GATEWAY: &str = "gateway";
/// The run's directory on the host (holds its lease, manifest and report), for `gc`.
pub const LABEL_RUN_DIR: &str = "sandpen.run-dir";

/// Who made a container and for which run: the labels every container of a run carries.
#[derive(Debug, Clone)]
pub struct Owner {
    pub run_id: String,
    /// `<host>:<pid>` of the sandpen process, and its start time.
    pub process: String,
    pub process_start: String,
    pub run_dir: PathBuf,
}

impl Owner {
    /// The labels of one container of the run.
    pub fn labels(&self, task: &str, role: &str) -> HashMap<String, String> {
        [
            (LABEL_RUN, self.run_id.clone()),
            (LABEL_TASK, task.to_string()),
            (LABEL_ROLE, role.to_string()),
            (LABEL_OWNER, self.process.clone()),
            (LABEL_OWNER_START, self.process_start.clone()),
            (LABEL_RUN_DIR, self.run_dir.display().to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }
}

/// The longest name a task's container takes: a Swarm service, overlay or secret name may
/// have 63 characters, and its parts add a suffix of up to 4 (`-gw`, `-net`, `-env`).
const NAME_MAX: usize = 59;

/// A task's container's name (on a Swarm, its service's, and the stem of its parts' names):
/// `sandpen-RUN-TASK`. A task id too long for that keeps its start and ends in 8 hex digits
/// of its hash, so two ids never share a name.
pub fn task_container_name(run_id: &str, task: &str) -> String {
    let full = format!("sandpen-{run_id}-{task}");
    if full.len() <= NAME_MAX {
        return full;
    }
    use sha2::{Digest, Sha256};
    let hash = hex::encode(&Sha256::digest(task.as_bytes())[..4]);
    // Task ids are ASCII (`plan::is_valid_id`); a cut elsewhere falls back to fewer bytes.
    let room = NAME_MAX.saturating_sub(full.len() - task.len() + 1 + hash.len());
    let cut = (0..=room.min(task.len()))
        .rev()
        .find(|&i| task.is_char_boundary(i))
        .unwrap_or(0);
    format!("sandpen-{run_id}-{}-{hash}", &task[..cut])
}

/// Where the task's checkout appears inside the container.
pub const WORKDIR: &str = "/workspace";
/// The task user's home inside the container (a tmpfs).
pub const HOME: &str = "/home/sandpen";

pub use super::NetworkMode;
pub use super::hardening::Limits;

/// A file or directory from the host, mounted into the container.
#[derive(Debug, Clone)]
pub struct BindMount {
    pub source: PathBuf,
    pub target: String,
    pub read_only: bool,
    /// `source` names an engine volume, not a host path (a warm environment, `warm/`).
    pub volume: bool,
}

impl BindMount {
    /// As the Engine API takes it: a bind mount (the source must exist; the engine makes
    /// none).
    pub fn to_mount(&self) -> Mount {
        // A volume mounted read-only is never filled from the image (`nocopy`): what it holds
        // is sandpen's. A writable one takes its top directory's owner and mode from the image.
        let (typ, volume_options) = match self.volume {
            true => (
                MountType::VOLUME,
                Some(MountVolumeOptions {
                    no_copy: Some(self.read_only),
                    ..Default::default()
                }),
            ),
            false => (MountType::BIND, None),
        };
        Mount {
            target: Some(self.target.clone()),
            source: Some(self.source.display().to_string()),
            typ: Some(typ),
            read_only: Some(self.read_only),
            volume_options,
            ..Default::default()
        }
    }

    pub fn read_only(source: impl Into<PathBuf>, target: impl Into<String>) -> Self {
        Self {
            source: source.into(),
            target: target.into(),
            read_only: true,
            volume: false,
        }
    }

    /// The engine's volume `name` at `target`.
    pub fn volume(name: &str, target: impl Into<String>, read_only: bool) -> Self {
        Self {
            source: name.into(),
            target: target.into(),
            read_only,
            volume: true,
        }
    }
}

/// Everything needed to create one task's container.
#[derive(Debug, Clone)]
pub struct ContainerSpec {
    pub name: String,
    pub image: String,
    pub cmd: Vec<String>,
    /// `KEY=value` pairs that are not secret.
    pub env: Vec<String>,
    /// Credentials: kept out of `Debug`, and joined into the environment only in `to_body`.
    pub secrets: Vec<(String, SecretString)>,
    /// `uid:gid`, never root.
    pub user: (u32, u32),
    pub labels: HashMap<String, String>,
    /// The task's checkout on the host, at `WORKDIR`: a task container's only writable mount.
    pub workspace: PathBuf,
    pub mounts: Vec<BindMount>,
    pub limits: Limits,
    pub network: super::NetworkMode,
    /// Keep the engine's own log of the container (for `docker logs` when debugging). sandpen
    /// reads output by attaching and writes its own logs, so by default the engine keeps none:
    /// no second copy on disk, no rotation to lose data to.
    pub engine_log: bool,
    /// Its standard input is open for sandpen to write once (the gate, `gateway::gate`); closed
    /// when sandpen's attachment ends.
    pub gated: bool,
    /// For an engine that shares no disk with sandpen: how the container collects its work
    /// itself (a local container's command carries its own collection, `agent::command`).
    pub self_collect: Option<SelfCollect>,
    /// The engine's OCI runtime for it (`--runtime`, e.g. gVisor's `runsc`); `None` is the
    /// engine's default.
    pub runtime: Option<String>,
    /// The memory reserved for it when deciding what may start (`memory_request`): a Swarm
    /// places by it; `None` reserves the whole limit.
    pub memory_request: Option<i64>,
}

/// How a container far from sandpen's disk collects its work, after its command, whether that
/// ended by itself or was stopped (`swarm::entry`).
#[derive(Debug, Clone)]
pub struct SelfCollect {
    /// Shell lines that run the collection script; they read their time budget from `$left`.
    pub shell: String,
    /// The task's timeout as sandpen counts it.
    pub deadline: std::time::Duration,
    /// The task's disk limit, in bytes: watched in the container, since no watcher of
    /// sandpen's can see the node's disk.
    pub disk_limit: Option<u64>,
}

impl ContainerSpec {
    /// The Engine API body. Hardening is not optional: no capabilities, no privilege gain, an
    /// init that reaps and forwards signals, a read-only root, no swap, no TTY (so stdout and
    /// stderr stay apart), and no Docker socket (only the checkout is mounted).
    pub fn to_body(&self, dialect: &Dialect) -> ContainerCreateBody {
        let (uid, gid) = self.user;
        let mut mounts = vec![Mount {
            target: Some(WORKDIR.into()),
            source: Some(self.workspace.display().to_string()),
            typ: Some(MountType::BIND),
            read_only: Some(false),
            ..Default::default()
        }];
        mounts.extend(self.mounts.iter().map(BindMount::to_mount));
        let mut env = self.env.clone();
        env.extend(
            self.secrets
                .iter()
                .map(|(k, v)| format!("{k}={}", v.expose_secret())),
        );
        let host = HostConfig {
            tmpfs: Some(super::hardening::host_tmpfs(dialect, self.user)),
            mounts: Some(mounts),
            network_mode: Some(self.network.to_string()),
            log_config: (!self.engine_log).then(|| HostConfigLogConfig {
                typ: Some("none".into()),
                config: None,
            }),
            runtime: self.runtime.clone(),
            ..super::hardening::host_config(&self.limits, dialect)
        };
        ContainerCreateBody {
            image: Some(self.image.clone()),
            cmd: Some(self.cmd.clone()),
            env: Some(env),
            user: Some(format!("{uid}:{gid}")),
            working_dir: Some(WORKDIR.into()),
            labels: Some(self.labels.clone()),
            tty: Some(false),
            open_stdin: Some(self.gated),
            stdin_once: Some(self.gated),
            attach_stdin: Some(self.gated),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            host_config: Some(host),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_names_fit_a_swarm_and_stay_apart() {
        let run = "20261205-210931-7bf5";
        assert_eq!(task_container_name(run, "fix-1"), format!("sandpen-{run}-fix-1"));
        let long = "a".repeat(63);
        let (a, b) = (
            task_container_name(run, &long),
            task_container_name(run, &format!("{}b", "a".repeat(62))),
        );
        assert!(a.len() <= NAME_MAX && b.len() <= NAME_MAX, "{a} {b}");
        assert!(a.starts_with(&format!("sandpen-{run}-aaaa")), "{a}");
        assert_ne!(a, b, "ids that share their start keep names of their own");
        assert_eq!(a, task_container_name(run, &long), "the same id, the same name");
    }

    fn spec() -> ContainerSpec {
        ContainerSpec {
            name: "sandpen-r-t".into(),
            image: "img".into(),
            cmd: vec!["claude".into()],
            env: vec!["A=1".into()],
            secrets: vec![("ANTHROPIC_API_KEY".into(), "sk-canary".into())],
            user: (1000, 1000),
            labels: HashMap::from([(LABEL_RUN.into(), "r".into())]),
            workspace: "/repo/.git/sandpen/runs/r/t".into(),
            mounts: vec![BindMount::read_only(
                "/x/agents",
                format!("{HOME}/.claude/agents"),
            )],
            limits: Limits {
                nano_cpus: 1_500_000_000,
                memory_bytes: 512 << 20,
                pids: 256,
            },
            network: super::NetworkMode::None,
            engine_log: false,
            gated: false,
            self_collect: None,
            runtime: None,
            memory_request: None,
        }
    }

    #[test]
    fn every_container_is_hardened_and_limited() {
        let body = spec().to_body(&Dialect::DOCKER);
        let host = body.host_config.as_ref().unwrap();
        assert_eq!(host.cap_drop.as_deref(), Some(&["ALL".to_string()][..]));
        assert_eq!(
            host.security_opt.as_deref(),
            Some(&["no-new-privileges:true".to_string()][..])
        );
        assert_eq!(host.init, Some(true));
        assert_eq!(host.readonly_rootfs, Some(true));
        assert_eq!(host.nano_cpus, Some(1_500_000_000));
        assert_eq!(host.memory, Some(512 << 20));
        assert_eq!(host.memory_swap, host.memory, "no swap");
        assert_eq!(host.pids_limit, Some(256));
        assert_eq!(host.privileged, Some(false));
        assert!(host.binds.is_none(), "no ad-hoc binds");
        assert_eq!(body.tty, Some(false));
        assert_eq!(body.user.as_deref(), Some("1000:1000"));
        let tmpfs = host.tmpfs.as_ref().unwrap();
        assert!(tmpfs.contains_key("/tmp") && tmpfs.contains_key(HOME));
        assert!(tmpfs.contains_key(&format!("{HOME}/.claude")));
    }

    #[test]
    fn a_runtime_is_the_engine_s_default_unless_named() {
        let body = spec().to_body(&Dialect::DOCKER);
        assert_eq!(body.host_config.unwrap().runtime, None);
        let named = ContainerSpec {
            runtime: Some("runsc".into()),
            ..spec()
        };
        let host = named.to_body(&Dialect::DOCKER).host_config.unwrap();
        assert_eq!(host.runtime.as_deref(), Some("runsc"));
        assert_eq!(
            host.cap_drop.as_deref(),
            Some(&["ALL".to_string()][..]),
            "still hardened"
        );
    }

    #[test]
    fn credentials_reach_the_container_but_never_a_debug_print() {
        let spec = spec();
        assert!(!format!("{spec:?}").contains("sk-canary"));
        let env = spec.to_body(&Dialect::DOCKER).env.unwrap();
        assert!(env.contains(&"ANTHROPIC_API_KEY=sk-canary".to_string()));
        assert!(env.contains(&"A=1".to_string()));
    }

    #[test]
    fn only_the_checkout_is_writable_and_the_socket_is_never_mounted() {
        let body = spec().to_body(&Dialect::DOCKER);
        let mounts = body.host_config.unwrap().mounts.unwrap();
        let writable: Vec<_> = mounts.iter().filter(|m| m.read_only != Some(true)).collect();
        assert_eq!(writable.len(), 1);
        assert_eq!(writable[0].target.as_deref(), Some(WORKDIR));
        assert!(
            mounts
                .iter()
                .all(|m| !m.source.as_deref().unwrap_or("").contains("docker.sock"))
        );
    }
}
