//! The order in which a task's stdout and stderr arrived, so `logs` can interleave its two
//! logs as `docker logs` does. The logs themselves are the bytes as written, with nothing
//! added; beside them, `<task>.streams` holds one line per switch from one stream to the
//! other: the bytes of stdout and of stderr written before it (`"<out> <err>\n"`). Bounded:
//! after `MAX_SWITCHES` lines nothing more is noted, and `logs` shows the rest of stderr after
//! the session, as it does for a task without the file.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;

use super::lines::{CutLines, MAX_LINE};

/// About 40 bytes each: a task that switches streams on every line writes at most ~8 MB here.
pub const MAX_SWITCHES: usize = 200_000;

/// The writing side, fed every chunk of output as it arrives.
pub struct StreamOrder {
    file: BufWriter<File>,
    counts: [u64; 2],
    last: Option<bool>,
    switches: usize,
}

impl StreamOrder {
    pub fn create(path: &Path) -> io::Result<Self> {
        Ok(Self {
            file: BufWriter::new(File::create(path)?),
            counts: [0, 0],
            last: None,
            switches: 0,
        })
    }

    /// A chunk of `len` bytes of stderr (`true`) or stdout arrived.
    pub fn note(&mut self, stderr: bool, len: usize) -> io::Result<()> {
        if self.last.is_some_and(|l| l != stderr) && self.switches < MAX_SWITCHES {
            self.switches += 1;
            writeln!(self.file, "{} {}", self.counts[0], self.counts[1])?;
        }
        self.last = Some(stderr);
        self.counts[stderr as usize] += len as u64;
        Ok(())
    }

    pub fn finish(mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// The reading side: how much stderr had arrived before a given byte of stdout.
pub struct Order {
    switches: Vec<(u64, u64)>,
    at: usize,
}

impl Order {
    /// None without a readable file (a task of an older sandpen, or one that never ran).
    pub fn read(path: &Path) -> Option<Self> {
        let mut text = String::new();
        let limit = (MAX_SWITCHES as u64 + 1) * 42;
        File::open(path)
            .ok()?
            .take(limit)
            .read_to_string(&mut text)
            .ok()?;
        let switches = text
            .lines()
            .map_while(|l| {
                let (o, e) = l.split_once(' ')?;
                Some((o.parse().ok()?, e.parse().ok()?))
            })
            .collect();
        Some(Self { switches, at: 0 })
    }

    /// The stderr bytes written before stdout's byte `p`; `p` never decreases between calls.
    pub fn stderr_before(&mut self, p: u64) -> u64 {
        while self.at < self.switches.len() && self.switches[self.at].0 <= p {
            self.at += 1;
        }
        self.at.checked_sub(1).map_or(0, |i| self.switches[i].1)
    }
}

/// stderr's lines, handed out up to a byte offset at a time.
pub struct Cursor {
    file: Option<File>,
    cut: CutLines,
    /// Lines read but not yet handed out: (start offset, line, bytes cut from it).
    queue: VecDeque<(u64, Vec<u8>, u64)>,
    next_start: u64,
}

impl Cursor {
    pub fn open(path: &Path) -> Self {
        Self {
            file: File::open(path).ok(),
            cut: CutLines::new(MAX_LINE),
            queue: VecDeque::new(),
            next_start: 0,
        }
    }

    /// Hands `on_line` every line that starts before byte `before`.
    pub fn until(&mut self, before: u64, on_line: &mut impl FnMut(&[u8], u64)) {
        loop {
            match self.queue.front() {
                Some((start, ..)) if *start < before => {
                    let (_, line, cut) = self.queue.pop_front().expect("a front");
                    on_line(&line, cut);
                }
                Some(_) => return,
                None if self.file.is_none() => return,
                None => self.read(),
            }
        }
    }

    /// One more piece of the file into the queue; at its end, its last line and no file.
    fn read(&mut self) {
        let mut buf = vec![0; 64 * 1024];
        let n = match self.file.as_mut().map(|f| f.read(&mut buf)) {
            Some(Ok(n)) => n,
            _ => 0,
        };
        let (queue, next) = (&mut self.queue, &mut self.next_start);
        let mut take = |line: &[u8], cut: u64| {
            queue.push_back((*next, line.to_vec(), cut));
            *next += line.len() as u64 + cut + 1;
            false
        };
        if n == 0 {
            self.cut.finish(&mut take);
            self.file = None;
        } else {
            self.cut.push(&buf[..n], &mut take);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn switches_written_are_read_back_as_the_stderr_before_each_stdout_byte() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.streams");
        let mut w = StreamOrder::create(&path).unwrap();
        // out 10, err 5, err 3, out 4, err 2
        for (err, len) in [(false, 10), (true, 5), (true, 3), (false, 4), (true, 2)] {
            w.note(err, len).unwrap();
        }
        w.finish().unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "10 0\n10 8\n14 8\n");
        let mut o = Order::read(&path).unwrap();
        assert_eq!(o.stderr_before(0), 0);
        assert_eq!(o.stderr_before(9), 0);
        assert_eq!(
            o.stderr_before(10),
            8,
            "stdout's 11th byte came after 8 of stderr"
        );
        assert_eq!(o.stderr_before(13), 8);
        // The last 2 bytes of stderr came after all of stdout: `Cursor::until(MAX)` shows them.
        assert_eq!(o.stderr_before(14), 8);
    }

    #[test]
    fn the_cursor_hands_out_lines_by_their_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.log");
        std::fs::write(&path, "ab\ncd\nlast").unwrap();
        let mut c = Cursor::open(&path);
        let mut got = Vec::new();
        let mut on = |l: &[u8], _| got.push(String::from_utf8_lossy(l).into_owned());
        c.until(0, &mut on);
        c.until(3, &mut on);
        c.until(4, &mut on);
        c.until(u64::MAX, &mut on);
        assert_eq!(got, ["ab", "cd", "last"]);
        let mut none = Cursor::open(&dir.path().join("none"));
        none.until(u64::MAX, &mut |_, _| panic!("no file, no lines"));
    }
}
