//! A worker's strategy, inferred from its routing entries' fields as Spice does (plain
//! `from`: round robin, `order`: fallback, `weight`: weighted, `priority`: tiers) or named
//! by `load_balance.strategy` (`cost`, `latency`, `least_busy`); any other mix is an error.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::build::MAX_WEIGHT_SUM;
use super::wire::{self, Scalar};
use super::workers::Entry;
use super::{Model, ModelId};
use crate::policy::{
    rendezvous_hash, Cost, Explore, Fallback, Kind, Latency, LeastBusy, Policy, Priority, RoundRobin, Seat, Spread,
    Tier, Weighted,
};

use super::weights::MAX_WEIGHT_PLACES;
use super::weights::{decimal, show, whole_weights};

/// Highest `priority`.
pub const MAX_PRIORITY: i64 = 100;

/// A worker's strategy before `sticky` (which needs to see inside it).
pub(super) enum Base {
    RoundRobin(RoundRobin),
    Fallback(Fallback),
    Weighted(Weighted),
    Priority(Priority),
    Cost(Cost),
    Latency(Latency),
    LeastBusy(LeastBusy),
}

impl Base {
    pub(super) fn into_policy(self) -> Arc<dyn Policy> {
        match self {
            Base::RoundRobin(p) => Arc::new(p),
            Base::Fallback(p) => Arc::new(p),
            Base::Weighted(p) => Arc::new(p),
            Base::Priority(p) => Arc::new(p),
            Base::Cost(p) => Arc::new(p),
            Base::Latency(p) => Arc::new(p),
            Base::LeastBusy(p) => Arc::new(p),
        }
    }

    /// A sticky worker's rendezvous groups: the models with their weights, one group per
    /// priority tier. Seeds hash the model's name, so other models never change a score.
    pub(super) fn rendezvous_groups(&self, models: &[Model]) -> Result<Vec<Vec<Seat>>, String> {
        let seat = |m: ModelId, weight: u32| Seat {
            model: m,
            seed: rendezvous_hash(models.get(m.0 as usize).map_or("", |m| m.name.as_str()).as_bytes()),
            weight,
        };
        let spread = |s: &Spread| -> Vec<Seat> {
            match s {
                Spread::RoundRobin(list) => list.iter().map(|m| seat(*m, 1)).collect(),
                Spread::Weighted(w) => w.weights().iter().map(|(m, wt)| seat(*m, *wt)).collect(),
            }
        };
        match self {
            Base::RoundRobin(p) => Ok(vec![p.models().into_iter().map(|m| seat(m, 1)).collect()]),
            Base::Weighted(w) => Ok(vec![w.weights().iter().map(|(m, wt)| seat(*m, *wt)).collect()]),
            Base::Priority(p) => Ok(p.tiers().iter().map(|t| spread(&t.spread)).collect()),
            Base::Fallback(_) | Base::Cost(_) => Err(format!(
                "`sticky` spreads sessions over models that share traffic (plain, `weight` or `priority` entries); a {} worker sends everyone to the same first model",
                if matches!(self, Base::Cost(_)) { Kind::Cost } else { Kind::Fallback }
            )),
            Base::Latency(_) | Base::LeastBusy(_) => Err(format!(
                "`sticky` pins sessions to models; a {} worker moves requests by measured load, so the two cannot combine",
                if matches!(self, Base::Latency(_)) { Kind::Latency } else { Kind::LeastBusy }
            )),
        }
    }
}

/// The strategy the routing fields say.
pub(super) fn inferred(entries: &[Entry<'_>]) -> Result<Base, String> {
    let n = entries.len();
    let count = |f: fn(&wire::Route) -> bool| entries.iter().filter(|(_, r)| f(r)).count();
    let with_order = count(|r| r.order.is_some());
    let with_weight = count(|r| r.weight.is_some());
    let with_priority = count(|r| r.priority.is_some());

    if with_priority > 0 {
        if with_order > 0 {
            return Err("mixes `order` (fallback) and `priority` entries; lower tiers already are the fallback chain: use `priority` alone".into());
        }
        if with_priority < n {
            return Err("mixes entries with and without `priority`; give every entry a `priority` (0–100, higher preferred), or none".into());
        }
        return priority(entries).map(Base::Priority);
    }
    if with_order == 0 && with_weight == 0 {
        return Ok(Base::RoundRobin(RoundRobin::new(entries.iter().map(|(id, _)| *id).collect())));
    }
    if with_order == n && with_weight == 0 {
        let mut ordered = Vec::with_capacity(n);
        for (id, r) in entries {
            let o = r.order.unwrap_or(0);
            let o =
                u32::try_from(o).map_err(|_| format!("model `{}`: order {o} must be a whole number ≥ 0", r.from))?;
            ordered.push((o, *id));
        }
        // Stable: ties keep config order.
        crate::policy::sort_by_key(&mut ordered, |(o, _)| *o);
        return Ok(Base::Fallback(Fallback::new(ordered.into_iter().map(|(_, id)| id).collect())));
    }
    if with_weight == n && with_order == 0 {
        return weighted(entries).map(Base::Weighted);
    }
    Err(if with_order > 0 && with_weight > 0 {
        "mixes `order` (fallback) and `weight` (weighted) entries; use one strategy per worker"
    } else if with_order > 0 {
        "mixes plain (round robin) and `order` (fallback) entries; give every entry an `order`, or none"
    } else {
        "mixes plain (round robin) and `weight` entries; give every entry a `weight`, or none"
    }
    .into())
}

pub(super) fn weighted(entries: &[Entry<'_>]) -> Result<Weighted, String> {
    let (models, scaled) = whole_weights(entries)?;
    Weighted::new(models, MAX_WEIGHT_SUM).map_err(|sum| {
        if scaled {
            format!("weights add up to {sum} as whole numbers (decimals scaled by a power of ten, then divided by their common divisor); the limit is {MAX_WEIGHT_SUM} (fewer decimal places or closer weights make it smaller)")
        } else {
            format!("weights add up to {sum} (after dividing by their common divisor); the limit is {MAX_WEIGHT_SUM}")
        }
    })
}

pub(super) fn priority(entries: &[Entry<'_>]) -> Result<Priority, String> {
    // One tier per value, members in config order.
    let mut tiers: BTreeMap<u8, Vec<Entry<'_>>> = BTreeMap::new();
    for (id, r) in entries {
        let p = r.priority.unwrap_or(0);
        let p = u8::try_from(p).ok().filter(|p| i64::from(*p) <= MAX_PRIORITY).ok_or_else(|| {
            format!(
                "model `{}`: priority {p} must be a whole number from 0 to {MAX_PRIORITY} (higher preferred)",
                r.from
            )
        })?;
        tiers.entry(p).or_default().push((*id, r));
    }
    let mut out = Vec::with_capacity(tiers.len());
    for (p, members) in tiers {
        let with_weight = members.iter().filter(|(_, r)| r.weight.is_some()).count();
        let spread = if with_weight == 0 {
            Spread::RoundRobin(members.iter().map(|(id, _)| *id).collect())
        } else if with_weight == members.len() {
            Spread::Weighted(weighted(&members).map_err(|e| format!("priority {p} tier: {e}"))?)
        } else {
            return Err(format!(
                "priority {p} tier mixes entries with and without `weight`; inside a tier give every entry a `weight`, or none"
            ));
        };
        out.push(Tier { priority: p, spread });
    }
    Ok(Priority::new(out))
}

pub(super) fn cost(entries: &[Entry<'_>], costs: &[Option<f64>]) -> Result<Cost, String> {
    if entries.iter().any(|(_, r)| r.order.is_some() || r.weight.is_some() || r.priority.is_some()) {
        return Err("strategy `cost` orders the models by their `params.cost`; remove `order`, `weight` and `priority` from its routing entries".into());
    }
    let mut models = Vec::with_capacity(entries.len());
    let mut missing = Vec::new();
    for (id, r) in entries {
        match costs.get(id.0 as usize).copied().flatten() {
            Some(c) => models.push((*id, c)),
            None => missing.push(format!("`{}`", r.from)),
        }
    }
    if !missing.is_empty() {
        return Err(format!("strategy `cost` needs `params.cost` on every model; missing on {}", missing.join(", ")));
    }
    Ok(Cost::new(models))
}

/// `latency` and `least_busy` rank the models by measurement: their entries are plain `from`.
pub(super) fn plain_only(entries: &[Entry<'_>], strategy: &str) -> Result<(), String> {
    if entries.iter().any(|(_, r)| r.order.is_some() || r.weight.is_some() || r.priority.is_some()) {
        return Err(format!("strategy `{strategy}` ranks the models by measurement; remove `order`, `weight` and `priority` from its routing entries"));
    }
    Ok(())
}

/// Most exploration a `latency` worker may do.
pub const MAX_EXPLORE: f64 = 0.5;

/// `explore`: a number from 0 to 0.5 with up to 4 decimal places, as a reduced fraction.
pub(super) fn explore(e: &Scalar) -> Result<Explore, String> {
    let bad = || {
        format!(
            "`load_balance.explore` {} must be a number from 0 to {MAX_EXPLORE} (the share of requests sent to the slower models, e.g. 0.05), with up to {MAX_WEIGHT_PLACES} decimal places",
            show(e)
        )
    };
    if matches!(e, Scalar::Int(0)) || matches!(e, Scalar::Float(f) if *f == 0.0) {
        return Ok(Explore { p: 0, q: 1 });
    }
    let (units, places) = decimal(e).map_err(|_| bad())?;
    let q = 10u64.checked_pow(places).ok_or_else(bad)?;
    if units as f64 / q as f64 > MAX_EXPLORE {
        return Err(bad());
    }
    let g = crate::policy::gcd(units, q).max(1);
    Ok(Explore { p: units / g, q: q / g })
}
