//! How an attempt ended, and whether that is worth another attempt. Retryable: a status in
//! `retry_on`, a reset / connection failure, a timeout, a stream whose first event is an
//! error. Anything else — success, or a client error such as 400 — is the answer. The
//! attempts themselves are planned in [`crate::plan`].

use crate::config::Config;

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

    /// The inverse of [`Outcome::label`].
    pub fn parse(label: &str) -> Option<Outcome> {
        match label {
            "reset" => Some(Outcome::Reset),
            "timeout" => Some(Outcome::Timeout),
            "stream_error" => Some(Outcome::StreamError),
            s => s.parse().ok().map(Outcome::Status),
        }
    }

    pub fn is_retryable(&self, config: &Config) -> bool {
        match self {
            Outcome::Status(s) => config.settings.is_retryable(*s),
            Outcome::Reset | Outcome::Timeout | Outcome::StreamError => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_round_trip() {
        for o in [Outcome::Status(200), Outcome::Status(503), Outcome::Reset, Outcome::Timeout, Outcome::StreamError] {
            assert_eq!(Outcome::parse(&o.label()), Some(o));
        }
        assert_eq!(Outcome::parse("nope"), None);
    }

    #[test]
    fn retryable_outcomes() {
        let cfg = Config::parse(
            "models:\n  - from: openai:a\n    name: a\nmodel_workers:\n  retry_on: [429, 503]\n",
            &|_| None,
        )
        .unwrap();
        for (o, want) in [
            (Outcome::Status(503), true),
            (Outcome::Status(429), true),
            (Outcome::Status(500), false),
            (Outcome::Status(400), false),
            (Outcome::Status(200), false),
            (Outcome::Reset, true),
            (Outcome::Timeout, true),
            (Outcome::StreamError, true),
        ] {
            assert_eq!(o.is_retryable(&cfg), want, "{o:?}");
        }
    }
}
