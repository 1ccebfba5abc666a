//! The edge's one clock. Every caching decision that depends on time (freshness, age, how
//! long the store keeps an object, hit-for-miss marks, cache-aside TTLs) reads [`Clock::now`],
//! so a test can move time forward instead of sleeping until `max-age=1` runs out.
//!
//! Two sources: the wall clock (what a running edge uses: `Date` and `Expires` from origins are
//! wall-clock times, and a clock that drifted from it would age responses wrongly), or tokio's
//! clock (for unit tests on paused time, `#[tokio::test(start_paused = true)]` and
//! `tokio::time::advance`). Either can be moved forward with [`Clock::advance`], which is how
//! tests over real sockets (where tokio's paused clock would fire every timeout at once) make a
//! response expire. Timeouts of I/O (a slow origin, a slow client) are not decisions about
//! content and keep using tokio's timers directly.
//!
//! This is the only module that reads `SystemTime::now` or `Instant::now` (see `.clippy.toml`),
//! with the tools that measure wall time on purpose (`bench`, `replay`) and the access log's
//! timestamps.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, SystemTime},
};

/// A shared, cheap-to-clone source of the current time.
#[derive(Clone, Debug)]
pub struct Clock(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    /// Where the time comes from: the wall clock, or tokio's for tests on paused time.
    source: Source,
    /// How far [`Clock::advance`] has moved this clock ahead of its source, in microseconds.
    ahead_us: AtomicU64,
}

#[derive(Debug)]
enum Source {
    Wall,
    /// `wall` was the time when tokio's clock read `origin`.
    Tokio {
        origin: tokio::time::Instant,
        wall: SystemTime,
    },
}

impl Clock {
    /// The wall clock: what the server runs on.
    pub fn wall() -> Self {
        Self::with(Source::Wall)
    }

    /// A clock that follows tokio's, so that a test on paused time controls it with
    /// `tokio::time::advance`. It starts at the current wall time.
    #[allow(clippy::disallowed_methods)] // where this clock's wall time starts
    pub fn tokio() -> Self {
        Self::with(Source::Tokio {
            origin: tokio::time::Instant::now(),
            wall: SystemTime::now(),
        })
    }

    fn with(source: Source) -> Self {
        Clock(Arc::new(Inner {
            source,
            ahead_us: AtomicU64::new(0),
        }))
    }

    /// The current time.
    #[allow(clippy::disallowed_methods)] // the one place the wall clock is read
    pub fn now(&self) -> SystemTime {
        let base = match &self.0.source {
            Source::Wall => SystemTime::now(),
            Source::Tokio { origin, wall } => *wall + origin.elapsed(),
        };
        base + Duration::from_micros(self.0.ahead_us.load(Ordering::Relaxed))
    }

    /// Moves this clock (and every clone of it) `by` ahead, for tests. The edge never calls it.
    pub fn advance(&self, by: Duration) {
        let us = u64::try_from(by.as_micros()).unwrap_or(u64::MAX);
        self.0.ahead_us.fetch_add(us, Ordering::Relaxed);
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::wall()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_advanced_clock_stays_ahead_in_every_clone() {
        let c = Clock::wall();
        let other = c.clone();
        let before = c.now();
        c.advance(Duration::from_secs(3600));
        let after = other.now();
        let moved = after.duration_since(before).unwrap();
        assert!(moved >= Duration::from_secs(3600), "{moved:?}");
        assert!(moved < Duration::from_secs(3600 + 60), "{moved:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_tokio_clock_follows_paused_time() {
        let c = Clock::tokio();
        let t0 = c.now();
        tokio::time::advance(Duration::from_secs(90)).await;
        assert_eq!(c.now().duration_since(t0).unwrap(), Duration::from_secs(90));
        c.advance(Duration::from_secs(10));
        assert_eq!(
            c.now().duration_since(t0).unwrap(),
            Duration::from_secs(100)
        );
    }
}
