//! Displays and writers: consumers of the events the runner emits. Nothing else prints, and
//! nothing here touches the engine.

pub mod build;
mod live;
mod ndjson;
mod summary;
mod writer;

pub use live::LiveView;
pub use ndjson::Ndjson;
pub use summary::summary_table;
pub use writer::{ReportWriter, write_atomically};

use crate::runner::Event;

/// Something that reacts to run events.
pub trait Consumer: Send {
    fn on_event(&mut self, event: &Event);
    /// Called once the event stream has ended.
    fn finish(&mut self) {}
}

/// Feeds every event to every consumer until the run has finished (or every sender is gone).
pub async fn consume(
    mut rx: tokio::sync::mpsc::UnboundedReceiver<Event>,
    mut consumers: Vec<Box<dyn Consumer>>,
) {
    while let Some(event) = rx.recv().await {
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
