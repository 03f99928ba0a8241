//! Figure 10: a task's checkout on a repository whose history dwarfs its working tree, 16 at
//! once: sandpen's (its report's `checkout_s`, and the checkout's size on disk) beside what a
//! user would script: `git worktree add` of the same commit (the cheapest checkout git has),
//! then `docker run`, 16 at once.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use crate::ctx::{Ctx, Measured, run_ok};
use crate::row::Row;
use crate::stats::Sample;
use crate::target::{Bound, Target};

pub const FIGURE: &str = "10. checkout, large history, 16 at once";

pub fn measure(ctx: &Ctx, notes: &mut Vec<String>) -> Measured<Vec<Row>> {
    // About 300 MB of history (incompressible files, committed, then deleted) under a working
    // tree of about 20 MB; a tenth of both when quick.
    let (big_files, tree_files, n) = if ctx.quick { (3, 200, 4) } else { (30, 2000, 16) };
    let repo = large_history_repo(ctx, big_files, tree_files)?;
    let history = du(&repo.join(".git"))?;
    let tree = du(&repo)? - history;

    let tasks = ctx.task_file(n, "true", "256m", 0.5);
    let (mut times, mut disks, mut wt_times, mut wt_disks) = (vec![], vec![], vec![], vec![]);
    // Rounds alternate, each after the disk has settled, so neither side pays for the other's
    // writes.
    for round in 0..if ctx.quick { 1 } else { 2 } {
        sync();
        let runs: Vec<Command> = (0..n)
            .map(|_| ctx.docker_run("true", &["--rm", "--network", "none"]))
            .collect();
        for (t, d) in worktrees(&repo, runs, round)? {
            wt_times.push(t);
            wt_disks.push(d);
        }
        sync();
        let (_, report, _) = ctx.sandpen_run_at(&repo, &tasks, n, &["--network", "none"])?;
        for t in report["tasks"].as_array().ok_or("no tasks in the report")? {
            times.push(t["timings"]["checkout_s"].as_f64().ok_or("no checkout_s")?);
            disks.push(du(Path::new(t["checkout"].as_str().ok_or("no checkout path")?))?);
        }
    }
    let (times, disks) = (Sample::new(times), Sample::new(disks));
    let (wt_times, wt_disks) = (Sample::new(wt_times), Sample::new(wt_disks));
    let time_ratio = times.median() / wt_times.median();
    let disk_ratio = disks.median() / wt_disks.median();
    let mib = |b: f64| b / (1024.0 * 1024.0);
    notes.push(format!(
        "Checkout (figure 10): a generated repository of {:.0} MiB of history under a {:.1} MiB \
         working tree; {n} tasks at once (`-j {n}`, `--network none`), each task's `checkout_s` \
         from the report (clone borrowing the objects, checkout, refs recorded, handed to the \
         task's user, its files' times set back and their stat data recorded in its index) and its checkout's size (`du`), beside {n} `git \
         worktree add` then `docker run --rm` at once, each worktree timed as a process, its size with its \
         `.git/worktrees/<name>`; two rounds each, alternating, the disk synced before each. \
         The ratio shown is time's; disk's is {disk_ratio:.2}x.",
        mib(history),
        mib(tree)
    ));
    Ok(vec![Row::new(
        FIGURE,
        format!("{} s, {:.1} MiB per checkout", times.show(3), mib(disks.median())),
        format!(
            "git worktree add {} s, {:.1} MiB",
            wt_times.show(3),
            mib(wt_disks.median())
        ),
        Some(time_ratio),
        Target::of(Bound::AtMost(1.2, "x"), time_ratio).and(Bound::AtMost(1.2, "x"), disk_ratio),
    )])
}

/// What a user would script instead: per task, a worktree of HEAD, then `docker run` of the
/// same image and command, all tasks at once. Each worktree is timed as a process, under the
/// same load of containers starting as sandpen's checkouts: (seconds, bytes on disk with its
/// metadata in `.git/worktrees/<name>`). Concurrent `worktree add`s can trip on each other's
/// metadata: one that fails is tried again (up to 5 times), timed again.
fn worktrees(repo: &Path, runs: Vec<Command>, round: usize) -> Measured<Vec<(f64, f64)>> {
    let handles: Vec<_> = runs
        .into_iter()
        .enumerate()
        .map(|(i, mut run)| {
            let repo = repo.to_path_buf();
            std::thread::spawn(move || {
                let name = format!("r{round}w{i}");
                let dir = repo.join(".bench-worktrees").join(&name);
                let mut add = Command::new("git");
                add.arg("-C")
                    .arg(&repo)
                    .args(["worktree", "add", "-q", "--detach"])
                    .arg(&dir)
                    .arg("HEAD");
                let mut last = Err(String::new());
                for _ in 0..5 {
                    let start = Instant::now();
                    last = run_ok(&mut add).map(|_| start.elapsed().as_secs_f64());
                    if last.is_ok() {
                        break;
                    }
                }
                let t = last?;
                run_ok(&mut run)?;
                Ok::<_, String>((t, dir, name))
            })
        })
        .collect();
    let mut out = Vec::new();
    for h in handles {
        let (t, dir, name) = h.join().map_err(|_| "a worktree thread panicked")??;
        out.push((t, du(&dir)? + du(&repo.join(".git/worktrees").join(name))?));
    }
    Ok(out)
}

fn sync() {
    let _ = Command::new("sync").status();
}

/// Bytes on disk under `dir`, each hard-linked file once.
fn du(dir: &Path) -> Measured<f64> {
    let out = run_ok(Command::new("du").arg("-sk").arg(dir))?;
    let kib: f64 = out
        .split_whitespace()
        .next()
        .and_then(|k| k.parse().ok())
        .ok_or_else(|| format!("du said {out:?}"))?;
    Ok(kib * 1024.0)
}

/// `big_files` files of 10 MB of random bytes committed one by one, then deleted; then
/// `tree_files` text files of 10 kB as the working tree.
fn large_history_repo(ctx: &Ctx, big_files: usize, tree_files: usize) -> Measured<PathBuf> {
    let repo = ctx.work.path().join(format!("history-{}", ctx.next()));
    std::fs::create_dir_all(repo.join("src")).map_err(|e| e.to_string())?;
    let git = |args: &[&str]| {
        run_ok(
            Command::new("git")
                .arg("-C")
                .arg(&repo)
                .args(["-c", "user.name=b", "-c", "user.email=b@b"])
                .args(args),
        )
    };
    git(&["init", "-q"])?;
    for i in 0..big_files {
        let f = std::fs::File::create(repo.join("big.bin")).map_err(|e| e.to_string())?;
        run_ok(
            Command::new("head")
                .args(["-c", "10000000", "/dev/urandom"])
                .stdout(f),
        )?;
        git(&["add", "big.bin"])?;
        git(&["commit", "-qm", &format!("large file, version {i}")])?;
    }
    if big_files > 0 {
        git(&["rm", "-q", "big.bin"])?;
    }
    for i in 0..tree_files {
        let text = format!("line {i}\n").repeat(10_000 / 8);
        std::fs::write(repo.join("src").join(format!("f{i:04}.txt")), text).map_err(|e| e.to_string())?;
    }
    git(&["add", "-A"])?;
    git(&["commit", "-qm", "a working tree of small files"])?;
    git(&["gc", "-q"])?;
    // The worktrees go inside the repository, out of its status as sandpen's runs are.
    std::fs::write(repo.join(".git/info/exclude"), "/.bench-worktrees/\n").map_err(|e| e.to_string())?;
    Ok(repo)
}
