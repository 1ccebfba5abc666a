//! Revalidation of expired entries (304s), stale-while-revalidate / stale-if-error, and Vary.
mod client_directives;
#[path = "../common/mod.rs"]
mod common;
mod flaky;
mod revalidate;
mod stale;
mod statuses;
mod targeted;
mod vary;
