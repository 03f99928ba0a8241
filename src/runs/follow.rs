//! Following a log that a live task is still writing: poll the file, hand on what is new.
//! Polling, not inotify: the run may be written by sandpen in a container, on a mount where
//! change notifications do not arrive, and a few reads a second cost nothing.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::time::Duration;

/// Reads `path` from byte `from` as it grows, handing each new chunk to `on_bytes`, until
/// `on_bytes` says the end is in (it returns true: the task's result line arrived), or
/// `ended` says nothing more will be written (the task has ended, or its sandpen is gone) and
/// a last read finds nothing new. A file that does not exist yet is waited for, within the
/// same rule. Returns where it stopped reading.
pub async fn follow(
    path: &Path,
    from: u64,
    poll: Duration,
    mut ended: impl FnMut() -> bool,
    mut on_bytes: impl FnMut(&[u8]) -> bool,
) -> std::io::Result<u64> {
    let mut offset = from;
    let mut last_look = false;
    loop {
        let (grew, done) = read_new(path, &mut offset, &mut on_bytes)?;
        if done {
            return Ok(offset);
        }
        if grew {
            last_look = false;
        } else if last_look {
            return Ok(offset);
        } else if ended() {
            // The writer may have written its last bytes just before it ended: one more read.
            last_look = true;
            continue;
        }
        tokio::time::sleep(poll).await;
    }
}

/// Hands on what the file holds past `offset`; returns (whether it grew, whether `on_bytes`
/// said the end is in).
fn read_new(
    path: &Path,
    offset: &mut u64,
    on_bytes: &mut impl FnMut(&[u8]) -> bool,
) -> std::io::Result<(bool, bool)> {
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((false, false)),
        Err(e) => return Err(e),
    };
    file.seek(SeekFrom::Start(*offset))?;
    let mut buf = vec![0; 64 * 1024];
    let mut grew = false;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok((grew, false));
        }
        grew = true;
        *offset += n as u64;
        if on_bytes(&buf[..n]) {
            return Ok((true, true));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    #[tokio::test]
    async fn follows_a_growing_file_until_its_writer_has_ended() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.log");
        let writer_done = Arc::new(Mutex::new(false));
        let (p, done) = (path.clone(), writer_done.clone());
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50)); // the file does not exist at first
            let mut f = std::fs::File::create(&p).unwrap();
            for i in 0..5 {
                writeln!(f, "line {i}").unwrap();
                std::thread::sleep(Duration::from_millis(20));
            }
            // The last bytes and the end at once: the last look must still read them.
            write!(f, "last").unwrap();
            *done.lock().unwrap() = true;
        });
        let mut got = Vec::new();
        let end = follow(
            &path,
            0,
            Duration::from_millis(10),
            || *writer_done.lock().unwrap(),
            |b| {
                got.extend_from_slice(b);
                false
            },
        )
        .await
        .unwrap();
        writer.join().unwrap();
        let want = "line 0\nline 1\nline 2\nline 3\nline 4\nlast";
        assert_eq!(String::from_utf8(got).unwrap(), want);
        assert_eq!(end, want.len() as u64);
    }

    #[tokio::test]
    async fn stops_when_the_end_arrives_and_resumes_from_an_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.log");
        std::fs::write(&path, "abcdef").unwrap();
        let mut got = Vec::new();
        // Never "ended": only on_bytes can stop it.
        let end = follow(
            &path,
            2,
            Duration::from_millis(10),
            || false,
            |b| {
                got.extend_from_slice(b);
                true
            },
        )
        .await
        .unwrap();
        assert_eq!((got.as_slice(), end), (&b"cdef"[..], 6));
    }
}
