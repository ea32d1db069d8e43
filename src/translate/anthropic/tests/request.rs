use serde_json::{json, Value};

use crate::translate::anthropic::{request_to_anthropic, translate_request};

const MODEL: &str = "claude-sonnet-4-5";

fn tr(req: &Value) -> Value {
    let out = request_to_anthropic(req.to_string().as_bytes(), MODEL, 1024).unwrap_or_else(|e| panic!("{e}: {req}"));
    serde_json::from_slice(&out).unwrap()
}

/// `{"model":"w","messages":[{"role":"user","content":"hi"}]}` plus `extra`'s fields.
fn with(extra: Value) -> Value {
    let mut base = json!({"model": "w", "messages": [{"role": "user", "content": "hi"}]});
    for (k, v) in extra.as_object().unwrap() {
        base[k] = v.clone();
    }
    base
}

#[test]
fn realistic_conversation_with_tools_images_and_stop() {
    let req = json!({
        "model": "smart",
        "messages": [
            {"role": "system", "content": "You are a weather assistant."},
            {"role": "user", "content": [
                {"type": "text", "text": "What is the weather where this photo was taken?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "high"}}
            ]},
            {"role": "assistant", "content": "Let me check.", "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": ""}}
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18°C, sunny"},
            {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "14:05"}]},
            {"role": "user", "content": "And tomorrow? Here is a map:"},
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://example.com/map.jpg"}}]}
        ],
        "tools": [{"type": "function", "function": {
            "name": "get_weather", "description": "Weather by city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
        }}, {"type": "function", "function": {"name": "get_time"}}],
        "tool_choice": "auto",
        "stop": ["\n\nHuman:", "END"],
        "temperature": 0.2,
        "user": "user-42",
        "n": 1,
        "seed": 7,
        "store": false
    });
    let want = json!({
        "model": MODEL,
        "system": "You are a weather assistant.",
        "max_tokens": 1024,
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "What is the weather where this photo was taken?"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}
            ]},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "call_2", "name": "get_time", "input": {}}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "call_1", "content": "18°C, sunny"},
                {"type": "tool_result", "tool_use_id": "call_2", "content": [{"type": "text", "text": "14:05"}]},
                {"type": "text", "text": "And tomorrow? Here is a map:"},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/map.jpg"}}
            ]}
        ],
        "tools": [
            {"name": "get_weather", "description": "Weather by city",
             "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
            {"name": "get_time", "input_schema": {"type": "object", "properties": {}}}
        ],
        "tool_choice": {"type": "auto"},
        "stop_sequences": ["\n\nHuman:", "END"],
        "temperature": 0.2,
        "metadata": {"user_id": "user-42"}
    });
    assert_eq!(tr(&req), want);
}

#[test]
fn defaults_for_a_minimal_request() {
    let out = tr(&with(json!({})));
    assert_eq!(out, json!({"model": MODEL, "max_tokens": 1024, "messages": [{"role": "user", "content": "hi"}]}));
    let r = translate_request(with(json!({})).to_string().as_bytes(), MODEL, 1024).unwrap();
    assert!(!r.stream && !r.include_usage);
}

/// (extra request fields, the Anthropic fields they become; `null` = absent).
#[test]
fn field_table() {
    let cases: Vec<(Value, Value)> = vec![
        (json!({"max_tokens": 50}), json!({"max_tokens": 50})),
        (json!({"max_completion_tokens": 60, "max_tokens": 50}), json!({"max_tokens": 60})),
        (json!({"max_tokens": null}), json!({"max_tokens": 1024})),
        (json!({"stop": "END"}), json!({"stop_sequences": ["END"]})),
        (json!({"stop": []}), json!({"stop_sequences": null})),
        (json!({"stop": null}), json!({"stop_sequences": null})),
        (json!({"temperature": 1, "top_p": 0.9}), json!({"temperature": 1, "top_p": 0.9})),
        (json!({"top_k": 40}), json!({"top_k": 40})),
        (json!({"stream": true}), json!({"stream": true})),
        (json!({"stream": false}), json!({"stream": null})),
        (
            json!({"stream": true, "stream_options": {"include_usage": true}}),
            json!({"stream": true, "stream_options": null}),
        ),
        (json!({"user": "u1"}), json!({"metadata": {"user_id": "u1"}})),
        (json!({"safety_identifier": "s1"}), json!({"metadata": {"user_id": "s1"}})),
        (json!({"user": "u1", "safety_identifier": "s1"}), json!({"metadata": {"user_id": "u1"}})),
        (json!({"metadata": {"tag": "x"}}), json!({"metadata": null})),
        (
            json!({"n": 1, "logprobs": false, "top_logprobs": 0, "frequency_penalty": 0, "presence_penalty": 0.0,
                   "logit_bias": {}, "modalities": ["text"], "seed": 1, "store": true, "service_tier": "auto",
                   "prompt_cache_key": "k", "prompt_cache_retention": "24h", "prediction": {"type": "content", "content": "x"},
                   "audio": null, "functions": null}),
            json!({"n": null, "seed": null, "logprobs": null}),
        ),
        (json!({"response_format": {"type": "text"}}), json!({"output_config": null})),
        (
            json!({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "strict": true,
                   "schema": {"type": "object", "properties": {"a": {"type": "string"}}}}}}),
            json!({"output_config": {"format": {"type": "json_schema",
                   "schema": {"type": "object", "properties": {"a": {"type": "string"}}}}}}),
        ),
    ];
    for (extra, want) in cases {
        let out = tr(&with(extra.clone()));
        for (k, v) in want.as_object().unwrap() {
            let got = out.get(k).cloned().unwrap_or(Value::Null);
            assert_eq!(&got, v, "field {k} for {extra}");
        }
    }
}

#[test]
fn stream_and_include_usage_are_reported() {
    let cases = [
        (json!({"stream": true, "stream_options": {"include_usage": true}}), (true, true)),
        (json!({"stream": true, "stream_options": {"include_usage": false}}), (true, false)),
        (json!({"stream": true}), (true, false)),
        (json!({"stream_options": {"include_usage": true}}), (false, false)),
    ];
    for (extra, (stream, usage)) in cases {
        let r = translate_request(with(extra.clone()).to_string().as_bytes(), MODEL, 10).unwrap();
        assert_eq!((r.stream, r.include_usage), (stream, usage), "{extra}");
    }
}

const WEATHER_TOOL: &str =
    r#"[{"type":"function","function":{"name":"w","parameters":{"type":"object","properties":{}},"strict":true}}]"#;

#[test]
fn tool_choice_table() {
    let tools: Value = serde_json::from_str(WEATHER_TOOL).unwrap();
    let cases = [
        (json!({"tool_choice": "auto"}), json!({"type": "auto"})),
        (json!({"tool_choice": "none"}), json!({"type": "none"})),
        (json!({"tool_choice": "required"}), json!({"type": "any"})),
        (json!({"tool_choice": {"type": "function", "function": {"name": "w"}}}), json!({"type": "tool", "name": "w"})),
        (json!({"parallel_tool_calls": false}), json!({"type": "auto", "disable_parallel_tool_use": true})),
        (json!({"parallel_tool_calls": true}), Value::Null),
        (
            json!({"tool_choice": "required", "parallel_tool_calls": false}),
            json!({"type": "any", "disable_parallel_tool_use": true}),
        ),
        (
            json!({"tool_choice": {"type": "function", "function": {"name": "w"}}, "parallel_tool_calls": false}),
            json!({"type": "tool", "name": "w", "disable_parallel_tool_use": true}),
        ),
        (json!({"tool_choice": "none", "parallel_tool_calls": false}), json!({"type": "none"})),
    ];
    for (extra, want) in cases {
        let mut req = with(extra.clone());
        req["tools"] = tools.clone();
        let out = tr(&req);
        assert_eq!(out.get("tool_choice").cloned().unwrap_or(Value::Null), want, "{extra}");
        assert_eq!(
            out["tools"],
            json!([{"name": "w", "input_schema": {"type": "object", "properties": {}}, "strict": true}])
        );
    }
    // Without tools, auto / none / parallel_tool_calls mean nothing.
    for extra in [json!({"tool_choice": "auto"}), json!({"tool_choice": "none"}), json!({"parallel_tool_calls": false})]
    {
        let out = tr(&with(extra.clone()));
        assert!(out.get("tool_choice").is_none() && out.get("tools").is_none(), "{extra}");
    }
    let out = tr(&with(json!({"tools": []})));
    assert!(out.get("tools").is_none());
}

/// (messages, the Anthropic `system` and `messages`).
#[test]
fn message_table() {
    let cases: Vec<(Value, Value, Value)> = vec![
        // developer = system; several system messages (anywhere) become blocks, empty ones vanish.
        (
            json!([{"role": "developer", "content": "A"}, {"role": "user", "content": "hi"},
                   {"role": "system", "content": "B"}, {"role": "system", "content": ""}]),
            json!([{"type": "text", "text": "A"}, {"type": "text", "text": "B"}]),
            json!([{"role": "user", "content": "hi"}]),
        ),
        // System text parts become blocks even when there is one.
        (
            json!([{"role": "system", "content": [{"type": "text", "text": "A"}]}, {"role": "user", "content": "hi"}]),
            json!([{"type": "text", "text": "A"}]),
            json!([{"role": "user", "content": "hi"}]),
        ),
        // Consecutive user messages merge; names are dropped.
        (
            json!([{"role": "user", "content": "a", "name": "ann"}, {"role": "user", "content": [{"type": "text", "text": "b"}]}]),
            Value::Null,
            json!([{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}]),
        ),
        // Consecutive assistant messages merge; an empty assistant message is skipped.
        (
            json!([{"role": "user", "content": "q"}, {"role": "assistant", "content": "a1"},
                   {"role": "assistant", "content": null}, {"role": "assistant", "content": ""},
                   {"role": "assistant", "content": [{"type": "text", "text": "a2"}, {"type": "refusal", "refusal": "no"}]}]),
            Value::Null,
            json!([{"role": "user", "content": "q"}, {"role": "assistant", "content": [
                {"type": "text", "text": "a1"}, {"type": "text", "text": "a2"}, {"type": "text", "text": "no"}]}]),
        ),
        // A tool result joining a user turn goes before its text.
        (
            json!([{"role": "assistant", "content": null, "tool_calls": [
                      {"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
                   {"role": "user", "content": "meanwhile"},
                   {"role": "tool", "tool_call_id": "t1", "content": "ok"}]),
            Value::Null,
            json!([{"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}]},
                   {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "ok"},
                                                {"type": "text", "text": "meanwhile"}]}]),
        ),
        // Tool results with no content; PDF files; a jpg data URL is image/jpeg.
        (
            json!([{"role": "tool", "tool_call_id": "t1"},
                   {"role": "user", "content": [
                       {"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERi0="}},
                       {"type": "image_url", "image_url": {"url": "DATA:image/JPG;base64,/9j/"}},
                       {"type": "image_url", "image_url": "http://example.com/a.gif"}]}]),
            Value::Null,
            json!([{"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "t1"},
                {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="}},
                {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/"}},
                {"type": "image", "source": {"type": "url", "url": "http://example.com/a.gif"}}]}]),
        ),
    ];
    for (messages, system, want) in cases {
        let out = tr(&json!({"model": "w", "messages": messages}));
        assert_eq!(out.get("system").cloned().unwrap_or(Value::Null), system, "{messages}");
        assert_eq!(out["messages"], want, "{messages}");
    }
}

/// (request, the `param` of the error).
#[test]
fn rejections_name_the_field() {
    let msgs = |m: Value| json!({"model": "w", "messages": m});
    let user_part = |p: Value| msgs(json!([{"role": "user", "content": [{"type": "text", "text": "x"}, p]}]));
    let call = |c: Value| msgs(json!([{"role": "assistant", "tool_calls": [c]}]));
    let cases: Vec<(Value, &str)> = vec![
        (with(json!({"n": 2})), "n"),
        (with(json!({"logprobs": true})), "logprobs"),
        (with(json!({"top_logprobs": 3})), "top_logprobs"),
        (with(json!({"frequency_penalty": 0.5})), "frequency_penalty"),
        (with(json!({"presence_penalty": -1})), "presence_penalty"),
        (with(json!({"logit_bias": {"50256": -100}})), "logit_bias"),
        (with(json!({"modalities": ["text", "audio"]})), "modalities"),
        (with(json!({"audio": {"voice": "alloy", "format": "wav"}})), "audio"),
        (with(json!({"web_search_options": {}})), "web_search_options"),
        (with(json!({"functions": [{"name": "f"}]})), "functions"),
        (with(json!({"function_call": "auto"})), "function_call"),
        (with(json!({"reasoning_effort": "high"})), "reasoning_effort"),
        (with(json!({"verbosity": "low"})), "verbosity"),
        (with(json!({"some_new_field": 1})), "some_new_field"),
        (with(json!({"response_format": {"type": "json_object"}})), "response_format"),
        (with(json!({"response_format": {"type": "xml"}})), "response_format.type"),
        (
            with(json!({"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}})),
            "response_format.json_schema.schema",
        ),
        (with(json!({"temperature": 1.5})), "temperature"),
        (with(json!({"top_p": "high"})), "top_p"),
        (with(json!({"top_k": -1})), "top_k"),
        (with(json!({"max_tokens": 0})), "max_tokens"),
        (with(json!({"max_completion_tokens": 2.5})), "max_completion_tokens"),
        (with(json!({"stop": 5})), "stop"),
        (with(json!({"stop": ["a", 1]})), "stop[1]"),
        (with(json!({"stream": "yes"})), "stream"),
        (with(json!({"stream_options": true})), "stream_options"),
        (with(json!({"user": 5})), "user"),
        (with(json!({"tool_choice": "required"})), "tool_choice"),
        (with(json!({"tools": [{"type": "custom", "custom": {"name": "x"}}]})), "tools[0].type"),
        (with(json!({"tools": [{"type": "function", "function": {"description": "x"}}]})), "tools[0].function.name"),
        (
            with(json!({"tools": [{"type": "function", "function": {"name": "x", "parameters": []}}]})),
            "tools[0].function.parameters",
        ),
        (with(json!({"tools": {}})), "tools"),
        (with(json!({"parallel_tool_calls": "no"})), "parallel_tool_calls"),
        (
            with(json!({"tools": serde_json::from_str::<Value>(WEATHER_TOOL).unwrap(),
                     "tool_choice": {"type": "allowed_tools", "allowed_tools": {}}})),
            "tool_choice",
        ),
        (json!({"model": "w"}), "messages"),
        (msgs(json!({})), "messages"),
        (msgs(json!(["hi"])), "messages[0]"),
        (msgs(json!([{"content": "hi"}])), "messages[0].role"),
        (msgs(json!([{"role": "function", "name": "f", "content": "x"}])), "messages[0].role"),
        (msgs(json!([{"role": "user", "content": 5}])), "messages[0].content"),
        (
            msgs(json!([{"role": "system", "content": [{"type": "image_url", "image_url": {"url": "https://x"}}]}])),
            "messages[0].content[0]",
        ),
        (
            user_part(json!({"type": "input_audio", "input_audio": {"data": "AAA", "format": "wav"}})),
            "messages[0].content[1].type",
        ),
        (user_part(json!({"type": "video"})), "messages[0].content[1].type"),
        (user_part(json!({"type": "text"})), "messages[0].content[1].text"),
        (
            user_part(json!({"type": "image_url", "image_url": {"url": "ftp://x/y.png"}})),
            "messages[0].content[1].image_url.url",
        ),
        (
            user_part(json!({"type": "image_url", "image_url": {"url": "data:image/bmp;base64,AAA"}})),
            "messages[0].content[1].image_url.url",
        ),
        (
            user_part(json!({"type": "image_url", "image_url": {"url": "data:image/png,AAA"}})),
            "messages[0].content[1].image_url.url",
        ),
        (user_part(json!({"type": "image_url", "image_url": {}})), "messages[0].content[1].image_url.url"),
        (user_part(json!({"type": "file", "file": {"file_id": "file-1"}})), "messages[0].content[1].file.file_id"),
        (
            user_part(json!({"type": "file", "file": {"file_data": "data:text/plain;base64,AAA"}})),
            "messages[0].content[1].file.file_data",
        ),
        (
            call(json!({"id": "c", "type": "function", "function": {"name": "f", "arguments": "{bad"}})),
            "messages[0].tool_calls[0].function.arguments",
        ),
        (
            call(json!({"id": "c", "type": "function", "function": {"name": "f", "arguments": "[1]"}})),
            "messages[0].tool_calls[0].function.arguments",
        ),
        (
            call(json!({"id": "c", "type": "custom", "custom": {"name": "f", "input": "x"}})),
            "messages[0].tool_calls[0].type",
        ),
        (call(json!({"type": "function", "function": {"name": "f"}})), "messages[0].tool_calls[0].id"),
        (call(json!({"id": "c", "function": {"arguments": "{}"}})), "messages[0].tool_calls[0].function.name"),
        (
            msgs(json!([{"role": "assistant", "content": "x", "function_call": {"name": "f", "arguments": "{}"}}])),
            "messages[0].function_call",
        ),
        (msgs(json!([{"role": "assistant", "audio": {"id": "a1"}}])), "messages[0].audio"),
        (msgs(json!([{"role": "tool", "content": "x"}])), "messages[0].tool_call_id"),
    ];
    for (req, param) in cases {
        match request_to_anthropic(req.to_string().as_bytes(), MODEL, 1024) {
            Ok(out) => panic!("accepted {req}: {}", String::from_utf8_lossy(&out)),
            Err(e) => {
                assert_eq!(e.param, param, "{req}: {}", e.message);
                assert!(!e.message.is_empty());
            }
        }
    }
}

#[test]
fn bodies_that_are_not_objects() {
    for body in [&b"not json"[..], b"[1]", b"\"x\"", b"", b"{\"model\":"] {
        let e = request_to_anthropic(body, MODEL, 1).unwrap_err();
        assert_eq!(e.param, "", "{body:?}");
    }
}

#[test]
fn large_prompt_is_moved_not_mangled() {
    let big = "é\"\\\n".repeat(25_000);
    let out = tr(
        &json!({"model": "w", "messages": [{"role": "system", "content": big.clone()}, {"role": "user", "content": big.clone()}]}),
    );
    assert_eq!(out["system"], big.as_str());
    assert_eq!(out["messages"][0]["content"], big.as_str());
}
