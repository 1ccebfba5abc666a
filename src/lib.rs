//! edgecache: a caching CDN edge server.
//!
//! # Layout
//! Listed from the top down: each module imports only modules listed below it (checked by
//! reading the `use crate::` lines; the tools at the end import `app` and `config`).
//! - [`app`]: composition root; builds the clock, store, origins, sites and data layer from a
//!   [`config::Config`] and serves them.
//! - [`admin`]: the admin API (an axum `Router` on its own listener): purge, inspect, stats.
//! - [`server`]: the accept loop (hyper), connection limits, graceful drain; `server/tls.rs`:
//!   the TLS listener's certificates by SNI (replaced by a reload) and its rustls config.
//! - `sendbuf`: bytes queued for clients' sockets, within `server.max_send_buffers`.
//! - [`proxy`]: the request path: site selection, the I/O of lookups and fills, pass-through,
//!   responses, and the one conversion of failures into responses (`proxy/error.rs`).
//! - [`data`]: cache-aside for dynamic data: config-declared routes over SQLite / PostgreSQL.
//! - [`cache`]: the rules and the store: keys, HTTP caching policy, what to do with a request
//!   (`cache::decide`), the byte-weighted store, request coalescing, status headers. Knows
//!   nothing of axum or reqwest.
//! - [`origin`]: where content comes from: upstream HTTP servers (reqwest) and local directories.
//! - [`telemetry`]: logging and the access log.
//! - [`config`]: the typed, validated configuration, a file per subsystem.
//! - [`clock`]: the one source of time for caching decisions (tests move it ahead).
//! - [`numfmt`]: numbers into text on the request path (headers, the access log).
//! - Tools beside the server, built on it: [`bench`](mod@bench) (load and hit ratios over HTTP,
//!   with its own origin) and [`replay`] (offline what-if hit ratios from a trace).
#![forbid(unsafe_code)]

pub mod admin;
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
mod sendbuf;
pub mod server;
pub mod telemetry;
#[cfg(test)]
mod test_util;
