//! Anthropic answers → OpenAI answers: a 2xx Messages JSON body → `chat.completion`, an error
//! body of any status → an OpenAI error body.

use serde_json::Value;

use super::{finish_reason, openai_error_type, write_error, write_json_string, Usage};
use crate::error::clip;

/// An Anthropic `message` (a 2xx JSON answer) as an OpenAI `chat.completion`; `None` when
/// `body` is not one (not JSON, `type` is not `message`, no `id` or `content` array, a
/// `tool_use` block without `id` or `name`).
pub fn response_from_anthropic(body: &[u8]) -> Option<Vec<u8>> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let m = v.as_object()?;
    if m.get("type")?.as_str()? != "message" {
        return None;
    }
    let id = m.get("id")?.as_str()?;
    let model = m.get("model").and_then(Value::as_str).unwrap_or("");
    let blocks = m.get("content")?.as_array()?;

    let mut text: Option<String> = None;
    let mut calls: Vec<(&str, &str, String)> = Vec::new();
    for b in blocks {
        match b.get("type").and_then(Value::as_str) {
            Some("text") => {
                let t = b.get("text")?.as_str()?;
                text.get_or_insert_with(String::new).push_str(t);
            }
            Some("tool_use") => {
                let id = b.get("id")?.as_str()?;
                let name = b.get("name")?.as_str()?;
                let args = match b.get("input") {
                    None | Some(Value::Null) => "{}".to_string(),
                    Some(input) => input.to_string(),
                };
                calls.push((id, name, args));
            }
            // Thinking, redacted thinking, server tools: not part of an OpenAI message.
            _ => {}
        }
    }
    if text.is_none() && calls.is_empty() {
        text = Some(String::new());
    }
    let stop = finish_reason(m.get("stop_reason").and_then(Value::as_str));
    let usage = usage_of(m.get("usage"));

    let mut out = Vec::with_capacity(256 + text.as_ref().map_or(0, String::len));
    out.extend_from_slice(b"{\"id\":");
    write_json_string(&mut out, id);
    out.extend_from_slice(b",\"object\":\"chat.completion\",\"created\":0,\"model\":");
    write_json_string(&mut out, model);
    out.extend_from_slice(b",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":");
    match &text {
        Some(t) => write_json_string(&mut out, t),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"refusal\":null");
    if !calls.is_empty() {
        out.extend_from_slice(b",\"tool_calls\":[");
        for (i, (id, name, args)) in calls.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"id\":");
            write_json_string(&mut out, id);
            out.extend_from_slice(b",\"type\":\"function\",\"function\":{\"name\":");
            write_json_string(&mut out, name);
            out.extend_from_slice(b",\"arguments\":");
            write_json_string(&mut out, args);
            out.extend_from_slice(b"}}");
        }
        out.push(b']');
    }
    out.extend_from_slice(b"},\"logprobs\":null,\"finish_reason\":");
    write_json_string(&mut out, stop);
    out.extend_from_slice(b"}],\"usage\":");
    usage.write_openai(&mut out);
    out.push(b'}');
    Some(out)
}

fn usage_of(v: Option<&Value>) -> Usage {
    let n = |k: &str| v.and_then(|u| u.get(k)).and_then(Value::as_u64).unwrap_or(0);
    Usage {
        input: n("input_tokens"),
        cache_creation: n("cache_creation_input_tokens"),
        cache_read: n("cache_read_input_tokens"),
        output: n("output_tokens"),
    }
}

/// Bytes of an unrecognised error body quoted in the wrapped message, at most.
const QUOTED_BODY_BYTES: usize = 512;

/// An Anthropic error answer (any non-2xx status) as an OpenAI error body
/// `{"error":{"message","type","param":null,"code"}}`.
///
/// `{"type":"error","error":{"type","message"},"request_id"}` keeps its message (with the
/// request id appended), its type as `code` and the OpenAI `type` of
/// [`openai_error_type`]. Any other body (HTML from a proxy, empty, truncated) is wrapped:
/// the message quotes the status and the body's first bytes, `code` is `upstream_error`.
pub fn error_from_anthropic(status: u16, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(160);
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let error = parsed.as_ref().and_then(|v| v.get("error"));
    if let Some(message) = error.and_then(|e| e.get("message")).and_then(Value::as_str) {
        let kind = error.and_then(|e| e.get("type")).and_then(Value::as_str);
        let message = match parsed.as_ref().and_then(|v| v.get("request_id")).and_then(Value::as_str) {
            Some(rid) => format!("{message} (request_id: {rid})"),
            None => message.to_string(),
        };
        write_error(&mut out, &message, openai_error_type(kind, status), kind);
        return out;
    }
    let head = body.get(..body.len().min(4 * QUOTED_BODY_BYTES)).unwrap_or(body);
    let text = String::from_utf8_lossy(head);
    let quoted = clip(text.trim(), QUOTED_BODY_BYTES);
    let message = if quoted.is_empty() {
        format!("Anthropic answered HTTP {status} with an empty body")
    } else {
        format!("Anthropic answered HTTP {status}: {quoted}")
    };
    write_error(&mut out, &message, openai_error_type(None, status), Some("upstream_error"));
    out
}
