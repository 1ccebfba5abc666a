//! Message framing between origin and client: whatever framing headers an origin sends, each
//! client request gets exactly one response, framed by what the edge really writes, and its
//! body is the one the origin meant (RFC 9112 section 6.3: `Transfer-Encoding` frames a
//! message that also has `Content-Length`). Requests are pipelined on one client connection,
//! so a response that carried more or fewer bytes than it announced shows up as a broken
//! second response.

use std::{collections::HashMap, net::SocketAddr, sync::Arc, time::Duration};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

use crate::common::TestEdge;

/// An origin that answers each path with scripted raw bytes, then closes the connection.
struct RawOrigin {
    url: String,
}

impl RawOrigin {
    async fn start(script: HashMap<String, Vec<u8>>) -> RawOrigin {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let script = Arc::new(script);
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let script = script.clone();
                tokio::spawn(async move {
                    let Some(path) = read_request_path(&mut s).await else {
                        return;
                    };
                    let answer = script.get(&path).cloned().unwrap_or_else(|| {
                        b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                            .to_vec()
                    });
                    let _ = s.write_all(&answer).await;
                    let _ = s.shutdown().await;
                });
            }
        });
        RawOrigin {
            url: format!("http://{addr}"),
        }
    }
}

/// Reads one request head (the edge sends GETs without bodies) and returns its target.
async fn read_request_path(s: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 || buf.len() > 64 << 10 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let line = String::from_utf8_lossy(&buf).lines().next()?.to_string();
    line.split(' ').nth(1).map(str::to_string)
}

/// How the origin frames a body.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Length {
    None,
    Exact,
    Smaller,
    Larger,
    /// Two `Content-Length` fields that disagree.
    Conflicting,
    /// This length, whatever the body.
    Is(usize),
}

#[derive(Debug, Clone, Copy)]
struct Framing {
    length: Length,
    chunked: bool,
    /// Chunks of 1000 bytes rather than one.
    many_chunks: bool,
    size: usize,
    cacheable: bool,
}

impl Framing {
    fn all() -> Vec<Framing> {
        let mut out = Vec::new();
        for length in [
            Length::None,
            Length::Exact,
            Length::Smaller,
            Length::Larger,
            Length::Conflicting,
        ] {
            for chunked in [false, true] {
                for many_chunks in [false, true] {
                    if many_chunks && !chunked {
                        continue;
                    }
                    // 92 bytes takes the small-body path (held back whole), 70,000 the
                    // streaming one (over the 64 KiB hold-back).
                    for size in [92, 70_000] {
                        for cacheable in [true, false] {
                            out.push(Framing {
                                length,
                                chunked,
                                many_chunks,
                                size,
                                cacheable,
                            });
                        }
                    }
                }
            }
        }
        out
    }

    /// The raw response, and the body the origin meant (`None`: the message is broken, so
    /// the client must get an error status or a cut connection, never a complete body).
    fn response(&self, body: &[u8]) -> (Vec<u8>, Option<Vec<u8>>) {
        let n = body.len();
        let mut head = String::from("HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n");
        head.push_str(if self.cacheable {
            "cache-control: max-age=60\r\n"
        } else {
            "cache-control: no-store\r\n"
        });
        head.push_str("connection: close\r\n");
        match self.length {
            Length::None => {}
            Length::Exact => head.push_str(&format!("content-length: {n}\r\n")),
            Length::Smaller => head.push_str(&format!("content-length: {}\r\n", n / 2)),
            Length::Larger => head.push_str(&format!("content-length: {}\r\n", n + 10)),
            Length::Is(v) => head.push_str(&format!("content-length: {v}\r\n")),
            Length::Conflicting => head.push_str(&format!(
                "content-length: {n}\r\ncontent-length: {}\r\n",
                n + 1
            )),
        }
        if self.chunked {
            head.push_str("transfer-encoding: chunked\r\n");
        }
        head.push_str("\r\n");
        let mut raw = head.into_bytes();
        if self.chunked {
            let piece = if self.many_chunks { 1000 } else { n };
            for c in body.chunks(piece) {
                raw.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
                raw.extend_from_slice(c);
                raw.extend_from_slice(b"\r\n");
            }
            raw.extend_from_slice(b"0\r\n\r\n");
        } else {
            raw.extend_from_slice(body);
        }
        let meant = match (self.chunked, self.length) {
            (true, _) => Some(body.to_vec()),
            (false, Length::None | Length::Exact) => Some(body.to_vec()),
            // The length frames it: what follows is not part of this message.
            (false, Length::Smaller) => Some(body[..n / 2].to_vec()),
            (false, Length::Is(v)) if v <= n => Some(body[..v].to_vec()),
            (false, Length::Larger | Length::Conflicting | Length::Is(_)) => None,
        };
        (raw, meant)
    }
}

/// A response as a client reads it off the connection.
#[derive(Debug)]
struct Parsed {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Parsed {
    fn header(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// Parses one response from the front of `buf`; `None` if it is incomplete or malformed.
/// Returns the response and the number of bytes it took.
fn parse_one(buf: &[u8]) -> Option<(Parsed, usize)> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&buf[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()?
        .strip_prefix("HTTP/1.1 ")?
        .get(..3)?
        .parse()
        .ok()?;
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (k, v) = l.split_once(':').unwrap_or((l, ""));
            (k.trim().to_string(), v.trim().to_string())
        })
        .collect();
    let mut p = Parsed {
        status,
        headers,
        body: Vec::new(),
    };
    let te = p.header("transfer-encoding");
    let cl = p.header("content-length");
    assert!(
        te.is_empty() || cl.is_empty(),
        "the edge sent both framings: {:?}",
        p.headers
    );
    if te.iter().any(|t| t.eq_ignore_ascii_case("chunked")) {
        let mut at = end;
        loop {
            let line_end = buf[at..].windows(2).position(|w| w == b"\r\n")? + at;
            let size_text = std::str::from_utf8(&buf[at..line_end]).ok()?;
            let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
            at = line_end + 2;
            if size == 0 {
                // No trailers from the edge: the last chunk is followed by the final CRLF.
                if buf.get(at..at + 2)? != b"\r\n" {
                    return None;
                }
                return Some((p, at + 2));
            }
            p.body.extend_from_slice(buf.get(at..at + size)?);
            at += size + 2;
        }
    }
    let len: usize = match cl.as_slice() {
        [] => 0,
        [one] => one.parse().ok()?,
        _ => panic!(
            "several Content-Length fields from the edge: {:?}",
            p.headers
        ),
    };
    p.body.extend_from_slice(buf.get(end..end + len)?);
    Some((p, end + len))
}

/// Sends `requests` pipelined on one connection (the last closes it) and reads all until the
/// edge closes, bounded to 10 s.
async fn pipelined(edge: SocketAddr, targets: &[String]) -> Vec<u8> {
    let mut req = Vec::new();
    for (i, t) in targets.iter().enumerate() {
        let close = if i + 1 == targets.len() {
            "connection: close\r\n"
        } else {
            ""
        };
        req.extend_from_slice(
            format!("GET {t} HTTP/1.1\r\nhost: framing.test\r\n{close}\r\n").as_bytes(),
        );
    }
    let run = async {
        let mut s = TcpStream::connect(edge).await.unwrap();
        s.write_all(&req).await.unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out).await;
        out
    };
    tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("the edge answered and closed within 10 s (a response longer than its body hangs)")
}

/// A body whose every byte says where it is, so a shift or a mix shows.
fn body_for(case: usize, size: usize) -> Vec<u8> {
    let unit = format!("case-{case:03}:");
    unit.bytes().cycle().take(size).collect()
}

#[tokio::test]
async fn every_origin_framing_reaches_the_client_as_one_honest_response() {
    let cases = Framing::all();
    let mut script = HashMap::new();
    let mut meant = Vec::new();
    for (i, f) in cases.iter().enumerate() {
        let (raw, m) = f.response(&body_for(i, f.size));
        script.insert(format!("/f/{i}"), raw);
        meant.push(m);
        let real = format!("real answer {i}");
        script.insert(
            format!("/real/{i}"),
            format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\ncache-control: no-store\r\nconnection: close\r\n\r\n{real}",
                real.len()
            )
            .into_bytes(),
        );
    }
    let origin = RawOrigin::start(script).await;
    let edge = edge_in_front_of(&origin).await;
    for (i, f) in cases.iter().enumerate() {
        // Twice: the miss, then (for a stored answer) the hit.
        for round in 0..2 {
            let raw = pipelined(edge.addr, &[format!("/f/{i}"), format!("/real/{i}")]).await;
            let what = format!("case {i} round {round}: {f:?}");
            let Some((first, used)) = parse_one(&raw) else {
                // Only a broken origin message may end in a cut connection.
                assert!(meant[i].is_none(), "{what}: no complete first response");
                continue;
            };
            match &meant[i] {
                Some(body) => {
                    assert_eq!(first.status, 200, "{what}: {:?}", first.headers);
                    assert!(
                        first.body == *body,
                        "{what}: body differs ({} bytes)",
                        first.body.len()
                    );
                }
                None => assert!(
                    first.status >= 500,
                    "{what}: a broken answer passed as {}",
                    first.status
                ),
            }
            let (second, used2) = parse_one(&raw[used..])
                .unwrap_or_else(|| panic!("{what}: the second response is not a response"));
            assert_eq!(second.status, 200, "{what}");
            assert_eq!(second.body, format!("real answer {i}").as_bytes(), "{what}");
            assert_eq!(
                used + used2,
                raw.len(),
                "{what}: bytes after the second response"
            );
        }
    }
}

/// The two cases of the report, read through an ordinary client too: a length shorter or
/// longer than the chunked body it came with, on the small-body and the streaming path.
#[tokio::test]
async fn a_length_beside_a_chunked_body_is_dropped_on_both_paths() {
    let small = body_for(1, 92);
    let large = body_for(2, 100_000);
    let chunked = |declared: usize, body: &[u8]| {
        let f = Framing {
            length: Length::Is(declared),
            chunked: true,
            many_chunks: true,
            size: body.len(),
            cacheable: true,
        };
        f.response(body).0
    };
    let cases = [
        ("/short", 2, &small),
        ("/long", 500, &small),
        ("/stream-short", 70_000, &large),
        ("/stream-long", 200_000, &large),
    ];
    let script = cases
        .iter()
        .map(|(p, declared, body)| (p.to_string(), chunked(*declared, body)))
        .collect();
    let origin = RawOrigin::start(script).await;
    let edge = edge_in_front_of(&origin).await;
    for (p, _, body) in cases {
        for round in ["miss", "hit"] {
            let r = edge.get(p).send().await.unwrap();
            assert_eq!(r.status(), 200, "{p} {round}");
            if round == "hit" {
                assert_eq!(crate::common::header(&r, "x-cache"), "HIT", "{p}");
            }
            let announced = r.content_length();
            let got = r
                .bytes()
                .await
                .unwrap_or_else(|e| panic!("{p} {round}: {e}"));
            assert_eq!(got.as_ref(), body.as_slice(), "{p} {round}");
            assert!(
                announced.is_none_or(|n| n == body.len() as u64),
                "{p} {round}: announced {announced:?}"
            );
        }
    }
}

async fn edge_in_front_of(origin: &RawOrigin) -> TestEdge {
    TestEdge::from_toml(&format!(
        "[[site]]\nname = \"t\"\nhosts = [\"*\"]\norigin = \"{}\"\n",
        origin.url
    ))
    .await
}

/// The request direction: a client's length beside its chunked body does not reach the origin
/// (it would frame the de-chunked body there and smuggle the rest as another request), and
/// the client connection closes after the answer.
#[tokio::test]
async fn a_clients_length_beside_a_chunked_body_does_not_reach_the_origin() {
    let origin = crate::common::TestOrigin::start().await;
    let edge = TestEdge::in_front_of(&origin, "").await;
    let raw = crate::common::raw_request(
        edge.addr,
        b"POST /up HTTP/1.1\r\nhost: framing.test\r\ncontent-length: 3\r\n\
          transfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n\
          GET /after?cc=no-store HTTP/1.1\r\nhost: framing.test\r\nconnection: close\r\n\r\n",
    )
    .await;
    let (first, used) =
        parse_one(raw.as_bytes()).unwrap_or_else(|| panic!("no response to the POST: {raw:?}"));
    if first.status == 400 {
        return; // refused outright: nothing reached the origin
    }
    assert_eq!(first.status, 200, "{raw}");
    let seen = origin
        .last_headers("/up")
        .expect("the POST reached the origin");
    assert!(
        seen.get("content-length").is_none_or(|v| v == "5"),
        "the origin was told {:?}",
        seen.get("content-length")
    );
    // RFC 9112 section 6.1: the connection closes after the answer, so nothing the client
    // sent after that body is read as a request.
    assert_eq!(used, raw.len(), "more after the first response: {raw}");
    assert_eq!(origin.count("/up"), 1);
    assert_eq!(origin.count("/after"), 0);
}

#[tokio::test]
async fn interim_responses_are_dropped_and_the_final_one_is_served_and_stored() {
    // A 103 Early Hints (and a 100) before the 200: reqwest reads past interim responses, so
    // the client gets the final answer only, and only that is stored.
    let final_body = "the page";
    let raw = format!(
        "HTTP/1.1 103 Early Hints\r\nLink: </app.css>; rel=preload\r\n\r\n\
         HTTP/1.1 100 Continue\r\n\r\n\
         HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{final_body}",
        final_body.len()
    );
    let script = HashMap::from([("/hints".to_string(), raw.into_bytes())]);
    let origin = RawOrigin::start(script).await;
    let edge = edge_in_front_of(&origin).await;
    for want in ["MISS", "HIT"] {
        let r = edge.get("/hints").send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(crate::common::header(&r, "x-cache"), want);
        assert!(
            r.headers().get("link").is_none(),
            "the 103's fields are not the 200's"
        );
        assert_eq!(r.text().await.unwrap(), final_body);
    }
}
