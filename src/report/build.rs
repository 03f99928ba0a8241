//! Shows image build progress: on a terminal, one line that updates (the step the build is
//! at, fitted to the width) and the result; otherwise (CI logs) a line when a build starts and
//! one when it ends, never every step. The full build output is kept to be shown on failure.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use super::style::{self, ColorChoice, Stream, Style};
use crate::engine::BuildLine;
use crate::image::ImageEvent;

pub struct BuildDisplay {
    bar: Option<ProgressBar>,
    style: Style,
    building: String,
    step: String,
}

impl BuildDisplay {
    /// A display on stderr; a spinner only when stderr is a terminal.
    pub fn stderr() -> Self {
        let style = Style::for_stream(ColorChoice::Auto, Stream::Stderr);
        let bar = style.is_terminal().then(|| {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {elapsed:>4} {msg}").expect("valid template"),
            );
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Self {
            bar,
            style,
            building: String::new(),
            step: String::new(),
        }
    }

    pub fn on_event(&mut self, event: ImageEvent) {
        match event {
            ImageEvent::PullingBase { base, status } => {
                self.show(&format!("pulling {base}: {status}"), false)
            }
            ImageEvent::Bootstrap { line } => self.show(&format!("bootstrap: {line}"), true),
            ImageEvent::StandIn { line } | ImageEvent::Note { line } => self.show(&line, true),
            ImageEvent::Reused { tag } => self.show(&format!("{tag} is current, reusing it"), true),
            ImageEvent::Building { tag } => {
                self.building = format!("building {tag}");
                self.step.clear();
                match &self.bar {
                    Some(_) => self.show(&self.building, false),
                    None => self.show(&self.building, true),
                }
            }
            ImageEvent::Build(BuildLine::Step(step)) => {
                self.step = step;
                self.show(&format!("{}: {}", self.building, self.step), false);
            }
            ImageEvent::Build(BuildLine::Output(line)) => {
                let msg = format!("{}: {} | {line}", self.building, self.step);
                self.show(&msg, false);
            }
            ImageEvent::Built { tag, seconds } => self.show(&format!("built {tag} in {seconds:.1}s"), true),
        }
    }

    /// Sets the spinner's message (fitted to the terminal: it must not wrap); `keep` lines are
    /// also printed (above the spinner on a terminal, plainly otherwise).
    fn show(&self, msg: &str, keep: bool) {
        match &self.bar {
            Some(bar) if keep => bar.println(msg),
            Some(bar) => {
                // The spinner and the elapsed time take 7 columns; one more stays free.
                let room = self.style.width().map_or(80, |w| w - 8);
                bar.set_message(style::truncate(msg, room))
            }
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
