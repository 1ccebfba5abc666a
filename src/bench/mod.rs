//! `edgecache bench`: drives an HTTP cache (ours or any other) with a realistic workload and
//! reports hit ratios, throughput and latency. It can run its own origin (`--serve-origin`), and
//! sweep cache sizes by starting one edgecache per size in this process (`--sweep-memory`).
//!
//! Layout: `workload` makes the request sequence, `origin` is the built-in origin, `load` sends
//! the requests and tallies the answers, `verdict` reads hit/miss from the headers, and
//! [`report`] turns tallies into the table, the chart and the `--json` records.
// A measuring tool: it reads the wall clock on purpose (see `.clippy.toml`).
#![allow(clippy::disallowed_methods)]

pub(crate) mod load;
pub(crate) mod origin;
pub mod report;
pub(crate) mod verdict;
pub(crate) mod workload;

use crate::{
    app::App,
    config::{ByteSize, Config, Overrides},
};
use indicatif::{ProgressBar, ProgressStyle};
use load::LoadOptions;
use origin::BenchOrigin;
use report::{BenchReport, RunReport, WorkloadInfo};
use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};
use workload::{SizeDist, Workload, ZipfSpec};

/// The command line of `edgecache bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Drive this cache (edgecache, nginx, Varnish, a CDN), e.g. http://127.0.0.1:8080.
    #[arg(long, value_name = "URL", conflicts_with = "sweep_memory")]
    pub(crate) url: Option<String>,
    /// Start one edgecache per size in this process, in front of the built-in origin, and run
    /// the same workload on each (e.g. 16MiB,64MiB,256MiB).
    #[arg(long, value_delimiter = ',', value_name = "SIZES")]
    pub(crate) sweep_memory: Vec<ByteSize>,
    /// Base configuration for the edges `--sweep-memory` starts (its sites are replaced).
    #[arg(long, value_name = "FILE", requires = "sweep_memory")]
    pub(crate) edge_config: Option<PathBuf>,
    /// Run the built-in origin (`/obj/{id}?size=N`). Alone, it serves until Ctrl-C.
    #[arg(long)]
    pub(crate) serve_origin: bool,
    /// Where the built-in origin listens [default: 127.0.0.1:9000; with --sweep-memory, any
    /// free port].
    #[arg(long, value_name = "ADDR")]
    pub(crate) origin_listen: Option<SocketAddr>,
    /// Cache-Control of the built-in origin's answers.
    #[arg(long, value_name = "VALUE", default_value = "public, max-age=3600")]
    pub cache_control: String,

    /// Replay this trace instead of generating: one request a line (a path, a URL, `KEY
    /// [SIZE]` for the built-in origin, or a common/combined log line).
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with_all = ["objects", "alpha", "requests", "size_dist", "size_mean", "size_max", "size_shape", "scan", "scan_at", "seed"]
    )]
    pub(crate) trace: Option<PathBuf>,
    /// Distinct objects the Zipf draws come from.
    #[arg(long, default_value_t = 10_000)]
    pub(crate) objects: u32,
    /// Zipf exponent: 0 uniform, 0.6-1.0 typical of web traffic.
    #[arg(long, default_value_t = 0.8)]
    pub(crate) alpha: f64,
    /// Measured requests (a scan, if any, comes on top).
    #[arg(long, default_value_t = 100_000)]
    pub(crate) requests: u64,
    /// Requests sent first and left out of the figures (a trace: its first lines).
    #[arg(long, default_value_t = 0)]
    pub(crate) warmup: u64,
    /// Size distribution of the objects.
    #[arg(long, value_enum, default_value = "pareto")]
    pub(crate) size_dist: SizeDist,
    /// Mean object size (every object's size with `--size-dist fixed`).
    #[arg(long, default_value = "16KiB", value_name = "SIZE")]
    pub(crate) size_mean: ByteSize,
    /// Largest object size: drawn sizes are clamped to it (at most 256MiB).
    #[arg(long, default_value = "4MiB", value_name = "SIZE")]
    pub(crate) size_max: ByteSize,
    /// Pareto tail index (above 1; smaller means heavier tail).
    #[arg(long, default_value_t = 1.5)]
    pub(crate) size_shape: f64,
    /// A one-time scan of this many new objects, each requested once, in a row.
    #[arg(long, default_value_t = 0)]
    pub(crate) scan: u32,
    /// Where the scan starts, as a fraction of the measured requests.
    #[arg(long, default_value_t = 0.5)]
    pub(crate) scan_at: f64,
    /// Makes the workload repeatable.
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,

    /// Requests in flight at once.
    #[arg(long, default_value_t = 32)]
    pub(crate) concurrency: usize,
    /// Send this Host header (for an edge that selects sites by Host).
    #[arg(long)]
    pub(crate) host: Option<String>,
    /// Per-request timeout, in seconds; a request over it counts as an error.
    #[arg(long, default_value_t = 30)]
    pub(crate) timeout: u64,
    /// One JSON document (workload + one record per run) instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// What can stop a bench before it measures anything.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Workload(#[from] workload::WorkloadError),
    #[error("cannot read the trace {path}: {source}")]
    Trace {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("built-in origin on {addr}: {source}")]
    Origin {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("edge for max_memory {size}: {reason}")]
    Edge { size: ByteSize, reason: String },
    #[error("http client: {0}")]
    Client(#[from] reqwest::Error),
}

/// What the command does.
pub enum Plan {
    /// Only the built-in origin, until the process is stopped.
    ServeOrigin,
    /// Measure one cache, or several sizes of ours.
    Measure(Box<Bench>),
}

/// A measurement, ready to run.
pub struct Bench {
    /// The request sequence, the same for every run.
    pub(crate) workload: Arc<Workload>,
    /// What the workload is, for the report.
    pub(crate) info: WorkloadInfo,
    /// How the requests are sent: concurrency, Host, timeout.
    pub(crate) load: LoadOptions,
    /// What the runs drive: a cache at `--url`, or an edge per `--sweep-memory` size.
    pub(crate) target: Target,
    /// The built-in origin's address and Cache-Control, when it runs.
    pub(crate) origin: Option<(SocketAddr, String)>,
    /// Draw a progress bar on stderr (off for `--json` and in tests, whose output is parsed).
    pub progress: bool,
}

pub(crate) enum Target {
    Url(String),
    Sweep {
        sizes: Vec<ByteSize>,
        base: Box<Config>,
    },
}

impl BenchArgs {
    /// Checks the arguments and builds the workload.
    pub fn plan(&self) -> Result<Plan, BenchError> {
        let Some(target) = self.target()? else {
            return Ok(Plan::ServeOrigin);
        };
        if self.concurrency == 0 || self.timeout == 0 {
            return Err(BenchError::Usage(
                "--concurrency and --timeout must be at least 1".into(),
            ));
        }
        let (workload, info) = self.workload()?;
        let sweep = matches!(target, Target::Sweep { .. });
        let origin = (self.serve_origin || sweep).then(|| {
            let any = SocketAddr::from(([127, 0, 0, 1], if sweep { 0 } else { 9000 }));
            (
                self.origin_listen.unwrap_or(any),
                self.cache_control.clone(),
            )
        });
        Ok(Plan::Measure(Box::new(Bench {
            workload: Arc::new(workload),
            info,
            load: LoadOptions {
                concurrency: self.concurrency,
                host: self.host.clone(),
                timeout: Duration::from_secs(self.timeout),
            },
            target,
            origin,
            progress: true,
        })))
    }

    /// What the run drives: a cache at `--url`, or edges it starts itself (`--sweep-memory`);
    /// `None` for `--serve-origin` alone. Every sweep size's edge config is checked here.
    fn target(&self) -> Result<Option<Target>, BenchError> {
        let target = match (&self.url, self.sweep_memory.is_empty()) {
            (Some(u), _) => {
                let parsed = reqwest::Url::parse(u)
                    .ok()
                    .filter(|p| p.scheme() == "http" || p.scheme() == "https");
                if parsed.is_none() {
                    return Err(BenchError::Usage(format!(
                        "--url {u}: not an http:// or https:// URL"
                    )));
                }
                Target::Url(u.clone())
            }
            (None, false) => {
                let mut base = match &self.edge_config {
                    Some(p) => Config::load(p).map_err(|e| BenchError::Usage(e.to_string()))?,
                    None => Config::default(),
                };
                // One largest-cacheable-object size for every edge (by default it scales with
                // max_memory), so that only the memory differs between runs; and every size
                // checked before the first run starts.
                let smallest = self
                    .sweep_memory
                    .iter()
                    .min()
                    .copied()
                    .unwrap_or(ByteSize(0));
                base.cache.max_object_size = Some(
                    base.cache
                        .max_object_size
                        .unwrap_or_else(|| sweep_config(&base, smallest).cache.object_limit()),
                );
                for &size in &self.sweep_memory {
                    let cfg = sweep_config(&base, size);
                    cfg.apply(&Overrides::default(), || PathBuf::from("static"))
                        .map_err(|e| BenchError::Edge {
                            size,
                            reason: e.to_string(),
                        })?;
                }
                Target::Sweep {
                    sizes: self.sweep_memory.clone(),
                    base: Box::new(base),
                }
            }
            (None, true) if self.serve_origin => return Ok(None),
            (None, true) => {
                return Err(BenchError::Usage(
                    "give --url (a cache to drive), --sweep-memory (edges started here) or \
                     --serve-origin (only the origin)"
                        .into(),
                ));
            }
        };
        Ok(Some(target))
    }

    /// The requests to send: a trace's, or a generated Zipf workload.
    fn workload(&self) -> Result<(Workload, WorkloadInfo), BenchError> {
        Ok(match &self.trace {
            Some(path) => {
                let file = std::fs::File::open(path).map_err(|source| BenchError::Trace {
                    path: path.clone(),
                    source,
                })?;
                let (mut w, skipped) = workload::from_trace(std::io::BufReader::new(file))
                    .map_err(|source| BenchError::Trace {
                        path: path.clone(),
                        source,
                    })?;
                if w.sequence.is_empty() {
                    return Err(BenchError::Usage(format!(
                        "{}: no request in the trace",
                        path.display()
                    )));
                }
                w.warmup = (self.warmup as usize).min(w.sequence.len() - 1);
                let info = WorkloadInfo::trace(path, &w, skipped, self.concurrency);
                (w, info)
            }
            None => {
                let spec = ZipfSpec {
                    objects: self.objects,
                    alpha: self.alpha,
                    requests: self.requests,
                    warmup: self.warmup,
                    size_dist: self.size_dist,
                    size_mean: self.size_mean.0,
                    size_max: self.size_max.0,
                    size_shape: self.size_shape,
                    scan: self.scan,
                    scan_at: self.scan_at,
                    seed: self.seed,
                };
                let w = spec.generate()?;
                let info = WorkloadInfo::zipf(spec, &w, self.concurrency);
                (w, info)
            }
        })
    }

    /// Starts the built-in origin for `Plan::ServeOrigin`.
    pub async fn serve_origin(&self) -> Result<BenchOrigin, BenchError> {
        let listen = self
            .origin_listen
            .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 9000)));
        start_origin(listen, &self.cache_control).await
    }
}

/// The base config with one sweep size in place.
fn sweep_config(base: &Config, size: ByteSize) -> Config {
    let mut cfg = base.clone();
    cfg.cache.max_memory = size;
    cfg.sites = vec![crate::config::SiteConfig::any_host_upstream(
        "http://127.0.0.1:9",
    )];
    cfg
}

async fn start_origin(addr: SocketAddr, cache_control: &str) -> Result<BenchOrigin, BenchError> {
    BenchOrigin::start(addr, cache_control)
        .await
        .map_err(|source| BenchError::Origin { addr, source })
}

impl Bench {
    /// Runs every measurement in turn.
    pub async fn run(self) -> Result<BenchReport, BenchError> {
        let origin = match &self.origin {
            Some((addr, cc)) => Some(start_origin(*addr, cc).await?),
            None => None,
        };
        let origin = origin.as_ref();
        if let (Some(o), Target::Url(_)) = (origin, &self.target) {
            eprintln!("bench: built-in origin on {}", o.url());
        }
        let mut runs = Vec::new();
        match &self.target {
            Target::Url(url) => runs.push(self.measure(url, None, origin).await?),
            Target::Sweep { sizes, base } => {
                let origin = origin.expect("a sweep always runs the origin");
                for &size in sizes {
                    let edge = SweepEdge::start(base, &origin.url(), size).await?;
                    // The run's client (and its idle connections) is gone before the edge
                    // drains, so the drain does not wait for them.
                    let run = self.measure(&edge.url, Some(size), Some(origin)).await;
                    edge.stop().await;
                    let run = run?;
                    runs.push(run);
                }
            }
        }
        Ok(BenchReport {
            workload: self.info.clone(),
            runs,
        })
    }

    async fn measure(
        &self,
        url: &str,
        size: Option<ByteSize>,
        origin: Option<&BenchOrigin>,
    ) -> Result<RunReport, BenchError> {
        let client = &load::client(&self.load)?;
        let w = &self.workload;
        let pb = if self.progress {
            progress(
                w.sequence.len() as u64,
                &size.map_or(url.into(), |s| s.to_string()),
            )
        } else {
            ProgressBar::hidden()
        };
        if w.warmup > 0 {
            load::run(client, url, w, 0..w.warmup, &self.load, &pb).await;
        }
        let before = origin.map(BenchOrigin::counts);
        let tally = load::run(client, url, w, w.warmup..w.sequence.len(), &self.load, &pb).await;
        let after = origin.map(BenchOrigin::counts);
        pb.finish_and_clear();
        let origin_delta = before.zip(after).map(|(b, a)| origin::OriginCounts {
            requests: a.requests - b.requests,
            not_modified: a.not_modified - b.not_modified,
            bytes: a.bytes - b.bytes,
        });
        Ok(RunReport::new(url, size, tally, origin_delta))
    }
}

fn progress(len: u64, label: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    if let Ok(style) =
        ProgressStyle::with_template("{msg:>12} [{bar:40}] {pos}/{len} {per_sec} eta {eta}")
    {
        pb.set_style(style.progress_chars("=> "));
    }
    pb.set_message(label.to_string());
    pb
}

/// An edge started for one size of a sweep.
struct SweepEdge {
    /// Where the edge listens, for the run to drive.
    url: String,
    /// Starts the edge's drain.
    stop: tokio::sync::oneshot::Sender<()>,
    /// The serving task, awaited so that the next size starts once this edge is gone.
    task: tokio::task::JoinHandle<()>,
}

impl SweepEdge {
    async fn start(base: &Config, origin: &str, size: ByteSize) -> Result<SweepEdge, BenchError> {
        let fail = |reason: String| BenchError::Edge { size, reason };
        let overrides = Overrides {
            listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            origin: Some(origin.into()),
            max_memory: Some(size),
            ..Overrides::default()
        };
        let mut cfg = base
            .clone()
            .apply(&overrides, || PathBuf::from("static"))
            .map_err(|e| fail(e.to_string()))?;
        cfg.log.access_log = false;
        let app = App::build(&cfg).await.map_err(|e| fail(e.to_string()))?;
        let listener = tokio::net::TcpListener::bind(cfg.server.listen)
            .await
            .map_err(|e| fail(e.to_string()))?;
        let url = format!(
            "http://{}",
            listener.local_addr().map_err(|e| fail(e.to_string()))?
        );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            app.serve(listener, &cfg, async {
                let _ = stopped.await;
            })
            .await;
        });
        Ok(SweepEdge { url, stop, task })
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}
