//! Unit tests of the configuration: this file is `config/mod.rs`'s `#[cfg(test)] mod tests;`.

use super::*;
use crate::policy::Kind;

/// A worker's strategy and its models in chain order.
fn shape(c: &Config, i: usize) -> (Kind, Vec<ModelId>) {
    (c.workers[i].policy.kind(), c.workers[i].policy.models())
}

fn ids(v: &[u32]) -> Vec<ModelId> {
    v.iter().map(|i| ModelId(*i)).collect()
}

fn env(k: &str) -> Option<String> {
    match k {
        "OPENAI_API_KEY" => Some("sk-live-abcdef".into()),
        _ => None,
    }
}

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, &env)
}

fn err(text: &str) -> String {
    parse(text).unwrap_err().to_string()
}

const MODELS: &str = r#"
models:
  - from: openai:gpt-4o
    name: foo
    params: { cluster: c_foo }
  - from: openai:gpt-4o-mini
    name: bar
    params: { cluster: c_bar }
  - from: anthropic:claude-sonnet-4-5
    name: baz
"#;

fn with_workers(workers: &str) -> String {
    format!("{MODELS}workers:\n{workers}")
}

/// The three Spice seed configurations, verbatim shapes.
#[test]
fn spice_seed_round_robin() {
    let c = parse(&with_workers(
        "  - name: round-robin\n    description: |\n      Distributes requests between 'foo' and 'bar' models in a round-robin fashion.\n    type: load_balance\n    load_balance:\n      routing:\n        - from: foo\n        - from: bar\n",
    ))
    .unwrap();
    let w = c.worker(WorkerId(0)).unwrap();
    assert_eq!(shape(&c, 0), (Kind::RoundRobin, ids(&[0, 1])));
    assert!(w.description.as_deref().unwrap().contains("round-robin"));
    assert_eq!(c.resolve("round-robin"), Some(Target::Worker(WorkerId(0))));
    assert_eq!(c.resolve("foo"), Some(Target::Model(ModelId(0))));
    assert_eq!(c.resolve("gpt-4o"), None);
}

#[test]
fn spice_seed_fallback_lowest_order_first() {
    let c = parse(&with_workers(
        "  - name: fallback\n    type: load_balance\n    load_balance:\n      routing:\n        - from: foo\n          order: 2\n        - from: bar\n          order: 1\n        - from: baz\n          order: 3\n",
    ))
    .unwrap();
    assert_eq!(shape(&c, 0), (Kind::Fallback, ids(&[1, 0, 2])));
}

#[test]
fn fallback_ties_keep_config_order() {
    let c = parse(&with_workers(
        "  - name: f\n    load_balance:\n      routing:\n        - { from: baz, order: 1 }\n        - { from: foo, order: 0 }\n        - { from: bar, order: 1 }\n",
    ))
    .unwrap();
    assert_eq!(shape(&c, 0), (Kind::Fallback, ids(&[0, 2, 1])));
}

#[test]
fn spice_seed_weighted() {
    let c = parse(&with_workers(
        "  - name: weighted\n    type: load_balance\n    load_balance:\n      routing:\n        - from: foo\n          weight: 4\n        - from: bar\n          weight: 1\n",
    ))
    .unwrap();
    assert_eq!(shape(&c, 0), (Kind::Weighted, ids(&[0, 1])));
    assert_eq!(c.workers[0].policy.describe(&|m| c.models[m.0 as usize].name.clone()), "weighted: foo 4, bar 1");
}

#[test]
fn json_config_is_the_same_structure() {
    let c = parse(r#"{"models":[{"from":"openai:gpt-4o","name":"m","params":{"cluster":"x"}}],"workers":[{"name":"w","load_balance":{"routing":[{"from":"m"}]}}]}"#).unwrap();
    assert_eq!(c.models[0].cluster, "x");
    assert_eq!(c.workers[0].name, "w");
}

#[test]
fn spicepod_header_keys_are_accepted() {
    let c = parse(&format!("version: v1\nkind: Spicepod\nname: app\n{MODELS}")).unwrap();
    assert_eq!(c.models.len(), 3);
    assert!(c.workers.is_empty());
}

#[test]
fn model_defaults() {
    let c = parse(MODELS).unwrap();
    let baz = &c.models[2];
    assert_eq!(baz.provider, Provider::Anthropic);
    assert_eq!(baz.model_id, "claude-sonnet-4-5");
    assert_eq!(baz.cluster, "anthropic", "default cluster is the provider prefix");
    assert!(baz.auth.is_empty(), "no key: client auth passes through");
    assert_eq!(baz.retry, RetryPolicy { max_retries: 0, timeout_ms: 60_000, backoff_ms: 100 });
    assert_eq!(baz.cooldown.failures, 5);
    let s = &c.settings;
    assert_eq!(s.routing_header, "x-model-workers-cluster");
    assert_eq!(s.retry_on, vec![408, 429, 500, 502, 503, 504, 529]);
    assert_eq!(s.max_attempts, None);
    assert_eq!(s.max_body_bytes, 8 * 1024 * 1024);
    assert_eq!(s.response_model, ResponseModel::Served);
    assert!(s.models_endpoint);
    assert!(s.is_retryable(503) && !s.is_retryable(400) && !s.is_retryable(404));
}

#[test]
fn settings_and_per_model_overrides() {
    let c = parse(
        r#"
models:
  - from: openai:gpt-4o
    name: a
    params:
      openai_api_key: ${ secrets:OPENAI_API_KEY }
      max_retries: 2
      timeout: 5s
      backoff: 250ms
      cooldown_failures: 3
      cooldown: 10s
      endpoint: http://127.0.0.1:9000/v1
      openai_temperature: 0.2
      tools: auto
      system_prompt: be brief
model_workers:
  routing_header: X-LLM-Cluster
  retry_on: [503, 429, 503]
  max_attempts: 4
  max_retries: 1
  timeout: 2m
  backoff: 1s
  max_backoff: 8s
  max_body_bytes: 1048576
  response_model: worker
  models_endpoint: false
  cooldown: { failures: 9, duration: 1m, max_duration: 10m }
"#,
    )
    .unwrap();
    let a = &c.models[0];
    assert_eq!(a.retry, RetryPolicy { max_retries: 2, timeout_ms: 5000, backoff_ms: 250 });
    assert_eq!(a.cooldown, CooldownPolicy { failures: 3, duration_ms: 10_000, max_duration_ms: 600_000 });
    assert_eq!(a.auth.len(), 1);
    assert_eq!(a.auth[0].0, "authorization");
    assert_eq!(a.auth[0].1.expose(), "Bearer sk-live-abcdef");
    assert_eq!(
        a.endpoint,
        Some(Endpoint {
            tls: false,
            host: "127.0.0.1".into(),
            port: 9000,
            authority: "127.0.0.1:9000".into(),
            path_prefix: "/v1".into()
        })
    );
    let s = &c.settings;
    assert_eq!(s.routing_header, "x-llm-cluster");
    assert_eq!(s.retry_on, vec![429, 503]);
    assert_eq!(s.max_attempts, Some(4));
    assert_eq!(s.max_backoff_ms, 8000);
    assert_eq!(s.max_body_bytes, 1_048_576);
    assert_eq!(s.response_model, ResponseModel::Worker);
    assert!(!s.models_endpoint);
}

#[test]
fn endpoint_paths() {
    let e = |url: &str| build_endpoint(url);
    fn build_endpoint(url: &str) -> Endpoint {
        let c = Config::parse(
            &format!("models:\n  - from: openai:x\n    name: m\n    params: {{ endpoint: \"{url}\" }}\n"),
            &|_| None,
        )
        .unwrap();
        c.models[0].endpoint.clone().unwrap()
    }
    assert_eq!(e("https://api.openai.com/v1").upstream_path("/v1/chat/completions"), "/v1/chat/completions");
    assert_eq!(e("https://h/openai/v1/").upstream_path("/v1/chat/completions"), "/openai/v1/chat/completions");
    assert_eq!(e("https://h").upstream_path("/v1/embeddings"), "/v1/embeddings");
    assert_eq!(e("https://h/api").upstream_path("/chat/completions"), "/api/chat/completions");
    assert_eq!(e("https://h/p/v1").upstream_path("/v1?x=1"), "/p/v1?x=1");
    assert_eq!(e("https://h/p").upstream_path("/v1beta/x"), "/p/v1beta/x");
}

/// Every validation rule, with the words its error must contain.
#[test]
fn validation_table() {
    let cases: Vec<(String, &[&str])> = vec![
        ("".into(), &["empty"]),
        ("workers: []".into(), &["no `models:`"]),
        ("models: [".into(), &["YAML"]),
        ("{\"models\": 3}".into(), &["JSON"]),
        (format!("{MODELS}extra: 1"), &["unknown field `extra`"]),
        ("models:\n  - from: openai:x\n    name: m\n    paramz: {}\n".into(), &["unknown field `paramz`"]),
        ("models:\n  - from: gpt-4o\n    name: m\n".into(), &["model `m`", "<provider>:<model id>"]),
        ("models:\n  - from: 'openai:'\n    name: m\n".into(), &["model `m`", "no model id"]),
        ("models:\n  - from: bedrock:x\n    name: m\n".into(), &["unsupported provider `bedrock`"]),
        ("models:\n  - from: huggingface:huggingface.co/x\n    name: m\n".into(), &["runs a model inside Spice"]),
        ("models:\n  - from: openai:x\n    name: ''\n".into(), &["name must not be empty"]),
        ("models:\n  - from: openai:x\n    name: m\n  - from: openai:y\n    name: m\n".into(), &["model `m`", "duplicate name"]),
        ("models:\n  - from: openai:x\n    name: m\n    params: { colour: red }\n".into(), &["unknown param `colour`"]),
        ("models:\n  - from: openai:x\n    name: m\n    params: { openai_api_key: '${ secrets:NOPE }' }\n".into(), &["model `m`", "secret `NOPE` is not set"]),
        ("models:\n  - from: openai:x\n    name: m\n    params: { endpoint: 'ftp://x' }\n".into(), &["endpoint", "http://"]),
        ("models:\n  - from: openai:x\n    name: m\n    params: { max_retries: 99 }\n".into(), &["max_retries", "between 0 and 10"]),
        ("models:\n  - from: openai:x\n    name: m\n    params: { timeout: soon }\n".into(), &["timeout", "not a duration"]),
        ("models:\n  - from: openai:x\n    name: m\n    params: { cluster: '' }\n".into(), &["cluster", "empty"]),
        (with_workers("  - name: w\n    load_balance:\n      routing: []\n"), &["worker `w`", "empty"]),
        (with_workers("  - name: w\n"), &["worker `w`", "missing `load_balance.routing`"]),
        (with_workers("  - name: w\n    load_balance:\n      routing:\n        - from: nope\n"), &["worker `w`", "unknown model `nope`"]),
        (with_workers("  - name: w\n    load_balance:\n      routing:\n        - from: foo\n        - from: foo\n"), &["lists model `foo` twice"]),
        (with_workers("  - name: w\n    load_balance:\n      routing:\n        - from: foo\n          order: 1\n        - from: bar\n          weight: 1\n"), &["worker `w`", "mixes `order`", "`weight`"]),
        (with_workers("  - name: w\n    load_balance:\n      routing:\n        - from: foo\n        - from: bar\n          order: 1\n"), &["mixes plain", "`order`"]),
        (with_workers("  - name: w\n    load_balance:\n      routing:\n        - from: foo\n          weight: 2\n        - from: bar\n"), &["mixes plain", "`weight`"]),
        (with_workers("  - name: w\n    load_balance:\n      routing:\n        - from: foo\n          weight: 0\n"), &["weight 0", "> 0"]),
        (with_workers("  - name: w\n    load_balance:\n      routing:\n        - from: foo\n          weight: -3\n"), &["weight -3"]),
        (with_workers("  - name: w\n    load_balance:\n      routing:\n        - from: foo\n          order: -1\n"), &["order -1"]),
        (with_workers("  - name: w\n    load_balance:\n      routing:\n        - from: foo\n          weight: 9999\n        - from: bar\n          weight: 2\n"), &["weights add up to 10001"]),
        (with_workers("  - name: foo\n    load_balance:\n      routing:\n        - from: bar\n"), &["worker `foo`", "duplicate name"]),
        (with_workers("  - name: a\n    load_balance:\n      routing:\n        - from: foo\n  - name: b\n    load_balance:\n      routing:\n        - from: a\n"), &["worker `b`", "is a worker"]),
        (with_workers("  - name: w\n    type: sql\n    load_balance:\n      routing:\n        - from: foo\n"), &["type `sql` is not supported"]),
        (with_workers("  - name: daily\n    cron: '0 * * *'\n    params:\n      prompt: summarize\n    load_balance:\n      routing:\n        - from: foo\n"), &["worker `daily`", "cron \"0 * * *\" has 4 fields", "Spice takes 5"]),
        (with_workers("  - name: daily\n    cron: '0 0 L * *'\n    params:\n      prompt: summarize\n    load_balance:\n      routing:\n        - from: foo\n"), &["worker `daily`", "day-of-month field `L`", "not supported"]),
        (with_workers("  - name: daily\n    cron: '@every 5m'\n    load_balance:\n      routing:\n        - from: foo\n"), &["worker `daily`", "nickname"]),
        (with_workers("  - name: daily\n    cron: '* * * * *'\n    params:\n      prompt: 3\n    load_balance:\n      routing:\n        - from: foo\n"), &["worker `daily`", "`params.prompt` must be a string"]),
        (with_workers("  - name: daily\n    cron: '* * * * *'\n    params:\n      prompt: [a]\n    load_balance:\n      routing:\n        - from: foo\n"), &["worker `daily`", "`params.prompt` must be a string", "list or map"]),
        (with_workers("  - name: daily\n    cron: '* * * * *'\n    params:\n      prompt: '  '\n    load_balance:\n      routing:\n        - from: foo\n"), &["worker `daily`", "`params.prompt` is empty"]),
        (with_workers("  - name: daily\n    cron: '* * * * *'\n    params:\n      prompt: hi\n      temperature: 1\n    load_balance:\n      routing:\n        - from: foo\n"), &["worker `daily`", "unknown worker param `temperature`"]),
        (with_workers("  - name: q\n    cron: '* * * * *'\n    sql: SELECT 1\n"), &["worker `q`", "`sql` actions", "can never run in a proxy"]),
        (with_workers("  - name: q\n    sql: SELECT 1\n"), &["worker `q`", "can never run in a proxy"]),
        (with_workers("  - name: w\n    params: { foo: 1 }\n    load_balance:\n      routing:\n        - from: foo\n"), &["unknown worker param `foo`"]),
        (format!("{MODELS}model_workers:\n  retry_on: [200]\n"), &["model_workers", "retry_on"]),
        (format!("{MODELS}model_workers:\n  max_attempts: 0\n"), &["max_attempts"]),
        (format!("{MODELS}model_workers:\n  routing_header: 'bad header'\n"), &["routing_header"]),
        (format!("{MODELS}model_workers:\n  routing_header: host\n"), &["routing_header"]),
        (format!("{MODELS}model_workers:\n  max_body_bytes: 10\n"), &["max_body_bytes"]),
        (format!("{MODELS}model_workers:\n  response_model: both\n"), &["response_model"]),
        (format!("{MODELS}model_workers:\n  timeout: 0s\n"), &["timeout", "at least"]),
        (format!("{MODELS}model_workers:\n  retries: 3\n"), &["unknown field `retries`"]),
    ];
    for (text, needles) in &cases {
        let e = err(text);
        for n in *needles {
            assert!(e.contains(n), "config:\n{text}\nerror: {e}\nmissing: {n}");
        }
    }
    assert!(cases.len() >= 40);
}

/// `w` over foo, bar, baz with the given routing entries (one per line, already indented
/// YAML flow maps) and extra `load_balance` keys.
fn lb(extra: &str, routes: &[&str]) -> String {
    let mut y = format!("  - name: w\n    load_balance:\n{extra}      routing:\n");
    for r in routes {
        y.push_str(&format!("        - {r}\n"));
    }
    with_workers(&y)
}

/// Models foo (cost 3), bar (cost 0.15), baz (no cost).
fn with_costs(workers: &str) -> String {
    format!(
        "models:\n  - {{ from: openai:a, name: foo, params: {{ cluster: c, cost: 3 }} }}\n  - {{ from: openai:b, name: bar, params: {{ cluster: c, cost: 0.15 }} }}\n  - {{ from: openai:c, name: baz, params: {{ cluster: c }} }}\nworkers:\n{workers}"
    )
}

/// The new `load_balance` keys, rule by rule.
#[test]
fn policy_validation_table() {
    let cost_worker = |routes: &str| {
        with_costs(&format!("  - name: w\n    load_balance:\n      strategy: cost\n      routing: [{routes}]\n"))
    };
    let cases: Vec<(String, &[&str])> = vec![
        // priority
        (lb("", &["{ from: foo, priority: 1, order: 1 }", "{ from: bar, priority: 2, order: 2 }"]), &["worker `w`", "mixes `order`", "`priority`"]),
        (lb("", &["{ from: foo, priority: 1 }", "{ from: bar }"]), &["worker `w`", "with and without `priority`"]),
        (lb("", &["{ from: foo, priority: 1 }", "{ from: bar, order: 1 }"]), &["worker `w`", "mixes `order`", "`priority`"]),
        (lb("", &["{ from: foo, priority: 101 }"]), &["worker `w`", "model `foo`", "priority 101", "0 to 100"]),
        (lb("", &["{ from: foo, priority: -1 }"]), &["priority -1"]),
        (lb("", &["{ from: foo, priority: 1.5 }"]), &["priority"]),
        (lb("", &["{ from: foo, priority: 50, weight: 2 }", "{ from: bar, priority: 50 }", "{ from: baz, priority: 10 }"]), &["worker `w`", "priority 50 tier mixes entries with and without `weight`"]),
        (lb("", &["{ from: foo, priority: 1, weight: 9999 }", "{ from: bar, priority: 1, weight: 2 }"]), &["worker `w`", "priority 1 tier", "weights add up to 10001"]),
        (lb("", &["{ from: foo, priority: 1, weight: 0 }"]), &["weight 0", "> 0"]),
        // fractional weights
        (lb("", &["{ from: foo, weight: 0.12345 }", "{ from: bar, weight: 1 }"]), &["worker `w`", "model `foo`", "weight 0.12345", "more than 4 decimal places"]),
        (lb("", &["{ from: foo, weight: 0.0001 }", "{ from: bar, weight: 1 }"]), &["worker `w`", "weights add up to 10001", "decimals", "the limit is 10000"]),
        (lb("", &["{ from: foo, weight: -0.5 }"]), &["weight -0.5", "> 0"]),
        (lb("", &["{ from: foo, weight: '4' }"]), &["weight \"4\"", "must be a number"]),
        (lb("", &["{ from: foo, weight: true }"]), &["weight true"]),
        (lb("", &["{ from: foo, weight: .inf }"]), &["weight inf"]),
        (lb("", &["{ from: foo, weight: 5000000000 }"]), &["weight 5000000000"]),
        // strategy / cost
        (lb("      strategy: cheapest\n", &["{ from: foo }"]), &["worker `w`", "unknown `load_balance.strategy` \"cheapest\"", "`cost`"]),
        (cost_worker("{ from: foo }, { from: bar }, { from: baz }"), &["worker `w`", "needs `params.cost` on every model", "missing on `baz`"]),
        (cost_worker("{ from: foo, weight: 1 }, { from: bar, weight: 2 }"), &["worker `w`", "strategy `cost`", "remove `order`, `weight` and `priority`"]),
        (cost_worker("{ from: foo, order: 1 }"), &["strategy `cost`"]),
        (with_workers("").replace("params: { cluster: c_foo }", "params: { cluster: c_foo, cost: -1 }"), &["model `foo`", "param `cost`", "non-negative number", "got -1"]),
        (with_workers("").replace("params: { cluster: c_foo }", "params: { cluster: c_foo, cost: cheap }"), &["model `foo`", "param `cost`", "\"cheap\""]),
        (with_workers("").replace("params: { cluster: c_foo }", "params: { cluster: c_foo, cost: [1] }"), &["model `foo`", "param `cost`"]),
        (with_workers("").replace("params: { cluster: c_foo }", "params: { cluster: c_foo, cost: .nan }"), &["model `foo`", "param `cost`"]),
        // sticky
        (lb("      sticky: { header: x-session-id, body: user }\n", &["{ from: foo }"]), &["worker `w`", "one key source"]),
        (lb("      sticky: { header: 'bad header' }\n", &["{ from: foo }"]), &["worker `w`", "plain header name"]),
        (lb("      sticky: { header: x-model-workers-session }\n", &["{ from: foo }"]), &["worker `w`", "belong to the filter"]),
        (lb("      sticky: { header: X-Envoy-Original-Path }\n", &["{ from: foo }"]), &["worker `w`", "x-envoy-"]),
        (lb("      sticky: { body: model }\n", &["{ from: foo }"]), &["worker `w`", "cannot identify a session"]),
        (format!("{}model_workers:\n  routing_header: x-llm\n", lb("      sticky: { header: X-LLM }\n", &["{ from: foo }"])), &["worker `w`", "routing header"]),
        (lb("      sticky: { body: '' }\n", &["{ from: foo }"]), &["worker `w`", "top-level member"]),
        (lb("      sticky: { cookie: sid }\n", &["{ from: foo }"]), &["unknown field `cookie`"]),
        (lb("      sticky: {}\n", &["{ from: foo, order: 1 }", "{ from: bar, order: 2 }"]), &["worker `w`", "`sticky` spreads sessions", "a fallback worker"]),
        (with_costs("  - name: w\n    load_balance:\n      strategy: cost\n      sticky: {}\n      routing: [{ from: foo }, { from: bar }]\n"), &["worker `w`", "a cost worker"]),
        (lb("      stickiness: {}\n", &["{ from: foo }"]), &["unknown field `stickiness`"]),
        (lb("", &["{ from: foo, tier: 1 }"]), &["unknown field `tier`"]),
    ];
    for (text, needles) in &cases {
        let e = err(text);
        for n in *needles {
            assert!(e.contains(n), "config:\n{text}\nerror: {e}\nmissing: {n}");
        }
    }
}

fn describe(c: &Config, i: usize) -> String {
    c.workers[i].policy.describe(&|m| c.models[m.0 as usize].name.clone())
}

#[test]
fn priority_tiers_parse_highest_first_with_weights_inside() {
    let c = parse(&lb(
        "",
        &[
            "{ from: baz, priority: 10 }",
            "{ from: foo, priority: 100, weight: 3 }",
            "{ from: bar, priority: 100, weight: 1 }",
        ],
    ))
    .unwrap();
    assert_eq!(shape(&c, 0), (Kind::Priority, ids(&[0, 1, 2])));
    assert_eq!(describe(&c, 0), "priority: 100 [foo 3, bar 1], 10 [baz]");
    // Same priority, no weights: a round-robin tier; SMG's range ends are accepted.
    let c =
        parse(&lb("", &["{ from: foo, priority: 0 }", "{ from: bar, priority: 100 }", "{ from: baz, priority: 100 }"]))
            .unwrap();
    assert_eq!(describe(&c, 0), "priority: 100 [bar, baz], 0 [foo]");
    assert!(c.workers[0].policy.needs_ticket(false));
    let c = parse(&lb("", &["{ from: foo, priority: 1 }", "{ from: bar, priority: 2 }"])).unwrap();
    assert!(!c.workers[0].policy.needs_ticket(false), "one model per tier: no ticket");
    // Fractional weights inside a tier.
    let c = parse(&lb("", &["{ from: foo, priority: 5, weight: 0.7 }", "{ from: bar, priority: 5, weight: 0.3 }"]))
        .unwrap();
    assert_eq!(describe(&c, 0), "priority: 5 [foo 7, bar 3]");
}

#[test]
fn fractional_weights_convert_exactly() {
    let cases: &[(&[&str], &str)] = &[
        (&["0.7", "0.3"], "weighted: foo 7, bar 3"),
        (&["0.25", "0.75"], "weighted: foo 1, bar 3"),
        (&["1.5", "1"], "weighted: foo 3, bar 2"),
        (&["0.5", "0.5"], "weighted: foo 1, bar 1"),
        (&["0.3333", "0.6667"], "weighted: foo 3333, bar 6667"),
        (&["0.0001", "0.9999"], "weighted: foo 1, bar 9999"),
        (&["4.0", "1"], "weighted: foo 4, bar 1"),
        (&["80", "20"], "weighted: foo 80, bar 20"),
        (&["0.1", "0.2"], "weighted: foo 1, bar 2"),
        (&["2.50", "1"], "weighted: foo 5, bar 2"),
    ];
    for (ws, want) in cases {
        let c = parse(&lb(
            "",
            &[&format!("{{ from: foo, weight: {} }}", ws[0]), &format!("{{ from: bar, weight: {} }}", ws[1])],
        ))
        .unwrap_or_else(|e| panic!("{ws:?}: {e}"));
        assert_eq!(describe(&c, 0), *want, "{ws:?}");
    }
    // JSON numbers (Istio sends the config as JSON): the same.
    let c = parse(r#"{"models":[{"from":"openai:a","name":"a"},{"from":"openai:b","name":"b"}],"workers":[{"name":"w","load_balance":{"routing":[{"from":"a","weight":0.7},{"from":"b","weight":0.3}]}}]}"#).unwrap();
    assert_eq!(describe(&c, 0), "weighted: a 7, b 3");
}

#[test]
fn cost_workers_order_by_cost() {
    let c = parse(&with_costs(
        "  - name: cheap\n    load_balance:\n      strategy: cost\n      routing: [{ from: foo }, { from: bar }]\n",
    ))
    .unwrap();
    assert_eq!(shape(&c, 0), (Kind::Cost, ids(&[1, 0])));
    assert_eq!(describe(&c, 0), "cost: bar 0.15, foo 3");
    assert!(!c.workers[0].policy.needs_ticket(false));
    // `cost` as a string and as an integer; a model's cost is ignored by other workers.
    let c = parse("models:\n  - { from: openai:a, name: a, params: { cost: '2.5' } }\n  - { from: openai:b, name: b, params: { cost: 0 } }\nworkers:\n  - { name: w, load_balance: { strategy: cost, routing: [{ from: a }, { from: b }] } }\n  - { name: rr, load_balance: { routing: [{ from: a }, { from: b }] } }\n").unwrap();
    assert_eq!(describe(&c, 0), "cost: b 0, a 2.5");
    assert_eq!(shape(&c, 1), (Kind::RoundRobin, ids(&[0, 1])));
}

#[test]
fn latency_and_least_busy_workers() {
    let c = parse(&with_workers(
        "  - name: fast\n    load_balance: { strategy: latency, routing: [{ from: foo }, { from: bar }] }\n  - name: fast2\n    load_balance: { strategy: latency, explore: 0.125, routing: [{ from: bar }, { from: foo }] }\n  - name: off\n    load_balance: { strategy: latency, explore: 0, routing: [{ from: foo }, { from: bar }] }\n  - name: idle\n    load_balance: { strategy: least_busy, routing: [{ from: foo }, { from: bar }] }\n",
    ))
    .unwrap();
    assert_eq!(shape(&c, 0), (Kind::Latency, ids(&[0, 1])));
    assert_eq!(describe(&c, 0), "latency (explore 1/20): foo, bar");
    assert_eq!(describe(&c, 1), "latency (explore 1/8): bar, foo");
    assert_eq!(describe(&c, 2), "latency (explore 0/1): foo, bar");
    assert!(!c.workers[2].policy.needs_ticket(false), "no exploration, no ticket");
    assert_eq!(shape(&c, 3), (Kind::LeastBusy, ids(&[0, 1])));
    assert_eq!(describe(&c, 3), "least busy (power of two choices): foo, bar");
    assert!(!c.workers[3].policy.needs_ticket(false));

    for (lb, want) in [
        (
            "{ strategy: latency, routing: [{ from: foo, order: 1 }, { from: bar, order: 2 }] }",
            "worker `w`: strategy `latency` ranks the models by measurement; remove `order`, `weight` and `priority`",
        ),
        (
            "{ strategy: least_busy, routing: [{ from: foo, weight: 1 }, { from: bar }] }",
            "worker `w`: strategy `least_busy` ranks the models by measurement",
        ),
        ("{ strategy: least_busy, routing: [{ from: foo, priority: 1 }] }", "strategy `least_busy` ranks"),
        (
            "{ strategy: least_busy, explore: 0.1, routing: [{ from: foo }] }",
            "worker `w`: `load_balance.explore` belongs to `strategy: latency`",
        ),
        ("{ explore: 0.1, routing: [{ from: foo }] }", "`load_balance.explore` belongs to `strategy: latency`"),
        (
            "{ strategy: latency, explore: 0.6, routing: [{ from: foo }] }",
            "`load_balance.explore` 0.6 must be a number from 0 to 0.5",
        ),
        ("{ strategy: latency, explore: -0.1, routing: [{ from: foo }] }", "must be a number from 0 to 0.5"),
        ("{ strategy: latency, explore: 0.00001, routing: [{ from: foo }] }", "with up to 4 decimal places"),
        ("{ strategy: latency, explore: lots, routing: [{ from: foo }] }", "`load_balance.explore` \"lots\" must be"),
        (
            "{ strategy: latency, sticky: {}, routing: [{ from: foo }, { from: bar }] }",
            "worker `w`: `sticky` pins sessions to models; a latency worker",
        ),
        (
            "{ strategy: least_busy, sticky: {}, routing: [{ from: foo }, { from: bar }] }",
            "a least busy worker moves requests",
        ),
        (
            "{ strategy: fastest, routing: [{ from: foo }] }",
            "the explicit strategies are `cost`, `latency` and `least_busy`",
        ),
        ("{ strategy: latency, explor: 0.1, routing: [{ from: foo }] }", "explor"),
    ] {
        let e = err(&with_workers(&format!("  - name: w\n    load_balance: {lb}\n")));
        assert!(e.contains(want), "{lb}: {e}");
    }
}

#[test]
fn sticky_workers_and_their_key_sources() {
    let c = parse(&with_workers(
        "  - name: s1\n    load_balance:\n      sticky: {}\n      routing: [{ from: foo }, { from: bar }]\n  - name: s2\n    load_balance:\n      sticky: { header: X-Session-Id }\n      routing: [{ from: foo, weight: 3 }, { from: bar, weight: 1 }]\n  - name: s3\n    load_balance:\n      sticky: { body: user }\n      routing: [{ from: foo, priority: 9 }, { from: bar, priority: 1 }]\n  - name: s4\n    load_balance:\n      sticky: { body: prompt_cache_key }\n      routing: [{ from: foo }, { from: baz }]\n",
    ))
    .unwrap();
    assert_eq!(describe(&c, 0), "sticky on body `user` + round robin: foo, bar");
    assert_eq!(describe(&c, 1), "sticky on header x-session-id + weighted: foo 3, bar 1");
    assert_eq!(describe(&c, 2), "sticky on body `user` + priority: 9 [foo], 1 [bar]");
    assert_eq!(shape(&c, 1), (Kind::Sticky, ids(&[0, 1])));
    // Each source once, in first-use order.
    assert_eq!(c.session_fields, ["user", "prompt_cache_key"]);
    assert_eq!(c.session_headers, ["x-session-id"]);
    let plain = parse(&with_workers("  - name: w\n    load_balance: { routing: [{ from: foo }] }\n")).unwrap();
    assert!(
        plain.session_fields.is_empty() && plain.session_headers.is_empty(),
        "no sticky worker: nothing extra scanned"
    );
}

#[test]
fn errors_never_print_secret_values() {
    // A resolved key used in a failing model must not leak.
    let e = err("models:\n  - from: openai:x\n    name: m\n    params: { openai_api_key: '${ secrets:OPENAI_API_KEY }', max_retries: 99 }\n");
    assert!(!e.contains("sk-live"), "{e}");
    // A literal key in a badly typed spot is redacted in the serde message.
    let e = err("models:\n  - from: openai:x\n    name: m\n    params: sk-proj-1234567890abcdefghij\n");
    assert!(!e.contains("sk-proj-1234567890abcdefghij"), "{e}");
    let e = err("model_workers:\n  routing_header: [sk-abcdefghijklmnop12345]\nmodels: []\n");
    assert!(!e.contains("sk-abcdefghijklmnop12345"), "{e}");
}

#[test]
fn secret_debug_is_redacted_in_model_debug() {
    let c = parse(
        "models:\n  - from: openai:x\n    name: m\n    params: { openai_api_key: '${ secrets:OPENAI_API_KEY }' }\n",
    )
    .unwrap();
    let dbg = format!("{:?}", c.models[0]);
    assert!(!dbg.contains("sk-live"), "{dbg}");
}

#[test]
fn secret_like_detection() {
    assert!(build::looks_like_secret("sk-proj-abc123def456"));
    assert!(build::looks_like_secret("AbCdEf0123456789AbCdEf0123456789xy"));
    assert!(!build::looks_like_secret("gpt-4o"));
    assert!(!build::looks_like_secret("load_balance"));
    assert!(!build::looks_like_secret("claude-sonnet-4-5-20250929-extended-thinking"));
}

#[test]
fn secrets_resolve_only_in_key_params_and_never_reach_an_error() {
    for key in ["endpoint", "cluster", "timeout"] {
        let e = err(&format!(
            "models:\n  - from: openai:x\n    name: m\n    params: {{ {key}: '${{ secrets:OPENAI_API_KEY }}' }}\n"
        ));
        assert!(!e.contains("sk-live"), "{e}");
        if key != "timeout" {
            assert!(e.contains("only resolved in `*_api_key` params"), "{key}: {e}");
        }
    }
}

#[test]
fn validation_messages_are_redacted_too() {
    for text in [
        "models:\n  - from: openai:x\n    name: m\n    params: { endpoint: 'ftp://user:sk-abcdefghijklmnop123@h/v1' }\n",
        "models:\n  - from: openai:x\n    name: m\n    params: { timeout: 'sk-abcdefghijklmnop123' }\n",
        "models:\n  - from: sk-abcdefghijklmnop123\n    name: m\n",
        "models:\n  - from: openai:x\n    name: m\nmodel_workers:\n  response_model: sk-abcdefghijklmnop123\n",
    ] {
        let e = err(text);
        assert!(!e.contains("sk-abcdefghijklmnop123"), "{e}");
        assert!(e.contains("<redacted>"), "{e}");
    }
}

#[test]
fn endpoint_host_port_and_scheme() {
    let e = |url: &str| {
        let c = Config::parse(
            &format!("models:\n  - from: openai:x\n    name: m\n    params: {{ endpoint: \"{url}\" }}\n"),
            &|_| None,
        )
        .unwrap();
        let ep = c.models[0].endpoint.clone().unwrap();
        (ep.tls, ep.host, ep.port)
    };
    assert_eq!(e("https://api.openai.com/v1"), (true, "api.openai.com".into(), 443));
    assert_eq!(e("http://vllm:8000/v1"), (false, "vllm".into(), 8000));
    assert_eq!(e("http://10.0.0.7"), (false, "10.0.0.7".into(), 80));
    assert_eq!(e("https://[::1]:8443/x"), (true, "::1".into(), 8443));
    assert_eq!(e("https://[::1]"), (true, "::1".into(), 443));
    for bad in ["https://h:0", "https://h:99999", "https://h:x", "https://[::1", "https://:80"] {
        let r = Config::parse(
            &format!("models:\n  - from: openai:x\n    name: m\n    params: {{ endpoint: \"{bad}\" }}\n"),
            &|_| None,
        );
        assert!(r.is_err(), "{bad} accepted");
    }
}

fn one_param(from: &str, key: &str, value: &str) -> String {
    format!("models:\n  - from: {from}\n    name: m\n    params:\n      {key}: {value}\n")
}

/// Regression: a mistyped key param used to be accepted and ignored, so the filter ran in
/// pass-through mode and sent the client's own key upstream.
#[test]
fn a_mistyped_key_param_is_rejected_with_the_right_name() {
    let e = err(&one_param("openai:gpt-4o", "openai_api_kye", "${ secrets:OPENAI_API_KEY }"));
    assert_eq!(e, "model `m`: unknown param `openai_api_kye` for provider openai (did you mean `openai_api_key`?)");
}

/// Each key a provider does not take, with the words its error must contain.
#[test]
fn params_are_checked_against_their_providers_list() {
    let cases: &[(&str, &str, &[&str])] = &[
        // Key params: a typo, another provider's key, an unprefixed key.
        ("openai:x", "openai_api_kye", &["did you mean `openai_api_key`?"]),
        ("anthropic:x", "anthropic_api_kye", &["for provider anthropic", "did you mean `anthropic_api_key`?"]),
        ("azure:x", "azure_api_kay", &["did you mean `azure_api_key`?"]),
        ("xai:x", "xai_apikey", &["did you mean `xai_api_key`?"]),
        ("openai:x", "api_key", &["did you mean `openai_api_key`?"]),
        (
            "openai:x",
            "anthropic_api_key",
            &["provider anthropic's key", "provider openai takes its key in `openai_api_key`"],
        ),
        ("openai:x", "xai_api_key", &["provider xai's key", "provider openai takes its key in `openai_api_key`"]),
        (
            "anthropic:x",
            "openai_api_key",
            &["provider openai's key", "provider anthropic takes its key in `anthropic_api_key`"],
        ),
        ("azure:x", "openai_api_key", &["provider openai's key", "provider azure takes its key in `azure_api_key`"]),
        ("xai:x", "azure_api_key", &["provider azure's key", "provider xai takes its key in `xai_api_key`"]),
        ("anthropic:x", "openai_api_kye", &["provider anthropic takes its key in `anthropic_api_key`"]),
        // Credentials Spice knows but the proxy cannot inject: never silently ignored.
        ("anthropic:x", "anthropic_auth_token", &["not supported", "does not inject", "set `anthropic_api_key`"]),
        ("azure:x", "azure_entra_token", &["not supported", "does not inject", "set `azure_api_key`"]),
        ("openai:x", "openai_auth_mode", &["unknown param `openai_auth_mode` for provider openai"]),
        // Another provider's params, and the same key of another provider.
        ("openai:x", "anthropic_version", &["`anthropic_version` is a param of provider anthropic"]),
        ("openai:x", "azure_deployment_name", &["is a param of provider azure"]),
        ("azure:x", "openai_org_id", &["`openai_org_id` is a param of provider openai"]),
        ("anthropic:x", "azure_api_version", &["is a param of provider azure"]),
        ("xai:x", "anthropic_usage_tier", &["did you mean `xai_usage_tier`?"]),
        ("openai:x", "anthropic_temperature", &["did you mean `openai_temperature`?"]),
        ("anthropic:x", "azure_max_completion_tokens", &["did you mean `anthropic_max_completion_tokens`?"]),
        ("openai:x", "org_id", &["did you mean `openai_org_id`?"]),
        // Typos of the filter's and Spice's own keys.
        ("openai:x", "timout", &["did you mean `timeout`?"]),
        ("anthropic:x", "clsuter", &["did you mean `cluster`?"]),
        ("openai:x", "temprature", &["did you mean `temperature`?"]),
        ("xai:x", "system_promt", &["did you mean `system_prompt`?"]),
        ("azure:x", "azure_api_verison", &["did you mean `azure_api_version`?"]),
        // Nothing close: no random suggestion.
        ("openai:x", "colour", &["unknown param `colour` for provider openai", "see the README"]),
        ("openai:x", "openai_foo", &["unknown param `openai_foo`", "see the README"]),
        ("xai:x", "q", &["unknown param `q`", "see the README"]),
    ];
    for (from, key, needles) in cases {
        let e = err(&one_param(from, key, "'${ secrets:OPENAI_API_KEY }'"));
        assert!(e.starts_with("model `m`: "), "{from} {key}: {e}");
        for n in *needles {
            assert!(e.contains(n), "{from} {key}: {e}\nmissing: {n}");
        }
        assert!(!e.contains("sk-live"), "{e}");
    }
}

/// Spice's documented params, per provider, as a spicepod writes them: accepted (and, but for
/// the filter's own keys, ignored).
#[test]
fn documented_spice_params_are_accepted_per_provider() {
    let common = [
        ("tools", "auto"),
        ("tool_embedding_model", "embed"),
        ("system_prompt", "'You are a helpful assistant.'"),
        ("parameterized_prompt", "enabled"),
        ("max_concurrency", "10"),
        ("requests_per_minute_limit", "600"),
        ("responses_api", "enabled"),
        ("spice_tools", "auto"),
        ("model_type", "llm"),
        ("temperature", "0.2"),
        ("max_completion_tokens", "1024"),
        ("top_p", "0.9"),
        ("response_format", "{ 'type': 'json_object' }"),
        ("reasoning_effort", "low"),
        ("openai_temperature", "0.1"),
        ("openai_response_format", "{ 'type': 'json_object' }"),
        ("openai_max_completion_tokens", "512"),
        ("openai_tools", "auto"),
        ("endpoint", "https://llm.example/v1"),
        ("cluster", "c"),
    ];
    let per_provider: &[(&str, &[(&str, &str)])] = &[
        (
            "openai:gpt-4o-mini",
            &[
                ("openai_api_key", "sk-test"),
                ("openai_org_id", "'${ secrets:OPENAI_ORG_ID }'"),
                ("openai_project_id", "'${ secrets:OPENAI_PROJECT_ID }'"),
                ("openai_reasoning_effort", "high"),
                ("openai_usage_tier", "tier2"),
                ("openai_responses_tools", "web_search, code_interpreter"),
                ("openai_seed", "7"),
            ],
        ),
        (
            "anthropic:claude-sonnet-4-5",
            &[
                ("anthropic_api_key", "sk-ant-test"),
                ("anthropic_version", "2023-06-01"),
                ("anthropic_usage_tier", "2"),
                ("anthropic_max_completion_tokens", "4096"),
                ("anthropic_temperature", "0.5"),
                ("anthropic_tools", "auto"),
            ],
        ),
        (
            "azure:gpt-4o-mini",
            &[
                ("azure_api_key", "az-test"),
                ("azure_api_version", "2024-08-01-preview"),
                ("azure_deployment_name", "gpt-4o-mini"),
                ("azure_openai_responses_tools", "web_search"),
                ("openai_responses_tools", "web_search"),
                ("azure_temperature", "0.3"),
            ],
        ),
        (
            "xai:grok-4",
            &[
                ("xai_api_key", "xai-test"),
                ("xai_usage_tier", "1"),
                ("xai_max_completion_tokens", "2048"),
                ("xai_stop", "[END]"),
            ],
        ),
    ];
    for (from, own) in per_provider {
        for (key, value) in common.iter().chain(own.iter()) {
            if let Err(e) = parse(&one_param(from, key, value)) {
                panic!("{from}: `{key}` rejected: {e}");
            }
        }
        // All of them together, as one model.
        let all: String = common.iter().chain(own.iter()).map(|(k, v)| format!("      {k}: {v}\n")).collect();
        let c = parse(&format!("models:\n  - from: {from}\n    name: m\n    params:\n{all}")).unwrap();
        assert_eq!(c.models[0].auth.len(), if from.starts_with("anthropic") { 2 } else { 1 }, "{from}");
    }
}

/// The OpenAI provider page's example spicepod pastes unchanged.
#[test]
fn spice_docs_openai_example_pastes_unchanged() {
    let c = parse(
        r#"
models:
  - from: openai:gpt-4o-mini
    name: openai_model
    params:
      openai_api_key: ${ secrets:OPENAI_API_KEY } # Required for official OpenAI models
      tools: auto # Optional. Connect the model to datasets via SQL query/vector search tools
      system_prompt: 'You are a helpful assistant.' # Optional.

      # Optional parameters
      endpoint: https://api.openai.com/v1 # Override to use a compatible provider (i.e. NVidia NIM)
      openai_org_id: ${ secrets:OPENAI_ORG_ID }
      openai_project_id: ${ secrets:OPENAI_PROJECT_ID }

      # Override default chat completion request parameters
      openai_temperature: 0.1
      openai_response_format: { 'type': 'json_object' }

      # OpenAI Responses API configuration
      responses_api: enabled
      openai_responses_tools: web_search, code_interpreter
"#,
    )
    .unwrap();
    assert_eq!(c.models[0].auth[0].1.expose(), "Bearer sk-live-abcdef");
}

#[test]
fn a_key_that_looks_like_a_secret_is_redacted_in_the_error() {
    let e = err(&one_param("openai:x", "sk-abcdefghijklmnop123", "1"));
    assert!(!e.contains("sk-abcdefghijklmnop123"), "{e}");
    assert!(e.contains("unknown param `<redacted>`"), "{e}");
}

#[test]
fn azure_deployment_paths_and_gemini_defaults() {
    let c = Config::parse(
        r#"
models:
  - from: azure:gpt-4o
    name: az
    params: { endpoint: "https://res.openai.azure.com", azure_api_key: k, azure_deployment_name: prod-4o, azure_api_version: 2025-01-01-preview }
  - from: azure:gpt-4o-mini
    name: az2
    params: { cluster: azure, azure_api_key: k }
  - from: gemini:gemini-2.5-flash
    name: gem
    params: { gemini_api_key: gk }
"#,
        &|_| None,
    )
    .unwrap();
    let az = &c.models[0];
    assert_eq!(
        az.upstream_path("/v1/chat/completions"),
        "/openai/deployments/prod-4o/chat/completions?api-version=2025-01-01-preview"
    );
    assert_eq!(
        az.upstream_path("/v1/embeddings?x=1&api-version=old"),
        "/openai/deployments/prod-4o/embeddings?api-version=2025-01-01-preview&x=1"
    );
    assert_eq!(az.auth[0].0, "api-key");
    // No deployment name: the model id; no version: the default GA one.
    assert_eq!(
        c.models[1].upstream_path("/v1/chat/completions"),
        "/openai/deployments/gpt-4o-mini/chat/completions?api-version=2024-10-21"
    );
    let gem = &c.models[2];
    assert_eq!(gem.upstream_path("/v1/chat/completions"), "/v1beta/openai/chat/completions");
    assert_eq!(gem.endpoint.as_ref().unwrap().authority, "generativelanguage.googleapis.com");
    assert_eq!(gem.auth[0], ("authorization", gem.auth[0].1.clone()));
    assert_eq!(gem.auth[0].1.expose(), "Bearer gk");
    let bad = Config::parse(
        "models:\n  - from: azure:x\n    name: a\n    params: { azure_deployment_name: \"a/b\" }\n",
        &|_| None,
    );
    assert!(bad.unwrap_err().to_string().contains("azure_deployment_name"));
}

/// Spice's scheduled-prompt example, verbatim shape; `cron` alone is inactive, a prompt
/// alone is ignored (both as in Spice); seconds and nicknames parse.
#[test]
fn cron_workers() {
    let c = parse(&with_workers(
        "  - name: round-robin\n    description: |\n      Call models 'foo' & 'bar' in round robin.\n    load_balance:\n      routing:\n        - from: foo\n        - from: bar\n    cron: \"* * * * *\" # every minute\n    params:\n      prompt: \"What's the date today?\"\n  - name: idle\n    cron: '*/10 * * * * *'\n    load_balance:\n      routing: [{ from: foo }]\n  - name: unscheduled\n    params: { prompt: hello }\n    load_balance:\n      routing: [{ from: foo }]\n  - name: hourly\n    cron: '@hourly'\n    params: { prompt: ping }\n    load_balance:\n      routing: [{ from: bar, order: 1 }, { from: foo, order: 2 }]\n",
    ))
    .unwrap();
    match &c.workers[0].cron {
        Cron::Prompt(s) => {
            assert_eq!(s.expr, "* * * * *");
            assert_eq!(s.prompt, "What's the date today?");
            assert_eq!(s.schedule.next_after(59_999), Some(60_000));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(c.workers[1].cron, Cron::Inactive("*/10 * * * * *".into()));
    assert_eq!(c.workers[2].cron, Cron::PromptIgnored);
    assert!(matches!(&c.workers[3].cron, Cron::Prompt(s) if s.schedule.next_after(0) == Some(3_600_000)));
    // No cron, no prompt.
    let c = parse(&with_workers("  - name: w\n    load_balance:\n      routing: [{ from: foo }]\n")).unwrap();
    assert_eq!(c.workers[0].cron, Cron::None);
}

/// Live reload: a worker whose routing is unchanged keeps its ticket counter; a changed one
/// gets a fresh counter.
#[test]
fn counter_keys_follow_the_routing_not_the_rest_of_the_file() {
    let v1 = "models:
  - { from: 'openai:a', name: a }
  - { from: 'openai:b', name: b }
workers:
  - name: rr
    load_balance: { routing: [{ from: a }, { from: b }] }
  - name: w
    load_balance: { routing: [{ from: a, weight: 3 }, { from: b, weight: 1 }] }
";
    // A model added (before the others: ids shift), another worker's weight changed, a worker added.
    let v2 = "models:
  - { from: 'openai:c', name: c }
  - { from: 'openai:a', name: a, params: { max_retries: 2 } }
  - { from: 'openai:b', name: b }
workers:
  - name: rr
    load_balance: { routing: [{ from: a }, { from: b }] }
  - name: w
    load_balance: { routing: [{ from: a, weight: 1 }, { from: b, weight: 1 }] }
  - name: rr2
    load_balance: { routing: [{ from: a }, { from: b }] }
";
    let (c1, c2) = (parse(v1).unwrap(), parse(v2).unwrap());
    let key = |c: &Config, name: &str| c.workers.iter().find(|w| w.name == name).unwrap().counter_key.clone();
    assert_eq!(key(&c1, "rr"), key(&c2, "rr"));
    assert!(key(&c1, "rr").starts_with("model_workers.tickets.rr."));
    assert_ne!(key(&c1, "w"), key(&c2, "w"));
    assert_ne!(key(&c2, "rr"), key(&c2, "rr2"), "the name is part of the key");
    // Reordering, adding a model, a different order/priority: all new rotations.
    for changed in [
        "[{ from: b }, { from: a }]",
        "[{ from: a }, { from: b }, { from: c }]",
        "[{ from: a, order: 1 }, { from: b, order: 2 }]",
        "[{ from: a, priority: 1 }, { from: b, priority: 1 }]",
    ] {
        let v3 = v2.replacen("[{ from: a }, { from: b }]", changed, 1);
        assert_ne!(key(&c2, "rr"), key(&parse(&v3).unwrap(), "rr"), "{changed}");
    }
}

/// Spice's `system_prompt` and the `messages` extension: serialized once, validated with
/// errors that name the param and never quote a value.
#[test]
fn per_model_messages_are_parsed_and_checked() {
    let c = parse(
        "models:\n  - from: openai:x\n    name: m\n    params:\n      system_prompt: 'Be \"brief\".'\n      messages:\n        - { role: user, content: Keep it short. }\n        - { role: assistant, content: OK }\n  - from: openai:y\n    name: n\n",
    )
    .unwrap();
    let m = c.model(crate::config::ModelId(0)).unwrap();
    assert_eq!(String::from_utf8_lossy(&m.messages.before), r#"{"role":"system","content":"Be \"brief\"."}"#);
    assert_eq!(
        String::from_utf8_lossy(&m.messages.after),
        r#"{"role":"user","content":"Keep it short."},{"role":"assistant","content":"OK"}"#
    );
    assert!(m.rewrites_body());
    let n = c.model(crate::config::ModelId(1)).unwrap();
    assert!(n.messages.is_empty() && !n.rewrites_body());
    // An empty system prompt or message list adds nothing.
    let c = parse(&one_param("openai:x", "system_prompt", "''")).unwrap();
    assert!(c.model(crate::config::ModelId(0)).unwrap().messages.is_empty());
    let c = parse(&one_param("openai:x", "messages", "[]")).unwrap();
    assert!(c.model(crate::config::ModelId(0)).unwrap().messages.is_empty());

    let cases: &[(&str, &str, &str)] = &[
        ("system_prompt", "[a]", "param `system_prompt` must be a string"),
        (
            "system_prompt",
            "'${ secrets:OPENAI_API_KEY }'",
            "param `system_prompt`: `${ … }` references are only resolved",
        ),
        ("messages", "hello", "param `messages` must be a list of messages"),
        ("messages", "[hello]", "param `messages[0]` must be a map with `role` and `content`"),
        (
            "messages",
            "[{ role: tool, content: x }]",
            "param `messages[0].role` must be one of system, developer, user, assistant",
        ),
        ("messages", "[{ content: x }]", "param `messages[0].role` must be one of"),
        ("messages", "[{ role: user, content: ok }, { role: user }]", "param `messages[1].content` must be a string"),
        ("messages", "[{ role: user, content: [x] }]", "param `messages[0].content` must be a string"),
        ("messages", "[{ role: user, content: x, name: secret-name }]", "param `messages[0]`: unknown key `name`"),
        (
            "messages",
            "[{ role: user, content: '${ secrets:OPENAI_API_KEY }' }]",
            "param `messages[0].content`: `${ … }` references",
        ),
    ];
    for (key, value, want) in cases {
        let e = err(&one_param("openai:x", key, value));
        assert!(e.starts_with("model `m`: "), "{key}: {value}: {e}");
        assert!(e.contains(want), "{key}: {value}: {e}\nwant: {want}");
        assert!(!e.contains("sk-live"), "{e}");
    }
}
