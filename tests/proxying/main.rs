//! Proxy behaviour at the trust boundary: what is never cached or forwarded, methods, ranges, errors.
mod admission;
#[path = "../common/mod.rs"]
mod common;
mod directive_case;
mod errors;
mod framing;
mod hardening;
mod methods;
mod range;
mod request_headers;
mod security;
mod support;
