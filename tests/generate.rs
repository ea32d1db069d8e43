//! Generated bootstraps judged by the real Envoy 1.40 (`envoy --mode validate`, which also loads
//! the .wasm and runs the filter's `on_configure` on the embedded Spice file), and the
//! `model-workers` CLI run as a user runs it. Nothing here serves traffic.
//!
//! Needs `make wasm` (the path of the module must exist for validation) and the project's
//! `.venv` Envoy (or `$ENVOY_BIN`; `$MODEL_WORKERS_WASM` for another module).

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use model_workers::config::Config;
use model_workers::generate::{bootstrap, Options};
use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn env_path(var: &str) -> Option<PathBuf> {
    std::env::var_os(var).filter(|v| !v.is_empty()).map(PathBuf::from)
}

fn envoy_bin() -> PathBuf {
    let p = env_path("ENVOY_BIN").unwrap_or_else(|| root().join(".venv/bin/envoy"));
    assert!(p.is_file(), "Envoy not found at {} — `make envoy`, or set ENVOY_BIN", p.display());
    p
}

fn wasm() -> String {
    let p = env_path("MODEL_WORKERS_WASM")
        .unwrap_or_else(|| root().join("target/wasm32-wasip1/release/model_workers.wasm"));
    assert!(p.is_file(), "filter not found at {} — `make wasm`, or set MODEL_WORKERS_WASM", p.display());
    p.to_str().unwrap().to_string()
}

fn cli() -> &'static str {
    env!("CARGO_BIN_EXE_model-workers")
}

/// A directory removed when dropped (kept if the test failed).
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "model-workers-generate-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    fn file(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// `envoy --mode validate` on a bootstrap, with `env` in Envoy's environment (for
/// `host_env_keys`). Ok: Envoy's output; Err: its output on failure.
fn validate(yaml: &str, env: &[(&str, &str)]) -> Result<String, String> {
    let dir = TempDir::new();
    let file = dir.file("envoy.yaml", yaml);
    let mut cmd = Command::new(envoy_bin());
    cmd.args(["--mode", "validate", "--disable-hot-restart", "-l", "warn", "-c"]).arg(&file).current_dir(&dir.0);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    if out.status.success() {
        Ok(text(&out))
    } else {
        Err(text(&out))
    }
}

fn assert_valid(yaml: &str, env: &[(&str, &str)]) {
    if let Err(log) = validate(yaml, env) {
        panic!("Envoy refused the generated bootstrap:\n{log}\n---\n{yaml}");
    }
}

fn opts() -> Options {
    Options { wasm: wasm(), ..Options::default() }
}

fn overrides(pairs: &[(&str, &str, u16)]) -> BTreeMap<String, (String, u16)> {
    pairs.iter().map(|(c, h, p)| (c.to_string(), (h.to_string(), *p))).collect()
}

fn readme() -> String {
    std::fs::read_to_string(root().join("README.md")).unwrap()
}

/// The fenced block that starts with `start` (the fence line and the first line included).
fn fenced(doc: &str, start: &str) -> String {
    let at = doc.find(start).unwrap_or_else(|| panic!("README block {start:?}"));
    let body = &doc[at + "```yaml\n".len()..];
    body[..body.find("```").unwrap()].to_string()
}

/// The plugin configuration of a hand-written Envoy config (its wasm filter's `value`).
fn plugin_config_of(envoy_yaml: &str, filters_pointer: &str) -> String {
    let doc: Value = serde_norway::from_str(envoy_yaml).unwrap();
    let filters = doc.pointer(filters_pointer).unwrap().as_array().unwrap();
    let wasm = filters.iter().find(|f| f["name"] == "envoy.filters.http.wasm").unwrap();
    wasm["typed_config"]["config"]["configuration"]["value"].as_str().unwrap().to_string()
}

const DEMO_CLUSTERS: [(&str, &str, u16); 4] = [
    ("backend_a", "127.0.0.1", 18081),
    ("backend_b", "127.0.0.1", 18082),
    ("backend_c", "127.0.0.1", 18083),
    ("backend_down", "127.0.0.1", 18084),
];

fn demo_spicepod() -> String {
    std::fs::read_to_string(root().join("envoy/demo-spicepod.yaml")).unwrap()
}

#[test]
fn the_readme_spicepod_validates_with_public_providers() {
    let spicepod = fenced(&readme(), "```yaml\n# spicepod.yaml\n");
    let yaml = bootstrap(&spicepod, &opts()).unwrap();
    assert!(yaml.contains("\"api.openai.com\""), "{yaml}");
    assert_valid(&yaml, &[("OPENAI_API_KEY", "sk-test-1"), ("ANTHROPIC_API_KEY", "sk-ant-test-2")]);
}

#[test]
fn the_readme_envoy_example_plugin_config_validates() {
    let example = fenced(&readme(), "```yaml\nhttp_filters:");
    let plugin = plugin_config_of(&example, "/http_filters");
    let yaml = bootstrap(&plugin, &opts()).unwrap();
    assert_valid(&yaml, &[("OPENAI_API_KEY", "sk-test-1"), ("ANTHROPIC_API_KEY", "sk-ant-test-2")]);
}

#[test]
fn the_demo_plugin_config_validates_with_overrides_and_key_values() {
    let demo = std::fs::read_to_string(root().join("envoy/demo.yaml")).unwrap();
    let plugin =
        plugin_config_of(&demo, "/static_resources/listeners/0/filter_chains/0/filters/0/typed_config/http_filters");
    let o = Options {
        cluster_addrs: overrides(&DEMO_CLUSTERS),
        env: vec![("DEMO_OPENAI_KEY".into(), "sk-demo".into()), ("DEMO_ANTHROPIC_KEY".into(), "sk-ant-demo".into())],
        listen: ("127.0.0.1".into(), 10000),
        ..opts()
    };
    assert_valid(&bootstrap(&plugin, &o).unwrap(), &[]);
}

#[test]
fn demo_spicepod_holds_the_models_and_workers_of_demo_yaml() {
    let demo = std::fs::read_to_string(root().join("envoy/demo.yaml")).unwrap();
    let plugin =
        plugin_config_of(&demo, "/static_resources/listeners/0/filter_chains/0/filters/0/typed_config/http_filters");
    let env = |_: &str| Some("sk-demo".to_string());
    let (a, b) = (Config::parse(&plugin, &env).unwrap(), Config::parse(&demo_spicepod(), &env).unwrap());
    assert_eq!(format!("{:?}", a.models), format!("{:?}", b.models));
    assert_eq!(format!("{:?}", a.workers), format!("{:?}", b.workers));
    assert_eq!(format!("{:?}", a.settings), format!("{:?}", b.settings));
}

#[test]
fn https_providers_validate_without_network() {
    let spice = r#"models:
  - from: openai:gpt-4o
    name: gpt4
    params: { openai_api_key: "${ secrets:OPENAI_API_KEY }", max_retries: 1 }
  - from: anthropic:claude-sonnet-4-5
    name: claude
    params: { anthropic_api_key: "${ secrets:ANTHROPIC_API_KEY }", timeout: 90s }
  - from: xai:grok-4
    name: grok
    params: { xai_api_key: "${ env:XAI_API_KEY }" }
  - from: azure:gpt-4o
    name: azure-gpt4
    params: { endpoint: "https://myres.openai.azure.com/openai/deployments/gpt-4o", azure_api_key: "${ secrets:AZURE_OPENAI_KEY }" }
  - from: openai:claude-sonnet-4-5
    name: claude-compat
    params: { cluster: anthropic_compat, endpoint: "https://api.anthropic.com/v1", openai_api_key: "${ secrets:ANTHROPIC_API_KEY }" }
  - from: openai:llama-3.1-8b
    name: vllm
    params: { cluster: vllm, endpoint: "http://vllm.internal:8000/v1" }
workers:
  - name: smart
    load_balance:
      routing:
        - { from: gpt4, order: 1 }
        - { from: claude, order: 2 }
        - { from: grok, order: 3 }
        - { from: azure-gpt4, order: 4 }
"#;
    let yaml = bootstrap(spice, &opts()).unwrap();
    let env = [
        ("OPENAI_API_KEY", "sk-1"),
        ("ANTHROPIC_API_KEY", "sk-ant-2"),
        ("XAI_API_KEY", "xai-3"),
        ("AZURE_OPENAI_KEY", "az-4"),
    ];
    assert_valid(&yaml, &env);
    // host_env_keys is how the secrets arrive: without them the filter rejects the file, and
    // Envoy with it.
    let log = validate(&yaml, &env[..3]).unwrap_err();
    assert!(log.contains("secret `AZURE_OPENAI_KEY` is not set"), "{log}");
}

#[test]
fn cluster_overrides_validate() {
    let spice = "models:
  - { from: openai:a, name: a, params: { cluster: local_v4, endpoint: \"https://api.example.com/v1\" } }
  - { from: openai:b, name: b, params: { cluster: local_v6 } }
  - { from: openai:c, name: c, params: { cluster: by_name } }
  - { from: azure:d, name: d }
workers:
  - name: w
    load_balance: { routing: [{ from: a, weight: 3 }, { from: b, weight: 1 }, { from: c, weight: 1 }] }
";
    let o = Options {
        cluster_addrs: overrides(&[
            ("local_v4", "127.0.0.1", 18000),
            ("local_v6", "::1", 18001),
            ("by_name", "localhost", 18002),
            ("azure", "127.0.0.1", 18003),
        ]),
        admin: None,
        stats_flush_interval_ms: Some(1000),
        ..opts()
    };
    assert_valid(&bootstrap(spice, &o).unwrap(), &[]);
}

#[test]
fn odd_names_and_a_quoted_plugin_config_validate() {
    // Names YAML would misread unquoted; CRLF line ends force the JSON-quoted value, which the
    // filter inside Envoy must still parse.
    let spice = "models:\r\n  - { from: openai:a, name: \"a: #1\", params: { cluster: \"c 'one'\" } }\r\n  - { from: openai:b, name: \"*b\", params: { cluster: \"&two\" } }\r\nworkers:\r\n  - { name: \"- w\", load_balance: { routing: [{ from: \"a: #1\" }, { from: \"*b\" }] } }\r\n";
    let o = Options { cluster_addrs: overrides(&[("c 'one'", "127.0.0.1", 1), ("&two", "127.0.0.1", 2)]), ..opts() };
    let yaml = bootstrap(spice, &o).unwrap();
    assert!(yaml.contains("value: \"models:\\r\\n"), "{yaml}");
    assert_valid(&yaml, &[]);
}

#[test]
fn envoy_and_check_reject_the_same_config_with_the_same_line() {
    // Valid for the generator (secrets are not needed), rejected by the filter when the secret
    // is missing at run time: `check` must print what Envoy logs.
    let spice = "models:\n  - { from: openai:gpt-4o, name: a, params: { openai_api_key: \"${ secrets:MW_TEST_UNSET_KEY }\" } }\n";
    let log = validate(&bootstrap(spice, &opts()).unwrap(), &[]).unwrap_err();
    let dir = TempDir::new();
    let out = Command::new(cli())
        .arg("check")
        .arg(dir.file("s.yaml", spice))
        .env_remove("MW_TEST_UNSET_KEY")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let line = String::from_utf8(out.stdout).unwrap();
    let line = line.trim_end();
    assert_eq!(
        line,
        "model-workers: rejected configuration: model `a`: param `openai_api_key`: secret `MW_TEST_UNSET_KEY` is not set (add it to vm_config.environment_variables)"
    );
    assert!(log.contains(line), "Envoy's log does not hold check's line {line:?}:\n{log}");
}

// ---------------------------------------------------------------------------------------------
// The CLI
// ---------------------------------------------------------------------------------------------

fn run(args: &[&str], stdin: Option<&str>, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(cli());
    cmd.args(args).stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    }
    child.wait_with_output().unwrap()
}

fn demo_file(dir: &TempDir) -> String {
    dir.file("spicepod.yaml", &demo_spicepod()).to_str().unwrap().to_string()
}

#[test]
fn check_accepts_a_good_file_with_a_one_line_summary() {
    let dir = TempDir::new();
    let file = demo_file(&dir);
    let out = run(&["check", &file], None, &[("DEMO_OPENAI_KEY", "sk-demo"), ("DEMO_ANTHROPIC_KEY", "sk-ant-demo")]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "model-workers: configuration ok: 4 models (foo, bar, baz, primary); 3 workers: round-robin (round robin: foo, bar), fallback (fallback: primary, foo, baz), weighted (weighted: foo 4, bar 1); clusters: backend_a, backend_b, backend_c, backend_down\n"
    );
    // stdin works the same.
    let out = run(
        &["check", "-"],
        Some(&demo_spicepod()),
        &[("DEMO_OPENAI_KEY", "sk-demo"), ("DEMO_ANTHROPIC_KEY", "sk-ant-demo")],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn check_rejects_a_bad_file_with_the_filters_exact_line() {
    let dir = TempDir::new();
    let bad = "models:\n  - from: openai:gpt-4o\n    name: foo\nworkers:\n  - name: w\n    load_balance:\n      routing:\n        - from: foo\n          order: 1\n        - from: foo2\n          weight: 2\n";
    let file = dir.file("bad.yaml", bad);
    let out = run(&["check", file.to_str().unwrap()], None, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "model-workers: rejected configuration: worker `w`: routes to unknown model `foo2` (not in `models:`)\n"
    );
    // A missing secret, as in Envoy.
    let out = run(&["check", &demo_file(&dir)], None, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8(out.stdout).unwrap().contains("secret `DEMO_OPENAI_KEY` is not set"));
    // Empty input.
    let out = run(&["check", "-"], Some(""), &[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "model-workers: rejected configuration: the plugin configuration is empty\n"
    );
}

#[test]
fn envoy_writes_the_bootstrap_to_stdout_or_a_file() {
    let dir = TempDir::new();
    let file = demo_file(&dir);
    let w = wasm();
    let args = [
        "envoy",
        file.as_str(),
        "--listen",
        "127.0.0.1:10000",
        "--admin",
        "none",
        "--wasm",
        w.as_str(),
        "--cluster",
        "backend_a=127.0.0.1:18081",
        "--cluster=backend_b=127.0.0.1:18082",
        "--cluster",
        "backend_c=[::1]:18083",
        "--cluster",
        "backend_down=localhost:18084",
        "--env",
        "DEMO_OPENAI_KEY=sk-demo=with=equals",
        "--env",
        "DEMO_ANTHROPIC_KEY=sk-ant-demo",
    ];
    let out = run(&args, None, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let yaml = String::from_utf8(out.stdout).unwrap();
    let expected = Options {
        listen: ("127.0.0.1".into(), 10000),
        admin: None,
        wasm: w.clone(),
        cluster_addrs: overrides(&[
            ("backend_a", "127.0.0.1", 18081),
            ("backend_b", "127.0.0.1", 18082),
            ("backend_c", "::1", 18083),
            ("backend_down", "localhost", 18084),
        ]),
        env: vec![
            ("DEMO_OPENAI_KEY".into(), "sk-demo=with=equals".into()),
            ("DEMO_ANTHROPIC_KEY".into(), "sk-ant-demo".into()),
        ],
        ..Options::default()
    };
    assert_eq!(yaml, bootstrap(&demo_spicepod(), &expected).unwrap());
    assert_valid(&yaml, &[]);

    // -o writes the same to a file, nothing to stdout; stdin as FILE.
    let out_file = dir.0.join("envoy.yaml");
    let mut with_o: Vec<&str> = args.to_vec();
    with_o[1] = "-";
    with_o.extend(["-o", out_file.to_str().unwrap()]);
    let out = run(&with_o, Some(&demo_spicepod()), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(out.stdout.is_empty());
    assert_eq!(std::fs::read_to_string(&out_file).unwrap(), yaml);
}

#[test]
fn envoy_errors_exit_1_with_one_line() {
    let dir = TempDir::new();
    let vllm = dir.file("v.yaml", "models:\n  - { from: openai:llama, name: llama, params: { cluster: vllm } }\n");
    let out = run(&["envoy", vllm.to_str().unwrap()], None, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        "model-workers: model `llama`: cluster `vllm` has no address: give the model an `endpoint` or pass --cluster vllm=HOST:PORT\n"
    );
    // With the override it works.
    let out = run(&["envoy", vllm.to_str().unwrap(), "--cluster", "vllm=127.0.0.1:8000"], None, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // A config the filter rejects: the filter's line.
    let bad = dir.file("b.yaml", "models:\n  - { from: file:model.gguf, name: m }\n");
    let out = run(&["envoy", bad.to_str().unwrap()], None, &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("model-workers: rejected configuration: model `m`: provider `file`"), "{err}");
    // A file that does not exist.
    let out = run(&["envoy", "/nonexistent/spicepod.yaml"], None, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8(out.stderr)
        .unwrap()
        .starts_with("model-workers: cannot read /nonexistent/spicepod.yaml"));
}

#[test]
fn usage_errors_exit_2_with_the_usage() {
    for args in [
        &[][..],
        &["frobnicate"],
        &["envoy"],
        &["check"],
        &["envoy", "a.yaml", "b.yaml"],
        &["envoy", "a.yaml", "--listen"],
        &["envoy", "a.yaml", "--listen", "10000"],
        &["envoy", "a.yaml", "--listen", "host:0"],
        &["envoy", "a.yaml", "--admin", "[::1]"],
        &["envoy", "a.yaml", "--cluster", "127.0.0.1:80"],
        &["envoy", "a.yaml", "--cluster", "a=1.2.3.4:5", "--cluster", "a=1.2.3.4:6"],
        &["envoy", "a.yaml", "--env", "=x"],
        &["envoy", "a.yaml", "--frob"],
        &["check", "a.yaml", "--wasm", "x"],
        &["check", "a.yaml", "--admin", "http://127.0.0.1:9901"],
        &["apply", "a.yaml", "--dir", "d", "--warm-timeout", "1s"],
        &["apply", "a.yaml", "--dir", "d", "--admin", "https://127.0.0.1:9901"],
        &["apply", "a.yaml", "--dir", "d", "--admin", "127.0.0.1"],
        &["apply", "a.yaml", "--dir", "d", "--admin", "http://127.0.0.1:9901", "--warm-timeout", "soon"],
    ] {
        let out = run(args, None, &[]);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(
            err.starts_with("model-workers: ") && err.contains("usage: model-workers envoy FILE"),
            "{args:?}: {err}"
        );
    }
    let out = run(&["--help"], None, &[]);
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in ["--listen", "--admin", "--wasm", "--cluster", "--env", "-o", "--dir", "--grace", "--warm-timeout"] {
        assert!(help.contains(flag), "{flag}");
    }
}

#[test]
fn the_demo_script_generates_a_valid_config() {
    let dir = TempDir::new();
    let config = dir.0.join("demo-envoy.yaml");
    let out = Command::new(root().join("envoy/run-demo.sh"))
        .arg("--check")
        .env("MODEL_WORKERS_CLI", cli())
        .env("MODEL_WORKERS_WASM", wasm())
        .env("ENVOY_BIN", envoy_bin())
        .env("DEMO_CONFIG", &config)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let yaml = std::fs::read_to_string(&config).unwrap();
    let doc: Value = serde_norway::from_str(&yaml).unwrap();
    let clusters = doc["static_resources"]["clusters"].as_array().unwrap();
    assert_eq!(clusters.len(), 4);
    assert!(yaml.contains("\"DEMO_OPENAI_KEY\": \"sk-demo-not-a-real-key\""));
}

// ---- `apply --admin`: waiting for Envoy to report the new clusters warm ----

/// A stand-in for Envoy's admin: answers every `GET` with `stats(request number, the CDS file's
/// version now)`, chunked like Envoy's `/stats`; counts requests and notes whether the filter
/// config changed while it still answered "not ready".
struct FakeAdmin {
    port: u16,
    requests: std::sync::Arc<AtomicUsize>,
    early_writes: std::sync::Arc<AtomicUsize>,
}

impl FakeAdmin {
    fn start(dir: PathBuf, stats: impl Fn(usize, &str) -> (String, bool) + Send + 'static) -> FakeAdmin {
        use std::io::Read;
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let requests = std::sync::Arc::new(AtomicUsize::new(0));
        let early_writes = std::sync::Arc::new(AtomicUsize::new(0));
        let (r, e) = (requests.clone(), early_writes.clone());
        let ecds_at_start = std::fs::read_to_string(dir.join("ecds.yaml")).unwrap();
        std::thread::spawn(move || {
            for conn in l.incoming() {
                let mut c = conn.unwrap();
                let mut buf = [0u8; 4096];
                let mut req = Vec::new();
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = c.read(&mut buf).unwrap();
                    if n == 0 {
                        break;
                    }
                    req.extend_from_slice(&buf[..n]);
                }
                assert!(req.starts_with(b"GET /stats?filter="), "{}", String::from_utf8_lossy(&req));
                let n = r.fetch_add(1, Ordering::SeqCst);
                let cds = std::fs::read_to_string(dir.join("cds.yaml")).unwrap();
                let version = model_workers::generate::cds_version(&cds).unwrap_or("").to_string();
                let (body, ready) = stats(n, &version);
                if !ready && std::fs::read_to_string(dir.join("ecds.yaml")).unwrap() != ecds_at_start {
                    e.fetch_add(1, Ordering::SeqCst);
                }
                let _ = write!(
                    c,
                    "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
                    body.len()
                );
            }
        });
        FakeAdmin { port, requests, early_writes }
    }
    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

fn cds_stats(version: &str, warming: u64, rejected: u64) -> String {
    format!("cluster_manager.active_clusters: 2\ncluster_manager.cds.update_rejected: {rejected}\ncluster_manager.cds.version_text: \"{version}\"\ncluster_manager.warming_clusters: {warming}\n")
}

/// A dir holding version 1 (clusters ma), and the path of version 2 (adds mb).
fn applied_v1(dir: &TempDir) -> (PathBuf, String) {
    let model = |n: &str| format!("  - {{ from: 'openai:gpt-{n}', name: {n}, params: {{ cluster: m{n} }} }}\n");
    let v1 = dir.file(
        "v1.yaml",
        &format!("models:\n{}workers:\n  - name: w\n    load_balance: {{ routing: [{{ from: a }}] }}\n", model("a")),
    );
    let v2 = format!(
        "models:\n{}{}workers:\n  - name: w\n    load_balance: {{ routing: [{{ from: a }}, {{ from: b }}] }}\n",
        model("a"),
        model("b")
    );
    let xds = dir.0.join("xds");
    let out =
        run(&["apply", v1.to_str().unwrap(), "--dir", xds.to_str().unwrap(), "--cluster", "ma=127.0.0.1:1"], None, &[]);
    assert!(out.status.success(), "{}", text(&out));
    (xds, v2)
}

fn apply_v2(dir: &TempDir, xds: &std::path::Path, v2: &str, extra: &[&str]) -> Output {
    let f = dir.file("v2.yaml", v2);
    let mut args = vec!["apply", f.to_str().unwrap(), "--dir", xds.to_str().unwrap()];
    args.extend_from_slice(&["--cluster", "ma=127.0.0.1:1", "--cluster", "mb=127.0.0.1:2", "--grace", "10ms"]);
    args.extend_from_slice(extra);
    run(&args, None, &[])
}

fn files(xds: &std::path::Path) -> Vec<String> {
    ["ecds.yaml", "rds.yaml", "cds.yaml"].iter().map(|f| std::fs::read_to_string(xds.join(f)).unwrap()).collect()
}

#[test]
fn apply_with_admin_writes_the_filter_config_only_once_envoy_reports_the_clusters_warm() {
    let dir = TempDir::new();
    let (xds, v2) = applied_v1(&dir);
    let v1_version = model_workers::generate::cds_version(&files(&xds)[2]).unwrap().to_string();
    // Envoy: the old version for 3 answers after the new file lands, then the new one with a
    // cluster warming for 3 more, then warm.
    let seen_new = std::sync::Arc::new(AtomicUsize::new(0));
    let s = seen_new.clone();
    let old = v1_version.clone();
    let admin = FakeAdmin::start(xds.clone(), move |_, file_version| {
        if file_version == old {
            return (cds_stats(&old, 0, 0), false);
        }
        match s.fetch_add(1, Ordering::SeqCst) {
            0..=2 => (cds_stats(&old, 0, 0), false),
            3..=5 => (cds_stats(file_version, 1, 0), false),
            _ => (cds_stats(file_version, 0, 0), true),
        }
    });
    let out = apply_v2(&dir, &xds, &v2, &["--admin", &admin.url()]);
    assert!(out.status.success(), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    let v2_version = model_workers::generate::cds_version(&files(&xds)[2]).unwrap().to_string();
    assert_ne!(v2_version, v1_version);
    assert!(said.contains(&format!("Envoy applied clusters version {v2_version}, all warm, in ")), "{said}");
    assert!(said.contains("applied to"), "{said}");
    // 1 before writing, then polls until the 7th answer after the file landed, then 1 for the
    // filter config's stats before it is written (this stand-in has none: no wait for it).
    assert_eq!(admin.requests.load(Ordering::SeqCst), 9);
    assert_eq!(admin.early_writes.load(Ordering::SeqCst), 0, "the filter config changed before the clusters were warm");
    assert!(files(&xds)[0].contains("name: b"), "the new filter config is written");

    // Nothing changed (clusters or filter config): no admin request at all.
    let out = apply_v2(&dir, &xds, &v2, &["--admin", &admin.url()]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(admin.requests.load(Ordering::SeqCst), 9);
}

#[test]
fn apply_with_admin_fails_clearly_and_changes_nothing_when_envoy_cannot_say_yes() {
    let dir = TempDir::new();
    let (xds, v2) = applied_v1(&dir);
    let before = files(&xds);
    let v1_version = model_workers::generate::cds_version(&before[2]).unwrap().to_string();

    // No admin there: nothing is written.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let out = apply_v2(&dir, &xds, &v2, &["--admin", &format!("127.0.0.1:{closed}")]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(err.contains(&format!("--admin http://127.0.0.1:{closed}: ")), "{err}");
    assert!(err.contains("nothing applied"), "{err}");
    assert_eq!(files(&xds), before);

    // Envoy never shows the new version: the timeout, and the old clusters file is back.
    let old = v1_version.clone();
    let admin = FakeAdmin::start(xds.clone(), move |_, _| (cds_stats(&old, 0, 0), false));
    let t = std::time::Instant::now();
    let out = apply_v2(&dir, &xds, &v2, &["--admin", &admin.url(), "--warm-timeout", "300ms"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(t.elapsed() >= std::time::Duration::from_millis(300) && t.elapsed() < std::time::Duration::from_secs(5));
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        err.contains("did not report clusters version ") && err.contains(" warm within 300 ms: it shows version"),
        "{err}"
    );
    assert!(err.contains(&format!("\"{v1_version}\" with 0 cluster(s) warming")), "{err}");
    assert!(err.contains("the previous clusters file is back"), "{err}");
    assert_eq!(files(&xds), before);

    // Envoy rejects it (update_rejected goes up, the version stays): said at once.
    let old = v1_version.clone();
    let admin = FakeAdmin::start(xds.clone(), move |n, _| (cds_stats(&old, 0, if n == 0 { 4 } else { 5 }), false));
    let out = apply_v2(&dir, &xds, &v2, &["--admin", &admin.url()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(err.contains("Envoy rejected the clusters (cluster_manager.cds.update_rejected 4 → 5)"), "{err}");
    assert_eq!(admin.requests.load(Ordering::SeqCst), 2);
    assert_eq!(files(&xds), before);

    // Something that is not Envoy: nothing is written.
    let admin = FakeAdmin::start(xds.clone(), |_, _| ("<html>hello</html>".to_string(), false));
    let out = apply_v2(&dir, &xds, &v2, &["--admin", &admin.url()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no cluster_manager.cds.version_text"), "{}", text(&out));
    assert_eq!(files(&xds), before);
}
