//! The disk watcher: everything a task's container can write (its checkout and its out
//! directory) measured together against the task's disk limit: on the host for a local
//! container (`runner::task`), in the container itself on a Swarm node (`swarm::entry`).
//!
//! A walk of the trees is the measure, and a walk costs time in proportion to the files, so it
//! is not repeated blindly. Between walks the filesystems' used space is read (`statvfs`, a
//! few microseconds) every `POLL`: the task cannot have grown by more than its filesystem did,
//! so while that growth stays below the headroom the last walk left, the task is under its
//! limit and no walk is needed. The reads come no more often than the headroom needs: a task
//! cannot write faster than `FASTEST_WRITE`, so with gigabytes left a read every half second
//! holds the limit as closely as one every `POLL` (32 idle tasks under the default 10g limit
//! woke 1,600 times a second at a fixed `POLL`). A walk comes at the latest after `BACKSTOP` all the same
//! (another process freeing space on the same filesystem could hide the task's growth), and
//! never sooner than `COST_FACTOR` times the last walk's own duration after it, so a big tree
//! takes at most a tenth of a core. A task found over its limit is stopped at once; after its
//! container stopped the trees are measured once more, so the peak includes what it wrote
//! while it was being stopped.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

/// How often the filesystems' used space is read between walks.
pub const POLL: Duration = Duration::from_millis(20);
/// A bound on how fast a task's files can grow (page-cache writes of one container): the
/// reads of used space are spaced so that at this rate a task uses at most half its headroom
/// between two of them.
const FASTEST_WRITE: u64 = 8 << 30;
/// The longest time between two walks (a tree that takes longer to walk waits longer).
pub const BACKSTOP: Duration = Duration::from_secs(2);
/// A walk is followed by at least this many times its duration without one.
const COST_FACTOR: u32 = 10;
/// The measure after the container stopped is given up after this long.
const FINAL_LIMIT: Duration = Duration::from_secs(10);

/// What the trees held on disk while they were measured, and what measuring cost.
#[derive(Debug, Default, Clone, Copy)]
pub struct DiskSummary {
    pub peak_bytes: Option<u64>,
    pub walks: u32,
    /// Time spent walking the trees, in all.
    pub walking: Duration,
}

/// Measures `trees` together until `stop` (the container has stopped), then once more; cancels
/// `exceeded` once they hold more than `limit`. A tree that does not exist counts nothing.
pub async fn watch(
    trees: Vec<PathBuf>,
    limit: Option<u64>,
    exceeded: CancellationToken,
    stop: CancellationToken,
) -> DiskSummary {
    let sum = Arc::new(Tally::default());
    // Ends the blocking loop at `stop`, or when this watcher is dropped, at once: a runtime
    // shutting down waits for its blocking threads (a thread asleep between reads held every
    // run's exit up to 200 ms).
    let quit = Quit::new(stop.child_token());
    let (t, s, e, q) = (trees.clone(), sum.clone(), exceeded, quit.clone());
    // One blocking thread for the task's life: the walks and the polls block, and a stuck
    // filesystem must not hold an async worker. Abandoned at `stop`; it ends at once, or at
    // the end of the walk it is in.
    let watching = tokio::task::spawn_blocking(move || watch_blocking(&t, limit, &e, &q, &s));
    tokio::select! {
        _ = watching => stop.cancelled().await,
        _ = stop.cancelled() => {}
    }
    drop(quit);
    let (t, s) = (trees, sum.clone());
    let last = tokio::task::spawn_blocking(move || s.walk(&t));
    let _ = tokio::time::timeout(FINAL_LIMIT, last).await;
    sum.summary()
}

/// The end of a watcher's blocking loop: cancelled (with `stop`, its parent, too) and its
/// sleep woken when either side's handle is dropped: the watcher's, or the thread's own when
/// the loop ended by itself.
#[derive(Clone)]
struct Quit(Arc<QuitInner>);

struct QuitInner {
    token: CancellationToken,
    woken: Mutex<bool>,
    wake: Condvar,
}

impl Quit {
    fn new(token: CancellationToken) -> Self {
        Self(Arc::new(QuitInner {
            token,
            woken: Mutex::new(false),
            wake: Condvar::new(),
        }))
    }

    fn is_cancelled(&self) -> bool {
        self.0.token.is_cancelled()
    }

    /// Sleeps `d`, or less if the watcher quits meanwhile.
    fn sleep(&self, d: Duration) {
        let woken = self.0.woken.lock().unwrap_or_else(|e| e.into_inner());
        let _ = self.0.wake.wait_timeout_while(woken, d, |w| !*w);
    }

    fn quit(&self) {
        self.0.token.cancel();
        *self.0.woken.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.0.wake.notify_all();
    }
}

impl Drop for Quit {
    fn drop(&mut self) {
        self.quit();
    }
}

/// The watcher's findings, shared with its blocking thread.
#[derive(Default)]
struct Tally {
    peak: AtomicU64,
    walks: AtomicU64,
    walking_ns: AtomicU64,
}

impl Tally {
    /// Walks the trees; their size, recorded in the peak.
    fn walk(&self, trees: &[PathBuf]) -> (u64, Duration) {
        let began = Instant::now();
        let bytes = disk_usage(trees);
        let took = began.elapsed();
        self.peak.fetch_max(bytes, Ordering::Relaxed);
        self.walks.fetch_add(1, Ordering::Relaxed);
        self.walking_ns
            .fetch_add(took.as_nanos() as u64, Ordering::Relaxed);
        (bytes, took)
    }

    fn summary(&self) -> DiskSummary {
        let walks = self.walks.load(Ordering::Relaxed) as u32;
        DiskSummary {
            peak_bytes: (walks > 0).then(|| self.peak.load(Ordering::Relaxed)),
            walks,
            walking: Duration::from_nanos(self.walking_ns.load(Ordering::Relaxed)),
        }
    }
}

fn watch_blocking(
    trees: &[PathBuf],
    limit: Option<u64>,
    exceeded: &CancellationToken,
    stop: &Quit,
    sum: &Tally,
) {
    while !stop.is_cancelled() {
        // Read before the walk: growth during the walk counts towards the next one.
        let fs_before = fs_used(trees);
        let began = Instant::now();
        let (bytes, took) = sum.walk(trees);
        tracing::trace!(bytes, ?took, "walked");
        if limit.is_some_and(|l| bytes > l) {
            tracing::debug!(bytes, ?took, "over the disk limit");
            exceeded.cancel();
            return;
        }
        let headroom = limit.map(|l| l - bytes);
        let earliest = began + POLL.max(took * COST_FACTOR);
        let latest = began + BACKSTOP.max(took * COST_FACTOR);
        let poll = poll_interval(headroom);
        loop {
            stop.sleep(
                poll.min(latest.saturating_duration_since(Instant::now()))
                    .max(POLL),
            );
            let now = Instant::now();
            if stop.is_cancelled() || now >= latest {
                break;
            }
            if now >= earliest
                && let (Some(room), Some(before), Some(after)) = (headroom, fs_before, fs_used(trees))
                && after.saturating_sub(before) >= room
            {
                break;
            }
        }
    }
}

/// How long to sleep between reads of used space with `headroom` bytes left before the limit:
/// at `FASTEST_WRITE` the task uses at most half of it meanwhile; never sooner than `POLL`;
/// with no limit there is nothing to poll for, only the backstop's walk.
fn poll_interval(headroom: Option<u64>) -> Duration {
    let Some(room) = headroom else { return BACKSTOP };
    let secs = (room / 2) as f64 / FASTEST_WRITE as f64;
    Duration::from_secs_f64(secs).clamp(POLL, BACKSTOP)
}

/// The used space of the filesystems holding `trees`, added up (a filesystem holding two
/// counts twice, which only makes a walk come sooner). None when one cannot be read.
fn fs_used(trees: &[PathBuf]) -> Option<u64> {
    trees
        .iter()
        .filter(|t| t.exists())
        .map(|t| {
            let s = rustix::fs::statvfs(t).ok()?;
            Some(s.f_blocks.saturating_sub(s.f_bfree) * s.f_frsize)
        })
        .sum()
}

/// Bytes allocated on disk under `roots`: the one measure, shared with `prune`.
pub use crate::workspace::disk_usage_all as disk_usage;

#[cfg(test)]
mod tests {
    use super::*;

    fn tree_usage(root: &std::path::Path) -> u64 {
        disk_usage(&[root.to_path_buf()])
    }

    #[test]
    fn polls_are_spaced_by_the_headroom() {
        assert_eq!(
            poll_interval(None),
            BACKSTOP,
            "no limit: only the backstop's walk"
        );
        assert_eq!(
            poll_interval(Some(50 << 20)),
            POLL,
            "50 MiB left: as often as it can"
        );
        let default_limit = poll_interval(Some(10 << 30));
        assert!(default_limit >= Duration::from_millis(500), "{default_limit:?}");
        assert!(poll_interval(Some(u64::MAX)) <= BACKSTOP);
        // At the fastest write, a task uses at most half its headroom between two reads.
        for room in [1u64 << 20, 200 << 20, 1 << 30, 10 << 30] {
            let wrote = poll_interval(Some(room)).as_secs_f64() * FASTEST_WRITE as f64;
            assert!(
                wrote <= room as f64 / 2.0 || poll_interval(Some(room)) == POLL,
                "{room}"
            );
        }
    }

    #[test]
    fn disk_usage_counts_what_is_allocated_and_not_what_links_point_at() {
        let dir = tempfile::tempdir().unwrap();
        let empty = tree_usage(dir.path());
        std::fs::write(dir.path().join("a"), vec![1u8; 1 << 20]).unwrap();
        let with_file = tree_usage(dir.path());
        assert!(with_file >= empty + (1 << 20), "{with_file} vs {empty}");
        let big = tempfile::tempdir().unwrap();
        std::fs::write(big.path().join("b"), vec![1u8; 4 << 20]).unwrap();
        std::os::unix::fs::symlink(big.path(), dir.path().join("link")).unwrap();
        std::fs::hard_link(dir.path().join("a"), dir.path().join("a2")).unwrap();
        assert!(
            tree_usage(dir.path()) < with_file + (1 << 20),
            "a symlink is not followed, a hard link is counted once"
        );
        // Two trees together; one that does not exist counts nothing.
        let both = disk_usage(&[dir.path().into(), big.path().into(), dir.path().join("none")]);
        assert!(both >= with_file + (4 << 20), "{both}");
    }

    #[tokio::test]
    async fn the_watcher_fires_once_the_trees_together_are_over_the_limit() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        std::fs::write(a.path().join("a"), vec![1u8; 1 << 20]).unwrap();
        let (exceeded, stop) = (CancellationToken::new(), CancellationToken::new());
        let trees = vec![a.path().to_path_buf(), b.path().to_path_buf()];
        let watching = tokio::spawn(watch(trees, Some(3 << 19), exceeded.clone(), stop.clone()));
        tokio::time::sleep(POLL * 5).await;
        assert!(!exceeded.is_cancelled(), "1 MiB of 1.5 MiB");
        // The second tree grows: the next poll sees the filesystem grow past the headroom.
        let wrote = Instant::now();
        std::fs::write(b.path().join("b"), vec![1u8; 1 << 20]).unwrap();
        tokio::time::timeout(BACKSTOP, exceeded.cancelled())
            .await
            .expect("the watcher fires");
        let noticed = wrote.elapsed();
        eprintln!("noticed after {noticed:?}");
        stop.cancel();
        let sum = watching.await.unwrap();
        assert!(sum.peak_bytes.unwrap() >= 2 << 20, "{sum:?}");
    }

    /// The watcher's thread, asleep between reads, wakes as soon as the watcher's handle goes
    /// (its end, or a drop): without the wake this test would wait an hour.
    #[test]
    fn a_sleeping_watcher_thread_wakes_when_the_watcher_goes() {
        let stop = CancellationToken::new();
        let quit = Quit::new(stop.child_token());
        let thread = quit.clone();
        let sleeper = std::thread::spawn(move || {
            thread.sleep(Duration::from_secs(3600));
            thread.is_cancelled()
        });
        std::thread::sleep(POLL);
        drop(quit);
        assert!(sleeper.join().unwrap(), "woken, and told to end");
        assert!(
            !stop.is_cancelled(),
            "the task's own stop is not the watcher's to cancel"
        );
    }

    /// This process's CPU time (user and system), from /proc (in ticks of 10 ms).
    fn cpu_time() -> Duration {
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
        let after_name = &stat[stat.rfind(')').unwrap() + 2..];
        let f: Vec<u64> = after_name
            .split(' ')
            .skip(11)
            .take(2)
            .map(|v| v.parse().unwrap())
            .collect();
        Duration::from_millis((f[0] + f[1]) * 10)
    }

    /// The cost of watching a quiet tree of 10,000 files: what the walks took over the time,
    /// and the process's CPU time meanwhile (the watcher's alone when this test runs alone).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_quiet_tree_of_ten_thousand_files_costs_little() {
        let dir = tempfile::tempdir().unwrap();
        for d in 0..100 {
            let sub = dir.path().join(format!("d{d}"));
            std::fs::create_dir(&sub).unwrap();
            for f in 0..100 {
                std::fs::write(sub.join(format!("f{f}")), b"x").unwrap();
            }
        }
        let (exceeded, stop) = (CancellationToken::new(), CancellationToken::new());
        let watching = tokio::spawn(watch(
            vec![dir.path().into()],
            Some(10 << 30),
            exceeded.clone(),
            stop.clone(),
        ));
        let window = BACKSTOP * 2 + Duration::from_millis(500);
        let cpu = cpu_time();
        tokio::time::sleep(window).await;
        stop.cancel();
        let sum = watching.await.unwrap();
        let cpu = cpu_time() - cpu;
        let share = sum.walking.as_secs_f64() / window.as_secs_f64();
        eprintln!(
            "10,000 files: {} walks in {window:?}, {:?} each, {:.2}% of the time walking; \
             CPU time of the process meanwhile {cpu:?}",
            sum.walks,
            sum.walking / sum.walks.max(1),
            share * 100.0
        );
        assert!(!exceeded.is_cancelled());
        // Quiet: a walk at the start, one per backstop, one at the end.
        assert!((3..=5).contains(&sum.walks), "{sum:?}");
        // 3.6% here (debug build); loose, for a machine busy with other work.
        assert!(share < 0.25, "{sum:?}");
    }
}
