//! Regression tests for defects found in review (issue "Every attempt streams", item 6), each
//! named after what used to go wrong.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::time::{Duration, Instant};

use common::*;

fn fallback_config(settings: &str) -> String {
    format!(
        "models:\n{}{}workers:\n  - name: fb\n    load_balance:\n      routing:\n        - {{ from: primary, order: 1 }}\n        - {{ from: backup, order: 2 }}\n{settings}",
        model_yaml("primary", "gpt-primary", "p", ""),
        model_yaml("backup", "gpt-backup", "b", ""),
    )
}

/// Was: a request whose body ended with trailers was never routed (the filter waited for a
/// body callback with end of stream that never came). HTTP/1.1 chunked trailers reach the
/// filter because the generated config sets `enable_trailers`.
#[test]
fn a_request_ending_with_trailers_is_routed() {
    let w = World::start(&[("p", &[]), ("b", &[])], &fallback_config(""));
    let body = chat_body("fb", false);
    let head = "POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\ntrailer: x-checksum\r\n\r\n";
    let chunk = format!("{:x}\r\n{body}\r\n0\r\nx-checksum: abc\r\n\r\n", body.len());
    let t = Instant::now();
    let r = send_raw(w.envoy.port, &[head.as_bytes(), chunk.as_bytes()], Duration::from_millis(20));
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(t.elapsed() < Duration::from_secs(3), "hung: {:?}", t.elapsed());
    assert_eq!(r.header("x-model-workers-attempts"), Some("primary=200"));
    assert_eq!(r.json()["model"], "gpt-primary");
}

/// Was: an attempt past its timeout kept running, and Envoy buffered its late answer for the
/// filter to swallow. Now Envoy's per-try timeout cuts it: the upstream request is reset, the
/// next model answers, and the late answer never reaches the client.
#[test]
fn a_timed_out_attempt_is_cut_not_buffered() {
    let w = World::start(
        &[("p", &["--delay-ms", "1500"]), ("b", &[])],
        &fallback_config("model_workers:\n  timeout: 300ms\n"),
    );
    let t = Instant::now();
    let r = w.chat("fb");
    let took = t.elapsed();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-mock-backend"), Some("b"));
    assert_eq!(r.header("x-model-workers-attempts"), Some("primary=timeout,backup=200"));
    assert!(took >= Duration::from_millis(280) && took < Duration::from_millis(1200), "{took:?}");
    // Envoy cut the primary's attempt at the per-try timeout (it did not wait for its answer).
    let stats = w.envoy.stats();
    let per_try = stats.lines().find(|l| l.starts_with("cluster.p.upstream_rq_per_try_timeout:")).unwrap_or_default();
    assert_eq!(per_try, "cluster.p.upstream_rq_per_try_timeout: 1", "{stats}");
    // Later, the primary's late answer has nowhere to go: the next request is served normally.
    std::thread::sleep(Duration::from_millis(1400));
    let r = w.chat("backup");
    assert_eq!(r.status, 200, "{}", r.text());
}
