//! `sandpen logs [RUN] TASK`: a task's session as a transcript with its stderr where it came
//! (as `docker logs` interleaves them), then how it ended (from its report entry: an OOM kill, a timeout, a budget stop, a cancellation say
//! so); or its raw log or its stderr alone; `-n N` the last lines; `-f` follows a live task.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use crate::cli::LogsArgs;
use crate::exit::{self, UsageError};
use crate::runner::{TaskResult, TaskStatus};
use crate::runs;
use crate::task_log::lines::{self, CutLines};
use crate::task_log::streams::{Cursor, Order};
use crate::transcript::{Transcript, render};
use crate::workspace::{Repo, RunDir};

/// How often a followed log is read again.
const POLL: Duration = Duration::from_millis(250);

pub async fn run(args: LogsArgs) -> anyhow::Result<i32> {
    refuse_what_cannot_be_shown(&args)?;
    // One argument is the task (of the latest run); two are the run and the task.
    let (run, task) = match &args.second {
        Some(task) => (Some(args.first.as_str()), task.as_str()),
        None => (None, args.first.as_str()),
    };
    let repo = Repo::discover(args.repo.as_deref()).await?;
    let layout = runs::find_run_by_prefix(&repo.runs, run)?;
    runs::find_task(&layout, task)?;
    // An earlier attempt's files have numbered names (`RunDir::attempt_key`).
    let (key, attempt) = pick_attempt(&layout, task, args.attempt)?;
    let path = match args.stderr {
        true => layout.stderr_log(&key),
        false => layout.log(&key),
    };
    let transcript = !args.raw && !args.stderr;
    // The session, then its stderr, then its end: stderr unless one stream was picked.
    let with_stderr = transcript && !args.stdout;
    if !args.follow
        && !transcript
        && let Some(n) = args.tail
    {
        // Raw bytes or stderr: the last lines, read from the log's end.
        let mut out = Out::new(None);
        for line in crate::task_log::tail::last_lines(&path, n, false) {
            out.write(&line);
            out.write(b"\n");
        }
        if !path.exists() {
            no_output_yet(&layout, task);
        }
        return Ok(exit::SUCCESS);
    }
    let mut out = Out::new(args.tail);
    let mut t = Transcript::new();
    if transcript && let Ok(p) = std::fs::read(layout.prompt(task)) {
        out.write(render(&t.prompt(&String::from_utf8_lossy(&p))).as_bytes());
    }
    // Read in pieces, whatever the log holds: memory stays bounded (`task_log::lines`).
    let ended = entry(&layout, task).map(|e| as_attempt(e, attempt.as_ref()));
    // Interleaved where the order was noted and the logs hold every byte (not capped).
    let uncut = ended
        .as_ref()
        .is_none_or(|e| e.log_dropped_bytes == 0 && e.stderr_dropped_bytes == 0);
    let mut mix = (with_stderr && uncut && !args.follow)
        .then(|| Mix::open(&layout, &key))
        .flatten();
    if !args.follow {
        let mut at = 0;
        let shown = match transcript {
            true => lines::each_line(&path, 0, |line, cut| {
                if let Some(m) = &mut mix {
                    m.before(at, &mut out);
                }
                at += line.len() as u64 + cut + 1;
                show(&mut t, &mut out, line, cut);
                out.closed
            }),
            false => copy_raw(&path, &mut out),
        };
        match shown {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => no_output_yet(&layout, task),
            Err(e) => return Err(anyhow::anyhow!("reading {}: {e}", path.display())),
        }
    } else {
        follow(&args, &layout, task, &path, transcript, &mut t, &mut out).await?;
    }
    match (with_stderr, mix) {
        (true, Some(mut m)) => m.rest(&mut out),
        (true, None) => show_stderr(&layout.stderr_log(&key), args.tail, &mut out),
        (false, _) => {}
    }
    out.flush_tail();
    if transcript
        && let Some(entry) = ended.or_else(|| entry(&layout, task).map(|e| as_attempt(e, attempt.as_ref())))
    {
        out.write(format!("{}\n", ending(&entry)).as_bytes());
    }
    Ok(exit::SUCCESS)
}

/// `--timestamps` (none are stored) and `--tail` with `--follow`, before anything is read.
fn refuse_what_cannot_be_shown(args: &LogsArgs) -> Result<(), UsageError> {
    if args.timestamps {
        return Err(UsageError(
            "--timestamps: a task's logs are stored as its container wrote them, without \
             timestamps, so there are none to show\nfix: drop --timestamps; when the task \
             started and ended is in `sandpen ps RUN --json` and the run's report.json"
                .into(),
        ));
    }
    if args.follow && args.tail.is_some() {
        return Err(UsageError(
            "--tail with --follow: not supported\nfix: use --tail to see a task's last lines, \
             or --follow to watch it from the start"
                .into(),
        ));
    }
    Ok(())
}

/// Follows a live task's log until it ends.
async fn follow(
    args: &LogsArgs,
    layout: &RunDir,
    task: &str,
    path: &Path,
    transcript: bool,
    t: &mut Transcript,
    out: &mut Out,
) -> anyhow::Result<()> {
    // Lines are whole only at their newline: a part waits for the rest (up to a bound).
    let mut pending = CutLines::new(lines::MAX_LINE);
    runs::follow(
        path,
        0,
        POLL,
        || runs::task_ended(layout, task) || !runs::owner_alive(layout),
        |bytes| {
            if !transcript {
                out.write(bytes);
            }
            if args.stderr {
                return out.closed; // stderr has no result line: it ends with the task
            }
            pending.push(bytes, &mut |line, cut| {
                match transcript {
                    true => show(t, out, line, cut),
                    false => drop(t.push(line)), // only to see the result line
                }
                false
            });
            t.ended() || out.closed
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("following {}: {e}", path.display()))?;
    if transcript {
        // A last line the task never finished.
        pending.finish(&mut |line, cut| {
            show(t, out, line, cut);
            false
        });
    }
    Ok(())
}

/// The task's stderr after its session, indented as the transcript's entries are: for a
/// task whose order of output was not noted (or whose logs were capped).
fn show_stderr(path: &Path, tail: Option<usize>, out: &mut Out) {
    let mut first = true;
    match tail {
        // Only the last lines can be shown: read from the end.
        Some(n) => crate::task_log::tail::last_lines(path, n, false)
            .iter()
            .for_each(|l| stderr_line(out, l, 0, &mut first)),
        None => drop(lines::each_line(path, 0, |line, cut| {
            stderr_line(out, line, cut, &mut first);
            out.closed
        })),
    }
}

/// One stderr line, under a `stderr:` header when it is the first of its block.
fn stderr_line(out: &mut Out, line: &[u8], cut: u64, first: &mut bool) {
    if std::mem::take(first) {
        out.write(b"stderr:\n");
    }
    out.write(b"    ");
    out.write(line);
    if cut > 0 {
        out.write(format!(" (the line goes on for {cut} more bytes, not shown)").as_bytes());
    }
    out.write(b"\n");
}

/// stderr's lines put among the session's where they arrived (`task_log::streams`).
struct Mix {
    order: Order,
    cursor: Cursor,
}

impl Mix {
    fn open(layout: &RunDir, task: &str) -> Option<Self> {
        Some(Self {
            order: Order::read(&layout.streams_log(task))?,
            cursor: Cursor::open(&layout.stderr_log(task)),
        })
    }

    /// The stderr lines that arrived before stdout's byte `at`.
    fn before(&mut self, at: u64, out: &mut Out) {
        let upto = self.order.stderr_before(at);
        let mut first = true;
        self.cursor
            .until(upto, &mut |line, cut| stderr_line(out, line, cut, &mut first));
    }

    fn rest(&mut self, out: &mut Out) {
        let mut first = true;
        self.cursor
            .until(u64::MAX, &mut |line, cut| stderr_line(out, line, cut, &mut first));
    }
}

/// The name of attempt `n`'s files (the task's own for the last), and that attempt when it is
/// an earlier one. An attempt the report does not list is refused, naming those it does.
fn pick_attempt(
    layout: &RunDir,
    task: &str,
    n: Option<u32>,
) -> Result<(String, Option<crate::runner::Attempt>), UsageError> {
    let Some(n) = n else {
        return Ok((task.to_string(), None));
    };
    let attempts = entry(layout, task).map_or_else(Vec::new, |e| crate::runner::attempts::recorded(&e));
    let last = attempts.len() as u32;
    match attempts.into_iter().find(|a| a.number == n) {
        Some(a) if n < last => Ok((RunDir::attempt_key(task, n), Some(a))),
        Some(_) => Ok((task.to_string(), None)),
        None => Err(UsageError(format!(
            "--attempt {n}: task {task} has {last} attempt(s) in this run\nfix: pass --attempt 1 to {}, or leave it out for the last",
            last.max(1)
        ))),
    }
}

/// The entry as attempt `a` ended, for the end line.
fn as_attempt(mut e: TaskResult, a: Option<&crate::runner::Attempt>) -> TaskResult {
    if let Some(a) = a {
        e.status = a.status;
        e.message = a.message.clone();
        e.log_dropped_bytes = a.log_dropped_bytes;
        e.stderr_dropped_bytes = a.stderr_dropped_bytes;
    }
    e
}

/// The task's report entry, once it has ended.
fn entry(layout: &RunDir, task: &str) -> Option<TaskResult> {
    runs::read_report(layout)?
        .tasks
        .into_iter()
        .find(|t| t.id == task)
}

/// How the task ended, from its report entry: the CLI's own result line cannot know that the
/// container was OOM-killed, timed out, stopped at its budget or cancelled.
fn ending(t: &TaskResult) -> String {
    let how = match t.status {
        TaskStatus::Succeeded => "succeeded",
        TaskStatus::Failed => "failed",
        TaskStatus::OomKilled => "OOM-killed (out of memory: its memory limit was reached)",
        TaskStatus::TimedOut => "timed out",
        TaskStatus::Cancelled => "cancelled",
        TaskStatus::Skipped => "skipped",
        TaskStatus::DiskExceeded => "stopped at its disk limit",
        TaskStatus::BudgetExceeded => "stopped at its budget",
        TaskStatus::Error => "error",
    };
    match &t.message {
        Some(m) => format!("sandpen: task {} {how}: {m}", t.id),
        None => format!("sandpen: task {} {how}", t.id),
    }
}

/// One line of the log as transcript entries; a line cut short says so.
fn show(t: &mut Transcript, out: &mut Out, line: &[u8], cut: u64) {
    for e in t.push_cut(line, cut) {
        out.write(render(&e).as_bytes());
    }
}

/// The log's bytes as stored, a piece at a time, until the reader goes.
fn copy_raw(path: &Path, out: &mut Out) -> std::io::Result<()> {
    let mut file = std::fs::File::open(path)?;
    let mut buf = vec![0; 64 * 1024];
    while !out.closed {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        out.write(&buf[..n]);
    }
    Ok(())
}

/// A task that has not started has no log: said on stderr, not an error.
fn no_output_yet(layout: &RunDir, task: &str) {
    let view = runs::describe(layout, Vec::new(), false);
    let state = view
        .tasks
        .iter()
        .find(|t| t.id == task)
        .map_or("unknown", |t| t.state.as_str());
    eprintln!("task {task} has no output yet (it is {state}); `sandpen logs -f` waits for it");
}

/// stdout that notes when its reader has gone (`sandpen logs | head`), to stop quietly; with
/// `--tail N`, it keeps only the last N lines until `flush_tail`.
struct Out {
    closed: bool,
    tail: Option<Tail>,
}

struct Tail {
    n: usize,
    lines: VecDeque<Vec<u8>>,
    partial: Vec<u8>,
}

impl Out {
    fn new(tail: Option<usize>) -> Self {
        let tail = tail.map(|n| Tail {
            n,
            lines: VecDeque::new(),
            partial: Vec::new(),
        });
        Self { closed: false, tail }
    }

    fn write(&mut self, bytes: &[u8]) {
        if let Some(t) = &mut self.tail {
            t.push(bytes);
            return;
        }
        if self.closed {
            return;
        }
        let mut stdout = std::io::stdout().lock();
        self.closed = stdout.write_all(bytes).and_then(|()| stdout.flush()).is_err();
    }

    /// Writes the lines kept by `--tail`; from here on, writes go straight out.
    fn flush_tail(&mut self) {
        let Some(mut t) = self.tail.take() else {
            return;
        };
        t.end();
        for line in t.lines {
            self.write(&line);
            self.write(b"\n");
        }
    }
}

impl Tail {
    fn push(&mut self, mut bytes: &[u8]) {
        while let Some(at) = memchr::memchr(b'\n', bytes) {
            let mut line = std::mem::take(&mut self.partial);
            line.extend_from_slice(&bytes[..at]);
            self.line(line);
            bytes = &bytes[at + 1..];
        }
        // Bounded as every shown line is (`lines::MAX_LINE`).
        let room = lines::MAX_LINE.saturating_sub(self.partial.len());
        self.partial.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    /// A last line without its newline.
    fn end(&mut self) {
        let last = std::mem::take(&mut self.partial);
        if !last.is_empty() {
            self.line(last);
        }
    }

    fn line(&mut self, line: Vec<u8>) {
        if self.n == 0 {
            return;
        }
        if self.lines.len() == self.n {
            self.lines.pop_front();
        }
        self.lines.push_back(line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tail_keeps_the_last_lines_across_writes() {
        let mut t = Tail {
            n: 2,
            lines: VecDeque::new(),
            partial: Vec::new(),
        };
        t.push(b"a\nb");
        t.push(b"c\nd\ne");
        t.end();
        assert_eq!(t.lines, [b"d".to_vec(), b"e".to_vec()]);
    }

    #[test]
    fn the_end_line_names_what_the_result_line_cannot_know() {
        let limits = crate::engine::spec::Limits {
            nano_cpus: 1,
            memory_bytes: 1,
            pids: 1,
        };
        let mut t = TaskResult::new("big", "img", limits);
        t.status = TaskStatus::OomKilled;
        assert!(ending(&t).contains("task big OOM-killed"), "{}", ending(&t));
        t.status = TaskStatus::TimedOut;
        t.message = Some("timed out after 2s".into());
        assert_eq!(ending(&t), "sandpen: task big timed out: timed out after 2s");
        t.status = TaskStatus::BudgetExceeded;
        assert!(ending(&t).contains("stopped at its budget"));
        t.status = TaskStatus::Cancelled;
        assert!(ending(&t).contains("big cancelled"));
    }
}
