//! Choosing a server: pure functions of the servers' weights, loads and availability, so each
//! mode can be tested without a network.

use crate::config::Balance;

/// What selection needs to know of one server.
#[derive(Debug, Clone, Copy)]
pub(super) struct Candidate {
    pub(super) weight: u32,
    /// Requests in progress.
    pub(super) outstanding: usize,
    /// May it be sent a request now (not ejected, not failing its checks, not tried already)?
    pub(super) usable: bool,
    /// Stable identity for hashing: the same server keeps it across reloads.
    pub(super) id: u64,
}

impl Candidate {
    /// A slot not yet filled in.
    pub(super) const NONE: Candidate = Candidate {
        weight: 0,
        outstanding: 0,
        usable: false,
        id: 0,
    };
}

/// The interleaved weighted round-robin order of `weights` (nginx's smooth weighted
/// round-robin, run once): each server appears `weight` times, spread out.
pub(super) fn schedule(weights: &[u32]) -> Vec<usize> {
    let total: i64 = weights.iter().map(|&w| i64::from(w)).sum();
    let mut current = vec![0i64; weights.len()];
    let mut out = Vec::with_capacity(total as usize);
    for _ in 0..total {
        for (c, &w) in current.iter_mut().zip(weights) {
            *c += i64::from(w);
        }
        let Some((best, _)) = current
            .iter()
            .enumerate()
            .max_by_key(|&(i, &c)| (c, std::cmp::Reverse(i)))
        else {
            break;
        };
        current[best] -= total;
        out.push(best);
    }
    out
}

/// The server for a request among `servers` (one tier: primaries, or backups), or `None` when
/// none is usable. `turn` advances per request (round-robin's cursor, and the tie-breaker of
/// the least loaded); `affinity` is the request's hash for consistent hashing.
pub(super) fn pick(
    mode: Balance,
    servers: &[Candidate],
    order: &[usize],
    turn: usize,
    affinity: u64,
) -> Option<usize> {
    match mode {
        Balance::RoundRobin => {
            let first = *order.get(turn % order.len().max(1))?;
            if servers[first].usable {
                return Some(first);
            }
            // Its turn is shared among the others by weight (taking the next in the order
            // would hand one neighbour the whole share of a server that is down).
            let total: u64 = servers
                .iter()
                .filter(|s| s.usable)
                .map(|s| u64::from(s.weight))
                .sum();
            let mut x = mix(turn as u64) % total.max(1);
            servers.iter().position(|s| {
                if !s.usable {
                    return false;
                }
                let w = u64::from(s.weight);
                if x < w {
                    return true;
                }
                x -= w;
                false
            })
        }
        Balance::LeastOutstanding => {
            let n = servers.len();
            // Fewest in progress per unit of weight: a/wa < b/wb as a*wb < b*wa. Ties go to
            // the first from `turn` on, so equal servers share the load.
            (0..n)
                .map(|k| (turn + k) % n)
                .filter(|&i| servers[i].usable)
                .min_by(|&a, &b| {
                    let (sa, sb) = (&servers[a], &servers[b]);
                    let la = sa.outstanding as u128 * u128::from(sb.weight);
                    let lb = sb.outstanding as u128 * u128::from(sa.weight);
                    la.cmp(&lb)
                })
        }
        Balance::ConsistentHash => servers
            .iter()
            .enumerate()
            .filter(|(_, s)| s.usable)
            .map(|(i, s)| (i, rendezvous_score(affinity, s.id, s.weight)))
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(i, _)| i),
    }
}

/// Weighted rendezvous (highest random weight) score: `-weight / ln(u)` for a uniform `u` in
/// (0, 1) drawn from the key and the server, so each server wins its weight's share of keys and
/// removing one moves only the keys it won.
fn rendezvous_score(key: u64, server: u64, weight: u32) -> f64 {
    let h = mix(key ^ mix(server));
    // 53 bits into (0, 1): never 0, so the logarithm is finite and negative.
    let u = ((h >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    -f64::from(weight) / u.ln()
}

/// A 64-bit finaliser (splitmix64): spreads every input bit over the output.
pub(super) fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A stable 64-bit hash of bytes (FNV-1a, then mixed): the same on every node and every run,
/// as consistent hashing across a fleet needs (std's hasher is seeded per process).
pub(super) fn hash_bytes(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for &b in *p {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h ^= 0xff;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    mix(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn servers(weights: &[u32]) -> Vec<Candidate> {
        weights
            .iter()
            .enumerate()
            .map(|(i, &weight)| Candidate {
                weight,
                outstanding: 0,
                usable: true,
                id: hash_bytes(&[format!("http://10.0.0.{i}").as_bytes()]),
            })
            .collect()
    }

    #[test]
    fn the_schedule_interleaves_by_weight() {
        assert_eq!(schedule(&[3, 1]), [0, 0, 1, 0]);
        assert_eq!(schedule(&[5, 1, 1]), [0, 0, 1, 0, 2, 0, 0]);
        assert_eq!(schedule(&[1, 1, 1]), [0, 1, 2]);
        let s = schedule(&[2, 3]);
        assert_eq!(s.iter().filter(|&&i| i == 1).count(), 3);
    }

    #[test]
    fn round_robin_skips_what_cannot_be_used() {
        let mut s = servers(&[1, 1, 1]);
        let order = schedule(&[1, 1, 1]);
        s[1].usable = false;
        let picks: Vec<_> = (0..3000)
            .map(|t| pick(Balance::RoundRobin, &s, &order, t, 0).unwrap())
            .collect();
        assert!(!picks.contains(&1));
        // The share of the server that is down is split between the other two.
        let zero = picks.iter().filter(|&&p| p == 0).count();
        assert!((1400..1600).contains(&zero), "{zero} of 3000");
        s.iter_mut().for_each(|c| c.usable = false);
        assert_eq!(pick(Balance::RoundRobin, &s, &order, 0, 0), None);
    }

    #[test]
    fn least_outstanding_weighs_load_by_weight() {
        let mut s = servers(&[1, 2]);
        s[0].outstanding = 2;
        s[1].outstanding = 3; // 3/2 < 2/1
        assert_eq!(pick(Balance::LeastOutstanding, &s, &[], 0, 0), Some(1));
        s[1].outstanding = 5;
        assert_eq!(pick(Balance::LeastOutstanding, &s, &[], 0, 0), Some(0));
        // Equal loads: the turn decides, so idle servers share.
        s[0].outstanding = 0;
        s[1].outstanding = 0;
        assert_eq!(pick(Balance::LeastOutstanding, &s, &[], 1, 0), Some(1));
        assert_eq!(pick(Balance::LeastOutstanding, &s, &[], 2, 0), Some(0));
    }

    #[test]
    fn consistent_hashing_moves_only_the_removed_servers_keys() {
        let s = servers(&[1, 1, 1, 1]);
        let keys: Vec<u64> = (0..4000)
            .map(|k| hash_bytes(&[format!("/k/{k}").as_bytes()]))
            .collect();
        let before: Vec<usize> = keys
            .iter()
            .map(|&k| pick(Balance::ConsistentHash, &s, &[], 0, k).unwrap())
            .collect();
        for i in 0..4 {
            let share = before.iter().filter(|&&b| b == i).count();
            assert!((800..1200).contains(&share), "server {i}: {share} of 4000");
        }
        let mut fewer = s.clone();
        fewer[2].usable = false;
        for (k, &was) in keys.iter().zip(&before) {
            let now = pick(Balance::ConsistentHash, &fewer, &[], 0, *k).unwrap();
            if was != 2 {
                assert_eq!(now, was, "a key of a remaining server moved");
            }
        }
        // Weights: a weight-3 server takes about three quarters against a weight-1 one.
        let w = servers(&[3, 1]);
        let big = keys
            .iter()
            .filter(|&&k| pick(Balance::ConsistentHash, &w, &[], 0, k) == Some(0))
            .count();
        assert!((2800..3200).contains(&big), "{big} of 4000");
    }
}
