//! Weighted (Spice: `weight`): exact shares. The ticket indexes a precomputed smooth weighted
//! round-robin schedule of period sum(weights) (after dividing by their gcd), so *every* run
//! of sum(weights) consecutive tickets gives each model exactly its weight (4:1 → `a a b a a`).
//! The chain is the pick, then the other models in config order, cooling models last. With a
//! model cooling, the pick is made among the healthy ones by cumulative weight over
//! `ticket % sum(healthy weights)`: exact over aligned windows of that sum.

use super::{extend_where, gcd, Health, Kind, ModelId, Pick, Policy};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Weighted {
    models: Vec<(ModelId, u32)>,
    schedule: Vec<ModelId>,
}

impl Weighted {
    /// `Err(sum)` when the weights, divided by their gcd, add up to more than `max_sum` (or a
    /// weight is 0, or there are none).
    pub fn new(models: Vec<(ModelId, u32)>, max_sum: u64) -> Result<Weighted, u64> {
        if models.iter().any(|(_, w)| *w == 0) {
            return Err(0);
        }
        let schedule = weighted_schedule(&models, max_sum)?;
        Ok(Weighted { models, schedule })
    }

    /// The models with their weights, in config order.
    pub fn weights(&self) -> &[(ModelId, u32)] {
        &self.models
    }

    /// One period of the smooth schedule.
    pub fn schedule(&self) -> &[ModelId] {
        &self.schedule
    }

    /// Append the pick for `ticket` and then the other healthy models in config order.
    pub(crate) fn healthy_into(&self, ticket: u64, h: &Health<'_>, out: &mut Vec<ModelId>) {
        let degraded = !h.all_healthy() && self.models.iter().any(|(m, _)| h.cool(*m));
        let pick = if degraded {
            let sum: u64 = self.models.iter().filter(|(m, _)| !h.cool(*m)).map(|(_, w)| u64::from(*w)).sum();
            if sum == 0 {
                return;
            }
            let mut slot = ticket % sum;
            let mut found = None;
            for (m, w) in self.models.iter().filter(|(m, _)| !h.cool(*m)) {
                if slot < u64::from(*w) {
                    found = Some(*m);
                    break;
                }
                slot -= u64::from(*w);
            }
            found
        } else {
            let len = self.schedule.len().max(1) as u64;
            self.schedule.get(usize::try_from(ticket % len).unwrap_or(0)).copied()
        };
        let Some(pick) = pick else { return };
        out.push(pick);
        extend_where(out, self.models.iter().map(|(m, _)| *m), |m| m != pick && !h.cool(m));
    }

    #[cfg(any(test, not(target_arch = "wasm32")))]
    pub(crate) fn describe_members(&self, name: &dyn Fn(ModelId) -> String) -> String {
        let parts: Vec<String> = self.models.iter().map(|(m, w)| format!("{} {w}", name(*m))).collect();
        parts.join(", ")
    }
}

impl Policy for Weighted {
    fn kind(&self) -> Kind {
        Kind::Weighted
    }

    fn models(&self) -> Vec<ModelId> {
        self.models.iter().map(|(m, _)| *m).collect()
    }

    #[cfg(any(test, not(target_arch = "wasm32")))]
    fn describe(&self, name: &dyn Fn(ModelId) -> String) -> String {
        format!("weighted: {}", self.describe_members(name))
    }

    fn needs_ticket(&self, _has_session: bool) -> bool {
        self.models.len() > 1
    }

    fn candidates(&self, pick: &Pick<'_>, cooling: &dyn Fn(ModelId) -> bool) -> Vec<ModelId> {
        let h = Health::new(self.models.iter().map(|(m, _)| *m), cooling);
        let mut chain = Vec::with_capacity(self.models.len());
        self.healthy_into(pick.ticket, &h, &mut chain);
        extend_where(&mut chain, self.models.iter().map(|(m, _)| *m), |m| h.cool(m));
        chain
    }
}

/// Smooth weighted round robin (nginx's algorithm) over weights divided by their gcd.
/// `Err(sum)` when the reduced weights add up to more than `max_sum`.
pub fn weighted_schedule(models: &[(ModelId, u32)], max_sum: u64) -> Result<Vec<ModelId>, u64> {
    let g = models.iter().fold(0u64, |g, (_, w)| gcd(g, u64::from(*w))).max(1);
    let weights: Vec<i64> = models.iter().map(|(_, w)| i64::try_from(u64::from(*w) / g).unwrap_or(0)).collect();
    let total: i64 = weights.iter().sum();
    let total_u = u64::try_from(total).unwrap_or(u64::MAX);
    if total_u > max_sum || total <= 0 {
        return Err(total_u);
    }
    let mut current = vec![0i64; weights.len()];
    let mut schedule = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
    for _ in 0..total {
        let mut best: Option<usize> = None;
        let mut best_val = i64::MIN;
        for (i, (c, w)) in current.iter_mut().zip(&weights).enumerate() {
            *c += w;
            if *c > best_val {
                best_val = *c;
                best = Some(i);
            }
        }
        if let Some(i) = best {
            if let (Some(c), Some((id, _))) = (current.get_mut(i), models.get(i)) {
                *c -= total;
                schedule.push(*id);
            }
        }
    }
    Ok(schedule)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::testing::*;
    use std::collections::HashMap;

    #[test]
    fn smooth_schedule_is_interleaved() {
        let s = weighted_schedule(&[(ModelId(0), 4), (ModelId(1), 1)], 100).unwrap();
        assert_eq!(s, ids(&[0, 0, 1, 0, 0]));
        let s = weighted_schedule(&[(ModelId(0), 5), (ModelId(1), 1), (ModelId(2), 1)], 100).unwrap();
        assert_eq!(s, ids(&[0, 0, 1, 0, 2, 0, 0]));
    }

    #[test]
    fn gcd_shortens_the_period() {
        let s = weighted_schedule(&[(ModelId(0), 80), (ModelId(1), 20)], 10_000).unwrap();
        assert_eq!(s.len(), 5);
        assert_eq!(weighted_schedule(&[(ModelId(0), 9_999), (ModelId(1), 2)], 10_000), Err(10_001));
        assert_eq!(Weighted::new(vec![(ModelId(0), 0)], 10_000), Err(0));
    }

    /// Every window of sum(weights) consecutive tickets — aligned or not — holds each model
    /// exactly its weight.
    #[test]
    fn every_window_is_exact() {
        for ws in [
            vec![(0, 4), (1, 1)],
            vec![(0, 3), (1, 2), (2, 2)],
            vec![(0, 1), (1, 1)],
            vec![(0, 7), (1, 3), (2, 1), (3, 1)],
        ] {
            let p = weighted(&ws);
            let sum: u64 = ws.iter().map(|(_, w)| u64::from(*w)).sum();
            let picks: Vec<ModelId> = (0..sum * 5).map(|t| p.candidates(&ticket(t), &none)[0]).collect();
            for start in 0..(sum * 4) as usize {
                let mut count: HashMap<ModelId, u32> = HashMap::new();
                for m in &picks[start..start + sum as usize] {
                    *count.entry(*m).or_default() += 1;
                }
                for (m, w) in &ws {
                    assert_eq!(count.get(&ModelId(*m)).copied().unwrap_or(0), *w, "weights {ws:?} window at {start}");
                }
            }
        }
    }

    #[test]
    fn chain_is_pick_then_rest_in_config_order() {
        let p = weighted(&[(0, 4), (1, 1), (2, 1)]);
        for t in 0..12 {
            let c = p.candidates(&ticket(t), &none);
            assert_eq!(c.len(), 3);
            let rest: Vec<_> = ids(&[0, 1, 2]).into_iter().filter(|m| *m != c[0]).collect();
            assert_eq!(&c[1..], &rest[..]);
        }
        assert_eq!(p.describe(&name), "weighted: m0 4, m1 1, m2 1");
    }

    #[test]
    fn cooling_goes_last_and_shares_stay_exact_among_healthy() {
        let cool = |m: ModelId| m == ModelId(1);
        let p = weighted(&[(0, 4), (1, 1), (2, 1)]);
        let mut count: HashMap<ModelId, u32> = HashMap::new();
        for t in 0..500 {
            let c = p.candidates(&ticket(t), &cool);
            let mut want = vec![c[0]];
            want.extend(ids(&[0, 2]).into_iter().filter(|m| *m != c[0]));
            want.push(ModelId(1));
            assert_eq!(c, want);
            *count.entry(c[0]).or_default() += 1;
        }
        assert_eq!(count[&ModelId(0)], 400);
        assert_eq!(count[&ModelId(2)], 100);
    }

    #[test]
    fn never_emptied() {
        let p = weighted(&[(0, 4), (1, 1)]);
        assert_eq!(p.candidates(&ticket(2), &|_| true), ids(&[1, 0]));
    }
}
