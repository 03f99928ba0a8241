//! Never losing a task's work: every branch it made, commits no branch reaches, nested
//! repositories, the report as the run goes, and a slow `--json` reader. Real engine, probe
//! image (whose `claude` runs the prompt as a shell script).

mod common;

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;

/// The only run directory of `repo`.
fn run_dir(repo: &Path) -> PathBuf {
    let runs: Vec<_> = std::fs::read_dir(runs_dir(repo))
        .expect("a run directory")
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    runs[0].clone()
}

/// Every commit any ref or reflog of the repository at `dir` holds.
fn all_commits(dir: &Path) -> BTreeSet<String> {
    git(dir, &["rev-list", "--all", "--reflog"])
        .lines()
        .map(str::to_string)
        .collect()
}

fn commit(msg: &str, file: &str) -> String {
    format!("echo '{msg}' > {file}; git add {file}; git commit -qm '{msg}'\n")
}

#[test]
fn every_branch_a_task_made_comes_back_and_git_log_all_holds_every_commit() {
    let repo = make_repo();
    let base_branch = git(repo.path(), &["branch", "--show-current"]).trim().to_string();
    let script = format!(
        "set -e\ngit checkout -q -b feature\n{}{}git checkout -q -b other\n{}\
         git checkout -q -b doomed\n{}git checkout -q {base_branch}\ngit branch -D doomed\n\
         git tag made-by-task other\n",
        commit("feature one", "f1.txt"),
        commit("feature two", "f2.txt"),
        commit("other one", "o1.txt"),
        commit("doomed one", "d1.txt"),
    );
    let toml = format!("[[task]]\nid = \"branchy\"\nprompt_text = '''\n{script}'''\n");
    let run = run_tasks(repo.path(), &toml, &[]);
    assert_eq!(run.code, 0, "{}", run.dump());
    let report = run.report();
    let t = task(&report, "branchy");
    let run_id = report["run_id"].as_str().unwrap();

    // HEAD is back on the base: no HEAD branch, and the report says so.
    assert!(t["branch"].is_null(), "{t:#}");
    assert_eq!(t["commits"], 0, "{t:#}");
    assert_eq!(field(t, "head_branch"), base_branch, "{t:#}");
    // Both branches, under sandpen's names, with their own commits.
    let branches: Vec<(String, String, u64)> = t["branches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                field(b, "task_branch").to_string(),
                field(b, "branch").to_string(),
                b["commits"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        branches,
        [
            ("feature".into(), format!("sandpen/branchy/{run_id}+feature"), 2),
            ("other".into(), format!("sandpen/branchy/{run_id}+other"), 3),
        ],
        "{t:#}"
    );
    // Each with the commit it came back at (what `sandpen prune` compares with).
    for b in t["branches"].as_array().unwrap() {
        let tip = git(
            repo.path(),
            &["rev-parse", &format!("refs/heads/{}", field(b, "branch"))],
        );
        assert_eq!(field(b, "tip"), tip.trim(), "{b:#}");
    }
    let feature = format!("sandpen/branchy/{run_id}+feature");
    assert_eq!(
        git(repo.path(), &["log", "--format=%s", &feature])
            .lines()
            .take(2)
            .collect::<Vec<_>>(),
        ["feature two", "feature one"]
    );
    // The deleted branch's commit is kept, and counted.
    assert_eq!(t["unreachable_commits"], 1, "{t:#}");
    let kept = t["unreachable_refs"].as_array().unwrap();
    assert_eq!(kept.len(), 1, "{t:#}");
    let kept = kept[0].as_str().unwrap();
    assert!(
        kept.starts_with(&format!("refs/sandpen/branchy/{run_id}/unreachable-")),
        "{kept}"
    );
    assert_eq!(
        git(repo.path(), &["log", "-1", "--format=%s", kept]).trim(),
        "doomed one"
    );
    // The tag is listed, not imported.
    assert_eq!(t["tags"], serde_json::json!(["made-by-task"]), "{t:#}");
    assert!(
        git_output(repo.path(), &["rev-parse", "--verify", "refs/tags/made-by-task"])
            .status
            .code()
            != Some(0)
    );
    // The summary names them.
    let err = stdout(&run.out);
    assert!(
        err.contains(&format!("branch feature -> {feature} (2 commits)")),
        "{err}"
    );
    assert!(err.contains("1 commit reachable from no branch"), "{err}");

    // `git log --all` in the user's repository holds every commit the task made.
    let checkout = run_dir(repo.path()).join("branchy");
    let made = all_commits(&checkout);
    let have = all_commits(repo.path());
    let missing: Vec<_> = made.difference(&have).collect();
    assert!(
        missing.is_empty(),
        "commits of the task not in the user's repository: {missing:?}"
    );
    assert!(git_output(repo.path(), &["fsck", "--strict"]).status.success());
}

#[test]
fn a_detached_head_a_stash_and_no_work_at_all_are_each_reported() {
    let repo = make_repo();
    let detached = format!(
        "set -e\ngit checkout -q --detach\n{}{}echo stashed > s.txt; git add s.txt; git stash -q\n",
        commit("detached one", "x1.txt"),
        commit("detached two", "x2.txt"),
    );
    let toml = format!(
        "[[task]]\nid = \"detached\"\nprompt_text = '''\n{detached}'''\n\n\
         [[task]]\nid = \"idle\"\nprompt_text = \"true\"\n"
    );
    let run = run_tasks(repo.path(), &toml, &[]);
    assert_eq!(run.code, 0, "{}", run.dump());
    let report = run.report();
    let run_id = report["run_id"].as_str().unwrap();

    let t = task(&report, "detached");
    let head = format!("sandpen/detached/{run_id}");
    assert_eq!(field(t, "branch"), head, "{t:#}");
    assert!(t["head_branch"].is_null(), "a detached HEAD: {t:#}");
    assert_eq!(t["commits"], 2, "{t:#}");
    // Two commits on the detached HEAD, two of the stash (its work tree and index commits).
    assert_eq!(t["unreachable_commits"], 4, "{t:#}");
    let kept = t["unreachable_refs"].as_array().unwrap();
    assert_eq!(kept.len(), 1, "the stash: {t:#}");
    let stash_tree = git(
        repo.path(),
        &["ls-tree", "-r", "--name-only", kept[0].as_str().unwrap()],
    );
    assert!(
        stash_tree.contains("s.txt"),
        "the stash keeps s.txt: {stash_tree}"
    );
    assert_eq!(
        git(repo.path(), &["log", "-2", "--format=%s", &head])
            .lines()
            .collect::<Vec<_>>(),
        ["detached two", "detached one"]
    );

    let idle = task(&report, "idle");
    assert!(idle["branch"].is_null(), "{idle:#}");
    assert_eq!(idle["commits"], 0, "{idle:#}");
    assert_eq!(idle["branches"], serde_json::json!([]), "{idle:#}");
    assert_eq!(idle["unreachable_commits"], 0, "{idle:#}");
    let out = stdout(&run.out);
    assert!(out.contains("no commits"), "the summary says so: {out}");
}

#[test]
fn a_nested_repository_comes_back_as_its_files() {
    let repo = make_repo();
    let script = "set -e\ngit init -q sub\ncd sub\necho inner > inner.txt\ngit add inner.txt\n\
                  git -c user.name=n -c user.email=n@n commit -qm inner\n\
                  echo loose > loose.txt\nmkdir -p deeper && cd deeper && git init -q && echo deep > deep.txt\n";
    let toml = format!("[[task]]\nid = \"nest\"\nprompt_text = '''\n{script}'''\n");
    let run = run_tasks(repo.path(), &toml, &[]);
    assert_eq!(run.code, 0, "{}", run.dump());
    let report = run.report();
    let t = task(&report, "nest");
    let branch = field(t, "branch");
    assert!(t["salvaged"].as_bool().unwrap(), "{t:#}");
    let files = git(repo.path(), &["ls-tree", "-r", "--name-only", branch]);
    for f in ["sub/inner.txt", "sub/loose.txt", "sub/deeper/deep.txt"] {
        assert!(files.lines().any(|l| l == f), "{f} not on {branch}:\n{files}");
    }
    assert!(!files.contains(".sandpen-nested-git"), "{files}");
    let modes = git(repo.path(), &["ls-tree", "-r", branch]);
    assert!(!modes.contains("160000"), "no gitlink: {modes}");
    let nested: BTreeSet<String> = t["nested_repos"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["salvaged"] == true)
        .map(|n| field(n, "path").to_string())
        .collect();
    assert_eq!(
        nested,
        ["sub".to_string(), "sub/deeper".to_string()].into(),
        "{t:#}"
    );
    // The checkout holds both repositories, renamed aside so that no git on the host reads
    // them (their HEADs too: a repository-like directory would be found as a bare one).
    let checkout = run_dir(repo.path()).join("nest");
    assert!(
        checkout
            .join("sub/.git.sandpen-inert/HEAD.sandpen-inert")
            .is_file()
    );
    assert!(checkout.join("sub/deeper/.git.sandpen-inert").is_dir());
    assert!(!checkout.join("sub/.git").exists() && !checkout.join(".git").exists());
    assert!(
        !checkout
            .join(format!(
                "sub/.sandpen-nested-git-{}",
                report["run_id"].as_str().unwrap()
            ))
            .exists()
    );
}

/// Tasks of the run `run_id` the engine created a collection sandbox for.
fn sandboxes(run_id: &str, since: u64) -> Vec<String> {
    let until = epoch_now() + 1;
    let out = docker(&[
        "events",
        "--since",
        &since.to_string(),
        "--until",
        &until.to_string(),
        "--filter",
        "event=create",
        "--filter",
        &format!("label=sandpen.run={run_id}"),
        "--filter",
        "label=sandpen.role=collect",
        "--format",
        "{{index .Actor.Attributes \"sandpen.task\"}}",
    ]);
    let mut tasks: Vec<String> = stdout(&out).lines().map(str::to_string).collect();
    tasks.sort();
    tasks
}

fn epoch_now() -> u64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    now.unwrap().as_secs()
}

#[test]
fn a_task_that_ends_by_itself_is_collected_in_its_own_container_a_stopped_one_by_the_sandbox() {
    let repo = make_repo();
    let since = epoch_now() - 1;
    // `late` also forges what a collection in place leaves: sandpen stopped it, so the
    // sandbox collects, and its real work comes back.
    let toml = r#"[[task]]
id = "ends"
prompt_text = "echo a > a.txt"

[[task]]
id = "late"
timeout = "3s"
prompt_text = '''
echo b > b.txt
echo 0 > /sandpen-out/done; echo 'sandpen-collect: head 0000' > /sandpen-out/hints
sleep 60
'''
"#;
    let run = run_tasks(repo.path(), toml, &[]);
    assert_eq!(run.code, 1, "{}", run.dump());
    let report = run.report();
    let run_id = report["run_id"].as_str().unwrap();
    assert_eq!(field(task(&report, "ends"), "status"), "succeeded", "{report:#}");
    assert_eq!(field(task(&report, "late"), "status"), "timed_out", "{report:#}");
    for (id, file, text) in [("ends", "a.txt", "a\n"), ("late", "b.txt", "b\n")] {
        let t = task(&report, id);
        assert_eq!(t["salvaged"], true, "{t:#}");
        let branch = field(t, "branch");
        assert_eq!(
            git(repo.path(), &["show", &format!("{branch}:{file}")]),
            text,
            "{t:#}"
        );
    }
    assert_eq!(
        sandboxes(run_id, since),
        ["late"],
        "one container for the task that ended"
    );
}

#[test]
fn sigkill_after_the_first_task_leaves_a_report_holding_it() {
    let repo = make_repo();
    let toml = "[[task]]\nid = \"quick\"\nprompt_text = \"echo q > q.txt\"\n\n\
                [[task]]\nid = \"slow1\"\nprompt_text = \"sleep 120\"\n\n\
                [[task]]\nid = \"slow2\"\nprompt_text = \"sleep 120\"\n";
    let mut run = spawn_run(repo.path(), toml, &[]);
    let report_path = || {
        std::fs::read_dir(runs_dir(repo.path()))
            .ok()?
            .next()?
            .ok()
            .map(|e| e.path().join("report.json"))
    };
    let ended = wait_for(Duration::from_secs(60), || {
        let r = read_report(&report_path()?).ok()?;
        (r["tasks"].as_array()?.len() == 1).then_some(r)
    })
    .unwrap_or_else(|| panic!("the first task never ended:\n{}", run.stderr()));
    assert_eq!(field(task(&ended, "quick"), "status"), "succeeded", "{ended:#}");
    run.signal("KILL");
    run.wait_exit(Duration::from_secs(10))
        .expect("SIGKILL ends sandpen");

    let report = read_report(&report_path().unwrap()).expect("report.json parses after SIGKILL");
    let quick = task(&report, "quick");
    assert_eq!(field(quick, "status"), "succeeded", "{report:#}");
    assert!(field(quick, "branch").starts_with("sandpen/quick/"), "{quick:#}");
    assert_eq!(report["complete"], false, "{report:#}");

    // gc finishes the dead run: its containers go and the report is completed.
    let gc = output(sandpen().arg("gc").current_dir(repo.path()));
    assert!(gc.status.success(), "{}", stderr(&gc));
    let report = read_report(&report_path().unwrap()).unwrap();
    assert_eq!(report["complete"], true, "{report:#}");
    assert_eq!(report["tasks"].as_array().unwrap().len(), 3, "{report:#}");
}

/// The anonymous resident memory of `pid` in KiB (`RssAnon`: the heap, where queued events
/// would pile up; not the pages of files it maps, such as its own executable's debug info
/// when a backtrace is resolved), None once it has gone.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("RssAnon:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn a_slow_json_reader_slows_the_run_without_growing_memory_or_losing_events() {
    const LINES: u32 = 200_000;
    let repo = make_repo();
    // One assistant message per line: each is a new turn, hence an `agent` event.
    let script = format!(
        "awk 'BEGIN {{ for (i = 0; i < {LINES}; i++) \
         print \"{{\\\"type\\\":\\\"assistant\\\",\\\"message\\\":{{\\\"content\\\":[{{\\\"type\\\":\\\"text\\\",\\\"text\\\":\\\"t\\\"}}]}}}}\" }}'\n"
    );
    let tasks = task_file(&format!(
        "[[task]]\nid = \"chatty\"\nprompt_text = '''\n{script}'''\n"
    ));
    let mut child = run_command(repo.path(), &tasks, &["--json"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting sandpen");
    let pid = child.id();
    let mut stdout = child.stdout.take().unwrap();

    // The reader sleeps first: sandpen's memory is sampled meanwhile, then while it reads.
    let mut peak = 0;
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(8) {
        peak = peak.max(rss_kib(pid).unwrap_or(0));
        std::thread::sleep(Duration::from_millis(100));
    }
    let reader = std::thread::spawn(move || {
        let mut all = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match stdout.read(&mut buf) {
                Ok(0) | Err(_) => return all,
                Ok(n) => {
                    all.extend_from_slice(&buf[..n]);
                    // A slow reader: a pause every 64 KiB.
                    if all.len() % (64 << 10) < n {
                        std::thread::sleep(Duration::from_millis(2));
                    }
                }
            }
        }
    });
    while let Some(kib) = rss_kib(pid) {
        peak = peak.max(kib);
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = reader.join().unwrap();
    let status = child.wait().unwrap();
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert!(status.success(), "{err}");

    let events: Vec<serde_json::Value> = out
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).expect("every line is a JSON event"))
        .collect();
    let turns: Vec<u64> = events
        .iter()
        .filter(|e| e["event"] == "agent" && field(e, "activity").starts_with("turn "))
        .filter_map(|e| e["turns"].as_u64())
        .collect();
    eprintln!(
        "peak anonymous RSS {} MiB for {} events",
        peak / 1024,
        events.len()
    );
    // Every turn, in order, none lost.
    let expected: Vec<u64> = (1..=LINES as u64).collect();
    assert!(
        turns == expected,
        "{} agent events with turns, expected {LINES}",
        turns.len()
    );
    assert_eq!(events.last().unwrap()["event"], "run_finished");
    // Queued without a bound, these 200,000 events took sandpen to 63 MiB of VmRSS on the
    // machine this was written on; bounded, 23 MiB. Counted as anonymous memory (the queue's
    // own kind), bounded is about 4 MiB: the limit leaves room, and not for 200,000 events.
    let tail = &err[err.len().saturating_sub(4000)..];
    assert!(
        peak < 16 * 1024,
        "peak anonymous RSS {peak} KiB; sandpen said:\n{tail}"
    );
}
