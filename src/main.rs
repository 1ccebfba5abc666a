//! The `edgecache` binary: parses the command line, loads the config, starts logging and serves
//! until Ctrl-C or SIGTERM.

use anyhow::Context;
use clap::{Parser, Subcommand};
use edgecache::{
    app::App,
    config::{ByteSize, Config, LogFormat, Overrides},
};
use std::{net::SocketAddr, path::PathBuf};

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
        let checked = Config::load(file).and_then(|c| {
            edgecache::data::compile_routes(&c)
                .map_err(|e| edgecache::config::ConfigError::Parse(e.to_string()))
                .map(|_| c)
        });
        return match checked {
            Ok(c) => {
                println!("{}: ok ({} site(s))", file.display(), c.sites.len());
                Ok(())
            }
            Err(e) => {
                eprintln!("{}: invalid: {e}", file.display());
                std::process::exit(1);
            }
        };
    }
    let base = match &cli.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    let overrides = Overrides {
        listen: cli.listen,
        origin: cli.origin.clone(),
        max_memory: cli.max_memory,
        log_format: cli.log_format,
    };
    let cfg = base
        .apply(&overrides, demo_root)
        .context("invalid configuration")?;
    let _log = edgecache::telemetry::init(&cfg.log).context("cannot open the log")?;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(cfg))
}

async fn run(cfg: Config) -> anyhow::Result<()> {
    let app = App::build(&cfg).await?;
    let listener = tokio::net::TcpListener::bind(cfg.server.listen)
        .await
        .with_context(|| format!("cannot listen on {}", cfg.server.listen))?;
    for s in &cfg.sites {
        let to = s.origin.clone().unwrap_or_else(|| {
            format!(
                "{}",
                s.root.as_deref().unwrap_or_else(|| "?".as_ref()).display()
            )
        });
        tracing::info!(site = %s.name, hosts = ?s.hosts, origin = %to, "site");
    }
    tracing::info!(listen = %cfg.server.listen, max_memory = %cfg.cache.max_memory, "edgecache ready");
    app.serve(listener, &cfg, shutdown_signal()).await;
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
