//! Tag invalidation by generation. Every invalidation of a tag records the epoch at which it
//! happened; an entry records the epoch at which its fill *started* and is current only while
//! none of its tags was invalidated since. So invalidating is O(tags), needs no index from tags
//! to keys, and also defeats the fill race: a read that loaded a row before a write, and stores
//! it after the write's invalidation, stores an entry that is already out of date.
//!
//! The per-tag records are bounded (a moka cache weighted by tag length). A record that is
//! evicted raises a floor that stands in for every forgotten tag, so forgetting can only make
//! entries look invalidated, never current.

use http::{HeaderMap, HeaderName};
use moka::{notification::RemovalCause, sync::Cache};
use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

/// The tags an entry depends on and the epoch its fill started at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagStamp {
    /// The tags the entry depends on: invalidating any of them outdates it.
    pub(crate) tags: Vec<Arc<str>>,
    /// The tag epoch when its fill started: an invalidation after it outdates the entry.
    pub(crate) since: u64,
}

/// Tag generations, shared by everything that stores tagged entries.
#[derive(Clone)]
pub(crate) struct Tags {
    /// The tag epoch: bumped by every invalidation, read by every stamp.
    clock: Arc<AtomicU64>,
    /// The epoch of each tag's latest invalidation (bounded; a forgotten record raises `floor`).
    invalidated: Cache<Arc<str>, u64>,
    /// The newest epoch among forgotten records.
    floor: Arc<AtomicU64>,
}

impl Tags {
    /// `max_bytes` bounds the memory of the per-tag records.
    pub(crate) fn new(max_bytes: u64) -> Self {
        let floor = Arc::new(AtomicU64::new(0));
        let f = floor.clone();
        let invalidated = Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|k: &Arc<str>, _: &u64| super::store::record_weight(k.len()))
            .eviction_listener(move |_, epoch: u64, cause| {
                if matches!(cause, RemovalCause::Size | RemovalCause::Expired) {
                    f.fetch_max(epoch, Ordering::AcqRel);
                }
            })
            .build();
        Self {
            clock: Arc::new(AtomicU64::new(0)),
            invalidated,
            floor,
        }
    }

    /// A stamp for a fill about to start: take it *before* reading the source of truth.
    pub(crate) fn stamp(&self, tags: &[String]) -> TagStamp {
        TagStamp {
            tags: tags.iter().map(|t| Arc::from(t.as_str())).collect(),
            since: self.clock.load(Ordering::Acquire),
        }
    }

    /// The tag epoch now: what a fill notes when it starts.
    pub(crate) fn epoch(&self) -> u64 {
        self.clock.load(Ordering::Acquire)
    }

    /// Invalidates every entry carrying any of these tags, from now on. Call it *after* the
    /// write to the source of truth has committed.
    pub(crate) fn invalidate<S: AsRef<str>>(&self, tags: &[S]) {
        let epoch = self.clock.fetch_add(1, Ordering::AcqRel) + 1;
        for t in tags {
            self.invalidated.insert(Arc::from(t.as_ref()), epoch);
        }
    }

    /// Is an entry with this stamp still current?
    pub(crate) fn is_current(&self, stamp: &TagStamp) -> bool {
        let floor = self.floor.load(Ordering::Acquire);
        stamp.tags.iter().all(|t| {
            let at = self.invalidated.get(t).unwrap_or(0).max(floor);
            at <= stamp.since
        })
    }
}

/// Takes the surrogate keys out of an origin's response: the values of the `names` headers
/// (`Surrogate-Key`, space separated; `Cache-Tag`, comma separated; either separator is taken
/// in any of them), which are removed so they never reach a client.
/// At most `MAX_TAGS` tags of at most `MAX_TAG_LEN` bytes each are kept: an origin's header
/// cannot make an object's tags cost more than its body, nor a HIT check thousands of them.
pub(crate) fn take_tags(h: &mut HeaderMap, names: &[HeaderName]) -> Vec<Arc<str>> {
    let mut tags: Vec<&str> = Vec::new();
    for name in names {
        for v in h.get_all(name) {
            let Ok(v) = v.to_str() else { continue };
            tags.extend(
                v.split([' ', '\t', ','])
                    .filter(|t| !t.is_empty() && t.len() <= MAX_TAG_LEN),
            );
        }
    }
    tags.sort_unstable();
    tags.dedup();
    if tags.len() > MAX_TAGS {
        tracing::debug!(tags = tags.len(), "more surrogate keys than kept");
        tags.truncate(MAX_TAGS);
    }
    let out = tags.into_iter().map(Arc::from).collect();
    for name in names {
        h.remove(name);
    }
    out
}

/// Tags kept per response.
const MAX_TAGS: usize = 64;
/// Longest tag kept.
const MAX_TAG_LEN: usize = 256;

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(t: &[&str]) -> Vec<String> {
        t.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn invalidation_outdates_earlier_stamps_only() {
        let t = Tags::new(1 << 20);
        let before = t.stamp(&tags(&["products", "product:1"]));
        let other = t.stamp(&tags(&["product:2"]));
        assert!(t.is_current(&before));
        t.invalidate(&["product:1"]);
        assert!(
            !t.is_current(&before),
            "a tag was invalidated after the fill started"
        );
        assert!(t.is_current(&other), "other tags are untouched");
        let after = t.stamp(&tags(&["products", "product:1"]));
        assert!(
            t.is_current(&after),
            "a fill that started after the write is current"
        );
    }

    #[test]
    fn forgotten_records_never_make_entries_current() {
        let t = Tags::new(4096);
        let old = t.stamp(&tags(&["t0"]));
        t.invalidate(&["t0"]);
        // Newer records, read often, push t0's out (moka admits by popularity).
        for i in 1..1000 {
            let k = format!("t{i}");
            t.invalidate(&[&k]);
            for _ in 0..3 {
                t.invalidated.get(k.as_str());
            }
        }
        t.invalidated.run_pending_tasks();
        assert!(t.invalidated.entry_count() < 1000, "records are bounded");
        assert!(
            !t.invalidated.contains_key("t0"),
            "t0's record was forgotten"
        );
        assert!(!t.is_current(&old), "and its entry is still outdated");
    }
}
