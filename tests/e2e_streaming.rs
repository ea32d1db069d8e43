//! Streamed failover in a real Envoy: whichever attempt serves a `"stream": true` request —
//! the first, a fallback after a 500, a 503, a reset, a timeout or an error event, or a
//! same-model retry after its backoff — its events reach the client one by one, as the
//! provider sends them (before the router made every attempt, a fallback's stream arrived
//! as one buffered piece: spread 0.00 s).
//!
//! Every model's mock streams 5 content events 200 ms apart (then `[DONE]` at once), so a
//! stream that flows spans ~0.8 s at the client; one that was buffered anywhere arrives in
//! one piece.
//!
//! **How "promptly" is measured.** The mock stamps every response with
//! `x-mock-sent-at-us`: the wall clock (µs since the Unix epoch) when it wrote the response
//! head, and it writes the first event right after the head (no delay before event 0). The
//! client stamps each SSE event with the moment the socket read that completed it returned
//! (`StreamResponse::events`, measured from the request and turned into wall-clock time with
//! the wall clock read when the request was written). Both run on this machine and read the
//! same `CLOCK_REALTIME`, so *client first event − mock head written* is the time the first
//! event spent in Envoy and the filter (the upstream filter holds a stream's headers until
//! its first event shows whether it is an error). Because the stamp is taken by the attempt
//! that served the answer, after any backoff and after the failed attempts, it measures the
//! served attempt alone; the same-model retry test also checks the first event against the
//! request start (backoff + 150 ms).
//!
//! Also: a 5 MB non-streaming answer after a failover arrives whole (the mock's `--pad-bytes`).

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::process::Command;
use std::time::{Duration, SystemTime};

use common::*;

/// The stream shape of every mock here: 5 content events, 200 ms apart.
const STREAM: [&str; 4] = ["--chunks", "5", "--chunk-delay-ms", "200"];
/// The served attempt's first event reaches the client at most this long after the mock
/// wrote it.
const MAX_LAG: Duration = Duration::from_millis(150);
/// First to last event at the client (nominally 4 × 200 ms = 0.8 s).
const MIN_SPREAD: Duration = Duration::from_millis(600);

/// Worker `fb`: fallback primary (cluster `p`) → backup (cluster `b`).
fn fallback_config(primary_params: &str, settings: &str) -> String {
    format!(
        "models:\n{}{}workers:\n  - name: fb\n    load_balance:\n      routing:\n        - from: primary\n          order: 1\n        - from: backup\n          order: 2\n{settings}",
        model_yaml("primary", "gpt-primary", "p", primary_params),
        model_yaml("backup", "gpt-backup", "b", ""),
    )
}

fn args<'a>(fault: &[&'a str]) -> Vec<&'a str> {
    fault.iter().copied().chain(STREAM).collect()
}

/// `a` − `b` in signed milliseconds.
fn ms_between(a: SystemTime, b: SystemTime) -> f64 {
    match a.duration_since(b) {
        Ok(d) => d.as_secs_f64() * 1000.0,
        Err(e) => -e.duration().as_secs_f64() * 1000.0,
    }
}

/// What one streamed answer looked like at the client.
struct Timing {
    /// First event, measured from the request.
    first: Duration,
    /// First to last event.
    spread: Duration,
    /// Client's first event − the serving mock's head (ms).
    lag_ms: f64,
}

/// Checks that `r` is the 5-event stream of `model_id` from mock `backend`, arriving event by
/// event, its first event within [`MAX_LAG`] of the mock sending it; returns the figures.
fn assert_streamed(r: &StreamResponse, backend: &str, model_id: &str, what: &str) -> Timing {
    assert_eq!(r.status, 200, "{what}: {}", r.text());
    assert_eq!(r.header("content-type"), Some("text/event-stream"), "{what}");
    assert_eq!(r.header("x-mock-backend"), Some(backend), "{what}");
    let data: Vec<String> = r.events.iter().map(SseEvent::data).collect();
    assert_eq!(data.len(), 6, "{what}: 5 content events + [DONE]: {data:?}");
    assert_eq!(data[5], "[DONE]", "{what}");
    for (i, d) in data[..5].iter().enumerate() {
        let v: serde_json::Value = serde_json::from_str(d).unwrap_or_else(|e| panic!("{what}: event {i}: {e}: {d}"));
        assert_eq!(v["model"], model_id, "{what}: event {i}: {d}");
        assert_eq!(v["choices"][0]["delta"]["content"], format!("tok{i} "), "{what}: event {i}");
    }
    assert!(!r.text().contains("\"error\"") && !r.text().contains("injected"), "{what}: failure leaked: {}", r.text());
    let at: Vec<Duration> = r.events.iter().map(|e| e.at).collect();
    // Event by event: every content event arrives on its own, ~200 ms after the one before.
    for i in 1..5 {
        let gap = at[i].saturating_sub(at[i - 1]);
        assert!(gap >= Duration::from_millis(100), "{what}: event {i} came {gap:?} after event {}: {at:?}", i - 1);
    }
    let spread = r.spread();
    assert!(spread >= MIN_SPREAD, "{what}: spread {spread:?} < {MIN_SPREAD:?}; events at {at:?}");
    let sent = r.mock_sent_at().unwrap_or_else(|| panic!("{what}: no x-mock-sent-at-us"));
    let lag_ms = ms_between(r.wall(at[0]), sent);
    assert!(lag_ms >= 0.0, "{what}: first event {lag_ms:.1} ms before the mock sent it (clock?)");
    assert!(
        lag_ms <= MAX_LAG.as_secs_f64() * 1000.0,
        "{what}: first event reached the client {lag_ms:.1} ms after the serving mock sent it (> {MAX_LAG:?})"
    );
    let t = Timing { first: at[0], spread, lag_ms };
    eprintln!(
        "[{what}] attempts {:?}: first event at {:.0} ms, {:.1} ms after the serving mock sent it; spread {:.3} s; events at {:?} ms",
        r.header("x-model-workers-attempts").unwrap_or(""),
        t.first.as_secs_f64() * 1000.0,
        t.lag_ms,
        t.spread.as_secs_f64(),
        at.iter().map(|d| d.as_millis()).collect::<Vec<_>>()
    );
    t
}

/// The primary fails with `fault`; the backup's stream must reach the client event by event.
fn streamed_fallback(fault: &[&str], settings: &str, primary_outcome: &str) -> Timing {
    let w = World::start(&[("p", &args(fault)), ("b", &args(&[]))], &fallback_config("", settings));
    let r = post_stream(w.envoy.port, "/v1/chat/completions", &chat_body("fb", true), &[]);
    let what = format!("primary {fault:?}");
    assert_eq!(r.header("x-model-workers-attempts"), Some(format!("primary={primary_outcome},backup=200").as_str()));
    assert_eq!(r.header("x-model-workers-model"), Some("backup"), "{what}");
    assert_eq!(r.header("x-model-workers-worker"), Some("fb"), "{what}");
    let t = assert_streamed(&r, "b", "gpt-backup", &what);
    assert_eq!((w.hits("p"), w.hits("b")), (1, 1), "{what}");
    t
}

#[test]
fn a_fallback_after_a_500_streams_event_by_event() {
    streamed_fallback(&["--status", "500"], "", "500");
}

#[test]
fn a_fallback_after_a_503_streams_event_by_event() {
    // The mock's 503 carries `Retry-After: 1` (the primary's breaker opens; this request has
    // its plan already).
    streamed_fallback(&["--status", "503"], "", "503");
}

#[test]
fn a_fallback_after_a_reset_streams_event_by_event() {
    streamed_fallback(&["--reset"], "", "reset");
}

#[test]
fn a_fallback_after_a_timeout_streams_event_by_event() {
    // Both models share the 400 ms attempt timeout (one per-try timeout per request: README,
    // "Limits"); the backup's stream outlives it (0.8 s) and must not be cut.
    let t = streamed_fallback(&["--hang"], "model_workers:\n  timeout: 400ms\n", "timeout");
    assert!(t.first >= Duration::from_millis(380), "the backup answered before the primary's timeout: {:?}", t.first);
    assert!(t.first < Duration::from_millis(400) + MAX_LAG + Duration::from_millis(100), "{:?}", t.first);
}

#[test]
fn a_fallback_after_an_error_event_streams_event_by_event() {
    streamed_fallback(&["--sse-error"], "", "stream_error");
}

#[test]
fn a_same_model_retry_after_its_backoff_streams_event_by_event() {
    // The primary fails once (500), then serves: the retry waits 300 ms, then streams.
    let w = World::start(
        &[("p", &args(&["--status", "500", "--fail-first", "1"])), ("b", &args(&[]))],
        &fallback_config("      max_retries: 1\n      backoff: 300ms\n", ""),
    );
    let r = post_stream(w.envoy.port, "/v1/chat/completions", &chat_body("fb", true), &[]);
    assert_eq!(r.header("x-model-workers-attempts"), Some("primary=500,primary=200"));
    assert_eq!(r.header("x-model-workers-model"), Some("primary"));
    let t = assert_streamed(&r, "p", "gpt-primary", "retry after 300 ms");
    assert!(t.first >= Duration::from_millis(300), "first event {:?} before the 300 ms backoff ended", t.first);
    // The retry starts when the backoff ends (20 ms timer resolution), its first event follows.
    assert!(
        t.first <= Duration::from_millis(300) + MAX_LAG,
        "first event {:?} later than backoff + {MAX_LAG:?} after the request",
        t.first
    );
    assert_eq!((w.hits("p"), w.hits("b")), (2, 0));
}

#[test]
fn the_first_attempt_streams_event_by_event_too() {
    // The baseline the fallbacks are held to: a healthy primary.
    let w = World::start(&[("p", &args(&[])), ("b", &args(&[]))], &fallback_config("", ""));
    let r = post_stream(w.envoy.port, "/v1/chat/completions", &chat_body("fb", true), &[]);
    assert_eq!(r.header("x-model-workers-attempts"), Some("primary=200"));
    assert_streamed(&r, "p", "gpt-primary", "healthy primary");
}

// ---------------------------------------------------------------------------------------------
// The official OpenAI Python client
// ---------------------------------------------------------------------------------------------

fn venv_python() -> std::path::PathBuf {
    project_root().join(".venv/bin/python")
}

#[test]
fn the_openai_python_client_gets_a_fallback_stream_event_by_event() {
    let py = venv_python();
    let probe = Command::new(&py).args(["-c", "import openai"]).output();
    if !probe.as_ref().is_ok_and(|o| o.status.success()) {
        eprintln!(
            "SKIPPED: {} -c 'import openai' failed ({}) — `make envoy` installs the pinned openai client into .venv",
            py.display(),
            probe.map_or_else(|e| e.to_string(), |o| String::from_utf8_lossy(&o.stderr).trim().to_string())
        );
        return;
    }
    let w = World::start(&[("p", &args(&["--status", "500"])), ("b", &args(&[]))], &fallback_config("", ""));
    let out = Command::new(&py)
        .arg(project_root().join("tests/openai_stream.py"))
        .arg(format!("http://127.0.0.1:{}/v1", w.envoy.port))
        .arg("fb")
        .env_remove("OPENAI_API_KEY")
        .env_remove("OPENAI_BASE_URL")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .output()
        .expect("run tests/openai_stream.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "openai_stream.py failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(v["headers"]["x-model-workers-attempts"], "primary=500,backup=200", "{v}");
    assert_eq!(v["headers"]["x-mock-backend"], "b", "{v}");
    let events = v["events"].as_array().unwrap();
    // The SDK yields one chunk per content event ([DONE] ends the iteration).
    assert_eq!(events.len(), 5, "{v}");
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e["model"], "gpt-backup", "{e}");
        assert_eq!(e["content"], format!("tok{i} "), "{e}");
    }
    let t: Vec<f64> = events.iter().map(|e| e["t"].as_f64().unwrap()).collect();
    let spread = t[4] - t[0];
    assert!(spread >= MIN_SPREAD.as_secs_f64(), "the SDK got the chunks {spread:.3} s apart: {t:?}");
    for i in 1..5 {
        assert!(t[i] - t[i - 1] >= 0.1, "chunk {i} came {:.3} s after chunk {}: {t:?}", t[i] - t[i - 1], i - 1);
    }
    let sent_us: f64 = v["headers"]["x-mock-sent-at-us"].as_str().unwrap().parse().unwrap();
    let lag_ms = events[0]["wall"].as_f64().unwrap() * 1000.0 - sent_us / 1000.0;
    eprintln!(
        "[openai {}] chunks at {:?} s after the call; spread {spread:.3} s; first chunk {lag_ms:.1} ms after the backup sent it",
        v["openai"].as_str().unwrap_or("?"),
        t.iter().map(|x| (x * 1000.0).round() / 1000.0).collect::<Vec<_>>()
    );
    assert!(
        lag_ms <= MAX_LAG.as_secs_f64() * 1000.0,
        "the SDK saw the first chunk {lag_ms:.1} ms after the backup sent it"
    );
}

// ---------------------------------------------------------------------------------------------
// A large non-streaming answer after a failover
// ---------------------------------------------------------------------------------------------

#[test]
fn a_5_mb_answer_after_a_failover_passes_through_whole() {
    const BIG: usize = 5 * 1024 * 1024;
    let big = BIG.to_string();
    let w = World::start(&[("p", &["--status", "503"]), ("b", &["--pad-bytes", &big])], &fallback_config("", ""));
    let t = std::time::Instant::now();
    let r = w.chat("fb");
    let took = t.elapsed();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body[..r.body.len().min(500)]));
    assert_eq!(r.header("x-model-workers-attempts"), Some("primary=503,backup=200"));
    assert_eq!(r.header("x-mock-backend"), Some("b"));
    // The mock pads to exactly BIG bytes: every byte arrived, nothing was added or cut.
    assert_eq!(r.body.len(), BIG, "body length");
    let v: serde_json::Value = serde_json::from_slice(&r.body).expect("the 5 MB body is valid JSON");
    assert_eq!(v["model"], "gpt-backup");
    assert_eq!(v["choices"][0]["message"]["content"], "Hello from b");
    assert!(v["mock_padding"].as_str().is_some_and(|p| p.len() > BIG - 4096));
    eprintln!("[5 MB] {} bytes through a failover in {:.0} ms", r.body.len(), took.as_secs_f64() * 1000.0);

    // Envoy keeps serving: another big answer (the primary's breaker is open after its
    // `Retry-After: 1`, so the backup goes first), a stream, and the plain answer.
    let r = w.chat("fb");
    assert_eq!((r.status, r.body.len()), (200, BIG), "{:?}", r.header("x-model-workers-attempts"));
    let s = post_stream(w.envoy.port, "/v1/chat/completions", &chat_body("fb", true), &[]);
    assert_eq!(s.status, 200);
    assert_eq!(s.sse_data().last().map(String::as_str), Some("[DONE]"));
    let mut envoy = w.envoy;
    assert!(envoy.is_running());
    let log = envoy.log();
    assert!(!log.contains("panicked") && !log.contains("critical"), "{log}");
}
