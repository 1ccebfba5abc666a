//! Logging: a tracing subscriber (text or JSON, level from `RUST_LOG`) whose output is written
//! by a background thread through a buffer, so the request path never waits on a write system
//! call; and the access log, one event per request (target `edgecache::access`).

pub(crate) mod access;
pub(crate) mod access_sink;
pub mod metrics;
mod writer;

use crate::config::{LogConfig, LogFormat};
use std::io::{self, Write};
use tracing_subscriber::{EnvFilter, fmt, prelude::*};
use writer::{BatchGuard, BatchWriter};

/// Keeps the log writer thread alive; dropping it writes out what is buffered.
pub struct LogGuard(#[allow(dead_code)] BatchGuard);

/// Installs the global subscriber. `RUST_LOG` overrides the default level (`info`).
pub fn init(cfg: &LogConfig) -> io::Result<LogGuard> {
    let sink: Box<dyn Write + Send> = match &cfg.file {
        Some(path) => Box::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?,
        ),
        None => Box::new(io::stdout()),
    };
    let (writer, guard) = BatchWriter::new(sink);
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    match cfg.format {
        LogFormat::Json => registry
            .with(fmt::layer().json().flatten_event(true).with_writer(writer))
            .init(),
        LogFormat::Text => {
            // Access lines take the short path (the filter still decides whether they are on);
            // everything else the fmt layer.
            access_sink::install(writer.clone());
            registry
                .with(fmt::layer().with_ansi(false).with_writer(writer))
                .init()
        }
    }
    Ok(LogGuard(guard))
}
