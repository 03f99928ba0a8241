//! Displays and writers: consumers of the events the runner emits. Nothing else prints, and
//! nothing here touches the engine.

pub mod build;
pub mod failure;
pub mod html;
mod junit;
mod live;
mod ndjson;
pub mod style;
mod summary;
mod writer;

pub use html::HtmlWriter;
pub use junit::JunitWriter;
pub use live::LiveView;
pub use ndjson::Ndjson;
pub use summary::summary_table;
pub use writer::ReportWriter;

use std::time::Duration;

use crate::runner::{Event, EventReceiver, Received};

/// How long the consumers wait for an event before they are ticked.
pub const TICK: Duration = Duration::from_millis(250);

/// Something that reacts to run events.
pub trait Consumer: Send {
    fn on_event(&mut self, event: &Event);
    /// Called when no event came for `TICK`: time passed (a write that waited is due).
    fn tick(&mut self) {}
    /// Called once the event stream has ended.
    fn finish(&mut self) {}
}

/// Feeds every event to every consumer until the run has finished (or every sender is gone).
/// Runs on a thread of a runtime's blocking pool: a display may block on a terminal or a
/// pipe, and while it does the runner's volume events wait (see `runner::channel`).
pub fn consume(mut rx: EventReceiver, mut consumers: Vec<Box<dyn Consumer>>) {
    loop {
        let event = match rx.blocking_recv_timeout(TICK) {
            Received::Event(e) => e,
            Received::Quiet => {
                consumers.iter_mut().for_each(|c| c.tick());
                continue;
            }
            Received::Closed => break,
        };
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
