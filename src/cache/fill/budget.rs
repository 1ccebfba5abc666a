//! The in-flight budget: bytes of bodies being filled, across all fills.

use std::sync::atomic::{AtomicU64, Ordering};

/// Bytes of bodies being filled, across all fills.
#[derive(Debug)]
pub struct InflightBudget {
    /// Bytes reserved now, by all fills together.
    used: AtomicU64,
    /// The budget (`cache.max_inflight`): a reservation that would pass it is refused.
    max: u64,
}

impl InflightBudget {
    pub fn new(max: u64) -> Self {
        Self {
            used: AtomicU64::new(0),
            max,
        }
    }

    pub(super) fn try_reserve(&self, n: u64) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                (u + n <= self.max).then_some(u + n)
            })
            .is_ok()
    }

    pub(super) fn release(&self, n: u64) {
        self.used.fetch_sub(n, Ordering::AcqRel);
    }

    pub(crate) fn used(&self) -> u64 {
        self.used.load(Ordering::Acquire)
    }

    pub(crate) fn is_full(&self) -> bool {
        self.used() >= self.max
    }
}
