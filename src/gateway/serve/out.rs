//! The gateway's reports on its way out: a queue and a writer thread, so that a slow reader of
//! the gateway's stdout (sandpen, through the engine's attach stream) never holds up a model
//! request or a tunnel. The queue is bounded for the reports that traffic makes (one per
//! request or connection): when it is full they are dropped and counted, and the count is
//! reported. The few reports that sandpen waits for or acts on (ready, admitted, released,
//! budget exceeded) are never dropped; they are bounded by the number of tasks.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::{Arc, Condvar, Mutex};

use crate::gateway::protocol::Report;

/// Traffic reports waiting at most.
pub const QUEUE_LIMIT: usize = 4096;

#[derive(Default)]
struct Queue {
    lines: VecDeque<Vec<u8>>,
    /// Traffic reports dropped since the last `dropped` report.
    dropped: u64,
}

pub struct Reports {
    queue: Arc<(Mutex<Queue>, Condvar)>,
}

/// Reports sandpen waits for or acts on: never dropped.
fn essential(r: &Report) -> bool {
    matches!(
        r,
        Report::Ready { .. }
            | Report::Admitted { .. }
            | Report::Released { .. }
            | Report::BudgetExceeded { .. }
    )
}

impl Reports {
    /// Writes to `sink` (stdout) on a thread of its own until the process ends.
    pub fn start(sink: impl Write + Send + 'static) -> Self {
        let queue: Arc<(Mutex<Queue>, Condvar)> = Arc::default();
        let q = queue.clone();
        std::thread::Builder::new()
            .name("reports".into())
            .spawn(move || write_all(&q, sink))
            .expect("starting the report writer");
        Self { queue }
    }

    /// Queues one report; never blocks on the reader.
    pub fn send(&self, r: &Report) {
        let Ok(mut line) = serde_json::to_vec(r) else {
            return;
        };
        line.push(b'\n');
        let (lock, ready) = &*self.queue;
        let mut q = lock.lock().unwrap_or_else(|e| e.into_inner());
        if q.lines.len() >= QUEUE_LIMIT && !essential(r) {
            q.dropped += 1;
            return;
        }
        q.lines.push_back(line);
        ready.notify_one();
    }
}

fn write_all(queue: &(Mutex<Queue>, Condvar), mut sink: impl Write) {
    let (lock, ready) = queue;
    loop {
        let (lines, dropped) = {
            let mut q = lock.lock().unwrap_or_else(|e| e.into_inner());
            while q.lines.is_empty() && q.dropped == 0 {
                q = ready.wait(q).unwrap_or_else(|e| e.into_inner());
            }
            (std::mem::take(&mut q.lines), std::mem::take(&mut q.dropped))
        };
        for line in lines {
            let _ = sink.write_all(&line);
        }
        if dropped > 0
            && let Ok(mut line) = serde_json::to_vec(&Report::Dropped { count: dropped })
        {
            line.push(b'\n');
            let _ = sink.write_all(&line);
        }
        let _ = sink.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    /// A reader that takes nothing until told to.
    struct Stalled {
        go: mpsc::Receiver<()>,
        got: Arc<Mutex<Vec<u8>>>,
    }

    impl Write for Stalled {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            let _ = self.go.recv();
            self.got.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn model(i: u64) -> Report {
        Report::Refused {
            at: i.to_string(),
            reason: "r".into(),
        }
    }

    #[test]
    fn a_stalled_reader_blocks_no_sender_and_what_is_dropped_is_counted() {
        let (go, wait) = mpsc::channel();
        let got = Arc::new(Mutex::new(Vec::new()));
        let reports = Reports::start(Stalled {
            go: wait,
            got: got.clone(),
        });
        let start = Instant::now();
        let n = QUEUE_LIMIT as u64 * 3;
        for i in 0..n {
            reports.send(&model(i));
        }
        reports.send(&Report::Released { task: "t".into() });
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "sending waited for the reader"
        );
        // Let the reader take everything.
        std::thread::spawn(move || while go.send(()).is_ok() {});
        let text = loop {
            let text = String::from_utf8(got.lock().unwrap().clone()).unwrap();
            if text.contains("\"dropped\"") || start.elapsed() > Duration::from_secs(20) {
                break text;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let lines: Vec<Report> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        let dropped: u64 = lines
            .iter()
            .map(|r| match r {
                Report::Dropped { count } => *count,
                _ => 0,
            })
            .sum();
        let kept = lines
            .iter()
            .filter(|r| matches!(r, Report::Refused { .. }))
            .count() as u64;
        // The queue, and the batch the writer holds while it is stalled.
        assert!(kept <= 2 * QUEUE_LIMIT as u64, "bounded: {kept}");
        assert_eq!(kept + dropped, n, "every report written or counted");
        assert!(
            lines.contains(&Report::Released { task: "t".into() }),
            "an essential report is never dropped"
        );
    }
}
