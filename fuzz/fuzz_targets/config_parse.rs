//! The plugin configuration parser on arbitrary text: never panics; an accepted config is
//! internally consistent (every worker's chain names configured models, names resolve).
#![no_main]

use libfuzzer_sys::fuzz_target;
use model_workers::config::{Config, Target};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let env = |name: &str| if name.len() % 2 == 0 { Some(format!("sk-{name}")) } else { None };
    let Ok(config) = Config::parse(text, &env) else { return };
    for (i, w) in config.workers.iter().enumerate() {
        assert!(matches!(config.resolve(&w.name), Some(Target::Worker(id)) if id.0 as usize == i));
        let members = w.policy.models();
        assert!(!members.is_empty());
        for m in &members {
            assert!(config.model(*m).is_some());
        }
        // Every pick is a permutation of the members, breakers or not, key or not.
        let mut sorted = members.clone();
        sorted.sort();
        for (ticket, session) in [(0, None), (7, Some("s")), (u64::MAX, Some("x"))] {
            let pick = model_workers::policy::Pick { ticket, session, load: &[], random: ticket };
            for cooling in [&(|_| false) as &dyn Fn(_) -> bool, &|m: model_workers::config::ModelId| m.0 % 2 == 0, &|_| true] {
                let mut chain = w.policy.candidates(&pick, cooling);
                chain.sort();
                assert_eq!(chain, sorted);
            }
        }
    }
    for m in &config.models {
        assert!(!m.cluster.is_empty());
        assert!(!m.model_id.is_empty());
    }
});
