//! Unit tests of the generator: the YAML is parsed back (serde_norway) and its structure checked.
//! Envoy's own verdict on the same bootstraps is in tests/generate.rs.

use std::collections::BTreeMap;

use serde_json::Value;

use super::render::{block_scalar, duration, q};
use super::*;

/// The demo's models and workers (envoy/demo-spicepod.yaml has the same).
const DEMO: &str = "models:
  - from: openai:gpt-4o
    name: foo
    params:
      cluster: backend_a
      openai_api_key: ${ secrets:DEMO_OPENAI_KEY }
  - from: openai:gpt-4o-mini
    name: bar
    params: { cluster: backend_b }
  - from: anthropic:claude-sonnet-4-5
    name: baz
    params: { cluster: backend_c }
  - from: openai:gpt-4.1
    name: primary
    params: { cluster: backend_down, timeout: 10s }
workers:
  - name: round-robin
    load_balance: { routing: [{ from: foo }, { from: bar }] }
  - name: fallback
    load_balance: { routing: [{ from: primary, order: 1 }, { from: foo, order: 2 }, { from: baz, order: 3 }] }
  - name: weighted
    load_balance: { routing: [{ from: foo, weight: 4 }, { from: bar, weight: 1 }] }
model_workers:
  timeout: 30s
";

/// Public providers, an https endpoint, an http host name, an http IP literal.
const MIXED: &str = r#"models:
  - from: openai:gpt-4o
    name: gpt4
    params: { openai_api_key: "${ secrets:OPENAI_API_KEY }", max_retries: 2 }
  - from: anthropic:claude-sonnet-4-5
    name: claude
    params: { cluster: anthropic, anthropic_api_key: "${ secrets:ANTHROPIC_API_KEY }", timeout: 90s }
  - from: xai:grok-4
    name: grok
    params: { xai_api_key: "${ env:XAI_API_KEY }" }
  - from: azure:gpt-4o
    name: az
    params: { endpoint: "https://res.openai.azure.com:8443/openai", azure_api_key: "${ secrets:OPENAI_API_KEY }" }
  - from: openai:llama
    name: vllm
    params: { cluster: vllm, endpoint: "http://vllm.internal:8000/v1" }
  - from: openai:qwen
    name: local
    params: { cluster: local, endpoint: "http://10.1.2.3:8001" }
workers:
  - name: smart
    load_balance: { routing: [{ from: gpt4, order: 1 }, { from: claude, order: 2 }, { from: grok, order: 3 }] }
"#;

fn demo_opts() -> Options {
    let mut cluster_addrs = BTreeMap::new();
    for (i, c) in ["backend_a", "backend_b", "backend_c", "backend_down"].iter().enumerate() {
        cluster_addrs.insert(c.to_string(), ("127.0.0.1".to_string(), 18081 + i as u16));
    }
    Options { cluster_addrs, ..Options::default() }
}

fn gen(text: &str, opts: &Options) -> Value {
    let yaml = bootstrap(text, opts).unwrap_or_else(|e| panic!("{e}"));
    serde_norway::from_str(&yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"))
}

fn err(text: &str, opts: &Options) -> GenerateError {
    bootstrap(text, opts).unwrap_err()
}

fn hcm(doc: &Value) -> &Value {
    &doc["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
}

fn route(doc: &Value) -> &Value {
    &hcm(doc)["route_config"]["virtual_hosts"][0]["routes"][0]
}

fn cluster_map(doc: &Value) -> BTreeMap<String, String> {
    let map = &route(doc)["route"]["inline_cluster_specifier_plugin"]["extension"]["typed_config"]["cluster_matcher"]
        ["matcher_tree"]["exact_match_map"]["map"];
    map.as_object()
        .unwrap()
        .iter()
        .map(|(model, entry)| {
            assert_eq!(entry["action"]["name"], model.as_str());
            (model.clone(), entry["action"]["typed_config"]["cluster"].as_str().unwrap().to_string())
        })
        .collect()
}

fn clusters(doc: &Value) -> Vec<Value> {
    doc["static_resources"]["clusters"].as_array().unwrap().clone()
}

fn cluster<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["static_resources"]["clusters"].as_array().unwrap().iter().find(|c| c["name"] == name).unwrap()
}

fn downstream_wasm(doc: &Value) -> &Value {
    let filters = hcm(doc)["http_filters"].as_array().unwrap();
    assert_eq!(filters.len(), 2);
    assert_eq!(filters[0]["name"], "envoy.filters.http.wasm");
    assert_eq!(filters[1]["name"], "envoy.filters.http.router");
    &filters[0]["typed_config"]
}

fn upstream_filters(c: &Value) -> &Vec<Value> {
    c["typed_extension_protocol_options"]["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]["http_filters"]
        .as_array()
        .unwrap()
}

fn endpoint(c: &Value) -> &Value {
    &c["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
}

fn sock(c: &Value) -> (String, u64) {
    let s = &endpoint(c)["address"]["socket_address"];
    (s["address"].as_str().unwrap().to_string(), s["port_value"].as_u64().unwrap())
}

fn retry(doc: &Value) -> &Value {
    &route(doc)["route"]["retry_policy"]
}

fn num_retries(text: &str) -> u64 {
    let doc = gen(text, &Options { cluster_addrs: all_clusters(text), ..Options::default() });
    retry(&doc)["num_retries"].as_u64().unwrap()
}

/// An override for every cluster the text uses.
fn all_clusters(text: &str) -> BTreeMap<String, (String, u16)> {
    let c = Config::parse(text, &|_| Some("k".into())).unwrap_or_else(|e| panic!("{e}: {text:?}"));
    c.models.iter().map(|m| (m.cluster.clone(), ("127.0.0.1".to_string(), 9))).collect()
}

#[test]
fn one_map_entry_per_model_to_its_cluster() {
    let doc = gen(DEMO, &demo_opts());
    let expected: BTreeMap<String, String> =
        [("foo", "backend_a"), ("bar", "backend_b"), ("baz", "backend_c"), ("primary", "backend_down")]
            .into_iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
    assert_eq!(cluster_map(&doc), expected);
    let input = &route(&doc)["route"]["inline_cluster_specifier_plugin"]["extension"];
    assert_eq!(input["name"], "envoy.router.cluster_specifier_plugin.matcher");
    let input = &input["typed_config"]["cluster_matcher"]["matcher_tree"]["input"]["typed_config"];
    assert_eq!(
        input["@type"],
        "type.googleapis.com/envoy.extensions.matching.common_inputs.network.v3.FilterStateInput"
    );
    assert_eq!(input["key"], "wasm.model_workers.next");
    // No fallback: a request the filter did not prepare finds no cluster.
    assert!(route(&doc)["route"]["inline_cluster_specifier_plugin"]["extension"]["typed_config"]["cluster_matcher"]
        .get("on_no_match")
        .is_none());
}

#[test]
fn route_timeout_headers_and_retry_policy_follow_the_spec() {
    let doc = gen(DEMO, &demo_opts());
    let r = route(&doc);
    assert_eq!(r["match"]["prefix"], "/");
    assert_eq!(r["route"]["timeout"], "0s");
    assert!(r["route"].get("auto_host_rewrite").is_none(), "the filter sets each attempt's :authority");
    assert_eq!(r["request_headers_to_remove"], serde_json::json!(["x-model-workers-cluster"]));
    let p = retry(&doc);
    assert_eq!(p["retry_on"], "connect-failure,refused-stream,reset,retriable-status-codes");
    assert_eq!(p["retriable_status_codes"], serde_json::json!([599]));
    // fallback: primary, foo, baz — three attempts.
    assert_eq!(p["num_retries"], 2);
    // primary has 10s, the default is 30s.
    assert_eq!(p["per_try_timeout"], "30s");
    assert_eq!(p["refresh_cluster_on_retry"], true);
    assert_eq!(p["retry_back_off"], serde_json::json!({ "base_interval": "0.001s", "max_interval": "0.001s" }));
    assert_eq!(hcm(&doc)["stat_prefix"], "model_workers");
}

#[test]
fn a_custom_routing_header_is_the_one_removed() {
    let text = format!("{DEMO}  routing_header: X-Route-To\n");
    let doc = gen(&text, &demo_opts());
    assert_eq!(route(&doc)["request_headers_to_remove"], serde_json::json!(["x-route-to"]));
}

#[test]
fn num_retries_is_the_largest_attempt_plan_minus_one() {
    let m = |name: &str, retries: u32| {
        format!("  - from: openai:x\n    name: {name}\n    params: {{ cluster: c_{name}, max_retries: {retries} }}\n")
    };
    // Plain models only: 1 + max_retries each.
    assert_eq!(num_retries(&format!("models:\n{}", m("a", 0))), 0);
    assert_eq!(num_retries(&format!("models:\n{}{}", m("a", 0), m("b", 3))), 3);
    // A worker's chain is all its models: (1+2) + 1 + (1+1) = 6.
    let models = format!("models:\n{}{}{}{}", m("a", 2), m("b", 0), m("c", 1), m("d", 4));
    let worker = "workers:\n  - name: w\n    load_balance: { routing: [{ from: a }, { from: b }, { from: c }] }\n";
    assert_eq!(num_retries(&format!("{models}{worker}")), 5);
    // A plain model with more attempts than any worker: d alone has 5.
    let small = "workers:\n  - name: w\n    load_balance: { routing: [{ from: a }, { from: b }] }\n";
    assert_eq!(num_retries(&format!("{models}{small}")), 4);
    // Weighted workers count every model too; the default max_retries applies.
    let weighted =
        "workers:\n  - name: w\n    load_balance: { routing: [{ from: a, weight: 1 }, { from: b, weight: 3 }] }\n";
    let plain = |n: &str| format!("  - from: openai:x\n    name: {n}\n    params: {{ cluster: c_{n} }}\n");
    let text = format!("models:\n{}{}{weighted}model_workers:\n  max_retries: 2\n", plain("a"), plain("b"));
    assert_eq!(num_retries(&text), 5);
    // max_attempts caps every plan.
    assert_eq!(num_retries(&format!("{models}{worker}model_workers:\n  max_attempts: 3\n")), 2);
    assert_eq!(num_retries(&format!("{models}{worker}model_workers:\n  max_attempts: 1\n")), 0);
    assert_eq!(num_retries(&format!("{models}{worker}model_workers:\n  max_attempts: 100\n")), 5);
}

#[test]
fn per_try_timeout_is_the_largest_model_timeout() {
    let text = "models:
  - { from: openai:a, name: a, params: { cluster: c, timeout: 2500ms } }
  - { from: openai:b, name: b, params: { cluster: c } }
  - { from: openai:c, name: c, params: { cluster: c, timeout: 1s } }
model_workers:
  timeout: 2s
";
    let opts = Options { cluster_addrs: all_clusters(text), ..Options::default() };
    assert_eq!(retry(&gen(text, &opts))["per_try_timeout"], "2.5s");
    // Only defaults: 60s.
    let text = "models:\n  - { from: openai:a, name: a, params: { cluster: c } }\n";
    assert_eq!(retry(&gen(text, &opts))["per_try_timeout"], "60s");
}

#[test]
fn override_clusters_are_static_plain_http() {
    let doc = gen(DEMO, &demo_opts());
    let all = clusters(&doc);
    assert_eq!(
        all.iter().map(|c| c["name"].as_str().unwrap()).collect::<Vec<_>>(),
        ["backend_a", "backend_b", "backend_c", "backend_down"]
    );
    for (i, c) in all.iter().enumerate() {
        assert_eq!(c["type"], "STATIC");
        assert_eq!(sock(c), ("127.0.0.1".to_string(), 18081 + i as u64));
        assert!(c.get("transport_socket").is_none());
        assert!(c.get("dns_lookup_family").is_none());
        assert!(endpoint(c).get("hostname").is_none());
        assert_eq!(c["load_assignment"]["cluster_name"], c["name"]);
    }
}

#[test]
fn every_cluster_has_buffers_breakers_and_the_upstream_filter() {
    for (text, opts) in [(DEMO, demo_opts()), (MIXED, Options::default())] {
        let doc = gen(text, &opts);
        let downstream = downstream_wasm(&doc).clone();
        for c in clusters(&doc) {
            assert_eq!(c["connect_timeout"], "5s");
            assert_eq!(c["per_connection_buffer_limit_bytes"], 8 * 1024 * 1024 + 1024 * 1024);
            assert_eq!(
                c["circuit_breakers"]["thresholds"],
                serde_json::json!([{ "priority": "DEFAULT", "max_connections": 10000, "max_pending_requests": 10000,
                    "max_requests": 10000, "max_retries": 10000 }])
            );
            let opts = &c["typed_extension_protocol_options"]["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"];
            assert_eq!(opts["@type"], "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions");
            assert_eq!(opts["explicit_http_config"], serde_json::json!({ "http_protocol_options": {} }));
            let f = upstream_filters(&c);
            assert_eq!(f.len(), 2);
            assert_eq!(f[0]["name"], "envoy.filters.http.wasm");
            assert_eq!(f[0]["typed_config"], downstream, "the upstream filter is the downstream one");
            assert_eq!(f[1]["name"], "envoy.filters.http.upstream_codec");
            assert_eq!(
                f[1]["typed_config"]["@type"],
                "type.googleapis.com/envoy.extensions.filters.http.upstream_codec.v3.UpstreamCodec"
            );
        }
    }
}

#[test]
fn the_wasm_filter_config_is_complete() {
    let opts = Options { wasm: "/opt/mw/model_workers.wasm".into(), ..demo_opts() };
    let doc = gen(DEMO, &opts);
    let w = downstream_wasm(&doc);
    assert_eq!(w["@type"], "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm");
    let c = &w["config"];
    assert_eq!(c["name"], "model_workers");
    assert_eq!(c["root_id"], "model_workers");
    assert_eq!(c["allow_on_headers_stop_iteration"], true);
    assert_eq!(c["failure_policy"], "FAIL_RELOAD");
    assert_eq!(
        c["reload_config"],
        serde_json::json!({ "backoff": { "base_interval": "0.1s", "max_interval": "0.5s" } })
    );
    let vm = &c["vm_config"];
    assert_eq!(vm["vm_id"], "model_workers");
    assert_eq!(vm["runtime"], "envoy.wasm.runtime.v8");
    assert_eq!(vm["code"]["local"]["filename"], "/opt/mw/model_workers.wasm");
    assert_eq!(c["configuration"]["@type"], "type.googleapis.com/google.protobuf.StringValue");
}

#[test]
fn https_endpoints_are_logical_dns_with_tls_sni_and_name_check() {
    let doc = gen(MIXED, &Options::default());
    let all = clusters(&doc);
    let names: Vec<&str> = all.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["openai", "anthropic", "xai", "azure", "vllm", "local"]);
    for (name, host, port) in [
        ("openai", "api.openai.com", 443),
        ("anthropic", "api.anthropic.com", 443),
        ("xai", "api.x.ai", 443),
        ("azure", "res.openai.azure.com", 8443),
    ] {
        let c = cluster(&doc, name);
        assert_eq!(c["type"], "LOGICAL_DNS", "{name}");
        assert_eq!(c["dns_lookup_family"], "V4_PREFERRED");
        assert_eq!(sock(c), (host.to_string(), port));
        let t = &c["transport_socket"];
        assert_eq!(t["name"], "envoy.transport_sockets.tls");
        assert_eq!(
            t["typed_config"]["@type"],
            "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
        );
        assert_eq!(t["typed_config"]["sni"], host);
        let v = &t["typed_config"]["common_tls_context"]["validation_context"];
        assert_eq!(v["trusted_ca"]["filename"], "/etc/ssl/certs/ca-certificates.crt");
        assert_eq!(
            v["match_typed_subject_alt_names"],
            serde_json::json!([{ "san_type": "DNS", "matcher": { "exact": host } }])
        );
        assert_eq!(t["typed_config"]["common_tls_context"]["alpn_protocols"], serde_json::json!(["http/1.1"]));
    }
}

#[test]
fn http_endpoints_are_strict_dns_for_names_and_static_for_ips() {
    let doc = gen(MIXED, &Options::default());
    let v = cluster(&doc, "vllm");
    assert_eq!(v["type"], "STRICT_DNS");
    assert_eq!(v["dns_lookup_family"], "V4_PREFERRED");
    assert_eq!(sock(v), ("vllm.internal".to_string(), 8000));
    assert!(v.get("transport_socket").is_none());
    let l = cluster(&doc, "local");
    assert_eq!(l["type"], "STATIC");
    assert!(l.get("dns_lookup_family").is_none());
    assert_eq!(sock(l), ("10.1.2.3".to_string(), 8001));
    assert!(l.get("transport_socket").is_none());
}

#[test]
fn ipv6_and_host_name_overrides() {
    let text = "models:
  - { from: openai:a, name: a, params: { cluster: a, endpoint: \"https://api.example.com/v1\" } }
  - { from: openai:b, name: b, params: { cluster: b } }
  - { from: openai:c, name: c, params: { cluster: c, endpoint: \"https://[2001:db8::1]:8443\" } }
";
    let mut cluster_addrs = BTreeMap::new();
    cluster_addrs.insert("a".to_string(), ("::1".to_string(), 8080));
    cluster_addrs.insert("b".to_string(), ("mock.local".to_string(), 8081));
    let doc = gen(text, &Options { cluster_addrs, ..Options::default() });
    let a = cluster(&doc, "a");
    assert_eq!((a["type"].as_str().unwrap(), sock(a)), ("STATIC", ("::1".to_string(), 8080)));
    assert!(a.get("transport_socket").is_none(), "an override is plain HTTP");
    // The model's endpoint still names the Host.
    let b = cluster(&doc, "b");
    assert_eq!((b["type"].as_str().unwrap(), sock(b)), ("STRICT_DNS", ("mock.local".to_string(), 8081)));
    // An https IP literal: STATIC, TLS, no SNI, the IP checked as a SAN.
    let c = cluster(&doc, "c");
    assert_eq!((c["type"].as_str().unwrap(), sock(c)), ("STATIC", ("2001:db8::1".to_string(), 8443)));
    let t = &c["transport_socket"]["typed_config"];
    assert!(t.get("sni").is_none());
    assert_eq!(
        t["common_tls_context"]["validation_context"]["match_typed_subject_alt_names"][0]["san_type"],
        "IP_ADDRESS"
    );
}

#[test]
fn models_sharing_a_cluster_make_one_cluster() {
    let text = "models:
  - { from: openai:gpt-4o, name: a }
  - { from: openai:gpt-4o-mini, name: b, params: { endpoint: \"https://api.openai.com/v1\" } }
  - { from: openai:o3, name: c, params: { cluster: openai } }
";
    let doc = gen(text, &Options::default());
    assert_eq!(clusters(&doc).len(), 1);
    assert_eq!(cluster_map(&doc).values().collect::<Vec<_>>(), ["openai", "openai", "openai"]);
    // A model without an address rides along with one that has it.
    let text = "models:
  - { from: openai:x, name: a, params: { cluster: vllm } }
  - { from: openai:y, name: b, params: { cluster: vllm, endpoint: \"http://vllm:8000\" } }
";
    let doc = gen(text, &Options::default());
    assert_eq!(sock(cluster(&doc, "vllm")), ("vllm".to_string(), 8000));
}

#[test]
fn secret_names_go_to_host_env_keys_and_values_never_appear() {
    let yaml = bootstrap(MIXED, &Options::default()).unwrap();
    assert!(!yaml.contains("model-workers-placeholder"));
    let doc: Value = serde_norway::from_str(&yaml).unwrap();
    let env = &downstream_wasm(&doc)["config"]["vm_config"]["environment_variables"];
    // In order of first use, each once.
    assert_eq!(env["host_env_keys"], serde_json::json!(["OPENAI_API_KEY", "ANTHROPIC_API_KEY", "XAI_API_KEY"]));
    assert!(env.get("key_values").is_none());

    // Values given: key_values; what they do not cover still comes from the host.
    let opts = Options { env: vec![("ANTHROPIC_API_KEY".into(), "sk-ant-\"quoted\"".into())], ..Options::default() };
    let doc = gen(MIXED, &opts);
    let env = &downstream_wasm(&doc)["config"]["vm_config"]["environment_variables"];
    assert_eq!(env["host_env_keys"], serde_json::json!(["OPENAI_API_KEY", "XAI_API_KEY"]));
    assert_eq!(env["key_values"], serde_json::json!({ "ANTHROPIC_API_KEY": "sk-ant-\"quoted\"" }));

    // No secrets: no environment at all.
    let text = "models:\n  - { from: openai:a, name: a }\n";
    let doc = gen(text, &Options::default());
    assert!(downstream_wasm(&doc)["config"]["vm_config"].get("environment_variables").is_none());
}

#[test]
fn the_plugin_configuration_is_the_input_byte_for_byte() {
    let base = "models:\n  - { from: openai:gpt-4o, name: a }\n";
    let texts = [
        DEMO.to_string(),
        MIXED.to_string(),
        base.to_string(),
        // No final newline, several final newlines, leading blank lines, comments.
        base.trim_end().to_string(),
        format!("{base}\n\n"),
        format!("\n\n# comment\n{base}"),
        // CRLF, tabs, trailing spaces, whitespace-only lines, a leading space.
        base.replace('\n', "\r\n"),
        format!("{base}# a\ttab\n"),
        format!("{base}# trailing   \n   \n"),
        base.lines().map(|l| format!(" {l}\n")).collect::<String>(),
        // JSON.
        r#"{"models": [{"from": "openai:gpt-4o", "name": "a"}]}"#.to_string(),
        "{\"models\": [{\"from\": \"openai:gpt-4o\", \"name\": \"a\"}]}\n".to_string(),
        // Unicode, quotes, backslashes, YAML-looking content.
        format!("{base}# ünïcødé \"q\" \\ ${{ x }} --- ... & * ! | > @ `\n"),
    ];
    for text in &texts {
        let doc = gen(text, &Options { cluster_addrs: all_clusters(text), ..Options::default() });
        let value = |w: &Value| w["config"]["configuration"]["value"].as_str().unwrap().to_string();
        assert_eq!(&value(downstream_wasm(&doc)), text, "downstream, {text:?}");
        for c in clusters(&doc) {
            assert_eq!(&value(&upstream_filters(&c)[0]["typed_config"]), text, "upstream, {text:?}");
        }
    }
}

#[test]
fn block_scalar_only_when_it_reads_back_the_same() {
    assert_eq!(block_scalar("a\nb\n"), Some("|"));
    assert_eq!(block_scalar("a\nb"), Some("|-"));
    assert_eq!(block_scalar("\n# x\n  y\n"), Some("|"));
    for bad in ["a\n\n", "a\r\nb\n", "a\tb\n", " a\n", "a\n  \nb\n", "", "\n", "a\u{2028}\n", "\u{feff}a\n"] {
        assert_eq!(block_scalar(bad), None, "{bad:?}");
    }
    // The readable form is what a normal Spice file gets.
    let yaml = bootstrap(DEMO, &demo_opts()).unwrap();
    assert!(yaml.contains("value: |\n"), "{yaml}");
}

#[test]
fn any_name_survives() {
    let names = ["a \"quoted\": #name", "ünï-cødé", "- dash", "*star", "&amp", "null", "true", "123", "a\\b"];
    let mut text = String::from("models:\n");
    for (i, n) in names.iter().enumerate() {
        text.push_str(&format!(
            "  - from: openai:m{i}\n    name: {}\n    params: {{ cluster: {} }}\n",
            q(n),
            q(&format!("c {n}"))
        ));
    }
    let opts = Options { cluster_addrs: all_clusters(&text), ..Options::default() };
    let doc = gen(&text, &opts);
    let map = cluster_map(&doc);
    for n in names {
        assert_eq!(map.get(n).map(String::as_str), Some(format!("c {n}").as_str()), "{n}");
        assert_eq!(cluster(&doc, &format!("c {n}"))["load_assignment"]["cluster_name"], format!("c {n}"));
    }
}

#[test]
fn buffer_limits_are_max_body_bytes_plus_a_mebibyte() {
    let text = format!("{DEMO}  max_body_bytes: 33554432\n");
    let doc = gen(&text, &demo_opts());
    let want = 32 * 1024 * 1024 + 1024 * 1024;
    assert_eq!(doc["static_resources"]["listeners"][0]["per_connection_buffer_limit_bytes"], want);
    for c in clusters(&doc) {
        assert_eq!(c["per_connection_buffer_limit_bytes"], want);
    }
}

#[test]
fn listener_admin_and_stats_options() {
    let doc = gen(DEMO, &demo_opts());
    let l = &doc["static_resources"]["listeners"][0];
    assert_eq!(l["address"]["socket_address"], serde_json::json!({ "address": "0.0.0.0", "port_value": 10000 }));
    assert_eq!(
        doc["admin"]["address"]["socket_address"],
        serde_json::json!({ "address": "127.0.0.1", "port_value": 9901 })
    );
    assert!(doc.get("stats_flush_interval").is_none());

    let opts = Options { listen: ("::".into(), 8080), admin: None, stats_flush_interval_ms: Some(250), ..demo_opts() };
    let doc = gen(DEMO, &opts);
    assert_eq!(doc["static_resources"]["listeners"][0]["address"]["socket_address"]["address"], "::");
    assert!(doc.get("admin").is_none());
    assert_eq!(doc["stats_flush_interval"], "0.25s");

    for bad in [
        Options { listen: ("localhost".into(), 80), ..demo_opts() },
        Options { wasm: String::new(), ..demo_opts() },
        Options { stats_flush_interval_ms: Some(0), ..demo_opts() },
    ] {
        assert!(matches!(err(DEMO, &bad), GenerateError::Options(_)), "{bad:?}");
    }
}

#[test]
fn azure_without_endpoint_is_an_error_naming_the_model() {
    let text = "models:\n  - { from: azure:gpt-4o, name: az, params: { azure_api_key: \"${ secrets:K }\" } }\n";
    let e = err(text, &Options::default());
    assert_eq!(e, GenerateError::NeedsEndpoint { model: "az".into() });
    assert!(e.to_string().starts_with("model `az`: azure has no public endpoint: give the model an `endpoint`"), "{e}");
    // With an override it is fine.
    let mut cluster_addrs = BTreeMap::new();
    cluster_addrs.insert("azure".to_string(), ("127.0.0.1".to_string(), 9));
    assert!(bootstrap(text, &Options { cluster_addrs, ..Options::default() }).is_ok());
}

#[test]
fn a_cluster_without_address_is_an_error_naming_model_and_cluster() {
    let text = "models:\n  - { from: openai:llama, name: llama, params: { cluster: vllm } }\n";
    let e = err(text, &Options::default());
    assert_eq!(
        e.to_string(),
        "model `llama`: cluster `vllm` has no address: give the model an `endpoint` or pass --cluster vllm=HOST:PORT"
    );
    // A provider's own cluster name, but another provider's model: no guess.
    let text = "models:\n  - { from: openai:claude, name: c, params: { cluster: anthropic } }\n";
    assert_eq!(
        err(text, &Options::default()),
        GenerateError::NoAddress { model: "c".into(), cluster: "anthropic".into() }
    );
}

#[test]
fn conflicting_endpoints_on_one_cluster_are_an_error() {
    let text = "models:
  - { from: openai:a, name: a, params: { cluster: shared, endpoint: \"https://one.example.com/v1\" } }
  - { from: openai:b, name: b, params: { cluster: shared, endpoint: \"https://one.example.com/other\" } }
  - { from: openai:c, name: c, params: { cluster: shared, endpoint: \"http://one.example.com/v1\" } }
";
    let e = err(text, &Options::default());
    assert_eq!(
        e.to_string(),
        "cluster `shared`: model `a` goes to https://one.example.com:443 but model `c` to http://one.example.com:80; give one of them another `cluster` param"
    );
    // The provider's public API counts as an address too.
    let text = "models:
  - { from: openai:gpt-4o, name: a }
  - { from: openai:llama, name: b, params: { endpoint: \"http://localhost:8000\" } }
";
    assert!(matches!(err(text, &Options::default()), GenerateError::ConflictingEndpoints { .. }));
    // An override settles it.
    let mut cluster_addrs = BTreeMap::new();
    cluster_addrs.insert("openai".to_string(), ("127.0.0.1".to_string(), 9));
    assert!(bootstrap(text, &Options { cluster_addrs, ..Options::default() }).is_ok());
}

#[test]
fn an_override_for_an_unknown_cluster_is_an_error() {
    let mut opts = demo_opts();
    opts.cluster_addrs.insert("backend_x".into(), ("127.0.0.1".into(), 1));
    assert_eq!(err(DEMO, &opts), GenerateError::UnknownCluster("backend_x".into()));
}

#[test]
fn a_config_the_filter_rejects_is_rejected_with_its_message() {
    let text = "models:\n  - { from: openai:a, name: a }\nworkers:\n  - name: w\n    load_balance: { routing: [{ from: b }] }\n";
    let e = err(text, &Options::default());
    let filter = Config::parse(text, &|_| None).unwrap_err();
    assert_eq!(e, GenerateError::Config(filter.clone()));
    assert_eq!(e.to_string(), format!("rejected configuration: {filter}"));
}

#[test]
fn durations_and_quoting() {
    assert_eq!(duration(60_000), "60s");
    assert_eq!(duration(250), "0.25s");
    assert_eq!(duration(1_500), "1.5s");
    assert_eq!(duration(1_001), "1.001s");
    assert_eq!(duration(0), "0s");
    assert_eq!(q("a\"b\\c\nd\u{1}\u{2028}"), "\"a\\\"b\\\\c\\nd\\u0001\\u2028\"");
    let back: String = serde_norway::from_str(&q("x: \"y\" # z\u{7f}")).unwrap();
    assert_eq!(back, "x: \"y\" # z\u{7f}");
}

#[test]
fn check_summarizes_what_the_filter_accepts() {
    let s = check(DEMO, &|k| (k == "DEMO_OPENAI_KEY").then(|| "sk-x".to_string())).unwrap();
    assert_eq!(s.models, ["foo", "bar", "baz", "primary"]);
    assert_eq!(s.workers[1].strategy, Strategy::Fallback);
    assert_eq!(
        s.to_string(),
        "model-workers: configuration ok: 4 models (foo, bar, baz, primary); 3 workers: round-robin (round robin: foo, bar), fallback (fallback: primary, foo, baz), weighted (weighted: foo 4, bar 1); clusters: backend_a, backend_b, backend_c, backend_down"
    );
    // A missing secret is an error, as in Envoy.
    let e = check(DEMO, &|_| None).unwrap_err();
    assert!(e.to_string().contains("secret `DEMO_OPENAI_KEY` is not set"), "{e}");
    let one = check("models:\n  - { from: openai:a, name: a }\n", &|_| None).unwrap();
    assert_eq!(one.to_string(), "model-workers: configuration ok: 1 model (a); 0 workers; clusters: openai");
}

#[test]
fn check_bytes_gives_on_configures_exact_line() {
    assert_eq!(
        check_bytes(b"", &|_| None).unwrap_err(),
        "model-workers: rejected configuration: the plugin configuration is empty"
    );
    assert_eq!(
        check_bytes(b"models: \xff", &|_| None).unwrap_err(),
        "model-workers: rejected configuration: not UTF-8 text"
    );
    let text = "models:\n  - { from: openai:a, name: a }\nworkers:\n  - name: w\n    load_balance: { routing: [{ from: b }] }\n";
    assert_eq!(
        check_bytes(text.as_bytes(), &|_| None).unwrap_err(),
        "model-workers: rejected configuration: worker `w`: routes to unknown model `b` (not in `models:`)"
    );
}

// ---- live reload: the bootstrap with --xds-dir and the files `apply` writes ----

fn xds_opts() -> Options {
    Options { xds_dir: Some("/etc/model-workers/".into()), ..demo_opts() }
}

fn yaml(text: &str) -> Value {
    serde_norway::from_str(text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn path_source(v: &Value, file: &str) {
    assert_eq!(v["resource_api_version"], "V3");
    assert_eq!(v["path_config_source"]["path"], format!("/etc/model-workers/{file}"));
}

#[test]
fn xds_bootstrap_loads_the_route_filter_and_clusters_from_files() {
    let doc = gen(DEMO, &xds_opts());
    path_source(&doc["dynamic_resources"]["cds_config"], "cds.yaml");
    assert_eq!(doc["node"]["id"], "model-workers");
    assert!(doc["static_resources"].get("clusters").is_none());
    let h = hcm(&doc);
    assert!(h.get("route_config").is_none());
    assert_eq!(h["rds"]["route_config_name"], "model_workers");
    path_source(&h["rds"]["config_source"], "rds.yaml");
    let filters = h["http_filters"].as_array().unwrap();
    assert_eq!(filters[0]["name"], FILTER_NAME);
    path_source(&filters[0]["config_discovery"]["config_source"], "ecds.yaml");
    assert_eq!(
        filters[0]["config_discovery"]["type_urls"][0],
        "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"
    );
    assert_eq!(filters[1]["name"], "envoy.filters.http.router");
}

#[test]
fn xds_files_hold_what_the_inline_bootstrap_holds() {
    let inline = gen(DEMO, &demo_opts());
    let x = xds(DEMO, &xds_opts()).unwrap();

    let ecds = yaml(&x.ecds);
    let r = &ecds["resources"][0];
    assert_eq!(r["@type"], "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig");
    assert_eq!(r["name"], FILTER_NAME);
    assert_eq!(r["typed_config"], *downstream_wasm(&inline));

    let rds = yaml(&x.rds);
    let rc = &rds["resources"][0];
    assert_eq!(rc["@type"], "type.googleapis.com/envoy.config.route.v3.RouteConfiguration");
    let mut inline_rc = hcm(&inline)["route_config"].clone();
    inline_rc["@type"] = rc["@type"].clone();
    assert_eq!(*rc, inline_rc);

    let cds = yaml(&x.cds);
    let got = cds["resources"].as_array().unwrap();
    let want = clusters(&inline);
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g["@type"], "type.googleapis.com/envoy.config.cluster.v3.Cluster");
        let up = upstream_filters(g);
        assert_eq!(up[0]["name"], FILTER_NAME);
        path_source(&up[0]["config_discovery"]["config_source"], "ecds.yaml");
        assert_eq!(up[1], upstream_filters(w)[1]);
        let (mut g, mut w) = (g.clone(), w.clone());
        g.as_object_mut().unwrap().remove("@type");
        for c in [&mut g, &mut w] {
            c["typed_extension_protocol_options"]["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
                .as_object_mut()
                .unwrap()
                .remove("http_filters");
        }
        assert_eq!(g, w);
    }
}

#[test]
fn keeping_the_previous_version_unions_routes_and_clusters() {
    let old = xds(DEMO, &xds_opts()).unwrap();
    // `primary` and its cluster go; `qux` on a new cluster comes.
    let next_text = "models:
  - { from: 'openai:gpt-4o', name: foo, params: { cluster: backend_a } }
  - { from: 'openai:gpt-4o-mini', name: bar, params: { cluster: backend_b } }
  - { from: 'openai:qux', name: qux, params: { cluster: backend_q } }
workers:
  - name: round-robin
    load_balance: { routing: [{ from: foo }, { from: bar }, { from: qux }] }
";
    let mut opts = xds_opts();
    opts.cluster_addrs.retain(|k, _| k == "backend_a" || k == "backend_b");
    opts.cluster_addrs.insert("backend_q".into(), ("127.0.0.1".into(), 18090));
    let next = xds(next_text, &opts).unwrap();

    let rds = yaml(&next.rds_keeping(&old.rds).unwrap());
    let map = rds["resources"][0]["virtual_hosts"][0]["routes"][0]["route"]["inline_cluster_specifier_plugin"]
        ["extension"]["typed_config"]["cluster_matcher"]["matcher_tree"]["exact_match_map"]["map"]
        .as_object()
        .unwrap();
    let keys: Vec<&str> = map.keys().map(String::as_str).collect();
    assert_eq!(keys, ["bar", "baz", "foo", "primary", "qux"]);
    assert_eq!(map["primary"]["action"]["typed_config"]["cluster"], "backend_down");

    let cds = yaml(&next.cds_keeping(&old.cds).unwrap());
    let names: Vec<&str> = cds["resources"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["backend_a", "backend_b", "backend_q", "backend_c", "backend_down"]);
    // The kept ones are the old ones, unchanged.
    let old_cds = yaml(&old.cds);
    assert_eq!(cds["resources"][4], old_cds["resources"][3]);

    // Each CDS file names its version (a hash of its resources): the same resources, the same
    // version; any change, another one. `apply --admin` waits for Envoy to show it.
    let version = |cds: &str| {
        let v = cds_version(cds).unwrap().to_string();
        assert_eq!(yaml(cds)["version_info"], v.as_str());
        assert!(v.len() == 16 && v.bytes().all(|b| b.is_ascii_hexdigit()), "{v}");
        v
    };
    let versions = [
        version(&old.cds),
        version(&next.cds),
        version(&next.cds_keeping(&old.cds).unwrap()),
        version(&xds(DEMO, &Options { xds_dir: Some("/other/".into()), ..xds_opts() }).unwrap().cds),
    ];
    assert_eq!(version(&xds(DEMO, &xds_opts()).unwrap().cds), versions[0]);
    assert_eq!(versions.iter().collect::<std::collections::BTreeSet<_>>().len(), 4, "{versions:?}");

    // Nothing dropped: the same files.
    assert_eq!(old.rds_keeping(&old.rds).unwrap(), old.rds);
    assert_eq!(old.cds_keeping(&old.cds).unwrap(), old.cds);
    // Not a file this wrote: None (apply then writes the new version alone).
    assert!(next.rds_keeping("resources: []").is_none());
    assert!(next.cds_keeping("not: [yaml").is_none());
}
