//! The composition root: builds the clock, the store, the sites and their origins and the data
//! layer from a validated [`Config`], and runs the server.

use crate::{
    cache::{
        Store, StoreConfig,
        fill::{Fills, InflightBudget},
    },
    clock::Clock,
    config::{Config, SiteConfig, read_ca_file},
    origin::{
        Dns, Hickory, Origin, Pool, PoolSettings, SetupError, StaticDir, TtlBounds, names_a_host,
    },
    proxy::{
        Edge, LiveEdge, Settings,
        site::{Site, Sites},
    },
    server,
    telemetry::metrics::Metrics,
};
use std::{future::Future, sync::Arc};
use tokio::net::TcpListener;

/// A config that validated but cannot be brought up (an origin client, a directory, the
/// database), naming the part at fault.
#[derive(Debug, thiserror::Error)]
#[error("{part}: {reason}")]
pub struct BuildError {
    /// What could not be brought up (`site \`name\``, `data`): the message's first half.
    pub(crate) part: String,
    /// Why, in the words of the error that stopped it.
    pub(crate) reason: String,
}

/// The running parts of an edge.
pub struct App {
    /// The request path's state as configured now (sites, data routes, settings, over the
    /// store and fills every config shares): what `server` serves.
    live: Arc<LiveEdge>,
    /// What a reload keeps.
    shared: Arc<Shared>,
    /// The config it was built from, which a reload compares the new one with.
    config: Config,
}

/// The origin a site names: an upstream HTTP server (one connection pool per event loop) or a
/// local directory.
async fn origin_of(
    site: &SiteConfig,
    cfg: &Config,
    clock: &Clock,
    dns: Option<&Dns>,
) -> Result<Origin, SetupError> {
    let servers = site.servers();
    match &site.root {
        None if !servers.is_empty() => {
            let roots = site
                .origin_ca_file
                .as_deref()
                .map(read_ca_file)
                .transpose()
                .map_err(SetupError::CaFile)?
                .map(Arc::from);
            let settings = PoolSettings {
                balance: site.balance,
                health_check: site.health_check.as_ref(),
                eject_after: site.eject_after,
                eject_for: site.eject_for.0,
                queue_timeout: site.queue_timeout.0,
                retry_budget: site.retry_budget,
                retry_non_idempotent: site.retry_non_idempotent,
                host: site.origin_host.as_deref(),
                sni: site.origin_sni.as_deref(),
                roots,
            };
            let pool = Pool::new(
                &servers,
                settings,
                &cfg.origin,
                cfg.server.threads,
                clock.clone(),
                dns.cloned(),
            )
            .await?;
            Ok(Origin::Upstream(pool))
        }
        Some(root) => Ok(Origin::Static(
            StaticDir::new(root.clone(), &site.cache_rules).map_err(|source| SetupError::Root {
                path: root.clone(),
                source,
            })?,
        )),
        None => Err(SetupError::Missing),
    }
}

/// Folds the metrics' pending latency samples in every few seconds, whether or not anyone
/// scrapes them; ends with the edge.
fn spawn_upkeep(metrics: &Arc<Metrics>, clock: Clock) {
    let metrics = Arc::downgrade(metrics);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(crate::telemetry::metrics::SAMPLE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(m) = metrics.upgrade() else { return };
            m.upkeep(clock.now());
        }
    });
}

/// What outlives a reload: the store and everything counted or in flight.
struct Shared {
    clock: Clock,
    store: Store,
    metrics: Arc<Metrics>,
    fills: Arc<Fills<crate::proxy::FillMeta>>,
    budget: Arc<InflightBudget>,
    doorkeeper: Arc<crate::cache::admission::Doorkeeper>,
    access_counts: Arc<crate::proxy::admission::AccessCounts>,
    /// `[admin] allow` / `deny`, which a reload changes too.
    admin_acl: Arc<arc_swap::ArcSwap<crate::proxy::admission::Acl>>,
    /// The sites' certificates the TLS listener's handshakes pick from; a reload replaces the
    /// map (renewed certificates), connections already up keep theirs.
    certs: Arc<server::tls::Certs>,
}

/// The reloadable part of an edge built from `cfg` over `shared`. `old` is the edge it
/// replaces, if any: its database is kept when `[database]` did not change.
async fn build_edge(
    cfg: &Config,
    shared: &Shared,
    old: Option<(&Edge, &Config)>,
) -> Result<Edge, BuildError> {
    // One resolver of origin names for every site, set up only if some server is named by
    // host name: a config of addresses alone reads no resolver configuration.
    let named = cfg
        .sites
        .iter()
        .flat_map(SiteConfig::servers)
        .any(|s| names_a_host(&s.url));
    let dns = if named {
        Some(Dns {
            resolver: Arc::new(Hickory::new(&cfg.origin.name_servers()).map_err(|e| {
                BuildError {
                    part: "origin.resolver".into(),
                    reason: SetupError::Resolver(e).to_string(),
                }
            })?),
            bounds: TtlBounds {
                min: cfg.origin.dns_min_ttl.0,
                max: cfg.origin.dns_max_ttl.0,
            },
        })
    } else {
        None
    };
    let metrics = &shared.metrics;
    let mut sites = Vec::with_capacity(cfg.sites.len());
    for s in &cfg.sites {
        let origin = origin_of(s, cfg, &shared.clock, dns.as_ref())
            .await
            .map_err(|e| BuildError {
                part: format!("site `{}`", s.name),
                reason: e.to_string(),
            })?;
        sites.push(Site::new(s, origin, metrics.site(&s.name), &shared.clock));
    }
    let reuse = old
        .filter(|(_, old_cfg)| same(&old_cfg.database, &cfg.database))
        .and_then(|(e, _)| e.data.as_ref())
        .map(|d| d.database().clone());
    let data = crate::data::build(cfg, &shared.store, shared.budget.clone(), reuse)
        .await
        .map_err(|e| BuildError {
            part: "data".into(),
            reason: e.to_string(),
        })?;
    let data = data.map(|d| Arc::new(d.with_latency(metrics.data.clone())));
    Ok(Edge {
        sites: Sites::new(sites),
        data,
        metrics: metrics.clone(),
        store: shared.store.clone(),
        fills: shared.fills.clone(),
        doorkeeper: shared.doorkeeper.clone(),
        settings: Settings::new(cfg),
        access_counts: shared.access_counts.clone(),
    })
}

/// Do two parts of a config say the same? (Compared as printed: every part prints all of its
/// fields, and none needs an equality of its own only for this.)
fn same<T: std::fmt::Debug>(a: &T, b: &T) -> bool {
    format!("{a:?}") == format!("{b:?}")
}

/// How a key of the config prints, for comparing two configs' values of it.
type ShowKey = fn(&Config) -> String;

/// `(section.key, how it prints)` for each key named.
macro_rules! keys {
    ($($section:ident . $key:ident),* $(,)?) => {
        &[$((
            concat!(stringify!($section), ".", stringify!($key)),
            |c: &Config| format!("{:?}", c.$section.$key),
        )),*]
    };
}

/// The keys a reload cannot change in a running process (listeners, threads, the store's
/// size, the log's sink), each with how to print it for [`same`].
const RESTART_ONLY: &[(&str, ShowKey)] = keys![
    server.listen,
    server.listen_tls,
    server.max_tls_handshakes,
    server.tls_handshake_timeout,
    server.http2_max_concurrent_streams,
    server.http2_max_pending_accept_reset_streams,
    server.http2_max_local_error_reset_streams,
    server.threads,
    server.max_connections,
    server.max_header_bytes,
    server.max_headers,
    server.header_read_timeout,
    server.send_timeout,
    server.min_send_rate,
    server.min_send_rate_window,
    server.max_send_buffers,
    server.drain_timeout,
    admin.listen,
    admin.token,
    cache.max_memory,
    cache.max_object_size,
    cache.max_inflight,
    cache.max_variants,
    cache.keep,
    log.format,
    log.file,
];

/// Reads and validates the config file at `path` (its data routes compiled too): what
/// `check-config` runs, start-up and every reload. The error is the one line check-config
/// prints, `FILE: invalid: why`.
pub fn check_config(path: &std::path::Path) -> Result<Config, String> {
    Config::load(path)
        .and_then(|c| {
            crate::data::compile_routes(&c)
                .map_err(|e| crate::config::ConfigError::Parse(e.to_string()))
                .map(|_| c)
        })
        .map_err(|e| format!("{}: invalid: {e}", path.display()))
}

/// What a reload did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Reloaded {
    /// Sites now served.
    pub sites: usize,
    /// Data routes now served.
    pub routes: usize,
    /// Keys the new file changes that take effect only on a restart (the old values stay).
    pub restart_needed: Vec<&'static str>,
}

/// Where a reload reads its config from: the file the edge started with, the command line's
/// overrides applied again; its error is what `check-config` prints for the file.
pub type ConfigSource = Box<dyn Fn() -> Result<Config, String> + Send + Sync>;

/// Re-reads the config and swaps a new edge in (SIGHUP, `POST /reload`). One reload at a time.
pub struct Reloader {
    live: Arc<LiveEdge>,
    shared: Arc<Shared>,
    source: ConfigSource,
    /// The config being served, and the lock that makes reloads take turns.
    current: tokio::sync::Mutex<Config>,
}

impl Reloader {
    /// Reads the config again and serves it, or says why not (and the old one goes on).
    /// Requests in flight finish on the config they started with; the cache is kept.
    pub async fn reload(&self) -> Result<Reloaded, String> {
        let mut current = self.current.lock().await;
        let mut cfg = (self.source)()?;
        let restart_needed: Vec<&'static str> = RESTART_ONLY
            .iter()
            .filter(|(_, show)| show(&current) != show(&cfg))
            .map(|(key, _)| *key)
            .collect();
        // What cannot change now stays as it runs: the file's new value waits for a restart.
        cfg.server.threads = current.server.threads;
        let old = self.live.load();
        let certs = server::tls::CertMap::from_config(&cfg)?;
        let edge = build_edge(&cfg, &self.shared, Some((&old, &current)))
            .await
            .map_err(|e| e.to_string())?;
        let reloaded = Reloaded {
            sites: edge.sites.iter().count(),
            routes: cfg.routes.len(),
            restart_needed,
        };
        self.live.replace(Arc::new(edge));
        self.shared.certs.replace(certs);
        self.shared
            .admin_acl
            .store(Arc::new(crate::proxy::admission::Acl::new(
                cfg.admin.allow.clone(),
                cfg.admin.deny.clone(),
            )));
        *current = cfg;
        Ok(reloaded)
    }
}

impl App {
    /// An edge on the wall clock.
    pub async fn build(cfg: &Config) -> Result<Self, BuildError> {
        Self::build_with_clock(cfg, Clock::wall()).await
    }

    /// An edge whose caching decisions read `clock` (tests move it ahead instead of sleeping).
    pub async fn build_with_clock(cfg: &Config, clock: Clock) -> Result<Self, BuildError> {
        let metrics = Arc::new(Metrics::new());
        let store = Store::new(
            StoreConfig {
                max_memory: cfg.cache.max_memory.0,
                max_inflight: cfg.cache.inflight_limit().0,
                max_object_size: cfg.cache.object_limit().0,
                max_variants: cfg.cache.max_variants,
                keep: cfg.cache.keep.0,
            },
            clock.clone(),
        );
        let budget = Arc::new(InflightBudget::new(cfg.cache.inflight_limit().0));
        let certs = server::tls::CertMap::from_config(cfg).map_err(|reason| BuildError {
            part: "tls".into(),
            reason,
        })?;
        let shared = Shared {
            clock: clock.clone(),
            store,
            metrics,
            fills: Arc::new(Fills::new(budget.clone())),
            budget,
            // Sized at first for the objects of 16 KiB the budget could hold; it grows with the
            // store. Seeded at random, as the store's maps are: which keys share bits is not
            // for clients to know.
            doorkeeper: Arc::new(crate::cache::admission::Doorkeeper::new(
                cfg.cache.max_memory.0 / 16384,
                rand::random(),
            )),
            access_counts: Arc::default(),
            admin_acl: Arc::new(arc_swap::ArcSwap::from_pointee(
                crate::proxy::admission::Acl::new(cfg.admin.allow.clone(), cfg.admin.deny.clone()),
            )),
            certs: Arc::new(server::tls::Certs::new(certs)),
        };
        let edge = build_edge(cfg, &shared, None).await?;
        spawn_upkeep(&shared.metrics, clock);
        Ok(Self {
            live: Arc::new(LiveEdge::new(Arc::new(edge))),
            shared: Arc::new(shared),
            config: cfg.clone(),
        })
    }

    /// The edge being served now.
    pub fn edge(&self) -> Arc<Edge> {
        self.live.load()
    }

    /// The edge as reloads change it.
    pub fn live(&self) -> Arc<LiveEdge> {
        self.live.clone()
    }

    /// What reloads this edge from `source` (the config file it started with).
    pub fn reloader(&self, source: ConfigSource) -> Arc<Reloader> {
        Arc::new(Reloader {
            live: self.live.clone(),
            shared: self.shared.clone(),
            source,
            current: tokio::sync::Mutex::new(self.config.clone()),
        })
    }

    /// What the admin API needs: the edge, the token it asks for, and who may ask.
    pub fn admin_state(&self, cfg: &Config) -> crate::admin::AdminState {
        crate::admin::AdminState::new(self.live.clone(), cfg.admin.token.as_deref())
            .with_shared_acl(self.shared.admin_acl.clone())
    }

    /// Serves until `shutdown` completes, then drains.
    pub async fn serve(
        self,
        listener: TcpListener,
        cfg: &Config,
        shutdown: impl Future<Output = ()>,
    ) {
        // Without a TLS listener nothing here can fail.
        let _ = self.serve_tls(listener, None, cfg, shutdown).await;
    }

    /// Serves plain HTTP on `listener` and, given `tls_listener` (bound to
    /// `server.listen_tls`), HTTPS beside it, until `shutdown` completes, then drains both.
    /// Errs at once if the TLS listener cannot be set up.
    pub async fn serve_tls(
        self,
        listener: TcpListener,
        tls_listener: Option<TcpListener>,
        cfg: &Config,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<()> {
        let certs = self.shared.certs.clone();
        let tls = tls_listener.map(|l| (l, certs));
        server::serve(listener, tls, self.live, &cfg.server, shutdown).await
    }

    /// Serves on one event loop per listener (see [`server::bind`]), each on its own thread,
    /// until [`server::Loops::shutdown`].
    /// `tls_listeners`, from [`server::bind`] of `server.listen_tls` (as many, or none),
    /// serve HTTPS beside them, one per loop.
    pub fn start_loops(
        self,
        listeners: Vec<std::net::TcpListener>,
        tls_listeners: Option<Vec<std::net::TcpListener>>,
        cfg: &Config,
    ) -> std::io::Result<server::Loops> {
        let tls = tls_listeners.map(|ls| (ls, self.shared.certs.clone()));
        server::Loops::start(listeners, tls, self.live, &cfg.server)
    }
}
