//! Integration tests of the edge core, one module per topic. Each test starts its own
//! scriptable origin and edge on ephemeral 127.0.0.1 ports.

#[path = "../common/mod.rs"]
mod common;

mod bench;
mod cli;
mod freshness;
mod lifecycle;
mod static_site;
