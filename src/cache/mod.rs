//! The cache proper: keys, HTTP caching policy, the byte-weighted store, request coalescing
//! and the status headers. It knows nothing of axum or reqwest.

pub mod admission;
pub mod aside;
pub(crate) mod decide;
pub mod fill;
pub mod key;
pub mod policy;
pub mod status;
pub(crate) mod store;
pub(crate) mod tags;

pub use key::CacheKey;
pub use store::{FillStart, Lookup, Object, Store, StoreConfig};
