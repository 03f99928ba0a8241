//! Bad flags and bad places through the CLI: exit code 2, the problem, its reason (once, never
//! empty) and the fix, in both flag forms (`--flag value` and `--flag=value`), and nothing
//! created. Real engine, probe image. The harness is `common::refused`.

mod common;

use common::refused::{VALID, assert_refused};
use common::*;

/// `sandpen run --image <probe> <args...> <valid tasks.toml>` in a fresh repository; its
/// stderr, the repository's path as `<repo>`.
fn refused_with_flags(case: &str, args: &[&str], expected: &[&str]) -> String {
    let repo = make_repo();
    let tasks = task_file(VALID);
    let mut cmd = sandpen();
    with_test_credentials(&mut cmd)
        .current_dir(repo.path())
        .arg("run")
        .args(args)
        .arg(&tasks.path);
    let err = assert_refused(case, cmd, &[repo.path()], expected).1;
    err.replace(&repo.path().display().to_string(), "<repo>")
}

#[test]
fn bad_flags_are_refused() {
    let probe = image("probe");
    refused_with_flags(
        "--cpus 64",
        &["--image", &probe, "--cpus", "64"],
        &["asks for 64 CPUs", "tasks.toml"],
    );
    refused_with_flags(
        "--jobs 0",
        &["--image", &probe, "--jobs", "0"],
        &["'0' for '--jobs <N>'", "must be at least 1"],
    );
    refused_with_flags(
        "--image that does not exist",
        &["--image", "sandpen-no-such:image"],
        &["--image sandpen-no-such:image", "no such image"],
    );
    refused_with_flags(
        "--memory 5m",
        &["--image", &probe, "--memory", "5m"],
        &["--memory", "5m", "6 MiB"],
    );
    // More memory than the engine has: the task could never run beside another.
    let total = stdout(&docker(&["info", "--format", "{{.MemTotal}}"]));
    let total = indicatif::HumanBytes(total.trim().parse().expect("MemTotal")).to_string();
    refused_with_flags(
        "--memory 1024g",
        &["--image", &probe, "--memory", "1024g"],
        &[
            "task `ok` has a memory limit of 1.00 TiB",
            &format!("the Docker engine has only {total}"),
            "lower `memory`",
            "--memory",
        ],
    );
    refused_with_flags(
        "--timeout soon",
        &["--image", &probe, "--timeout", "soon"],
        &["--timeout", "soon"],
    );
}

/// Refused alike in both forms: `--flag value` and `--flag=value`, with the same message.
fn refused_in_both_forms(probe: &str, flag: &str, value: &str, expected: &[&str]) {
    let spaced = refused_with_flags(
        &format!("{flag} {value}"),
        &["--image", probe, flag, value],
        expected,
    );
    let joined = refused_with_flags(
        &format!("{flag}={value}"),
        &["--image", probe, &format!("{flag}={value}")],
        expected,
    );
    assert_eq!(spaced, joined, "{flag} {value}: one message in both forms");
}

#[test]
fn a_base_that_names_nothing_says_why() {
    let probe = image("probe");
    refused_in_both_forms(
        &probe,
        "--base",
        "nosuchref",
        &[
            "--base nosuchref does not name a commit",
            "no branch, tag or commit of that name",
            "fix: pass an existing branch",
        ],
    );
    // A repository without commits: there is no HEAD to start from.
    let empty = tempfile::tempdir().unwrap();
    git(empty.path(), &["init", "--quiet"]);
    let tasks = task_file(VALID);
    let mut cmd = sandpen();
    with_test_credentials(&mut cmd)
        .current_dir(empty.path())
        .args(["run", "--image", &probe])
        .arg(&tasks.path);
    let shown = empty.path().display().to_string();
    assert_refused(
        "a repository without commits",
        cmd,
        &[empty.path()],
        &[&shown, "has no commits yet", "fix: make a first commit"],
    );
}

#[test]
fn negative_numbers_are_refused_with_their_reason_in_both_flag_forms() {
    let probe = image("probe");
    for (flag, value, reason) in [
        ("--jobs", "-1", "cannot be negative"),
        ("--cpus", "-2", "CPUs must be positive"),
        ("--memory", "-1g", "memory must be positive"),
        ("--pids-limit", "-4", "the process limit must be positive"),
        ("--timeout", "-5s", "a timeout cannot be negative"),
        ("--disk", "-1g", "the size must be positive"),
        ("--max-prompt-size", "-1k", "the size must be positive"),
        ("--max-cost", "-1", "a budget must be more than 0 USD"),
        ("--max-turns", "-3", "cannot be negative"),
    ] {
        refused_in_both_forms(&probe, flag, value, &[flag, value, reason]);
    }
}

#[test]
fn values_over_their_maximum_are_refused() {
    let probe = image("probe");
    for (flag, value, reason) in [
        ("--timeout", "99999999999999d", "maximum timeout of 7 days"),
        ("--timeout", "8d", "use \"7d\" or less"),
        ("--memory", "2t", "maximum memory limit of 1.00 TiB"),
        ("--cpus", "5000", "maximum of 1024"),
        ("--pids-limit", "99999999", "maximum of 4194304"),
        ("--disk", "20t", "use \"16t\" or less"),
        ("--max-prompt-size", "1g", "use \"64m\" or less"),
        ("--max-cost", "5000", "maximum budget of 1000 USD"),
        ("--max-turns", "99999", "maximum of 10000 turns"),
    ] {
        refused_in_both_forms(&probe, flag, value, &[flag, value, reason]);
    }
    // The same maximum in a task file, by its line.
    let repo = make_repo();
    let tasks = task_file("[[task]]\nid = \"a\"\nprompt_text = \"echo\"\ntimeout = \"99999999999999d\"\n");
    let mut cmd = sandpen();
    with_test_credentials(&mut cmd)
        .current_dir(repo.path())
        .args(["run", "--image", &probe])
        .arg(&tasks.path);
    assert_refused(
        "a timeout of 99999999999999d in a task file",
        cmd,
        &[repo.path()],
        &["tasks.toml:4", "timeout", "maximum timeout of 7 days"],
    );
}

#[test]
fn a_place_for_runs_that_cannot_be_made_says_its_reason_once() {
    // A file where the repository's runs go: creating a run there fails with ENOTDIR.
    let repo = make_repo();
    let runs = runs_dir(repo.path());
    std::fs::create_dir_all(runs.parent().unwrap()).unwrap();
    std::fs::write(&runs, "in the way\n").unwrap();
    let tasks = task_file(VALID);
    let mut cmd = sandpen();
    with_test_credentials(&mut cmd)
        .current_dir(repo.path())
        .args(["run", "--network", "none", "--image", &image("probe")])
        .arg(&tasks.path);
    let shown = runs.display().to_string();
    let (_, err) = assert_refused(
        "the runs' place is a file",
        cmd,
        &[],
        &[
            "cannot make the run directory",
            "Not a directory",
            &format!("fix: {shown} is a file or a link where sandpen keeps its runs; move it away"),
        ],
    );
    assert_eq!(err.matches("Not a directory").count(), 1, "{err}");
    assert_eq!(
        std::fs::read_to_string(&runs).unwrap(),
        "in the way\n",
        "the file is left as it was"
    );
}
