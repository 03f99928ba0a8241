//! How a task container in gateway mode reaches its gateway, and nothing else. The container
//! has no network but its own loopback (`--network none`: no route to the engine host, to
//! other tasks or to a resolver). The run's gateway listens on a Unix socket in a directory of
//! the run (`RunDir::gateway_dir`), which every task container gets read-only; in the
//! container, `sandpen-relay` (`program.rs`, built statically by `src/build.rs` and embedded
//! here) listens on a loopback port and pipes each connection to that socket. The task's
//! model API and proxy settings name the loopback port (`gateway::gate`).
//!
//! The socket gives a task nothing of another's: every request still needs its own token.

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use crate::engine::spec::BindMount;

/// The relay, a static executable for the build's target.
pub const PROGRAM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/sandpen-relay"));

/// Where a task connects, in its own network namespace: a port a project's dev servers are
/// unlikely to want.
pub const LISTEN: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 41733);

/// Set for the relay's serving half, which takes its bound listener as its standard input
/// (`program.rs`; a benchmark starts that half itself).
pub const SERVE_ENV: &str = "SANDPEN_RELAY_SERVE";

/// In every container: the run's gateway directory (read-only for tasks) and the relay.
pub const GATEWAY_MOUNT: &str = "/run/sandpen-gateway";
pub const SOCKET_NAME: &str = "gateway.sock";
pub const RELAY_MOUNT: &str = "/run/sandpen-relay";

/// The socket's path in a container.
pub fn socket_in_container() -> String {
    format!("{GATEWAY_MOUNT}/{SOCKET_NAME}")
}

/// The run's gateway directory and relay on the host, as the gateway and the tasks mount them.
#[derive(Debug, Clone)]
pub struct Placement {
    /// Holds the socket; the gateway's only writable mount.
    pub dir: PathBuf,
    /// The relay's executable.
    pub relay: PathBuf,
    /// Who owns the directory on the host, and so who the gateway runs as.
    pub owner: (u32, u32),
}

/// Who owns the gateway's directory when sandpen runs as root: nobody, never root.
pub const NOBODY: (u32, u32) = (65534, 65534);

impl Placement {
    /// Makes the directory, owned by sandpen's user or, when that is root, by [`NOBODY`]: only
    /// the gateway, which runs as its owner, writes in it; others may only pass through it to
    /// the socket. Writes the relay beside it.
    pub fn make(dir: &Path, relay: &Path) -> std::io::Result<Self> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
        std::fs::DirBuilder::new().mode(0o711).create(dir)?;
        let mut owner = crate::workspace::owner_of(dir)?;
        if owner.0 == 0 {
            std::os::unix::fs::chown(dir, Some(NOBODY.0), Some(NOBODY.1))?;
            owner = NOBODY;
        }
        // 0o711 asked for, whatever the umask made of it.
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o711))?;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o555)
            .open(relay)?;
        // No fsync: it is read on this host, through the page cache, and made again per run.
        file.write_all(PROGRAM)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            relay: relay.to_path_buf(),
            owner,
        })
    }

    /// What a task container mounts: the directory and the relay, both read-only.
    pub fn task_mounts(&self) -> Vec<BindMount> {
        task_mounts(&self.dir, &self.relay)
    }

    /// What the gateway mounts: the directory, writable.
    pub fn gateway_mount(&self) -> BindMount {
        BindMount {
            source: self.dir.clone(),
            target: GATEWAY_MOUNT.into(),
            read_only: false,
            volume: false,
        }
    }

    /// Removes the relay and the socket (the run's directory stays, with the logs).
    pub fn remove(&self) {
        let _ = std::fs::remove_file(&self.relay);
        let _ = std::fs::remove_file(self.dir.join(SOCKET_NAME));
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// A task container's mounts for a gateway directory and relay (known before they are made).
pub fn task_mounts(dir: &Path, relay: &Path) -> Vec<BindMount> {
    vec![
        BindMount::read_only(dir, GATEWAY_MOUNT),
        BindMount::read_only(relay, RELAY_MOUNT),
    ]
}

#[cfg(test)]
mod tests;
