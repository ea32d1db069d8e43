use serde_json::{json, Value};

use crate::translate::anthropic::{error_from_anthropic, response_from_anthropic};

fn resp(v: &Value) -> Value {
    let out = response_from_anthropic(v.to_string().as_bytes()).unwrap_or_else(|| panic!("rejected {v}"));
    serde_json::from_slice(&out).unwrap()
}

fn message(content: Value, stop_reason: &str) -> Value {
    json!({
        "id": "msg_01XFDUDYJgAACzvnptvVoYEL", "type": "message", "role": "assistant",
        "model": "claude-sonnet-4-5-20250929", "content": content,
        "stop_reason": stop_reason, "stop_sequence": null,
        "usage": {"input_tokens": 2095, "output_tokens": 503}
    })
}

#[test]
fn text_answer() {
    let out =
        resp(&message(json!([{"type": "text", "text": "Hello"}, {"type": "text", "text": ", world"}]), "end_turn"));
    assert_eq!(
        out,
        json!({
            "id": "msg_01XFDUDYJgAACzvnptvVoYEL", "object": "chat.completion", "created": 0,
            "model": "claude-sonnet-4-5-20250929",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello, world", "refusal": null},
                         "logprobs": null, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 2095, "completion_tokens": 503, "total_tokens": 2598,
                      "prompt_tokens_details": {"cached_tokens": 0}}
        })
    );
}

#[test]
fn tool_use_answer() {
    let out = resp(&message(
        json!([
            {"type": "thinking", "thinking": "hmm", "signature": "x"},
            {"type": "text", "text": "I'll check."},
            {"type": "tool_use", "id": "toolu_01A", "name": "get_weather", "input": {"city": "Paris", "days": [1, 2]}},
            {"type": "tool_use", "id": "toolu_01B", "name": "get_time", "input": {}}
        ]),
        "tool_use",
    ));
    let choice = &out["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(choice["message"]["content"], "I'll check.");
    let calls = choice["message"]["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0]["id"], "toolu_01A");
    assert_eq!(calls[0]["type"], "function");
    assert_eq!(calls[0]["function"]["name"], "get_weather");
    let args: Value = serde_json::from_str(calls[0]["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, json!({"city": "Paris", "days": [1, 2]}));
    assert_eq!(calls[1]["function"]["arguments"], "{}");

    // Tool calls only: content is null.
    let out = resp(&message(json!([{"type": "tool_use", "id": "t", "name": "f", "input": {}}]), "tool_use"));
    assert!(out["choices"][0]["message"]["content"].is_null());
    // Nothing at all: an empty string.
    let out = resp(&message(json!([]), "end_turn"));
    assert_eq!(out["choices"][0]["message"]["content"], "");
}

#[test]
fn stop_reason_table() {
    for (reason, want) in [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("pause_turn", "stop"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("something_new", "stop"),
    ] {
        let out = resp(&message(json!([{"type": "text", "text": "x"}]), reason));
        assert_eq!(out["choices"][0]["finish_reason"], want, "{reason}");
    }
}

#[test]
fn usage_counts_cache_tokens_as_prompt_tokens() {
    let mut m = message(json!([{"type": "text", "text": "x"}]), "end_turn");
    m["usage"] = json!({"input_tokens": 10, "cache_creation_input_tokens": 100, "cache_read_input_tokens": 1000,
                        "output_tokens": 5, "service_tier": "standard"});
    assert_eq!(
        resp(&m)["usage"],
        json!({"prompt_tokens": 1110, "completion_tokens": 5, "total_tokens": 1115,
               "prompt_tokens_details": {"cached_tokens": 1000}})
    );
    m.as_object_mut().unwrap().remove("usage");
    assert_eq!(resp(&m)["usage"]["total_tokens"], 0);
}

#[test]
fn not_a_message_is_none() {
    let ok = message(json!([{"type": "text", "text": "x"}]), "end_turn");
    let mut no_id = ok.clone();
    no_id.as_object_mut().unwrap().remove("id");
    let mut bad_text = ok.clone();
    bad_text["content"] = json!([{"type": "text"}]);
    let mut bad_tool = ok.clone();
    bad_tool["content"] = json!([{"type": "tool_use", "input": {}}]);
    let mut no_content = ok.clone();
    no_content["content"] = json!("x");
    for body in [
        b"".to_vec(),
        b"not json".to_vec(),
        b"[]".to_vec(),
        json!({"type": "error", "error": {"type": "api_error", "message": "x"}}).to_string().into_bytes(),
        json!({"id": "chatcmpl-1", "object": "chat.completion", "choices": []}).to_string().into_bytes(),
        no_id.to_string().into_bytes(),
        bad_text.to_string().into_bytes(),
        bad_tool.to_string().into_bytes(),
        no_content.to_string().into_bytes(),
    ] {
        assert!(response_from_anthropic(&body).is_none(), "{}", String::from_utf8_lossy(&body));
    }
}

fn err(status: u16, body: &[u8]) -> Value {
    let out = error_from_anthropic(status, body);
    serde_json::from_slice(&out).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out)))
}

/// (status, Anthropic error type, OpenAI type).
#[test]
fn error_table() {
    for (status, kind, want) in [
        (400, "invalid_request_error", "invalid_request_error"),
        (401, "authentication_error", "authentication_error"),
        (402, "billing_error", "insufficient_quota"),
        (403, "permission_error", "permission_error"),
        (404, "not_found_error", "invalid_request_error"),
        (413, "request_too_large", "invalid_request_error"),
        (429, "rate_limit_error", "rate_limit_error"),
        (500, "api_error", "server_error"),
        (504, "timeout_error", "server_error"),
        (529, "overloaded_error", "server_error"),
        (418, "teapot_error", "invalid_request_error"),
        (503, "new_error", "server_error"),
    ] {
        let body = json!({"type": "error", "error": {"type": kind, "message": "Overloaded"}, "request_id": "req_011"});
        let out = err(status, body.to_string().as_bytes());
        assert_eq!(
            out,
            json!({"error": {"message": "Overloaded (request_id: req_011)", "type": want, "param": null, "code": kind}}),
            "{status} {kind}"
        );
    }
    let out = err(
        400,
        br#"{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: Field required"}}"#,
    );
    assert_eq!(out["error"]["message"], "max_tokens: Field required");
}

#[test]
fn unknown_error_bodies_are_wrapped() {
    let html = format!("<html><body>502 Bad Gateway{}</body></html>", "x".repeat(5000));
    for (status, body, kind, contains) in [
        (502, html.as_bytes(), "server_error", "Anthropic answered HTTP 502: <html><body>502 Bad Gateway"),
        (503, &b""[..], "server_error", "Anthropic answered HTTP 503 with an empty body"),
        (429, b"slow down", "rate_limit_error", "HTTP 429: slow down"),
        (401, b"{\"error\":\"nope\"}", "authentication_error", "{\"error\":\"nope\"}"),
        (400, b"\xff\xfe{", "invalid_request_error", "HTTP 400"),
    ] {
        let out = err(status, body);
        assert_eq!(out["error"]["type"], kind);
        assert_eq!(out["error"]["code"], "upstream_error");
        assert!(out["error"]["param"].is_null());
        let message = out["error"]["message"].as_str().unwrap();
        assert!(message.contains(contains), "{message}");
        assert!(message.len() < 700, "{}", message.len());
    }
}
