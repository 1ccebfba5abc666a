//! The TLS listener's certificates: chosen by SNI, the first site's for no SNI, bad files
//! refused naming them, renewed ones served after a reload while old connections go on.

use crate::common::{TestEdge, TestOrigin, free_port};
use crate::{Conn, ca, cert_files, write_temp};
use std::time::Duration;

/// Sites `a` (`a.test`) and `b` (`*.b.test`) in front of `origin`, each with its certificate
/// lines, on a TLS listener at a free port.
fn two_sites(origin: &TestOrigin, a_tls: &str, b_tls: &str) -> String {
    format!(
        "[server]\nlisten_tls = \"127.0.0.1:{}\"\n\
         [[site]]\nname = \"a\"\nhosts = [\"a.test\"]\norigin = \"{url}\"\n{a_tls}\n\
         [[site]]\nname = \"b\"\nhosts = [\"*.b.test\"]\norigin = \"{url}\"\n{b_tls}\n",
        free_port(),
        url = origin.url
    )
}

#[tokio::test]
async fn sni_picks_the_sites_certificate_and_no_sni_gets_the_first_sites() {
    let origin = TestOrigin::start().await;
    let ca = ca();
    let (a, b) = (
        cert_files(&ca, "sni-a", &["a.test"]),
        cert_files(&ca, "sni-b", &["*.b.test"]),
    );
    let edge = TestEdge::from_toml(&two_sites(&origin, &a, &b)).await;
    let addr = edge.tls_addr.unwrap();

    let to_a = Conn::open(&ca, addr, "a.test", true, &[b"http/1.1"]).await;
    let to_b = Conn::open(&ca, addr, "www.b.test", true, &[b"http/1.1"]).await;
    assert_ne!(to_a.cert(), to_b.cert(), "each site its own certificate");
    let a_cert = to_a.cert();
    // Verified against each name by the client: the right certificate for each.
    let mut client = to_b.client().await;
    let res = client.get("www.b.test", "/x?cc=max-age%3D60").await;
    assert_eq!(res.status, 200);

    // A connection made for one site does not serve another's requests (domain fronting):
    // 421, for the client to retry on a connection of its own.
    let mut fronted = to_a.client().await;
    assert_eq!(fronted.get("www.b.test", "/x").await.status, 421);
    assert_eq!(fronted.get("a.test", "/x").await.status, 200);
    assert_eq!(
        client.get("other.b.test", "/x").await.status,
        200,
        "same site"
    );

    // No SNI at all: the first site's certificate (verified as a.test), and any site's host.
    let bare = Conn::open(&ca, addr, "a.test", false, &[b"http/1.1"]).await;
    assert_eq!(bare.cert(), a_cert);
    let mut bare = bare.client().await;
    assert_eq!(bare.get("www.b.test", "/x").await.status, 200);
}

#[tokio::test]
async fn a_missing_or_mismatched_certificate_file_is_refused_naming_it() {
    let ca = ca();
    let site = |tls: &str| {
        format!(
            "[server]\nlisten_tls = \"127.0.0.1:0\"\n\
             [[site]]\nname = \"a\"\nhosts = [\"a.test\"]\norigin = \"http://127.0.0.1:9\"\n{tls}"
        )
    };
    let missing = "/nonexistent/edgecache-a.crt";
    let e = edgecache::config::Config::from_toml(&site(&format!(
        "tls_cert = \"{missing}\"\ntls_key = \"{missing}.key\"\n"
    )))
    .unwrap_err()
    .to_string();
    assert!(
        e.starts_with("site[0].tls_cert: ") && e.contains(missing),
        "{e}"
    );

    // A key that is another certificate's.
    let (cert, _) = ca.issue(&["a.test"]);
    let (_, other_key) = ca.issue(&["a.test"]);
    let c = write_temp("mismatch.crt", &cert);
    let k = write_temp("mismatch.key", &other_key);
    let toml = site(&format!("tls_cert = {c:?}\ntls_key = {k:?}\n"));
    let e = edgecache::config::Config::from_toml(&toml)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("site[0].tls_key: ") && e.contains(&k.display().to_string()),
        "{e}"
    );
    // check-config says the same, naming the config file too.
    let file = write_temp("mismatch.toml", &toml);
    let e = edgecache::app::check_config(&file).unwrap_err();
    assert!(
        e.contains("site[0].tls_key") && e.contains(&k.display().to_string()),
        "{e}"
    );

    // A file that is not a certificate at all.
    let junk = write_temp("junk.crt", "not a certificate\n");
    let e = edgecache::config::Config::from_toml(&site(&format!(
        "tls_cert = {junk:?}\ntls_key = {k:?}\n"
    )))
    .unwrap_err()
    .to_string();
    assert!(e.contains(&junk.display().to_string()), "{e}");
}

#[tokio::test]
async fn a_renewed_certificate_is_served_after_reload_while_an_old_connection_keeps_working() {
    let origin = TestOrigin::start().await;
    let ca = ca();
    let a = cert_files(&ca, "renew-a", &["a.test"]);
    let b = cert_files(&ca, "renew-b", &["*.b.test"]);
    let file = write_temp("renew.toml", &two_sites(&origin, &a, &b));
    let edge = TestEdge::from_file(&file, origin.clock()).await;
    let addr = edge.tls_addr.unwrap();
    let old = Conn::open(&ca, addr, "a.test", true, &[b"http/1.1"]).await;
    let old_cert = old.cert();
    let mut old = old.client().await;
    assert_eq!(old.get("a.test", "/r/1").await.status, 200);

    // Renewed in place (same paths, as certbot does), then reloaded.
    let renewed = cert_files(&ca, "renew-a", &["a.test"]);
    assert_eq!(renewed, a, "same paths");
    let reloader = edge.reloader.clone().unwrap();
    reloader
        .reload()
        .await
        .expect("reload takes the renewed certificate");
    let new = Conn::open(&ca, addr, "a.test", true, &[b"http/1.1"]).await;
    assert_ne!(
        new.cert(),
        old_cert,
        "a new handshake gets the renewed certificate"
    );
    // The connection from before the reload goes on.
    for i in 2..5 {
        assert_eq!(old.get("a.test", &format!("/r/{i}")).await.status, 200);
    }

    // A reload whose certificate is gone is refused naming the file; the renewed one stays.
    let gone = write_temp(
        "renew-gone.toml",
        &two_sites(
            &origin,
            "tls_cert = \"/nonexistent/renew.crt\"\ntls_key = \"/nonexistent/renew.key\"",
            &b,
        ),
    );
    std::fs::copy(&gone, &file).unwrap();
    let e = reloader.reload().await.unwrap_err();
    assert!(e.contains("/nonexistent/renew.crt"), "{e}");
    let again = Conn::open(&ca, addr, "a.test", true, &[b"http/1.1"]).await;
    assert_eq!(again.cert(), new.cert());
}

#[tokio::test]
async fn a_stalled_handshake_is_cut_at_the_timeout_and_handshakes_beyond_the_cap_wait() {
    use tokio::io::AsyncReadExt;
    let origin = TestOrigin::start().await;
    let ca = ca();
    let a = cert_files(&ca, "stall-a", &["a.test"]);
    let toml = two_sites(&origin, &a, "").replacen(
        "[server]\n",
        "[server]\ntls_handshake_timeout = \"1s\"\nmax_tls_handshakes = 1\n",
        1,
    );
    let edge = TestEdge::from_toml(&toml).await;
    let addr = edge.tls_addr.unwrap();
    // Takes the one handshake slot and sends nothing.
    let mut idle = tokio::net::TcpStream::connect(addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = tokio::time::Instant::now();
    let real = Conn::open(&ca, addr, "a.test", true, &[b"http/1.1"]).await;
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(700),
        "the second handshake waited for the slot: {waited:?}"
    );
    let mut buf = [0u8; 16];
    let closed = tokio::time::timeout(Duration::from_secs(3), idle.read(&mut buf)).await;
    assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "{closed:?}");
    assert_eq!(real.client().await.get("a.test", "/r/x").await.status, 200);

    // Not TLS at all: a failed handshake. All three are counted in /stats and /metrics.
    let mut junk = tokio::net::TcpStream::connect(addr).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut junk, b"GET / HTTP/1.1\r\n\r\n")
        .await
        .unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(3), junk.read(&mut buf)).await;
    let stats = admin_get(&edge, "/stats").await;
    let stats: serde_json::Value = serde_json::from_str(&stats).unwrap();
    assert_eq!(
        stats["tls_handshakes"],
        serde_json::json!({"done": 1, "failed": 1, "timed_out": 1}),
        "{stats}"
    );
    let metrics = admin_get(&edge, "/metrics").await;
    assert!(
        metrics.contains("edgecache_tls_handshake_timeouts_total 1"),
        "{metrics}"
    );
}

/// `GET path` of the edge's admin API, as text.
async fn admin_get(edge: &TestEdge, path: &str) -> String {
    use tower::ServiceExt;
    const TOKEN: &str = "test-token-0123456789";
    let api = edgecache::admin::app(edgecache::admin::AdminState::new(
        edge.state.clone(),
        Some(TOKEN),
    ));
    let req = http::Request::get(path)
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(axum::body::Body::empty())
        .unwrap();
    let res = api.oneshot(req).await.unwrap();
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .unwrap();
    String::from_utf8_lossy(&bytes).into_owned()
}

#[test]
fn check_config_refuses_a_missing_certificate_naming_the_file() {
    let file = write_temp(
        "check-missing.toml",
        "[server]\nlisten_tls = \"127.0.0.1:8443\"\n\
         [[site]]\nname = \"a\"\nhosts = [\"a.test\"]\norigin = \"http://127.0.0.1:9\"\n\
         tls_cert = \"/nonexistent/check.crt\"\ntls_key = \"/nonexistent/check.key\"\n",
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_edgecache"))
        .arg("check-config")
        .arg(&file)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("site[0].tls_cert") && err.contains("/nonexistent/check.crt"),
        "{err}"
    );
}

#[tokio::test]
async fn event_loops_serve_the_tls_listener_too() {
    let origin = TestOrigin::start().await;
    let ca = ca();
    let a = cert_files(&ca, "loops-a", &["a.test"]);
    let (port, tls_port, admin) = (free_port(), free_port(), free_port());
    let file = write_temp(
        "loops.toml",
        &format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\nlisten_tls = \"127.0.0.1:{tls_port}\"\nthreads = 2\n\
             [admin]\nlisten = \"127.0.0.1:{admin}\"\n\
             [[site]]\nname = \"a\"\nhosts = [\"a.test\"]\norigin = \"{}\"\n{a}\n",
            origin.url
        ),
    );
    let _child = Kill(
        std::process::Command::new(env!("CARGO_BIN_EXE_edgecache"))
            .arg("--config")
            .arg(&file)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let addr: std::net::SocketAddr = format!("127.0.0.1:{tls_port}").parse().unwrap();
    let mut up = false;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "the TLS listener came up");
    {
        // Several connections, spread by the kernel over both loops' sockets.
        for alpn in [&b"h2"[..], b"http/1.1", b"h2", b"http/1.1"] {
            let mut c = Conn::open(&ca, addr, "a.test", true, &[alpn])
                .await
                .client()
                .await;
            let res = c.get("a.test", "/r/loop?echo=X-Forwarded-Proto").await;
            assert_eq!(res.status, 200);
            assert!(res.body.starts_with("https|"), "{}", res.body);
        }
    }
}

/// The edge process of a test, killed when the test ends, however it ends.
struct Kill(std::process::Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
