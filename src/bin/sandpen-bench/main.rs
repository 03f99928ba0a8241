//! sandpen's benchmarks, measured side by side in one run with what users would use instead:
//! the docker CLI one at a time, `xargs -P N docker run --rm`, and the Python Docker SDK with
//! threads (the stack of the orchestrator sandpen replaces). Prints a table and writes
//! docs/BENCHMARKS.md (or `--out FILE`). `--quick` runs a few small rounds of each, to prove
//! the harness works (CI), without judging timings.
//!
//! Run: `cargo build --release --bins && target/release/sandpen-bench` (or `just bench`).

mod stats;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use sha2::{Digest, Sha256};
use stats::Sample;

/// The command every sandpen task runs; the comparisons run the same one in the same image.
fn probe_cmd(prompt: &str) -> Vec<String> {
    let day = std::time::Duration::from_secs(86_400);
    let mut cmd = sandpen::agent::command(50, day, std::time::Duration::from_secs(10));
    // sandpen mounts the prompt file; here it is piped in the same way, on stdin.
    let quoted = format!("'{}'", prompt.replace('\'', "'\\''"));
    cmd[2] = format!("printf '%s' {quoted} | exec \"$@\"");
    cmd
}

const LOG_LINE: &str = "sandpen log throughput benchmark line: 0123456789abcdefghijklmn\n";

struct Ctx {
    sandpen: PathBuf,
    probe: String,
    quick: bool,
    work: tempfile::TempDir,
    /// The agent definitions directory the probe needs (`--agent workflow-manager`).
    agents: PathBuf,
    repo: PathBuf,
    python: Option<String>,
    counter: std::cell::Cell<u32>,
}

struct Row {
    figure: &'static str,
    sandpen: String,
    other: String,
    ratio: Option<f64>,
    target: String,
    met: Option<bool>,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let out = args
        .iter()
        .position(|a| a == "--out")
        .and_then(|i| args.get(i + 1))
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            if quick {
                PathBuf::from("target/BENCHMARKS.quick.md")
            } else {
                PathBuf::from("docs/BENCHMARKS.md")
            }
        });
    let ctx = setup(quick);
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    eprintln!("== lifecycle");
    rows.extend(lifecycle(&ctx, &mut notes));
    eprintln!("== throughput");
    rows.extend(throughput(&ctx));
    eprintln!("== speedup");
    rows.extend(speedup(&ctx));
    eprintln!("== log throughput");
    rows.push(log_throughput(&ctx, &mut notes));
    eprintln!("== footprint");
    rows.extend(footprint(&ctx, &mut notes));
    eprintln!("== image cache");
    rows.push(image_cache(&ctx));
    eprintln!("== real CLI, scripted model");
    rows.extend(real_cli_speedup(&ctx, &mut notes));

    if quick {
        // Small rounds prove the harness works; their figures are not held to the targets.
        rows.iter_mut().for_each(|r| r.met = None);
    }
    let table = table(&rows);
    println!("{table}");
    let doc = markdown(&ctx, &table, &notes);
    if let Some(dir) = out.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    std::fs::write(&out, doc).unwrap_or_else(|e| panic!("writing {}: {e}", out.display()));
    eprintln!("wrote {}", out.display());
}

fn setup(quick: bool) -> Ctx {
    let exe = std::env::current_exe().expect("own path");
    let sandpen = exe.with_file_name("sandpen");
    assert!(
        sandpen.exists(),
        "build the sandpen binary next to this one: cargo build --release --bins"
    );
    let out =
        run_ok(Command::new(&sandpen).args(["image", "build", "--target", "probe", "--bootstrap-base"]));
    let probe = out.lines().last().unwrap_or_default().trim().to_string();
    let work = tempfile::Builder::new()
        .prefix("sandpen-bench-")
        .tempdir()
        .expect("temp dir");
    let agents = work.path().join("agents");
    std::fs::create_dir_all(&agents).unwrap();
    std::fs::write(agents.join("workflow-manager.md"), sandpen::agent::DEFINITION).unwrap();
    let repo = work.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    std::fs::write(repo.join("README.md"), "bench\n").unwrap();
    for args in [&["init", "-q"][..], &["add", "-A"], &["commit", "-qm", "init"]] {
        run_ok(
            Command::new("git")
                .arg("-C")
                .arg(&repo)
                .args(["-c", "user.name=b", "-c", "user.email=b@b"])
                .args(args),
        );
    }
    let python = ["python3", "python"]
        .into_iter()
        .find(|p| {
            Command::new(p)
                .args(["-c", "import docker"])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .map(String::from);
    if python.is_none() {
        eprintln!("note: the Python Docker SDK is missing (pip install docker): its comparisons are skipped");
    }
    Ctx {
        sandpen,
        probe,
        quick,
        agents,
        repo,
        python,
        work,
        counter: Default::default(),
    }
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Wall seconds of a command whose stdout is discarded. A failure is retried once (the
/// comparisons' own clients can trip on a busy engine); a second failure ends the harness
/// with the command's stderr.
fn timed(cmd: &mut Command) -> f64 {
    for attempt in 1..=2 {
        let start = Instant::now();
        let out = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
        let t = start.elapsed().as_secs_f64();
        if out.status.success() {
            return t;
        }
        let err = String::from_utf8_lossy(&out.stderr);
        eprintln!(
            "attempt {attempt} failed: {cmd:?}\n{}",
            err.lines().rev().take(5).collect::<Vec<_>>().join("\n")
        );
    }
    panic!("{cmd:?} failed twice");
}

impl Ctx {
    fn next(&self) -> u32 {
        let n = self.counter.get() + 1;
        self.counter.set(n);
        n
    }

    /// `docker run --rm` of the same image and command sandpen runs.
    fn docker_run(&self, prompt: &str) -> Command {
        let mut c = Command::new("docker");
        c.args(["run", "--rm", "-v"]).arg(format!(
            "{}:/home/sandpen/.claude/agents:ro",
            self.agents.display()
        ));
        c.arg(&self.probe).args(probe_cmd(prompt));
        c
    }

    /// Writes a task file of `n` tasks with the same prompt and limits.
    fn task_file(&self, n: usize, prompt: &str, memory: &str, cpus: f64) -> PathBuf {
        let path = self.work.path().join(format!("tasks-{}.toml", self.next()));
        let mut text = format!("[defaults]\nmemory = {memory:?}\ncpus = {cpus:?}\n");
        for i in 0..n {
            text.push_str(&format!("[[task]]\nid = \"t{i:03}\"\nprompt_text = {prompt:?}\n"));
        }
        std::fs::write(&path, text).unwrap();
        path
    }

    /// `sandpen run` of a task file; returns the wall time and the report.
    fn sandpen_run(
        &self,
        tasks: &Path,
        jobs: usize,
        wrapper: Option<&[&str]>,
    ) -> (f64, serde_json::Value, String) {
        self.sandpen_run_with(tasks, jobs, wrapper, &[])
    }

    fn sandpen_run_with(
        &self,
        tasks: &Path,
        jobs: usize,
        wrapper: Option<&[&str]>,
        extra: &[&str],
    ) -> (f64, serde_json::Value, String) {
        let report = self.work.path().join(format!("report-{}.json", self.next()));
        let mut cmd = match wrapper {
            Some(w) => {
                let mut c = Command::new(w[0]);
                c.args(&w[1..]).arg(&self.sandpen);
                c
            }
            None => Command::new(&self.sandpen),
        };
        cmd.args(["run", "--image", &self.probe, "--repo"])
            .arg(&self.repo);
        cmd.args(["-j", &jobs.to_string(), "--report"])
            .arg(&report)
            .args(extra)
            .arg(tasks);
        cmd.env("ANTHROPIC_API_KEY", "sk-bench-not-a-key")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let start = Instant::now();
        let out = cmd.output().expect("sandpen runs");
        let wall = start.elapsed().as_secs_f64();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap_or_default())
            .unwrap_or_else(|_| panic!("no report; sandpen said:\n{stderr}"));
        let failed: Vec<_> = report["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["status"] != "succeeded")
            .collect();
        assert!(failed.is_empty(), "tasks did not succeed: {failed:?}");
        (wall, report, stderr)
    }
}

fn lifecycle(ctx: &Ctx, notes: &mut Vec<String>) -> Vec<Row> {
    let n = if ctx.quick { 3 } else { 20 };
    let tasks = ctx.task_file(1, "true", "256m", 0.5);
    let (mut docker, mut container, mut whole, mut clone) = (vec![], vec![], vec![], vec![]);
    let (mut checkout, mut collect) = (vec![], vec![]);
    for i in 0..n {
        docker.push(timed(&mut ctx.docker_run("true")));
        let dest = ctx.work.path().join(format!("clone-{i}"));
        clone.push(timed(
            Command::new("git")
                .args(["clone", "--local", "-q"])
                .arg(&ctx.repo)
                .arg(&dest),
        ));
        let (wall, report, _) = ctx.sandpen_run(&tasks, 1, None);
        let t = &report["tasks"][0]["timings"];
        container.push(t["container_s"].as_f64().unwrap());
        checkout.push(t["checkout_s"].as_f64().unwrap());
        collect.push(t["collect_s"].as_f64().unwrap());
        whole.push(wall);
    }
    let (docker, container, whole, clone) = (
        Sample::new(docker),
        Sample::new(container),
        Sample::new(whole),
        Sample::new(clone),
    );
    let baseline = clone.median() + docker.median();
    notes.push(format!(
        "Lifecycle breakdown (medians): sandpen's checkout {:.3} s, container {:.3} s, result branch {:.3} s; \
         the process as a whole {:.3} s.",
        Sample::new(checkout).median(),
        container.median(),
        Sample::new(collect).median(),
        whole.median()
    ));
    vec![
        Row {
            figure: "1a. one trivial task, container part (s)",
            sandpen: container.show(3),
            other: format!("docker run --rm: {}", docker.show(3)),
            ratio: Some(container.median() / docker.median()),
            target: "≤ 0.8x".into(),
            met: Some(container.median() <= 0.8 * docker.median()),
        },
        Row {
            figure: "1b. one trivial task, whole `sandpen run` (s)",
            sandpen: whole.show(3),
            other: format!(
                "git clone --local {:.3} + docker run --rm {:.3}",
                clone.median(),
                docker.median()
            ),
            ratio: Some(whole.median() / baseline),
            target: "≤ 1.5x".into(),
            met: Some(whole.median() <= 1.5 * baseline),
        },
    ]
}

fn throughput(ctx: &Ctx) -> Vec<Row> {
    let (n, jobs, rounds) = if ctx.quick { (16, 8, 1) } else { (64, 16, 3) };
    let tasks = ctx.task_file(n, "true", "256m", 0.5);
    let (mut ours, mut xargs, mut python) = (vec![], vec![], vec![]);
    for _ in 0..rounds {
        let (wall, _, _) = ctx.sandpen_run(&tasks, jobs, None);
        ours.push(n as f64 / wall);
        let cmd: Vec<String> = ctx
            .docker_run("true")
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let line = cmd.iter().map(|a| shell_quote(a)).collect::<Vec<_>>().join(" ");
        let script = format!("seq {n} | xargs -P {jobs} -I{{}} docker {line} >/dev/null");
        xargs.push(n as f64 / timed(Command::new("sh").args(["-c", &script])));
        if let Some(py) = &ctx.python {
            python.push(n as f64 / timed(&mut python_sdk(ctx, py, n, jobs, "true")));
        }
    }
    let ours = Sample::new(ours);
    let xargs = Sample::new(xargs);
    let mut rows = vec![Row {
        figure: "2a. throughput, trivial tasks (tasks/s)",
        sandpen: format!("{} ({n} tasks, -j {jobs})", ours.show(2)),
        other: format!("xargs -P {jobs} docker run --rm: {}", xargs.show(2)),
        ratio: Some(ours.median() / xargs.median()),
        target: "≥ 1.2x".into(),
        met: Some(ours.median() >= 1.2 * xargs.median()),
    }];
    if !python.is_empty() {
        let python = Sample::new(python);
        rows.push(Row {
            figure: "2b. throughput vs the Python SDK (tasks/s)",
            sandpen: ours.show(2),
            other: format!("docker SDK, {jobs} threads: {}", python.show(2)),
            ratio: Some(ours.median() / python.median()),
            target: "≥ 1.5x".into(),
            met: Some(ours.median() >= 1.5 * python.median()),
        });
    }
    rows
}

fn speedup(ctx: &Ctx) -> Vec<Row> {
    let (n, secs) = if ctx.quick { (4, 2) } else { (16, 5) };
    let tasks = ctx.task_file(n, &format!("sleep {secs}"), "256m", 0.5);
    // The default network first; then without one, which shows what the bridge's set-up costs.
    let networks: &[&'static str] = if ctx.quick {
        &["bridge"]
    } else {
        &["bridge", "none"]
    };
    networks
        .iter()
        .map(|net| {
            let extra = ["--network", net];
            let (parallel, report, _) = ctx.sandpen_run_with(&tasks, n, None, &extra);
            let (serial, _, _) = ctx.sandpen_run_with(&tasks, 1, None, &extra);
            let ratio = serial / parallel;
            Row {
                figure: if *net == "bridge" {
                    "3. speedup, tasks of sleep (wall -j 1 / wall -j N)"
                } else {
                    "3b. the same with --network none"
                },
                sandpen: format!(
                    "{ratio:.1}x: -j {n} {parallel:.1} s, -j 1 {serial:.1} s ({n} × sleep {secs}, --network {net}; \
                     report speedup {:.1})",
                    report["speedup"].as_f64().unwrap_or(0.0)
                ),
                other: format!("limit {n}x"),
                ratio: Some(ratio),
                target: if ctx.quick { "(quick)".into() } else { "≥ 12x".into() },
                met: (!ctx.quick).then_some(ratio >= 12.0),
            }
        })
        .collect()
}

fn log_throughput(ctx: &Ctx, notes: &mut Vec<String>) -> Row {
    let (mib, rounds) = if ctx.quick { (16u64, 1) } else { (256u64, 3) };
    let bytes = mib << 20;
    let generator = format!("yes '{}' | head -c {bytes}", LOG_LINE.trim_end());
    let expected = {
        let mut h = Sha256::new();
        let line = LOG_LINE.as_bytes();
        let mut left = bytes as usize;
        while left > 0 {
            let take = left.min(line.len());
            h.update(&line[..take]);
            left -= take;
        }
        hex::encode(h.finalize())
    };
    let tasks = ctx.task_file(1, &generator, "512m", 1.0);
    let (mut ours, mut theirs) = (vec![], vec![]);
    let mut exact = true;
    for _ in 0..rounds {
        let (_, report, _) = ctx.sandpen_run(&tasks, 1, None);
        let t = &report["tasks"][0];
        let secs = t["timings"]["container_s"].as_f64().unwrap();
        ours.push(mib as f64 / secs);
        let log = std::fs::read(t["log"].as_str().unwrap()).unwrap();
        exact &= payload_hash(&log) == Some(expected.clone());

        // The docker CLI: the same container, its log kept whole (no rotation), read with
        // `docker logs -f` into a file.
        let file = ctx.work.path().join(format!("docker-{}.log", ctx.next()));
        let start = Instant::now();
        let mut run = Command::new("docker");
        run.args(["run", "-d", "--log-opt", "max-size=2g", "-v"])
            .arg(format!(
                "{}:/home/sandpen/.claude/agents:ro",
                ctx.agents.display()
            ))
            .arg(&ctx.probe)
            .args(probe_cmd(&generator));
        let id = run_ok(&mut run).trim().to_string();
        let f = std::fs::File::create(&file).unwrap();
        let status = Command::new("docker")
            .args(["logs", "-f", &id])
            .stdout(f)
            .status()
            .unwrap();
        let secs = start.elapsed().as_secs_f64();
        assert!(status.success());
        let _ = Command::new("docker")
            .args(["rm", "-f", &id])
            .stdout(Stdio::null())
            .status();
        theirs.push(mib as f64 / secs);
        let docker_exact = payload_hash(&std::fs::read(&file).unwrap()) == Some(expected.clone());
        if !docker_exact {
            notes.push("The docker CLI's copy of the log was NOT byte-exact in one round.".into());
        }
    }
    let (ours, theirs) = (Sample::new(ours), Sample::new(theirs));
    notes.push(format!(
        "Log throughput: sandpen's log was {} ({} MiB per round, sha256 {} checked against the generator).",
        if exact {
            "byte-exact in every round"
        } else {
            "NOT byte-exact"
        },
        mib,
        &expected[..16]
    ));
    Row {
        figure: "4. log throughput, one task writing to stdout (MiB/s)",
        sandpen: format!(
            "{} ({mib} MiB, {})",
            ours.show(1),
            if exact { "byte-exact" } else { "NOT EXACT" }
        ),
        other: format!("docker logs -f > file: {}", theirs.show(1)),
        ratio: Some(ours.median() / theirs.median()),
        target: "≥ 0.9x".into(),
        met: Some(exact && ours.median() >= 0.9 * theirs.median()),
    }
}

/// The sha256 of what the task printed: between the probe's init line and its result line.
fn payload_hash(log: &[u8]) -> Option<String> {
    let start = log.iter().position(|&b| b == b'\n')? + 1;
    let marker = b"\n{\"type\":\"result\"";
    let end = log.windows(marker.len()).rposition(|w| w == marker)?;
    // The probe always prints a newline of its own before its result line: the marker's.
    Some(hex::encode(Sha256::digest(&log[start..end])))
}

fn footprint(ctx: &Ctx, notes: &mut Vec<String>) -> Vec<Row> {
    let (n, secs) = if ctx.quick { (8, 5) } else { (32, 30) };
    let tasks = ctx.task_file(n, &format!("sleep {secs}"), "64m", 0.1);
    let (_, _, stderr) = ctx.sandpen_run(&tasks, n, Some(&["/usr/bin/time", "-f", "TIME %M %U %S %e"]));
    let (rss_kib, cpu) = parse_time(&stderr).expect("GNU time's line");
    let mut rows = vec![Row {
        figure: "5. footprint, concurrent sleeping tasks",
        sandpen: format!(
            "peak RSS {:.1} MiB, CPU {:.2}% of one core ({n} × sleep {secs})",
            rss_kib / 1024.0,
            cpu
        ),
        other: String::new(),
        ratio: None,
        target: "≤ 30 MiB, ≤ 5%".into(),
        met: Some(rss_kib / 1024.0 <= 30.0 && cpu <= 5.0),
    }];
    if let Some(py) = &ctx.python {
        let mut cmd = Command::new("/usr/bin/time");
        cmd.args(["-f", "TIME %M %U %S %e"])
            .args(python_sdk(ctx, py, n, n, &format!("sleep {secs}")).get_program_and_args());
        let out = cmd.output().unwrap();
        if let Some((py_rss, py_cpu)) = parse_time(&String::from_utf8_lossy(&out.stderr)) {
            rows[0].other = format!(
                "Python SDK, {n} threads: {:.1} MiB, {:.2}%",
                py_rss / 1024.0,
                py_cpu
            );
            rows[0].ratio = Some(rss_kib / py_rss);
            notes.push("Footprint ratio is sandpen's peak RSS over the Python SDK script's.".into());
        }
    }
    rows
}

/// "TIME maxrss_kib user sys elapsed" -> (maxrss KiB, CPU % of one core).
fn parse_time(stderr: &str) -> Option<(f64, f64)> {
    let line = stderr.lines().rev().find(|l| l.starts_with("TIME "))?;
    let v: Vec<f64> = line[5..]
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    let [rss, user, sys, elapsed] = v[..] else {
        return None;
    };
    Some((rss, 100.0 * (user + sys) / elapsed))
}

/// The real Claude Code CLI in the agent image, against sandpen's scripted model server: tasks
/// of a few turns, each answered after a fixed model latency, at -j N against -j 1.
fn real_cli_speedup(ctx: &Ctx, notes: &mut Vec<String>) -> Option<Row> {
    use sandpen::model_server::{ModelServer, Script, TaskScript, Turn};
    let (n, turns, latency_ms) = if ctx.quick { (2, 3, 200) } else { (8, 5, 1000) };
    let built = Command::new(&ctx.sandpen)
        .args(["image", "build", "--target", "agent"])
        .output()
        .ok()?;
    if !built.status.success() {
        notes.push(
            "Figure 7 skipped: the agent image could not be built here (see `sandpen image build`).".into(),
        );
        return None;
    }
    let agent = String::from_utf8_lossy(&built.stdout)
        .lines()
        .last()?
        .trim()
        .to_string();
    let ids: Vec<String> = (0..n).map(|i| format!("t{i:03}")).collect();
    let script = Script {
        tasks: ids
            .iter()
            .map(|id| {
                let mut steps: Vec<Turn> = (1..turns)
                    .map(|k| {
                        Turn::bash(format!("echo step {k} >> steps.txt"), format!("step {k}"))
                            .with_delay(latency_ms)
                    })
                    .collect();
                steps.push(Turn::text("done").with_delay(latency_ms));
                (id.clone(), TaskScript { turns: steps })
            })
            .collect(),
    };
    let rt = tokio::runtime::Runtime::new().expect("a runtime for the model server");
    let server = rt.block_on(async {
        let engine = sandpen::engine::Engine::connect(None).await.ok()?;
        let gateway = engine.bridge_gateway().await.ok()?;
        ModelServer::start(script, std::net::SocketAddr::new(gateway, 0), None)
            .await
            .ok()
    })?;
    let url = format!("http://{}/task/{{task}}", server.addr);
    let tasks = ctx.task_file(n, "Append the steps.", "1g", 1.0);
    let run = |jobs: usize| -> f64 {
        let report = ctx.work.path().join(format!("report-{}.json", ctx.next()));
        let mut cmd = Command::new(&ctx.sandpen);
        cmd.args(["run", "--image", &agent, "--repo"]).arg(&ctx.repo);
        cmd.args(["-j", &jobs.to_string(), "--report"])
            .arg(&report)
            .arg(&tasks);
        cmd.env("ANTHROPIC_API_KEY", "sk-bench-not-a-key")
            .env("ANTHROPIC_BASE_URL", &url);
        let wall = timed(&mut cmd);
        let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
        let turns_seen: Vec<u64> = r["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["agent"]["num_turns"].as_u64().unwrap_or(0))
            .collect();
        assert!(
            turns_seen.iter().all(|&t| t == turns as u64),
            "every task ran its {turns} turns: {turns_seen:?}"
        );
        wall
    };
    let parallel = run(n);
    let serial = run(1);
    rt.block_on(server.stop());
    let ratio = serial / parallel;
    Some(Row {
        figure: "7. real CLI, scripted model: tasks of turns with model latency (wall -j 1 / -j N)",
        sandpen: format!(
            "{ratio:.1}x: -j {n} {parallel:.1} s, -j 1 {serial:.1} s ({n} tasks × {turns} turns, {latency_ms} ms latency each)"
        ),
        other: "the orchestrator it replaces claimed 3–5x".into(),
        ratio: Some(ratio),
        target: "≥ 6x".into(),
        met: Some(ratio >= 6.0),
    })
}

fn image_cache(ctx: &Ctx) -> Row {
    let n = if ctx.quick { 3 } else { 10 };
    let times: Vec<f64> = (0..n)
        .map(|_| timed(Command::new(&ctx.sandpen).args(["image", "build", "--target", "probe"])))
        .collect();
    let s = Sample::new(times);
    Row {
        figure: "6. `sandpen image build` with nothing changed (s)",
        sandpen: s.show(3),
        other: String::new(),
        ratio: None,
        target: "≤ 1 s".into(),
        met: Some(s.median() <= 1.0),
    }
}

/// A Python script with the Docker SDK: threads doing create, start, wait, logs, remove.
fn python_sdk(ctx: &Ctx, python: &str, n: usize, jobs: usize, prompt: &str) -> Command {
    let script = format!(
        r#"
import docker, json
from concurrent.futures import ThreadPoolExecutor
client = docker.from_env(max_pool_size={jobs})
cmd = json.loads({cmd:?})
def one(i):
    c = client.containers.create({image:?}, cmd, volumes={{{agents:?}: {{"bind": "/home/sandpen/.claude/agents", "mode": "ro"}}}})
    c.start()
    c.wait()
    c.logs()
    c.remove(force=True)
with ThreadPoolExecutor({jobs}) as pool:
    list(pool.map(one, range({n})))
"#,
        cmd = serde_json::to_string(&probe_cmd(prompt)).unwrap(),
        image = ctx.probe,
        agents = ctx.agents.display().to_string(),
    );
    let mut c = Command::new(python);
    c.args(["-c", &script]);
    c
}

trait ProgramAndArgs {
    fn get_program_and_args(&self) -> Vec<String>;
}

impl ProgramAndArgs for Command {
    fn get_program_and_args(&self) -> Vec<String> {
        std::iter::once(self.get_program())
            .chain(self.get_args())
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

fn table(rows: &[Row]) -> String {
    let mut t = comfy_table::Table::new();
    t.load_style(comfy_table::presets::ASCII_MARKDOWN);
    t.set_header(["figure", "sandpen", "comparison", "ratio", "target", "met"]);
    for r in rows {
        t.add_row([
            r.figure.to_string(),
            r.sandpen.clone(),
            r.other.clone(),
            r.ratio.map(|x| format!("{x:.2}x")).unwrap_or_default(),
            r.target.clone(),
            match r.met {
                Some(true) => "yes".into(),
                Some(false) => "NO".into(),
                None => "-".into(),
            },
        ]);
    }
    t.to_string()
}

fn markdown(ctx: &Ctx, table: &str, notes: &[String]) -> String {
    let doctor: serde_json::Value =
        serde_json::from_str(&run_ok(Command::new(&ctx.sandpen).args(["doctor", "--json"])))
            .unwrap_or_default();
    let e = &doctor["engine"];
    let mem_gib = e["mem_total"].as_f64().unwrap_or(0.0) / (1u64 << 30) as f64;
    let date = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
    let mut s = String::new();
    s.push_str("# Benchmarks\n\n");
    s.push_str("Written by `sandpen-bench` (`just bench`); every comparison measured in the same run, on the same machine.\n");
    if ctx.quick {
        s.push_str(
            "\n**Quick mode**: a few small rounds to prove the harness works; the figures are not judged.\n",
        );
    }
    s.push_str(&format!(
        "\n- date: {date}\n- machine: {} CPUs, {mem_gib:.1} GiB memory, {} {}\n- engine: Docker Engine {} (API {}), cgroup v{} ({} driver), storage {}\n- sandpen: {}\n- figures: median (min–max, n = runs)\n\n",
        e["ncpu"], e["operating_system"].as_str().unwrap_or("?"), e["kernel"].as_str().unwrap_or("?"),
        e["version"].as_str().unwrap_or("?"), e["api_version"].as_str().unwrap_or("?"),
        e["cgroup_version"].as_str().unwrap_or("?"), e["cgroup_driver"].as_str().unwrap_or("?"),
        e["storage_driver"].as_str().unwrap_or("?"), env!("CARGO_PKG_VERSION"),
    ));
    s.push_str(table);
    s.push_str("\n\n## Measurements\n\n");
    for n in notes {
        s.push_str(&format!("- {n}\n"));
    }
    s.push_str(NOTES);
    let _ = std::io::stdout().flush();
    s
}

/// What each figure measures and what bounds it (kept with the harness so that the page and
/// the code agree).
const NOTES: &str = include_str!("notes.md");
