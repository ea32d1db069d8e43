//! Failover decisions for one request: which attempt comes next after a failure.
//!
//! A request walks its candidate chain (from [`crate::select::candidates`]). Each model gets
//! `1 + max_retries` attempts (exponential backoff between them) before the chain moves on;
//! `max_attempts` caps the total. Retryable: a status in `retry_on`, a reset / connection
//! failure, a timeout. Anything else — success, or a client error such as 400 — is the answer.

use crate::config::{Config, ModelId};

/// How one attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Response headers arrived with this status.
    Status(u16),
    /// Connection refused, reset, or closed before any response headers.
    Reset,
    /// No response headers within the attempt's timeout (for a stream: no first event).
    Timeout,
    /// A 2xx stream whose first event is an error (see [`crate::sse`]).
    StreamError,
}

impl Outcome {
    pub fn label(&self) -> String {
        match self {
            Outcome::Status(s) => s.to_string(),
            Outcome::Reset => "reset".to_string(),
            Outcome::Timeout => "timeout".to_string(),
            Outcome::StreamError => "stream_error".to_string(),
        }
    }

    pub fn is_retryable(&self, config: &Config) -> bool {
        match self {
            Outcome::Status(s) => config.settings.is_retryable(*s),
            Outcome::Reset | Outcome::Timeout | Outcome::StreamError => true,
        }
    }
}

/// Classify a callout's result. Envoy's async HTTP client reports a connection failure or
/// reset as a locally generated 503 and a timeout as a local 504 (observed on Envoy 1.40),
/// with these fixed bodies; a provider's own 503/504 carries its own body.
pub fn classify_callout(status: Option<u16>, body: &[u8], elapsed_ms: u64, timeout_ms: u64) -> Outcome {
    const RESET_BODY: &[u8] = b"upstream connect error or disconnect/reset before headers";
    const TIMEOUT_BODY: &[u8] = b"upstream request timeout";
    let timed_out = elapsed_ms.saturating_add(5) >= timeout_ms;
    match status {
        None if timed_out => Outcome::Timeout,
        None => Outcome::Reset,
        Some(504) if body == TIMEOUT_BODY && timed_out => Outcome::Timeout,
        Some(503) if body.starts_with(RESET_BODY) => Outcome::Reset,
        Some(s) => Outcome::Status(s),
    }
}

/// What to do after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// This attempt's response is the answer.
    Accept,
    /// Try `model` after `delay_ms`.
    Retry { model: ModelId, delay_ms: u64 },
    /// Budget spent; answer with the last failure.
    GiveUp,
}

#[derive(Debug, Clone)]
pub struct Failover {
    chain: Vec<ModelId>,
    pos: usize,
    /// Attempts made on `chain[pos]` so far (including the running one).
    tries_here: u32,
    /// Attempts started in total.
    started: u32,
    max_attempts: u32,
    trail: Vec<(ModelId, Outcome)>,
}

impl Failover {
    /// Start with the first candidate's attempt running. `chain` must not be empty; an empty
    /// one behaves as a chain whose only attempt already failed.
    pub fn new(chain: Vec<ModelId>, max_attempts: Option<u32>) -> Self {
        Failover {
            chain,
            pos: 0,
            tries_here: 1,
            started: 1,
            max_attempts: max_attempts.unwrap_or(u32::MAX),
            trail: Vec::new(),
        }
    }

    /// The first candidate (the policy's pick).
    pub fn first(&self) -> Option<ModelId> {
        self.chain.first().copied()
    }

    /// Number of candidates.
    pub fn candidate_count(&self) -> usize {
        self.chain.len()
    }

    /// The model of the running attempt.
    pub fn current(&self) -> Option<ModelId> {
        self.chain.get(self.pos).copied()
    }

    /// 1-based number of the running attempt.
    pub fn attempt(&self) -> u32 {
        self.started
    }

    /// Failed attempts so far, in order.
    pub fn trail(&self) -> &[(ModelId, Outcome)] {
        &self.trail
    }

    /// Record how the running attempt ended and decide what follows. On `Retry` the next
    /// attempt is counted as started.
    pub fn record(&mut self, outcome: Outcome, config: &Config) -> Next {
        let Some(model) = self.current() else {
            return Next::GiveUp;
        };
        if !outcome.is_retryable(config) {
            return Next::Accept;
        }
        self.trail.push((model, outcome));
        if self.started >= self.max_attempts {
            return Next::GiveUp;
        }
        let Some(m) = config.model(model) else {
            return Next::GiveUp;
        };
        if self.tries_here <= m.retry.max_retries {
            let exp = self.tries_here.saturating_sub(1).min(30);
            let delay_ms = m.retry.backoff_ms.saturating_mul(1u64 << exp).min(config.settings.max_backoff_ms);
            self.tries_here += 1;
            self.started += 1;
            return Next::Retry { model, delay_ms };
        }
        match self.chain.get(self.pos + 1) {
            Some(next) => {
                self.pos += 1;
                self.tries_here = 1;
                self.started += 1;
                Next::Retry { model: *next, delay_ms: 0 }
            }
            None => Next::GiveUp,
        }
    }

    /// `name=outcome` pairs for the failed attempts plus, when given, the answer's status:
    /// `bar=503,bar=reset,foo=200`. Names are config names (never secrets).
    pub fn trail_header(&self, config: &Config, answer: Option<(ModelId, u16)>) -> String {
        let mut out = String::new();
        let items = self.trail.iter().map(|(m, o)| (*m, o.label())).chain(answer.map(|(m, s)| (m, s.to_string())));
        for (i, (m, label)) in items.enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(config.model(m).map_or("?", |m| m.name.as_str()));
            out.push('=');
            out.push_str(&label);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> Config {
        let text = format!(
            "models:\n  - from: openai:a\n    name: a\n    params: {{ cluster: ca {extra} }}\n  - from: openai:b\n    name: b\n    params: {{ cluster: cb }}\n  - from: openai:c\n    name: c\n    params: {{ cluster: cc }}\nmodel_workers:\n  max_backoff: 1s\n"
        );
        Config::parse(&text, &|_| None).unwrap()
    }
    const A: ModelId = ModelId(0);
    const B: ModelId = ModelId(1);
    const C: ModelId = ModelId(2);

    #[test]
    fn success_and_client_errors_are_accepted() {
        let cfg = config("");
        for s in [200, 201, 400, 401, 404, 422] {
            let mut f = Failover::new(vec![A, B], None);
            assert_eq!(f.record(Outcome::Status(s), &cfg), Next::Accept, "{s}");
            assert!(f.trail().is_empty());
        }
    }

    #[test]
    fn retryable_failures_walk_the_chain() {
        let cfg = config("");
        for o in [Outcome::Status(503), Outcome::Status(429), Outcome::Status(408), Outcome::Reset, Outcome::Timeout] {
            let mut f = Failover::new(vec![A, B, C], None);
            assert_eq!(f.record(o, &cfg), Next::Retry { model: B, delay_ms: 0 });
            assert_eq!(f.record(o, &cfg), Next::Retry { model: C, delay_ms: 0 });
            assert_eq!(f.record(o, &cfg), Next::GiveUp);
            assert_eq!(f.attempt(), 3);
            assert_eq!(f.trail().len(), 3);
        }
    }

    #[test]
    fn same_model_retries_back_off_exponentially_then_move_on() {
        let cfg = config(", max_retries: 3, backoff: 300ms");
        let mut f = Failover::new(vec![A, B], None);
        let o = Outcome::Status(503);
        assert_eq!(f.record(o, &cfg), Next::Retry { model: A, delay_ms: 300 });
        assert_eq!(f.record(o, &cfg), Next::Retry { model: A, delay_ms: 600 });
        // Capped by max_backoff (1s).
        assert_eq!(f.record(o, &cfg), Next::Retry { model: A, delay_ms: 1000 });
        assert_eq!(f.record(o, &cfg), Next::Retry { model: B, delay_ms: 0 });
        assert_eq!(f.record(Outcome::Status(200), &cfg), Next::Accept);
        assert_eq!(f.trail_header(&cfg, Some((B, 200))), "a=503,a=503,a=503,a=503,b=200");
    }

    #[test]
    fn max_attempts_caps_the_total() {
        let cfg = config(", max_retries: 5");
        let mut f = Failover::new(vec![A, B, C], Some(2));
        assert!(matches!(f.record(Outcome::Reset, &cfg), Next::Retry { model: A, .. }));
        assert_eq!(f.record(Outcome::Reset, &cfg), Next::GiveUp);
    }

    #[test]
    fn trail_labels() {
        let cfg = config("");
        let mut f = Failover::new(vec![A, B, C], None);
        f.record(Outcome::Timeout, &cfg);
        f.record(Outcome::Reset, &cfg);
        assert_eq!(f.trail_header(&cfg, None), "a=timeout,b=reset");
        assert_eq!(f.current(), Some(C));
    }

    #[test]
    fn callout_classification() {
        let reset =
            b"upstream connect error or disconnect/reset before headers. reset reason: remote connection failure";
        assert_eq!(classify_callout(Some(503), reset, 3, 1000), Outcome::Reset);
        assert_eq!(classify_callout(Some(503), b"{\"error\":{}}", 3, 1000), Outcome::Status(503));
        assert_eq!(classify_callout(Some(504), b"upstream request timeout", 1000, 1000), Outcome::Timeout);
        // A provider's own 504 before the timeout stays a status.
        assert_eq!(classify_callout(Some(504), b"upstream request timeout", 10, 1000), Outcome::Status(504));
        assert_eq!(classify_callout(Some(504), b"gateway timeout", 1000, 1000), Outcome::Status(504));
        assert_eq!(classify_callout(None, b"", 1000, 1000), Outcome::Timeout);
        assert_eq!(classify_callout(None, b"", 10, 1000), Outcome::Reset);
        assert_eq!(classify_callout(Some(200), b"", 10, 1000), Outcome::Status(200));
    }

    #[test]
    fn empty_chain_gives_up() {
        let cfg = config("");
        let mut f = Failover::new(vec![], None);
        assert_eq!(f.current(), None);
        assert_eq!(f.record(Outcome::Status(200), &cfg), Next::GiveUp);
    }
}
