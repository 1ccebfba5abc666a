//! Drives a workload against one base URL with a fixed number of concurrent connections, and
//! tallies what came back: hits and misses by header, bytes, errors, per-request latency.

use super::{
    verdict::{Verdict, classify},
    workload::Workload,
};
use indicatif::ProgressBar;
use std::{
    ops::Range,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

/// How the load is sent.
#[derive(Debug, Clone)]
pub(crate) struct LoadOptions {
    /// Requests in flight at once (one connection each).
    pub(crate) concurrency: usize,
    /// `Host` to send instead of the URL's.
    pub(crate) host: Option<String>,
    /// A request taking longer (head and body) counts as an error.
    pub(crate) timeout: Duration,
}

/// What one phase of requests saw.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    /// Requests sent, errors included.
    pub(crate) requests: u64,
    /// Answers whose headers said hit.
    pub(crate) hits: u64,
    /// Answers whose headers said miss: the origin was asked.
    pub(crate) misses: u64,
    /// Of the misses, those that joined another request's origin fetch.
    pub(crate) collapsed: u64,
    /// Answers whose headers said neither.
    pub(crate) unknown: u64,
    /// Transport failures, timeouts, 4xx and 5xx answers.
    pub(crate) errors: u64,
    /// Body bytes of the answers counted (not of errors).
    pub(crate) bytes: u64,
    /// Body bytes of hits: with `bytes` and `unknown_bytes`, the byte hit ratio.
    pub(crate) hit_bytes: u64,
    /// Body bytes of answers that said neither hit nor miss.
    pub(crate) unknown_bytes: u64,
    /// Per request (errors too), head sent to last body byte or failure, in microseconds.
    pub(crate) latencies_us: Vec<u32>,
    /// The first error's text, which the report shows as an example.
    pub(crate) first_error: Option<String>,
    /// Wall time of the phase, for requests per second.
    pub(crate) elapsed: Duration,
}

impl Tally {
    fn merge(&mut self, o: Tally) {
        self.requests += o.requests;
        self.hits += o.hits;
        self.misses += o.misses;
        self.collapsed += o.collapsed;
        self.unknown += o.unknown;
        self.errors += o.errors;
        self.bytes += o.bytes;
        self.hit_bytes += o.hit_bytes;
        self.unknown_bytes += o.unknown_bytes;
        self.latencies_us.extend(o.latencies_us);
        if self.first_error.is_none() {
            self.first_error = o.first_error;
        }
    }

    fn error(&mut self, e: String) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(e);
        }
    }

    /// Nearest-rank percentile of the latencies, in milliseconds (`p` in 0..=1).
    pub(crate) fn percentile_ms(&mut self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        if !self.latencies_us.is_sorted() {
            self.latencies_us.sort_unstable();
        }
        let n = self.latencies_us.len();
        let rank = ((p * n as f64).ceil() as usize).clamp(1, n);
        f64::from(self.latencies_us[rank - 1]) / 1000.0
    }
}

/// A client for load: no proxy from the environment, no redirects followed, no decompression.
pub(crate) fn client(opts: &LoadOptions) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(opts.concurrency)
        .timeout(opts.timeout)
        .tcp_nodelay(true)
        .build()
}

/// Sends the requests `range` of the workload's sequence to `base` (e.g. `http://127.0.0.1:8080`),
/// `opts.concurrency` at a time, advancing `progress` once per request.
pub(crate) async fn run(
    client: &reqwest::Client,
    base: &str,
    workload: &Arc<Workload>,
    range: Range<usize>,
    opts: &LoadOptions,
    progress: &ProgressBar,
) -> Tally {
    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(range.start));
    let base: Arc<str> = base.trim_end_matches('/').into();
    let workers: Vec<_> = (0..opts.concurrency.max(1))
        .map(|_| {
            let (client, base, workload, next) =
                (client.clone(), base.clone(), workload.clone(), next.clone());
            let (end, host, progress) = (range.end, opts.host.clone(), progress.clone());
            tokio::spawn(async move {
                let mut t = Tally::default();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= end {
                        break t;
                    }
                    let target = workload.targets.get(workload.sequence[i]);
                    one(&client, &base, &target, host.as_deref(), &mut t).await;
                    progress.inc(1);
                }
            })
        })
        .collect();
    let mut total = Tally::default();
    for w in workers {
        match w.await {
            Ok(t) => total.merge(t),
            Err(e) => total.error(format!("load worker failed: {e}")),
        }
    }
    total.elapsed = started.elapsed();
    total
}

async fn one(
    client: &reqwest::Client,
    base: &str,
    target: &str,
    host: Option<&str>,
    t: &mut Tally,
) {
    t.requests += 1;
    let started = Instant::now();
    let outcome = fetch(client, base, target, host).await;
    // Failures count in the latencies too (a timeout at its full length), or p99 would look
    // better the more requests time out.
    t.latencies_us
        .push(u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX));
    let (verdict, bytes) = match outcome {
        Ok(ok) => ok,
        Err(e) => return t.error(format!("{target}: {e}")),
    };
    t.bytes += bytes;
    match verdict {
        Verdict::Hit => {
            t.hits += 1;
            t.hit_bytes += bytes;
        }
        Verdict::Miss { collapsed } => {
            t.misses += 1;
            t.collapsed += u64::from(collapsed);
        }
        Verdict::Unknown => {
            t.unknown += 1;
            t.unknown_bytes += bytes;
        }
    }
}

/// One request: what the cache said and the body length, or why it failed (a 4xx or 5xx
/// answer included: the workload asks only for objects that exist).
async fn fetch(
    client: &reqwest::Client,
    base: &str,
    target: &str,
    host: Option<&str>,
) -> Result<(Verdict, u64), String> {
    let mut req = client.get(format!("{base}{target}"));
    if let Some(h) = host {
        req = req.header(http::header::HOST, h);
    }
    let mut res = req.send().await.map_err(|e| e.to_string())?;
    let verdict = classify(res.headers());
    let status = res.status();
    let mut bytes = 0u64;
    while let Some(c) = res.chunk().await.map_err(|e| format!("body: {e}"))? {
        bytes += c.len() as u64;
    }
    if status.is_client_error() || status.is_server_error() {
        return Err(status.to_string());
    }
    Ok((verdict, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut t = Tally {
            latencies_us: (1..=1000).rev().map(|i| i * 1000).collect(),
            ..Tally::default()
        };
        assert_eq!(t.percentile_ms(0.5), 500.0);
        assert_eq!(t.percentile_ms(0.99), 990.0);
        assert_eq!(t.percentile_ms(0.999), 999.0);
        assert_eq!(t.percentile_ms(1.0), 1000.0);
        assert_eq!(Tally::default().percentile_ms(0.5), 0.0);
    }
}
