//! Delivery (issue 21): the TLS listener (certificates by SNI, the default one, bad files
//! refused, renewed ones picked up by a reload), HTTP/2 by ALPN, https to the origin, the
//! redirect of plain HTTP.

#[path = "../common/mod.rs"]
mod common;

mod h2;
mod tls;

use common::tls::TestCa;
use http_body_util::{BodyExt, Empty};
use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};

/// A file of the test's own in the temp directory.
pub fn write_temp(name: &str, text: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!(
        "edgecache-test-{}-delivery-{name}",
        std::process::id()
    ));
    std::fs::write(&p, text).unwrap();
    p
}

/// A certificate for `names` from `ca`, written as `{name}.crt` / `{name}.key`: the TOML lines
/// of a site's `tls_cert` and `tls_key`.
pub fn cert_files(ca: &TestCa, name: &str, names: &[&str]) -> String {
    let (cert, key) = ca.issue(names);
    let c = write_temp(&format!("{name}.crt"), &cert);
    let k = write_temp(&format!("{name}.key"), &key);
    format!("tls_cert = {:?}\ntls_key = {:?}\n", c, k)
}

/// A TLS connection to the edge, made within 5 s.
pub struct Conn {
    pub stream: tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
}

impl Conn {
    /// Connects to `addr`, verifying the edge's certificate as `name` against `ca`; `sni`
    /// false sends no server name.
    pub async fn open(
        ca: &TestCa,
        addr: SocketAddr,
        name: &str,
        sni: bool,
        alpn: &[&[u8]],
    ) -> Conn {
        let connector = tokio_rustls::TlsConnector::from(ca.client_config(alpn, sni));
        let run = async {
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            let server = ServerName::try_from(name.to_string()).unwrap();
            connector.connect(server, tcp).await.expect("TLS handshake")
        };
        let stream = tokio::time::timeout(Duration::from_secs(5), run)
            .await
            .expect("handshake within 5 s");
        Conn { stream }
    }

    /// The certificate the edge served.
    pub fn cert(&self) -> CertificateDer<'static> {
        self.stream.get_ref().1.peer_certificates().unwrap()[0].clone()
    }

    /// The protocol ALPN agreed on.
    pub fn alpn(&self) -> Option<Vec<u8>> {
        self.stream.get_ref().1.alpn_protocol().map(<[u8]>::to_vec)
    }

    /// An HTTP/1.1 or HTTP/2 (by ALPN) client on this connection.
    pub async fn client(self) -> Client {
        let io = hyper_util::rt::TokioIo::new(self.stream);
        if io.inner().get_ref().1.alpn_protocol() == Some(b"h2") {
            let (send, conn) =
                hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
                    .await
                    .unwrap();
            tokio::spawn(conn);
            Client::H2(send)
        } else {
            let (send, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
            tokio::spawn(conn);
            Client::H1(send)
        }
    }
}

/// One connection's requests.
pub enum Client {
    H1(hyper::client::conn::http1::SendRequest<Empty<bytes::Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Empty<bytes::Bytes>>),
}

/// A response, read whole.
pub struct Answer {
    pub status: u16,
    pub version: http::Version,
    pub headers: http::HeaderMap,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

impl Client {
    /// `GET https://{host}{path}` on the connection, within 10 s.
    pub async fn get(&mut self, host: &str, path: &str) -> Answer {
        let run = async {
            let res = match self {
                Client::H1(s) => {
                    s.ready().await.unwrap();
                    let req = http::Request::get(path)
                        .header("host", host)
                        .body(Empty::new())
                        .unwrap();
                    s.send_request(req).await.unwrap()
                }
                Client::H2(s) => {
                    s.ready().await.unwrap();
                    let req = http::Request::get(format!("https://{host}{path}"))
                        .body(Empty::new())
                        .unwrap();
                    s.send_request(req).await.unwrap()
                }
            };
            let (parts, body) = res.into_parts();
            let body = body.collect().await.unwrap().to_bytes();
            Answer {
                status: parts.status.as_u16(),
                version: parts.version,
                headers: parts.headers,
                body: String::from_utf8_lossy(&body).into_owned(),
            }
        };
        tokio::time::timeout(Duration::from_secs(10), run)
            .await
            .expect("answer within 10 s")
    }
}

/// A certificate authority for the test, shared by its edge and clients.
pub fn ca() -> Arc<TestCa> {
    Arc::new(TestCa::new())
}
