//! The results of `edgecache bench`: the `--json` schema, the table and the terminal chart.
//! Field names in [`BenchReport`] are a stable interface for scripts.

use super::{
    load::Tally,
    origin::OriginCounts,
    workload::{Workload, ZipfSpec},
};
use crate::config::ByteSize;
use serde::Serialize;
use std::fmt::Write as _;

#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// What was asked for, so a saved report says how its numbers came about.
    pub workload: WorkloadInfo,
    /// One entry per edge measured: one for `--url`, one per memory size in a sweep.
    pub runs: Vec<RunReport>,
}

/// What was asked for.
#[derive(Debug, Clone, Serialize)]
pub struct WorkloadInfo {
    /// `zipf` or `trace`.
    pub kind: &'static str,
    /// Measured requests per run (warmup excluded, scan included).
    pub requests: u64,
    /// Requests sent before measuring, to fill the cache; not in any figure.
    pub warmup: u64,
    /// Distinct URLs among the measured requests.
    pub distinct_targets: u64,
    /// Requests in flight at once (`--concurrency`).
    pub(crate) concurrency: usize,
    /// The generator's parameters, for `zipf`.
    pub(crate) zipf: Option<ZipfSpec>,
    /// The file, for `trace`.
    pub(crate) trace: Option<String>,
    /// Trace lines that were not a request.
    pub skipped_lines: u64,
}

impl WorkloadInfo {
    pub(crate) fn zipf(spec: ZipfSpec, w: &Workload, concurrency: usize) -> Self {
        Self {
            zipf: Some(spec),
            ..Self::of("zipf", w, concurrency)
        }
    }

    pub(crate) fn trace(
        path: &std::path::Path,
        w: &Workload,
        skipped: u64,
        concurrency: usize,
    ) -> Self {
        Self {
            trace: Some(path.display().to_string()),
            skipped_lines: skipped,
            ..Self::of("trace", w, concurrency)
        }
    }

    /// What every kind reports: the sequence's counts.
    fn of(kind: &'static str, w: &Workload, concurrency: usize) -> Self {
        Self {
            kind,
            requests: w.measured() as u64,
            warmup: w.warmup as u64,
            distinct_targets: w.distinct_measured() as u64,
            concurrency,
            zipf: None,
            trace: None,
            skipped_lines: 0,
        }
    }
}

/// One measured run: one cache, or one size of a sweep.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// The URL driven.
    pub target: String,
    /// The edge's memory budget, in a sweep.
    pub max_memory_bytes: Option<u64>,
    /// Requests sent while measuring.
    pub requests: u64,
    /// Transport failures, timeouts, 4xx and 5xx answers (not in the ratios).
    pub errors: u64,
    /// By the response headers (`Cache-Status`, `X-Cache`, `X-Cache-Status`).
    pub hits: u64,
    /// By the same headers: answers that came from the origin.
    pub misses: u64,
    /// Misses that joined another request's origin fetch (RFC 9211 `collapsed`).
    pub collapsed: u64,
    /// Answers without a header saying hit or miss.
    pub unknown: u64,
    /// hits / (hits + misses); null when no answer said either.
    pub object_hit_ratio: Option<f64>,
    /// Body bytes of hits / body bytes of hits and misses; null likewise.
    pub byte_hit_ratio: Option<f64>,
    /// Body bytes of every answer that was not an error.
    pub bytes: u64,
    /// Of which, body bytes of hits.
    pub hit_bytes: u64,
    /// Requests the built-in origin received during the run (when it served), refused ones
    /// included.
    pub origin_requests: Option<u64>,
    /// Of which conditional requests answered 304.
    pub origin_not_modified: Option<u64>,
    /// 1 - origin requests / answered requests: the hit ratio as the origin saw it. Below the
    /// header figure when the cache revalidates; negative if the origin got more requests than
    /// the bench sent (something else is using it).
    pub origin_hit_ratio: Option<f64>,
    /// Do the headers and the origin agree (misses that did not join another's fetch ==
    /// origin requests)? Null without the built-in origin.
    pub origin_agrees: Option<bool>,
    /// Wall time of the measured requests.
    pub(crate) seconds: f64,
    /// Answered (non-error) requests per second.
    pub requests_per_sec: f64,
    /// Time to the whole response, per request, in milliseconds.
    pub latency_ms: Latency,
    /// The first error seen, as an example.
    pub first_error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// One request in ten is slower.
    pub(crate) p90: f64,
    /// The tail a user meets once in a hundred requests.
    pub p99: f64,
    /// The tail one request in a thousand meets.
    pub(crate) p99_9: f64,
    /// The slowest request seen.
    pub max: f64,
}

fn ratio(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

impl RunReport {
    pub(crate) fn new(
        target: &str,
        size: Option<ByteSize>,
        mut t: Tally,
        origin: Option<OriginCounts>,
    ) -> Self {
        let answered = t.requests - t.errors;
        let seconds = t.elapsed.as_secs_f64();
        Self {
            target: target.to_string(),
            max_memory_bytes: size.map(|s| s.0),
            requests: t.requests,
            errors: t.errors,
            hits: t.hits,
            misses: t.misses,
            collapsed: t.collapsed,
            unknown: t.unknown,
            object_hit_ratio: ratio(t.hits, t.hits + t.misses),
            byte_hit_ratio: ratio(t.hit_bytes, t.bytes - t.unknown_bytes),
            bytes: t.bytes,
            hit_bytes: t.hit_bytes,
            origin_requests: origin.map(|o| o.requests),
            origin_not_modified: origin.map(|o| o.not_modified),
            origin_hit_ratio: origin
                .and_then(|o| ratio(o.requests, answered))
                .map(|r| 1.0 - r),
            origin_agrees: origin.map(|o| o.requests == t.misses - t.collapsed),
            seconds,
            requests_per_sec: if seconds > 0.0 {
                answered as f64 / seconds
            } else {
                0.0
            },
            latency_ms: Latency {
                p50: t.percentile_ms(0.5),
                p90: t.percentile_ms(0.9),
                p99: t.percentile_ms(0.99),
                p99_9: t.percentile_ms(0.999),
                max: t.percentile_ms(1.0),
            },
            first_error: t.first_error.take(),
        }
    }

    fn label(&self) -> String {
        match self.max_memory_bytes {
            Some(b) => ByteSize(b).to_string(),
            None => self.target.clone(),
        }
    }
}

/// The human-readable table, one line per run.
pub fn table(report: &BenchReport) -> String {
    let mut s = String::new();
    let w = &report.workload;
    let _ = writeln!(
        s,
        "{} workload: {} measured requests over {} distinct URLs, {} warmup, concurrency {}",
        w.kind, w.requests, w.distinct_targets, w.warmup, w.concurrency
    );
    let first = if report.runs.iter().any(|r| r.max_memory_bytes.is_some()) {
        "max_memory"
    } else {
        "target"
    };
    let width = report
        .runs
        .iter()
        .map(|r| r.label().len())
        .chain([first.len()])
        .max()
        .unwrap_or(10);
    let _ = writeln!(
        s,
        "{first:<width$}  {:>9} {:>6} {:>7} {:>8} {:>11} {:>9} {:>8} {:>8} {:>8} {:>8}",
        "requests",
        "errors",
        "obj hit",
        "byte hit",
        "origin reqs",
        "req/s",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "p99.9 ms"
    );
    let fmt_ratio = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.3}"));
    for r in &report.runs {
        let origin = r
            .origin_requests
            .map_or_else(|| "-".to_string(), |n| n.to_string());
        let l = &r.latency_ms;
        let _ = writeln!(
            s,
            "{:<width$}  {:>9} {:>6} {:>7} {:>8} {:>11} {:>9.0} {:>8.2} {:>8.2} {:>8.2} {:>8.2}",
            r.label(),
            r.requests,
            r.errors,
            fmt_ratio(r.object_hit_ratio),
            fmt_ratio(r.byte_hit_ratio),
            origin,
            r.requests_per_sec,
            l.p50,
            l.p90,
            l.p99,
            l.p99_9
        );
        if r.unknown > 0 {
            let _ = writeln!(
                s,
                "{:width$}  note: {} answers said neither hit nor miss",
                "", r.unknown
            );
        }
        if r.origin_agrees == Some(false) {
            let _ = writeln!(
                s,
                "{:width$}  note: the origin counted {} requests, the headers {} misses ({} \
                 collapsed): is the cache in front of this origin, and only this bench using it?",
                "",
                r.origin_requests.unwrap_or(0),
                r.misses,
                r.collapsed
            );
        }
        if let Some(e) = &r.first_error {
            let _ = writeln!(s, "{:width$}  first error: {e}", "");
        }
    }
    s
}

/// Hit ratios as horizontal bars, one pair per run (object `#`, byte `=`); ASCII so that it
/// survives any terminal and log file.
pub fn chart(report: &BenchReport) -> String {
    const WIDTH: f64 = 50.0;
    let mut s = String::new();
    let width = report
        .runs
        .iter()
        .map(|r| r.label().len())
        .max()
        .unwrap_or(0);
    let _ = writeln!(s, "hit ratio   # object   = byte");
    for r in &report.runs {
        for (i, (v, c)) in [(r.object_hit_ratio, '#'), (r.byte_hit_ratio, '=')]
            .into_iter()
            .enumerate()
        {
            let label = if i == 0 { r.label() } else { String::new() };
            let Some(v) = v else {
                let _ = writeln!(s, "{label:>width$} |{:<50}| -", "");
                continue;
            };
            let n = (v.clamp(0.0, 1.0) * WIDTH).round() as usize;
            let bar: String = std::iter::repeat_n(c, n).collect();
            let _ = writeln!(s, "{label:>width$} |{bar:<50}| {v:.3}");
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn run(size: u64, hits: u64, hit_bytes: u64) -> RunReport {
        let t = Tally {
            requests: 100,
            hits,
            misses: 100 - hits,
            bytes: 1000,
            hit_bytes,
            latencies_us: vec![1000; 100],
            elapsed: Duration::from_secs(2),
            ..Tally::default()
        };
        RunReport::new(
            "http://e",
            Some(ByteSize(size)),
            t,
            Some(OriginCounts {
                requests: 100 - hits,
                not_modified: 0,
                bytes: 0,
            }),
        )
    }

    #[test]
    fn ratios_rates_and_chart() {
        let r = run(1 << 20, 40, 250);
        assert_eq!(r.object_hit_ratio, Some(0.4));
        assert_eq!(r.byte_hit_ratio, Some(0.25));
        assert_eq!(r.origin_hit_ratio, Some(0.4));
        assert_eq!(r.origin_agrees, Some(true));
        assert_eq!(r.requests_per_sec, 50.0);
        assert_eq!(r.latency_ms.p99, 1.0);
        let report = BenchReport {
            workload: WorkloadInfo {
                kind: "zipf",
                requests: 100,
                warmup: 0,
                distinct_targets: 10,
                concurrency: 1,
                zipf: None,
                trace: None,
                skipped_lines: 0,
            },
            runs: vec![r, run(16 << 20, 80, 1000)],
        };
        let chart = chart(&report);
        let lines: Vec<&str> = chart.lines().collect();
        assert_eq!(lines.len(), 5, "{chart}");
        assert!(
            lines[1].starts_with(" 1MiB |") && lines[1].ends_with("| 0.400"),
            "{chart}"
        );
        assert_eq!(lines[1].matches('#').count(), 20);
        assert_eq!(
            lines[2].matches('=').count(),
            13,
            "0.25 x 50 = 12.5 rounds to 13"
        );
        assert_eq!(lines[4].matches('=').count(), 50);
        let table = table(&report);
        assert!(table.contains("max_memory"), "{table}");
        assert!(table.lines().nth(2).unwrap().contains("0.400"), "{table}");
    }

    #[test]
    fn unclassified_answers_and_errors_stay_out_of_the_ratios() {
        let t = Tally {
            requests: 10,
            errors: 4,
            hits: 1,
            misses: 1,
            unknown: 4,
            bytes: 600,
            hit_bytes: 100,
            unknown_bytes: 400,
            elapsed: Duration::from_secs(1),
            ..Tally::default()
        };
        let r = RunReport::new("http://e", None, t, Some(OriginCounts::default()));
        assert_eq!(r.object_hit_ratio, Some(0.5));
        assert_eq!(r.byte_hit_ratio, Some(0.5));
        assert_eq!(r.requests_per_sec, 6.0, "errors are not throughput");
        assert_eq!(r.origin_agrees, Some(false), "one miss, no origin request");
        let none = RunReport::new(
            "http://e",
            None,
            Tally {
                requests: 3,
                unknown: 3,
                ..Tally::default()
            },
            None,
        );
        assert_eq!((none.object_hit_ratio, none.byte_hit_ratio), (None, None));
        assert_eq!(none.origin_agrees, None);
    }
}
