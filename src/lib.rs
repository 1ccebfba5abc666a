//! edgecache: a caching CDN edge server.
//!
//! # Layout
//! Data flows one way, top to bottom; nothing imports upward.
//! - [`app`]: composition root; builds everything from a [`config::Config`] and serves it.
//! - [`server`]: the accept loop (hyper), connection limits, graceful drain.
//! - [`proxy`]: the request path: site selection, cache lookup, fills, pass-through, responses.
//! - [`cache`]: keys, HTTP caching policy, what to do with a request (`decide`), the
//!   byte-weighted store, request coalescing, status headers. Knows nothing of axum or reqwest.
//! - [`data`]: cache-aside for dynamic data: config-declared routes over SQLite / PostgreSQL.
//! - [`origin`]: where content comes from: upstream HTTP servers (reqwest) and local directories.
//! - [`config`]: the typed, validated configuration.
//! - [`clock`]: the one source of time for caching decisions (tests move it ahead).
//! - [`telemetry`]: logging and the access log.
//! - Tools beside the server, built on it: [`bench`] (load and hit ratios over HTTP, with its
//!   own origin) and [`replay`] (offline what-if hit ratios from a trace).
#![forbid(unsafe_code)]

pub mod app;
pub mod bench;
pub mod cache;
pub mod clock;
pub mod config;
pub mod data;
pub mod numfmt;
pub mod origin;
pub mod proxy;
pub mod replay;
pub mod server;
pub mod telemetry;
#[cfg(test)]
mod test_util;
