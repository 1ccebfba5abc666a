//! Second-hit admission: a doorkeeper in front of the store's insert, so that an object seen
//! once is served but not stored, and only one that missed before within a recent window takes
//! room in the cache.
//!
//! Why: a CDN pays its origin and its links in bytes. moka's TinyLFU admits by comparing a
//! newcomer's frequency with its victim's, which protects popular small objects well but lets a
//! stream of one-hit wonders push out large objects that would have been read again. Offline
//! (BENCHMARKS.md, `edgecache replay --policy edgecache`) a second-hit doorkeeper in front of
//! moka raises the byte hit ratio on every trace and size tried, for an object hit ratio within
//! a point or two of moka's alone. Akamai's "cache on second hit" (Maggs and Sitaraman, 2015)
//! is the same idea.
//!
//! The window is two Bloom filters. Every missed key is recorded in the current one; a key is
//! admitted when either filter holds it. When the current one has seen about twice as many
//! keys as the cache holds entries, the older is dropped and a fresh one, sized for the next
//! window, becomes current: memory stays proportional to the cache, and a key is remembered
//! for between one and two windows. Until the cache first fills (its first eviction for room)
//! every miss is admitted: there is nothing to protect yet.
//!
//! Lookups still go through moka first, so its frequency sketch counts every request, refused
//! ones included. The server and `edgecache replay` run this same code.

use std::{
    hash::{BuildHasher, Hash},
    sync::{
        Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
};

/// A site's admission policy (`[[site]] admission`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Admission {
    /// Store an object on its second miss within the window (once the cache has filled).
    #[default]
    SecondHit,
    /// Store every storable miss, as moka alone would.
    Always,
}

/// The fewest keys a window holds, so a nearly empty cache still remembers a useful number.
const MIN_WINDOW: u64 = 1024;

/// The doorkeeper: shared by every site of an edge (keys start with the site's name), and kept
/// across reloads.
pub struct Doorkeeper {
    /// Set at the store's first eviction for room; before it, every miss is admitted.
    filled: AtomicBool,
    /// The two filters. Taken on a miss only (a HIT never comes here), for a few bit probes.
    filters: Mutex<Filters>,
    /// Hashes keys; seeded at random in the server, fixed in replay (so it repeats).
    hasher: foldhash::fast::FixedState,
    /// Misses refused so far, for `/stats` and `/metrics`.
    refused: AtomicU64,
}

struct Filters {
    current: Bloom,
    previous: Bloom,
}

impl Doorkeeper {
    /// A doorkeeper whose first window is sized for a cache of `entries` objects, hashing with
    /// `seed`.
    pub fn new(entries: u64, seed: u64) -> Self {
        let window = window_for(entries);
        Self {
            filled: AtomicBool::new(false),
            filters: Mutex::new(Filters {
                current: Bloom::for_keys(window),
                previous: Bloom::for_keys(MIN_WINDOW),
            }),
            hasher: foldhash::fast::FixedState::with_seed(seed),
            refused: AtomicU64::new(0),
        }
    }

    /// Should the missed object under `key` be stored? `filled` says whether the store has
    /// ever evicted for room, `entries` how many objects it holds now (for the window's size).
    /// Records the miss either way.
    pub fn admit(&self, key: impl Hash, filled: bool, entries: u64) -> bool {
        let h = self.hasher.hash_one(key);
        let mut f = self.filters.lock().unwrap_or_else(|p| p.into_inner());
        let seen = f.current.contains(h) || f.previous.contains(h);
        if !seen {
            f.current.insert(h);
        }
        let window = window_for(entries);
        if f.current.keys >= window.min(f.current.capacity) {
            // The current window is full (or its filter is, the cache having grown since it
            // was sized): it becomes the previous one, and a fresh one is sized for the cache
            // as it is now.
            let fresh = Bloom::for_keys(window);
            f.previous = std::mem::replace(&mut f.current, fresh);
        }
        drop(f);
        if !self.filled.load(Ordering::Relaxed) {
            if !filled {
                return true;
            }
            self.filled.store(true, Ordering::Relaxed);
        }
        if !seen {
            self.refused.fetch_add(1, Ordering::Relaxed);
        }
        seen
    }

    /// Misses it refused (served, not stored) since start.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Bytes the two filters take.
    pub fn bytes(&self) -> usize {
        let f = self.filters.lock().unwrap_or_else(|p| p.into_inner());
        (f.current.bits.len() + f.previous.bits.len()) * 8
    }
}

/// Keys a window holds before it rotates: twice the cache's entries.
fn window_for(entries: u64) -> u64 {
    entries.saturating_mul(2).max(MIN_WINDOW)
}

/// A Bloom filter of `2^n` bits probed `PROBES` times per key by double hashing.
struct Bloom {
    bits: Vec<u64>,
    /// Bit count minus one.
    mask: u64,
    /// Keys inserted so far.
    keys: u64,
    /// Keys it was sized for.
    capacity: u64,
}

/// Probes per key: near the optimum (`ln 2 * bits / keys`, 6.6 at 9.6 bits a key) for the
/// size below.
const PROBES: u32 = 7;
/// Bits per key a filter is sized for (then rounded up to a power of two): a false-positive
/// rate of about 1 % at its full window, less before.
const BITS_PER_KEY: u64 = 10;

impl Bloom {
    fn for_keys(keys: u64) -> Self {
        let bits = keys
            .saturating_mul(BITS_PER_KEY)
            .next_power_of_two()
            .max(64);
        Self {
            bits: vec![0; usize::try_from(bits / 64).unwrap_or(usize::MAX)],
            mask: bits - 1,
            keys: 0,
            capacity: keys,
        }
    }

    /// The bit positions of hash `h`: `h1 + i * h2` (Kirsch and Mitzenmacher), `h2` odd so the
    /// probes differ.
    fn probes(&self, h: u64) -> impl Iterator<Item = (usize, u64)> + '_ {
        let h2 = h.rotate_left(32) | 1;
        (0..u64::from(PROBES)).map(move |i| {
            let bit = h.wrapping_add(i.wrapping_mul(h2)) & self.mask;
            ((bit / 64) as usize, 1u64 << (bit % 64))
        })
    }

    fn contains(&self, h: u64) -> bool {
        self.probes(h).all(|(w, b)| self.bits[w] & b != 0)
    }

    fn insert(&mut self, h: u64) {
        let probes: Vec<(usize, u64)> = self.probes(h).collect();
        for (w, b) in probes {
            self.bits[w] |= b;
        }
        self.keys += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_filter_holds_what_it_was_given_and_few_others() {
        let hasher = foldhash::fast::FixedState::with_seed(7);
        let n = 20_000u64;
        let mut b = Bloom::for_keys(n);
        for i in 0..n {
            b.insert(hasher.hash_one(i));
        }
        assert!(
            (0..n).all(|i| b.contains(hasher.hash_one(i))),
            "no false negatives"
        );
        let others = 200_000u64;
        let false_positives = (n..n + others)
            .filter(|i| b.contains(hasher.hash_one(i)))
            .count();
        let rate = false_positives as f64 / others as f64;
        // Sized for 1 % at its full window (10 bits a key, rounded up to a power of two).
        assert!(rate < 0.01, "false-positive rate {rate}");
    }

    #[test]
    fn before_the_cache_fills_every_miss_is_admitted_and_then_only_a_second_one() {
        let d = Doorkeeper::new(1000, 1);
        assert!(d.admit("a", false, 0), "nothing to protect yet");
        assert!(d.admit("b", false, 1));
        // The cache has filled: a key seen before (even while filling) is admitted, a new one
        // is not until it comes again.
        assert!(d.admit("a", true, 100));
        assert!(!d.admit("c", true, 100));
        assert!(d.admit("c", true, 100));
        // Filled stays filled, whatever the store says next.
        assert!(!d.admit("d", false, 100));
        assert_eq!(d.refused(), 2, "c's first miss and d's");
    }

    #[test]
    fn the_window_rotates_and_forgets_keys_older_than_two_windows() {
        let d = Doorkeeper::new(0, 2);
        let entries = 0; // window of MIN_WINDOW keys
        assert!(!d.admit("old", true, entries));
        // One window later it is in the previous filter: still remembered. (A few more keys
        // than a window: a false positive is not recorded, and the count must reach it.)
        for i in 0..MIN_WINDOW + 100 {
            d.admit(("x", i), true, entries);
        }
        assert!(d.admit("old", true, entries));
        // Two windows later it is gone: a miss is a first miss again.
        for i in 0..MIN_WINDOW + 100 {
            d.admit(("y", i), true, entries);
        }
        assert!(!d.admit("old", true, entries));
        // The filters stay the size of two windows (10 bits a key, rounded up).
        assert!(
            d.bytes() <= 2 * (MIN_WINDOW as usize * 16 / 8),
            "{}",
            d.bytes()
        );
    }

    #[test]
    fn windows_grow_with_the_cache() {
        let d = Doorkeeper::new(0, 3);
        let small = d.bytes();
        for i in 0..3 * MIN_WINDOW {
            d.admit(i, true, 100_000);
        }
        // Sized for 200,000 keys now, not 4,096; it has not rotated yet.
        assert!(d.bytes() > small, "{} vs {small}", d.bytes());
        assert!(d.admit(5u64, true, 100_000), "remembered within the window");
    }
}
