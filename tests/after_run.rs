//! The boundary after a run: what a result or a task's leftovers can do to the user's side.
//! A merged result cannot remove or redirect the runs; the salvage takes no large files and
//! survives a task stopped in the middle of a git command. Real engine, probe image (whose
//! `claude` runs the prompt as a shell script).

mod common;

use std::path::Path;

use common::*;

/// Every path under `dir` (not following links).
fn paths_under(dir: &Path) -> Vec<std::path::PathBuf> {
    walkdir::WalkDir::new(dir)
        .follow_links(false)
        .into_iter()
        .map(|e| e.unwrap().path().to_path_buf())
        .collect()
}

#[test]
fn a_merged_result_can_neither_remove_nor_redirect_the_runs() {
    let repo = make_repo();
    let p = &std::fs::canonicalize(repo.path()).unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    // Results that track `.sandpen` (where older sandpens kept the runs): as a file, and with a
    // symlink at `.sandpen/runs` to a place outside the repository.
    let toml = format!(
        "[[task]]\nid = \"file\"\nprompt_text = \"set -e; echo not-a-directory > .sandpen; \
         git add -f .sandpen; git commit -qm file\"\n\n\
         [[task]]\nid = \"link\"\nprompt_text = \"set -e; mkdir .sandpen; ln -s {} .sandpen/runs; \
         git add -f .sandpen/runs; git commit -qm link\"\n",
        elsewhere.path().display()
    );
    let run = run_tasks(p, &toml, &[]);
    assert_eq!(run.code, 0, "{}", run.dump());
    let report = run.report();
    let run_id = field(&report, "run_id").to_string();
    let before = paths_under(&runs_dir(p));
    assert!(before.len() > 10, "the run's files: {before:?}");
    let main = git(p, &["rev-parse", "HEAD"]);
    for id in ["file", "link"] {
        // The user takes the result in.
        git(
            p,
            &["merge", "-q", "--no-edit", &format!("sandpen/{id}/{run_id}")],
        );
        assert!(p.join(".sandpen").symlink_metadata().is_ok(), "{id}: merged");
        let ps = output(sandpen().arg("ps").arg("--repo").arg(p));
        assert!(
            ps.status.success() && stdout(&ps).contains(&run_id),
            "{id}: ps still lists the run: {}{}",
            stdout(&ps),
            stderr(&ps)
        );
        for f in &before {
            assert!(
                f.symlink_metadata().is_ok(),
                "{id}: {} is still there",
                f.display()
            );
        }
        // The next run writes where it should, and nothing through the task's link.
        let next = run_tasks(p, "[[task]]\nid = \"after\"\nprompt_text = \"echo after\"\n", &[]);
        assert_eq!(next.code, 0, "{id}: {}", next.dump());
        let next_id = field(&next.report(), "run_id").to_string();
        assert!(runs_dir(p).join(&next_id).join("report.json").is_file(), "{id}");
        assert_eq!(
            paths_under(elsewhere.path()).len(),
            1,
            "{id}: nothing written through the link"
        );
        git(p, &["reset", "-q", "--hard", main.trim()]);
    }
}

#[test]
fn the_salvage_leaves_large_files_out_and_names_them() {
    let repo = make_repo();
    let pack_kib = |p: &Path| -> u64 {
        git(p, &["count-objects", "-v"])
            .lines()
            .filter_map(|l| l.split_once(": "))
            .filter(|(k, _)| *k == "size" || *k == "size-pack")
            .map(|(_, v)| v.trim().parse::<u64>().unwrap())
            .sum()
    };
    let before = pack_kib(repo.path());
    // One 300 MB file, one small one, and twelve of 9 MiB: eleven fit in the 100 MiB a
    // salvage takes in all, the twelfth does not. Random bytes: nothing compresses away.
    let script = "set -e\nhead -c 300000000 /dev/urandom > big.bin\necho small > small.txt\n\
                  mkdir parts\nfor i in 01 02 03 04 05 06 07 08 09 10 11 12; do \
                  head -c 9437184 /dev/urandom > parts/p$i; done\n";
    let toml = format!("[[task]]\nid = \"heavy\"\nprompt_text = '''\n{script}'''\n");
    let run = run_tasks(repo.path(), &toml, &[]);
    assert_eq!(run.code, 0, "{}", run.dump());
    let report = run.report();
    let t = task(&report, "heavy");
    let branch = field(t, "branch");
    let files = git(repo.path(), &["ls-tree", "-r", "--name-only", branch]);
    assert!(files.lines().any(|l| l == "small.txt"), "{files}");
    assert!(!files.lines().any(|l| l == "big.bin"), "{files}");
    let parts = files.lines().filter(|l| l.starts_with("parts/")).count();
    assert_eq!(parts, 11, "eleven parts fit in 100 MiB: {files}");
    let large: Vec<(String, u64)> = t["salvage_left_out_large"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (field(f, "path").to_string(), f["bytes"].as_u64().unwrap()))
        .collect();
    assert_eq!(large.len(), 2, "{t:#}");
    assert!(large.contains(&("big.bin".into(), 300_000_000)), "{large:?}");
    assert!(
        large
            .iter()
            .any(|(p, n)| p.starts_with("parts/p") && *n == 9437184),
        "{large:?}"
    );
    let grown_mb = (pack_kib(repo.path()) - before) / 1024;
    eprintln!("the repository grew by {grown_mb} MiB");
    assert!(grown_mb < 110, "the pack grew by {grown_mb} MiB");
    // They stay in the checkout, and the summary names them.
    let checkout = Path::new(field(t, "checkout"));
    assert_eq!(
        std::fs::metadata(checkout.join("big.bin")).unwrap().len(),
        300_000_000
    );
    assert!(
        stderr(&run.out).contains("big.bin") || stdout(&run.out).contains("big.bin"),
        "{}",
        run.dump()
    );
}

#[test]
fn a_task_stopped_mid_commit_still_has_its_work_salvaged() {
    // A stale index.lock, as a git command killed by a stop leaves it.
    let repo = make_repo();
    let toml = "[[task]]\nid = \"locked\"\ntimeout = \"3s\"\n\
                prompt_text = \"echo work > work.txt; touch .git/index.lock; sleep 60\"\n";
    let run = run_tasks(repo.path(), toml, &[]);
    let report = run.report();
    let t = task(&report, "locked");
    assert_eq!(field(t, "status"), "timed_out", "{t:#}");
    let branch = field(t, "branch");
    let shown = git(repo.path(), &["show", &format!("{branch}:work.txt")]);
    assert_eq!(shown, "work\n", "{t:#}");
}
