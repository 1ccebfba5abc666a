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
        Edge, Settings,
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
    /// The request path's shared state: sites, store, fills, data routes; what `server` serves.
    pub edge: Arc<Edge>,
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

impl App {
    /// An edge on the wall clock.
    pub async fn build(cfg: &Config) -> Result<Self, BuildError> {
        Self::build_with_clock(cfg, Clock::wall()).await
    }

    /// An edge whose caching decisions read `clock` (tests move it ahead instead of sleeping).
    pub async fn build_with_clock(cfg: &Config, clock: Clock) -> Result<Self, BuildError> {
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
        let metrics = Arc::new(Metrics::new());
        let mut sites = Vec::with_capacity(cfg.sites.len());
        for s in &cfg.sites {
            let origin = origin_of(s, cfg, &clock, dns.as_ref())
                .await
                .map_err(|e| BuildError {
                    part: format!("site `{}`", s.name),
                    reason: e.to_string(),
                })?;
            sites.push(Site::new(s, origin, metrics.site(&s.name), &clock));
        }
        let store = Store::new(
            StoreConfig {
                max_memory: cfg.cache.max_memory.0,
                max_object_size: cfg.cache.object_limit().0,
                max_variants: cfg.cache.max_variants,
                keep: cfg.cache.keep.0,
            },
            clock,
        );
        let budget = Arc::new(InflightBudget::new(cfg.cache.inflight_limit().0));
        let data = crate::data::build(cfg, &store, budget.clone())
            .await
            .map_err(|e| BuildError {
                part: "data".into(),
                reason: e.to_string(),
            })?;
        let data = data.map(|d| Arc::new(d.with_latency(metrics.data.clone())));
        spawn_upkeep(&metrics, store.clock().clone());
        let edge = Arc::new(Edge {
            sites: Sites::new(sites),
            data,
            metrics,
            store,
            fills: Arc::new(Fills::new(budget)),
            settings: Settings::new(cfg),
            access_counts: Default::default(),
        });
        Ok(Self { edge })
    }

    /// What the admin API needs: the edge, and the token it asks for.
    pub fn admin_state(&self, cfg: &Config) -> crate::admin::AdminState {
        crate::admin::AdminState::new(self.edge.clone(), cfg.admin.token.as_deref())
            .with_acl(cfg.admin.allow.clone(), cfg.admin.deny.clone())
    }

    /// Serves until `shutdown` completes, then drains.
    pub async fn serve(
        self,
        listener: TcpListener,
        cfg: &Config,
        shutdown: impl Future<Output = ()>,
    ) {
        server::serve(listener, self.edge, &cfg.server, shutdown).await;
    }

    /// Serves on one event loop per listener (see [`server::bind`]), each on its own thread,
    /// until [`server::Loops::shutdown`].
    pub fn start_loops(
        self,
        listeners: Vec<std::net::TcpListener>,
        cfg: &Config,
    ) -> std::io::Result<server::Loops> {
        server::Loops::start(listeners, self.edge, &cfg.server)
    }
}
