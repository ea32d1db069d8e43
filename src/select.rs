//! Picking a model: a worker's policy plus one ticket from a shared counter gives the
//! request's ordered candidate chain — the pick first, then the rest to fall back on.
//!
//! Exactness: a ticket is a global sequence number (one CAS increment in shared data, see
//! [`crate::counter`]). Round robin takes `ticket % n`; weighted indexes a precomputed smooth
//! weighted round-robin schedule of period `sum(weights)`, so *every* run of `sum(weights)`
//! consecutive tickets gives each model exactly its weight — across all Envoy worker threads.

use crate::config::{ModelId, Policy};

/// Smooth weighted round robin (nginx's algorithm) over weights divided by their gcd.
/// `Err(sum)` when the reduced weights add up to more than `max_sum`.
pub fn weighted_schedule(models: &[(ModelId, u32)], max_sum: u64) -> Result<Vec<ModelId>, u64> {
    let g = models.iter().fold(0u32, |g, (_, w)| gcd(g, *w)).max(1);
    let weights: Vec<i64> = models.iter().map(|(_, w)| i64::from(w / g)).collect();
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

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Does this policy consume a ticket?
pub fn needs_ticket(policy: &Policy) -> bool {
    !matches!(policy, Policy::Fallback(_))
}

/// The ordered candidates for one request. `cooling(m)` says a model's circuit breaker is
/// open: such models are moved to the end (tried only as a last resort) and picks are made
/// among the healthy ones, so shares stay exact among healthy models. When every model is
/// cooling the chain is the plain policy order: a worker is never emptied.
pub fn candidates(policy: &Policy, ticket: u64, cooling: &dyn Fn(ModelId) -> bool) -> Vec<ModelId> {
    // The common case — no breaker open — builds the chain in one allocation.
    let all_healthy = match policy {
        Policy::RoundRobin(l) | Policy::Fallback(l) => !l.iter().any(|m| cooling(*m)),
        Policy::Weighted { models, .. } => !models.iter().any(|(m, _)| cooling(*m)),
    };
    if all_healthy {
        return match policy {
            Policy::Fallback(list) => list.clone(),
            Policy::RoundRobin(list) => {
                let start = usize::try_from(ticket % list.len().max(1) as u64).unwrap_or(0);
                list.iter().cycle().skip(start).take(list.len()).copied().collect()
            }
            Policy::Weighted { models, schedule } => {
                let len = schedule.len().max(1) as u64;
                let pick = schedule.get(usize::try_from(ticket % len).unwrap_or(0)).copied();
                pick.into_iter().chain(models.iter().map(|(m, _)| *m).filter(|m| Some(*m) != pick)).collect()
            }
        };
    }
    let members: Vec<ModelId> = match policy {
        Policy::RoundRobin(list) | Policy::Fallback(list) => list.clone(),
        Policy::Weighted { models, .. } => models.iter().map(|(m, _)| *m).collect(),
    };
    let any_cooling = members.iter().any(|m| cooling(*m));
    let all_cooling = members.iter().all(|m| cooling(*m));
    let is_cool = |m: &ModelId| any_cooling && !all_cooling && cooling(*m);

    let healthy: Vec<ModelId> = members.iter().copied().filter(|m| !is_cool(m)).collect();
    let cold: Vec<ModelId> = members.iter().copied().filter(is_cool).collect();

    let mut chain = Vec::with_capacity(members.len());
    match policy {
        Policy::Fallback(_) => chain.extend(healthy),
        Policy::RoundRobin(_) => {
            let n = healthy.len().max(1);
            let start = usize::try_from(ticket % n as u64).unwrap_or(0);
            chain.extend(healthy.iter().cycle().skip(start).take(healthy.len()).copied());
        }
        Policy::Weighted { models, schedule } => {
            let pick = if cold.is_empty() {
                let len = schedule.len().max(1) as u64;
                schedule.get(usize::try_from(ticket % len).unwrap_or(0)).copied()
            } else {
                // Degraded: exact shares over aligned windows of the healthy weights' sum.
                let live: Vec<(ModelId, u64)> =
                    models.iter().filter(|(m, _)| !is_cool(m)).map(|(m, w)| (*m, u64::from(*w))).collect();
                let sum: u64 = live.iter().map(|(_, w)| w).sum::<u64>().max(1);
                let mut slot = ticket % sum;
                let mut found = None;
                for (m, w) in &live {
                    if slot < *w {
                        found = Some(*m);
                        break;
                    }
                    slot -= w;
                }
                found
            };
            if let Some(p) = pick {
                chain.push(p);
            }
            chain.extend(healthy.iter().copied().filter(|m| Some(*m) != pick));
        }
    }
    chain.extend(cold);
    chain
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn ids(v: &[u32]) -> Vec<ModelId> {
        v.iter().map(|i| ModelId(*i)).collect()
    }
    fn none(_: ModelId) -> bool {
        false
    }

    #[test]
    fn round_robin_rotates_and_chains_the_rest() {
        let p = Policy::RoundRobin(ids(&[0, 1, 2]));
        assert_eq!(candidates(&p, 0, &none), ids(&[0, 1, 2]));
        assert_eq!(candidates(&p, 1, &none), ids(&[1, 2, 0]));
        assert_eq!(candidates(&p, 2, &none), ids(&[2, 0, 1]));
        assert_eq!(candidates(&p, 3, &none), ids(&[0, 1, 2]));
        assert_eq!(candidates(&p, u64::MAX, &none).len(), 3);
    }

    #[test]
    fn fallback_ignores_ticket() {
        let p = Policy::Fallback(ids(&[1, 0, 2]));
        for t in 0..5 {
            assert_eq!(candidates(&p, t, &none), ids(&[1, 0, 2]));
        }
        assert!(!needs_ticket(&p));
    }

    fn weighted(ws: &[(u32, u32)]) -> Policy {
        let models: Vec<(ModelId, u32)> = ws.iter().map(|(m, w)| (ModelId(*m), *w)).collect();
        let schedule = weighted_schedule(&models, 10_000).unwrap();
        Policy::Weighted { models, schedule }
    }

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
            let picks: Vec<ModelId> = (0..sum * 5).map(|t| candidates(&p, t, &none)[0]).collect();
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
    fn weighted_chain_is_pick_then_rest_in_config_order() {
        let p = weighted(&[(0, 4), (1, 1), (2, 1)]);
        for t in 0..12 {
            let c = candidates(&p, t, &none);
            assert_eq!(c.len(), 3);
            let rest: Vec<_> = ids(&[0, 1, 2]).into_iter().filter(|m| *m != c[0]).collect();
            assert_eq!(&c[1..], &rest[..]);
        }
    }

    #[test]
    fn cooling_models_go_last_and_shares_stay_exact_among_healthy() {
        let cool = |m: ModelId| m == ModelId(1);
        let p = Policy::RoundRobin(ids(&[0, 1, 2]));
        let mut count: HashMap<ModelId, u32> = HashMap::new();
        for t in 0..100 {
            let c = candidates(&p, t, &cool);
            assert_eq!(*c.last().unwrap(), ModelId(1));
            *count.entry(c[0]).or_default() += 1;
        }
        assert_eq!(count[&ModelId(0)], 50);
        assert_eq!(count[&ModelId(2)], 50);

        let p = weighted(&[(0, 4), (1, 1), (2, 1)]);
        let mut count: HashMap<ModelId, u32> = HashMap::new();
        for t in 0..500 {
            let c = candidates(&p, t, &cool);
            assert_eq!(c, {
                let mut v = vec![c[0]];
                v.extend(ids(&[0, 2]).into_iter().filter(|m| *m != c[0]));
                v.push(ModelId(1));
                v
            });
            *count.entry(c[0]).or_default() += 1;
        }
        assert_eq!(count[&ModelId(0)], 400);
        assert_eq!(count[&ModelId(2)], 100);

        let p = Policy::Fallback(ids(&[1, 0, 2]));
        assert_eq!(candidates(&p, 0, &cool), ids(&[0, 2, 1]));
    }

    #[test]
    fn a_worker_is_never_emptied() {
        let all = |_: ModelId| true;
        assert_eq!(candidates(&Policy::RoundRobin(ids(&[5])), 3, &all), ids(&[5]));
        assert_eq!(candidates(&Policy::Fallback(ids(&[2, 1])), 0, &all), ids(&[2, 1]));
        let p = weighted(&[(0, 4), (1, 1)]);
        assert_eq!(candidates(&p, 2, &all), ids(&[1, 0]));
    }
}
