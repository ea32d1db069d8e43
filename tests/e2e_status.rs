//! The read-only status document (`model_workers.status_path`, off by default): every worker
//! and model with breaker, latency and in-flight state from shared data, as all Envoy worker
//! threads see it; never a secret, a key, a cluster or an address.

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
