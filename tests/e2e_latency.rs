//! The load-aware strategies in a real Envoy with four worker threads, on the shared
//! per-model table: a `latency` worker sends nearly everything to the model that answers 10×
//! faster, and moves to the other once that one slows down (its delay changed at runtime);
//! a `least_busy` worker keeps away from a model whose requests hang (its in-flight attempts
//! pile up), and every in-flight count is back to 0 after the load (the
//! `model_workers.model.<m>.in_flight` gauge, which shows the table at its last write).

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::*;

const JSON: (&str, &str) = ("content-type", "application/json");

/// `total` requests from `clients` parallel clients; who served each, in completion order.
fn load(w: &World, model: &str, clients: usize, total: usize) -> Vec<String> {
    let body = chat_body(model, false);
    let port = w.envoy.port;
    parallel(clients, total, |_| {
        let r = try_request(port, "POST", "/v1/chat/completions", &[JSON], body.as_bytes()).expect("request");
        assert_eq!(r.status, 200, "{}", r.text());
        r.header("x-mock-backend").unwrap().to_string()
    })
}

fn count(served: &[String]) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for s in served {
        *m.entry(s.clone()).or_insert(0) += 1;
    }
    m
}

fn gauge(w: &World, name: &str) -> Option<u64> {
    let stats = w.envoy.stats();
    let key = format!("wasmcustom.{name}: ");
    stats.lines().find_map(|l| l.strip_prefix(&key)).and_then(|v| v.trim().parse().ok())
}

#[test]
fn latency_sends_most_traffic_to_the_fast_model_and_shifts_when_it_slows() {
    let config = format!(
        "models:\n{}{}workers:\n  - name: fast\n    load_balance: {{ strategy: latency, routing: [{{ from: quick }}, {{ from: slow }}] }}\nmodel_workers:\n  cooldown: {{ failures: 0 }}\n",
        model_yaml("quick", "gpt-q", "q", ""),
        model_yaml("slow", "gpt-s", "s", ""),
    );
    let w = World::start_with(&[("q", &["--delay-ms", "10"]), ("s", &["--delay-ms", "100"])], &config, |o| {
        o.concurrency = 4
    });
    let served = load(&w, "fast", 4, 200);
    let by = count(&served);
    let quick = by.get("q").copied().unwrap_or(0);
    eprintln!("latency worker, q 10 ms vs s 100 ms, 200 requests, 4 clients, --concurrency 4: {by:?}");
    assert!(quick >= 180, "≥ 90 % to the 10× faster model: {by:?}");
    assert!(by.get("s").copied().unwrap_or(0) >= 5, "exploration keeps measuring the other: {by:?}");
    let ewma_q = gauge(&w, "model_workers.model.quick.ewma_ms").unwrap();
    let ewma_s = gauge(&w, "model_workers.model.slow.ewma_ms").unwrap();
    eprintln!("EWMA after phase 1: quick {ewma_q} ms, slow {ewma_s} ms");
    assert!(ewma_q < ewma_s, "{ewma_q} vs {ewma_s}");

    // `q` slows down to 1 s: after a few of its answers the traffic moves to `s`.
    w.mock("q").set_faults(r#"{"delay_ms":1000}"#);
    let served = load(&w, "fast", 4, 200);
    let (first, last) = served.split_at(100);
    let (by_first, by_last) = (count(first), count(last));
    eprintln!("after q slowed to 1 s: first 100 {by_first:?}, last 100 {by_last:?}");
    assert!(by_last.get("s").copied().unwrap_or(0) >= 90, "the now faster model serves ≥ 90 %: {by_last:?}");
    let ewma_q = gauge(&w, "model_workers.model.quick.ewma_ms").unwrap();
    assert!(ewma_q > 200, "quick's EWMA followed its slowdown: {ewma_q}");
}

#[test]
fn least_busy_avoids_a_model_whose_requests_hang_and_in_flight_returns_to_zero() {
    let config = format!(
        "models:\n{}{}workers:\n  - name: idle\n    load_balance: {{ strategy: least_busy, routing: [{{ from: stuck }}, {{ from: free }}] }}\nmodel_workers:\n  cooldown: {{ failures: 0 }}\n",
        model_yaml("stuck", "gpt-h", "h", "      timeout: 2s\n"),
        model_yaml("free", "gpt-f", "f", "      timeout: 2s\n"),
    );
    let w = World::start_with(&[("h", &["--hang"]), ("f", &["--delay-ms", "20"])], &config, |o| o.concurrency = 4);
    let t = Instant::now();
    let served = load(&w, "idle", 16, 200);
    let by = count(&served);
    let hung = w.hits("h");
    eprintln!(
        "least busy, h hangs, f 20 ms, 200 requests, 16 clients, --concurrency 4: served {by:?}, attempts sent to h: {hung}, {:?}",
        t.elapsed()
    );
    assert_eq!(by.get("f").copied(), Some(200), "every request answered by the free model: {by:?}");
    assert!(hung <= 20, "the hanging model gets few attempts (p2c on in-flight): {hung}");

    // Every attempt's end took its count out again (hung attempts end at their timeout).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (s, f) =
            (gauge(&w, "model_workers.model.stuck.in_flight"), gauge(&w, "model_workers.model.free.in_flight"));
        if s == Some(0) && f == Some(0) {
            break;
        }
        assert!(Instant::now() < deadline, "in flight after the load: stuck {s:?}, free {f:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}
