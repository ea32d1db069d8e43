//! The downstream filter on the way back: the final answer's outcome named in
//! `x-model-workers-*` headers, Envoy's own replies turned into a clear error, Spice's
//! `response_model: worker`, and the worker's metrics at the end.

use crate::body;
use crate::config::{ModelId, ResponseModel, Target};
use crate::error::ApiError;
use crate::plan::{self, Entry, Verdict, TRAIL_KEY};
use crate::request::{H_ATTEMPTS, H_MODEL, H_WORKER, INTERNAL_PREFIX};

use super::super::host::{Body, Flow, Host, Map};
use super::{Downstream, Phase};

impl Downstream {
    pub fn on_response_headers(&mut self, host: &mut dyn Host, end_of_stream: bool) -> Flow {
        if self.phase != Phase::Routed {
            return Flow::Continue;
        }
        let config = self.config();
        let mut status = 0u16;
        let mut internal = Vec::new();
        let headers = host.headers(Map::Response);
        for (name, value) in headers.iter() {
            if name == ":status" {
                status = std::str::from_utf8(value).ok().and_then(|v| v.parse().ok()).unwrap_or(0);
            } else if name.starts_with(INTERNAL_PREFIX) {
                internal.push(name);
            }
        }
        // The `x-model-workers-*` namespace is the filter's, in responses too.
        for name in &internal {
            host.remove_header(Map::Response, name);
        }
        let entries = host.property(&[TRAIL_KEY]).map(|t| plan::trail_decode(&t, &config)).unwrap_or_default();
        // Envoy's own replies (no upstream answer, a filter's local reply) are never 2xx: only
        // another status needs the host's word on where it came from.
        let from_upstream = (200..300).contains(&status)
            || host.property(&["response", "code_details"]).is_none_or(|d| d.as_slice() == b"via_upstream");
        self.attempts = u32::try_from(entries.len()).unwrap_or(u32::MAX).max(1);
        match plan::verdict(&config, entries, from_upstream, status, self.first) {
            Verdict::NoAnswer { status, trail } => {
                // Envoy's own reply (or the last error stream, still held) becomes a clear
                // error naming the worker and the attempts.
                let target = self.target.map_or("", |t| config.target_name(t));
                let mut e = ApiError::all_failed(target, &plan::trail_header(&config, &trail));
                e.status = status;
                self.final_status = status;
                host.set_header(Map::Response, ":status", &status.to_string());
                host.set_header(Map::Response, "content-type", "application/json");
                host.remove_header(Map::Response, "content-length");
                self.annotate(host, None, &trail);
                self.replacement = e.to_json();
                self.phase = if end_of_stream { Phase::Done } else { Phase::Replace };
                return Flow::Continue;
            }
            Verdict::Pass { answer, trail } => {
                self.final_status = status;
                self.answer = answer;
                self.annotate(host, answer, &trail);
            }
        }
        let is_worker = matches!(self.target, Some(Target::Worker(_)));
        if config.settings.response_model == ResponseModel::Worker && is_worker && !self.stream && !end_of_stream {
            host.remove_header(Map::Response, "content-length");
            self.phase = Phase::RewriteResponse;
        } else {
            self.phase = Phase::PassThrough;
        }
        Flow::Continue
    }

    fn annotate(&self, host: &mut dyn Host, answer: Option<ModelId>, entries: &[Entry]) {
        let config = &self.vm.config;
        if let Some(m) = answer.and_then(|m| config.model(m)) {
            host.set_header(Map::Response, H_MODEL, &m.name);
        }
        if let Some(w) = self.target.and_then(|t| match t {
            Target::Worker(w) => config.worker(w),
            Target::Model(_) => None,
        }) {
            host.set_header(Map::Response, H_WORKER, &w.name);
        }
        host.set_header(Map::Response, H_ATTEMPTS, &plan::trail_header(config, entries));
    }

    pub fn on_response_body(&mut self, host: &mut dyn Host, body_size: usize, end_of_stream: bool) -> Flow {
        match self.phase {
            Phase::Replace | Phase::RewriteResponse if !end_of_stream => Flow::Pause,
            Phase::Replace => {
                let json = std::mem::take(&mut self.replacement);
                host.splice_body(Body::Response, body_size, json.as_bytes());
                self.phase = Phase::Done;
                Flow::Continue
            }
            Phase::RewriteResponse => {
                if let Some(b) = host.body(Body::Response, 0, body_size) {
                    if let Some(new) = self.rewrite_response_model(&b) {
                        host.splice_body(Body::Response, body_size, &new);
                    }
                }
                self.phase = Phase::PassThrough;
                Flow::Continue
            }
            _ => Flow::Continue,
        }
    }

    /// Spice's `response_model: worker`: the body's top-level `model` becomes the worker name.
    fn rewrite_response_model(&self, b: &[u8]) -> Option<Vec<u8>> {
        let Some(Target::Worker(w)) = self.target else { return None };
        let name = &self.vm.config.worker(w)?.name;
        let scan = body::scan(b).ok()?;
        body::rewrite_model(b, scan.model_span, name)
    }

    /// The stream is over (Envoy destroys its filters, reset included): worker-level metrics.
    pub fn on_done(&self, host: &mut dyn Host) {
        let Some(Target::Worker(w)) = self.target else { return };
        let fell_back = self.answer.is_some() && self.answer != self.first;
        let latency = host.now_ms().saturating_sub(self.started_ms);
        self.vm.metrics.worker_done(host, w, self.final_status, self.attempts.max(1), fell_back, latency);
    }
}
