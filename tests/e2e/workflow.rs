//! Tasks through the WorkflowManager, as a user runs them: in parallel, with work committed,
//! with the repository's own definition or another agent's, and `sandpen demo`.

use super::*;

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
