//! Azure OpenAI deployment paths:
//! `POST /openai/deployments/{deployment}/{chat/completions|completions|embeddings}?api-version=YYYY-MM-DD[-preview]`
//! with an `api-key` header. The answers are the OpenAI endpoints' (same streaming and
//! faults) plus what Azure adds: `prompt_filter_results` / `content_filter_results`, and on
//! streams a first chunk with `"choices": []` carrying the prompt filter results. The
//! deployment names the model (`model` in the body, which Azure ignores, only wins for the
//! mock's echo). Errors use Azure's gateway shape `{"error":{"code":"…","message":"…"}}`
//! with the messages the real service sends (see README.md for sources).

use crate::api::{self, Action, Ctx, Dialect, Endpoint, FaultKind, Faults, Response, Shared, Stream};
use crate::http::Request;
use serde_json::{json, Value};
use std::sync::atomic::Ordering;

pub const NOT_FOUND: &str = "Resource not found";
pub const BAD_VERSION: &str = "API version not supported";
pub const NO_DEPLOYMENT: &str = "The API deployment for this resource does not exist. If you created the deployment \
                                 within the last 5 minutes, please wait a moment and try again.";
pub const BAD_KEY: &str = "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide \
                           a valid key for an active subscription and use a correct regional API endpoint for your \
                           resource.";

/// The deployment an Azure path names (`/openai/deployments/{deployment}/…`).
pub fn deployment(path: &str) -> Option<&str> {
    let (d, _) = path.strip_prefix("/openai/deployments/")?.split_once('/')?;
    (!d.is_empty()).then_some(d)
}

fn operation(path: &str) -> Option<(&str, Endpoint)> {
    let d = deployment(path)?;
    let op = path.strip_prefix("/openai/deployments/")?.get(d.len() + 1..)?;
    let kind = match op {
        "chat/completions" => Endpoint::Chat,
        "completions" => Endpoint::Completions,
        "embeddings" => Endpoint::Embeddings,
        _ => return None,
    };
    Some((d, kind))
}

/// `YYYY-MM-DD` or `YYYY-MM-DD-preview`.
fn api_version_ok(v: &str) -> bool {
    let date = v.strip_suffix("-preview").unwrap_or(v);
    date.len() == 10
        && date.bytes().enumerate().all(|(i, b)| if i == 4 || i == 7 { b == b'-' } else { b.is_ascii_digit() })
}

pub fn error_response(sh: &Shared, status: u16, code: &str, message: &str, retry_after: Option<u64>) -> Response {
    let mut headers = vec![("x-mock-backend".to_string(), sh.name.clone())];
    if let Some(ra) = retry_after {
        headers.push(("retry-after".into(), ra.to_string()));
    }
    api::json_response(status, headers, &json!({"error": {"code": code, "message": message}}))
}

/// An injected status fault on an Azure path (429/503 carry `retry-after`).
pub fn injected_error(sh: &Shared, status: u16, message: &str, retry_after: u64) -> Response {
    error_response(sh, status, &status.to_string(), message, matches!(status, 429 | 503).then_some(retry_after))
}

fn filters() -> Value {
    let safe = json!({"filtered": false, "severity": "safe"});
    json!({"hate": safe, "self_harm": safe, "sexual": safe, "violence": safe})
}

fn prompt_filter_results() -> Value {
    json!([{"prompt_index": 0, "content_filter_results": filters()}])
}

pub fn handle(
    sh: &Shared,
    req: &Request,
    f: &Faults,
    parsed: Option<&Result<Value, serde_json::Error>>,
    model: Option<&str>,
    stream: bool,
) -> Action {
    let fail = |status: u16, code: &str, msg: &str| Action::Respond(error_response(sh, status, code, msg, None));
    let Some((dep, kind)) = operation(&req.path).filter(|_| req.method == "POST") else {
        return fail(404, "404", NOT_FOUND);
    };
    if !dep.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)) {
        return fail(404, "DeploymentNotFound", NO_DEPLOYMENT);
    }
    // No api-version: the gateway finds no route (404), as the real service answers.
    let version = match req.query_param("api-version") {
        None => return fail(404, "404", NOT_FOUND),
        Some(v) if v.is_empty() => return fail(404, "404", NOT_FOUND),
        Some(v) if !api_version_ok(&v) => return fail(400, "BadRequest", BAD_VERSION),
        Some(v) => v,
    };
    let Some(key) = req.header("api-key").filter(|k| !k.is_empty()) else {
        return fail(401, "401", BAD_KEY);
    };
    let body = match parsed {
        Some(Ok(Value::Object(o))) => o,
        Some(Err(e)) => return fail(400, "BadRequest", &format!("Invalid JSON body: {e}")),
        _ => return fail(400, "BadRequest", "The request body must be a JSON object"),
    };
    let model = model.unwrap_or(dep);
    let stream = stream && kind != Endpoint::Embeddings;
    if stream && f.sse_error {
        return api::injected(sh, f, Dialect::Azure, FaultKind::SseError, true);
    }
    sh.stats.served.fetch_add(1, Ordering::Relaxed);
    let ctx = Ctx { sh, req, body, model, id: sh.next_id(), created: api::now_secs() };
    let extra = json!({"deployment": dep, "api_version": version, "api_key": key});
    if stream {
        Action::Stream(azure_stream(ctx.stream(kind, f), dep, &extra))
    } else {
        Action::Respond(azure_json(ctx.respond(kind, f.pad_bytes), kind, dep, &extra))
    }
}

/// Adds the Azure echo (`deployment`, `api_version`, `api_key`) to a `mock` field.
fn add_echo(v: &mut Value, extra: &Value) {
    if let (Some(Value::Object(mock)), Some(extra)) = (v.get_mut("mock"), extra.as_object()) {
        mock.extend(extra.clone());
    }
}

fn azure_json(mut r: Response, kind: Endpoint, dep: &str, extra: &Value) -> Response {
    if let Ok(mut v) = serde_json::from_slice::<Value>(&r.body) {
        add_echo(&mut v, extra);
        if kind != Endpoint::Embeddings {
            if let Some(choices) = v.get_mut("choices").and_then(Value::as_array_mut) {
                for c in choices.iter_mut().filter_map(Value::as_object_mut) {
                    c.insert("content_filter_results".into(), filters());
                }
            }
            if let Some(o) = v.as_object_mut() {
                o.insert("prompt_filter_results".into(), prompt_filter_results());
            }
        }
        r.body = serde_json::to_vec(&v).unwrap_or(r.body);
    }
    r.headers.push(("x-mock-deployment".into(), dep.to_string()));
    r
}

fn azure_stream(mut s: Stream, dep: &str, extra: &Value) -> Stream {
    // The OpenAI stream's first event carries the `mock` field: add the Azure echo to it.
    if let Some((_, first)) = s.events.first_mut() {
        let text = String::from_utf8_lossy(first).into_owned();
        if let Some(Ok(mut v)) = text.strip_prefix("data: ").map(|j| serde_json::from_str::<Value>(j.trim_end())) {
            add_echo(&mut v, extra);
            *first = format!("data: {v}\n\n").into_bytes();
        }
    }
    let head = json!({"choices": [], "created": 0, "id": "", "model": "", "object": "",
                      "prompt_filter_results": prompt_filter_results()});
    s.events.insert(0, (0, format!("data: {head}\n\n").into_bytes()));
    s.headers.push(("x-mock-deployment".into(), dep.to_string()));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_versions() {
        assert_eq!(deployment("/openai/deployments/gpt4o/chat/completions"), Some("gpt4o"));
        assert_eq!(deployment("/openai/deployments//chat/completions"), None);
        assert_eq!(deployment("/openai/models"), None);
        assert!(matches!(operation("/openai/deployments/d/chat/completions"), Some(("d", Endpoint::Chat))));
        assert!(matches!(operation("/openai/deployments/d/completions"), Some(("d", Endpoint::Completions))));
        assert!(matches!(operation("/openai/deployments/d/embeddings"), Some(("d", Endpoint::Embeddings))));
        assert!(operation("/openai/deployments/d/responses").is_none());
        assert!(operation("/openai/deployments/d").is_none());
        for ok in ["2024-10-21", "2025-01-01-preview"] {
            assert!(api_version_ok(ok), "{ok}");
        }
        for bad in ["", "2024-1-21", "v1", "preview", "2024-10-21-beta", "2024/10/21"] {
            assert!(!api_version_ok(bad), "{bad}");
        }
    }
}
