//! Configuration as Envoy sees it: the shipped demo config is valid (for Envoy and for the
//! filter's own parser), and a bad plugin configuration stops Envoy with one clear log line
//! that names the problem and never a secret.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::process::Command;

use common::*;
use model_workers::config::Config;

/// The plugin configuration embedded in envoy/demo.yaml (the `value: |` block).
fn demo_plugin_config() -> String {
    let text = std::fs::read_to_string(project_root().join("envoy/demo.yaml")).unwrap();
    let doc: serde_json::Value = serde_norway::from_str(&text).unwrap();
    let filters =
        &doc["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"];
    let wasm = filters.as_array().unwrap().iter().find(|f| f["name"] == "envoy.filters.http.wasm").unwrap();
    let cfg = &wasm["typed_config"]["config"];
    assert_eq!(cfg["allow_on_headers_stop_iteration"], true);
    assert_eq!(cfg["failure_policy"], "FAIL_RELOAD");
    cfg["configuration"]["value"].as_str().unwrap().to_string()
}

#[test]
fn shipped_demo_config_is_valid_for_the_filter_and_for_envoy() {
    let plugin = demo_plugin_config();
    let c = Config::parse(&plugin, &|k| k.starts_with("DEMO_").then(|| "x".to_string())).unwrap();
    assert_eq!(c.workers.iter().map(|w| w.name.as_str()).collect::<Vec<_>>(), ["round-robin", "fallback", "weighted"]);

    // Envoy validates the whole file, loading the real .wasm and running on_configure.
    let out = Command::new(envoy_bin())
        .current_dir(project_root())
        .args(["--mode", "validate", "-c", "envoy/demo.yaml", "--disable-hot-restart", "-l", "warn"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}

#[test]
fn a_bad_plugin_config_stops_envoy_with_one_clear_line() {
    let bad = "models:\n  - from: openai:gpt-4o\n    name: foo\n    params: { cluster: a, openai_api_key: '${ secrets:KEY }' }\nworkers:\n  - name: w\n    load_balance:\n      routing:\n        - from: foo\n          order: 1\n        - from: foo2\n          weight: 2\n";
    let log = Envoy::start_expect_failure(EnvoyOptions {
        filter_config: Some(bad.into()),
        clusters: vec![Cluster::new("a", closed_port())],
        env: vec![("KEY".into(), "sk-very-secret-value-123".into())],
        ..EnvoyOptions::default()
    });
    let line = log.lines().find(|l| l.contains("rejected configuration")).unwrap_or_else(|| panic!("{log}"));
    assert!(line.contains("worker `w`") && line.contains("unknown model `foo2`"), "{line}");
    assert!(!log.contains("sk-very-secret-value-123"));
}

/// Regression: a mistyped key param used to be accepted and ignored, so Envoy started and the
/// filter sent each client's own key upstream (pass-through) instead of the configured one.
#[test]
fn a_mistyped_key_param_stops_envoy_naming_the_key() {
    let bad = "models:\n  - from: openai:gpt-4o\n    name: gpt4\n    params: { cluster: a, openai_api_kye: '${ secrets:KEY }' }\n";
    let log = Envoy::start_expect_failure(EnvoyOptions {
        filter_config: Some(bad.into()),
        clusters: vec![Cluster::new("a", closed_port())],
        env: vec![("KEY".into(), "sk-very-secret-value-123".into())],
        ..EnvoyOptions::default()
    });
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("rejected configuration")).collect();
    assert_eq!(lines.len(), 1, "{log}");
    assert!(
        lines[0].contains(
            "model `gpt4`: unknown param `openai_api_kye` for provider openai (did you mean `openai_api_key`?)"
        ),
        "{}",
        lines[0]
    );
    assert!(!log.contains("sk-very-secret-value-123"), "{log}");
}

#[test]
fn a_missing_secret_is_named_and_stops_envoy() {
    let cfg = "models:\n  - from: openai:gpt-4o\n    name: foo\n    params: { cluster: a, openai_api_key: '${ secrets:OPENAI_API_KEY }' }\n";
    let log = Envoy::start_expect_failure(EnvoyOptions {
        filter_config: Some(cfg.into()),
        clusters: vec![Cluster::new("a", closed_port())],
        ..EnvoyOptions::default()
    });
    assert!(log.contains("model `foo`: param `openai_api_key`: secret `OPENAI_API_KEY` is not set"), "{log}");
}

#[test]
fn sql_workers_and_bad_schedules_are_rejected_loudly() {
    for (worker, needle) in [
        ("  - name: q\n    sql: SELECT * FROM t\n", "can never run in a proxy"),
        (
            "  - name: nightly\n    cron: '0 2 30 2 *'\n    params:\n      prompt: summarize the day\n    load_balance:\n      routing:\n        - from: foo\n",
            "worker `nightly`",
        ),
    ] {
        let cfg = format!("models:\n{}workers:\n{worker}", model_yaml("foo", "gpt-4o", "a", ""));
        let log = Envoy::start_expect_failure(EnvoyOptions {
            filter_config: Some(cfg),
            clusters: vec![Cluster::new("a", closed_port())],
            ..EnvoyOptions::default()
        });
        assert!(log.contains(needle), "{log}");
    }
}

#[test]
fn json_plugin_config_works_like_yaml() {
    let cfg = r#"{"models":[{"from":"openai:gpt-a","name":"ma","params":{"cluster":"a"}}],"workers":[{"name":"w","load_balance":{"routing":[{"from":"ma"}]}}]}"#;
    let w = World::start(&[("a", &[])], cfg);
    let r = w.chat("w");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-mock-model"), Some("gpt-a"));
}

/// The README's Envoy example is valid YAML and its plugin configuration passes the parser.
#[test]
fn readme_envoy_example_is_a_valid_config() {
    let readme = std::fs::read_to_string(project_root().join("README.md")).unwrap();
    let start = readme.find("```yaml\nhttp_filters:").expect("README Envoy example") + "```yaml\n".len();
    let end = start + readme[start..].find("```").unwrap();
    let doc: serde_json::Value = serde_norway::from_str(&readme[start..end]).unwrap();
    let cfg = &doc["http_filters"][0]["typed_config"]["config"];
    assert_eq!(cfg["allow_on_headers_stop_iteration"], true);
    let plugin = cfg["configuration"]["value"].as_str().unwrap();
    let c = Config::parse(plugin, &|k| Some(format!("test-{k}"))).unwrap();
    assert_eq!(c.workers[0].name, "smart");
    let route = &doc["route_config"]["virtual_hosts"][0]["routes"][0];
    assert_eq!(route["route"]["cluster_header"], "x-model-workers-cluster");
    assert_eq!(route["request_headers_to_remove"][0], "x-model-workers-cluster");
}
