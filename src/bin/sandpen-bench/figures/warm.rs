//! Figure 12: warm environments. 8 tasks at -j 8 on a project whose lock pulls over 50 MB of
//! wheels from PyPI (numpy, scipy, pandas), each importing them: the bytes fetched and the time
//! from `sandpen run` to the last task's first model request. sandpen's run (one preparation
//! per lock) against the same run with `--no-warm` (each task syncs its own) and against one
//! `uv sync` alone in one container of the same image (the floor). Needs PyPI: offline it is
//! a row that says so. `--quick`: 2 tasks on a one-wheel lock.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Instant, SystemTime};

use sandpen::model_server::{ModelServer, Script, TaskScript, Turn};

use crate::ctx::{Ctx, Measured, run_ok};
use crate::row::Row;
use crate::target::{Bound, Target};

pub const FIGURE: &str =
    "12. warm environments, 8 tasks -j 8 on a 50+ MB lock (MB fetched; s to the last task's first request)";

const MB: f64 = 1e6;

/// What one way of getting the environment cost: bytes fetched, seconds until every task could
/// start working (its first model request; for the floor, the sync's end).
struct Cost {
    bytes: u64,
    secs: f64,
    /// Seconds until every task had its first tool's result (its import): the environment in
    /// use (sandpen's runs only).
    tools_s: Option<f64>,
    /// The preparation's own time, from the report (sandpen's warm run only).
    prepared_s: Option<f64>,
}

pub fn measure(ctx: &Ctx, notes: &mut Vec<String>) -> Measured<Vec<Row>> {
    let (n, deps, imports) = match ctx.quick {
        true => (2, "\"six\"", "six"),
        false => (8, "\"numpy\", \"scipy\", \"pandas\"", "numpy, scipy, pandas"),
    };
    let agent = image(ctx, "agent")?;
    image(ctx, "gateway")?;
    let repo = project(ctx, &agent, deps)?;
    let floor = one_sync(&agent, &repo)?;
    let check = format!("python -c 'import {imports}; print(\"IMPORTED\")'");
    let ids: Vec<String> = (0..n).map(|i| format!("t{i:03}")).collect();
    let script = Script {
        tasks: ids
            .iter()
            .map(|id| {
                let turns = vec![Turn::bash(check.clone(), "import them"), Turn::text("done")];
                (id.clone(), TaskScript { turns })
            })
            .collect(),
        rate_limit: None,
        overloaded: None,
    };
    let rt = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    let server = rt
        .block_on(async {
            let engine = sandpen::engine::Engine::connect(None).await.ok()?;
            let gateway = engine.bridge_gateway().await.ok()?;
            ModelServer::start(script, std::net::SocketAddr::new(gateway, 0), None)
                .await
                .ok()
        })
        .ok_or("the scripted model server could not start on the bridge's gateway")?;
    // The same tasks in a repository with no Python project: what starting 8 containers and
    // CLIs costs by itself, environment aside.
    let bare = bare_repo(ctx)?;
    let measured = run(ctx, &agent, &repo, &server, n, &[]).and_then(|warm| {
        let cold = run(ctx, &agent, &repo, &server, n, &["--no-warm"])?;
        Ok((warm, cold, run(ctx, &agent, &bare, &server, n, &[])?))
    });
    rt.block_on(server.stop());
    let ((warm, volume), (cold, _), (none, _)) = measured?;
    // The lock is this run's own (its project name is unique): its environment is of no use later.
    if let Some(v) = volume {
        let _ = Command::new("docker").args(["volume", "rm", "-f", &v]).output();
    }
    notes.push(format!(
        "Warm environments (figure 12): the floor is `uv sync --frozen` in one container of the agent \
         image on the default bridge, its bytes the container's received bytes ({:.1} MB in {:.1} s); \
         sandpen's bytes are the downloads its gateway counted in egress.jsonl, the preparation's \
         and every task's; the time runs from `sandpen run` to the last of {n} tasks' first model request. \
         The tasks start beside the preparation and their tools wait for it: the last import (the \
         request carrying its result, after the scripted model's first turn) says when every task \
         had the environment in use.",
        floor.bytes as f64 / MB,
        floor.secs
    ));
    let (bytes_ratio, time_ratio) = (warm.bytes as f64 / floor.bytes as f64, warm.secs / floor.secs);
    Ok(vec![
        Row::new(
            &format!("{FIGURE}: bytes"),
            format!("{:.2} MB ({n} tasks, one preparation)", warm.bytes as f64 / MB),
            format!(
                "one uv sync {:.2} MB; --no-warm {:.2} MB",
                floor.bytes as f64 / MB,
                cold.bytes as f64 / MB
            ),
            Some(bytes_ratio),
            Target::of(Bound::AtMost(1.1, "x"), bytes_ratio),
        ),
        Row::new(
            &format!("{FIGURE}: time"),
            format!(
                "{:.1} s to the last task's first request (the preparation: {:.1} s, beside the tasks' start); {:.1} s to the last import",
                warm.secs,
                warm.prepared_s.unwrap_or(f64::NAN),
                warm.tools_s.unwrap_or(f64::NAN)
            ),
            format!(
                "one uv sync in one container {:.1} s; --no-warm {:.1} s (last import {:.1} s); no Python project {:.1} s",
                floor.secs,
                cold.secs,
                cold.tools_s.unwrap_or(f64::NAN),
                none.secs
            ),
            Some(time_ratio),
            Target::of(Bound::AtMost(1.5, "x"), time_ratio),
        ),
    ])
}

fn image(ctx: &Ctx, target: &str) -> Measured<String> {
    let built = run_ok(Command::new(&ctx.sandpen).args(["image", "build", "--target", target]))
        .map_err(|e| format!("the {target} image could not be built here ({e})"))?;
    Ok(built.lines().last().unwrap_or_default().trim().to_string())
}

/// A repository with a uv project on `deps`, locked by `uv lock` in the agent image. Its name is
/// unique, so its lock, and the environment sandpen prepares for it, are new.
fn project(ctx: &Ctx, agent: &str, deps: &str) -> Measured<PathBuf> {
    let repo = ctx.work.path().join(format!("warm-{}", ctx.next()));
    std::fs::create_dir_all(&repo).map_err(|e| e.to_string())?;
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let pyproject = format!(
        "[project]\nname = \"bench-warm-{}\"\nversion = \"0.1.0\"\nrequires-python = \">=3.11\"\n\
         dependencies = [{deps}]\n",
        nanos.as_nanos()
    );
    std::fs::write(repo.join("pyproject.toml"), pyproject).map_err(|e| e.to_string())?;
    let mount = format!("{}:/workspace", repo.display());
    let args = [
        "run",
        "--rm",
        "--user",
        "0:0",
        "-e",
        "UV_CACHE_DIR=/tmp/c",
        "-v",
        &mount,
        agent,
    ];
    run_ok(Command::new("docker").args(args).args(["uv", "lock"]))
        .map_err(|e| format!("PyPI is out of reach (uv lock: {e})"))?;
    commit_all(&repo, "a uv project")?;
    Ok(repo)
}

/// `git init`, then everything committed (with an identity of its own: CI machines have none).
fn commit_all(repo: &Path, message: &str) -> Measured<()> {
    let id = ["-c", "user.name=bench", "-c", "user.email=bench@sandpen"];
    for git in [&["init", "-q"][..], &["add", "-A"], &["commit", "-qm", message]] {
        run_ok(Command::new("git").arg("-C").arg(repo).args(id).args(git))?;
    }
    Ok(())
}

/// A repository with one file and no Python project.
fn bare_repo(ctx: &Ctx) -> Measured<PathBuf> {
    let repo = ctx.work.path().join(format!("bare-{}", ctx.next()));
    std::fs::create_dir_all(&repo).map_err(|e| e.to_string())?;
    std::fs::write(repo.join("README.md"), "no Python here\n").map_err(|e| e.to_string())?;
    commit_all(&repo, "bare")?;
    Ok(repo)
}

/// One `uv sync --frozen` of the project in one container of the agent image: the floor.
fn one_sync(agent: &str, repo: &Path) -> Measured<Cost> {
    let mount = format!("{}:/workspace:ro", repo.display());
    let script = "uv sync --frozen --quiet && cat /sys/class/net/eth0/statistics/rx_bytes";
    let args = ["run", "--rm", "--user", "0:0", "-e", "UV_CACHE_DIR=/tmp/c"];
    let mut cmd = Command::new("docker");
    cmd.args(args).args([
        "-e",
        "UV_PROJECT_ENVIRONMENT=/tmp/venv",
        "-v",
        &mount,
        agent,
        "sh",
        "-c",
        script,
    ]);
    let start = Instant::now();
    let out = run_ok(&mut cmd)?;
    let secs = start.elapsed().as_secs_f64();
    let bytes = out
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .ok_or("no byte count")?;
    Ok(Cost {
        bytes,
        secs,
        tools_s: None,
        prepared_s: None,
    })
}

/// A `sandpen run` of `n` tasks at -j n through the gateway: what it fetched, when the last task
/// first asked the model, and the environment's volume.
fn run(
    ctx: &Ctx,
    agent: &str,
    repo: &Path,
    server: &ModelServer,
    n: usize,
    extra: &[&str],
) -> Measured<(Cost, Option<String>)> {
    let tasks = ctx.task_file(n, "Import the project's dependencies.", "2g", 1.0);
    let report = ctx.work.path().join(format!("report-{}.json", ctx.next()));
    let url = format!("http://{}/task/{{task}}", server.addr);
    let mut cmd = Command::new(&ctx.sandpen);
    cmd.args(["run", "--image", agent, "--repo"])
        .arg(repo)
        .args(["-j", &n.to_string(), "--report"])
        .arg(&report)
        .args(extra)
        .arg(&tasks)
        .env("ANTHROPIC_API_KEY", "sk-bench-not-a-key")
        .env("ANTHROPIC_BASE_URL", &url)
        .stdout(Stdio::null());
    let began = SystemTime::now();
    let out = cmd.output().map_err(|e| format!("running sandpen: {e}"))?;
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap_or_default())
        .map_err(|_| format!("no report: {}", String::from_utf8_lossy(&out.stderr)))?;
    let tasks = r["tasks"].as_array().cloned().unwrap_or_default();
    // In the repository without the project, the import fails: only the first requests count.
    let imported = tasks.iter().filter(|t| log_has(t, "IMPORTED")).count();
    let bare = !repo.join("pyproject.toml").exists();
    if tasks.len() != n || (imported != n && !bare) {
        return Err(format!(
            "{imported} of {n} tasks imported the dependencies {extra:?}"
        ));
    }
    let dir = Path::new(tasks[0]["log"].as_str().unwrap_or_default())
        .parent()
        .ok_or("no log")?;
    let bytes = egress_bytes(&dir.join("egress.jsonl"));
    let secs = last_first_request(server, began, n, 0)?;
    let tools_s = last_first_request(server, began, n, 1)?;
    let volume = r["environment"]["volume"].as_str().map(String::from);
    let prepared_s = r["environment"]["duration_s"].as_f64();
    Ok((
        Cost {
            bytes,
            secs,
            tools_s: Some(tools_s),
            prepared_s,
        },
        volume,
    ))
}

fn log_has(task: &serde_json::Value, needle: &str) -> bool {
    let log = task["log"].as_str().unwrap_or_default();
    std::fs::read_to_string(log).is_ok_and(|l| l.contains(needle))
}

/// The bytes the gateway counted coming in for every request it passed.
fn egress_bytes(path: &Path) -> u64 {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["kind"] == "egress")
        .filter_map(|e| e["bytes_down"].as_u64())
        .sum()
}

/// Seconds from `began` to the latest of the tasks' first model requests after it at `step`
/// or later (0: any request; 1: one that carries the first tool's result).
fn last_first_request(server: &ModelServer, began: SystemTime, n: usize, step: usize) -> Measured<f64> {
    let mut first = std::collections::BTreeMap::<String, SystemTime>::new();
    for r in server.recorded() {
        let Ok(at) = humantime::parse_rfc3339_weak(&r.at) else {
            continue;
        };
        if at >= began && r.step >= step && !r.side_request {
            let e = first.entry(r.task).or_insert(at);
            *e = (*e).min(at);
        }
    }
    if first.len() < n {
        return Err(format!("{} of {n} tasks asked the model", first.len()));
    }
    let last = first.values().max().copied().unwrap_or(began);
    Ok(last.duration_since(began).unwrap_or_default().as_secs_f64())
}
