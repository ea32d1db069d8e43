//! The per-request pipeline, free of host calls: classify the request headers, route a
//! complete body to a candidate chain, and build each attempt (cluster, body, headers).

use crate::body::{self, Scan};
use crate::config::{Config, Model, ModelId, Target};
use crate::counter::Tickets;
use crate::error::ApiError;
use crate::policy::{Load, Pick, Source};

/// Request headers the filter owns: whatever a client sends under these names is removed.
pub const INTERNAL_PREFIX: &str = "x-model-workers-";
/// Response headers naming the outcome.
pub const H_MODEL: &str = "x-model-workers-model";
pub const H_WORKER: &str = "x-model-workers-worker";
pub const H_ATTEMPTS: &str = "x-model-workers-attempts";

/// Client auth headers replaced by a model's configured key.
pub const CLIENT_AUTH_HEADERS: [&str; 3] = ["authorization", "x-api-key", "api-key"];

/// Router headers a client could use to change retries or timeouts: the filter owns them.
pub const ROUTER_CONTROL_HEADERS: [&str; 10] = [
    "x-envoy-max-retries",
    "x-envoy-retry-on",
    "x-envoy-retry-grpc-on",
    "x-envoy-retriable-status-codes",
    "x-envoy-retriable-header-names",
    "x-envoy-upstream-rq-timeout-ms",
    "x-envoy-upstream-rq-per-try-timeout-ms",
    "x-envoy-upstream-rq-timeout-alt-response",
    "x-envoy-hedge-on-per-try-timeout",
    "x-envoy-attempt-count",
];

/// Header values as text; a repeated header reads as its values joined by `, ` (as Envoy's own
/// single-value lookup does), so `content-type` twice is never taken for one valid value.
pub fn join_value(slot: &mut Option<String>, value: &[u8]) {
    let v = String::from_utf8_lossy(value);
    match slot {
        Some(s) => {
            s.push_str(", ");
            s.push_str(&v);
        }
        None => *slot = Some(v.into_owned()),
    }
}

/// The few request headers the classification needs.
#[derive(Debug, Default, Clone, Copy)]
pub struct RequestHead<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub content_type: Option<&'a str>,
    pub content_encoding: Option<&'a str>,
    pub content_length: Option<&'a str>,
    /// The headers ended the request (no body follows).
    pub end_of_stream: bool,
}

/// What to do with a request once its headers are in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadVerdict {
    /// Buffer the body, then [`route`].
    ReadBody,
    /// Answer with the model list (`GET /v1/models`).
    ListModels { head_only: bool },
    /// Answer with the live status document (`model_workers.status_path`).
    Status { head_only: bool },
    /// Answer with an error.
    Reject(ApiError),
}

pub fn classify(config: &Config, h: &RequestHead<'_>) -> HeadVerdict {
    let path = h.path.split('?').next().unwrap_or("");
    if config.settings.status_path.as_deref() == Some(path) && matches!(h.method, "GET" | "HEAD") {
        return HeadVerdict::Status { head_only: h.method == "HEAD" };
    }
    match h.method {
        "POST" => {}
        "GET" | "HEAD" if config.settings.models_endpoint && (path == "/v1/models" || path == "/models") => {
            return HeadVerdict::ListModels { head_only: h.method == "HEAD" }
        }
        m => return HeadVerdict::Reject(ApiError::method_not_allowed(m)),
    }
    if let Some(enc) = h.content_encoding.map(str::trim) {
        if !enc.is_empty() && !enc.eq_ignore_ascii_case("identity") {
            return HeadVerdict::Reject(ApiError::unsupported_encoding(enc));
        }
    }
    if let Some(ct) = h.content_type {
        let mime = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        if mime != "application/json" && !mime.ends_with("+json") {
            return HeadVerdict::Reject(ApiError::unsupported_media_type(ct));
        }
    }
    if let Some(len) = h.content_length {
        match len.trim().parse::<u64>() {
            Ok(n) if n > config.settings.max_body_bytes as u64 => {
                return HeadVerdict::Reject(ApiError::body_too_large(config.settings.max_body_bytes))
            }
            Ok(0) => {
                return HeadVerdict::Reject(ApiError::invalid_request(
                    "missing_body",
                    "Request body is empty; send a JSON object with `model`",
                ))
            }
            Ok(_) => {}
            Err(_) => {
                return HeadVerdict::Reject(ApiError::invalid_request(
                    "invalid_content_length",
                    "Invalid Content-Length",
                ))
            }
        }
    }
    if h.end_of_stream {
        return HeadVerdict::Reject(ApiError::invalid_request(
            "missing_body",
            "Request body is empty; send a JSON object with `model`",
        ));
    }
    HeadVerdict::ReadBody
}

/// A routed request: what it named, its body's scan, and the candidates in order.
#[derive(Debug, Clone)]
pub struct Routed {
    pub target: Target,
    pub scan: Scan,
    pub chain: Vec<ModelId>,
}

/// Route a complete body. `session_headers`: the values of [`Config::session_headers`] in
/// this request, in that order (`None`: absent; a repeated header's values joined by `, `).
/// Draws one ticket when the worker's policy needs one.
/// `state`: the shared per-model table as read for this request; `random`: random bits
/// (least-busy's two choices).
pub struct View<'a> {
    /// `m`'s breaker is open.
    pub cooling: &'a dyn Fn(ModelId) -> bool,
    /// Every model's load, by [`ModelId`].
    pub load: &'a [Load],
    pub random: u64,
}

pub fn route(
    config: &Config,
    body: &[u8],
    session_headers: &[Option<String>],
    tickets: &mut dyn Tickets,
    view: &View<'_>,
) -> Result<Routed, ApiError> {
    if body.len() > config.settings.max_body_bytes {
        return Err(ApiError::body_too_large(config.settings.max_body_bytes));
    }
    let scan = body::scan_fields(body, &config.session_fields).map_err(|e| ApiError::from_body(&e))?;
    let target = config.resolve(&scan.model).ok_or_else(|| ApiError::unknown_model(&scan.model))?;
    let chain = match target {
        Target::Model(m) => vec![m],
        Target::Worker(w) => {
            let worker = config.worker(w).ok_or_else(|| ApiError::unknown_model(&scan.model))?;
            let session = session_key(config, worker.policy.session_source(), body, &scan, session_headers);
            let session = session.as_deref().filter(|k| !k.is_empty());
            let ticket =
                if worker.policy.needs_ticket(session.is_some()) { tickets.next(&worker.counter_key) } else { 0 };
            worker.policy.candidates(&Pick { ticket, session, load: view.load, random: view.random }, view.cooling)
        }
    };
    if chain.is_empty() {
        return Err(ApiError::unknown_model(&scan.model));
    }
    Ok(Routed { target, scan, chain })
}

/// A sticky worker's session key in this request: the header's value, or the body member's
/// decoded string. Only a sticky worker's requests decode anything.
fn session_key<'a>(
    config: &Config,
    source: Option<&Source>,
    body: &[u8],
    scan: &Scan,
    headers: &'a [Option<String>],
) -> Option<std::borrow::Cow<'a, str>> {
    match source? {
        Source::Header(name) => {
            let i = config.session_headers.iter().position(|h| h == name)?;
            headers.get(i)?.as_deref().map(std::borrow::Cow::Borrowed)
        }
        Source::Body(field) => {
            let i = config.session_fields.iter().position(|f| f == field)?;
            let span = scan.fields.get(i)?.as_ref()?;
            body::string_at(body, span).map(std::borrow::Cow::Owned)
        }
    }
}

/// Attempt 1's body edit (its headers: [`crate::attempt::header_edits`]).
#[derive(Debug, Clone)]
pub struct AttemptPlan<'c> {
    pub model: &'c Model,
    /// The provider's model id as a JSON string literal: it replaces `original[head..replaced]`
    /// (the client's literal); every other byte of the body is unchanged.
    pub literal: Vec<u8>,
    pub head: usize,
    pub replaced: usize,
    /// Length of the rewritten body.
    pub body_len: usize,
}

pub fn plan_attempt<'c>(config: &'c Config, model: ModelId, original: &[u8], scan: &Scan) -> Option<AttemptPlan<'c>> {
    let m = config.model(model)?;
    let literal = body::model_literal_edit(original, scan.model_span.clone(), &m.model_id)?;
    let (head, replaced) = (scan.model_span.start, scan.model_span.end);
    let body_len = original.len().checked_sub(replaced.checked_sub(head)?)?.checked_add(literal.len())?;
    Some(AttemptPlan { model: m, literal, head, replaced, body_len })
}

/// `GET /v1/models`: workers and models in OpenAI's list format.
pub fn models_list_json(config: &Config) -> String {
    let workers = config.workers.iter().map(|w| {
        serde_json::json!({
            "id": w.name, "object": "model", "created": 0, "owned_by": "model-workers",
            "description": w.description,
        })
    });
    let models = config
        .models
        .iter()
        .map(|m| serde_json::json!({ "id": m.name, "object": "model", "created": 0, "owned_by": m.provider.prefix() }));
    serde_json::json!({ "object": "list", "data": workers.chain(models).collect::<Vec<_>>() }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::counter::LocalTickets;

    fn view<'a>(cooling: &'a dyn Fn(ModelId) -> bool) -> View<'a> {
        View { cooling, load: &[], random: 0 }
    }

    const CFG: &str = r#"
models:
  - from: openai:gpt-4o
    name: gpt4
    params:
      openai_api_key: ${ secrets:OPENAI_API_KEY }
      endpoint: https://gw.example.com/openai/v1
  - from: anthropic:claude-sonnet-4-5
    name: claude
    params:
      anthropic_api_key: ${ secrets:ANTHROPIC_API_KEY }
  - from: openai:local
    name: local
    params: { cluster: vllm }
workers:
  - name: rr
    type: load_balance
    load_balance:
      routing:
        - from: gpt4
        - from: claude
  - name: fb
    load_balance:
      routing:
        - from: local
          order: 2
        - from: claude
          order: 1
"#;

    fn env(k: &str) -> Option<String> {
        match k {
            "OPENAI_API_KEY" => Some("sk-openai".into()),
            "ANTHROPIC_API_KEY" => Some("sk-ant".into()),
            _ => None,
        }
    }
    fn cfg() -> Config {
        Config::parse(CFG, &env).unwrap()
    }
    fn head<'a>(method: &'a str, path: &'a str) -> RequestHead<'a> {
        RequestHead {
            method,
            path,
            content_type: Some("application/json"),
            content_length: Some("10"),
            ..Default::default()
        }
    }
    fn none(_: ModelId) -> bool {
        false
    }

    #[test]
    fn classification_table() {
        let c = cfg();
        assert_eq!(classify(&c, &head("POST", "/v1/chat/completions")), HeadVerdict::ReadBody);
        assert_eq!(classify(&c, &head("GET", "/v1/models")), HeadVerdict::ListModels { head_only: false });
        assert_eq!(classify(&c, &head("HEAD", "/v1/models?x=1")), HeadVerdict::ListModels { head_only: true });
        let status = |v: HeadVerdict| match v {
            HeadVerdict::Reject(e) => e.status,
            _ => 0,
        };
        assert_eq!(status(classify(&c, &head("GET", "/v1/chat/completions"))), 405);
        assert_eq!(status(classify(&c, &head("OPTIONS", "/v1/chat/completions"))), 405);
        assert_eq!(status(classify(&c, &head("DELETE", "/v1/models"))), 405);
        let mut h = head("POST", "/v1/chat/completions");
        h.content_type = Some("text/plain");
        assert_eq!(status(classify(&c, &h)), 415);
        h.content_type = Some("application/json; charset=utf-8");
        assert_eq!(classify(&c, &h), HeadVerdict::ReadBody);
        h.content_type = None;
        assert_eq!(classify(&c, &h), HeadVerdict::ReadBody);
        h.content_encoding = Some("gzip");
        assert_eq!(status(classify(&c, &h)), 415);
        h.content_encoding = Some("identity");
        assert_eq!(classify(&c, &h), HeadVerdict::ReadBody);
        h.content_length = Some("999999999999");
        assert_eq!(status(classify(&c, &h)), 413);
        h.content_length = Some("0");
        assert_eq!(status(classify(&c, &h)), 400);
        h.content_length = Some("abc");
        assert_eq!(status(classify(&c, &h)), 400);
        h.content_length = None;
        h.end_of_stream = true;
        assert_eq!(status(classify(&c, &h)), 400);
    }

    #[test]
    fn routes_workers_and_plain_models() {
        let c = cfg();
        let mut t = LocalTickets::default();
        let body = br#"{"model":"rr","messages":[]}"#;
        let r1 = route(&c, body, &[], &mut t, &view(&none)).unwrap();
        let r2 = route(&c, body, &[], &mut t, &view(&none)).unwrap();
        assert_eq!(r1.chain, vec![ModelId(0), ModelId(1)]);
        assert_eq!(r2.chain, vec![ModelId(1), ModelId(0)]);
        let r = route(&c, br#"{"model":"fb"}"#, &[], &mut t, &view(&none)).unwrap();
        assert_eq!(r.chain, vec![ModelId(1), ModelId(2)]);
        let r = route(&c, br#"{"model":"local","stream":true}"#, &[], &mut t, &view(&none)).unwrap();
        assert_eq!(r.chain, vec![ModelId(2)]);
        assert!(r.scan.stream);
    }

    const STICKY: &str = "
models:
  - { from: openai:a, name: a }
  - { from: openai:b, name: b }
  - { from: openai:c, name: c }
workers:
  - name: by-user
    load_balance:
      sticky: {}
      routing: [{ from: a }, { from: b }, { from: c }]
  - name: by-header
    load_balance:
      sticky: { header: x-session-id }
      routing: [{ from: a, weight: 2 }, { from: b, weight: 1 }]
";

    /// Counts the tickets drawn.
    #[derive(Default)]
    struct Counting(u64);
    impl Tickets for Counting {
        fn next(&mut self, _key: &str) -> u64 {
            self.0 += 1;
            self.0 - 1
        }
    }

    #[test]
    fn sticky_keys_come_from_the_body_or_a_header_and_draw_no_ticket() {
        let c = Config::parse(STICKY, &|_| None).unwrap();
        assert_eq!(c.session_fields, ["user"]);
        assert_eq!(c.session_headers, ["x-session-id"]);
        let mut t = Counting::default();
        // Body `user`: the same model every time, no ticket drawn.
        let body = br#"{"model":"by-user","user":"alice","messages":[]}"#;
        let first = route(&c, body, &[], &mut t, &view(&none)).unwrap().chain;
        for _ in 0..10 {
            assert_eq!(route(&c, body, &[], &mut t, &view(&none)).unwrap().chain, first);
        }
        assert_eq!(t.0, 0, "a keyed request draws no ticket");
        // Without `user` (or an empty one): the base round robin, one ticket each.
        let anon = br#"{"model":"by-user","messages":[]}"#;
        let picks: Vec<ModelId> =
            (0..3).map(|_| route(&c, anon, &[], &mut t, &view(&none)).unwrap().chain[0]).collect();
        assert_eq!(picks, vec![ModelId(0), ModelId(1), ModelId(2)]);
        route(&c, br#"{"model":"by-user","user":""}"#, &[], &mut t, &view(&none)).unwrap();
        assert_eq!(t.0, 4);
        // Header source: the value passed by the glue, aligned with `session_headers`.
        let body = br#"{"model":"by-header","user":"ignored"}"#;
        let h = |v: &str| vec![Some(v.to_string())];
        let s1 = route(&c, body, &h("s-1"), &mut t, &view(&none)).unwrap().chain;
        assert_eq!(t.0, 4);
        for _ in 0..5 {
            assert_eq!(route(&c, body, &h("s-1"), &mut t, &view(&none)).unwrap().chain, s1);
        }
        // Over many sessions, both models get some (weights 2:1).
        let on_a = (0..300)
            .filter(|i| route(&c, body, &h(&format!("s-{i}")), &mut t, &view(&none)).unwrap().chain[0] == ModelId(0))
            .count();
        assert!((170..=230).contains(&on_a), "{on_a} of 300 on a");
        // No header: weighted by ticket.
        route(&c, body, &[None], &mut t, &view(&none)).unwrap();
        assert_eq!(t.0, 5);
        // A cooling model's session moves, and returns.
        let sticky_model = s1[0];
        let moved = route(&c, body, &h("s-1"), &mut t, &view(&|m| m == sticky_model)).unwrap().chain;
        assert_eq!(moved, vec![s1[1], s1[0]]);
    }

    #[test]
    fn route_errors() {
        let c = cfg();
        let mut t = LocalTickets::default();
        let e = route(&c, br#"{"model":"nope"}"#, &[], &mut t, &view(&none)).unwrap_err();
        assert_eq!((e.status, e.code), (404, "model_not_found"));
        let e = route(&c, b"{", &[], &mut t, &view(&none)).unwrap_err();
        assert_eq!(e.status, 400);
        let e = route(&c, br#"{"messages":[]}"#, &[], &mut t, &view(&none)).unwrap_err();
        assert_eq!(e.code, "missing_model");
    }

    #[test]
    fn attempt_one_splices_the_model_in_place() {
        let c = cfg();
        let body = br#"{"model":"rr","messages":[{"role":"user","content":"hi"}]}"#;
        let scan = body::scan(body).unwrap();
        let p = plan_attempt(&c, ModelId(0), body, &scan).unwrap();
        let want = br#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}"#.to_vec();
        let mut got = body[..p.head].to_vec();
        got.extend_from_slice(&p.literal);
        got.extend_from_slice(&body[p.replaced..]);
        assert_eq!(got, want);
        assert_eq!(p.body_len, want.len());
        assert_eq!(p.literal, br#""gpt-4o""#.to_vec(), "only the model literal is edited");
        assert_eq!((p.head, p.replaced), (9, 13));
        assert_eq!(p.model.cluster, "openai");
        // Paths and hosts per model (the header edits use these).
        assert_eq!(p.model.upstream_path("/v1/chat/completions"), "/openai/v1/chat/completions");
        assert_eq!(c.models[1].upstream_path("/v1/chat/completions"), "/v1/messages", "Anthropic's Messages API");
        assert_eq!(c.models[1].endpoint.as_ref().unwrap().authority, "api.anthropic.com");
        assert_eq!(c.models[2].cluster, "vllm");
    }

    #[test]
    fn models_list_has_workers_and_models() {
        let v: serde_json::Value = serde_json::from_str(&models_list_json(&cfg())).unwrap();
        let ids: Vec<&str> = v["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
        assert_eq!(ids, vec!["rr", "fb", "gpt4", "claude", "local"]);
        assert_eq!(v["object"], "list");
    }
}
