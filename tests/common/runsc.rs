//! A private Docker engine with gVisor's `runsc` registered, for tests/runtime.rs: a `dockerd`
//! of the test's own (`swarm::start_dockerd`) in a network namespace of its own with only its
//! loopback, so the system engine is never reconfigured. Images come from the system engine
//! by `docker save | docker load`. Dropped: the engine ended (it ends its containers), the
//! namespace deleted, its files removed.

use std::path::PathBuf;
use std::process::{Child, Command};

use super::swarm::{load_all_into, start_dockerd, stop_dockerd, unmount_under};
use super::{ip, output};

/// Where Debian's package puts it.
pub const RUNSC: &str = "/usr/bin/runsc";

/// Whether the runsc tests are asked for (CI sets it after installing runsc).
pub fn wanted() -> bool {
    std::env::var("SANDPEN_TEST_RUNSC").is_ok_and(|v| v == "1")
}

/// Why the tests cannot run here, if they cannot.
pub fn missing() -> Option<String> {
    if !std::path::Path::new(RUNSC).exists() {
        return Some(format!("no {RUNSC} (apt-get install runsc)"));
    }
    let root = output(Command::new("id").arg("-u"));
    (String::from_utf8_lossy(&root.stdout).trim() != "0").then(|| "a private engine needs root".to_string())
}

pub struct RunscEngine {
    /// `unix://...` of its API socket.
    pub host: String,
    pub dir: PathBuf,
    netns: String,
    dockerd: Child,
}

impl RunscEngine {
    /// The engine, with `runsc` registered as sandpen's README says (`--host-uds=open` for the
    /// gateway's socket, `--network=none` because the engine has a namespace of its own), and
    /// `images` copied from the system engine (one `docker save`: shared layers go once).
    pub fn start(images: &[&str]) -> Self {
        let tag = format!("rs{}", std::process::id() % 100_000);
        let dir = PathBuf::from(format!("/tmp/sandpen-runsc-{tag}"));
        let _ = std::fs::remove_dir_all(&dir);
        let netns = format!("{tag}-ns");
        let _ = Command::new("ip").args(["netns", "del", &netns]).output();
        ip(&["netns", "add", &netns]);
        ip(&["-n", &netns, "link", "set", "lo", "up"]);
        let json = serde_json::json!({
            "runtimes": {"runsc": {"path": RUNSC, "runtimeArgs": ["--host-uds=open", "--network=none"]}},
        });
        let (host, dockerd) = start_dockerd(&dir, &netns, &tag, json);
        let me = Self {
            host,
            dir,
            netns,
            dockerd,
        };
        if !images.is_empty() {
            load_all_into(images, &me.host);
        }
        me
    }

    /// Every container on the engine (names), running or not.
    pub fn containers(&self) -> Vec<String> {
        let o = output(Command::new("docker").env("DOCKER_HOST", &self.host).args([
            "ps",
            "-a",
            "--format",
            "{{.Names}}",
        ]));
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    }
}

impl Drop for RunscEngine {
    fn drop(&mut self) {
        stop_dockerd(&mut self.dockerd);
        let _ = Command::new("ip").args(["netns", "del", &self.netns]).status();
        let _ = unmount_under(&self.dir);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
