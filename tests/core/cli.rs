//! The binary: check-config, refusing bad configs, env variables, JSON logs, SIGTERM, and the
//! memory budget seen from outside (RSS).

use crate::common::{TestOrigin, free_port, header};
use std::{
    io::Read,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};
use tokio::time::Instant;

const BIN: &str = env!("CARGO_BIN_EXE_edgecache");

fn write_temp(name: &str, text: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("edgecache-test-{}-{name}", std::process::id()));
    std::fs::write(&p, text).unwrap();
    p
}

/// Waits (bounded) until the server answers /healthz.
async fn wait_healthy(port: u16) {
    let client = reqwest::Client::new();
    for _ in 0..100 {
        if client
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("edgecache did not come up on port {port}");
}

fn terminate(child: &mut Child) -> std::process::ExitStatus {
    Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    wait_exit(child, Duration::from_secs(15), "no exit after SIGTERM")
}

/// Waits (bounded by `limit`) for `child` to exit; fails with `why` if it does not.
fn wait_exit(child: &mut Child, limit: Duration, why: &str) -> std::process::ExitStatus {
    let t = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(t.elapsed() < limit, "{why}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A client whose requests give up after 10 s, so that a test never hangs on the edge.
fn bounded_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// Starts the binary (its stdout captured), GETs `path` twice, stops it with SIGTERM (which
/// must exit cleanly) and returns what it printed.
async fn two_requests_then_stdout(mut cmd: Command, port: u16, path: &str) -> String {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_healthy(port).await;
    let url = format!("http://127.0.0.1:{port}{path}");
    for _ in 0..2 {
        reqwest::get(&url).await.unwrap().bytes().await.unwrap();
    }
    assert!(terminate(&mut child).success(), "clean exit on SIGTERM");
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    out
}

#[test]
fn check_config_accepts_the_example_and_names_bad_fields() {
    let example = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("edgecache.toml");
    let out = Command::new(BIN)
        .arg("check-config")
        .arg(&example)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (name, text, field) in [
        (
            "size.toml",
            "[cache]\nmax_memory = \"lots\"\n",
            "cache.max_memory",
        ),
        (
            "typo.toml",
            "[server]\nlisten_addr = \"x\"\n",
            "listen_addr",
        ),
        (
            "url.toml",
            "[[site]]\nname = \"a\"\nhosts = [\"*\"]\norigin = \"ftp://x\"\n",
            "site[0].origin",
        ),
        (
            "zero.toml",
            "[server]\nsend_timeout = \"0s\"\n",
            "server.send_timeout",
        ),
        (
            "dbpool.toml",
            "[database]\nurl = \"sqlite::memory:\"\nmax_connections = 0\n",
            "database.max_connections",
        ),
        (
            "both.toml",
            "[[site]]\nname = \"a\"\nhosts = [\"*\"]\norigin = \"http://x\"\nroot = \"static\"\n",
            "site[0].origin",
        ),
        (
            "ca.toml",
            "[[site]]\nname = \"a\"\nhosts = [\"*\"]\norigin = \"https://x\"\n\
             origin_ca_file = \"/nonexistent/ca.pem\"\n",
            "site[0].origin_ca_file: cannot read /nonexistent/ca.pem",
        ),
        (
            "sni.toml",
            "[[site]]\nname = \"a\"\nhosts = [\"*\"]\norigin = \"http://x\"\n\
             origin_sni = \"x.example\"\n",
            "site[0].origin_sni: is for https:// origins only",
        ),
        (
            "resolver.toml",
            "[origin]\nresolver = [\"dns.example\"]\n",
            "origin.resolver[0]",
        ),
        (
            "admin.toml",
            "[admin]\nlisten = \"0.0.0.0:9090\"\n",
            "admin.listen: 0.0.0.0:9090 is not a loopback address",
        ),
        ("token.toml", "[admin]\ntoken = \"short\"\n", "admin.token"),
        (
            "proxies.toml",
            "[server]\ntrusted_proxies = [\"proxy.internal\"]\n",
            "server.trusted_proxies",
        ),
        (
            "purge_from.toml",
            "[admin]\npurge_from = [\"10.0.0.1/8\"]\n",
            "admin.purge_from",
        ),
        (
            "ttl.toml",
            "[origin]\ndns_min_ttl = \"1m\"\ndns_max_ttl = \"10s\"\n",
            "origin.dns_max_ttl",
        ),
    ] {
        let p = write_temp(name, text);
        let out = Command::new(BIN)
            .arg("check-config")
            .arg(&p)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name}: {err}");
        assert!(err.contains(field), "{name}: {err}");
        // The server itself refuses to start with the same message.
        let out = Command::new(BIN)
            .arg("--config")
            .arg(&p)
            .arg("--listen")
            .arg("127.0.0.1:0")
            .output()
            .unwrap();
        assert!(!out.status.success());
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(field),
            "{name}"
        );
    }
}

#[tokio::test]
async fn env_variables_json_access_log_and_sigterm() {
    let origin = TestOrigin::start().await;
    let port = free_port();
    let mut cmd = Command::new(BIN);
    cmd.env("EDGECACHE_LISTEN", format!("127.0.0.1:{port}"))
        .env("EDGECACHE_ORIGIN", &origin.url)
        .args(["--log-format", "json"]);
    let out = two_requests_then_stdout(cmd, port, "/c/logged?cc=max-age=60").await;
    assert_eq!(origin.count("/c/logged"), 1);
    let access: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("edgecache::access") && l.contains("/c/logged"))
        .collect();
    assert_eq!(access.len(), 2, "one line per request: {out}");
    for (line, cache) in access.iter().zip(["MISS", "HIT"]) {
        assert!(line.starts_with('{') && line.ends_with('}'), "JSON: {line}");
        for field in [
            "\"method\":\"GET\"",
            "\"path\":\"/c/logged?cc=max-age=60\"",
            "\"status\":200",
            "\"client\":\"127.0.0.1\"",
            "\"total_ms\":",
        ] {
            assert!(line.contains(field), "{field} in {line}");
        }
        assert!(line.contains(&format!("\"cache\":\"{cache}\"")), "{line}");
    }
}

/// Kills the child if a test fails before stopping it.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `server.threads = N`: N event loops, each a thread with its own listening socket. They
/// share one cache and one set of fills, so concurrent misses for one key make one origin
/// request whichever loop their connections landed on; a second edge cannot take the port;
/// SIGTERM lets a request in flight finish, then every loop stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn event_loops_share_one_cache_and_refuse_a_busy_port() {
    let origin = TestOrigin::start().await;
    let port = free_port();
    let cfg = write_temp("loops.toml", "[server]\nthreads = 3\n");
    let listen = format!("127.0.0.1:{port}");
    let start = |stderr: Stdio| {
        let mut c = Command::new(BIN);
        c.args(["--config", cfg.to_str().unwrap(), "--listen", &listen])
            .args(["--origin", &origin.url])
            .stdout(Stdio::null())
            .stderr(stderr);
        Running(c.spawn().unwrap())
    };
    let mut edge = start(Stdio::null());
    wait_healthy(port).await;
    let loops = std::fs::read_dir(format!("/proc/{}/task", edge.0.id()))
        .unwrap()
        .filter(|t| {
            let comm = std::fs::read_to_string(t.as_ref().unwrap().path().join("comm"));
            comm.unwrap().starts_with("edgecache-io-")
        })
        .count();
    assert_eq!(loops, 3, "one thread per event loop");
    // One client per request: separate connections, spread over the loops by the kernel.
    // Those that come after the fill has finished are HITs; none may reach the origin.
    let url = format!("http://127.0.0.1:{port}/c/shared?cc=max-age=60&delay=500");
    let gets = (0..24).map(|_| {
        let (url, c) = (url.clone(), bounded_client());
        tokio::spawn(async move {
            let r = c.get(&url).send().await.unwrap();
            assert_eq!(r.status(), 200);
            let cache = r.headers()["x-cache"].to_str().unwrap().to_owned();
            r.bytes().await.unwrap();
            cache
        })
    });
    let answers = futures_util::future::join_all(gets).await;
    assert!(answers.iter().any(|a| a.as_ref().unwrap() == "MISS"));
    assert_eq!(
        origin.count("/c/shared"),
        1,
        "one origin request for 24 clients"
    );
    for _ in 0..6 {
        let r = bounded_client().get(&url).send().await.unwrap();
        assert_eq!(r.headers()["x-cache"], "HIT");
    }
    assert_eq!(origin.count("/c/shared"), 1);

    let mut second = start(Stdio::piped());
    let status = wait_exit(
        &mut second.0,
        Duration::from_secs(10),
        "a second edge started on a busy port",
    );
    assert!(!status.success(), "a second edge on a busy port must fail");
    let mut err = String::new();
    let mut stderr = second.0.stderr.take().unwrap();
    stderr.read_to_string(&mut err).unwrap();
    assert!(err.contains(&format!("cannot listen on {listen}")), "{err}");

    // A slow request in flight when SIGTERM arrives still gets its whole answer.
    let slow =
        format!("http://127.0.0.1:{port}/c/slow?cc=max-age=60&delay=300&slow=600&size=10000");
    let inflight = tokio::spawn(async move {
        let r = bounded_client().get(&slow).send().await.unwrap();
        (r.status(), r.bytes().await.unwrap().len())
    });
    for _ in 0..100 {
        if origin.count("/c/slow") == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(terminate(&mut edge.0).success(), "clean exit on SIGTERM");
    let (status, len) = inflight.await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(len, 10_000, "the whole body");
    let _ = std::fs::remove_file(cfg);
}

/// The out-of-the-box edge (demo site and its SQLite product API) on two event loops: the
/// data layer's cache-aside reads, writes and invalidation work from loop threads too.
#[tokio::test]
async fn the_demo_and_its_api_work_on_event_loops() {
    let dir = std::env::temp_dir().join(format!("edgecache-loops-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("loops.toml"), "[server]\nthreads = 2\n").unwrap();
    let port = free_port();
    let mut edge = Running(
        Command::new(BIN)
            .current_dir(&dir)
            .args([
                "--config",
                "loops.toml",
                "--listen",
                &format!("127.0.0.1:{port}"),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_healthy(port).await;
    let base = format!("http://127.0.0.1:{port}");
    let c = bounded_client();
    let page = c.get(format!("{base}/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("edgecache demo"));
    let product = format!("{base}/api/products/2");
    let get = || async {
        let r = c.get(&product).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let cache = r.headers()["x-cache"].to_str().unwrap().to_owned();
        (cache, r.text().await.unwrap())
    };
    assert_eq!(get().await.0, "MISS");
    assert_eq!(get().await.0, "HIT");
    let put = c
        .put(&product)
        .header("content-type", "application/json")
        .body(r#"{"name":"Loop mug","price_cents":999,"stock":3}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200);
    let (cache, body) = get().await;
    assert_eq!(cache, "MISS", "the write invalidated the cached read");
    assert!(body.contains("Loop mug"), "{body}");
    assert!(terminate(&mut edge.0).success(), "clean exit on SIGTERM");
    let _ = std::fs::remove_dir_all(dir);
}

/// A test origin on a runtime of its own, so that it can be stopped outright: dropping that
/// runtime closes its listener and every connection the edge keeps to it.
fn stoppable_origin() -> (TestOrigin, impl FnOnce()) {
    let (sent, started) = std::sync::mpsc::channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            sent.send(TestOrigin::start().await).unwrap();
            let _ = stopped.await;
        });
    });
    let origin = started.recv().unwrap();
    (origin, move || {
        let _ = stop.send(());
        thread.join().unwrap();
    })
}

#[tokio::test]
async fn memory_stays_near_the_budget_however_many_objects_arrive() {
    let (origin, stop_origin) = stoppable_origin();
    let port = free_port();
    let mut child = Command::new(BIN)
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--origin",
            &origin.url,
            "--max-memory",
            "8MiB",
        ])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_healthy(port).await;
    let client = reqwest::Client::new();
    let url = |i| format!("http://127.0.0.1:{port}/c/m{i}?cc=max-age=600&size=65536");
    // 800 distinct 64 KiB objects: 50 MiB through an 8 MiB budget.
    for i in 0..800 {
        let b = client.get(url(i)).send().await.unwrap();
        assert_eq!(b.bytes().await.unwrap().len(), 65536);
    }
    let rss_kib = rss_kib(child.id());
    // With the origin gone, asking for every object again counts what the store holds without
    // changing it: a HIT is stored, anything else is a 502 that stores nothing.
    stop_origin();
    let (mut hits, mut unreachable) = (0, 0);
    for i in 0..800 {
        let r = client.get(url(i)).send().await.unwrap();
        match (r.status().as_u16(), header(&r, "x-cache").as_str()) {
            (200, "HIT") => hits += 1,
            (502, "MISS") => unreachable += 1,
            other => panic!("m{i}: {other:?}"),
        }
        r.bytes().await.unwrap();
    }
    terminate(&mut child);
    assert!(rss_kib > 0, "read VmRSS");
    assert!(
        rss_kib < (8 + 56) * 1024,
        "RSS {rss_kib} KiB for an 8 MiB budget"
    );
    assert_eq!(hits + unreachable, 800);
    // The objects' share of 8 MiB (less the quarter for fills and the records' shares) holds
    // at most 87 bodies of 64 KiB with their headers; a store that kept less than most of it
    // busy would be wasting it.
    assert!(
        (75..=87).contains(&hits),
        "{hits} objects of 64 KiB stored in 8 MiB"
    );
    assert_eq!(
        origin.total(),
        800,
        "the first pass alone reached the origin"
    );
}

/// Small objects are where per-entry costs (headers, the map's bookkeeping) outweigh the body:
/// the budget must count them, or RSS runs to twice `max_memory`. Load from `edgecache bench`
/// and its built-in origin: a scan of 30 000 distinct 1 KiB objects (100 MB of entries)
/// through 32 MiB.
#[test]
fn memory_stays_near_the_budget_with_small_objects() {
    let (port, origin_port) = (free_port(), free_port());
    let mut edge = Command::new(BIN)
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--origin",
            &format!("http://127.0.0.1:{origin_port}"),
            "--max-memory",
            "32MiB",
        ])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(wait_healthy(port));
    let out = Command::new(BIN)
        .args([
            "bench",
            "--url",
            &format!("http://127.0.0.1:{port}"),
            "--serve-origin",
            "--origin-listen",
            &format!("127.0.0.1:{origin_port}"),
            "--objects",
            "1",
            "--requests",
            "1",
            "--scan",
            "30000",
            "--size-dist",
            "fixed",
            "--size-mean",
            "1KiB",
            "--concurrency",
            "16",
            "--json",
        ])
        .stderr(Stdio::null())
        .output()
        .unwrap();
    let rss_kib = rss_kib(edge.id());
    terminate(&mut edge);
    assert!(out.status.success());
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let run = &report["runs"][0];
    assert_eq!(run["errors"], 0, "{run}");
    assert_eq!(run["origin_requests"], 30_001, "{run}");
    // 1.3x the budget plus the debug binary's own ~28 MiB: a store that charged entries less
    // than they cost would end far above it.
    assert!(
        rss_kib < (32 * 13 / 10 + 32) * 1024,
        "RSS {rss_kib} KiB for a 32 MiB budget"
    );
}

/// An origin that answers every request with a 64 MiB body no one may store, written as fast
/// as the edge reads it (from one shared buffer, so the test itself stays small).
async fn endless_origin() -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move {
        let chunk = bytes::Bytes::from(vec![b'x'; 64 << 10]);
        while let Ok((mut s, _)) = l.accept().await {
            let chunk = chunk.clone();
            tokio::spawn(async move {
                let mut head = [0u8; 4096];
                let _ = s.read(&mut head).await;
                let h = "HTTP/1.1 200 OK\r\ncontent-length: 67108864\r\ncache-control: no-store\r\n\r\n";
                if s.write_all(h.as_bytes()).await.is_err() {
                    return;
                }
                for _ in 0..1024 {
                    if s.write_all(&chunk).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    url
}

/// Clients that ask for large answers streaming through and then read nothing: the bytes the
/// edge holds for them count against its limits (the fill's window, the send buffers), and
/// their origin is read no faster than they take it.
#[tokio::test]
async fn clients_that_never_read_do_not_grow_memory_past_the_budget() {
    let origin = endless_origin().await;
    let port = free_port();
    let mut child = Command::new(BIN)
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--origin",
            &origin,
            "--max-memory",
            "8MiB",
        ])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_healthy(port).await;
    let idle = rss_kib(child.id());
    let mut clients = Vec::new();
    for i in 0..300 {
        use tokio::io::AsyncWriteExt;
        let mut c = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let req = format!("GET /big?{i} HTTP/1.1\r\nhost: test\r\n\r\n");
        c.write_all(req.as_bytes()).await.unwrap();
        clients.push(c);
    }
    // Until the kernel's socket buffers are full and the edge holds what it holds.
    let mut peak = 0;
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        peak = peak.max(hwm_kib(child.id()));
    }
    drop(clients);
    terminate(&mut child);
    assert!(idle > 0 && peak > 0, "read VmRSS / VmHWM");
    // The origin pool serves 256 of them at once. Before the limits each such fill cost the
    // edge about 1.6 MB (500 clients at 8 MiB: 414 MB above idle, release build); what is left, about 0.9 MB, is
    // reqwest's read buffer of the origin connection (see BENCHMARKS.md), so this allows 1.2.
    assert!(
        peak < idle + 300 * 1024,
        "peak RSS {peak} KiB from {idle} KiB idle, 300 clients that never read"
    );
}

/// The process's peak resident size so far, in KiB (`VmHWM`).
fn hwm_kib(pid: u32) -> u64 {
    status_kib(pid, "VmHWM:")
}

/// The process's resident size, in KiB (`VmRSS`).
fn rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmRSS:")
}

/// A KiB figure of `/proc/PID/status` (`field` with its colon); 0 if it cannot be read.
fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// `edgecache replay --trace log` at 1 MiB with LRU: its JSON records, and what it said on
/// standard error.
fn replay_lru(log: &std::path::Path) -> (serde_json::Value, String) {
    let out = Command::new(BIN)
        .args(["replay", "--trace"])
        .arg(log)
        .args(["--capacity", "1MiB", "--policy", "lru", "--json"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    (serde_json::from_slice(&out.stdout).unwrap(), stderr)
}

#[tokio::test]
async fn text_access_log_has_one_line_per_request() {
    let origin = TestOrigin::start().await;
    let port = free_port();
    let mut cmd = Command::new(BIN);
    cmd.args([
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--origin",
        &origin.url,
    ]);
    let out = two_requests_then_stdout(cmd, port, "/c/text?cc=max-age=60&size=321").await;
    let lines: Vec<&str> = out.lines().filter(|l| l.contains("path=/c/text")).collect();
    assert_eq!(lines.len(), 2, "{out}");
    for (line, cache) in lines.iter().zip(["MISS", "HIT"]) {
        assert!(
            line.contains(" INFO edgecache::access: client=127.0.0.1 method=GET "),
            "{line}"
        );
        assert!(
            line.contains(&format!("status=200 bytes=321 cache={cache} ")),
            "{line}"
        );
        // The MISS says which server of the site's pool answered and what it said (the HIT
        // asked none).
        let mid = match cache {
            "MISS" => format!(
                "complete=true upstream={} proto=HTTP/1.1 site=origin origin_status=200 ",
                origin.url
            ),
            _ => "complete=true proto=HTTP/1.1 site=origin ".to_string(),
        };
        assert!(line.contains(&mid), "{line}");
        assert!(line.ends_with(" referer=\"-\" ua=\"-\""), "{line}");
    }
    // Replay reads the edge's own log as it is: every access line a request, the rest
    // (start-up messages) skipped.
    let log = write_temp("text-access.log", &out);
    let (records, _) = replay_lru(&log);
    let access = out
        .lines()
        .filter(|l| l.contains(" edgecache::access: "))
        .count();
    assert!(access >= 2, "{out}");
    assert_eq!(records[0]["requests"], access as u64, "{out}");
    // The two requests for one URL: the second hits in any cache that holds it.
    assert!(records[0]["object_hit_ratio"].as_f64().unwrap() > 0.0);
}

#[test]
fn replay_reports_every_policy_and_capacity_as_json() {
    // A loop over 30 objects of 100 bytes with room for 20: LRU never hits, the optimum does.
    let mut trace = String::from("# key size\n");
    for _ in 0..20 {
        for k in 0..30 {
            trace.push_str(&format!("/o/{k} 100\n"));
        }
    }
    let p = write_temp("trace.txt", &trace);
    let out = Command::new(BIN)
        .args(["replay", "--trace"])
        .arg(&p)
        .args(["--capacity", "2000,4KiB", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let records: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let records = records.as_array().unwrap();
    assert_eq!(records.len(), 10, "5 policies x 2 capacities");
    let ratio = |policy: &str, cap: u64| {
        let r = records
            .iter()
            .find(|r| r["policy"] == policy && r["capacity_bytes"] == cap)
            .unwrap_or_else(|| panic!("{policy} at {cap}"));
        assert_eq!(r["requests"], 600);
        (
            r["object_hit_ratio"].as_f64().unwrap(),
            r["byte_hit_ratio"].as_f64().unwrap(),
        )
    };
    assert_eq!(ratio("lru", 2000).0, 0.0);
    let (opt, opt_bytes) = ratio("belady", 2000);
    assert!(opt > 0.5 && opt == opt_bytes, "{opt}");
    for policy in ["edgecache", "tinylfu", "lru", "w-tinylfu"] {
        assert!(ratio(policy, 2000).0 <= opt);
    }
    // 4 KiB holds all 30 objects: everything after the first pass hits, whatever the policy.
    for policy in ["edgecache", "tinylfu", "lru", "w-tinylfu", "belady"] {
        assert!(
            (ratio(policy, 4096).0 - 570.0 / 600.0).abs() < 1e-9,
            "{policy}"
        );
    }
    let bad = Command::new(BIN)
        .args(["replay", "--trace"])
        .arg(&p)
        .args(["--capacity", "1MiB", "--policy", "fifo"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown policy `fifo`"));
}

/// `[log] access_format = "combined"` to a file: Apache combined lines that `edgecache replay`
/// reads; SIGUSR1 reopens the file, so that logrotate can move it away.
#[tokio::test]
async fn combined_access_log_in_a_file_is_reopened_on_sigusr1_and_replayed() {
    let origin = TestOrigin::start().await;
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("edgecache-test-{}-logs", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("access.log");
    let cfg = write_temp(
        "combined.toml",
        &format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\n[admin]\nlisten = \"127.0.0.1:0\"\n\
             [log]\nfile = \"{}\"\naccess_format = \"combined\"\n\
             [[site]]\nname = \"t\"\nhosts = [\"*\"]\norigin = \"{}\"\n",
            log.display(),
            origin.url
        ),
    );
    let mut child = Running(
        Command::new(BIN)
            .arg("--config")
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_healthy(port).await;
    let client = bounded_client();
    let get = |path: &str| {
        client
            .get(format!("http://127.0.0.1:{port}{path}"))
            .header("user-agent", "tester/1.0 \"quoted\"")
            .header("referer", "http://ref.example/")
            .send()
    };
    get("/c/before?cc=max-age=60&size=100")
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    // Lines reach the file within the writer's flush period; wait for ours, bounded.
    let read = |p: &std::path::Path| std::fs::read_to_string(p).unwrap_or_default();
    for _ in 0..200 {
        if read(&log).contains("/c/before") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let rotated = dir.join("access.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    Command::new("kill")
        .args(["-USR1", &child.0.id().to_string()])
        .status()
        .unwrap();
    for _ in 0..200 {
        if log.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        log.exists(),
        "SIGUSR1 opened a new file at the configured path"
    );
    get("/c/after?cc=max-age=60&size=50")
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(terminate(&mut child.0).success(), "SIGUSR1 did not kill it");
    let (old, new) = (read(&rotated), read(&log));
    let before: Vec<&str> = old.lines().filter(|l| l.contains("/c/before")).collect();
    assert_eq!(before.len(), 1, "{old}");
    let line = before[0];
    assert!(line.starts_with("127.0.0.1 - - ["), "{line}");
    assert!(
        line.ends_with(
            "+0000] \"GET /c/before?cc=max-age=60&size=100 HTTP/1.1\" 200 100 \
             \"http://ref.example/\" \"tester/1.0 \\\"quoted\\\"\""
        ),
        "{line}"
    );
    assert!(!new.contains("/c/before"), "{new}");
    assert_eq!(
        new.lines().filter(|l| l.contains("/c/after")).count(),
        1,
        "{new}"
    );
    // The rotated file replays: its request lines (the health checks' and ours) and nothing
    // else the edge wrote there.
    let requests = old.lines().filter(|l| l.contains("HTTP/1.1\" ")).count();
    let (records, stderr) = replay_lru(&rotated);
    assert_eq!(records[0]["requests"], requests as u64, "{old}");
    // The edge's own messages are lines replay skips, and says so.
    let messages = old.lines().count() - requests;
    assert!(messages > 0, "{old}");
    assert!(
        stderr.contains(&format!("skipped {messages} unreadable line(s)")),
        "{old}"
    );
}

/// SIGHUP reloads the config file: a site added to it is served, the process goes on; an
/// invalid file is logged with check-config's message and the old config keeps serving.
#[tokio::test]
async fn sighup_reloads_the_config_file_and_a_bad_one_changes_nothing() {
    let origin = TestOrigin::start().await;
    let port = free_port();
    let site = |name: &str, host: &str| {
        format!(
            "[[site]]\nname = \"{name}\"\nhosts = [\"{host}\"]\norigin = \"{}\"\n",
            origin.url
        )
    };
    let head =
        format!("[server]\nlisten = \"127.0.0.1:{port}\"\n[admin]\nlisten = \"127.0.0.1:0\"\n");
    let cfg = write_temp("sighup.toml", &format!("{head}{}", site("a", "a.example")));
    let log = write_temp("sighup.log", "");
    let mut child = Running(
        Command::new(BIN)
            .arg("--config")
            .arg(&cfg)
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_healthy(port).await;
    let client = bounded_client();
    let status = |host: &'static str| {
        let req = client
            .get(format!("http://127.0.0.1:{port}/c/h"))
            .header("host", host)
            .send();
        async move { req.await.map(|r| r.status().as_u16()).unwrap_or(0) }
    };
    assert_eq!(status("b.example").await, 421);
    let hup = |pid: u32| {
        Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .unwrap()
    };
    std::fs::write(
        &cfg,
        format!("{head}{}{}", site("a", "a.example"), site("b", "b.example")),
    )
    .unwrap();
    hup(child.0.id());
    let mut served = 0;
    for _ in 0..200 {
        served = status("b.example").await;
        if served == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(served, 200, "the added site is served after SIGHUP");
    std::fs::write(
        &cfg,
        format!("{head}[[site]]\nname = \"broken\"\nhosts = []\n"),
    )
    .unwrap();
    hup(child.0.id());
    let expected = String::from_utf8(
        Command::new(BIN)
            .arg("check-config")
            .arg(&cfg)
            .output()
            .unwrap()
            .stderr,
    )
    .unwrap();
    let mut logged = String::new();
    for _ in 0..200 {
        logged = std::fs::read_to_string(&log).unwrap_or_default();
        if logged.contains("reload refused") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let refused = logged
        .lines()
        .find(|l| l.contains("reload refused"))
        .unwrap_or_else(|| panic!("no refusal logged: {logged}"));
    let why = expected.trim_end();
    assert!(
        refused.ends_with(&format!("error={why}")),
        "{refused}\nvs {why}"
    );
    assert_eq!(status("a.example").await, 200);
    assert_eq!(
        status("b.example").await,
        200,
        "the config of before still runs"
    );
    assert!(
        child.0.try_wait().unwrap().is_none(),
        "SIGHUP did not end it"
    );
    assert!(terminate(&mut child.0).success());
}
