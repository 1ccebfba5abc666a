//! Eviction policies simulated over a trace: plain LRU, moka's own TinyLFU (the policy
//! edgecache's store uses, run through moka itself), W-TinyLFU (Caffeine's design), and a
//! size-aware approximation of Belady's offline optimum.

use super::list::LruList;
use std::collections::{BTreeSet, HashMap};

/// An online cache: answers whether an access hits, and admits what it chooses.
pub(crate) trait Policy {
    fn access(&mut self, key: u64, size: u64) -> bool;
}

/// Least recently used, bounded by bytes.
pub(crate) struct Lru {
    /// Capacity in bytes; a larger object is never admitted.
    cap: u64,
    /// What it holds, in recency order.
    list: LruList,
}

impl Lru {
    pub(crate) fn new(cap: u64) -> Self {
        Self {
            cap,
            list: LruList::new(),
        }
    }
}

impl Policy for Lru {
    fn access(&mut self, key: u64, size: u64) -> bool {
        if self.list.touch(key) {
            return true;
        }
        if size > self.cap {
            return false;
        }
        while self.list.bytes + size > self.cap {
            self.list.pop_back();
        }
        self.list.push_front(key, size);
        false
    }
}

/// moka's TinyLFU with a byte weigher: what the edge's store does.
pub(crate) struct Moka(moka::sync::Cache<u64, u32, foldhash::fast::FixedState>);

impl Moka {
    pub(crate) fn new(cap: u64) -> Self {
        Self(
            moka::sync::Cache::builder()
                .max_capacity(cap)
                .weigher(|_, s: &u32| *s)
                // A fixed hasher: moka's sketch and sampling follow the hash, and a replay
                // must repeat (with the default random one, runs differ by a point).
                .build_with_hasher(foldhash::fast::FixedState::with_seed(0x5eed)),
        )
    }
}

impl Policy for Moka {
    fn access(&mut self, key: u64, size: u64) -> bool {
        if self.0.get(&key).is_some() {
            return true;
        }
        self.0.insert(key, u32::try_from(size).unwrap_or(u32::MAX));
        // moka evicts in batches; settle now so the simulated cache never exceeds its capacity.
        self.0.run_pending_tasks();
        false
    }
}

/// What the edge's store does, with the server's own code: moka's TinyLFU by bytes behind
/// the [`Doorkeeper`](crate::cache::admission::Doorkeeper) of second-hit admission, which
/// decides on the same facts the fill does (has the store evicted for room yet, how many
/// entries it holds).
pub(crate) struct Edgecache {
    cache: moka::sync::Cache<u64, u32, foldhash::fast::FixedState>,
    door: crate::cache::admission::Doorkeeper,
    /// Set by moka's eviction listener at its first eviction for room, as the store's count is.
    evicted: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Edgecache {
    pub(crate) fn new(cap: u64) -> Self {
        let evicted = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = evicted.clone();
        Self {
            cache: moka::sync::Cache::builder()
                .max_capacity(cap)
                .weigher(|_, s: &u32| *s)
                .eviction_listener(move |_, _, cause| {
                    if cause == moka::notification::RemovalCause::Size {
                        flag.store(true, std::sync::atomic::Ordering::Relaxed);
                    }
                })
                .build_with_hasher(foldhash::fast::FixedState::with_seed(0x5eed)),
            // Sized as the server sizes it (objects of 16 KiB the budget could hold); a fixed
            // seed so that a replay repeats.
            door: crate::cache::admission::Doorkeeper::new(cap / 16384, 0x5eed),
            evicted,
        }
    }
}

impl Policy for Edgecache {
    fn access(&mut self, key: u64, size: u64) -> bool {
        if self.cache.get(&key).is_some() {
            return true;
        }
        let filled = self.evicted.load(std::sync::atomic::Ordering::Relaxed);
        if self.door.admit(key, filled, self.cache.entry_count()) {
            self.cache
                .insert(key, u32::try_from(size).unwrap_or(u32::MAX));
            self.cache.run_pending_tasks();
        }
        false
    }
}

/// A count-min sketch of 4-bit-ish counters (u8, capped at 15) with periodic halving, so
/// frequency reflects the recent past (TinyLFU's "reset").
struct Sketch {
    /// Four rows of counters; a key has one counter in each, and its estimate is the smallest.
    rows: [Vec<u8>; 4],
    /// Row width minus one (a power of two): maps a hash onto a counter.
    mask: usize,
    /// Additions since the last halving (halved too when the counters are).
    additions: usize,
    /// Additions between halvings (ten per counter of a row), so that old popularity fades.
    sample: usize,
}

impl Sketch {
    fn new(width: usize) -> Self {
        let w = width.next_power_of_two().max(1024);
        Self {
            rows: std::array::from_fn(|_| vec![0; w]),
            mask: w - 1,
            additions: 0,
            sample: 10 * w,
        }
    }

    fn index(&self, key: u64, row: usize) -> usize {
        let seed = 0x9E37_79B9_7F4A_7C15_u64
            .wrapping_add((row as u64).wrapping_mul(0x632B_E59B_D9B4_E019));
        let h = (key ^ seed).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        ((h >> 32) ^ h) as usize & self.mask
    }

    fn add(&mut self, key: u64) {
        for r in 0..4 {
            let i = self.index(key, r);
            let c = &mut self.rows[r][i];
            *c = (*c + 1).min(15);
        }
        self.additions += 1;
        if self.additions >= self.sample {
            for row in &mut self.rows {
                row.iter_mut().for_each(|c| *c /= 2);
            }
            self.additions /= 2;
        }
    }

    fn estimate(&self, key: u64) -> u8 {
        (0..4)
            .map(|r| self.rows[r][self.index(key, r)])
            .min()
            .unwrap_or(0)
    }
}

/// W-TinyLFU: a small LRU window (1 %) in front of a segmented LRU main area (20 % probation,
/// 80 % protected); an object leaving the window enters main only if the sketch says it is
/// used more often than the object main would evict for it.
pub(crate) struct WTinyLfu {
    /// The admission window: every new object enters here.
    window: LruList,
    /// Main's probation segment: window victims the sketch admitted, protected on their next hit.
    probation: LruList,
    /// Main's protected segment: objects hit again in probation; its overflow goes back to
    /// probation.
    protected: LruList,
    /// The window's bytes: 1 % of the capacity.
    window_cap: u64,
    /// The main area's bytes: the rest.
    main_cap: u64,
    /// The protected segment's bytes: 80 % of the main area.
    protected_cap: u64,
    /// Access frequencies: a window victim enters main only if it is used more than what it
    /// displaces.
    sketch: Sketch,
}

impl WTinyLfu {
    pub(crate) fn new(cap: u64, expected_objects: usize) -> Self {
        let window_cap = (cap / 100).max(1);
        let main_cap = cap - window_cap;
        Self {
            window: LruList::new(),
            probation: LruList::new(),
            protected: LruList::new(),
            window_cap,
            main_cap,
            protected_cap: main_cap / 5 * 4,
            sketch: Sketch::new(expected_objects),
        }
    }

    fn main_bytes(&self) -> u64 {
        self.probation.bytes + self.protected.bytes
    }

    /// Offers a window victim to the main area: it displaces main's least recently used
    /// objects (probation first) only while it is used more often than each of them.
    fn admit(&mut self, key: u64, size: u64) {
        if size > self.main_cap {
            return;
        }
        let freq = self.sketch.estimate(key);
        while self.main_bytes() + size > self.main_cap {
            let Some(v) = self.probation.back().or_else(|| self.protected.back()) else {
                return;
            };
            if self.sketch.estimate(v) >= freq {
                return;
            }
            if self.probation.remove(v).is_none() {
                self.protected.remove(v);
            }
        }
        self.probation.push_front(key, size);
    }
}

impl Policy for WTinyLfu {
    fn access(&mut self, key: u64, size: u64) -> bool {
        self.sketch.add(key);
        if self.window.touch(key) || self.protected.touch(key) {
            return true;
        }
        if let Some((k, s)) = self.probation.remove(key) {
            self.protected.push_front(k, s);
            while self.protected.bytes > self.protected_cap {
                let Some((dk, ds)) = self.protected.pop_back() else {
                    break;
                };
                self.probation.push_front(dk, ds);
            }
            return true;
        }
        if size > self.window_cap + self.main_cap {
            return false;
        }
        self.window.push_front(key, size);
        while self.window.bytes > self.window_cap {
            let Some((k, s)) = self.window.pop_back() else {
                break;
            };
            self.admit(k, s);
        }
        false
    }
}

/// Belady for objects of different sizes, approximated: on a miss, evict what is next used
/// furthest in the future until the new object fits, and do not admit an object whose next use
/// is further away than everything it would displace (or that is never used again). With equal
/// sizes this is the exact optimum; with different sizes the true optimum is NP-hard, and this
/// is the usual upper-bound estimate.
pub(crate) fn belady(requests: &[(u64, u32)], cap: u64) -> (u64, u64) {
    let n = requests.len();
    let mut next = vec![usize::MAX; n];
    let mut last: HashMap<u64, usize> = HashMap::new();
    for i in (0..n).rev() {
        if let Some(&j) = last.get(&requests[i].0) {
            next[i] = j;
        }
        last.insert(requests[i].0, i);
    }
    drop(last);
    let mut cached: HashMap<u64, (u64, usize)> = HashMap::new();
    let mut by_next: BTreeSet<(usize, u64)> = BTreeSet::new();
    let (mut used, mut hits, mut hit_bytes) = (0u64, 0u64, 0u64);
    for (i, &(key, size)) in requests.iter().enumerate() {
        let size = u64::from(size);
        if let Some(entry) = cached.get_mut(&key) {
            hits += 1;
            hit_bytes += size;
            by_next.remove(&(entry.1, key));
            entry.1 = next[i];
            by_next.insert((next[i], key));
            continue;
        }
        if next[i] == usize::MAX || size > cap {
            continue; // never used again, or can never fit
        }
        // Only worth admitting if everything it displaces is next used later than it is.
        let mut need = (used + size).saturating_sub(cap);
        let mut worth = true;
        for &(nu, k) in by_next.iter().rev() {
            if need == 0 {
                break;
            }
            if nu < next[i] {
                worth = false;
                break;
            }
            need = need.saturating_sub(cached[&k].0);
        }
        if !worth {
            continue;
        }
        while used + size > cap {
            let Some((_, k)) = by_next.pop_last() else {
                break;
            };
            if let Some((s, _)) = cached.remove(&k) {
                used -= s;
            }
        }
        cached.insert(key, (size, next[i]));
        by_next.insert((next[i], key));
        used += size;
    }
    (hits, hit_bytes)
}
