//! The verdicts and header rules of `policy`, each on an explicit `now`.

use super::directives::lowercase_names;
use super::*;

use crate::test_util::headers as hm;

fn eval(req: &[(&str, &str)], res: &[(&str, &str)]) -> Result<Freshness, NotStorable> {
    let (m, u, rh) = (Method::GET, Uri::from_static("/x"), hm(req));
    let r = PolicyRequest {
        method: &m,
        uri: &u,
        headers: &rh,
    };
    let h = hm(res);
    let sc = h.contains_key(header::SET_COOKIE);
    evaluate(
        &r,
        StatusCode::OK,
        &h,
        sc,
        SiteRules::default(),
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000),
    )
}

#[test]
fn response_directives_are_read_in_one_pass_as_a_scan_reads_them() {
    let h = hm(&[
        (
            "cache-control",
            "Public, MAX-AGE=60, Stale-While-Revalidate=\"30\"",
        ),
        (
            "cache-control",
            "stale-while-revalidate=99, stale-if-error=x, s-maxage=5",
        ),
    ]);
    let cc = h.get_all(header::CACHE_CONTROL);
    let d = ResponseDirectives::parse(cc.iter());
    assert!(d.public && d.s_maxage);
    assert!(!d.private && !d.no_store && !d.no_cache && !d.must_revalidate);
    // The first occurrence counts, quotes removed, as `directive` finds it.
    assert_eq!(d.stale_while_revalidate, Some(Some("30")));
    assert_eq!(
        d.stale_while_revalidate,
        directive(cc.iter(), "stale-while-revalidate")
    );
    assert_eq!(delta(d.stale_while_revalidate), Duration::from_secs(30));
    // A malformed value is no grace at all.
    assert_eq!(delta(d.stale_if_error), Duration::ZERO);
    let f = eval(&[], &[("cache-control", "max-age=60, Must-Revalidate")]).unwrap();
    assert!(f.must_revalidate);
    let f = eval(&[], &[("cache-control", "max-age=60, stale-if-error=120")]).unwrap();
    assert!(!f.must_revalidate);
    assert_eq!(f.stale_if_error, Duration::from_secs(120));
}

#[test]
fn directive_names_are_read_in_any_case() {
    let lm = ("last-modified", "Mon, 12 Jan 1970 13:30:00 GMT");
    let date = ("date", "Mon, 12 Jan 1970 13:46:40 GMT");
    for (spelled, lower) in [
        ("Private, max-age=600", "private, max-age=600"),
        ("PRIVATE", "private"),
        ("No-Store", "no-store"),
        ("NO-STORE, max-age=60", "no-store, max-age=60"),
        ("No-Cache", "no-cache"),
        ("NO-CACHE, max-age=60", "no-cache, max-age=60"),
        ("MAX-AGE=60", "max-age=60"),
        ("max-age=600, S-MaxAge=5", "max-age=600, s-maxage=5"),
        (
            "Proxy-Revalidate, MAX-AGE=60",
            "proxy-revalidate, max-age=60",
        ),
        (
            "no-cache=\"Set-Cookie, X-A\", MAX-AGE=9",
            "no-cache=\"Set-Cookie, X-A\", max-age=9",
        ),
    ] {
        let res = |cc| [("cache-control", cc), lm, date, ("etag", "\"a\"")];
        assert_eq!(
            eval(&[], &res(spelled)),
            eval(&[], &res(lower)),
            "{spelled}"
        );
    }
    // The lower-case forms do what they say (so equal verdicts are the right ones).
    let res = |cc| [("cache-control", cc), lm, date];
    assert_eq!(eval(&[], &res("private")), Err(NotStorable::Private));
    assert_eq!(
        eval(&[], &res("MAX-AGE=60")).unwrap().fresh_for.as_secs(),
        60
    );
    // Pragma's no-cache, and the request's no-store.
    let pragma = |p| [("pragma", p), lm, date];
    assert_eq!(
        eval(&[], &pragma("No-Cache")),
        eval(&[], &pragma("no-cache"))
    );
    assert!(eval(&[], &pragma("no-cache")).unwrap().fresh_for.is_zero());
    for spelled in ["No-Store", "NO-STORE"] {
        assert_eq!(
            eval(
                &[("cache-control", spelled)],
                &[("cache-control", "max-age=60")]
            ),
            Err(NotStorable::RequestNoStore),
            "{spelled}"
        );
    }
    // A value keeps its case; only names are lowered.
    let v = HeaderValue::from_static("No-Cache=\"X-Up, Set-Cookie\", Max-Age=5");
    assert_eq!(
        lowercase_names(&v),
        "no-cache=\"X-Up, Set-Cookie\", max-age=5"
    );
    assert!(lowercase_directives(&hm(&[("cache-control", "max-age=5")])).is_none());
}

#[test]
fn max_age_and_s_maxage() {
    assert_eq!(
        eval(&[], &[("cache-control", "max-age=60")])
            .unwrap()
            .fresh_for
            .as_secs(),
        60
    );
    assert_eq!(
        eval(&[], &[("cache-control", "max-age=60, s-maxage=5")])
            .unwrap()
            .fresh_for
            .as_secs(),
        5
    );
    assert_eq!(
        eval(&[], &[("cache-control", "max-age=60"), ("age", "20")])
            .unwrap()
            .fresh_for
            .as_secs(),
        40
    );
}

#[test]
fn proxy_revalidate_keeps_the_freshness_and_forbids_serving_stale() {
    let f = eval(&[], &[("cache-control", "max-age=600, Proxy-Revalidate")]).unwrap();
    assert_eq!(f.fresh_for, Duration::from_secs(600));
    assert!(f.must_revalidate);
    // Alone, it leaves no freshness: stored only with a validator.
    assert_eq!(
        eval(&[], &[("cache-control", "proxy-revalidate")]),
        Err(NotStorable::NoFreshness)
    );
    let f = eval(
        &[],
        &[("cache-control", "proxy-revalidate"), ("etag", "\"v1\"")],
    )
    .unwrap();
    assert!(f.fresh_for.is_zero() && f.must_revalidate);
}

#[test]
fn forbidden_responses_are_refused_with_a_reason() {
    assert_eq!(
        eval(&[], &[("cache-control", "no-store")]),
        Err(NotStorable::NoStore)
    );
    assert_eq!(
        eval(&[], &[("cache-control", "private, max-age=60")]),
        Err(NotStorable::Private)
    );
    assert_eq!(
        eval(
            &[("cache-control", "no-store")],
            &[("cache-control", "max-age=60")]
        ),
        Err(NotStorable::RequestNoStore)
    );
    // The response's own reason wins: it holds for every request to the URL.
    assert_eq!(
        eval(
            &[("cache-control", "no-store")],
            &[("cache-control", "private, max-age=60")]
        ),
        Err(NotStorable::Private)
    );
    assert_eq!(
        eval(
            &[("authorization", "Bearer x")],
            &[("cache-control", "max-age=60")]
        ),
        Err(NotStorable::Authorization)
    );
    assert!(
        eval(
            &[("authorization", "Bearer x")],
            &[("cache-control", "public, max-age=60")]
        )
        .is_ok()
    );
    assert_eq!(
        eval(
            &[],
            &[("cache-control", "max-age=60"), ("set-cookie", "a=b")]
        ),
        Err(NotStorable::SetCookie)
    );
    assert_eq!(
        eval(&[("cookie", "s=1")], &[("cache-control", "max-age=60")]),
        Err(NotStorable::Cookie)
    );
    assert!(
        eval(
            &[("cookie", "s=1")],
            &[("cache-control", "public, max-age=60")]
        )
        .is_ok()
    );
    assert_eq!(
        eval(&[], &[("cache-control", "max-age=60"), ("vary", "*")]),
        Err(NotStorable::VaryStar)
    );
    assert_eq!(eval(&[], &[]), Err(NotStorable::NoFreshness));
}

#[test]
fn the_fill_verdict_adds_vary_star_and_size_to_the_policys() {
    let f = eval(&[], &[("cache-control", "max-age=60")]);
    assert_eq!(fill_verdict(f, true, Some(10), 10), f);
    assert_eq!(
        fill_verdict(f, false, Some(10), 10),
        Err(NotStorable::VaryStar)
    );
    assert_eq!(
        fill_verdict(f, true, Some(11), 10),
        Err(NotStorable::TooLarge)
    );
    assert_eq!(
        fill_verdict(f, true, None, 10),
        f,
        "unknown length: decided later"
    );
    let private = Err(NotStorable::Private);
    assert_eq!(fill_verdict(private, false, Some(11), 10), private);
    assert!(NotStorable::Cookie.is_transient() && !NotStorable::TooLarge.is_transient());
}

#[test]
fn no_cache_with_validator_is_stored_for_revalidation_only() {
    let f = eval(&[], &[("cache-control", "no-cache"), ("etag", "\"a\"")]).unwrap();
    assert!(f.fresh_for.is_zero() && f.must_revalidate && f.has_validator);
}

#[test]
fn stale_windows() {
    let f = eval(
        &[],
        &[(
            "cache-control",
            "max-age=10, stale-while-revalidate=30, stale-if-error=300",
        )],
    )
    .unwrap();
    let t = |s| f.response_time + Duration::from_secs(s);
    assert!(f.is_fresh(t(9)) && !f.is_fresh(t(10)));
    assert_eq!(f.ttl_secs(t(4)), 6);
    assert_eq!(f.ttl_secs(t(15)), -5);
    assert!(f.within_stale_while_revalidate(t(35)) && !f.within_stale_while_revalidate(t(45)));
    assert!(f.within_stale_if_error(t(300)) && !f.within_stale_if_error(t(320)));
    assert_eq!(f.keep_for(Duration::from_secs(5)), Duration::from_secs(310));
    let m = eval(
        &[],
        &[(
            "cache-control",
            "max-age=10, must-revalidate, stale-if-error=300",
        )],
    )
    .unwrap();
    assert!(!m.within_stale_if_error(t(11)));
}

#[test]
fn expires_and_heuristics() {
    let f = eval(
        &[],
        &[
            ("date", "Mon, 12 Jan 1970 13:46:40 GMT"),
            ("expires", "Mon, 12 Jan 1970 13:47:40 GMT"),
        ],
    )
    .unwrap();
    assert_eq!(f.fresh_for.as_secs(), 60);
    // 10% of the time since Last-Modified (1000 s) = 100 s.
    let f = eval(
        &[],
        &[
            ("date", "Mon, 12 Jan 1970 13:46:40 GMT"),
            ("last-modified", "Mon, 12 Jan 1970 13:30:00 GMT"),
        ],
    )
    .unwrap();
    assert_eq!(f.fresh_for.as_secs(), 100);
}

#[test]
fn hostile_numbers_are_clamped_not_overflowed() {
    let f = eval(
        &[],
        &[(
            "cache-control",
            "max-age=18446744073709551615, stale-while-revalidate=18446744073709551615",
        )],
    )
    .unwrap();
    assert_eq!(f.fresh_for, MAX_DELTA);
    assert_eq!(f.stale_while_revalidate, MAX_DELTA);
    assert!(f.keep_until(Duration::from_secs(u64::MAX / 4)) > f.response_time);
    let f = eval(
        &[],
        &[
            ("cache-control", "max-age=60"),
            ("etag", "\"a\""),
            ("age", "18446744073709551615"),
        ],
    )
    .unwrap();
    assert_eq!(
        f.age(f.response_time + Duration::from_secs(10)),
        MAX_DELTA + Duration::from_secs(10)
    );
    assert!(!f.is_fresh(f.response_time));
}

#[test]
fn s_maxage_forbids_serving_stale() {
    let f = eval(
        &[],
        &[(
            "cache-control",
            "s-maxage=10, stale-while-revalidate=60, stale-if-error=300",
        )],
    )
    .unwrap();
    assert!(f.must_revalidate);
    assert!(!f.within_stale_if_error(f.response_time + Duration::from_secs(20)));
}

#[test]
fn not_modified_merge_keeps_body_fields() {
    let stored = hm(&[
        ("etag", "\"a\""),
        ("content-length", "5"),
        ("cache-control", "max-age=1"),
        ("x-a", "1"),
    ]);
    let nm = hm(&[
        ("etag", "\"a\""),
        ("content-length", "0"),
        ("cache-control", "max-age=9"),
    ]);
    let m = merge_not_modified(&stored, &nm);
    assert_eq!(m["content-length"], "5");
    assert_eq!(m["cache-control"], "max-age=9");
    assert_eq!(m["x-a"], "1");
    assert!(not_modified_matches(&stored, &nm));
    assert!(!not_modified_matches(&stored, &hm(&[("etag", "\"b\"")])));
}

/// `now` of these tests as the HTTP date origins would send.
const NOW_DATE: &str = "Mon, 12 Jan 1970 13:46:40 GMT";

fn eval_as(status: u16, res: &[(&str, &str)], rules: SiteRules) -> Result<Freshness, NotStorable> {
    let (m, u, rh) = (Method::GET, Uri::from_static("/x"), HeaderMap::new());
    let r = PolicyRequest {
        method: &m,
        uri: &u,
        headers: &rh,
    };
    let status = StatusCode::from_u16(status).unwrap();
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
    evaluate(&r, status, &hm(res), false, rules, now)
}

/// Seconds of freshness, or the refusal.
fn fresh(status: u16, res: &[(&str, &str)]) -> Result<u64, NotStorable> {
    eval_as(status, res, SiteRules::default()).map(|f| f.fresh_for.as_secs())
}

#[test]
fn any_final_status_with_explicit_freshness_is_stored() {
    for status in [200, 203, 299, 400, 403, 404, 410, 500, 502, 503, 504, 599] {
        assert_eq!(
            fresh(status, &[("cache-control", "max-age=60")]),
            Ok(60),
            "{status}"
        );
        assert_eq!(
            fresh(status, &[("cache-control", "s-maxage=30")]),
            Ok(30),
            "{status}"
        );
        let expires = [
            ("date", NOW_DATE),
            ("expires", "Mon, 12 Jan 1970 13:47:40 GMT"),
        ];
        assert_eq!(fresh(status, &expires), Ok(60), "{status}");
    }
    // Without it: no heuristic freshness outside RFC 9110 section 15.1's statuses.
    let lm = [
        ("date", NOW_DATE),
        ("last-modified", "Mon, 12 Jan 1970 13:30:00 GMT"),
    ];
    for status in [400, 403, 500, 502, 503, 504, 299, 599] {
        assert!(fresh(status, &lm).is_err(), "{status}");
        assert!(
            fresh(status, &[("cache-control", "public")]).is_err(),
            "{status}"
        );
    }
    for status in [200, 404, 410] {
        assert_eq!(fresh(status, &lm), Ok(100), "{status}: 10 % of 1000 s");
    }
    // Interim responses are never stored, whatever they say.
    assert_eq!(
        fresh(103, &[("cache-control", "max-age=60")]),
        Err(NotStorable::Status)
    );
    // Refusals keep their own reasons on such statuses.
    assert_eq!(
        fresh(503, &[("cache-control", "max-age=60, private")]),
        Err(NotStorable::Private)
    );
}

#[test]
fn freshness_given_in_an_untrusted_form_makes_the_response_stale() {
    for cc in [
        "max-age=\"3600\"",
        "max-age=1.5",
        "max-age=100a",
        "max-age=-1",
        "max-age=",
        "max-age",
        "max-age=60, max-age=3600",
        "s-maxage=60, s-maxage=61",
        "s-maxage=x",
    ] {
        assert_eq!(
            fresh(200, &[("cache-control", cc)]),
            Err(NotStorable::NoFreshness),
            "{cc}"
        );
        // With a validator it is kept, to be revalidated before each use.
        let f = fresh(200, &[("cache-control", cc), ("etag", "\"v\"")]);
        assert_eq!(f, Ok(0), "{cc}");
    }
    // The same value twice is no contradiction, and a leading zero is still a number.
    assert_eq!(
        fresh(
            200,
            &[
                ("cache-control", "max-age=60"),
                ("cache-control", "max-age=060")
            ]
        ),
        Ok(60)
    );
}

#[test]
fn an_invalid_expires_means_already_expired() {
    for expires in [
        "0",
        "-1",
        "tomorrow",
        "Mon,  12 Jan 1970 13:47:40 GMT",
        "Mon, 12 Jan 1970 13:47:40",
        "Mon, 32 Jan 1970 13:47:40 GMT",
    ] {
        let res = [("date", NOW_DATE), ("expires", expires)];
        assert_eq!(fresh(200, &res), Err(NotStorable::NoFreshness), "{expires}");
        // Not even heuristically fresh, Last-Modified or not.
        let lm = ("last-modified", "Mon, 12 Jan 1970 13:30:00 GMT");
        let res = [("date", NOW_DATE), ("expires", expires), lm];
        assert_eq!(fresh(200, &res), Ok(0), "{expires}");
    }
    // Two that disagree: stale too.
    let two = [
        ("date", NOW_DATE),
        ("expires", "Mon, 12 Jan 1970 13:47:40 GMT"),
        ("expires", "Mon, 12 Jan 1970 14:47:40 GMT"),
    ];
    assert_eq!(fresh(200, &two), Err(NotStorable::NoFreshness));
    // max-age wins over a broken Expires.
    let res = [("cache-control", "max-age=60"), ("expires", "0")];
    assert_eq!(fresh(200, &res), Ok(60));
    // The obsolete date formats a recipient must accept (RFC 9110 section 5.6.7) are valid.
    for ok in ["Monday, 12-Jan-70 13:47:40 GMT", "Mon Jan 12 13:47:40 1970"] {
        assert_eq!(
            fresh(200, &[("date", NOW_DATE), ("expires", ok)]),
            Ok(60),
            "{ok}"
        );
    }
}

#[test]
fn the_first_of_several_ages_counts_and_date_drives_the_apparent_age() {
    let age = |res: &[(&str, &str)]| eval_as(200, res, SiteRules::default()).unwrap();
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
    let cc = ("cache-control", "max-age=60");
    let f = age(&[cc, ("age", "10, 20")]);
    assert_eq!((f.age(now).as_secs(), f.ttl_secs(now)), (10, 50));
    let f = age(&[cc, ("age", "10"), ("age", "20")]);
    assert_eq!((f.age(now).as_secs(), f.ttl_secs(now)), (10, 50));
    let f = age(&[cc, ("age", "x, 20")]);
    assert_eq!(f.age(now).as_secs(), 0);
    // A Date 20 s in the past: the response is 20 s old on arrival.
    let f = age(&[cc, ("date", "Mon, 12 Jan 1970 13:46:20 GMT")]);
    assert_eq!((f.age(now).as_secs(), f.ttl_secs(now)), (20, 40));
    // With Expires a minute after that Date, it expires at Expires: 40 s from now.
    let f = age(&[
        ("date", "Mon, 12 Jan 1970 13:46:20 GMT"),
        ("expires", "Mon, 12 Jan 1970 13:47:20 GMT"),
    ]);
    assert_eq!((f.age(now).as_secs(), f.ttl_secs(now)), (20, 40));
    // A Date in the future ages nothing.
    let f = age(&[cc, ("date", "Mon, 12 Jan 1970 13:50:00 GMT")]);
    assert_eq!((f.age(now).as_secs(), f.ttl_secs(now)), (0, 60));
}

#[test]
fn negative_ttl_keeps_a_404_or_410_that_says_nothing() {
    let rules = SiteRules {
        negative_ttl: Duration::from_secs(10),
        ..SiteRules::default()
    };
    let fresh_with =
        |status, res: &[(&str, &str)]| eval_as(status, res, rules).map(|f| f.fresh_for.as_secs());
    assert_eq!(fresh_with(404, &[]), Ok(10));
    assert_eq!(fresh_with(410, &[("date", NOW_DATE)]), Ok(10));
    // The origin's own word wins, and other statuses are untouched.
    assert_eq!(fresh_with(404, &[("cache-control", "max-age=60")]), Ok(60));
    assert_eq!(
        fresh_with(404, &[("cache-control", "no-store")]),
        Err(NotStorable::NoStore)
    );
    assert_eq!(fresh_with(200, &[]), Err(NotStorable::NoFreshness));
    assert_eq!(fresh_with(500, &[]), Err(NotStorable::Status));
    // Off by default.
    assert_eq!(fresh(404, &[]), Err(NotStorable::NoFreshness));
}
