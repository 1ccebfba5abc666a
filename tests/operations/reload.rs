//! Reload (issue 19): `POST /reload` (and SIGHUP, in the binary's tests) reads the config file
//! again. Sites, rules, lists and limits change without dropping the cache or a request in
//! flight; an invalid file is refused with check-config's own message and the old config
//! goes on.

use crate::common::{TestEdge, TestOrigin};
use crate::{TOKEN, call};
use edgecache::admin::{AdminState, app};
use http::StatusCode;
use std::{
    path::PathBuf,
    sync::atomic::{AtomicUsize, Ordering},
};

fn config_file(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "edgecache-test-{}-reload-{name}.toml",
        std::process::id()
    ))
}

/// A config of one site `a` in front of `origin`, and `extra` after it.
fn config(origin: &TestOrigin, extra: &str) -> String {
    format!(
        "[[site]]\nname = \"a\"\nhosts = [\"a.example\"]\norigin = \"{}\"\n{extra}\n",
        origin.url
    )
}

/// `GET path` for `host`: status and body.
async fn get(edge: &TestEdge, host: &str, path: &str) -> (u16, String) {
    match edge.get(path).header("host", host).send().await {
        Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
        Err(e) => (0, e.to_string()),
    }
}

#[tokio::test]
async fn a_good_file_and_a_bad_one_reload_during_traffic_and_no_request_fails() {
    let origin = TestOrigin::start().await;
    let file = config_file("traffic");
    std::fs::write(&file, config(&origin, "")).unwrap();
    let edge = TestEdge::from_file(&file, origin.clock()).await;
    let api = app(AdminState::new(edge.state.clone(), Some(TOKEN))
        .with_reloader(edge.reloader.clone().unwrap()));
    let kept = "/r/kept?cc=max-age%3D600";
    assert_eq!(get(&edge, "a.example", kept).await.0, 200);
    assert_eq!(
        get(&edge, "b.example", "/r/b").await.0,
        421,
        "no site b yet"
    );

    // Traffic all along: HITs from four clients, counted by the phase they were sent in
    // (0 before the reloads, 1 after the good one, 2 after the bad one, 3 done).
    let edge = std::sync::Arc::new(edge);
    let phase = std::sync::Arc::new(AtomicUsize::new(0));
    let traffic: Vec<_> = (0..4)
        .map(|_| {
            let (edge, phase) = (edge.clone(), phase.clone());
            tokio::spawn(async move {
                let (mut failed, mut sent) = (Vec::new(), [0usize; 3]);
                for _ in 0..20_000 {
                    let p = phase.load(Ordering::Acquire);
                    if p == 3 {
                        break;
                    }
                    let (status, body) = get(&edge, "a.example", kept).await;
                    if status != 200 {
                        failed.push(format!("{status} {body}"));
                    }
                    sent[p] += 1;
                }
                (failed, sent)
            })
        })
        .collect();
    // Let them get going before anything changes.
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    // And one slow MISS in flight across the reload.
    let slow = {
        let edge = edge.clone();
        tokio::spawn(async move { get(&edge, "a.example", "/r/slow?delay=400&size=64").await })
    };
    for _ in 0..200 {
        if origin.count("/r/slow") == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(
        origin.count("/r/slow"),
        1,
        "the slow request reached the origin"
    );

    // A good file: a second site, a list on the first, and a key only a restart changes.
    std::fs::write(
        &file,
        config(
            &origin,
            &format!(
                "deny = [\"192.0.2.0/24\"]\n\
                 [[site]]\nname = \"b\"\nhosts = [\"b.example\"]\norigin = \"{}\"\n\
                 [cache]\nmax_memory = \"64MiB\"\n",
                origin.url
            ),
        ),
    )
    .unwrap();
    let (status, body) = call(&api, "POST", "/reload", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["reloaded"], true);
    assert_eq!(body["sites"], 2);
    assert_eq!(
        body["restart_needed"],
        serde_json::json!(["cache.max_memory"])
    );
    assert_eq!(
        get(&edge, "b.example", "/r/b").await.0,
        200,
        "site b is served"
    );
    phase.store(1, Ordering::Release);
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;

    // A bad file: refused with check-config's words; the config of before goes on.
    std::fs::write(
        &file,
        config(
            &origin,
            "[[site]]\nname = \"c\"\nhosts = []\norigin = \"http://127.0.0.1:9\"\n",
        ),
    )
    .unwrap();
    let (status, body) = call(&api, "POST", "/reload", None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["reloaded"], false);
    let check = std::process::Command::new(env!("CARGO_BIN_EXE_edgecache"))
        .arg("check-config")
        .arg(&file)
        .output()
        .unwrap();
    assert!(!check.status.success());
    assert_eq!(
        body["error"].as_str().unwrap(),
        String::from_utf8_lossy(&check.stderr).trim_end(),
        "the same message check-config prints"
    );
    assert_eq!(
        get(&edge, "b.example", "/r/b").await.0,
        200,
        "the good config still runs"
    );
    phase.store(2, Ordering::Release);
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    phase.store(3, Ordering::Release);

    let (status, body) = slow.await.unwrap();
    assert_eq!(
        (status, body.len()),
        (200, 64),
        "the request in flight finished"
    );
    for t in traffic {
        let (failed, sent) = t.await.unwrap();
        assert!(
            failed.is_empty(),
            "requests failed during the reloads: {failed:?}"
        );
        assert!(
            sent.iter().all(|n| *n > 0),
            "traffic in every phase: {sent:?}"
        );
    }
    // The cache outlived both reloads: one origin request for the URL in all.
    assert_eq!(origin.count("/r/kept"), 1);
    let _ = std::fs::remove_file(&file);
}

#[tokio::test]
async fn a_reload_changes_a_sites_lists_and_limits_for_the_next_request() {
    let origin = TestOrigin::start().await;
    let file = config_file("rules");
    let trust = "[server]\ntrusted_proxies = [\"127.0.0.1\"]\n";
    std::fs::write(&file, format!("{trust}{}", config(&origin, ""))).unwrap();
    let edge = TestEdge::from_file(&file, origin.clock()).await;
    let reloader = edge.reloader.clone().unwrap();
    let from = |ip: &'static str| {
        edge.get("/r/x?cc=max-age%3D60")
            .header("host", "a.example")
            .header("x-forwarded-for", ip)
            .send()
    };
    assert_eq!(from("192.0.2.1").await.unwrap().status(), 200);
    std::fs::write(
        &file,
        format!(
            "{trust}{}",
            config(
                &origin,
                "deny = [\"192.0.2.0/24\"]\nrate_limit = { requests = 1, per = \"1m\" }"
            )
        ),
    )
    .unwrap();
    let r = reloader.reload().await.unwrap();
    assert!(r.restart_needed.is_empty(), "{r:?}");
    assert_eq!(from("192.0.2.1").await.unwrap().status(), 403);
    assert_eq!(from("198.51.100.1").await.unwrap().status(), 200);
    assert_eq!(from("198.51.100.1").await.unwrap().status(), 429);
    let _ = std::fs::remove_file(&file);
}

#[tokio::test]
async fn without_a_config_file_there_is_nothing_to_reload() {
    let (_origin, _edge, api) = crate::setup().await;
    let (status, body) = call(&api, "POST", "/reload", None).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["reloaded"], false);
    assert!(body["error"].as_str().unwrap().contains("without --config"));
}
