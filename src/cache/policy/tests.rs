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
