//! Per-model circuit breaker ("cooldown"), shared by every worker thread through
//! proxy-wasm shared data (the glue does the CAS; this module is the pure state machine).
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
    pub const ENCODED_LEN: usize = 12;

    pub fn encode(&self) -> [u8; 12] {
        let mut out = [0u8; 12];
        let (a, b) = out.split_at_mut(4);
        a.copy_from_slice(&self.failures.to_le_bytes());
        b.copy_from_slice(&self.open_until_ms.to_le_bytes());
        out
    }

    pub fn decode(bytes: Option<&[u8]>) -> Breaker {
        let Some(b) = bytes else { return Breaker::default() };
        let failures = b.get(..4).and_then(|s| <[u8; 4]>::try_from(s).ok()).map(u32::from_le_bytes);
        let until = b.get(4..12).and_then(|s| <[u8; 8]>::try_from(s).ok()).map(u64::from_le_bytes);
        match (failures, until) {
            (Some(failures), Some(open_until_ms)) => Breaker { failures, open_until_ms },
            _ => Breaker::default(),
        }
    }

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

/// All models' breakers under one shared-data key: one read per request, whatever the size of
/// the worker. `ENCODED_LEN` bytes per model, in config order; anything missing or malformed
/// reads as closed.
pub fn decode_table(bytes: Option<&[u8]>, models: usize) -> Vec<Breaker> {
    (0..models)
        .map(|i| {
            let at = i * Breaker::ENCODED_LEN;
            Breaker::decode(bytes.and_then(|b| b.get(at..at + Breaker::ENCODED_LEN)))
        })
        .collect()
}

pub fn encode_table(table: &[Breaker]) -> Vec<u8> {
    table.iter().flat_map(|b| b.encode()).collect()
}

/// The table's shared-data key, tied to the model list (FNV-1a of the names in order): a
/// configuration that adds or reorders models starts a fresh table instead of misreading the
/// old one.
pub fn table_key<'a>(model_names: impl Iterator<Item = &'a str>) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for name in model_names {
        for b in name.bytes().chain(std::iter::once(0)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("model_workers.breakers.{h:016x}")
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
    fn codec() {
        let b = Breaker { failures: 7, open_until_ms: 1_795_000_000_123 };
        assert_eq!(Breaker::decode(Some(&b.encode())), b);
        assert_eq!(Breaker::decode(None), Breaker::default());
        assert_eq!(Breaker::decode(Some(b"short")), Breaker::default());
    }

    #[test]
    fn retry_after_parsing() {
        assert_eq!(parse_retry_after("2"), Some(2000));
        assert_eq!(parse_retry_after(" 30 "), Some(30_000));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(parse_retry_after("-1"), None);
        assert_eq!(parse_retry_after("99999999999999999999"), None);
    }

    #[test]
    fn table_codec_and_key() {
        let t = vec![
            Breaker::default(),
            Breaker { failures: 3, open_until_ms: 99 },
            Breaker { failures: 1, open_until_ms: 0 },
        ];
        assert_eq!(decode_table(Some(&encode_table(&t)), 3), t);
        // Missing tail (a table written for fewer models) reads as closed.
        assert_eq!(decode_table(Some(&encode_table(&t[..1])), 3), vec![Breaker::default(); 3]);
        assert_eq!(decode_table(None, 2), vec![Breaker::default(); 2]);
        let k1 = table_key(["a", "b"].into_iter());
        assert_eq!(k1, table_key(["a", "b"].into_iter()));
        assert_ne!(k1, table_key(["b", "a"].into_iter()));
        assert_ne!(k1, table_key(["ab"].into_iter()));
        assert!(k1.starts_with("model_workers.breakers."));
    }
}
