//! Dependencies carry results: a task with `depends_on` starts from its dependency's result
//! branch, or from the merge of several (made on the host before it starts); a conflict skips
//! it, naming the paths; `--deps-from base` starts every task from `--base`. Real engine,
//! probe image (whose `claude` runs the prompt as a shell script).

mod common;

use std::path::Path;

use common::*;

/// A prompt that fails unless each of `files` is in the checkout, then commits `file`.
fn needs_then_commits(files: &[&str], file: &str) -> String {
    let mut s = String::from("set -e\n");
    for f in files {
        s.push_str(&format!("test -f {f} || {{ echo 'no {f} here' >&2; exit 1; }}\n"));
    }
    s.push_str(&format!(
        "echo {file} > {file}; git add {file}; git commit -qm {file}\n"
    ));
    s
}

fn toml_task(id: &str, deps: &[&str], script: &str) -> String {
    let deps: Vec<String> = deps.iter().map(|d| format!("{d:?}")).collect();
    format!(
        "[[task]]\nid = \"{id}\"\ndepends_on = [{}]\nprompt_text = '''\n{script}'''\n\n",
        deps.join(", ")
    )
}

/// The files of `rev`'s tree in the repository at `dir`.
fn files(dir: &Path, rev: &str) -> Vec<String> {
    git(dir, &["ls-tree", "-r", "--name-only", rev])
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn a_dependent_starts_from_one_result_or_from_the_merge_of_several() {
    let repo = make_repo();
    let dir = repo.path();
    let main = git(dir, &["rev-parse", "HEAD"]).trim().to_string();
    let mut toml = String::from("[defaults]\ntimeout = \"2m\"\n\n");
    toml += &toml_task("a", &[], &needs_then_commits(&[], "a.txt"));
    // A chain: b sees a's file.
    toml += &toml_task("b", &["a"], &needs_then_commits(&["a.txt"], "b.txt"));
    // Left uncommitted: its result is the salvage commit.
    toml += &toml_task("x", &[], "echo x > x.txt\n");
    // Two results merged.
    toml += &toml_task(
        "c",
        &["a", "x"],
        &needs_then_commits(&["a.txt", "x.txt"], "c.txt"),
    );
    // No commit of its own: its result is what it started from (b's).
    toml += &toml_task("n", &["b"], "set -e\ntest -f b.txt\n");
    toml += &toml_task(
        "m",
        &["n", "x"],
        &needs_then_commits(&["a.txt", "b.txt", "x.txt"], "m.txt"),
    );
    let run = run_tasks(dir, &toml, &["--network", "none", "--json"]);
    assert_eq!(run.code, 0, "{}", run.dump());
    let report = run.report();
    let run_id = field(&report, "run_id");
    let head = |id: &str| field(task(&report, id), "head_commit").to_string();
    let base = |id: &str| field(task(&report, id), "base_commit").to_string();
    for id in ["a", "b", "x", "c", "n", "m"] {
        assert_eq!(
            field(task(&report, id), "status"),
            "succeeded",
            "{:#}",
            task(&report, id)
        );
    }

    // Without dependencies: the run's base.
    assert_eq!(base("a"), main);
    assert_eq!(base("x"), main);
    // One dependency: its branch's commit; b's branch holds both files.
    let a_branch = field(task(&report, "a"), "branch");
    assert_eq!(git(dir, &["rev-parse", a_branch]).trim(), head("a"));
    assert_eq!(base("b"), head("a"));
    let b_branch = field(task(&report, "b"), "branch");
    assert_eq!(files(dir, b_branch), ["README", "a.txt", "b.txt"]);
    assert_eq!(task(&report, "b")["commits"], 1, "counted from its own base");

    // Several: a merge commit made by sandpen, kept by a ref, parents in depends_on order.
    let merge = base("c");
    let kept = format!("refs/sandpen/c/{run_id}/base");
    assert_eq!(git(dir, &["rev-parse", &kept]).trim(), merge);
    assert_eq!(
        git(dir, &["rev-list", "--parents", "-n1", &merge]).trim(),
        format!("{merge} {} {}", head("a"), head("x"))
    );
    assert_eq!(git(dir, &["log", "-1", "--format=%an", &merge]).trim(), "sandpen");
    let c_branch = field(task(&report, "c"), "branch");
    assert_eq!(files(dir, c_branch), ["README", "a.txt", "c.txt", "x.txt"]);
    assert_eq!(task(&report, "c")["commits"], 1, "{:#}", task(&report, "c"));

    // A dependency with no commit of its own passes on its base.
    let n = task(&report, "n");
    assert!(n["branch"].is_null(), "{n:#}");
    assert_eq!(head("n"), base("n"), "HEAD did not move: {n:#}");
    assert_eq!(base("n"), head("b"));
    let m_base = base("m");
    assert_eq!(
        git(dir, &["rev-list", "--parents", "-n1", &m_base]).trim(),
        format!("{m_base} {} {}", head("b"), head("x"))
    );
    let m_branch = field(task(&report, "m"), "branch");
    assert_eq!(
        files(dir, m_branch),
        ["README", "a.txt", "b.txt", "m.txt", "x.txt"]
    );

    // The events say it too; the user's own branch and worktree are untouched.
    let events = stdout(&run.out);
    let preparing = events
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|e| e["event"] == "task_preparing" && e["task"] == "c")
        .unwrap_or_else(|| panic!("no task_preparing for c:\n{events}"));
    assert_eq!(field(&preparing, "base_commit"), merge);
    assert_eq!(git(dir, &["rev-parse", "HEAD"]).trim(), main);
    assert_eq!(git(dir, &["status", "--porcelain"]), "");
    assert!(git_output(dir, &["fsck", "--strict"]).status.success());
}

#[test]
fn conflicting_results_skip_the_dependent_naming_the_paths() {
    let repo = make_repo();
    let dir = repo.path();
    let write = |content: &str| {
        format!(
            "set -e\nmkdir -p docs\necho {content} > docs/shared.txt\necho {content} > {content}.txt\n\
             git add -A\ngit commit -qm {content}\n"
        )
    };
    let mut toml = String::from("[defaults]\ntimeout = \"2m\"\n\n");
    toml += &toml_task("p", &[], &write("p"));
    toml += &toml_task("q", &[], &write("q"));
    toml += &toml_task("r", &["p", "q"], "echo r > r.txt\n");
    toml += &toml_task("after-r", &["r"], "true\n");
    let run = run_tasks(dir, &toml, &["--network", "none"]);
    assert_eq!(run.code, 1, "{}", run.dump());
    let report = run.report();
    let run_id = field(&report, "run_id");
    for id in ["p", "q"] {
        assert_eq!(field(task(&report, id), "status"), "succeeded");
    }
    let r = task(&report, "r");
    assert_eq!(field(r, "status"), "skipped", "{r:#}");
    let msg = field(r, "message");
    assert!(
        msg.contains("conflict in docs/shared.txt (merging q into p)"),
        "{msg}"
    );
    assert!(!msg.contains("p.txt") && msg.contains("fix: "), "{msg}");
    assert!(r["base_commit"].is_null() && r["container_id"].is_null(), "{r:#}");
    assert!(!runs_dir(dir).join(format!("{run_id}/r")).exists(), "no checkout");
    let kept = format!("refs/sandpen/r/{run_id}/base");
    assert!(
        !git_output(dir, &["rev-parse", "--verify", "-q", &kept])
            .status
            .success()
    );
    let after = task(&report, "after-r");
    assert_eq!(field(after, "status"), "skipped", "{after:#}");
    assert!(field(after, "message").contains("dependency r"), "{after:#}");
    // Nothing half-merged in the user's repository.
    assert_eq!(git(dir, &["status", "--porcelain"]), "");
}

#[test]
fn deps_from_base_starts_a_dependent_from_base_after_its_dependency() {
    let repo = make_repo();
    let dir = repo.path();
    let main = git(dir, &["rev-parse", "HEAD"]).trim().to_string();
    let mut toml = String::from("[defaults]\ntimeout = \"2m\"\n\n");
    toml += &toml_task("a", &[], &needs_then_commits(&[], "a.txt"));
    toml += &toml_task(
        "b",
        &["a"],
        "set -e\ntest ! -e a.txt || { echo 'a.txt is here' >&2; exit 1; }\necho b > b.txt\n",
    );
    let run = run_tasks(dir, &toml, &["--network", "none", "--deps-from", "base"]);
    assert_eq!(run.code, 0, "{}", run.dump());
    let report = run.report();
    let (a, b) = (task(&report, "a"), task(&report, "b"));
    assert_eq!(field(b, "status"), "succeeded", "{b:#}");
    assert_eq!(field(a, "base_commit"), main);
    assert_eq!(field(b, "base_commit"), main);
    assert_eq!(files(dir, field(b, "branch")), ["README", "b.txt"]);
    // Still after it.
    assert!(
        epoch_s(field(b, "began_at")) >= epoch_s(field(a, "ended_at")),
        "{report:#}"
    );
}

#[test]
fn an_unknown_deps_from_is_refused_before_anything() {
    let repo = make_repo();
    let tasks = task_file("[[task]]\nid = \"a\"\nprompt_text = \"true\"\n");
    let mut cmd = sandpen();
    cmd.current_dir(repo.path())
        .args(["run", "--deps-from", "merged", "--repo"])
        .arg(repo.path())
        .arg(&tasks.path);
    let out = output(&mut cmd);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("--deps-from") && err.contains("results") && err.contains("base"),
        "{err}"
    );
    assert!(!runs_dir(repo.path()).exists());
}
