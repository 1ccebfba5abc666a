//! Typed configuration: one struct per subsystem, read from TOML, validated with errors that
//! name the offending field. Nothing here reads the process environment: `main` folds CLI flags
//! and `EDGECACHE_*` variables in through [`Overrides`], so tests build configs from strings.

mod access;
mod admin;
mod cache;
mod cidr;
mod database;
mod log;
mod origin;
mod pool;
mod server;
mod site;
pub(crate) mod tls;
mod units;

pub use admin::AdminConfig;
pub(crate) use cache::CacheConfig;
pub use cidr::Cidr;
pub(crate) use database::{DatabaseConfig, RouteConfig};
pub use log::{AccessFormat, LogConfig, LogFormat};
pub(crate) use origin::OriginConfig;
pub(crate) use pool::{Balance, HealthCheckConfig, ServerConfig as OriginServerConfig};
pub(crate) use server::ServerConfig;
pub(crate) use site::{CacheRule, RequestHeaders, SiteConfig, read_ca_file};
pub use units::{ByteSize, Secs};

use serde::Deserialize;
use std::{net::SocketAddr, path::PathBuf};

/// Everything the edge needs to start.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `[server]`: the listener, its limits and the drain.
    pub server: ServerConfig,
    /// `[cache]`: the memory budget and the fill limits.
    pub cache: CacheConfig,
    /// Defaults for every upstream origin; a site may not override them (yet).
    pub(crate) origin: OriginConfig,
    /// `[log]`: the format of log lines, the access log, and where the lines go.
    pub log: LogConfig,
    /// Sites in match order: the first whose host and path prefix fit the request serves it.
    #[serde(rename = "site")]
    pub sites: Vec<SiteConfig>,
    /// The database behind the data routes (cache-aside).
    pub database: Option<DatabaseConfig>,
    /// Data routes: matched before sites, on any host.
    #[serde(rename = "route")]
    pub routes: Vec<RouteConfig>,
    /// `[admin]`: the admin API's listener and token.
    pub admin: AdminConfig,
}

/// A config that cannot be used, naming the field at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Parse(String),
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

/// What the command line (or its `EDGECACHE_*` variables) says on top of the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--listen`: replaces `[server] listen`.
    pub listen: Option<SocketAddr>,
    /// `--origin`: replaces the sites with one in front of this URL.
    pub origin: Option<String>,
    /// `--max-memory`: replaces `[cache] max_memory`.
    pub max_memory: Option<ByteSize>,
    /// `--log-format`: replaces `[log] format`.
    pub log_format: Option<LogFormat>,
    /// `--admin-listen`: replaces `[admin] listen`.
    pub admin_listen: Option<SocketAddr>,
    /// `EDGECACHE_ADMIN_TOKEN`: replaces `[admin] token`.
    pub admin_token: Option<String>,
}

impl Config {
    /// Parses and validates TOML text.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        // serde_path_to_error names the field (`cache.max_memory`); toml's own message shows the
        // line and column.
        let de = toml::Deserializer::parse(text).map_err(|e| ConfigError::Parse(e.to_string()))?;
        let cfg: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner().to_string();
            match path.as_str() {
                "" | "." => ConfigError::Parse(inner),
                _ => ConfigError::Parse(format!("{path}: {inner}")),
            }
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Reads, parses and validates a file.
    pub fn load(path: &std::path::Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        Self::from_toml(&text).map_err(|e| match e {
            ConfigError::Parse(m) => ConfigError::Parse(format!("{}: {m}", path.display())),
            other => other,
        })
    }

    /// Folds CLI flags in; with no site at all, serves the demo directory.
    pub fn apply(
        mut self,
        o: &Overrides,
        demo_root: impl FnOnce() -> PathBuf,
    ) -> Result<Self, ConfigError> {
        if let Some(l) = o.listen {
            self.server.listen = l;
        }
        if let Some(m) = o.max_memory {
            self.cache.max_memory = m;
        }
        if let Some(f) = o.log_format {
            self.log.format = f;
        }
        if let Some(a) = o.admin_listen {
            self.admin.listen = Some(a);
        }
        if let Some(t) = &o.admin_token {
            self.admin.token = Some(t.clone());
        }
        if let Some(url) = &o.origin {
            self.sites = vec![SiteConfig::any_host_upstream(url)];
        }
        if self.sites.is_empty() {
            self.sites = vec![SiteConfig::demo(demo_root())];
            if self.database.is_none() && self.routes.is_empty() {
                self.database = Some(DatabaseConfig::demo());
                self.routes = RouteConfig::demo();
            }
        }
        self.validate()?;
        Ok(self)
    }

    /// Checks what serde cannot: ranges, URLs, exclusive choices. Each subsystem checks its
    /// own fields.
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        self.cache.validate()?;
        self.server.validate()?;
        self.origin.validate()?;
        self.admin.validate()?;
        if let Some(db) = &self.database {
            db.validate()?;
        }
        for (i, s) in self.sites.iter().enumerate() {
            s.validate(i)?;
            if s.redirect_http && self.server.listen_tls.is_none() {
                return Err(invalid(
                    format!("site[{i}].redirect_http"),
                    "needs server.listen_tls (there is no https to redirect to)",
                ));
            }
        }
        if self.server.listen_tls.is_some() && self.sites.iter().all(|s| s.tls_cert.is_none()) {
            return Err(invalid(
                "server.listen_tls",
                "no site has a tls_cert to serve on it",
            ));
        }
        Ok(())
    }
}

/// The first of `timeouts` that is zero, as an error naming it: a zero timeout would fail
/// every request at once.
fn nonzero(timeouts: &[(&str, Secs)]) -> Result<(), ConfigError> {
    match timeouts.iter().find(|(_, t)| t.0.is_zero()) {
        Some((name, _)) => Err(invalid(*name, "must be more than 0s")),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_the_default() {
        let c = Config::from_toml("").unwrap();
        assert_eq!(c.server.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.cache.max_memory, ByteSize(256 << 20));
    }

    #[test]
    fn pool_errors_name_the_field() {
        let site = |keys: &str| format!("[[site]]\nname='a'\nhosts=['*']\n{keys}");
        let good = "origins = [{ url = 'http://10.0.0.1:8080', weight = 3 }, \
                    { url = 'http://10.0.0.2:8080', backup = true, max_connections = 10 }]\n\
                    balance = 'consistent_hash'\n\
                    [site.health_check]\npath = '/healthz'\ninterval = '2s'\nstatus = 204";
        assert!(Config::from_toml(&site(good)).is_ok());
        for (keys, field) in [
            (
                "origin = 'http://a'\norigins = [{ url = 'http://b' }]",
                "site[0].origins: ",
            ),
            (
                "origins = [{ url = 'ftp://b' }]",
                "site[0].origins[0].url: ",
            ),
            (
                "origins = [{ url = 'http://b', weight = 0 }]",
                "site[0].origins[0].weight: ",
            ),
            (
                "origins = [{ url = 'http://b', max_connections = 0 }]",
                "site[0].origins[0].max_connections: ",
            ),
            (
                "origins = [{ url = 'http://b', backup = true }]",
                "site[0].origins: ",
            ),
            ("origins = [{ url = 'http://b', wieght = 2 }]", "wieght"),
            ("origin = 'http://b'\nbalance = 'random'", "random"),
            (
                "origin = 'http://b'\nretry_budget = 2.0",
                "site[0].retry_budget: ",
            ),
            (
                "origin = 'http://b'\nqueue_timeout = '0s'",
                "site[0].queue_timeout: ",
            ),
            (
                "origin = 'http://b'\n[site.health_check]\npath = 'healthz'",
                "site[0].health_check.path: ",
            ),
            (
                "origin = 'http://b'\n[site.health_check]\nstatus = 42",
                "site[0].health_check.status: ",
            ),
            (
                "origin = 'http://b'\n[site.health_check]\nunhealthy_threshold = 0",
                "site[0].health_check.unhealthy_threshold: ",
            ),
        ] {
            let e = Config::from_toml(&site(keys)).unwrap_err().to_string();
            assert!(e.contains(field), "{keys}: {e}");
        }
    }

    #[test]
    fn errors_name_the_field() {
        let e = Config::from_toml("[cache]\nmax_memory = \"lots\"")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("cache.max_memory: ") && e.contains("lots"),
            "{e}"
        );
        let e = Config::from_toml("[cache]\nmax_memroy = 5")
            .unwrap_err()
            .to_string();
        assert!(e.contains("max_memroy"), "{e}");
        let e = Config::from_toml("[[site]]\nname='a'\nhosts=['*']\norigin='ftp://x'")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("site[0].origin"), "{e}");
        let e = Config::from_toml("[[site]]\nname='a'\nhosts=['*']")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("site[0].origin"), "{e}");
        for bad in [
            "*example.com",
            "a.*.com",
            "example.com:8080",
            "exa mple.com",
            "",
        ] {
            let toml = format!("[[site]]\nname='a'\nhosts=['ok.com', '{bad}']\nroot='.'");
            let e = Config::from_toml(&toml).unwrap_err().to_string();
            assert!(e.starts_with("site[0].hosts[1]: "), "{bad}: {e}");
        }
        for good in [
            "*",
            "*.example.com",
            "example.com",
            "Example.COM",
            "127.0.0.1",
            "[::1]",
        ] {
            let toml = format!("[[site]]\nname='a'\nhosts=['{good}']\nroot='.'");
            assert!(Config::from_toml(&toml).is_ok(), "{good}");
        }
        let e = Config::from_toml("[server]\nthreads = 100000")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("server.threads: at most 1024"), "{e}");
        for (toml, field) in [
            (
                "[server]\nmin_send_rate_window = \"0s\"",
                "server.min_send_rate_window: ",
            ),
            (
                "[server]\nmax_send_buffers = \"1KiB\"",
                "server.max_send_buffers: ",
            ),
            (
                "[server]\nmin_send_rate = \"fast\"",
                "server.min_send_rate: ",
            ),
        ] {
            let e = Config::from_toml(toml).unwrap_err().to_string();
            assert!(e.starts_with(field), "{toml}: {e}");
        }
    }

    #[test]
    fn max_inflight_is_a_share_of_max_memory() {
        let c = Config::from_toml("[cache]\nmax_memory = \"64MiB\"").unwrap();
        assert_eq!(
            c.cache.inflight_limit(),
            ByteSize(16 << 20),
            "a quarter by default"
        );
        let c = Config::from_toml("[cache]\nmax_memory = \"1GiB\"").unwrap();
        assert_eq!(
            c.cache.inflight_limit(),
            ByteSize(256 << 20),
            "no longer capped at 64MiB"
        );
        let e = Config::from_toml("[cache]\nmax_memory = \"64MiB\"\nmax_inflight = \"40MiB\"")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("cache.max_inflight: ") && e.contains("64MiB"),
            "{e}"
        );
    }

    #[test]
    fn tls_keys_name_the_field() {
        let site = "[[site]]\nname='a'\nhosts=['a.test']\norigin='http://127.0.0.1:9'\n";
        for (toml, field) in [
            (
                format!("{site}redirect_http = true"),
                "site[0].redirect_http: ",
            ),
            (
                format!("[server]\nlisten_tls = '127.0.0.1:8443'\n{site}"),
                "server.listen_tls: ",
            ),
            (format!("{site}tls_cert = '/x.crt'"), "site[0].tls_key: "),
            (format!("{site}tls_key = '/x.key'"), "site[0].tls_cert: "),
            (
                "[server]\nmax_tls_handshakes = 0".to_string(),
                "server.max_tls_handshakes: ",
            ),
            (
                "[server]\ntls_handshake_timeout = '0s'".to_string(),
                "server.tls_handshake_timeout: ",
            ),
            (
                "[server]\nhttp2_max_concurrent_streams = 0".to_string(),
                "server.http2_max_concurrent_streams: ",
            ),
            (
                "[server]\nhttp2_max_pending_accept_reset_streams = 0".to_string(),
                "server.http2_max_pending_accept_reset_streams: ",
            ),
        ] {
            let e = Config::from_toml(&toml).unwrap_err().to_string();
            assert!(e.starts_with(field), "{toml}: {e}");
        }
    }

    #[test]
    fn overrides_win() {
        let o = Overrides {
            origin: Some("http://127.0.0.1:9".into()),
            max_memory: Some(ByteSize(32 << 20)),
            ..Default::default()
        };
        let c = Config::default().apply(&o, || unreachable!()).unwrap();
        assert_eq!(c.sites.len(), 1);
        assert_eq!(c.sites[0].origin.as_deref(), Some("http://127.0.0.1:9"));
        assert_eq!(c.cache.max_memory, ByteSize(32 << 20));
    }
}
