//! Reading a task's log as lines in bounded memory, whatever the file holds (a log is what a
//! container wrote: gigabytes without a newline are possible). A line longer than the bound
//! is handed on cut, with the count of bytes left out, never buffered whole.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

/// The longest line handed on whole: the same bound as the run's own stream-json parser
/// (`monitor::MAX_LINE`), so a line the run saw whole is shown whole.
pub const MAX_LINE: usize = crate::monitor::MAX_LINE;
/// What one read takes from the file.
const CHUNK: usize = 64 * 1024;

/// Splits chunks into lines of at most `max` bytes; the rest of a longer line is skipped
/// and counted.
#[derive(Debug)]
pub struct CutLines {
    buf: Vec<u8>,
    max: usize,
    /// Bytes of the current line skipped past `max`.
    cut: u64,
}

impl CutLines {
    pub fn new(max: usize) -> Self {
        Self {
            buf: Vec::new(),
            max,
            cut: 0,
        }
    }

    /// Hands each line `chunk` completes to `on_line` (without its newline, with the count
    /// of bytes cut from it); stops early when `on_line` returns true, and says so.
    pub fn push(&mut self, mut chunk: &[u8], on_line: &mut impl FnMut(&[u8], u64) -> bool) -> bool {
        loop {
            let newline = memchr::memchr(b'\n', chunk);
            let segment = &chunk[..newline.unwrap_or(chunk.len())];
            let Some(at) = newline else {
                self.keep(segment);
                return false;
            };
            // A whole short line with nothing before it: no copy.
            let stop = if self.buf.is_empty() && self.cut == 0 && segment.len() <= self.max {
                on_line(segment, 0)
            } else {
                self.keep(segment);
                let stop = on_line(&self.buf, self.cut);
                self.buf.clear();
                self.cut = 0;
                stop
            };
            if stop {
                return true;
            }
            chunk = &chunk[at + 1..];
        }
    }

    /// The last line, if the input did not end with a newline.
    pub fn finish(&mut self, on_line: &mut impl FnMut(&[u8], u64) -> bool) -> bool {
        if self.buf.is_empty() && self.cut == 0 {
            return false;
        }
        let stop = on_line(&self.buf, self.cut);
        self.buf.clear();
        self.cut = 0;
        stop
    }

    fn keep(&mut self, segment: &[u8]) {
        let take = self.max.saturating_sub(self.buf.len()).min(segment.len());
        self.buf.extend_from_slice(&segment[..take]);
        self.cut += (segment.len() - take) as u64;
    }
}

/// Hands every line of the file from byte `from` to `on_line` (see `CutLines::push`), the
/// last one also without a newline; stops when `on_line` returns true.
pub fn each_line(path: &Path, from: u64, mut on_line: impl FnMut(&[u8], u64) -> bool) -> io::Result<()> {
    let mut file = File::open(path)?;
    file.seek(SeekFrom::Start(from))?;
    let mut lines = CutLines::new(MAX_LINE);
    let mut buf = vec![0; CHUNK];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            lines.finish(&mut on_line);
            return Ok(());
        }
        if lines.push(&buf[..n], &mut on_line) {
            return Ok(());
        }
    }
}

/// Hands on the lines of the file's last `tail` bytes (from the first line that starts
/// there). Returns whether that was the whole file.
pub fn last_lines(path: &Path, tail: u64, mut on_line: impl FnMut(&[u8], u64) -> bool) -> io::Result<bool> {
    let len = std::fs::metadata(path)?.len();
    if len <= tail {
        each_line(path, 0, on_line)?;
        return Ok(true);
    }
    // The line cut by the start is skipped: it is not a line of its own.
    let mut first = true;
    each_line(path, len - tail, |line, cut| {
        if std::mem::take(&mut first) {
            return false;
        }
        on_line(line, cut)
    })?;
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_of(chunks: &[&[u8]], max: usize) -> Vec<(String, u64)> {
        let mut got = Vec::new();
        let mut lines = CutLines::new(max);
        let mut on = |l: &[u8], cut| {
            got.push((String::from_utf8_lossy(l).into_owned(), cut));
            false
        };
        for c in chunks {
            lines.push(c, &mut on);
        }
        lines.finish(&mut on);
        got
    }

    #[test]
    fn lines_across_chunks_come_whole_and_long_ones_cut() {
        let got = lines_of(&[b"ab", b"c\nde", b"f\n0123456789abc", b"def\nlast"], 8);
        let want = [("abc", 0), ("def", 0), ("01234567", 8), ("last", 0)];
        let want: Vec<(String, u64)> = want.iter().map(|(l, c)| (l.to_string(), *c)).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn a_file_without_a_newline_is_read_in_bounded_pieces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.log");
        let f = File::create(&path).unwrap();
        f.set_len(3 * MAX_LINE as u64).unwrap(); // zeros, no newline
        let mut got = Vec::new();
        each_line(&path, 0, |l, cut| {
            got.push((l.len(), cut));
            false
        })
        .unwrap();
        assert_eq!(got, [(MAX_LINE, 2 * MAX_LINE as u64)]);
    }

    #[test]
    fn the_last_lines_start_at_a_whole_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.log");
        std::fs::write(&path, "one\ntwo\nthree\n").unwrap();
        let mut got = Vec::new();
        let whole = last_lines(&path, 8, |l, _| {
            got.push(String::from_utf8_lossy(l).into_owned());
            false
        })
        .unwrap();
        assert_eq!((whole, got), (false, vec!["three".to_string()]));
    }
}
