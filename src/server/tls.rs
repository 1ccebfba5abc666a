//! The TLS listener's certificates and handshakes: a certificate per site chosen by SNI among
//! the sites' `hosts`, TLS 1.2 and 1.3 only with rustls' safe defaults, ALPN `h2` then
//! `http/1.1`. The certificates live in a [`Certs`] a reload replaces whole: a handshake reads
//! the map of the moment, a connection already up keeps the certificate it was served.

use crate::{
    config::{Config, ServerConfig, tls::CertifiedKey},
    proxy::site::HostPattern,
    telemetry::metrics::{Handshake, Metrics},
};
use arc_swap::ArcSwap;
use std::{io, sync::Arc, time::Duration};
use tokio::sync::Semaphore;
use tokio_rustls::rustls::{
    self,
    server::{ClientHello, ResolvesServerCert},
};

/// The sites' certificates, in site order, each with the host patterns it answers for.
pub(crate) struct CertMap {
    /// `(the site's hosts, its certificate)` for every site with a `tls_cert`, in config order:
    /// the first whose patterns match the SNI name serves it, as the first matching site
    /// serves a request.
    sites: Vec<(Vec<HostPattern>, Arc<CertifiedKey>)>,
}

impl CertMap {
    /// The certificates `cfg`'s sites name, loaded and checked; the error names the field and
    /// the file (as `check-config` does).
    pub(crate) fn from_config(cfg: &Config) -> Result<Self, String> {
        let mut sites = Vec::new();
        for (i, s) in cfg.sites.iter().enumerate() {
            if let Some(key) = s.certified_key(i).map_err(|e| e.to_string())? {
                let hosts = s.hosts.iter().map(|h| HostPattern::parse(h)).collect();
                sites.push((hosts, key));
            }
        }
        Ok(Self { sites })
    }

    /// The certificate for SNI `name`: the first site whose hosts match it, else (no SNI, or a
    /// name no site with a certificate lists) the first site's. `None` only with no
    /// certificate at all, which ends the handshake.
    pub(crate) fn pick(&self, name: Option<&str>) -> Option<&Arc<CertifiedKey>> {
        let chosen = name.and_then(|n| {
            let n = n.strip_suffix('.').unwrap_or(n).to_ascii_lowercase();
            self.sites
                .iter()
                .find(|(hosts, _)| hosts.iter().any(|h| h.matches(&n)))
        });
        chosen.or(self.sites.first()).map(|(_, k)| k)
    }
}

/// What the TLS listener's handshakes read their certificate from: the map of the config now
/// served, replaced by a reload.
pub(crate) struct Certs(ArcSwap<CertMap>);

impl std::fmt::Debug for Certs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Certs({} site(s))", self.0.load().sites.len())
    }
}

impl Certs {
    pub(crate) fn new(map: CertMap) -> Self {
        Self(ArcSwap::from_pointee(map))
    }

    /// New handshakes get `map`'s certificates from now on.
    pub(crate) fn replace(&self, map: CertMap) {
        self.0.store(Arc::new(map));
    }
}

impl ResolvesServerCert for Certs {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.0.load().pick(hello.server_name()).cloned()
    }
}

/// The rustls config of the TLS listener: TLS 1.3 and 1.2 with the provider's safe cipher
/// suites, no client certificates, certificates from `certs`, ALPN `h2` before `http/1.1`.
pub(crate) fn server_config(certs: Arc<Certs>) -> Result<Arc<rustls::ServerConfig>, String> {
    let mut c = rustls::ServerConfig::builder_with_provider(crate::config::tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_no_client_auth()
        .with_cert_resolver(certs);
    c.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(c))
}

/// How the TLS listener takes a connection: the handshake, bounded in time and in number.
#[derive(Clone)]
pub(super) struct Accept {
    /// The rustls config: certificates by SNI, TLS 1.2 / 1.3, ALPN.
    acceptor: tokio_rustls::TlsAcceptor,
    /// Handshakes in progress (`server.max_tls_handshakes`): each costs a public-key operation,
    /// so a flood of them must queue in the kernel, not pile up in memory and CPU.
    pub(super) slots: Arc<Semaphore>,
    /// A handshake not done within this (`server.tls_handshake_timeout`) closes the connection:
    /// a client that opens one and sends nothing, or a byte a minute, holds no slot for long.
    timeout: Duration,
}

impl Accept {
    /// Handshakes with `certs`, at most `slots` at once (`server.max_tls_handshakes`, or an
    /// event loop's share of it).
    pub(super) fn new(certs: Arc<Certs>, cfg: &ServerConfig, slots: usize) -> io::Result<Self> {
        Ok(Self {
            acceptor: tokio_rustls::TlsAcceptor::from(
                server_config(certs).map_err(io::Error::other)?,
            ),
            slots: Arc::new(Semaphore::new(slots.max(1))),
            timeout: cfg.tls_handshake_timeout.0,
        })
    }

    /// The handshake of `stream`, within the timeout, counted in `metrics`; `slot` (the
    /// handshake's place among `max_tls_handshakes`) is given back as soon as it ends. `None`
    /// when it failed or timed out.
    pub(super) async fn handshake<S>(
        &self,
        stream: S,
        slot: Option<tokio::sync::OwnedSemaphorePermit>,
        metrics: Option<&Metrics>,
    ) -> Option<tokio_rustls::server::TlsStream<S>>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        let accepted = tokio::time::timeout(self.timeout, self.acceptor.accept(stream)).await;
        drop(slot);
        let (how, stream) = match accepted {
            Ok(Ok(s)) => (Handshake::Done, Some(s)),
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "TLS handshake failed");
                (Handshake::Failed, None)
            }
            Err(_) => {
                tracing::debug!("TLS handshake timed out");
                (Handshake::TimedOut, None)
            }
        };
        if let Some(m) = metrics {
            m.counts.handshake(how);
        }
        stream
    }
}

/// A TLS stream whose HTTP/2 preface was already read (and checked) by [`read_preface`], which
/// hands it to hyper as if unread. Over TLS the version is known from ALPN, but hyper's HTTP/2
/// server waits for the preface without a timeout: a client that completes the handshake and
/// then sends nothing would hold its connection slot forever.
pub(crate) struct Preface<S> {
    /// The connection.
    inner: S,
    /// Bytes of the preface not yet handed back, from the end of it.
    pending: usize,
}

/// Reads the HTTP/2 connection preface from `stream` by `deadline` (`server.header_read_timeout`,
/// the slowloris guard of the plain listener). `None` if it does not come in time, or something
/// else comes instead.
pub(crate) async fn read_preface<S: tokio::io::AsyncRead + Unpin>(
    mut stream: S,
    deadline: tokio::time::Instant,
) -> Option<Preface<S>> {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; super::H2_PREFACE.len()];
    match tokio::time::timeout_at(deadline, stream.read_exact(&mut buf)).await {
        Ok(Ok(_)) if buf == super::H2_PREFACE => Some(Preface {
            inner: stream,
            pending: buf.len(),
        }),
        _ => None,
    }
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Preface<S> {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if this.pending > 0 {
            let from = super::H2_PREFACE.len() - this.pending;
            let n = this.pending.min(buf.remaining());
            buf.put_slice(&super::H2_PREFACE[from..from + n]);
            this.pending -= n;
            return std::task::Poll::Ready(Ok(()));
        }
        std::pin::Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Preface<S> {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_no_site_lists_gets_the_first_sites_certificate() {
        let ca = rcgen::KeyPair::generate().unwrap();
        let key = |name: &str| {
            let cert = rcgen::CertificateParams::new(vec![name.to_string()])
                .unwrap()
                .self_signed(&ca)
                .unwrap();
            let der =
                tokio_rustls::rustls::pki_types::PrivateKeyDer::Pkcs8(ca.serialize_der().into());
            let signing = crate::config::tls::provider()
                .key_provider
                .load_private_key(der)
                .unwrap();
            Arc::new(CertifiedKey::new(vec![cert.der().clone()], signing))
        };
        let (a, b) = (key("a.test"), key("x.b.test"));
        let map = CertMap {
            sites: vec![
                (vec![HostPattern::parse("a.test")], a.clone()),
                (vec![HostPattern::parse("*.b.test")], b.clone()),
            ],
        };
        let pick = |n| map.pick(n).map(|k| k.cert[0].clone());
        assert_eq!(pick(Some("a.test")), Some(a.cert[0].clone()));
        assert_eq!(pick(Some("X.B.test.")), Some(b.cert[0].clone()));
        assert_eq!(
            pick(Some("b.test")),
            Some(a.cert[0].clone()),
            "*.b.test is not b.test"
        );
        assert_eq!(pick(Some("other.test")), Some(a.cert[0].clone()));
        assert_eq!(pick(None), Some(a.cert[0].clone()));
        assert!(CertMap { sites: Vec::new() }.pick(None).is_none());
    }
}
