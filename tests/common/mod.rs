//! Helpers shared by the integration tests. Every test here talks to the real Docker engine.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use sandpen::engine::Engine;

/// The sandpen binary built for this test run.
pub fn sandpen() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sandpen"));
    cmd.env_remove("SANDPEN_LOG");
    cmd
}

/// Runs a command and returns its output; panics with the whole output if it cannot start.
pub fn output(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The CA bundle to give image builds. Set SANDPEN_TEST_CA_CERT to override; by default the
/// host's bundle, which on machines behind a TLS-inspecting proxy holds the proxy's CA.
pub fn host_ca_bundle() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("SANDPEN_TEST_CA_CERT") {
        return Some(PathBuf::from(p));
    }
    let p = Path::new("/etc/ssl/certs/ca-certificates.crt");
    p.exists().then(|| p.to_path_buf())
}

/// Builds (or reuses) an image through the sandpen binary, as a user would, and returns its
/// tag. The base is made offline when it cannot be pulled. Built once per test binary.
pub fn image(target: &str) -> String {
    static PROBE: OnceLock<String> = OnceLock::new();
    static AGENT: OnceLock<String> = OnceLock::new();
    let cell = if target == "probe" { &PROBE } else { &AGENT };
    cell.get_or_init(|| {
        let mut cmd = sandpen();
        cmd.args(["image", "build", "--target", target, "--bootstrap-base"]);
        if target == "agent" {
            if let Some(ca) = host_ca_bundle() {
                cmd.arg("--ca-cert").arg(ca);
            }
        }
        let out = output(&mut cmd);
        assert!(
            out.status.success(),
            "building the {target} image failed:\n{}",
            stderr(&out)
        );
        let tag = stdout(&out)
            .lines()
            .last()
            .unwrap_or_default()
            .trim()
            .to_string();
        assert!(
            tag.starts_with(&format!("sandpen-{target}:")),
            "unexpected tag {tag:?}"
        );
        tag
    })
    .clone()
}

pub async fn engine() -> Engine {
    Engine::connect(None)
        .await
        .expect("these tests need a running Docker engine")
}

/// Runs `docker run --rm` with the docker CLI, for checks made from outside sandpen.
pub fn docker(args: &[&str]) -> Output {
    output(Command::new("docker").args(args))
}

/// Polls `check` until it returns Some or the deadline passes.
pub fn wait_for<T>(deadline: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = check() {
            return Some(v);
        }
        if start.elapsed() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
