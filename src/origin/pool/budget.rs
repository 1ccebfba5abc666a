//! The retry budget: retries may be at most a share of the requests of the last ten seconds,
//! so a failing pool is not sent every request twice (Envoy's and Finagle's retry budgets).

use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// One-second buckets over the window.
const BUCKETS: usize = 10;
const BUCKET: Duration = Duration::from_secs(1);

/// Requests and retries counted per second over the last ten seconds.
pub(super) struct RetryBudget {
    /// Retries allowed per request in the window (`[[site]] retry_budget`).
    ratio: f64,
    window: Mutex<Window>,
}

#[derive(Default)]
struct Window {
    /// (second since the epoch, requests, retries) per bucket, by `second % BUCKETS`.
    buckets: [(u64, u32, u32); BUCKETS],
}

impl Window {
    /// The bucket of `now`, emptied if it last counted another second.
    fn bucket(&mut self, now: SystemTime) -> &mut (u64, u32, u32) {
        let sec = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs()
            / BUCKET.as_secs();
        let b = &mut self.buckets[sec as usize % BUCKETS];
        if b.0 != sec {
            *b = (sec, 0, 0);
        }
        b
    }

    /// Requests and retries in the ten seconds up to `now`.
    fn totals(&self, now: SystemTime) -> (u32, u32) {
        let sec = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let live = |b: &&(u64, u32, u32)| b.0 + BUCKETS as u64 > sec && b.0 <= sec;
        self.buckets
            .iter()
            .filter(live)
            .fold((0, 0), |(r, t), b| (r + b.1, t + b.2))
    }
}

impl RetryBudget {
    pub(super) fn new(ratio: f64) -> Self {
        Self {
            ratio,
            window: Mutex::new(Window::default()),
        }
    }

    /// Counts a request.
    pub(super) fn request(&self, now: SystemTime) {
        let mut w = self.window.lock().unwrap_or_else(|p| p.into_inner());
        w.bucket(now).1 += 1;
    }

    /// May one more retry go out now? Counts it if so. One retry is always allowed while the
    /// window holds fewer than ten requests, so a quiet site still retries a dead connection.
    pub(super) fn try_retry(&self, now: SystemTime) -> bool {
        let mut w = self.window.lock().unwrap_or_else(|p| p.into_inner());
        let (requests, retries) = w.totals(now);
        let allowed = (f64::from(requests) * self.ratio)
            .floor()
            .max(if self.ratio > 0.0 { 1.0 } else { 0.0 });
        if f64::from(retries) + 1.0 > allowed {
            return false;
        }
        w.bucket(now).2 += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_stay_within_their_share_of_the_window() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let b = RetryBudget::new(0.2);
        for _ in 0..50 {
            b.request(t0);
        }
        let granted = (0..50).filter(|_| b.try_retry(t0)).count();
        assert_eq!(granted, 10, "20 % of 50");
        // Ten seconds on, the old requests and retries have left the window.
        let later = t0 + Duration::from_secs(10);
        b.request(later);
        assert!(b.try_retry(later), "one retry for a quiet site");
        assert!(!b.try_retry(later));
        let none = RetryBudget::new(0.0);
        none.request(t0);
        assert!(!none.try_retry(t0));
    }
}
