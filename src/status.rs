//! The read-only status document (`model_workers.status_path`): every worker with its
//! strategy and models, every model with its breaker, latency and in-flight attempts, from the
//! shared per-model table, and the request counts of both, from the filter's Envoy counters
//! (both cover all Envoy worker threads). No secret, key, cluster or address is in it: names,
//! numbers and states only.

use serde_json::{json, Map, Value};

use crate::config::Config;
use crate::state::ModelState;

/// Counter values by their stat's last name segment (`rq_total`); None: the host could not
/// read that one.
pub type Counters = Vec<(&'static str, Option<u64>)>;

/// The filter's counters as the status request read them: the filter's own, then by worker id
/// and by model id (missing: none read).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    pub filter: Counters,
    pub workers: Vec<Counters>,
    pub models: Vec<Counters>,
}

fn counters(c: Option<&Counters>) -> Value {
    let map: Map<String, Value> = c.into_iter().flatten().map(|(k, v)| ((*k).to_string(), json!(v))).collect();
    Value::Object(map)
}

/// `states`: by model id, as the shared table holds them (missing: never recorded).
pub fn status_json(config: &Config, states: &[ModelState], counts: &Counts, now_ms: u64) -> String {
    let workers: Vec<Value> = config
        .workers
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let models: Vec<&str> =
                w.policy.models().iter().filter_map(|m| config.model(*m)).map(|m| m.name.as_str()).collect();
            json!({
                "name": w.name,
                "strategy": w.policy.kind().to_string(),
                "models": models,
                "counters": counters(counts.workers.get(i)),
            })
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
                "counters": counters(counts.models.get(i)),
            })
        })
        .collect();
    json!({
        "object": "model_workers.status",
        "counters": counters(Some(&counts.filter)),
        "workers": workers,
        "models": models,
    })
    .to_string()
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
        let counts = Counts {
            filter: vec![("rq_total", Some(9))],
            workers: vec![vec![("rq_total", Some(7)), ("rq_error", None)]],
            models: vec![vec![("attempts", Some(8))]],
        };
        let text = status_json(&c, &[open], &counts, 1_500);
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["workers"][0]["models"], json!(["a", "b"]));
        assert_eq!(v["models"][0]["breaker"], json!({"state": "open", "failures": 5, "open_for_ms": 500}));
        assert_eq!(v["models"][0]["latency_ewma_ms"], 120);
        assert_eq!(v["models"][0]["in_flight"], 2);
        assert_eq!(v["models"][1]["breaker"]["state"], "off");
        assert!(v["models"][1]["latency_ewma_ms"].is_null());
        // Counters by key; one the host could not read is null; none read: an empty object.
        assert_eq!(v["counters"], json!({"rq_total": 9}));
        assert_eq!(v["workers"][0]["counters"], json!({"rq_total": 7, "rq_error": null}));
        assert_eq!(v["models"][0]["counters"], json!({"attempts": 8}));
        assert_eq!(v["models"][1]["counters"], json!({}));
        for secret in ["sk-very-secret", "secret-cluster", "10.1.2.3"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        // After the cooldown: half-open until a success closes it.
        let v: Value = serde_json::from_str(&status_json(&c, &[open], &Counts::default(), 3_000)).unwrap();
        assert_eq!(v["models"][0]["breaker"]["state"], "half_open");
    }
}
