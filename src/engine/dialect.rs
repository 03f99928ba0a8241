//! Which engine answers, and every way its API differs from Docker Engine's where sandpen
//! depends on it. Decided once, at connect, from the engine's own `/version` and `/info`; the
//! rest of the engine module asks the dialect, never "is this Podman?".
//!
//! Podman's Docker-compatible API (checked against Debian's Podman 4.3.1, rootful and
//! rootless) differs in these, and only these:
//! - tmpfs options: `uid=`/`gid=` are refused ("unknown mount option"); Podman's own `U`
//!   option chowns the tmpfs to the container's user instead.
//! - rlimits: Docker's containers inherit the daemon's; Podman sets its own defaults (nofile
//!   1048576, nproc 4194304), which the OCI runtime cannot apply where the host's hard limits
//!   are lower ("error setting rlimit type 6"). A local Podman's containers get the hard
//!   limits of the Podman service's own process (found through the socket's peer), which is
//!   what a Docker container gets from dockerd.
//! - imports: `POST /images/create?fromSrc` names the image `repo:latest` whatever tag was
//!   asked (handled in `images.rs`, for every engine: tag what the import made).
//! - container states: Podman passes through `stopped` between a container's end and its
//!   cleanup (a moment): a forced removal then fails ("container state improper") and the
//!   container list cannot be read (bollard knows no such state). Both are tried again until
//!   the state passes (`retrying`); stop and kill take it as stopped.
//! - networks: Podman's (netavark 1.4) have no way to turn off traffic between containers of
//!   one network (Docker's `enable_icc=false`): in gateway mode tasks of a run can reach each
//!   other unless the host's firewall drops bridged traffic. Said, not hidden.
//! - `init: true` needs the `catatonit` binary (Debian's `catatonit` package).
//! - rootless: the user's own uid must stay the user's inside the container, or the
//!   bind-mounted checkout is not writable there: `userns=keep-id`. On cgroup v1, a rootless
//!   engine cannot apply CPU, memory or pids limits at all, nor give stats of a container:
//!   `cgroup_per_container` is false and the run says so instead of pretending.

use bollard::models::{ResourcesUlimits, SystemInfo, SystemVersion};
use serde::Serialize;

/// Which engine, and what of it sandpen's requests depend on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Dialect {
    pub kind: EngineKind,
    /// The engine runs as an unprivileged user (its containers live in a user namespace).
    pub rootless: bool,
    /// The engine's host uses cgroup v1.
    pub cgroup_v1: bool,
    /// The engine is on this host (a unix socket).
    pub local: bool,
    /// The hard rlimits a container should get, where the engine would set its own that the
    /// host cannot apply: a local Podman's own process's (as Docker's containers get dockerd's).
    pub rlimits: Option<Rlimits>,
}

/// Hard limits of open files and processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Rlimits {
    pub nofile: u64,
    pub nproc: u64,
}

impl Rlimits {
    /// The largest values Podman would set: its defaults.
    const PODMAN_DEFAULT: Self = Self {
        nofile: 1 << 20,
        nproc: 1 << 22,
    };

    /// The hard limits of process `pid` from `/proc/<pid>/limits`, capped at Podman's own
    /// defaults (`unlimited` reads as the cap).
    pub fn of_process(pid: u32) -> Option<Self> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
        Self::parse(&text)
    }

    fn parse(limits: &str) -> Option<Self> {
        let hard = |label: &str, cap: u64| -> Option<u64> {
            let line = limits.lines().find(|l| l.starts_with(label))?;
            let hard = line[label.len()..].split_whitespace().nth(1)?;
            Some(if hard == "unlimited" {
                cap
            } else {
                hard.parse::<u64>().ok()?.min(cap)
            })
        };
        Some(Self {
            nofile: hard("Max open files", Self::PODMAN_DEFAULT.nofile)?,
            nproc: hard("Max processes", Self::PODMAN_DEFAULT.nproc)?,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    Docker,
    Podman,
}

impl Dialect {
    /// Docker Engine, as every engine was taken to be before dialects: what tests of request
    /// bodies use.
    pub const DOCKER: Self = Self {
        kind: EngineKind::Docker,
        rootless: false,
        cgroup_v1: false,
        local: true,
        rlimits: None,
    };

    /// Whether `/version` comes from Podman: it names a "Podman Engine" component.
    pub fn is_podman(version: &SystemVersion) -> bool {
        version
            .components
            .iter()
            .flatten()
            .any(|c| c.name.to_ascii_lowercase().contains("podman"))
    }

    pub fn new(kind: EngineKind, info: Option<&SystemInfo>, address: &str) -> Self {
        let security = info.and_then(|i| i.security_options.as_ref());
        Self {
            kind,
            rootless: security.is_some_and(|s| s.iter().any(|o| o.contains("name=rootless"))),
            cgroup_v1: info
                .and_then(|i| i.cgroup_version.as_ref())
                .is_some_and(|v| v.to_string() == "1"),
            local: address.starts_with("unix://") || address.starts_with('/'),
            rlimits: None,
        }
    }

    pub fn name(&self) -> &'static str {
        match (self.kind, self.rootless) {
            (EngineKind::Docker, false) => "Docker Engine",
            (EngineKind::Docker, true) => "Docker Engine (rootless)",
            (EngineKind::Podman, false) => "Podman",
            (EngineKind::Podman, true) => "Podman (rootless)",
        }
    }

    /// Whether each container gets a cgroup of its own: only then does the engine apply CPU,
    /// memory and pids limits, and only then are its stats the container's own (a rootless
    /// engine on cgroup v1 leaves containers in the user's cgroup, and reports that one's).
    pub fn cgroup_per_container(&self) -> bool {
        !(self.rootless && self.cgroup_v1)
    }

    /// The tmpfs mount options that make it the task user's.
    pub fn tmpfs_options(&self, size: &str, (uid, gid): (u32, u32)) -> String {
        match self.kind {
            EngineKind::Docker => format!("rw,nosuid,nodev,exec,size={size},uid={uid},gid={gid},mode=0755"),
            EngineKind::Podman => format!("rw,nosuid,nodev,exec,size={size},mode=0755,U"),
        }
    }

    /// Explicit rlimits, where the engine's own defaults would not do (see the module's note).
    pub fn ulimits(&self) -> Option<Vec<ResourcesUlimits>> {
        let Rlimits { nofile, nproc } = self.rlimits?;
        let limit = |name: &str, max: u64| ResourcesUlimits {
            name: Some(name.into()),
            soft: Some(max as i64),
            hard: Some(max as i64),
        };
        Some(vec![limit("nofile", nofile), limit("nproc", nproc)])
    }

    /// The user namespace mode containers need: a rootless Podman maps the user's own uid to
    /// itself, so the checkout stays the user's on the host and writable inside.
    pub fn userns_mode(&self) -> Option<String> {
        (self.kind == EngineKind::Podman && self.rootless).then(|| "keep-id".into())
    }

    /// The container user that writes what host user `ids` owns (the run's gateway directory):
    /// the same ids, but in a rootless Docker Engine, whose container root is the user (a
    /// rootless Podman keeps the ids: `keep-id`).
    pub fn user_owning(&self, ids: (u32, u32)) -> (u32, u32) {
        match (self.kind, self.rootless) {
            (EngineKind::Docker, true) => (0, 0),
            _ => ids,
        }
    }

    /// Why a container cannot name its own OCI runtime here, if it cannot: Podman's
    /// Docker-compatible API (4.3) ignores `HostConfig.Runtime` and runs the service's default
    /// (its `info` also lists every runtime its configuration knows, installed or not).
    pub fn runtime_refused(&self) -> Option<&'static str> {
        (self.kind == EngineKind::Podman).then_some(
            "Podman's Docker-compatible API ignores a container's runtime and would run the task \
             under its default one\nfix: make it the service's default (`runtime = \"runsc\"` under \
             [engine] in containers.conf, for every container it runs), or use Docker Engine",
        )
    }

    /// What this engine does not do that sandpen would use, for `doctor` and the run's start.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !self.cgroup_per_container() {
            out.push(
                "a rootless engine on cgroup v1 gives containers no cgroup of their own: tasks run \
                 without CPU, memory or pids limits and without CPU or memory figures (the report \
                 says so: limits_enforced false); fix: a host with cgroup v2, or a rootful engine"
                    .into(),
            );
        }
        if self.kind == EngineKind::Podman && self.rlimits.is_none() {
            out.push(
                "the Podman service's own process is not visible from here (a remote engine, or \
                 another pid namespace): its containers get Podman's default rlimits (nofile, \
                 nproc), which fail to apply where its host's hard limits are lower"
                    .into(),
            );
        }
        out
    }
}

/// Podman's passing `stopped` state (see the module's note) in an error.
pub(crate) fn is_stopped_state(err: &bollard::errors::Error) -> bool {
    let text = super::error::describe(err);
    text.contains("container state improper") || text.contains("unknown variant `stopped`")
}

/// `call`, again while it fails only because a container is passing through Podman's
/// `stopped` state (for up to 5 s).
pub(crate) async fn retrying<T, Fut>(mut call: impl FnMut() -> Fut) -> Result<T, bollard::errors::Error>
where
    Fut: std::future::Future<Output = Result<T, bollard::errors::Error>>,
{
    let mut tries = 0;
    loop {
        match call().await {
            Err(e) if is_stopped_state(&e) && tries < 25 => {
                tries += 1;
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            done => return done,
        }
    }
}

/// Asks the engine which it is: `/version` and `/info`, at once (kept, for `Engine::info`).
pub(super) async fn detect(
    docker: &bollard::Docker,
    address: &str,
) -> Result<(Dialect, SystemVersion, SystemInfo), super::EngineError> {
    use super::{CALL_TIMEOUT, EngineError};
    let version = EngineError::limited("reading the engine's version", CALL_TIMEOUT, async {
        docker
            .version()
            .await
            .map_err(|e| EngineError::api("reading the engine's version", &e))
    });
    let info = EngineError::limited("reading the engine's info", CALL_TIMEOUT, async {
        docker
            .info()
            .await
            .map_err(|e| EngineError::api("reading the engine's info", &e))
    });
    let (version, info) = tokio::try_join!(version, info)?;
    if !Dialect::is_podman(&version) {
        return Ok((
            Dialect::new(EngineKind::Docker, Some(&info), address),
            version,
            info,
        ));
    }
    let mut dialect = Dialect::new(EngineKind::Podman, Some(&info), address);
    // Podman's compatible /info does not say whether it is rootless; its socket's owner does.
    if let Some((pid, uid)) = socket_peer(address) {
        dialect.rootless |= uid != 0;
        dialect.rlimits = Rlimits::of_process(pid);
    }
    Ok((dialect, version, info))
}

/// The pid and uid of the process serving a local unix socket.
fn socket_peer(address: &str) -> Option<(u32, u32)> {
    let path = address.strip_prefix("unix://").unwrap_or(address);
    let stream = std::os::unix::net::UnixStream::connect(path).ok()?;
    let cred = rustix::net::sockopt::socket_peercred(&stream).ok()?;
    let pid = u32::try_from(cred.pid.as_raw_nonzero().get()).ok()?;
    Some((pid, cred.uid.as_raw()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::{SystemInfoCgroupVersionEnum, SystemVersionComponents};

    fn podman_version() -> SystemVersion {
        SystemVersion {
            components: Some(vec![SystemVersionComponents {
                name: "Podman Engine".into(),
                version: "4.3.1".into(),
                details: None,
            }]),
            ..Default::default()
        }
    }

    #[test]
    fn podman_is_known_by_its_component_and_docker_is_the_rest() {
        assert!(Dialect::is_podman(&podman_version()));
        let docker = SystemVersion {
            components: Some(vec![SystemVersionComponents {
                name: "Engine".into(),
                version: "20.10.24".into(),
                details: None,
            }]),
            ..Default::default()
        };
        assert!(!Dialect::is_podman(&docker));
        assert!(!Dialect::is_podman(&SystemVersion::default()));
    }

    #[test]
    fn rootless_on_cgroup_v1_enforces_no_limits_and_says_so() {
        let info = SystemInfo {
            security_options: Some(vec![
                "name=seccomp,profile=default".into(),
                "name=rootless".into(),
            ]),
            cgroup_version: Some(SystemInfoCgroupVersionEnum::_1),
            ..Default::default()
        };
        let d = Dialect::new(
            EngineKind::Podman,
            Some(&info),
            "unix:///run/user/1001/podman.sock",
        );
        assert!(d.rootless && d.cgroup_v1 && d.local);
        assert!(!d.cgroup_per_container());
        let warnings = d.warnings();
        assert!(warnings[0].contains("no cgroup of their own"), "{warnings:?}");
        assert_eq!(d.userns_mode().as_deref(), Some("keep-id"));
        // keep-id: the gateway runs as the user who owns its directory.
        assert_eq!(d.user_owning((1001, 1001)), (1001, 1001));
        let v2 = SystemInfo {
            cgroup_version: Some(SystemInfoCgroupVersionEnum::_2),
            ..info
        };
        assert!(Dialect::new(EngineKind::Podman, Some(&v2), "unix:///x").cgroup_per_container());
    }

    #[test]
    fn docker_keeps_its_requests_as_they_were() {
        let d = Dialect::DOCKER;
        assert!(d.tmpfs_options("1g", (1000, 1000)).contains("uid=1000,gid=1000"));
        assert_eq!(d.ulimits(), None);
        assert_eq!(d.userns_mode(), None);
        assert!(d.warnings().is_empty());
    }

    #[test]
    fn only_docker_lets_a_container_name_its_runtime() {
        assert_eq!(Dialect::DOCKER.runtime_refused(), None);
        let podman = Dialect::new(EngineKind::Podman, None, "unix:///tmp/p.sock");
        assert!(podman.runtime_refused().unwrap().contains("containers.conf"));
    }

    #[test]
    fn podman_owns_tmpfs_by_its_own_option() {
        let d = Dialect::new(EngineKind::Podman, None, "unix:///tmp/p.sock");
        let opts = d.tmpfs_options("1g", (1000, 1000));
        assert!(opts.ends_with(",U") && !opts.contains("uid="), "{opts}");
    }

    #[test]
    fn rlimits_are_the_engine_processs_hard_limits_capped_at_podmans_defaults() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max processes             32768                32768                processes \n\
                      Max open files            1024                 unlimited            files     \n";
        let r = Rlimits::parse(limits).unwrap();
        assert_eq!(
            r,
            Rlimits {
                nofile: 1 << 20,
                nproc: 32768
            }
        );
        let d = Dialect {
            rlimits: Some(r),
            ..Dialect::new(EngineKind::Podman, None, "unix:///tmp/p.sock")
        };
        let u = d.ulimits().unwrap();
        assert_eq!(u[1].name.as_deref(), Some("nproc"));
        assert_eq!((u[1].soft, u[1].hard), (Some(32768), Some(32768)));
        // Tasks have no network in gateway mode: nothing to say about Podman's.
        assert!(d.warnings().is_empty(), "{:?}", d.warnings());
        // This process's own table parses too.
        assert!(Rlimits::of_process(std::process::id()).is_some());
    }
}
