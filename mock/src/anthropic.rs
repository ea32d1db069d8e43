//! Anthropic Messages API: `POST /v1/messages`, validated as strictly as the real API so
//! that an e2e test through a translating proxy proves the translation, not the mock's
//! leniency. Errors use Anthropic's shape and (where known) its exact wording:
//! `{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: Field required"},"request_id":"req_…"}`.
//!
//! Field list and types: the Messages API reference / `anthropic-sdk-python`
//! (`MessageCreateParams`, `MessageParam`, the content-block and tool params). Messages:
//! pydantic's (`Field required`, `Extra inputs are not permitted`, `Input tag … found using
//! 'type' …`) and the API's own as reported verbatim in public issue threads. README.md lists
//! every rule and where the mock is deliberately stricter than today's API.

use crate::api::{self, Action, Dialect, FaultKind, Faults, Response, Shared, Stream};
use crate::http::Request;
use serde_json::{json, Map, Value};
use std::fmt::Display;
use std::sync::atomic::Ordering;

/// `anthropic-version` values the API accepts.
pub const VERSIONS: &[&str] = &["2023-06-01", "2023-01-01"];

/// Top-level request fields (`MessageCreateParams`); anything else is an extra input.
const TOP_LEVEL: &[&str] = &[
    "model",
    "messages",
    "max_tokens",
    "cache_control",
    "container",
    "inference_geo",
    "metadata",
    "output_config",
    "service_tier",
    "stop_sequences",
    "stream",
    "system",
    "temperature",
    "thinking",
    "tool_choice",
    "tools",
    "top_k",
    "top_p",
];

/// Content-block types the mock models inside `messages[].content`.
const BLOCK_TAGS: &[&str] =
    &["text", "image", "document", "search_result", "thinking", "redacted_thinking", "tool_use", "tool_result"];
/// Block types allowed inside `tool_result.content`.
const TOOL_RESULT_TAGS: &[&str] = &["text", "image", "search_result", "document"];
/// `tools[].type` values besides `custom` (Anthropic-defined server/client tools).
const TOOL_TAGS: &[&str] = &[
    "custom",
    "bash_20250124",
    "code_execution_20250522",
    "code_execution_20250825",
    "code_execution_20260120",
    "code_execution_20260521",
    "memory_20250818",
    "text_editor_20250124",
    "text_editor_20250429",
    "text_editor_20250728",
    "web_search_20250305",
    "web_search_20260209",
    "web_search_20260318",
    "web_fetch_20250910",
    "web_fetch_20260209",
    "web_fetch_20260309",
    "web_fetch_20260318",
    "tool_search_tool_bm25_20251119",
    "tool_search_tool_bm25",
    "tool_search_tool_regex_20251119",
    "tool_search_tool_regex",
];
const CUSTOM_TOOL_KEYS: &[&str] = &[
    "type",
    "name",
    "input_schema",
    "description",
    "cache_control",
    "strict",
    "allowed_callers",
    "defer_loading",
    "eager_input_streaming",
    "input_examples",
];
const IMAGE_MEDIA_TYPES: &[&str] = &["image/jpeg", "image/png", "image/gif", "image/webp"];

/// The tool-use answer's input.
pub const TOOL_INPUT: &str = r#"{"city": "Paris"}"#;

// ---------------------------------------------------------------- errors

fn error_type(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        s if s >= 500 => "api_error",
        _ => "invalid_request_error",
    }
}

fn request_id(sh: &Shared) -> String {
    format!("req_mock_{:08}", sh.next_id())
}

/// Anthropic-shaped error (`request-id` header and `request_id` field, like the real API).
pub fn error_response(sh: &Shared, status: u16, message: &str, retry_after: Option<u64>) -> Response {
    let rid = request_id(sh);
    let mut headers = vec![("x-mock-backend".to_string(), sh.name.clone()), ("request-id".to_string(), rid.clone())];
    if let Some(ra) = retry_after {
        headers.push(("retry-after".into(), ra.to_string()));
    }
    api::json_response(
        status,
        headers,
        &json!({"type": "error", "error": {"type": error_type(status), "message": message}, "request_id": rid}),
    )
}

/// An injected status fault on `/v1/messages` (429/503/529 carry `retry-after`).
pub fn injected_error(sh: &Shared, status: u16, message: &str, retry_after: u64) -> Response {
    error_response(sh, status, message, matches!(status, 429 | 503 | 529).then_some(retry_after))
}

/// An injected `sse-error` stream: `200 text/event-stream` whose FIRST event is Anthropic's
/// `event: error` (what the filter's first-event detection looks for), then the stream ends.
pub fn sse_error(sh: &Shared) -> Stream {
    let ev = json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}});
    Stream {
        headers: vec![
            ("content-type".into(), "text/event-stream".into()),
            ("cache-control".into(), "no-cache".into()),
            ("x-mock-backend".into(), sh.name.clone()),
            ("request-id".into(), request_id(sh)),
            ("x-mock-fault".into(), "sse-error".into()),
        ],
        events: vec![(0, event("error", &ev))],
        fault: true,
    }
}

fn event(name: &str, v: &Value) -> Vec<u8> {
    format!("event: {name}\ndata: {v}\n\n").into_bytes()
}

// ---------------------------------------------------------------- handler

pub fn handle(
    sh: &Shared,
    req: &Request,
    f: &Faults,
    parsed: Option<&Result<Value, serde_json::Error>>,
    stream: bool,
) -> Action {
    let fail = |status: u16, msg: &str| Action::Respond(error_response(sh, status, msg, None));
    if req.method != "POST" || req.path != "/v1/messages" {
        return fail(404, "Not Found");
    }
    if req.header("x-api-key").is_none_or(str::is_empty) {
        return fail(401, "x-api-key header is required");
    }
    match req.header("anthropic-version") {
        None | Some("") => return fail(400, "anthropic-version: header is required"),
        Some(v) if !VERSIONS.contains(&v) => {
            return fail(400, &format!("anthropic-version: {v:?} is not a valid version"))
        }
        Some(_) => {}
    }
    let body = match parsed {
        Some(Ok(Value::Object(o))) => o,
        Some(Ok(_)) => return fail(400, "Input should be a valid dictionary or object to extract fields from"),
        Some(Err(e)) => return fail(400, &format!("The request body is not valid JSON: {e}")),
        None => return fail(400, "The request body is not valid JSON: empty body"),
    };
    let plan = match validate(body) {
        Ok(p) => p,
        Err(msg) => return fail(400, &msg),
    };
    if plan.model.is_empty() || !plan.model.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)) {
        return fail(404, &format!("model: {}", plan.model));
    }
    if stream && f.sse_error {
        return api::injected(sh, f, Dialect::Anthropic, FaultKind::SseError, true);
    }
    sh.stats.served.fetch_add(1, Ordering::Relaxed);
    let answer = Answer { sh, plan: &plan, id: sh.next_id(), input_tokens: (req.body.len() as u64 / 4).max(1) };
    if stream {
        Action::Stream(answer.stream(f))
    } else {
        Action::Respond(answer.json())
    }
}

// ---------------------------------------------------------------- validation

type V<T> = Result<T, String>;

/// What a valid request asks for.
struct Plan {
    model: String,
    max_tokens: u64,
    stop_sequences: Vec<String>,
    /// `Some((tool name, forced))` when the answer is a `tool_use`.
    tool: Option<(String, bool)>,
}

fn at(path: &str, key: impl Display) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn fail<T>(path: &str, msg: impl Display) -> V<T> {
    Err(format!("{path}: {msg}"))
}

/// A required key (present; `null` is then a type error, as in pydantic).
fn required<'a>(o: &'a Map<String, Value>, key: &str, path: &str) -> V<&'a Value> {
    o.get(key).map_or_else(|| fail(&at(path, key), "Field required"), Ok)
}

/// An optional key; absent and `null` are both "not given".
fn optional<'a>(o: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    o.get(key).filter(|v| !v.is_null())
}

fn no_extra(o: &Map<String, Value>, allowed: &[&str], path: &str) -> V<()> {
    match o.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => fail(&at(path, k), "Extra inputs are not permitted"),
        None => Ok(()),
    }
}

fn model_obj<'a>(v: &'a Value, path: &str) -> V<&'a Map<String, Value>> {
    v.as_object().map_or_else(|| fail(path, "Input should be a valid dictionary or object to extract fields from"), Ok)
}

fn dict<'a>(v: &'a Value, path: &str) -> V<&'a Map<String, Value>> {
    v.as_object().map_or_else(|| fail(path, "Input should be a valid dictionary"), Ok)
}

fn string<'a>(v: &'a Value, path: &str) -> V<&'a str> {
    v.as_str().map_or_else(|| fail(path, "Input should be a valid string"), Ok)
}

fn list<'a>(v: &'a Value, path: &str) -> V<&'a Vec<Value>> {
    v.as_array().map_or_else(|| fail(path, "Input should be a valid list"), Ok)
}

fn boolean(v: &Value, path: &str) -> V<bool> {
    v.as_bool().map_or_else(|| fail(path, "Input should be a valid boolean"), Ok)
}

fn integer(v: &Value, path: &str) -> V<i64> {
    v.as_i64().map_or_else(|| fail(path, "Input should be a valid integer"), Ok)
}

fn number(v: &Value, path: &str, lo: f64, hi: f64) -> V<f64> {
    let n = v.as_f64().map_or_else(|| fail(path, "Input should be a valid number"), Ok)?;
    if n < lo {
        return fail(path, format!("Input should be greater than or equal to {lo}"));
    }
    if n > hi {
        return fail(path, format!("Input should be less than or equal to {hi}"));
    }
    Ok(n)
}

/// pydantic's rendering of a literal set: `'a'`, `'a' or 'b'`, `'a', 'b' or 'c'`.
fn expected(options: &[&str]) -> String {
    let quoted: Vec<String> = options.iter().map(|o| format!("'{o}'")).collect();
    match quoted.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    }
}

fn literal<'a>(v: &'a Value, path: &str, options: &[&str]) -> V<&'a str> {
    match v.as_str() {
        Some(s) if options.contains(&s) => Ok(s),
        _ => fail(path, format!("Input should be {}", expected(options))),
    }
}

/// The `type` discriminator of a tagged union.
fn tag<'a>(o: &'a Map<String, Value>, path: &str, tags: &[&str]) -> V<&'a str> {
    let Some(t) = o.get("type") else {
        return fail(path, "Unable to extract tag using discriminator 'type'");
    };
    match t.as_str() {
        Some(s) if tags.contains(&s) => Ok(s),
        _ => {
            let shown = t.as_str().map_or_else(|| t.to_string(), str::to_string);
            let all: Vec<String> = tags.iter().map(|t| format!("'{t}'")).collect();
            fail(
                path,
                format!(
                    "Input tag '{shown}' found using 'type' does not match any of the expected tags: {}",
                    all.join(", ")
                ),
            )
        }
    }
}

fn cache_control(o: &Map<String, Value>, path: &str) -> V<()> {
    if let Some(v) = optional(o, "cache_control") {
        let p = at(path, "cache_control");
        let cc = model_obj(v, &p)?;
        literal(required(cc, "type", &p)?, &at(&p, "type"), &["ephemeral"])?;
        if let Some(ttl) = optional(cc, "ttl") {
            literal(ttl, &at(&p, "ttl"), &["5m", "1h"])?;
        }
        no_extra(cc, &["type", "ttl"], &p)?;
    }
    Ok(())
}

fn text_block(o: &Map<String, Value>, path: &str) -> V<()> {
    string(required(o, "text", path)?, &at(path, "text"))?;
    cache_control(o, path)?;
    if let Some(c) = optional(o, "citations") {
        list(c, &at(path, "citations"))?;
    }
    no_extra(o, &["type", "text", "cache_control", "citations"], path)
}

/// `source` of an image or document block.
fn source(o: &Map<String, Value>, path: &str, document: bool) -> V<()> {
    let p = at(path, "source");
    let src = model_obj(required(o, "source", path)?, &p)?;
    let tags: &[&str] = if document { &["base64", "text", "url", "content"] } else { &["base64", "url"] };
    let t = tag(src, &p, tags)?;
    let sp = at(&p, t);
    match t {
        "base64" => {
            let media: &[&str] = if document { &["application/pdf"] } else { IMAGE_MEDIA_TYPES };
            literal(required(src, "media_type", &sp)?, &at(&sp, "media_type"), media)?;
            string(required(src, "data", &sp)?, &at(&sp, "data"))?;
            no_extra(src, &["type", "media_type", "data"], &sp)
        }
        "text" => {
            literal(required(src, "media_type", &sp)?, &at(&sp, "media_type"), &["text/plain"])?;
            string(required(src, "data", &sp)?, &at(&sp, "data"))?;
            no_extra(src, &["type", "media_type", "data"], &sp)
        }
        "url" => {
            string(required(src, "url", &sp)?, &at(&sp, "url"))?;
            no_extra(src, &["type", "url"], &sp)
        }
        _ => {
            let c = required(src, "content", &sp)?;
            if !c.is_string() {
                for (k, b) in list(c, &at(&sp, "content"))?.iter().enumerate() {
                    let bp = at(&at(&sp, "content"), k);
                    let bo = model_obj(b, &bp)?;
                    let bt = tag(bo, &bp, &["text", "image"])?;
                    block(bo, &at(&bp, bt), bt)?;
                }
            }
            no_extra(src, &["type", "content"], &sp)
        }
    }
}

/// Per-type checks of one content block (`path` already ends with the tag, pydantic-style:
/// `messages.1.content.0.tool_use`).
fn block(o: &Map<String, Value>, path: &str, t: &str) -> V<()> {
    match t {
        "text" => text_block(o, path),
        "image" => {
            source(o, path, false)?;
            cache_control(o, path)?;
            no_extra(o, &["type", "source", "cache_control"], path)
        }
        "document" => {
            source(o, path, true)?;
            cache_control(o, path)?;
            for k in ["title", "context"] {
                if let Some(v) = optional(o, k) {
                    string(v, &at(path, k))?;
                }
            }
            no_extra(o, &["type", "source", "cache_control", "citations", "context", "title"], path)
        }
        "search_result" => {
            string(required(o, "source", path)?, &at(path, "source"))?;
            string(required(o, "title", path)?, &at(path, "title"))?;
            for (k, b) in list(required(o, "content", path)?, &at(path, "content"))?.iter().enumerate() {
                let bp = at(&at(path, "content"), k);
                let bo = model_obj(b, &bp)?;
                literal(required(bo, "type", &bp)?, &at(&bp, "type"), &["text"])?;
                text_block(bo, &bp)?;
            }
            cache_control(o, path)?;
            no_extra(o, &["type", "source", "title", "content", "cache_control", "citations"], path)
        }
        "thinking" => {
            string(required(o, "thinking", path)?, &at(path, "thinking"))?;
            string(required(o, "signature", path)?, &at(path, "signature"))?;
            no_extra(o, &["type", "thinking", "signature"], path)
        }
        "redacted_thinking" => {
            string(required(o, "data", path)?, &at(path, "data"))?;
            no_extra(o, &["type", "data"], path)
        }
        "tool_use" => {
            string(required(o, "id", path)?, &at(path, "id"))?;
            string(required(o, "name", path)?, &at(path, "name"))?;
            dict(required(o, "input", path)?, &at(path, "input"))?;
            cache_control(o, path)?;
            no_extra(o, &["type", "id", "name", "input", "cache_control", "caller"], path)
        }
        _ => {
            // tool_result
            string(required(o, "tool_use_id", path)?, &at(path, "tool_use_id"))?;
            if let Some(c) = optional(o, "content") {
                if !c.is_string() {
                    let cp = at(path, "content");
                    for (k, b) in list(c, &cp)?.iter().enumerate() {
                        let bp = at(&cp, k);
                        let bo = model_obj(b, &bp)?;
                        let bt = tag(bo, &bp, TOOL_RESULT_TAGS)?;
                        block(bo, &at(&bp, bt), bt)?;
                    }
                }
            }
            if let Some(e) = optional(o, "is_error") {
                boolean(e, &at(path, "is_error"))?;
            }
            cache_control(o, path)?;
            no_extra(o, &["type", "tool_use_id", "content", "is_error", "cache_control"], path)
        }
    }
}

/// One message's content as the semantic checks see it.
#[derive(Default)]
struct Msg<'a> {
    role: &'a str,
    /// `content` was a string.
    plain: bool,
    /// Texts of the string content / `text` blocks, in order.
    texts: Vec<&'a str>,
    /// `(block index, id)` of `tool_use` blocks.
    tool_uses: Vec<(usize, &'a str)>,
    /// `(block index, tool_use_id)` of `tool_result` blocks.
    tool_results: Vec<(usize, &'a str)>,
    blocks: usize,
    /// The last block is a text block (or the content is a string).
    ends_with_text: bool,
}

fn message(v: &Value, i: usize) -> V<Msg<'_>> {
    let path = format!("messages.{i}");
    let o = model_obj(v, &path)?;
    let role = required(o, "role", &path)?;
    if role.as_str() == Some("system") {
        return Err("messages: Unexpected role \"system\". The Messages API accepts a top-level `system` parameter, \
                    not \"system\" as an input message role."
            .into());
    }
    let role = literal(role, &at(&path, "role"), &["user", "assistant"])?;
    let content = required(o, "content", &path)?;
    let mut m = Msg { role, ..Msg::default() };
    if let Some(s) = content.as_str() {
        m.plain = true;
        m.texts.push(s);
        m.blocks = usize::from(!s.is_empty());
        m.ends_with_text = true;
    } else {
        let cp = at(&path, "content");
        let blocks = list(content, &cp)?;
        m.blocks = blocks.len();
        for (j, b) in blocks.iter().enumerate() {
            let bp = at(&cp, j);
            let bo = model_obj(b, &bp)?;
            let t = tag(bo, &bp, BLOCK_TAGS)?;
            block(bo, &at(&bp, t), t)?;
            let s = |k: &str| bo.get(k).and_then(Value::as_str).unwrap_or_default();
            match t {
                "text" => m.texts.push(s("text")),
                "tool_use" => m.tool_uses.push((j, s("id"))),
                "tool_result" => m.tool_results.push((j, s("tool_use_id"))),
                _ => {}
            }
            m.ends_with_text = t == "text";
        }
    }
    no_extra(o, &["role", "content"], &path)?;
    Ok(m)
}

fn system(v: &Value) -> V<()> {
    if v.is_string() {
        return Ok(());
    }
    for (k, b) in list(v, "system")?.iter().enumerate() {
        let p = format!("system.{k}");
        let o = model_obj(b, &p)?;
        literal(required(o, "type", &p)?, &at(&p, "type"), &["text"])?;
        text_block(o, &p)?;
        if o.get("text").and_then(Value::as_str).is_some_and(str::is_empty) {
            return Err("system: text content blocks must be non-empty".into());
        }
    }
    Ok(())
}

/// Validates `tools`; returns the tool names in order.
fn tools(v: &Value) -> V<Vec<&str>> {
    let mut names = Vec::new();
    for (k, t) in list(v, "tools")?.iter().enumerate() {
        let p = format!("tools.{k}");
        let o = model_obj(t, &p)?;
        let kind = match o.get("type") {
            None | Some(Value::Null) => "custom",
            Some(_) => tag(o, &p, TOOL_TAGS)?,
        };
        let tp = at(&p, kind);
        let name = string(required(o, "name", &tp)?, &at(&tp, "name"))?;
        if kind == "custom" {
            let ok = (1..=128).contains(&name.len())
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            if !ok {
                return fail(&at(&tp, "name"), "String should match pattern '^[a-zA-Z0-9_-]{1,128}$'");
            }
            let sp = at(&tp, "input_schema");
            let schema = dict(required(o, "input_schema", &tp)?, &sp)?;
            literal(required(schema, "type", &sp)?, &at(&sp, "type"), &["object"])?;
            if let Some(d) = optional(o, "description") {
                string(d, &at(&tp, "description"))?;
            }
            cache_control(o, &tp)?;
            no_extra(o, CUSTOM_TOOL_KEYS, &tp)?;
        }
        names.push(name);
    }
    let mut seen = std::collections::HashSet::new();
    if !names.iter().all(|n| seen.insert(*n)) {
        return Err("tools: Tool names must be unique.".into());
    }
    Ok(names)
}

/// Validates `tool_choice`; returns `(type, name)`.
fn tool_choice(v: &Value) -> V<(&str, Option<&str>)> {
    let o = model_obj(v, "tool_choice")?;
    let t = tag(o, "tool_choice", &["auto", "any", "tool", "none"])?;
    let p = at("tool_choice", t);
    let mut name = None;
    if t == "tool" {
        name = Some(string(required(o, "name", &p)?, &at(&p, "name"))?);
    }
    if t != "none" {
        if let Some(d) = optional(o, "disable_parallel_tool_use") {
            boolean(d, &at(&p, "disable_parallel_tool_use"))?;
        }
    }
    let allowed: &[&str] = match t {
        "tool" => &["type", "name", "disable_parallel_tool_use"],
        "none" => &["type"],
        _ => &["type", "disable_parallel_tool_use"],
    };
    no_extra(o, allowed, &p)?;
    Ok((t, name))
}

fn validate(body: &Map<String, Value>) -> V<Plan> {
    // Structure, in field order (pydantic reports missing/mistyped fields before extras).
    let model = string(required(body, "model", "")?, "model")?.to_string();
    let max_tokens = integer(required(body, "max_tokens", "")?, "max_tokens")?;
    if max_tokens < 1 {
        return fail("max_tokens", "Input should be greater than or equal to 1");
    }
    let msgs = list(required(body, "messages", "")?, "messages")?;
    let msgs: Vec<Msg> = msgs.iter().enumerate().map(|(i, m)| message(m, i)).collect::<V<_>>()?;

    cache_control(body, "")?;
    for k in ["container", "inference_geo"] {
        if let Some(v) = optional(body, k) {
            string(v, k)?;
        }
    }
    if let Some(v) = optional(body, "metadata") {
        let o = model_obj(v, "metadata")?;
        if let Some(u) = optional(o, "user_id") {
            string(u, "metadata.user_id")?;
        }
        no_extra(o, &["user_id"], "metadata")?;
    }
    if let Some(v) = optional(body, "output_config") {
        model_obj(v, "output_config")?;
    }
    if let Some(v) = optional(body, "service_tier") {
        literal(v, "service_tier", &["auto", "standard_only"])?;
    }
    let mut stop_sequences = Vec::new();
    if let Some(v) = optional(body, "stop_sequences") {
        for (k, s) in list(v, "stop_sequences")?.iter().enumerate() {
            stop_sequences.push(string(s, &format!("stop_sequences.{k}"))?.to_string());
        }
    }
    if let Some(v) = optional(body, "stream") {
        boolean(v, "stream")?;
    }
    if let Some(v) = optional(body, "system") {
        system(v)?;
    }
    if let Some(v) = optional(body, "temperature") {
        number(v, "temperature", 0.0, 1.0)?;
    }
    let mut budget = None;
    if let Some(v) = optional(body, "thinking") {
        let o = model_obj(v, "thinking")?;
        let t = tag(o, "thinking", &["enabled", "disabled", "adaptive"])?;
        let p = at("thinking", t);
        if t == "enabled" {
            let b = integer(required(o, "budget_tokens", &p)?, &at(&p, "budget_tokens"))?;
            if b < 1024 {
                return fail(&at(&p, "budget_tokens"), "Input should be greater than or equal to 1024");
            }
            budget = Some(b);
        }
        if t != "disabled" {
            if let Some(d) = optional(o, "display") {
                literal(d, &at(&p, "display"), &["summarized", "omitted"])?;
            }
        }
        no_extra(o, if t == "disabled" { &["type"] } else { &["type", "budget_tokens", "display"] }, &p)?;
    }
    let choice = optional(body, "tool_choice").map(tool_choice).transpose()?;
    let tool_names = optional(body, "tools").map(tools).transpose()?.unwrap_or_default();
    if let Some(v) = optional(body, "top_k") {
        if integer(v, "top_k")? < 0 {
            return fail("top_k", "Input should be greater than or equal to 0");
        }
    }
    if let Some(v) = optional(body, "top_p") {
        number(v, "top_p", 0.0, 1.0)?;
    }
    no_extra(body, TOP_LEVEL, "")?;

    // Semantics.
    if msgs.is_empty() {
        return Err("messages: at least one message is required".into());
    }
    if msgs.first().is_some_and(|m| m.role != "user") {
        return Err("messages: first message must use the \"user\" role".into());
    }
    for w in msgs.windows(2) {
        if let [a, b] = w {
            if a.role == b.role {
                return Err(format!(
                    "messages: roles must alternate between \"user\" and \"assistant\", but found multiple \"{}\" roles in a row",
                    a.role
                ));
            }
        }
    }
    let last = msgs.len() - 1;
    for (i, m) in msgs.iter().enumerate() {
        let final_assistant = i == last && m.role == "assistant";
        if m.blocks == 0 && !final_assistant {
            return Err(format!(
                "messages.{i}: all messages must have non-empty content except for the optional final assistant message"
            ));
        }
        if !(m.plain && final_assistant) {
            if m.texts.iter().any(|t| t.is_empty()) {
                return Err("messages: text content blocks must be non-empty".into());
            }
            if m.texts.iter().any(|t| t.trim().is_empty()) {
                return Err("messages: text content blocks must contain non-whitespace text".into());
            }
        }
        for &(j, _) in &m.tool_uses {
            if m.role != "assistant" {
                return Err(format!("messages.{i}.content.{j}: `tool_use` blocks can only be in `assistant` messages"));
            }
        }
        for &(j, _) in &m.tool_results {
            if m.role != "user" {
                return Err(format!("messages.{i}.content.{j}: `tool_result` blocks can only be in `user` messages"));
            }
        }
    }
    for (i, m) in msgs.iter().enumerate() {
        let prev_uses: Vec<&str> = i
            .checked_sub(1)
            .and_then(|p| msgs.get(p))
            .map(|p| p.tool_uses.iter().map(|u| u.1).collect())
            .unwrap_or_default();
        if let Some(&(j, id)) = m.tool_results.iter().find(|r| !prev_uses.contains(&r.1)) {
            return Err(format!(
                "messages.{i}.content.{j}: unexpected `tool_use_id` found in `tool_result` blocks: {id}. \
                 Each `tool_result` block must have a corresponding `tool_use` block in the previous message."
            ));
        }
        let answered: Vec<&str> =
            msgs.get(i + 1).map(|n| n.tool_results.iter().map(|r| r.1).collect()).unwrap_or_default();
        let missing: Vec<&str> = m.tool_uses.iter().map(|u| u.1).filter(|id| !answered.contains(id)).collect();
        if !missing.is_empty() {
            return Err(format!(
                "messages.{i}: `tool_use` ids were found without `tool_result` blocks immediately after: {}. \
                 Each `tool_use` block must have a corresponding `tool_result` block in the next message.",
                missing.join(", ")
            ));
        }
    }
    if let Some(m) = msgs.last().filter(|m| m.role == "assistant" && m.ends_with_text) {
        if m.texts.last().is_some_and(|t| t.ends_with(char::is_whitespace)) {
            return Err("messages: final assistant content cannot end with trailing whitespace".into());
        }
    }
    if choice.is_some_and(|c| c.0 != "none") && tool_names.is_empty() {
        return Err("tool_choice may only be specified while providing tools.".into());
    }
    if let Some(b) = budget {
        if max_tokens <= b {
            return Err("`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our documentation at \
                        https://docs.claude.com/en/docs/build-with-claude/extended-thinking#max-tokens-and-context-window-size"
                .into());
        }
    }

    // The answer: a tool call when tools are given and either forced by `tool_choice`
    // (`any`/`tool`) or, under `auto`, the last user message's text mentions "weather".
    let tool = match (tool_names.first(), choice) {
        (None, _) | (_, Some(("none", _))) => None,
        (Some(&first), Some(("tool", name))) => Some((name.unwrap_or(first).to_string(), true)),
        (Some(&first), Some(("any", _))) => Some((first.to_string(), true)),
        (Some(&first), _) => {
            let asks = msgs
                .iter()
                .rev()
                .find(|m| m.role == "user")
                .is_some_and(|m| m.texts.iter().any(|t| t.to_ascii_lowercase().contains("weather")));
            asks.then(|| (first.to_string(), false))
        }
    };
    Ok(Plan { model, max_tokens: u64::try_from(max_tokens).unwrap_or(1), stop_sequences, tool })
}

// ---------------------------------------------------------------- answers

struct Answer<'a> {
    sh: &'a Shared,
    plan: &'a Plan,
    id: u64,
    input_tokens: u64,
}

/// The text actually "generated" from `tokens` under `max_tokens` and `stop_sequences`:
/// (pieces, stop_reason, stop_sequence).
fn generate(tokens: &[String], max_tokens: u64, stops: &[String]) -> (Vec<String>, &'static str, Option<String>) {
    let limit = usize::try_from(max_tokens).unwrap_or(usize::MAX);
    let mut reason = "end_turn";
    let mut pieces: Vec<String> = tokens.iter().take(limit).cloned().collect();
    if tokens.len() > limit {
        reason = "max_tokens";
    }
    let full: String = pieces.concat();
    let hit = stops.iter().filter(|s| !s.is_empty()).filter_map(|s| full.find(s.as_str()).map(|p| (p, s))).min();
    let mut stop_sequence = None;
    if let Some((cut, s)) = hit {
        reason = "stop_sequence";
        stop_sequence = Some(s.clone());
        let mut kept = Vec::new();
        let mut offset = 0;
        for p in pieces {
            if offset >= cut {
                break;
            }
            let take = (cut - offset).min(p.len());
            if let Some(head) = p.get(..take).filter(|h| !h.is_empty()) {
                kept.push(head.to_string());
            }
            offset += p.len();
        }
        pieces = kept;
    }
    (pieces, reason, stop_sequence)
}

impl Answer<'_> {
    fn headers(&self) -> Vec<(String, String)> {
        vec![
            ("x-mock-backend".into(), self.sh.name.clone()),
            ("x-mock-model".into(), self.plan.model.clone()),
            ("request-id".into(), format!("req_mock_{:08}", self.id)),
        ]
    }

    fn msg_id(&self) -> String {
        format!("msg_mock_{:08}", self.id)
    }

    fn tool_id(&self) -> String {
        format!("toolu_mock_{:08}", self.id)
    }

    fn usage(&self, output_tokens: u64) -> Value {
        json!({"input_tokens": self.input_tokens, "output_tokens": output_tokens,
               "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "service_tier": "standard"})
    }

    fn message(&self, content: Value, stop_reason: Option<&str>, stop_sequence: Option<&str>, output: u64) -> Value {
        json!({
            "id": self.msg_id(),
            "type": "message",
            "role": "assistant",
            "model": self.plan.model,
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": stop_sequence,
            "usage": self.usage(output),
        })
    }

    fn json(&self) -> Response {
        let name = &self.sh.name;
        let v = match &self.plan.tool {
            Some((tool, forced)) => {
                let mut content = Vec::new();
                if !forced {
                    content.push(json!({"type": "text", "text": format!("Hello from {name}")}));
                }
                let input: Value = serde_json::from_str(TOOL_INPUT).unwrap_or_default();
                content.push(json!({"type": "tool_use", "id": self.tool_id(), "name": tool, "input": input}));
                self.message(Value::Array(content), Some("tool_use"), None, 8)
            }
            None => {
                let tokens = ["Hello".to_string(), " from".to_string(), format!(" {name}")];
                let (pieces, reason, seq) = generate(&tokens, self.plan.max_tokens, &self.plan.stop_sequences);
                let text = pieces.concat();
                let content = if text.is_empty() { json!([]) } else { json!([{"type": "text", "text": text}]) };
                self.message(content, Some(reason), seq.as_deref(), pieces.len() as u64)
            }
        };
        api::json_response(200, self.headers(), &v)
    }

    fn stream(&self, f: &Faults) -> Stream {
        let gap = f.chunk_delay_ms;
        let mut events: Vec<(u64, Vec<u8>)> = Vec::new();
        let start = self.message(json!([]), None, None, 1);
        events.push((0, event("message_start", &json!({"type": "message_start", "message": start}))));
        let mut index = 0u32;
        let (mut output, reason, seq) = match &self.plan.tool {
            Some((_, true)) => (0, "tool_use", None),
            _ => {
                let tokens: Vec<String> = (0..f.chunks).map(|i| format!("tok{i} ")).collect();
                let (pieces, reason, seq) = match self.plan.tool {
                    Some(_) => (tokens, "tool_use", None),
                    None => generate(&tokens, self.plan.max_tokens, &self.plan.stop_sequences),
                };
                events.push((
                    0,
                    event(
                        "content_block_start",
                        &json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
                    ),
                ));
                events.push((0, event("ping", &json!({"type": "ping"}))));
                for (i, p) in pieces.iter().enumerate() {
                    let d =
                        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}});
                    events.push((if i == 0 { 0 } else { gap }, event("content_block_delta", &d)));
                }
                events.push((0, event("content_block_stop", &json!({"type": "content_block_stop", "index": 0}))));
                index = 1;
                (pieces.len() as u64, reason, seq)
            }
        };
        if let Some((tool, forced)) = &self.plan.tool {
            let start = json!({"type": "content_block_start", "index": index,
                               "content_block": {"type": "tool_use", "id": self.tool_id(), "name": tool, "input": {}}});
            events.push((0, event("content_block_start", &start)));
            if *forced {
                events.push((0, event("ping", &json!({"type": "ping"}))));
            }
            let fragments = ["", "{\"city\"", ": \"Par", "is\"}"];
            for (i, frag) in fragments.iter().enumerate() {
                let d = json!({"type": "content_block_delta", "index": index,
                               "delta": {"type": "input_json_delta", "partial_json": frag}});
                events.push((if i == 0 { 0 } else { gap }, event("content_block_delta", &d)));
            }
            events.push((0, event("content_block_stop", &json!({"type": "content_block_stop", "index": index}))));
            output += 5;
        }
        let delta = json!({"type": "message_delta", "delta": {"stop_reason": reason, "stop_sequence": seq},
                           "usage": {"output_tokens": output}});
        events.push((0, event("message_delta", &delta)));
        events.push((0, event("message_stop", &json!({"type": "message_stop"}))));
        let mut headers = vec![
            ("content-type".to_string(), "text/event-stream".to_string()),
            ("cache-control".into(), "no-cache".into()),
        ];
        headers.extend(self.headers());
        Stream { headers, events, fault: false }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(v: Value) -> Plan {
        validate(v.as_object().unwrap()).unwrap_or_else(|e| panic!("{v}: {e}"))
    }

    #[test]
    fn generation_honours_max_tokens_and_stop_sequences() {
        let t: Vec<String> = ["Hello", " from", " a"].iter().map(|s| s.to_string()).collect();
        assert_eq!(generate(&t, 10, &[]), (t.clone(), "end_turn", None));
        assert_eq!(generate(&t, 1, &[]).0, vec!["Hello"]);
        assert_eq!(generate(&t, 1, &[]).1, "max_tokens");
        let (p, r, s) = generate(&t, 10, &["ro".into(), "zz".into()]);
        assert_eq!((p, r, s.as_deref()), (vec!["Hello".to_string(), " f".into()], "stop_sequence", Some("ro")));
        assert!(generate(&t, 10, &["Hel".into()]).0.is_empty());
    }

    #[test]
    fn tool_trigger() {
        let tools = json!([{"name": "get_weather", "input_schema": {"type": "object"}}, {"name": "b", "input_schema": {"type": "object"}}]);
        let body = |text: &str, choice: Value| {
            let mut b = json!({"model": "m", "max_tokens": 5, "tools": tools,
                               "messages": [{"role": "user", "content": text}]});
            if !choice.is_null() {
                b["tool_choice"] = choice;
            }
            b
        };
        assert_eq!(ok(body("What's the Weather?", Value::Null)).tool, Some(("get_weather".into(), false)));
        assert_eq!(ok(body("hi", Value::Null)).tool, None);
        assert_eq!(ok(body("hi", json!({"type": "any"}))).tool, Some(("get_weather".into(), true)));
        assert_eq!(ok(body("hi", json!({"type": "tool", "name": "b"}))).tool, Some(("b".into(), true)));
        assert_eq!(ok(body("weather", json!({"type": "none"}))).tool, None);
        assert_eq!(
            ok(json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "weather"}]})).tool,
            None
        );
    }

    #[test]
    fn expected_literals() {
        assert_eq!(expected(&["a"]), "'a'");
        assert_eq!(expected(&["a", "b"]), "'a' or 'b'");
        assert_eq!(expected(&["a", "b", "c"]), "'a', 'b' or 'c'");
    }
}
