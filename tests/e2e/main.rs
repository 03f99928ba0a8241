//! End to end: the real Claude Code CLI in the real agent image, in sandpen's containers,
//! talking to sandpen's scripted model server started by the test. Real Docker engine, no
//! mocks. (One test uses the probe image for what the real CLI cannot be made to do on demand.)
//! What the tests share is here; `workflow` runs tasks through the WorkflowManager as a user
//! would, `limits` what ends a task otherwise (timeouts, error results, budgets, rate limits).

#[path = "../common/mod.rs"]
mod common;

mod limits;
mod workflow;

/// As the model server records a key: the first 16 hex digits of its sha256.
fn key_digest(key: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(key.as_bytes()))[..16].to_string()
}

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

use common::agent::{agent_requests, assert_a_commit_per_phase, bundled_sentences, repo_with};
use common::*;
use sandpen::demo;
use sandpen::model_server::{ModelServer, Recorded, Script, Turn, Usage};

/// The host's key in these tests: it reaches the model server only through the gateway.
const E2E_KEY: &str = "sk-sandpen-e2e-not-a-real-key";

/// No sandpen run of these tests may take longer than this.
const RUN_LIMIT: Duration = Duration::from_secs(150);

/// The agent image (built or reused once per test binary), without blocking the runtime.
async fn agent_image() -> String {
    tokio::task::spawn_blocking(|| image("agent"))
        .await
        .expect("building the agent image")
}

/// The address containers on the default bridge reach the host at.
async fn bridge_gateway() -> std::net::IpAddr {
    engine()
        .await
        .bridge_gateway()
        .await
        .expect("reading the bridge network's gateway")
}

/// A model server for `script`, reachable from the containers.
async fn start_server(script: Script) -> ModelServer {
    let ip = bridge_gateway().await;
    ModelServer::start(script, SocketAddr::new(ip, 0), None)
        .await
        .expect("starting the model server on the bridge gateway")
}

/// The base URL to give sandpen: each container gets its own `/task/<id>` path.
/// Serves `script`, runs the task `id` (its prompt in tasks/<id>.md) through the real CLI, and
/// returns the run with every request the server saw.
async fn run_scripted(repo: &Path, id: &str, script: Script) -> (Finished, Vec<Recorded>) {
    let server = start_server(script).await;
    let run = run_agent(repo, &base_url(&server), &[], &[&format!("tasks/{id}.md")]).await;
    let recorded = server.recorded();
    server.stop().await;
    (run, recorded)
}

fn base_url(server: &ModelServer) -> String {
    format!("http://{}/task/{{task}}", server.addr)
}

fn head(repo: &Path) -> String {
    git(repo, &["rev-parse", "HEAD"]).trim().to_string()
}

/// One finished `sandpen run` (or `sandpen demo`).
struct Finished {
    out: Output,
    code: i32,
    elapsed: Duration,
    report_path: PathBuf,
    _dir: TempDir,
}

impl Finished {
    fn dump(&self) -> String {
        dump(self.code, self.elapsed, &self.out)
    }

    fn report(&self) -> Value {
        read_report(&self.report_path).unwrap_or_else(|e| panic!("no report ({e})\n{}", self.dump()))
    }

    /// The NDJSON events on stdout (`--json`).
    fn events(&self) -> Vec<Value> {
        stdout(&self.out)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect()
    }
}

/// Runs the sandpen binary with `args` (after which `--report FILE` is added) in `cwd`, on
/// the runtime's blocking pool, so that the model server keeps serving meanwhile.
async fn sandpen_with(cwd: &Path, env: &[(&str, &str)], args: Vec<String>) -> Finished {
    let dir = tempfile::tempdir().expect("creating a temporary directory");
    let report_path = dir.path().join("report.json");
    let mut cmd = sandpen();
    cmd.current_dir(cwd)
        .env_remove("ANTHROPIC_AUTH_TOKEN")
        .env_remove("ANTHROPIC_BASE_URL")
        .args(&args)
        .arg("--report")
        .arg(&report_path);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.kill_on_drop(true);
    let start = Instant::now();
    let out = tokio::time::timeout(RUN_LIMIT, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("sandpen {args:?} did not finish within {RUN_LIMIT:?}"))
        .expect("running sandpen");
    Finished {
        code: out.status.code().unwrap_or(-1),
        out,
        elapsed: start.elapsed(),
        report_path,
        _dir: dir,
    }
}

/// `sandpen run --image <agent> --repo REPO [extra...] TASKS...` with ANTHROPIC_BASE_URL.
async fn run_agent(repo: &Path, base_url: &str, extra: &[&str], prompts: &[&str]) -> Finished {
    let image = agent_image().await;
    let mut args: Vec<String> = vec!["run".into(), "--image".into(), image, "--repo".into()];
    args.push(repo.display().to_string());
    args.extend(extra.iter().map(|s| s.to_string()));
    args.extend(prompts.iter().map(|s| s.to_string()));
    sandpen_with(
        repo,
        &[("ANTHROPIC_BASE_URL", base_url), ("ANTHROPIC_API_KEY", E2E_KEY)],
        args,
    )
    .await
}

fn assert_no_containers_left(run_id: &str) {
    assert!(!run_id.is_empty(), "the report has no run_id");
    let left = containers(&format!("label=sandpen.run={run_id}"));
    assert!(
        left.is_empty(),
        "containers of run {run_id} left behind: {left:?}"
    );
}

fn agent(t: &Value) -> &Value {
    assert!(t["agent"].is_object(), "no agent summary in {t:#}");
    &t["agent"]
}
