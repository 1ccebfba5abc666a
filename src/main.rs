//! The `edgecache` binary: parses the command line, loads the config, starts logging and serves
//! until Ctrl-C or SIGTERM.

use anyhow::Context;
use clap::{Parser, Subcommand};
use edgecache::{
    app::App,
    config::{ByteSize, Config, LogFormat, Overrides},
};
use std::{net::SocketAddr, path::PathBuf};

/// jemalloc rather than glibc's malloc: under load glibc's arenas put lock waits and
/// consolidation on the request path and let RSS drift far past `max_memory` with many small
/// objects; jemalloc keeps both in check (it is what Varnish and Redis ship with; BENCHMARKS.md
/// has the profiles).
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// A caching CDN edge server: an RFC 9111 shared cache in front of your origins.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    /// Address to listen on.
    #[arg(long, env = "EDGECACHE_LISTEN", value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Put the edge in front of this one origin for every Host (quick mode).
    #[arg(long, env = "EDGECACHE_ORIGIN", value_name = "URL")]
    origin: Option<String>,
    /// Configuration file (TOML); see edgecache.toml.
    #[arg(long, env = "EDGECACHE_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Memory budget for cached objects, e.g. 256MiB.
    #[arg(long, env = "EDGECACHE_MAX_MEMORY", value_name = "SIZE")]
    max_memory: Option<ByteSize>,
    /// Log line format.
    #[arg(long, env = "EDGECACHE_LOG_FORMAT", value_enum)]
    log_format: Option<LogFormat>,
    /// Address of the admin API (default 127.0.0.1:9090). Its token comes from
    /// `[admin] token` or EDGECACHE_ADMIN_TOKEN, never from the command line.
    #[arg(long, env = "EDGECACHE_ADMIN_LISTEN", value_name = "ADDR")]
    admin_listen: Option<SocketAddr>,
    /// What to do instead of serving, if anything.
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Validate a configuration file and exit (non-zero, naming the bad field, if invalid).
    CheckConfig {
        /// The file to check.
        file: PathBuf,
    },
    /// Simulate hit ratios offline from a trace or access log, at several cache sizes and
    /// policies (Belady's optimum included as the bound).
    Replay(Box<edgecache::replay::ReplayArgs>),
    /// Drive a cache over HTTP with a Zipf or trace workload and report hit ratios, requests/s
    /// and latency; run a test origin; sweep cache sizes on edges started here.
    Bench(Box<edgecache::bench::BenchArgs>),
}

/// The bundled demo site: `./static` when run from the project, else the one it was built from.
fn demo_root() -> PathBuf {
    let here = PathBuf::from("static");
    if here.is_dir() {
        return here;
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("static")
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(Command::CheckConfig { file }) = &cli.command {
        return match edgecache::app::check_config(file) {
            Ok(c) => {
                println!("{}: ok ({} site(s))", file.display(), c.sites.len());
                Ok(())
            }
            Err(e) => {
                eprintln!("{e}");
                std::process::exit(1);
            }
        };
    }
    if let Some(Command::Replay(args)) = &cli.command {
        return args.run().map_err(anyhow::Error::from);
    }
    if let Some(Command::Bench(args)) = &cli.command {
        return bench(args);
    }
    let base = match &cli.config {
        Some(path) => edgecache::app::check_config(path).map_err(anyhow::Error::msg)?,
        None => Config::default(),
    };
    let overrides = Overrides {
        listen: cli.listen,
        origin: cli.origin.clone(),
        max_memory: cli.max_memory,
        log_format: cli.log_format,
        admin_listen: cli.admin_listen,
        admin_token: std::env::var("EDGECACHE_ADMIN_TOKEN")
            .ok()
            .filter(|t| !t.is_empty()),
    };
    let cfg = base
        .apply(&overrides, demo_root)
        .context("invalid configuration")?;
    let log = edgecache::telemetry::init(&cfg.log).context("cannot open the log")?;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(cfg, log.reopener(), reload_source(&cli, overrides)))
}

/// Where SIGHUP and `POST /reload` read the config from: the file the edge started with,
/// checked as check-config does, with the command line's overrides applied again. `None`
/// without `--config`.
fn reload_source(cli: &Cli, overrides: Overrides) -> Option<edgecache::app::ConfigSource> {
    let path = cli.config.clone()?;
    Some(Box::new(move || {
        edgecache::app::check_config(&path)?
            .apply(&overrides, demo_root)
            .map_err(|e| format!("{}: invalid: {e}", path.display()))
    }))
}

async fn run(
    cfg: Config,
    log: edgecache::telemetry::LogReopener,
    source: Option<edgecache::app::ConfigSource>,
) -> anyhow::Result<()> {
    reopen_log_on_sigusr1(log)?;
    let app = App::build(&cfg).await?;
    let reloader = source.map(|s| app.reloader(s));
    reload_on_sighup(reloader.clone())?;
    start_admin(&app, &cfg, reloader).await?;
    let listen = cfg.server.listen;
    let threads = cfg.server.threads;
    let cannot_listen = || format!("cannot listen on {listen}");
    for s in &cfg.sites {
        let to = s.origin.clone().unwrap_or_else(|| {
            format!(
                "{}",
                s.root.as_deref().unwrap_or_else(|| "?".as_ref()).display()
            )
        });
        tracing::info!(site = %s.name, hosts = ?s.hosts, origin = %to, "site");
    }
    if threads == 0 {
        let l = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(cannot_listen)?;
        let tls = match cfg.server.listen_tls {
            Some(addr) => Some(
                tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("cannot listen on {addr} (TLS)"))?,
            ),
            None => None,
        };
        tracing::info!(%listen, listen_tls = ?cfg.server.listen_tls, max_memory = %cfg.cache.max_memory, "edgecache ready");
        app.serve_tls(l, tls, &cfg, shutdown_signal())
            .await
            .context("cannot serve TLS")?;
    } else {
        let ls = edgecache::server::bind(listen, threads)
            .await
            .with_context(cannot_listen)?;
        let tls = match cfg.server.listen_tls {
            Some(addr) => Some(
                edgecache::server::bind(addr, threads)
                    .await
                    .with_context(|| format!("cannot listen on {addr} (TLS)"))?,
            ),
            None => None,
        };
        let loops = app
            .start_loops(ls, tls, &cfg)
            .context("cannot start the event loops")?;
        tracing::info!(%listen, listen_tls = ?cfg.server.listen_tls, threads = loops.count(), max_memory = %cfg.cache.max_memory, "edgecache ready");
        let failed = tokio::select! {
            () = shutdown_signal() => false,
            () = loops.failed() => true,
        };
        if failed {
            tracing::error!("an event loop ended early: shutting down");
        }
        loops.shutdown().await?;
    }
    Ok(())
}

/// Starts the admin API on its listener. The default address may be taken (Prometheus uses
/// 9090 too): that is logged and the edge serves without it; an address the operator chose
/// must be free.
async fn start_admin(
    app: &App,
    cfg: &Config,
    reloader: Option<std::sync::Arc<edgecache::app::Reloader>>,
) -> anyhow::Result<()> {
    let addr = cfg.admin.addr();
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) if cfg.admin.listen.is_none() => {
            tracing::warn!(%addr, error = %e, "admin API not started: its default address is taken (set --admin-listen)");
            return Ok(());
        }
        Err(e) => return Err(e).with_context(|| format!("cannot listen on {addr} (admin)")),
    };
    let mut state = app.admin_state(cfg);
    if let Some(r) = reloader {
        state = state.with_reloader(r);
    }
    let router = edgecache::admin::app(state);
    tracing::info!(listen = %listener.local_addr()?, token = cfg.admin.token.is_some(), "admin API ready");
    tokio::spawn(async move {
        // The peer address is what `[admin] allow` / `deny` check.
        let service = router.into_make_service_with_connect_info::<SocketAddr>();
        if let Err(e) = axum::serve(listener, service).await {
            tracing::error!(error = %e, "admin API stopped");
        }
    });
    Ok(())
}

fn bench(args: &edgecache::bench::BenchArgs) -> anyhow::Result<()> {
    use edgecache::bench::{Plan, report};
    let plan = args.plan()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        match plan {
            Plan::ServeOrigin => {
                let origin = args.serve_origin().await?;
                eprintln!(
                    "bench origin on {} (Cache-Control: {}); Ctrl-C stops it",
                    origin.url(),
                    args.cache_control
                );
                tokio::select! {
                    () = origin.wait() => {},
                    () = shutdown_signal() => {},
                }
            }
            Plan::Measure(bench) => {
                let report = bench.run().await?;
                if args.json {
                    println!("{}", serde_json::to_string_pretty(&report)?);
                } else {
                    print!("{}", report::table(&report));
                    if report.runs.len() > 1 {
                        print!("\n{}", report::chart(&report));
                    }
                }
                if let Some(r) = report
                    .runs
                    .iter()
                    .find(|r| r.requests > 0 && r.errors == r.requests)
                {
                    anyhow::bail!(
                        "every request to {} failed; the first: {}",
                        r.target,
                        r.first_error.as_deref().unwrap_or("?")
                    );
                }
            }
        }
        Ok(())
    })
}

/// SIGHUP reloads the config file (as `POST /reload` does): sites, rules, lists, limits and
/// routes change without dropping the cache or a request; an invalid file is logged with
/// check-config's message and the old config goes on. Without `--config` it is logged and
/// ignored (rather than ending the process, SIGHUP's default).
fn reload_on_sighup(
    reloader: Option<std::sync::Arc<edgecache::app::Reloader>>,
) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hup = signal(SignalKind::hangup()).context("cannot handle SIGHUP")?;
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                let Some(r) = &reloader else {
                    tracing::warn!("SIGHUP: started without --config, nothing to reload");
                    continue;
                };
                match r.reload().await {
                    Ok(r) => {
                        tracing::info!(sites = r.sites, routes = r.routes, restart_needed = ?r.restart_needed, "config reloaded (SIGHUP)")
                    }
                    Err(e) => tracing::error!(error = %e, "reload refused: the old config goes on"),
                }
            }
        });
    }
    #[cfg(not(unix))]
    drop(reloader);
    Ok(())
}

/// SIGUSR1 reopens the log file, as nginx's does: logrotate moves the file away, signals, and
/// the edge goes on in a new file at the configured path.
fn reopen_log_on_sigusr1(log: edgecache::telemetry::LogReopener) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut usr1 = signal(SignalKind::user_defined1()).context("cannot handle SIGUSR1")?;
        tokio::spawn(async move {
            while usr1.recv().await.is_some() {
                tracing::info!("SIGUSR1: reopening the log file");
                log.reopen();
            }
        });
    }
    #[cfg(not(unix))]
    drop(log);
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
