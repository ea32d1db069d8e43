//! The upstream filter: one per attempt, on the model's cluster (before Envoy's upstream
//! codec). It reads the plan the downstream filter wrote, learns which attempt it is and for
//! which model, points the route's matcher at the next attempt's model, rewrites this attempt
//! for its model (attempt 1 was prepared downstream), waits the backoff of a same-model retry,
//! and judges the outcome: a retryable failure that is not the last attempt becomes status
//! [`RETRY_STATUS`], which makes the router retry. Every outcome feeds the metrics, the
//! shared breaker and the trail the downstream filter reports.
//!
//! Envoy facts this relies on (1.40): header edits here change the router's own request
//! header map, so they persist into later attempts — every attempt sets all it owns; the body
//! is the router's retained copy each time; `on_done` runs for every attempt, including resets
//! and timeouts; reading request headers in the response phase fails (never done here).

mod outcome;

use std::cell::RefCell;
use std::rc::{Rc, Weak};

use crate::attempt::{header_edits, AttemptHead};
use crate::body;
use crate::config::{Config, ModelId};
use crate::error::ApiError;
use crate::failover::Outcome;
use crate::inject;
use crate::plan::{Plan, TRAIL_KEY};
use crate::sse;

use super::host::{apply, Body, Flow, Host, Level, Map};
use super::translated::{self, Translation};
use super::vm::{TimerKind, Vm};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Not ours (no usable plan, or past its last attempt): everything passes.
    Off,
    /// Attempt ≥ 2: the body's `model` is rewritten at its end.
    RewriteBody,
    /// An attempt whose model rewrites the whole body (translated, or messages added): at
    /// its end, with the headers held until its length is known.
    WholeBody,
    /// Waiting for the response headers.
    AwaitHeaders,
    /// A 2xx stream's headers are held until its first event shows whether it is an error.
    Peek,
    /// A failure that will be retried: its headers are held until its body is in.
    HoldFailure,
    /// A translated non-stream answer: buffered to its end, then translated whole.
    TranslateWhole,
    /// A translated stream: each chunk is translated as it passes.
    Streaming,
    /// The outcome is recorded; the rest passes.
    Done,
}

/// What the shell does after a timer fired (outside the borrow).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resume {
    Request,
    Response,
}

pub struct Upstream {
    vm: Rc<Vm>,
    context_id: u32,
    me: Weak<RefCell<Upstream>>,
    phase: Phase,
    plan: Plan,
    /// 1-based attempt number and its model.
    n: usize,
    model: ModelId,
    started_ms: u64,
    created_ms: u64,
    /// Backoff still running / request body already rewritten.
    waiting: bool,
    body_done: bool,
    peek_status: u16,
    retry_after: Option<String>,
    recorded: bool,
    /// The model's breaker was known clean when the request was routed.
    clean: bool,
    /// This attempt counted itself in its model's in-flight attempts (shared table): its end
    /// takes it out again, exactly once.
    in_flight: bool,
    /// Set for an attempt whose model's API differs from the client's.
    translation: Option<Translation>,
    status: u16,
    /// The trail as this attempt found it (it appends its own line).
    trail: Vec<u8>,
}

impl Upstream {
    pub fn new(vm: Rc<Vm>, context_id: u32, plan: Plan) -> Rc<RefCell<Upstream>> {
        Rc::new_cyclic(|me| {
            RefCell::new(Upstream {
                vm,
                context_id,
                me: me.clone(),
                phase: Phase::Off,
                plan,
                n: 0,
                model: ModelId(0),
                started_ms: 0,
                created_ms: 0,
                waiting: false,
                body_done: false,
                peek_status: 0,
                retry_after: None,
                recorded: false,
                clean: false,
                in_flight: false,
                translation: None,
                status: 0,
                trail: Vec::new(),
            })
        })
    }

    fn config(&self) -> Rc<Config> {
        self.vm.config.clone()
    }

    fn is_last(&self) -> bool {
        self.n >= self.plan.attempts.len()
    }

    pub fn on_request_headers(&mut self, host: &mut dyn Host) -> Flow {
        let config = self.config();
        // Every earlier attempt left one trail line before this one started (its `on_done` ran
        // first), so the trail's length numbers this attempt.
        self.trail = host.property(&[TRAIL_KEY]).unwrap_or_default();
        let n = self.trail.iter().filter(|b| **b == b'\n').count().saturating_add(1);
        let Some(attempt) = self.plan.attempt(n).cloned() else {
            // More attempts than planned (a route retry policy that is not the generated one).
            host.log(
                Level::Warn,
                &format!("model-workers[{}]: attempt {n} is not in the plan; passing it on", self.context_id),
            );
            return Flow::Continue;
        };
        let Some(model) = config.model(attempt.model) else { return Flow::Continue };
        self.n = n;
        self.model = attempt.model;
        // An earlier attempt on this model failed (it is retried): its breaker counts that.
        self.clean = attempt.clean && !self.plan.attempts.iter().take(n - 1).any(|a| a.model == attempt.model);
        if let Some(count) = self.vm.models.started(host, attempt.model) {
            self.in_flight = true;
            self.vm.metrics.model_state(host, attempt.model, Some(count), None);
        }
        let now = host.now_ms();
        self.created_ms = now;
        self.started_ms = now.saturating_add(attempt.delay_ms);
        // A stream's model timeout runs to its first event; the last attempt has nothing to
        // fail over to, so it waits for Envoy's per-try timeout only.
        if self.plan.stream && !self.is_last() {
            self.schedule(self.started_ms.saturating_add(model.retry.timeout_ms), TimerKind::FirstEventDeadline);
        }
        let whole = model.rewrites_body();
        if n == 1 && !whole {
            // Prepared by the downstream filter, once.
            self.phase = Phase::AwaitHeaders;
            return Flow::Continue;
        }
        // Header edits persist across attempts: this attempt sets everything it owns.
        let keyed_before =
            self.plan.attempts.iter().take(n - 1).any(|a| config.model(a.model).is_some_and(|m| !m.auth.is_empty()));
        let content_length = (!whole).then(|| {
            let old_len = self.plan.lit_end.saturating_sub(self.plan.lit_start);
            self.plan.body_len.saturating_sub(old_len).saturating_add(json_literal(&model.model_id).len())
        });
        let edits = header_edits(&AttemptHead {
            model,
            client_path: &self.plan.client_path,
            client_authority: &self.plan.client_authority,
            client_auth: &self.plan.client_auth,
            keyed_before,
            later: n > 1,
            content_length,
            routing_header: None,
        });
        apply(host, Map::Request, &edits);
        // A rewritten body's length is known once it is rewritten: the headers wait.
        self.phase = if whole { Phase::WholeBody } else { Phase::RewriteBody };
        if attempt.delay_ms > 0 {
            self.waiting = true;
            self.schedule(now.saturating_add(attempt.delay_ms), TimerKind::BackoffDone);
            return Flow::Pause;
        }
        if whole {
            Flow::Pause
        } else {
            Flow::Continue
        }
    }

    fn schedule(&self, due_ms: u64, kind: TimerKind) {
        self.vm.schedule(due_ms, self.context_id, kind, self.me.clone());
    }

    pub fn on_request_body(&mut self, host: &mut dyn Host, body_size: usize, end_of_stream: bool) -> Flow {
        if self.phase == Phase::WholeBody {
            return self.whole_body(host, body_size, end_of_stream);
        }
        if self.phase != Phase::RewriteBody {
            return Flow::Continue;
        }
        if !end_of_stream {
            return Flow::Pause;
        }
        let config = self.config();
        let (start, end) = (self.plan.lit_start, self.plan.lit_end);
        let model_id = config.model(self.model).map_or("", |m| m.model_id.as_str());
        let prefix = if start == 0 { Some(Vec::new()) } else { host.body(Body::Request, 0, start) };
        match prefix {
            Some(mut edit) if end <= body_size && edit.len() == start => {
                edit.extend_from_slice(&json_literal(model_id));
                host.splice_body(Body::Request, end, &edit);
            }
            _ => host.log(
                Level::Warn,
                &format!("model-workers[{}]: attempt {} could not rewrite the body's model", self.context_id, self.n),
            ),
        }
        self.body_ready()
    }

    /// The request body is ready for this attempt: it goes on, unless the backoff still runs.
    fn body_ready(&mut self) -> Flow {
        self.body_done = true;
        self.phase = Phase::AwaitHeaders;
        if self.waiting {
            Flow::Pause
        } else {
            Flow::Continue
        }
    }

    /// The whole body of an attempt whose model rewrites it: its `model`, the model's
    /// messages, then the translation into the model's API; the held headers get its length.
    /// A request the model's API cannot take was refused downstream, before any attempt;
    /// should one slip through, the client gets the 400 naming the field.
    fn whole_body(&mut self, host: &mut dyn Host, body_size: usize, end_of_stream: bool) -> Flow {
        if !end_of_stream {
            return Flow::Pause;
        }
        let config = self.config();
        let Some(model) = config.model(self.model) else { return Flow::Continue };
        let body = host.body(Body::Request, 0, body_size).unwrap_or_default();
        // A translated body gets its model from the translation.
        let rewritten = if model.translates() {
            None
        } else {
            body::rewrite_model(&body, self.plan.lit_start..self.plan.lit_end, &model.model_id)
        };
        let body = rewritten.unwrap_or(body);
        let body = inject::add_messages(&body, &model.messages).unwrap_or(body);
        match translated::request_body(model, &body) {
            None => {
                host.splice_body(Body::Request, body_size, &body);
                host.set_header(Map::Request, "content-length", &body.len().to_string());
            }
            Some(Ok(out)) => {
                host.splice_body(Body::Request, body_size, &out.body);
                host.set_header(Map::Request, "content-length", &out.body.len().to_string());
                self.translation = Some(Translation::new(out.include_usage));
            }
            Some(Err(e)) => {
                let err = ApiError::untranslatable(&model.name, &e.param, &e.message);
                self.record(host, Outcome::Status(400));
                self.phase = Phase::Done;
                host.send_response(400, &[("content-type", "application/json")], err.to_json().as_bytes());
                return Flow::Pause;
            }
        }
        self.body_ready()
    }

    pub fn on_response_headers(&mut self, host: &mut dyn Host, end_of_stream: bool) -> Flow {
        if !matches!(self.phase, Phase::AwaitHeaders | Phase::RewriteBody) {
            return Flow::Continue;
        }
        let status = host
            .header(Map::Response, ":status")
            .and_then(|v| std::str::from_utf8(&v).ok()?.parse::<u16>().ok())
            .unwrap_or(502);
        if matches!(status, 429 | 503 | 529) {
            self.retry_after = host.header(Map::Response, "retry-after").and_then(|v| String::from_utf8(v).ok());
        }
        self.status = status;
        let streaming = (200..300).contains(&status) && self.plan.stream && !end_of_stream;
        if let Some(t) = self.translation.as_mut() {
            t.on_headers(host, streaming);
        }
        if streaming {
            self.peek_status = status;
            self.phase = Phase::Peek;
            return Flow::Pause;
        }
        let outcome = Outcome::Status(status);
        if outcome.is_retryable(&self.config()) && !self.is_last() && !end_of_stream {
            // Hold a failure that will be retried until its (small) error body is in: the
            // upstream codec then finishes the response and the connection goes back to the
            // pool, instead of being closed by the retry's reset.
            self.phase = Phase::HoldFailure;
            return Flow::Pause;
        }
        let retried = self.finish(host, outcome);
        if self.translation.is_some() && !retried && !end_of_stream {
            self.phase = Phase::TranslateWhole;
        }
        Flow::Continue
    }

    pub fn on_response_body(&mut self, host: &mut dyn Host, body_size: usize, end_of_stream: bool) -> Flow {
        match self.phase {
            Phase::Peek => {}
            Phase::Streaming => {
                if let Some(t) = self.translation.as_mut() {
                    t.stream_chunk(host, body_size, end_of_stream);
                }
                return Flow::Continue;
            }
            Phase::HoldFailure if !end_of_stream => return Flow::Pause,
            Phase::HoldFailure => {
                let _ = self.finish(host, Outcome::Status(self.status));
                return Flow::Continue;
            }
            Phase::TranslateWhole if !end_of_stream => return Flow::Pause,
            Phase::TranslateWhole => {
                if let Some(t) = self.translation.as_mut() {
                    t.whole(host, self.status, body_size);
                }
                self.phase = Phase::Done;
                return Flow::Continue;
            }
            _ => return Flow::Continue,
        }
        let buf = host.body(Body::Response, 0, body_size).unwrap_or_default();
        match sse::first_event_is_error(&buf, end_of_stream) {
            None => Flow::Pause,
            Some(is_error) => {
                let outcome = if is_error { Outcome::StreamError } else { Outcome::Status(self.peek_status) };
                let retried = self.finish(host, outcome);
                // The held events go out now: translated, when the model's API is not the
                // client's (an error stream the downstream filter replaces passes as it is).
                if let (Some(t), false, false) = (self.translation.as_mut(), retried, is_error) {
                    t.stream_chunk(host, body_size, end_of_stream);
                    self.phase = Phase::Streaming;
                }
                Flow::Continue
            }
        }
    }

    pub fn on_timer(&mut self, host: &mut dyn Host, kind: TimerKind) -> Option<Resume> {
        match kind {
            TimerKind::BackoffDone if self.waiting => {
                self.waiting = false;
                self.started_ms = host.now_ms();
                self.body_done.then_some(Resume::Request)
            }
            TimerKind::FirstEventDeadline if self.phase == Phase::Peek && !self.recorded => {
                let _ = self.finish(host, Outcome::Timeout);
                Some(Resume::Response)
            }
            _ => None,
        }
    }

    /// The attempt is over. Without a recorded outcome it ended before any response headers:
    /// a timeout if it ran for the per-try timeout, else a reset / connection failure.
    /// Whatever ended it (answer, reset, timeout, client cancel, the router abandoning it),
    /// its in-flight count ends here, once.
    pub fn on_done(&mut self, host: &mut dyn Host) {
        if self.n == 0 {
            return;
        }
        if self.recorded {
            if self.in_flight {
                let now = host.now_ms();
                self.write_state(host, now, None, true);
            }
            return;
        }
        let elapsed = host.now_ms().saturating_sub(self.created_ms);
        let outcome =
            if elapsed.saturating_add(25) >= self.plan.per_try_ms { Outcome::Timeout } else { Outcome::Reset };
        self.record_ending(host, outcome, true);
        // Envoy retries a reset or timeout by itself: point its matcher at the next model.
        self.advance(host);
    }
}

fn json_literal(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len() + 2);
    body::write_json_string(&mut out, s);
    out
}
