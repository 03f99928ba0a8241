//! The event channel from the runner to the displays, bounded where it matters: events that
//! come in volume (stats, agent activity, phases) wait for room, so a slow `--json` reader
//! slows the tasks' watchers instead of growing memory; events that mark a task's or the run's
//! life (a few per task) never wait, so a stalled display cannot hold back a stop, a time
//! limit or the cleanup. One queue keeps the order; no event is ever dropped.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use super::events::Event;

/// The volume events that may wait in the queue at once.
pub const CAPACITY: usize = 1024;

struct Queued {
    event: Event,
    /// Held while a volume event waits in the queue.
    _room: Option<OwnedSemaphorePermit>,
}

/// Where events go. A display that went away is ignored.
#[derive(Clone)]
pub struct EventSender {
    tx: mpsc::UnboundedSender<Queued>,
    room: Arc<Semaphore>,
}

pub struct EventReceiver(mpsc::UnboundedReceiver<Queued>);

impl EventSender {
    pub fn channel() -> (Self, EventReceiver) {
        let (tx, rx) = mpsc::unbounded_channel();
        let room = Arc::new(Semaphore::new(CAPACITY));
        (Self { tx, room }, EventReceiver(rx))
    }

    /// Queues an event of a task's or the run's life, at once.
    pub fn send(&self, event: Event) {
        debug_assert!(!is_volume(&event), "volume events go through send_volume");
        let _ = self.tx.send(Queued { event, _room: None });
    }

    /// Queues a volume event (stats, agent activity, a phase) once there is room for it.
    pub async fn send_volume(&self, event: Event) {
        debug_assert!(is_volume(&event), "life events go through send");
        if self.tx.is_closed() {
            return;
        }
        let room = self.room.clone().acquire_owned().await.ok();
        let _ = self.tx.send(Queued { event, _room: room });
    }
}

impl std::fmt::Debug for EventSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventSender")
            .field("room", &self.room.available_permits())
            .finish()
    }
}

impl EventReceiver {
    pub async fn recv(&mut self) -> Option<Event> {
        self.0.recv().await.map(|q| q.event)
    }

    /// For a consumer on a thread of the runtime's blocking pool (displays write to a
    /// terminal that may block): the next event, or `Quiet` after `limit` without one.
    pub fn blocking_recv_timeout(&mut self, limit: Duration) -> Received {
        let next = tokio::runtime::Handle::current().block_on(tokio::time::timeout(limit, self.0.recv()));
        match next {
            Ok(Some(q)) => Received::Event(q.event),
            Ok(None) => Received::Closed,
            Err(_) => Received::Quiet,
        }
    }
}

/// What waiting for an event found.
#[derive(Debug)]
pub enum Received {
    Event(Event),
    /// No event for the time given.
    Quiet,
    /// Every sender is gone.
    Closed,
}

fn is_volume(event: &Event) -> bool {
    matches!(
        event,
        Event::Stats { .. } | Event::Agent { .. } | Event::Phase { .. }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(turns: u32) -> Event {
        Event::Agent {
            task: "t".into(),
            activity: String::new(),
            turns,
            tool: None,
            api_retries: 0,
        }
    }

    #[tokio::test]
    async fn volume_events_wait_for_room_and_life_events_never_do() {
        let (tx, mut rx) = EventSender::channel();
        for i in 0..CAPACITY as u32 {
            tx.send_volume(agent(i)).await;
        }
        let full = tokio::time::timeout(Duration::from_millis(100), tx.send_volume(agent(9999))).await;
        assert!(full.is_err(), "a volume event waits while the queue is full");
        tx.send(Event::RunCancelling { kill: false });
        // Reading makes room; the order is kept and nothing is lost.
        let sender = tokio::spawn({
            let tx = tx.clone();
            async move {
                for i in CAPACITY as u32..3 * CAPACITY as u32 {
                    tx.send_volume(agent(i)).await;
                }
            }
        });
        let mut turns = Vec::new();
        while turns.len() < 3 * CAPACITY {
            match rx.recv().await.unwrap() {
                Event::Agent { turns: t, .. } => turns.push(t),
                Event::RunCancelling { .. } => assert_eq!(turns.len(), CAPACITY),
                e => panic!("{e:?}"),
            }
        }
        sender.await.unwrap();
        assert_eq!(turns, (0..3 * CAPACITY as u32).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn a_display_that_went_away_never_holds_the_sender() {
        let (tx, rx) = EventSender::channel();
        drop(rx);
        for i in 0..3 * CAPACITY as u32 {
            tx.send_volume(agent(i)).await;
        }
    }
}
