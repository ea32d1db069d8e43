//! Worker policies: one strategy per file, behind one trait. A policy turns one request's
//! [`Pick`] (its ticket, its session key) and the breakers' view into the request's ordered
//! candidates — the pick first, then the rest to fall back on.
//!
//! `config` builds these values from the routing entries; nothing here imports `config`
//! (the dependency points one way: config → policy).
//!
//! Exactness across Envoy worker threads: a ticket is a global sequence number (one CAS
//! increment in shared data, [`crate::counter`]) drawn once per request of the worker, so
//! round robin (`ticket % n`) and weighted (a smooth schedule indexed by the ticket) give
//! exact rotations and shares process-wide. A policy that does not need one (fallback, cost,
//! a sticky request with a session key) draws none.
//!
//! Breaker rules, the same for every policy (see [`Health`]): models whose breaker is open go
//! last; picks are made among the healthy ones, so shares stay exact among them; when every
//! model of the worker is cooling, none counts as cooling and the chain is the plain policy
//! order — a worker is never emptied.

mod cost;
mod fallback;
mod latency;
mod least_busy;
mod priority;
mod round_robin;
mod sticky;
mod weighted;

use std::fmt;

pub use cost::Cost;
pub use fallback::Fallback;
pub use latency::{Explore, Latency};
pub use least_busy::LeastBusy;
pub use priority::{Priority, Spread, Tier};
pub use round_robin::RoundRobin;
pub use sticky::{rendezvous_hash, Seat, Source, Sticky};
pub use weighted::{weighted_schedule, Weighted};

/// Index of a model in the configuration's model list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ModelId(pub u32);

/// What one request brings to the pick.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pick<'a> {
    /// The worker's next ticket (0 when the policy said it needs none).
    pub ticket: u64,
    /// The request's session key (sticky workers), never empty when `Some`.
    pub session: Option<&'a str>,
    /// Every model's load as the shared table showed it when the request was routed, by
    /// [`ModelId`] (missing: no samples, nothing in flight). Latency and least-busy read it.
    pub load: &'a [Load],
    /// Random bits for this request (least-busy's two choices); the glue draws them from a
    /// per-VM generator seeded by the OS, tests pass what they need.
    pub random: u64,
}

/// One model's load, from the shared per-model table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Load {
    /// Smoothed time to first byte, ms (meaningless while `samples` is 0).
    pub ewma_ms: u32,
    pub samples: u32,
    /// Attempts started and not ended, process-wide.
    pub in_flight: u32,
}

impl Pick<'_> {
    pub(crate) fn load_of(&self, m: ModelId) -> Load {
        self.load.get(m.0 as usize).copied().unwrap_or_default()
    }
}

/// Which strategy a worker runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    RoundRobin,
    Fallback,
    Weighted,
    Priority,
    Cost,
    Sticky,
    Latency,
    LeastBusy,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::RoundRobin => "round robin",
            Kind::Fallback => "fallback",
            Kind::Weighted => "weighted",
            Kind::Priority => "priority",
            Kind::Cost => "cost",
            Kind::Sticky => "sticky",
            Kind::Latency => "latency",
            Kind::LeastBusy => "least busy",
        })
    }
}

/// A worker's strategy.
pub trait Policy: Send + Sync {
    fn kind(&self) -> Kind;

    /// Every model the worker routes to, once each, in its chain order with no breaker open
    /// and ticket 0 (fallback: by `order`; cost: cheapest first; priority: by tier).
    fn models(&self) -> Vec<ModelId>;

    /// `model-workers check`'s description: `weighted: foo 4, bar 1`. Native and tests only
    /// (the CLI's summary): the .wasm does not carry it.
    #[cfg(any(test, not(target_arch = "wasm32")))]
    fn describe(&self, name: &dyn Fn(ModelId) -> String) -> String;

    /// Whether this request needs a ticket; `has_session`: it carries a session key.
    fn needs_ticket(&self, has_session: bool) -> bool;

    /// Where a sticky worker reads its session key; None for every other policy.
    fn session_source(&self) -> Option<&Source> {
        None
    }

    /// The ordered candidates for one request; `cooling(m)`: `m`'s breaker is open. Never
    /// empty for a policy with models.
    fn candidates(&self, pick: &Pick<'_>, cooling: &dyn Fn(ModelId) -> bool) -> Vec<ModelId>;
}

/// A worker's policy in `{:?}` output: its strategy and models. (Not a supertrait: the
/// policies' derived `Debug`s would all be kept in the .wasm through the vtables.)
impl fmt::Debug for dyn Policy + '_ {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:?}", self.kind(), self.models())
    }
}

/// The breakers as one request sees them. `cool(m)` is true for a model whose breaker is
/// open, unless every model of the worker is cooling: then none is, and the chain is the
/// plain policy order (a worker is never emptied).
pub struct Health<'a> {
    cooling: &'a dyn Fn(ModelId) -> bool,
    /// Some model of the worker is cooling and some is not.
    active: bool,
}

impl<'a> Health<'a> {
    pub fn new(members: impl IntoIterator<Item = ModelId>, cooling: &'a dyn Fn(ModelId) -> bool) -> Health<'a> {
        let (mut any_cool, mut any_healthy) = (false, false);
        for m in members {
            if cooling(m) {
                any_cool = true;
            } else {
                any_healthy = true;
            }
            if any_cool && any_healthy {
                break;
            }
        }
        Health { cooling, active: any_cool && any_healthy }
    }

    /// No model counts as cooling: the plain policy order applies.
    pub fn all_healthy(&self) -> bool {
        !self.active
    }

    pub fn cool(&self, m: ModelId) -> bool {
        self.active && (self.cooling)(m)
    }
}

/// `list` rotated to start at `ticket % len`.
fn rotate_into(out: &mut Vec<ModelId>, list: &[ModelId], ticket: u64) {
    let n = list.len();
    if n == 0 {
        return;
    }
    let start = usize::try_from(ticket % n as u64).unwrap_or(0);
    out.extend(list.iter().cycle().skip(start).take(n).copied());
}

/// Append the models of `list` (in its order) that `keep` accepts.
fn extend_where(out: &mut Vec<ModelId>, list: impl IntoIterator<Item = ModelId>, keep: impl Fn(ModelId) -> bool) {
    out.extend(list.into_iter().filter(|m| keep(*m)));
}

/// Stable insertion sort by key. The lists are a worker's few models, and one small loop per
/// element type keeps the standard library's sort machinery (~15 KB each) out of the .wasm.
pub(crate) fn sort_by_key<T, K: Ord>(v: &mut [T], key: impl Fn(&T) -> K) {
    for i in 1..v.len() {
        let mut j = i;
        while j > 0 {
            let (Some(a), Some(b)) = (v.get(j - 1), v.get(j)) else { break };
            if key(a) <= key(b) {
                break;
            }
            v.swap(j - 1, j);
            j -= 1;
        }
    }
}

pub(crate) fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    pub fn ids(v: &[u32]) -> Vec<ModelId> {
        v.iter().map(|i| ModelId(*i)).collect()
    }
    pub fn none(_: ModelId) -> bool {
        false
    }
    pub fn ticket(t: u64) -> Pick<'static> {
        Pick { ticket: t, ..Pick::default() }
    }
    pub fn weighted(ws: &[(u32, u32)]) -> Weighted {
        Weighted::new(ws.iter().map(|(m, w)| (ModelId(*m), *w)).collect(), 10_000).unwrap()
    }
    pub fn name(m: ModelId) -> String {
        format!("m{}", m.0)
    }
}
