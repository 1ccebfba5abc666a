//! What `edgecache bench` asks for: a request sequence over a set of distinct targets, either
//! generated (Zipf popularity, heavy-tailed sizes, an optional one-time scan) or read from a
//! trace. The same spec and seed always give the same sequence.

use rand::{SeedableRng, rngs::StdRng};
use rand_distr::{Distribution, Pareto, Zipf};
use serde::Serialize;
use std::io::BufRead;

/// How object sizes are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub(crate) enum SizeDist {
    /// Pareto: many small objects, a few very large ones (the shape of web objects).
    Pareto,
    /// Every object has the mean size.
    Fixed,
}

/// A generated workload.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ZipfSpec {
    /// Distinct objects the popular part draws from.
    pub(crate) objects: u32,
    /// Zipf exponent: 0 is uniform, ~0.8 is typical of web traffic, >1 very skewed.
    pub(crate) alpha: f64,
    /// Measured requests drawn from the Zipf distribution.
    pub(crate) requests: u64,
    /// Requests sent first, from the same distribution, and left out of the figures.
    pub(crate) warmup: u64,
    /// How object sizes are drawn.
    pub(crate) size_dist: SizeDist,
    /// Mean object size in bytes (every object's size with `Fixed`).
    pub(crate) size_mean: u64,
    /// Sizes are clamped to this.
    pub(crate) size_max: u64,
    /// Pareto shape (tail index); smaller is heavier. Must be above 1.
    pub(crate) size_shape: f64,
    /// Distinct never-repeated objects requested once each, in a row (a crawler, a backup).
    pub(crate) scan: u32,
    /// Where the scan starts, as a fraction of the measured requests.
    pub(crate) scan_at: f64,
    /// Seeds the draws of requests and of sizes: the same seed, the same workload.
    pub(crate) seed: u64,
}

/// A spec that cannot be generated.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct WorkloadError(pub(crate) String);

/// The distinct URLs (`path?query`) a workload asks for.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Targets {
    /// Read from a trace.
    List(Vec<Box<str>>),
    /// Objects of the built-in origin, by id: only their sizes are kept (4 bytes an object).
    Objects(Vec<u32>),
}

impl Targets {
    pub(crate) fn len(&self) -> usize {
        match self {
            Targets::List(l) => l.len(),
            Targets::Objects(s) => s.len(),
        }
    }

    /// The URL of target `i`.
    pub(crate) fn get(&self, i: u32) -> std::borrow::Cow<'_, str> {
        match self {
            Targets::List(l) => (&*l[i as usize]).into(),
            Targets::Objects(s) => object_target(u64::from(i), u64::from(s[i as usize])).into(),
        }
    }
}

/// The request sequence: indexes into distinct targets.
#[derive(Debug, Clone)]
pub(crate) struct Workload {
    /// The distinct URLs the sequence indexes into.
    pub(crate) targets: Targets,
    /// The requests in order, as indexes into `targets`: the warmup first.
    pub(crate) sequence: Vec<u32>,
    /// Requests at the start of `sequence` that are not measured.
    pub(crate) warmup: usize,
}

/// Limits that keep a run's memory sane: the sequence and the latencies take 4 bytes a
/// request each, a generated object 4 bytes.
pub(crate) const MAX_REQUESTS: u64 = 1 << 28;
pub(crate) const MAX_OBJECTS: u64 = 1 << 28;

impl Workload {
    /// Distinct targets among the measured requests.
    pub(crate) fn distinct_measured(&self) -> usize {
        let mut seen = vec![false; self.targets.len()];
        let mut n = 0;
        for &i in &self.sequence[self.warmup..] {
            if !std::mem::replace(&mut seen[i as usize], true) {
                n += 1;
            }
        }
        n
    }

    pub(crate) fn measured(&self) -> usize {
        self.sequence.len() - self.warmup
    }
}

/// The URL of object `id` on the built-in origin.
pub(crate) fn object_target(id: u64, size: u64) -> String {
    format!("/obj/{id}?size={size}")
}

impl ZipfSpec {
    pub(crate) fn generate(&self) -> Result<Workload, WorkloadError> {
        let bad = |m: &str| Err(WorkloadError(m.into()));
        if self.objects == 0 {
            return bad("--objects must be at least 1");
        }
        if !(self.alpha >= 0.0 && self.alpha.is_finite()) {
            return bad("--alpha must be 0 or more");
        }
        if self.size_mean == 0 || self.size_max < self.size_mean {
            return bad("--size-mean must be at least 1 byte and at most --size-max");
        }
        if self.size_dist == SizeDist::Pareto
            && self.size_shape.partial_cmp(&1.0) != Some(std::cmp::Ordering::Greater)
        {
            return bad("--size-shape must be above 1 (the mean is infinite otherwise)");
        }
        if !(0.0..=1.0).contains(&self.scan_at) {
            return bad("--scan-at must be between 0 and 1");
        }
        if self.size_max > super::origin::MAX_OBJECT {
            return bad("--size-max must be at most 256MiB (the built-in origin's largest object)");
        }
        let total = self.warmup + self.requests + u64::from(self.scan);
        if total > MAX_REQUESTS || u64::from(self.objects) + u64::from(self.scan) > MAX_OBJECTS {
            return bad(
                "the workload is too large: at most 2^28 requests (with --warmup and --scan) and \
                 2^28 objects (with --scan)",
            );
        }
        let targets = Targets::Objects(self.sizes());
        let mut rng = StdRng::seed_from_u64(self.seed);
        let zipf = Zipf::new(f64::from(self.objects), self.alpha)
            .map_err(|e| WorkloadError(format!("zipf: {e}")))?;
        let mut draw = || (zipf.sample(&mut rng) as u32).clamp(1, self.objects) - 1;
        let mut sequence = Vec::with_capacity(total as usize);
        sequence.extend((0..self.warmup).map(|_| draw()));
        let scan_start = (self.requests as f64 * self.scan_at) as u64;
        for i in 0..=self.requests {
            if i == scan_start {
                sequence.extend(self.objects..self.objects + self.scan);
            }
            if i < self.requests {
                sequence.push(draw());
            }
        }
        Ok(Workload {
            targets,
            sequence,
            warmup: self.warmup as usize,
        })
    }

    /// One size per object (the scan's objects last), from their own seeded stream so that
    /// changing the request count does not change the sizes.
    fn sizes(&self) -> Vec<u32> {
        let n = (self.objects + self.scan) as usize;
        // At most 256 MiB (checked): fits.
        let clamp = |s: u64| s.clamp(1, self.size_max) as u32;
        match self.size_dist {
            SizeDist::Fixed => vec![clamp(self.size_mean); n],
            SizeDist::Pareto => {
                let shape = self.size_shape;
                // Mean of Pareto(scale, shape) is scale * shape / (shape - 1).
                let scale = self.size_mean as f64 * (shape - 1.0) / shape;
                let dist = Pareto::new(scale.max(1.0), shape).expect("checked above");
                let mut rng = StdRng::seed_from_u64(self.seed ^ 0x5eed_5123);
                (0..n)
                    .map(|_| clamp(dist.sample(&mut rng) as u64))
                    .collect()
            }
        }
    }
}

/// Reads a trace: one request a line, as a path (`/a/b?c`), an absolute URL (its path and
/// query are used: every request goes to the bench's target, whatever host the line names), a
/// bare key with an optional size in bytes (`KEY [SIZE]`, requested from the built-in origin
/// as `/obj/KEY?size=SIZE`), or a common/combined access-log line (GET and HEAD requests; the
/// bench replays them as GET). Returns the workload and the number of lines it could not read
/// or replay.
pub(crate) fn from_trace(input: impl BufRead) -> std::io::Result<(Workload, u64)> {
    let mut index = std::collections::HashMap::<Box<str>, u32>::new();
    let mut targets = Vec::new();
    let mut sequence = Vec::new();
    let mut skipped = 0;
    for line in input.lines() {
        let line = line?;
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let Some(target) = trace_target(trimmed) else {
            skipped += 1;
            continue;
        };
        if sequence.len() as u64 >= MAX_REQUESTS {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "more than 2^28 requests in the trace",
            ));
        }
        let next = targets.len() as u32;
        let i = *index.entry(target.clone()).or_insert_with(|| {
            targets.push(target);
            next
        });
        sequence.push(i);
    }
    Ok((
        Workload {
            targets: Targets::List(targets),
            sequence,
            warmup: 0,
        },
        skipped,
    ))
}

fn trace_target(line: &str) -> Option<Box<str>> {
    if let Some(start) = line.find('"') {
        // `host - - [date] "GET /path HTTP/1.1" 200 123 ...`
        let rest = &line[start + 1..];
        let mut request = rest[..rest.find('"')?].split_whitespace();
        let (method, target) = (request.next()?, request.next()?);
        if method != "GET" && method != "HEAD" {
            return None;
        }
        return path_of(target);
    }
    let mut words = line.split_whitespace();
    let first = words.next()?;
    if let Some(p) = path_of(first) {
        return Some(p);
    }
    let key = percent_encoding::utf8_percent_encode(first, percent_encoding::NON_ALPHANUMERIC)
        .to_string();
    Some(
        match words.next() {
            Some(size) => format!("/obj/{key}?size={}", size.parse::<u64>().ok()?),
            None => format!("/obj/{key}"),
        }
        .into(),
    )
}

/// The path and query of a request target in origin form (`/a?b`) or absolute form
/// (`http://host/a?b`, `http://host?b` -> `/?b`).
fn path_of(target: &str) -> Option<Box<str>> {
    if target.starts_with('/') {
        return Some(target.into());
    }
    let rest = ["http://", "https://"]
        .iter()
        .find_map(|s| target.strip_prefix(s))?;
    Some(match rest.find(['/', '?']) {
        Some(i) if rest[i..].starts_with('/') => rest[i..].into(),
        Some(i) => format!("/{}", &rest[i..]).into(),
        None => "/".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ZipfSpec {
        ZipfSpec {
            objects: 1000,
            alpha: 0.9,
            requests: 20_000,
            warmup: 0,
            size_dist: SizeDist::Pareto,
            size_mean: 16 * 1024,
            size_max: 1 << 20,
            size_shape: 1.5,
            scan: 0,
            scan_at: 0.5,
            seed: 7,
        }
    }

    #[test]
    fn same_seed_same_sequence_other_seed_other_sequence() {
        let a = spec().generate().unwrap();
        let b = spec().generate().unwrap();
        assert_eq!(a.sequence, b.sequence);
        assert_eq!(a.targets, b.targets);
        let c = ZipfSpec { seed: 8, ..spec() }.generate().unwrap();
        assert_ne!(a.sequence, c.sequence);
    }

    #[test]
    fn popularity_follows_rank() {
        let w = spec().generate().unwrap();
        let mut counts = vec![0u32; 1000];
        for &i in &w.sequence {
            counts[i as usize] += 1;
        }
        // Zipf(0.9): the top object is asked ~10x as often as the 13th, ~500x the 1000th.
        assert!(
            counts[0] > counts[12] * 5,
            "{} vs {}",
            counts[0],
            counts[12]
        );
        assert!(counts[..10].iter().sum::<u32>() > counts[990..].iter().sum::<u32>() * 20);
        let uniform = ZipfSpec {
            alpha: 0.0,
            ..spec()
        }
        .generate()
        .unwrap();
        let top = uniform.sequence.iter().filter(|&&i| i == 0).count();
        assert!(
            top < 60,
            "uniform: object 0 drawn {top} times of 20000 over 1000"
        );
    }

    #[test]
    fn sizes_are_heavy_tailed_bounded_and_stable() {
        let w = spec().generate().unwrap();
        let sizes: Vec<u64> = (0..w.targets.len() as u32)
            .map(|i| {
                w.targets
                    .get(i)
                    .rsplit('=')
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap()
            })
            .collect();
        assert!(sizes.iter().all(|&s| (1..=1 << 20).contains(&s)));
        assert_eq!(w.targets.get(3), format!("/obj/3?size={}", sizes[3]));
        let mut sorted = sizes.clone();
        sorted.sort_unstable();
        let (median, p99) = (sorted[500], sorted[990]);
        assert!(p99 > median * 8, "median {median}, p99 {p99}");
        let mean = sizes.iter().sum::<u64>() / sizes.len() as u64;
        assert!((8 * 1024..=24 * 1024).contains(&mean), "mean {mean}");
        // More requests, same objects.
        let longer = ZipfSpec {
            requests: 50_000,
            ..spec()
        };
        assert_eq!(longer.generate().unwrap().targets, w.targets);
        let fixed = ZipfSpec {
            size_dist: SizeDist::Fixed,
            ..spec()
        };
        assert_eq!(
            fixed.generate().unwrap().targets,
            Targets::Objects(vec![16384; 1000])
        );
    }

    #[test]
    fn scan_is_one_run_of_new_objects_where_asked() {
        let s = ZipfSpec {
            scan: 300,
            scan_at: 0.25,
            warmup: 100,
            ..spec()
        };
        let w = s.generate().unwrap();
        assert_eq!(w.sequence.len(), 100 + 20_000 + 300);
        assert_eq!(w.warmup, 100);
        let start = 100 + 5000;
        let expected: Vec<u32> = (1000..1300).collect();
        assert_eq!(&w.sequence[start..start + 300], &expected[..]);
        assert!(
            w.sequence[..start]
                .iter()
                .chain(&w.sequence[start + 300..])
                .all(|&i| i < 1000)
        );
        assert_eq!(w.targets.len(), 1300);
    }

    #[test]
    fn bad_specs_say_which_flag() {
        for (s, flag) in [
            (
                ZipfSpec {
                    objects: 0,
                    ..spec()
                },
                "--objects",
            ),
            (
                ZipfSpec {
                    alpha: -1.0,
                    ..spec()
                },
                "--alpha",
            ),
            (
                ZipfSpec {
                    size_shape: 1.0,
                    ..spec()
                },
                "--size-shape",
            ),
            (
                ZipfSpec {
                    scan_at: 2.0,
                    ..spec()
                },
                "--scan-at",
            ),
            (
                ZipfSpec {
                    size_max: 10,
                    ..spec()
                },
                "--size-mean",
            ),
        ] {
            let e = s.generate().unwrap_err().to_string();
            assert!(e.contains(flag), "{e}");
        }
    }

    #[test]
    fn trace_lines_of_every_kind() {
        let text = "\
# comment
/a.css
/a.css
http://example.com/b?x=1 999
https://example.com
http://example.com?q=2
k1 2048
k 1 junk
weird key 12x
10.0.0.1 - - [25/Nov/2026:10:00:00 +0000] \"GET /c.js HTTP/1.1\" 200 512 \"-\" \"curl\"
10.0.0.1 - - [25/Nov/2026:10:00:01 +0000] \"POST /c.js HTTP/1.1\" 200 512 \"-\" \"curl\"
10.0.0.1 - - [25/Nov/2026:10:00:02 +0000] \"HEAD http://h.example/d HTTP/1.1\" 200 0

";
        let (w, skipped) = from_trace(text.as_bytes()).unwrap();
        let t: Vec<String> = (0..w.targets.len() as u32)
            .map(|i| w.targets.get(i).into_owned())
            .collect();
        assert_eq!(
            t,
            [
                "/a.css",
                "/b?x=1",
                "/",
                "/?q=2",
                "/obj/k1?size=2048",
                "/obj/k?size=1",
                "/c.js",
                "/d"
            ]
        );
        assert_eq!(w.sequence, [0, 0, 1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(
            skipped, 2,
            "`weird key 12x` has no valid size; POST is not replayed"
        );
    }
}
