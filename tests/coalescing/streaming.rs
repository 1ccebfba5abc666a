//! Streaming fills: bytes reach every reader as they arrive, a cut body is never passed off as
//! complete, a fill outlives the client that started it, and memory stays bounded (too-large
//! objects and a full in-flight budget pass through unstored).

use crate::common::{TestEdge, TestOrigin, header};
use crate::support::{first_chunk, head_before_the_gate, poll_for_hit, read_at_least};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leader_and_follower_get_bytes_before_the_origin_finishes() {
    let origin = TestOrigin::start().await;
    let edge = TestEdge::in_front_of(&origin, "").await;
    // Ten pieces, the last held by the origin until the test opens the gate: whatever a client
    // reads before then was streamed, not buffered until the end.
    let p = "/st/slow?cc=max-age=60&size=100000&gate=slow";
    let mut leader = head_before_the_gate(edge.get(p)).await;
    assert_eq!(leader.status(), 200);
    assert!(!header(&leader, "cache-status").contains("collapsed"));
    let lead_first = first_chunk(&mut leader).await;
    // Join while the fill is under way.
    let mut follower = head_before_the_gate(edge.get(p)).await;
    assert!(
        header(&follower, "cache-status").contains("collapsed"),
        "{}",
        header(&follower, "cache-status")
    );
    let follow_first = first_chunk(&mut follower).await;
    origin.open("slow");
    let (lead_rest, follow_rest) = tokio::join!(leader.bytes(), follower.bytes());
    let lead_body = [lead_first, lead_rest.expect("leader body complete")].concat();
    let follow_body = [follow_first, follow_rest.expect("follower body complete")].concat();
    assert_eq!(lead_body.len(), 100_000);
    assert_eq!(follow_body, lead_body);
    let r = edge.get(p).send().await.unwrap();
    assert_eq!(header(&r, "x-cache"), "HIT");
    assert_eq!(r.bytes().await.unwrap(), lead_body);
    assert_eq!(origin.count("/st/slow"), 1);
}

/// Small bodies are held back until complete so that waiting clients are woken once, but only
/// briefly: one whose last piece is late still streams, and is stored whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_small_body_that_trickles_is_not_held_back_for_long() {
    let origin = TestOrigin::start().await;
    let edge = TestEdge::in_front_of(&origin, "").await;
    // 2000 bytes in ten pieces, the last held until the gate opens.
    let p = "/st/small-slow?cc=max-age=60&size=2000&gate=small";
    let mut leader = head_before_the_gate(edge.get(p)).await;
    assert_eq!(leader.status(), 200);
    assert_eq!(header(&leader, "content-length"), "2000");
    let first = first_chunk(&mut leader).await;
    origin.open("small");
    let body = [first, leader.bytes().await.expect("complete body")].concat();
    assert_eq!(body.len(), 2000);
    let r = edge.get(p).send().await.unwrap();
    assert_eq!(header(&r, "x-cache"), "HIT");
    assert_eq!(r.bytes().await.unwrap(), body);
    assert_eq!(origin.count("/st/small-slow"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_body_cut_by_the_origin_is_an_error_for_every_reader_and_not_stored() {
    let origin = TestOrigin::start().await;
    let edge = TestEdge::in_front_of(&origin, "").await;
    // 200 000 bytes announced, 5000 sent, then the connection is cut; the delay lets followers
    // join. (A body this large streams: small ones are the next test's.)
    let p = "/st/abort?abort=5000&size=200000&cc=max-age=60&delay=300";
    let tasks: Vec<_> = (0..5)
        .map(|_| {
            let rb = edge.get(p);
            tokio::spawn(async move {
                let r = rb.send().await.unwrap();
                let cs = header(&r, "cache-status");
                (r.status().as_u16(), cs, r.bytes().await)
            })
        })
        .collect();
    let mut collapsed = 0;
    for t in tasks {
        let (status, cs, body) = t.await.unwrap();
        assert_eq!(status, 200, "headers were already sent: {cs}");
        collapsed += usize::from(cs.contains("collapsed"));
        assert!(body.is_err(), "a cut body must not end cleanly: {cs}");
    }
    assert_eq!(collapsed, 4, "four readers shared the leader's fill");
    assert_eq!(origin.count("/st/abort"), 1);
    // Nothing stored, no lock left: the next request goes to the origin again.
    let r = edge.get(p).send().await.unwrap();
    assert_eq!(header(&r, "x-cache"), "MISS");
    assert!(r.bytes().await.is_err());
    assert_eq!(origin.count("/st/abort"), 2);
    let r = edge.get("/st/fine?cc=max-age=60").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().starts_with("v1|"));
}

/// A small body is held back until it is complete, so when the origin cuts it no head has gone
/// out yet: every reader gets a clean 502 instead of a head and a cut body.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_small_body_cut_by_the_origin_is_a_502_for_every_reader_and_not_stored() {
    let origin = TestOrigin::start().await;
    let edge = TestEdge::in_front_of(&origin, "").await;
    let p = "/st/abort-small?abort=5000&size=20000&cc=max-age=60&delay=300";
    let tasks: Vec<_> = (0..5)
        .map(|_| {
            let rb = edge.get(p);
            tokio::spawn(async move {
                let r = rb.send().await.expect("an answer, not a cut connection");
                let cs = header(&r, "cache-status");
                (r.status().as_u16(), cs, r.text().await)
            })
        })
        .collect();
    for t in tasks {
        let (status, cs, body) = t.await.unwrap();
        assert_eq!(status, 502, "{cs}");
        assert!(cs.contains("detail=origin-error"), "{cs}");
        assert!(!body.expect("a complete error body").is_empty());
    }
    assert_eq!(origin.count("/st/abort-small"), 1);
    let r = edge.get(p).send().await.unwrap();
    assert_eq!(r.status(), 502);
    assert_eq!(origin.count("/st/abort-small"), 2, "nothing was stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_fill_goes_on_when_the_first_client_disconnects() {
    let origin = TestOrigin::start().await;
    let edge = TestEdge::in_front_of(&origin, "").await;
    let p = "/st/gone?cc=max-age=60&size=100000&gate=gone";
    let mut first = edge.get(p).send().await.unwrap();
    assert!(!first_chunk(&mut first).await.is_empty());
    let second = edge.get(p).send().await.unwrap();
    assert!(header(&second, "cache-status").contains("collapsed"));
    let reading = tokio::spawn(second.bytes());
    drop(first); // the leader's client goes away mid-body: the origin has not finished
    // Time for the edge to see the disconnect (were it missed, the test would be weaker, not
    // wrong); then the origin sends its last piece.
    tokio::time::sleep(Duration::from_millis(100)).await;
    origin.open("gone");
    let body = reading.await.unwrap().expect("second body complete");
    assert_eq!(body.len(), 100_000);
    // The fill is stored right after its last byte; allow it a moment.
    let (hit, stored) = poll_for_hit(&edge, p, 20, Duration::from_millis(50)).await;
    assert!(hit);
    assert_eq!(stored, body);
    assert_eq!(origin.count("/st/gone"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fill_whose_only_client_left_is_still_stored() {
    let origin = TestOrigin::start().await;
    let edge = TestEdge::in_front_of(&origin, "").await;
    let p = "/st/alone?cc=max-age=60&size=50000&slow=1000";
    let res = edge.get(p).send().await.unwrap();
    assert_eq!(res.status(), 200);
    drop(res);
    // Requests made while the fill runs read it; once it is done they are hits.
    let (hit, body) = poll_for_hit(&edge, p, 30, Duration::from_millis(100)).await;
    assert!(hit);
    assert_eq!(body.len(), 50_000);
    assert_eq!(origin.count("/st/alone"), 1);
}

#[tokio::test]
async fn a_known_length_body_above_max_object_size_is_served_but_not_stored() {
    let origin = TestOrigin::start().await;
    let edge = TestEdge::in_front_of(&origin, "[cache]\nmax_object_size = \"64KiB\"").await;
    let p = "/st/big?cc=max-age=60&size=204800";
    for n in 1..=2 {
        let r = edge.get(p).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(header(&r, "x-cache"), "MISS");
        let cs = header(&r, "cache-status");
        assert!(!cs.contains("stored"), "{cs}");
        assert!(cs.contains("detail=too-large"), "{cs}");
        assert_eq!(r.bytes().await.unwrap().len(), 204_800);
        assert_eq!(origin.count("/st/big"), n);
    }
}

#[tokio::test]
async fn an_unknown_length_body_growing_past_max_object_size_is_served_but_not_stored() {
    let origin = TestOrigin::start().await;
    let edge = TestEdge::in_front_of(&origin, "[cache]\nmax_object_size = \"64KiB\"").await;
    let p = "/st/chunked?cc=max-age=60&size=204800&chunked=1";
    for n in 1..=2 {
        let r = edge.get(p).send().await.unwrap();
        assert_eq!(r.status(), 200);
        // The head goes out before the size is known, so only the repeat shows it was not kept.
        assert_eq!(header(&r, "x-cache"), "MISS", "request {n}");
        let body = r.bytes().await.unwrap();
        assert_eq!(body.len(), 204_800);
        assert!(body.starts_with(b"v1|"));
        assert_eq!(origin.count("/st/chunked"), n);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_too_large_body_streams_without_being_buffered_whole() {
    let origin = TestOrigin::start().await;
    let edge = TestEdge::in_front_of(&origin, "[cache]\nmax_object_size = \"64KiB\"").await;
    for (p, gate) in [
        ("/st/bigslow?cc=max-age=60&size=204800&gate=known", "known"),
        (
            "/st/bigslowchunked?cc=max-age=60&size=204800&chunked=1&gate=unknown",
            "unknown",
        ),
    ] {
        let mut r = head_before_the_gate(edge.get(p)).await;
        let first = first_chunk(&mut r).await;
        origin.open(gate);
        let body = [first, r.bytes().await.expect("complete")].concat();
        assert_eq!(body.len(), 204_800, "{p}");
    }
}

/// An edge whose in-flight budget holds one 900 KiB fill but not two.
const BUDGET: &str = "[cache]\nmax_inflight = \"1MiB\"\nmax_object_size = \"1MiB\"";
const SLOW_A: &str = "/st/budget-a?cc=max-age=60&size=921600&slow=2000";
const FAST_B: &str = "/st/budget-b?cc=max-age=60&size=921600";

/// Starts the slow fill A and reads it until 600 KiB of it are held by the fill, then fetches
/// B to the end; returns A's response (mid-body), how much of A was read, and B's
/// Cache-Status and body length.
async fn overlap(edge: &TestEdge) -> (reqwest::Response, usize, String, usize) {
    let mut a = edge.get(SLOW_A).send().await.unwrap();
    assert!(header(&a, "cache-status").contains("stored"));
    let a_read = read_at_least(&mut a, 600 * 1024).await;
    assert!(a_read >= 600 * 1024);
    let b = edge.get(FAST_B).send().await.unwrap();
    assert_eq!(b.status(), 200);
    let cs = header(&b, "cache-status");
    let len = b.bytes().await.expect("B complete").len();
    (a, a_read, cs, len)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_miss_beyond_the_inflight_budget_passes_through_unstored() {
    let origin = TestOrigin::start().await;
    let edge = TestEdge::in_front_of(&origin, BUDGET).await;
    let (a, a_read, _, b_len) = overlap(&edge).await;
    assert_eq!(b_len, 921_600);
    let a_rest = a.bytes().await.expect("A complete");
    assert_eq!(a_read + a_rest.len(), 921_600);
    // B could not be held while A was: it was not stored, so a repeat goes to the origin.
    let r = edge.get(FAST_B).send().await.unwrap();
    assert_ne!(header(&r, "x-cache"), "HIT");
    assert_eq!(r.bytes().await.unwrap().len(), 921_600);
    assert_eq!(origin.count("/st/budget-b"), 2);
    // A, which fitted, was stored.
    let (hit, body) = poll_for_hit(&edge, SLOW_A, 10, Duration::from_millis(50)).await;
    assert!(hit);
    assert_eq!(body.len(), 921_600);
    assert_eq!(origin.count("/st/budget-a"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_miss_beyond_the_inflight_budget_does_not_claim_stored() {
    let origin = TestOrigin::start().await;
    let edge = TestEdge::in_front_of(&origin, BUDGET).await;
    let (a, _, b_status, _) = overlap(&edge).await;
    drop(a);
    // B's announced 900 KiB cannot be reserved next to A's 600 KiB: Cache-Status must not
    // tell the client it was stored (RFC 9211 `stored`).
    assert!(!b_status.contains("stored"), "{b_status}");
    assert!(b_status.contains("detail=inflight-budget"), "{b_status}");
}

#[tokio::test]
async fn a_body_of_unknown_length_is_never_said_stored_before_it_is() {
    let origin = TestOrigin::start().await;
    let edge = TestEdge::in_front_of(&origin, "[cache]\nmax_object_size = \"4KiB\"").await;
    // Whether the head is held until the end (quick pieces) or goes out first (slow ones),
    // a body that turns out too large to keep must not be announced as stored.
    for p in [
        "/st/grows?cc=max-age=60&size=8192&chunked=1",
        "/st/grows-slowly?cc=max-age=60&size=8192&chunked=1&slow=500",
    ] {
        let path = p.split('?').next().unwrap();
        for n in 1..=2 {
            let r = edge.get(p).send().await.unwrap();
            assert_eq!(r.status(), 200);
            assert_eq!(header(&r, "x-cache"), "MISS", "{p} request {n}");
            let cs = header(&r, "cache-status");
            assert!(!cs.contains("stored"), "{p}: {cs}");
            assert_eq!(r.bytes().await.unwrap().len(), 8192);
            assert_eq!(origin.count(path), n);
        }
    }
}
