//! Per-model circuit breaker ("cooldown"), shared by every worker thread through the
//! per-model table in proxy-wasm shared data ([`crate::state`]; the glue does the CAS; this
//! module is the pure state machine).
//!
//! - **Closed**: the model gets traffic; consecutive retryable failures are counted.
//! - **Open**: after `failures` consecutive retryable failures the model is skipped for
//!   `duration` — or at once for as long as a 429/503 `Retry-After` asks (capped at
//!   `max_duration`). Skipped means moved to the end of every candidate chain: a worker is
//!   never emptied, and a single-model worker still sends its requests.
//! - **Half-open**: once the time has passed the model gets traffic again; its first success
//!   closes the breaker, its first failure re-opens it at once (one failure, not N).

use crate::config::CooldownPolicy;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Breaker {
    /// Consecutive retryable failures.
    pub failures: u32,
    /// Skipped until this time (ms since the epoch); 0 = never opened.
    pub open_until_ms: u64,
}

/// What a recorded outcome did to the breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    None,
    Opened { for_ms: u64 },
    Closed,
}

impl Breaker {
    pub fn is_open(&self, now_ms: u64) -> bool {
        now_ms < self.open_until_ms
    }

    /// A retryable failure. `retry_after_ms` comes from a 429/503 `Retry-After`.
    pub fn on_failure(
        &self,
        now_ms: u64,
        policy: &CooldownPolicy,
        retry_after_ms: Option<u64>,
    ) -> (Breaker, Transition) {
        if policy.failures == 0 {
            return (*self, Transition::None);
        }
        let failures = self.failures.saturating_add(1);
        let half_open = self.open_until_ms != 0 && !self.is_open(now_ms) && self.failures >= policy.failures;
        let open_for = match retry_after_ms {
            Some(ra) if ra > 0 => Some(ra.min(policy.max_duration_ms)),
            _ if failures >= policy.failures || half_open => Some(policy.duration_ms),
            _ => None,
        };
        match open_for {
            Some(ms) => {
                let until = now_ms.saturating_add(ms);
                let opened = !self.is_open(now_ms);
                let b = Breaker { failures, open_until_ms: until.max(self.open_until_ms) };
                (b, if opened { Transition::Opened { for_ms: ms } } else { Transition::None })
            }
            None => (Breaker { failures, open_until_ms: self.open_until_ms }, Transition::None),
        }
    }

    /// A success (any non-retryable answer: the model is up).
    pub fn on_success(&self) -> (Breaker, Transition) {
        if *self == Breaker::default() {
            return (*self, Transition::None);
        }
        (Breaker::default(), if self.open_until_ms != 0 { Transition::Closed } else { Transition::None })
    }
}

/// `Retry-After` as milliseconds: delta-seconds only (an HTTP-date is ignored).
pub fn parse_retry_after(value: &str) -> Option<u64> {
    let secs: u64 = value.trim().parse().ok()?;
    secs.checked_mul(1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: CooldownPolicy = CooldownPolicy { failures: 3, duration_ms: 1000, max_duration_ms: 5000 };

    #[test]
    fn opens_after_n_consecutive_failures() {
        let mut b = Breaker::default();
        for i in 1..=2 {
            let (nb, t) = b.on_failure(100, &P, None);
            assert_eq!(t, Transition::None, "failure {i}");
            assert!(!nb.is_open(100));
            b = nb;
        }
        let (b, t) = b.on_failure(100, &P, None);
        assert_eq!(t, Transition::Opened { for_ms: 1000 });
        assert!(b.is_open(100) && b.is_open(1099) && !b.is_open(1100));
    }

    #[test]
    fn a_success_resets_the_count() {
        let (b, _) = Breaker::default().on_failure(0, &P, None);
        let (b, _) = b.on_failure(0, &P, None);
        let (b, t) = b.on_success();
        assert_eq!((b, t), (Breaker::default(), Transition::None));
        let (b, _) = b.on_failure(0, &P, None);
        assert!(!b.is_open(0));
    }

    #[test]
    fn retry_after_opens_at_once_and_is_capped() {
        let (b, t) = Breaker::default().on_failure(0, &P, Some(2000));
        assert_eq!(t, Transition::Opened { for_ms: 2000 });
        assert!(b.is_open(1999) && !b.is_open(2000));
        let (b, t) = Breaker::default().on_failure(0, &P, Some(600_000));
        assert_eq!(t, Transition::Opened { for_ms: 5000 });
        assert!(!b.is_open(5000));
    }

    #[test]
    fn half_open_reopens_on_the_first_failure_and_closes_on_success() {
        let mut b = Breaker::default();
        for _ in 0..3 {
            b = b.on_failure(0, &P, None).0;
        }
        assert!(b.is_open(500));
        // Cooldown over: half-open. One failure re-opens.
        let (b2, t) = b.on_failure(1500, &P, None);
        assert_eq!(t, Transition::Opened { for_ms: 1000 });
        assert!(b2.is_open(2499));
        // Or one success closes.
        let (b3, t) = b.on_success();
        assert_eq!((b3, t), (Breaker::default(), Transition::Closed));
    }

    #[test]
    fn failures_while_open_do_not_shorten_or_reannounce() {
        let (b, _) = Breaker::default().on_failure(0, &P, Some(3000));
        let (b2, t) = b.on_failure(10, &P, Some(1000));
        assert_eq!(t, Transition::None);
        assert_eq!(b2.open_until_ms, 3000);
    }

    #[test]
    fn disabled_policy_never_opens() {
        let off = CooldownPolicy { failures: 0, ..P };
        let mut b = Breaker::default();
        for _ in 0..100 {
            b = b.on_failure(0, &off, Some(1000)).0;
        }
        assert!(!b.is_open(0));
    }

    #[test]
    fn retry_after_parsing() {
        assert_eq!(parse_retry_after("2"), Some(2000));
        assert_eq!(parse_retry_after(" 30 "), Some(30_000));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(parse_retry_after("-1"), None);
        assert_eq!(parse_retry_after("99999999999999999999"), None);
    }
}
