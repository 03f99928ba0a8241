//! Checkouts that borrow the user's objects: their cost is the working tree's, whatever the
//! history, and every guarantee holds (results, the user's objects untouched, git gc and
//! rewritten history inside a task). Real engine, probe image.

mod common;

use std::path::Path;

use common::*;

/// Bytes on disk under `dir` (`du -sb` counts hard links once, as the disk does).
fn disk(dir: &Path) -> u64 {
    let out = output(std::process::Command::new("du").arg("-sk").arg(dir));
    assert!(out.status.success(), "du: {}", stderr(&out));
    let kib: u64 = stdout(&out).split_whitespace().next().unwrap().parse().unwrap();
    kib * 1024
}

/// A repository whose history (about 48 MB of incompressible files, committed and deleted)
/// dwarfs its working tree (about 1 MB).
fn repo_with_large_history() -> tempfile::TempDir {
    let repo = make_repo();
    let p = repo.path();
    for i in 0..6 {
        let big = p.join(format!("big-{i}.bin"));
        let out = output(
            std::process::Command::new("head")
                .args(["-c", "8000000", "/dev/urandom"])
                .stdout(std::fs::File::create(&big).unwrap()),
        );
        assert!(out.status.success());
        git(p, &["add", "."]);
        git(p, &["commit", "-qm", &format!("a large file {i}")]);
    }
    for i in 0..6 {
        git(p, &["rm", "-q", &format!("big-{i}.bin")]);
    }
    std::fs::create_dir(p.join("src")).unwrap();
    for i in 0..100 {
        std::fs::write(p.join(format!("src/f{i}.txt")), format!("{i}\n").repeat(2000)).unwrap();
    }
    git(p, &["add", "."]);
    git(p, &["commit", "-qm", "the large files go, a small tree stays"]);
    git(p, &["gc", "-q"]);
    repo
}

#[test]
fn eight_checkouts_cost_their_working_trees_and_every_result_comes_back() {
    let repo = repo_with_large_history();
    let p = repo.path();
    let objects_before = disk(&p.join(".git/objects"));
    assert!(objects_before > 40_000_000, "history of {objects_before} bytes");
    let tree = {
        let all = disk(p);
        all - disk(&p.join(".git"))
    };
    let base = git(p, &["rev-parse", "HEAD"]).trim().to_string();
    let refs_before = git(p, &["for-each-ref", "--format=%(refname) %(objectname)"]);

    // `git add -A` over the whole tree: an unchanged file must not be stored again (git writes
    // anew, locally, an object it cannot freshen in the read-only borrowed store).
    let mut toml = String::new();
    for i in 0..6 {
        toml.push_str(&format!(
            "[[task]]\nid = \"t{i}\"\ntimeout = \"2m\"\nprompt_text = \"echo {i} > result-{i}.txt; git add -A; git commit -qm 'task {i}'\"\n\n"
        ));
    }
    // git gc in a checkout that borrows: repacks only its own objects, prunes only its own.
    toml.push_str(
        "[[task]]\nid = \"gc\"\ntimeout = \"2m\"\nprompt_text = \"echo gc > gc.txt; git add gc.txt; git commit -qm gc; git gc --prune=now --aggressive --quiet; git fsck --no-progress && git log --oneline | wc -l > count.txt; git add count.txt; git commit -qm count\"\n\n",
    );
    // History rewritten: the base commit amended, then a second commit on top.
    toml.push_str(
        "[[task]]\nid = \"rewrite\"\ntimeout = \"2m\"\nprompt_text = \"git rm -q src/f0.txt; git commit -q --amend -m 'rewritten base'; echo r > r.txt; git add r.txt; git commit -qm after; git reflog expire --expire=now --all; git gc --prune=now --quiet\"\n",
    );
    let run = run_tasks(p, &toml, &["--jobs", "8", "--network", "none"]);
    assert_eq!(run.code, 0, "{}", run.dump());
    let report = run.report();
    let run_id = field(&report, "run_id");

    for i in 0..6 {
        let t = task(&report, &format!("t{i}"));
        let b = field(t, "branch");
        assert_eq!(
            git(p, &["show", &format!("{b}:result-{i}.txt")]),
            format!("{i}\n")
        );
        assert_eq!(
            git(p, &["rev-parse", &format!("{b}~1")]).trim(),
            base,
            "t{i} starts at the base"
        );
    }
    let gc = field(task(&report, "gc"), "branch");
    assert_eq!(git(p, &["show", &format!("{gc}:gc.txt")]), "gc\n");
    assert_eq!(
        git(p, &["show", &format!("{gc}:count.txt")]).trim(),
        "9",
        "git in the checkout still sees the whole history after its gc"
    );
    let rewrite = task(&report, "rewrite");
    let rb = field(rewrite, "branch");
    assert_eq!(git(p, &["show", &format!("{rb}:r.txt")]), "r\n");
    assert_eq!(
        git(p, &["log", "-1", "--format=%s", &format!("{rb}~1")]).trim(),
        "rewritten base"
    );
    assert!(
        git_output(p, &["cat-file", "-e", &format!("{rb}:src/f0.txt")])
            .status
            .code()
            != Some(0)
    );

    // The user's repository: whole, and nothing of it changed but the new result branches.
    let fsck = git_output(p, &["fsck", "--strict", "--no-progress"]);
    assert!(fsck.status.success(), "git fsck: {}", stderr(&fsck));
    let refs_after = git(p, &["for-each-ref", "--format=%(refname) %(objectname)"]);
    let kept: Vec<&str> = refs_after
        .lines()
        .filter(|l| !l.starts_with("refs/heads/sandpen/"))
        .collect();
    assert_eq!(kept, refs_before.lines().collect::<Vec<_>>());

    // Disk: eight checkouts at most 1.5 times the working tree each, plus what they wrote
    // (a few small files, logs and the report).
    let runs = runs_dir(p).join(run_id);
    let used = disk(&runs);
    let bound = 8 * tree * 3 / 2 + 1_000_000;
    eprintln!(
        "working tree {tree} bytes; history {objects_before} bytes; the run's directory {used} bytes (bound {bound})"
    );
    assert!(
        used <= bound,
        "the run's directory holds {used} bytes, over {bound}"
    );

    // Once collected, a checkout holds no repository git would find: on the host, git in it
    // finds the user's own git directory around the runs. The work is on its branch.
    let checkout = runs.join("t0");
    let found = git(&checkout, &["rev-parse", "--absolute-git-dir"]);
    let users = git(p, &["rev-parse", "--absolute-git-dir"]);
    assert_eq!(
        found.trim(),
        users.trim(),
        "git in a collected checkout finds the user's"
    );
    let branch = format!("sandpen/t0/{run_id}");
    assert_eq!(git(p, &["log", "-1", "--format=%s", &branch]).trim(), "task 0");
}

#[test]
fn a_task_cannot_write_the_borrowed_objects() {
    let repo = make_repo();
    let p = repo.path();
    let run = run_tasks(
        p,
        r#"
[[task]]
id = "writer"
timeout = "1m"
prompt_text = "set -e; a=$(cat .git/objects/info/alternates); test -d \"$a\"; if touch \"$a/planted\" 2>/dev/null; then echo wrote > verdict; else echo refused > verdict; fi; rm -rf \"$a\"/* 2>/dev/null || true; git log -1 --format=%s > seen; git add verdict seen; git commit -qm checked"
"#,
        &["--network", "none"],
    );
    assert_eq!(run.code, 0, "{}", run.dump());
    let b = field(task(&run.report(), "writer"), "branch").to_string();
    assert_eq!(git(p, &["show", &format!("{b}:verdict")]), "refused\n");
    assert_eq!(git(p, &["show", &format!("{b}:seen")]), "initial commit\n");
    assert!(!p.join(".git/objects/planted").exists());
    let fsck = git_output(p, &["fsck", "--strict", "--no-progress"]);
    assert!(fsck.status.success(), "git fsck: {}", stderr(&fsck));
}
