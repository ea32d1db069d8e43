//! The downstream filter (before the router), one per request: classify, read the body,
//! pick the chain, write the attempt plan, prepare attempt 1; on the way back, name the
//! outcome in `x-model-workers-*` headers (or answer a clear error when no provider did).
//!
//! Envoy's router makes every attempt; each one's upstream filter ([`super::upstream`])
//! rewrites it for its model. So every attempt streams and passes through untouched.

use std::rc::Rc;

use crate::attempt::{header_edits, AttemptHead};
use crate::config::{Config, ModelId, Target};
use crate::error::ApiError;
use crate::plan::{Plan, NEXT_KEY, PLAN_KEY};
use crate::request::{
    self, join_value, HeadVerdict, RequestHead, CLIENT_AUTH_HEADERS, INTERNAL_PREFIX, ROUTER_CONTROL_HEADERS,
};
use crate::status::status_json;

use super::host::{apply, Body, Flow, Host, Level, Map};
use super::state::{ModelTable, SharedTickets};
use super::translated;
use super::vm::Vm;

mod response;

/// Up to this many bytes before the model literal go back to Envoy in one call with it;
/// beyond, as a second call straight from the body (no copy in the VM).
const SMALL_HEAD: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Nothing seen yet.
    Start,
    /// Answered locally, or nothing more to do.
    Done,
    /// Buffering the request body.
    ReadingBody,
    /// The router has the request; waiting for the final response.
    Routed,
    /// The final response passes through.
    PassThrough,
    /// The final response is Envoy's own reply after every attempt failed: its body is
    /// replaced by this error.
    Replace,
    /// `response_model: worker`: the JSON answer's `model` becomes the worker name.
    RewriteResponse,
}

pub struct Downstream {
    vm: Rc<Vm>,
    context_id: u32,
    phase: Phase,
    started_ms: u64,
    client_path: String,
    client_authority: String,
    client_auth: Vec<(String, String)>,
    /// Values of the config's `session_headers` (sticky workers' keys), in that order.
    session_headers: Vec<Option<String>>,
    body_size: usize,
    target: Option<Target>,
    stream: bool,
    first: Option<ModelId>,
    /// Set when the final response is known.
    final_status: u16,
    answer: Option<ModelId>,
    attempts: u32,
    replacement: String,
}

impl Downstream {
    pub fn new(vm: Rc<Vm>, context_id: u32) -> Downstream {
        Downstream {
            vm,
            context_id,
            phase: Phase::Start,
            started_ms: 0,
            client_path: String::new(),
            client_authority: String::new(),
            client_auth: Vec::new(),
            session_headers: Vec::new(),
            body_size: 0,
            target: None,
            stream: false,
            first: None,
            final_status: 0,
            answer: None,
            attempts: 0,
            replacement: String::new(),
        }
    }

    fn config(&self) -> Rc<Config> {
        self.vm.config.clone()
    }

    fn log(&self, host: &dyn Host, level: Level, msg: &str) {
        if host.log_enabled(level) {
            host.log(level, &format!("model-workers[{}]: {msg}", self.context_id));
        }
    }

    // ---- request --------------------------------------------------------------------------

    pub fn on_request_headers(&mut self, host: &mut dyn Host, end_of_stream: bool) -> Flow {
        let config = self.config();
        self.started_ms = host.now_ms();
        self.vm.metrics.request(host);
        // Internal and router-control headers are the filter's alone, whatever happens next:
        // the route must never see a client-chosen cluster, retry count or timeout.
        let all = host.headers(Map::Request);
        let (mut method, mut content_type, mut content_encoding, mut content_length) = (None, None, None, None);
        self.session_headers = vec![None; config.session_headers.len()];
        for (name, value) in all.iter() {
            if let Some(i) = config.session_headers.iter().position(|h| h.as_str() == name) {
                if let Some(slot) = self.session_headers.get_mut(i) {
                    join_value(slot, value);
                }
            }
            match name {
                n if n.starts_with(INTERNAL_PREFIX)
                    || n == config.settings.routing_header
                    || ROUTER_CONTROL_HEADERS.contains(&n) =>
                {
                    host.remove_header(Map::Request, n);
                }
                ":method" => join_value(&mut method, value),
                ":path" => self.client_path = String::from_utf8_lossy(value).into_owned(),
                ":authority" => self.client_authority = String::from_utf8_lossy(value).into_owned(),
                "content-type" => join_value(&mut content_type, value),
                "content-encoding" => join_value(&mut content_encoding, value),
                "content-length" => join_value(&mut content_length, value),
                n if CLIENT_AUTH_HEADERS.contains(&n) || n == "anthropic-version" => {
                    if let Ok(v) = std::str::from_utf8(value) {
                        self.client_auth.push((n.to_string(), v.to_string()));
                    }
                }
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
                self.phase = Phase::ReadingBody;
                Flow::Pause
            }
            HeadVerdict::ListModels { head_only } => {
                self.phase = Phase::Done;
                let body = if head_only { "" } else { self.vm.models_json.as_str() };
                if !host.send_response(200, &[("content-type", "application/json")], body.as_bytes()) {
                    // As in `reject`: never leave the request hanging.
                    return Flow::Continue;
                }
                Flow::Pause
            }
            HeadVerdict::Status { head_only } => {
                self.phase = Phase::Done;
                let body = if head_only {
                    String::new()
                } else {
                    let states = self.vm.models.snapshot(host);
                    let counts = self.vm.metrics.counts(host);
                    status_json(&self.vm.config, &states, &counts, host.now_ms())
                };
                let headers = [("content-type", "application/json"), ("cache-control", "no-store")];
                if !host.send_response(200, &headers, body.as_bytes()) {
                    return Flow::Continue;
                }
                Flow::Pause
            }
            HeadVerdict::Reject(e) => self.reject(host, &e),
        }
    }

    fn reject(&mut self, host: &mut dyn Host, e: &ApiError) -> Flow {
        self.phase = Phase::Done;
        self.vm.metrics.rejected(host);
        if host.log_enabled(Level::Debug) {
            self.log(host, Level::Debug, &format!("rejected with {}: {}", e.status, e.code));
        }
        if host.send_response(e.status, &[("content-type", "application/json")], e.to_json().as_bytes()) {
            Flow::Pause
        } else {
            // The host refused the local reply. Pausing would leave the request hanging; let it
            // go on unprepared instead: with no plan in filter state the route's matcher finds
            // no cluster (and the routing header was removed), so Envoy answers it itself and
            // nothing reaches a provider.
            self.log(host, Level::Warn, "could not send a local reply; Envoy answers the unrouted request");
            Flow::Continue
        }
    }

    pub fn on_request_body(&mut self, host: &mut dyn Host, body_size: usize, end_of_stream: bool) -> Flow {
        if self.phase != Phase::ReadingBody {
            return Flow::Continue;
        }
        self.body_size = body_size;
        let max = self.vm.config.settings.max_body_bytes;
        if body_size > max {
            return self.reject(host, &ApiError::body_too_large(max));
        }
        if !end_of_stream {
            return Flow::Pause;
        }
        self.route(host)
    }

    /// Trailers end the request: the body is complete.
    pub fn on_request_trailers(&mut self, host: &mut dyn Host) -> Flow {
        if self.phase != Phase::ReadingBody {
            return Flow::Continue;
        }
        self.route(host)
    }

    fn route(&mut self, host: &mut dyn Host) -> Flow {
        let config = self.config();
        let Some(body) = host.body(Body::Request, 0, self.body_size) else {
            return self.reject(host, &ApiError::invalid_request("unreadable_body", "Request body could not be read"));
        };
        let now = host.now_ms();
        // Every model's state (breaker, latency, in flight) in one shared-data read.
        let states = self.vm.models.read(host);
        let states = states.as_deref().unwrap_or_default();
        let cooling = |m: ModelId| {
            let enabled = config.model(m).is_some_and(|model| model.cooldown.failures > 0);
            enabled && states.get(m.0 as usize).is_some_and(|s| s.breaker.is_open(now))
        };
        let load = ModelTable::load(states);
        let view = request::View { cooling: &cooling, load: &load, random: self.vm.random() };
        let routed = {
            let mut local = self.vm.local_tickets.borrow_mut();
            let mut tickets = SharedTickets { host: &mut *host, fallback: &mut local };
            request::route(&config, &body, &self.session_headers, &mut tickets, &view)
        };
        let routed = match routed {
            Ok(r) => r,
            Err(e) => return self.reject(host, &e),
        };
        let mut attempts = Plan::attempts(&config, &routed.chain);
        for a in &mut attempts {
            a.clean = states.get(a.model.0 as usize).is_some_and(|s| s.breaker == Default::default());
        }
        let Some(first) = attempts.first().map(|a| a.model) else {
            return self.reject(host, &ApiError::unknown_model(&routed.scan.model));
        };
        // A request some planned model's API cannot take is refused now, naming the field,
        // before any attempt (never a silent drop, never a failover that cannot work).
        let mut checked = false;
        for m in attempts.iter().filter_map(|a| config.model(a.model)).filter(|m| m.translates()) {
            if !m.serves(&self.client_path) {
                return self.reject(host, &ApiError::unsupported_endpoint(&m.name, &self.client_path));
            }
            if !checked {
                checked = true;
                if let Some(Err(e)) = translated::request_body(m, &body) {
                    return self.reject(host, &ApiError::untranslatable(&m.name, &e.param, &e.message));
                }
            }
        }
        let could_not_prepare =
            || ApiError::new(500, "server_error", "internal_error", "could not prepare the request");
        let Some(edit) = request::plan_attempt(&config, first, &body, &routed.scan) else {
            return self.reject(host, &could_not_prepare());
        };
        // Attempt 1 is prepared here, once: the model literal is replaced in place and its
        // headers set. Envoy's buffer API replaces only a prefix, so the bytes before the
        // literal go back too: with it, when they are few; else as a second prepend, straight
        // from the body already in the VM (a large prompt is never copied inside the VM).
        let head = body.get(..edit.head).unwrap_or_default();
        let spliced = if head.len() <= SMALL_HEAD {
            host.splice_body(Body::Request, edit.replaced, &[head, &edit.literal].concat())
        } else {
            host.splice_body(Body::Request, edit.replaced, &edit.literal) && host.splice_body(Body::Request, 0, head)
        };
        drop(body);
        if !spliced {
            return self.reject(host, &could_not_prepare());
        }
        let edits = header_edits(&AttemptHead {
            model: edit.model,
            client_path: &self.client_path,
            client_authority: &self.client_authority,
            client_auth: &[],
            keyed_before: false,
            later: false,
            content_length: Some(edit.body_len),
            routing_header: Some(&config.settings.routing_header),
        });
        apply(host, Map::Request, &edits);

        // The plan for every attempt (Envoy's router makes them; see `super::upstream`).
        let plan = Plan::for_request(
            &config,
            attempts,
            (edit.head, edit.head + edit.literal.len(), edit.body_len),
            routed.scan.stream,
            std::mem::take(&mut self.client_path),
            std::mem::take(&mut self.client_authority),
            std::mem::take(&mut self.client_auth),
        );
        let per_try_ms = plan.per_try_ms;
        host.set_property(PLAN_KEY, &plan.encode(&config));
        host.set_property(NEXT_KEY, edit.model.name.as_bytes());
        let retries = plan.attempts.len().saturating_sub(1) as u64;
        host.set_header(Map::Request, "x-envoy-max-retries", &crate::body::u64_string(retries));
        host.set_header(
            Map::Request,
            "x-envoy-upstream-rq-per-try-timeout-ms",
            &crate::body::u64_string(per_try_ms.max(1)),
        );
        host.clear_route_cache();

        if host.log_enabled(Level::Debug) {
            self.log(
                host,
                Level::Debug,
                &format!(
                    "`{}` → model `{}` (cluster `{}`), {} attempts planned",
                    routed.scan.model,
                    edit.model.name,
                    edit.model.cluster,
                    plan.attempts.len()
                ),
            );
        }
        if let Target::Worker(w) = routed.target {
            self.vm.metrics.worker_request(host, w);
        }
        self.target = Some(routed.target);
        self.stream = routed.scan.stream;
        self.first = Some(first);
        self.phase = Phase::Routed;
        Flow::Continue
    }
}
