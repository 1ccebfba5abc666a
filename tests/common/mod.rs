//! Helpers shared by the integration tests.
// Each test binary uses a different subset.
#![allow(dead_code, unused_imports)]
pub mod dns;
pub mod edge;
pub mod origin;
pub mod tls;

pub use edge::{TestEdge, header, raw_request};
pub use origin::TestOrigin;

/// A 127.0.0.1 port that was free a moment ago (bound, then released).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}
