//! Process-wide state in proxy-wasm shared data (one store per Envoy process and `vm_id`,
//! seen by every worker thread's VM).

use crate::counter::{self, LocalTickets, Tickets};

use super::host;

/// Lost CAS races before a request falls back to this VM's local counter.
const MAX_CAS_TRIES: u32 = 64;

/// Tickets from a CAS-incremented shared-data counter; the VM-local counter is the fallback
/// should the host refuse (never observed; a request must still be served).
pub struct SharedTickets<'a> {
    pub fallback: &'a mut LocalTickets,
}

impl Tickets for SharedTickets<'_> {
    fn next(&mut self, key: &str) -> u64 {
        counter::cas_increment(|| host::shared_get(key), |v, cas| host::shared_set(key, v, cas), MAX_CAS_TRIES)
            .unwrap_or_else(|| self.fallback.next(key))
    }
}

use crate::config::{Config, ModelId};
use crate::cooldown::{Breaker, Transition};
use crate::failover::Outcome;

fn breaker_key(config: &Config, m: ModelId) -> Option<String> {
    config.model(m).map(|model| format!("model_workers.breaker.{}", model.name))
}

/// `m`'s breaker from shared data; None when its cooldown is off.
pub fn read_breaker(config: &Config, m: ModelId) -> Option<Breaker> {
    let model = config.model(m)?;
    if model.cooldown.failures == 0 {
        return None;
    }
    let key = breaker_key(config, m)?;
    let bytes = host::shared_get(&key).and_then(|(b, _)| b);
    Some(Breaker::decode(bytes.as_deref()))
}

/// Record an attempt's outcome in `m`'s shared breaker (CAS loop). Returns the transition.
/// `known`: the state read while routing; a success on a breaker known to be closed with no
/// failures changes nothing and skips shared data entirely.
pub fn record_outcome(
    config: &Config,
    m: ModelId,
    outcome: Outcome,
    retry_after_ms: Option<u64>,
    now_ms: u64,
    known: Option<Breaker>,
) -> Transition {
    let Some(model) = config.model(m) else { return Transition::None };
    if model.cooldown.failures == 0 {
        return Transition::None;
    }
    let Some(key) = breaker_key(config, m) else { return Transition::None };
    let retryable = outcome.is_retryable(config);
    if !retryable && known == Some(Breaker::default()) {
        return Transition::None;
    }
    for _ in 0..MAX_CAS_TRIES {
        let Some((bytes, cas)) = host::shared_get(&key) else { return Transition::None };
        let current = Breaker::decode(bytes.as_deref());
        let (next, t) = if retryable {
            let ra = match outcome {
                Outcome::Status(429 | 503) => retry_after_ms,
                _ => None,
            };
            current.on_failure(now_ms, &model.cooldown, ra)
        } else {
            current.on_success()
        };
        if next == current {
            return t;
        }
        match host::shared_set(&key, &next.encode(), cas) {
            Some(true) => return t,
            Some(false) => continue,
            None => return Transition::None,
        }
    }
    Transition::None
}
