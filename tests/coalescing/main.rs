//! Request coalescing and streaming fills: one origin request per key, bytes as they arrive, bounded waits and memory.
mod coalescing;
#[path = "../common/mod.rs"]
mod common;
mod streaming;
mod support;
