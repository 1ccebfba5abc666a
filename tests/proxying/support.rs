//! Helpers only these tests use: full `[[site]]` configs, oversized raw requests.

use std::{net::SocketAddr, time::Duration};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// TOML for one site named `s` in front of `origin_url`, with `hosts` (a TOML array body such
/// as `"*"` or `"site.test"`), extra site keys and extra top-level tables before it.
pub fn site_toml(origin_url: &str, hosts: &str, site_keys: &str, top: &str) -> String {
    format!(
        "{top}\n[[site]]\nname = \"s\"\nhosts = [{hosts}]\norigin = \"{origin_url}\"\n{site_keys}\n"
    )
}

/// Percent-encodes a path and query so it can travel as one query-string value.
pub fn pct(s: &str) -> String {
    s.replace('%', "%25")
        .replace('?', "%3F")
        .replace('=', "%3D")
        .replace('&', "%26")
        .replace(',', "%2C")
        .replace(':', "%3A")
        .replace('/', "%2F")
}

/// Like `common::raw_request`, for requests the server may refuse before reading them whole:
/// a write or read error (a reset after the server's early answer and close) just ends the
/// exchange. A server that neither answers nor closes within 5 s fails the test (a hang).
pub async fn send_oversized(addr: SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.expect("connect to edge");
    let _ = s.write_all(request).await;
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), async {
        let mut chunk = [0u8; 4096];
        loop {
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    assert!(
        read.is_ok(),
        "the edge neither answered nor closed within 5 s"
    );
    String::from_utf8_lossy(&buf).into_owned()
}

/// The status code of a raw response, `None` when the connection closed without one.
pub fn status_of(raw: &str) -> Option<u16> {
    let line = raw.lines().next()?;
    line.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

/// Whether the edge still answers its health endpoint.
pub async fn healthy(edge: &crate::common::TestEdge) -> bool {
    match edge.get("/healthz").send().await {
        Ok(r) => r.status() == 200,
        Err(_) => false,
    }
}
