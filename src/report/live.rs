//! The live view: one line per task (state, elapsed, CPU, memory, latest activity) on a
//! terminal; plain lines at each change of state otherwise (CI logs). Ends with the summary.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{HumanBytes, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::{Consumer, summary_table};
use crate::monitor::StatsSample;
use crate::runner::{Event, RunReport};

#[derive(Default)]
struct Row {
    state: String,
    started: Option<Instant>,
    ended: Option<Instant>,
    stats: Option<StatsSample>,
    phase: String,
    activity: String,
}

pub struct LiveView {
    bars: Option<(MultiProgress, HashMap<String, ProgressBar>)>,
    rows: HashMap<String, Row>,
    /// Task ids in plan order.
    order: Vec<String>,
    width: usize,
    /// Where the summary goes: stdout normally, stderr when stdout carries JSON.
    summary_to_stderr: bool,
    report: Option<RunReport>,
}

impl LiveView {
    pub fn new(summary_to_stderr: bool) -> Self {
        let tty = std::io::stderr().is_terminal();
        Self {
            bars: tty.then(|| {
                (
                    MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
                    HashMap::new(),
                )
            }),
            rows: HashMap::new(),
            order: Vec::new(),
            width: 8,
            summary_to_stderr,
            report: None,
        }
    }

    fn line(&self, task: &str) -> String {
        let Some(row) = self.rows.get(task) else {
            return String::new();
        };
        let elapsed = row
            .started
            .map(|s| {
                format!(
                    "{:>5.0}s",
                    row.ended
                        .unwrap_or_else(Instant::now)
                        .duration_since(s)
                        .as_secs_f64()
                )
            })
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
        format!(
            "{task:<w$} {:<10} {elapsed} {cpu} {mem}  {doing}",
            row.state,
            w = self.width
        )
    }

    fn update(&mut self, task: &str, plain: Option<String>) {
        let text = self.line(task);
        match &self.bars {
            Some((_, bars)) => {
                if let Some(bar) = bars.get(task) {
                    bar.set_message(text);
                }
            }
            None => {
                if let Some(p) = plain {
                    eprintln!("{task:<w$} {p}", w = self.width);
                }
            }
        }
    }
}

impl Consumer for LiveView {
    fn on_event(&mut self, event: &Event) {
        match event {
            Event::RunStarted {
                run_id,
                tasks,
                jobs,
                image,
                ..
            } => {
                self.width = tasks.iter().map(|t| t.len()).max().unwrap_or(4).max(4);
                self.order.clone_from(tasks);
                eprintln!(
                    "run {run_id}: {} tasks, {jobs} at once, image {image}",
                    tasks.len()
                );
                for t in tasks {
                    self.rows.insert(
                        t.clone(),
                        Row {
                            state: "queued".into(),
                            ..Default::default()
                        },
                    );
                    if let Some((multi, bars)) = &mut self.bars {
                        let bar = multi.add(ProgressBar::new_spinner());
                        bar.set_style(
                            ProgressStyle::with_template("{spinner} {wide_msg}").expect("valid template"),
                        );
                        bar.enable_steady_tick(Duration::from_millis(250));
                        bars.insert(t.clone(), bar);
                    }
                    self.update(t, None);
                }
            }
            Event::WaitingForMemory {
                task,
                needs_bytes,
                free_bytes,
                total_bytes,
            } => {
                let text = format!(
                    "waiting for memory: needs {}, {} free of {}",
                    HumanBytes(*needs_bytes),
                    HumanBytes(*free_bytes),
                    HumanBytes(*total_bytes)
                );
                if let Some(r) = self.rows.get_mut(task) {
                    r.state = "waiting".into();
                    r.activity.clone_from(&text);
                }
                self.update(task, Some(text));
            }
            Event::TaskPreparing { task, .. } => {
                if let Some(r) = self.rows.get_mut(task) {
                    r.state = "preparing".into();
                }
                self.update(task, None);
            }
            Event::TaskStarted {
                task, container_id, ..
            } => {
                if let Some(r) = self.rows.get_mut(task) {
                    r.state = "running".into();
                    r.started = Some(Instant::now());
                }
                self.update(
                    task,
                    Some(format!(
                        "started in container {}",
                        crate::engine::short(container_id)
                    )),
                );
            }
            Event::Stats { task, sample } => {
                if let Some(r) = self.rows.get_mut(task) {
                    r.stats = Some(*sample);
                }
                self.update(task, None);
            }
            Event::Agent {
                task,
                activity,
                api_retries,
                ..
            } => {
                if let Some(r) = self.rows.get_mut(task) {
                    r.activity.clone_from(activity);
                }
                // Retries matter in CI logs; every turn would be noise.
                let plain = (*api_retries > 0 || activity.starts_with("done") || activity.contains("turns)"))
                    .then(|| activity.clone());
                self.update(task, plain);
            }
            Event::Phase {
                task, phase, name, ..
            } => {
                let label = format!("phase {phase}/{}: {name}", crate::agent::phases::PHASES.len());
                if let Some(r) = self.rows.get_mut(task) {
                    r.phase.clone_from(&label);
                }
                self.update(task, Some(label));
            }
            Event::RateLimited {
                task,
                status,
                resume_in_s,
            } => {
                let text = format!("rate limited ({status}), resuming in {resume_in_s:.0}s");
                if let Some(r) = self.rows.get_mut(task) {
                    r.activity.clone_from(&text);
                }
                self.update(task, Some(text));
            }
            Event::TaskStopping { task, reason } => {
                if let Some(r) = self.rows.get_mut(task) {
                    r.state = "stopping".into();
                }
                self.update(task, Some(format!("stopping ({reason:?})").to_lowercase()));
            }
            Event::TaskFinished { task, result } => {
                if let Some(r) = self.rows.get_mut(task) {
                    r.state = result.status.as_str().into();
                    r.ended = Some(Instant::now());
                    if let Some(a) = &result.agent {
                        r.activity =
                            format!("{} turn{}", a.num_turns, if a.num_turns == 1 { "" } else { "s" });
                    }
                    if let Some(m) = &result.message {
                        r.activity = if r.activity.is_empty() {
                            m.clone()
                        } else {
                            format!("{} · {m}", r.activity)
                        };
                    }
                }
                let text = self.line(task);
                match &self.bars {
                    Some((_, bars)) => {
                        if let Some(bar) = bars.get(task) {
                            bar.finish_with_message(text);
                        }
                    }
                    None => eprintln!("{text}"),
                }
            }
            Event::RunCancelling { kill } => {
                let msg = if *kill {
                    "second interrupt: killing every container now"
                } else {
                    "interrupted: stopping every container (10 s grace; Ctrl-C again to kill at once)"
                };
                match &self.bars {
                    Some((multi, _)) => {
                        let _ = multi.println(msg);
                    }
                    None => eprintln!("{msg}"),
                }
            }
            Event::CleanupFailed { message } => match &self.bars {
                Some((multi, _)) => {
                    let _ = multi.println(format!("cleanup: {message}"));
                }
                None => eprintln!("cleanup: {message}"),
            },
            Event::RunFinished { report } => self.report = Some((**report).clone()),
        }
    }

    fn finish(&mut self) {
        if let Some((multi, bars)) = self.bars.take() {
            for bar in bars.values() {
                if !bar.is_finished() {
                    bar.finish();
                }
            }
            let _ = multi.clear();
            // Keep the final rows on screen: they were cleared with the bars.
            for t in &self.order {
                eprintln!("{}", self.line(t));
            }
        }
        if let Some(report) = &self.report {
            let table = summary_table(report);
            if self.summary_to_stderr {
                eprint!("{table}")
            } else {
                print!("{table}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_line_shows_its_phase_and_its_activity() {
        let mut view = LiveView::new(false);
        view.bars = None;
        view.on_event(&Event::RunStarted {
            run_id: "r".into(),
            repo: "/r".into(),
            image: "i".into(),
            jobs: 1,
            tasks: vec!["t1".into()],
            at: "now".into(),
        });
        view.on_event(&Event::Phase {
            task: "t1".into(),
            phase: 3,
            name: "branch management".into(),
            completed: vec![1, 2],
        });
        assert!(
            view.line("t1").ends_with("phase 3/11: branch management"),
            "{}",
            view.line("t1")
        );
        view.on_event(&Event::Agent {
            task: "t1".into(),
            activity: "Bash: git switch -c feature".into(),
            turns: 2,
            tool: Some("Bash".into()),
            api_retries: 0,
        });
        let line = view.line("t1");
        assert!(
            line.contains("phase 3/11: branch management · Bash: git switch -c feature"),
            "{line}"
        );
    }
}
