//! How an attempt's outcome is recorded: metrics, the model's shared entry (breaker, latency
//! EWMA, in-flight count), the trail the downstream filter reports, and — for a retryable
//! failure that is not the last attempt — the status that makes Envoy's router retry and the
//! matcher's next model.

use crate::cooldown::{parse_retry_after, Transition};
use crate::failover::Outcome;
use crate::plan::{self, Entry, NEXT_KEY, RETRY_STATUS, TRAIL_KEY};

use super::super::host::{Host, Level, Map};
use super::super::state::Change;
use super::{Phase, Upstream};

impl Upstream {
    /// The route's matcher reads the next attempt's model from filter state: set it when this
    /// attempt is going to be retried (never on the success path).
    pub(super) fn advance(&self, host: &mut dyn Host) {
        if let Some(next) = self.plan.attempt(self.n + 1).and_then(|a| self.vm.config.model(a.model)) {
            host.set_property(NEXT_KEY, next.name.as_bytes());
        }
    }

    /// Record the outcome; a retryable failure that is not the last attempt makes the router
    /// retry (the response headers are still held, so `:status` can change). True if so.
    pub(super) fn finish(&mut self, host: &mut dyn Host, outcome: Outcome) -> bool {
        let config = self.config();
        self.record(host, outcome);
        self.phase = Phase::Done;
        let retry = outcome.is_retryable(&config) && !self.is_last();
        if retry {
            self.advance(host);
            if !host.set_header(Map::Response, ":status", &RETRY_STATUS.to_string()) {
                host.log(
                    Level::Warn,
                    &format!("model-workers[{}]: could not mark attempt {} for retry", self.context_id, self.n),
                );
            }
            if host.log_enabled(Level::Info) {
                let name = config.model(self.model).map_or("?", |m| m.name.as_str());
                let next = self.plan.attempt(self.n + 1).map(|a| a.model);
                let how = if next == Some(self.model) { "retrying" } else { "failing over" };
                host.log(
                    Level::Info,
                    &format!(
                        "model-workers[{}]: attempt {} on `{name}` failed ({}), {how}",
                        self.context_id,
                        self.n,
                        outcome.label()
                    ),
                );
            }
        }
        retry
    }

    pub(super) fn record(&mut self, host: &mut dyn Host, outcome: Outcome) {
        self.record_ending(host, outcome, false);
    }

    /// Record the outcome (metrics, shared table, trail); `end`: the attempt is over too (its
    /// in-flight count ends in the same table write).
    pub(super) fn record_ending(&mut self, host: &mut dyn Host, outcome: Outcome, end: bool) {
        self.recorded = true;
        let config = self.config();
        let now = host.now_ms();
        self.vm.metrics.attempt(host, self.model, outcome, now.saturating_sub(self.started_ms));
        self.write_state(host, now, Some(outcome), end);
        // Attempt 1's own answer needs no trail: an empty trail tells the downstream filter
        // that attempt 1 answered (one host call less on the common path).
        if self.n == 1 && !outcome.is_retryable(&config) {
            return;
        }
        let mut trail = std::mem::take(&mut self.trail);
        plan::trail_push(&mut trail, &config, &Entry { model: self.model, outcome });
        host.set_property(TRAIL_KEY, &trail);
    }
}

impl Upstream {
    /// One update of the model's shared entry: the outcome for its breaker and latency EWMA
    /// (time to first byte: response headers, or a stream's first event; a timeout counts as
    /// its full wait), and/or the end of this attempt's in-flight count.
    pub(super) fn write_state(&mut self, host: &mut dyn Host, now: u64, outcome: Option<Outcome>, end: bool) {
        let config = self.config();
        let end = end && std::mem::take(&mut self.in_flight);
        let sample_ms = match outcome {
            Some(Outcome::Status(200..=299) | Outcome::Timeout) => Some(now.saturating_sub(self.started_ms)),
            _ => None,
        };
        let change = Change {
            outcome,
            retry_after_ms: self.retry_after.as_deref().and_then(parse_retry_after),
            now_ms: now,
            sample_ms,
            known_clean: self.clean,
            end,
        };
        let done = self.vm.models.record(host, &config, self.model, change);
        if done.in_flight.is_some() || done.ewma_ms.is_some() {
            self.vm.metrics.model_state(host, self.model, done.in_flight, done.ewma_ms);
        }
        if let (Some(Transition::Opened { for_ms }), Some(outcome)) = (done.transition, outcome) {
            self.vm.metrics.cooldown_opened(host, self.model);
            let name = config.model(self.model).map_or("?", |m| m.name.as_str());
            host.log(
                Level::Info,
                &format!("model-workers: model `{name}` cooling down for {for_ms} ms after {}", outcome.label()),
            );
        }
    }
}
