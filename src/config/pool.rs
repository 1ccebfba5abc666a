//! A site's origin pool: its servers (`origins = [...]`, or the one `origin`), how requests are
//! spread over them, how their health is watched, and when a request is tried again.

use super::{ConfigError, Secs, invalid, nonzero, origin::validate_origin_url};
use serde::Deserialize;
use std::time::Duration;

/// One origin server of a pool (`[[site]] origins = [{ url = "...", weight = 3 }]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ServerConfig {
    /// `http://host:port` or `https://host`, optionally with a base path.
    pub(crate) url: String,
    /// Its share of requests relative to the others (1 to 1000). Default: 1.
    #[serde(default = "one")]
    pub(crate) weight: u32,
    /// Used only while every server that is not a backup is down. Default: off.
    #[serde(default)]
    pub(crate) backup: bool,
    /// Requests this server is sent at once; more wait up to the site's `queue_timeout` for
    /// a slot, then go to another server (or get 503). Default: 256.
    #[serde(default = "default_max_connections")]
    pub(crate) max_connections: usize,
}

fn one() -> u32 {
    1
}

fn default_max_connections() -> usize {
    256
}

impl ServerConfig {
    /// The single `origin = "..."` of a site, as a pool of one.
    pub(crate) fn single(url: &str) -> Self {
        Self {
            url: url.to_string(),
            weight: 1,
            backup: false,
            max_connections: default_max_connections(),
        }
    }
}

/// How a pool spreads requests over its servers (`[[site]] balance`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Balance {
    /// Weighted round-robin, interleaved (a weight-3 server is not sent three in a row).
    #[default]
    RoundRobin,
    /// The server with the fewest requests in progress for its weight.
    LeastOutstanding,
    /// Rendezvous hashing on the cache key: each object comes from one server (whose own cache
    /// stays warm), and a server leaving moves only its own share of keys.
    ConsistentHash,
}

/// Active health checks of a pool's servers (`[site.health_check]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct HealthCheckConfig {
    /// The path asked with GET. Default: `/`.
    pub(crate) path: String,
    /// Time between two checks of a server. Default: 5s.
    pub(crate) interval: Secs,
    /// Longest wait for a check's answer. Default: 2s.
    pub(crate) timeout: Secs,
    /// The status a healthy server answers; 0 takes any 2xx or 3xx. Default: 0.
    pub(crate) status: u16,
    /// Checks passed in a row that bring a server (back) into the pool. Default: 2.
    pub(crate) healthy_threshold: u32,
    /// Checks failed in a row that take it out. Default: 3.
    pub(crate) unhealthy_threshold: u32,
}

impl Default for HealthCheckConfig {
    fn default() -> Self {
        Self {
            path: "/".into(),
            interval: Secs(Duration::from_secs(5)),
            timeout: Secs(Duration::from_secs(2)),
            status: 0,
            healthy_threshold: 2,
            unhealthy_threshold: 3,
        }
    }
}

/// The keys of a site that shape its pool, checked together.
pub(crate) struct PoolKeys<'a> {
    pub(crate) servers: &'a [ServerConfig],
    pub(crate) health_check: Option<&'a HealthCheckConfig>,
    pub(crate) eject_after: u32,
    pub(crate) eject_for: Secs,
    pub(crate) queue_timeout: Secs,
    pub(crate) retry_budget: f64,
}

impl PoolKeys<'_> {
    /// Checks the pool of site `i`, naming the key at fault.
    pub(crate) fn validate(&self, i: usize) -> Result<(), ConfigError> {
        let f = |k: &str| format!("site[{i}].{k}");
        for (j, s) in self.servers.iter().enumerate() {
            let g = |k: &str| format!("site[{i}].origins[{j}].{k}");
            validate_origin_url(&s.url).map_err(|r| invalid(g("url"), r))?;
            if !(1..=1000).contains(&s.weight) {
                return Err(invalid(g("weight"), "must be between 1 and 1000"));
            }
            if s.max_connections == 0 {
                return Err(invalid(g("max_connections"), "must be at least 1"));
            }
        }
        if !self.servers.is_empty() && self.servers.iter().all(|s| s.backup) {
            return Err(invalid(
                f("origins"),
                "every server is a backup: at least one must not be",
            ));
        }
        if !(0.0..=1.0).contains(&self.retry_budget) {
            return Err(invalid(f("retry_budget"), "must be between 0 and 1"));
        }
        nonzero(&[(&f("queue_timeout"), self.queue_timeout)])?;
        if self.eject_after > 0 {
            nonzero(&[(&f("eject_for"), self.eject_for)])?;
        }
        if let Some(h) = self.health_check {
            if !h.path.starts_with('/') {
                return Err(invalid(f("health_check.path"), "must start with /"));
            }
            if h.status != 0 && !(100..=599).contains(&h.status) {
                return Err(invalid(
                    f("health_check.status"),
                    "must be an HTTP status (or 0 for any 2xx or 3xx)",
                ));
            }
            if h.healthy_threshold == 0 || h.unhealthy_threshold == 0 {
                let k = if h.healthy_threshold == 0 {
                    "health_check.healthy_threshold"
                } else {
                    "health_check.unhealthy_threshold"
                };
                return Err(invalid(f(k), "must be at least 1"));
            }
            nonzero(&[
                (&f("health_check.interval"), h.interval),
                (&f("health_check.timeout"), h.timeout),
            ])?;
        }
        Ok(())
    }
}
