//! Security properties through a real Envoy: client-sent internal headers are dropped, secrets
//! never reach logs (even at trace), responses or stats, client credentials are replaced for
//! keyed providers and passed through for open ones on both the route and the callout path,
//! config errors redact credential-looking values, and nothing in the request can pick a
//! cluster other than the one its single top-level `model` names.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;

const PATH: &str = "/v1/chat/completions";
const SECRET: &str = "sk-secret-openai-1234567890";
const ANT_SECRET: &str = "sk-ant-secret-abcdefghij0987654321";

// ---------------------------------------------------------------------------------------------
// A recording backend: answers every request with a fixed status and keeps what it received,
// so the first attempt of a failover (which the mock cannot echo back) can be inspected.
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct Seen {
    /// Header names lower-cased, in arrival order.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

struct Recorder {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Recorder {
    /// Listens on a loopback port; every request gets `status` with a small JSON error body and
    /// `connection: close`. The accept thread lives as long as the test binary.
    fn start(status: u16) -> Recorder {
        Recorder::start_with(status, "")
    }

    /// [`Recorder::start`] with extra raw response header lines (each ending in `\r\n`).
    fn start_with(status: u16, extra_headers: &'static str) -> Recorder {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        std::thread::spawn(move || {
            for c in l.incoming() {
                let Ok(c) = c else { break };
                if let Some(s) = read_request(c, status, extra_headers) {
                    sink.lock().unwrap().push(s);
                }
            }
        });
        Recorder { port, seen }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn clear(&self) {
        self.seen.lock().unwrap().clear();
    }
}

fn read_request(mut c: TcpStream, status: u16, extra_headers: &str) -> Option<Seen> {
    c.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut buf = Vec::new();
    let mut tmp = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = c.read(&mut tmp).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&tmp[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let headers: Vec<(String, String)> = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len: usize = headers.iter().find(|(k, _)| k == "content-length").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len {
        let n = c.read(&mut tmp).ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&tmp[..n]);
    }
    let msg = format!(r#"{{"error":{{"message":"recorder says {status}","type":"server_error"}}}}"#);
    let resp = format!(
        "HTTP/1.1 {status} Nope\r\ncontent-type: application/json\r\n{extra_headers}content-length: {}\r\nconnection: close\r\n\r\n{msg}",
        msg.len()
    );
    let _ = c.write_all(resp.as_bytes());
    Some(Seen { headers, body })
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn post(port: u16, headers: &[(&str, &str)], body: &str) -> Response {
    let mut all = vec![("content-type", "application/json")];
    all.extend_from_slice(headers);
    request(port, "POST", PATH, &all, body.as_bytes())
}

/// Names of `x-model-workers-*` headers the mock says it received.
fn internal_headers_seen_by_mock(r: &Response) -> Vec<String> {
    let hs = r.json()["mock"]["headers"].as_object().cloned().unwrap_or_default();
    hs.keys().filter(|k| k.to_ascii_lowercase().starts_with("x-model-workers-")).cloned().collect()
}

fn three_models() -> String {
    ["a", "b", "c"].iter().map(|n| model_yaml(&format!("m{n}"), &format!("gpt-{n}"), n, "")).collect()
}

const THREE: &[(&str, &[&str])] = &[("a", &[]), ("b", &[]), ("c", &[])];

// ---------------------------------------------------------------------------------------------
// Internal headers
// ---------------------------------------------------------------------------------------------

#[test]
fn client_sent_internal_headers_are_removed_on_every_path() {
    // Worker `fb`: mp (recorder answering 503, cluster p) → mb; plain models ma, mb, mc.
    let rec = Recorder::start(503);
    let config = format!(
        "models:\n{}{}workers:\n  - name: fb\n    load_balance:\n      routing:\n        - from: mp\n          order: 1\n        - from: mb\n          order: 2\n",
        three_models(),
        model_yaml("mp", "gpt-p", "p", ""),
    );
    let w = World::start_with(THREE, &config, |o| o.clusters.push(Cluster::new("p", rec.port)));
    let port = w.envoy.port;
    let hits = || (w.hits("a"), w.hits("b"), w.hits("c"));
    let body = chat_body("mb", false);

    let forged: &[&[(&str, &str)]] = &[
        &[("x-model-workers-cluster", "c")],
        &[("x-model-workers-cluster", "a")],
        &[("x-model-workers-cluster", "nonexistent")],
        &[("x-model-workers-cluster", "a, c")],
        &[("X-Model-Workers-Cluster", "c")],
        &[("X-MODEL-WORKERS-CLUSTER", "a")],
        &[("x-model-workers-cluster", "a"), ("x-model-workers-cluster", "c")],
        &[("X-Model-Workers-Cluster", "a"), ("x-model-workers-cluster", "c")],
        &[("x-model-workers-model", "mc")],
        &[("x-model-workers-worker", "fb")],
        &[("x-model-workers-attempts", "mc=200")],
        &[("x-model-workers-anything-else", "1")],
        &[
            ("x-model-workers-cluster", "c"),
            ("x-model-workers-model", "mc"),
            ("x-model-workers-worker", "fb"),
            ("x-model-workers-attempts", "mc=200"),
        ],
    ];
    for (i, hs) in forged.iter().enumerate() {
        let r = post(port, hs, &body);
        assert_eq!(r.status, 200, "{hs:?}: {}", r.text());
        assert_eq!(r.header("x-mock-backend"), Some("b"), "{hs:?}");
        assert_eq!(r.json()["mock"]["model"], "gpt-b");
        assert_eq!(internal_headers_seen_by_mock(&r), Vec::<String>::new(), "{hs:?}");
        // The outcome headers are the filter's own, never the client's.
        assert_eq!(r.header_all("x-model-workers-model"), ["mb"], "{hs:?}");
        assert_eq!(r.header_all("x-model-workers-attempts"), ["mb=200"], "{hs:?}");
        assert!(r.header("x-model-workers-worker").is_none(), "{hs:?}");
        assert_eq!(hits(), (0, i as u64 + 1, 0), "{hs:?}");
    }
    w.mock("b").reset();

    // Failover: the first attempt (through the route) and the second (a callout) both go where
    // the worker says, and neither provider sees an internal header.
    let all = forged.last().unwrap();
    let r = post(port, all, &chat_body("fb", false));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-mock-backend"), Some("b"));
    assert_eq!(r.header("x-model-workers-attempts"), Some("mp=503,mb=200"));
    assert_eq!(r.header_all("x-model-workers-worker"), ["fb"]);
    assert_eq!(internal_headers_seen_by_mock(&r), Vec::<String>::new());
    let seen = rec.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    let leaked: Vec<_> = seen[0].headers.iter().filter(|(k, _)| k.starts_with("x-model-workers-")).collect();
    assert!(leaked.is_empty(), "first attempt received {leaked:?}");
    assert!(String::from_utf8_lossy(&seen[0].body).contains(r#""model":"gpt-p""#), "{seen:?}");
    assert_eq!(hits(), (0, 1, 0));
    w.mock("b").reset();
    rec.clear();

    // A rejected request never reaches any cluster, forged routing header or not.
    for hs in [&[("x-model-workers-cluster", "a")][..], &[("X-Model-Workers-Cluster", "p")], forged[6]] {
        let r = post(port, hs, r#"{"model":"unknown"}"#);
        assert_eq!(r.status, 404, "{hs:?}");
        assert_eq!(r.json()["error"]["code"], "model_not_found");
        let r = post(port, hs, r#"{"model":"ma","#);
        assert_eq!(r.status, 400, "{hs:?}");
        let r = request(port, "GET", PATH, hs, b"");
        assert_eq!(r.status, 405, "{hs:?}");
    }
    assert_eq!(hits(), (0, 0, 0));
    assert!(rec.seen().is_empty());

    // A forged routing header as a chunked-body trailer changes nothing either.
    let raw = format!(
        "POST {PATH} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\nx-model-workers-cluster: c\r\n\r\n",
        body.len()
    )
    .into_bytes();
    let r = send_raw(port, &[&raw], Duration::ZERO);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-mock-backend"), Some("b"));
    assert_eq!(internal_headers_seen_by_mock(&r), Vec::<String>::new());
    assert_eq!(hits(), (0, 1, 0));
}

#[test]
fn a_custom_routing_header_is_removed_too() {
    let config = format!("models:\n{}model_workers:\n  routing_header: X-LLM-Cluster\n", three_models());
    let w = World::start_with(THREE, &config, |o| o.routing_header = "x-llm-cluster".into());
    for hs in [
        &[("x-llm-cluster", "c")][..],
        &[("X-LLM-Cluster", "a")],
        &[("x-llm-cluster", "a"), ("x-llm-cluster", "c")],
        &[("x-model-workers-cluster", "c")],
    ] {
        let r = post(w.envoy.port, hs, &chat_body("mb", false));
        assert_eq!(r.status, 200, "{hs:?}: {}", r.text());
        assert_eq!(r.header("x-mock-backend"), Some("b"), "{hs:?}");
        let received = r.json()["mock"]["headers"].as_object().cloned().unwrap();
        assert!(!received.contains_key("x-llm-cluster"), "{hs:?}: {received:?}");
        assert_eq!(internal_headers_seen_by_mock(&r), Vec::<String>::new());
    }
    let r = post(w.envoy.port, &[("x-llm-cluster", "a")], r#"{"model":"unknown"}"#);
    assert_eq!(r.status, 404);
    assert_eq!((w.hits("a"), w.hits("b"), w.hits("c")), (0, 4, 0));
}

// ---------------------------------------------------------------------------------------------
// Secrets
// ---------------------------------------------------------------------------------------------

fn assert_no_secret_in_response(what: &str, r: &Response, secrets: &[&str]) {
    for s in secrets {
        for (k, v) in &r.headers {
            assert!(!v.contains(s) && !k.contains(s), "{what}: secret in response header {k}: {v}");
        }
        if r.status != 200 {
            // Error bodies are the filter's or an upstream error's, never an echo of the request.
            assert!(!r.text().contains(s), "{what}: secret in error body: {}", r.text());
        }
    }
}

#[test]
fn secrets_never_appear_in_logs_responses_or_stats_at_trace_level() {
    // keyed (openai, cluster b); fb: primary (openai key, cluster p, 503) → backup (anthropic
    // key, cluster b); all: two keyed models that both fail.
    let config = "\
models:
  - from: openai:gpt-k
    name: keyed
    params: { cluster: b, openai_api_key: '${ secrets:OPENAI_API_KEY }' }
  - from: openai:gpt-p
    name: primary
    params: { cluster: p, openai_api_key: '${ secrets:OPENAI_API_KEY }' }
  - from: anthropic:claude-b
    name: backup
    params: { cluster: b, anthropic_api_key: '${ secrets:ANTHROPIC_API_KEY }' }
  - from: openai:gpt-q
    name: also_failing
    params: { cluster: p, openai_api_key: '${ secrets:OPENAI_API_KEY }' }
workers:
  - name: fb
    load_balance:
      routing:
        - from: primary
          order: 1
        - from: backup
          order: 2
  - name: all
    load_balance:
      routing:
        - from: primary
          order: 1
        - from: also_failing
          order: 2
model_workers:
  max_body_bytes: 4096
  cooldown: { failures: 0 }
";
    let w = World::start_with(&[("p", &["--status", "503"]), ("b", &[])], config, |o| {
        o.log_level = "trace".into();
        o.env = vec![("OPENAI_API_KEY".into(), SECRET.into()), ("ANTHROPIC_API_KEY".into(), ANT_SECRET.into())];
    });
    let port = w.envoy.port;
    let secrets = [SECRET, ANT_SECRET, "secret-openai", "abcdefghij0987654321"];
    let client = [("authorization", "Bearer client-key")];
    let check = |what: &str, r: Response, status: u16| {
        assert_eq!(r.status, status, "{what}: {}", r.text());
        assert_no_secret_in_response(what, &r, &secrets);
        r
    };

    // Success through the route, streamed and not.
    let r = check("success", post(port, &client, &chat_body("keyed", false)), 200);
    assert_eq!(r.json()["mock"]["authorization"], format!("Bearer {SECRET}"), "the key was really sent");
    check("stream", post(port, &client, &chat_body("keyed", true)), 200);
    // Failover: a 503 from the keyed primary, then a callout to the keyed backup.
    let r = check("failover", post(port, &client, &chat_body("fb", false)), 200);
    assert_eq!(r.header("x-model-workers-attempts"), Some("primary=503,backup=200"));
    assert_eq!(w.mock("b").last()["headers"]["x-api-key"], ANT_SECRET, "the key was really sent");
    check("failover stream", post(port, &client, &chat_body("fb", true)), 200);
    // Every attempt fails: the last upstream error is passed on.
    check("all failed", post(port, &client, &chat_body("all", false)), 503);
    // Errors the filter answers itself.
    check("unknown", post(port, &client, &chat_body("nope", false)), 404);
    check("invalid", post(port, &client, "{\"model\":"), 400);
    check("too large", post(port, &client, &format!("{{\"model\":\"keyed\",\"x\":\"{}\"}}", "x".repeat(5000))), 413);
    check("method", request(port, "DELETE", PATH, &client, b""), 405);
    check("media type", request(port, "POST", PATH, &[("content-type", "text/plain")], b"{}"), 415);
    check("models", request(port, "GET", "/v1/models", &client, b""), 200);

    // The filter did log at debug/trace level (so the check below means something).
    let log = w.envoy.log();
    assert!(log.contains("rejected with 404"), "debug lines missing:\n{log}");
    assert!(log.contains("failing over"), "{log}");
    for s in &secrets {
        assert!(!log.contains(s), "secret {s} in Envoy's log:\n{log}");
        let stats = w.envoy.stats();
        assert!(!stats.contains(s), "secret {s} in /stats");
        let prom = w.envoy.prometheus();
        assert!(!prom.contains(s), "secret {s} in /stats/prometheus");
    }
}

fn start_bad(cfg: &str) -> String {
    Envoy::start_expect_failure(EnvoyOptions {
        filter_config: Some(cfg.into()),
        clusters: vec![Cluster::new("a", closed_port())],
        env: vec![("OPENAI_API_KEY".into(), SECRET.into())],
        log_level: "trace".into(),
        ..EnvoyOptions::default()
    })
}

/// [`start_bad`] for each configuration, three Envoys at a time; the logs in order.
fn start_all_bad(cfgs: &[String]) -> Vec<String> {
    parallel(3, cfgs.len(), |i| start_bad(&cfgs[i]))
}

fn rejection_line(log: &str) -> &str {
    log.lines().find(|l| l.contains("rejected configuration")).unwrap_or_else(|| panic!("{log}"))
}

const KEY_REF: &str = "openai_api_key: '${ secrets:OPENAI_API_KEY }'";

fn one_model(params: &str) -> String {
    format!("models:\n  - from: openai:gpt-a\n    name: m\n    params: {{ cluster: a, {params} }}\n")
}

#[test]
fn config_errors_about_a_keyed_model_never_print_its_secret() {
    let cases = [
        (one_model(&format!("{KEY_REF}, max_retries: 99")), "max_retries"),
        (one_model(&format!("{KEY_REF}, timeout: forever")), "timeout"),
        (
            format!("{}workers:\n  - name: w\n    load_balance:\n      routing:\n        - from: m\n        - from: missing\n", one_model(KEY_REF)),
            "missing",
        ),
        (
            format!("{}  - from: openai:gpt-b\n    name: m\n    params: {{ cluster: a, {KEY_REF} }}\n", one_model(KEY_REF)),
            "`m`",
        ),
    ];
    let logs = start_all_bad(&cases.iter().map(|c| c.0.clone()).collect::<Vec<_>>());
    for ((_, needle), log) in cases.iter().zip(&logs) {
        assert!(rejection_line(log).contains(needle), "{}", rejection_line(log));
        assert!(!log.contains(SECRET) && !log.contains("secret-openai"), "secret leaked:\n{log}");
    }
}

/// BUG: a `${ secrets:… }` reference is resolved in every string param, and a param whose
/// validation fails quotes the resolved value: `endpoint: ${ secrets:OPENAI_API_KEY }` (a
/// swapped line) logs `param `endpoint`: "sk-…" must start with http:// or https://`.
#[test]
fn a_secret_referenced_from_the_wrong_param_is_never_printed() {
    let cfgs = [
        "endpoint: '${ secrets:OPENAI_API_KEY }'",
        "endpoint: 'https://${ secrets:OPENAI_API_KEY }@host/v1'",
        "endpoint: 'https://host/${ secrets:OPENAI_API_KEY }?x'",
    ]
    .map(one_model);
    let mut leaks = Vec::new();
    for log in &start_all_bad(&cfgs) {
        let line = rejection_line(log);
        assert!(line.contains("endpoint"), "{line}");
        if log.contains(SECRET) || log.contains("secret-openai") {
            leaks.push(line.to_string());
        }
    }
    assert!(leaks.is_empty(), "resolved secret printed:\n{}", leaks.join("\n"));
}

/// Serde type errors quote the offending scalar; a credential-looking one is `<redacted>`.
#[test]
fn credential_looking_values_are_redacted_in_type_errors() {
    let literal = "sk-proj-abcdefghijklmnop1234567890";
    let cases = [
        // A key where a map is expected (the params block replaced by the key).
        format!("models:\n  - from: openai:gpt-a\n    name: m\n    params: {literal}\n"),
        // A key where a number is expected.
        format!("{}model_workers:\n  max_body_bytes: {literal}\n", one_model("max_retries: 1")),
        // A key as a field name.
        format!("{}model_workers:\n  {literal}: 1\n", one_model("max_retries: 1")),
        // The same in JSON.
        format!(r#"{{"models":[{{"from":"openai:gpt-a","name":"m","params":"{literal}"}}]}}"#),
        // Where serde does not quote the value (a sequence for a string) there is nothing to hide.
        format!("{}model_workers:\n  routing_header: [{literal}]\n", one_model("max_retries: 1")),
    ];
    let logs = start_all_bad(&cases);
    for (i, log) in logs.iter().enumerate() {
        let line = rejection_line(log);
        assert!(i == cases.len() - 1 || line.contains("<redacted>"), "{line}");
        assert!(!log.contains(literal) && !log.contains("abcdefghijklmnop"), "not redacted:\n{line}");
    }
}

/// BUG: only serde's messages are redacted; the filter's own validation messages quote the
/// bad value verbatim, so a key pasted into the wrong field is logged in clear.
#[test]
fn credential_looking_values_are_redacted_in_validation_errors() {
    let literal = "sk-proj-abcdefghijklmnop1234567890";
    let cases = [
        ("timeout", one_model(&format!("timeout: {literal}"))),
        ("endpoint", one_model(&format!("endpoint: {literal}"))),
        ("endpoint userinfo", one_model(&format!("endpoint: 'https://user:{literal}@llm.example/v1'"))),
        ("from", format!("models:\n  - from: {literal}\n    name: m\n    params: {{ cluster: a }}\n")),
        ("response_model", format!("{}model_workers:\n  response_model: {literal}\n", one_model("max_retries: 1"))),
        ("settings timeout", format!("{}model_workers:\n  timeout: {literal}\n", one_model("max_retries: 1"))),
    ];
    let logs = start_all_bad(&cases.iter().map(|c| c.1.clone()).collect::<Vec<_>>());
    let mut leaks = Vec::new();
    for ((what, _), log) in cases.iter().zip(&logs) {
        if log.contains(literal) || log.contains("abcdefghijklmnop") {
            leaks.push(format!("{what}: {}", rejection_line(log)));
        }
    }
    assert!(leaks.is_empty(), "credential-looking values printed in clear:\n{}", leaks.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// Client credentials
// ---------------------------------------------------------------------------------------------

const CLIENT_AUTH: [(&str, &str); 3] =
    [("authorization", "Bearer client-own-key"), ("x-api-key", "client-x-key"), ("api-key", "client-azure-key")];

/// What one attempt received: (authorization, x-api-key, api-key).
type Creds = (Option<String>, Option<String>, Option<String>);

fn creds_of_recorder(s: &Seen) -> Creds {
    let g = |n: &str| s.header(n).map(str::to_string);
    (g("authorization"), g("x-api-key"), g("api-key"))
}

/// The credentials of the last request the mock received (any of its APIs).
fn creds_of_mock(m: &Mock) -> Creds {
    let last = m.last();
    let hs = &last["headers"];
    let g = |n: &str| hs[n].as_str().map(str::to_string);
    (g("authorization"), g("x-api-key"), g("api-key"))
}

fn client_creds() -> Creds {
    (Some(CLIENT_AUTH[0].1.into()), Some(CLIENT_AUTH[1].1.into()), Some(CLIENT_AUTH[2].1.into()))
}

#[test]
fn client_credentials_replaced_for_keyed_providers_and_passed_to_open_ones_on_both_paths() {
    // Primaries on the recorder (503, cluster p), backups on mock b:
    //   w_openai:    p_openai (openai key)    → b_open
    //   w_anthropic: p_open                   → b_anthropic (anthropic key)
    //   w_azure:     p_azure (azure key)      → b_azure (azure key)
    //   w_open:      p_open                   → b_open
    let rec = Recorder::start(503);
    let m = |name: &str, from: &str, cluster: &str, key: &str| {
        format!("  - from: {from}\n    name: {name}\n    params:\n      cluster: {cluster}\n{key}")
    };
    let oai = "      openai_api_key: ${ secrets:OPENAI_API_KEY }\n";
    let ant = "      anthropic_api_key: ${ secrets:ANTHROPIC_API_KEY }\n";
    let az = "      azure_api_key: ${ secrets:AZURE_API_KEY }\n";
    let worker = |name: &str, first: &str, second: &str| {
        format!("  - name: {name}\n    load_balance:\n      routing:\n        - from: {first}\n          order: 1\n        - from: {second}\n          order: 2\n")
    };
    let config = [
        "models:\n".to_string(),
        m("p_openai", "openai:gpt-p", "p", oai),
        m("p_open", "openai:gpt-p", "p", ""),
        m("p_azure", "azure:dep-p", "p", az),
        m("b_open", "openai:gpt-b", "b", ""),
        m("b_anthropic", "anthropic:claude-b", "b", ant),
        m("b_azure", "azure:dep-b", "b", az),
        "workers:\n".to_string(),
        worker("w_openai", "p_openai", "b_open"),
        worker("w_anthropic", "p_open", "b_anthropic"),
        worker("w_azure", "p_azure", "b_azure"),
        worker("w_open", "p_open", "b_open"),
        "model_workers:\n  cooldown: { failures: 0 }\n".to_string(),
    ]
    .concat();
    let w = World::start_with(&[("b", &[])], &config, |o| {
        o.clusters.push(Cluster::new("p", rec.port));
        o.env = vec![
            ("OPENAI_API_KEY".into(), SECRET.into()),
            ("ANTHROPIC_API_KEY".into(), ANT_SECRET.into()),
            ("AZURE_API_KEY".into(), "azure-secret-key".into()),
        ];
    });
    let bearer = format!("Bearer {SECRET}");
    let some = |s: &str| Some(s.to_string());
    let cases: [(&str, Creds, Creds); 4] = [
        ("w_openai", (Some(bearer.clone()), None, None), client_creds()),
        ("w_anthropic", client_creds(), (None, some(ANT_SECRET), None)),
        ("w_azure", (None, None, some("azure-secret-key")), (None, None, some("azure-secret-key"))),
        ("w_open", client_creds(), client_creds()),
    ];
    for (worker, first, second) in &cases {
        rec.clear();
        let r = post(w.envoy.port, &CLIENT_AUTH, &chat_body(worker, false));
        assert_eq!(r.status, 200, "{worker}: {}", r.text());
        assert_eq!(r.header("x-mock-backend"), Some("b"), "{worker}");
        let attempts = r.header("x-model-workers-attempts").unwrap_or_default().to_string();
        assert!(attempts.ends_with("=200") && attempts.contains("=503,"), "{worker}: {attempts}");
        let seen = rec.seen();
        assert_eq!(seen.len(), 1, "{worker}: {seen:?}");
        assert_eq!(&creds_of_recorder(&seen[0]), first, "{worker}: first attempt (route)");
        assert_eq!(&creds_of_mock(w.mock("b")), second, "{worker}: failover attempt");
        if *worker == "w_anthropic" {
            assert_eq!(w.mock("b").last()["headers"]["anthropic-version"], "2023-06-01");
        }
    }
    // The same models as the only attempt: keyed replaces, open passes through.
    let p = w.envoy.port;
    let single = [
        ("b_open", client_creds()),
        ("b_anthropic", (None, Some(ANT_SECRET.to_string()), None)),
        ("b_azure", (None, None, Some("azure-secret-key".to_string()))),
    ];
    for (model, want) in &single {
        let r = post(p, &CLIENT_AUTH, &chat_body(model, false));
        assert_eq!(r.status, 200, "{model}: {}", r.text());
        assert_eq!(&creds_of_mock(w.mock("b")), want, "{model}");
    }
    // Case and duplicates of the client's headers make no difference for a keyed provider.
    let r = post(
        p,
        &[("Authorization", "Bearer a"), ("AUTHORIZATION", "Bearer b"), ("X-Api-Key", "x"), ("Api-Key", "y")],
        &chat_body("b_anthropic", false),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(creds_of_mock(w.mock("b")), (None, Some(ANT_SECRET.to_string()), None));
}

// ---------------------------------------------------------------------------------------------
// Choosing a cluster by other means
// ---------------------------------------------------------------------------------------------

#[test]
fn only_the_single_top_level_model_picks_the_cluster() {
    let w = World::start(THREE, &format!("models:\n{}", three_models()));
    let port = w.envoy.port;
    let hits = || (w.hits("a"), w.hits("b"), w.hits("c"));

    // Two top-level models, however spelled: rejected, nothing forwarded.
    for body in [
        r#"{"model":"ma","model":"mb"}"#,
        r#"{"model":"ma","messages":[],"model":"ma"}"#,
        r#"{"model":"ma","mod\u0065l":"mb"}"#,
        r#"{"\u006dodel":"mb","model":"ma"}"#,
        r#"{"model":"ma","\u006d\u006f\u0064\u0065\u006c":"mb"}"#,
    ] {
        let r = post(port, &[], body);
        assert_eq!(r.status, 400, "{body}: {}", r.text());
        assert_eq!(r.json()["error"]["code"], "duplicate_model", "{body}");
    }
    assert_eq!(hits(), (0, 0, 0));

    // Nested `model` keys are content, not routing: the top-level one decides and the nested
    // ones reach the provider unchanged.
    let nested = r#"{"messages":[{"role":"user","content":"hi","model":"mb"}],"model":"ma","metadata":{"model":"mc"},"tools":[{"model":"mb"}]}"#;
    let r = post(port, &[], nested);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-mock-backend"), Some("a"));
    assert_eq!(r.json()["mock"]["model"], "gpt-a");
    assert_eq!(r.json()["mock"]["body_bytes"], nested.len() + 3, "only the top-level model was rewritten");
    // Only nested ones: no model.
    let r = post(port, &[], r#"{"messages":[{"model":"mb"}],"metadata":{"model":"mc"}}"#);
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["code"], "missing_model");
    assert_eq!(hits(), (1, 0, 0));

    // `model` in the query string is ignored.
    for q in ["?model=mb", "?model=mc&cluster=c", "?x-model-workers-cluster=c"] {
        let r = request(
            port,
            "POST",
            &format!("{PATH}{q}"),
            &[("content-type", "application/json")],
            chat_body("ma", false).as_bytes(),
        );
        assert_eq!(r.status, 200, "{q}: {}", r.text());
        assert_eq!(r.header("x-mock-backend"), Some("a"), "{q}");
    }
    let r = request(port, "POST", &format!("{PATH}?model=mb"), &[("content-type", "application/json")], b"{}");
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["code"], "missing_model");
    assert_eq!(hits(), (4, 0, 0));

    // Envoy's own `x-envoy-*` request headers do not change the cluster.
    let envoy_headers: &[(&str, &str)] = &[
        ("x-envoy-original-path", "/v1/embeddings"),
        ("x-envoy-original-url", "http://c/v1/chat/completions"),
        ("x-envoy-upstream-alt-stat-name", "c"),
        ("x-envoy-retry-on", "5xx"),
        ("x-envoy-max-retries", "3"),
        ("x-envoy-internal", "true"),
        ("x-envoy-decorator-operation", "c"),
        ("x-envoy-cluster", "c"),
        ("x-envoy-upstream-cluster", "c"),
        ("x-envoy-original-dst-host", "127.0.0.1:1"),
    ];
    for h in envoy_headers {
        let r = post(port, &[*h], &chat_body("mb", false));
        assert_eq!(r.status, 200, "{h:?}: {}", r.text());
        assert_eq!(r.header("x-mock-backend"), Some("b"), "{h:?}");
    }
    let r = post(port, envoy_headers, &chat_body("mb", false));
    assert_eq!(r.header("x-mock-backend"), Some("b"));
    assert_eq!(hits(), (4, envoy_headers.len() as u64 + 1, 0));
}

/// A request the filter rejects before reading its body (415, 405, 413) or after (400) must
/// never have its body bytes parsed as a second, pipelined request. Observed: Envoy sends the
/// local reply at once and closes the connection (after its 1 s delayed-close timeout).
#[test]
fn a_rejected_requests_body_is_never_served_as_a_pipelined_request() {
    let w = World::start(THREE, &format!("models:\n{}model_workers: {{ max_body_bytes: 65536 }}\n", three_models()));
    let inner = chat_body("mc", false);
    let smuggled = format!(
        "POST {PATH} HTTP/1.1\r\nHost: localhost\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{inner}",
        inner.len()
    );
    let json = "content-type: application/json";
    let cases: Vec<(&str, &str, String, String)> = vec![
        ("415 content-type", "POST", "content-type: text/plain".into(), smuggled.clone()),
        ("415 content-encoding", "POST", format!("{json}\r\ncontent-encoding: gzip"), smuggled.clone()),
        ("405", "PUT", json.into(), smuggled.clone()),
        ("413", "POST", json.into(), format!("{}{smuggled}", " ".repeat(70_000))),
        ("400", "POST", json.into(), smuggled.clone()),
    ];
    for (name, method, hs, body) in &cases {
        let raw = format!(
            "{method} {PATH} HTTP/1.1\r\nHost: localhost\r\n{hs}\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        let mut s = TcpStream::connect(("127.0.0.1", w.envoy.port)).unwrap();
        // Envoy answers at once, then closes only after its 1 s delayed-close timeout; a second
        // (smuggled) response would come within milliseconds.
        s.set_read_timeout(Some(Duration::from_millis(400))).unwrap();
        let _ = s.write_all(raw.as_bytes());
        let mut out = Vec::new();
        let mut tmp = [0u8; 65536];
        // Until EOF or the read timeout.
        while let Ok(n) = s.read(&mut tmp) {
            if n == 0 {
                break;
            }
            out.extend_from_slice(&tmp[..n]);
        }
        let text = String::from_utf8_lossy(&out);
        let statuses: Vec<&str> = text.match_indices("HTTP/1.1 ").map(|(i, _)| &text[i + 9..i + 12]).collect();
        assert_eq!(statuses, [&name[..3]], "{name}: {text}");
        assert_eq!((w.hits("a"), w.hits("b"), w.hits("c")), (0, 0, 0), "{name}");
    }
}

/// BUG: internal headers a provider sends back are stripped on the callout path (`respond` in
/// `exchange.rs`) but not on the route path (`annotate_pass_through` only *sets* the filter's
/// own headers), so an upstream's `x-model-workers-worker` / `x-model-workers-cluster` reach
/// the client there — e.g. `x-model-workers-worker: spoofed` on a request for a plain model.
#[test]
fn provider_sent_internal_response_headers_never_reach_the_client() {
    let spoof = "x-model-workers-worker: spoofed\r\nx-model-workers-model: spoofed\r\nx-model-workers-attempts: spoofed\r\nx-model-workers-cluster: spoofed\r\nx-model-workers-other: spoofed\r\n";
    let good = Recorder::start_with(200, spoof);
    let bad = Recorder::start(503);
    let config = format!(
        "models:\n{}{}workers:\n  - name: w\n    load_balance:\n      routing:\n        - from: mp\n  - name: fb\n    load_balance:\n      routing:\n        - from: mbad\n          order: 1\n        - from: mp\n          order: 2\n",
        model_yaml("mp", "gpt-p", "p", ""),
        model_yaml("mbad", "gpt-bad", "bad", ""),
    );
    let w = World::start_with(&[], &config, |o| {
        o.clusters.push(Cluster::new("p", good.port));
        o.clusters.push(Cluster::new("bad", bad.port));
    });
    // (model, path taken, the filter's own outcome headers)
    let cases = [
        ("mp", "route", vec![("x-model-workers-model", "mp"), ("x-model-workers-attempts", "mp=200")]),
        (
            "w",
            "route",
            vec![
                ("x-model-workers-model", "mp"),
                ("x-model-workers-worker", "w"),
                ("x-model-workers-attempts", "mp=200"),
            ],
        ),
        (
            "fb",
            "callout",
            vec![
                ("x-model-workers-model", "mp"),
                ("x-model-workers-worker", "fb"),
                ("x-model-workers-attempts", "mbad=503,mp=200"),
            ],
        ),
    ];
    let mut wrong = Vec::new();
    for (model, path, want) in &cases {
        let r = post(w.envoy.port, &[], &chat_body(model, false));
        assert_eq!(r.status, 200, "{model}: {}", r.text());
        let mut got: Vec<(String, String)> =
            r.headers.iter().filter(|(k, _)| k.to_ascii_lowercase().starts_with("x-model-workers-")).cloned().collect();
        got.sort();
        let mut want: Vec<(String, String)> = want.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        want.sort();
        if got != want {
            wrong.push(format!("{model} ({path} path): got {got:?}, want {want:?}"));
        }
    }
    assert!(wrong.is_empty(), "provider-sent internal headers reached the client:\n{}", wrong.join("\n"));
}
