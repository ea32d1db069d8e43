//! The plugin configuration parser on arbitrary text: never panics; an accepted config is
//! internally consistent (every worker's chain names configured models, names resolve).
#![no_main]

use libfuzzer_sys::fuzz_target;
use model_workers::config::{Config, Policy, Target};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let env = |name: &str| if name.len() % 2 == 0 { Some(format!("sk-{name}")) } else { None };
    let Ok(config) = Config::parse(text, &env) else { return };
    for (i, w) in config.workers.iter().enumerate() {
        assert!(matches!(config.resolve(&w.name), Some(Target::Worker(id)) if id.0 as usize == i));
        let members: Vec<_> = match &w.policy {
            Policy::RoundRobin(l) | Policy::Fallback(l) => l.clone(),
            Policy::Weighted { models, schedule } => {
                assert!(!schedule.is_empty());
                models.iter().map(|(m, w)| {
                    assert!(*w > 0);
                    *m
                }).collect()
            }
        };
        assert!(!members.is_empty());
        for m in members {
            assert!(config.model(m).is_some());
        }
    }
    for m in &config.models {
        assert!(!m.cluster.is_empty());
        assert!(!m.model_id.is_empty());
    }
});
