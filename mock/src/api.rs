//! Fault settings, stats, and the request handlers (OpenAI-style API + control API).
//! The Anthropic (`/v1/messages`) and Azure OpenAI (`/openai/deployments/…`) dialects live in
//! `anthropic.rs` / `azure.rs`; they share the faults, stats and journal here.

use crate::http::Request;
use crate::{anthropic, azure, record};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

// ---------------------------------------------------------------- faults

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    Status(u16),
    Reset,
    Hang,
    SseError,
}

impl FaultKind {
    pub fn parse(s: &str) -> Result<FaultKind, String> {
        let s = s.trim();
        match s.to_ascii_lowercase().as_str() {
            "reset" => Ok(FaultKind::Reset),
            "hang" => Ok(FaultKind::Hang),
            "sse-error" | "sse_error" => Ok(FaultKind::SseError),
            _ => parse_status(s).map(FaultKind::Status),
        }
    }

    fn label(self) -> String {
        match self {
            FaultKind::Status(c) => c.to_string(),
            FaultKind::Reset => "reset".into(),
            FaultKind::Hang => "hang".into(),
            FaultKind::SseError => "sse-error".into(),
        }
    }
}

pub fn parse_status(s: &str) -> Result<u16, String> {
    match s.trim().parse::<u16>() {
        Ok(c) if (100..=599).contains(&c) => Ok(c),
        _ => Err(format!("invalid status code or fault kind {s:?} (want 100..=599, reset, hang, sse-error)")),
    }
}

#[derive(Clone, Debug)]
pub struct Faults {
    pub status: Option<u16>,
    pub retry_after: u64,
    pub fault_rate: f64,
    pub faults: Vec<FaultKind>,
    pub delay_ms: u64,
    pub hang: bool,
    pub reset: bool,
    pub sse_error: bool,
    pub chunks: u32,
    pub chunk_delay_ms: u64,
    /// Only the first N API requests (since start, reset or a fault change) are subject to
    /// the faults; later ones are served normally. 0: every request.
    pub fail_first: u64,
    /// A successful non-stream JSON answer is padded to at least this many bytes. 0: off.
    pub pad_bytes: u64,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            status: None,
            retry_after: 1,
            fault_rate: 0.0,
            faults: Vec::new(),
            delay_ms: 0,
            hang: false,
            reset: false,
            sse_error: false,
            chunks: 5,
            chunk_delay_ms: 50,
            fail_first: 0,
            pad_bytes: 0,
        }
    }
}

impl Faults {
    pub fn to_json(&self) -> Value {
        json!({
            "status": self.status,
            "retry_after": self.retry_after,
            "fault_rate": self.fault_rate,
            "faults": self.faults.iter().map(|f| f.label()).collect::<Vec<_>>(),
            "delay_ms": self.delay_ms,
            "hang": self.hang,
            "reset": self.reset,
            "sse_error": self.sse_error,
            "chunks": self.chunks,
            "chunk_delay_ms": self.chunk_delay_ms,
            "fail_first": self.fail_first,
            "pad_bytes": self.pad_bytes,
        })
    }

    /// Builds a complete setting from a control-API JSON object; missing or
    /// null keys take their defaults (i.e. are cleared).
    pub fn from_json(v: &Value) -> Result<Faults, String> {
        let obj = v.as_object().ok_or("fault settings must be a JSON object")?;
        let mut f = Faults::default();
        for (k, val) in obj {
            if val.is_null() {
                continue;
            }
            let uint = |what: &str| -> Result<u64, String> {
                val.as_u64().ok_or(format!("{what} must be a non-negative integer"))
            };
            let boolean =
                |what: &str| -> Result<bool, String> { val.as_bool().ok_or(format!("{what} must be a boolean")) };
            match k.as_str() {
                "status" => {
                    let c = uint("status")?;
                    f.status = if c == 0 { None } else { Some(parse_status(&c.to_string())?) };
                }
                "retry_after" => f.retry_after = uint("retry_after")?,
                "fault_rate" => {
                    let r = val.as_f64().ok_or("fault_rate must be a number")?;
                    if !(0.0..=1.0).contains(&r) {
                        return Err("fault_rate must be within 0..=1".into());
                    }
                    f.fault_rate = r;
                }
                "faults" => {
                    let arr = val.as_array().ok_or("faults must be an array")?;
                    f.faults = arr
                        .iter()
                        .map(|e| match e {
                            Value::String(s) => FaultKind::parse(s),
                            Value::Number(n) => FaultKind::parse(&n.to_string()),
                            _ => Err(format!("bad fault entry {e}")),
                        })
                        .collect::<Result<_, _>>()?;
                }
                "delay_ms" => f.delay_ms = uint("delay_ms")?,
                "hang" => f.hang = boolean("hang")?,
                "reset" => f.reset = boolean("reset")?,
                "sse_error" => f.sse_error = boolean("sse_error")?,
                "chunks" => f.chunks = u32::try_from(uint("chunks")?).map_err(|_| "chunks too large")?,
                "chunk_delay_ms" => f.chunk_delay_ms = uint("chunk_delay_ms")?,
                "fail_first" => f.fail_first = uint("fail_first")?,
                "pad_bytes" => f.pad_bytes = check_pad(uint("pad_bytes")?)?,
                "seed" => {
                    uint("seed")?;
                }
                other => return Err(format!("unknown fault setting {other:?}")),
            }
        }
        Ok(f)
    }

    /// Kinds used by `fault_rate` (defaults to a plain 500 when the list is empty).
    fn kinds(&self) -> &[FaultKind] {
        const DEFAULT: &[FaultKind] = &[FaultKind::Status(500)];
        if self.faults.is_empty() {
            DEFAULT
        } else {
            &self.faults
        }
    }
}

/// The largest `pad_bytes` (a padded answer is built in memory).
pub const MAX_PAD_BYTES: u64 = 1 << 30;

pub fn check_pad(n: u64) -> Result<u64, String> {
    if n > MAX_PAD_BYTES {
        Err(format!("pad_bytes must be at most {MAX_PAD_BYTES}"))
    } else {
        Ok(n)
    }
}

/// The JSON answer `v`, serialized, grown to `pad` bytes (exactly, unless it is already
/// longer) by an extra top-level string field `mock_padding` of `x`s.
fn padded_json(mut v: Value, pad: u64) -> Vec<u8> {
    let plain = serde_json::to_vec(&v).unwrap_or_default();
    let want = usize::try_from(pad).unwrap_or(usize::MAX);
    if plain.len() >= want {
        return plain;
    }
    let Some(o) = v.as_object_mut() else { return plain };
    o.insert("mock_padding".into(), Value::String(String::new()));
    let overhead = serde_json::to_vec(&v).map(|b| b.len()).unwrap_or(0);
    let fill = want.saturating_sub(overhead);
    if let Some(o) = v.as_object_mut() {
        o.insert("mock_padding".into(), Value::String("x".repeat(fill)));
    }
    serde_json::to_vec(&v).unwrap_or(plain)
}

// ---------------------------------------------------------------- shared state

#[derive(Default)]
pub struct Stats {
    requests: AtomicU64,
    pub(crate) served: AtomicU64,
    faults: AtomicU64,
    by_model: Mutex<HashMap<String, u64>>,
    by_status: Mutex<BTreeMap<String, u64>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Stats {
    fn outcome(&self, key: &str) {
        *lock(&self.by_status).entry(key.to_string()).or_insert(0) += 1;
    }
}

pub struct Shared {
    pub name: String,
    pub seed: u64,
    pub verbose: bool,
    faults: RwLock<Arc<Faults>>,
    rng: Mutex<u64>,
    pub stats: Stats,
    ids: AtomicU64,
    /// API requests seen since start, reset or the last fault change (for `fail_first`).
    seen: AtomicU64,
    pub(crate) journal: record::Journal,
}

/// splitmix64: turns any seed (including 0) into a good non-zero xorshift state.
fn seed_state(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    if z == 0 {
        0x2545_F491_4F6C_DD1D
    } else {
        z
    }
}

impl Shared {
    pub fn new(name: String, seed: u64, faults: Faults, verbose: bool) -> Shared {
        Shared {
            name,
            seed,
            verbose,
            faults: RwLock::new(Arc::new(faults)),
            rng: Mutex::new(seed_state(seed)),
            stats: Stats::default(),
            ids: AtomicU64::new(1),
            seen: AtomicU64::new(0),
            journal: record::Journal::default(),
        }
    }

    fn faults(&self) -> Arc<Faults> {
        match self.faults.read() {
            Ok(g) => Arc::clone(&g),
            Err(e) => Arc::clone(&e.into_inner()),
        }
    }

    fn set_faults(&self, f: Faults, seed: u64) {
        match self.faults.write() {
            Ok(mut g) => *g = Arc::new(f),
            Err(e) => *e.into_inner() = Arc::new(f),
        }
        *lock(&self.rng) = seed_state(seed);
        self.seen.store(0, Ordering::Relaxed);
    }

    /// xorshift64* -> uniform f64 in [0,1).
    fn next_f64(&self) -> f64 {
        let mut s = lock(&self.rng);
        let mut x = *s;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        *s = x;
        let r = x.wrapping_mul(0x2545_F491_4F6C_DD1D);
        (r >> 11) as f64 / (1u64 << 53) as f64
    }

    pub(crate) fn next_id(&self) -> u64 {
        self.ids.fetch_add(1, Ordering::Relaxed)
    }
}

// ---------------------------------------------------------------- outcomes

pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

pub struct Stream {
    pub headers: Vec<(String, String)>,
    /// (delay before this event in ms, SSE bytes)
    pub events: Vec<(u64, Vec<u8>)>,
    /// Injected sse-error stream (for stats labelling).
    pub fault: bool,
}

pub enum Action {
    Respond(Response),
    Stream(Stream),
    Hang,
    Reset,
}

pub(crate) fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

pub(crate) fn json_response(status: u16, mut headers: Vec<(String, String)>, body: &Value) -> Response {
    headers.insert(0, ("content-type".into(), "application/json".into()));
    Response { status, headers, body: serde_json::to_vec(body).unwrap_or_default() }
}

fn error_type(status: u16) -> &'static str {
    match status {
        400 | 413 | 422 | 431 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        s if s >= 500 => "server_error",
        _ => "api_error",
    }
}

/// OpenAI-style error response.
pub fn error_response(name: &str, status: u16, message: &str, retry_after: Option<u64>) -> Response {
    let mut headers = vec![("x-mock-backend".to_string(), name.to_string())];
    if let Some(ra) = retry_after {
        headers.push(("retry-after".into(), ra.to_string()));
    }
    json_response(status, headers, &json!({"error": {"message": message, "type": error_type(status), "code": status}}))
}

// ---------------------------------------------------------------- dispatch

/// Which provider API a request path belongs to (decides error shapes and handlers).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    OpenAi,
    Anthropic,
    Azure,
}

impl Dialect {
    fn of(path: &str) -> Dialect {
        if path == "/v1/messages" || path.starts_with("/v1/messages/") {
            Dialect::Anthropic
        } else if path == "/openai" || path.starts_with("/openai/") {
            Dialect::Azure
        } else {
            Dialect::OpenAi
        }
    }
}

pub fn handle(sh: &Shared, req: &Request) -> Action {
    if req.path == "/__mock" || req.path.starts_with("/__mock/") {
        return Action::Respond(control(sh, req));
    }
    sh.stats.requests.fetch_add(1, Ordering::Relaxed);
    sh.journal.record(req);
    let dialect = Dialect::of(&req.path);

    // Parse the body once (lazily meaningful only for POST).
    let parsed: Option<Result<Value, serde_json::Error>> =
        (req.method == "POST").then(|| serde_json::from_slice::<Value>(&req.body));
    let body_obj = match &parsed {
        Some(Ok(Value::Object(o))) => Some(o),
        _ => None,
    };
    let mut model = body_obj.and_then(|o| o.get("model")).and_then(Value::as_str);
    if dialect == Dialect::Azure && model.is_none() {
        model = azure::deployment(&req.path); // Azure: the deployment names the model
    }
    let stream = body_obj.and_then(|o| o.get("stream")).and_then(Value::as_bool).unwrap_or(false);
    if let Some(m) = model {
        *lock(&sh.stats.by_model).entry(m.to_string()).or_insert(0) += 1;
    }

    let f = sh.faults();
    let action = decide(sh, req, &f, dialect, parsed.as_ref(), body_obj, model, stream);

    // Accounting + optional logging.
    let outcome = match &action {
        Action::Respond(r) => r.status.to_string(),
        Action::Stream(s) if s.fault => "sse-error".to_string(),
        Action::Stream(_) => "200".to_string(),
        Action::Hang => "hang".into(),
        Action::Reset => "reset".into(),
    };
    sh.stats.outcome(&outcome);
    if sh.verbose {
        eprintln!(
            "[mock {}] {} {} model={} stream={} -> {}",
            sh.name,
            req.method,
            req.path,
            model.unwrap_or("-"),
            stream,
            outcome
        );
    }
    if !matches!(action, Action::Hang | Action::Reset) && f.delay_ms > 0 {
        std::thread::sleep(Duration::from_millis(f.delay_ms));
    }
    action
}

pub(crate) fn injected(sh: &Shared, f: &Faults, dialect: Dialect, kind: FaultKind, stream: bool) -> Action {
    sh.stats.faults.fetch_add(1, Ordering::Relaxed);
    match kind {
        FaultKind::Hang => Action::Hang,
        FaultKind::Reset => Action::Reset,
        FaultKind::SseError if stream && dialect == Dialect::Anthropic => Action::Stream(anthropic::sse_error(sh)),
        FaultKind::SseError if stream => {
            let ev = json!({"error": {
                "message": format!("mock {} injected sse-error", sh.name),
                "type": "server_error",
                "code": "sse_error",
            }});
            Action::Stream(Stream {
                headers: vec![
                    ("content-type".into(), "text/event-stream".into()),
                    ("cache-control".into(), "no-cache".into()),
                    ("x-mock-backend".into(), sh.name.clone()),
                    ("x-mock-fault".into(), "sse-error".into()),
                ],
                events: vec![(0, format!("data: {ev}\n\n").into_bytes())],
                fault: true,
            })
        }
        // sse-error on a non-stream request degrades to an injected 500.
        FaultKind::SseError | FaultKind::Status(_) => {
            let code = match kind {
                FaultKind::Status(c) => c,
                _ => 500,
            };
            let msg = format!("mock {} injected {}", sh.name, code);
            let mut r = match dialect {
                Dialect::OpenAi => {
                    error_response(&sh.name, code, &msg, matches!(code, 429 | 503).then_some(f.retry_after))
                }
                Dialect::Anthropic => anthropic::injected_error(sh, code, &msg, f.retry_after),
                Dialect::Azure => azure::injected_error(sh, code, &msg, f.retry_after),
            };
            r.headers.push(("x-mock-fault".into(), kind.label()));
            Action::Respond(r)
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn decide(
    sh: &Shared,
    req: &Request,
    f: &Faults,
    dialect: Dialect,
    parsed: Option<&Result<Value, serde_json::Error>>,
    body: Option<&Map<String, Value>>,
    model: Option<&str>,
    stream: bool,
) -> Action {
    // 1. Faults (precedence: hang, reset, status, fault_rate), for the first `fail_first`
    // requests only when it is set.
    let faulty = f.fail_first == 0 || sh.seen.fetch_add(1, Ordering::Relaxed) < f.fail_first;
    if faulty && f.hang {
        return injected(sh, f, dialect, FaultKind::Hang, stream);
    }
    if faulty && f.reset {
        return injected(sh, f, dialect, FaultKind::Reset, stream);
    }
    if let (true, Some(code)) = (faulty, f.status) {
        return injected(sh, f, dialect, FaultKind::Status(code), stream);
    }
    if faulty && f.fault_rate > 0.0 && sh.next_f64() < f.fault_rate {
        let kinds = f.kinds();
        let idx = ((sh.next_f64() * kinds.len() as f64) as usize).min(kinds.len().saturating_sub(1));
        if let Some(&k) = kinds.get(idx) {
            return injected(sh, f, dialect, k, stream);
        }
    }

    // 2. Routing.
    match dialect {
        Dialect::Anthropic => return anthropic::handle(sh, req, f, parsed, stream),
        Dialect::Azure => return azure::handle(sh, req, f, parsed, model, stream),
        Dialect::OpenAi => {}
    }
    let name = sh.name.as_str();
    let kind = match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/v1/models") => {
            sh.stats.served.fetch_add(1, Ordering::Relaxed);
            return Action::Respond(json_response(
                200,
                vec![("x-mock-backend".into(), name.into())],
                &json!({"object": "list", "data": [{
                    "id": format!("mock-{name}"), "object": "model", "created": 0, "owned_by": "mock"
                }]}),
            ));
        }
        ("POST", "/v1/chat/completions") => Endpoint::Chat,
        ("POST", "/v1/completions") => Endpoint::Completions,
        ("POST", "/v1/embeddings") => Endpoint::Embeddings,
        ("POST", "/v1/responses") => Endpoint::Responses,
        (m, p) => {
            return Action::Respond(error_response(name, 404, &format!("mock {name}: no route for {m} {p}"), None))
        }
    };

    // 3. Validation.
    let body = match (parsed, body) {
        (_, Some(b)) => b,
        (Some(Err(e)), _) => {
            return Action::Respond(error_response(name, 400, &format!("invalid JSON body: {e}"), None))
        }
        _ => return Action::Respond(error_response(name, 400, "request body must be a JSON object", None)),
    };
    let Some(model) = model else {
        return Action::Respond(error_response(name, 400, "missing required parameter: 'model'", None));
    };

    let stream = stream && kind != Endpoint::Embeddings;
    if faulty && stream && f.sse_error {
        return injected(sh, f, dialect, FaultKind::SseError, true);
    }
    sh.stats.served.fetch_add(1, Ordering::Relaxed);
    let ctx = Ctx { sh, req, body, model, id: sh.next_id(), created: now_secs() };
    if stream {
        Action::Stream(ctx.stream(kind, f))
    } else {
        Action::Respond(ctx.respond(kind, f.pad_bytes))
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    Chat,
    Completions,
    Embeddings,
    Responses,
}

pub(crate) struct Ctx<'a> {
    pub(crate) sh: &'a Shared,
    pub(crate) req: &'a Request,
    pub(crate) body: &'a Map<String, Value>,
    pub(crate) model: &'a str,
    pub(crate) id: u64,
    pub(crate) created: u64,
}

impl Ctx<'_> {
    fn mock_field(&self) -> Value {
        let r = self.req;
        let mut headers = Map::new();
        for (n, _) in &r.headers {
            if !headers.contains_key(n) {
                headers.insert(n.clone(), Value::from(r.header_joined(n).unwrap_or_default()));
            }
        }
        json!({
            "backend": self.sh.name,
            "model": self.model,
            "path": r.path,
            "authorization": r.header("authorization"),
            "x_api_key": r.header("x-api-key"),
            "anthropic_version": r.header("anthropic-version"),
            "host": r.header("host").or_else(|| r.header(":authority")),
            "body_bytes": r.body.len(),
            "headers": headers,
        })
    }

    fn headers(&self) -> Vec<(String, String)> {
        vec![("x-mock-backend".into(), self.sh.name.clone()), ("x-mock-model".into(), self.model.to_string())]
    }

    fn text(&self) -> String {
        format!("Hello from {}", self.sh.name)
    }

    fn prompt_tokens(&self) -> u64 {
        (self.req.body.len() as u64 / 4).max(1)
    }

    pub(crate) fn respond(&self, kind: Endpoint, pad_bytes: u64) -> Response {
        let (pt, ct) = (self.prompt_tokens(), 3u64);
        let usage = json!({"prompt_tokens": pt, "completion_tokens": ct, "total_tokens": pt + ct});
        let mut v = match kind {
            Endpoint::Chat => json!({
                "id": format!("chatcmpl-mock-{}", self.id),
                "object": "chat.completion",
                "created": self.created,
                "model": self.model,
                "choices": [{
                    "index": 0,
                    "message": {"role": "assistant", "content": self.text()},
                    "logprobs": null,
                    "finish_reason": "stop",
                }],
                "usage": usage,
                "system_fingerprint": "mock",
            }),
            Endpoint::Completions => json!({
                "id": format!("cmpl-mock-{}", self.id),
                "object": "text_completion",
                "created": self.created,
                "model": self.model,
                "choices": [{"index": 0, "text": self.text(), "logprobs": null, "finish_reason": "stop"}],
                "usage": usage,
            }),
            Endpoint::Embeddings => {
                let n = match self.body.get("input") {
                    Some(Value::Array(a)) if a.iter().all(|x| x.is_number()) => 1,
                    Some(Value::Array(a)) => a.len(),
                    _ => 1,
                };
                let data: Vec<Value> = (0..n)
                    .map(|i| {
                        let b = i as f64 * 0.01;
                        json!({"object": "embedding", "index": i,
                               "embedding": [0.1 + b, 0.2 + b, 0.3 + b, 0.4 + b]})
                    })
                    .collect();
                json!({"object": "list", "data": data, "model": self.model,
                       "usage": {"prompt_tokens": pt, "total_tokens": pt}})
            }
            Endpoint::Responses => json!({
                "id": format!("resp_mock_{}", self.id),
                "object": "response",
                "created_at": self.created,
                "status": "completed",
                "model": self.model,
                "output": [{
                    "type": "message",
                    "id": format!("msg_mock_{}", self.id),
                    "status": "completed",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": self.text(), "annotations": []}],
                }],
                "usage": {"input_tokens": pt, "output_tokens": ct, "total_tokens": pt + ct},
            }),
        };
        if let Some(o) = v.as_object_mut() {
            o.insert("mock".into(), self.mock_field());
        }
        if pad_bytes > 0 {
            let mut headers = self.headers();
            headers.insert(0, ("content-type".into(), "application/json".into()));
            return Response { status: 200, headers, body: padded_json(v, pad_bytes) };
        }
        json_response(200, self.headers(), &v)
    }

    pub(crate) fn stream(&self, kind: Endpoint, f: &Faults) -> Stream {
        let n = f.chunks;
        let gap = f.chunk_delay_ms;
        let mut events: Vec<(u64, Vec<u8>)> = Vec::with_capacity(n as usize + 3);
        let data = |v: &Value| format!("data: {v}\n\n").into_bytes();
        let delay = |i: u32| if i == 0 { 0 } else { gap };
        let mock = self.mock_field();
        match kind {
            Endpoint::Chat | Endpoint::Completions => {
                let chat = kind == Endpoint::Chat;
                for i in 0..n {
                    let last = i + 1 == n;
                    let finish = if last { json!("stop") } else { Value::Null };
                    let tok = format!("tok{i} ");
                    let mut v = if chat {
                        let mut delta = json!({"content": tok});
                        if i == 0 {
                            if let Some(d) = delta.as_object_mut() {
                                d.insert("role".into(), json!("assistant"));
                            }
                        }
                        json!({"id": format!("chatcmpl-mock-{}", self.id), "object": "chat.completion.chunk",
                               "created": self.created, "model": self.model,
                               "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]})
                    } else {
                        json!({"id": format!("cmpl-mock-{}", self.id), "object": "text_completion",
                               "created": self.created, "model": self.model,
                               "choices": [{"index": 0, "text": tok, "logprobs": null, "finish_reason": finish}]})
                    };
                    if i == 0 {
                        if let Some(o) = v.as_object_mut() {
                            o.insert("mock".into(), mock.clone());
                        }
                    }
                    events.push((delay(i), data(&v)));
                }
                let include_usage = self
                    .body
                    .get("stream_options")
                    .and_then(|o| o.get("include_usage"))
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                if include_usage {
                    let pt = self.prompt_tokens();
                    let ct = u64::from(n);
                    let obj = if chat { "chat.completion.chunk" } else { "text_completion" };
                    events.push((
                        0,
                        data(&json!({"id": format!("chatcmpl-mock-{}", self.id), "object": obj,
                                     "created": self.created, "model": self.model, "choices": [],
                                     "usage": {"prompt_tokens": pt, "completion_tokens": ct, "total_tokens": pt + ct}})),
                    ));
                }
                events.push((0, b"data: [DONE]\n\n".to_vec()));
            }
            Endpoint::Responses | Endpoint::Embeddings => {
                let ev = |name: &str, v: &Value| format!("event: {name}\ndata: {v}\n\n").into_bytes();
                let rid = format!("resp_mock_{}", self.id);
                let mid = format!("msg_mock_{}", self.id);
                let base = |status: &str, text: Option<&str>| {
                    let output = match text {
                        Some(t) => {
                            json!([{"type": "message", "id": mid, "status": "completed", "role": "assistant",
                                           "content": [{"type": "output_text", "text": t, "annotations": []}]}])
                        }
                        None => json!([]),
                    };
                    json!({"id": rid, "object": "response", "created_at": self.created,
                           "status": status, "model": self.model, "output": output})
                };
                let mut created = json!({"type": "response.created", "response": base("in_progress", None)});
                if let Some(o) = created.as_object_mut() {
                    o.insert("mock".into(), mock);
                }
                events.push((0, ev("response.created", &created)));
                let mut full = String::new();
                for i in 0..n {
                    let tok = format!("tok{i} ");
                    full.push_str(&tok);
                    events.push((
                        delay(i),
                        ev(
                            "response.output_text.delta",
                            &json!({"type": "response.output_text.delta", "item_id": mid,
                                    "output_index": 0, "content_index": 0, "delta": tok}),
                        ),
                    ));
                }
                events.push((
                    0,
                    ev(
                        "response.completed",
                        &json!({"type": "response.completed", "response": base("completed", Some(&full))}),
                    ),
                ));
            }
        }
        let mut headers = vec![
            ("content-type".to_string(), "text/event-stream".to_string()),
            ("cache-control".to_string(), "no-cache".to_string()),
        ];
        headers.extend(self.headers());
        Stream { headers, events, fault: false }
    }
}

// ---------------------------------------------------------------- control API

fn control(sh: &Shared, req: &Request) -> Response {
    let ok = |v: Value| json_response(200, vec![("x-mock-backend".into(), sh.name.clone())], &v);
    match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/__mock/stats") => {
            let s = &sh.stats;
            let by_model: BTreeMap<String, u64> = lock(&s.by_model).iter().map(|(k, v)| (k.clone(), *v)).collect();
            let by_status = lock(&s.by_status).clone();
            ok(json!({
                "name": sh.name,
                "requests": s.requests.load(Ordering::Relaxed),
                "served": s.served.load(Ordering::Relaxed),
                "faults": s.faults.load(Ordering::Relaxed),
                "by_model": by_model,
                "by_status": by_status,
            }))
        }
        ("POST", "/__mock/reset") => {
            let s = &sh.stats;
            // Hold both map locks while zeroing so a concurrent reader sees a consistent reset.
            let mut bm = lock(&s.by_model);
            let mut bs = lock(&s.by_status);
            s.requests.store(0, Ordering::Relaxed);
            s.served.store(0, Ordering::Relaxed);
            s.faults.store(0, Ordering::Relaxed);
            sh.seen.store(0, Ordering::Relaxed);
            bm.clear();
            bs.clear();
            drop((bm, bs));
            sh.journal.clear();
            ok(json!({"ok": true}))
        }
        ("GET", "/__mock/last") => {
            let path = req.query_param("path");
            match sh.journal.last(path.as_deref()) {
                Some(v) => ok(v),
                None => error_response(&sh.name, 404, &format!("mock {}: no request recorded", sh.name), None),
            }
        }
        ("GET", "/__mock/requests") => ok(json!({"requests": sh.journal.all(req.query_param("path").as_deref())})),
        ("GET", "/__mock/faults") => ok(sh.faults().to_json()),
        ("POST", "/__mock/faults") | ("PUT", "/__mock/faults") => {
            let v: Value = match serde_json::from_slice(&req.body) {
                Ok(v) => v,
                Err(e) => return error_response(&sh.name, 400, &format!("invalid JSON body: {e}"), None),
            };
            match Faults::from_json(&v) {
                Ok(f) => {
                    let seed = v.get("seed").and_then(Value::as_u64).unwrap_or(sh.seed);
                    let out = f.to_json();
                    sh.set_faults(f, seed);
                    ok(out)
                }
                Err(e) => error_response(&sh.name, 400, &e, None),
            }
        }
        (m, p) => error_response(&sh.name, 404, &format!("mock {}: no control route for {m} {p}", sh.name), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_json_roundtrip_and_defaults() {
        let f = Faults::from_json(&json!({"status": 503, "faults": ["503", "reset", 429, "sse-error"]})).unwrap();
        assert_eq!(f.status, Some(503));
        assert_eq!(f.chunks, 5);
        assert_eq!(f.faults.len(), 4);
        let back = Faults::from_json(&f.to_json()).unwrap();
        assert_eq!(back.faults, f.faults);
        assert!(Faults::from_json(&json!({"fault_rate": 2})).is_err());
        assert!(Faults::from_json(&json!({"faults": ["boom"]})).is_err());
        assert!(Faults::from_json(&json!({"status": 99})).is_err());
        assert!(Faults::from_json(&json!([])).is_err());
    }

    #[test]
    fn rng_is_deterministic_and_uniformish() {
        let a = Shared::new("a".into(), 7, Faults::default(), false);
        let b = Shared::new("b".into(), 7, Faults::default(), false);
        let xs: Vec<f64> = (0..1000).map(|_| a.next_f64()).collect();
        let ys: Vec<f64> = (0..1000).map(|_| b.next_f64()).collect();
        assert_eq!(xs, ys);
        let below = xs.iter().filter(|&&x| x < 0.3).count();
        assert!((240..=360).contains(&below), "{below}");
        assert!(xs.iter().all(|&x| (0.0..1.0).contains(&x)));
    }
}
