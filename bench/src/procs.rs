//! Child processes: the mock provider, Envoys and LiteLLM. Each is killed (SIGKILL, by PID)
//! and reaped when its guard drops, and gets `PR_SET_PDEATHSIG` so it dies with the bench
//! even when the bench itself is killed or aborts.

use std::fs;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::client;

extern "C" {
    fn prctl(option: i32, arg2: u64, arg3: u64, arg4: u64, arg5: u64) -> i32;
}

fn die_with_parent(cmd: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt;
    const PR_SET_PDEATHSIG: i32 = 1;
    const SIGKILL: u64 = 9;
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
            Ok(())
        })
    }
}

/// A child killed by PID and reaped on drop.
pub struct Proc {
    child: Child,
    pub log: PathBuf,
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
    pub fn log_tail(&self, n: usize) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines.get(lines.len().saturating_sub(n)..).unwrap_or(&[]).join("\n")
    }
    /// `VmRSS` and `VmHWM` from `/proc/<pid>/status`, in KiB.
    pub fn rss_kib(&self) -> Option<(u64, u64)> {
        let s = fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        let field = |name: &str| {
            s.lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<u64>().ok())
        };
        Some((field("VmRSS:")?, field("VmHWM:")?))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(name: &str, cmd: &mut Command, log: &Path) -> Result<Proc, String> {
    let f = fs::File::create(log).map_err(|e| format!("create {}: {e}", log.display()))?;
    let f2 = f.try_clone().map_err(|e| e.to_string())?;
    let child = die_with_parent(cmd)
        .stdin(Stdio::null())
        .stdout(Stdio::from(f))
        .stderr(Stdio::from(f2))
        .spawn()
        .map_err(|e| format!("spawn {name} ({:?}): {e}", cmd.get_program()))?;
    Ok(Proc { child, log: log.to_path_buf() })
}

/// The mock provider (release build) named `name`, on an ephemeral loopback port.
pub fn start_mock(bin: &Path, dir: &Path, name: &str, args: &[&str]) -> Result<(Proc, u16), String> {
    let mut child = die_with_parent(&mut Command::new(bin))
        .args(["--name", name, "--listen", "127.0.0.1:0"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("spawn {}: {e}", bin.display()))?;
    let stdout = child.stdout.take().ok_or("mock stdout")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    let port = rx.recv_timeout(Duration::from_secs(10)).ok().and_then(|l| {
        let mut it = l.split_whitespace();
        (it.next() == Some("LISTENING")).then_some(())?;
        it.nth(1)?.rsplit(':').next()?.parse::<u16>().ok()
    });
    let proc = Proc { child, log: dir.join(format!("mock-{name}.log")) };
    match port {
        Some(p) => Ok((proc, p)),
        None => Err(format!("mock-provider did not print `LISTENING {name} 127.0.0.1:PORT`")),
    }
}

/// JSON string syntax is valid YAML: a safe scalar for any text.
fn q(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

/// The bootstrap users deploy: `model-workers envoy` (the project's generator) for the plugin
/// config `config`, each of its clusters sent to a loopback port (`clusters`: name → port), with
/// an admin listener on an ephemeral port. The same call as the e2e harness makes.
/// `env`: the VM's environment (secrets the config references).
pub fn generated_bootstrap(
    wasm: &Path,
    config: &str,
    clusters: &[(&str, u16)],
    env: &[(&str, &str)],
) -> Result<String, String> {
    let opts = model_workers::generate::Options {
        listen: ("127.0.0.1".into(), 0),
        admin: Some(("127.0.0.1".into(), 0)),
        wasm: wasm.to_string_lossy().into_owned(),
        cluster_addrs: clusters.iter().map(|(n, p)| (n.to_string(), ("127.0.0.1".to_string(), *p))).collect(),
        env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        stats_flush_interval_ms: None,
        xds_dir: None,
    };
    model_workers::generate::bootstrap(config, &opts).map_err(|e| format!("generate: {e}"))
}

/// Envoy's static bootstrap for plain Envoy (a) and the probes: one listener, one route to the
/// upstream cluster `up`; with `filter` = (wasm, plugin config), that wasm filter in front of
/// the router.
pub fn envoy_bootstrap(upstream_port: u16, filter: Option<(&Path, &str)>) -> String {
    let routes = "              - match: { prefix: \"/\" }\n                route: { cluster: up, timeout: 0s }\n";
    let mut filters = String::new();
    if let Some((wasm, cfg)) = filter {
        let y = &mut filters;
        y.push_str("          - name: envoy.filters.http.wasm\n            typed_config:\n");
        y.push_str("              \"@type\": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm\n");
        y.push_str(
            "              config:\n                name: model_workers\n                root_id: model_workers\n",
        );
        y.push_str("                vm_config:\n                  vm_id: model_workers\n                  runtime: envoy.wasm.runtime.v8\n");
        y.push_str(&format!("                  code: {{ local: {{ filename: {} }} }}\n", q(&wasm.to_string_lossy())));
        y.push_str("                configuration:\n                  \"@type\": type.googleapis.com/google.protobuf.StringValue\n");
        y.push_str(&format!("                  value: {}\n", q(cfg)));
        y.push_str("                allow_on_headers_stop_iteration: true\n");
        y.push_str("                failure_policy: FAIL_RELOAD\n");
        y.push_str("                reload_config: { backoff: { base_interval: 0.1s, max_interval: 0.5s } }\n");
    }
    static_bootstrap(routes, &filters, &[("up", upstream_port)])
}

/// The native arm (n): what an Envoy 1.40 user builds without this project. Envoy's own C++
/// `envoy.filters.http.json_to_metadata` lifts the body's `model` into dynamic metadata
/// (namespace `model_workers`, key `model`) and clears the route cache; the route matches
/// `model == "rr"` on that metadata (`RouteMatch.dynamic_metadata`) and splits it over two
/// clusters (`weighted_clusters` 50/50, `up_a` and `up_b`, both the mock). Any other model (or
/// none) falls through to a `direct_response` 404. The body goes upstream unchanged.
pub fn native_bootstrap(upstream_port: u16) -> String {
    let routes = concat!(
        "              - match:\n",
        "                  prefix: \"/\"\n",
        "                  dynamic_metadata:\n",
        "                  - filter: model_workers\n",
        "                    path: [{ key: model }]\n",
        "                    value: { string_match: { exact: rr } }\n",
        "                route:\n",
        "                  timeout: 0s\n",
        "                  weighted_clusters:\n",
        "                    clusters:\n",
        "                    - { name: up_a, weight: 50 }\n",
        "                    - { name: up_b, weight: 50 }\n",
        "              - match: { prefix: \"/\" }\n",
        "                direct_response: { status: 404, body: { inline_string: \"{\\\"error\\\":\\\"unknown model\\\"}\" } }\n",
    );
    let filters = concat!(
        "          - name: envoy.filters.http.json_to_metadata\n",
        "            typed_config:\n",
        "              \"@type\": type.googleapis.com/envoy.extensions.filters.http.json_to_metadata.v3.JsonToMetadata\n",
        "              request_rules:\n",
        "                rules:\n",
        "                - selectors: [{ key: model }]\n",
        "                  on_present: { metadata_namespace: model_workers, key: model, type: STRING }\n",
    );
    static_bootstrap(routes, filters, &[("up_a", upstream_port), ("up_b", upstream_port)])
}

/// One listener (buffer limit 8 MiB) with `routes` and `filters` (before the router), and
/// `clusters` (name, loopback port), each with the same limits and HTTP/1.1 options.
fn static_bootstrap(routes: &str, filters: &str, clusters: &[(&str, u16)]) -> String {
    let limit = 8 * 1024 * 1024;
    let mut y = String::new();
    y.push_str("admin:\n  address:\n    socket_address: { address: 127.0.0.1, port_value: 0 }\n");
    y.push_str("static_resources:\n  listeners:\n  - name: ingress\n");
    y.push_str("    address:\n      socket_address: { address: 127.0.0.1, port_value: 0 }\n");
    y.push_str(&format!("    per_connection_buffer_limit_bytes: {limit}\n"));
    y.push_str("    filter_chains:\n    - filters:\n");
    y.push_str("      - name: envoy.filters.network.http_connection_manager\n");
    y.push_str("        typed_config:\n");
    y.push_str("          \"@type\": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager\n");
    y.push_str("          stat_prefix: ingress\n          codec_type: AUTO\n");
    y.push_str("          route_config:\n            name: local_route\n");
    y.push_str("            virtual_hosts:\n            - name: all\n              domains: [\"*\"]\n");
    y.push_str("              routes:\n");
    y.push_str(routes);
    y.push_str("          http_filters:\n");
    y.push_str(filters);
    y.push_str("          - name: envoy.filters.http.router\n            typed_config:\n");
    y.push_str("              \"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router\n");
    y.push_str("  clusters:\n");
    for (name, port) in clusters {
        // 5 s as in the generated bootstrap: a burst of big bodies can keep the one worker
        // thread busy long enough for a 1 s connect timeout to fire.
        y.push_str(&format!("  - name: {name}\n    type: STATIC\n    connect_timeout: 5s\n"));
        y.push_str(&format!("    per_connection_buffer_limit_bytes: {limit}\n"));
        y.push_str("    circuit_breakers:\n      thresholds:\n");
        y.push_str("      - { priority: DEFAULT, max_connections: 10000, max_pending_requests: 10000, max_requests: 10000, max_retries: 10000 }\n");
        y.push_str("    typed_extension_protocol_options:\n");
        y.push_str("      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:\n");
        y.push_str("        \"@type\": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions\n");
        y.push_str("        explicit_http_config: { http_protocol_options: {} }\n");
        y.push_str(&format!(
            "    load_assignment:\n      cluster_name: {name}\n      endpoints:\n      - lb_endpoints:\n"
        ));
        y.push_str(&format!(
            "        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }} }}\n"
        ));
    }
    y
}

pub struct Envoy {
    pub proc: Proc,
    pub port: u16,
    pub admin_port: u16,
}

pub fn start_envoy(name: &str, bin: &Path, dir: &Path, bootstrap: &str, concurrency: u32) -> Result<Envoy, String> {
    let cfg = dir.join(format!("{name}.yaml"));
    let admin_file = dir.join(format!("{name}.admin"));
    let _ = fs::remove_file(&admin_file);
    fs::write(&cfg, bootstrap).map_err(|e| e.to_string())?;
    let mut cmd = Command::new(bin);
    cmd.arg("-c")
        .arg(&cfg)
        .args(["--concurrency", &concurrency.to_string()])
        .args(["--disable-hot-restart", "-l", "warn"])
        .arg("--admin-address-path")
        .arg(&admin_file);
    let mut proc = spawn(name, &mut cmd, &dir.join(format!("{name}.log")))?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let admin_port = loop {
        if !proc.alive() {
            return Err(format!("envoy {name} exited during startup:\n{}", proc.log_tail(30)));
        }
        let port = fs::read_to_string(&admin_file).ok().and_then(|s| s.trim().rsplit(':').next()?.parse::<u16>().ok());
        if let Some(p) = port {
            if client::get(p, "/ready").is_ok_and(|t| t.status == 200) {
                break p;
            }
        }
        if Instant::now() > deadline {
            return Err(format!("envoy {name} not ready in 30 s:\n{}", proc.log_tail(30)));
        }
        std::thread::sleep(Duration::from_millis(25));
    };
    let listeners: serde_json::Value = client::get(admin_port, "/listeners?format=json")
        .ok()
        .and_then(|t| serde_json::from_slice(&t.body_head).ok())
        .ok_or("admin /listeners")?;
    let port = listeners["listener_statuses"]
        .as_array()
        .and_then(|a| a.iter().find_map(|l| l["local_address"]["socket_address"]["port_value"].as_u64()))
        .and_then(|p| u16::try_from(p).ok())
        .ok_or("no listener port in admin /listeners")?;
    Ok(Envoy { proc, port, admin_port })
}

pub fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    l.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

/// LiteLLM proxy config: one model group `rr` with two deployments (models `gpt-a`,
/// `gpt-b`) on the same OpenAI-compatible upstream — the equivalent of the filter's
/// round-robin worker. `simple-shuffle` is LiteLLM's default (and cheapest) strategy.
pub fn litellm_config(upstream_port: u16) -> String {
    let mut y = String::from("model_list:\n");
    for m in ["gpt-a", "gpt-b"] {
        y.push_str(&format!(
            "  - model_name: rr\n    litellm_params:\n      model: openai/{m}\n      api_base: http://127.0.0.1:{upstream_port}/v1\n      api_key: sk-bench\n"
        ));
    }
    y.push_str("router_settings:\n  routing_strategy: simple-shuffle\n");
    y.push_str("litellm_settings:\n  telemetry: false\n");
    y
}

/// uvicorn logging without the per-request access log (Envoy has none configured either).
const LITELLM_LOG_CONFIG: &str = r#"{"version": 1, "disable_existing_loggers": false,
 "formatters": {"d": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
 "handlers": {"e": {"class": "logging.StreamHandler", "formatter": "d", "stream": "ext://sys.stderr"}},
 "loggers": {"uvicorn": {"handlers": ["e"], "level": "WARNING", "propagate": false},
             "uvicorn.error": {"level": "WARNING"},
             "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": false}}}"#;

pub struct LiteLlm {
    pub proc: Proc,
    pub port: u16,
    pub startup: Duration,
}

/// Starts `litellm --config ... --host 127.0.0.1 --num_workers 1` fully offline (no DB,
/// local model cost map, no telemetry) and waits for `/health/readiness`.
pub fn start_litellm(litellm: &Path, dir: &Path, upstream_port: u16) -> Result<LiteLlm, String> {
    let cfg = dir.join("litellm.yaml");
    let log_cfg = dir.join("litellm-logging.json");
    fs::write(&cfg, litellm_config(upstream_port)).map_err(|e| e.to_string())?;
    fs::write(&log_cfg, LITELLM_LOG_CONFIG).map_err(|e| e.to_string())?;
    let port = free_port()?;
    let mut cmd = Command::new(litellm);
    cmd.arg("--config")
        .arg(&cfg)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--num_workers", "1", "--telemetry", "False"])
        .arg("--log_config")
        .arg(&log_cfg)
        .current_dir(dir)
        .env("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        .env("LITELLM_TELEMETRY", "False")
        .env("LITELLM_LOG", "ERROR")
        .env("DISABLE_SCHEMA_UPDATE", "true")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .env_remove("DATABASE_URL")
        .env_remove("HTTP_PROXY")
        .env_remove("HTTPS_PROXY")
        .env_remove("http_proxy")
        .env_remove("https_proxy");
    let t0 = Instant::now();
    let mut proc = spawn("litellm", &mut cmd, &dir.join("litellm.log"))?;
    let deadline = t0 + Duration::from_secs(90);
    loop {
        if !proc.alive() {
            return Err(format!("litellm exited during startup:\n{}", proc.log_tail(30)));
        }
        if client::get(port, "/health/readiness").is_ok_and(|t| t.status == 200) {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!("litellm not ready in 90 s:\n{}", proc.log_tail(30)));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(LiteLlm { proc, port, startup: t0.elapsed() })
}
