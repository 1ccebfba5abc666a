//! What the edge counts: requests by site, status class and cache outcome, the bytes sent, the
//! origin's requests, errors and latency, purges and refusals; rendered as Prometheus text on
//! the admin API's `GET /metrics` and summed per site for `GET /stats`.
//!
//! The request path only adds to relaxed atomics in a per-thread shard (one cache line set a
//! thread, so two event loops never write the same line); the counters the exporter shows are
//! set from their sums when it is scraped. Latencies go straight into the exporter's
//! histograms, whose recording is an atomic append. The recorder is this edge's own, not the
//! process-global one: two edges in one process (the tests) count apart.

use crate::cache::status::{CacheStatus, Outcome};
use metrics::{Histogram, Key, Label, Recorder};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use std::sync::{
    Arc,
    atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed},
};

/// The cache outcomes counted apart, in the order of their counters: `X-Cache`'s words, and
/// `none` for a response the cache had no part in (a refusal, an error before the lookup).
pub(crate) const OUTCOMES: [&str; 7] = [
    "hit",
    "stale",
    "miss",
    "expired",
    "revalidated",
    "bypass",
    "none",
];
/// Status classes 1xx to 5xx.
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];
/// Shards of each site's counters: more than the threads that serve requests on most machines;
/// beyond, threads share shards (still correct, only more contended).
const SHARDS: usize = 16;

/// The counter index of an outcome.
pub(crate) fn outcome_index(cs: Option<&CacheStatus>) -> usize {
    match cs.map(|c| c.outcome) {
        Some(Outcome::Hit) => 0,
        Some(Outcome::Stale(_)) => 1,
        Some(Outcome::Miss(_) | Outcome::NotCached) => 2,
        Some(Outcome::Expired) => 3,
        Some(Outcome::Revalidated) => 4,
        Some(Outcome::Bypass(_)) => 5,
        None => 6,
    }
}

/// The counter index of a status: its class, 1xx to 5xx.
fn class_index(status: u16) -> usize {
    usize::from(status / 100).clamp(1, 5) - 1
}

/// The shard the current thread writes to, assigned round-robin on its first request.
fn shard_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SHARD: usize = NEXT.fetch_add(1, Relaxed) % SHARDS;
    }
    SHARD.with(|s| *s)
}

/// One thread's counters, on cache lines of their own.
#[repr(align(128))]
#[derive(Default)]
struct Shard {
    /// Responses by status class and outcome.
    requests: [[AtomicU64; OUTCOMES.len()]; CLASSES.len()],
    /// Body bytes sent, by outcome.
    bytes: [AtomicU64; OUTCOMES.len()],
    /// Requests sent to the origin (a fill, a pass, a refresh).
    origin_requests: AtomicU64,
    /// Of those, the ones that failed (no answer, a timeout) or answered 5xx.
    origin_errors: AtomicU64,
    /// Requests that read another request's fill rather than asking the origin themselves.
    coalesced: AtomicU64,
}

/// The sums of a site's counters.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Totals {
    /// Responses by status class and outcome.
    pub(crate) requests: [[u64; OUTCOMES.len()]; CLASSES.len()],
    /// Body bytes sent, by outcome.
    pub(crate) bytes: [u64; OUTCOMES.len()],
    /// Requests sent to the origin.
    pub(crate) origin_requests: u64,
    /// Of those, failed or answered 5xx.
    pub(crate) origin_errors: u64,
    /// Requests served from another request's fill.
    pub(crate) coalesced: u64,
}

impl Totals {
    /// Responses with this outcome, of any status.
    pub(crate) fn requests_with(&self, outcome: usize) -> u64 {
        self.requests.iter().map(|c| c[outcome]).sum()
    }

    /// All responses.
    pub(crate) fn requests(&self) -> u64 {
        self.requests.iter().flatten().sum()
    }

    /// Responses served from the store, fresh or stale.
    pub(crate) fn hits(&self) -> u64 {
        self.requests_with(0) + self.requests_with(1)
    }

    /// Responses the cache looked up: hits, misses, expired and revalidated copies
    /// (bypasses and refusals left out).
    pub(crate) fn lookups(&self) -> u64 {
        (0..=4).map(|o| self.requests_with(o)).sum()
    }

    /// Hits over lookups; `None` before the first lookup.
    pub(crate) fn hit_ratio(&self) -> Option<f64> {
        let looked_up = self.lookups();
        (looked_up > 0).then(|| self.hits() as f64 / looked_up as f64)
    }

    /// The same, in body bytes sent.
    pub(crate) fn byte_hit_ratio(&self) -> Option<f64> {
        let hits = self.bytes[0] + self.bytes[1];
        let looked_up = hits + self.bytes[2..=4].iter().sum::<u64>();
        (looked_up > 0).then(|| hits as f64 / looked_up as f64)
    }
}

/// One site's counters (also the data routes', and the requests no site took).
pub(crate) struct SiteStats {
    /// The site's name: the `site` label.
    pub(crate) name: Arc<str>,
    /// The counters, one shard a thread.
    shards: Box<[Shard]>,
    /// Time to the origin's response head (or the database's answer, for the data routes).
    latency: Histogram,
}

impl SiteStats {
    /// Counts one response: its status, what the cache did and the body bytes it promised
    /// (those of a body of unknown length are added by [`SiteStats::add_bytes`] once sent).
    pub(crate) fn record(&self, status: u16, cache: Option<&CacheStatus>, bytes: u64) {
        let shard = &self.shards[shard_index()];
        let outcome = outcome_index(cache);
        shard.requests[class_index(status)][outcome].fetch_add(1, Relaxed);
        if bytes > 0 {
            shard.bytes[outcome].fetch_add(bytes, Relaxed);
        }
        if cache.is_some_and(|c| c.collapsed) {
            shard.coalesced.fetch_add(1, Relaxed);
        }
    }

    /// Counts body bytes sent after the response was counted, `outcome` its
    /// [`outcome_index`].
    pub(crate) fn add_bytes(&self, outcome: usize, bytes: u64) {
        self.shards[shard_index()].bytes[outcome].fetch_add(bytes, Relaxed);
    }

    /// Counts one request to the origin: whether it failed (no answer or a 5xx) and how long
    /// its head took.
    pub(crate) fn origin(&self, failed: bool, seconds: f64) {
        let shard = &self.shards[shard_index()];
        shard.origin_requests.fetch_add(1, Relaxed);
        if failed {
            shard.origin_errors.fetch_add(1, Relaxed);
        }
        self.latency.record(seconds);
    }

    /// Records a latency alone (a database query of the data routes).
    pub(crate) fn latency(&self, seconds: f64) {
        self.latency.record(seconds);
    }

    /// The sums over every shard.
    pub(crate) fn totals(&self) -> Totals {
        let mut t = Totals::default();
        for s in &self.shards {
            for (c, row) in s.requests.iter().enumerate() {
                for (o, n) in row.iter().enumerate() {
                    t.requests[c][o] += n.load(Relaxed);
                }
            }
            for (o, n) in s.bytes.iter().enumerate() {
                t.bytes[o] += n.load(Relaxed);
            }
            t.origin_requests += s.origin_requests.load(Relaxed);
            t.origin_errors += s.origin_errors.load(Relaxed);
            t.coalesced += s.coalesced.load(Relaxed);
        }
        t
    }
}

/// Counts of the edge as a whole.
#[derive(Default)]
pub(crate) struct EdgeCounts {
    /// Purges by kind: url, prefix, tag (admin API) and the PURGE method.
    pub(crate) purges: [AtomicU64; 4],
    /// Stored objects those purges removed or marked stale.
    pub(crate) purged_objects: AtomicU64,
    /// TLS handshakes on the TLS listener: completed, failed (a client that does not trust the
    /// certificate, no common version or cipher, not TLS at all), timed out
    /// (`server.tls_handshake_timeout`).
    pub(crate) tls_handshakes: [AtomicU64; 3],
}

/// What became of TLS handshakes, in the order of [`EdgeCounts::tls_handshakes`].
#[derive(Debug, Clone, Copy)]
pub(crate) enum Handshake {
    Done = 0,
    Failed = 1,
    TimedOut = 2,
}

impl EdgeCounts {
    /// Counts a handshake that ended as `how`.
    pub(crate) fn handshake(&self, how: Handshake) {
        self.tls_handshakes[how as usize].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Handshakes that ended as `how` since start.
    pub(crate) fn handshakes(&self, how: Handshake) -> u64 {
        self.tls_handshakes[how as usize].load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// The kinds of purge, in the order of [`EdgeCounts::purges`].
pub(crate) const PURGE_KINDS: [&str; 4] = ["url", "prefix", "tag", "method"];

/// The edge's metrics: its own Prometheus recorder, the sites' counters and the edge's.
pub struct Metrics {
    /// Where the exporter's metrics are registered.
    recorder: PrometheusRecorder,
    /// Renders what the recorder holds.
    handle: PrometheusHandle,
    /// Counters of every site ever configured, by name: a reload keeps a site's counts.
    sites: std::sync::Mutex<Vec<Arc<SiteStats>>>,
    /// Requests no site took (no Host, an unknown one, a bad path): site `-`.
    pub(crate) unmatched: Arc<SiteStats>,
    /// Requests to the data routes; their latency is the database's.
    pub(crate) data: Arc<SiteStats>,
    /// Purges.
    pub(crate) counts: EdgeCounts,
    /// The last purges, for the status page.
    recent_purges: std::sync::Mutex<std::collections::VecDeque<PurgeRecord>>,
    /// When counting began.
    started: tokio::time::Instant,
    /// The last 15 minutes of totals, a sample every [`SAMPLE_EVERY`].
    history: std::sync::Mutex<std::collections::VecDeque<Sample>>,
    /// The most requested URLs.
    pub(crate) top_urls: TopUrls,
}

/// How many recent purges are kept.
const RECENT_PURGES: usize = 20;

/// One purge, as the status page lists it.
#[derive(Debug, Clone)]
pub(crate) struct PurgeRecord {
    /// When it was done.
    pub(crate) at: std::time::SystemTime,
    /// url, prefix, tag or method.
    pub(crate) kind: &'static str,
    /// The URL, prefix or tag (cut at 512 characters).
    pub(crate) what: String,
    /// Marked stale rather than removed.
    pub(crate) soft: bool,
    /// Stored objects it took.
    pub(crate) objects: usize,
}

/// Histogram buckets of origin and database latency, in seconds.
const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets(&LATENCY_BUCKETS)
            .expect("the buckets are not empty")
            .build_recorder();
        let handle = recorder.handle();
        let stats = |name: &str, latency: Histogram| {
            Arc::new(SiteStats {
                name: Arc::from(name),
                shards: (0..SHARDS).map(|_| Shard::default()).collect(),
                latency,
            })
        };
        // Requests no site took never reach an origin.
        let unmatched = stats("-", Histogram::noop());
        let data = stats(
            "",
            histogram_of(&recorder, "edgecache_aside_query_seconds", ""),
        );
        Self {
            recorder,
            handle,
            sites: std::sync::Mutex::new(Vec::new()),
            unmatched,
            data,
            counts: EdgeCounts::default(),
            recent_purges: std::sync::Mutex::default(),
            started: tokio::time::Instant::now(),
            history: std::sync::Mutex::default(),
            top_urls: TopUrls::new(),
        }
    }

    /// The counters of the site called `name`: the same ones every time it is asked for, so a
    /// reloaded site keeps counting where it was.
    pub(crate) fn site(&self, name: &str) -> Arc<SiteStats> {
        let mut sites = self.sites.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = sites.iter().find(|s| &*s.name == name) {
            return s.clone();
        }
        let s = Arc::new(SiteStats {
            name: Arc::from(name),
            shards: (0..SHARDS).map(|_| Shard::default()).collect(),
            latency: histogram_of(&self.recorder, "edgecache_origin_seconds", name),
        });
        sites.push(s.clone());
        s
    }

    /// Every site's counters, in the order they were first configured.
    pub(crate) fn sites(&self) -> Vec<Arc<SiteStats>> {
        self.sites.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Counts a purge of `kind` (an index of [`PURGE_KINDS`]) of `what` (the URL, prefix or
    /// tag) that took `objects`, and keeps it among the recent ones.
    pub(crate) fn purged(
        &self,
        kind: usize,
        what: &str,
        soft: bool,
        objects: usize,
        now: std::time::SystemTime,
    ) {
        self.counts.purges[kind].fetch_add(1, Relaxed);
        self.counts
            .purged_objects
            .fetch_add(objects as u64, Relaxed);
        let mut recent = self.recent_purges.lock().unwrap_or_else(|p| p.into_inner());
        if recent.len() == RECENT_PURGES {
            recent.pop_front();
        }
        recent.push_back(PurgeRecord {
            at: now,
            kind: PURGE_KINDS[kind],
            what: what.chars().take(512).collect(),
            soft,
            objects,
        });
    }

    /// The recent purges, oldest first.
    pub(crate) fn recent_purges(&self) -> Vec<PurgeRecord> {
        let recent = self.recent_purges.lock().unwrap_or_else(|p| p.into_inner());
        recent.iter().cloned().collect()
    }

    /// How long this edge has been counting.
    pub(crate) fn uptime(&self) -> std::time::Duration {
        self.started.elapsed()
    }

    /// Every [`SAMPLE_EVERY`]: keeps the histograms' pending samples from piling up between
    /// scrapes (the exporter folds them in at each render; nobody may scrape), and samples
    /// the totals into the history.
    pub(crate) fn upkeep(&self, now: std::time::SystemTime) {
        self.handle.run_upkeep();
        let mut sample = Sample {
            at: now
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            requests: 0,
            lookups: 0,
            hits: 0,
            bytes: 0,
        };
        for s in self.sites().iter().chain([&self.unmatched, &self.data]) {
            let t = s.totals();
            sample.requests += t.requests();
            sample.hits += t.hits();
            sample.lookups += t.lookups();
            sample.bytes += t.bytes.iter().sum::<u64>();
        }
        let mut h = self.history.lock().unwrap_or_else(|p| p.into_inner());
        if h.len() == HISTORY {
            h.pop_front();
        }
        h.push_back(sample);
    }

    /// The samples of the last 15 minutes, oldest first.
    pub(crate) fn history(&self) -> Vec<Sample> {
        let h = self.history.lock().unwrap_or_else(|p| p.into_inner());
        h.iter().copied().collect()
    }

    /// Prometheus text of everything: the counters set from their sums, then `gauges` and
    /// `counters` (the store's and the fills', read by the caller) set, then the recorder
    /// rendered.
    pub(crate) fn render(
        &self,
        gauges: &[(&'static str, f64)],
        counters: &[(&'static str, u64)],
    ) -> String {
        let r = &self.recorder;
        for s in self.sites().iter().chain([&self.unmatched]) {
            set_site(r, "edgecache_requests_total", s, true);
        }
        set_site(r, "edgecache_aside_requests_total", &self.data, false);
        for (kind, n) in PURGE_KINDS.iter().zip(&self.counts.purges) {
            let key = Key::from_parts("edgecache_purges_total", vec![Label::new("kind", *kind)]);
            counter(r, key, n.load(Relaxed));
        }
        let objects = self.counts.purged_objects.load(Relaxed);
        counter(r, Key::from_name("edgecache_purged_objects_total"), objects);
        for (name, v) in gauges {
            gauge(r, Key::from_name(*name), *v);
        }
        for (name, v) in counters {
            counter(r, Key::from_name(*name), *v);
        }
        self.handle.render()
    }
}

/// Sets the exporter's counters of one site from its sums; `site` says whether they carry a
/// `site` label (the data routes' do not).
fn set_site(r: &PrometheusRecorder, name: &'static str, s: &SiteStats, site: bool) {
    let t = s.totals();
    let labels = |extra: Vec<Label>| {
        let mut l = Vec::with_capacity(extra.len() + 1);
        if site {
            l.push(Label::new("site", s.name.to_string()));
        }
        l.extend(extra);
        l
    };
    for (c, class) in CLASSES.iter().enumerate() {
        for (o, outcome) in OUTCOMES.iter().enumerate() {
            let n = t.requests[c][o];
            if n > 0 {
                let l = labels(vec![
                    Label::new("status", *class),
                    Label::new("cache", *outcome),
                ]);
                counter(r, Key::from_parts(name, l), n);
            }
        }
    }
    let bytes_name = if site {
        "edgecache_response_bytes_total"
    } else {
        "edgecache_aside_response_bytes_total"
    };
    for (o, outcome) in OUTCOMES.iter().enumerate() {
        if t.bytes[o] > 0 {
            let l = labels(vec![Label::new("cache", *outcome)]);
            counter(r, Key::from_parts(bytes_name, l), t.bytes[o]);
        }
    }
    if !site {
        return;
    }
    if t.requests() == 0 && t.origin_requests == 0 {
        return;
    }
    for (metric, n) in [
        ("edgecache_origin_requests_total", t.origin_requests),
        ("edgecache_origin_errors_total", t.origin_errors),
        ("edgecache_coalesced_total", t.coalesced),
    ] {
        counter(r, Key::from_parts(metric, labels(Vec::new())), n);
    }
    for (metric, v) in [
        ("edgecache_hit_ratio", t.hit_ratio()),
        ("edgecache_byte_hit_ratio", t.byte_hit_ratio()),
    ] {
        if let Some(v) = v {
            gauge(r, Key::from_parts(metric, labels(Vec::new())), v);
        }
    }
}

/// The metadata of every metric registered here.
fn metadata() -> metrics::Metadata<'static> {
    metrics::Metadata::new("edgecache", metrics::Level::INFO, Some(module_path!()))
}

fn counter(r: &PrometheusRecorder, key: Key, value: u64) {
    r.register_counter(&key, &metadata()).absolute(value);
}

fn gauge(r: &PrometheusRecorder, key: Key, value: f64) {
    r.register_gauge(&key, &metadata()).set(value);
}

/// The latency histogram `name` of site `site` (no label when empty).
fn histogram_of(r: &PrometheusRecorder, name: &'static str, site: &str) -> Histogram {
    let labels = if site.is_empty() {
        Vec::new()
    } else {
        vec![Label::new("site", site.to_string())]
    };
    r.register_histogram(&Key::from_parts(name, labels), &metadata())
}

/// One sample of the edge's totals, taken every [`SAMPLE_EVERY`]: the status page's chart
/// diffs consecutive ones.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sample {
    /// Seconds since the Unix epoch.
    pub(crate) at: u64,
    /// Responses of every site so far.
    pub(crate) requests: u64,
    /// Of those, the cache's lookups, and their hits (see [`Totals::hit_ratio`]).
    pub(crate) lookups: u64,
    /// Hits so far.
    pub(crate) hits: u64,
    /// Body bytes sent so far.
    pub(crate) bytes: u64,
}

/// How often the history is sampled, and how many samples it keeps (15 minutes).
pub(crate) const SAMPLE_EVERY: std::time::Duration = std::time::Duration::from_secs(5);
const HISTORY: usize = 180;

/// The most requested URLs, approximately: a sample of the requests (one in [`TOP_SAMPLE`] of
/// each thread's) counted by the space-saving algorithm in [`TOP_URLS`] slots, so that
/// the request path pays for it on few requests and the table never grows.
pub(crate) struct TopUrls {
    /// URL -> (sampled requests, sampled bytes).
    slots: std::sync::Mutex<HashMap<Box<str>, (u64, u64)>>,
}

/// Slots of [`TopUrls`].
const TOP_URLS: usize = 128;
/// One request in this many is counted.
pub(crate) const TOP_SAMPLE: u32 = 8;

use std::collections::HashMap;

impl TopUrls {
    fn new() -> Self {
        Self {
            slots: std::sync::Mutex::new(HashMap::with_capacity(TOP_URLS + 1)),
        }
    }

    /// Whether this thread's current request is one of the sample.
    pub(crate) fn sampled() -> bool {
        thread_local! {
            static COUNT: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
        }
        COUNT.with(|c| {
            let n = c.get().wrapping_add(1);
            c.set(n);
            n % TOP_SAMPLE == 0
        })
    }

    /// Counts a sampled request of `url` that sent `bytes`.
    pub(crate) fn count(&self, url: &str, bytes: u64) {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = slots.get_mut(url) {
            e.0 += 1;
            e.1 += bytes;
            return;
        }
        // Space-saving: a new URL takes the least counted slot, and its counts, as the upper
        // bound of what it may have had.
        let mut start = (1, bytes);
        if slots.len() >= TOP_URLS
            && let Some(min) = slots
                .iter()
                .min_by_key(|(_, v)| v.0)
                .map(|(k, _)| k.clone())
        {
            let old = slots.remove(&min).unwrap_or_default();
            start = (old.0 + 1, old.1 + bytes);
        }
        slots.insert(url.into(), start);
    }

    /// The `n` URLs with the most requests, and the `n` with the most bytes, scaled back to
    /// estimates of all requests.
    pub(crate) fn top(&self, n: usize) -> (Vec<TopUrl>, Vec<TopUrl>) {
        let slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let scale = u64::from(TOP_SAMPLE);
        let mut all: Vec<TopUrl> = slots
            .iter()
            .map(|(k, v)| TopUrl {
                url: k.to_string(),
                requests: v.0 * scale,
                bytes: v.1 * scale,
            })
            .collect();
        drop(slots);
        all.sort_by(|a, b| b.requests.cmp(&a.requests).then_with(|| a.url.cmp(&b.url)));
        let by_requests = all.iter().take(n).cloned().collect();
        all.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.url.cmp(&b.url)));
        all.truncate(n);
        (by_requests, all)
    }
}

/// One of the top URLs, with estimates of its requests and bytes.
#[derive(Debug, Clone)]
pub(crate) struct TopUrl {
    /// Host and target.
    pub(crate) url: String,
    /// Requests, estimated from the sample.
    pub(crate) requests: u64,
    /// Body bytes sent, estimated from the sample.
    pub(crate) bytes: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::status::MissReason;

    #[test]
    fn ratios_count_lookups_only() {
        let m = Metrics::new();
        let s = m.site("www");
        let hit = CacheStatus::new(Outcome::Hit);
        let miss = CacheStatus::new(Outcome::Miss(MissReason::Uri));
        let pass = CacheStatus::new(Outcome::Bypass("method"));
        s.record(200, Some(&hit), 300);
        s.record(200, Some(&hit), 300);
        s.record(200, Some(&hit), 300);
        s.record(200, Some(&miss), 900);
        s.record(200, Some(&pass), 5000);
        s.record(404, None, 10);
        let t = s.totals();
        assert_eq!(t.requests(), 6);
        assert_eq!(t.hit_ratio(), Some(0.75));
        assert_eq!(t.byte_hit_ratio(), Some(0.5));
        assert!(
            Arc::ptr_eq(&s, &m.site("www")),
            "one set of counters a name"
        );
        let text = m.render(&[("edgecache_store_entries", 3.0)], &[]);
        for line in [
            "edgecache_requests_total{site=\"www\",status=\"2xx\",cache=\"hit\"} 3",
            "edgecache_requests_total{site=\"www\",status=\"4xx\",cache=\"none\"} 1",
            "edgecache_response_bytes_total{site=\"www\",cache=\"miss\"} 900",
            "edgecache_hit_ratio{site=\"www\"} 0.75",
            "edgecache_store_entries 3",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
    }

    #[test]
    fn counts_from_many_threads_add_up() {
        let m = Arc::new(Metrics::new());
        let s = m.site("www");
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for _ in 0..1000 {
                        s.record(200, None, 1);
                    }
                });
            }
        });
        assert_eq!(s.totals().requests(), 4000);
        assert_eq!(s.totals().bytes[6], 4000);
    }

    #[test]
    fn the_heavy_urls_stay_on_top_whatever_else_passes() {
        let top = TopUrls::new();
        // Two heavy URLs among many that come once each: more than the table's slots.
        for i in 0..2000 {
            top.count("h/heavy", 10);
            if i % 2 == 0 {
                top.count("h/big", 10_000);
            }
            top.count(&format!("h/once-{i}"), 1);
        }
        let (by_requests, by_bytes) = top.top(2);
        assert_eq!(by_requests[0].url, "h/heavy");
        assert_eq!(by_requests[1].url, "h/big");
        assert_eq!(by_bytes[0].url, "h/big");
        assert!(top.slots.lock().unwrap().len() <= TOP_URLS);
    }
}
