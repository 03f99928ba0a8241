//! A file that something outside sandpen feeds (a task's output, the gateway's audit), capped
//! so that a runaway or hostile writer fills neither the host's disk nor sandpen's memory.
//!
//! Up to the cap everything goes to the file as it comes. Past it the file keeps its first
//! half (the head, on disk as it comes, so a crash loses none of it) and, once the writer is
//! done, a one-line marker that counts what was dropped and the last half (the tail). Until
//! then the tail lives in spill files beside the log (`<log>.tail.<n>`), rotated so that they
//! hold the last half and a little more: never sandpen's memory.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufRead, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The smallest spill file: a small cap must not mean a file per few bytes.
const MIN_SEGMENT: u64 = 64 * 1024;

/// What the line between head and tail looks like.
#[derive(Debug, Clone, Copy)]
pub enum Marker {
    /// A sentence, naming the setting that raises the cap (`--log-limit`).
    Text(&'static str),
    /// A JSON line `{"kind":"dropped","bytes":N,"limit":L}`, for a file of JSON lines: each
    /// write must then be whole lines, the head ends at a line and the tail starts at one.
    JsonLine,
}

/// A capped log file; see the module. `finish` writes the tail (dropping it does too, errors
/// ignored), and `dropped` counts the bytes left out at any moment.
pub struct CappedLog {
    path: PathBuf,
    file: File,
    limit: u64,
    head_max: u64,
    tail_max: u64,
    segment_max: u64,
    marker: Marker,
    head: u64,
    head_ends_line: bool,
    /// Bytes past the head, written to spill files (some of them since removed).
    spilled: u64,
    /// Spill files still held, oldest first, with their lengths.
    segments: VecDeque<(PathBuf, u64)>,
    current: Option<File>,
    next_segment: u64,
    dropped: Arc<AtomicU64>,
    finished: bool,
}

impl CappedLog {
    /// Creates (truncates) `path`, capped at `limit` bytes plus the marker.
    pub fn create(path: &Path, limit: u64, marker: Marker) -> io::Result<Self> {
        let file = File::create(path)?;
        let limit = limit.max(2);
        let head_max = limit / 2;
        let tail_max = limit - head_max;
        Ok(Self {
            path: path.to_path_buf(),
            file,
            limit,
            head_max,
            tail_max,
            segment_max: (tail_max / 4).max(MIN_SEGMENT),
            marker,
            head: 0,
            head_ends_line: true,
            spilled: 0,
            segments: VecDeque::new(),
            current: None,
            next_segment: 0,
            dropped: Arc::new(AtomicU64::new(0)),
            finished: false,
        })
    }

    /// The count of bytes left out so far, shared: it stays readable after the log is gone.
    pub fn dropped(&self) -> Arc<AtomicU64> {
        self.dropped.clone()
    }

    /// Appends `bytes`: to the file while the head has room, else to the spill files.
    pub fn write_all(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        let mut room = (self.head_max - self.head).min(bytes.len() as u64) as usize;
        if matches!(self.marker, Marker::JsonLine) && room < bytes.len() {
            // Lines go whole to the head or not at all, and none after the first that did not.
            room = 0;
            self.head_max = self.head;
        }
        if room > 0 {
            Write::write_all(&mut self.file, &bytes[..room])?;
            self.head += room as u64;
            self.head_ends_line = bytes[room - 1] == b'\n';
            bytes = &bytes[room..];
        }
        while !bytes.is_empty() {
            let max = self.segment_max;
            let (file, len) = self.segment()?;
            let n = (max - len).min(bytes.len() as u64) as usize;
            Write::write_all(file, &bytes[..n])?;
            self.segments.back_mut().expect("a segment is open").1 += n as u64;
            self.spilled += n as u64;
            bytes = &bytes[n..];
            self.forget_old_segments()?;
        }
        let dropped = self.spilled.saturating_sub(self.tail_max);
        self.dropped.store(dropped, Ordering::Relaxed);
        Ok(())
    }

    /// The spill file being written, a new one when it is full.
    fn segment(&mut self) -> io::Result<(&mut File, u64)> {
        let full = self.segments.back().is_none_or(|s| s.1 >= self.segment_max);
        if full || self.current.is_none() {
            let path = PathBuf::from(format!("{}.tail.{}", self.path.display(), self.next_segment));
            self.next_segment += 1;
            self.current = Some(File::create(&path)?);
            self.segments.push_back((path, 0));
        }
        let len = self.segments.back().expect("a segment is open").1;
        Ok((self.current.as_mut().expect("a segment is open"), len))
    }

    /// Removes the oldest spill files while the rest still hold the last `tail_max` bytes.
    fn forget_old_segments(&mut self) -> io::Result<()> {
        let held = |s: &VecDeque<(PathBuf, u64)>| s.iter().map(|x| x.1).sum::<u64>();
        while self.segments.len() > 1 && held(&self.segments) - self.segments[0].1 >= self.tail_max {
            let (path, _) = self.segments.pop_front().expect("checked");
            std::fs::remove_file(&path)?;
        }
        Ok(())
    }

    /// Writes the marker and the tail after the head, removes the spill files; returns the
    /// bytes dropped (0 when the output fitted).
    pub fn finish(mut self) -> io::Result<u64> {
        self.finish_in_place()
    }

    fn finish_in_place(&mut self) -> io::Result<u64> {
        if self.finished {
            return Ok(self.dropped.load(Ordering::Relaxed));
        }
        self.finished = true;
        self.current = None;
        let mut dropped = self.spilled.saturating_sub(self.tail_max);
        if !self.segments.is_empty() {
            let mut tail = io::BufReader::new(self.tail()?);
            if dropped > 0 && matches!(self.marker, Marker::JsonLine) {
                // The tail's first line, cut by the cap, is dropped too.
                dropped += tail.skip_until(b'\n')? as u64;
            }
            let mut out = io::BufWriter::new(&self.file);
            if dropped > 0 {
                out.write_all(self.marker_line(dropped).as_bytes())?;
            }
            io::copy(&mut tail, &mut out)?;
            out.flush()?;
            for (path, _) in self.segments.drain(..) {
                std::fs::remove_file(&path)?;
            }
        }
        self.dropped.store(dropped, Ordering::Relaxed);
        Ok(dropped)
    }

    /// The last `tail_max` bytes the spill files hold, as one reader.
    fn tail(&self) -> io::Result<Box<dyn Read>> {
        let held: u64 = self.segments.iter().map(|s| s.1).sum();
        let mut skip = held.saturating_sub(self.tail_max);
        let mut tail: Box<dyn Read> = Box::new(io::empty());
        for (path, len) in &self.segments {
            let mut f = File::open(path)?;
            let from = skip.min(*len);
            skip -= from;
            f.seek(SeekFrom::Start(from))?;
            tail = Box::new(tail.chain(f.take(len - from)));
        }
        Ok(tail)
    }

    /// The one line between head and tail (on a line of its own).
    fn marker_line(&self, dropped: u64) -> String {
        let newline = if self.head_ends_line { "" } else { "\n" };
        match self.marker {
            Marker::Text(setting) => format!(
                "{newline}[sandpen: {dropped} bytes of output dropped here: the log is capped at {} ({setting})]\n",
                size_text(self.limit),
            ),
            Marker::JsonLine => {
                let line = serde_json::json!({"kind": "dropped", "bytes": dropped, "limit": self.limit});
                format!("{newline}{line}\n")
            }
        }
    }
}

impl Drop for CappedLog {
    /// A writer that ends without `finish` (an aborted watcher, a stream that never closed)
    /// still leaves head, marker and tail in the file.
    fn drop(&mut self) {
        if let Err(e) = self.finish_in_place() {
            tracing::warn!("finishing the capped log {}: {e}", self.path.display());
        }
    }
}

/// `1073741824` as "1 GiB"; a size that is not a whole unit in bytes.
pub fn size_text(bytes: u64) -> String {
    for (unit, size) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
        if bytes >= size && bytes.is_multiple_of(size) {
            return format!("{} {unit}", bytes / size);
        }
    }
    format!("{bytes} bytes")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spill_files(dir: &Path) -> usize {
        std::fs::read_dir(dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .contains(".tail.")
            })
            .count()
    }

    #[test]
    fn output_within_the_cap_is_kept_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.log");
        let mut log = CappedLog::create(&path, 1000, Marker::Text("--log-limit")).unwrap();
        for _ in 0..10 {
            log.write_all(b"0123456789\n").unwrap();
        }
        assert_eq!(log.finish().unwrap(), 0);
        assert_eq!(std::fs::read(&path).unwrap(), b"0123456789\n".repeat(10));
        assert_eq!(spill_files(dir.path()), 0);
    }

    #[test]
    fn past_the_cap_the_head_and_the_tail_are_kept_with_a_marker_between() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.log");
        let limit = 1 << 20;
        let mut log = CappedLog::create(&path, limit, Marker::Text("--log-limit")).unwrap();
        let dropped = log.dropped();
        // Lines numbered 0..N, written in odd chunk sizes across head and segments.
        let all: Vec<u8> = (0..200_000)
            .flat_map(|i| format!("line {i}\n").into_bytes())
            .collect();
        for chunk in all.chunks(7919) {
            log.write_all(chunk).unwrap();
        }
        // The spill files hold the tail and at most one segment more, never everything.
        assert!(spill_files(dir.path()) <= 5, "{}", spill_files(dir.path()));
        let n = log.finish().unwrap();
        let total = all.len() as u64;
        assert_eq!(n, total - limit);
        assert_eq!(dropped.load(Ordering::Relaxed), n);
        let kept = std::fs::read(&path).unwrap();
        let half = (limit / 2) as usize;
        assert_eq!(&kept[..half], &all[..half], "the head");
        assert_eq!(&kept[kept.len() - half..], &all[all.len() - half..], "the tail");
        let marker = String::from_utf8_lossy(&kept[half..kept.len() - half]).into_owned();
        assert_eq!(
            marker.trim_start_matches('\n'),
            format!(
                "[sandpen: {n} bytes of output dropped here: the log is capped at 1 MiB (--log-limit)]\n"
            )
        );
        assert_eq!(spill_files(dir.path()), 0);
    }

    #[test]
    fn a_log_dropped_unfinished_still_gets_its_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.log");
        let mut log = CappedLog::create(&path, 100, Marker::Text("x")).unwrap();
        let dropped = log.dropped();
        log.write_all(&[b'a'; 50]).unwrap();
        log.write_all(&[b'b'; 500]).unwrap();
        log.write_all(&[b'c'; 50]).unwrap();
        drop(log);
        let kept = std::fs::read(&path).unwrap();
        assert!(kept.starts_with(&[b'a'; 50]) && kept.ends_with(&[b'c'; 50]));
        assert_eq!(dropped.load(Ordering::Relaxed), 500);
        assert!(
            String::from_utf8_lossy(&kept)
                .contains("[sandpen: 500 bytes of output dropped here: the log is capped at 100 bytes (x)]")
        );
        assert_eq!(spill_files(dir.path()), 0);
    }

    #[test]
    fn json_lines_stay_whole_lines_around_a_json_marker() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("egress.jsonl");
        let mut log = CappedLog::create(&path, 100_000, Marker::JsonLine).unwrap();
        let mut total = 0;
        for i in 0..10_000 {
            let line = format!("{{\"n\":{i}}}\n");
            total += line.len() as u64;
            log.write_all(line.as_bytes()).unwrap();
        }
        let dropped = log.finish().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        let at = lines
            .iter()
            .position(|l| l["kind"] == "dropped")
            .expect("a marker");
        assert_eq!(lines[at]["bytes"], dropped);
        assert_eq!(
            (lines[0]["n"].as_u64(), lines.last().unwrap()["n"].as_u64()),
            (Some(0), Some(9999))
        );
        let kept = text.len() as u64 - (text.lines().nth(at).unwrap().len() as u64 + 1);
        assert_eq!(kept + dropped, total, "every byte is kept or counted");
        assert!(kept <= 100_000, "{kept}");
    }

    #[test]
    fn sizes_read_as_their_unit() {
        assert_eq!(size_text(1 << 30), "1 GiB");
        assert_eq!(size_text(16 << 20), "16 MiB");
        assert_eq!(size_text(1500), "1500 bytes");
    }
}
