//! Routing through a real Envoy: every worker policy, plain models, unknown models, the
//! rewritten `model`, auth injection, the routing header, and the outcome headers.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::collections::HashMap;

use common::*;

/// Three backends a, b, c serving models ma, mb, mc (`openai:gpt-a` …).
fn three_models() -> String {
    ["a", "b", "c"].iter().map(|n| model_yaml(&format!("m{n}"), &format!("gpt-{n}"), n, "")).collect::<String>()
}

const THREE: &[(&str, &[&str])] = &[("a", &[]), ("b", &[]), ("c", &[])];

#[test]
fn round_robin_gives_each_backend_its_exact_share_and_rewrites_model() {
    let config = format!(
        "models:\n{}workers:\n  - name: rr\n    type: load_balance\n    load_balance:\n      routing:\n        - from: ma\n        - from: mb\n        - from: mc\n",
        three_models()
    );
    let w = World::start(THREE, &config);
    let mut served: HashMap<String, u32> = HashMap::new();
    let mut order = Vec::new();
    for _ in 0..30 {
        let r = w.chat("rr");
        assert_eq!(r.status, 200, "{}", r.text());
        let backend = r.header("x-mock-backend").unwrap().to_string();
        // The upstream received the provider's model id, not the worker name.
        assert_eq!(r.header("x-mock-model"), Some(format!("gpt-{backend}").as_str()));
        assert_eq!(r.json()["mock"]["model"], format!("gpt-{backend}"));
        assert_eq!(r.header("x-model-workers-model"), Some(format!("m{backend}").as_str()));
        assert_eq!(r.header("x-model-workers-worker"), Some("rr"));
        assert_eq!(r.header("x-model-workers-attempts"), Some(format!("m{backend}=200").as_str()));
        *served.entry(backend.clone()).or_default() += 1;
        order.push(backend);
    }
    assert_eq!(served, HashMap::from([("a".into(), 10), ("b".into(), 10), ("c".into(), 10)]));
    // A strict rotation: no backend twice in a row.
    assert!(order.windows(2).all(|p| p[0] != p[1]), "{order:?}");
    for n in ["a", "b", "c"] {
        assert_eq!(w.hits(n), 10);
    }
}

#[test]
fn plain_model_routes_to_its_cluster() {
    let w = World::start(THREE, &format!("models:\n{}", three_models()));
    for _ in 0..3 {
        let r = w.chat("mb");
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-mock-backend"), Some("b"));
        assert_eq!(r.header("x-mock-model"), Some("gpt-b"));
        assert_eq!(r.header("x-model-workers-model"), Some("mb"));
        assert_eq!(r.header("x-model-workers-worker"), None);
    }
    assert_eq!((w.hits("a"), w.hits("b"), w.hits("c")), (0, 3, 0));
}

#[test]
fn unknown_model_gets_openai_style_404_and_nothing_is_forwarded() {
    let w = World::start(THREE, &format!("models:\n{}", three_models()));
    let r = w.chat("gpt-5-turbo-imaginary");
    assert_eq!(r.status, 404);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let e = r.json();
    assert_eq!(e["error"]["code"], "model_not_found");
    assert_eq!(e["error"]["type"], "invalid_request_error");
    assert!(e["error"]["message"].as_str().unwrap().contains("gpt-5-turbo-imaginary"));
    assert_eq!(w.hits("a") + w.hits("b") + w.hits("c"), 0);
    // Envoy keeps serving.
    assert_eq!(w.chat("ma").status, 200);
}

#[test]
fn seed_fallback_tries_lowest_order_first() {
    // Spice's fallback seed verbatim: foo order 2, bar 1, baz 3 — bar is tried first.
    let config = format!(
        "models:\n{}{}{}workers:\n  - name: fallback\n    type: load_balance\n    description: Try bar first, then foo, then baz\n    load_balance:\n      routing:\n        - from: foo\n          order: 2\n        - from: bar\n          order: 1\n        - from: baz\n          order: 3\n",
        model_yaml("foo", "gpt-foo", "a", ""),
        model_yaml("bar", "gpt-bar", "b", ""),
        model_yaml("baz", "gpt-baz", "c", ""),
    );
    let w = World::start(THREE, &config);
    for _ in 0..5 {
        let r = w.chat("fallback");
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-mock-backend"), Some("b"));
        assert_eq!(r.header("x-model-workers-attempts"), Some("bar=200"));
    }
    assert_eq!((w.hits("a"), w.hits("b"), w.hits("c")), (0, 5, 0));
    // With bar failing, foo (order 2) answers; baz is never needed.
    w.mock("b").set_faults(r#"{"status":503}"#);
    let r = w.chat("fallback");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-mock-backend"), Some("a"));
    assert_eq!(r.header("x-model-workers-model"), Some("foo"));
    assert_eq!(r.header("x-model-workers-attempts"), Some("bar=503,foo=200"));
    assert_eq!(w.hits("c"), 0);
}

#[test]
fn seed_weighted_four_to_one_is_exact() {
    let config = format!(
        "models:\n{}{}workers:\n  - name: weighted\n    type: load_balance\n    load_balance:\n      routing:\n        - from: foo\n          weight: 4\n        - from: bar\n          weight: 1\n",
        model_yaml("foo", "gpt-foo", "a", ""),
        model_yaml("bar", "gpt-bar", "b", ""),
    );
    let w = World::start(&[("a", &[]), ("b", &[])], &config);
    let mut seq = String::new();
    for _ in 0..50 {
        let r = w.chat("weighted");
        assert_eq!(r.status, 200);
        seq.push_str(r.header("x-mock-backend").unwrap());
    }
    assert_eq!((w.hits("a"), w.hits("b")), (40, 10));
    // Every window of 5 consecutive requests holds exactly one `b` (smooth, not 4 a's then 1 b).
    let bytes = seq.as_bytes();
    for win in bytes.windows(5) {
        assert_eq!(win.iter().filter(|c| **c == b'b').count(), 1, "{seq}");
    }
}

#[test]
fn provider_auth_is_injected_and_client_auth_is_not_forwarded() {
    let config = "models:\n  - from: openai:gpt-a\n    name: keyed\n    params:\n      cluster: a\n      openai_api_key: ${ secrets:OPENAI_API_KEY }\n  - from: anthropic:claude-x\n    name: claude\n    params:\n      cluster: b\n      anthropic_api_key: ${ secrets:ANTHROPIC_API_KEY }\n  - from: openai:gpt-c\n    name: open\n    params:\n      cluster: c\n";
    let w = World::start_with(THREE, config, |o| {
        o.env = vec![
            ("OPENAI_API_KEY".into(), "sk-test-openai".into()),
            ("ANTHROPIC_API_KEY".into(), "sk-ant-test".into()),
        ];
    });
    let send = |model: &str| {
        request(
            w.envoy.port,
            "POST",
            "/v1/chat/completions",
            &[
                ("content-type", "application/json"),
                ("authorization", "Bearer client-own-key"),
                ("x-api-key", "client-x"),
            ],
            chat_body(model, false).as_bytes(),
        )
    };
    let r = send("keyed");
    assert_eq!(r.status, 200);
    let m = &r.json()["mock"];
    assert_eq!(m["authorization"], "Bearer sk-test-openai");
    assert!(m["x_api_key"].is_null(), "client x-api-key must not reach a keyed provider: {m}");

    // Anthropic's Messages API: its key and version, never the client's auth.
    let r = send("claude");
    assert_eq!(r.status, 200, "{}", r.text());
    let last = w.mock("b").last();
    let h = &last["headers"];
    assert_eq!(h["x-api-key"], "sk-ant-test");
    assert_eq!(h["anthropic-version"], "2023-06-01");
    assert!(h["authorization"].is_null(), "client Authorization leaked: {last}");

    // No key configured: the client's own auth passes through (documented pass-through).
    let r = send("open");
    assert_eq!(r.json()["mock"]["authorization"], "Bearer client-own-key");

    // The key never appears in the response headers or Envoy's log.
    assert!(!r.headers.iter().any(|(_, v)| v.contains("sk-test")));
    assert!(!w.envoy.log().contains("sk-test-openai"));
}

#[test]
fn a_client_supplied_routing_header_is_ignored() {
    let config = format!("models:\n{}", three_models());
    let w = World::start(THREE, &config);
    for forged in ["c", "a", "nonexistent", "b, c"] {
        let r = request(
            w.envoy.port,
            "POST",
            "/v1/chat/completions",
            &[
                ("content-type", "application/json"),
                ("x-model-workers-cluster", forged),
                ("x-model-workers-model", "mc"),
            ],
            chat_body("mb", false).as_bytes(),
        );
        assert_eq!(r.status, 200, "{forged}: {}", r.text());
        assert_eq!(r.header("x-mock-backend"), Some("b"), "forged {forged}");
        // Internal headers never reach the provider either.
        let hs = &r.json()["mock"]["headers"];
        assert!(hs.get("x-model-workers-model").is_none(), "{hs}");
    }
    // A request the filter rejects never reaches any cluster, forged header or not.
    let r = request(
        w.envoy.port,
        "POST",
        "/v1/chat/completions",
        &[("content-type", "application/json"), ("x-model-workers-cluster", "a")],
        b"{\"model\": \"unknown\"}",
    );
    assert_eq!(r.status, 404);
    assert_eq!(w.hits("a") + w.hits("c"), 0);
}

#[test]
fn endpoint_param_rewrites_path_and_authority() {
    let config = "models:\n  - from: openai:gpt-a\n    name: m\n    params:\n      cluster: a\n      endpoint: https://llm.internal.example/gw/v1\n  - from: openai:gpt-a\n    name: n\n    params:\n      cluster: a\n      endpoint: http://llm.internal.example:8080/v1\n";
    let w = World::start(&[("a", &[])], config);
    // The client's `/v1` is replaced by the endpoint's prefix; the mock serves only /v1/…,
    // so its 404 names the path it received.
    let r = w.chat("m");
    assert_eq!(r.status, 404);
    assert!(r.text().contains("POST /gw/v1/chat/completions"), "{}", r.text());
    // A client path without /v1 gets the endpoint's prefix.
    let r = post_json(w.envoy.port, "/chat/completions", &chat_body("n", false));
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["mock"]["path"], "/v1/chat/completions", "{v}");
    assert_eq!(v["mock"]["host"], "llm.internal.example:8080");
}

#[test]
fn models_endpoint_lists_workers_and_models() {
    let config = format!("models:\n{}workers:\n  - name: rr\n    load_balance:\n      routing:\n        - from: ma\n        - from: mb\n", three_models());
    let w = World::start(THREE, &config);
    let r = request(w.envoy.port, "GET", "/v1/models", &[], b"");
    assert_eq!(r.status, 200);
    let ids: Vec<String> =
        r.json()["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(ids, vec!["rr", "ma", "mb", "mc"]);
}

#[test]
fn spice_response_model_mode_rewrites_the_answer_to_the_worker_name() {
    let config = format!(
        "models:\n{}workers:\n  - name: rr\n    load_balance:\n      routing:\n        - from: ma\n        - from: mb\nmodel_workers:\n  response_model: worker\n",
        three_models()
    );
    let w = World::start(THREE, &config);
    let r = w.chat("rr");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["model"], "rr", "{}", r.text());
    assert!(r.json()["mock"]["model"].as_str().unwrap().starts_with("gpt-"));
    // Default (served): the provider's answer is unchanged.
    let w2 = World::start(THREE, &format!("models:\n{}", three_models()));
    assert_eq!(w2.chat("ma").json()["model"], "gpt-a");
}

#[test]
fn seed_round_robin_verbatim() {
    // Spice's round-robin seed as written, plus where each model is served.
    let config = r#"
models:
  - from: openai:gpt-4o
    name: foo
    params: { cluster: a }
  - from: openai:gpt-4o-mini
    name: bar
    params: { cluster: b }
workers:
  - name: round-robin
    description: |
      Distributes requests between 'foo' and 'bar' models in a round-robin fashion.
    type: load_balance
    load_balance:
      routing:
        - from: foo
        - from: bar
"#;
    let w = World::start(&[("a", &[]), ("b", &[])], config);
    let seq: Vec<String> =
        (0..6).map(|_| w.chat("round-robin").header("x-model-workers-model").unwrap().to_string()).collect();
    assert_eq!(seq, ["foo", "bar", "foo", "bar", "foo", "bar"]);
    assert_eq!((w.hits("a"), w.hits("b")), (3, 3));
}
