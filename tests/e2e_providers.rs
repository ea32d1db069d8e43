//! Each provider's own API, per attempt: Spice's own `smart_router` example (gpt-4o first,
//! Claude second), pasted unchanged, answers OpenAI clients from the Claude mock — which
//! speaks Anthropic's Messages API as strictly as the real one — when gpt-4o fails; Azure
//! OpenAI's deployment paths; what cannot be translated is refused naming the field.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::process::Command;

use common::*;

/// Spice's workers doc, full example, verbatim (no cluster params: the models' default clusters
/// `openai` and `anthropic` are the test's mocks).
const SMART_ROUTER: &str = "models:
  - from: openai:gpt-4o
    name: gpt4
    params:
      openai_api_key: ${ secrets:OPENAI_API_KEY }
  - from: anthropic:claude-sonnet-4-5
    name: claude
    params:
      anthropic_api_key: ${ secrets:ANTHROPIC_API_KEY }

workers:
  - name: smart_router
    type: load_balance
    description: Try GPT-4 first, fall back to Claude
    load_balance:
      routing:
        - from: gpt4
          order: 1
        - from: claude
          order: 2
";

fn smart_router(openai_args: &[&str]) -> World {
    World::start_with(
        &[("openai", openai_args), ("anthropic", &["--chunks", "5", "--chunk-delay-ms", "200"])],
        SMART_ROUTER,
        |o| {
            o.env = vec![
                ("OPENAI_API_KEY".into(), "sk-openai-test".into()),
                ("ANTHROPIC_API_KEY".into(), "sk-ant-test".into()),
            ];
        },
    )
}

/// Run tests/openai_providers.py; None (with a message) if the client is not installed.
fn python(w: &World, mode: &str) -> Option<serde_json::Value> {
    let py = project_root().join(".venv/bin/python");
    if !Command::new(&py).args(["-c", "import openai"]).output().is_ok_and(|o| o.status.success()) {
        eprintln!("SKIPPED: {} cannot import openai (`make envoy` installs it)", py.display());
        return None;
    }
    let out = Command::new(&py)
        .arg(project_root().join("tests/openai_providers.py"))
        .arg(format!("http://127.0.0.1:{}/v1", w.envoy.port))
        .arg(mode)
        .env_remove("OPENAI_API_KEY")
        .env_remove("OPENAI_BASE_URL")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "openai_providers.py {mode}: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Some(serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}")))
}

/// What the Claude mock received: Anthropic's Messages API, with the system prompt on top.
fn assert_anthropic_request(w: &World, stream: bool) -> serde_json::Value {
    let last = w.mock("anthropic").last();
    assert_eq!(last["path"], "/v1/messages", "{last}");
    assert_eq!(last["headers"]["x-api-key"], "sk-ant-test");
    assert_eq!(last["headers"]["anthropic-version"], "2023-06-01");
    assert_eq!(last["headers"]["host"], "api.anthropic.com");
    let body = &last["body"];
    assert_eq!(body["model"], "claude-sonnet-4-5");
    assert!(body["max_tokens"].as_u64().is_some_and(|n| n > 0), "{body}");
    assert_eq!(body["stream"].as_bool().unwrap_or(false), stream, "{body}");
    let roles: Vec<&str> = body["messages"].as_array().unwrap().iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert!(!roles.contains(&"system"), "{body}");
    body.clone()
}

#[test]
fn smart_router_answers_the_openai_client_from_claude_when_gpt4o_fails() {
    let w = smart_router(&["--status", "500"]);
    let Some(v) = python(&w, "json") else { return };
    assert_eq!(v["headers"]["x-model-workers-attempts"], "gpt4=500,claude=200", "{v}");
    assert_eq!(v["headers"]["x-model-workers-model"], "claude");
    let r = &v["result"];
    assert_eq!(r["object"], "chat.completion");
    assert_eq!(r["content"], "Hello from anthropic");
    assert_eq!(r["finish_reason"], "stop");
    assert!(r["usage"]["total_tokens"].as_u64().is_some_and(|n| n > 0), "{r}");
    let body = assert_anthropic_request(&w, false);
    let system = body["system"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| body["system"][0]["text"].as_str().unwrap().to_string());
    assert_eq!(
        system, "You are a terse assistant. Answer in one line.",
        "the system prompt is Anthropic's top-level `system`"
    );
}

#[test]
fn smart_router_streams_claude_event_by_event_to_the_openai_client() {
    let w = smart_router(&["--status", "500"]);
    let Some(v) = python(&w, "stream") else { return };
    assert_eq!(v["headers"]["x-model-workers-attempts"], "gpt4=500,claude=200", "{v}");
    let events = v["result"]["events"].as_array().unwrap();
    let content: Vec<(f64, &str)> = events
        .iter()
        .filter_map(|e| Some((e["t"].as_f64()?, e["content"].as_str()?)))
        .filter(|(_, c)| !c.is_empty())
        .collect();
    assert_eq!(content.len(), 5, "{v}");
    let spread = content[4].0 - content[0].0;
    assert!(spread >= 0.6, "Claude's events reached the client {spread:.3} s apart: {content:?}");
    assert!(events.iter().any(|e| e["finish_reason"] == "stop"), "{v}");
    let usage = events.last().unwrap();
    assert!(usage["usage"]["completion_tokens"].as_u64().is_some(), "include_usage asked for a final usage chunk: {v}");
    assert_anthropic_request(&w, true);
}

#[test]
fn smart_router_translates_tool_calls_both_ways() {
    let w = smart_router(&["--status", "503"]);
    let Some(v) = python(&w, "tools") else { return };
    let r = &v["result"];
    assert_eq!(r["finish_reason"], "tool_calls", "{v}");
    assert_eq!(r["tool_calls"][0]["name"], "get_weather");
    let args: serde_json::Value = serde_json::from_str(r["tool_calls"][0]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, serde_json::json!({"city": "Paris"}));
    let body = assert_anthropic_request(&w, false);
    assert_eq!(body["tools"][0]["name"], "get_weather");
    assert_eq!(body["tools"][0]["input_schema"]["type"], "object");
}

#[test]
fn what_anthropic_cannot_take_is_refused_before_any_attempt() {
    let w = smart_router(&["--status", "500"]);
    let body = r#"{"model":"smart_router","n":2,"messages":[{"role":"user","content":"hi"}]}"#;
    let r = post_json(w.envoy.port, "/v1/chat/completions", body);
    assert_eq!(r.status, 400, "{}", r.text());
    let e = r.json();
    assert_eq!(e["error"]["code"], "unsupported_parameter");
    assert_eq!(e["error"]["param"], "n");
    // Embeddings cannot go to a Claude model.
    let r = post_json(w.envoy.port, "/v1/embeddings", r#"{"model":"smart_router","input":"hi"}"#);
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "unsupported_endpoint");
    assert_eq!((w.hits("openai"), w.hits("anthropic")), (0, 0), "nothing was forwarded");
}

#[test]
fn an_anthropic_error_reaches_the_client_in_openai_shape_and_an_error_event_fails_over() {
    // Claude alone, overloaded: the client gets 529 with OpenAI's error shape.
    let w = smart_router(&[]);
    w.mock("anthropic").set_faults(r#"{"status":529}"#);
    let r = w.chat("claude");
    assert_eq!(r.status, 529, "{}", r.text());
    let e = r.json();
    assert!(e["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{e}");
    assert!(e["error"].get("type").is_some(), "{e}");
    assert!(e.get("type").is_none(), "not Anthropic's shape: {e}");
    // A stream whose first event is Anthropic's `event: error` fails over too (Claude first).
    w.mock("anthropic").set_faults(r#"{"sse_error":true}"#);
    let config = SMART_ROUTER.replace("order: 1", "order: 3");
    drop(w);
    let w = World::start_with(&[("openai", &[]), ("anthropic", &["--sse-error"])], &config, |o| {
        o.env = vec![("OPENAI_API_KEY".into(), "k1".into()), ("ANTHROPIC_API_KEY".into(), "k2".into())];
    });
    let r = post_stream(w.envoy.port, "/v1/chat/completions", &chat_body("smart_router", true), &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-model-workers-attempts"), Some("claude=stream_error,gpt4=200"));
}

#[test]
fn azure_models_use_their_deployment_path_api_version_and_key() {
    let config = "models:\n  - from: azure:gpt-4o\n    name: az\n    params:\n      cluster: az\n      endpoint: https://res.openai.azure.com\n      azure_api_key: ${ secrets:AZ }\n      azure_deployment_name: prod-4o\n      azure_api_version: 2024-10-21\n";
    let w = World::start_with(&[("az", &[])], config, |o| o.env = vec![("AZ".into(), "az-key".into())]);
    let r = w.chat("az");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-mock-deployment"), Some("prod-4o"));
    let last = w.mock("az").last();
    assert_eq!(last["path"], "/openai/deployments/prod-4o/chat/completions", "{last}");
    assert!(last["query"].as_str().unwrap().contains("api-version=2024-10-21"), "{last}");
    assert_eq!(last["headers"]["api-key"], "az-key");
    assert_eq!(last["headers"]["host"], "res.openai.azure.com");
}

#[test]
fn gemini_and_xai_models_get_their_paths_hosts_and_bearer_keys() {
    let config = "models:\n  - from: gemini:gemini-2.5-flash\n    name: gem\n    params:\n      gemini_api_key: ${ secrets:G }\n  - from: xai:grok-4\n    name: grok\n    params:\n      xai_api_key: ${ secrets:X }\n";
    let w = World::start_with(&[("gemini", &[]), ("xai", &[])], config, |o| {
        o.env = vec![("G".into(), "g-key".into()), ("X".into(), "x-key".into())];
    });
    // The mock serves OpenAI's paths under /v1 only: Google's /v1beta/openai path is recorded.
    let _ = w.chat("gem");
    let last = w.mock("gemini").last();
    assert_eq!(last["path"], "/v1beta/openai/chat/completions", "{last}");
    assert_eq!(last["headers"]["host"], "generativelanguage.googleapis.com");
    assert_eq!(last["headers"]["authorization"], "Bearer g-key");
    assert_eq!(last["body"]["model"], "gemini-2.5-flash");
    let r = w.chat("grok");
    assert_eq!(r.status, 200, "{}", r.text());
    let last = w.mock("xai").last();
    assert_eq!(last["path"], "/v1/chat/completions");
    assert_eq!(last["headers"]["host"], "api.x.ai");
    assert_eq!(last["headers"]["authorization"], "Bearer x-key");
}
