//! Helpers shared by the integration tests.
// Each test binary uses a different subset.
#![allow(dead_code, unused_imports)]
pub mod edge;
pub mod origin;

pub use edge::{TestEdge, header, raw_request};
pub use origin::TestOrigin;
