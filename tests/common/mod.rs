//! Helpers shared by the integration tests.
#![allow(dead_code)]
pub mod edge;
pub mod origin;

pub use edge::{TestEdge, header, raw_request};
pub use origin::TestOrigin;
