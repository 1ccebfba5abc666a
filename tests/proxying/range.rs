//! Byte ranges served from a stored object: 206 with the right slice, 416, the cases answered
//! in full, If-Range, and a range request on a cold key.

use crate::common::{TestEdge, TestOrigin, header};
use bytes::Bytes;

/// GET `p` with `Range: range` (and `If-Range` when given): status, Content-Range, X-Cache, body.
async fn ranged(
    edge: &TestEdge,
    p: &str,
    range: &str,
    if_range: Option<&str>,
) -> (u16, String, String, Bytes) {
    let mut rb = edge.get(p).header("range", range);
    if let Some(v) = if_range {
        rb = rb.header("if-range", v);
    }
    let r = rb.send().await.unwrap();
    let status = r.status().as_u16();
    let cr = header(&r, "content-range");
    let x = header(&r, "x-cache");
    (status, cr, x, r.bytes().await.unwrap())
}

#[tokio::test]
async fn single_ranges_are_sliced_from_the_stored_object() {
    let origin = TestOrigin::start().await;
    let edge = TestEdge::in_front_of(&origin, "").await;
    let p = "/r/a?cc=max-age=60&size=1000";
    let full = edge.get(p).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(full.len(), 1000);
    for (range, start, end) in [
        ("bytes=0-4", 0, 4),
        ("bytes=10-19", 10, 19),
        ("bytes=-10", 990, 999),
        ("bytes=990-", 990, 999),
        ("bytes=900-5000", 900, 999),
    ] {
        let (status, cr, x, body) = ranged(&edge, p, range, None).await;
        assert_eq!(status, 206, "{range}");
        assert_eq!(cr, format!("bytes {start}-{end}/1000"), "{range}");
        assert_eq!(x, "HIT", "{range}");
        assert_eq!(body, full.slice(start..=end), "{range}");
    }
    assert_eq!(origin.count("/r/a"), 1);
}

#[tokio::test]
async fn a_range_past_the_end_is_416_with_the_length() {
    let origin = TestOrigin::start().await;
    let edge = TestEdge::in_front_of(&origin, "").await;
    let p = "/r/b?cc=max-age=60&size=1000";
    edge.get(p).send().await.unwrap().bytes().await.unwrap();
    let (status, cr, _, _) = ranged(&edge, p, "bytes=5000-6000", None).await;
    assert_eq!(status, 416);
    assert_eq!(cr, "bytes */1000");
    assert_eq!(origin.count("/r/b"), 1);
}

#[tokio::test]
async fn multiple_ranges_get_the_whole_object() {
    let origin = TestOrigin::start().await;
    let edge = TestEdge::in_front_of(&origin, "").await;
    let p = "/r/c?cc=max-age=60&size=1000";
    let full = edge.get(p).send().await.unwrap().bytes().await.unwrap();
    // The edge does not build multipart/byteranges; a full 200 is a valid answer.
    let (status, cr, x, body) = ranged(&edge, p, "bytes=0-1,5-6", None).await;
    assert_eq!((status, cr.as_str(), x.as_str()), (200, "", "HIT"));
    assert_eq!(body, full);
    assert_eq!(origin.count("/r/c"), 1);
}

#[tokio::test]
async fn if_range_applies_the_range_only_to_the_current_etag() {
    let origin = TestOrigin::start().await;
    let edge = TestEdge::in_front_of(&origin, "").await;
    let p = "/r/d?cc=max-age=60&size=1000&etag=1";
    let r = edge.get(p).send().await.unwrap();
    let etag = header(&r, "etag");
    assert!(etag.starts_with('"'), "{etag}");
    let full = r.bytes().await.unwrap();
    let (status, cr, _, body) = ranged(&edge, p, "bytes=10-19", Some(&etag)).await;
    assert_eq!((status, cr.as_str()), (206, "bytes 10-19/1000"));
    assert_eq!(body, full.slice(10..20));
    // The client holds another version: it gets the whole current one.
    let (status, _, _, body) = ranged(&edge, p, "bytes=10-19", Some("\"other\"")).await;
    assert_eq!(status, 200);
    assert_eq!(body, full);
    assert_eq!(origin.count("/r/d"), 1);
}

#[tokio::test]
async fn a_range_on_a_cold_key_is_206_and_the_fill_takes_the_whole_object() {
    let origin = TestOrigin::start().await;
    let edge = TestEdge::in_front_of(&origin, "").await;
    let p = "/r/cold?cc=max-age=60&size=1000";
    // The fill fetches the whole object; the client that started it gets only its bytes.
    let (status, cr, x, part) = ranged(&edge, p, "bytes=0-9", None).await;
    assert_eq!(
        (status, cr.as_str(), x.as_str()),
        (206, "bytes 0-9/1000", "MISS")
    );
    assert_eq!(&part[..], b"v1|xxxxxxx");
    let whole = edge.get(p).send().await.unwrap();
    assert_eq!(header(&whole, "x-cache"), "HIT");
    assert_eq!(whole.bytes().await.unwrap().len(), 1000);
    assert_eq!(origin.count("/r/cold"), 1);
    let seen = origin.last_headers("/r/cold").unwrap();
    assert!(
        !seen.contains_key("range"),
        "the fill must not ask for a part"
    );
    // Past the end: 416 from the fill's own length, and the object is stored all the same.
    let q = "/r/cold416?cc=max-age=60&size=1000";
    let (status, cr, _, _) = ranged(&edge, q, "bytes=5000-", None).await;
    assert_eq!((status, cr.as_str()), (416, "bytes */1000"));
    let (status, _, x, _) = ranged(&edge, q, "bytes=10-19", None).await;
    assert_eq!((status, x.as_str()), (206, "HIT"));
    assert_eq!(origin.count("/r/cold416"), 1);
}

#[tokio::test]
async fn a_range_far_into_a_streaming_fill_gets_just_its_bytes() {
    let origin = TestOrigin::start().await;
    let edge = TestEdge::in_front_of(&origin, "").await;
    // 2 MB in ten pieces over 300 ms: streamed (too large to hold back), with its length.
    let p = "/r/far?cc=max-age=60&size=2000000&slow=300";
    let full = edge.get(p);
    let tail = ranged(&edge, p, "bytes=1999990-", None);
    let mid = ranged(&edge, p, "bytes=1000000-1000099", None);
    let (full, tail, mid) = tokio::join!(
        async { full.send().await.unwrap().bytes().await.unwrap().len() },
        tail,
        mid
    );
    assert_eq!(full, 2_000_000);
    assert_eq!(
        (tail.0, tail.1.as_str(), tail.3.len()),
        (206, "bytes 1999990-1999999/2000000", 10)
    );
    assert_eq!(&tail.3[..], b"xxxxxxxxxx");
    assert_eq!(
        (mid.0, mid.1.as_str(), mid.3.len()),
        (206, "bytes 1000000-1000099/2000000", 100)
    );
    assert_eq!(
        origin.count("/r/far"),
        1,
        "one origin request for all three"
    );
    // A chunked body gives no length up front: the whole is sent, as RFC 9110 allows.
    let c = "/r/chunked?cc=max-age=60&size=100000&chunked=1";
    let (status, cr, _, body) = ranged(&edge, c, "bytes=0-9", None).await;
    assert_eq!((status, cr.as_str(), body.len()), (200, "", 100000));
}

#[tokio::test]
async fn ranges_of_a_url_too_large_to_store_go_to_the_origin() {
    let origin = TestOrigin::start().await;
    let edge = TestEdge::in_front_of(&origin, "[cache]\nmax_object_size = \"1KiB\"").await;
    let p = "/rg/big?cc=max-age=60&size=5000";
    let r = edge.get(p).send().await.unwrap();
    assert!(header(&r, "cache-status").contains("detail=too-large"));
    assert_eq!(r.bytes().await.unwrap().len(), 5000);
    // Not stored, and now known to be too large: the range is the origin's to answer.
    let r = edge
        .get(p)
        .header("range", "bytes=100-199")
        .send()
        .await
        .unwrap();
    assert_eq!(header(&r, "x-cache"), "MISS");
    assert!(header(&r, "cache-status").contains("detail=hit-for-miss"));
    r.bytes().await.unwrap();
    let seen = origin.last_headers("/rg/big").unwrap();
    assert_eq!(seen["range"], "bytes=100-199");
    assert_eq!(origin.count("/rg/big"), 2);
    // The same when only the streamed body shows it is too large (no Content-Length).
    let c = "/rg/chunked?cc=max-age=60&size=5000&chunked=1";
    edge.get(c).send().await.unwrap().bytes().await.unwrap();
    let r = edge
        .get(c)
        .header("range", "bytes=0-9")
        .send()
        .await
        .unwrap();
    assert!(header(&r, "cache-status").contains("detail=hit-for-miss"));
    r.bytes().await.unwrap();
    assert_eq!(
        origin.last_headers("/rg/chunked").unwrap()["range"],
        "bytes=0-9"
    );
    // A cacheable URL still fills with the whole object.
    let q = "/rg/small?cc=max-age=60&size=500";
    edge.get(q)
        .header("range", "bytes=0-9")
        .send()
        .await
        .unwrap();
    assert!(
        origin
            .last_headers("/rg/small")
            .unwrap()
            .get("range")
            .is_none()
    );
}
