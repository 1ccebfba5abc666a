//! Requests that bypass the cache: unsafe methods (and GET when a client's `no-store` is
//! honoured). The body streams to the origin under a size limit; a successful unsafe request
//! invalidates the target URI and same-host Location / Content-Location (RFC 9111 section 4.4)
//! before the response goes out.

use super::{
    Edge, RequestCtx,
    error::ProxyError,
    forward, respond,
    site::{Authority, Site},
};
use crate::{
    cache::{
        CacheKey, policy,
        status::{CacheStatus, Outcome},
    },
    origin::{BodyStream, OriginError, OriginRequest},
};
use axum::body::Body;
use futures_util::{StreamExt, TryStreamExt};
use http::{HeaderMap, Method, Response, Uri, header, request::Parts};
use std::sync::Arc;

pub(crate) async fn serve(
    edge: &Arc<Edge>,
    site: &Arc<Site>,
    req: &Parts,
    body: Option<Body>,
    ctx: &mut RequestCtx,
    outcome: Outcome,
) -> Response<Body> {
    let cs = CacheStatus::new(outcome);
    ctx.cache = Some(cs);
    let limit = edge.settings.max_request_body;
    let declared = req
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return ProxyError::BodyTooLarge.into_response(Some(&cs));
    }
    let headers = forward::pass_headers(&req.headers, &ctx.host_value, ctx.client());
    let started = tokio::time::Instant::now();
    let res = site
        .origin
        .fetch(OriginRequest {
            method: req.method.clone(),
            path_and_query: ctx.target.clone(),
            headers,
            body: body.map(|b| limited(b, limit)),
            event_loop: ctx.event_loop(),
        })
        .await;
    let took = started.elapsed().as_secs_f64();
    ctx.origin_ms = Some(took * 1000.0);
    let failed = res.as_ref().map_or(true, |r| r.status.is_server_error());
    site.stats.origin(failed, took);
    let r = match res {
        Ok(r) => r,
        Err(e) => return ProxyError::Origin(e).into_response(Some(&cs)),
    };
    ctx.served_by.clone_from(&r.served_by);
    let mut cs = cs;
    cs.fwd_status = Some(r.status.as_u16());
    ctx.cache = Some(cs);
    if !is_safe(&req.method) && (r.status.is_success() || r.status.is_redirection()) {
        invalidate(edge, site, ctx, &r.headers);
    }
    let mut headers = r.headers;
    // Targeted cache control is for this cache: it does not leave the edge (RFC 9213).
    policy::split_off_targeted(&mut headers);
    // Surrogate keys are for this cache too.
    crate::cache::tags::take_tags(&mut headers, &site.tag_headers);
    headers.append(header::VIA, forward::VIA);
    respond::stamp(&mut headers, &cs);
    let mut out = Response::new(Body::from_stream(r.body.map_err(std::io::Error::other)));
    *out.status_mut() = r.status;
    *out.headers_mut() = headers;
    out
}

fn is_safe(m: &Method) -> bool {
    matches!(
        *m,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

/// Removes the target URI and the same-host URIs named by Location / Content-Location.
fn invalidate(edge: &Edge, site: &Site, ctx: &RequestCtx, res: &HeaderMap) {
    for k in ctx.url_keys(site) {
        edge.store.remove(&k);
    }
    for name in [header::LOCATION, header::CONTENT_LOCATION] {
        let Some(loc) = res.get(&name).and_then(|v| v.to_str().ok()) else {
            continue;
        };
        let Ok(uri) = loc.parse::<Uri>() else {
            continue;
        };
        if uri.authority().is_some_and(|a| {
            Authority::parse(a.as_str()).is_none_or(|a| a.canonical_for(ctx.https) != ctx.authority)
        }) {
            continue; // another host's cache is not ours to touch
        }
        let Some(pq) = uri
            .path_and_query()
            .map(|p| p.as_str())
            .filter(|p| p.starts_with('/'))
        else {
            continue;
        };
        for k in CacheKey::both_schemes(site.name, &ctx.authority, pq) {
            edge.store.remove(&k);
        }
    }
}

/// The request body as a stream that fails once it passes `limit` bytes.
fn limited(body: Body, limit: u64) -> BodyStream {
    let mut seen = 0u64;
    body.into_data_stream()
        .map(move |chunk| {
            let chunk = chunk.map_err(|e| OriginError::Downstream(e.to_string()))?;
            seen += chunk.len() as u64;
            if seen > limit {
                return Err(OriginError::RequestTooLarge);
            }
            Ok(chunk)
        })
        .boxed()
}
