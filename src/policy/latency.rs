//! Lowest latency (`strategy: latency`, Glide's / LiteLLM's "lowest latency"): the healthy
//! model with the smallest EWMA of time to first byte (shared table, every attempt's sample)
//! serves; models without a sample yet come first, so each is measured; the rest of the chain
//! is ascending EWMA (ties in config order), cooling models last.
//!
//! Exploration, so a model that recovered or got faster is noticed: a fixed share `explore`
//! (= p/q) of the tickets goes to the others in rotation. Ticket `t` explores when
//! ⌊(t+1)·p/q⌋ > ⌊t·p/q⌋ (evenly spread, exactly p in every aligned window of q tickets), and
//! the k-th exploration (k = ⌊t·p/q⌋) takes the (k mod (n−1))-th runner-up, so over an aligned
//! window of q·(n−1) tickets each runner-up gets exactly p requests. Tickets are process-wide
//! (one CAS counter), so the shares are exact across worker threads.

use super::{extend_where, sort_by_key, Health, Kind, ModelId, Pick, Policy};

/// The exploration share as a reduced fraction p/q (q ≤ 10 000; p = 0: never explore).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Explore {
    pub p: u64,
    pub q: u64,
}

impl Explore {
    /// The default: 5 % (1 in 20).
    pub const DEFAULT: Explore = Explore { p: 1, q: 20 };

    /// `Some(k)`: ticket `t` is the k-th exploring ticket.
    pub fn nth(&self, t: u64) -> Option<u64> {
        if self.p == 0 || self.q == 0 {
            return None;
        }
        let (t, p, q) = (u128::from(t), u128::from(self.p), u128::from(self.q));
        let before = t * p / q;
        let after = (t + 1) * p / q;
        (after > before).then(|| u64::try_from(before).unwrap_or(u64::MAX))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Latency {
    models: Vec<ModelId>,
    explore: Explore,
}

impl Latency {
    pub fn new(models: Vec<ModelId>, explore: Explore) -> Latency {
        Latency { models, explore }
    }

    pub fn explore(&self) -> Explore {
        self.explore
    }
}

impl Policy for Latency {
    fn kind(&self) -> Kind {
        Kind::Latency
    }

    fn models(&self) -> Vec<ModelId> {
        self.models.clone()
    }

    #[cfg(any(test, not(target_arch = "wasm32")))]
    fn describe(&self, name: &dyn Fn(ModelId) -> String) -> String {
        let names: Vec<String> = self.models.iter().map(|m| name(*m)).collect();
        let Explore { p, q } = self.explore;
        format!("latency (explore {p}/{q}): {}", names.join(", "))
    }

    fn needs_ticket(&self, _has_session: bool) -> bool {
        self.models.len() > 1 && self.explore.p > 0
    }

    fn candidates(&self, pick: &Pick<'_>, cooling: &dyn Fn(ModelId) -> bool) -> Vec<ModelId> {
        let h = Health::new(self.models.iter().copied(), cooling);
        let mut chain: Vec<ModelId> = Vec::with_capacity(self.models.len());
        // Unmeasured first (config order), then ascending EWMA.
        extend_where(&mut chain, self.models.iter().copied(), |m| !h.cool(m) && pick.load_of(m).samples == 0);
        let mut measured: Vec<ModelId> =
            self.models.iter().copied().filter(|m| !h.cool(*m) && pick.load_of(*m).samples > 0).collect();
        sort_by_key(&mut measured, |m| pick.load_of(*m).ewma_ms);
        chain.extend(measured);
        let runners_up = chain.len().saturating_sub(1);
        if runners_up > 0 {
            if let Some(k) = self.explore.nth(pick.ticket) {
                let which = usize::try_from(k % runners_up as u64).unwrap_or(0) + 1;
                if which < chain.len() {
                    let m = chain.remove(which);
                    chain.insert(0, m);
                }
            }
        }
        extend_where(&mut chain, self.models.iter().copied(), |m| h.cool(m));
        chain
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::testing::*;
    use crate::policy::Load;
    use std::collections::HashMap;

    fn ewma(v: &[(u32, u32)]) -> Vec<Load> {
        v.iter().map(|(ms, n)| Load { ewma_ms: *ms, samples: *n, in_flight: 0 }).collect()
    }

    fn at<'a>(t: u64, load: &'a [Load]) -> Pick<'a> {
        Pick { ticket: t, load, ..Pick::default() }
    }

    #[test]
    fn fastest_first_then_ascending_unmeasured_before_all() {
        let p = Latency::new(ids(&[0, 1, 2]), Explore { p: 0, q: 1 });
        let load = ewma(&[(300, 5), (20, 5), (90, 5)]);
        assert_eq!(p.candidates(&at(0, &load), &none), ids(&[1, 2, 0]));
        let load = ewma(&[(300, 5), (20, 5), (0, 0)]);
        assert_eq!(p.candidates(&at(0, &load), &none), ids(&[2, 1, 0]), "m2 has no sample: tried first");
        assert_eq!(p.candidates(&at(0, &[]), &none), ids(&[0, 1, 2]), "nothing measured: config order");
        assert!(!p.needs_ticket(false), "no exploration: no ticket");
        assert!(Latency::new(ids(&[0, 1]), Explore::DEFAULT).needs_ticket(false));
        assert!(!Latency::new(ids(&[0]), Explore::DEFAULT).needs_ticket(false));
        assert_eq!(p.describe(&name), "latency (explore 0/1): m0, m1, m2");
    }

    #[test]
    fn exploration_shares_are_exact_over_aligned_windows() {
        for (ex, n) in [(Explore::DEFAULT, 2usize), (Explore::DEFAULT, 3), (Explore { p: 3, q: 40 }, 4)] {
            let models: Vec<u32> = (0..n as u32).collect();
            let p = Latency::new(ids(&models), ex);
            // m0 fastest, then m1, …
            let load: Vec<Load> = (0..n as u32).map(|i| Load { ewma_ms: 10 + i, samples: 1, in_flight: 0 }).collect();
            let window = ex.q * (n as u64 - 1);
            for w in 0..3 {
                let mut first: HashMap<ModelId, u64> = HashMap::new();
                for t in w * window..(w + 1) * window {
                    let c = p.candidates(&at(t, &load), &none);
                    assert_eq!(c.len(), n);
                    *first.entry(c[0]).or_default() += 1;
                }
                for m in 1..n as u32 {
                    assert_eq!(first[&ModelId(m)], ex.p, "{ex:?} n={n} window {w}: {first:?}");
                }
                assert_eq!(first[&ModelId(0)], window - ex.p * (n as u64 - 1));
            }
        }
        // Evenly spread, not in a burst: 1/20 → tickets 19, 39, 59, …
        let ex = Explore::DEFAULT;
        let hits: Vec<u64> = (0..100).filter(|t| ex.nth(*t).is_some()).collect();
        assert_eq!(hits, vec![19, 39, 59, 79, 99]);
        let _ = (ex.nth(u64::MAX), Explore { p: 9999, q: 10_000 }.nth(u64::MAX));
        // u128: no overflow
    }

    #[test]
    fn an_explored_model_leads_the_rest_stay_in_latency_order() {
        let p = Latency::new(ids(&[0, 1, 2]), Explore::DEFAULT);
        let load = ewma(&[(300, 5), (20, 5), (90, 5)]);
        assert_eq!(p.candidates(&at(19, &load), &none), ids(&[2, 1, 0]), "1st exploration: 2nd fastest");
        assert_eq!(p.candidates(&at(39, &load), &none), ids(&[0, 1, 2]), "2nd: 3rd fastest");
        assert_eq!(p.candidates(&at(18, &load), &none), ids(&[1, 2, 0]));
    }

    #[test]
    fn cooling_models_are_neither_served_nor_explored() {
        let p = Latency::new(ids(&[0, 1, 2]), Explore { p: 1, q: 1 });
        let load = ewma(&[(300, 5), (20, 5), (90, 5)]);
        let cool = |m: ModelId| m == ModelId(1);
        for t in 0..10 {
            let c = p.candidates(&at(t, &load), &cool);
            assert_eq!(c[2], ModelId(1));
        }
        // Every ticket explores (1/1) among the two healthy: the runner-up m0 leads.
        assert_eq!(p.candidates(&at(0, &load), &cool), ids(&[0, 2, 1]));
        assert_eq!(p.candidates(&at(0, &load), &|_| true), ids(&[2, 1, 0]), "all cooling: as if none were");
        assert_eq!(Latency::new(ids(&[3]), Explore::DEFAULT).candidates(&at(19, &load), &none), ids(&[3]));
    }
}
