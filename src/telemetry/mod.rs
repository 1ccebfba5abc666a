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
pub struct LogGuard {
    _guard: BatchGuard,
    /// The writer, for [`LogGuard::reopener`].
    writer: BatchWriter,
}

impl LogGuard {
    /// What reopens the log file (on SIGUSR1); a no-op when logging to standard output.
    pub fn reopener(&self) -> LogReopener {
        LogReopener(self.writer.clone())
    }
}

/// Reopens the log file, so that logrotate can move it away and the edge writes to a new one.
#[derive(Clone)]
pub struct LogReopener(BatchWriter);

impl LogReopener {
    /// Asks for the file to be opened again; returns at once.
    pub fn reopen(&self) {
        self.0.reopen();
    }
}

fn open_log(path: &std::path::Path) -> io::Result<Box<dyn Write + Send>> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    Ok(Box::new(f))
}

/// Installs the global subscriber. `RUST_LOG` overrides the default level (`info`).
pub fn init(cfg: &LogConfig) -> io::Result<LogGuard> {
    let (sink, reopen): (Box<dyn Write + Send>, Option<writer::Reopen>) = match &cfg.file {
        Some(path) => {
            let path = path.clone();
            (open_log(&path)?, Some(Box::new(move || open_log(&path))))
        }
        None => (Box::new(io::stdout()), None),
    };
    let (writer, guard) = BatchWriter::new(sink, reopen);
    let writer_handle = writer.clone();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    // Text and combined access lines take the short path (the filter still decides whether
    // they are on); everything else the fmt layer.
    access_sink::install(writer.clone());
    match cfg.format {
        LogFormat::Json => registry
            .with(fmt::layer().json().flatten_event(true).with_writer(writer))
            .init(),
        LogFormat::Text => registry
            .with(fmt::layer().with_ansi(false).with_writer(writer))
            .init(),
    }
    Ok(LogGuard {
        _guard: guard,
        writer: writer_handle,
    })
}
