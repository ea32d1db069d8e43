//! The richer policies in a real Envoy: exact shares inside a priority tier across four worker
//! threads, a lower tier serving only once the higher one fails, cost order, and sticky
//! sessions that stay put — also across an Envoy restart with one model removed, where only
//! that model's sessions move.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::collections::HashMap;

use common::*;
use model_workers::config::{Config, ModelId, Target};
use model_workers::policy::Pick;

const JSON: (&str, &str) = ("content-type", "application/json");

fn served(r: &Response) -> String {
    assert_eq!(r.status, 200, "{}", r.text());
    r.header("x-mock-backend").unwrap().to_string()
}

/// First picks by model (the first entry of each request's attempt trail) — what the shared
/// tickets decide. A transient failure that fails over (an upstream connection reset under
/// this load) moves who *served* a request, never who was picked first; such requests are
/// counted under `"(failed over)"` too.
fn tally(results: &[Result<Response, String>]) -> HashMap<String, u64> {
    let mut m = HashMap::new();
    for r in results {
        let r = r.as_ref().expect("request failed");
        assert_eq!(r.status, 200, "{}", r.text());
        let trail = r.header("x-model-workers-attempts").unwrap_or_default();
        let first = trail.split(',').next().and_then(|a| a.split('=').next()).unwrap_or("?");
        *m.entry(first.to_string()).or_insert(0) += 1;
        if trail.contains(',') {
            *m.entry("(failed over)".to_string()).or_insert(0) += 1;
        }
    }
    m
}

fn load(w: &World, model: &str, total: usize) -> HashMap<String, u64> {
    let body = chat_body(model, false);
    let port = w.envoy.port;
    tally(&parallel(64, total, |_| {
        try_request(port, "POST", "/v1/chat/completions", &[JSON], body.as_bytes()).map_err(|e| e.to_string())
    }))
}

/// A 503 with `Retry-After: 60`: the breaker opens at once and stays open for the test.
const DOWN: &str = r#"{"status":503,"retry_after":60}"#;

#[test]
fn shares_inside_a_priority_tier_are_exact_across_four_worker_threads() {
    let config = format!(
        "models:\n{}{}{}workers:\n  - name: tiers\n    load_balance:\n      routing:\n        - {{ from: ta, priority: 100, weight: 0.75 }}\n        - {{ from: tb, priority: 100, weight: 0.25 }}\n        - {{ from: tc, priority: 50 }}\n",
        model_yaml("ta", "gpt-a", "a", ""),
        model_yaml("tb", "gpt-b", "b", ""),
        model_yaml("tc", "gpt-c", "c", ""),
    );
    let w = World::start_with(&[("a", &[]), ("b", &[]), ("c", &[])], &config, |o| o.concurrency = 4);
    let by = load(&w, "tiers", 1000);
    eprintln!("priority tier 100 (0.75 / 0.25) over tier 50, 1000 requests, 64 clients, --concurrency 4: {by:?}");
    // 1000 is a whole number of windows of 4 (0.75 / 0.25 → 3:1): exactly 750 / 250 first
    // picks, none lower.
    assert_eq!(by.get("ta").copied(), Some(750), "{by:?}");
    assert_eq!(by.get("tb").copied(), Some(250), "{by:?}");
    assert_eq!(by.get("tc"), None, "{by:?}");
    // And they served them (bar a failover after a transient upstream reset).
    let failed_over = by.get("(failed over)").copied().unwrap_or(0);
    assert!(failed_over <= 2, "{by:?}");
    let served = w.hits("a") + w.hits("b");
    assert!((1000..=1000 + failed_over).contains(&served), "{served} attempts reached a, b: {by:?}");
}

#[test]
fn a_lower_tier_serves_only_when_the_higher_tier_fails() {
    let config = format!(
        "models:\n{}{}{}workers:\n  - name: tiers\n    load_balance:\n      routing:\n        - {{ from: ta, priority: 90 }}\n        - {{ from: tb, priority: 90 }}\n        - {{ from: tc, priority: 10 }}\nmodel_workers:\n  cooldown: {{ failures: 1, duration: 1m }}\n",
        model_yaml("ta", "gpt-a", "a", ""),
        model_yaml("tb", "gpt-b", "b", ""),
        model_yaml("tc", "gpt-c", "c", ""),
    );
    let w = World::start(&[("a", &[]), ("b", &[]), ("c", &[])], &config);
    let attempts = |r: &Response| r.header("x-model-workers-attempts").unwrap_or("").to_string();

    // Healthy: the top tier round-robins, the lower tier is idle.
    let first: Vec<String> = (0..20).map(|_| served(&w.chat("tiers"))).collect();
    assert_eq!(first.iter().filter(|m| *m == "a").count(), 10);
    assert_eq!(first.iter().filter(|m| *m == "b").count(), 10);
    assert_eq!(w.hits("c"), 0);

    // `a` fails: its tier-mate takes over (a failover inside the tier, then its breaker is open).
    w.mock("a").set_faults(DOWN);
    let mut trail = Vec::new();
    for _ in 0..10 {
        let r = w.chat("tiers");
        assert_eq!(served(&r), "b");
        trail.push(attempts(&r));
    }
    assert!(trail.iter().all(|t| t == "tb=200" || t == "ta=503,tb=200"), "{trail:?}");
    assert_eq!(trail.iter().filter(|t| t.starts_with("ta=503")).count(), 1, "one failure opens a's breaker: {trail:?}");
    assert_eq!(w.hits("c"), 0, "the lower tier still idle");

    // The whole top tier fails: now, and only now, the lower tier serves.
    w.mock("b").set_faults(DOWN);
    let r = w.chat("tiers");
    assert_eq!((served(&r), attempts(&r)), ("c".to_string(), "tb=503,tc=200".to_string()));
    for _ in 0..10 {
        let r = w.chat("tiers");
        assert_eq!((served(&r), attempts(&r)), ("c".to_string(), "tc=200".to_string()));
    }
    assert_eq!(w.hits("c"), 11);
}

#[test]
fn a_cost_worker_uses_the_cheapest_healthy_model() {
    let config = format!(
        "models:\n{}{}{}workers:\n  - name: cheap\n    load_balance:\n      strategy: cost\n      routing: [{{ from: pricey }}, {{ from: budget }}, {{ from: middle }}]\nmodel_workers:\n  cooldown: {{ failures: 1, duration: 1m }}\n",
        model_yaml("pricey", "gpt-a", "a", "      cost: 15\n"),
        model_yaml("budget", "gpt-b", "b", "      cost: 0.15\n"),
        model_yaml("middle", "gpt-c", "c", "      cost: 2.5\n"),
    );
    let w = World::start(&[("a", &[]), ("b", &[]), ("c", &[])], &config);
    let step = |n: usize| -> Vec<(String, String)> {
        (0..n)
            .map(|_| {
                let r = w.chat("cheap");
                (served(&r), r.header("x-model-workers-attempts").unwrap().to_string())
            })
            .collect()
    };
    assert!(step(10).iter().all(|(m, a)| m == "b" && a == "budget=200"));
    // The cheapest fails: the next cheapest, then straight to it once the breaker is open.
    w.mock("b").set_faults(DOWN);
    let s = step(5);
    assert_eq!(s[0], ("c".into(), "budget=503,middle=200".into()));
    assert!(s[1..].iter().all(|(m, a)| m == "c" && a == "middle=200"), "{s:?}");
    w.mock("c").set_faults(DOWN);
    let s = step(5);
    assert_eq!(s[0], ("a".into(), "middle=503,pricey=200".into()));
    assert!(s[1..].iter().all(|(m, a)| m == "a" && a == "pricey=200"), "{s:?}");
    assert_eq!((w.hits("a"), w.hits("b"), w.hits("c")), (5, 11, 6));
}

// ---- sticky sessions --------------------------------------------------------------------------

const SESSIONS: usize = 1000;

fn sticky_config(models: &[(&str, &str)]) -> String {
    let mut y = String::from("models:\n");
    for (name, mock) in models {
        y.push_str(&model_yaml(name, &format!("gpt-{name}"), mock, ""));
    }
    y.push_str("workers:\n  - name: by-user\n    load_balance:\n      sticky: {}\n      routing:\n");
    for (name, _) in models {
        y.push_str(&format!("        - from: {name}\n"));
    }
    y.push_str("  - name: by-header\n    load_balance:\n      sticky: { header: x-session-id }\n      routing:\n");
    for (i, (name, _)) in models.iter().enumerate() {
        y.push_str(&format!("        - {{ from: {name}, weight: {} }}\n", if i == 0 { 2 } else { 1 }));
    }
    y.push_str("model_workers:\n  cooldown: { failures: 1, duration: 1m }\n");
    y
}

fn session(i: usize) -> String {
    format!("user-{i:04}")
}

/// Each session's backend (mock name) for one worker, every session sent `rounds` times
/// (each round in another order, so the same key reaches other connections and threads);
/// panics if a session ever saw two backends.
fn sessions(w: &World, worker: &str, rounds: usize) -> Vec<String> {
    let port = w.envoy.port;
    let mut seen: Vec<Option<String>> = vec![None; SESSIONS];
    for round in 0..rounds {
        let got = parallel(32, SESSIONS, |j| {
            let i = if round % 2 == 0 { j } else { SESSIONS - 1 - j };
            let key = session(i);
            let r = if worker == "by-header" {
                let body = chat_body(worker, false);
                try_request(port, "POST", "/v1/chat/completions", &[JSON, ("x-session-id", &key)], body.as_bytes())
            } else {
                let body =
                    serde_json::json!({"model": worker, "user": key, "messages": [{"role": "user", "content": "hi"}]})
                        .to_string();
                try_request(port, "POST", "/v1/chat/completions", &[JSON], body.as_bytes())
            };
            (i, served(&r.expect("request failed")))
        });
        for (i, backend) in got {
            match &seen[i] {
                None => seen[i] = Some(backend),
                Some(before) => assert_eq!(before, &backend, "{worker}: session {i} moved within one config"),
            }
        }
    }
    seen.into_iter().map(Option::unwrap).collect()
}

/// What the filter's own policy code says each session gets (mock names), for a config.
fn predicted(config: &str, worker: &str, cooling: &dyn Fn(&str) -> bool) -> Vec<String> {
    let c = Config::parse(config, &|_| None).unwrap();
    let Some(Target::Worker(id)) = c.resolve(worker) else { panic!("no worker {worker}") };
    let policy = &c.worker(id).unwrap().policy;
    let cool = |m: ModelId| cooling(&c.model(m).unwrap().name);
    (0..SESSIONS)
        .map(|i| {
            let key = session(i);
            let first = policy.candidates(&Pick { ticket: 0, session: Some(&key), ..Pick::default() }, &cool)[0];
            c.model(first).unwrap().cluster.clone()
        })
        .collect()
}

fn count(v: &[String]) -> Vec<(String, usize)> {
    let mut m: HashMap<&str, usize> = HashMap::new();
    for s in v {
        *m.entry(s).or_default() += 1;
    }
    let mut out: Vec<(String, usize)> = m.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    out.sort();
    out
}

#[test]
fn sticky_sessions_stay_on_one_model_and_removing_a_model_moves_only_its_sessions() {
    let four = [("ma", "a"), ("mb", "b"), ("mc", "c"), ("md", "d")];
    let config = sticky_config(&four);
    let mut w = World::start_with(&[("a", &[]), ("b", &[]), ("c", &[]), ("d", &[])], &config, |o| o.concurrency = 4);

    // 1,000 sessions, each sent twice to each worker: one backend per session, the one the
    // policy code predicts.
    let by_user = sessions(&w, "by-user", 2);
    let by_header = sessions(&w, "by-header", 2);
    eprintln!("1,000 sessions by body `user` over 4 equal models: {:?}", count(&by_user));
    eprintln!("1,000 sessions by header over weights 2:1:1:1: {:?}", count(&by_header));
    assert_eq!(by_user, predicted(&config, "by-user", &|_| false));
    assert_eq!(by_header, predicted(&config, "by-header", &|_| false));
    for (m, n) in count(&by_user) {
        assert!((180..=320).contains(&n), "by-user {m}: {n}");
    }
    let on_a = count(&by_header).into_iter().find(|(m, _)| m == "a").unwrap().1;
    assert!((330..=470).contains(&on_a), "by-header: a has weight 2 of 5: {on_a}");

    // A cooling model's sessions move to their next choice (the rest stay); the first
    // request of each such session fails over to it, later ones go there directly.
    w.mock("d").set_faults(DOWN);
    let cooled = sessions(&w, "by-user", 1);
    assert_eq!(cooled, predicted(&config, "by-user", &|m| m == "md"));
    let moved_to = by_user.iter().zip(&cooled).filter(|(b, a)| b != a).count();
    let on_d = by_user.iter().filter(|b| *b == "d").count();
    eprintln!("d cooling: {on_d} sessions were on d, {moved_to} moved (each to its next rendezvous choice)");
    assert_eq!(moved_to, on_d, "only d's sessions moved while d cooled");
    w.mock("d").set_faults("{}");

    // Restart Envoy without `mc` (breakers reset): only c's sessions move.
    let three = [("ma", "a"), ("mb", "b"), ("md", "d")];
    let smaller = sticky_config(&three);
    w.envoy = Envoy::start(EnvoyOptions {
        filter_config: Some(smaller.clone()),
        clusters: w.mocks.iter().map(Mock::cluster).collect(),
        concurrency: 4,
        ..EnvoyOptions::default()
    });
    for (worker, before) in [("by-user", &by_user), ("by-header", &by_header)] {
        let after = sessions(&w, worker, 1);
        assert_eq!(after, predicted(&smaller, worker, &|_| false));
        let on_c = before.iter().filter(|b| *b == "c").count();
        let moved = before.iter().zip(&after).filter(|(b, a)| b != a).count();
        eprintln!("{worker}: {on_c} sessions were on c; after removing it {moved} moved: {:?}", count(&after));
        assert!(on_c > 0);
        assert_eq!(moved, on_c, "{worker}: exactly c's sessions moved");
        assert!(before.iter().zip(&after).all(|(b, a)| b == "c" || b == a));
    }
}

/// Per-model messages (Spice `system_prompt`, IronlabsAI-style `messages`): each attempt
/// carries its own model's messages and no other's — the OpenAI model's system prompt and
/// appended message, the Claude model's message translated into Anthropic's turns, nothing on
/// the plain model that finally serves — as JSON and as a stream, at `--concurrency 4`.
#[test]
fn per_model_messages_reach_only_that_models_attempts() {
    let config = r#"
models:
  - from: openai:gpt-a
    name: ma
    params:
      cluster: a
      system_prompt: SYS-A
      messages: [{ role: user, content: MSG-A }]
  - from: anthropic:claude-c
    name: mc
    params:
      cluster: claude
      anthropic_api_key: k
      messages: [{ role: user, content: MSG-C }]
  - from: openai:gpt-b
    name: mb
    params: { cluster: b }
workers:
  - name: chain
    load_balance:
      routing:
        - { from: ma, order: 1 }
        - { from: mc, order: 2 }
        - { from: mb, order: 3 }
model_workers:
  cooldown: { failures: 0 }
"#;
    let w =
        World::start_with(&[("a", &["--status", "500"]), ("claude", &["--status", "529"]), ("b", &[])], config, |o| {
            o.concurrency = 4
        });
    let client = serde_json::json!([{"role": "user", "content": "Say hello"}]);
    // Across the worker threads: every request walks the same chain and is served.
    let body = chat_body("chain", false);
    let port = w.envoy.port;
    for r in parallel(16, 64, |_| try_request(port, "POST", "/v1/chat/completions", &[JSON], body.as_bytes())) {
        let r = r.unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("x-model-workers-attempts"), Some("ma=500,mc=529,mb=200"));
    }
    for stream in [false, true] {
        let body = chat_body("chain", stream);
        let attempts = if stream {
            let r = post_stream(w.envoy.port, "/v1/chat/completions", &body, &[]);
            assert_eq!(r.status, 200, "{}", r.text());
            assert!(r.text().contains("[DONE]"), "{}", r.text());
            r.header("x-model-workers-attempts").unwrap().to_string()
        } else {
            let r = request(w.envoy.port, "POST", "/v1/chat/completions", &[JSON], body.as_bytes());
            assert_eq!(r.status, 200, "{}", r.text());
            r.header("x-model-workers-attempts").unwrap().to_string()
        };
        assert_eq!(attempts, "ma=500,mc=529,mb=200", "stream {stream}");

        let a = w.mock("a").last();
        assert_eq!(a["body"]["model"], "gpt-a");
        assert_eq!(
            a["body"]["messages"],
            serde_json::json!([
                {"role": "system", "content": "SYS-A"},
                {"role": "user", "content": "Say hello"},
                {"role": "user", "content": "MSG-A"},
            ]),
            "stream {stream}"
        );
        let c = w.mock("claude").last();
        assert_eq!(c["path"], "/v1/messages");
        let turns = c["body"]["messages"].to_string();
        assert!(turns.contains("Say hello") && turns.contains("MSG-C"), "{turns}");
        assert!(!turns.contains("MSG-A") && !turns.contains("SYS-A") && c["body"].get("system").is_none(), "{c}");
        let b = w.mock("b").last();
        assert_eq!(b["body"]["model"], "gpt-b");
        assert_eq!(b["body"]["messages"], client, "the serving model got the client's messages only");
    }
}
