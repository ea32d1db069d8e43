//! `response_from_anthropic` and `error_from_anthropic` on arbitrary bytes: never panic;
//! every output is valid JSON of the OpenAI shape.
//!
//! Input layout: bytes 0–1 = the HTTP status (LE, for the error path), then the body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use model_workers::translate::{error_from_anthropic, response_from_anthropic};
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let (status, body) = match data {
        [a, b, rest @ ..] => (u16::from_le_bytes([*a, *b]), rest),
        _ => (500, data),
    };
    if let Some(out) = response_from_anthropic(body) {
        let v: Value = serde_json::from_slice(&out).expect("a translated answer is valid JSON");
        assert_eq!(v["object"], "chat.completion");
        let message = &v["choices"][0]["message"];
        assert_eq!(message["role"], "assistant");
        assert!(message["content"].is_string() || message["tool_calls"].is_array());
        if let Some(calls) = message["tool_calls"].as_array() {
            for c in calls {
                let args = c["function"]["arguments"].as_str().expect("arguments are a string");
                serde_json::from_str::<Value>(args).expect("arguments are JSON");
            }
        }
        assert!(v["usage"]["total_tokens"].as_u64().is_some());
    }
    let err = error_from_anthropic(status, body);
    let v: Value = serde_json::from_slice(&err).expect("a translated error is valid JSON");
    assert!(v["error"]["message"].is_string());
    assert!(v["error"]["type"].is_string());
    assert!(v["error"]["param"].is_null());
});
