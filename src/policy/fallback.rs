//! Fallback (Spice: `order`, lowest first, ties in config order): a fixed chain, no ticket;
//! cooling models move to the end.

use super::{extend_where, Health, Kind, ModelId, Pick, Policy};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fallback {
    /// Already in `order`.
    models: Vec<ModelId>,
}

impl Fallback {
    pub fn new(ordered: Vec<ModelId>) -> Fallback {
        Fallback { models: ordered }
    }

    /// A fixed order with the breaker rules: healthy models in order, then the cooling ones.
    pub(crate) fn chain(models: &[ModelId], cooling: &dyn Fn(ModelId) -> bool) -> Vec<ModelId> {
        let h = Health::new(models.iter().copied(), cooling);
        if h.all_healthy() {
            return models.to_vec();
        }
        let mut chain = Vec::with_capacity(models.len());
        extend_where(&mut chain, models.iter().copied(), |m| !h.cool(m));
        extend_where(&mut chain, models.iter().copied(), |m| h.cool(m));
        chain
    }
}

impl Policy for Fallback {
    fn kind(&self) -> Kind {
        Kind::Fallback
    }

    fn models(&self) -> Vec<ModelId> {
        self.models.clone()
    }

    #[cfg(any(test, not(target_arch = "wasm32")))]
    fn describe(&self, name: &dyn Fn(ModelId) -> String) -> String {
        let names: Vec<String> = self.models.iter().map(|m| name(*m)).collect();
        format!("fallback: {}", names.join(", "))
    }

    fn needs_ticket(&self, _has_session: bool) -> bool {
        false
    }

    fn candidates(&self, _pick: &Pick<'_>, cooling: &dyn Fn(ModelId) -> bool) -> Vec<ModelId> {
        Fallback::chain(&self.models, cooling)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::testing::*;

    #[test]
    fn ignores_the_ticket() {
        let p = Fallback::new(ids(&[1, 0, 2]));
        for t in 0..5 {
            assert_eq!(p.candidates(&ticket(t), &none), ids(&[1, 0, 2]));
        }
        assert!(!p.needs_ticket(false));
    }

    #[test]
    fn cooling_goes_last_and_never_empties() {
        let p = Fallback::new(ids(&[1, 0, 2]));
        assert_eq!(p.candidates(&ticket(0), &|m| m == ModelId(1)), ids(&[0, 2, 1]));
        assert_eq!(p.candidates(&ticket(0), &|m| m != ModelId(2)), ids(&[2, 1, 0]));
        assert_eq!(p.candidates(&ticket(0), &|_| true), ids(&[1, 0, 2]));
    }
}
