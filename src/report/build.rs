//! Shows image build progress: a spinner with the current step on a terminal, the step lines
//! otherwise (CI logs). The full build output is kept to be shown on failure.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::engine::BuildLine;
use crate::image::ImageEvent;

pub struct BuildDisplay {
    bar: Option<ProgressBar>,
    step: String,
}

impl BuildDisplay {
    /// A display on stderr; a spinner only when stderr is a terminal.
    pub fn stderr() -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {elapsed:>4} {msg}").expect("valid template"),
            );
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Self {
            bar,
            step: String::new(),
        }
    }

    pub fn on_event(&mut self, event: ImageEvent) {
        match event {
            ImageEvent::PullingBase { base, status } => {
                self.show(&format!("pulling {base}: {status}"), false)
            }
            ImageEvent::Bootstrap { line } => self.show(&format!("bootstrap: {line}"), true),
            ImageEvent::Reused { tag } => self.show(&format!("{tag} is current, reusing it"), true),
            ImageEvent::Building { tag } => self.show(&format!("building {tag}"), true),
            ImageEvent::Build(BuildLine::Step(step)) => {
                self.step = step.clone();
                self.show(&step, true);
            }
            ImageEvent::Build(BuildLine::Output(line)) => {
                let msg = format!("{}  | {}", self.step, truncate(&line, 80));
                self.show(&msg, false);
            }
            ImageEvent::Built { tag, seconds } => self.show(&format!("built {tag} in {seconds:.1}s"), true),
        }
    }

    /// Sets the spinner's message; `keep` lines are also printed (above the spinner on a
    /// terminal, plainly otherwise).
    fn show(&self, msg: &str, keep: bool) {
        match &self.bar {
            Some(bar) if keep => bar.println(msg),
            Some(bar) => bar.set_message(msg.to_string()),
            None if keep => eprintln!("{msg}"),
            None => {}
        }
    }

    pub fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}
