//! The store: a moka cache of URL entries, weighted by the bytes they hold, within a hard
//! `max_memory` budget. An entry holds the URL's variants (one per distinct set of `Vary`
//! values, capped) and an optional hit-for-miss mark. Entries live as long as their longest
//! useful life (freshness + stale windows + the revalidation keep); moka evicts by TinyLFU when
//! the budget is full.
//!
//! `max_memory` is the budget of the whole cache, shared out by [`Shares`]: the in-flight fills
//! take their share (`max_inflight`), the tag and removal records theirs, and the objects the
//! rest. moka evicts lazily, on its maintenance runs; the store runs them itself once the bytes
//! inserted since the last run pass a small slack, so that a flood of inserts cannot outrun
//! eviction (BENCHMARKS.md has what that overshoot was).

use super::{
    key::{CacheKey, VaryValues},
    policy::Freshness,
    tags::{TagStamp, Tags},
};
use crate::clock::Clock;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, StatusCode};
use moka::{Expiry, sync::Cache};
use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime},
};

// What an entry costs beyond its body under jemalloc, so that the weigher charges what RSS
// pays: charging less lets RSS outgrow `max_memory` on small objects, whose cost is mostly this
// overhead (BENCHMARKS.md has the measurements).
/// Per object: the `Object` struct, its `Arc`, the body's `Bytes` header.
const OBJECT_OVERHEAD: usize = 256;
/// Per header slot of a stored `HeaderMap` (one is kept per ~0.75 capacity): the bucket
/// (hash, links, name, value: ~104 bytes) and its index.
const HEADER_SLOT: usize = 112;
/// Per entry: moka's node, its deque and timer-wheel links, the hash table's bucket, our `Arc`
/// and the variants vector; and the entry's part of second-hit admission's two Bloom filters
/// (sized for twice the entries at 10 bits a key, rounded up to a power of two: at most 10
/// bytes an entry), which grow with the store and so are paid for by what it holds.
const ENTRY_OVERHEAD: usize = 512 + 10;

/// A heap allocation of `n` bytes as the allocator rounds it: jemalloc's size classes, four
/// per doubling (1025 bytes take 1280, 1.1 MiB take 1.25 MiB).
fn alloc_size(n: usize) -> usize {
    if n <= 128 {
        return n.next_multiple_of(16);
    }
    let step = 1usize << ((usize::BITS - (n - 1).leading_zeros()).saturating_sub(3));
    n.next_multiple_of(step)
}

/// One stored response.
#[derive(Debug)]
pub struct Object {
    /// The origin's status, replayed on every hit (200, 301, 404, ...).
    pub status: StatusCode,
    /// As sent to clients, minus per-response fields (Age, X-Cache, Cache-Status of ours).
    pub headers: HeaderMap,
    /// Held once; every hit shares it.
    pub body: Bytes,
    /// The targeted cache-control fields the origin sent (`CDN-Cache-Control` and the like,
    /// RFC 9213): never sent to clients, kept so a revalidation reads them as the fill did.
    /// Empty (no allocation) for nearly every object.
    pub targeted: HeaderMap,
    /// The request values this variant answers.
    pub vary: VaryValues,
    /// Fixed when stored: how long it is fresh, and what may be done once it is stale.
    pub freshness: Freshness,
    /// The tags this object depends on; it is served only while none was invalidated.
    pub stamp: Option<TagStamp>,
}

impl Object {
    /// Bytes this object pins: body, headers, vary values, and bookkeeping.
    /// A copy that is stale from `now` on (a soft purge): served only after revalidation, or
    /// in place of an answer the origin fails to give, as its own stale windows allow from now.
    fn stale_copy(&self, now: SystemTime) -> Object {
        Object {
            status: self.status,
            headers: self.headers.clone(),
            targeted: self.targeted.clone(),
            body: self.body.clone(),
            vary: self.vary.clone(),
            freshness: self.freshness.expired_at(now),
            stamp: self.stamp.clone(),
        }
    }

    pub(crate) fn weight(&self) -> usize {
        // Values are heap copies; names are charged too (standard names are static, custom
        // ones are not, and the http crate does not say which is which).
        let headers = |h: &HeaderMap| {
            let heap: usize = h
                .iter()
                .map(|(k, v)| alloc_size(v.len()) + alloc_size(k.as_str().len()))
                .sum();
            h.capacity() * HEADER_SLOT + heap
        };
        let tags: usize = self
            .stamp
            .as_ref()
            .map_or(0, |s| s.tags.iter().map(|t| alloc_size(t.len()) + 16).sum());
        alloc_size(self.body.len())
            + tags
            + headers(&self.headers)
            + headers(&self.targeted)
            + self.vary.weight()
            + OBJECT_OVERHEAD
    }
}

/// Everything stored under one URL.
#[derive(Debug, Default)]
pub struct Entry {
    /// Newest first; at most `max_variants`.
    pub(crate) variants: Vec<Arc<Object>>,
    /// Until then, requests for the URL go to the origin without waiting on each other: its last
    /// answer could not be stored, so coalescing would only serialise them.
    pub(crate) hit_for_miss_until: Option<SystemTime>,
    /// When the whole entry may go.
    keep_until: Option<SystemTime>,
}

impl Entry {
    fn weight(&self) -> u32 {
        let w: usize = ENTRY_OVERHEAD + self.variants.iter().map(|o| o.weight()).sum::<usize>();
        u32::try_from(w).unwrap_or(u32::MAX)
    }

    /// The Vary names of the newest variant: what a new request is keyed on while coalescing.
    pub(crate) fn vary_names(&self) -> Vec<HeaderName> {
        self.variants
            .first()
            .map(|o| o.vary.names().cloned().collect())
            .unwrap_or_default()
    }

    pub(crate) fn hit_for_miss(&self, now: SystemTime) -> bool {
        self.hit_for_miss_until.is_some_and(|t| now < t)
    }
}

/// What a lookup found.
pub enum Lookup {
    /// No object for the URL; maybe an entry holding only a hit-for-miss mark.
    UriMiss(Option<Arc<Entry>>),
    /// An entry, but no variant for this request.
    VaryMiss(Arc<Entry>),
    Found(Arc<Object>, Arc<Entry>),
}

/// Tells moka how long to keep an entry, so that it reclaims the memory of entries past
/// their useful life. Lookups do not rely on it: they check `keep_until` on the store's clock,
/// which tests may move ahead of moka's.
struct EntryExpiry(Clock);

impl EntryExpiry {
    fn left(&self, e: &Arc<Entry>) -> Option<Duration> {
        let until = e.keep_until?;
        Some(until.duration_since(self.0.now()).unwrap_or_default())
    }
}

impl Expiry<CacheKey, Arc<Entry>> for EntryExpiry {
    fn expire_after_create(&self, _: &CacheKey, e: &Arc<Entry>, _: Instant) -> Option<Duration> {
        self.left(e)
    }
    fn expire_after_update(
        &self,
        _: &CacheKey,
        e: &Arc<Entry>,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        self.left(e)
    }
}

/// Settings the store needs.
#[derive(Debug, Clone, Copy)]
pub struct StoreConfig {
    /// The byte budget of the whole cache: objects, in-flight fills, tag and removal records
    /// (see [`Shares`]).
    pub max_memory: u64,
    /// The share of `max_memory` that bodies being filled (and the windows kept for their slow
    /// readers) take: the fills' `InflightBudget` is built with this.
    pub max_inflight: u64,
    /// Larger responses pass through unstored, so one object cannot evict the rest.
    pub max_object_size: u64,
    /// Variants kept per URL under `Vary`, so a header with many values cannot fill the store.
    pub max_variants: usize,
    /// How long an expired object with a validator stays for revalidation.
    pub keep: Duration,
}

/// The shared store. Cheap to clone (an `Arc` inside moka).
#[derive(Clone)]
pub struct Store {
    /// The URL entries, weighed in bytes against `max_memory`; moka evicts and expires them.
    cache: Cache<CacheKey, Arc<Entry>, Hasher>,
    /// The limits `insert` enforces and fills read (`max_object_size`).
    cfg: StoreConfig,
    /// Bumped by every removal. A fill notes it when it starts and stores only if its key was not
    /// removed since: a write that invalidates a URL while an older read of it is still in flight
    /// must not see that older body stored after it.
    epoch: Arc<AtomicU64>,
    /// The epoch at which each recently removed key was removed (bounded; a fill running longer
    /// than `REMOVAL_MEMORY` is rare and then only risks a stale store, as without this).
    removed_at: Cache<CacheKey, u64, Hasher>,
    /// Tag invalidation records: a stamped object is served only while its tags are current.
    tags: Tags,
    /// The time every freshness and expiry decision about stored content reads.
    clock: Clock,
    /// Entries moka evicted to stay within the budget (not those that expired or were removed).
    evictions: Arc<AtomicU64>,
    /// Bytes inserted since the store last ran moka's maintenance: moka admits and evicts only
    /// on its maintenance runs (every 64 writes or so), and 64 large objects inserted between
    /// two runs would stand above the budget until the next.
    pending: Arc<AtomicU64>,
    /// How many bytes may be inserted before the store runs that maintenance itself.
    slack: u64,
}

/// The slack is this share of the objects' budget ...
const SLACK_SHARE: u64 = 64;
/// ... and at least this many bytes, so that small objects do not run it on every insert.
const MIN_SLACK: u64 = 256 << 10;

/// How long removals are remembered for the check above.
const REMOVAL_MEMORY: Duration = Duration::from_secs(600);
/// The most bytes removal records take (less under a small budget: see [`Shares`]).
const REMOVAL_MEMORY_BYTES: u64 = 4 << 20;
/// The most bytes per-tag invalidation records take (less under a small budget).
const TAG_MEMORY_BYTES: u64 = 8 << 20;
/// What a record of the removal and tag maps costs beyond its key: moka's node, its deque
/// links and the hash table's bucket (the part of [`ENTRY_OVERHEAD`] that is moka's).
const RECORD_OVERHEAD: usize = 320;

/// How `max_memory` is shared out. The shares add up to it, so everything the store and the
/// fills keep is charged against the one budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shares {
    /// Stored objects, with their variants, hit-for-miss marks and entry bookkeeping.
    pub objects: u64,
    /// Bodies being filled and the windows kept for their slow readers (`max_inflight`).
    pub inflight: u64,
    /// Tag invalidation records.
    pub tags: u64,
    /// Removal records (the fence that keeps an older fill from storing after a purge).
    pub removals: u64,
}

impl Shares {
    /// The shares of `max_memory` with `max_inflight` for the fills (the config checks it
    /// leaves the objects most of the budget).
    pub fn of(max_memory: u64, max_inflight: u64) -> Self {
        let tags = TAG_MEMORY_BYTES.min(max_memory / 32);
        let removals = REMOVAL_MEMORY_BYTES.min(max_memory / 64);
        let inflight = max_inflight.min(max_memory / 2);
        Shares {
            objects: max_memory - inflight - tags - removals,
            inflight,
            tags,
            removals,
        }
    }
}

/// A record key's bytes as the removal and tag maps weigh them.
pub(crate) fn record_weight(key_len: usize) -> u32 {
    u32::try_from(alloc_size(key_len) + RECORD_OVERHEAD).unwrap_or(u32::MAX)
}

/// The hasher of the store's maps (and the fill table's): foldhash, seeded at random per map
/// like std's SipHash, at a fraction of its cost on every lookup (a HIT hashes its key at
/// least once). Its own documentation calls it minimally DoS-resistant: a random seed an
/// attacker cannot see, not a cryptographic guarantee; the tables are also bounded by bytes.
pub(crate) type Hasher = foldhash::fast::RandomState;

/// Proof that a fill started at some point: its answer is stored only if its key was not
/// removed since (`Store::insert_if_current`).
#[derive(Debug, Clone, Copy)]
pub struct FillStart {
    /// The removal epoch.
    removed: u64,
    /// The tag epoch: tags an answer carries are current from it.
    tags: u64,
}

impl FillStart {
    /// The stamp of an answer carrying `tags` that this fill started before.
    pub(crate) fn stamp(&self, tags: Vec<Arc<str>>) -> Option<TagStamp> {
        (!tags.is_empty()).then_some(TagStamp {
            tags,
            since: self.tags,
        })
    }
}

impl Store {
    pub fn new(cfg: StoreConfig, clock: Clock) -> Self {
        let shares = Shares::of(cfg.max_memory, cfg.max_inflight);
        let evictions = Arc::new(AtomicU64::new(0));
        let evicted = evictions.clone();
        let cache = Cache::builder()
            .max_capacity(shares.objects)
            // Sized for the most entries the budget can hold (each costs 2 KB or more), so
            // that filling it does not rehash the table at every doubling. Under churn the
            // table still rehashes to clear the tombstones evictions leave, with or without
            // this (BENCHMARKS.md has the measurements).
            .initial_capacity(
                usize::try_from(shares.objects / 2048)
                    .unwrap_or(1 << 20)
                    .clamp(64, 1 << 20),
            )
            .weigher(|k: &CacheKey, e: &Arc<Entry>| {
                // Keys are client-chosen URLs: they count too (the `Arc<str>` with its counts,
                // and moka's own `Arc` of the key with its hash).
                e.weight().saturating_add(
                    u32::try_from(alloc_size(k.as_str().len() + 16) + 64).unwrap_or(u32::MAX),
                )
            })
            .expire_after(EntryExpiry(clock.clone()))
            .eviction_listener(move |_, _, cause| {
                if cause == moka::notification::RemovalCause::Size {
                    evicted.fetch_add(1, Ordering::Relaxed);
                }
            })
            .build_with_hasher(Hasher::default());
        // Bounded by bytes too: keys are client-chosen URLs.
        let removed_at = Cache::builder()
            .max_capacity(shares.removals)
            .weigher(|k: &CacheKey, _: &u64| record_weight(k.as_str().len()))
            .time_to_live(REMOVAL_MEMORY)
            .build_with_hasher(Hasher::default());
        Self {
            cache,
            cfg,
            epoch: Arc::new(AtomicU64::new(0)),
            removed_at,
            tags: Tags::new(shares.tags),
            clock,
            evictions,
            pending: Arc::new(AtomicU64::new(0)),
            slack: (shares.objects / SLACK_SHARE).max(MIN_SLACK),
        }
    }

    /// Notes `bytes` inserted, and runs moka's pending evictions once more than the slack
    /// was since the last run (see `pending`).
    fn charged(&self, bytes: usize) {
        let bytes = bytes as u64;
        let before = self.pending.fetch_add(bytes, Ordering::Relaxed);
        if before + bytes > self.slack && self.pending.swap(0, Ordering::Relaxed) > 0 {
            self.cache.run_pending_tasks();
        }
    }

    /// The clock of every decision about what this store holds.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Tag generations for tagged objects (see [`Tags`]).
    pub(crate) fn tags(&self) -> &Tags {
        &self.tags
    }

    /// Call before asking the origin; pass the result to [`Store::insert_if_current`].
    pub(crate) fn fill_start(&self) -> FillStart {
        FillStart {
            removed: self.epoch.load(Ordering::Acquire),
            tags: self.tags.epoch(),
        }
    }

    /// Stores `obj` unless `key` was removed after `start` (then the body may predate a write).
    pub(crate) fn insert_if_current(
        &self,
        key: CacheKey,
        obj: impl Into<Arc<Object>>,
        start: FillStart,
    ) -> bool {
        let removed_since = |s: &Self| s.removed_at.get(&key).is_some_and(|at| at > start.removed);
        if removed_since(self) || !self.insert(key.clone(), obj) {
            return false;
        }
        // A removal may have slipped in between the check and the insert: undo ours then.
        if removed_since(self) {
            self.cache.remove(&key);
            return false;
        }
        true
    }

    pub(crate) fn config(&self) -> &StoreConfig {
        &self.cfg
    }

    /// Finds the variant for this request, if any, at `now` (from [`Store::clock`]). Expiry of
    /// freshness is the caller's business: a stale object is still returned, until the entry's
    /// useful life is over.
    pub fn lookup(&self, key: &CacheKey, req: &HeaderMap, now: SystemTime) -> Lookup {
        let Some(entry) = self.cache.get(key) else {
            return Lookup::UriMiss(None);
        };
        if entry.keep_until.is_some_and(|t| t <= now) {
            return Lookup::UriMiss(None);
        }
        let current = |o: &&Arc<Object>| o.stamp.as_ref().is_none_or(|s| self.tags.is_current(s));
        match entry
            .variants
            .iter()
            .filter(current)
            .find(|o| o.vary.matches(req))
        {
            Some(o) => Lookup::Found(o.clone(), entry),
            None if !entry.variants.iter().any(|o| current(&o)) => Lookup::UriMiss(Some(entry)),
            None => Lookup::VaryMiss(entry),
        }
    }

    /// Stores an object as the variant for its Vary values, replacing an equal one and dropping
    /// the oldest beyond `max_variants`. Clears a hit-for-miss mark. Objects over
    /// `max_object_size` are refused (returns false).
    pub fn insert(&self, key: CacheKey, obj: impl Into<Arc<Object>>) -> bool {
        let obj: Arc<Object> = obj.into();
        if obj.body.len() as u64 > self.cfg.max_object_size {
            return false;
        }
        let max = self.cfg.max_variants;
        let keep = self.cfg.keep;
        self.cache.entry(key).and_upsert_with(|old| {
            let mut variants = Vec::with_capacity(max.min(4));
            variants.push(obj.clone());
            if let Some(old) = old {
                variants.extend(
                    old.value()
                        .variants
                        .iter()
                        .filter(|o| o.vary != obj.vary)
                        .take(max - 1)
                        .cloned(),
                );
            }
            let keep_until = variants.iter().map(|o| o.freshness.keep_until(keep)).max();
            Arc::new(Entry {
                variants,
                hit_for_miss_until: None,
                keep_until,
            })
        });
        // Its body and fixed costs: near enough for a slack, without walking its headers again.
        self.charged(alloc_size(obj.body.len()) + OBJECT_OVERHEAD + ENTRY_OVERHEAD);
        true
    }

    /// Marks the URL as recently unstorable until `until` (stored variants stay).
    pub(crate) fn mark_hit_for_miss(&self, key: CacheKey, until: SystemTime) {
        self.cache.entry(key).and_upsert_with(|old| {
            let variants = old.map(|o| o.value().variants.clone()).unwrap_or_default();
            let keep_until = variants
                .iter()
                .map(|o| o.freshness.keep_until(self.cfg.keep))
                .chain(Some(until))
                .max();
            Arc::new(Entry {
                variants,
                hit_for_miss_until: Some(until),
                keep_until,
            })
        });
        self.charged(ENTRY_OVERHEAD);
    }

    /// Removes every variant of a URL, and keeps fills that started earlier from storing it
    /// again. Returns whether anything was there.
    pub(crate) fn remove(&self, key: &CacheKey) -> bool {
        self.fence(key);
        // Under the key's lock, as every change of an entry: a soft purge rebuilding it at the
        // same moment cannot bring it back.
        matches!(
            self.cache
                .entry(key.clone())
                .and_compute_with(|_| moka::ops::compute::Op::Remove),
            moka::ops::compute::CompResult::Removed(_)
        )
    }

    /// Keeps fills of `key` that started before now from storing their answer: it may
    /// predate what is being done to the key.
    fn fence(&self, key: &CacheKey) {
        let at = self.epoch.fetch_add(1, Ordering::AcqRel) + 1;
        self.removed_at.insert(key.clone(), at);
    }

    /// Purges the URL `key`, every variant: removed (and kept from fills that started
    /// earlier), or with `soft` marked stale, to be revalidated or stand in on error. Returns
    /// the number of objects purged.
    pub(crate) fn purge(&self, key: &CacheKey, soft: bool, now: SystemTime) -> usize {
        if soft {
            return self.soften(key, now, |_| true);
        }
        let n = self.current_variants(key).len();
        self.remove(key);
        n
    }

    /// Purges every URL whose key starts with `prefix` (a key of the path prefix's URL):
    /// walks the whole store, off the request path. Returns the number of objects purged.
    pub(crate) fn purge_prefix(&self, prefix: &CacheKey, soft: bool, now: SystemTime) -> usize {
        let keys: Vec<CacheKey> = self
            .cache
            .iter()
            .filter(|(k, _)| k.as_str().starts_with(prefix.as_str()))
            .map(|(k, _)| CacheKey::clone(&k))
            .collect();
        keys.iter().map(|k| self.purge(k, soft, now)).sum()
    }

    /// Purges every object tagged `tag`. Hard: the tag's generation moves on, which outdates
    /// them all at once (they are then counted, walking the store); soft: each is replaced by
    /// a stale copy. Returns the number of objects purged.
    pub(crate) fn purge_tag(&self, tag: &str, soft: bool, now: SystemTime) -> usize {
        let tagged = |o: &Object| {
            o.stamp
                .as_ref()
                .is_some_and(|s| s.tags.iter().any(|t| &**t == tag))
        };
        if !soft {
            // Outdated first, counted after: N is what carried the tag as it was purged.
            let before = self.tags.epoch();
            self.tags.invalidate(&[tag]);
            let carried = |o: &Object| o.stamp.as_ref().is_some_and(|s| s.since <= before);
            return self
                .cache
                .iter()
                .map(|(_, e)| {
                    e.variants
                        .iter()
                        .filter(|o| tagged(o) && carried(o))
                        .count()
                })
                .sum();
        }
        let keys: Vec<CacheKey> = self
            .cache
            .iter()
            .filter(|(_, e)| e.variants.iter().any(|o| tagged(o)))
            .map(|(k, _)| CacheKey::clone(&k))
            .collect();
        keys.iter()
            .map(|k| self.soften(k, now, |o| tagged(o)))
            .sum()
    }

    /// Replaces the variants of `key` that `which` picks by copies stale from `now`, under the
    /// key's lock (a removal or a fill's insert at the same moment is not undone), and keeps
    /// fills that started earlier from storing what may predate the purge.
    fn soften(&self, key: &CacheKey, now: SystemTime, which: impl Fn(&Object) -> bool) -> usize {
        use moka::ops::compute::Op;
        let mut n = 0;
        self.cache.entry(key.clone()).and_compute_with(|found| {
            let Some(found) = found else {
                return Op::Nop;
            };
            let entry = found.into_value();
            let variants: Vec<Arc<Object>> = entry
                .variants
                .iter()
                .map(|o| {
                    if which(o) && self.is_current(o) && o.freshness.is_fresh(now) {
                        n += 1;
                        Arc::new(o.stale_copy(now))
                    } else {
                        o.clone()
                    }
                })
                .collect();
            if n == 0 {
                return Op::Nop;
            }
            let keep_until = variants
                .iter()
                .map(|o| o.freshness.keep_until(self.cfg.keep))
                .chain(entry.hit_for_miss_until)
                .max();
            Op::Put(Arc::new(Entry {
                variants,
                hit_for_miss_until: entry.hit_for_miss_until,
                keep_until,
            }))
        });
        if n > 0 {
            self.fence(key);
        }
        n
    }

    /// The variants stored for `key` that no purge or write outdated (for inspection).
    pub(crate) fn current_variants(&self, key: &CacheKey) -> Vec<Arc<Object>> {
        self.cache.get(key).map_or_else(Vec::new, |e| {
            e.variants
                .iter()
                .filter(|o| self.is_current(o))
                .cloned()
                .collect()
        })
    }

    /// Entries and bytes charged against the budget, once pending maintenance has run.
    /// Entries evicted for room since start.
    pub(crate) fn evictions(&self) -> u64 {
        self.evictions.load(Ordering::Relaxed)
    }

    /// Objects' entries held now, as moka last counted them (no maintenance run: cheap enough
    /// for every miss).
    pub(crate) fn entries(&self) -> u64 {
        self.cache.entry_count()
    }

    pub(crate) fn usage(&self) -> (u64, u64) {
        self.cache.run_pending_tasks();
        (self.cache.entry_count(), self.cache.weighted_size())
    }

    /// Not outdated by a tag purge or a cache-aside write.
    fn is_current(&self, o: &Object) -> bool {
        o.stamp.as_ref().is_none_or(|s| self.tags.is_current(s))
    }

    /// Bytes currently charged against the budget (after pending maintenance).
    #[cfg(test)]
    fn weighted_size(&self) -> u64 {
        self.cache.run_pending_tasks();
        self.cache.weighted_size()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::key::vary_names;
    use http::header;

    fn obj(body: &'static [u8], vary: VaryValues, fresh: u64) -> Object {
        Object {
            status: StatusCode::OK,
            headers: HeaderMap::new(),
            targeted: HeaderMap::new(),
            body: Bytes::from_static(body),
            vary,
            stamp: None,
            freshness: Freshness {
                response_time: Clock::wall().now(),
                initial_age: Duration::ZERO,
                fresh_for: Duration::from_secs(fresh),
                stale_while_revalidate: Duration::ZERO,
                stale_if_error: Duration::ZERO,
                must_revalidate: false,
                has_validator: false,
                stale_on_error: Duration::ZERO,
            },
        }
    }

    fn store(max_variants: usize) -> Store {
        Store::new(
            StoreConfig {
                max_memory: 1 << 20,
                max_inflight: 0,
                max_object_size: 1 << 16,
                max_variants,
                keep: Duration::from_secs(60),
            },
            Clock::wall(),
        )
    }

    fn now(s: &Store) -> SystemTime {
        s.clock().now()
    }

    fn ae(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT_ENCODING, v.parse().unwrap());
        h
    }

    #[test]
    fn allocations_are_charged_by_size_class() {
        let classes = [
            (0, 0),
            (1, 16),
            (16, 16),
            (17, 32),
            (100, 112),
            (129, 160),
            (1024, 1024),
        ];
        for (n, class) in classes
            .into_iter()
            .chain([(1025, 1280), (1100 << 10, 1280 << 10)])
        {
            assert_eq!(alloc_size(n), class, "{n}");
        }
    }

    #[test]
    fn the_shares_add_up_to_the_budget() {
        for (mem, inflight) in [
            (1u64 << 20, 1 << 18),
            (64 << 20, 16 << 20),
            (8 << 30, 2 << 30),
        ] {
            let s = Shares::of(mem, inflight);
            assert_eq!(s.objects + s.inflight + s.tags + s.removals, mem);
            assert_eq!(s.inflight, inflight);
            assert!(s.objects >= mem / 2 - mem / 16, "{s:?}");
        }
        // The objects' share is what the store fills: a quarter less for the fills.
        let s = Store::new(
            StoreConfig {
                max_memory: 4 << 20,
                max_inflight: 1 << 20,
                max_object_size: 1 << 16,
                max_variants: 4,
                keep: Duration::from_secs(60),
            },
            Clock::wall(),
        );
        let body: &'static [u8] = Box::leak(vec![7u8; 10_000].into_boxed_slice());
        for i in 0..1000 {
            s.insert(
                CacheKey::new("s", "h", &format!("/{i}")),
                obj(body, VaryValues::default(), 60),
            );
        }
        let objects = Shares::of(4 << 20, 1 << 20).objects;
        let used = s.weighted_size();
        assert!(
            used <= objects && used > objects * 9 / 10,
            "{used} of {objects}"
        );
    }

    /// Bytes the entries in moka's map hold now, evicted or not yet.
    fn held(s: &Store) -> u64 {
        s.cache.iter().map(|(_, e)| u64::from(e.weight())).sum()
    }

    #[test]
    fn a_flood_of_large_inserts_does_not_outrun_eviction() {
        let s = store(4);
        let body: &'static [u8] = Box::leak(vec![7u8; 60_000].into_boxed_slice());
        let most = Shares::of(1 << 20, 0).objects + s.slack + 2 * 60_000;
        for i in 0..200 {
            s.insert(
                CacheKey::new("s", "h", &format!("/{i}")),
                obj(body, VaryValues::default(), 60),
            );
            assert!(held(&s) <= most, "{} bytes held after {i}", held(&s));
        }
    }

    #[test]
    fn variants_are_kept_apart_and_capped() {
        let s = store(2);
        let k = CacheKey::new("s", "h", "/v");
        let mut vh = HeaderMap::new();
        vh.insert(header::VARY, "accept-encoding".parse().unwrap());
        let names = vary_names(&vh).unwrap();
        for enc in ["gzip", "br", "identity"] {
            assert!(s.insert(
                k.clone(),
                obj(b"x", VaryValues::from_request(&names, &ae(enc)), 60)
            ));
        }
        assert!(matches!(
            s.lookup(&k, &ae("br"), now(&s)),
            Lookup::Found(..)
        ));
        assert!(matches!(
            s.lookup(&k, &ae("identity"), now(&s)),
            Lookup::Found(..)
        ));
        // The oldest (gzip) was dropped by the cap of 2.
        assert!(matches!(
            s.lookup(&k, &ae("gzip"), now(&s)),
            Lookup::VaryMiss(_)
        ));
        assert!(matches!(
            s.lookup(&CacheKey::new("s", "h", "/other"), &ae("br"), now(&s)),
            Lookup::UriMiss(_)
        ));
    }

    #[test]
    fn oversized_objects_are_refused_and_remove_works() {
        let s = store(4);
        let k = CacheKey::new("s", "h", "/big");
        let big: &'static [u8] = Box::leak(vec![0u8; 1 << 17].into_boxed_slice());
        assert!(!s.insert(k.clone(), obj(big, VaryValues::default(), 60)));
        assert!(s.insert(k.clone(), obj(b"small", VaryValues::default(), 60)));
        assert!(s.remove(&k));
        assert!(matches!(
            s.lookup(&k, &HeaderMap::new(), now(&s)),
            Lookup::UriMiss(_)
        ));
    }

    #[test]
    fn an_entry_past_its_useful_life_is_gone_on_the_stores_clock() {
        let s = store(4);
        let k = CacheKey::new("s", "h", "/old");
        // Fresh for 10 s, no validator and no stale window: useless after that.
        assert!(s.insert(k.clone(), obj(b"x", VaryValues::default(), 10)));
        s.clock().advance(Duration::from_secs(9));
        assert!(matches!(
            s.lookup(&k, &HeaderMap::new(), now(&s)),
            Lookup::Found(..)
        ));
        s.clock().advance(Duration::from_secs(2));
        assert!(matches!(
            s.lookup(&k, &HeaderMap::new(), now(&s)),
            Lookup::UriMiss(None)
        ));
    }

    #[test]
    fn a_fill_older_than_a_removal_is_not_stored() {
        let s = store(4);
        let k = CacheKey::new("s", "h", "/r");
        let before = s.fill_start();
        s.remove(&k);
        assert!(!s.insert_if_current(k.clone(), obj(b"old", VaryValues::default(), 60), before));
        let after = s.fill_start();
        assert!(s.insert_if_current(k.clone(), obj(b"new", VaryValues::default(), 60), after));
        let other = CacheKey::new("s", "h", "/unrelated");
        assert!(s.insert_if_current(other, obj(b"x", VaryValues::default(), 60), before));
    }

    #[test]
    fn budget_holds_under_many_inserts() {
        let s = store(4);
        let body: &'static [u8] = Box::leak(vec![7u8; 10_000].into_boxed_slice());
        for i in 0..1000 {
            s.insert(
                CacheKey::new("s", "h", &format!("/{i}")),
                obj(body, VaryValues::default(), 60),
            );
        }
        assert!(s.weighted_size() <= 1 << 20, "{}", s.weighted_size());
    }
}
