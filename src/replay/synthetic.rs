//! Synthetic traces for `edgecache replay --synthetic`: the four workloads admission is judged
//! on (issue 20, BENCHMARKS.md), seeded so that a run repeats.
//!
//! Sizes are lognormal (median 8 KiB, sigma 1.5: most objects small, a few large ones carrying
//! much of the bytes), one size per object.
//! - `zipf-0.8`, `zipf-1.0`: Zipf popularity over `requests / 10` objects.
//! - `one-hit`: half the requests from Zipf 0.9 over `requests / 20` objects, half for objects
//!   asked for once (crawlers, long tails).
//! - `shifting`: Zipf 0.9 whose ranking moves by a seventh of the objects every tenth of the
//!   trace (what is popular today is not tomorrow).

use super::Trace;
use rand::{SeedableRng, rngs::StdRng};
use rand_distr::{Distribution, LogNormal, Zipf};

/// The kinds `--synthetic` accepts.
pub const KINDS: [&str; 4] = ["zipf-0.8", "zipf-1.0", "one-hit", "shifting"];

/// A trace of `kind` with `requests` requests from `seed`; `None` for an unknown kind.
pub fn generate(kind: &str, requests: u64, seed: u64) -> Option<Trace> {
    let requests = requests.max(1);
    let mut rng = StdRng::seed_from_u64(seed);
    let zipf = |objects: u64, s: f64| Zipf::new(objects.max(1) as f64, s).ok();
    let mut keys: Vec<u64> = Vec::with_capacity(requests as usize);
    match kind {
        "zipf-0.8" | "zipf-1.0" => {
            let s = if kind == "zipf-0.8" { 0.8 } else { 1.0 };
            let objects = (requests / 10).max(1);
            let z = zipf(objects, s)?;
            keys.extend((0..requests).map(|_| z.sample(&mut rng) as u64 - 1));
        }
        "one-hit" => {
            let objects = (requests / 20).max(1);
            let z = zipf(objects, 0.9)?;
            let mut next_once = objects;
            let coin = rand_distr::Bernoulli::new(0.5).ok()?;
            for _ in 0..requests {
                if coin.sample(&mut rng) {
                    keys.push(z.sample(&mut rng) as u64 - 1);
                } else {
                    keys.push(next_once);
                    next_once += 1;
                }
            }
        }
        "shifting" => {
            let objects = (requests / 10).max(1);
            let z = zipf(objects, 0.9)?;
            let phase_len = (requests / 10).max(1);
            let shift = (objects / 7).max(1);
            for i in 0..requests {
                let rank = z.sample(&mut rng) as u64 - 1;
                keys.push((rank + (i / phase_len) * shift) % objects);
            }
        }
        _ => return None,
    }
    let sizes = LogNormal::new((8192f64).ln(), 1.5).ok()?;
    let requests = keys
        .into_iter()
        .map(|k| {
            // The object's own size, the same at every request for it.
            let mut r = StdRng::seed_from_u64(seed ^ k.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let size = sizes.sample(&mut r).clamp(64.0, f64::from(16u32 << 20)) as u32;
            (k.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ seed, size)
        })
        .collect();
    Some(Trace {
        requests,
        skipped: 0,
    })
}

/// Bytes of the distinct objects of `trace`: what the capacities of the comparison are a share
/// of.
pub fn unique_bytes(trace: &Trace) -> u64 {
    let mut seen = std::collections::HashMap::new();
    for &(k, s) in &trace.requests {
        seen.entry(k).or_insert(s);
    }
    seen.values().map(|&s| u64::from(s)).sum()
}
