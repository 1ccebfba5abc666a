//! Cache-Control directive names are case-insensitive (RFC 9111 section 5.2), and so is the
//! `no-cache` of `Pragma`: every spelling is treated exactly like the lower-case one, on the
//! response and on the request. Each case runs the same two requests against a lower-case
//! path and a differently spelled one and compares what the clients saw, after checking the
//! lower-case run shows the directive's effect (so equal runs cannot both be wrong).

use crate::common::{TestEdge, TestOrigin, header};

/// What one client saw.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    x_cache: String,
    cache_status: String,
    body: String,
}

/// Encodes a value for the test origin's query string.
fn q(v: &str) -> String {
    v.replace('%', "%25")
        .replace(' ', "%20")
        .replace(',', "%2C")
        .replace('=', "%3D")
        .replace(':', "%3A")
        .replace('"', "%22")
}

/// Two GETs of `path?query`, from users `alice` and `bob` (the body echoes the User-Agent),
/// the first with `first_headers`; returns what each saw and how many reached the origin.
async fn run(
    edge: &TestEdge,
    origin: &TestOrigin,
    path: &str,
    query: &str,
    first_headers: &[(&str, &str)],
) -> (Vec<Seen>, usize) {
    let mut seen = Vec::new();
    for (i, who) in ["alice", "bob"].into_iter().enumerate() {
        let mut rb = edge
            .get(&format!("{path}?echo=User-Agent&{query}"))
            .header("user-agent", who);
        if i == 0 {
            for (k, v) in first_headers {
                rb = rb.header(*k, *v);
            }
        }
        let r = rb.send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}?{query}");
        seen.push(Seen {
            x_cache: header(&r, "x-cache"),
            cache_status: header(&r, "cache-status"),
            body: r.text().await.unwrap().chars().take(12).collect(),
        });
    }
    (seen, origin.count(path))
}

/// One response-side case: the query for the lower-case form, the other spellings, and what
/// the lower-case run must show.
struct Case {
    lower: &'static str,
    spellings: &'static [&'static str],
    /// Extra query parameters (validators) for every run.
    extra: &'static str,
    expect: fn(&[Seen], usize) -> bool,
}

const RESPONSE_CASES: &[Case] = &[
    Case {
        lower: "private, max-age=600",
        spellings: &["Private, max-age=600", "PRIVATE, max-age=600"],
        extra: "",
        // Bob gets his own answer, not Alice's.
        expect: |s, n| n == 2 && s[1].body.starts_with("bob|") && s[1].x_cache == "MISS",
    },
    Case {
        lower: "no-store",
        spellings: &["No-Store", "NO-STORE"],
        extra: "lm=1",
        expect: |s, n| n == 2 && s.iter().all(|s| s.cache_status.contains("detail=no-store")),
    },
    Case {
        lower: "no-cache",
        spellings: &["No-Cache", "NO-CACHE"],
        extra: "etag=1",
        // Stored, but the second request is revalidated with the origin.
        expect: |s, n| n == 2 && s[0].cache_status.contains("stored") && s[1].x_cache != "HIT",
    },
    Case {
        lower: "max-age=60",
        spellings: &["MAX-AGE=60", "Max-Age=60"],
        extra: "lm=1",
        // 60 s, not days of heuristic freshness from Last-Modified.
        expect: |s, n| n == 1 && s[0].cache_status.ends_with("stored; ttl=60"),
    },
    Case {
        lower: "max-age=600, s-maxage=5",
        spellings: &["max-age=600, S-MaxAge=5", "max-age=600, S-MAXAGE=5"],
        extra: "lm=1",
        expect: |s, n| n == 1 && s[0].cache_status.ends_with("stored; ttl=5"),
    },
    Case {
        lower: "public, max-age=60",
        spellings: &["PUBLIC, MAX-AGE=60"],
        extra: "",
        expect: |s, n| n == 1 && s[1].x_cache == "HIT" && s[1].body.starts_with("alice|"),
    },
];

#[tokio::test]
async fn response_directives_in_any_case_act_as_in_lower_case() {
    let origin = TestOrigin::start().await;
    let edge = TestEdge::in_front_of(&origin, "").await;
    for (i, case) in RESPONSE_CASES.iter().enumerate() {
        let query = |cc: &str| format!("cc={}&{}", q(cc), case.extra);
        let path = format!("/dc/{i}/lower");
        let (lower, n) = run(&edge, &origin, &path, &query(case.lower), &[]).await;
        assert!((case.expect)(&lower, n), "{}: {lower:?}, {n}", case.lower);
        for (j, spelled) in case.spellings.iter().enumerate() {
            let path = format!("/dc/{i}/{j}");
            let got = run(&edge, &origin, &path, &query(spelled), &[]).await;
            assert_eq!(got, (lower.clone(), n), "{spelled} against {}", case.lower);
        }
    }
}

#[tokio::test]
async fn a_response_pragma_no_cache_in_any_case_acts_as_in_lower_case() {
    let origin = TestOrigin::start().await;
    let edge = TestEdge::in_front_of(&origin, "").await;
    let query = |p: &str| format!("hdr=pragma{}{}&lm=1", q(":"), q(p));
    let (lower, n) = run(&edge, &origin, "/pr/lower", &query("no-cache"), &[]).await;
    assert_eq!(
        n, 2,
        "a Pragma: no-cache response is revalidated: {lower:?}"
    );
    for (j, spelled) in ["No-Cache", "NO-CACHE"].into_iter().enumerate() {
        let path = format!("/pr/{j}");
        let got = run(&edge, &origin, &path, &query(spelled), &[]).await;
        assert_eq!(got, (lower.clone(), n), "{spelled}");
    }
}

#[tokio::test]
async fn a_request_no_store_in_any_case_keeps_its_answer_unstored() {
    let origin = TestOrigin::start().await;
    let edge = TestEdge::in_front_of(&origin, "").await;
    let run_with = |path: &'static str, cc: &'static str| {
        let (edge, origin) = (&edge, &origin);
        async move {
            let h = [("cache-control", cc)];
            run(edge, origin, path, "cc=max-age%3D60", &h).await
        }
    };
    let (lower, n) = run_with("/rq/lower", "no-store").await;
    assert!(
        lower[0].cache_status.contains("detail=request-no-store") && n == 2,
        "{lower:?}, {n}"
    );
    for (path, spelled) in [("/rq/0", "No-Store"), ("/rq/1", "NO-STORE")] {
        let got = run_with(path, spelled).await;
        assert_eq!(got, (lower.clone(), n), "{spelled}");
    }
}

#[tokio::test]
async fn honoured_request_directives_in_any_case_act_as_in_lower_case() {
    let origin = TestOrigin::start().await;
    let site = format!(
        "[[site]]\nname = \"t\"\nhosts = [\"*\"]\norigin = \"{}\"\nhonor_client_no_cache = true",
        origin.url
    );
    let edge = TestEdge::from_toml(&site).await;
    // Each makes a fresh stored copy unusable without revalidation (or bypasses the cache).
    for (i, (name, lower, spellings)) in [
        ("cache-control", "no-cache", &["No-Cache", "NO-CACHE"][..]),
        (
            "cache-control",
            "max-age=0",
            &["MAX-AGE=0", "Max-Age=0"][..],
        ),
        ("pragma", "no-cache", &["No-Cache", "NO-CACHE"][..]),
        ("cache-control", "no-store", &["No-Store", "NO-STORE"][..]),
    ]
    .into_iter()
    .enumerate()
    {
        let mut outcomes = Vec::new();
        for (j, value) in std::iter::once(lower)
            .chain(spellings.iter().copied())
            .enumerate()
        {
            let p = format!("/hn/{i}/{j}?cc=max-age%3D60&etag=1");
            let warm = edge.get(&p).send().await.unwrap();
            assert_eq!(header(&warm, "x-cache"), "MISS");
            warm.bytes().await.unwrap();
            let r = edge.get(&p).header(name, value).send().await.unwrap();
            outcomes.push((header(&r, "x-cache"), origin.count(&format!("/hn/{i}/{j}"))));
            r.bytes().await.unwrap();
        }
        assert_ne!(outcomes[0].0, "HIT", "{name}: {lower} was not honoured");
        assert_eq!(outcomes[0].1, 2, "{name}: {lower} did not reach the origin");
        assert!(
            outcomes.iter().all(|o| *o == outcomes[0]),
            "{name}: {lower} against {spellings:?}: {outcomes:?}"
        );
    }
}
