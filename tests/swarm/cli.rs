//! One real task on a Swarm's worker node (issue 11): the real Claude Code CLI in the agent
//! image, pulled by its node from the registry by digest, through the WorkflowManager's eleven
//! phases, against sandpen's scripted model server at the address the nodes reach. The Swarm,
//! the registry and the server are the test's own; the agent image is built on the system
//! engine (the nodes have no way out to PyPI) and loaded into the manager, as a user who
//! builds where the network is would. In the default mode: the CLI reaches the model server
//! through its task's gateway, which holds the host's key; the task holds its token alone.

use crate::common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::agent::{agent_requests, assert_a_commit_per_phase, bundled_sentences, repo_with};
use common::swarm::{self, Swarm};
use common::uv_index::{self, Index, build_wheel, python_repo};
use common::{dump, field, git, read_report, sandpen, task};
use sandpen::demo;
use sandpen::model_server::{ModelServer, Script};

/// The host's key: the model server must get it, through the task's gateway.
const KEY: &str = "sk-sandpen-swarm-not-a-real-key";

/// As the model server records a key: the first 16 hex digits of its sha256.
fn key_digest(key: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(key.as_bytes()))[..16].to_string()
}

/// The run, the image's push and its pull by the worker included.
const RUN_LIMIT: Duration = Duration::from_secs(300);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_cli_task_goes_through_the_workflow_manager_on_a_worker_node() {
    if !swarm::wanted() {
        eprintln!("skipped: set SANDPEN_TEST_SWARM=1 (as root, with docker-registry installed)");
        return;
    }
    let sentences = bundled_sentences();
    let (cluster, agent) = tokio::task::spawn_blocking(|| {
        let agent = common::image("agent");
        let cluster = Swarm::start(1, 2);
        swarm::load_into(&agent, cluster.manager());
        (cluster, agent)
    })
    .await
    .unwrap();
    let worker = cluster.nodes[1].hostname.clone();

    let sample = demo::TASKS.iter().find(|t| t.id == "add-slugify").unwrap();
    let id = sample.id;
    let full = demo::script();
    let want = full.tasks[id].clone();
    let script = Script {
        tasks: [(id.to_string(), want.clone())].into_iter().collect(),
        rate_limit: None,
        overloaded: None,
    };
    let host: std::net::IpAddr = cluster.host_addr.parse().unwrap();
    let server = ModelServer::start(script, SocketAddr::new(host, 0), None)
        .await
        .expect("starting the model server where the nodes reach it");

    let repo = repo_with(&[], &[(id, sample.prompt)]);
    let p = repo.path();
    let base = git(p, &["rev-parse", "HEAD"]).trim().to_string();

    let report_path = p.join("report.json");
    let mut cmd = run_on(&cluster, p, &server);
    cmd.args(["--constraint", "node.role==worker", "--image", &agent])
        .arg("--report")
        .arg(&report_path)
        .arg(format!("tasks/{id}.md"));
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.kill_on_drop(true);
    let started = Instant::now();
    let out = tokio::time::timeout(RUN_LIMIT, cmd.output())
        .await
        .expect("the run ends within its limit")
        .unwrap();
    let recorded = server.recorded();
    server.stop().await;
    let code = out.status.code().unwrap_or(-1);
    let dump = dump(code, started.elapsed(), &out);
    assert_eq!(code, 0, "{dump}");

    let report = read_report(&report_path).unwrap_or_else(|e| panic!("{e}: {dump}"));
    let t = task(&report, id);
    assert_eq!(field(t, "status"), "succeeded", "{t:#}\n{dump}");
    assert_eq!(field(t, "node"), worker, "placed on the worker: {t:#}");
    let a = &t["agent"];
    assert_eq!(a["subtype"], "success", "{a:#}");
    assert_eq!(a["num_turns"], want.turns.len(), "{a:#}");
    // The WorkflowManager's progress, read from the state file that came back with the work.
    assert_eq!(t["last_phase"], 11, "{t:#}");
    assert_eq!(t["phases_completed"], 11, "{t:#}");
    assert!(t["peak_memory_bytes"].as_u64().unwrap_or(0) > 0, "{t:#}");

    // The work, as the same branch a local run makes: a commit per phase and the code.
    let run_id = field(&report, "run_id");
    let branch = field(t, "branch");
    assert_eq!(branch, format!("sandpen/{id}/{run_id}"), "{t:#}");
    assert_a_commit_per_phase(p, &base, branch);
    for (path, content) in [sample.code, sample.test] {
        assert_eq!(git(p, &["show", &format!("{branch}:{path}")]), content, "{path}");
    }
    assert_eq!(git(p, &["fsck", "--no-progress"]).trim(), "");

    // The model saw the WorkflowManager's instructions on every turn of the script.
    let requests = agent_requests(&recorded, id);
    let steps: BTreeSet<usize> = requests.iter().map(|r| r.step).collect();
    assert_eq!(steps, (0..want.turns.len()).collect::<BTreeSet<_>>(), "{dump}");
    for r in &requests {
        for s in sentences {
            assert!(
                r.system.contains(s),
                "step {}: no {s:?} in the system prompt",
                r.step
            );
        }
        assert!(r.api_key_present, "step {}: no credentials sent", r.step);
        // Through the gateway: the host's key arrives upstream, swapped in for the token.
        assert_eq!(
            r.api_key_sha256.as_deref(),
            Some(&key_digest(KEY)[..]),
            "step {}: the upstream did not get the host's key",
            r.step
        );
    }
    // The gateway metered the task's model requests, as locally.
    let g = &t["gateway"];
    let metered = g["requests"].as_u64().unwrap_or(0) as usize;
    assert!(metered >= requests.len(), "{t:#}");
    eprintln!(
        "swarm e2e {id}: on {worker}, {} turns, {} requests, run {:.1}s (task {:.1}s, its environment {} {:.1}s), peak memory {} MiB",
        a["num_turns"],
        requests.len(),
        started.elapsed().as_secs_f64(),
        t["duration_s"].as_f64().unwrap_or(0.0),
        report["environment"]["state"],
        report["environment"]["duration_s"].as_f64().unwrap_or(0.0),
        t["peak_memory_bytes"].as_u64().unwrap_or(0) >> 20,
    );
    cluster.assert_clean("after the run");
    warm_environment_as_a_layer(&cluster, &agent).await;
}

/// `sandpen run --backend swarm` in `repo`, on the test's Swarm (its registry, the host's
/// address), with the scripted model server as the CLI's API and the test's key.
fn run_on(cluster: &Swarm, repo: &std::path::Path, server: &ModelServer) -> std::process::Command {
    let mut cmd = sandpen();
    cmd.current_dir(repo)
        .env("DOCKER_HOST", cluster.manager())
        .env("ANTHROPIC_API_KEY", KEY)
        .env(
            "ANTHROPIC_BASE_URL",
            format!("http://{}/task/{{task}}", server.addr),
        )
        .env_remove("ANTHROPIC_AUTH_TOKEN")
        .args(["run", "--backend", "swarm"])
        .args([
            "--registry",
            &cluster.registry,
            "--advertise-addr",
            &cluster.host_addr,
        ]);
    cmd
}

/// Runs the tasks `ids` on the Swarm in `repo`; the report, the run's directory and the exit
/// code.
async fn swarm_run(
    cluster: &Swarm,
    agent: &str,
    repo: &std::path::Path,
    server: &ModelServer,
    ids: &[&str],
    allow: &str,
) -> (serde_json::Value, std::path::PathBuf, i32) {
    let toml: String = ids
        .iter()
        .map(|id| format!("[[task]]\nid = \"{id}\"\nprompt_text = \"check\"\n\n"))
        .collect();
    let tf = common::task_file(&toml);
    let mut cmd = run_on(cluster, repo, server);
    cmd.args(["-j", "2", "--allow-host", allow])
        .args(["--image", agent, "--report"])
        .arg(&tf.report)
        .arg(&tf.path);
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.kill_on_drop(true);
    let started = Instant::now();
    let out = tokio::time::timeout(RUN_LIMIT, cmd.output())
        .await
        .expect("the run ends within its limit")
        .unwrap();
    let code = out.status.code().unwrap_or(-1);
    let dump = dump(code, started.elapsed(), &out);
    let report = read_report(&tf.report).unwrap_or_else(|e| panic!("{e}: {dump}"));
    eprintln!(
        "warm swarm run: exit {code} in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    assert!(
        code == 0 || report["environment"]["state"] == "failed",
        "{report:#}\n{dump}"
    );
    let dir = common::runs_dir(repo).join(field(&report, "run_id"));
    (report, dir, code)
}

/// Issue 26 on the Swarm: the environment is prepared once on the manager, through a gateway
/// of its own, and reaches the tasks as an image layer pulled by digest; they import from it
/// (no index request of theirs), cannot write it, and a second run prepares nothing.
async fn warm_environment_as_a_layer(cluster: &Swarm, agent: &str) {
    let t0 = Instant::now();
    let host: std::net::IpAddr = cluster.host_addr.parse().unwrap();
    let idx_dir = tempfile::tempdir().unwrap();
    build_wheel(idx_dir.path(), "tinya");
    let index = Index::start(idx_dir.path(), host);
    let repo = python_repo(agent, &index.host);
    let before = index.fetched("tinya");
    let check = "python -c 'import tinya; print(\"IMPORTED\", tinya.VALUE)'; \
                 touch /run/sandpen/env/.venv/poison 2>/dev/null || echo SHARED-READ-ONLY; \
                 (echo '#' >> .venv/pyvenv.cfg) 2>/dev/null || echo LINK-READ-ONLY; \
                 echo OWNER=$(stat -c %u /run/sandpen/env/.venv/pyvenv.cfg)";
    let server = ModelServer::start(
        uv_index::script(&[("a", check), ("b", check)]),
        SocketAddr::new(host, 0),
        None,
    )
    .await
    .unwrap();
    let (r1, dir1, _) = swarm_run(cluster, agent, repo.path(), &server, &["a", "b"], &index.host).await;
    let env = &r1["environment"];
    assert_eq!(env["state"], "prepared", "{r1:#}");
    assert!(
        env["bytes_fetched"].as_u64().unwrap_or(0) > 0,
        "through its gateway: {env}"
    );
    let image = env["image"].as_str().unwrap_or_default().to_string();
    assert!(
        image.starts_with(&format!("{}/sandpen-env@sha256:", cluster.registry)),
        "by digest from the registry: {env}"
    );
    let audit = |dir: &std::path::Path, file: &str, t: &str| {
        let text = std::fs::read_to_string(dir.join(file)).unwrap_or_default();
        let needle = format!("\"task\":\"{t}\"");
        text.lines()
            .filter(|l| l.contains("\"kind\":\"egress\"") && l.contains(&needle))
            .count()
    };
    assert!(
        audit(&dir1, "env-egress.jsonl", "env:prepare") >= 1,
        "the preparation's requests are audited"
    );
    for t in ["a", "b"] {
        let task = task(&r1, t);
        assert_eq!(
            field(task, "status"),
            "succeeded",
            "{t}: {}",
            common::log_of(&r1, t)
        );
        assert_eq!(task["environment"], env["volume"], "{t} started from it");
        let log = common::log_of(&r1, t);
        for said in [
            "IMPORTED tinya-ok",
            "SHARED-READ-ONLY",
            "LINK-READ-ONLY",
            "OWNER=0",
        ] {
            assert!(log.contains(said), "{t}: no {said}: {log}");
        }
        assert_eq!(audit(&dir1, "egress.jsonl", t), 0, "{t} fetched nothing");
    }
    assert_eq!(
        index.fetched("tinya"),
        before + 1,
        "the preparation's one fetch, no task's"
    );
    eprintln!(
        "warm run 1: prepared in {:.1}s (layer built and pushed included), {} fetched; tasks on {} and {}",
        env["duration_s"].as_f64().unwrap_or(0.0),
        env["bytes_fetched"],
        task(&r1, "a")["node"],
        task(&r1, "b")["node"]
    );

    // Run 2, the same lock: the layer is kept, nothing prepared, fetched or built.
    let (r2, dir2, _) = swarm_run(cluster, agent, repo.path(), &server, &["a"], &index.host).await;
    assert_eq!(r2["environment"]["state"], "reused", "{r2:#}");
    assert_eq!(r2["environment"]["bytes_fetched"], 0);
    assert_eq!(r2["environment"]["image"], image.as_str(), "the same layer");
    assert!(
        !dir2.join("env-egress.jsonl").exists(),
        "no preparation, no gateway for it"
    );
    assert!(common::log_of(&r2, "a").contains("IMPORTED tinya-ok"), "{r2:#}");
    assert_eq!(index.fetched("tinya"), before + 1, "nothing fetched");
    cluster.assert_clean("after the warm runs");

    // `doctor` lists the kept layer with its size; `prune --envs` removes it with the volume.
    let said = common::run_ok(
        sandpen()
            .env("DOCKER_HOST", cluster.manager())
            .current_dir(repo.path())
            .arg("doctor"),
    );
    assert!(
        said.lines()
            .any(|l| l.starts_with("environment image sandpen-env:") && l.contains("B")),
        "{said}"
    );
    let pruned = common::run_ok(
        sandpen()
            .env("DOCKER_HOST", cluster.manager())
            .current_dir(repo.path())
            .args(["prune", "--envs"]),
    );
    assert!(
        pruned.contains("removed environment image sandpen-env:"),
        "{pruned}"
    );
    let ls = |what: &[&str]| {
        let o = std::process::Command::new("docker")
            .env("DOCKER_HOST", cluster.manager())
            .args(what)
            .output()
            .unwrap();
        common::stdout(&o)
    };
    assert!(
        ls(&["image", "ls", "-q", "sandpen-env"]).trim().is_empty(),
        "{pruned}"
    );

    // A bad lock: the preparation fails once, its tasks fail without a service, nothing kept.
    let bad = common::make_repo();
    std::fs::write(
        bad.path().join("pyproject.toml"),
        uv_index::pyproject(&index.host),
    )
    .unwrap();
    std::fs::write(bad.path().join("uv.lock"), "this is not a lock\n").unwrap();
    git(bad.path(), &["add", "-A"]);
    git(bad.path(), &["commit", "--quiet", "-m", "bad lock"]);
    let (r3, _, code) = swarm_run(cluster, agent, bad.path(), &server, &["a", "b"], &index.host).await;
    server.stop().await;
    let env = &r3["environment"];
    assert_eq!((code, &env["state"]), (1, &"failed".into()), "{r3:#}");
    assert!(
        env["output"].as_str().unwrap_or_default().contains("uv.lock"),
        "{env}"
    );
    assert!(env["image"].is_null(), "{env}");
    for t in ["a", "b"] {
        assert_eq!(field(task(&r3, t), "status"), "failed");
        assert!(task(&r3, t)["container_id"].is_null(), "{t} did not run");
    }
    let volume = env["volume"].as_str().unwrap();
    assert!(
        !ls(&["volume", "ls", "-q"]).contains(volume),
        "a failed preparation keeps no volume"
    );
    assert!(
        ls(&["image", "ls", "-q", "sandpen-env"]).trim().is_empty(),
        "and no layer"
    );
    cluster.assert_clean("after the failed preparation");
    eprintln!(
        "warm environment on the Swarm: {:.1}s",
        t0.elapsed().as_secs_f64()
    );
}
