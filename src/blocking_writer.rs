//! Writing files off the async runtime. A `BlockingWriter` owns what it writes (a log, a file)
//! on one blocking thread, fed through a bounded channel: an async task that sends waits for
//! room in the channel (so memory stays bounded when the disk is slow), never for the disk.
//! The first failed write stops the writer; the sender learns it at its next send, and
//! `finish` says what failed.

use std::io;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

pub struct BlockingWriter<M> {
    tx: mpsc::Sender<M>,
    done: JoinHandle<io::Result<()>>,
}

impl<M: Send + 'static> BlockingWriter<M> {
    /// Starts the writer: `apply` writes one message into `state`; `close` runs once every
    /// message is written (a capped log's tail, a flush). At most `depth` messages wait.
    pub fn spawn<S, A, C>(mut state: S, depth: usize, mut apply: A, close: C) -> Self
    where
        S: Send + 'static,
        A: FnMut(&mut S, M) -> io::Result<()> + Send + 'static,
        C: FnOnce(S) -> io::Result<()> + Send + 'static,
    {
        let (tx, mut rx) = mpsc::channel(depth.max(1));
        let done = tokio::task::spawn_blocking(move || {
            while let Some(m) = rx.blocking_recv() {
                apply(&mut state, m)?;
            }
            close(state)
        });
        Self { tx, done }
    }

    /// Hands `m` to the writer, waiting only for room. False once the writer has stopped (a
    /// write failed): `finish` says why.
    pub async fn send(&self, m: M) -> bool {
        self.tx.send(m).await.is_ok()
    }

    /// Waits until everything sent is written and closed.
    pub async fn finish(self) -> io::Result<()> {
        drop(self.tx);
        self.done
            .await
            .unwrap_or_else(|e| Err(io::Error::other(format!("the writer thread ended: {e}"))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[tokio::test]
    async fn writes_in_order_closes_once_and_reports_the_first_failure() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        let file = std::fs::File::create(&path).unwrap();
        let w = BlockingWriter::spawn(file, 2, |f, line: Vec<u8>| f.write_all(&line), |f| f.sync_all());
        for i in 0..100 {
            assert!(w.send(format!("{i}\n").into_bytes()).await);
        }
        w.finish().await.unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 100);
        assert_eq!(text.lines().last(), Some("99"));

        let w = BlockingWriter::spawn(
            0u32,
            1,
            |n, _: ()| {
                *n += 1;
                if *n == 3 {
                    Err(io::Error::other("disk full"))
                } else {
                    Ok(())
                }
            },
            |_| panic!("no close after a failure"),
        );
        let mut accepted = 0;
        for _ in 0..10 {
            if !w.send(()).await {
                break;
            }
            accepted += 1;
        }
        assert!(accepted < 10, "sends stop once the writer stopped");
        assert_eq!(w.finish().await.unwrap_err().to_string(), "disk full");
    }
}
