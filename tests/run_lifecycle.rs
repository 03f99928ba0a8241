//! `sandpen run` end to end on the real engine with the probe image: statuses, exit codes,
//! parallelism, result branches, salvage, dependencies and fail-fast.

mod common;

use std::sync::Mutex;

use common::*;

/// Tests that measure wall time run one at a time, so that they do not slow each other down
/// on a small machine.
static TIMED: Mutex<()> = Mutex::new(());

fn timed() -> std::sync::MutexGuard<'static, ()> {
    TIMED.lock().unwrap_or_else(|e| e.into_inner())
}

/// [started_at, finished_at] of every task, in seconds since the epoch.
fn intervals(report: &serde_json::Value) -> Vec<(String, f64, f64)> {
    common::intervals(report, "started_at", "finished_at")
}

#[test]
fn acceptance_two_commits_an_oom_and_a_failure_in_parallel() {
    let _t = timed();
    let repo = make_repo();
    let run = run_tasks(
        repo.path(),
        r#"
[defaults]
memory = "256m"
timeout = "1m"

[[task]]
id = "a"
prompt_text = "sleep 4; echo a > a.txt; git add a.txt; git commit -qm 'add a'"

[[task]]
id = "b"
prompt_text = "sleep 4; echo b > b.txt; git add b.txt; git commit -qm 'add b'"

[[task]]
id = "hog"
memory = "96m"
prompt_text = "head -c 400000000 /dev/zero | tail"

[[task]]
id = "bad"
prompt_text = "exit 3"
"#,
        &["-j", "4"],
    );
    assert_eq!(run.code, 1, "some tasks did not succeed: {}", run.dump());
    let report = run.report();
    let run_id = field(&report, "run_id").to_string();
    assert!(!run_id.is_empty());

    for (id, file) in [("a", "a.txt"), ("b", "b.txt")] {
        let t = task(&report, id);
        assert_eq!(field(t, "status"), "succeeded", "{t:#}");
        assert_eq!(t["exit_code"], 0, "{t:#}");
        assert_eq!(t["commits"], 1, "{t:#}");
        assert_eq!(t["salvaged"], false, "{t:#}");
        let branch = field(t, "branch");
        assert_eq!(branch, format!("sandpen/{id}/{run_id}"));
        let content = git(repo.path(), &["show", &format!("{branch}:{file}")]);
        assert_eq!(content, format!("{id}\n"), "{file} on {branch}");
        let subject = git(repo.path(), &["log", "-1", "--format=%s", branch]);
        assert_eq!(subject.trim(), format!("add {id}"));
    }
    let hog = task(&report, "hog");
    assert_eq!(field(hog, "status"), "oom_killed", "{hog:#}");
    assert_eq!(hog["limits"]["memory_bytes"], 96 * 1024 * 1024);
    let bad = task(&report, "bad");
    assert_eq!(field(bad, "status"), "failed", "{bad:#}");
    assert_eq!(bad["exit_code"], 3, "{bad:#}");
    assert!(bad["branch"].is_null(), "no work, no branch: {bad:#}");

    let wall = report["wall_s"].as_f64().unwrap();
    let sum: f64 = report["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["duration_s"].as_f64().unwrap())
        .sum();
    eprintln!(
        "acceptance: wall {wall:.2}s, sum of durations {sum:.2}s, process {:?}",
        run.elapsed
    );
    assert!(sum > 8.0, "two tasks slept 4 s each: sum {sum}");
    // Parallel by the report's own intervals, not by a wall-clock bound a loaded machine breaks.
    let iv = intervals(&report);
    assert!(
        max_overlap(&iv) >= 2,
        "tasks ran in parallel: {iv:?} (wall {wall}s)"
    );

    let left = containers(&format!("label=sandpen.run={run_id}"));
    assert!(left.is_empty(), "containers left behind: {left:?}");

    // The report in the run directory is the same as the --report copy.
    let in_repo = read_report(&runs_dir(repo.path()).join(&run_id).join("report.json")).unwrap();
    assert_eq!(in_repo, report);
}

#[test]
fn four_tasks_at_four_jobs_overlap() {
    let _t = timed();
    let repo = make_repo();
    let toml: String = (1..=4)
        .map(|i| format!("[[task]]\nid = \"s{i}\"\nprompt_text = \"sleep 3\"\ntimeout = \"1m\"\n\n"))
        .collect();
    let run = run_tasks(repo.path(), &toml, &["-j", "4"]);
    assert_eq!(run.code, 0, "{}", run.dump());
    let report = run.report();
    let iv = intervals(&report);
    let wall = report["wall_s"].as_f64().unwrap();
    let latest_start = iv.iter().map(|i| i.1).fold(f64::MIN, f64::max);
    let earliest_end = iv.iter().map(|i| i.2).fold(f64::MAX, f64::min);
    eprintln!(
        "-j 4: wall {wall:.2}s, latest start {:.2}s before the earliest end",
        earliest_end - latest_start
    );
    assert!(latest_start < earliest_end, "all four ran at one instant: {iv:?}");
    assert_eq!(max_overlap(&iv), 4);
}

#[test]
fn jobs_limit_two_never_runs_more_than_two_at_once() {
    let _t = timed();
    let repo = make_repo();
    let toml: String = (1..=4)
        .map(|i| format!("[[task]]\nid = \"s{i}\"\nprompt_text = \"sleep 3\"\ntimeout = \"1m\"\n\n"))
        .collect();
    let run = run_tasks(repo.path(), &toml, &["-j", "2"]);
    assert_eq!(run.code, 0, "{}", run.dump());
    let report = run.report();
    let iv = intervals(&report);
    let wall = report["wall_s"].as_f64().unwrap();
    let max = max_overlap(&iv);
    eprintln!("-j 2: wall {wall:.2}s, at most {max} at once: {iv:?}");
    assert_eq!(max, 2, "-j 2 runs two at a time, no more: {iv:?}");
    assert!(wall >= 6.0, "two rounds of sleep 3 take 6 s at least: {wall}s");
}

#[test]
fn running_the_same_tasks_twice_keeps_both_results() {
    let repo = make_repo();
    let toml = r#"
[[task]]
id = "note"
timeout = "1m"
prompt_text = "date +%s%N > note.txt; git add note.txt; git commit -qm note"
"#;
    let first = run_tasks(repo.path(), toml, &[]);
    assert_eq!(first.code, 0, "{}", first.dump());
    let r1 = first.report();
    let b1 = field(task(&r1, "note"), "branch").to_string();
    let head1 = git(repo.path(), &["rev-parse", &b1]);
    let note1 = git(repo.path(), &["show", &format!("{b1}:note.txt")]);

    let second = run_tasks(repo.path(), toml, &[]);
    assert_eq!(second.code, 0, "{}", second.dump());
    let r2 = second.report();
    let b2 = field(task(&r2, "note"), "branch").to_string();
    assert_ne!(r1["run_id"], r2["run_id"], "each run has its own id");
    assert_ne!(b1, b2, "each run has its own branch");

    let branches = git(repo.path(), &["branch", "--list", "sandpen/note/*"]);
    assert!(branches.contains(&b1) && branches.contains(&b2), "{branches}");
    assert_eq!(
        git(repo.path(), &["rev-parse", &b1]),
        head1,
        "the first run's branch is unchanged"
    );
    assert_eq!(git(repo.path(), &["show", &format!("{b1}:note.txt")]), note1);
    let note2 = git(repo.path(), &["show", &format!("{b2}:note.txt")]);
    assert_ne!(note1, note2, "the second run did its own work");
}

#[test]
fn uncommitted_work_is_salvaged_and_the_users_tree_is_untouched() {
    let repo = make_repo();
    let p = repo.path();
    // Some state of the user's own that must survive: an uncommitted edit and an untracked file.
    std::fs::write(p.join("README"), "edited by the user\n").unwrap();
    std::fs::write(p.join("mine.txt"), "untracked\n").unwrap();
    let status_before = git(p, &["status", "--porcelain", "--untracked-files=all"]);
    let head_before = git(p, &["rev-parse", "HEAD"]);
    let branch_before = git(p, &["symbolic-ref", "HEAD"]);

    let run = run_tasks(
        p,
        r#"
[[task]]
id = "lazy"
timeout = "1m"
prompt_text = "mkdir -p src; echo 'work in progress' > src/wip.txt; echo changed > README"
"#,
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.dump());
    let report = run.report();
    let t = task(&report, "lazy");
    assert_eq!(field(t, "status"), "succeeded", "{t:#}");
    assert_eq!(t["salvaged"], true, "{t:#}");
    assert_eq!(t["commits"], 1, "{t:#}");
    let branch = field(t, "branch");
    assert!(!branch.is_empty(), "{t:#}");
    assert_eq!(
        git(p, &["show", &format!("{branch}:src/wip.txt")]),
        "work in progress\n"
    );
    assert_eq!(git(p, &["show", &format!("{branch}:README")]), "changed\n");
    let message = git(p, &["log", "-1", "--format=%B", branch]);
    assert!(message.contains("Sandpen-Salvaged: true"), "{message}");
    assert_eq!(
        git(p, &["rev-parse", &format!("{branch}~1")]),
        head_before,
        "the salvage commit sits on the base"
    );

    assert_eq!(
        git(p, &["status", "--porcelain", "--untracked-files=all"]),
        status_before,
        "the user's working tree is as it was (the runs are not in it)"
    );
    assert_eq!(git(p, &["rev-parse", "HEAD"]), head_before);
    assert_eq!(git(p, &["symbolic-ref", "HEAD"]), branch_before);
    assert_eq!(
        std::fs::read_to_string(p.join("README")).unwrap(),
        "edited by the user\n"
    );
    assert!(runs_dir(p).is_dir());
    assert!(
        !p.join(".sandpen").exists(),
        "nothing of sandpen's in the working tree"
    );
    let ignored = git(p, &["status", "--porcelain", "--ignored"]);
    assert!(!ignored.lines().any(|l| l.contains("sandpen")), "{ignored}");
}

#[test]
fn a_failed_dependency_skips_its_dependents_but_not_the_others() {
    let repo = make_repo();
    let run = run_tasks(
        repo.path(),
        r#"
[defaults]
timeout = "1m"

[[task]]
id = "b"
depends_on = ["a"]
prompt_text = "echo b > b.txt"

[[task]]
id = "a"
prompt_text = "exit 1"

[[task]]
id = "c"
prompt_text = "echo c > c.txt; git add c.txt; git commit -qm c"

[[task]]
id = "d"
depends_on = ["b"]
prompt_text = "echo d"
"#,
        &[],
    );
    assert_eq!(run.code, 1, "{}", run.dump());
    let report = run.report();
    let a = task(&report, "a");
    assert_eq!(field(a, "status"), "failed", "{a:#}");
    assert_eq!(a["exit_code"], 1);
    for id in ["b", "d"] {
        let t = task(&report, id);
        assert_eq!(field(t, "status"), "skipped", "{t:#}");
        assert!(t["container_id"].is_null(), "a skipped task never ran: {t:#}");
        assert!(t["started_at"].is_null(), "{t:#}");
    }
    assert!(
        field(task(&report, "b"), "message").contains('a'),
        "says which dependency failed"
    );
    let c = task(&report, "c");
    assert_eq!(field(c, "status"), "succeeded", "{c:#}");
    assert!(!field(c, "branch").is_empty());
}

#[test]
fn fail_fast_cancels_the_sleeper_quickly() {
    let repo = make_repo();
    let run = run_tasks(
        repo.path(),
        r#"
[defaults]
timeout = "2m"

[[task]]
id = "sleeper"
prompt_text = "sleep 30"

[[task]]
id = "fast"
prompt_text = "sleep 1; exit 1"
"#,
        &["--fail-fast", "-j", "2"],
    );
    let report = run.report();
    let fast = task(&report, "fast");
    let sleeper = task(&report, "sleeper");
    eprintln!(
        "fail-fast: process {:?}, sleeper {}s, fast {}s",
        run.elapsed, sleeper["duration_s"], fast["duration_s"]
    );
    assert_eq!(field(fast, "status"), "failed", "{fast:#}");
    assert_eq!(field(sleeper, "status"), "cancelled", "{sleeper:#}");
    let d = sleeper["duration_s"].as_f64().unwrap();
    assert!(d < 10.0, "the sleeper was stopped soon after: {d}s");
    assert!(
        run.elapsed.as_secs_f64() < 15.0,
        "the run ended soon after the failure: {:?}",
        run.elapsed
    );
    assert_eq!(run.code, 1, "a failure, not an interruption: {}", run.dump());
    assert_eq!(report["cancel_reason"], "fail_fast", "{report:#}");
    let said = format!("{}{}", stdout(&run.out), stderr(&run.out));
    assert!(
        said.contains("--fail-fast: a task did not succeed"),
        "{}",
        run.dump()
    );
    let left = containers(&format!("label=sandpen.run={}", field(&report, "run_id")));
    assert!(left.is_empty(), "containers left behind: {left:?}");
}

#[test]
fn a_task_cannot_reach_the_users_repository_through_its_git_metadata() {
    let repo = make_repo();
    let p = repo.path();
    let head_before = git(p, &["rev-parse", "HEAD"]);
    let refs_before = git(
        p,
        &["for-each-ref", "--format=%(refname) %(objectname)", "refs/heads"],
    );
    // From <git-dir>/sandpen/runs/<run>/<task>/.git, five levels up is the user's git directory
    // (and from where older sandpens kept runs, <repo>/.sandpen/runs/..., its working tree):
    // `commondir` would make the checkout a worktree of it, so sandpen's salvage commit would
    // move the user's branch; alternates would read the user's objects.
    let run = run_tasks(
        p,
        r#"
[[task]]
id = "sneaky"
timeout = "1m"
prompt_text = "echo ../../../../.. > .git/commondir; echo ../../../../../../objects > .git/objects/info/alternates; echo loot > loot.txt"
"#,
        &[],
    );
    let report = run.report();
    let t = task(&report, "sneaky");
    assert_eq!(field(t, "status"), "succeeded", "{t:#}\n{}", run.dump());
    assert_eq!(
        git(p, &["rev-parse", "HEAD"]),
        head_before,
        "the user's HEAD did not move"
    );
    let refs_after = git(
        p,
        &["for-each-ref", "--format=%(refname) %(objectname)", "refs/heads"],
    );
    let branch = field(t, "branch");
    let without_result: Vec<&str> = refs_after
        .lines()
        .filter(|l| !l.starts_with(&format!("refs/heads/{branch} ")))
        .collect();
    assert_eq!(
        without_result,
        refs_before.lines().collect::<Vec<_>>(),
        "no other branch changed"
    );
    assert_eq!(
        git(p, &["show", &format!("{branch}:loot.txt")]),
        "loot\n",
        "the work itself came back"
    );
}

#[test]
fn phase_markers_in_the_stream_count_when_there_is_no_state_file() {
    let repo = make_repo();
    // What the real CLI prints for an assistant message, with a phase marker in its text.
    let line = r#"{"type":"assistant","message":{"id":"m1","content":[{"type":"text","text":"Phase 4: research and planning is next"}]}}"#;
    let run = run_tasks(
        repo.path(),
        &format!("[[task]]\nid = \"marks\"\ntimeout = \"1m\"\nprompt_text = '''echo '{line}' '''\n"),
        &["--json"],
    );
    assert_eq!(run.code, 0, "{}", run.dump());
    let events: Vec<serde_json::Value> = stdout(&run.out)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "phase" && e["task"] == "marks" && e["phase"] == 4),
        "a phase event from the marker:\n{}",
        stdout(&run.out)
    );
    let report = run.report();
    let t = task(&report, "marks");
    assert_eq!(t["last_phase"], 4, "{t:#}");
    assert_eq!(field(t, "last_phase_name"), "research and planning");
}

#[test]
fn odd_names_credential_files_and_oom_survivors_are_reported_plainly() {
    let repo = make_repo();
    let run = run_tasks(
        repo.path(),
        r#"
[defaults]
timeout = "1m"

# A task may be named like sandpen's own files: they live apart (`_sandpen/`).
[[task]]
id = "agents"
prompt_text = "echo x > x.txt"

# Uncommitted files that look like credentials stay out of the salvage, and the report says so.
[[task]]
id = "secrets"
prompt_text = "echo TOKEN=1 > .env; mkdir -p keys; echo k > keys/id_rsa; echo ok > ok.txt"

# The kernel kills a child for memory, the shell goes on and exits 0: no misleading code 0.
[[task]]
id = "survivor"
memory = "96m"
prompt_text = "head -c 400000000 /dev/zero | tail; exit 0"
"#,
        &["-j", "3"],
    );
    let report = run.report();
    let run_id = field(&report, "run_id").to_string();

    let agents = task(&report, "agents");
    assert_eq!(field(agents, "status"), "succeeded", "{agents:#}");
    let branch = format!("sandpen/agents/{run_id}");
    assert_eq!(git(repo.path(), &["show", &format!("{branch}:x.txt")]), "x\n");

    let secrets = task(&report, "secrets");
    assert_eq!(field(secrets, "status"), "succeeded", "{secrets:#}");
    assert_eq!(secrets["salvaged"], true, "{secrets:#}");
    let left_out: Vec<&str> = secrets["salvage_left_out"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(left_out, [".env", "keys/id_rsa"], "{secrets:#}");
    let branch = field(secrets, "branch");
    let files = git(repo.path(), &["ls-tree", "-r", "--name-only", branch]);
    assert!(files.lines().any(|f| f == "ok.txt"), "{files}");
    assert!(!files.contains(".env") && !files.contains("id_rsa"), "{files}");
    let checkout = std::path::Path::new(field(secrets, "checkout"));
    assert!(checkout.join(".env").is_file(), "the file stays in the checkout");

    let survivor = task(&report, "survivor");
    assert_eq!(field(survivor, "status"), "oom_killed", "{survivor:#}");
    assert!(survivor["exit_code"].is_null(), "{survivor:#}");
    assert!(
        field(survivor, "message").contains("exited 0 afterwards"),
        "{survivor:#}"
    );
}
