//! The live view as a consumer of the run's events: each event changes a task's row or prints
//! a line; the view never asks the engine or the scheduler anything.

use std::time::Instant;

use indicatif::HumanBytes;

use super::{LiveView, WAITING, style, summary_table};
use crate::report::Consumer;
use crate::runner::Event;

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
                self.position = tasks.iter().enumerate().map(|(i, t)| (t.clone(), i)).collect();
                let text = format!(
                    "run {run_id}: {} tasks, {jobs} at once, image {image}",
                    tasks.len()
                );
                self.say_fitted(text, true);
                self.update("", None);
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
                self.waiting_for_memory(task, text);
            }
            Event::TaskPreparing { task, .. } => {
                if let Some(r) = self.enter(task, "preparing") {
                    r.activity.clear();
                }
                self.update(task, None);
            }
            Event::TaskStarted {
                task, container_id, ..
            } => {
                if let Some(r) = self.enter(task, "running") {
                    r.started = Some(Instant::now());
                }
                let text = format!("started in container {}", crate::engine::short(container_id));
                self.update(task, Some(text));
            }
            Event::Stats { task, sample } => {
                if let Some(r) = self.row(task) {
                    r.stats = Some(*sample);
                }
                self.update(task, None);
            }
            Event::Agent {
                task,
                activity,
                api_retries,
                ..
            } => self.agent(task, activity, *api_retries),
            Event::Phase {
                task, phase, name, ..
            } => {
                let label = format!("phase {phase}/{}: {name}", crate::agent::phases::PHASES.len());
                if let Some(r) = self.row(task) {
                    r.phase.clone_from(&label);
                }
                self.update(task, Some(label));
            }
            Event::RateLimited {
                task,
                status,
                resume_in_s,
            } => self.activity(
                task,
                format!("rate limited ({status}), resuming in {resume_in_s:.0}s"),
            ),
            Event::TaskStopping { task, reason } => {
                self.enter(task, "stopping");
                self.update(task, Some(format!("stopping ({reason:?})").to_lowercase()));
            }
            Event::TaskRetrying {
                task,
                attempt,
                of,
                after_s,
                message,
            } => {
                let text = format!("attempt {attempt}/{of} in {after_s:.0}s (the last: {message})");
                if let Some(r) = self.enter(task, WAITING) {
                    r.activity.clone_from(&text);
                    r.attempt = Some((*attempt, *of));
                }
                self.update(task, Some(text));
            }
            Event::TaskFinished { task, result } => self.finished(task, result),
            Event::RunCancelling { kill } => self.say(
                match kill {
                    true => "second interrupt: killing every container now",
                    false => {
                        "interrupted: stopping every container (10 s grace; Ctrl-C again to kill at once)"
                    }
                }
                .into(),
            ),
            Event::CleanupFailed { message } => self.say_fitted(format!("cleanup: {message}"), true),
            Event::MemoryHold { hold } => self.say_fitted(format!("note: {}", hold.describe()), true),
            Event::EnvironmentPreparing => self.say_fitted(
                "preparing the project's environment (once per uv.lock)".into(),
                true,
            ),
            Event::Environment { env } => self.environment(env),
            Event::RunFinished { report } => self.report = Some((**report).clone()),
        }
    }

    /// Keeps the elapsed times moving while no event comes.
    fn tick(&mut self) {
        if self.screen.is_some() {
            self.update("", None);
        }
    }

    fn finish(&mut self) {
        if let Some(screen) = self.screen.take() {
            for bar in screen.lines.iter().chain([&screen.counts]) {
                bar.finish_and_clear();
            }
            let _ = screen.multi.clear();
        }
        // The counts stay on screen (the tasks that ended badly are above them).
        match self.style.width() {
            Some(w) => eprintln!("{}", style::wrap(&self.counts(), w - 1, 2).join("\n")),
            None => eprintln!("{}", self.counts()),
        }
        if let Some(report) = &self.report {
            let table = summary_table(report, &self.summary_style);
            if self.summary_to_stderr {
                eprint!("{table}")
            } else {
                print!("{table}")
            }
        }
    }
}

impl LiveView {
    fn waiting_for_memory(&mut self, task: &str, text: String) {
        // One task waits for memory at a time (the others queue behind it).
        self.active.retain(|_, (t, r)| r.state != WAITING || t == task);
        if let Some(r) = self.enter(task, WAITING) {
            r.activity.clone_from(&text);
        }
        self.update(task, Some(text));
    }

    fn agent(&mut self, task: &str, activity: &str, api_retries: u32) {
        if let Some(r) = self.row(task) {
            r.activity = activity.to_string();
        }
        // Retries matter in CI logs; every turn would be noise.
        let plain = (api_retries > 0 || activity.starts_with("done") || activity.contains("turns)"))
            .then(|| activity.to_string());
        self.update(task, plain);
    }

    /// A change of what the task is doing, shown in its row and as a plain line.
    fn activity(&mut self, task: &str, text: String) {
        if let Some(r) = self.row(task) {
            r.activity.clone_from(&text);
        }
        self.update(task, Some(text));
    }

    fn environment(&mut self, env: &crate::warm::Environment) {
        self.say_fitted(env.describe(), true);
        // A failure's last lines, once for every task that needed it.
        let out = env.output.as_deref().unwrap_or_default();
        let lines: Vec<&str> = out.lines().filter(|l| !l.trim().is_empty()).collect();
        for line in &lines[lines.len().saturating_sub(12)..] {
            self.say_fitted(format!("  {line}"), true);
        }
    }
}
