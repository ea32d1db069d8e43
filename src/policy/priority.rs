//! Priority tiers (SMG's `priority`, 0–100, higher preferred): the highest tier with a healthy
//! model serves. Inside a tier, `weight`s split its traffic exactly as [`Weighted`] does,
//! otherwise it is a round robin; the lower tiers follow as the fallback chain, in tier order
//! (each rotated by the same ticket, so failovers spread too); cooling models last.
//!
//! One ticket per request from the worker's counter: only the serving tier uses it for the
//! first pick, and while a tier serves it sees consecutive tickets, so its shares are those of
//! a plain round-robin or weighted worker (every window of sum(weights) requests exact).

use super::round_robin::RoundRobin;
use super::weighted::Weighted;
use super::{extend_where, Health, Kind, ModelId, Pick, Policy};

/// How one tier spreads its traffic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Spread {
    RoundRobin(Vec<ModelId>),
    Weighted(Weighted),
}

impl Spread {
    fn models(&self) -> Vec<ModelId> {
        match self {
            Spread::RoundRobin(list) => list.clone(),
            Spread::Weighted(w) => w.weights().iter().map(|(m, _)| *m).collect(),
        }
    }

    fn len(&self) -> usize {
        match self {
            Spread::RoundRobin(list) => list.len(),
            Spread::Weighted(w) => w.weights().len(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tier {
    pub priority: u8,
    pub spread: Spread,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Priority {
    /// Highest priority first.
    tiers: Vec<Tier>,
    /// Every model, tier by tier.
    all: Vec<ModelId>,
}

impl Priority {
    /// Tiers in any order; they are sorted highest first (equal priorities keep their order,
    /// though the config builds one tier per value).
    pub fn new(mut tiers: Vec<Tier>) -> Priority {
        super::sort_by_key(&mut tiers, |t| std::cmp::Reverse(t.priority));
        let all = tiers.iter().flat_map(|t| t.spread.models()).collect();
        Priority { tiers, all }
    }

    /// Highest first.
    pub fn tiers(&self) -> &[Tier] {
        &self.tiers
    }
}

impl Policy for Priority {
    fn kind(&self) -> Kind {
        Kind::Priority
    }

    fn models(&self) -> Vec<ModelId> {
        self.all.clone()
    }

    #[cfg(any(test, not(target_arch = "wasm32")))]
    fn describe(&self, name: &dyn Fn(ModelId) -> String) -> String {
        let tiers: Vec<String> = self
            .tiers
            .iter()
            .map(|t| {
                let members = match &t.spread {
                    Spread::RoundRobin(list) => list.iter().map(|m| name(*m)).collect::<Vec<_>>().join(", "),
                    Spread::Weighted(w) => w.describe_members(name),
                };
                format!("{} [{members}]", t.priority)
            })
            .collect();
        format!("priority: {}", tiers.join(", "))
    }

    fn needs_ticket(&self, _has_session: bool) -> bool {
        self.tiers.iter().any(|t| t.spread.len() > 1)
    }

    fn candidates(&self, pick: &Pick<'_>, cooling: &dyn Fn(ModelId) -> bool) -> Vec<ModelId> {
        let h = Health::new(self.all.iter().copied(), cooling);
        let mut chain = Vec::with_capacity(self.all.len());
        for tier in &self.tiers {
            match &tier.spread {
                Spread::RoundRobin(list) => RoundRobin::healthy_into(list, pick.ticket, &h, &mut chain),
                Spread::Weighted(w) => w.healthy_into(pick.ticket, &h, &mut chain),
            }
        }
        extend_where(&mut chain, self.all.iter().copied(), |m| h.cool(m));
        chain
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::testing::*;
    use std::collections::HashMap;

    /// Tier 100: m0 weight 3, m1 weight 1; tier 50: m2, m3 (round robin); tier 10: m4.
    fn three_tiers() -> Priority {
        Priority::new(vec![
            Tier { priority: 10, spread: Spread::RoundRobin(ids(&[4])) },
            Tier { priority: 100, spread: Spread::Weighted(weighted(&[(0, 3), (1, 1)])) },
            Tier { priority: 50, spread: Spread::RoundRobin(ids(&[2, 3])) },
        ])
    }

    fn firsts(p: &Priority, tickets: std::ops::Range<u64>, cool: &dyn Fn(ModelId) -> bool) -> HashMap<ModelId, u64> {
        let mut count = HashMap::new();
        for t in tickets {
            *count.entry(p.candidates(&ticket(t), cool)[0]).or_default() += 1;
        }
        count
    }

    #[test]
    fn the_top_tier_serves_with_exact_shares_in_every_window() {
        let p = three_tiers();
        assert_eq!(p.describe(&name), "priority: 100 [m0 3, m1 1], 50 [m2, m3], 10 [m4]");
        assert!(p.needs_ticket(false));
        assert_eq!(p.models(), ids(&[0, 1, 2, 3, 4]));
        // Every window of 4 consecutive tickets (aligned or not): 3 × m0, 1 × m1, nothing lower.
        for start in 0..40 {
            let c = firsts(&p, start..start + 4, &none);
            assert_eq!(c, HashMap::from([(ModelId(0), 3), (ModelId(1), 1)]), "window at {start}");
        }
        // 1,000 tickets: 750 / 250.
        let c = firsts(&p, 0..1000, &none);
        assert_eq!((c[&ModelId(0)], c[&ModelId(1)], c.len()), (750, 250, 2));
        // The chain: the tier's pick, the rest of the tier, then the lower tiers in order.
        for t in 0..8 {
            let c = p.candidates(&ticket(t), &none);
            assert_eq!(c.len(), 5);
            assert!(matches!((c[0].0, c[1].0), (0, 1) | (1, 0)), "{c:?}");
            assert!(matches!((c[2].0, c[3].0), (2, 3) | (3, 2)), "{c:?}");
            assert_eq!(c[4], ModelId(4));
        }
    }

    #[test]
    fn a_lower_tier_serves_only_when_every_higher_model_is_cooling() {
        let p = three_tiers();
        // One model of the top tier cooling: the other takes all of the tier's traffic.
        let c = firsts(&p, 0..400, &|m| m == ModelId(0));
        assert_eq!(c, HashMap::from([(ModelId(1), 400)]));
        let chain = p.candidates(&ticket(0), &|m| m == ModelId(0));
        assert_eq!(chain.last(), Some(&ModelId(0)), "cooling last: {chain:?}");
        // The whole top tier cooling: tier 50 serves, an exact rotation.
        let top = |m: ModelId| m.0 <= 1;
        let c = firsts(&p, 0..400, &top);
        assert_eq!(c, HashMap::from([(ModelId(2), 200), (ModelId(3), 200)]));
        let chain = p.candidates(&ticket(1), &top);
        assert_eq!(chain, ids(&[3, 2, 4, 0, 1]));
        // Tiers 100 and 50 cooling: tier 10.
        let c = firsts(&p, 0..10, &|m| m.0 <= 3);
        assert_eq!(c, HashMap::from([(ModelId(4), 10)]));
        // Everything cooling: the plain order (a worker is never emptied).
        let chain = p.candidates(&ticket(0), &|_| true);
        assert_eq!(chain.len(), 5);
        assert_eq!(chain, p.candidates(&ticket(0), &none));
    }

    #[test]
    fn weighted_tier_degraded_is_exact_over_aligned_windows() {
        let p = Priority::new(vec![
            Tier { priority: 90, spread: Spread::Weighted(weighted(&[(0, 2), (1, 1), (2, 1)])) },
            Tier { priority: 0, spread: Spread::RoundRobin(ids(&[3])) },
        ]);
        // m1 cooling: m0 2, m2 1 over every aligned window of 3.
        for w in 0..20 {
            let c = firsts(&p, w * 3..w * 3 + 3, &|m| m == ModelId(1));
            assert_eq!(c, HashMap::from([(ModelId(0), 2), (ModelId(2), 1)]));
        }
    }

    #[test]
    fn single_model_tiers_need_no_ticket() {
        let p = Priority::new(vec![
            Tier { priority: 1, spread: Spread::RoundRobin(ids(&[1])) },
            Tier { priority: 2, spread: Spread::RoundRobin(ids(&[0])) },
        ]);
        assert!(!p.needs_ticket(false));
        assert_eq!(p.candidates(&ticket(7), &none), ids(&[0, 1]));
        assert_eq!(p.candidates(&ticket(7), &|m| m == ModelId(0)), ids(&[1, 0]));
    }
}
