//! Sticky sessions: a request's session key (a header, or a top-level string of the body —
//! `user` by default) picks its model by rendezvous (highest-random-weight) hashing. Each
//! model scores `hash(key, model name)`; the highest score serves, so
//!
//! * the same key always lands on the same model while that model is healthy;
//! * removing a model moves only the sessions it had (every other model's score for a key is
//!   unchanged, so its winners still win);
//! * a cooling model's sessions move to their next rendezvous choice, and come back when it
//!   recovers;
//! * weights are respected: with weights, a model scores `w / -ln(u)` for the hash mapped to
//!   `u` in (0, 1), and wins a share `w / Σw` of the keys (weighted rendezvous hashing).
//!
//! Scores hash the model's *name* (not its index), so adding, removing or reordering other
//! models never changes a key's score for a model. The hash is fixed (FNV-1a 64 with the
//! murmur3 finaliser), the same on every thread, VM and restart.
//!
//! The chain is the rendezvous order, cooling models last. Over a priority worker the tiers
//! stay in tier order: the session's rendezvous choice inside the highest tier with a healthy
//! model serves. Requests without a key use the worker's base policy.

use std::fmt;
use std::sync::Arc;

use super::{Health, Kind, ModelId, Pick, Policy};

/// Where the session key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A request header (lower-case name); repeated, its values joined by `, `.
    Header(String),
    /// A top-level string member of the JSON body (`user`).
    Body(String),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Header(h) => write!(f, "header {h}"),
            Source::Body(b) => write!(f, "body `{b}`"),
        }
    }
}

/// One model in a rendezvous group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seat {
    pub model: ModelId,
    /// [`rendezvous_hash`] of the model's name.
    pub seed: u64,
    pub weight: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Group {
    seats: Vec<Seat>,
    /// Not all weights are equal: scores are `w / -ln(u)` instead of the plain hash.
    weighted: bool,
}

#[derive(Debug, Clone)]
pub struct Sticky {
    source: Source,
    base: Arc<dyn Policy>,
    /// In chain order: one group for round robin and weighted, one per tier for priority.
    groups: Vec<Group>,
}

impl Sticky {
    pub fn new(source: Source, base: Arc<dyn Policy>, groups: Vec<Vec<Seat>>) -> Sticky {
        let groups = groups
            .into_iter()
            .map(|seats| {
                let weighted = seats.windows(2).any(|w| w.first().map(|s| s.weight) != w.get(1).map(|s| s.weight));
                Group { seats, weighted }
            })
            .collect();
        Sticky { source, base, groups }
    }

    pub fn base(&self) -> &dyn Policy {
        self.base.as_ref()
    }

    /// The rendezvous order for a key, every model once, breakers aside.
    pub fn order(&self, session: &str) -> Vec<ModelId> {
        let key = rendezvous_hash(session.as_bytes());
        let mut out = Vec::with_capacity(self.groups.iter().map(|g| g.seats.len()).sum());
        let mut scored: Vec<(u64, ModelId)> = Vec::new();
        for g in &self.groups {
            scored.clear();
            scored.extend(g.seats.iter().map(|s| {
                // A positive finite f64's bits order as its value.
                let v = if g.weighted { weighted_score(key, s).to_bits() } else { score(key, s.seed) };
                (v, s.model)
            }));
            // Highest first; equal scores (never seen) keep config order.
            super::sort_by_key(&mut scored, |(v, _)| std::cmp::Reverse(*v));
            out.extend(scored.iter().map(|(_, m)| *m));
        }
        out
    }
}

impl Policy for Sticky {
    fn kind(&self) -> Kind {
        Kind::Sticky
    }

    fn models(&self) -> Vec<ModelId> {
        self.base.models()
    }

    #[cfg(any(test, not(target_arch = "wasm32")))]
    fn describe(&self, name: &dyn Fn(ModelId) -> String) -> String {
        format!("sticky on {} + {}", self.source, self.base.describe(name))
    }

    fn needs_ticket(&self, has_session: bool) -> bool {
        !has_session && self.base.needs_ticket(false)
    }

    fn session_source(&self) -> Option<&Source> {
        Some(&self.source)
    }

    fn candidates(&self, pick: &Pick<'_>, cooling: &dyn Fn(ModelId) -> bool) -> Vec<ModelId> {
        let Some(session) = pick.session else { return self.base.candidates(pick, cooling) };
        let order = self.order(session);
        let h = Health::new(order.iter().copied(), cooling);
        if h.all_healthy() {
            return order;
        }
        let (mut chain, cold): (Vec<ModelId>, Vec<ModelId>) = order.into_iter().partition(|m| !h.cool(*m));
        chain.extend(cold);
        chain
    }
}

/// The fixed 64-bit hash of rendezvous scores: FNV-1a, then murmur3's finaliser (so nearby
/// keys such as `user-1`, `user-2` spread).
pub fn rendezvous_hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    fmix64(h)
}

fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^= k >> 33;
    k
}

/// A key's score for a model.
fn score(key: u64, seed: u64) -> u64 {
    fmix64(key ^ seed)
}

/// Weighted rendezvous: `w / -ln(u)` with `u` the score mapped into (0, 1).
fn weighted_score(key: u64, seat: &Seat) -> f64 {
    let u = ((score(key, seat.seed) >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    f64::from(seat.weight) / -u.ln()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::testing::*;
    use crate::policy::{Priority, RoundRobin, Spread, Tier};
    use std::collections::HashMap;

    fn seats(names: &[(&str, u32, u32)]) -> Vec<Seat> {
        names
            .iter()
            .map(|(n, id, w)| Seat { model: ModelId(*id), seed: rendezvous_hash(n.as_bytes()), weight: *w })
            .collect()
    }

    fn sticky(names: &[(&str, u32, u32)]) -> Sticky {
        let base = Arc::new(RoundRobin::new(names.iter().map(|(_, id, _)| ModelId(*id)).collect()));
        Sticky::new(Source::Body("user".into()), base, vec![seats(names)])
    }

    fn session(k: &str) -> Pick<'_> {
        Pick { ticket: 0, session: Some(k), ..Pick::default() }
    }

    fn first(p: &Sticky, key: &str, cool: &dyn Fn(ModelId) -> bool) -> ModelId {
        p.candidates(&session(key), cool)[0]
    }

    const ABCD: [(&str, u32, u32); 4] = [("a", 0, 1), ("b", 1, 1), ("c", 2, 1), ("d", 3, 1)];

    #[test]
    fn each_session_always_maps_to_one_model_and_spreads_evenly() {
        let p = sticky(&ABCD);
        let mut count: HashMap<ModelId, u32> = HashMap::new();
        for i in 0..1000 {
            let key = format!("session-{i}");
            let m = first(&p, &key, &none);
            for t in 0..5 {
                // Any ticket, any number of times: the same model, the same chain.
                let pick = Pick { ticket: t, session: Some(&key), ..Pick::default() };
                assert_eq!(p.candidates(&pick, &none)[0], m);
            }
            let chain = p.candidates(&session(&key), &none);
            let mut sorted = chain.clone();
            sorted.sort();
            assert_eq!(sorted, ids(&[0, 1, 2, 3]), "every model once");
            *count.entry(m).or_default() += 1;
        }
        eprintln!("1,000 sessions over 4 equal models: {count:?}");
        for m in 0..4 {
            let n = count[&ModelId(m)];
            assert!((200..=300).contains(&n), "m{m}: {n} of 1000 ({count:?})");
        }
        assert!(!p.needs_ticket(true));
        assert!(p.needs_ticket(false), "no key: the base round robin draws one");
        assert_eq!(p.describe(&name), "sticky on body `user` + round robin: m0, m1, m2, m3");
    }

    #[test]
    fn removing_a_model_moves_only_its_sessions() {
        let full = sticky(&ABCD);
        // Same names, `c` removed, the others renumbered (as a config without `c` would be).
        let less = sticky(&[("a", 0, 1), ("b", 1, 1), ("d", 2, 1)]);
        let name_full = |m: ModelId| ["a", "b", "c", "d"][m.0 as usize];
        let name_less = |m: ModelId| ["a", "b", "d"][m.0 as usize];
        let (mut on_c, mut moved) = (0, 0);
        for i in 0..1000 {
            let key = format!("session-{i}");
            let before = name_full(first(&full, &key, &none));
            let after = name_less(first(&less, &key, &none));
            if before == "c" {
                on_c += 1;
                // …to its second rendezvous choice.
                assert_eq!(after, name_full(full.order(&key)[1]));
            }
            if before != after {
                moved += 1;
            }
        }
        eprintln!("removing c: {on_c} sessions were on c, {moved} moved");
        assert!(on_c > 0);
        assert_eq!(moved, on_c, "exactly c's sessions moved");
    }

    #[test]
    fn a_cooling_model_lends_its_sessions_to_their_next_choice() {
        let p = sticky(&ABCD);
        let cool = |m: ModelId| m == ModelId(1);
        let mut moved = 0;
        for i in 0..1000 {
            let key = format!("s{i}");
            let order = p.order(&key);
            let chain = p.candidates(&session(&key), &cool);
            if order[0] == ModelId(1) {
                moved += 1;
                assert_eq!(chain[0], order[1]);
            } else {
                assert_eq!(chain[0], order[0], "healthy models keep their sessions");
            }
            assert_eq!(chain.last(), Some(&ModelId(1)));
            // Recovered: back on its first choice.
            assert_eq!(first(&p, &key, &none), order[0]);
        }
        assert!(moved > 150, "{moved}");
        // Every model cooling: plain rendezvous order.
        assert_eq!(p.candidates(&session("x"), &|_| true), p.order("x"));
    }

    #[test]
    fn weights_are_respected() {
        let p = sticky(&[("a", 0, 7), ("b", 1, 2), ("c", 2, 1)]);
        let mut count: HashMap<ModelId, u32> = HashMap::new();
        let n = 20_000;
        for i in 0..n {
            *count.entry(first(&p, &format!("user-{i}"), &none)).or_default() += 1;
        }
        eprintln!("20,000 sessions, weights 7:2:1: {count:?}");
        for (m, w) in [(0, 7.0), (1, 2.0), (2, 1.0)] {
            let share = f64::from(count[&ModelId(m)]) / f64::from(n);
            assert!((share - w / 10.0).abs() < 0.02, "m{m}: {share} vs {}", w / 10.0);
        }
        // Stable under removal with weights too.
        let less = sticky(&[("a", 0, 7), ("c", 1, 1)]);
        let mut moved = 0;
        let mut on_b = 0;
        for i in 0..1000 {
            let key = format!("user-{i}");
            let before = first(&p, &key, &none);
            let after = first(&less, &key, &none);
            let (b, a) = (["a", "b", "c"][before.0 as usize], ["a", "c"][after.0 as usize]);
            on_b += usize::from(b == "b");
            moved += usize::from(a != b);
        }
        assert_eq!(moved, on_b);
    }

    #[test]
    fn over_priority_tiers_the_top_healthy_tier_serves() {
        let base = Arc::new(Priority::new(vec![
            Tier { priority: 100, spread: Spread::RoundRobin(ids(&[0, 1])) },
            Tier { priority: 0, spread: Spread::RoundRobin(ids(&[2, 3])) },
        ]));
        let all = seats(&ABCD);
        let p = Sticky::new(Source::Header("x-session-id".into()), base, vec![all[..2].to_vec(), all[2..].to_vec()]);
        for i in 0..200 {
            let key = format!("k{i}");
            let c = p.candidates(&session(&key), &none);
            assert!(c[0].0 <= 1 && c[1].0 <= 1, "top tier first: {c:?}");
            let c = p.candidates(&session(&key), &|m| m.0 <= 1);
            assert!(c[0].0 >= 2, "top tier cooling: {c:?}");
            assert_eq!(&c[2..], &p.order(&key)[..2]);
        }
        // No key: the base policy, with its ticket.
        assert_eq!(p.candidates(&ticket(1), &none), ids(&[1, 0, 3, 2]));
    }

    #[test]
    fn the_hash_is_fixed() {
        // Pinned: a change would move every session of every deployment.
        assert_eq!(rendezvous_hash(b""), 0xefd0_1f60_ba99_2926);
        assert_eq!(rendezvous_hash(b"a"), 0x82a2_a958_a9be_ce5b);
        assert_eq!(rendezvous_hash(b"user-42"), 0xa395_32c7_ab05_1e8d);
    }
}
