//! End to end: the real Claude Code CLI in the real agent image, in sandpen's containers,
//! talking to sandpen's scripted model server started by the test. Real Docker engine, no
//! mocks. (One test uses the probe image for what the real CLI cannot be made to do on demand.)

mod common;

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

// ---------------------------------------------------------------------------------------------

/// Three demo tasks at once, each through the WorkflowManager's 11 phases with real tool calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_tasks_in_parallel_through_the_workflow_manager() {
    let sentences = bundled_sentences();
    let ids = ["add-slugify", "add-reverse", "fix-count"];
    let samples: Vec<&demo::SampleTask> = ids
        .iter()
        .map(|id| demo::TASKS.iter().find(|t| t.id == *id).expect("a demo task"))
        .collect();
    let full = demo::script();
    let script = Script {
        tasks: ids
            .iter()
            .map(|id| (id.to_string(), full.tasks[*id].clone()))
            .collect(),
        rate_limit: None,
        overloaded: None,
    };
    let prompts: Vec<(&str, &str)> = samples.iter().map(|t| (t.id, t.prompt)).collect();
    let repo = repo_with(&[], &prompts);
    let base = head(repo.path());
    let server = start_server(script.clone()).await;

    let files: Vec<String> = ids.iter().map(|id| format!("tasks/{id}.md")).collect();
    let files: Vec<&str> = files.iter().map(String::as_str).collect();
    let run = run_agent(repo.path(), &base_url(&server), &["-j", "3"], &files).await;
    let recorded = server.recorded();
    server.stop().await;

    assert_eq!(run.code, 0, "{}", run.dump());
    let report = run.report();
    let run_id = field(&report, "run_id").to_string();
    assert_eq!(report["tasks"].as_array().map(Vec::len), Some(3), "{report:#}");

    for sample in &samples {
        let id = sample.id;
        let t = task(&report, id);
        let want = &script.tasks[id];
        assert_eq!(field(t, "status"), "succeeded", "{t:#}\n{}", run.dump());
        assert_eq!(t["exit_code"], 0, "{t:#}");

        // The CLI's own account of its run, against the script.
        let a = agent(t);
        let usage = want.total_usage();
        assert_eq!(a["num_turns"], want.turns.len(), "{id}: {a:#}");
        assert_eq!(a["input_tokens"], usage.input_tokens, "{id}: {a:#}");
        assert_eq!(a["output_tokens"], usage.output_tokens, "{id}: {a:#}");
        assert_eq!(a["is_error"], false, "{id}: {a:#}");
        assert_eq!(a["subtype"], "success", "{id}: {a:#}");
        let cost = a["cost_usd"].as_f64().unwrap_or(0.0);
        assert!(cost > 0.0, "{id}: cost {a:#}");

        // The WorkflowManager's progress, from the task's state file.
        assert_eq!(t["last_phase"], 11, "{t:#}");
        assert_eq!(t["last_phase_name"], "settings update", "{t:#}");
        assert_eq!(t["phases_completed"], 11, "{t:#}");

        // The work, as a branch of the user's repository.
        let branch = field(t, "branch");
        assert_eq!(branch, format!("sandpen/{id}/{run_id}"), "{t:#}");
        git(
            repo.path(),
            &["rev-parse", "--verify", &format!("refs/heads/{branch}")],
        );
        let count: u32 = git(
            repo.path(),
            &["rev-list", "--count", &format!("{base}..{branch}")],
        )
        .trim()
        .parse()
        .unwrap();
        assert!(count >= 11, "{branch} has {count} commits beyond the base");
        assert_eq!(t["commits"], count, "{t:#}");
        assert_eq!(t["salvaged"], false, "every phase was committed: {t:#}");
        assert_a_commit_per_phase(repo.path(), &base, branch);
        for (path, content) in [sample.code, sample.test] {
            let got = git(repo.path(), &["show", &format!("{branch}:{path}")]);
            assert_eq!(got, content, "{path} on {branch}");
        }
        let state = git(
            repo.path(),
            &[
                "show",
                &format!("{branch}:.github/workflow-states/{id}/state.json"),
            ],
        );
        assert!(state.contains("\"phase\": 11"), "{state}");

        // The model saw the WorkflowManager's instructions on every turn.
        let requests = agent_requests(&recorded, id);
        let steps: BTreeSet<usize> = requests.iter().map(|r| r.step).collect();
        assert_eq!(
            steps,
            (0..want.turns.len()).collect::<BTreeSet<_>>(),
            "{id}: every turn of the script was asked for once at least"
        );
        for r in &requests {
            for s in sentences {
                assert!(
                    r.system.contains(s),
                    "{id} step {}: the system prompt lacks {s:?}:\n{}",
                    r.step,
                    r.system
                );
            }
            assert!(r.tools.iter().any(|t| t == "Bash"), "{id}: tools {:?}", r.tools);
            assert!(r.api_key_present, "{id} step {}: no credentials sent", r.step);
            // Through the gateway (the default): the host's own key arrives upstream, swapped
            // in for the task's token.
            assert_eq!(
                r.api_key_sha256.as_deref(),
                Some(&key_digest(E2E_KEY)[..]),
                "{id} step {}: the upstream did not get the host's key",
                r.step
            );
        }
        eprintln!(
            "e2e {id}: {} in {:.1}s, {} turns, {}/{} tokens, ${cost:.4}, {} commits, {} requests ({} side)",
            field(t, "status"),
            t["duration_s"].as_f64().unwrap_or(0.0),
            a["num_turns"],
            a["input_tokens"],
            a["output_tokens"],
            count,
            requests.len(),
            recorded.iter().filter(|r| r.task == id && r.side_request).count(),
        );
    }

    // The three ran at the same time.
    let intervals: Vec<(String, f64, f64)> = ids
        .iter()
        .map(|id| {
            let t = task(&report, id);
            (
                id.to_string(),
                epoch_s(field(t, "started_at")),
                epoch_s(field(t, "finished_at")),
            )
        })
        .collect();
    for (i, a) in intervals.iter().enumerate() {
        for b in &intervals[i + 1..] {
            assert!(
                a.1 < b.2 && b.1 < a.2,
                "{} and {} did not overlap: {intervals:?}",
                a.0,
                b.0
            );
        }
    }
    eprintln!(
        "e2e three tasks: wall {:.1}s, concurrency {}, process {:?}",
        report["wall_s"].as_f64().unwrap_or(0.0),
        report["concurrency"],
        run.elapsed
    );
    assert_no_containers_left(&run_id);
}

/// The CLI cannot reach the model: it retries, sandpen shows the retries, and the task's
/// timeout ends it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_model_server_ends_in_the_timeout_with_retries_shown() {
    let ip = bridge_gateway().await;
    let closed = {
        let l = std::net::TcpListener::bind(SocketAddr::new(ip, 0)).expect("binding a port");
        l.local_addr().unwrap()
    };
    let repo = repo_with(&[], &[("unreachable", "Add a function; nothing will answer.")]);
    let url = format!("http://{closed}/task/{{task}}");
    let run = run_agent(
        repo.path(),
        &url,
        &["--timeout", "25s", "--json"],
        &["tasks/unreachable.md"],
    )
    .await;

    assert_eq!(run.code, 1, "{}", run.dump());
    let report = run.report();
    let t = task(&report, "unreachable");
    let duration = t["duration_s"].as_f64().unwrap_or(f64::MAX);
    eprintln!(
        "e2e unreachable: {} after {duration:.1}s (process {:?}), {} API retries, message {}",
        field(t, "status"),
        run.elapsed,
        t["api_retries"],
        t["message"]
    );
    assert_eq!(field(t, "status"), "timed_out", "{t:#}\n{}", run.dump());
    let ran = epoch_s(field(t, "finished_at")) - epoch_s(field(t, "started_at"));
    assert!(ran >= 25.0, "stopped before its timeout: ran {ran:.1}s");
    assert!(
        duration < 40.0,
        "25 s timeout + 10 s grace + 5 s: took {duration:.1}s"
    );
    assert!(
        run.elapsed < Duration::from_secs(45),
        "the process took {:?}",
        run.elapsed
    );
    assert!(
        t["api_retries"].as_u64().unwrap_or(0) > 0,
        "no API retries in the report: {t:#}"
    );

    let events = run.events();
    let retry = events.iter().find(|e| {
        e["event"] == "agent"
            && e["task"] == "unreachable"
            && e["activity"].as_str().is_some_and(|a| a.contains("API retry"))
    });
    assert!(
        retry.is_some(),
        "no agent event about an API retry in:\n{}",
        stdout(&run.out)
    );
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "task_stopping" && e["task"] == "unreachable" && e["reason"] == "timeout"),
        "no task_stopping event for the timeout:\n{}",
        stdout(&run.out)
    );
    assert_no_containers_left(field(&report, "run_id"));
}

/// The script ends after one tool call: the CLI's next request gets a 400, it reports an error
/// result and exits 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_result_from_the_cli_fails_the_task() {
    let id = "cut-short";
    let script = Script::one(id, vec![
                    Turn::bash(
                        "set -e; echo started > started.txt; git add started.txt; git commit -qm 'cut-short: started'",
                        "start the work",
                    )
                    .with_usage(Usage {
                        input_tokens: 500,
                        output_tokens: 30,
                    }),
                ]);
    let repo = repo_with(
        &[],
        &[(id, "Start something; the model will be gone after one call.")],
    );
    let base = head(repo.path());
    let (run, recorded) = run_scripted(repo.path(), id, script).await;

    assert_eq!(run.code, 1, "{}", run.dump());
    let report = run.report();
    let t = task(&report, id);
    eprintln!(
        "e2e error result: {} exit {} in {:.1}s, agent {}, message {}",
        field(t, "status"),
        t["exit_code"],
        t["duration_s"].as_f64().unwrap_or(0.0),
        t["agent"],
        t["message"]
    );
    assert_eq!(field(t, "status"), "failed", "{t:#}\n{}", run.dump());
    assert_eq!(agent(t)["is_error"], true, "{t:#}");
    assert_eq!(t["exit_code"], 1, "{t:#}");

    // The one tool call ran for real, and the server refused the turn after it.
    let requests = agent_requests(&recorded, id);
    assert!(
        requests.iter().any(|r| r.step == 0 && r.answer == "turn 1"),
        "{requests:#?}"
    );
    assert!(
        requests
            .iter()
            .any(|r| r.step == 1 && r.answer.starts_with("error:")),
        "the script's end was never reached: {requests:#?}"
    );
    let branch = field(t, "branch");
    assert!(
        !branch.is_empty(),
        "the commit made before the error came back: {t:#}"
    );
    assert_eq!(
        git(repo.path(), &["show", &format!("{branch}:started.txt")]),
        "started\n"
    );
    let subjects = git(repo.path(), &["log", "--format=%s", &format!("{base}..{branch}")]);
    assert!(
        subjects.lines().any(|l| l == "cut-short: started"),
        "the task's commit is on {branch}:\n{subjects}"
    );
    assert_no_containers_left(field(&report, "run_id"));
}

/// A task that committed all of its work has nothing to salvage: what sandpen's own
/// `uv run` wrapper writes into the checkout is not the task's work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_the_agent_committed_needs_no_salvage() {
    let id = "tidy";
    let script = Script::one(
        id,
        vec![
            Turn::bash(
                "set -e; echo tidy > tidy.txt; git add tidy.txt; git commit -qm 'tidy: one file'; git status --porcelain",
                "commit tidy.txt",
            ),
            Turn::text("Done: tidy.txt committed."),
        ],
    );
    let repo = repo_with(&[], &[(id, "Add tidy.txt and commit it.")]);
    let base = head(repo.path());
    let (run, _) = run_scripted(repo.path(), id, script).await;

    assert_eq!(run.code, 0, "{}", run.dump());
    let report = run.report();
    let t = task(&report, id);
    assert_eq!(field(t, "status"), "succeeded", "{t:#}");
    let branch = field(t, "branch");
    let changed = git(repo.path(), &["diff", "--name-only", &base, branch]);
    let log = git(
        repo.path(),
        &["log", "--stat", "--format=%s", &format!("{base}..{branch}")],
    );
    eprintln!(
        "e2e committed work: {} commits, salvaged {}, files changed: {:?}",
        t["commits"],
        t["salvaged"],
        changed.lines().collect::<Vec<_>>()
    );
    assert_eq!(
        t["salvaged"], false,
        "the agent committed everything it did, yet sandpen salvaged something:\n{log}"
    );
    assert_eq!(t["commits"], 1, "{t:#}\n{log}");
    assert_eq!(
        changed.trim(),
        "tidy.txt",
        "the task's work is tidy.txt alone:\n{log}"
    );
    assert_no_containers_left(field(&report, "run_id"));
}

/// The CLI can exit 0 and still report an error result; the probe image reproduces that.
#[test]
fn an_error_result_with_exit_code_zero_fails_the_task() {
    let repo = make_repo();
    let run = run_tasks(
        repo.path(),
        "[[task]]\nid = \"quiet-error\"\ntimeout = \"1m\"\nprompt_text = \"true\"\nenv = { PROBE_RESULT_IS_ERROR = \"1\" }\n",
        &[],
    );
    let report = run.report();
    let t = task(&report, "quiet-error");
    eprintln!(
        "e2e exit 0 with is_error: {} exit {}, message {}",
        field(t, "status"),
        t["exit_code"],
        t["message"]
    );
    assert_eq!(t["exit_code"], 0, "{t:#}\n{}", run.dump());
    assert_eq!(agent(t)["is_error"], true, "{t:#}");
    assert_eq!(field(t, "status"), "failed", "{t:#}");
    assert!(
        field(t, "message").contains("error result"),
        "the message says why: {t:#}"
    );
    assert_eq!(run.code, 1, "{}", run.dump());
}

const REPO_MARKER: &str = "REPO-OWN-WORKFLOW-MANAGER-7F3A";

/// A repository that brings its own WorkflowManager gets it, not sandpen's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_repositorys_own_workflow_manager_is_the_one_used() {
    let sentences = bundled_sentences();
    let id = "own-manager";
    let definition = format!(
        "---\nname: workflow-manager\ndescription: This repository's own workflow manager.\n---\n\
         {REPO_MARKER}: you are this repository's own workflow manager. Do the task in one commit.\n"
    );
    let repo = repo_with(
        &[(".claude/agents/workflow-manager.md", &definition)],
        &[(id, "Write own.txt and commit it.")],
    );
    let script = Script::one(
        id,
        vec![
            Turn::bash(
                "set -e; echo own > own.txt; git add own.txt; git commit -qm 'own manager: own.txt'",
                "write and commit own.txt",
            ),
            Turn::text("Done: own.txt committed."),
        ],
    );
    let (run, recorded) = run_scripted(repo.path(), id, script).await;

    let report = run.report();
    let t = task(&report, id);
    let requests = agent_requests(&recorded, id);
    eprintln!(
        "e2e own manager: {} in {:.1}s, {} requests, agent {}",
        field(t, "status"),
        t["duration_s"].as_f64().unwrap_or(0.0),
        requests.len(),
        t["agent"]
    );
    assert_eq!(run.code, 0, "{}", run.dump());
    assert_eq!(field(t, "status"), "succeeded", "{t:#}");
    assert_eq!(agent(t)["num_turns"], 2, "{t:#}");
    assert_eq!(
        requests.iter().map(|r| r.step).collect::<BTreeSet<_>>(),
        BTreeSet::from([0, 1]),
        "{requests:#?}"
    );
    for r in &requests {
        assert!(
            r.system.contains(REPO_MARKER),
            "step {}: the repository's definition is not in the system prompt:\n{}",
            r.step,
            r.system
        );
        for s in sentences {
            assert!(
                !r.system.contains(s),
                "step {}: sandpen's bundled definition reached the model ({s:?}):\n{}",
                r.step,
                r.system
            );
        }
    }
    let branch = field(t, "branch");
    assert_eq!(git(repo.path(), &["show", &format!("{branch}:own.txt")]), "own\n");
    assert_no_containers_left(field(&report, "run_id"));
}

/// A repository whose WorkflowManager file defines another agent is refused before any
/// container or model request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_definition_of_another_agent_is_a_governance_violation() {
    let id = "governed";
    let definition = "---\nname: helper\ndescription: Not the workflow manager.\n---\nDo anything.\n";
    let repo = repo_with(
        &[(".claude/agents/workflow-manager.md", definition)],
        &[(id, "Anything at all.")],
    );
    let script = Script::one(id, vec![Turn::text("This must never be asked for.")]);
    let (run, recorded) = run_scripted(repo.path(), id, script).await;

    let report = run.report();
    let t = task(&report, id);
    eprintln!(
        "e2e governance: {} in {:.1}s, message {}",
        field(t, "status"),
        t["duration_s"].as_f64().unwrap_or(0.0),
        t["message"]
    );
    assert_eq!(run.code, 1, "{}", run.dump());
    assert_eq!(field(t, "status"), "failed", "{t:#}");
    assert!(field(t, "message").contains("governance violation"), "{t:#}");
    assert!(t["container_id"].is_null(), "a container was made: {t:#}");
    assert!(t["started_at"].is_null(), "{t:#}");
    assert!(recorded.is_empty(), "the model was asked: {recorded:#?}");
    assert!(t["branch"].is_null(), "no work, no branch: {t:#}");
    assert_no_containers_left(field(&report, "run_id"));
}

/// `sandpen demo`, as a new user would run it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_runs_its_sample_tasks_through_all_phases() {
    // The demo builds the agent image when it is missing: have it built (once, with the CA
    // the tests use) so that the demo reuses it.
    agent_image().await;
    let tmp = tempfile::tempdir().expect("creating a temporary directory");
    let dir = tmp.path().join("demo");
    let mut args = vec!["demo".to_string(), "--repo".into(), dir.display().to_string()];
    if let Some(ca) = host_ca_bundle() {
        args.push("--ca-cert".into());
        args.push(ca.display().to_string());
    }
    let run = sandpen_with(tmp.path(), &[], args).await;
    assert_eq!(run.code, 0, "{}", run.dump());
    let report = run.report();
    let tasks = report["tasks"].as_array().expect("tasks");
    assert!(tasks.len() >= 3, "{report:#}");
    for t in tasks {
        let id = field(t, "id");
        let a = agent(t);
        eprintln!(
            "e2e demo {id}: {} in {:.1}s, {} turns, ${}, phase {}, {} commits",
            field(t, "status"),
            t["duration_s"].as_f64().unwrap_or(0.0),
            a["num_turns"],
            a["cost_usd"],
            t["last_phase"],
            t["commits"]
        );
        assert_eq!(field(t, "status"), "succeeded", "{t:#}\n{}", run.dump());
        assert!(a["num_turns"].as_u64().unwrap_or(0) >= 2, "{t:#}");
        assert!(a["cost_usd"].is_number(), "{t:#}");
        assert_eq!(t["last_phase"], 11, "{t:#}");
        let branch = field(t, "branch");
        assert!(!branch.is_empty(), "{t:#}");
        git(&dir, &["rev-parse", "--verify", &format!("refs/heads/{branch}")]);
    }
    eprintln!(
        "e2e demo: {} tasks, wall {:.1}s, process {:?}",
        tasks.len(),
        report["wall_s"].as_f64().unwrap_or(0.0),
        run.elapsed
    );
    assert_no_containers_left(field(&report, "run_id"));
}

/// A prompt of the largest default size (1 MiB) reaches the model whole: the prompt travels
/// from a read-only mounted file on the CLI's stdin, not through the argument list, where the
/// kernel limits one argument to 128 KiB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_mebibyte_prompt_reaches_the_model_whole() {
    use sha2::{Digest, Sha256};
    let id = "big";
    // 1 MiB exactly with the newline `repo_with` adds; a marker at each end.
    let mut prompt = String::from("BEGIN-OF-BIG-PROMPT\n");
    let mut n = 0;
    while prompt.len() < (1 << 20) - 64 {
        prompt.push_str(&format!(
            "line {n:06}: sandpen sends this prompt on standard input.\n"
        ));
        n += 1;
    }
    prompt.push_str("END-OF-BIG-PROMPT");
    let pad = (1 << 20) - 1 - prompt.len();
    prompt.insert_str(prompt.len() - "END-OF-BIG-PROMPT".len(), &".".repeat(pad));
    assert_eq!(prompt.len() + 1, 1 << 20);
    let script = Script::one(id, vec![Turn::text("Read it all.")]);
    let repo = repo_with(&[], &[(id, &prompt)]);
    let (run, recorded) = run_scripted(repo.path(), id, script).await;
    assert_eq!(run.code, 0, "{}", run.dump());
    let first = agent_requests(&recorded, id)
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("the model saw no request:\n{}", run.dump()));
    let digests = |t: &str| hex::encode(Sha256::digest(t.as_bytes()));
    let whole = [digests(&prompt), digests(&format!("{prompt}\n"))];
    eprintln!(
        "e2e big prompt: {} bytes sent; the first user message's text blocks: {:?}",
        prompt.len() + 1,
        first.first_user_texts.iter().map(|(_, n)| n).collect::<Vec<_>>()
    );
    assert!(
        first.first_user_texts.iter().any(|(d, _)| whole.contains(d)),
        "no text block of the first request is the whole prompt: {:?}",
        first.first_user_texts
    );
}

/// A budget below what the script costs: the gateway refuses the request after the one that
/// crossed it, and the task ends budget_exceeded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_over_its_budget_ends_budget_exceeded_and_sends_nothing_more() {
    let sample = demo::TASKS.iter().find(|t| t.id == "add-reverse").unwrap();
    let full = demo::script();
    let script = Script {
        tasks: [(sample.id.to_string(), full.tasks[sample.id].clone())].into(),
        rate_limit: None,
        overloaded: None,
    };
    let repo = repo_with(&[], &[(sample.id, sample.prompt)]);
    let server = start_server(script).await;
    let budget = 0.01;
    let run = run_agent(
        repo.path(),
        &base_url(&server),
        &["--max-cost", &budget.to_string()],
        &[&format!("tasks/{}.md", sample.id)],
    )
    .await;
    let recorded: Vec<Recorded> = server
        .recorded()
        .into_iter()
        .filter(|r| r.task == sample.id)
        .collect();
    server.stop().await;
    let report = run.report();
    let t = task(&report, sample.id);
    assert_eq!(field(t, "status"), "budget_exceeded", "{}", run.dump());
    assert_eq!(run.code, 1, "{}", run.dump());
    let g = &t["gateway"];
    assert_eq!(g["budget_exceeded"], true, "{g:#}");

    // The gateway's audit: the requests it sent on, in order, with their cost.
    let run_dir = runs_dir(repo.path()).join(report["run_id"].as_str().unwrap());
    let audit = std::fs::read_to_string(run_dir.join("egress.jsonl")).unwrap();
    let costs: Vec<f64> = audit
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|l| l["kind"] == "model" && l["task"] == sample.id && l["status"] == 200)
        .map(|l| l["cost_usd"].as_f64().unwrap())
        .collect();
    let n = costs.len();
    assert!(n >= 1, "{audit}");
    let before: f64 = costs[..n - 1].iter().sum();
    let total: f64 = costs.iter().sum();
    assert!(
        before < budget && total >= budget,
        "spent {before} then {total} against {budget}: {audit}"
    );
    assert_eq!(
        recorded.len(),
        n,
        "the server got exactly the requests the gateway let through"
    );
    assert!((g["cost_usd"].as_f64().unwrap() - total).abs() < 1e-9, "{g:#}");
    assert!(!audit.contains(E2E_KEY));
    assert_no_containers_left(report["run_id"].as_str().unwrap());
}

/// The model API rate-limits the run for a while (429 with `retry-after: 3`): through the
/// gateway every task waits the window out and succeeds, with fewer requests reaching the API
/// than when each CLI retries on its own (`--network bridge`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limited_run_resumes_with_fewer_upstream_requests_through_the_gateway() {
    let ids = ["add-slugify", "add-reverse", "fix-count"];
    let full = demo::script();
    let script = Script {
        tasks: ids
            .iter()
            .map(|id| (id.to_string(), full.tasks[*id].clone()))
            .collect(),
        rate_limit: Some(sandpen::model_server::RateLimit {
            for_ms: 8_000,
            retry_after_s: Some(3),
        }),
        overloaded: None,
    };
    let prompts: Vec<(&str, &str)> = ids
        .iter()
        .map(|id| {
            let t = demo::TASKS.iter().find(|t| t.id == *id).unwrap();
            (t.id, t.prompt)
        })
        .collect();
    let files: Vec<String> = ids.iter().map(|id| format!("tasks/{id}.md")).collect();
    let files: Vec<&str> = files.iter().map(String::as_str).collect();
    let mut limited = Vec::new();
    for network in ["gateway", "bridge"] {
        let repo = repo_with(&[], &prompts);
        let server = start_server(script.clone()).await;
        let run = run_agent(
            repo.path(),
            &base_url(&server),
            &["--network", network, "-j", "3"],
            &files,
        )
        .await;
        let recorded = server.recorded();
        server.stop().await;
        assert_eq!(run.code, 0, "{network}: {}", run.dump());
        let report = run.report();
        for id in ids {
            assert_eq!(
                field(task(&report, id), "status"),
                "succeeded",
                "{network}: {}",
                run.dump()
            );
        }
        let rejected = recorded.iter().filter(|r| r.answer.starts_with("429")).count();
        if network == "gateway" {
            let counted: u64 = ids
                .iter()
                .map(|id| task(&report, id)["gateway"]["upstream_429"].as_u64().unwrap())
                .sum();
            assert_eq!(
                counted as usize, rejected,
                "the report counts every 429: {report:#}"
            );
        }
        eprintln!(
            "rate limited, {network}: {rejected} requests answered 429, {} in all",
            recorded.len()
        );
        limited.push(rejected);
    }
    assert!(
        limited[0] < limited[1],
        "gateway {} vs bridge {} requests answered 429",
        limited[0],
        limited[1]
    );
}
