//! Displays and writers: consumers of the events the runner emits. Nothing else prints, and
//! nothing here touches the engine.

pub mod build;
pub mod html;
mod junit;
mod live;
mod ndjson;
mod summary;
mod writer;

pub use html::HtmlWriter;
pub use junit::JunitWriter;
pub use live::LiveView;
pub use ndjson::Ndjson;
pub use summary::summary_table;
pub use writer::{ReportWriter, write_atomically};

use crate::runner::{Event, EventReceiver};

/// Something that reacts to run events.
pub trait Consumer: Send {
    fn on_event(&mut self, event: &Event);
    /// Called once the event stream has ended.
    fn finish(&mut self) {}
}

/// Feeds every event to every consumer until the run has finished (or every sender is gone).
/// Runs on a thread of its own: a display may block on a terminal or a pipe, and while it
/// does the runner's volume events wait (see `runner::channel`).
pub fn consume(mut rx: EventReceiver, mut consumers: Vec<Box<dyn Consumer>>) {
    while let Some(event) = rx.blocking_recv() {
        for c in consumers.iter_mut() {
            c.on_event(&event);
        }
        if matches!(event, Event::RunFinished { .. }) {
            break;
        }
    }
    for c in consumers.iter_mut() {
        c.finish();
    }
}
