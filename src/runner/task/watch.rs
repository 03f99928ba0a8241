//! The watchers of a running task, each on its own tokio task and each returning a summary:
//! output (log files and the CLI's stream-json), engine stats and the workflow state file (the
//! size on disk is `disk.rs`'s). None of them prints; they report through events.

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bollard::models::ContainerStatsResponse;
use bytes::Bytes;

use futures_util::{FutureExt, StreamExt};
use tokio_util::sync::CancellationToken;

use crate::agent::{self, phases};
use crate::blocking_writer::BlockingWriter;
use crate::capped_log::CappedLog;
use crate::engine::{OutputStream, StatsStream, Stream};
use crate::monitor::{
    AgentEvent, AgentProgress, LineAssembler, StatsPoint, StatsSample, StatsSummary, parse_line, sample_after,
};
use crate::runner::channel::EventSender;
use crate::runner::events::{Event, now_rfc3339};
use crate::task_log::streams::StreamOrder;

/// How often the state file is read.
const PHASE_INTERVAL: Duration = Duration::from_secs(1);

/// What the output told: the CLI's progress, and the highest phase marker in its messages.
#[derive(Debug, Default)]
pub struct OutputSummary {
    pub progress: AgentProgress,
    pub marker_phase: u32,
}

/// Where the task's output goes: its two logs, and the order they were written in, if that
/// file could be made (`task_log::streams`).
pub struct OutputFiles {
    pub log: CappedLog,
    pub stderr_log: CappedLog,
    pub order: Option<StreamOrder>,
}

/// How many chunks of output may wait for the task's log writer: past that, reading the
/// container's output waits for the disk (the engine holds the rest).
const OUTPUT_QUEUE: usize = 64;
/// How many stats lines may wait for the stats log's writer before the stats watcher waits.
const STATS_QUEUE: usize = 64;

/// Appends every chunk to the task's capped log files as it arrives, on a writer thread off
/// the async workers (the head is on disk as it comes; past the cap, the tail waits in spill
/// files: see `CappedLog`), and follows the CLI's stream-json on stdout, every line of it
/// whatever the cap. `violation` is cancelled when the CLI's init event lacks the
/// WorkflowManager.
pub async fn output(
    mut output: OutputStream,
    files: OutputFiles,
    task: String,
    events: EventSender,
    violation: CancellationToken,
    state_file_seen: Arc<AtomicBool>,
) -> Result<OutputSummary, String> {
    let writer = BlockingWriter::spawn(files, OUTPUT_QUEUE, write_chunk, close_logs);
    let mut lines = LineAssembler::new();
    let mut sum = OutputSummary::default();
    let mut last_activity = String::new();
    // Events of one chunk, sent once it is handed to the writer: sending may wait for a slow
    // display.
    let mut pending: Vec<Event> = Vec::new();
    let mut on_line = |line: &[u8], sum: &mut OutputSummary, pending: &mut Vec<Event>| {
        let Some(ev) = parse_line(line) else { return };
        // The command line guarantees the agent is asked for; the init event proves the CLI
        // found it. Without it the task is stopped: no work outside the WorkflowManager.
        if let AgentEvent::Init(init) = &ev
            && !init.agents.iter().any(|a| a == agent::AGENT_NAME)
        {
            violation.cancel();
        }
        // The stream's own phase markers, shown while the task has no state file.
        if let AgentEvent::Assistant { text: Some(text), .. } = &ev
            && let Some(n) = phases::marker(text)
            && n > sum.marker_phase
        {
            sum.marker_phase = n;
            if !state_file_seen.load(Ordering::Relaxed) {
                pending.push(Event::Phase {
                    task: task.clone(),
                    phase: n,
                    name: phases::PHASES[n as usize - 1].to_string(),
                    completed: Vec::new(),
                });
            }
        }
        sum.progress.apply(&ev);
        let activity = sum.progress.activity();
        if activity != last_activity {
            last_activity.clone_from(&activity);
            pending.push(Event::Agent {
                task: task.clone(),
                activity,
                turns: sum.progress.turns,
                tool: sum.progress.tool.clone(),
                api_retries: sum.progress.api_retries,
            });
        }
    };
    while let Some(chunk) = output.next().await {
        let (stream, bytes) = chunk.map_err(|e| e.to_string())?;
        let stderr = stream == Stream::Stderr;
        if !stderr {
            for line in lines.push(&bytes) {
                on_line(&line, &mut sum, &mut pending);
            }
        }
        if !writer.send((stderr, bytes)).await {
            let e = writer.finish().await.err();
            return Err(e.map_or_else(|| "the task's log writer stopped".to_string(), |e| e.to_string()));
        }
        for event in pending.drain(..) {
            events.send_volume(event).await;
        }
    }
    if let Some(rest) = lines.finish() {
        on_line(&rest, &mut sum, &mut pending);
    }
    for event in pending {
        events.send_volume(event).await;
    }
    writer.finish().await.map_err(|e| e.to_string())?;
    Ok(sum)
}

/// One chunk into its log, its stream's switch noted (on the writer's thread).
fn write_chunk(files: &mut OutputFiles, (stderr, bytes): (bool, Bytes)) -> std::io::Result<()> {
    // Only for showing the logs interleaved: a failure to note it costs only that.
    if let Some(o) = &mut files.order
        && o.note(stderr, bytes.len()).is_err()
    {
        files.order = None;
    }
    let (log, which) = match stderr {
        false => (&mut files.log, "log"),
        true => (&mut files.stderr_log, "stderr log"),
    };
    log.write_all(&bytes)
        .map_err(|e| std::io::Error::other(format!("writing the task's {which}: {e}")))
}

/// The tails, copied after the heads, once the output ended (they may be large).
fn close_logs(files: OutputFiles) -> std::io::Result<()> {
    let _ = files.order.map(StreamOrder::finish);
    let tail = |e| std::io::Error::other(format!("writing the tail of the task's log: {e}"));
    files.log.finish().map_err(tail)?;
    files.stderr_log.finish().map_err(tail)?;
    Ok(())
}

/// Follows the engine's stats stream from the container's start until `stop` (the container
/// has stopped), then takes what the engine already sent: the last samples before removal.
/// The engine samples at one tick a second for all containers, so the first sample comes
/// within a second of the start; waiting before subscribing (as sandpen once did) left tasks
/// of two seconds with one sample or none, and a first sample has no CPU baseline (see
/// `sample_after`). Each sample goes to the task's stats log, the summary and an event.
pub async fn stats(
    mut stream: StatsStream,
    started: Instant,
    log: File,
    task: String,
    events: EventSender,
    stop: CancellationToken,
) -> StatsSummary {
    let mut rec = Recorder {
        log: Some(stats_writer(log)),
        started,
        prev: None,
        summary: StatsSummary::default(),
    };
    loop {
        let next = tokio::select! {
            s = stream.next() => s,
            _ = stop.cancelled() => None,
        };
        // An error ends the stream: the engine has nothing more to say about the container.
        let Some(Ok(raw)) = next else { break };
        if let Some((s, line)) = rec.record(raw) {
            rec.write(line).await;
            events
                .send_volume(Event::Stats {
                    task: task.clone(),
                    sample: s,
                })
                .await;
        }
    }
    while let Some(Some(Ok(raw))) = stream.next().now_or_never() {
        if let Some((s, line)) = rec.record(raw) {
            rec.write(line).await;
            events
                .send_volume(Event::Stats {
                    task: task.clone(),
                    sample: s,
                })
                .await;
        }
    }
    if let Some(w) = rec.log.take()
        && let Err(e) = w.finish().await
    {
        tracing::warn!("writing the stats log: {e}");
    }
    rec.summary
}

/// The stats log's writer: lines appended off the async workers.
fn stats_writer(log: File) -> BlockingWriter<Vec<u8>> {
    BlockingWriter::spawn(
        log,
        STATS_QUEUE,
        |f: &mut File, line: Vec<u8>| f.write_all(&line),
        |_| Ok(()),
    )
}

/// Turns raw samples into the stats log's lines and the summary.
struct Recorder {
    log: Option<BlockingWriter<Vec<u8>>>,
    started: Instant,
    prev: Option<ContainerStatsResponse>,
    summary: StatsSummary,
}

impl Recorder {
    /// The sample and its line for the stats log.
    fn record(&mut self, raw: ContainerStatsResponse) -> Option<(StatsSample, Vec<u8>)> {
        let s = sample_after(self.prev.as_ref(), &raw, self.started.elapsed());
        // A stopped container reports zeros; they are not a sample of the task.
        if s.memory_bytes == 0 && s.pids.unwrap_or(0) == 0 {
            return None;
        }
        self.prev = Some(raw);
        self.summary.add(&s);
        let point = StatsPoint::new(self.started.elapsed().as_secs_f64(), now_rfc3339(), &s);
        let mut line = serde_json::to_vec(&point).expect("a stats point serialises");
        line.push(b'\n');
        Some((s, line))
    }

    /// The samples are a record, not the task: a failed write drops the log, not the task.
    async fn write(&mut self, line: Vec<u8>) {
        if let Some(w) = &self.log
            && !w.send(line).await
            && let Some(w) = self.log.take()
        {
            let e = w.finish().await.err().map(|e| e.to_string()).unwrap_or_default();
            tracing::warn!("writing the stats log: {e}; no more samples are written");
        }
    }
}

/// Follows the task's workflow state file while it runs (about once a second). Each read runs
/// off the async workers and is abandoned at `stop`, so a read that blocks cannot hold the task.
pub async fn phases(
    checkout: PathBuf,
    task: String,
    events: EventSender,
    stop: CancellationToken,
    seen: Arc<AtomicBool>,
) {
    let mut last: Option<phases::PhaseState> = None;
    loop {
        let (c, t) = (checkout.clone(), task.clone());
        let read = tokio::task::spawn_blocking(move || phases::read_state(&c, &t));
        let now = tokio::select! {
            r = read => r.ok().flatten(),
            _ = stop.cancelled() => return,
        };
        if let Some(s) = now.as_ref().filter(|s| Some(*s) != last.as_ref()) {
            seen.store(true, Ordering::Relaxed);
            events
                .send_volume(Event::Phase {
                    task: task.clone(),
                    phase: s.phase,
                    name: s.name.clone(),
                    completed: s.completed.clone(),
                })
                .await;
            last = now;
        }
        tokio::select! {
            _ = tokio::time::sleep(PHASE_INTERVAL) => {}
            _ = stop.cancelled() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_sample_of_the_task_goes_to_its_stats_log_and_an_empty_one_does_not() {
        let raw = |read: &str, cpu: u64, mem: u64| -> ContainerStatsResponse {
            serde_json::from_value(serde_json::json!({
                "read": read,
                "cpu_stats": {"cpu_usage": {"total_usage": cpu}},
                "precpu_stats": {"cpu_usage": {"total_usage": 0}},
                "memory_stats": {"usage": mem, "limit": 1u64 << 30},
                "pids_stats": {"current": 2}
            }))
            .unwrap()
        };
        let samples = vec![
            Ok(raw("2026-01-01T00:00:01Z", 100_000_000, 1 << 20)),
            Ok(raw("2026-01-01T00:00:02Z", 600_000_000, 3 << 20)),
            // What the engine sends once the container has stopped.
            Ok(ContainerStatsResponse::default()),
        ];
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.stats.jsonl");
        let (events, mut rx) = EventSender::channel();
        // As if the container had started 0.5 s ago: the first sample's CPU is over that time.
        let started = Instant::now() - Duration::from_millis(500);
        let sum = stats(
            futures_util::stream::iter(samples).boxed(),
            started,
            File::create(&path).unwrap(),
            "t".into(),
            events,
            CancellationToken::new(),
        )
        .await;
        assert_eq!((sum.samples, sum.peak_memory_bytes), (2, 3 << 20));
        let lines: Vec<StatsPoint> = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].t >= 0.5 && lines[0].t <= lines[1].t, "{lines:?}");
        // 0.1 s of CPU in about 0.5 s; then 0.5 s of CPU between reads 1 s apart.
        assert!(
            lines[0].cpu_percent.is_some_and(|c| c > 5.0 && c <= 20.0),
            "{lines:?}"
        );
        assert_eq!(lines[1].cpu_percent, Some(50.0));
        assert!(matches!(rx.recv().await, Some(Event::Stats { .. })));
    }
}
