//! The hardening of every container sandpen makes, in one place for both backends: a local
//! container (`HostConfig`, the Engine API) and a task's service on a Swarm (`TaskSpec`, the
//! service API), so that neither can drift from the other.
//!
//! The rule: no capabilities, no privilege gain (`no-new-privileges`), a read-only root, an
//! init that reaps and forwards signals, hard CPU, memory and pids limits, no swap beyond the
//! memory limit, and the writable places apart from the checkout in bounded memory (`TMPFS`).
//!
//! What the service API of Engine 20.10 (API 1.41) cannot say is made good, or named
//! (docs/SCALE-OUT.md): `no-new-privileges` (`Privileges.NoNewPrivileges` is API 1.44) is set
//! by the entry step on itself before anything of the task runs (`in_container`), so every
//! process of the task inherits it; the swap limit (`SwapBytes` is API 1.46) is the node's.

use bollard::models::{
    HostConfig, Limit, Mount, MountTmpfsOptions, MountType, ResourceObject, TaskSpecContainerSpec,
    TaskSpecResources,
};

use super::Dialect;

/// Hard limits, in the engine's units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Limits {
    pub nano_cpus: i64,
    pub memory_bytes: i64,
    pub pids: i64,
}

/// Capabilities every container drops: all of them.
pub const CAP_DROP: &str = "ALL";
/// The security option of a local container that forbids privilege gain (setuid binaries,
/// file capabilities).
pub const NO_NEW_PRIVILEGES: &str = "no-new-privileges:true";
/// The task's writable places besides the checkout: memory, bounded. `$HOME/.claude` is its
/// own so that it stays writable when a read-only agents directory is mounted inside it.
/// (`/home/sandpen` is `spec::HOME`, checked there.)
pub const TMPFS: [(&str, i64); 3] = [
    ("/tmp", 1 << 30),
    ("/home/sandpen", 512 << 20),
    ("/home/sandpen/.claude", 256 << 20),
];

/// A local container's hardening and limits (`HostConfig`), whatever it is for.
pub fn host_config(limits: &Limits, dialect: &Dialect) -> HostConfig {
    HostConfig {
        ulimits: dialect.ulimits(),
        userns_mode: dialect.userns_mode(),
        nano_cpus: Some(limits.nano_cpus),
        memory: Some(limits.memory_bytes),
        memory_swap: Some(limits.memory_bytes),
        pids_limit: Some(limits.pids),
        cap_drop: Some(vec![CAP_DROP.into()]),
        security_opt: Some(vec![NO_NEW_PRIVILEGES.into()]),
        init: Some(true),
        readonly_rootfs: Some(true),
        privileged: Some(false),
        ..Default::default()
    }
}

/// A local container's tmpfs mounts, as the Engine API takes them (options per dialect).
pub fn host_tmpfs(dialect: &Dialect, user: (u32, u32)) -> std::collections::HashMap<String, String> {
    TMPFS
        .iter()
        .map(|(path, bytes)| (path.to_string(), dialect.tmpfs_options(&size(*bytes), user)))
        .collect()
}

fn size(bytes: i64) -> String {
    match bytes {
        b if b % (1 << 30) == 0 => format!("{}g", b >> 30),
        b => format!("{}m", b >> 20),
    }
}

/// A service's container with the same hardening: a read-only root, an init, no capabilities.
/// `no-new-privileges` is the entry step's (`in_container`).
pub fn service_container(container: TaskSpecContainerSpec) -> TaskSpecContainerSpec {
    TaskSpecContainerSpec {
        read_only: Some(true),
        init: Some(true),
        capability_drop: Some(vec![CAP_DROP.into()]),
        ..container
    }
}

/// A service's tmpfs mounts: the same places and sizes as a local container's.
pub fn service_tmpfs() -> impl Iterator<Item = Mount> {
    TMPFS.iter().map(|(path, size)| Mount {
        target: Some(path.to_string()),
        typ: Some(MountType::TMPFS),
        tmpfs_options: Some(MountTmpfsOptions {
            size_bytes: Some(*size),
            // Sticky and open to all, as /tmp: the task's uid is not known to the image.
            mode: Some(0o1777),
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// A service's limits and what it reserves on its node, by which the Swarm places it: the
/// task's memory reservation (`memory_request`, as admission counts it locally; `None`: the
/// whole limit), no CPUs (as locally, tasks share the node's CPUs up to their limits; a
/// reservation of the limit would run one 2-CPU task at a time on a 2-core node). (`SwapBytes`
/// is API 1.46: the node's setting decides.)
pub fn service_resources(limits: &Limits, memory_request: Option<i64>) -> TaskSpecResources {
    TaskSpecResources {
        limits: Some(Limit {
            nano_cpus: Some(limits.nano_cpus),
            memory_bytes: Some(limits.memory_bytes),
            pids: Some(limits.pids),
        }),
        reservations: Some(ResourceObject {
            memory_bytes: Some(
                memory_request
                    .unwrap_or(limits.memory_bytes)
                    .min(limits.memory_bytes),
            ),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// What the container does to itself where its engine could not: forbids privilege gain to
/// the calling thread and everything it starts (`PR_SET_NO_NEW_PRIVS`, inherited and never
/// undone). Called by the entry step first, on the one thread of its runtime, the thread that
/// starts every process of the task.
pub fn in_container() -> std::io::Result<()> {
    rustix::thread::set_no_new_privs(true).map_err(std::io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        nano_cpus: 1_500_000_000,
        memory_bytes: 512 << 20,
        pids: 256,
    };

    #[test]
    fn both_backends_get_the_same_places_in_memory() {
        let local = host_tmpfs(&Dialect::DOCKER, (1000, 1000));
        let swarm: Vec<_> = service_tmpfs().collect();
        assert_eq!(local.len(), swarm.len());
        for m in swarm {
            let (path, bytes) = (m.target.unwrap(), m.tmpfs_options.unwrap().size_bytes.unwrap());
            assert!(
                local[&path].contains(&format!("size={}", size(bytes))),
                "{path}: {local:?}"
            );
        }
        assert_eq!(size(1 << 30), "1g");
        assert_eq!(size(256 << 20), "256m");
    }

    #[test]
    fn both_backends_drop_every_capability_and_keep_the_root_read_only() {
        let host = host_config(&LIMITS, &Dialect::DOCKER);
        let service = service_container(TaskSpecContainerSpec::default());
        assert_eq!(host.cap_drop, service.capability_drop);
        assert_eq!(host.readonly_rootfs, service.read_only);
        assert_eq!(host.init, service.init);
        let r = service_resources(&LIMITS, None).limits.unwrap();
        assert_eq!(
            (host.nano_cpus, host.memory, host.pids_limit),
            (r.nano_cpus, r.memory_bytes, r.pids)
        );
    }

    #[test]
    fn privilege_gain_is_forbidden_to_what_the_container_starts() {
        // The flag is the thread's: this test's thread, gone when it ends; its children keep it.
        in_container().unwrap();
        let out = std::process::Command::new("grep")
            .args(["NoNewPrivs", "/proc/self/status"])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "NoNewPrivs:\t1");
    }
}
