//! `sandpen ps` and `sandpen logs`: runs listed with their tasks' states, a task's session as
//! a transcript, its raw bytes, following a live task to its end, and bad input. Real engine,
//! probe image (whose tasks print stream-json lines of their own, as the CLI would).

mod common;

use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// A probe script line that prints one JSON line as the CLI would.
fn json_line(v: serde_json::Value) -> String {
    // Single quotes around the JSON for sh; the JSON here has none of its own.
    format!("printf '%s\\n' '{v}'\n")
}

/// A session in the CLI's stream-json: text, a tool call, its result, an API retry.
fn session_script() -> String {
    [
        json_line(serde_json::json!({"type":"system","subtype":"api_retry","attempt":1,"max_retries":10,"retry_delay_ms":500,"error":"overloaded"})),
        json_line(serde_json::json!({"type":"assistant","message":{"id":"m1","content":[
            {"type":"text","text":"Looking around."},
            {"type":"tool_use","id":"tu1","name":"Bash","input":{"command":"ls -la"}}]},"parent_tool_use_id":null})),
        json_line(serde_json::json!({"type":"user","message":{"content":[
            {"type":"tool_result","tool_use_id":"tu1","content":"README"}]},"parent_tool_use_id":null})),
        // A moment before the result line: the two streams are two pipes, and the probe now
        // prints its result line within a millisecond of the prompt's end.
        "echo to-stderr >&2\nsleep 0.3\n".to_string(),
    ]
    .concat()
}

/// `sandpen <args> --repo <repo>`.
fn sandpen_in(repo: &Path, args: &[&str]) -> Output {
    output(sandpen().args(args).arg("--repo").arg(repo))
}

fn json_of(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "exit {:?}: {}", out.status, stderr(out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout(out)))
}

#[test]
fn a_finished_run_is_listed_with_its_counts_and_its_tasks_fields() {
    let repo = make_repo();
    let toml = "[[task]]\nid = \"ok\"\nprompt_text = '''\nmkdir -p .github/workflow-states/ok\n\
                printf '{\"phase\": 5}' > .github/workflow-states/ok/state.json\n'''\n\n\
                [[task]]\nid = \"bad\"\nprompt_text = \"exit 3\"\n\n\
                [[task]]\nid = \"after-bad\"\ndepends_on = [\"bad\"]\nprompt_text = \"true\"\n";
    let run = run_tasks(repo.path(), toml, &[]);
    assert_eq!(run.code, 1, "{}", run.dump());
    let run_id = run.report()["run_id"].as_str().unwrap().to_string();

    let runs = json_of(&sandpen_in(repo.path(), &["ps", "--json"]));
    let runs = runs.as_array().expect("a list of runs");
    assert_eq!(runs.len(), 1, "{runs:#?}");
    let r = &runs[0];
    assert_eq!(r["run_id"], run_id.as_str());
    assert_eq!(r["task_count"], 3);
    assert_eq!(
        r["states"],
        serde_json::json!({"succeeded": 1, "failed": 1, "skipped": 1}),
        "{r:#}"
    );
    assert_eq!(
        (r["complete"].as_bool(), r["owner_alive"].as_bool()),
        (Some(true), Some(false))
    );
    assert_eq!(r["owner"], "gone");
    assert!(r["started_at"].as_str().is_some_and(|s| !s.is_empty()), "{r:#}");

    let table = sandpen_in(repo.path(), &["ps"]);
    assert!(table.status.success(), "{}", stderr(&table));
    let text = stdout(&table);
    assert!(
        text.contains(&run_id) && text.contains("1 failed, 1 skipped, 1 succeeded"),
        "{text}"
    );
    // A run that ended normally is finished, not a run whose owner is gone.
    assert!(text.contains("finished") && !text.contains("gone"), "{text}");

    let view = json_of(&sandpen_in(repo.path(), &["ps", &run_id, "--json"]));
    assert_eq!(view["run_id"], run_id.as_str());
    let tasks = view["tasks"].as_array().expect("tasks");
    let ids: Vec<&str> = tasks.iter().map(|t| t["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["ok", "bad", "after-bad"]);
    let of = |id: &str| tasks.iter().find(|t| t["id"] == id).unwrap();
    for key in [
        "state",
        "elapsed_s",
        "cpu_percent",
        "memory_bytes",
        "turns",
        "phase",
        "phase_name",
    ] {
        assert!(of("ok").get(key).is_some(), "{key} missing: {view:#}");
    }
    assert_eq!(of("ok")["state"], "succeeded");
    assert_eq!(of("ok")["turns"], 1, "the probe's result says 1 turn");
    assert_eq!(of("ok")["phase"], 5, "{view:#}");
    assert_eq!(of("ok")["phase_name"], "implementation");
    assert!(
        of("ok")["elapsed_s"].as_f64().is_some_and(|s| s > 0.0),
        "{view:#}"
    );
    assert!(of("ok")["container_id"].as_str().is_some_and(|s| s.len() >= 12));
    assert_eq!(of("bad")["state"], "failed");
    assert_eq!(of("after-bad")["state"], "skipped");
    assert!(
        of("after-bad")["message"]
            .as_str()
            .is_some_and(|m| m.contains("bad")),
        "{view:#}"
    );

    // Bad input: exit 2, the problem named, the known names listed.
    let bad = sandpen_in(repo.path(), &["logs", "no-such-run", "ok"]);
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
    let e = stderr(&bad);
    assert!(
        e.contains("no run no-such-run") && e.contains(&run_id) && e.contains("fix:"),
        "{e}"
    );
    let bad = sandpen_in(repo.path(), &["logs", "nope"]);
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
    let e = stderr(&bad);
    assert!(
        e.contains("has no task nope") && e.contains("ok, bad, after-bad"),
        "{e}"
    );
    let bad = sandpen_in(repo.path(), &["ps", "no-such-run"]);
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
    assert!(stderr(&bad).contains("no run no-such-run"), "{}", stderr(&bad));
    let empty = make_repo();
    let bad = sandpen_in(empty.path(), &["logs", "ok"]);
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
    assert!(stderr(&bad).contains("no runs in"), "{}", stderr(&bad));

    // A run is named by a unique end of its id too; `report` takes the latest by default.
    let suffix = &run_id[run_id.len() - 4..];
    let by_suffix = json_of(&sandpen_in(repo.path(), &["ps", suffix, "--json"]));
    assert_eq!(by_suffix["run_id"], run_id.as_str());
    let page = tempfile::tempdir().unwrap();
    let html = page.path().join("r.html");
    let out = sandpen_in(repo.path(), &["report", "--html", html.to_str().unwrap()]);
    assert!(out.status.success() && html.is_file(), "{}", stderr(&out));

    // A task of an older run, asked of the latest: the run that has it is named.
    let second = run_tasks(
        repo.path(),
        "[[task]]\nid = \"other\"\nprompt_text = \"true\"\n",
        &[],
    );
    assert_eq!(second.code, 0, "{}", second.dump());
    let bad = sandpen_in(repo.path(), &["logs", "bad"]);
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
    let e = stderr(&bad);
    assert!(
        e.contains("has no task bad") && e.contains(&format!("it is a task of run {run_id}")),
        "{e}"
    );
}

#[test]
fn logs_renders_the_session_and_raw_and_stderr_are_the_files_bytes() {
    let repo = make_repo();
    let toml = format!(
        "[[task]]\nid = \"talk\"\nprompt_text = '''\n{}'''\n",
        session_script()
    );
    let run = run_tasks(repo.path(), &toml, &[]);
    assert_eq!(run.code, 0, "{}", run.dump());
    let report = run.report();
    let t = task(&report, "talk");

    // The latest run by default.
    let out = sandpen_in(repo.path(), &["logs", "talk"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for want in [
        "prompt:\n    printf ",
        "session: model probe, Claude Code 0.0.0-probe, in /workspace\n",
        "api retry 1/10 after 0.5s: overloaded\n",
        "agent:\n    Looking around.\n",
        "tool Bash: ls -la\n",
        "  Bash result: README\n",
        "result: success, 1 turn, $0.0000",
        "    probe script exited with code 0\n",
    ] {
        assert!(text.contains(want), "{want:?} not in:\n{text}");
    }
    // Its stderr where it came, before the result line (the two streams are two pipes: lines
    // written a moment apart may arrive in either order), apart from the tool results;
    // `--stdout` leaves it out.
    let at = text.find("stderr:\n    to-stderr\n");
    assert!(
        !text.contains("| to-stderr") && at.is_some_and(|at| at < text.find("result: success").unwrap()),
        "stderr interleaved:\n{text}"
    );
    assert!(text.ends_with("sandpen: task talk succeeded\n"), "{text}");
    let only = stdout(&sandpen_in(repo.path(), &["logs", "talk", "--stdout"]));
    assert!(!only.contains("stderr:\n    to-stderr"), "{only}");

    let run_id = report["run_id"].as_str().unwrap();
    let raw = sandpen_in(repo.path(), &["logs", run_id, "talk", "--raw"]);
    assert!(raw.status.success(), "{}", stderr(&raw));
    let file = std::fs::read(field(t, "log")).unwrap();
    assert!(!file.is_empty());
    assert!(raw.stdout == file, "--raw differs from {}", field(t, "log"));

    let err = sandpen_in(repo.path(), &["logs", run_id, "talk", "--stderr"]);
    assert!(err.status.success(), "{}", stderr(&err));
    assert_eq!(err.stdout, std::fs::read(field(t, "stderr_log")).unwrap());
    assert_eq!(stdout(&err), "to-stderr\n");
}

#[test]
fn logs_follow_reads_a_live_task_to_its_end_and_ps_shows_it_running() {
    let repo = make_repo();
    let toml = format!(
        "[[task]]\nid = \"slow\"\nprompt_text = '''\nmkdir -p .github/workflow-states/slow\n\
         printf '{{\"phase\": 2}}' > .github/workflow-states/slow/state.json\n{}sleep 8\necho finished-marker\n'''\n",
        json_line(
            serde_json::json!({"type":"assistant","message":{"id":"m1","content":[{"type":"text","text":"Working on it."}]}})
        )
    );
    let mut bg = spawn_run(repo.path(), &toml, &[]);
    // Running: its log has the agent's first line.
    let log = wait_for(Duration::from_secs(60), || {
        let runs = runs_dir(repo.path());
        let dir = std::fs::read_dir(runs).ok()?.flatten().next()?.path();
        let log = dir.join("slow.log");
        std::fs::read_to_string(&log)
            .ok()?
            .contains("Working on it.")
            .then_some(log)
    })
    .unwrap_or_else(|| panic!("the task never started:\n{}", bg.stderr()));
    let run_id = log
        .parent()
        .unwrap()
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();

    let view = json_of(&sandpen_in(repo.path(), &["ps", &run_id, "--json"]));
    let slow = &view["tasks"][0];
    assert_eq!(view["owner_alive"], true, "{view:#}");
    assert_eq!(slow["state"], "running", "{view:#}");
    assert_eq!(slow["turns"], 1, "{view:#}");
    assert_eq!(slow["phase"], 2, "{view:#}");
    assert!(slow["memory_bytes"].as_u64().is_some_and(|m| m > 0), "{view:#}");
    assert!(slow["elapsed_s"].as_f64().is_some_and(|s| s > 0.0), "{view:#}");
    let listed = json_of(&sandpen_in(repo.path(), &["ps", "--json"]));
    assert_eq!(
        listed[0]["states"],
        serde_json::json!({"running": 1}),
        "{listed:#}"
    );

    // The follow starts while the task still sleeps: what it prints after that, it waited for.
    let before = std::fs::read_to_string(&log).unwrap();
    assert!(
        !before.contains("finished-marker"),
        "the task ended too soon for this test"
    );
    let start = Instant::now();
    let mut follow = sandpen()
        .args(["logs", "-f", "slow", "--repo"])
        .arg(repo.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting sandpen logs -f");
    let ended = wait_for(Duration::from_secs(60), || follow.try_wait().unwrap());
    if ended.is_none() {
        let _ = follow.kill();
    }
    let out = follow.wait_with_output().unwrap();
    let took = start.elapsed();
    assert!(
        ended.is_some(),
        "logs -f did not end with the task:\n{}",
        stdout(&out)
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("agent:\n    Working on it.\n"), "{text}");
    assert!(
        text.contains("| finished-marker\nresult: success, 1 turn"),
        "{text}"
    );
    // It waited for what the task wrote after its sleep, and stopped at the result line.
    assert!(
        took > Duration::from_secs(1),
        "it ended after {took:?}: before the task did?"
    );
    let status = bg.wait_exit(Duration::from_secs(60)).expect("the run ends");
    assert_eq!(status.code(), Some(0), "{}", bg.stderr());
}
