//! Least busy (`strategy: least_busy`): power of two choices over the healthy models — two
//! distinct models drawn at random, the one with fewer attempts in flight (process-wide, from
//! the shared table) first, the other second (a tie keeps the draw's order, so ties spread),
//! then the rest by in-flight (ties in config order), cooling models last. No ticket.
//!
//! Two random choices rather than the global minimum: every worker thread routes on a table
//! read a moment ago, and all of them picking the one minimum at once would herd onto it; two
//! choices keep the herd small and still avoid a model whose requests pile up.

use super::{extend_where, sort_by_key, Health, Kind, ModelId, Pick, Policy};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeastBusy {
    models: Vec<ModelId>,
}

impl LeastBusy {
    pub fn new(models: Vec<ModelId>) -> LeastBusy {
        LeastBusy { models }
    }

    /// Two distinct indices below `n` (≥ 2) from 64 random bits.
    pub fn two_choices(random: u64, n: usize) -> (usize, usize) {
        let n64 = n as u64;
        let i = (random & 0xffff_ffff) % n64;
        let j = (random >> 32) % n64.saturating_sub(1).max(1);
        let j = if j >= i { j + 1 } else { j };
        (usize::try_from(i).unwrap_or(0), usize::try_from(j).unwrap_or(0))
    }
}

impl Policy for LeastBusy {
    fn kind(&self) -> Kind {
        Kind::LeastBusy
    }

    fn models(&self) -> Vec<ModelId> {
        self.models.clone()
    }

    #[cfg(any(test, not(target_arch = "wasm32")))]
    fn describe(&self, name: &dyn Fn(ModelId) -> String) -> String {
        let names: Vec<String> = self.models.iter().map(|m| name(*m)).collect();
        format!("least busy (power of two choices): {}", names.join(", "))
    }

    fn needs_ticket(&self, _has_session: bool) -> bool {
        false
    }

    fn candidates(&self, pick: &Pick<'_>, cooling: &dyn Fn(ModelId) -> bool) -> Vec<ModelId> {
        let h = Health::new(self.models.iter().copied(), cooling);
        let mut healthy: Vec<ModelId> = self.models.iter().copied().filter(|m| !h.cool(*m)).collect();
        let mut chain = Vec::with_capacity(self.models.len());
        if healthy.len() >= 2 {
            let (i, j) = LeastBusy::two_choices(pick.random, healthy.len());
            if let (Some(a), Some(b)) = (healthy.get(i).copied(), healthy.get(j).copied()) {
                let busy = |m: ModelId| pick.load_of(m).in_flight;
                if busy(b) < busy(a) {
                    chain.extend([b, a]);
                } else {
                    chain.extend([a, b]);
                }
                healthy.retain(|m| *m != a && *m != b);
                sort_by_key(&mut healthy, |m| busy(*m));
            }
        }
        chain.extend(healthy);
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

    fn busy(v: &[u32]) -> Vec<Load> {
        v.iter().map(|n| Load { in_flight: *n, ..Load::default() }).collect()
    }

    #[test]
    fn two_choices_are_distinct_and_uniform() {
        let mut pairs: HashMap<(usize, usize), u32> = HashMap::new();
        // Every (low, high) combination of 3 × 2 once: each ordered pair exactly once.
        for lo in 0..3u64 {
            for hi in 0..2u64 {
                let (i, j) = LeastBusy::two_choices(lo | (hi << 32), 3);
                assert_ne!(i, j);
                assert!(i < 3 && j < 3);
                *pairs.entry((i, j)).or_default() += 1;
            }
        }
        assert_eq!(pairs.len(), 6, "{pairs:?}");
        assert!(pairs.values().all(|c| *c == 1));
        assert_eq!(LeastBusy::two_choices(u64::MAX, 2).0 + LeastBusy::two_choices(u64::MAX, 2).1, 1);
    }

    #[test]
    fn the_less_busy_of_the_two_first_then_the_rest_by_in_flight() {
        let p = LeastBusy::new(ids(&[0, 1, 2, 3]));
        let load = busy(&[5, 1, 9, 0]);
        // random 0 → indices (0, 1): m0 (5) vs m1 (1) → m1 first; rest m3 (0), m2 (9).
        let pick = Pick { random: 0, load: &load, ..Pick::default() };
        assert_eq!(p.candidates(&pick, &none), ids(&[1, 0, 3, 2]));
        // random (2, 3): m2 (9) vs m3 (0).
        let pick = Pick { random: 2 | (2 << 32), load: &load, ..Pick::default() };
        assert_eq!(p.candidates(&pick, &none), ids(&[3, 2, 1, 0]));
        assert!(!p.needs_ticket(false));
        assert_eq!(p.describe(&name), "least busy (power of two choices): m0, m1, m2, m3");
    }

    #[test]
    fn two_models_the_busy_one_never_leads_and_ties_spread() {
        let p = LeastBusy::new(ids(&[0, 1]));
        let load = busy(&[40, 0]);
        for r in 0..64u64 {
            let pick = Pick { random: r.wrapping_mul(0x9e37_79b9_7f4a_7c15), load: &load, ..Pick::default() };
            assert_eq!(p.candidates(&pick, &none), ids(&[1, 0]));
        }
        let mut first: HashMap<ModelId, u32> = HashMap::new();
        for r in 0..2u64 {
            let pick = Pick { random: r, ..Pick::default() };
            *first.entry(p.candidates(&pick, &none)[0]).or_default() += 1;
        }
        assert_eq!(first.len(), 2, "idle models: the draw decides");
    }

    #[test]
    fn cooling_goes_last_and_the_worker_is_never_emptied() {
        let p = LeastBusy::new(ids(&[0, 1, 2]));
        let load = busy(&[0, 7, 3]);
        let pick = Pick { random: 0, load: &load, ..Pick::default() };
        assert_eq!(p.candidates(&pick, &|m| m == ModelId(0)), ids(&[2, 1, 0]));
        assert_eq!(p.candidates(&pick, &|m| m != ModelId(2)), ids(&[2, 0, 1]));
        assert_eq!(p.candidates(&pick, &|_| true), ids(&[0, 1, 2]), "all cooling: as if none were");
        assert_eq!(LeastBusy::new(ids(&[4])).candidates(&pick, &none), ids(&[4]));
    }
}
