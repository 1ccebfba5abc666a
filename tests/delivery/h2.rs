//! HTTP/2 over TLS by ALPN, one cache for HTTP/1.1 and HTTP/2, https to the origin.

use crate::common::{TestEdge, TestOrigin, free_port, tls::TestCa};
use crate::{Conn, ca, cert_files};

/// One site `a` (`a.test`) with a certificate, on a TLS listener at a free port; `extra` in
/// the site.
async fn edge(origin: &TestOrigin, ca: &TestCa, extra: &str) -> TestEdge {
    let tls = cert_files(ca, &format!("h2-{}", free_port()), &["a.test"]);
    TestEdge::from_toml_with_clock(
        &format!(
            "[server]\nlisten_tls = \"127.0.0.1:{}\"\n\
             [[site]]\nname = \"a\"\nhosts = [\"a.test\"]\norigin = \"{}\"\n{tls}{extra}\n",
            free_port(),
            origin.url
        ),
        origin.clock(),
    )
    .await
}

#[tokio::test]
async fn alpn_negotiates_http2_and_a_cached_object_is_a_hit_over_http1_and_http2() {
    let origin = TestOrigin::start().await;
    let ca = ca();
    let edge = edge(&origin, &ca, "").await;
    let addr = edge.tls_addr.unwrap();

    let h2 = Conn::open(&ca, addr, "a.test", true, &[b"h2", b"http/1.1"]).await;
    assert_eq!(h2.alpn().as_deref(), Some(&b"h2"[..]));
    let mut h2 = h2.client().await;
    let h1 = Conn::open(&ca, addr, "a.test", true, &[b"http/1.1"]).await;
    assert_eq!(h1.alpn().as_deref(), Some(&b"http/1.1"[..]));
    let mut h1 = h1.client().await;

    let path = "/obj?cc=max-age%3D600";
    let first = h2.get("a.test", path).await;
    assert_eq!((first.status, first.version), (200, http::Version::HTTP_2));
    // Asked twice for the second-hit admission to store it.
    let second = h1.get("a.test", path).await;
    assert_eq!(
        (second.status, second.version),
        (200, http::Version::HTTP_11)
    );
    let asked = origin.count("/obj");
    for (c, v) in [
        (&mut h1, http::Version::HTTP_11),
        (&mut h2, http::Version::HTTP_2),
    ] {
        let res = c.get("a.test", path).await;
        assert_eq!(res.version, v);
        assert_eq!(res.header("x-cache"), "HIT", "{v:?}");
        assert_eq!(res.body, first.body);
    }
    assert_eq!(
        origin.count("/obj"),
        asked,
        "the HITs did not reach the origin"
    );

    // Several requests at once on the one HTTP/2 connection.
    let (mut a, mut b) = (
        h2,
        Conn::open(&ca, addr, "a.test", true, &[b"h2"])
            .await
            .client()
            .await,
    );
    let (ra, rb) = tokio::join!(a.get("a.test", path), b.get("a.test", path));
    assert_eq!((ra.status, rb.status), (200, 200));
}

#[tokio::test]
async fn requests_over_tls_say_https_to_the_origin_and_are_cached_apart_from_http() {
    let origin = TestOrigin::start().await;
    let ca = ca();
    let edge = edge(&origin, &ca, "").await;
    let addr = edge.tls_addr.unwrap();
    let mut tls = Conn::open(&ca, addr, "a.test", true, &[b"http/1.1"])
        .await
        .client()
        .await;
    let path = "/proto?echo=X-Forwarded-Proto&cc=max-age%3D600";
    for _ in 0..3 {
        let res = tls.get("a.test", path).await;
        assert!(res.body.starts_with("https|"), "{}", res.body);
    }
    // Plain HTTP, same URL: its own answer, never the https one.
    for _ in 0..3 {
        let res = edge
            .get(path)
            .header("host", "a.test")
            .send()
            .await
            .unwrap();
        let body = res.text().await.unwrap();
        assert!(body.starts_with("http|"), "{body}");
    }
}

#[tokio::test]
async fn redirect_http_sends_plain_requests_to_https_with_path_and_query() {
    let origin = TestOrigin::start().await;
    let ca = ca();
    let edge = edge(&origin, &ca, "redirect_http = true").await;
    let port = edge.tls_addr.unwrap().port();
    let res = edge
        .get("/a/b?c=1&d=2")
        .header("host", "a.test:8080")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 308);
    assert_eq!(
        crate::common::header(&res, "location"),
        format!("https://a.test:{port}/a/b?c=1&d=2")
    );
    assert_eq!(origin.total(), 0, "a redirect does not reach the origin");
    // Over TLS the site serves.
    let mut tls = Conn::open(&ca, edge.tls_addr.unwrap(), "a.test", true, &[b"http/1.1"])
        .await
        .client()
        .await;
    assert_eq!(tls.get("a.test", "/a/b?c=1").await.status, 200);
}

#[tokio::test]
async fn an_http2_client_that_sends_no_preface_after_the_handshake_is_dropped() {
    use tokio::io::AsyncReadExt;
    let origin = TestOrigin::start().await;
    let ca = ca();
    let tls = cert_files(&ca, "h2-silent", &["a.test"]);
    let edge = TestEdge::from_toml(&format!(
        "[server]\nlisten_tls = \"127.0.0.1:{}\"\nheader_read_timeout = \"1s\"\n\
         [[site]]\nname = \"a\"\nhosts = [\"a.test\"]\norigin = \"{}\"\n{tls}\n",
        free_port(),
        origin.url
    ))
    .await;
    let mut silent = Conn::open(&ca, edge.tls_addr.unwrap(), "a.test", true, &[b"h2"]).await;
    assert_eq!(silent.alpn().as_deref(), Some(&b"h2"[..]));
    let started = tokio::time::Instant::now();
    let mut buf = [0u8; 64];
    let mut closed = false;
    // The server's SETTINGS never come before the preface: the next thing read is the close.
    for _ in 0..10 {
        match tokio::time::timeout(
            std::time::Duration::from_secs(3),
            silent.stream.read(&mut buf),
        )
        .await
        {
            Ok(Ok(0)) | Ok(Err(_)) => {
                closed = true;
                break;
            }
            Ok(Ok(_)) => continue,
            Err(_) => break,
        }
    }
    assert!(closed, "closed by the head timeout");
    assert!(started.elapsed() < std::time::Duration::from_secs(3));
}

/// An HTTP/2 frame: length, type, flags, stream, payload.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    f.extend_from_slice(payload);
    f
}

#[tokio::test]
async fn a_rapid_reset_client_is_cut_off_with_enhance_your_calm() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let origin = TestOrigin::start().await;
    let ca = ca();
    let edge = edge(&origin, &ca, "").await;
    let conn = Conn::open(&ca, edge.tls_addr.unwrap(), "a.test", true, &[b"h2"]).await;
    let (mut rd, mut wr) = tokio::io::split(conn.stream);

    // GET https://a.test/ (HPACK: static :method GET, :scheme https, :path /, literal
    // :authority), each stream reset (CANCEL) right after it is opened.
    let mut block = vec![0x82, 0x87, 0x84, 0x41, 6];
    block.extend_from_slice(b"a.test");
    let mut flood = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    flood.extend(frame(0x4, 0, 0, &[])); // SETTINGS
    let streams = 5_000u32;
    for i in 0..streams {
        let id = 2 * i + 1;
        flood.extend(frame(0x1, 0x5, id, &block)); // HEADERS, END_STREAM | END_HEADERS
        flood.extend(frame(0x3, 0, id, &8u32.to_be_bytes())); // RST_STREAM CANCEL
    }
    let writer = tokio::spawn(async move {
        // The edge may close while this is still being written.
        let _ = wr.write_all(&flood).await;
        let _ = wr.flush().await;
        wr
    });

    // Read what the edge sends until it closes, bounded.
    let read_all = async {
        let mut out = Vec::new();
        let mut buf = [0u8; 16 * 1024];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
        out
    };
    let out = tokio::time::timeout(std::time::Duration::from_secs(10), read_all)
        .await
        .expect("the edge closes the connection");
    let _wr = writer.await.unwrap();
    let mut at = 0;
    let mut goaway = None;
    while at + 9 <= out.len() {
        let len = (usize::from(out[at]) << 16)
            | (usize::from(out[at + 1]) << 8)
            | usize::from(out[at + 2]);
        let kind = out[at + 3];
        let payload = &out[at + 9..(at + 9 + len).min(out.len())];
        if kind == 0x7 && payload.len() >= 8 {
            goaway = Some(u32::from_be_bytes(payload[4..8].try_into().unwrap()));
        }
        at += 9 + len;
    }
    assert_eq!(goaway, Some(0xb), "GOAWAY with ENHANCE_YOUR_CALM");
    assert!(
        origin.total() < streams as usize / 10,
        "most of the flood never reached the origin: {}",
        origin.total()
    );
}
