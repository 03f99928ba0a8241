//! What follows a running container, one tokio task each: its output into the capped logs,
//! its stats, its workflow phases from the state file, and its disk use. Started together once
//! the container runs, ended together once it stopped; what they found goes into the
//! container's end.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::Ctx;
use super::watch::{self, OutputSummary};
use crate::capped_log::CappedLog;
use crate::disk_watch::{self as disk, DiskSummary};
use crate::engine::{ContainerEngine, OutputStream};
use crate::monitor::StatsSummary;
use crate::task_log::streams::StreamOrder;

/// How long output may keep arriving after the container stopped.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// The files a task's watchers write: made before the container is attached, so that a task
/// whose logs cannot be written never starts.
pub struct LogFiles {
    pub log: CappedLog,
    pub stderr_log: CappedLog,
    pub stats_log: File,
}

/// What the watchers found, for the container's end.
#[derive(Default)]
pub struct Found {
    pub output: OutputSummary,
    /// Bytes of stdout and of stderr the capped logs left out.
    pub log_dropped: (u64, u64),
    pub stats: StatsSummary,
    pub disk: DiskSummary,
    pub problems: Vec<String>,
}

/// The running watchers of one container, and the signals they raise.
pub struct Watchers {
    /// The output broke the task's governance (e.g. a forbidden tool call).
    pub violation: CancellationToken,
    /// The task's files went over its disk limit.
    pub disk_over: CancellationToken,
    stop: CancellationToken,
    dropped: (Arc<AtomicU64>, Arc<AtomicU64>),
    output: JoinHandle<Result<OutputSummary, String>>,
    stats: JoinHandle<StatsSummary>,
    phases: JoinHandle<()>,
    disk: JoinHandle<DiskSummary>,
}

impl Watchers {
    /// Starts following container `id`, started at `started`, whose output is `attached`.
    pub fn spawn<E: ContainerEngine>(
        ctx: &Ctx<E>,
        id: &str,
        checkout: &Path,
        files: LogFiles,
        attached: OutputStream,
        started: Instant,
    ) -> Self {
        let task = &ctx.task.id;
        let layout = &ctx.cfg.layout;
        let (violation, disk_over, stop) = (
            CancellationToken::new(),
            CancellationToken::new(),
            CancellationToken::new(),
        );
        let state_file_seen = Arc::new(AtomicBool::new(false));
        // Read once the output watcher has ended, however it ended (the logs finish as they drop).
        let dropped = (files.log.dropped(), files.stderr_log.dropped());
        let output = tokio::spawn(watch::output(
            attached,
            watch::OutputFiles {
                log: files.log,
                stderr_log: files.stderr_log,
                order: StreamOrder::create(&layout.streams_log(task)).ok(),
            },
            task.clone(),
            ctx.events.clone(),
            violation.clone(),
            state_file_seen.clone(),
        ));
        // Subscribed at once: the engine's first sample comes at its next tick, within a second.
        let stats = tokio::spawn(watch::stats(
            ctx.engine.stats(id),
            started,
            files.stats_log,
            task.clone(),
            ctx.events.clone(),
            stop.clone(),
        ));
        let phases = tokio::spawn(watch::phases(
            checkout.to_path_buf(),
            task.clone(),
            ctx.events.clone(),
            stop.clone(),
            state_file_seen,
        ));
        // The out directory is mounted writable for the in-place collection, the session
        // directory for the agent's transcript: they count too.
        let trees = vec![
            checkout.to_path_buf(),
            layout.collect_out(task),
            layout.session(task),
        ];
        let disk = tokio::spawn(disk::watch(
            trees,
            ctx.task.disk_bytes,
            disk_over.clone(),
            stop.clone(),
        ));
        Self {
            violation,
            disk_over,
            stop,
            dropped,
            output,
            stats,
            phases,
            disk,
        }
    }

    /// Ends the watchers once the container is down (`settled`; else given up) and says what
    /// they found. Output may drain until `deadline`, at most `DRAIN_TIMEOUT`.
    pub async fn finish(self, task: &str, settled: bool, deadline: Instant) -> Found {
        self.stop.cancel();
        let mut end = Found::default();
        // Output of a container the engine lost may never end: a short look, then on.
        let drain = match settled {
            true => DRAIN_TIMEOUT.min(deadline.saturating_duration_since(Instant::now())),
            false => Duration::ZERO,
        };
        let mut output = self.output;
        match tokio::time::timeout(drain.max(Duration::from_millis(500)), &mut output).await {
            Ok(Ok(Ok(sum))) => end.output = sum,
            Ok(Ok(Err(e))) => end.problems.push(e),
            Ok(Err(join)) => end.problems.push(format!("reading output failed: {join}")),
            Err(_) if settled => end.problems.push(format!(
                "output kept coming {}s after the container stopped",
                drain.as_secs()
            )),
            Err(_) => {}
        }
        // A stream the engine never ends must not outlive the task (it holds an event sender).
        output.abort();
        end.log_dropped = (
            self.dropped.0.load(Ordering::Relaxed),
            self.dropped.1.load(Ordering::Relaxed),
        );
        tracing::debug!(task, "output drained");
        end.stats = self.stats.await.unwrap_or_default();
        end.disk = self.disk.await.unwrap_or_default();
        let (walks, walking) = (end.disk.walks, end.disk.walking);
        tracing::debug!(task, walks, ?walking, peak = ?end.disk.peak_bytes, "disk measured");
        let _ = self.phases.await;
        tracing::debug!(task, "watchers ended");
        end
    }
}
