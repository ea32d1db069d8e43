//! One request's state machine. The first attempt goes through Envoy's route (so a good
//! response — streamed or not — passes through untouched); a retryable failure pauses the
//! response and later attempts are callouts (`dispatch_http_call`) answered with
//! `send_http_response` (buffered). Timers (attempt timeout, backoff) are fired by the root.
//!
//! Re-entrancy: `send_http_response` may run this filter's response callbacks before it
//! returns. The `Http` shell only enters the exchange through `try_borrow_mut`, so such a
//! nested callback finds it busy and lets the local reply pass.

use std::borrow::Cow;
use std::cell::RefCell;
use std::rc::{Rc, Weak};
use std::time::Duration;

use proxy_wasm::traits::Context;
use proxy_wasm::types::{Action, BufferType, LogLevel, MapType};

use crate::body;
use crate::config::{Config, ModelId, ResponseModel, Target};
use crate::error::ApiError;
use crate::failover::{classify_callout, Failover, Next, Outcome};
use crate::request::{
    self, HeadVerdict, RequestHead, Routed, CLIENT_AUTH_HEADERS, H_ATTEMPTS, H_MODEL, H_WORKER, INTERNAL_PREFIX,
};
use crate::sse;

use super::host;
use super::root::{TimerKind, Vm};
use super::state::SharedTickets;
use crate::cooldown::{parse_retry_after, Breaker, Transition};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Request headers seen; not routed yet.
    Start,
    /// Answered locally or not ours: nothing more to do.
    Done,
    /// Buffering the request body.
    ReadingBody,
    /// Attempt 1 in flight through the route, awaiting response headers.
    Upstream,
    /// Attempt 1 answered 2xx to a `stream: true` request; its headers are held until the
    /// first event shows whether it is an error.
    PeekStream,
    /// Attempt 1's response is the answer and passes through.
    PassThrough,
    /// Attempt 1's response passes through, but its body is buffered to rewrite `model`.
    RewriteResponse,
    /// A later attempt is pending (callout or backoff); the route's response is swallowed.
    Failover,
}

/// A failed callout attempt's response, kept to answer with if every attempt fails.
struct Stored {
    status: u16,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

pub struct Exchange {
    context_id: u32,
    vm: Rc<Vm>,
    me: Weak<RefCell<Exchange>>,
    phase: Phase,
    client_path: String,
    /// Sanitized client request headers, replayed on callout attempts.
    request_headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
    routed: Option<Routed>,
    failover: Option<Failover>,
    attempt_started_ms: u64,
    pending_token: Option<u32>,
    last_failure: Option<Stored>,
    started_ms: u64,
    peek_status: u16,
    /// Breakers read while routing (None: no model has a cooldown).
    breakers: Option<Vec<Breaker>>,
    /// From attempt 1's response headers.
    retry_after: Option<String>,
    response_internal: Vec<String>,
    /// Status and model of the answer the client got (for metrics).
    final_status: Option<u16>,
    answer: Option<ModelId>,
}

impl Exchange {
    pub fn new(context_id: u32, vm: Rc<Vm>) -> Rc<RefCell<Exchange>> {
        Rc::new_cyclic(|me| {
            RefCell::new(Exchange {
                context_id,
                vm,
                me: me.clone(),
                phase: Phase::Start,
                client_path: String::new(),
                request_headers: Vec::new(),
                body: Vec::new(),
                routed: None,
                failover: None,
                attempt_started_ms: 0,
                pending_token: None,
                last_failure: None,
                started_ms: 0,
                peek_status: 0,
                breakers: None,
                retry_after: None,
                response_internal: Vec::new(),
                final_status: None,
                answer: None,
            })
        })
    }

    pub fn context_id(&self) -> u32 {
        self.context_id
    }

    fn config(&self) -> Rc<Config> {
        self.vm.config.clone()
    }

    fn log(&self, level: LogLevel, msg: &str) {
        host::log(level, &format!("model-workers[{}]: {msg}", self.context_id));
    }

    // ---- request path ---------------------------------------------------------------

    pub fn on_request_headers(&mut self, end_of_stream: bool) -> Action {
        let config = self.config();
        self.started_ms = host::now_ms();
        self.vm.metrics.request();
        // Internal headers are ours alone: whatever the client sent is dropped, whatever
        // happens next (the route must never see a client-chosen cluster).
        // One host call for all headers; everything below reads from it.
        let all = host::headers(MapType::HttpRequestHeaders);
        let (mut method, mut content_type, mut content_encoding, mut content_length) = (None, None, None, None);
        for (name, value) in &all {
            match name.as_str() {
                n if n.starts_with(INTERNAL_PREFIX) || n == config.settings.routing_header => {
                    host::remove_header(MapType::HttpRequestHeaders, n);
                }
                ":method" => join_value(&mut method, value),
                ":path" => self.client_path = String::from_utf8_lossy(value).into_owned(),
                "content-type" => join_value(&mut content_type, value),
                "content-encoding" => join_value(&mut content_encoding, value),
                "content-length" => join_value(&mut content_length, value),
                _ => {}
            }
        }
        let method = method.unwrap_or_default();
        let head = RequestHead {
            method: &method,
            path: &self.client_path,
            content_type: content_type.as_deref(),
            content_encoding: content_encoding.as_deref(),
            content_length: content_length.as_deref(),
            end_of_stream,
        };
        match request::classify(&config, &head) {
            HeadVerdict::ReadBody => {
                self.request_headers = all
                    .into_iter()
                    .filter(|(n, _)| !n.starts_with(INTERNAL_PREFIX) && *n != config.settings.routing_header)
                    .collect();
                self.phase = Phase::ReadingBody;
                Action::Pause
            }
            HeadVerdict::ListModels { head_only } => {
                self.phase = Phase::Done;
                let body = if head_only { "" } else { self.vm.models_json.as_str() };
                host::send_response(200, &[("content-type", "application/json")], body.as_bytes());
                Action::Pause
            }
            HeadVerdict::Reject(e) => self.reject(&e),
        }
    }

    fn reject(&mut self, e: &ApiError) -> Action {
        self.phase = Phase::Done;
        self.vm.metrics.rejected();
        self.log(LogLevel::Debug, &format!("rejected with {}: {}", e.status, e.code));
        host::send_response(e.status, &[("content-type", "application/json")], e.to_json().as_bytes());
        Action::Pause
    }

    pub fn on_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if self.phase != Phase::ReadingBody {
            return Action::Continue;
        }
        let config = self.config();
        if body_size > config.settings.max_body_bytes {
            return self.reject(&ApiError::body_too_large(config.settings.max_body_bytes));
        }
        if !end_of_stream {
            return Action::Pause;
        }
        let Some(body) = host::buffer(BufferType::HttpRequestBody, body_size) else {
            return self.reject(&ApiError::invalid_request("unreadable_body", "Request body could not be read"));
        };
        let now = host::now_ms();
        // Every model's breaker in one shared-data read.
        let breakers = self.vm.breakers.read(&config);
        let cooling = |m: ModelId| {
            let enabled = config.model(m).is_some_and(|model| model.cooldown.failures > 0);
            enabled && breakers.as_ref().and_then(|t| t.get(m.0 as usize)).is_some_and(|b| b.is_open(now))
        };
        let routed = {
            let mut local = self.vm.local_tickets.borrow_mut();
            let mut tickets = SharedTickets { fallback: &mut local };
            request::route(&config, &body, &mut tickets, &cooling)
        };
        self.breakers = breakers;
        let mut routed = match routed {
            Ok(r) => r,
            Err(e) => return self.reject(&e),
        };
        // The failover owns the candidate chain from here on.
        let failover = Failover::new(std::mem::take(&mut routed.chain), config.settings.max_attempts);
        let Some(first) = failover.first() else {
            return self.reject(&ApiError::unknown_model(&routed.scan.model));
        };
        let chain_len = failover.candidate_count();
        self.failover = Some(failover);
        if let Target::Worker(w) = routed.target {
            self.vm.metrics.worker_request(w);
        }
        let Some(plan) = request::plan_attempt(&config, first, &body, &routed.scan, &self.client_path) else {
            return self.reject(&ApiError::new(500, "server_error", "internal_error", "could not prepare the request"));
        };

        // Attempt 1 goes through the route: splice the model in place while the headers are
        // paused (only the bytes up to the model literal cross the VM boundary).
        host::splice_buffer(BufferType::HttpRequestBody, plan.replaced, &plan.edit);
        let req = MapType::HttpRequestHeaders;
        host::remove_header(req, "transfer-encoding");
        host::set_header(req, "content-length", &plan.body_len.to_string());
        host::set_header(req, &config.settings.routing_header, &plan.model.cluster);
        if plan.replaces_client_auth() {
            for h in CLIENT_AUTH_HEADERS {
                host::remove_header(req, h);
            }
        }
        for (k, v) in plan.auth_headers() {
            host::set_header(req, k, v);
        }
        if let Some(p) = &plan.path {
            host::set_header(req, ":path", p);
        }
        if let Some(a) = plan.authority {
            host::set_header(req, ":authority", a);
        }
        host::clear_route_cache();

        let timeout = plan.model.retry.timeout_ms;
        if host::log_enabled(LogLevel::Debug) {
            self.log(
                LogLevel::Debug,
                &format!("`{}` → model `{}` (cluster `{}`)", routed.scan.model, plan.model.name, plan.model.cluster),
            );
        }
        // Keep what a later attempt needs only if there can be one.
        let can_retry = config.settings.max_attempts != Some(1) && (chain_len > 1 || plan.model.retry.max_retries > 0);
        if can_retry {
            self.body = body;
        } else {
            self.request_headers = Vec::new();
        }
        self.routed = Some(routed);
        self.phase = Phase::Upstream;
        self.attempt_started_ms = now;
        self.vm.schedule(
            self.attempt_started_ms.saturating_add(timeout),
            TimerKind::AttemptTimeout(1),
            self.me.clone(),
        );
        Action::Continue
    }

    // ---- response path (attempt 1, through the route) ---------------------------------

    pub fn on_response_headers(&mut self, end_of_stream: bool, via: &dyn Context) -> Action {
        match self.phase {
            Phase::Upstream => {}
            Phase::Failover => return Action::Pause,
            _ => return Action::Continue,
        }
        let mut status = 502;
        let mut retry_after = None;
        self.response_internal.clear();
        for (name, value) in host::headers(MapType::HttpResponseHeaders) {
            match name.as_str() {
                ":status" => status = std::str::from_utf8(&value).ok().and_then(|v| v.parse().ok()).unwrap_or(502),
                "retry-after" => retry_after = std::str::from_utf8(&value).ok().map(str::to_string),
                n if n.starts_with(INTERNAL_PREFIX) => self.response_internal.push(name),
                _ => {}
            }
        }
        self.retry_after = retry_after;
        if (200..300).contains(&status) && self.is_stream() && !end_of_stream {
            // Hold the headers until the first event shows whether the stream is an error.
            self.peek_status = status;
            self.phase = Phase::PeekStream;
            return Action::Pause;
        }
        let outcome = if status == 503 && !from_upstream() { Outcome::Reset } else { Outcome::Status(status) };
        self.first_attempt_ended(status, outcome, via)
    }

    /// Attempt 1 (through the route) ended with `outcome`; its response headers are still held.
    fn first_attempt_ended(&mut self, status: u16, outcome: Outcome, via: &dyn Context) -> Action {
        let config = self.config();
        let retry_after = self.retry_after.take();
        let (model, next) = self.end_attempt(outcome, retry_after.as_deref());
        match next {
            Next::Accept => {
                self.final_status = Some(status);
                self.answer = model;
                self.annotate_pass_through(model.map(|m| (m, status)));
                // No later attempt: free the stored request.
                self.body = Vec::new();
                self.request_headers = Vec::new();
                if config.settings.response_model == ResponseModel::Worker && self.is_worker() && !self.is_stream() {
                    host::remove_header(MapType::HttpResponseHeaders, "content-length");
                    self.phase = Phase::RewriteResponse;
                } else {
                    self.phase = Phase::PassThrough;
                }
                Action::Continue
            }
            Next::GiveUp => {
                // The last failure is this very response: pass it on, with the trail.
                self.final_status = Some(status);
                self.annotate_pass_through(None);
                self.phase = Phase::PassThrough;
                Action::Continue
            }
            Next::Retry { delay_ms, .. } => {
                self.log(LogLevel::Info, &format!("attempt 1 failed ({}), failing over", outcome.label()));
                self.phase = Phase::Failover;
                self.next_attempt(delay_ms, via, false);
                Action::Pause
            }
        }
    }

    pub fn on_response_body(&mut self, body_size: usize, end_of_stream: bool, via: &dyn Context) -> Action {
        match self.phase {
            Phase::Failover => Action::Pause,
            Phase::PeekStream => {
                let buf = host::buffer(BufferType::HttpResponseBody, body_size).unwrap_or_default();
                match sse::first_event_is_error(&buf, end_of_stream) {
                    None => Action::Pause,
                    Some(is_error) => {
                        let status = self.peek_status;
                        let outcome = if is_error { Outcome::StreamError } else { Outcome::Status(status) };
                        self.first_attempt_ended(status, outcome, via)
                    }
                }
            }
            Phase::RewriteResponse => {
                if !end_of_stream {
                    return Action::Pause;
                }
                if let Some(b) = host::buffer(BufferType::HttpResponseBody, body_size) {
                    if let Some(new) = self.rewrite_response_model(&b) {
                        host::set_buffer(BufferType::HttpResponseBody, body_size, &new);
                    }
                }
                self.phase = Phase::PassThrough;
                Action::Continue
            }
            _ => Action::Continue,
        }
    }

    fn annotate_pass_through(&self, answer: Option<(ModelId, u16)>) {
        // The `x-model-workers-*` namespace is the filter's, in responses too: a provider
        // cannot speak for the filter.
        for name in &self.response_internal {
            host::remove_header(MapType::HttpResponseHeaders, name);
        }
        for (k, v) in self.outcome_headers(answer) {
            host::set_header(MapType::HttpResponseHeaders, k, &v);
        }
    }

    fn outcome_headers(&self, answer: Option<(ModelId, u16)>) -> Vec<(&'static str, Cow<'_, str>)> {
        let config = &self.vm.config;
        let mut out = Vec::with_capacity(3);
        if let Some(model) = answer.and_then(|(m, _)| config.model(m)) {
            out.push((H_MODEL, Cow::Borrowed(model.name.as_str())));
        }
        if let Some(Routed { target: Target::Worker(w), .. }) = &self.routed {
            if let Some(worker) = config.worker(*w) {
                out.push((H_WORKER, Cow::Borrowed(worker.name.as_str())));
            }
        }
        if let Some(f) = &self.failover {
            out.push((H_ATTEMPTS, Cow::Owned(f.trail_header(config, answer))));
        }
        out
    }

    fn is_worker(&self) -> bool {
        matches!(self.routed, Some(Routed { target: Target::Worker(_), .. }))
    }

    fn is_stream(&self) -> bool {
        self.routed.as_ref().is_some_and(|r| r.scan.stream)
    }

    /// Spice's `response_model: worker`: the body's top-level `model` becomes the worker name.
    fn rewrite_response_model(&self, b: &[u8]) -> Option<Vec<u8>> {
        let Some(Routed { target: Target::Worker(w), .. }) = &self.routed else {
            return None;
        };
        let name = &self.vm.config.worker(*w)?.name;
        let scan = body::scan(b).ok()?;
        body::rewrite_model(b, scan.model_span, name)
    }

    // ---- later attempts (callouts) -----------------------------------------------------

    /// Start the failover's current attempt now, or after `delay_ms` via a root timer.
    fn next_attempt(&mut self, delay_ms: u64, via: &dyn Context, via_root: bool) {
        let attempt = self.failover.as_ref().map_or(0, Failover::attempt);
        if delay_ms > 0 {
            self.vm.schedule(
                host::now_ms().saturating_add(delay_ms),
                TimerKind::StartAttempt(attempt),
                self.me.clone(),
            );
            return;
        }
        self.dispatch(via, via_root);
    }

    fn dispatch(&mut self, via: &dyn Context, via_root: bool) {
        let config = self.config();
        loop {
            let (Some(f), Some(routed)) = (self.failover.as_ref(), self.routed.as_ref()) else {
                return;
            };
            let Some(model) = f.current() else {
                return self.give_up();
            };
            let Some(plan) = request::plan_attempt(&config, model, &self.body, &routed.scan, &self.client_path) else {
                return self.give_up();
            };
            // The client's headers minus framing, Envoy-internal ones and whatever this
            // attempt sets itself (`dispatch_http_call` takes text: a non-UTF-8 value is dropped).
            let mut headers: Vec<(&str, &str)> = Vec::with_capacity(self.request_headers.len() + 4);
            for (k, v) in &self.request_headers {
                let k = k.as_str();
                let skip = is_hop_or_framing(k)
                    || k.starts_with("x-envoy-")
                    || (plan.replaces_client_auth() && CLIENT_AUTH_HEADERS.contains(&k))
                    || plan.auth_headers().any(|(a, _)| a == k)
                    || (k == ":path" && plan.path.is_some())
                    || (k == ":authority" && plan.authority.is_some());
                if let (false, Ok(v)) = (skip, std::str::from_utf8(v)) {
                    headers.push((k, v));
                }
            }
            if let Some(p) = &plan.path {
                headers.push((":path", p));
            }
            if let Some(a) = plan.authority {
                headers.push((":authority", a));
            }
            headers.extend(plan.auth_headers().map(|(k, v)| (k as &str, v)));
            let body = plan.full_body(&self.body);
            let len = body.len().to_string();
            headers.push(("content-length", &len));
            let timeout_ms = self.callout_timeout_ms(model);
            let res = via.dispatch_http_call(
                &plan.model.cluster,
                headers,
                Some(&body),
                vec![],
                Duration::from_millis(timeout_ms),
            );
            self.attempt_started_ms = host::now_ms();
            match res {
                Ok(token) => {
                    self.pending_token = Some(token);
                    if via_root {
                        self.vm.callouts.borrow_mut().insert(token, self.me.clone());
                    }
                    return;
                }
                Err(status) => {
                    self.log(
                        LogLevel::Warn,
                        &format!("could not dispatch to cluster `{}`: {status:?}", plan.model.cluster),
                    );
                    match self.end_attempt(Outcome::Reset, None).1 {
                        Next::Retry { delay_ms: 0, .. } => continue,
                        Next::Retry { delay_ms, .. } => return self.next_attempt(delay_ms, via, via_root),
                        Next::Accept | Next::GiveUp => return self.give_up(),
                    }
                }
            }
        }
    }

    pub fn on_callout_response(&mut self, token: u32, body_size: usize, via: &dyn Context, via_root: bool) {
        if self.pending_token != Some(token) || self.phase != Phase::Failover {
            return;
        }
        self.pending_token = None;
        let config = self.config();
        let headers = host::headers(MapType::HttpCallResponseHeaders);
        let status = headers
            .iter()
            .find(|(k, _)| k == ":status")
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
            .and_then(|s| s.parse::<u16>().ok());
        let body = host::buffer(BufferType::HttpCallResponseBody, body_size).unwrap_or_default();
        let elapsed = host::now_ms().saturating_sub(self.attempt_started_ms);
        let timeout = self.failover.as_ref().and_then(Failover::current).map_or(0, |m| self.callout_timeout_ms(m));
        let mut outcome = classify_callout(status, &body, elapsed, timeout);
        if matches!(outcome, Outcome::Status(200..=299))
            && self.is_stream()
            && sse::first_event_is_error(&body, true) == Some(true)
        {
            outcome = Outcome::StreamError;
        }
        // Only a provider's own answer is worth passing on if everything fails.
        let status = match outcome {
            Outcome::Status(s) => Some(s),
            Outcome::Reset | Outcome::Timeout | Outcome::StreamError => None,
        };
        let retry_after =
            headers.iter().find(|(k, _)| k == "retry-after").and_then(|(_, v)| std::str::from_utf8(v).ok());
        let (model, next) = self.end_attempt(outcome, retry_after);
        match next {
            Next::Accept => {
                self.answer = model;
                let answer = model.zip(status);
                let body =
                    if config.settings.response_model == ResponseModel::Worker && self.is_worker() && !self.is_stream()
                    {
                        self.rewrite_response_model(&body).unwrap_or(body)
                    } else {
                        body
                    };
                self.respond(status.unwrap_or(502), &headers, &body, answer);
            }
            Next::Retry { delay_ms, .. } => {
                self.log(LogLevel::Info, &format!("attempt failed ({}), failing over", outcome.label()));
                if let Some(s) = status {
                    self.last_failure = Some(Stored { status: s, headers, body });
                }
                self.next_attempt(delay_ms, via, via_root);
            }
            Next::GiveUp => {
                if let Some(s) = status {
                    self.last_failure = Some(Stored { status: s, headers, body });
                }
                self.give_up();
            }
        }
    }

    /// A callout's whole-response timeout: a buffered stream may run long (`stream_timeout`);
    /// otherwise the model's attempt timeout.
    fn callout_timeout_ms(&self, m: ModelId) -> u64 {
        let config = &self.vm.config;
        if self.is_stream() {
            return config.settings.stream_timeout_ms;
        }
        config.model(m).map_or(0, |m| m.retry.timeout_ms)
    }

    /// Every attempt failed: the last upstream error if there is one, else a clear 503/504.
    fn give_up(&mut self) {
        if let Some(s) = self.last_failure.take() {
            return self.respond(s.status, &s.headers, &s.body, None);
        }
        let config = self.config();
        let target = self.routed.as_ref().map_or("", |r| config.target_name(r.target)).to_string();
        let trail = self.failover.as_ref().map(|f| f.trail_header(&config, None)).unwrap_or_default();
        let all_timeouts =
            self.failover.as_ref().is_some_and(|f| f.trail().iter().all(|(_, o)| *o == Outcome::Timeout));
        let mut e = ApiError::all_failed(&target, &trail);
        if all_timeouts {
            e.status = 504;
        }
        let ours: Vec<(&str, String)> =
            self.outcome_headers(None).into_iter().map(|(k, v)| (k, v.into_owned())).collect();
        let mut hs: Vec<(&str, &str)> = vec![("content-type", "application/json")];
        hs.extend(ours.iter().map(|(k, v)| (*k, v.as_str())));
        self.phase = Phase::Done;
        self.final_status = Some(e.status);
        host::send_response(e.status, &hs, e.to_json().as_bytes());
    }

    fn respond(&mut self, status: u16, headers: &[(String, Vec<u8>)], body: &[u8], answer: Option<(ModelId, u16)>) {
        let ours: Vec<(&str, String)> =
            self.outcome_headers(answer).into_iter().map(|(k, v)| (k, v.into_owned())).collect();
        let mut hs: Vec<(&str, &str)> = headers
            .iter()
            .filter(|(k, _)| !k.starts_with(':') && !is_hop_or_framing(k) && !k.starts_with(INTERNAL_PREFIX))
            .filter_map(|(k, v)| std::str::from_utf8(v).ok().map(|v| (k.as_str(), v)))
            .collect();
        hs.extend(ours.iter().map(|(k, v)| (*k, v.as_str())));
        self.phase = Phase::Done;
        self.final_status = Some(status);
        host::send_response(status, &hs, body);
    }

    /// The running attempt ended with `outcome`: book-keeping, then the failover's decision.
    fn end_attempt(&mut self, outcome: Outcome, retry_after: Option<&str>) -> (Option<ModelId>, Next) {
        let model = self.failover.as_ref().and_then(Failover::current);
        if let Some(m) = model {
            self.attempt_ended(m, outcome, retry_after);
        }
        let config = self.config();
        let next = self.failover.as_mut().map_or(Next::GiveUp, |f| f.record(outcome, &config));
        (model, next)
    }

    /// Book-keeping for every attempt's end: metrics and the shared breaker.
    fn attempt_ended(&self, m: ModelId, outcome: Outcome, retry_after: Option<&str>) {
        let now = host::now_ms();
        self.vm.metrics.attempt(m, outcome, now.saturating_sub(self.attempt_started_ms));
        let ra = retry_after.and_then(parse_retry_after);
        let known = self.breakers.as_ref().and_then(|t| t.get(m.0 as usize)).copied();
        if let Transition::Opened { for_ms } = self.vm.breakers.record(&self.vm.config, m, outcome, ra, now, known) {
            self.vm.metrics.cooldown_opened(m);
            let name = self.vm.config.model(m).map_or("?", |m| m.name.as_str());
            self.log(LogLevel::Info, &format!("model `{name}` cooling down for {for_ms} ms after {}", outcome.label()));
        }
    }

    /// The stream is over: worker-level metrics.
    pub fn on_log(&self) {
        let Some(Routed { target: Target::Worker(w), .. }) = &self.routed else { return };
        let attempts = self.failover.as_ref().map_or(1, Failover::attempt);
        let fell_back = self.answer.is_some() && self.answer != self.failover.as_ref().and_then(Failover::first);
        let latency = host::now_ms().saturating_sub(self.started_ms);
        self.vm.metrics.worker_done(*w, self.final_status.unwrap_or(0), attempts, fell_back, latency);
    }

    // ---- timers --------------------------------------------------------------------------

    pub fn on_timer(&mut self, kind: TimerKind, via: &dyn Context) {
        let attempt = self.failover.as_ref().map_or(0, Failover::attempt);
        match kind {
            TimerKind::AttemptTimeout(n)
                if n == attempt && matches!(self.phase, Phase::Upstream | Phase::PeekStream) =>
            {
                match self.end_attempt(Outcome::Timeout, None).1 {
                    Next::Retry { delay_ms, .. } => {
                        self.log(LogLevel::Info, "attempt 1 timed out, failing over");
                        self.phase = Phase::Failover;
                        self.next_attempt(delay_ms, via, true);
                    }
                    Next::Accept | Next::GiveUp => self.give_up(),
                }
            }
            TimerKind::StartAttempt(n) if n == attempt && self.phase == Phase::Failover => self.dispatch(via, true),
            _ => {}
        }
    }
}

/// The route answered itself (connection failure, reset, no healthy upstream) rather than
/// passing an upstream response on.
fn from_upstream() -> bool {
    match host::property(&["response", "code_details"]) {
        Some(d) => d.as_slice() == b"via_upstream",
        None => true,
    }
}

fn is_hop_or_framing(name: &str) -> bool {
    matches!(
        name,
        "content-length"
            | "transfer-encoding"
            | "connection"
            | "keep-alive"
            | "proxy-connection"
            | "upgrade"
            | "te"
            | "trailer"
    )
}

/// Header values as text; a repeated header reads as its values joined by `, ` (as Envoy's own
/// single-value lookup does), so `content-type` twice is never taken for one valid value.
fn join_value(slot: &mut Option<String>, value: &[u8]) {
    let v = String::from_utf8_lossy(value);
    match slot {
        Some(s) => {
            s.push_str(", ");
            s.push_str(&v);
        }
        None => *slot = Some(v.into_owned()),
    }
}
