//! Cost-aware (Glide's cost-based routing): the cheapest healthy model first, the rest as the
//! fallback chain in cost order (ties keep config order), cooling models last. No ticket.

use super::fallback::Fallback;
use super::{Kind, ModelId, Pick, Policy};

#[derive(Debug, Clone, PartialEq)]
pub struct Cost {
    /// Cheapest first.
    models: Vec<(ModelId, f64)>,
    order: Vec<ModelId>,
}

impl Cost {
    /// Models with their (finite, non-negative) cost, in config order.
    pub fn new(mut models: Vec<(ModelId, f64)>) -> Cost {
        // Stable: equal costs keep config order. A non-negative f64's bits sort as its value.
        super::sort_by_key(&mut models, |(_, c)| c.abs().to_bits());
        let order = models.iter().map(|(m, _)| *m).collect();
        Cost { models, order }
    }

    /// Cheapest first.
    pub fn costs(&self) -> &[(ModelId, f64)] {
        &self.models
    }
}

impl Policy for Cost {
    fn kind(&self) -> Kind {
        Kind::Cost
    }

    fn models(&self) -> Vec<ModelId> {
        self.order.clone()
    }

    #[cfg(any(test, not(target_arch = "wasm32")))]
    fn describe(&self, name: &dyn Fn(ModelId) -> String) -> String {
        let parts: Vec<String> = self.models.iter().map(|(m, c)| format!("{} {c}", name(*m))).collect();
        format!("cost: {}", parts.join(", "))
    }

    fn needs_ticket(&self, _has_session: bool) -> bool {
        false
    }

    fn candidates(&self, _pick: &Pick<'_>, cooling: &dyn Fn(ModelId) -> bool) -> Vec<ModelId> {
        Fallback::chain(&self.order, cooling)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::testing::*;

    #[test]
    fn cheapest_first_ties_in_config_order() {
        let p = Cost::new(vec![(ModelId(0), 3.0), (ModelId(1), 0.15), (ModelId(2), 2.5), (ModelId(3), 0.15)]);
        assert_eq!(p.models(), ids(&[1, 3, 2, 0]));
        for t in 0..4 {
            assert_eq!(p.candidates(&ticket(t), &none), ids(&[1, 3, 2, 0]));
        }
        assert!(!p.needs_ticket(false));
        assert_eq!(p.describe(&name), "cost: m1 0.15, m3 0.15, m2 2.5, m0 3");
    }

    #[test]
    fn a_cooling_model_hands_over_to_the_next_cheapest() {
        let p = Cost::new(vec![(ModelId(0), 3.0), (ModelId(1), 1.0), (ModelId(2), 2.0)]);
        assert_eq!(p.candidates(&ticket(0), &|m| m == ModelId(1)), ids(&[2, 0, 1]));
        assert_eq!(p.candidates(&ticket(0), &|m| m != ModelId(0)), ids(&[0, 1, 2]));
        assert_eq!(p.candidates(&ticket(0), &|_| true), ids(&[1, 2, 0]), "all cooling: plain cost order");
        // Free models (cost 0) are the cheapest.
        let p = Cost::new(vec![(ModelId(0), 1.0), (ModelId(1), 0.0)]);
        assert_eq!(p.candidates(&ticket(0), &none), ids(&[1, 0]));
    }
}
