//! The glue against the in-memory host: a request walks through the downstream filter, then
//! Envoy's router is played by the test — one upstream context per attempt, in order, on the
//! same request state (Envoy shares the request header map and filter state between them) —
//! and the final response goes back through the downstream filter.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::rc::Rc;

use super::downstream::Downstream;
use super::fake::FakeHost;
use super::host::{Flow, Host};
use super::upstream::{Resume, Upstream};
use super::vm::{TimerKind, Vm};
use crate::config::Config;
use crate::plan::{Plan, NEXT_KEY, PLAN_KEY, RETRY_STATUS};

const CFG: &str = r#"
models:
  - from: openai:gpt-a
    name: a
    params: { cluster: ca, openai_api_key: "${ secrets:KEY_A }" }
  - from: openai:gpt-b
    name: b
    params: { cluster: cb }
  - from: anthropic:claude-c
    name: c
    params: { cluster: cc, anthropic_api_key: "${ secrets:KEY_C }", endpoint: "https://api.example.com/anthropic/v1" }
  - from: openai:gpt-r
    name: r
    params: { cluster: cr, max_retries: 2, backoff: 100ms }
  - from: openai:gpt-m
    name: m
    params:
      cluster: cm
      max_retries: 1
      backoff: 0s
      system_prompt: Be brief.
      messages: [{ role: user, content: Answer in French. }]
workers:
  - name: fb
    load_balance:
      routing:
        - { from: a, order: 1 }
        - { from: b, order: 2 }
        - { from: c, order: 3 }
  - name: retry
    load_balance:
      routing:
        - { from: r, order: 1 }
        - { from: b, order: 2 }
  - name: msgs
    load_balance:
      routing:
        - { from: m, order: 1 }
        - { from: b, order: 2 }
model_workers:
  cooldown: { failures: 0 }
"#;

fn vm(host: &mut FakeHost) -> Rc<Vm> {
    let env = |k: &str| match k {
        "KEY_A" => Some("sk-a".to_string()),
        "KEY_C" => Some("sk-c".to_string()),
        _ => None,
    };
    Rc::new(Vm::new(Config::parse(CFG, &env).unwrap(), host))
}

fn request(model: &str, stream: bool) -> FakeHost {
    let body = format!(r#"{{"model":"{model}","stream":{stream},"messages":[{{"role":"user","content":"hi"}}]}}"#);
    FakeHost::new().with_request(
        &[
            (":method", "POST"),
            (":path", "/v1/chat/completions"),
            (":authority", "llm.local"),
            ("content-type", "application/json"),
            ("content-length", &body.len().to_string()),
            ("authorization", "Bearer client-key"),
            ("x-model-workers-cluster", "evil"),
            ("x-envoy-retry-on", "5xx"),
            ("x-envoy-max-retries", "9"),
        ],
        &body,
    )
}

/// What one attempt's upstream sees.
#[derive(Clone, Copy, Debug)]
enum Upstream_ {
    /// Response headers with this status (non-stream body or a stream whose first event is fine).
    Status(u16),
    /// A 2xx stream whose first event is an error.
    StreamError,
    /// No response headers: the attempt ends (reset) after `ms`.
    Gone(u64),
}

struct Run {
    host: FakeHost,
    vm: Rc<Vm>,
    down: Downstream,
    /// The body as the downstream filter left it: Envoy's router keeps this copy and gives
    /// each attempt its own (what one attempt's upstream filter does to it stays there).
    retained: Vec<u8>,
}

fn start(model: &str, stream: bool) -> Run {
    let mut host = request(model, stream);
    let vm = vm(&mut host);
    let mut down = Downstream::new(vm.clone(), 1);
    assert_eq!(down.on_request_headers(&mut host, false), Flow::Pause);
    let len = host.request_body.len();
    assert_eq!(down.on_request_body(&mut host, len, true), Flow::Continue);
    let retained = host.request_body.clone();
    Run { host, vm, down, retained }
}

impl Run {
    /// Play one attempt; returns the status the router sees (after the filter's edits).
    fn attempt(&mut self, id: u32, what: Upstream_) -> Option<u16> {
        let plan = Plan::decode(&self.host.properties[PLAN_KEY], &self.vm.config).unwrap();
        let up = Upstream::new(self.vm.clone(), id, plan);
        let mut u = up.borrow_mut();
        let h = &mut self.host;
        h.request_body.clone_from(&self.retained);
        if u.on_request_headers(h) == Flow::Pause {
            // Held: for a backoff (the body is held too, until the root's tick), or until a
            // translated body's length is known.
            let len = h.request_body.len();
            if u.on_request_body(h, len, true) == Flow::Pause {
                h.advance(1000);
                assert_eq!(u.on_timer(h, TimerKind::BackoffDone), Some(Resume::Request));
            }
        } else {
            let len = h.request_body.len();
            let _ = u.on_request_body(h, len, true);
        }
        match what {
            Upstream_::Status(s) => {
                let ct = if u_stream(h) { "text/event-stream" } else { "application/json" };
                h.set_response(&[(":status", &s.to_string()), ("content-type", ct)], "data: {\"choices\":[]}\n\n");
                if u.on_response_headers(h, false) == Flow::Pause {
                    // Held: a stream until its first event, a failure to retry until its body
                    // is in (the connection then goes back to the pool).
                    let len = h.response_body.len();
                    assert_eq!(u.on_response_body(h, len, true), Flow::Continue);
                }
                u.on_done(h);
                h.resp(":status").map(|s| s.parse().unwrap())
            }
            Upstream_::StreamError => {
                h.set_response(
                    &[(":status", "200"), ("content-type", "text/event-stream")],
                    "data: {\"error\":{\"message\":\"x\"}}\n\n",
                );
                assert_eq!(u.on_response_headers(h, false), Flow::Pause, "a stream's headers are held");
                let len = h.response_body.len();
                assert_eq!(u.on_response_body(h, len, false), Flow::Continue);
                u.on_done(h);
                h.resp(":status").map(|s| s.parse().unwrap())
            }
            Upstream_::Gone(ms) => {
                h.advance(ms);
                u.on_done(h);
                None
            }
        }
    }

    /// The final response through the downstream filter.
    fn finish(&mut self, status: u16, local: bool) {
        let h = &mut self.host;
        h.set_response(&[(":status", &status.to_string())], if local { "upstream connect error" } else { "{}" });
        if local {
            h.properties.insert("response.code_details".into(), b"upstream_reset_before_response_started".to_vec());
        } else {
            h.properties.insert("response.code_details".into(), b"via_upstream".to_vec());
        }
        let _ = self.down.on_response_headers(h, false);
        let len = h.response_body.len();
        let _ = self.down.on_response_body(h, len, true);
        self.down.on_done(h);
    }
}

fn u_stream(h: &FakeHost) -> bool {
    String::from_utf8_lossy(&h.request_body).contains("\"stream\":true")
}

#[test]
fn downstream_prepares_attempt_one_and_plans_the_rest() {
    let r = start("fb", false);
    let h = &r.host;
    assert_eq!(h.req("x-model-workers-cluster").as_deref(), Some("ca"), "the client's routing header is replaced");
    assert_eq!(h.req("x-envoy-retry-on"), None, "client router-control headers are removed");
    assert_eq!(h.req("x-envoy-max-retries").as_deref(), Some("2"));
    assert_eq!(h.req("authorization").as_deref(), Some("Bearer sk-a"));
    assert_eq!(h.prop(NEXT_KEY).as_deref(), Some("a"));
    assert!(String::from_utf8_lossy(&h.request_body).starts_with(r#"{"model":"gpt-a""#));
    assert_eq!(h.req("content-length").unwrap(), h.request_body.len().to_string());
    assert_eq!(h.route_cache_cleared, 1);
}

/// Attempt 1's literal goes back with the bytes before it in one splice when they are few,
/// as two (the literal, then the head straight from the body) when the prompt comes first;
/// either way the body is the client's with only the model literal replaced, and a failed
/// splice is a 500, never a half-rewritten body sent on.
#[test]
fn attempt_one_replaces_only_the_model_literal_whatever_comes_before_it() {
    for (head_len, splices) in [(9usize, 1u32), (4096, 1), (4097, 2), (20_000, 2)] {
        // `{"messages":[{"role":"user","content":"xxx…"}],"model":"fb"}` with a head (all
        // before the model literal) of `head_len` bytes; 9 is the model-first body's.
        let with = |content: &str| format!(r#"{{"messages":[{{"role":"user","content":"{content}"}}],"model":"fb"}}"#);
        let structure = with("").find(r#""fb""#).unwrap();
        let body = if head_len == 9 {
            r#"{"model":"fb","messages":[{"role":"user","content":"hi"}]}"#.to_string()
        } else {
            with(&"x".repeat(head_len - structure))
        };
        assert_eq!(body.find(r#""fb""#), Some(head_len));
        let want = body.replacen(r#""model":"fb""#, r#""model":"gpt-a""#, 1);
        for fail in [false, true] {
            let mut host = request("fb", false);
            host.request_body = body.clone().into_bytes();
            host.splices_fail_from = fail.then_some(splices);
            let vm = vm(&mut host);
            let mut down = Downstream::new(vm.clone(), 1);
            assert_eq!(down.on_request_headers(&mut host, false), Flow::Pause);
            let flow = down.on_request_body(&mut host, body.len(), true);
            assert_eq!(host.splices, splices, "head {head_len}");
            if fail {
                assert_eq!(flow, Flow::Pause, "head {head_len}");
                assert_eq!(host.replies.len(), 1);
                assert_eq!(host.replies[0].0, 500);
                continue;
            }
            assert_eq!(flow, Flow::Continue);
            assert_eq!(String::from_utf8_lossy(&host.request_body), want, "head {head_len}");
            assert_eq!(host.req("content-length").unwrap(), want.len().to_string());
            // The plan's offsets match: attempt 2 rewrites the same literal for its model.
            let retained = host.request_body.clone();
            let mut r = Run { host, vm, down, retained };
            assert_eq!(r.attempt(2, Upstream_::Status(503)), Some(RETRY_STATUS));
            assert_eq!(r.attempt(3, Upstream_::Status(200)), Some(200));
            let b = body.replacen(r#""model":"fb""#, r#""model":"gpt-b""#, 1);
            assert_eq!(String::from_utf8_lossy(&r.host.request_body), b, "head {head_len}");
        }
    }
}

#[test]
fn each_attempt_is_rewritten_for_its_model_and_retryable_failures_become_599() {
    let mut r = start("fb", false);
    assert_eq!(r.attempt(2, Upstream_::Status(503)), Some(RETRY_STATUS));
    assert_eq!(r.host.prop(NEXT_KEY).as_deref(), Some("b"), "attempt 1 points the matcher at b");
    // Attempt 2: model b has no key: the client's own key comes back.
    assert_eq!(r.attempt(3, Upstream_::Gone(3)), None);
    assert_eq!(r.host.req("authorization").as_deref(), Some("Bearer client-key"));
    assert!(String::from_utf8_lossy(&r.host.request_body).starts_with(r#"{"model":"gpt-b""#));
    // Attempt 3: c (anthropic, endpoint with a path prefix).
    assert_eq!(r.attempt(4, Upstream_::Status(200)), Some(200));
    let h = &r.host;
    assert_eq!(h.req("authorization"), None);
    assert_eq!(h.req("x-api-key").as_deref(), Some("sk-c"));
    assert_eq!(h.req(":path").as_deref(), Some("/anthropic/v1/messages"), "Anthropic's Messages API");
    assert_eq!(h.req(":authority").as_deref(), Some("api.example.com"));
    assert!(String::from_utf8_lossy(&h.request_body).contains(r#""model":"claude-c""#));
    assert_eq!(h.req("content-length").unwrap(), h.request_body.len().to_string());
    r.finish(200, false);
    assert_eq!(r.host.resp("x-model-workers-attempts").as_deref(), Some("a=503,b=reset,c=200"));
    assert_eq!(r.host.resp("x-model-workers-model").as_deref(), Some("c"));
    assert_eq!(r.host.metric("model_workers.worker.fb.fallbacks"), 1);
    assert_eq!(r.host.metric("model_workers.worker.fb.retries"), 2);
}

#[test]
fn a_models_messages_reach_only_its_attempts() {
    let body = |h: &FakeHost| serde_json::from_slice::<serde_json::Value>(&h.request_body).unwrap();
    let mut r = start("msgs", false);
    // Attempt 1 (m): prepared downstream, its messages added by its upstream filter.
    assert_eq!(r.attempt(2, Upstream_::Status(503)), Some(RETRY_STATUS));
    let b1 = body(&r.host);
    assert_eq!(b1["model"], "gpt-m");
    let roles: Vec<_> = b1["messages"].as_array().unwrap().iter().map(|m| m["content"].clone()).collect();
    assert_eq!(roles, ["Be brief.", "hi", "Answer in French."]);
    assert_eq!(b1["messages"][0]["role"], "system");
    assert_eq!(r.host.req("content-length").unwrap(), r.host.request_body.len().to_string());
    // Attempt 2 (m's retry): its messages once, not twice.
    assert_eq!(r.attempt(3, Upstream_::Status(503)), Some(RETRY_STATUS));
    assert_eq!(body(&r.host), b1);
    // Attempt 3 (b): the client's messages only, the client's length.
    assert_eq!(r.attempt(4, Upstream_::Status(200)), Some(200));
    let b3 = body(&r.host);
    assert_eq!(b3["model"], "gpt-b");
    assert_eq!(b3["messages"], serde_json::json!([{"role": "user", "content": "hi"}]));
    assert_eq!(r.host.req("content-length").unwrap(), r.host.request_body.len().to_string());
    r.finish(200, false);
    assert_eq!(r.host.resp("x-model-workers-attempts").as_deref(), Some("m=503,m=503,b=200"));
}

#[test]
fn the_last_attempts_failure_passes_unchanged() {
    let mut r = start("fb", false);
    for id in 2..4 {
        assert_eq!(r.attempt(id, Upstream_::Status(503)), Some(RETRY_STATUS));
    }
    assert_eq!(r.attempt(4, Upstream_::Status(429)), Some(429), "no retry left: the client sees the provider's answer");
    r.finish(429, false);
    assert_eq!(r.host.resp("x-model-workers-attempts").as_deref(), Some("a=503,b=503,c=429"));
    assert_eq!(r.host.resp("x-model-workers-model"), None);
}

#[test]
fn client_errors_are_never_retried() {
    let mut r = start("fb", false);
    assert_eq!(r.attempt(2, Upstream_::Status(400)), Some(400));
    r.finish(400, false);
    assert_eq!(r.host.resp("x-model-workers-attempts").as_deref(), Some("a=400"));
    assert_eq!(r.host.resp("x-model-workers-model").as_deref(), Some("a"));
}

#[test]
fn no_provider_answer_becomes_a_clear_error() {
    let mut r = start("fb", false);
    for id in 2..5 {
        r.attempt(id, Upstream_::Gone(1));
    }
    r.finish(503, true);
    assert_eq!(r.host.resp(":status").as_deref(), Some("503"));
    let body: serde_json::Value = serde_json::from_slice(&r.host.response_body).unwrap();
    assert_eq!(body["error"]["code"], "all_models_failed");
    assert_eq!(r.host.resp("x-model-workers-attempts").as_deref(), Some("a=reset,b=reset,c=reset"));
}

#[test]
fn a_streams_error_event_fails_over_and_the_last_one_becomes_a_503() {
    let mut r = start("fb", true);
    assert_eq!(r.attempt(2, Upstream_::StreamError), Some(RETRY_STATUS));
    assert_eq!(r.attempt(3, Upstream_::StreamError), Some(RETRY_STATUS));
    assert_eq!(r.attempt(4, Upstream_::StreamError), Some(200), "the last error stream is held, not flipped");
    r.finish(200, false);
    assert_eq!(r.host.resp(":status").as_deref(), Some("503"));
    assert_eq!(
        r.host.resp("x-model-workers-attempts").as_deref(),
        Some("a=stream_error,b=stream_error,c=stream_error")
    );
}

#[test]
fn same_model_retries_wait_their_backoff() {
    let mut r = start("retry", false);
    assert_eq!(r.host.req("x-envoy-max-retries").as_deref(), Some("3"));
    assert_eq!(r.attempt(2, Upstream_::Status(503)), Some(RETRY_STATUS));
    // Attempt 2 is a retry of r after 100 ms: it pauses (asserted inside `attempt`).
    assert_eq!(r.attempt(3, Upstream_::Status(200)), Some(200));
    r.finish(200, false);
    assert_eq!(r.host.resp("x-model-workers-attempts").as_deref(), Some("r=503,r=200"));
    assert_eq!(r.host.resp("x-model-workers-model").as_deref(), Some("r"));
}

#[test]
fn trailers_end_the_request_too() {
    let mut host = request("fb", false);
    let vm = vm(&mut host);
    let mut down = Downstream::new(vm, 1);
    assert_eq!(down.on_request_headers(&mut host, false), Flow::Pause);
    let len = host.request_body.len();
    assert_eq!(down.on_request_body(&mut host, len, false), Flow::Pause);
    assert_eq!(down.on_request_trailers(&mut host), Flow::Continue, "routed at the trailers");
    assert_eq!(host.prop(NEXT_KEY).as_deref(), Some("a"));
}

#[test]
fn a_stream_without_a_first_event_in_time_fails_over() {
    let mut r = start("fb", true);
    let plan = Plan::decode(&r.host.properties[PLAN_KEY], &r.vm.config).unwrap();
    let up = Upstream::new(r.vm.clone(), 2, plan);
    let mut u = up.borrow_mut();
    let h = &mut r.host;
    assert_eq!(u.on_request_headers(h), Flow::Continue);
    h.set_response(&[(":status", "200"), ("content-type", "text/event-stream")], "");
    assert_eq!(u.on_response_headers(h, false), Flow::Pause);
    assert_eq!(u.on_response_body(h, 0, false), Flow::Pause, "no complete event yet");
    h.advance(60_000);
    assert_eq!(u.on_timer(h, TimerKind::FirstEventDeadline), Some(Resume::Response));
    assert_eq!(h.resp(":status").as_deref(), Some("599"));
    u.on_done(h);
    let trail = String::from_utf8_lossy(&h.properties["model_workers.trail"]).into_owned();
    assert_eq!(trail, "a\ttimeout\n", "recorded once");
}

#[test]
fn a_request_without_a_plan_decodes_as_none() {
    let mut host = FakeHost::new();
    let vm = vm(&mut host);
    assert!(Plan::decode(b"garbage", &vm.config).is_none());
    assert!(host.property(&[PLAN_KEY]).is_none());
}

#[test]
fn a_keyless_model_after_a_keyed_one_never_gets_its_key() {
    // The client sends no auth: attempt 2 (b, no key) must not carry a's key.
    let mut host = request("fb", false);
    host.request_headers.retain(|(k, _)| k != "authorization");
    let vm = vm(&mut host);
    let mut down = Downstream::new(vm.clone(), 1);
    down.on_request_headers(&mut host, false);
    let len = host.request_body.len();
    down.on_request_body(&mut host, len, true);
    let retained = host.request_body.clone();
    let mut r = Run { host, vm, down, retained };
    assert_eq!(r.host.req("authorization").as_deref(), Some("Bearer sk-a"));
    r.attempt(2, Upstream_::Status(503));
    r.attempt(3, Upstream_::Status(200));
    assert_eq!(r.host.req("authorization"), None);
}

#[test]
fn bad_input_gets_a_local_reply_and_a_refused_reply_never_hangs() {
    // (body, headers end the request?, status)
    let cases: &[(&str, u16)] = &[(r#"{"model":"nope"}"#, 404), (r#"{"model":1}"#, 400), ("{", 400)];
    for (body, status) in cases {
        for refuse in [false, true] {
            let mut host = FakeHost::new().with_request(
                &[(":method", "POST"), (":path", "/v1/chat/completions"), ("content-type", "application/json")],
                body,
            );
            host.refuse_replies = refuse;
            let vm = vm(&mut host);
            let mut down = Downstream::new(vm, 1);
            assert_eq!(down.on_request_headers(&mut host, false), Flow::Pause);
            let len = host.request_body.len();
            let flow = down.on_request_body(&mut host, len, true);
            assert!(host.prop(NEXT_KEY).is_none(), "{body}: nothing routed");
            if refuse {
                assert_eq!(flow, Flow::Continue, "{body}: a refused local reply must not leave the request hanging");
            } else {
                assert_eq!(flow, Flow::Pause);
                assert_eq!(host.replies[0].0, *status, "{body}");
            }
        }
    }
}

/// A sticky worker keyed by a header: the glue hands the header's value to the pick, so the
/// same session lands on the same model whatever the ticket, and another session may not.
#[test]
fn sticky_header_reaches_the_pick() {
    const STICKY: &str = "
models:
  - { from: openai:a, name: a, params: { cluster: ca } }
  - { from: openai:b, name: b, params: { cluster: cb } }
  - { from: openai:c, name: c, params: { cluster: cc } }
workers:
  - name: s
    load_balance:
      sticky: { header: x-session-id }
      routing: [{ from: a }, { from: b }, { from: c }]
";
    let mut root = FakeHost::new();
    let vm = Rc::new(Vm::new(Config::parse(STICKY, &|_| None).unwrap(), &mut root));
    let body = r#"{"model":"s","messages":[]}"#;
    // (model served, whether the request drew a ticket from shared data)
    let served_and_ticket = |session: &[&str]| -> (String, bool) {
        let mut headers =
            vec![(":method", "POST"), (":path", "/v1/chat/completions"), ("content-type", "application/json")];
        for s in session {
            headers.push(("x-session-id", s));
        }
        let mut host = FakeHost::new().with_request(&headers, body);
        let mut down = Downstream::new(vm.clone(), 1);
        assert_eq!(down.on_request_headers(&mut host, false), Flow::Pause);
        assert_eq!(down.on_request_body(&mut host, body.len(), true), Flow::Continue);
        (
            String::from_utf8(host.properties[NEXT_KEY].clone()).unwrap(),
            host.shared.keys().any(|k| k.starts_with("model_workers.tickets.s.")),
        )
    };
    let served = |session: &[&str]| {
        let (model, ticket) = served_and_ticket(session);
        assert!(!ticket, "a keyed request draws no ticket");
        model
    };
    let mut seen = std::collections::BTreeSet::new();
    for i in 0..30 {
        let key = format!("session-{i}");
        let first = served(&[&key]);
        assert_eq!(served(&[&key]), first);
        assert_eq!(served(&[&key]), first);
        seen.insert(first);
    }
    assert_eq!(seen.len(), 3, "30 sessions use every model: {seen:?}");
    // A repeated header is one key (its values joined), as Envoy reads it.
    assert_eq!(served(&["x", "y"]), served(&["x", "y"]));
    // No header: the base round robin, which draws a ticket.
    assert!(served_and_ticket(&[]).1);
}

/// The status document's counters are the filter's Envoy counters read back by name: requests
/// handled on other VMs (other worker threads, whose metric ids differ) all count, reading
/// costs nothing on the request path (no metric read, no shared-data write), and a counter the
/// host cannot read is null, not a failed status request.
#[test]
fn status_counters_are_every_vms_counts_read_at_status_time() {
    let cfg = format!("{CFG}  status_path: /status\n");
    let env = |k: &str| Some(format!("sk-{k}"));
    // (worker, each attempt's upstream, final status, Envoy's own reply?)
    let cases: &[(&str, &[Upstream_], u16, bool)] = &[
        ("fb", &[Upstream_::Status(503), Upstream_::Gone(2), Upstream_::Status(200)], 200, false),
        ("fb", &[Upstream_::Status(400)], 400, false),
        ("fb", &[Upstream_::Gone(1), Upstream_::Gone(1), Upstream_::Gone(1)], 503, true),
        ("retry", &[Upstream_::Status(503), Upstream_::Status(200)], 200, false),
        ("retry", &[Upstream_::Status(200)], 200, false),
    ];
    // Envoy's stats: one value per name for the whole process.
    let mut stats = std::collections::BTreeMap::new();
    for (i, (worker, attempts, status, local)) in cases.iter().enumerate() {
        // Each request on a VM of its own, as on another worker thread.
        let mut host = request(worker, false);
        host.metrics = std::mem::take(&mut stats);
        let vm = Rc::new(Vm::new(Config::parse(&cfg, &env).unwrap(), &mut host));
        let mut down = Downstream::new(vm.clone(), 1);
        assert_eq!(down.on_request_headers(&mut host, false), Flow::Pause);
        let len = host.request_body.len();
        assert_eq!(down.on_request_body(&mut host, len, true), Flow::Continue);
        let retained = host.request_body.clone();
        let mut r = Run { host, vm, down, retained };
        for (n, a) in attempts.iter().enumerate() {
            r.attempt(n as u32 + 2, *a);
        }
        r.finish(*status, *local);
        assert_eq!(r.host.metric_reads.get(), 0, "case {i}: a request reads no metric");
        assert_eq!(r.host.shared_writes, 0, "case {i}: nor writes shared data (no breaker in CFG)");
        stats = std::mem::take(&mut r.host.metrics);
    }
    // A rejected request, on yet another VM.
    let mut host = FakeHost::new().with_request(
        &[(":method", "POST"), (":path", "/v1/chat/completions"), ("content-type", "application/json")],
        r#"{"model":"nope"}"#,
    );
    host.metrics = std::mem::take(&mut stats);
    let vm = Rc::new(Vm::new(Config::parse(&cfg, &env).unwrap(), &mut host));
    let mut down = Downstream::new(vm, 1);
    down.on_request_headers(&mut host, false);
    down.on_request_body(&mut host, 16, true);
    stats = std::mem::take(&mut host.metrics);

    let status = |stats: &mut std::collections::BTreeMap<String, i64>, unreadable: bool, method: &str| {
        let mut host = FakeHost::new().with_request(&[(":method", method), (":path", "/status")], "");
        host.metrics = std::mem::take(stats);
        host.metrics_unreadable = unreadable;
        // This VM's metric ids are not the others' (something defined first).
        host.define_metric(super::host::MetricKind::Counter, "other.plugin");
        let vm = Rc::new(Vm::new(Config::parse(&cfg, &env).unwrap(), &mut host));
        let mut down = Downstream::new(vm, 1);
        assert_eq!(down.on_request_headers(&mut host, true), Flow::Pause);
        *stats = std::mem::take(&mut host.metrics);
        let (code, _, body) = host.replies.pop().unwrap();
        assert_eq!(code, 200);
        (host.metric_reads.get(), body)
    };
    let (reads, body) = status(&mut stats, false, "GET");
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    // 2 filter counters, 5 per worker, 9 per model.
    assert_eq!(reads, 2 + 3 * 5 + 5 * 9, "CFG has 3 workers and 5 models");
    // rq_total counts every request the filter saw, this status request too.
    assert_eq!(v["counters"], serde_json::json!({"rq_total": 7, "rq_rejected": 1}));
    let expect_workers = [
        ("fb", [3, 1, 2, 1, 4]), // rq_total, rq_success, rq_error, fallbacks, retries
        ("retry", [2, 2, 0, 0, 1]),
    ];
    for (i, (name, [total, ok, err, fb, retries])) in expect_workers.iter().enumerate() {
        let w = &v["workers"][i];
        assert_eq!(w["name"], *name);
        assert_eq!(
            w["counters"],
            serde_json::json!({"rq_total": total, "rq_success": ok, "rq_error": err, "fallbacks": fb, "retries": retries}),
            "{name}"
        );
    }
    // attempts, 2xx, 4xx, 5xx, reset
    let expect_models =
        [("a", [3, 0, 1, 1, 1]), ("b", [2, 0, 0, 0, 2]), ("c", [2, 1, 0, 0, 1]), ("r", [3, 2, 0, 1, 0])];
    for (i, (name, [attempts, ok, c4, c5, reset])) in expect_models.iter().enumerate() {
        let m = &v["models"][i];
        assert_eq!(m["name"], *name);
        assert_eq!(
            m["counters"],
            serde_json::json!({"attempts": attempts, "rq_2xx": ok, "rq_3xx": 0, "rq_4xx": c4, "rq_5xx": c5,
                "rq_reset": reset, "rq_timeout": 0, "rq_stream_error": 0, "cooldowns": 0}),
            "{name}"
        );
    }
    // The host refuses every read: the document still comes, with nulls.
    let (_, body) = status(&mut stats, true, "GET");
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(v["workers"][0]["counters"]["rq_total"].is_null(), "{v}");
    assert!(v["models"][0]["counters"]["attempts"].is_null(), "{v}");
    // HEAD: no body, nothing read.
    let (reads, body) = status(&mut stats, false, "HEAD");
    assert_eq!((reads, body.len()), (0, 0));
}
