//! Helpers shared by the integration tests. Every test here talks to the real Docker engine,
//! or to the engine a test names for its own thread (`podman.rs`).
#![allow(dead_code)]

pub mod agent;
mod background;
pub mod frozen;
pub mod podman;
pub mod refused;
pub mod runsc;
pub mod swarm;
pub mod uv_index;

#[allow(unused_imports)] // each test binary uses some of the helpers
pub use background::{Background, spawn_run, spawn_run_with};

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use sandpen::engine::Engine;

thread_local! {
    /// The engine this thread's commands talk to (DOCKER_HOST), when not the system's.
    static ENGINE_HOST: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
    /// The user this thread's sandpen commands run as (uid, gid, home) and the copy of the
    /// binary it can reach, when not this one.
    static RUN_AS: std::cell::RefCell<Option<(u32, u32, PathBuf, PathBuf)>> = const { std::cell::RefCell::new(None) };
}

/// Points this thread's `sandpen` and `docker` commands at another engine.
pub fn use_engine(host: &str) {
    ENGINE_HOST.with(|h| *h.borrow_mut() = Some(host.to_string()));
}

/// Runs this thread's `sandpen` commands as another user, from a copy of the binary it can
/// reach (a fresh clone's target directory may not be).
pub fn run_as(uid: u32, gid: u32, home: PathBuf, bin: PathBuf) {
    RUN_AS.with(|r| *r.borrow_mut() = Some((uid, gid, home, bin)));
}

pub fn engine_host() -> Option<String> {
    ENGINE_HOST.with(|h| h.borrow().clone())
}

/// The sandpen binary built for this test run.
pub fn sandpen() -> Command {
    let user = RUN_AS.with(|r| r.borrow().clone());
    let mut cmd = match &user {
        Some((.., bin)) => Command::new(bin),
        None => Command::new(env!("CARGO_BIN_EXE_sandpen")),
    };
    if let Some(host) = engine_host() {
        cmd.env("DOCKER_HOST", host);
    }
    if let Some((uid, gid, home, _)) = user {
        use std::os::unix::process::CommandExt;
        // Started in its home: the test's own directory may be closed to the user.
        cmd.uid(uid).gid(gid).current_dir(&home).env("HOME", home);
    }
    cmd.env_remove("SANDPEN_LOG");
    // `sandpen run` refuses to start without credentials for the CLI; the probe ignores them.
    cmd.env("ANTHROPIC_API_KEY", "sk-sandpen-test-not-a-real-key");
    cmd
}

/// Runs a command that must succeed; its stdout. Panics with its stderr otherwise.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = output(cmd);
    assert!(out.status.success(), "{cmd:?} failed: {}", stderr(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `ip ARGS...`, which must succeed (the test engines' network namespaces and links).
pub fn ip(args: &[&str]) {
    run_ok(Command::new("ip").args(args));
}

/// Runs a command and returns its output; panics with the whole output if it cannot start.
pub fn output(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
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
/// tag. The base is made offline when it cannot be pulled. Built once per test binary and
/// engine.
pub fn image(target: &str) -> String {
    use std::collections::HashMap;
    use std::sync::Mutex;
    /// (target, engine) -> tag.
    type Built = HashMap<(String, Option<String>), String>;
    static BUILT: OnceLock<Mutex<Built>> = OnceLock::new();
    // One build at a time: on a bare engine both would otherwise bootstrap the base at once.
    let mut built = BUILT
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let key = (target.to_string(), engine_host());
    if let Some(tag) = built.get(&key) {
        return tag.clone();
    }
    let mut cmd = sandpen();
    cmd.args(["image", "build", "--target", target, "--bootstrap-base"]);
    if target == "agent"
        && let Some(ca) = host_ca_bundle()
    {
        cmd.arg("--ca-cert").arg(ca);
    }
    let out = output(&mut cmd);
    assert!(
        out.status.success(),
        "building the {target} image failed:\n{}",
        stderr(&out)
    );
    let tag = stdout(&out).lines().last().unwrap_or_default().trim().to_string();
    assert!(
        tag.starts_with(&format!("sandpen-{target}:")),
        "unexpected tag {tag:?}"
    );
    built.insert(key, tag.clone());
    tag
}

pub async fn engine() -> Engine {
    Engine::connect(engine_host().as_deref())
        .await
        .expect("these tests need a running Docker engine")
}

/// Runs `docker run --rm` with the docker CLI, for checks made from outside sandpen.
pub fn docker(args: &[&str]) -> Output {
    let mut cmd = Command::new("docker");
    if let Some(host) = engine_host() {
        cmd.env("DOCKER_HOST", host);
    }
    output(cmd.args(args))
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

// ---------------------------------------------------------------------------------------------
// Helpers for `sandpen run` tests.

use tempfile::TempDir;

/// Runs git in `dir`; panics with its stderr when it fails.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = output(Command::new("git").arg("-C").arg(dir).args(args));
    assert!(
        out.status.success(),
        "git {args:?} in {} failed: {}",
        dir.display(),
        stderr(&out)
    );
    stdout(&out)
}

/// Runs git in `dir` and returns its output whatever the exit status.
pub fn git_output(dir: &Path, args: &[&str]) -> Output {
    output(Command::new("git").arg("-C").arg(dir).args(args))
}

/// Where sandpen keeps the runs of the repository at `repo` (each run a directory named by its
/// id). Tests find run directories only through this, never by a path of their own.
pub fn runs_dir(repo: &Path) -> PathBuf {
    sandpen_dir_of(repo)
        .unwrap_or_else(|| panic!("{} is not in a git repository", repo.display()))
        .join("runs")
}

/// A fresh git repository with one commit (README), its identity configured locally.
pub fn make_repo() -> TempDir {
    let dir = tempfile::tempdir().expect("creating a temporary directory");
    let p = dir.path();
    git(p, &["init", "--quiet", "--initial-branch=main"]);
    git(p, &["config", "user.name", "sandpen-test"]);
    git(p, &["config", "user.email", "test@sandpen.invalid"]);
    git(p, &["config", "commit.gpgsign", "false"]);
    std::fs::write(p.join("README"), "a repository for sandpen's tests\n").unwrap();
    git(p, &["add", "README"]);
    git(p, &["commit", "--quiet", "-m", "initial commit"]);
    dir
}

/// A task file written into its own temporary directory (outside the repository, so that it
/// never shows in the repository's `git status`), and where the run's report will go.
pub struct TaskFile {
    pub dir: TempDir,
    pub path: PathBuf,
    pub report: PathBuf,
}

pub fn task_file(toml: &str) -> TaskFile {
    let dir = tempfile::tempdir().expect("creating a temporary directory");
    let path = dir.path().join("tasks.toml");
    std::fs::write(&path, toml).unwrap();
    let report = dir.path().join("report.json");
    TaskFile { dir, path, report }
}

/// `sandpen run` refuses to start without credentials for the CLI. The probe image never uses
/// them: a dummy key, and none of the host's real ones.
pub const TEST_API_KEY: &str = "sandpen-test-not-a-real-key";

pub fn with_test_credentials(cmd: &mut Command) -> &mut Command {
    cmd.env("ANTHROPIC_API_KEY", TEST_API_KEY)
        .env_remove("ANTHROPIC_AUTH_TOKEN")
        .env_remove("CLAUDE_CODE_OAUTH_TOKEN")
        .env_remove("ANTHROPIC_BASE_URL")
}

/// `sandpen run --image <probe> --repo <repo> --report <file> [extra...] <tasks.toml>`, ready
/// to run in `repo` (with test credentials).
pub fn run_command(repo: &Path, tasks: &TaskFile, extra: &[&str]) -> Command {
    // The run's gateway image is made once per sandpen build: made here, it is not part of
    // any timing a test takes.
    image("gateway");
    let mut cmd = sandpen();
    with_test_credentials(&mut cmd);
    cmd.current_dir(repo)
        .args(["run", "--image", &image("probe"), "--repo"])
        .arg(repo)
        .arg("--report")
        .arg(&tasks.report)
        .args(extra)
        .arg(&tasks.path);
    cmd
}

/// One finished `sandpen run`.
pub struct Run {
    pub out: Output,
    /// The process's exit code (-1 when killed by a signal).
    pub code: i32,
    pub elapsed: Duration,
    pub tasks: TaskFile,
}

impl Run {
    /// The JSON report (--report FILE); panics with the run's output when there is none.
    pub fn report(&self) -> serde_json::Value {
        read_report(&self.tasks.report).unwrap_or_else(|e| {
            panic!(
                "no report from the run ({e}); exit {}\nstdout:\n{}\nstderr:\n{}",
                self.code,
                stdout(&self.out),
                stderr(&self.out)
            )
        })
    }

    /// stdout and stderr, for assertion messages.
    pub fn dump(&self) -> String {
        dump(self.code, self.elapsed, &self.out)
    }
}

/// A finished process's exit, time and output, for assertion messages.
pub fn dump(code: i32, elapsed: Duration, out: &Output) -> String {
    format!(
        "exit {code} after {elapsed:?}\n--- stdout\n{}\n--- stderr\n{}",
        stdout(out),
        stderr(out)
    )
}

/// Writes `toml` to a task file and runs it in `repo` with the probe image.
pub fn run_tasks(repo: &Path, toml: &str, extra: &[&str]) -> Run {
    let tasks = task_file(toml);
    let start = Instant::now();
    let out = output(&mut run_command(repo, &tasks, extra));
    let elapsed = start.elapsed();
    Run {
        code: out.status.code().unwrap_or(-1),
        out,
        elapsed,
        tasks,
    }
}

/// The task's stdout log (its raw output, with the probe's stream-json lines around it); bytes
/// that are not UTF-8 read as U+FFFD.
pub fn log_of(report: &serde_json::Value, id: &str) -> String {
    let path = field(task(report, id), "log");
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    String::from_utf8_lossy(&bytes).into_owned()
}

/// `key=value` lines of a log.
pub fn values(log: &str) -> std::collections::HashMap<String, String> {
    log.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

pub fn read_report(path: &Path) -> Result<serde_json::Value, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// The report's entry for task `id`.
pub fn task<'a>(report: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    report["tasks"]
        .as_array()
        .expect("the report has a tasks array")
        .iter()
        .find(|t| t["id"] == id)
        .unwrap_or_else(|| panic!("no task {id} in the report: {report:#}"))
}

/// The string field `key` of a report entry ("" when null).
pub fn field<'a>(t: &'a serde_json::Value, key: &str) -> &'a str {
    t[key].as_str().unwrap_or("")
}

/// A report timestamp (RFC 3339) as seconds since the epoch.
pub fn epoch_s(rfc3339: &str) -> f64 {
    humantime::parse_rfc3339(rfc3339)
        .unwrap_or_else(|e| panic!("{rfc3339:?} is not RFC 3339: {e}"))
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Ids of the containers `docker ps` lists with all of `filters`.
fn ps(all: bool, filters: &[&str]) -> Vec<String> {
    let mut args = vec!["ps", "-q", "--no-trunc"];
    if all {
        args.push("-a");
    }
    for f in filters {
        args.extend(["--filter", f]);
    }
    let out = docker(&args);
    assert!(out.status.success(), "docker ps failed: {}", stderr(&out));
    stdout(&out).lines().map(str::to_string).collect()
}

/// Ids of the task containers (running or not, not the run's gateway) matching a filter.
pub fn task_containers(filter: &str) -> Vec<String> {
    ps(true, &[filter, "label=sandpen.role=task"])
}

/// Ids of the containers (running or not) matching a `docker ps --filter`.
pub fn containers(filter: &str) -> Vec<String> {
    ps(true, &[filter])
}

/// Ids of the running task containers matching a `docker ps --filter` (not the run's gateway,
/// which runs from the start of a run to its end).
pub fn running_containers(filter: &str) -> Vec<String> {
    ps(false, &[filter, "label=sandpen.role=task", "status=running"])
}

/// This machine's host name as sandpen writes it into `sandpen.owner` labels.
pub fn hostname() -> String {
    sandpen::owner::hostname()
}

/// The `sandpen.owner=<host>:<pid>` filter for the containers of the sandpen process `pid`.
pub fn owner_filter(pid: u32) -> String {
    format!("label=sandpen.owner={}:{pid}", hostname())
}

/// [`from`, `to`] of every task of a report (e.g. started_at to finished_at), in seconds since
/// the epoch.
pub fn intervals(report: &serde_json::Value, from: &str, to: &str) -> Vec<(String, f64, f64)> {
    report["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                field(t, "id").to_string(),
                epoch_s(field(t, from)),
                epoch_s(field(t, to)),
            )
        })
        .collect()
}

/// The largest number of intervals that hold at one instant.
pub fn max_overlap(iv: &[(String, f64, f64)]) -> usize {
    let mut edges: Vec<(f64, i32)> = iv.iter().flat_map(|(_, s, e)| [(*s, 1), (*e, -1)]).collect();
    // At equal times, ends before starts: touching intervals do not overlap.
    edges.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap().then(a.1.cmp(&b.1)));
    let (mut now, mut max) = (0, 0);
    for (_, d) in edges {
        now += d;
        max = max.max(now);
    }
    max as usize
}

/// sandpen's directory in the git directory of the repository at `dir`, if `dir` is in one.
pub fn sandpen_dir_of(dir: &Path) -> Option<PathBuf> {
    // Whoever owns it (a test's repository may be another user's).
    let out = git_output(
        dir,
        &[
            "-c",
            "safe.directory=*",
            "rev-parse",
            "--path-format=absolute",
            "--git-common-dir",
        ],
    );
    out.status
        .success()
        .then(|| PathBuf::from(stdout(&out).trim()).join("sandpen"))
}
