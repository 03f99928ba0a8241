//! The disk limit against a task that writes as fast as it can, with the probe image: into its
//! checkout and into its out directory (`/sandpen-out`, mounted writable for the in-place
//! collection), which count together. The peak is what sandpen measured (its report) and what
//! the test saw by walking the run directories itself meanwhile; `prune` takes the out
//! directory with the checkout.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::*;

const MIB: u64 = 1 << 20;
/// What a task may write past its limit before it is stopped.
const OVERSHOOT: u64 = 256 * MIB;

/// Bytes allocated under `root`, each inode once, not following links (like `du -s`).
fn du(root: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut seen = std::collections::HashSet::new();
    walkdir::WalkDir::new(root)
        .follow_links(false)
        .into_iter()
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .filter(|m| seen.insert((m.dev(), m.ino())))
        .map(|m| m.blocks() * 512)
        .sum()
}

/// Walks `root` over and over until dropped; the most it found.
struct Sampler {
    done: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<u32>>,
}

impl Sampler {
    fn start(root: PathBuf) -> Self {
        let (done, peak) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
        let (d, p) = (done.clone(), peak.clone());
        let thread = std::thread::spawn(move || {
            let mut n = 0;
            while !d.load(Ordering::Relaxed) {
                p.fetch_max(du(&root), Ordering::Relaxed);
                n += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
            n
        });
        Self {
            done,
            peak,
            thread: Some(thread),
        }
    }

    /// The most it saw, and how many times it looked.
    fn finish(mut self) -> (u64, u32) {
        self.done.store(true, Ordering::Relaxed);
        let n = self.thread.take().unwrap().join().unwrap();
        (self.peak.load(Ordering::Relaxed), n)
    }
}

/// Runs one task writing 4000 MiB with `dd` to `target` under `disk = "100m"`, deaf to SIGTERM
/// (a stop with a grace would let it write on); checks that it ended `disk_exceeded` with its
/// peak within the limit plus `OVERSHOOT`. Returns the run's directory and the report entry.
fn fast_writer(repo: &Path, target: &str) -> (PathBuf, serde_json::Value) {
    let toml = format!(
        r#"
[[task]]
id = "writer"
timeout = "2m"
disk = "100m"
prompt_text = """
trap '' TERM
echo small > small.txt && git add small.txt && git commit -qm small
dd if=/dev/zero of={target} bs=1M count=4000 2>&1 | tail -1
sleep 100
"""
"#
    );
    let runs = runs_dir(repo);
    let sampler = Sampler::start(runs.clone());
    let run = run_tasks(repo, &toml, &[]);
    let (seen, looks) = sampler.finish();
    let report = run.report();
    let t = task(&report, "writer").clone();
    let limit = t["disk_limit_bytes"].as_u64().unwrap();
    let peak = t["peak_disk_bytes"].as_u64().unwrap();
    let run_dir = runs.join(report["run_id"].as_str().unwrap());
    let left = du(&run_dir);
    eprintln!(
        "dd into {target}: limit {} MiB, peak measured by sandpen {} MiB, by the test's own walks {} MiB \
         ({looks} walks), left in the run directory {} MiB, task took {:.1} s",
        limit / MIB,
        peak / MIB,
        seen / MIB,
        left / MIB,
        t["duration_s"].as_f64().unwrap()
    );
    assert_eq!(field(&t, "status"), "disk_exceeded", "{t:#}\n{}", run.dump());
    assert_eq!(limit, 100 * MIB, "{t:#}");
    assert!(peak > limit, "it was over its limit when stopped: {t:#}");
    assert!(
        peak <= limit + OVERSHOOT,
        "peak {peak} past {limit} + 256 MiB: {t:#}\n{}",
        run.dump()
    );
    assert!(seen <= limit + OVERSHOOT, "the test saw {seen} on disk: {t:#}");
    assert!(
        t["duration_s"].as_f64().unwrap() < 60.0,
        "stopped on passing the limit, not at its sleep's end: {t:#}"
    );
    // The work before the limit came back.
    let branch = field(&t, "branch");
    assert_eq!(git(repo, &["show", &format!("{branch}:small.txt")]), "small\n");
    assert_eq!(run.code, 1, "{}", run.dump());
    (run_dir, t)
}

#[test]
fn a_fast_writer_into_its_checkout_is_stopped_close_to_its_disk_limit() {
    let repo = make_repo();
    let (run_dir, t) = fast_writer(repo.path(), "big");
    // The checkout keeps the work up to then, the part of the file written included (and
    // what the collection salvaged of it).
    let checkout = PathBuf::from(field(&t, "checkout"));
    assert!(checkout.starts_with(&run_dir), "{t:#}");
    let kept = du(&checkout);
    assert!(kept > 100 * MIB && kept <= 100 * MIB + OVERSHOOT, "{kept}: {t:#}");
}

#[test]
fn a_fast_writer_into_its_out_directory_is_stopped_and_its_dump_not_kept() {
    let repo = make_repo();
    let (run_dir, t) = fast_writer(repo.path(), "/sandpen-out/big");
    // The out directory is sandpen's channel with the container, not the task's work: what
    // the task dumped there is gone, whatever else of the run stays.
    let left = du(&run_dir);
    assert!(
        left <= 150 * 1_000_000,
        "{left} bytes left in {}: {t:#}",
        run_dir.display()
    );
    let dumped: Vec<_> = walkdir::WalkDir::new(&run_dir)
        .into_iter()
        .flatten()
        .filter(|e| e.file_name() == "big")
        .map(|e| e.path().to_path_buf())
        .collect();
    assert!(dumped.is_empty(), "{dumped:?}");
}

#[test]
fn prune_removes_the_out_directory_with_the_checkout() {
    let repo = make_repo();
    let root = repo.path();
    let run = run_tasks(
        root,
        r#"
[[task]]
id = "dumper"
prompt_text = """
set -e
echo work > work.txt && git add work.txt && git commit -qm work
head -c 8000000 /dev/urandom > /sandpen-out/dumped.bin
"""
"#,
        &["--network", "none"],
    );
    assert_eq!(run.code, 0, "{}", run.dump());
    let report = run.report();
    let t = task(&report, "dumper");
    assert_eq!(field(t, "status"), "succeeded", "{t:#}");
    let run_dir = runs_dir(root).join(report["run_id"].as_str().unwrap());
    let dumped = || -> Vec<PathBuf> {
        walkdir::WalkDir::new(&run_dir)
            .into_iter()
            .flatten()
            .filter(|e| e.file_name() == "dumped.bin")
            .map(|e| e.path().to_path_buf())
            .collect()
    };
    // Collected in place: the out directory stays after the run, with what the task put there.
    let before = dumped();
    assert_eq!(before.len(), 1, "{before:?}");
    let out_dir = before[0].parent().unwrap().to_path_buf();
    let checkout = PathBuf::from(field(t, "checkout"));
    assert!(!out_dir.starts_with(&checkout), "{}", out_dir.display());
    let (checkout_bytes, out_bytes) = (du(&checkout), du(&out_dir));

    let out = output(sandpen().args(["prune", "--repo"]).arg(root));
    let said = format!("{}{}", stdout(&out), stderr(&out));
    eprintln!("prune said:\n{said}(checkout {checkout_bytes} bytes, out directory {out_bytes})");
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(!checkout.exists(), "{said}");
    assert!(
        !out_dir.exists(),
        "the out directory goes with its checkout: {said}"
    );
    assert!(dumped().is_empty());
    // What it freed counts the out directory: over 8 MB, in the removal's line and the total.
    let line = said
        .lines()
        .find(|l| l.starts_with("removed ") && l.contains("dumper"))
        .unwrap_or_else(|| panic!("{said}"));
    let mb: f64 = line
        .split('(')
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    assert!(line.contains(" MiB)") && mb >= 7.6, "{line}");
    assert!(checkout_bytes + out_bytes >= 8_000_000);
}
