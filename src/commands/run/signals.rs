//! Ctrl-C, SIGTERM and SIGHUP for a run. Once sandpen listens for a signal its default action
//! (ending the process) is gone for good, so whoever listens first must keep listening until
//! the run's own watcher takes over: `Signals` is that one set of listeners, handed from the
//! Swarm's reach probe to the run, so that no signal between the two is lost.

use std::time::Duration;

use tokio::signal::unix::{Signal, SignalKind, signal};

use super::warn;
use crate::exit;
use crate::runner::{Event, EventSender, Stop};
use crate::workspace::RunDir;

/// After a second interrupt, how long sandpen waits for the kill before it leaves.
const SECOND_INTERRUPT_EXIT: Duration = Duration::from_millis(1500);

/// Listeners for the signals that stop a run; a signal that came before `next` was called is
/// kept for it.
pub struct Signals {
    int: Signal,
    term: Signal,
    hup: Signal,
}

impl Signals {
    /// None where the signals cannot be listened for (their default action then stays).
    pub fn new() -> Option<Self> {
        Some(Self {
            int: signal(SignalKind::interrupt()).ok()?,
            term: signal(SignalKind::terminate()).ok()?,
            hup: signal(SignalKind::hangup()).ok()?,
        })
    }

    /// Resolves at the next stopping signal.
    pub async fn next(&mut self) {
        tokio::select! {
            _ = self.int.recv() => {}
            _ = self.term.recv() => {}
            _ = self.hup.recv() => {}
        }
    }
}

/// The first signal stops every container with the grace; the second kills them and leaves
/// within 2 s whatever the engine does, saying what may be left for `sandpen gc`.
pub async fn watch(signals: Option<Signals>, stop: Stop, events: EventSender, layout: RunDir) {
    let Some(mut signals) = signals else { return };
    for count in 1.. {
        signals.next().await;
        if count == 1 {
            stop.cancel(crate::runner::CancelReason::Interrupted);
            events.send(Event::RunCancelling { kill: false });
            continue;
        }
        stop.kill.cancel();
        events.send(Event::RunCancelling { kill: true });
        tokio::spawn(leave_after(SECOND_INTERRUPT_EXIT, layout.clone()));
    }
}

async fn leave_after(delay: Duration, layout: RunDir) {
    tokio::time::sleep(delay).await;
    warn(&format!(
        "second interrupt: leaving now. Containers of this run may be left on the engine and some \
         checkouts uncollected under {}; `sandpen gc` removes the containers, brings the work \
         back as branches and completes {}",
        layout.root.display(),
        layout.report().display()
    ));
    std::process::exit(exit::INTERRUPTED);
}
