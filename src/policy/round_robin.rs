//! Round robin (Spice: plain `from` entries): the ticket picks `ticket % n` among the healthy
//! models; the chain is the rotation from there, cooling models last.

use super::{extend_where, rotate_into, Health, Kind, ModelId, Pick, Policy};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoundRobin {
    models: Vec<ModelId>,
}

impl RoundRobin {
    pub fn new(models: Vec<ModelId>) -> RoundRobin {
        RoundRobin { models }
    }

    /// Append the healthy rotation for `ticket` (cooling models left out).
    pub(crate) fn healthy_into(models: &[ModelId], ticket: u64, h: &Health<'_>, out: &mut Vec<ModelId>) {
        if h.all_healthy() || !models.iter().any(|m| h.cool(*m)) {
            rotate_into(out, models, ticket);
        } else {
            let healthy: Vec<ModelId> = models.iter().copied().filter(|m| !h.cool(*m)).collect();
            rotate_into(out, &healthy, ticket);
        }
    }
}

impl Policy for RoundRobin {
    fn kind(&self) -> Kind {
        Kind::RoundRobin
    }

    fn models(&self) -> Vec<ModelId> {
        self.models.clone()
    }

    #[cfg(any(test, not(target_arch = "wasm32")))]
    fn describe(&self, name: &dyn Fn(ModelId) -> String) -> String {
        let names: Vec<String> = self.models.iter().map(|m| name(*m)).collect();
        format!("round robin: {}", names.join(", "))
    }

    fn needs_ticket(&self, _has_session: bool) -> bool {
        self.models.len() > 1
    }

    fn candidates(&self, pick: &Pick<'_>, cooling: &dyn Fn(ModelId) -> bool) -> Vec<ModelId> {
        let h = Health::new(self.models.iter().copied(), cooling);
        let mut chain = Vec::with_capacity(self.models.len());
        RoundRobin::healthy_into(&self.models, pick.ticket, &h, &mut chain);
        extend_where(&mut chain, self.models.iter().copied(), |m| h.cool(m));
        chain
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::testing::*;
    use std::collections::HashMap;

    #[test]
    fn rotates_and_chains_the_rest() {
        let p = RoundRobin::new(ids(&[0, 1, 2]));
        assert_eq!(p.candidates(&ticket(0), &none), ids(&[0, 1, 2]));
        assert_eq!(p.candidates(&ticket(1), &none), ids(&[1, 2, 0]));
        assert_eq!(p.candidates(&ticket(2), &none), ids(&[2, 0, 1]));
        assert_eq!(p.candidates(&ticket(3), &none), ids(&[0, 1, 2]));
        assert_eq!(p.candidates(&ticket(u64::MAX), &none).len(), 3);
        assert!(p.needs_ticket(false));
        assert!(!RoundRobin::new(ids(&[4])).needs_ticket(false), "one model: no ticket to draw");
        assert_eq!(p.describe(&name), "round robin: m0, m1, m2");
    }

    #[test]
    fn cooling_models_go_last_and_shares_stay_exact_among_healthy() {
        let cool = |m: ModelId| m == ModelId(1);
        let p = RoundRobin::new(ids(&[0, 1, 2]));
        let mut count: HashMap<ModelId, u32> = HashMap::new();
        for t in 0..100 {
            let c = p.candidates(&ticket(t), &cool);
            assert_eq!(c.len(), 3);
            assert_eq!(*c.last().unwrap(), ModelId(1));
            *count.entry(c[0]).or_default() += 1;
        }
        assert_eq!(count[&ModelId(0)], 50);
        assert_eq!(count[&ModelId(2)], 50);
    }

    #[test]
    fn never_emptied() {
        let all = |_: ModelId| true;
        assert_eq!(RoundRobin::new(ids(&[5])).candidates(&ticket(3), &all), ids(&[5]));
        assert_eq!(RoundRobin::new(ids(&[0, 1])).candidates(&ticket(1), &all), ids(&[1, 0]));
    }
}
