//! `sandpen logs [RUN] TASK`: a task's session as a transcript, its raw log or its stderr;
//! `-f` follows a live task to its end.

use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use crate::cli::LogsArgs;
use crate::exit;
use crate::runs;
use crate::runs::lines::{self, CutLines};
use crate::transcript::{Transcript, render};
use crate::workspace::{Repo, RunDir};

/// How often a followed log is read again.
const POLL: Duration = Duration::from_millis(250);

pub async fn run(args: LogsArgs) -> anyhow::Result<i32> {
    // One argument is the task (of the latest run); two are the run and the task.
    let (run, task) = match &args.second {
        Some(task) => (Some(args.first.as_str()), task.as_str()),
        None => (None, args.first.as_str()),
    };
    let repo = Repo::discover(args.repo.as_deref()).await?;
    let layout = runs::find_run(&repo.runs, run)?;
    runs::find_task(&layout, task)?;
    let path = match args.stderr {
        true => layout.stderr_log(task),
        false => layout.log(task),
    };
    let transcript = !args.raw && !args.stderr;
    let mut out = Out::default();
    let mut t = Transcript::new();
    if transcript && let Ok(p) = std::fs::read(layout.prompt(task)) {
        out.write(render(&t.prompt(&String::from_utf8_lossy(&p))).as_bytes());
    }
    // Read in pieces, whatever the log holds: memory stays bounded (`runs::lines`).
    if !args.follow {
        let shown = match transcript {
            true => lines::each_line(&path, 0, |line, cut| {
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
        return Ok(exit::SUCCESS);
    }
    // Lines are whole only at their newline: a part waits for the rest (up to a bound).
    let mut pending = CutLines::new(lines::MAX_LINE);
    runs::follow(
        &path,
        0,
        POLL,
        || runs::task_ended(&layout, task) || !runs::owner_alive(&layout),
        |bytes| {
            if !transcript {
                out.write(bytes);
            }
            if args.stderr {
                return out.closed; // stderr has no result line: it ends with the task
            }
            pending.push(bytes, &mut |line, cut| {
                match transcript {
                    true => show(&mut t, &mut out, line, cut),
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
            show(&mut t, &mut out, line, cut);
            false
        });
    }
    Ok(exit::SUCCESS)
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

/// stdout that notes when its reader has gone (`sandpen logs | head`), to stop quietly.
#[derive(Default)]
struct Out {
    closed: bool,
}

impl Out {
    fn write(&mut self, bytes: &[u8]) {
        if self.closed {
            return;
        }
        let mut stdout = std::io::stdout().lock();
        self.closed = stdout.write_all(bytes).and_then(|()| stdout.flush()).is_err();
    }
}
