//! `sandpen rerun`: the tasks of a run that did not succeed run again in the same run, each
//! from its result so far, as new attempts; every attempt's log stays. Real engine, probe
//! image (whose `claude` runs the prompt as a shell script).

mod common;

use std::path::Path;
use std::time::Instant;

use common::*;

/// Fails on its first attempt, leaving a commit; succeeds on the next, when it finds it.
const FLAKY: &str = "set -e\n\
if test -f first.txt; then\n\
  echo second > second.txt; git add second.txt; git commit -qm second; echo 'found the first attempt'\n\
else\n\
  echo first > first.txt; git add first.txt; git commit -qm first; echo 'the first attempt fails' >&2; exit 1\n\
fi\n";

fn tasks() -> String {
    format!(
        "[defaults]\ntimeout = \"2m\"\n\n\
         [[task]]\nid = \"flaky\"\nprompt_text = '''\n{FLAKY}'''\n\n\
         [[task]]\nid = \"steady\"\nprompt_text = '''\necho ok > steady.txt; git add steady.txt; git commit -qm steady\n'''\n\n\
         [[task]]\nid = \"after\"\ndepends_on = [\"flaky\"]\nprompt_text = '''\nset -e\ntest -f second.txt\necho after > after.txt; git add after.txt; git commit -qm after\n'''\n"
    )
}

fn rerun(repo: &Path, extra: &[&str]) -> std::process::Output {
    let mut cmd = sandpen();
    with_test_credentials(&mut cmd);
    output(cmd.current_dir(repo).args(["rerun", "--json"]).args(extra))
}

fn report_of(repo: &Path, run: &str) -> serde_json::Value {
    read_report(&runs_dir(repo).join(run).join("report.json")).unwrap()
}

/// Commits `one` and sleeps on its first attempt; commits `two` and ends on the next.
const SLOW: &str = "[[task]]\nid = \"slow\"\ntimeout = \"2m\"\nprompt_text = '''\nset -e\n\
    if test -f one.txt; then echo two > two.txt; git add two.txt; git commit -qm two; exit 0; fi\n\
    echo one > one.txt; git add one.txt; git commit -qm one; sleep 60\n'''\n";

/// Starts a run of `SLOW` (and `more` tasks) and returns once its first attempt has had time to
/// commit, its container running.
fn start_slow(dir: &Path, more: &str) -> Background {
    let run = spawn_run(dir, &format!("{SLOW}{more}"), &["--network", "none"]);
    let pid = run.pid();
    let running = wait_for(std::time::Duration::from_secs(60), || {
        (!task_containers(&owner_filter(pid)).is_empty()).then_some(())
    });
    assert!(running.is_some(), "the task never ran: {}", run.stderr());
    // Let it commit before the signal.
    std::thread::sleep(std::time::Duration::from_secs(2));
    run
}

/// The report of the repository's one run.
fn only_report(dir: &Path) -> serde_json::Value {
    let mut runs = std::fs::read_dir(runs_dir(dir)).unwrap();
    let run_id = runs.next().unwrap().unwrap().file_name();
    report_of(dir, &run_id.to_string_lossy())
}

fn statuses(t: &serde_json::Value) -> Vec<String> {
    t["attempts"]
        .as_array()
        .unwrap_or_else(|| panic!("no attempts: {t:#}"))
        .iter()
        .map(|a| field(a, "status").to_string())
        .collect()
}

#[test]
fn a_rerun_runs_what_failed_from_its_result_and_keeps_every_attempt() {
    let repo = make_repo();
    let dir = repo.path();
    let first = run_tasks(dir, &tasks(), &["--network", "none"]);
    assert_eq!(first.code, 1, "{}", first.dump());
    let report = first.report();
    let run = field(&report, "run_id").to_string();
    assert_eq!(field(task(&report, "flaky"), "status"), "failed");
    assert_eq!(field(task(&report, "after"), "status"), "skipped");
    let steady_before = task(&report, "steady").clone();

    // Bad input first (nothing is run): a task of no such name, an unknown run, a task that
    // succeeded without --force, a run whose sandpen lives.
    let out = rerun(dir, &[&run, "nosuch"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("has no task nosuch") && stderr(&out).contains("flaky, steady, after"),
        "{}",
        stderr(&out)
    );
    let out = rerun(dir, &["20000101-000000-0000"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&run),
        "lists the known runs: {}",
        stderr(&out)
    );
    let out = rerun(dir, &["steady"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--force"), "{}", stderr(&out));
    let lease = std::fs::OpenOptions::new()
        .write(true)
        .open(runs_dir(dir).join(&run).join("_sandpen/lease"))
        .unwrap();
    lease.try_lock().unwrap();
    let out = rerun(dir, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("sandpen stop {run}")),
        "{}",
        stderr(&out)
    );
    drop(lease);
    assert!(
        !runs_dir(dir).join(&run).join("flaky.1.log").exists(),
        "a refused rerun moved nothing"
    );

    // The task file changes on disk: the rerun runs what the run recorded, and says so.
    let mut changed = std::fs::read_to_string(&first.tasks.path).unwrap();
    changed.push_str("\n# edited after the run\n");
    std::fs::write(&first.tasks.path, changed).unwrap();

    let start = Instant::now();
    let out = rerun(dir, &[]);
    let took = start.elapsed();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        dump(out.status.code().unwrap_or(-1), took, &out)
    );
    eprintln!("rerun took {took:?}");
    // Without flags, the run's own network (none) and image.
    let said = stderr(&out);
    assert!(
        said.contains("--network none, --max-turns 50 (the run's"),
        "{said}"
    );
    assert!(said.contains(&format!("image {}", image("probe"))), "{said}");
    assert!(said.contains("changed since run"), "{said}");
    let report = report_of(dir, &run);
    assert_eq!(report["complete"], true);

    // The flaky task: two attempts, its branch (the same name) holds both attempts' commits.
    let flaky = task(&report, "flaky");
    assert_eq!(field(flaky, "status"), "succeeded", "{flaky:#}");
    assert_eq!(statuses(flaky), ["failed", "succeeded"]);
    let branch = field(flaky, "branch");
    assert_eq!(branch, format!("sandpen/flaky/{run}"));
    let subjects = git(dir, &["log", "--format=%s", branch]);
    assert!(subjects.starts_with("second\nfirst\n"), "{subjects}");
    assert_eq!(
        field(flaky, "base_commit"),
        field(&flaky["attempts"][0], "head_commit"),
        "the second attempt started from the first's result"
    );
    // Every attempt's log is kept: the first under its number.
    let first_log = field(&flaky["attempts"][0], "log");
    assert!(first_log.ends_with("flaky.1.log"), "{first_log}");
    assert!(Path::new(first_log).is_file());
    let first_err = std::fs::read_to_string(field(&flaky["attempts"][0], "stderr_log")).unwrap();
    assert!(first_err.contains("the first attempt fails"), "{first_err}");
    assert!(log_of(&report, "flaky").contains("found the first attempt"));
    assert!(Path::new(field(&flaky["attempts"][0], "checkout")).is_dir());

    // The task that had succeeded: not run again, one attempt, its entry as it was.
    let steady = task(&report, "steady");
    assert_eq!(steady["started_at"], steady_before["started_at"]);
    assert_eq!(statuses(steady), ["succeeded"]);
    assert!(!runs_dir(dir).join(&run).join("steady.1.log").exists());

    // The dependent ran from the new result.
    let after = task(&report, "after");
    assert_eq!(field(after, "status"), "succeeded", "{after:#}");
    assert_eq!(field(after, "base_commit"), field(flaky, "head_commit"));
    assert_eq!(statuses(after), ["skipped", "succeeded"]);

    // `logs --attempt`: each attempt's session.
    let mut cmd = sandpen();
    let first_session =
        run_ok(
            cmd.current_dir(dir)
                .args(["logs", &run, "flaky", "--attempt", "1", "--stderr"]),
        );
    assert!(
        first_session.contains("the first attempt fails"),
        "{first_session}"
    );
    let mut cmd = sandpen();
    let out = output(
        cmd.current_dir(dir)
            .args(["logs", &run, "flaky", "--attempt", "3"]),
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));

    // Nothing left to run: said, exit 0.
    let out = rerun(dir, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("nothing to run again"), "{}", stderr(&out));
}

/// A run killed outright (SIGKILL): once `gc` has finished it, `rerun` takes it like any
/// other, and the killed attempt stays among the task's attempts.
#[test]
fn a_killed_run_finished_by_gc_is_rerun_from_what_gc_brought_back() {
    let repo = make_repo();
    let dir = repo.path();
    let mut run = start_slow(dir, "");
    run.signal("KILL");
    run.wait_exit(std::time::Duration::from_secs(10))
        .expect("SIGKILL ends sandpen");
    let out = rerun(dir, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("sandpen gc"), "{}", stderr(&out));
    let mut gc = sandpen();
    run_ok(gc.current_dir(dir).arg("gc"));

    let start = Instant::now();
    let out = rerun(dir, &[]);
    let took = start.elapsed();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        dump(out.status.code().unwrap_or(-1), took, &out)
    );
    let report = only_report(dir);
    let slow = task(&report, "slow");
    assert_eq!(statuses(slow), ["error", "succeeded"], "{slow:#}");
    let branch = field(slow, "branch");
    assert_eq!(git(dir, &["log", "--format=%s", "-2", branch]), "two\none\n");
    assert!(Path::new(field(&slow["attempts"][0], "log")).is_file());
}

/// Ctrl-C mid-run, then `sandpen rerun`: the cancelled task runs again from what its first
/// attempt left (its commit, brought back at the interrupt), and the task that had not started
/// runs for the first time.
#[test]
fn an_interrupted_run_is_rerun_from_what_the_interrupt_brought_back() {
    let repo = make_repo();
    let dir = repo.path();
    let later = "\n[[task]]\nid = \"later\"\ndepends_on = [\"slow\"]\nprompt_text = \"true\"\n";
    let mut run = start_slow(dir, later);
    run.signal("INT");
    let status = run
        .wait_exit(std::time::Duration::from_secs(60))
        .expect("Ctrl-C ends the run");
    assert_eq!(status.code(), Some(130), "{}", run.stderr());

    let out = rerun(dir, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report = only_report(dir);
    assert_eq!(
        report["cancelled"], false,
        "the rerun completed the run: {report:#}"
    );
    let slow = task(&report, "slow");
    assert_eq!(statuses(slow), ["cancelled", "succeeded"], "{slow:#}");
    assert_eq!(
        git(dir, &["log", "--format=%s", "-2", field(slow, "branch")]),
        "two\none\n"
    );
    assert_eq!(field(task(&report, "later"), "status"), "succeeded");
}
