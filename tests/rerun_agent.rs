//! Rerun and retries with the real Claude CLI in the agent image, against sandpen's scripted
//! model server. The agent's session carries over a rerun: a task that timed out in its third
//! turn is rerun, and resumed, the server's first request of the new attempt holds the earlier
//! turns; with `--fresh`, it holds the prompt alone. `--retries` runs again a task whose model
//! requests ran out of retries on 529 overloaded.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use common::agent::{agent_requests, repo_with};
use common::*;
use sandpen::model_server::{ModelServer, Recorded, Script, Turn};

const KEY: &str = "sk-sandpen-resume-not-a-real-key";
const TASK: &str = "slow";
const PROMPT: &str = "Write one.txt and two.txt, then run the long step.";

/// Turns 1 and 2 write a file each; turn 3 is `third` (a sleep past the timeout in the first
/// attempt, quick in the others); the next ends (a resumed session's first request holds
/// more assistant messages than the turns it had: the CLI closes the interrupted one).
fn script(third: &str) -> Script {
    Script::one(
        TASK,
        vec![
            Turn::bash("echo one > one.txt", "turn 1"),
            Turn::bash("echo two > two.txt", "turn 2"),
            Turn::bash(third, "turn 3"),
            Turn::text("Done."),
            Turn::text("Done."),
            Turn::text("Done."),
        ],
    )
}

/// Serves `script`, runs `sandpen ARGS` in `repo` against it; the exit code, the report, what
/// the server saw, and what sandpen said (its stdout last).
async fn sandpen_against(repo: &Path, script: Script, args: &[&str]) -> (i32, Value, Vec<Recorded>, String) {
    let ip = engine()
        .await
        .bridge_gateway()
        .await
        .expect("the bridge's gateway");
    let server = ModelServer::start(script, SocketAddr::new(ip, 0), None)
        .await
        .expect("starting the model server");
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    let mut cmd = sandpen();
    cmd.current_dir(repo)
        .env_remove("ANTHROPIC_AUTH_TOKEN")
        .env(
            "ANTHROPIC_BASE_URL",
            format!("http://{}/task/{{task}}", server.addr),
        )
        .env("ANTHROPIC_API_KEY", KEY)
        .args(args)
        .arg("--report")
        .arg(&report);
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.kill_on_drop(true);
    let started = Instant::now();
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .expect("sandpen within 2 minutes")
        .expect("running sandpen");
    let recorded = server.recorded();
    server.stop().await;
    let code = out.status.code().unwrap_or(-1);
    let said = dump(code, started.elapsed(), &out);
    let report = read_report(&report).unwrap_or_else(|e| panic!("no report ({e})\n{said}"));
    let log = report["tasks"][0]["log"].as_str().unwrap_or_default();
    let said = format!(
        "{said}\n--- the task's log\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
    (code, report, recorded, said)
}

/// The first request of the agent's own conversation.
fn first(recorded: &[Recorded]) -> Recorded {
    agent_requests(recorded, TASK)
        .into_iter()
        .next()
        .expect("a request of the agent")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_task_resumes_its_session_and_fresh_starts_over() {
    let image = tokio::task::spawn_blocking(|| image("agent")).await.unwrap();
    let repo = repo_with(&[], &[(TASK, PROMPT)]);
    let started = Instant::now();
    let run = ["run", "--image", &image, "--timeout", "15s", "tasks/slow.md"];
    let (code, report, seen, said) = sandpen_against(repo.path(), script("tail -f /dev/null"), &run).await;
    assert_eq!(code, 1, "{said}");
    let t = task(&report, TASK);
    assert_eq!(field(t, "status"), "timed_out", "{said}");
    let session = t["session"]["id"]
        .as_str()
        .expect("the session's id in the report")
        .to_string();
    let opening = first(&seen);
    let steps: Vec<usize> = agent_requests(&seen, TASK).iter().map(|r| r.step).collect();
    assert_eq!(steps, [0, 1, 2], "it timed out in its third turn");

    // The transcript stays with the run, without the key (it never entered the container).
    let runs = runs_dir(repo.path());
    let run_dir = runs.join(field(&report, "run_id"));
    let transcript = run_dir.join(format!("_sandpen/sessions/{TASK}/-workspace/{session}.jsonl"));
    let text = std::fs::read_to_string(&transcript).expect("the transcript kept with the run");
    assert!(
        text.contains("turn 2") && !text.contains(KEY),
        "{}",
        transcript.display()
    );

    // Resumed: the earlier turns reach the model in the new attempt's first request.
    let (code, report, seen, said) = sandpen_against(repo.path(), script("true"), &["rerun"]).await;
    assert_eq!(code, 0, "{said}");
    let t = task(&report, TASK);
    assert_eq!(field(t, "status"), "succeeded", "{said}");
    let resumed = first(&seen);
    assert!(
        resumed.step >= 2 && resumed.messages >= opening.messages + 4,
        "the first request of the resumed attempt: step {}, {} messages",
        resumed.step,
        resumed.messages
    );
    assert_eq!(
        resumed.first_user_texts, opening.first_user_texts,
        "the conversation began with the task's prompt"
    );
    let attempts = t["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[1]["session"]["resumed_from"], session.as_str(), "{t:#}");

    // --fresh: the task's prompt alone, from the first turn.
    let args = ["rerun", "--fresh", "--force", TASK];
    let (code, report, seen, said) = sandpen_against(repo.path(), script("true"), &args).await;
    assert_eq!(code, 0, "{said}");
    let fresh = first(&seen);
    assert_eq!(
        (fresh.step, fresh.messages),
        (0, opening.messages),
        "started over"
    );
    assert_eq!(fresh.first_user_texts, opening.first_user_texts);
    let attempts = task(&report, TASK)["attempts"].as_array().unwrap().clone();
    assert_eq!(attempts.len(), 3);
    assert!(
        attempts[2]["session"]["resumed_from"].is_null(),
        "{:#}",
        attempts[2]
    );
    eprintln!("resume: three sandpen processes in {:?}", started.elapsed());
}

/// The model API answers 529 until the CLI's retries (1, through the task's environment) run
/// out: the attempt fails as overloaded, and `--retries 2` runs it again, as attempt 2 of 3.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_overloaded_past_the_clis_retries_is_retried() {
    let image = tokio::task::spawn_blocking(|| image("agent")).await.unwrap();
    let repo = repo_with(
        &[(
            "tasks/busy.toml",
            "[[task]]\nid = \"busy\"\nprompt_text = \"Write done.txt.\"\n\
             env = { CLAUDE_CODE_MAX_RETRIES = \"1\" }\n",
        )],
        &[],
    );
    let script = Script {
        overloaded: Some(2),
        ..Script::one(
            "busy",
            vec![Turn::bash("echo done > done.txt", "write"), Turn::text("Done.")],
        )
    };
    // Bridge: the CLI meets the 529s itself (the gateway would hold and resend them first).
    let args = [
        "run",
        "--image",
        &image,
        "--network",
        "bridge",
        "--retries",
        "2",
        "--json",
        "tasks/busy.toml",
    ];
    let started = Instant::now();
    let (code, report, seen, said) = sandpen_against(repo.path(), script, &args).await;
    assert_eq!(code, 0, "{said}");
    let t = task(&report, "busy");
    let attempts = t["attempts"].as_array().unwrap();
    assert!(attempts.len() >= 2, "{t:#}");
    assert_eq!(attempts[0]["agent"]["api_error_status"], 529, "{:#}", attempts[0]);
    assert_eq!(field(attempts.last().unwrap(), "status"), "succeeded");
    // The retry resumed the session the overloaded attempt left.
    let first_session = attempts[0]["session"]["id"].as_str().expect("a session");
    assert_eq!(attempts[1]["session"]["resumed_from"], first_session, "{t:#}");
    let overloaded = seen.iter().filter(|r| r.answer.starts_with("529")).count();
    assert_eq!(overloaded, 2, "{said}");
    let retrying = said
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|e| e["event"] == "task_retrying")
        .unwrap_or_else(|| panic!("no task_retrying event: {said}"));
    assert_eq!(
        (retrying["attempt"].as_u64(), retrying["of"].as_u64()),
        (Some(2), Some(3))
    );
    eprintln!(
        "overloaded: {} attempts in {:?}",
        attempts.len(),
        started.elapsed()
    );
}
