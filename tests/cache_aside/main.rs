//! Cache-aside for dynamic data: config-declared routes over SQLite / PostgreSQL, and the
//! generic `CacheAside::get_or_load` engine underneath them.
#[path = "../common/mod.rs"]
mod common;
#[macro_use]
mod backend;
mod engine;
mod errors;
mod race;
mod routes;
mod split;
