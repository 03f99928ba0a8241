//! `--json`: every event as one JSON line on stdout.

use std::io::Write;

use super::Consumer;
use crate::runner::Event;

#[derive(Default)]
pub struct Ndjson;

impl Consumer for Ndjson {
    fn on_event(&mut self, event: &Event) {
        let mut out = std::io::stdout().lock();
        if serde_json::to_writer(&mut out, event).is_ok() {
            let _ = out.write_all(b"\n");
            let _ = out.flush();
        }
    }
}
