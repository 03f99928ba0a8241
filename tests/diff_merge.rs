//! Taking results in: `sandpen diff` shows what each result changed and which conflict,
//! `sandpen merge` brings them into the current branch, stopping before a conflict with the
//! repository as it was. Real engine, probe image (whose `claude` runs the prompt as a shell
//! script, so the tasks' commits are real).

mod common;

use std::path::Path;
use std::process::Output;

use common::*;

fn toml_task(id: &str, script: &str) -> String {
    format!("[[task]]\nid = \"{id}\"\ntimeout = \"2m\"\nprompt_text = '''\n{script}'''\n\n")
}

/// `sandpen diff|merge ARGS...` in the repository at `dir`.
fn sandpen_in(dir: &Path, args: &[&str]) -> Output {
    output(sandpen().current_dir(dir).args(args))
}

/// The repository's state a refused or stopped merge must not change: HEAD, the index, the
/// working tree (tracked and untracked).
fn state(dir: &Path) -> (String, String, String) {
    (
        git(dir, &["rev-parse", "HEAD"]),
        git(dir, &["ls-files", "--stage"]),
        git(dir, &["status", "--porcelain", "--untracked-files=all"]),
    )
}

fn run_id_of(run: &Run) -> String {
    assert_eq!(run.code, 0, "{}", run.dump());
    field(&run.report(), "run_id").to_string()
}

#[test]
fn independent_results_are_shown_with_their_figures_and_merge_one_commit_each() {
    let repo = make_repo();
    let dir = repo.path();
    let mut toml = toml_task(
        "a",
        "set -e\necho a > a.txt\nmkdir -p .github/workflow-states/a\necho '{}' > .github/workflow-states/a/state.json\n\
         git add -A; git commit -qm 'add a'\n",
    );
    toml += &toml_task(
        "b",
        "set -e\nprintf 'b1\\nb2\\n' > b.txt; git add b.txt; git commit -qm 'add b'\n\
         echo more >> README; git commit -qam 'extend README'\n",
    );
    toml += &toml_task("idle", "true\n");
    let run = run_tasks(dir, &toml, &[]);
    let id = run_id_of(&run);
    let report = run.report();
    // The report has the figures from collection time.
    assert_eq!(
        task(&report, "a")["changes"],
        serde_json::json!({"files": 2, "insertions": 2, "deletions": 0})
    );
    assert_eq!(
        task(&report, "b")["changes"],
        serde_json::json!({"files": 2, "insertions": 3, "deletions": 0})
    );
    assert!(task(&report, "idle")["changes"].is_null());
    assert!(
        stdout(&run.out).contains("2 commit(s), 2 files changed, +3 -0"),
        "{}",
        run.dump()
    );

    let diff = sandpen_in(dir, &["diff", &id]);
    let text = stdout(&diff);
    assert!(diff.status.success(), "{}{}", text, stderr(&diff));
    for want in [
        "a (succeeded): sandpen/a/",
        "1 commit since",
        "add a",
        "a.txt  ",
        "b (succeeded): sandpen/b/",
        "2 commits since",
        "2 files changed, +3 -0",
        "extend README",
        "README  +1 -0",
        "b.txt   +2 -0",
        "idle (succeeded): no result (no commits)",
        "no conflicts: the results merge with each other and with main",
    ] {
        assert!(text.contains(want), "diff says {want:?}:\n{text}");
    }
    let patch = stdout(&sandpen_in(dir, &["diff", &id, "b", "--patch"]));
    assert!(patch.contains("+b2") && !patch.contains("a.txt"), "{patch}");

    // Unknown names: a clear error, exit 2, nothing merged.
    let before = state(dir);
    for (args, said) in [
        (vec!["diff", &id, "nope"], "has no task nope"),
        (
            vec!["merge", "20990101-000000-zzzz"],
            "no run 20990101-000000-zzzz",
        ),
        (
            vec!["merge", &id, "idle"],
            "no result to merge for idle: no commits",
        ),
        (
            vec!["merge", &id, "--exclude", "../x"],
            "is not a path inside the repository",
        ),
    ] {
        let out = sandpen_in(dir, &args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(said) && stderr(&out).contains("fix:"),
            "{args:?}: {}",
            stderr(&out)
        );
        assert_eq!(state(dir), before, "{args:?} changed the repository");
    }

    // A unique beginning of the run id names it; the state files stay out when asked.
    let prefix = &id[..id.len() - 2];
    let merge = sandpen_in(dir, &["merge", prefix, "--exclude", ".github/workflow-states"]);
    assert!(merge.status.success(), "{}{}", stdout(&merge), stderr(&merge));
    let said = stdout(&merge);
    assert!(
        said.contains("merged a (sandpen/a/") && said.contains("merged b (sandpen/b/"),
        "{said}"
    );
    assert!(!stderr(&merge).contains("state files"), "{}", stderr(&merge));
    let merges = git(dir, &["rev-list", "--merges", "--count", "HEAD"]);
    assert_eq!(merges.trim(), "2", "two merge commits");
    assert_eq!(git(dir, &["rev-list", "--count", "HEAD"]).trim(), "6");
    assert_eq!(git(dir, &["status", "--porcelain", "--untracked-files=all"]), "");
    assert_eq!(std::fs::read_to_string(dir.join("a.txt")).unwrap(), "a\n");
    assert_eq!(std::fs::read_to_string(dir.join("b.txt")).unwrap(), "b1\nb2\n");
    assert!(!dir.join(".github").exists(), "the state files were left out");
    // Both results are in: a second merge has nothing to do.
    let again = sandpen_in(dir, &["merge", &id]);
    assert!(
        stdout(&again).contains("a: already in main"),
        "{}",
        stdout(&again)
    );
}

#[test]
fn conflicting_results_are_named_and_the_merge_stops_before_the_second() {
    let repo = make_repo();
    let dir = repo.path();
    let mut toml = String::new();
    for (id, line) in [("one", "first version"), ("two", "second version")] {
        toml += &toml_task(
            id,
            &format!("set -e\necho '{line}' > README\ngit commit -qam '{id} rewrites README'\n"),
        );
    }
    let run = run_tasks(dir, &toml, &[]);
    let id = run_id_of(&run);

    let diff = sandpen_in(dir, &["diff", &id]);
    let text = stdout(&diff);
    assert!(diff.status.success(), "{}{}", text, stderr(&diff));
    assert!(text.contains("conflicts:\n  one and two: README"), "{text}");
    assert!(!text.contains("and main"), "each merges into main alone: {text}");
    assert_eq!(git(dir, &["status", "--porcelain"]), "", "diff touched nothing");

    // A dirty working tree: refused, nothing changed (the user's edit stays).
    std::fs::write(dir.join("README"), "my own edit\n").unwrap();
    let before = state(dir);
    let dirty = sandpen_in(dir, &["merge", &id]);
    assert_eq!(dirty.status.code(), Some(2), "{}", stderr(&dirty));
    let err = stderr(&dirty);
    assert!(
        err.contains("uncommitted changes (README)") && err.contains("git stash"),
        "{err}"
    );
    assert_eq!(state(dir), before);
    assert_eq!(
        std::fs::read_to_string(dir.join("README")).unwrap(),
        "my own edit\n"
    );
    git(dir, &["checkout", "--", "README"]);

    let merge = sandpen_in(dir, &["merge", &id]);
    assert_eq!(
        merge.status.code(),
        Some(1),
        "{}{}",
        stdout(&merge),
        stderr(&merge)
    );
    assert!(
        stdout(&merge).contains("merged one (sandpen/one/"),
        "{}",
        stdout(&merge)
    );
    let err = stderr(&merge);
    assert!(
        err.contains(&format!("two (sandpen/two/{id}) conflicts with main in README"))
            && err.contains("fix:"),
        "{err}"
    );
    // As after the first merge: HEAD is it, the index and working tree are clean.
    let one = git(dir, &["rev-parse", &format!("sandpen/one/{id}")]);
    assert_eq!(git(dir, &["rev-parse", "HEAD^2"]), one);
    assert_eq!(git(dir, &["status", "--porcelain", "--untracked-files=all"]), "");
    assert!(git_output(dir, &["diff", "--cached", "--quiet"]).status.success());
    assert_eq!(
        std::fs::read_to_string(dir.join("README")).unwrap(),
        "first version\n"
    );
    assert!(!dir.join(".git/MERGE_HEAD").exists());
    // diff now says two conflicts with main too.
    let text = stdout(&sandpen_in(dir, &["diff", &id]));
    assert!(
        text.contains("two and main: README") && text.contains("already in main"),
        "{text}"
    );
}
