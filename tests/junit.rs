//! `--junit FILE`: the run as JUnit XML, read back by a JUnit parser CI systems use
//! (Python's junitparser, which `.ci/run` installs). Real engine, probe image.

mod common;

use common::*;

/// Each test case as junitparser reads it: (name, result kind, message, seconds, system-out).
fn parse(path: &std::path::Path) -> serde_json::Value {
    let script = r#"
import json, sys
from junitparser import JUnitXml
xml = JUnitXml.fromfile(sys.argv[1])
cases = {}
for suite in xml:
    for case in suite:
        result = case.result[0] if case.result else None
        cases[case.name] = {
            "kind": type(result).__name__ if result is not None else "Passed",
            "message": result.message if result is not None else None,
            "time": case.time,
            "out": case.system_out or "",
        }
print(json.dumps(cases))
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(path)
        .output()
        .expect("running python3");
    assert!(
        out.status.success(),
        "junitparser could not read the file (is it installed? `python3 -m pip install junitparser`): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the parser's JSON")
}

#[test]
fn the_junit_file_loads_in_a_junit_reader_with_each_status_where_ci_counts_it() {
    let repo = make_repo();
    let out = tempfile::tempdir().unwrap();
    let junit = out.path().join("junit.xml");
    let run = run_tasks(
        repo.path(),
        "[[task]]\nid = \"ok\"\nprompt_text = \"echo all-fine\"\n\n\
         [[task]]\nid = \"bad\"\nprompt_text = \"echo broken; exit 3\"\n\n\
         [[task]]\nid = \"slow\"\ntimeout = \"2s\"\nprompt_text = \"sleep 30\"\n\n\
         [[task]]\nid = \"after-bad\"\ndepends_on = [\"bad\"]\nprompt_text = \"true\"\n",
        &["--junit", junit.to_str().unwrap()],
    );
    assert_eq!(run.code, 1, "{}", run.dump());
    // The run names the file it wrote.
    let said = format!("junit: {}", junit.display());
    assert!(stderr(&run.out).contains(&said), "{}", run.dump());
    let cases = parse(&junit);
    let kind = |id: &str| cases[id]["kind"].as_str().unwrap_or("?").to_string();
    assert_eq!(kind("ok"), "Passed", "{cases:#}");
    assert_eq!(kind("bad"), "Failure", "{cases:#}");
    assert_eq!(kind("slow"), "Failure", "{cases:#}");
    assert_eq!(kind("after-bad"), "Skipped", "{cases:#}");
    assert!(
        cases["slow"]["message"].as_str().unwrap().contains("timed out")
            || cases["slow"]["message"].as_str().unwrap().contains("timeout"),
        "{cases:#}"
    );
    assert!(
        cases["ok"]["out"].as_str().unwrap().contains("all-fine"),
        "the output's tail: {cases:#}"
    );
    assert!(
        cases["bad"]["out"].as_str().unwrap().contains("broken"),
        "{cases:#}"
    );
    assert!(cases["slow"]["time"].as_f64().unwrap() >= 2.0, "{cases:#}");
}

#[test]
fn an_unwritable_junit_path_is_refused_before_anything_starts() {
    let repo = make_repo();
    let run = run_tasks(
        repo.path(),
        "[[task]]\nid = \"t\"\nprompt_text = \"true\"\n",
        &["--junit", "/nonexistent-dir/junit.xml"],
    );
    assert_eq!(run.code, 2, "{}", run.dump());
    assert!(
        stderr(&run.out).contains("--junit /nonexistent-dir/junit.xml"),
        "{}",
        run.dump()
    );
    assert!(!runs_dir(repo.path()).exists(), "nothing made");
}

/// A JUnit file that cannot be written when the run ends (its directory went away meanwhile)
/// fails the run, said, instead of being lost behind a success.
#[test]
fn a_junit_file_that_cannot_be_written_fails_the_run() {
    let repo = make_repo();
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("gone");
    std::fs::create_dir(&dir).unwrap();
    let junit = dir.join("junit.xml");
    let mut bg = spawn_run(
        repo.path(),
        "[[task]]\nid = \"ok\"\nprompt_text = \"sleep 3\"\n",
        &["--junit", junit.to_str().unwrap()],
    );
    std::thread::sleep(std::time::Duration::from_millis(500));
    std::fs::remove_dir(&dir).unwrap();
    let status = bg
        .wait_exit(std::time::Duration::from_secs(90))
        .expect("the run ends");
    let said = bg.stderr();
    assert_eq!(
        status.code(),
        Some(1),
        "the task succeeded, the file is lost: {said}"
    );
    assert!(said.contains("junit.xml"), "the warning names the file: {said}");
    assert!(!junit.exists());
}
