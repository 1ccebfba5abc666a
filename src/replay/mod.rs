//! `edgecache replay`: what-if hit ratios from a real log, offline. Reads a trace (one request
//! per line: `KEY [SIZE]`, or an access log in common/combined format) and simulates the cache
//! at several capacities under several policies, including the offline optimum as a bound.
// A measuring tool: it reads the wall clock on purpose (see `.clippy.toml`).
#![allow(clippy::disallowed_methods)]

mod list;
mod policy;

use indicatif::{ProgressBar, ProgressStyle};
use policy::{Lru, Moka, Policy, WTinyLfu, belady};
use serde::Serialize;
use std::{
    collections::hash_map::DefaultHasher,
    hash::{Hash, Hasher},
    io::BufRead,
};

/// The policies `--policy` accepts.
pub const POLICIES: [&str; 4] = ["tinylfu", "lru", "w-tinylfu", "belady"];

/// One (policy, capacity) result; the `--json` schema.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Record {
    /// The policy, as `--policy` names it.
    pub(crate) policy: String,
    /// The simulated cache's size.
    pub(crate) capacity_bytes: u64,
    /// Requests replayed.
    pub(crate) requests: u64,
    /// Hits / requests.
    pub(crate) object_hit_ratio: f64,
    /// Bytes of hits / bytes requested.
    pub(crate) byte_hit_ratio: f64,
}

/// A trace in memory: hashed keys and sizes.
pub struct Trace {
    /// Each request as (hash of its URL, body size in bytes): all a cache policy needs to replay it.
    pub requests: Vec<(u64, u32)>,
    /// Lines that were neither a request nor blank/comment.
    pub skipped: u64,
}

/// Parses one line: `KEY [SIZE]`, or a common/combined log line (`... "GET /path HTTP/1.1"
/// STATUS BYTES ...`), whose path is the key and whose byte count is the size. A missing size
/// counts as 1 byte (byte ratios then equal object ratios).
pub(crate) fn parse_line(line: &str) -> Option<(u64, u32)> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let (key, size) = if let Some(start) = line.find('"') {
        let rest = &line[start + 1..];
        let end = rest.find('"')?;
        let mut req = rest[..end].split_whitespace();
        let (method, path, proto) = (req.next()?, req.next()?, req.next()?);
        // A request line, not some other quoted text (a log file also holds the edge's own
        // messages): `METHOD /target HTTP/x`.
        let is_method = !method.is_empty() && method.bytes().all(|b| b.is_ascii_uppercase());
        if !is_method || !proto.starts_with("HTTP/") || req.next().is_some() {
            return None;
        }
        let mut after = rest[end + 1..].split_whitespace();
        let _status = after.next();
        let size = after
            .next()
            .and_then(|b| b.parse::<u32>().ok())
            .unwrap_or(1);
        (path, size)
    } else {
        let mut it = line.split_whitespace();
        let key = it.next()?;
        let size = match it.next() {
            Some(s) => s.parse::<u32>().ok()?,
            None => 1,
        };
        (key, size)
    };
    let mut h = DefaultHasher::new();
    key.hash(&mut h);
    Some((h.finish(), size.max(1)))
}

/// Reads a whole trace.
pub fn read_trace(input: impl BufRead) -> std::io::Result<Trace> {
    let mut requests = Vec::new();
    let mut skipped = 0;
    for line in input.lines() {
        let line = line?;
        match parse_line(&line) {
            Some(r) => requests.push(r),
            None if line.trim().is_empty() || line.trim_start().starts_with('#') => {}
            None => skipped += 1,
        }
    }
    Ok(Trace { requests, skipped })
}

/// Simulates every (policy, capacity) pair; `progress` is advanced once per request simulated.
pub fn simulate(
    trace: &Trace,
    capacities: &[u64],
    policies: &[&str],
    progress: &ProgressBar,
) -> Vec<Record> {
    let distinct = {
        let mut keys: Vec<u64> = trace.requests.iter().map(|r| r.0).collect();
        keys.sort_unstable();
        keys.dedup();
        keys.len()
    };
    let total = trace.requests.len() as u64;
    let total_bytes: u64 = trace.requests.iter().map(|r| u64::from(r.1)).sum();
    let mut out = Vec::new();
    for &policy in policies {
        for &cap in capacities {
            let (hits, hit_bytes) = if policy == "belady" {
                let r = belady(&trace.requests, cap);
                progress.inc(total);
                r
            } else {
                let mut p: Box<dyn Policy> = match policy {
                    "lru" => Box::new(Lru::new(cap)),
                    "tinylfu" => Box::new(Moka::new(cap)),
                    _ => Box::new(WTinyLfu::new(cap, distinct)),
                };
                let (mut hits, mut bytes) = (0u64, 0u64);
                for chunk in trace.requests.chunks(1 << 16) {
                    for &(k, s) in chunk {
                        if p.access(k, u64::from(s)) {
                            hits += 1;
                            bytes += u64::from(s);
                        }
                    }
                    progress.inc(chunk.len() as u64);
                }
                (hits, bytes)
            };
            out.push(Record {
                policy: policy.to_string(),
                capacity_bytes: cap,
                requests: total,
                object_hit_ratio: ratio(hits, total),
                byte_hit_ratio: ratio(hit_bytes, total_bytes),
            });
        }
    }
    out
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// A progress bar on standard error (hidden when it is not a terminal).
pub fn progress(len: u64) -> ProgressBar {
    let pb = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} simulating [{bar:40}] {percent}% {per_sec} eta {eta}",
    ) {
        pb.set_style(style.progress_chars("=> "));
    }
    pb
}

/// The human-readable table, with each policy's object hit ratio relative to Belady's.
pub fn table(records: &[Record]) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<10} {:>12} {:>12} {:>10} {:>10} {:>12}",
        "policy", "capacity", "requests", "obj hit", "byte hit", "vs belady"
    );
    for r in records {
        let opt = records
            .iter()
            .find(|b| b.policy == "belady" && b.capacity_bytes == r.capacity_bytes)
            .map(|b| b.object_hit_ratio);
        let vs = match opt {
            Some(o) if o > 0.0 => format!("{:.2}", r.object_hit_ratio / o),
            _ => "-".into(),
        };
        let cap = crate::config::ByteSize(r.capacity_bytes).to_string();
        let _ = writeln!(
            s,
            "{:<10} {:>12} {:>12} {:>9.2}% {:>9.2}% {:>12}",
            r.policy,
            cap,
            r.requests,
            r.object_hit_ratio * 100.0,
            r.byte_hit_ratio * 100.0,
            vs
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trace(keys: &[(&str, u32)]) -> Trace {
        let text: String = keys.iter().map(|(k, s)| format!("{k} {s}\n")).collect();
        read_trace(text.as_bytes()).unwrap()
    }

    fn run(t: &Trace, cap: u64, policy: &str) -> Record {
        simulate(t, &[cap], &[policy], &ProgressBar::hidden()).remove(0)
    }

    #[test]
    fn parses_plain_and_log_lines() {
        assert_eq!(parse_line("/a 100").map(|r| r.1), Some(100));
        assert_eq!(parse_line("/a").map(|r| r.1), Some(1));
        let combined = r#"127.0.0.1 - - [25/Nov/2026:10:00:00 +0000] "GET /x.css HTTP/1.1" 200 5120 "-" "curl""#;
        assert_eq!(parse_line(combined).map(|r| r.1), Some(5120));
        assert_eq!(
            parse_line(combined).map(|r| r.0),
            parse_line("/x.css 1").map(|r| r.0)
        );
        assert_eq!(parse_line("# comment"), None);
        // The edge's own messages in the same file are not requests.
        let message = r#"2026-12-04T18:00:00Z  INFO edgecache: site site="demo" hosts=["*"]"#;
        assert_eq!(parse_line(message), None);
        assert_eq!(parse_line("/a notanumber"), None);
        let t = read_trace("/a 1\n\nbad line here\n/b 2\n".as_bytes()).unwrap();
        assert_eq!((t.requests.len(), t.skipped), (2, 1));
    }

    #[test]
    fn lru_by_hand() {
        // Capacity for two 1-byte objects: a b a c b -> hits: a(3rd) only; c evicts b.
        let t = trace(&[("a", 1), ("b", 1), ("a", 1), ("c", 1), ("b", 1)]);
        let r = run(&t, 2, "lru");
        assert_eq!(r.object_hit_ratio, 1.0 / 5.0);
        assert_eq!(r.requests, 5);
    }

    #[test]
    fn belady_bounds_every_policy_on_a_loop() {
        // A loop over 3 objects with room for 2: LRU never hits; the optimum keeps one fixed.
        let keys: Vec<(&str, u32)> = ["a", "b", "c"]
            .iter()
            .cycle()
            .take(30)
            .map(|k| (*k, 1))
            .collect();
        let t = trace(&keys);
        assert_eq!(run(&t, 2, "lru").object_hit_ratio, 0.0);
        let b = run(&t, 2, "belady");
        assert!(b.object_hit_ratio >= 0.45, "{}", b.object_hit_ratio);
        for p in ["tinylfu", "w-tinylfu", "lru"] {
            assert!(
                run(&t, 2, p).object_hit_ratio <= b.object_hit_ratio + 1e-9,
                "{p} beat the optimum"
            );
        }
    }

    #[test]
    fn byte_ratio_weighs_sizes_and_large_objects_never_fit() {
        let t = trace(&[("big", 1000), ("big", 1000), ("small", 1), ("small", 1)]);
        let r = run(&t, 100, "lru");
        assert_eq!(r.object_hit_ratio, 0.25);
        assert!((r.byte_hit_ratio - 1.0 / 2002.0).abs() < 1e-12);
    }

    #[test]
    fn frequency_aware_policies_resist_a_scan() {
        // A hot set of 50 keys reused throughout, with a one-time scan of 5000 keys mixed in.
        let mut keys = Vec::new();
        let hot: Vec<String> = (0..50).map(|i| format!("hot{i}")).collect();
        let scan: Vec<String> = (0..5000).map(|i| format!("scan{i}")).collect();
        for round in 0..100 {
            for h in &hot {
                keys.push((h.as_str(), 1));
            }
            for s in &scan[round * 50..round * 50 + 50] {
                keys.push((s.as_str(), 1));
            }
        }
        let t = trace(&keys);
        let lru = run(&t, 60, "lru").object_hit_ratio;
        let w = run(&t, 60, "w-tinylfu").object_hit_ratio;
        assert!(w > lru + 0.2, "w-tinylfu {w} vs lru {lru}");
    }
}
