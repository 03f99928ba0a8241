//! What ends a task other than its work: an unreachable model until the timeout, error
//! results, a prompt at the size limit, a budget, a rate-limited API.

use super::*;

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
