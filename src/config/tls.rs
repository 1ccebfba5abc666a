//! The sites' certificates for the TLS listener: PEM files read and checked (the key is the
//! certificate's) the same way by `check-config`, at start and at every reload, so a bad file
//! is refused before it could be served, with a message naming it.

use std::{path::Path, sync::Arc};
pub(crate) use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::rustls::{
    crypto::CryptoProvider,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
};

/// Which of the two files an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    Cert,
    Key,
}

/// The one crypto provider of the tree (aws-lc-rs, which reqwest's rustls already builds with):
/// the TLS listener's handshakes and the keys loaded here use it.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(tokio_rustls::rustls::crypto::aws_lc_rs::default_provider())
}

/// The chain of `cert` and the key of `key`, checked to belong together. The error says which
/// file is at fault and why, naming it.
pub(crate) fn load_certified_key(
    cert: &Path,
    key: &Path,
) -> Result<Arc<CertifiedKey>, (Part, String)> {
    // Read first, so that a missing file says so rather than "no certificate".
    let cert_pem = std::fs::read(cert)
        .map_err(|e| (Part::Cert, format!("cannot read {}: {e}", cert.display())))?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| (Part::Cert, format!("{}: not PEM: {e}", cert.display())))?;
    if chain.is_empty() {
        return Err((
            Part::Cert,
            format!("{} holds no PEM certificate", cert.display()),
        ));
    }
    let key_pem = std::fs::read(key)
        .map_err(|e| (Part::Key, format!("cannot read {}: {e}", key.display())))?;
    let der = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        (
            Part::Key,
            format!("{} holds no PEM private key: {e}", key.display()),
        )
    })?;
    let provider = provider();
    let signing = provider.key_provider.load_private_key(der).map_err(|e| {
        (
            Part::Key,
            format!("{}: unusable private key: {e}", key.display()),
        )
    })?;
    let certified = CertifiedKey::new(chain, signing);
    // A key whose public half cannot be told (rare key types) is let through, as rustls does.
    match certified.keys_match() {
        Ok(()) => Ok(Arc::new(certified)),
        Err(tokio_rustls::rustls::Error::InconsistentKeys(
            tokio_rustls::rustls::InconsistentKeys::Unknown,
        )) => Ok(Arc::new(certified)),
        Err(e) => Err((
            Part::Key,
            format!(
                "{} is not the key of the certificate in {}: {e}",
                key.display(),
                cert.display()
            ),
        )),
    }
}
