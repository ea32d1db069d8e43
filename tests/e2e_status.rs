//! The read-only status document (`model_workers.status_path`, off by default): every worker
//! and model with breaker, latency and in-flight state from shared data and request counts
//! from Envoy's counters, as all Envoy worker threads see them; never a secret, a key, a
//! cluster or an address.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use common::*;

const KEY: &str = "sk-status-test-secret";

fn config(status: &str) -> String {
    format!(
        "models:\n{}{}workers:\n  - name: fb\n    load_balance:\n      routing:\n        - {{ from: primary, order: 1 }}\n        - {{ from: backup, order: 2 }}\n  - name: quick\n    load_balance:\n      strategy: latency\n      routing:\n        - from: backup\nmodel_workers:\n{status}",
        model_yaml("primary", "gpt-p", "p", "      openai_api_key: ${ secrets:K }\n      cooldown_failures: 1\n      cooldown: 1m\n"),
        model_yaml("backup", "gpt-b", "b", ""),
    )
}

#[test]
fn the_status_shows_a_breaker_opening_within_one_request() {
    let w = World::start_with(
        &[("p", &["--status", "500"]), ("b", &[])],
        &config("  status_path: /model-workers/status\n"),
        |o| {
            o.env = vec![("K".into(), KEY.into())];
            o.concurrency = 2;
        },
    );
    let status = || {
        let r = request(w.envoy.port, "GET", "/model-workers/status", &[], b"");
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("content-type"), Some("application/json"));
        r
    };
    let v = status().json();
    assert_eq!(v["object"], "model_workers.status");
    assert_eq!(v["workers"][0]["name"], "fb");
    assert_eq!(v["workers"][0]["models"], serde_json::json!(["primary", "backup"]));
    assert_eq!(v["workers"][1]["strategy"].as_str().map(|s| s.contains("latency")), Some(true), "{v}");
    assert_eq!(v["models"][0]["breaker"]["state"], "closed", "{v}");

    // One request: the primary's 500 opens its breaker (cooldown_failures: 1); the next status
    // read — on whichever worker thread — shows it open.
    let r = w.chat("fb");
    assert_eq!(r.header("x-model-workers-attempts"), Some("primary=500,backup=200"));
    let r = status();
    let v = r.json();
    let b = &v["models"][0]["breaker"];
    assert_eq!(b["state"], "open", "{v}");
    assert!(b["open_for_ms"].as_u64().is_some_and(|ms| ms > 50_000 && ms <= 60_000), "{v}");
    // The backup served: its latency is recorded for the latency worker.
    assert!(v["models"][1]["latency_samples"].as_u64().is_some_and(|n| n >= 1), "{v}");
    assert_eq!(v["models"][1]["in_flight"], 0);
    // Nothing secret or internal in it.
    let text = r.text();
    for s in [KEY, "127.0.0.1", "\"p\"", "\"b\""] {
        assert!(!text.contains(s), "{s} in {text}");
    }
    // HEAD: headers only.
    assert_eq!(request(w.envoy.port, "HEAD", "/model-workers/status", &[], b"").status, 200);
}

#[test]
fn the_status_is_off_by_default() {
    let w = World::start_with(&[("p", &[]), ("b", &[])], &config("  timeout: 30s\n"), |o| {
        o.env = vec![("K".into(), KEY.into())];
    });
    let r = request(w.envoy.port, "GET", "/model-workers/status", &[], b"");
    assert_eq!(r.status, 405, "a GET that is not /v1/models: {}", r.text());
}

/// deploy/grafana/model-workers.json queries only series the filter really exports, with the
/// labels they group by.
#[test]
fn the_grafana_dashboard_queries_series_that_exist() {
    let w = World::start_with(&[("p", &["--status", "500"]), ("b", &[])], &config("  timeout: 30s\n"), |o| {
        o.env = vec![("K".into(), KEY.into())];
    });
    for _ in 0..3 {
        w.chat("fb");
    }
    // Histograms reach Prometheus at the next stats flush (1 s in the test bootstrap).
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let prom = w.envoy.prometheus();
    let dash: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(project_root().join("deploy/grafana/model-workers.json")).unwrap(),
    )
    .unwrap();
    let mut checked = 0;
    for p in dash["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().unwrap() {
            let expr = t["expr"].as_str().unwrap();
            for (i, _) in expr.match_indices("model_workers_") {
                let name: String = expr[i..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                let label = if name.starts_with("model_workers_model_") { "model=" } else { "worker=" };
                assert!(
                    prom.lines().any(|l| l.starts_with(&format!("{name}{{")) && l.contains(label)),
                    "{name} (with {label}) is not exported:\n{}",
                    prom.lines().filter(|l| l.starts_with("model_workers")).collect::<Vec<_>>().join("\n")
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 10, "{checked}");
}

/// Connections each listener worker thread accepted (`listener.<addr>.worker_<n>.downstream_cx_total`).
fn connections_by_thread(w: &World) -> std::collections::BTreeMap<String, u64> {
    w.envoy
        .stats()
        .lines()
        .filter(|l| l.starts_with("listener.") && l.contains(".worker_") && l.contains(".downstream_cx_total: "))
        .map(|l| {
            let (name, v) = l.split_once(": ").unwrap();
            let thread = name.split('.').find(|s| s.starts_with("worker_")).unwrap().to_string();
            (thread, v.trim().parse().unwrap())
        })
        .collect()
}

/// The status document's request counts are Envoy's counters read back with `get_metric`: one
/// stat per name for the whole process, so whichever of 4 worker threads answers the status
/// request shows every thread's requests — exactly the client's totals and what `/stats` says.
#[test]
fn the_status_counts_every_worker_threads_requests() {
    const FB: u64 = 300;
    const DIRECT: u64 = 200;
    let config = format!(
        "models:\n{}{}workers:\n  - name: fb\n    load_balance:\n      routing:\n        - {{ from: primary, order: 1 }}\n        - {{ from: backup, order: 2 }}\n  - name: direct\n    load_balance:\n      routing:\n        - from: backup\nmodel_workers:\n  status_path: /model-workers/status\n  cooldown: {{ failures: 0 }}\n",
        model_yaml("primary", "gpt-p", "p", ""),
        model_yaml("backup", "gpt-b", "b", ""),
    );
    let w = World::start_with(&[("p", &["--status", "500"]), ("b", &[])], &config, |o| o.concurrency = 4);
    let port = w.envoy.port;
    // A new connection per request: the kernel spreads them over the 4 listener threads.
    let results = parallel(16, (FB + DIRECT) as usize, |i| {
        let worker = if (i as u64) < FB { "fb" } else { "direct" };
        let body = chat_body(worker, false);
        try_request(port, "POST", "/v1/chat/completions", &[("content-type", "application/json")], body.as_bytes())
            .map(|r| (r.status, r.header("x-model-workers-attempts").map(str::to_string)))
            .map_err(|e| e.to_string())
    });
    for (i, r) in results.iter().enumerate() {
        let want = if (i as u64) < FB { "primary=500,backup=200" } else { "backup=200" };
        assert_eq!(r.as_ref().unwrap(), &(200, Some(want.to_string())), "#{i}");
    }
    let spread = connections_by_thread(&w);
    let busiest = spread.values().copied().max().unwrap_or(0);
    eprintln!("[status] {} requests, connections by thread: {spread:?}", FB + DIRECT);
    assert_eq!(spread.len(), 4, "{spread:?}");
    assert!(busiest < FB + DIRECT, "no one thread served every request: {spread:?}");

    let expect_workers = serde_json::json!([
        {"rq_total": FB, "rq_success": FB, "rq_error": 0, "fallbacks": FB, "retries": FB},
        {"rq_total": DIRECT, "rq_success": DIRECT, "rq_error": 0, "fallbacks": 0, "retries": 0},
    ]);
    let model = |attempts: u64, c2: u64, c5: u64| {
        serde_json::json!({"attempts": attempts, "rq_2xx": c2, "rq_3xx": 0, "rq_4xx": 0, "rq_5xx": c5,
            "rq_reset": 0, "rq_timeout": 0, "rq_stream_error": 0, "cooldowns": 0})
    };
    let expect_models = [model(FB, 0, FB), model(FB + DIRECT, FB + DIRECT, 0)];
    // Read the status until two different threads have answered it (each read on a new
    // connection; the thread is the one whose accepted connections went up).
    let mut answered_by = std::collections::BTreeSet::new();
    let mut reads = 0u64;
    while answered_by.len() < 2 {
        assert!(reads < 60, "60 status reads all landed on {answered_by:?}");
        let before = connections_by_thread(&w);
        let r = request(port, "GET", "/model-workers/status", &[], b"");
        reads += 1;
        assert_eq!(r.status, 200, "{}", r.text());
        let after = connections_by_thread(&w);
        let thread = after.iter().find(|(t, n)| before.get(*t) != Some(n)).map(|(t, _)| t.clone()).unwrap();
        let v = r.json();
        assert_eq!(v["counters"]["rq_total"], FB + DIRECT + reads, "answered on {thread}: {v}");
        assert_eq!(v["counters"]["rq_rejected"], 0);
        for (i, want) in expect_workers.as_array().unwrap().iter().enumerate() {
            assert_eq!(&v["workers"][i]["counters"], want, "worker {i}, answered on {thread}");
        }
        for (i, want) in expect_models.iter().enumerate() {
            assert_eq!(v["models"][i]["counters"], *want, "model {i}, answered on {thread}");
        }
        answered_by.insert(thread);
    }
    eprintln!("[status] {reads} status reads, answered on {answered_by:?}, each showing all {} requests", FB + DIRECT);
    // What the admin's /stats says (the same stats, summed by Envoy).
    let stat = |name: &str| w.envoy.counter(&format!("wasmcustom.model_workers.{name}"));
    assert_eq!(stat("worker.fb.rq_total"), Some(FB));
    assert_eq!(stat("worker.direct.rq_success"), Some(DIRECT));
    assert_eq!(stat("model.primary.rq_5xx"), Some(FB));
    assert_eq!(stat("model.backup.attempts"), Some(FB + DIRECT));
    assert_eq!(stat("rq_total"), Some(FB + DIRECT + reads));
    assert_eq!(w.hits("b"), FB + DIRECT);
}
