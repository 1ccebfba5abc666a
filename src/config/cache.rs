//! `[cache]`: the shared store's budgets and windows.

use super::{ByteSize, ConfigError, Secs, invalid};
use serde::Deserialize;
use std::time::Duration;

/// The shared store.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// Budget of the whole cache: stored objects (bodies, headers, variants, hit-for-miss
    /// marks, bookkeeping), bodies being filled (`max_inflight` is a share of it, not an
    /// addition), tag and removal records. Default: 256MiB.
    pub max_memory: ByteSize,
    /// Larger responses stream through without being stored. Default: 32MiB, or an eighth of
    /// `max_memory` if that is less (see [`CacheConfig::object_limit`]).
    pub max_object_size: Option<ByteSize>,
    /// The share of `max_memory` for bodies being filled from origins and the windows kept
    /// ahead of slow readers of bodies streaming through; when full, new misses pass through
    /// unstored, and a body streaming through is read from the origin no faster than its
    /// clients take it. At most half of `max_memory`. Default: a quarter of `max_memory`.
    pub(crate) max_inflight: Option<ByteSize>,
    /// Cap on variants (Vary) kept per URL; the oldest goes first. Default: 16.
    pub(crate) max_variants: usize,
    /// How long an expired object with a validator (ETag / Last-Modified) is kept for
    /// revalidation. Default: 1h.
    pub(crate) keep: Secs,
    /// How long a request waits for another request's fill of the same key before giving up
    /// (504). Default: 30s.
    pub(crate) fill_wait_timeout: Secs,
    /// After a response that may not be stored, requests for that URL skip coalescing this long.
    /// Default: 30s.
    pub(crate) hit_for_miss: Secs,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            max_memory: ByteSize(256 << 20),
            max_object_size: None,
            max_inflight: None,
            max_variants: 16,
            keep: Secs(Duration::from_secs(3600)),
            fill_wait_timeout: Secs(Duration::from_secs(30)),
            hit_for_miss: Secs(Duration::from_secs(30)),
        }
    }
}

impl CacheConfig {
    /// The effective `max_object_size`.
    pub(crate) fn object_limit(&self) -> ByteSize {
        self.max_object_size
            .unwrap_or(ByteSize((32 << 20).min(self.max_memory.0 / 8)))
    }

    /// The effective `max_inflight`.
    pub(crate) fn inflight_limit(&self) -> ByteSize {
        self.max_inflight.unwrap_or(ByteSize(self.max_memory.0 / 4))
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.max_memory.0 < 1 << 20 {
            return Err(invalid("cache.max_memory", "must be at least 1MiB"));
        }
        if self.object_limit().0 == 0 || self.object_limit() > self.max_memory {
            return Err(invalid(
                "cache.max_object_size",
                format!(
                    "must be between 1 byte and cache.max_memory ({})",
                    self.max_memory
                ),
            ));
        }
        if self.object_limit().0 > u32::MAX as u64 / 2 {
            return Err(invalid("cache.max_object_size", "must be below 2GiB"));
        }
        if self.inflight_limit().0 > self.max_memory.0 / 2 {
            return Err(invalid(
                "cache.max_inflight",
                format!(
                    "is a share of cache.max_memory ({}): at most half of it",
                    self.max_memory
                ),
            ));
        }
        if self.max_variants == 0 {
            return Err(invalid("cache.max_variants", "must be at least 1"));
        }
        Ok(())
    }
}
