//! Upstream rate limits, for the whole run: when the model API answers 429 or 529, every
//! task's next request waits until the window passes, and while the API is limiting, requests
//! go one at a time (the first to pass is the probe; when it gets through, the rest follow).
//! Each CLI would otherwise spend its own retries against the same limit.

use std::time::Duration;

use hyper::HeaderMap;

use crate::gateway::window::Window;

/// How often one request is held and sent again, and the longest hold at a time.
pub const MAX_HOLDS: u32 = 8;
const LONGEST_WAIT: Duration = Duration::from_secs(60);
/// A 429 or 529 without `retry-after`.
const DEFAULT_WAIT: Duration = Duration::from_secs(5);

#[derive(Default)]
pub struct RateGate {
    window: Window,
    probe: tokio::sync::Mutex<()>,
}

impl RateGate {
    /// Waits while the upstream is limiting. The guard, when there is one, makes this request
    /// the only one in flight until it is dropped.
    pub async fn pass(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        self.window.until()?;
        let guard = self.probe.lock().await;
        // The probe before this one may have cleared the window meanwhile.
        self.window.until()?;
        self.window.wait_out().await;
        Some(guard)
    }

    /// The upstream said to wait `wait`.
    pub fn limited(&self, wait: Duration) {
        self.window.extend(wait);
    }

    /// A request got through: the window has passed.
    pub fn cleared(&self) {
        self.window.clear();
    }
}

/// How long to wait after a 429 or 529: its `retry-after` (seconds), within bounds.
pub fn wait_after(headers: &HeaderMap) -> Duration {
    headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok()?.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map_or(DEFAULT_WAIT, Duration::from_secs_f64)
        .clamp(Duration::from_millis(200), LONGEST_WAIT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use tokio::time::Instant;

    #[test]
    fn retry_after_is_read_and_bounded() {
        let mut h = HeaderMap::new();
        assert_eq!(wait_after(&h), DEFAULT_WAIT);
        h.insert("retry-after", "3".parse().unwrap());
        assert_eq!(wait_after(&h), Duration::from_secs(3));
        h.insert("retry-after", "3600".parse().unwrap());
        assert_eq!(wait_after(&h), LONGEST_WAIT);
        h.insert("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap());
        assert_eq!(wait_after(&h), DEFAULT_WAIT);
    }

    #[tokio::test(start_paused = true)]
    async fn while_limited_requests_wait_and_go_one_at_a_time() {
        let gate = Arc::new(RateGate::default());
        assert!(
            gate.pass().await.is_none(),
            "not limited: no wait, no turn to take"
        );
        gate.limited(Duration::from_secs(3));
        let start = Instant::now();
        let probe = gate.pass().await;
        assert!(probe.is_some());
        assert!(start.elapsed() >= Duration::from_secs(3), "waited out the window");
        // Another request waits for the probe's outcome.
        let other = {
            let gate = gate.clone();
            tokio::spawn(async move {
                let _turn = gate.pass().await;
                Instant::now()
            })
        };
        tokio::time::sleep(Duration::from_secs(1)).await;
        gate.cleared();
        let released = Instant::now();
        drop(probe);
        let went = other.await.unwrap();
        assert!(went >= released, "the other went only after the probe");
    }
}
