//! Process-wide state in proxy-wasm shared data (one store per Envoy process and `vm_id`,
//! seen by every worker thread's VM).

use crate::counter::{self, LocalTickets, Tickets};

use super::host::Host;

/// Lost CAS races before a request falls back to this VM's local counter.
const MAX_CAS_TRIES: u32 = 64;

/// Tickets from a CAS-incremented shared-data counter; the VM-local counter is the fallback
/// should the host refuse (never observed; a request must still be served).
pub struct SharedTickets<'a> {
    pub host: &'a mut dyn Host,
    pub fallback: &'a mut LocalTickets,
}

impl Tickets for SharedTickets<'_> {
    fn next(&mut self, key: &str) -> u64 {
        let host = std::cell::RefCell::new(&mut *self.host);
        counter::cas_increment(
            || host.borrow().shared_get(key),
            |v, cas| host.borrow_mut().shared_set(key, v, cas),
            MAX_CAS_TRIES,
        )
        .unwrap_or_else(|| self.fallback.next(key))
    }
}

use crate::config::{Config, ModelId};
use crate::cooldown::{self, Breaker, Transition};
use crate::failover::Outcome;

/// The circuit breakers of every model, in one shared-data entry.
pub struct Breakers {
    key: String,
    /// Some model has a cooldown at all (otherwise shared data is never touched).
    enabled: bool,
}

impl Breakers {
    pub fn new(config: &Config) -> Breakers {
        Breakers {
            key: cooldown::table_key(config.models.iter().map(|m| m.name.as_str())),
            enabled: config.models.iter().any(|m| m.cooldown.failures > 0),
        }
    }

    /// Every model's breaker (one host call); None when no model has a cooldown.
    pub fn read(&self, host: &dyn Host, config: &Config) -> Option<Vec<Breaker>> {
        if !self.enabled {
            return None;
        }
        let bytes = host.shared_get(&self.key).and_then(|(b, _)| b);
        Some(cooldown::decode_table(bytes.as_deref(), config.models.len()))
    }

    /// Record an attempt's outcome in `m`'s breaker (CAS loop over the table). `known`: the
    /// state read while routing; a success on a breaker known to be closed with no failures
    /// changes nothing and skips shared data entirely.
    #[allow(clippy::too_many_arguments)]
    pub fn record(
        &self,
        host: &mut dyn Host,
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
        let retryable = outcome.is_retryable(config);
        if !retryable && known == Some(Breaker::default()) {
            return Transition::None;
        }
        let slot = m.0 as usize;
        for _ in 0..MAX_CAS_TRIES {
            let Some((bytes, cas)) = host.shared_get(&self.key) else { return Transition::None };
            let mut table = cooldown::decode_table(bytes.as_deref(), config.models.len());
            let Some(current) = table.get(slot).copied() else { return Transition::None };
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
            if let Some(b) = table.get_mut(slot) {
                *b = next;
            }
            match host.shared_set(&self.key, &cooldown::encode_table(&table), cas) {
                Some(true) => return t,
                Some(false) => continue,
                None => return Transition::None,
            }
        }
        Transition::None
    }
}
