//! Exact rotations and ratios across Envoy worker threads: tickets come from one
//! CAS-incremented counter in proxy-wasm shared data, which every worker's VM shares.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::collections::HashMap;

use common::*;

fn served_by(results: &[Result<Response, String>]) -> HashMap<String, u64> {
    let mut m = HashMap::new();
    for r in results {
        let r = r.as_ref().expect("request failed");
        assert_eq!(r.status, 200, "{}", r.text());
        *m.entry(r.header("x-mock-backend").unwrap().to_string()).or_insert(0) += 1;
    }
    m
}

fn load(w: &World, model: &str, total: usize) -> Vec<Result<Response, String>> {
    let body = chat_body(model, false);
    let port = w.envoy.port;
    parallel(64, total, |_| {
        try_request(port, "POST", "/v1/chat/completions", &[("content-type", "application/json")], body.as_bytes())
            .map_err(|e| e.to_string())
    })
}

#[test]
fn round_robin_is_exact_across_four_worker_threads() {
    let config = format!(
        "models:\n{}{}{}workers:\n  - name: rr\n    load_balance:\n      routing:\n        - from: ma\n        - from: mb\n        - from: mc\n",
        model_yaml("ma", "gpt-a", "a", ""),
        model_yaml("mb", "gpt-b", "b", ""),
        model_yaml("mc", "gpt-c", "c", ""),
    );
    let w = World::start_with(&[("a", &[]), ("b", &[]), ("c", &[])], &config, |o| o.concurrency = 4);
    let results = load(&w, "rr", 1200);
    let by = served_by(&results);
    eprintln!("round robin, 1200 requests, 64 clients, --concurrency 4: {by:?}");
    for n in ["a", "b", "c"] {
        let got = by.get(n).copied().unwrap_or(0);
        assert!((399..=401).contains(&got), "{n}: {got} ({by:?})");
        assert_eq!(w.hits(n), got, "mock count agrees");
    }
}

#[test]
fn weighted_four_to_one_is_exact_across_four_worker_threads() {
    let config = format!(
        "models:\n{}{}workers:\n  - name: weighted\n    load_balance:\n      routing:\n        - from: foo\n          weight: 4\n        - from: bar\n          weight: 1\n",
        model_yaml("foo", "gpt-foo", "a", ""),
        model_yaml("bar", "gpt-bar", "b", ""),
    );
    let w = World::start_with(&[("a", &[]), ("b", &[])], &config, |o| o.concurrency = 4);
    let results = load(&w, "weighted", 1000);
    let by = served_by(&results);
    eprintln!("weighted 4:1, 1000 requests, 64 clients, --concurrency 4: {by:?}");
    // 1000 is a whole number of windows of 5: exactly 800/200.
    assert_eq!(by.get("a").copied(), Some(800), "{by:?}");
    assert_eq!(by.get("b").copied(), Some(200), "{by:?}");
}
