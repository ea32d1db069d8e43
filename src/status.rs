//! The read-only status document (`model_workers.status_path`): every worker with its
//! strategy and models, every model with its breaker, latency and in-flight attempts, from the
//! shared per-model table (all Envoy worker threads). No secret, key, cluster or address is in
//! it: names, numbers and states only.

use serde_json::{json, Value};

use crate::config::Config;
use crate::state::ModelState;

/// `states`: by model id, as the shared table holds them (missing: never recorded).
pub fn status_json(config: &Config, states: &[ModelState], now_ms: u64) -> String {
    let workers: Vec<Value> = config
        .workers
        .iter()
        .map(|w| {
            let models: Vec<&str> =
                w.policy.models().iter().filter_map(|m| config.model(*m)).map(|m| m.name.as_str()).collect();
            json!({ "name": w.name, "strategy": w.policy.kind().to_string(), "models": models })
        })
        .collect();
    let models: Vec<Value> = config
        .models
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let s = states.get(i).copied().unwrap_or_default();
            let b = s.breaker;
            let breaker = if m.cooldown.failures == 0 {
                json!({ "state": "off" })
            } else if b.is_open(now_ms) {
                json!({ "state": "open", "failures": b.failures, "open_for_ms": b.open_until_ms.saturating_sub(now_ms) })
            } else if b.open_until_ms > 0 && b.failures > 0 {
                json!({ "state": "half_open", "failures": b.failures })
            } else {
                json!({ "state": "closed", "failures": b.failures })
            };
            json!({
                "name": m.name,
                "provider": m.provider.prefix(),
                "breaker": breaker,
                "latency_ewma_ms": (s.samples > 0).then_some(s.ewma_ms),
                "latency_samples": s.samples,
                "in_flight": s.in_flight,
            })
        })
        .collect();
    json!({ "object": "model_workers.status", "workers": workers, "models": models }).to_string()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use crate::cooldown::Breaker;

    #[test]
    fn status_names_states_and_never_a_secret() {
        let c = Config::parse(
            "models:\n  - from: openai:a\n    name: a\n    params: { cluster: secret-cluster, openai_api_key: sk-very-secret, endpoint: \"http://10.1.2.3:8000/v1\" }\n  - from: openai:b\n    name: b\n    params: { cooldown_failures: 0 }\nworkers:\n  - name: w\n    load_balance: { routing: [{ from: a, order: 1 }, { from: b, order: 2 }] }\n",
            &|_| None,
        )
        .unwrap();
        let open = ModelState {
            breaker: Breaker { failures: 5, open_until_ms: 2_000 },
            ewma_ms: 120,
            samples: 3,
            in_flight: 2,
        };
        let text = status_json(&c, &[open], 1_500);
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["workers"][0]["models"], json!(["a", "b"]));
        assert_eq!(v["models"][0]["breaker"], json!({"state": "open", "failures": 5, "open_for_ms": 500}));
        assert_eq!(v["models"][0]["latency_ewma_ms"], 120);
        assert_eq!(v["models"][0]["in_flight"], 2);
        assert_eq!(v["models"][1]["breaker"]["state"], "off");
        assert!(v["models"][1]["latency_ewma_ms"].is_null());
        for secret in ["sk-very-secret", "secret-cluster", "10.1.2.3"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        // After the cooldown: half-open until a success closes it.
        let v: Value = serde_json::from_str(&status_json(&c, &[open], 3_000)).unwrap();
        assert_eq!(v["models"][0]["breaker"]["state"], "half_open");
    }
}
