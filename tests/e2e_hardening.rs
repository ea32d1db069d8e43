//! Cooldown (circuit breaker shared across threads) and metrics, in a real Envoy.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::thread::sleep;
use std::time::Duration;

use common::*;

fn fallback(settings: &str) -> String {
    format!(
        "models:\n{}{}workers:\n  - name: fb\n    load_balance:\n      routing:\n        - {{ from: primary, order: 1 }}\n        - {{ from: backup, order: 2 }}\n  - name: solo\n    load_balance:\n      routing:\n        - from: primary\n{settings}",
        model_yaml("primary", "gpt-p", "p", ""),
        model_yaml("backup", "gpt-b", "b", ""),
    )
}

#[test]
fn a_failing_model_cools_down_then_gets_a_half_open_probe() {
    let w = World::start(
        &[("p", &["--status", "500"]), ("b", &[])],
        &fallback("model_workers:\n  cooldown: { failures: 2, duration: 1s }\n"),
    );
    for _ in 0..2 {
        assert_eq!(w.chat("fb").header("x-model-workers-attempts"), Some("primary=500,backup=200"));
    }
    // Open: primary is skipped (moved to the end of the chain), no time lost on it.
    for _ in 0..5 {
        let r = w.chat("fb");
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-model-workers-attempts"), Some("backup=200"));
    }
    assert_eq!(w.hits("p"), 2);
    // After the cooldown the model gets traffic again (half-open); one failure re-opens it.
    sleep(Duration::from_millis(1100));
    assert_eq!(w.chat("fb").header("x-model-workers-attempts"), Some("primary=500,backup=200"));
    assert_eq!(w.chat("fb").header("x-model-workers-attempts"), Some("backup=200"));
    assert_eq!(w.hits("p"), 3);
    assert!(w.envoy.log().contains("model `primary` cooling down for 1000 ms"));
}

#[test]
fn a_recovered_model_closes_the_breaker() {
    let w = World::start(
        &[("p", &["--status", "500"]), ("b", &[])],
        &fallback("model_workers:\n  cooldown: { failures: 1, duration: 500ms }\n"),
    );
    assert_eq!(w.chat("fb").header("x-model-workers-attempts"), Some("primary=500,backup=200"));
    assert_eq!(w.chat("fb").header("x-model-workers-attempts"), Some("backup=200"));
    w.mock("p").set_faults("{}");
    sleep(Duration::from_millis(600));
    for _ in 0..3 {
        assert_eq!(w.chat("fb").header("x-model-workers-attempts"), Some("primary=200"));
    }
}

#[test]
fn retry_after_opens_the_breaker_at_once_for_that_long() {
    let w = World::start(
        &[("p", &["--status", "429", "--retry-after", "1"]), ("b", &[])],
        &fallback("model_workers:\n  cooldown: { failures: 5, duration: 1m }\n"),
    );
    assert_eq!(w.chat("fb").header("x-model-workers-attempts"), Some("primary=429,backup=200"));
    assert_eq!(w.chat("fb").header("x-model-workers-attempts"), Some("backup=200"));
    sleep(Duration::from_millis(1100));
    // Retry-After (1 s) set the time, not the configured 1 minute.
    assert_eq!(w.chat("fb").header("x-model-workers-attempts"), Some("primary=429,backup=200"));
}

#[test]
fn a_single_model_worker_is_never_emptied() {
    let w = World::start(
        &[("p", &["--status", "503"]), ("b", &[])],
        &fallback("model_workers:\n  cooldown: { failures: 1, duration: 1m }\n"),
    );
    for i in 1..=4 {
        let r = w.chat("solo");
        assert_eq!(r.status, 503, "the provider's own error is returned");
        assert_eq!(w.hits("p"), i, "requests still reach the only model");
    }
}

#[test]
fn the_breaker_is_shared_by_every_worker_thread() {
    let w = World::start_with(
        &[("p", &["--status", "500"]), ("b", &[])],
        &fallback("model_workers:\n  cooldown: { failures: 3, duration: 1m }\n"),
        |o| o.concurrency = 4,
    );
    for _ in 0..3 {
        w.chat("fb");
    }
    assert_eq!(w.hits("p"), 3);
    // 200 requests over 32 connections land on all 4 threads: none tries the primary.
    let port = w.envoy.port;
    let body = chat_body("fb", false);
    let rs = parallel(32, 200, |_| {
        request(port, "POST", "/v1/chat/completions", &[("content-type", "application/json")], body.as_bytes())
    });
    assert!(rs.iter().all(|r| r.status == 200 && r.header("x-model-workers-attempts") == Some("backup=200")));
    assert_eq!(w.hits("p"), 3);
}

#[test]
fn metrics_count_requests_attempts_fallbacks_and_cooldowns() {
    let w = World::start(
        &[("p", &["--status", "500"]), ("b", &[])],
        &fallback("model_workers:\n  cooldown: { failures: 2, duration: 1m }\n"),
    );
    for _ in 0..4 {
        assert_eq!(w.chat("fb").status, 200);
    }
    assert_eq!(w.chat("nope").status, 404);
    assert_eq!(w.chat("backup").status, 200);
    let prom = w.envoy.prometheus();
    let value = |name: &str| {
        prom_value(&prom, name).unwrap_or_else(|| panic!("{name} missing:\n{}", grep(&prom, "model_workers")))
    };
    // Worker and model names are Prometheus labels (the generated config's stats tags).
    assert!(prom.contains("model_workers_worker_rq_total{worker=\"fb\"} 4"), "{}", grep(&prom, "model_workers"));
    assert!(!prom.contains("model_workers_worker_fb_"), "names are labels, not part of the metric name");
    assert_eq!(value("model_workers_rq_total"), 6);
    assert_eq!(value("model_workers_rq_rejected"), 1);
    assert_eq!(value("model_workers_worker_rq_total{worker=\"fb\"}"), 4);
    assert_eq!(value("model_workers_worker_rq_success{worker=\"fb\"}"), 4);
    assert_eq!(value("model_workers_worker_rq_error{worker=\"fb\"}"), 0);
    // Two requests failed over; then the breaker opened and the backup was the first pick.
    assert_eq!(value("model_workers_worker_fallbacks{worker=\"fb\"}"), 2);
    assert_eq!(value("model_workers_worker_retries{worker=\"fb\"}"), 2);
    assert_eq!(value("model_workers_model_attempts{model=\"primary\"}"), 2);
    assert_eq!(value("model_workers_model_rq_5xx{model=\"primary\"}"), 2);
    assert_eq!(value("model_workers_model_cooldowns{model=\"primary\"}"), 1);
    assert_eq!(value("model_workers_model_attempts{model=\"backup\"}"), 5);
    assert_eq!(value("model_workers_model_rq_2xx{model=\"backup\"}"), 5);
    // Histograms appear at the next stats flush (1 s in the test bootstrap).
    let mut flushed = None;
    for _ in 0..40 {
        let p = w.envoy.prometheus();
        if prom_value(&p, "model_workers_worker_latency_ms_count{worker=\"fb\"}").unwrap_or(0) >= 4 {
            flushed = Some(p);
            break;
        }
        sleep(Duration::from_millis(100));
    }
    let p = flushed.unwrap_or_else(|| panic!("histograms never flushed:\n{}", grep(&w.envoy.prometheus(), "_ms_")));
    assert_eq!(prom_value(&p, "model_workers_worker_latency_ms_count{worker=\"fb\"}"), Some(4));
    assert_eq!(prom_value(&p, "model_workers_model_ttfb_ms_count{model=\"backup\"}"), Some(5));
    assert_eq!(prom_value(&p, "model_workers_model_ttfb_ms_count{model=\"primary\"}"), Some(2));
    // The VMs' linear memory (set from the root ticks): whole 64 KiB pages, a few MiB at most
    // after a handful of small requests.
    let mem = prom_value(&p, "model_workers_vm_memory_bytes").unwrap_or_else(|| panic!("{}", grep(&p, "vm_memory")));
    assert!(mem > 0 && mem % 65536 == 0 && mem < 64 << 20, "{mem}");
}

/// A sample's value in Prometheus text (`name{} 4`, `name 4` or `name{le="1"} 4`); a `name`
/// with labels (`name{worker="fb"}`) matches a sample with those labels first.
fn prom_value(prom: &str, name: &str) -> Option<u64> {
    if let Some((base, labels)) = name.split_once('{') {
        let labels = labels.trim_end_matches('}');
        return prom
            .lines()
            .find(|l| l.starts_with(base) && l.as_bytes().get(base.len()) == Some(&b'{') && l.contains(labels))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .map(|v| v as u64);
    }
    prom.lines()
        .find(|l| l.starts_with(name) && matches!(l.as_bytes().get(name.len()), Some(b' ' | b'{')))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .map(|v| v as u64)
}

fn grep(text: &str, needle: &str) -> String {
    text.lines().filter(|l| l.contains(needle)).collect::<Vec<_>>().join("\n")
}
