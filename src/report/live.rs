//! The live view. On a terminal: one line of counts, then a line for each task in progress
//! (waiting for memory, preparing, running, stopping), and above them, printed as it ends, a
//! line for each task that ended badly. A task that has ended leaves only its count behind,
//! so the view and what it holds stay the same size for 5 tasks or 5000. Otherwise (CI logs):
//! plain lines at each change of state. Ends with the summary.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use indicatif::{HumanBytes, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::style::{self, ColorChoice, Stream, Style};
use super::summary_table;
use fit::{clear_reflowed, layout};

mod events;
mod fit;
use crate::monitor::StatsSample;
use crate::runner::{RunReport, TaskResult, TaskStatus};

/// At most this many task lines; the counts line says how many tasks there are in all.
const MAX_TASK_LINES: usize = 32;

/// The order statuses are counted in.
const STATUSES: [TaskStatus; 9] = [
    TaskStatus::Succeeded,
    TaskStatus::Failed,
    TaskStatus::OomKilled,
    TaskStatus::TimedOut,
    TaskStatus::DiskExceeded,
    TaskStatus::BudgetExceeded,
    TaskStatus::Error,
    TaskStatus::Cancelled,
    TaskStatus::Skipped,
];

/// A task in progress.
#[derive(Default)]
struct Row {
    state: &'static str,
    started: Option<Instant>,
    stats: Option<StatsSample>,
    phase: String,
    activity: String,
    /// `(n, of)` once `--retries` runs the task again: shown while attempt n runs.
    attempt: Option<(u32, u32)>,
}

struct Screen {
    multi: MultiProgress,
    counts: ProgressBar,
    /// One bar per line shown under the counts, reused as tasks come and go.
    lines: Vec<ProgressBar>,
    /// The terminal's width when the lines were last set, and each line's width then.
    width: usize,
    drawn: Vec<usize>,
}

pub struct LiveView {
    screen: Option<Screen>,
    /// Each task's place in the plan: the lines keep the plan's order.
    position: HashMap<String, usize>,
    /// The tasks in progress, by place in the plan.
    active: BTreeMap<usize, (String, Row)>,
    /// Tasks that have ended, by status.
    ended: [usize; STATUSES.len()],
    width: usize,
    /// The live lines' terminal (stderr) and the summary's stream.
    style: Style,
    summary_style: Style,
    /// Where the summary goes: stdout normally, stderr when stdout carries JSON.
    summary_to_stderr: bool,
    report: Option<RunReport>,
}

fn template(text: &str) -> ProgressStyle {
    ProgressStyle::with_template(text).expect("valid template")
}

impl LiveView {
    pub fn new(summary_to_stderr: bool, color: ColorChoice) -> Self {
        let style = Style::for_stream(color, Stream::Stderr);
        let target = style.is_terminal().then(ProgressDrawTarget::stderr);
        let mut view = Self::with_target(target, summary_to_stderr);
        view.style = style;
        let summary = if summary_to_stderr {
            Stream::Stderr
        } else {
            Stream::Stdout
        };
        view.summary_style = Style::for_stream(color, summary);
        view
    }

    /// Live lines drawn to `target`, or plain lines (None).
    fn with_target(target: Option<ProgressDrawTarget>, summary_to_stderr: bool) -> Self {
        Self {
            screen: target.map(|target| {
                let multi = MultiProgress::with_draw_target(target);
                let counts = multi.add(ProgressBar::new_spinner());
                // `msg`, not `wide_msg`: a line is as wide as its text (fitted to the
                // terminal here), so what a resize reflowed can be counted and cleared.
                counts.set_style(template("{spinner} {msg}"));
                counts.enable_steady_tick(Duration::from_millis(250));
                Screen {
                    multi,
                    counts,
                    lines: Vec::new(),
                    width: 0,
                    drawn: Vec::new(),
                }
            }),
            position: HashMap::new(),
            active: BTreeMap::new(),
            ended: [0; STATUSES.len()],
            width: 8,
            style: Style::plain(),
            summary_style: Style::plain(),
            summary_to_stderr,
            report: None,
        }
    }

    fn row(&mut self, task: &str) -> Option<&mut Row> {
        let at = self.position.get(task)?;
        self.active.get_mut(at).map(|(_, row)| row)
    }

    /// The task's row, made if it is not in progress yet.
    fn enter(&mut self, task: &str, state: &'static str) -> Option<&mut Row> {
        let at = *self.position.get(task)?;
        let (_, row) = self
            .active
            .entry(at)
            .or_insert_with(|| (task.to_string(), Row::default()));
        row.state = state;
        Some(row)
    }

    #[cfg(test)]
    fn line(&self, task: &str) -> String {
        let Some((_, row)) = self.position.get(task).and_then(|at| self.active.get(at)) else {
            return String::new();
        };
        self.row_line(task, row, None)
    }

    /// The task's line: in full, or fitted to a terminal `width` wide.
    fn row_line(&self, task: &str, row: &Row, width: Option<usize>) -> String {
        let (id_width, stats) = layout(self.width, width);
        let elapsed = row
            .started
            .map(|s| format!("{:>5.0}s", s.elapsed().as_secs_f64()))
            .unwrap_or_else(|| "     -".into());
        let (cpu, mem) = match &row.stats {
            Some(s) => (
                s.cpu_percent
                    .map(|c| format!("{c:>5.0}%"))
                    .unwrap_or_else(|| "     -".into()),
                format!("{:>10}", HumanBytes(s.memory_bytes).to_string()),
            ),
            None => ("     -".into(), format!("{:>10}", "-")),
        };
        // The phase first: it says where the task stands; the activity, what it does now.
        let doing = match (row.phase.is_empty(), row.activity.is_empty()) {
            (true, _) => row.activity.clone(),
            (false, true) => row.phase.clone(),
            (false, false) => format!("{} · {}", row.phase, row.activity),
        };
        let doing = match row.attempt {
            Some((n, of)) if !doing.starts_with("attempt") => format!("attempt {n}/{of} · {doing}"),
            _ => doing,
        };
        let state = self.style.state(row.state, &format!("{:<10}", row.state));
        let id = style::fit(task, id_width);
        let line = match stats {
            true => format!("{id} {state} {elapsed} {cpu} {mem}  {doing}"),
            false => format!("{id} {state} {elapsed}  {doing}"),
        };
        match width {
            Some(w) => style::truncate(&line, w),
            None => line,
        }
    }

    /// `3 running · 1 waiting for memory · 480 queued · 14 succeeded · 2 failed`
    fn counts(&self) -> String {
        let waiting = self.active.values().filter(|(_, r)| r.state == WAITING).count();
        let running = self.active.len() - waiting;
        let ended: usize = self.ended.iter().sum();
        let queued = self.position.len().saturating_sub(ended + self.active.len());
        let mut parts = vec![format!("{running} running")];
        if waiting > 0 {
            parts.push(format!("{waiting} waiting for memory"));
        }
        parts.push(format!("{queued} queued"));
        for (status, n) in STATUSES.iter().zip(self.ended) {
            if n > 0 {
                let text = format!("{n} {}", status.as_str());
                parts.push(self.style.state(status.as_str(), &text));
            }
        }
        format!("{ended}/{} done: {}", self.position.len(), parts.join(" · "))
    }

    /// Redraws the terminal's lines; a plain log gets `plain` (if any) for `task`.
    fn update(&mut self, task: &str, plain: Option<String>) {
        if self.screen.is_none() {
            if let Some(p) = plain {
                eprintln!("{task:<w$} {p}", w = self.width);
            }
            return;
        }
        // Read at every frame: the terminal may have been resized. Each line stays a column
        // short of the width (its 2-column prefix included), so none wraps.
        let width = self.style.width().map(|w| w - 3);
        let counts = self.counts();
        let mut texts: Vec<String> = self
            .active
            .values()
            .take(MAX_TASK_LINES)
            .map(|(t, r)| self.row_line(t, r, width))
            .collect();
        if self.active.len() > MAX_TASK_LINES {
            texts.push(format!("… and {} more", self.active.len() - MAX_TASK_LINES));
        }
        let Some(screen) = &mut self.screen else { return };
        if let Some(w) = width {
            clear_reflowed(screen, w + 3);
        }
        let counts = match width {
            Some(w) => style::truncate(&counts, w),
            None => counts,
        };
        screen.drawn = std::iter::once(&counts)
            .chain(&texts)
            .map(|t| 2 + style::width_of(t))
            .collect();
        screen.counts.set_message(counts);
        while screen.lines.len() < texts.len() {
            let bar = screen.multi.add(ProgressBar::new_spinner());
            bar.set_style(template("  {msg}"));
            screen.lines.push(bar);
        }
        while screen.lines.len() > texts.len() {
            let bar = screen.lines.pop().expect("more lines than texts");
            bar.finish_and_clear();
            screen.multi.remove(&bar);
        }
        for (bar, text) in screen.lines.iter().zip(texts) {
            bar.set_message(text);
        }
    }

    /// Prints `text` above the live lines, fitted to the terminal (wrapped when `wrap`, else
    /// cut); in the log as it is.
    fn say_fitted(&self, text: String, wrap: bool) {
        match self.style.width().filter(|_| self.screen.is_some()) {
            Some(w) if wrap => self.say(style::wrap(&text, w - 1, 2).join("\n")),
            Some(w) => self.say(style::truncate(&text, w - 1)),
            None => self.say(text),
        }
    }

    /// A line above the live lines on a terminal, or in the log.
    fn say(&self, text: String) {
        match &self.screen {
            Some(s) => {
                let _ = s.multi.println(text);
            }
            None => eprintln!("{text}"),
        }
    }

    fn finished(&mut self, task: &str, result: &TaskResult) {
        let at = self.position.get(task).copied();
        let mut row = at
            .and_then(|at| self.active.remove(&at))
            .map(|(_, row)| row)
            .unwrap_or_default();
        if let Some(i) = STATUSES.iter().position(|s| *s == result.status) {
            self.ended[i] += 1;
        }
        row.state = result.status.as_str();
        if let Some(a) = &result.agent {
            row.activity = format!("{} turn{}", a.num_turns, if a.num_turns == 1 { "" } else { "s" });
        }
        if let Some(m) = &result.message {
            row.activity = if row.activity.is_empty() {
                m.clone()
            } else {
                format!("{} · {m}", row.activity)
            };
        }
        // On a terminal the line is fitted as the live lines are (the summary has it all).
        let width = self
            .style
            .width()
            .filter(|_| self.screen.is_some())
            .map(|w| w - 1);
        let text = self.row_line(task, &row, width);
        match &self.screen {
            // Only the tasks that ended badly by themselves keep a line; the rest are counted.
            Some(_) if !ended_quietly(result.status) => self.say_fitted(text, false),
            Some(_) => {}
            None => {
                let ended: usize = self.ended.iter().sum();
                eprintln!("[{ended}/{}] {text}", self.position.len());
            }
        }
        self.update(task, None);
    }
}

const WAITING: &str = "waiting";

/// Statuses the terminal only counts: a success, or an end the run decided (fail-fast, Ctrl-C,
/// a failed dependency), which the summary explains.
fn ended_quietly(status: TaskStatus) -> bool {
    matches!(
        status,
        TaskStatus::Succeeded | TaskStatus::Cancelled | TaskStatus::Skipped
    )
}

#[cfg(test)]
mod tests;
