//! The hot path, piece by piece: key derivation, a HIT (lookup + response build), and the
//! policy verdict made on every fill. Run with `cargo bench --bench hot_path`.

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use edgecache::{
    cache::{
        CacheKey, Lookup, Object, Store, StoreConfig,
        key::VaryValues,
        policy::{self, PolicyRequest, SiteRules},
        status::{CacheStatus, Outcome},
    },
    clock::Clock,
    proxy::respond,
};
use http::{HeaderMap, Method, StatusCode, Uri};
use std::{hint::black_box, time::Duration};

fn origin_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("content-type", "application/octet-stream".parse().unwrap());
    h.insert("cache-control", "public, max-age=3600".parse().unwrap());
    h.insert("etag", "\"5f3a-1234\"".parse().unwrap());
    h.insert(
        "last-modified",
        "Mon, 02 Nov 2026 10:00:00 GMT".parse().unwrap(),
    );
    h.insert("content-length", "1024".parse().unwrap());
    h
}

fn request_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("host", "bench.example".parse().unwrap());
    h.insert("user-agent", "wrk".parse().unwrap());
    h.insert("accept", "*/*".parse().unwrap());
    h
}

fn bench(c: &mut Criterion) {
    c.bench_function("key: derive from site, host, target", |b| {
        b.iter(|| {
            CacheKey::new(
                black_box("origin"),
                black_box("Bench.Example:80"),
                black_box("/assets/app.3f9a1c2e.js?v=1"),
            )
        })
    });

    let req = request_headers();
    let now = Clock::wall().now();
    let uri = Uri::from_static("/1k.bin");
    let res = origin_headers();
    c.bench_function("policy: evaluate a storable response", |b| {
        b.iter(|| {
            let r = PolicyRequest {
                method: &Method::GET,
                uri: &uri,
                headers: &req,
            };
            policy::evaluate(
                &r,
                StatusCode::OK,
                black_box(&res),
                false,
                SiteRules::default(),
                now,
            )
        })
    });

    let store = Store::new(
        StoreConfig {
            max_memory: 64 << 20,
            max_inflight: 0,
            max_object_size: 8 << 20,
            max_variants: 16,
            keep: Duration::from_secs(3600),
        },
        Clock::wall(),
    );
    let r = PolicyRequest {
        method: &Method::GET,
        uri: &uri,
        headers: &req,
    };
    let freshness =
        policy::evaluate(&r, StatusCode::OK, &res, false, SiteRules::default(), now).unwrap();
    let key = CacheKey::new("origin", "bench.example", "/1k.bin");
    store.insert(
        key.clone(),
        Object {
            status: StatusCode::OK,
            headers: policy::storable_headers(&res),
            targeted: HeaderMap::new(),
            body: Bytes::from(vec![b'x'; 1024]),
            vary: VaryValues::default(),
            freshness,
            stamp: None,
        },
    );
    c.bench_function("hit: lookup + build response", |b| {
        b.iter(|| {
            let now = store.clock().now();
            let Lookup::Found(obj, _) = store.lookup(black_box(&key), &req, now) else {
                panic!("stored above")
            };
            let mut cs = CacheStatus::new(Outcome::Hit);
            cs.ttl = Some(obj.freshness.ttl_secs(now));
            respond::from_object(&obj, &Method::GET, &req, &cs, now)
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
