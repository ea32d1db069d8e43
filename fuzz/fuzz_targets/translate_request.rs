//! `request_to_anthropic` on arbitrary bytes: never panics; an accepted body becomes valid
//! JSON with the attempt's model, a positive `max_tokens` and a `messages` array of
//! user/assistant turns that alternate; a rejection names a field (or the whole body) in
//! an OpenAI error that is valid JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;
use model_workers::translate::{request_to_anthropic, translate_request};
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    match translate_request(data, "claude-x", 1024) {
        Ok(r) => {
            let v: Value = serde_json::from_slice(&r.body).expect("an accepted request translates to valid JSON");
            assert_eq!(v["model"], "claude-x");
            assert!(v["max_tokens"].as_u64().is_some_and(|n| n >= 1));
            assert_eq!(v["stream"] == true, r.stream);
            assert!(!r.include_usage || r.stream);
            let turns = v["messages"].as_array().expect("messages is an array");
            let mut last = "";
            for t in turns {
                let role = t["role"].as_str().expect("every turn has a role");
                assert!(role == "user" || role == "assistant");
                assert_ne!(role, last, "roles alternate");
                last = role;
                assert!(t["content"].is_string() || t["content"].is_array());
            }
            assert_eq!(request_to_anthropic(data, "claude-x", 1024).ok(), Some(r.body));
        }
        Err(e) => {
            assert!(!e.message.is_empty());
            let v: Value = serde_json::from_str(&e.to_json()).expect("the error is valid JSON");
            assert_eq!(v["error"]["type"], "invalid_request_error");
        }
    }
});
