//! A task's container as a Swarm service: the same `ContainerSpec` the local engine gets, in
//! the service API's terms. Pure data, so every rule is checked without a Swarm.
//!
//! One task is a `replicated` service of one replica whose restart condition is `none`: it
//! runs once and stays as it ended until sandpen removes it. Not a `replicated-job`, although
//! that is the mode made for it: Engine 20.10 leaves a job's container running when its
//! service is removed (moby/moby#44312, fixed in Engine 24), and removal is how a stop, a
//! timeout and Ctrl-C end a task on a Swarm.
//!
//! The hardening and limits are `engine::hardening`'s, the same as a local container's; what
//! the service API cannot say is named there and in docs/SCALE-OUT.md. The engine's log stays
//! on: the service's log stream is how its output comes back.

use std::collections::HashMap;
use std::time::Duration;

use bollard::models::{
    Mount, MountType, NetworkAttachmentConfig, ServiceSpec, ServiceSpecMode, ServiceSpecModeReplicated,
    TaskSpec, TaskSpecContainerSpec, TaskSpecContainerSpecFile, TaskSpecContainerSpecSecrets,
    TaskSpecLogDriver, TaskSpecPlacement, TaskSpecRestartPolicy, TaskSpecRestartPolicyConditionEnum,
};
use secrecy::ExposeSecret;

use crate::engine::NetworkMode;
use crate::engine::hardening;
use crate::engine::spec::{ContainerSpec, WORKDIR};

/// Where a node keeps what sandpen delivers: the task's files arrive over the network into
/// these writable places (the root is read-only). Volumes of the node for what may be large
/// (the checkout, the borrowed objects, the result): their size is the node's disk, not the
/// task's memory. The image sandpen adds its entry step to makes them open to any uid
/// (`swarm::image`), and a new volume takes its mode from the image.
pub const VOLUMES: [&str; 3] = [WORKDIR, "/run/sandpen", OUT_DIR];
/// The rest is memory, bounded, as for a local container.
pub const TMPFS: [(&str, i64); 3] = hardening::TMPFS;

/// The file, under `/run/secrets`, of a task's credentials or token (`ContainerSpec::secrets`
/// but the exchange's URL): a Swarm secret of the task's service, readable by the task's uid
/// alone, never an environment variable of the service (`docker service inspect` shows those).
/// The entry step gives them to the command's environment, as a local container has them.
pub const SECRETS_FILE: &str = "sandpen-env";

/// The name of that secret, from the service's.
pub fn secret_name(service: &str) -> String {
    format!("{service}-env")
}

/// What goes in the secret: the spec's secrets but the exchange's URL (kept from the task by
/// its entry step: `entry::EXCHANGE_ENV`), as a JSON object; None when there are none.
pub fn secrets_data(spec: &ContainerSpec) -> Option<String> {
    let map: HashMap<&str, &str> = spec
        .secrets
        .iter()
        .filter(|(k, _)| k != super::EXCHANGE_ENV)
        .map(|(k, v)| (k.as_str(), v.expose_secret()))
        .collect();
    (!map.is_empty()).then(|| serde_json::to_string(&map).unwrap_or_default())
}

/// The out directory of the collection (`collect::sandbox::OUT`): sent back to sandpen.
pub const OUT_DIR: &str = "/sandpen-out";

/// Where one task's service goes and how it ends.
#[derive(Debug, Clone, Default)]
pub struct Placement {
    /// Swarm placement constraints, passed through (`node.labels.gpu==yes`).
    pub constraints: Vec<String>,
    /// How long a removed service's container has between SIGTERM and SIGKILL.
    pub grace: Duration,
}

/// Why a spec cannot become a service.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JobError {
    #[error(
        "{target} is mounted from this machine, and a Swarm node has none of its files; \
         only paths under {} can be delivered",
        delivered_roots()
    )]
    NotDeliverable { target: String },
}

impl crate::exit::HasExitCode for JobError {
    /// Refused before anything started: a mount the user asked for cannot reach a node.
    fn exit_code(&self) -> i32 {
        crate::exit::INVALID_INPUT
    }
}

fn delivered_roots() -> String {
    let tmpfs = TMPFS.iter().map(|(p, _)| *p);
    VOLUMES.into_iter().chain(tmpfs).collect::<Vec<_>>().join(", ")
}

/// Whether `target` lies in a place the service has writable (so the entry step can put a
/// delivered file there).
pub fn deliverable(target: &str) -> bool {
    let under = |root: &str| target == root || target.starts_with(&format!("{root}/"));
    VOLUMES.into_iter().any(under) || TMPFS.iter().any(|(root, _)| under(root))
}

/// The service of one task. Its bind mounts are not mounts here: each must be deliverable.
/// `secret`: the id of its secret (`secrets_data`), made beforehand.
pub fn service_spec(
    spec: &ContainerSpec,
    placement: &Placement,
    secret: Option<&str>,
) -> Result<ServiceSpec, JobError> {
    if let Some(m) = spec.mounts.iter().find(|m| !deliverable(&m.target)) {
        return Err(JobError::NotDeliverable {
            target: m.target.clone(),
        });
    }
    let (uid, gid) = spec.user;
    let mut mounts: Vec<Mount> = VOLUMES
        .iter()
        .map(|path| Mount {
            target: Some(path.to_string()),
            typ: Some(MountType::VOLUME),
            ..Default::default()
        })
        .collect();
    mounts.extend(hardening::service_tmpfs());
    // The exchange's URL alone stays in the environment: the entry step takes it out of the
    // task's, and the task's uid could read a secret's file.
    let mut env = spec.env.clone();
    env.extend(
        spec.secrets
            .iter()
            .filter(|(k, _)| k == super::EXCHANGE_ENV)
            .map(|(k, v)| format!("{k}={}", v.expose_secret())),
    );
    let secrets = secret.map(|id| {
        vec![TaskSpecContainerSpecSecrets {
            file: Some(TaskSpecContainerSpecFile {
                name: Some(SECRETS_FILE.into()),
                uid: Some(uid.to_string()),
                gid: Some(gid.to_string()),
                mode: Some(0o400),
            }),
            secret_id: Some(id.to_string()),
            secret_name: Some(secret_name(&spec.name)),
        }]
    });
    let container = hardening::service_container(TaskSpecContainerSpec {
        image: Some(spec.image.clone()),
        labels: Some(spec.labels.clone()),
        command: Some(spec.cmd.clone()),
        env: Some(env),
        dir: Some(WORKDIR.into()),
        user: Some(format!("{uid}:{gid}")),
        tty: Some(false),
        open_stdin: Some(false),
        mounts: Some(mounts),
        secrets,
        stop_grace_period: Some(placement.grace.as_nanos() as i64),
        ..Default::default()
    });
    let task = TaskSpec {
        container_spec: Some(container),
        resources: Some(hardening::service_resources(&spec.limits, spec.memory_request)),
        restart_policy: Some(TaskSpecRestartPolicy {
            condition: Some(TaskSpecRestartPolicyConditionEnum::NONE),
            max_attempts: Some(0),
            ..Default::default()
        }),
        placement: Some(TaskSpecPlacement {
            constraints: (!placement.constraints.is_empty()).then(|| placement.constraints.clone()),
            ..Default::default()
        }),
        // Gateway mode (no network of its own): the task's internal overlay alone, where its
        // gateway is its one way out (`swarm::gateway`). Else its node's bridge.
        networks: (spec.network == NetworkMode::None).then(|| {
            vec![NetworkAttachmentConfig {
                target: Some(super::parts::Names::of_service(&spec.name).network),
                ..Default::default()
            }]
        }),
        // The service's log stream is how output comes back: the nodes keep it in json-file.
        log_driver: Some(TaskSpecLogDriver {
            name: Some("json-file".into()),
            options: Some(HashMap::from([("max-size".into(), "50m".into())])),
        }),
        ..Default::default()
    };
    Ok(ServiceSpec {
        name: Some(spec.name.clone()),
        labels: Some(spec.labels.clone()),
        task_template: Some(task),
        mode: Some(ServiceSpecMode {
            replicated: Some(ServiceSpecModeReplicated { replicas: Some(1) }),
            ..Default::default()
        }),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::spec::{BindMount, HOME, Limits};

    fn spec() -> ContainerSpec {
        ContainerSpec {
            name: "sandpen-r-t".into(),
            image: "reg:5000/sandpen-probe@sha256:abc".into(),
            cmd: vec!["sh".into(), "-c".into(), "true".into()],
            env: vec!["A=1".into()],
            secrets: vec![("ANTHROPIC_API_KEY".into(), "sk-canary".into())],
            user: (1000, 1000),
            labels: HashMap::from([("sandpen.run".into(), "r".into())]),
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
            network: crate::engine::NetworkMode::Bridge,
            engine_log: false,
            gated: false,
            self_collect: None,
            runtime: None,
            memory_request: Some(128 << 20),
        }
    }

    fn placement() -> Placement {
        Placement {
            constraints: vec!["node.role==worker".into()],
            grace: Duration::from_secs(10),
        }
    }

    #[test]
    fn a_task_is_one_hardened_limited_replica_that_never_restarts() {
        let s = service_spec(&spec(), &placement(), None).unwrap();
        assert_eq!(s.mode.unwrap().replicated.unwrap().replicas, Some(1));
        let task = s.task_template.unwrap();
        let restart = task.restart_policy.unwrap();
        assert_eq!(restart.condition, Some(TaskSpecRestartPolicyConditionEnum::NONE));
        let c = task.container_spec.unwrap();
        assert_eq!(c.user.as_deref(), Some("1000:1000"));
        assert_eq!(c.read_only, Some(true));
        assert_eq!(c.init, Some(true));
        assert_eq!(c.capability_drop, Some(vec!["ALL".to_string()]));
        assert_eq!(c.stop_grace_period, Some(10_000_000_000));
        // The credential is not in the service's environment: in its secret's file.
        assert!(!c.env.unwrap().iter().any(|e| e.contains("sk-canary")));
        assert!(c.secrets.is_none(), "no secret made for it here");
        assert_eq!(
            secrets_data(&spec()).as_deref(),
            Some(r#"{"ANTHROPIC_API_KEY":"sk-canary"}"#)
        );
        let s = service_spec(&spec(), &placement(), Some("sec1")).unwrap();
        let c = s.task_template.unwrap().container_spec.unwrap();
        let secret = &c.secrets.unwrap()[0];
        let file = secret.file.as_ref().unwrap();
        assert_eq!(file.name.as_deref(), Some(SECRETS_FILE));
        assert_eq!((file.uid.as_deref(), file.mode), (Some("1000"), Some(0o400)));
        assert_eq!(secret.secret_name.as_deref(), Some("sandpen-r-t-env"));
        let r = task.resources.unwrap();
        let (l, reserved) = (r.limits.unwrap(), r.reservations.unwrap());
        assert_eq!(
            (l.nano_cpus, l.memory_bytes, l.pids),
            (Some(1_500_000_000), Some(512 << 20), Some(256))
        );
        // The reservation is the task's memory request, not its limit; no CPUs reserved.
        assert_eq!(
            (reserved.nano_cpus, reserved.memory_bytes),
            (None, Some(128 << 20))
        );
        assert_eq!(
            task.placement.unwrap().constraints.unwrap(),
            ["node.role==worker"]
        );
    }

    #[test]
    fn in_gateway_mode_a_task_is_on_its_internal_overlay_alone() {
        let s = service_spec(&spec(), &placement(), None).unwrap();
        assert!(s.task_template.unwrap().networks.is_none(), "bridge: its node's");
        let mut gated = spec();
        gated.network = NetworkMode::None;
        let s = service_spec(&gated, &placement(), None).unwrap();
        let nets = s.task_template.unwrap().networks.unwrap();
        let targets: Vec<_> = nets.iter().map(|n| n.target.clone().unwrap()).collect();
        assert_eq!(targets, ["sandpen-r-t-net"]);
    }

    #[test]
    fn nothing_is_bind_mounted_from_this_machine() {
        let s = service_spec(&spec(), &placement(), None).unwrap();
        let mounts = s.task_template.unwrap().container_spec.unwrap().mounts.unwrap();
        assert!(
            mounts
                .iter()
                .all(|m| m.typ != Some(MountType::BIND) && m.source.is_none())
        );
        let workspace = mounts
            .iter()
            .find(|m| m.target.as_deref() == Some(WORKDIR))
            .unwrap();
        assert_eq!(workspace.typ, Some(MountType::VOLUME));
    }

    #[test]
    fn a_mount_outside_the_delivered_places_is_refused() {
        let mut s = spec();
        s.mounts.push(BindMount::read_only("/x", "/etc/passwd"));
        let err = service_spec(&s, &placement(), None).unwrap_err();
        assert_eq!(
            err,
            JobError::NotDeliverable {
                target: "/etc/passwd".into()
            }
        );
        assert!(err.to_string().contains("/run/sandpen"));
        assert!(deliverable("/run/sandpen/prompt") && deliverable("/workspace/a"));
        assert!(!deliverable("/run/sandpenx") && !deliverable("/"));
    }

    #[test]
    fn the_credentials_stay_out_of_a_debug_print_of_the_spec() {
        assert!(!format!("{:?}", spec()).contains("sk-canary"));
    }
}
