//! `edgecache bench` on small runs: its hit and miss counts must agree with what the origin
//! received, its JSON schema must stay put, and bad invocations must say what is wrong. No
//! timing is asserted.

use crate::common::{TestEdge, TestOrigin, free_port};
use clap::Parser;
use edgecache::bench::{BenchArgs, Plan, report::BenchReport};
use std::{
    collections::BTreeSet,
    process::{Command, Stdio},
    time::Duration,
};

const BIN: &str = env!("CARGO_BIN_EXE_edgecache");

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    bench: BenchArgs,
}

async fn bench(args: &str) -> BenchReport {
    let argv = std::iter::once("bench").chain(args.split_whitespace());
    let cli = Cli::try_parse_from(argv).expect("valid bench arguments");
    let Plan::Measure(mut b) = cli.bench.plan().expect("a runnable plan") else {
        panic!("expected a measurement");
    };
    b.progress = false;
    b.run().await.expect("bench runs")
}

#[tokio::test]
async fn sweep_hit_counts_agree_with_the_origin() {
    // 300 objects of 8 KiB: all of them fit in 8 MiB, under half in 1 MiB.
    let r = bench(
        "--sweep-memory 1MiB,8MiB --objects 300 --requests 3000 --alpha 0.7 \
         --size-dist fixed --size-mean 8KiB --size-max 8KiB --concurrency 4 --seed 3",
    )
    .await;
    assert_eq!(r.workload.requests, 3000);
    let distinct = r.workload.distinct_targets;
    assert!((200..=300).contains(&distinct), "{distinct}");
    assert_eq!(r.runs.len(), 2);
    for run in &r.runs {
        assert_eq!(run.errors, 0, "{:?}", run.first_error);
        assert_eq!(run.unknown, 0);
        assert_eq!(run.hits + run.misses, 3000);
        assert_eq!(run.bytes, 3000 * 8192);
        // What the headers said reached the origin is what the origin counted.
        assert_eq!(run.origin_requests, Some(run.misses - run.collapsed));
        assert_eq!(run.origin_not_modified, Some(0));
        assert_eq!(run.origin_agrees, Some(true));
        // Equal sizes: byte and object ratios agree.
        let (obj, byte) = (run.object_hit_ratio.unwrap(), run.byte_hit_ratio.unwrap());
        assert!((byte - obj).abs() < 1e-9);
        assert!(run.requests_per_sec > 0.0);
        assert!(run.latency_ms.p50 <= run.latency_ms.p99);
        assert!(run.latency_ms.p99 <= run.latency_ms.max);
    }
    let (small, big) = (&r.runs[0], &r.runs[1]);
    assert_eq!(small.max_memory_bytes, Some(1 << 20));
    assert_eq!(big.max_memory_bytes, Some(8 << 20));
    // With room for everything, each object reaches the origin exactly once.
    assert_eq!(big.origin_requests, Some(distinct));
    assert_eq!(big.hits, 3000 - big.misses);
    assert!(
        small.object_hit_ratio.unwrap() < big.object_hit_ratio.unwrap(),
        "{:?} vs {:?}",
        small.object_hit_ratio,
        big.object_hit_ratio
    );
    assert!(small.origin_requests.unwrap() > distinct);
}

#[tokio::test]
async fn trace_against_an_edge_counts_hits_and_the_uncacheable() {
    let origin = TestOrigin::start().await;
    let edge = TestEdge::in_front_of(&origin, "").await;
    let trace = std::env::temp_dir().join(format!("edgecache-bench-{}.trace", std::process::id()));
    std::fs::write(
        &trace,
        "# warm-up, then measured\n\
         /p1?cc=public,max-age=60&size=100\n\
         /p1?cc=public,max-age=60&size=100\n\
         /p2?cc=public,max-age=60&size=300\n\
         /p1?cc=public,max-age=60&size=100\n\
         /nostore?cc=no-store&size=50\n\
         /p2?cc=public,max-age=60&size=300\n\
         /nostore?cc=no-store&size=50\n\
         /p3?cc=public,max-age=60&size=1000\n\
         not a request line\n",
    )
    .unwrap();
    let r = bench(&format!(
        "--url {} --trace {} --warmup 1 --concurrency 1",
        edge.url,
        trace.display()
    ))
    .await;
    let _ = std::fs::remove_file(&trace);
    assert_eq!(r.workload.kind, "trace");
    assert_eq!(r.workload.skipped_lines, 1);
    assert_eq!((r.workload.requests, r.workload.warmup), (7, 1));
    assert_eq!(r.workload.distinct_targets, 4);
    let run = &r.runs[0];
    // Measured: p1 hit, p2 miss, p1 hit, nostore miss, p2 hit, nostore miss, p3 miss.
    assert_eq!((run.hits, run.misses, run.errors), (3, 4, 0));
    assert_eq!(run.bytes, 100 + 300 + 100 + 50 + 300 + 50 + 1000);
    assert_eq!(run.hit_bytes, 100 + 100 + 300);
    assert_eq!(run.origin_requests, None, "not the built-in origin");
    assert_eq!(origin.total(), 5, "warm-up p1, p2, nostore twice, p3");
}

#[tokio::test]
async fn built_in_origin_behind_an_edge_cross_checks_its_count() {
    let port = free_port();
    let edge = TestEdge::from_toml(&format!(
        "[[site]]\nname = \"b\"\nhosts = [\"*\"]\norigin = \"http://127.0.0.1:{port}\"\n"
    ))
    .await;
    let r = bench(&format!(
        "--url {} --serve-origin --origin-listen 127.0.0.1:{port} --objects 100 \
         --requests 1500 --scan 100 --concurrency 8 --size-mean 2KiB --size-max 64KiB",
        edge.url
    ))
    .await;
    let run = &r.runs[0];
    assert_eq!(run.errors, 0, "{:?}", run.first_error);
    assert_eq!(run.requests, 1600);
    // Everything fits in the default budget: one origin request per distinct object.
    assert_eq!(run.origin_requests, Some(r.workload.distinct_targets));
    assert_eq!(run.origin_requests, Some(run.misses - run.collapsed));
    assert_eq!(run.origin_agrees, Some(true));
    let from_origin = run.origin_hit_ratio.unwrap();
    assert!(from_origin >= run.object_hit_ratio.unwrap());
    let byte = run.byte_hit_ratio.unwrap();
    assert!(byte > 0.0 && byte < 1.0);
}

/// The `--json` document's field names are an interface: a change here breaks scripts.
#[test]
fn json_schema_is_stable() {
    let out = Command::new(BIN)
        .args([
            "bench",
            "--sweep-memory",
            "1MiB,2MiB",
            "--objects",
            "50",
            "--requests",
            "200",
            "--concurrency",
            "2",
            "--json",
        ])
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    let keys = |v: &serde_json::Value| -> BTreeSet<String> {
        v.as_object().unwrap().keys().cloned().collect()
    };
    let set = |s: &[&str]| -> BTreeSet<String> { s.iter().map(|k| k.to_string()).collect() };
    assert_eq!(keys(&v), set(&["workload", "runs"]));
    assert_eq!(
        keys(&v["workload"]),
        set(&[
            "kind",
            "requests",
            "warmup",
            "distinct_targets",
            "concurrency",
            "zipf",
            "trace",
            "skipped_lines"
        ])
    );
    let runs = v["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    for run in runs {
        assert_eq!(
            keys(run),
            set(&[
                "target",
                "max_memory_bytes",
                "requests",
                "errors",
                "hits",
                "misses",
                "collapsed",
                "unknown",
                "object_hit_ratio",
                "byte_hit_ratio",
                "bytes",
                "hit_bytes",
                "origin_requests",
                "origin_not_modified",
                "origin_hit_ratio",
                "origin_agrees",
                "seconds",
                "requests_per_sec",
                "latency_ms",
                "first_error"
            ])
        );
        assert_eq!(
            keys(&run["latency_ms"]),
            set(&["p50", "p90", "p99", "p99_9", "max"])
        );
        assert_eq!(run["requests"], 200);
        assert_eq!(
            run["origin_requests"].as_u64().unwrap() + run["hits"].as_u64().unwrap(),
            200 - run["collapsed"].as_u64().unwrap()
        );
    }
    assert_eq!(runs[1]["max_memory_bytes"], 2 << 20);
}

#[tokio::test]
async fn warmup_is_left_out_of_the_counts_and_the_origin_check() {
    // 40 objects, all fit: the 400 warm-up requests fetch nearly all of them, so the measured
    // part reaches the origin only for what the warm-up missed.
    let r = bench(
        "--sweep-memory 4MiB --objects 40 --alpha 0 --warmup 400 --requests 300 \
         --size-dist fixed --size-mean 1KiB --concurrency 2",
    )
    .await;
    let run = &r.runs[0];
    assert_eq!((r.workload.requests, r.workload.warmup), (300, 400));
    assert_eq!(run.requests, 300);
    assert_eq!(run.origin_agrees, Some(true));
    assert!(
        run.origin_requests.unwrap() <= 2,
        "{:?}",
        run.origin_requests
    );
    assert!(run.object_hit_ratio.unwrap() > 0.99);
}

#[tokio::test]
async fn client_errors_and_caches_that_say_nothing_stay_out_of_the_ratios() {
    let origin = TestOrigin::start().await;
    let edge = TestEdge::in_front_of(&origin, "").await;
    let trace =
        std::env::temp_dir().join(format!("edgecache-bench-{}-e.trace", std::process::id()));
    std::fs::write(
        &trace,
        "/ok?cc=max-age=60&size=10\n/gone?status=404&size=10\n/ok?cc=max-age=60&size=10\n",
    )
    .unwrap();
    let through_edge = bench(&format!(
        "--url {} --trace {} --concurrency 1",
        edge.url,
        trace.display()
    ))
    .await;
    let run = &through_edge.runs[0];
    assert_eq!(
        (run.requests, run.errors, run.hits, run.misses),
        (3, 1, 1, 1)
    );
    assert!(
        run.first_error.as_deref().unwrap().contains("404"),
        "{run:?}"
    );
    assert_eq!(run.object_hit_ratio, Some(0.5));
    // Straight to the origin: no header says hit or miss, so there is no ratio to report.
    let direct = bench(&format!(
        "--url {} --trace {} --concurrency 1",
        origin.url,
        trace.display()
    ))
    .await;
    let _ = std::fs::remove_file(&trace);
    let run = &direct.runs[0];
    assert_eq!((run.unknown, run.errors), (2, 1));
    assert_eq!((run.object_hit_ratio, run.byte_hit_ratio), (None, None));
}

#[test]
fn table_and_chart_on_a_terminal_run() {
    let out = Command::new(BIN)
        .args([
            "bench",
            "--sweep-memory",
            "1MiB,4MiB",
            "--objects",
            "100",
            "--requests",
            "300",
            "--size-dist",
            "fixed",
            "--size-mean",
            "2KiB",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("max_memory"), "{text}");
    assert!(text.contains("\n1MiB "), "{text}");
    assert!(text.contains("hit ratio   # object   = byte"), "{text}");
    assert_eq!(
        text.lines().filter(|l| l.contains(" |")).count(),
        4,
        "{text}"
    );
}

#[test]
fn bad_invocations_say_what_is_wrong() {
    for (args, says) in [
        (&["bench"][..], "give --url"),
        (&["bench", "--url", "ftp://x"][..], "not an http"),
        (
            &["bench", "--url", "http://127.0.0.1:1", "--alpha=-2"][..],
            "--alpha",
        ),
        (
            &[
                "bench",
                "--url",
                "http://127.0.0.1:1",
                "--trace",
                "/nonexistent/t",
            ][..],
            "cannot read the trace",
        ),
        (
            &["bench", "--sweep-memory", "lots"][..],
            "invalid value 'lots'",
        ),
        (
            &["bench", "--sweep-memory", "4MiB,64KiB", "--requests", "1"][..],
            "edge for max_memory 64KiB: cache.max_memory: must be at least 1MiB",
        ),
        (
            &["bench", "--url", "http://127.0.0.1:1", "--size-max", "1GiB"][..],
            "--size-max must be at most 256MiB",
        ),
        (
            &[
                "bench",
                "--url",
                "http://127.0.0.1:1",
                "--trace",
                "t",
                "--alpha",
                "1",
            ][..],
            "cannot be used with",
        ),
        (
            &["bench", "--url", "http://127.0.0.1:1", "--requests", "3"][..],
            "every request to http://127.0.0.1:1 failed",
        ),
    ] {
        let out = Command::new(BIN).args(args).output().unwrap();
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
    }
}

#[tokio::test]
async fn serve_origin_alone_serves_until_stopped() {
    let port = free_port();
    let mut child = Command::new(BIN)
        .args([
            "bench",
            "--serve-origin",
            "--origin-listen",
            &format!("127.0.0.1:{port}"),
            "--cache-control",
            "max-age=5",
        ])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let url = format!("http://127.0.0.1:{port}/obj/9?size=777");
    let mut res = None;
    for _ in 0..100 {
        if let Ok(r) = client.get(&url).send().await {
            res = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    let res = res.expect("the origin came up");
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "max-age=5");
    assert_eq!(res.bytes().await.unwrap().len(), 777);
}
