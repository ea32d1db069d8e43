//! Process-wide state in proxy-wasm shared data (one store per Envoy process and `vm_id`,
//! seen by every worker thread's VM).

use crate::counter::{self, LocalTickets, Tickets};

use super::host::{Host, Level};

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
        .unwrap_or_else(|| {
            // Never expected: said once per request in Envoy's log, so an inexact rotation
            // can be traced to it.
            self.host.log(
                Level::Warn,
                &format!("model-workers: ticket counter `{key}`: shared data refused or {MAX_CAS_TRIES} CAS races lost; this request takes a local ticket (the rotation is not exact)"),
            );
            self.fallback.next(key)
        })
    }
}

use std::cell::RefCell;
use std::collections::HashMap;

use crate::config::{Config, ModelId};
use crate::cooldown::Transition;
use crate::failover::Outcome;
use crate::policy::{Kind, Load};
use crate::state::{ModelState, Table, TABLE_KEY};

/// What one attempt's end (or its outcome) changes in its model's entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    /// The attempt's outcome, for the breaker; None: the breaker is left alone.
    pub outcome: Option<Outcome>,
    pub retry_after_ms: Option<u64>,
    pub now_ms: u64,
    /// Time to first byte (or to the timeout), for the latency EWMA.
    pub sample_ms: Option<u64>,
    /// The breaker was known closed with no failures when routed (a success changes nothing).
    pub known_clean: bool,
    /// This attempt's in-flight increment ends here.
    pub end: bool,
}

/// What a recorded change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Recorded {
    /// None: nothing was stored (nothing to change, or the host refused).
    pub transition: Option<Transition>,
    /// The model's in-flight count after the change, when this change ended one.
    pub in_flight: Option<u32>,
    /// The model's EWMA after the change, when this change added a sample.
    pub ewma_ms: Option<u32>,
}

/// Which parts of its entry a model keeps up to date (only what some worker reads).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tracked {
    pub breaker: bool,
    /// In a `least_busy` worker.
    pub in_flight: bool,
    /// In a `latency` worker.
    pub latency: bool,
}

/// The shared per-model table ([`crate::state`]): one entry, every model's breaker, latency
/// EWMA and in-flight attempts by name. One read per routed request; one CAS update per
/// change an attempt makes.
pub struct ModelTable {
    names: Vec<String>,
    ids: HashMap<String, ModelId>,
    tracked: Vec<Tracked>,
    /// Some model tracks something (otherwise shared data is never touched).
    any: bool,
}

impl ModelTable {
    pub fn new(config: &Config) -> ModelTable {
        let mut tracked: Vec<Tracked> =
            config.models.iter().map(|m| Tracked { breaker: m.cooldown.failures > 0, ..Tracked::default() }).collect();
        for w in &config.workers {
            let kind = w.policy.kind();
            for m in w.policy.models() {
                if let Some(t) = tracked.get_mut(m.0 as usize) {
                    t.in_flight |= kind == Kind::LeastBusy;
                    t.latency |= kind == Kind::Latency;
                }
            }
        }
        let names: Vec<String> = config.models.iter().map(|m| m.name.clone()).collect();
        let ids = names.iter().enumerate().map(|(i, n)| (n.clone(), ModelId(i as u32))).collect();
        ModelTable { any: tracked.iter().any(|t| t.breaker || t.in_flight || t.latency), names, ids, tracked }
    }

    pub fn tracked(&self, m: ModelId) -> Tracked {
        self.tracked.get(m.0 as usize).copied().unwrap_or_default()
    }

    /// Every model's state by [`ModelId`] (one host call); None when no model tracks anything
    /// or the host refused (routing then sees every breaker closed and no load).
    /// Every model's state, read even when no worker tracks anything (the status document).
    pub fn snapshot(&self, host: &dyn Host) -> Vec<ModelState> {
        let bytes = host.shared_get(TABLE_KEY).and_then(|(b, _)| b);
        let table = Table::decode(bytes.as_deref());
        let mut out = vec![ModelState::default(); self.names.len()];
        for (name, state) in table.entries {
            if let Some(slot) = self.ids.get(&name).and_then(|m| out.get_mut(m.0 as usize)) {
                *slot = state;
            }
        }
        out
    }

    pub fn read(&self, host: &dyn Host) -> Option<Vec<ModelState>> {
        if !self.any {
            return None;
        }
        let bytes = host.shared_get(TABLE_KEY)?.0;
        let table = Table::decode(bytes.as_deref());
        let mut out = vec![ModelState::default(); self.names.len()];
        for (name, state) in table.entries {
            if let Some(slot) = self.ids.get(&name).and_then(|m| out.get_mut(m.0 as usize)) {
                *slot = state;
            }
        }
        Some(out)
    }

    /// The policies' view of the table.
    pub fn load(states: &[ModelState]) -> Vec<Load> {
        states.iter().map(|s| Load { ewma_ms: s.ewma_ms, samples: s.samples, in_flight: s.in_flight }).collect()
    }

    /// Read-modify-write `m`'s entry (CAS loop; no write when `f` changes nothing). Returns
    /// `f`'s result and the entry after it, or None on a host error or after
    /// [`MAX_CAS_TRIES`] lost races.
    pub fn update<T>(
        &self,
        host: &mut dyn Host,
        m: ModelId,
        mut f: impl FnMut(&mut ModelState) -> T,
    ) -> Option<(T, ModelState)> {
        let name = self.names.get(m.0 as usize)?;
        let host = RefCell::new(host);
        let keep = |n: &str| self.ids.contains_key(n);
        counter::cas_update(
            || host.borrow().shared_get(TABLE_KEY),
            |v, cas| host.borrow_mut().shared_set(TABLE_KEY, v, cas),
            MAX_CAS_TRIES,
            |bytes| {
                let mut table = Table::decode(bytes);
                let Some(state) = table.entry(name, &keep) else { return (None, None) };
                let before = *state;
                let t = f(state);
                let after = *state;
                let write = (after != before).then(|| table.encode());
                (write, Some((t, after)))
            },
        )
        .flatten()
    }

    /// An attempt on `m` starts: +1 in flight, when `m` tracks it. Returns the new count
    /// (None: not tracked or not stored; then the attempt's end must not decrement).
    pub fn started(&self, host: &mut dyn Host, m: ModelId) -> Option<u32> {
        if !self.tracked(m).in_flight {
            return None;
        }
        self.update(host, m, |s| s.in_flight = s.in_flight.saturating_add(1)).map(|(_, s)| s.in_flight)
    }

    /// Record an attempt's outcome, sample and/or end in `m`'s entry, in one CAS update; no
    /// host call when nothing changes (a success on a breaker known clean, on a model no
    /// latency worker measures, with no in-flight count to end).
    pub fn record(&self, host: &mut dyn Host, config: &Config, m: ModelId, c: Change) -> Recorded {
        let Some(model) = config.model(m) else { return Recorded::default() };
        let tracked = self.tracked(m);
        let breaker = c.outcome.filter(|o| tracked.breaker && (o.is_retryable(config) || !c.known_clean));
        let sample = c.sample_ms.filter(|_| tracked.latency);
        let end = c.end && tracked.in_flight;
        if breaker.is_none() && sample.is_none() && !end {
            return Recorded::default();
        }
        let updated = self.update(host, m, |s| {
            let mut t = Transition::None;
            if let Some(outcome) = breaker {
                let (next, tr) = if outcome.is_retryable(config) {
                    let ra = match outcome {
                        Outcome::Status(429 | 503) => c.retry_after_ms,
                        _ => None,
                    };
                    s.breaker.on_failure(c.now_ms, &model.cooldown, ra)
                } else {
                    s.breaker.on_success()
                };
                s.breaker = next;
                t = tr;
            }
            if let Some(ms) = sample {
                s.add_sample(ms);
            }
            if end {
                s.in_flight = s.in_flight.saturating_sub(1);
            }
            t
        });
        match updated {
            Some((t, s)) => Recorded {
                transition: Some(t),
                in_flight: end.then_some(s.in_flight),
                ewma_ms: sample.map(|_| s.ewma_ms),
            },
            None => Recorded::default(),
        }
    }
}
