//! Failover in a real Envoy: retryable statuses, connection refused, resets, per-attempt
//! timeouts, same-model retries with backoff, client errors passed through, all candidates
//! failing, streaming pass-through and buffered streaming fallback.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::time::{Duration, Instant};

use common::*;

/// Worker `fb`: fallback primary (cluster `p`) → backup (cluster `b`).
fn fallback_config(primary_params: &str, settings: &str) -> String {
    format!(
        "models:\n{}{}workers:\n  - name: fb\n    load_balance:\n      routing:\n        - from: primary\n          order: 1\n        - from: backup\n          order: 2\n{settings}",
        model_yaml("primary", "gpt-primary", "p", primary_params),
        model_yaml("backup", "gpt-backup", "b", ""),
    )
}

fn assert_backup_answered(r: &Response, trail: &str) {
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-mock-backend"), Some("b"));
    assert_eq!(r.header("x-model-workers-model"), Some("backup"));
    assert_eq!(r.header("x-model-workers-attempts"), Some(trail));
    // The backup got the backup's model id, and no trace of the failed attempt's error body.
    let v = r.json();
    assert_eq!(v["model"], "gpt-backup");
    assert!(!r.text().contains("injected"), "error body leaked: {}", r.text());
}

#[test]
fn fails_over_on_retryable_statuses() {
    for status in [503u16, 429, 500, 502, 504, 408] {
        let s = status.to_string();
        let w = World::start(&[("p", &["--status", &s]), ("b", &[])], &fallback_config("", ""));
        let r = w.chat("fb");
        assert_backup_answered(&r, &format!("primary={status},backup=200"));
        assert_eq!((w.hits("p"), w.hits("b")), (1, 1), "status {status}");
    }
}

#[test]
fn does_not_fail_over_on_client_errors() {
    for status in [400u16, 401, 404, 422] {
        let s = status.to_string();
        let w = World::start(&[("p", &["--status", &s]), ("b", &[])], &fallback_config("", ""));
        let r = w.chat("fb");
        assert_eq!(r.status, status);
        assert!(r.text().contains("injected"), "the provider's own error body is returned: {}", r.text());
        assert_eq!(r.header("x-model-workers-attempts"), Some(format!("primary={status}").as_str()));
        assert_eq!(w.hits("b"), 0, "a {status} must never be retried");
    }
}

#[test]
fn retry_on_is_configurable() {
    // Only 429 is retryable here: a 503 is the answer.
    let w = World::start(
        &[("p", &["--status", "503"]), ("b", &[])],
        &fallback_config("", "model_workers:\n  retry_on: [429]\n"),
    );
    let r = w.chat("fb");
    assert_eq!(r.status, 503);
    assert_eq!(w.hits("b"), 0);
}

#[test]
fn fails_over_on_connection_refused() {
    let mocks: &[(&str, &[&str])] = &[("b", &[])];
    let dead = closed_port();
    let w = World::start_with(mocks, &fallback_config("", ""), |o| o.clusters.push(Cluster::new("p", dead)));
    let r = w.chat("fb");
    assert_backup_answered(&r, "primary=reset,backup=200");
}

#[test]
fn fails_over_on_connection_reset() {
    let w = World::start(&[("p", &["--reset"]), ("b", &[])], &fallback_config("", ""));
    let r = w.chat("fb");
    assert_backup_answered(&r, "primary=reset,backup=200");
    assert_eq!(w.hits("p"), 1);
}

#[test]
fn fails_over_when_an_attempt_times_out() {
    // Envoy has one per-try timeout per request: the largest timeout of the request's models
    // (README, "Limits"). Here both models have 400 ms.
    let w = World::start(&[("p", &["--hang"]), ("b", &[])], &fallback_config("", "model_workers:\n  timeout: 400ms\n"));
    let t = Instant::now();
    let r = w.chat("fb");
    let took = t.elapsed();
    assert_backup_answered(&r, "primary=timeout,backup=200");
    assert!(took >= Duration::from_millis(380), "answered before the timeout: {took:?}");
    assert!(took < Duration::from_secs(3), "timeout not enforced: {took:?}");
}

#[test]
fn a_hanging_later_attempt_times_out_too() {
    // primary 503s at once, backup hangs, third answers: the second attempt times out.
    let config = format!(
        "models:\n{}{}{}workers:\n  - name: fb\n    load_balance:\n      routing:\n        - {{ from: primary, order: 1 }}\n        - {{ from: backup, order: 2 }}\n        - {{ from: last, order: 3 }}\nmodel_workers:\n  timeout: 300ms\n",
        model_yaml("primary", "gpt-p", "p", ""),
        model_yaml("backup", "gpt-b", "b", ""),
        model_yaml("last", "gpt-l", "l", ""),
    );
    let w = World::start(&[("p", &["--status", "503"]), ("b", &["--hang"]), ("l", &[])], &config);
    let r = w.chat("fb");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-mock-backend"), Some("l"));
    assert_eq!(r.header("x-model-workers-attempts"), Some("primary=503,backup=timeout,last=200"));
}

#[test]
fn same_model_retries_back_off_before_moving_on() {
    let w = World::start(
        &[("p", &["--status", "503"]), ("b", &[])],
        &fallback_config("      max_retries: 2\n      backoff: 150ms\n", ""),
    );
    let t = Instant::now();
    let r = w.chat("fb");
    let took = t.elapsed();
    assert_backup_answered(&r, "primary=503,primary=503,primary=503,backup=200");
    assert_eq!(w.hits("p"), 3);
    // 150 ms + 300 ms of backoff.
    assert!(took >= Duration::from_millis(430), "backoff not honoured: {took:?}");
}

#[test]
fn a_retry_on_the_same_model_can_succeed() {
    // The primary fails 50% of the time (deterministic seed); with 3 retries, almost every
    // request is served by the primary itself, and none fails.
    let w = World::start(
        &[("p", &["--fault-rate", "0.5", "--faults", "503", "--seed", "7"]), ("b", &[])],
        &fallback_config("      max_retries: 3\n      backoff: 1ms\n", "model_workers:\n  cooldown: { failures: 0 }\n"),
    );
    let mut by_primary = 0;
    for _ in 0..20 {
        let r = w.chat("fb");
        assert_eq!(r.status, 200, "{}", r.text());
        if r.header("x-mock-backend") == Some("p") {
            by_primary += 1;
            let trail = r.header("x-model-workers-attempts").unwrap();
            assert!(trail.ends_with("primary=200"), "{trail}");
        }
    }
    assert!(by_primary >= 15, "{by_primary}");
}

#[test]
fn all_candidates_failing_returns_the_last_upstream_error() {
    let w = World::start(
        &[("p", &["--status", "503"]), ("b", &["--status", "429", "--retry-after", "7"])],
        &fallback_config("", ""),
    );
    let t = Instant::now();
    let r = w.chat("fb");
    assert!(t.elapsed() < Duration::from_secs(3));
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(r.header("retry-after"), Some("7"));
    assert!(r.text().contains("mock b injected 429"));
    assert_eq!(r.header("x-model-workers-attempts"), Some("primary=503,backup=429"));
    assert_eq!(r.header("x-model-workers-model"), None);
}

#[test]
fn all_candidates_unreachable_gives_a_clear_503() {
    let (p, b) = (closed_port(), closed_port());
    let w = World::start_with(&[], &fallback_config("", ""), |o| {
        o.clusters.push(Cluster::new("p", p));
        o.clusters.push(Cluster::new("b", b));
    });
    let r = w.chat("fb");
    assert_eq!(r.status, 503, "{}", r.text());
    let e = r.json();
    assert_eq!(e["error"]["code"], "all_models_failed");
    let msg = e["error"]["message"].as_str().unwrap();
    assert!(msg.contains("`fb`") && msg.contains("primary=reset,backup=reset"), "{msg}");
    assert_eq!(r.header("x-model-workers-attempts"), Some("primary=reset,backup=reset"));
}

#[test]
fn every_attempt_timing_out_gives_504() {
    let config = fallback_config("      timeout: 200ms\n", "")
        .replace("    params:\n      cluster: b\n", "    params:\n      cluster: b\n      timeout: 200ms\n");
    let w = World::start(&[("p", &["--hang"]), ("b", &["--hang"])], &config);
    let r = w.chat("fb");
    assert_eq!(r.status, 504, "{}", r.text());
    assert_eq!(r.header("x-model-workers-attempts"), Some("primary=timeout,backup=timeout"));
}

#[test]
fn max_attempts_caps_the_chain() {
    let config = format!(
        "models:\n{}{}{}workers:\n  - name: fb\n    load_balance:\n      routing:\n        - {{ from: one, order: 1 }}\n        - {{ from: two, order: 2 }}\n        - {{ from: three, order: 3 }}\nmodel_workers:\n  max_attempts: 2\n",
        model_yaml("one", "x1", "p", ""),
        model_yaml("two", "x2", "b", ""),
        model_yaml("three", "x3", "l", ""),
    );
    let w = World::start(&[("p", &["--status", "503"]), ("b", &["--status", "502"]), ("l", &[])], &config);
    let r = w.chat("fb");
    assert_eq!(r.status, 502);
    assert_eq!(w.hits("l"), 0);
}

#[test]
fn a_healthy_stream_passes_through_chunk_by_chunk() {
    let w = World::start(&[("p", &["--chunks", "6", "--chunk-delay-ms", "120"]), ("b", &[])], &fallback_config("", ""));
    let r = post_stream(w.envoy.port, "/v1/chat/completions", &chat_body("fb", true), &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    assert_eq!(r.header("x-model-workers-model"), Some("primary"));
    let events = r.sse_data();
    assert!(events.len() >= 7, "{events:?}");
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    assert!(events[0].contains("gpt-primary"));
    // Unbuffered: the first chunk arrives long before the stream ends (5 × 120 ms later).
    let first = r.chunks.first().unwrap().0;
    let last = r.chunks.last().unwrap().0;
    assert!(r.chunks.len() >= 6, "chunks were coalesced: {}", r.chunks.len());
    assert!(last - first >= Duration::from_millis(450), "first {first:?} last {last:?}");
}

#[test]
fn a_stream_whose_primary_fails_is_answered_by_the_backup_buffered() {
    let w = World::start(
        &[("p", &["--status", "503"]), ("b", &["--chunks", "3", "--chunk-delay-ms", "20"])],
        &fallback_config("", ""),
    );
    let r = post_stream(w.envoy.port, "/v1/chat/completions", &chat_body("fb", true), &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-model-workers-attempts"), Some("primary=503,backup=200"));
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    let events = r.sse_data();
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"), "{events:?}");
    assert!(events[0].contains("gpt-backup"));
    assert!(!r.text().contains("injected"));
}

#[test]
fn failover_keeps_envoy_serving_and_uses_each_models_own_auth() {
    let config = "models:\n  - from: openai:gpt-p\n    name: primary\n    params:\n      cluster: p\n      openai_api_key: ${ secrets:P_KEY }\n  - from: anthropic:claude-b\n    name: backup\n    params:\n      cluster: b\n      anthropic_api_key: ${ secrets:B_KEY }\nworkers:\n  - name: fb\n    load_balance:\n      routing:\n        - { from: primary, order: 1 }\n        - { from: backup, order: 2 }\n";
    let w = World::start_with(&[("p", &["--status", "500"]), ("b", &[])], config, |o| {
        o.env = vec![("P_KEY".into(), "sk-primary".into()), ("B_KEY".into(), "sk-backup".into())];
    });
    for _ in 0..5 {
        let r = request(
            w.envoy.port,
            "POST",
            "/v1/chat/completions",
            &[("content-type", "application/json"), ("authorization", "Bearer client")],
            chat_body("fb", false).as_bytes(),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        // The backup speaks Anthropic's Messages API: it got its own key and version, a
        // Messages body, and the client got an OpenAI chat completion back.
        let v = r.json();
        assert_eq!(v["object"], "chat.completion", "{v}");
        assert_eq!(v["choices"][0]["message"]["content"], "Hello from b");
        let last = w.mock("b").last();
        let h = &last["headers"];
        assert_eq!(last["path"], "/v1/messages");
        assert_eq!(h["x-api-key"], "sk-backup");
        assert_eq!(h["anthropic-version"], "2023-06-01");
        assert!(h["authorization"].is_null(), "{last}");
        assert_eq!(last["body"]["model"], "claude-b");
    }
}

#[test]
fn a_stream_whose_first_event_is_an_error_fails_over() {
    let w = World::start(
        &[("p", &["--sse-error"]), ("b", &["--chunks", "3", "--chunk-delay-ms", "10"])],
        &fallback_config("", ""),
    );
    let r = post_stream(w.envoy.port, "/v1/chat/completions", &chat_body("fb", true), &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-model-workers-attempts"), Some("primary=stream_error,backup=200"));
    let events = r.sse_data();
    assert!(events[0].contains("gpt-backup"), "{events:?}");
    assert!(!r.text().contains("\"error\""), "the error event leaked: {}", r.text());
    // A non-stream request to the same primary is answered normally (sse-error only affects streams).
    let r = w.chat("fb");
    assert_eq!(r.header("x-model-workers-attempts"), Some("primary=200"));
}

#[test]
fn a_buffered_fallback_stream_that_errors_moves_on_too() {
    let config = format!(
        "models:\n{}{}{}workers:\n  - name: fb\n    load_balance:\n      routing:\n        - {{ from: primary, order: 1 }}\n        - {{ from: backup, order: 2 }}\n        - {{ from: last, order: 3 }}\n",
        model_yaml("primary", "gpt-p", "p", ""),
        model_yaml("backup", "gpt-b", "b", ""),
        model_yaml("last", "gpt-l", "l", ""),
    );
    let w = World::start(&[("p", &["--status", "500"]), ("b", &["--sse-error"]), ("l", &["--chunks", "2"])], &config);
    let r = post_stream(w.envoy.port, "/v1/chat/completions", &chat_body("fb", true), &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-model-workers-attempts"), Some("primary=500,backup=stream_error,last=200"));
    assert!(r.sse_data()[0].contains("gpt-l"));
}

#[test]
fn when_every_stream_errors_the_client_gets_a_clear_503() {
    let w = World::start(&[("p", &["--sse-error"]), ("b", &["--sse-error"])], &fallback_config("", ""));
    let r = post_stream(w.envoy.port, "/v1/chat/completions", &chat_body("fb", true), &[]);
    // No provider gave a usable answer: a 503 an SDK raises on before reading any stream.
    assert_eq!(r.status, 503, "{}", r.text());
    let e: serde_json::Value = serde_json::from_str(&r.text()).unwrap();
    assert_eq!(e["error"]["code"], "all_models_failed");
    assert_eq!(r.header("x-model-workers-attempts"), Some("primary=stream_error,backup=stream_error"));
}

#[test]
fn a_client_that_disconnects_mid_failover_leaves_envoy_healthy() {
    use std::io::Write;
    // Case 1: the retry of the primary waits for its backoff timer. Case 2: the attempt on the
    // backup is pending (backup hangs). The client goes away in both; the filter must drop the
    // request's state cleanly (timers hold only weak references).
    let w = World::start(
        &[("p", &["--status", "503"]), ("b", &["--hang"])],
        &fallback_config(
            "      max_retries: 1\n      backoff: 400ms\n",
            "model_workers:\n  cooldown: { failures: 0 }\n",
        ),
    );
    for _ in 0..3 {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", w.envoy.port)).unwrap();
        let body = chat_body("fb", false);
        write!(s, "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}", body.len()).unwrap();
        std::thread::sleep(Duration::from_millis(150)); // inside the 400 ms backoff
        drop(s);
        let mut s = std::net::TcpStream::connect(("127.0.0.1", w.envoy.port)).unwrap();
        write!(s, "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}", body.len()).unwrap();
        std::thread::sleep(Duration::from_millis(700)); // the backup callout is pending
        drop(s);
    }
    std::thread::sleep(Duration::from_millis(600)); // let any stray timer fire
                                                    // Still serving: a plain model on the healthy path.
    w.mock("b").set_faults("{}");
    let r = w.chat("backup");
    assert_eq!(r.status, 200, "{}", r.text());
    let log = w.envoy.log();
    assert!(!log.contains("panicked"), "{log}");
    let stats = w.envoy.stats();
    for line in stats.lines().filter(|l| l.starts_with("wasm.model_workers.vm_reload")) {
        assert!(line.ends_with(": 0"), "{line}");
    }
}
