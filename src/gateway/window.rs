//! A rate-limit window: "wait until then", extended by each new limit, never shortened. The
//! gateway holds requests on one (`serve::limits`); sandpen holds admissions on another, fed by
//! the gateway's `rate_limited` reports.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug, Default)]
pub struct Window {
    until: Mutex<Option<Instant>>,
}

impl Window {
    /// The limit says to wait `wait` from now (a later end than the current one wins).
    pub fn extend(&self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut u = self.until.lock().unwrap();
        *u = Some(u.map_or(until, |old| old.max(until)));
    }

    pub fn clear(&self) {
        *self.until.lock().unwrap() = None;
    }

    /// When the window ends, if one is set.
    pub fn until(&self) -> Option<Instant> {
        *self.until.lock().unwrap()
    }

    /// Sleeps until the window ends, however often it is extended meanwhile.
    pub async fn wait_out(&self) {
        while let Some(t) = self.until().filter(|t| *t > Instant::now()) {
            tokio::time::sleep_until(t).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_window_is_extended_never_shortened_and_waited_out() {
        let w = std::sync::Arc::new(Window::default());
        let start = Instant::now();
        w.wait_out().await;
        assert_eq!(start.elapsed(), Duration::ZERO, "no window: no wait");
        w.extend(Duration::from_secs(3));
        w.extend(Duration::from_secs(1));
        let extender = {
            let w = w.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(2)).await;
                w.extend(Duration::from_secs(2));
            })
        };
        w.wait_out().await;
        extender.await.unwrap();
        assert!(start.elapsed() >= Duration::from_secs(4), "{:?}", start.elapsed());
    }
}
