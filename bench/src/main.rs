//! `make bench`: the cost of the model-workers filter, measured end to end on loopback.
//!
//! Cells: the same requests (1 KB chat POST, 1 MB chat POST, 1 KB streaming POST) through
//! (a) plain Envoy, same route, no filter; (b) Envoy + the filter, a round-robin worker over
//! two models on the same upstream, in the bootstrap `model-workers envoy` generates (what
//! users deploy); (c) LiteLLM proxy with an equivalent model group — all in front of one
//! release-mode mock provider. Plus (f) failover: the generated bootstrap for a fallback
//! worker whose first model (a second mock) always answers 503, 1 KB requests only. Latency at 1 connection, throughput at
//! 32; the cells of a, b and c are interleaved (round-robin over targets, several rounds) so
//! that background load on the machine hits all three alike. Plus a native micro-benchmark
//! of the filter's pure per-request work and the RSS of both Envoys.
//!
//! Output: Markdown on stdout and in `target/bench/results.md`, JSON in
//! `target/bench/results.json`; child logs and configs in `target/bench/run/`.
//! See `bench/README.md`.

mod client;
mod micro;
mod procs;

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;

use client::{quantile, CellResult, Request};

#[global_allocator]
static GLOBAL: micro::Counting = micro::Counting;

const USAGE: &str = "usage: bench [--scale F] [--conns N] [--concurrency N] [--no-litellm] [--micro-only] [--out DIR]

  --scale F        multiply every cell's duration by F (default 1: ~2 min in total)
  --conns N        connections for the throughput cells (default 32)
  --concurrency N  Envoy --concurrency (worker threads) for a and b (default 1)
  --no-litellm     skip cell (c)
  --no-ablation    skip the probe filters (bench/probe/probe.rs) that split the filter's cost
  --no-hostcalls   skip the host-call profile (node bench/hostcalls.mjs)
  --micro-only     only the native micro-benchmark
  --out DIR        results directory (default <workspace>/target/bench)

Environment: ENVOY_BIN (default .venv/bin/envoy), MODEL_WORKERS_WASM (default
target/wasm32-wasip1/release/model_workers.wasm), MOCK_PROVIDER_BIN (default
target/release/mock-provider), VENV (default .venv; LiteLLM is installed there by
bench/setup.sh when missing).";

struct Opts {
    scale: f64,
    conns: usize,
    concurrency: u32,
    litellm: bool,
    micro_only: bool,
    ablation: bool,
    hostcalls: bool,
    out: Option<PathBuf>,
}

fn parse_args() -> Result<Opts, String> {
    let mut o = Opts {
        scale: 1.0,
        conns: 32,
        concurrency: 1,
        litellm: true,
        micro_only: false,
        ablation: true,
        hostcalls: true,
        out: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "--scale" => {
                o.scale = val("--scale")?.parse().map_err(|_| "--scale: not a number")?;
                if !(o.scale > 0.0 && o.scale <= 100.0) {
                    return Err("--scale must be in (0, 100]".into());
                }
            }
            "--conns" => {
                o.conns = val("--conns")?.parse().map_err(|_| "--conns: not a number")?;
                if o.conns == 0 || o.conns > 1024 {
                    return Err("--conns must be in 1..=1024".into());
                }
            }
            "--concurrency" => {
                o.concurrency = val("--concurrency")?.parse().map_err(|_| "--concurrency: not a number")?;
            }
            "--no-litellm" => o.litellm = false,
            "--micro-only" => o.micro_only = true,
            "--no-ablation" => o.ablation = false,
            "--no-hostcalls" => o.hostcalls = false,
            "--out" => o.out = Some(PathBuf::from(val("--out")?)),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    Ok(o)
}

fn root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(Path::to_path_buf).unwrap_or(manifest)
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}

fn env_path(var: &str, default: PathBuf) -> PathBuf {
    std::env::var_os(var).filter(|v| !v.is_empty()).map(PathBuf::from).unwrap_or(default)
}

fn need_file(p: &Path, hint: &str) -> Result<(), String> {
    if p.is_file() {
        Ok(())
    } else {
        Err(format!("{} not found: {hint}", p.display()))
    }
}

macro_rules! progress {
    ($($t:tt)*) => { eprintln!("[bench] {}", format!($($t)*)) };
}

// ---------------------------------------------------------------------------------------------
// Request bodies
// ---------------------------------------------------------------------------------------------

/// An OpenAI chat body of exactly `len` bytes: a conversation of ~1 KB messages (alternating
/// user/assistant), then `model` (and `stream`) — the key order the OpenAI SDKs send, so the
/// filter has to get past the whole history to find `model`.
pub fn chat_body(len: usize, stream: bool) -> Vec<u8> {
    const FILLER: &str = "The quick brown fox jumps over the lazy dog; pack my box with five dozen liquor jugs. ";
    let suffix = format!("],\"model\":\"rr\"{}}}", if stream { ",\"stream\":true" } else { "" });
    let mut s = String::with_capacity(len);
    s.push_str("{\"messages\":[");
    let mut i = 0;
    loop {
        let role = if i % 2 == 0 { "user" } else { "assistant" };
        let open = format!("{}{{\"role\":\"{role}\",\"content\":\"", if i > 0 { "," } else { "" });
        let close = "\"}";
        let fixed = s.len() + open.len() + close.len() + suffix.len();
        let room = len.saturating_sub(fixed);
        let n = if room > 1100 { 1000 } else { room };
        s.push_str(&open);
        let mut left = n;
        while left > 0 {
            let take = left.min(FILLER.len());
            s.push_str(FILLER.get(..take).unwrap_or(""));
            left -= take;
        }
        s.push_str(close);
        i += 1;
        if n == room {
            break;
        }
    }
    s.push_str(&suffix);
    s.into_bytes()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Kb1,
    Mb1,
    Stream,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Kb1 => "1 KB",
            Kind::Mb1 => "1 MB",
            Kind::Stream => "stream",
        }
    }
    fn key(self) -> &'static str {
        match self {
            Kind::Kb1 => "1kb",
            Kind::Mb1 => "1mb",
            Kind::Stream => "stream",
        }
    }
    fn body(self) -> Vec<u8> {
        match self {
            Kind::Kb1 => chat_body(1024, false),
            Kind::Mb1 => chat_body(1 << 20, false),
            Kind::Stream => chat_body(1024, true),
        }
    }
}

const KINDS: [Kind; 3] = [Kind::Kb1, Kind::Mb1, Kind::Stream];
/// SSE events per streamed response (mock `--chunks`), sent back to back (`--chunk-delay-ms 0`).
const STREAM_CHUNKS: u32 = 20;

// ---------------------------------------------------------------------------------------------
// Targets
// ---------------------------------------------------------------------------------------------

struct Target {
    key: String,
    label: String,
    port: u16,
    /// The proxy's PID (for its CPU time).
    pid: u32,
    /// An ablation probe: measured for 1 KB and 1 MB only.
    probe: bool,
}

impl Target {
    fn runs(&self, kind: Kind) -> bool {
        if self.key == "f" {
            // The failover arm: 1 KB only (latency and throughput next to a and b).
            return kind == Kind::Kb1;
        }
        !(self.probe && kind == Kind::Stream)
    }
}

/// The failover arm's plugin config: worker `rr` (the name the request bodies use) falls back
/// from `down` (a mock that answers every request with 503) to `ma` on the healthy mock.
/// `cooldown_failures: 0` keeps `down`'s breaker shut (it would otherwise open at the mock's
/// `Retry-After: 1` and send most requests straight to `ma`): every request fails over.
pub const FAILOVER_CONFIG: &str = "models:
  - from: openai:gpt-down
    name: down
    params:
      cluster: down
      cooldown_failures: 0
  - from: openai:gpt-a
    name: ma
    params:
      cluster: up
workers:
  - name: rr
    type: load_balance
    description: fallback from a model that always answers 503
    load_balance:
      routing:
        - from: down
          order: 1
        - from: ma
          order: 2
";

/// The trail every failover-arm answer must carry.
const FAILOVER_TRAIL: &str = "down=503,ma=200";

/// Per target and kind: latency at 1 connection, throughput at N.
#[derive(Default, Clone)]
struct Cells {
    lat: CellResult,
    thr: CellResult,
}

fn summarize(mut c: CellResult) -> serde_json::Value {
    let n = c.total_us.len();
    let p50 = quantile(&mut c.total_us, 0.5);
    let p99 = quantile(&mut c.total_us, 0.99);
    let f50 = quantile(&mut c.first_us, 0.5);
    let f99 = quantile(&mut c.first_us, 0.99);
    json!({
        "requests": n, "ok": c.ok, "errors": c.errors, "first_error": c.first_error,
        "window_s": c.window_s, "rps": if c.window_s > 0.0 { Some(c.rps()) } else { None },
        "cpu_s": c.cpu_s, "cpu_us_per_req": c.cpu_us_per_req(),
        "p50_us": p50, "p99_us": p99, "first_byte_p50_us": f50, "first_byte_p99_us": f99,
    })
}

/// Checks one request per kind against a target before measuring it: a 200, and the upstream
/// received the provider model id (`gpt-a`/`gpt-b`) through b and c, `rr` unchanged through
/// a and the probes.
fn sanity(t: &Target, kind: Kind, req: &Request) -> Result<String, String> {
    let r = client::once(t.port, req, 512).map_err(|e| format!("{}: {e}", t.label))?;
    if r.status != 200 {
        return Err(format!(
            "{} {}: status {}: {}",
            t.label,
            kind.label(),
            r.status,
            String::from_utf8_lossy(&r.body_head)
        ));
    }
    let model = r.header("x-mock-model").or_else(|| r.header("llm_provider-x-mock-model")).unwrap_or("?").to_string();
    let want_rewrite = matches!(t.key.as_str(), "b" | "b0" | "bu" | "c" | "f");
    let ok = if t.key == "f" {
        model == "gpt-a"
    } else if want_rewrite {
        model == "gpt-a" || model == "gpt-b"
    } else {
        model == "rr"
    };
    if !ok {
        return Err(format!("{} {}: upstream received model {model:?}", t.label, kind.label()));
    }
    if r.body_len == 0 || (kind == Kind::Stream && !r.body_head.starts_with(b"data: ")) {
        return Err(format!("{} stream: not SSE: {}", t.label, String::from_utf8_lossy(&r.body_head)));
    }
    if (t.key == "b" || t.key == "f") && r.header("x-model-workers-worker") != Some("rr") {
        return Err(format!("{}: no x-model-workers-worker: rr on the response", t.key));
    }
    if t.key == "f" && r.header("x-model-workers-attempts") != Some(FAILOVER_TRAIL) {
        return Err(format!(
            "f: x-model-workers-attempts {:?}, want {FAILOVER_TRAIL}",
            r.header("x-model-workers-attempts")
        ));
    }
    Ok(model)
}

/// The ablation probes (bench/probe/probe.rs), cheapest first.
const PROBES: [(&str, &str); 4] = [
    ("noop", "wasm filter, all callbacks Continue"),
    ("pause", "+ headers paused, body buffered to end of stream"),
    ("read", "+ whole body copied into the VM"),
    ("rewrite", "+ body copied back (set_buffer) + content-length set"),
];

fn build_probe(root: &Path, out: &Path) -> Result<PathBuf, String> {
    let src = root.join("bench/probe/probe.rs");
    let wasm = out.join("probe.wasm");
    let o = Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
        .args(["--edition", "2021", "--target", "wasm32-wasip1", "--crate-type", "cdylib"])
        .args(["-C", "opt-level=3", "-C", "strip=symbols", "-o"])
        .arg(&wasm)
        .arg(&src)
        .output()
        .map_err(|e| format!("rustc: {e}"))?;
    if !o.status.success() {
        return Err(format!("rustc {}: {}", src.display(), String::from_utf8_lossy(&o.stderr)));
    }
    Ok(wasm)
}

/// Host calls priced by the `cost` probe (name as in `hostcalls.mjs`, without `proxy_`).
const PRICED_CALLS: [&str; 14] = [
    "none",
    "get_header_map_value",
    "get_header_map_pairs",
    "replace_header_map_value",
    "remove_header_map_value",
    "get_shared_data",
    "set_shared_data",
    "increment_metric",
    "record_metric",
    "log_debug",
    "get_current_time_nanoseconds",
    "clear_route_cache",
    "get_buffer_bytes",
    "set_buffer_bytes",
];

/// Asks the `cost` probe Envoy to time `n` calls of each kind (best of 9 requests); ns per call
/// with the empty loop (`none`) subtracted. For the buffer calls the body size matters: they are
/// priced with the 1 KB and the 1 MB body.
fn price_host_calls(port: u16) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    let bodies = [("", Kind::Kb1.body(), 2000u32), (" (1 MB body)", Kind::Mb1.body(), 20)];
    let mut base = 0.0;
    for (suffix, body, n) in &bodies {
        for kind in PRICED_CALLS {
            let buffer_call = kind.ends_with("buffer_bytes");
            if !suffix.is_empty() && !buffer_call {
                continue;
            }
            let n_s = n.to_string();
            let req =
                Request::post_json(port, "/v1/chat/completions", &[("x-probe-cost", kind), ("x-probe-n", &n_s)], body);
            let best = (0..9)
                .filter_map(|_| client::once(port, &req, 64).ok())
                .filter_map(|t| t.header("x-probe-ns").and_then(|v| v.parse::<f64>().ok()))
                .fold(f64::INFINITY, f64::min);
            if !best.is_finite() {
                continue;
            }
            if kind == "none" {
                base = best;
                continue;
            }
            out.push((format!("{kind}{suffix}"), (best - base).max(0.0)));
        }
    }
    out
}

/// `node bench/hostcalls.mjs`: the filter under a fake proxy-wasm host (host calls per request).
fn hostcall_profile(root: &Path, wasm: &Path, out: &Path) -> Result<serde_json::Value, String> {
    let cfg = out.join("filter-config.yaml");
    fs::write(&cfg, micro::FILTER_CONFIG).map_err(|e| e.to_string())?;
    let o = Command::new("node")
        .arg("--no-warnings")
        .arg(root.join("bench/hostcalls.mjs"))
        .arg(wasm)
        .arg(&cfg)
        .output()
        .map_err(|e| format!("node: {e}"))?;
    if !o.status.success() {
        return Err(format!("node hostcalls.mjs: {}", String::from_utf8_lossy(&o.stderr)));
    }
    serde_json::from_slice(&o.stdout).map_err(|e| format!("hostcalls.mjs output: {e}"))
}

// ---------------------------------------------------------------------------------------------
// Formatting
// ---------------------------------------------------------------------------------------------

fn ms(us: Option<u64>) -> String {
    match us {
        Some(u) if u >= 100_000 => format!("{:.0} ms", u as f64 / 1000.0),
        Some(u) if u >= 10_000 => format!("{:.1} ms", u as f64 / 1000.0),
        Some(u) => format!("{:.3} ms", u as f64 / 1000.0),
        None => "–".into(),
    }
}

fn us_str(v: Option<f64>) -> String {
    match v {
        Some(u) if u >= 10_000.0 => format!("{:.1} ms", u / 1000.0),
        Some(u) => format!("{u:.0} µs"),
        None => "–".into(),
    }
}

fn rps(v: Option<f64>) -> String {
    match v {
        Some(r) if r >= 100.0 => format!("{r:.0}/s"),
        Some(r) => format!("{r:.1}/s"),
        None => "–".into(),
    }
}

fn ratio(x: Option<f64>, y: Option<f64>) -> String {
    match (x, y) {
        (Some(x), Some(y)) if y > 0.0 => format!("{:.2}", x / y),
        _ => "–".into(),
    }
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or("–".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0))
}

fn cpu_model() -> String {
    fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

fn nproc() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn loadavg() -> String {
    fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------------------------

fn main() {
    let t0 = Instant::now();
    let opts = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("bench: {e}");
            std::process::exit(2);
        }
    };
    match run(&opts, t0) {
        Ok(()) => {}
        Err(e) => {
            eprintln!("bench: error: {e}");
            std::process::exit(1);
        }
    }
}

fn setup_litellm(root: &Path, venv: &Path, out: &Path) -> Result<PathBuf, String> {
    let bin = venv.join("bin/litellm");
    if bin.is_file() {
        return Ok(bin);
    }
    let script = root.join("bench/setup.sh");
    progress!("LiteLLM not installed: running {}", script.display());
    let log = out.join("setup.log");
    let f = fs::File::create(&log).map_err(|e| e.to_string())?;
    let f2 = f.try_clone().map_err(|e| e.to_string())?;
    let st = Command::new("bash")
        .arg(&script)
        .env("VENV", venv)
        .stdout(f)
        .stderr(f2)
        .status()
        .map_err(|e| format!("run setup.sh: {e}"))?;
    if !st.success() || !bin.is_file() {
        let tail = fs::read_to_string(&log).unwrap_or_default();
        let tail: Vec<&str> = tail.lines().rev().take(5).collect();
        return Err(format!(
            "bench/setup.sh failed ({st}); see {}: {}",
            log.display(),
            tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
        ));
    }
    Ok(bin)
}

fn run(opts: &Opts, t0: Instant) -> Result<(), String> {
    let root = root();
    let target = target_dir();
    let out = opts.out.clone().unwrap_or_else(|| target.join("bench"));
    let run_dir = out.join("run");
    fs::create_dir_all(&run_dir).map_err(|e| format!("{}: {e}", run_dir.display()))?;
    let wasm = env_path("MODEL_WORKERS_WASM", target.join("wasm32-wasip1/release/model_workers.wasm"));
    let envoy_bin = env_path("ENVOY_BIN", root.join(".venv/bin/envoy"));
    let mock_bin = env_path("MOCK_PROVIDER_BIN", target.join("release/mock-provider"));
    let venv = env_path("VENV", root.join(".venv"));
    let scale = opts.scale;
    let secs = |s: f64| Duration::from_secs_f64(s * scale);

    // ---- 1. micro-benchmark (before any child runs) ----------------------------------
    progress!("micro-benchmark: request::route + plan_attempt, native");
    let bodies: Vec<(&str, Vec<u8>)> = vec![("1 KB", Kind::Kb1.body()), ("1 MB", Kind::Mb1.body())];
    let mut micro = micro::run(&bodies, secs(1.5))?;
    progress!("micro-benchmark: translate::request_to_anthropic, StreamTranslator::push, native");
    let openai: Vec<(&str, Vec<u8>)> = vec![("1 KB", chat_body(1024, true)), ("100 KB", chat_body(100 * 1024, true))];
    micro.extend(micro::translate(&openai, secs(1.0))?);
    micro.extend(micro::inject(&bodies, secs(0.5))?);
    progress!("micro-benchmark: per-policy cost, native");
    micro.extend(micro::run_policies(&bodies[0].1, &bodies[1].1, secs(1.0))?);
    if opts.micro_only {
        let mut md = String::new();
        micro_table(&mut md, &micro);
        print!("{md}");
        return Ok(());
    }

    need_file(&wasm, "run `make wasm`")?;
    need_file(&envoy_bin, "run `make envoy`, or set ENVOY_BIN")?;
    need_file(&mock_bin, "run `cargo build --release -p mock-provider`, or set MOCK_PROVIDER_BIN")?;
    let wasm_bytes = fs::metadata(&wasm).map(|m| m.len()).unwrap_or(0);

    // ---- 2. the filter under a fake host: host calls per request -----------------------
    let hostcalls = if opts.hostcalls {
        progress!("host-call profile: node bench/hostcalls.mjs");
        match hostcall_profile(&root, &wasm, &out) {
            Ok(v) => Some(v),
            Err(e) => {
                progress!("host-call profile skipped: {e}");
                None
            }
        }
    } else {
        None
    };

    // ---- 3. processes ----------------------------------------------------------------
    let litellm_bin = if opts.litellm {
        setup_litellm(&root, &venv, &out).inspect_err(|e| progress!("LiteLLM unavailable: {e}"))
    } else {
        Err("skipped (--no-litellm)".to_string())
    };
    let chunks = STREAM_CHUNKS.to_string();
    let (mut mock, mock_port) =
        procs::start_mock(&mock_bin, &run_dir, "up", &["--chunks", &chunks, "--chunk-delay-ms", "0"])?;
    progress!("mock-provider (release) on 127.0.0.1:{mock_port}");
    // The failover arm's first model: every request gets a 503 (with `Retry-After: 1`).
    let (down_mock, down_port) = procs::start_mock(&mock_bin, &run_dir, "down", &["--status", "503"])?;
    progress!("mock-provider `down` (always 503) on 127.0.0.1:{down_port}");
    // (key, label, envoy)
    let mut envoys: Vec<(String, String, procs::Envoy)> = Vec::new();
    let start =
        |name: &str, bootstrap: String| procs::start_envoy(name, &envoy_bin, &run_dir, &bootstrap, opts.concurrency);
    envoys.push(("a".into(), "(a) Envoy".into(), start("envoy-a", procs::envoy_bootstrap(mock_port, None))?));
    let mut cost_probe = None;
    if opts.ablation {
        match build_probe(&root, &out) {
            Ok(probe) => {
                for (mode, _) in PROBES {
                    let e =
                        start(&format!("envoy-probe-{mode}"), procs::envoy_bootstrap(mock_port, Some((&probe, mode))))?;
                    envoys.push((format!("p-{mode}"), format!("(p) probe {mode}"), e));
                }
                cost_probe =
                    Some(start("envoy-probe-cost", procs::envoy_bootstrap(mock_port, Some((&probe, "cost"))))?);
            }
            Err(e) => progress!("ablation skipped: {e}"),
        }
    }
    envoys.push((
        "b".into(),
        "(b) Envoy + filter".into(),
        start("envoy-b", procs::generated_bootstrap(&wasm, micro::FILTER_CONFIG, &[("up", mock_port)])?)?,
    ));
    // Ablation of the new plumbing: the generated bootstrap without the upstream filter on
    // the cluster (attempt 1 exactly as (b) prepares it, no per-attempt pass), to price that
    // pass in the same run. Opt-in: MODEL_WORKERS_BENCH_NO_UPSTREAM=1.
    if std::env::var_os("MODEL_WORKERS_BENCH_NO_UPSTREAM").is_some_and(|v| v == "1") {
        let y = procs::generated_bootstrap(&wasm, micro::FILTER_CONFIG, &[("up", mock_port)])?;
        let y = y.replace(
            "        - name: envoy.filters.http.wasm\n          typed_config: *model_workers_filter",
            "        # (bench: no upstream filter)\n        - name: envoy.filters.http.wasm_removed",
        );
        let y = y
            .lines()
            .filter(|l| !l.contains("envoy.filters.http.wasm_removed"))
            .map(|l| format!("{l}\n"))
            .collect::<String>();
        envoys.push(("bu".into(), "(bu) filter, no upstream pass".into(), start("envoy-bu", y)?));
    }
    // An earlier build of the filter, to compare success paths in one run: its own
    // single-attempt bootstrap (filter before a route to `up`), as it was deployed then.
    if let Some(old) = std::env::var_os("MODEL_WORKERS_BASELINE_WASM").filter(|v| !v.is_empty()) {
        let old = PathBuf::from(old);
        envoys.push((
            "b0".into(),
            "(b0) previous filter".into(),
            start("envoy-b0", procs::envoy_bootstrap(mock_port, Some((&old, micro::FILTER_CONFIG))))?,
        ));
    }
    envoys.push((
        "f".into(),
        "(f) failover".into(),
        start(
            "envoy-f",
            procs::generated_bootstrap(&wasm, FAILOVER_CONFIG, &[("up", mock_port), ("down", down_port)])?,
        )?,
    ));
    progress!(
        "{} Envoys up (--concurrency {}): {}",
        envoys.len(),
        opts.concurrency,
        envoys.iter().map(|(k, _, e)| format!("{k} :{}", e.port)).collect::<Vec<_>>().join(", ")
    );
    let mut litellm = None;
    let litellm_note = match &litellm_bin {
        Ok(bin) => {
            progress!("starting LiteLLM proxy (offline, 1 worker)…");
            match procs::start_litellm(bin, &run_dir, mock_port) {
                Ok(l) => {
                    progress!("LiteLLM on :{} (ready after {:.1} s)", l.port, l.startup.as_secs_f64());
                    let note = format!("ready {:.1} s after start", l.startup.as_secs_f64());
                    litellm = Some(l);
                    note
                }
                Err(e) => {
                    progress!("LiteLLM unavailable: {e}");
                    format!("unavailable: {}", e.lines().next().unwrap_or(""))
                }
            }
        }
        Err(e) => format!("unavailable: {e}"),
    };

    let mut targets: Vec<Target> = envoys
        .iter()
        .map(|(k, l, e)| Target {
            key: k.clone(),
            label: l.clone(),
            port: e.port,
            pid: e.proc.pid(),
            probe: k.starts_with("p-"),
        })
        .collect();
    if let Some(l) = &litellm {
        targets.push(Target {
            key: "c".into(),
            label: "(c) LiteLLM".into(),
            port: l.port,
            pid: l.proc.pid(),
            probe: false,
        });
    }
    let rss_idle: Vec<Option<(u64, u64)>> = envoys.iter().map(|(_, _, e)| e.proc.rss_kib()).collect();

    // ---- 4. sanity: every target answers every kind, with the right upstream model ----
    let mut reqs = Vec::new();
    for kind in KINDS {
        let body = kind.body();
        let per_target: Vec<Request> =
            targets.iter().map(|t| Request::post_json(t.port, "/v1/chat/completions", &[], &body)).collect();
        for (t, r) in targets.iter().zip(&per_target) {
            if t.runs(kind) {
                let m = sanity(t, kind, r)?;
                progress!("check {} {}: 200, upstream got model {m}", t.label, kind.label());
            }
        }
        reqs.push(per_target);
    }

    // ---- 5. cells, interleaved over targets ------------------------------------------
    let lat_rounds = 3;
    let thr_rounds = 2;
    let mut cells: Vec<Vec<Cells>> = vec![vec![Cells::default(); targets.len()]; KINDS.len()];
    for (ki, kind) in KINDS.iter().enumerate() {
        for round in 0..lat_rounds {
            for (ti, t) in targets.iter().enumerate().filter(|(_, t)| t.runs(*kind)) {
                let r = client::run_cell(t.port, &reqs[ki][ti], 1, secs(0.3), secs(1.2), u64::MAX, Some(t.pid));
                progress!(
                    "{} {} latency round {}: {} req, p50 {}",
                    kind.label(),
                    t.label,
                    round + 1,
                    r.ok,
                    ms(quantile(&mut r.total_us.clone(), 0.5).map(u64::from))
                );
                cells[ki][ti].lat.merge(r);
            }
        }
        // A slow target (LiteLLM with 1 MB bodies: ~150 ms each, one at a time) needs a longer
        // warm-up and window to reach a steady state with N requests queued.
        let per_req_under_load: Vec<f64> = cells[ki]
            .iter()
            .map(|c| quantile(&mut c.lat.total_us.clone(), 0.5).map_or(0.0, |u| f64::from(u) / 1e6) * opts.conns as f64)
            .collect();
        for round in 0..thr_rounds {
            for (ti, t) in targets.iter().enumerate().filter(|(_, t)| t.runs(*kind)) {
                let busy = per_req_under_load.get(ti).copied().unwrap_or(0.0);
                let warm = secs(0.5).max(Duration::from_secs_f64(busy.min(20.0)));
                let window = secs(2.0).max(Duration::from_secs_f64((1.5 * busy).min(30.0)));
                let r = client::run_cell(t.port, &reqs[ki][ti], opts.conns, warm, window, u64::MAX, Some(t.pid));
                progress!(
                    "{} {} throughput round {}: {:.0} req/s, {} errors",
                    kind.label(),
                    t.label,
                    round + 1,
                    r.rps(),
                    r.errors
                );
                cells[ki][ti].thr.merge(r);
            }
        }
    }
    let rss_after: Vec<Option<(u64, u64)>> = envoys.iter().map(|(_, _, e)| e.proc.rss_kib()).collect();
    let prices = match &cost_probe {
        Some(e) => {
            progress!("pricing host calls in Envoy (probe `cost`)");
            price_host_calls(e.port)
        }
        None => Vec::new(),
    };
    drop(cost_probe);
    let litellm_rss = litellm.as_ref().and_then(|l| l.proc.rss_kib());
    let mock_stats = client::get(mock_port, "/__mock/stats")
        .ok()
        .and_then(|t| serde_json::from_slice::<serde_json::Value>(&t.body_head).ok());
    let _ = mock.alive();
    let down_stats = client::get(down_port, "/__mock/stats")
        .ok()
        .and_then(|t| serde_json::from_slice::<serde_json::Value>(&t.body_head).ok());
    drop(down_mock);
    let failover_counters: Vec<(String, u64)> =
        envoys.iter().find(|(k, _, _)| k == "f").map(|(_, _, e)| envoy_counters(e.admin_port)).unwrap_or_default();

    // ---- 6. report -------------------------------------------------------------------
    let summaries: Vec<Vec<(serde_json::Value, serde_json::Value)>> = cells
        .iter()
        .map(|per_t| per_t.iter().map(|c| (summarize(c.lat.clone()), summarize(c.thr.clone()))).collect())
        .collect();
    let rss: Vec<RssRow> = envoys
        .iter()
        .zip(rss_idle.iter().zip(&rss_after))
        .map(|((_, l, _), (i, a))| (l.clone(), *i, *a))
        .chain(litellm.as_ref().map(|_| ("(c) LiteLLM".to_string(), None, litellm_rss)))
        .collect();
    let runtime = t0.elapsed();
    let md = report_md(&ReportInput {
        opts,
        targets: &targets,
        summaries: &summaries,
        micro: &micro,
        hostcalls: hostcalls.as_ref(),
        prices: &prices,
        wasm_bytes,
        rss: &rss,
        litellm_note: &litellm_note,
        failover_counters: &failover_counters,
        runtime,
    });
    print!("{md}");
    fs::write(out.join("results.md"), &md).map_err(|e| e.to_string())?;

    let mut by_kind = serde_json::Map::new();
    for (ki, kind) in KINDS.iter().enumerate() {
        let mut m = serde_json::Map::new();
        for (ti, t) in targets.iter().enumerate().filter(|(_, t)| t.runs(*kind)) {
            let (l, th) = &summaries[ki][ti];
            m.insert(t.key.clone(), json!({"target": t.label, "latency_1conn": l, "throughput": th}));
        }
        by_kind.insert(kind.key().to_string(), serde_json::Value::Object(m));
    }
    let results = json!({
        "machine": {"nproc": nproc(), "cpu": cpu_model(), "loadavg_end": loadavg()},
        "settings": {
            "envoy_concurrency": opts.concurrency, "throughput_conns": opts.conns,
            "scale": opts.scale, "latency_rounds": lat_rounds, "throughput_rounds": thr_rounds,
            "latency_s_per_target": 1.2 * scale * lat_rounds as f64,
            "throughput_s_per_target": 2.0 * scale * thr_rounds as f64,
            "stream_chunks": STREAM_CHUNKS,
        },
        "cells": by_kind,
        "micro": micro,
        "hostcalls": hostcalls,
        "host_call_ns_in_envoy": prices.iter().map(|(k, v)| (k.clone(), json!(v))).collect::<serde_json::Map<_, _>>(),
        "wasm_bytes": wasm_bytes,
        "rss_kib": rss.iter().map(|(l, i, a)| json!({
            "target": l, "idle": i.map(|r| r.0), "after": a.map(|r| r.0), "hwm": a.map(|r| r.1)
        })).collect::<Vec<_>>(),
        "litellm": {"available": litellm.is_some(), "note": litellm_note},
        "mock_stats": mock_stats,
        "down_mock_stats": down_stats,
        "failover_envoy_counters": failover_counters.iter().map(|(k, v)| (k.clone(), json!(v))).collect::<serde_json::Map<_, _>>(),
        "runtime_s": runtime.as_secs_f64(),
    });
    fs::write(out.join("results.json"), serde_json::to_string_pretty(&results).unwrap_or_default())
        .map_err(|e| e.to_string())?;
    progress!(
        "wrote {} and {} in {:.0} s",
        out.join("results.md").display(),
        out.join("results.json").display(),
        runtime.as_secs_f64()
    );
    // Children are killed by their guards here (and by PDEATHSIG should we die earlier).
    drop(litellm);
    drop(envoys);
    drop(mock);
    Ok(())
}

/// The failover Envoy's counters that show what a failover costs upstream: requests,
/// connections and retries per cluster, and the filter's fallback count.
fn envoy_counters(admin_port: u16) -> Vec<(String, u64)> {
    const WANTED: [&str; 9] = [
        "cluster.down.upstream_rq_total",
        "cluster.down.upstream_cx_total",
        "cluster.down.upstream_cx_destroy_local",
        "cluster.down.upstream_cx_destroy_remote",
        "cluster.up.upstream_rq_total",
        "cluster.up.upstream_cx_total",
        "cluster.down.upstream_rq_retry",
        "cluster.up.upstream_rq_retry",
        "wasmcustom.model_workers.worker.rr.fallbacks",
    ];
    let text = client::get(admin_port, "/stats").map(|t| String::from_utf8_lossy(&t.body_head).into_owned());
    let text = text.unwrap_or_default();
    WANTED
        .iter()
        .filter_map(|name| {
            let prefix = format!("{name}: ");
            text.lines().find_map(|l| l.strip_prefix(&prefix)?.trim().parse().ok()).map(|v| (name.to_string(), v))
        })
        .collect()
}

/// (label, idle, after the load), each as (VmRSS, VmHWM) in KiB.
type RssRow = (String, Option<(u64, u64)>, Option<(u64, u64)>);

struct ReportInput<'a> {
    opts: &'a Opts,
    targets: &'a [Target],
    summaries: &'a [Vec<(serde_json::Value, serde_json::Value)>],
    micro: &'a [micro::Stat],
    hostcalls: Option<&'a serde_json::Value>,
    /// (host call, ns per call in Envoy).
    prices: &'a [(String, f64)],
    wasm_bytes: u64,
    /// (label, idle, after the load) as (VmRSS, VmHWM) KiB.
    rss: &'a [RssRow],
    litellm_note: &'a str,
    /// The failover Envoy's upstream counters after the load.
    failover_counters: &'a [(String, u64)],
    runtime: Duration,
}

fn micro_table(md: &mut String, micro: &[micro::Stat]) {
    // Sub-microsecond steps (a policy's pick) in ns.
    let us = |v: f64| if v < 1.0 { format!("{:.0} ns", v * 1000.0) } else { format!("{v:.1} µs") };
    let _ = writeln!(md, "| native, release profile | min | p50 | p99 | allocations | bytes allocated |");
    let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|");
    for s in micro {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} |",
            s.what.trim(),
            us(s.min_us),
            us(s.p50_us),
            us(s.p99_us),
            s.allocs,
            s.alloc_bytes
        );
    }
}

fn report_md(r: &ReportInput<'_>) -> String {
    let get = |ki: usize, key: &str, lat: bool, field: &str| -> Option<f64> {
        let ti = r.targets.iter().position(|t| t.key == key)?;
        let (l, t) = r.summaries.get(ki)?.get(ti)?;
        let v = if lat { l } else { t };
        v[field].as_f64()
    };
    let us = |v: Option<f64>| v.map(|x| x as u64);
    let has_c = r.targets.iter().any(|t| t.key == "c");
    let mut md = String::new();
    let _ = writeln!(md, "## model-workers: cost of the filter\n");
    let _ = writeln!(
        md,
        "Machine: {} × {}; Envoy 1.40.0 `--concurrency {}`; load generator: this binary \
         (closed loop, keep-alive HTTP/1.1, on the same 2 cores); LiteLLM proxy 1.100.5 \
         `--num_workers 1`: {}. Latency at 1 connection, throughput at {} connections. Run took \
         {:.0} s; load average at the end: {}.\n",
        nproc(),
        cpu_model(),
        r.opts.concurrency,
        r.litellm_note,
        r.opts.conns,
        r.runtime.as_secs_f64(),
        loadavg()
    );
    let _ =
        writeln!(md, "| request | metric | (a) Envoy | (b) Envoy + filter | (c) LiteLLM | b/a | b/c | target (b/a) |");
    let _ = writeln!(md, "|---|---|---:|---:|---:|---:|---:|---|");
    for (ki, kind) in KINDS.iter().enumerate() {
        let lat_rows: Vec<(&str, &str)> = if *kind == Kind::Stream {
            vec![
                ("first_byte_p50_us", "first event p50"),
                ("first_byte_p99_us", "first event p99"),
                ("p50_us", "whole stream p50"),
                ("p99_us", "whole stream p99"),
            ]
        } else {
            vec![("p50_us", "latency p50"), ("p99_us", "latency p99")]
        };
        for (field, name) in lat_rows {
            let (a, b, c) = (get(ki, "a", true, field), get(ki, "b", true, field), get(ki, "c", true, field));
            let tgt = if *kind == Kind::Kb1 && field == "p50_us" { "≤ 1.10" } else { "" };
            let _ = writeln!(
                md,
                "| {} | {} @1 conn | {} | {} | {} | {} | {} | {} |",
                kind.label(),
                name,
                ms(us(a)),
                ms(us(b)),
                if has_c { ms(us(c)) } else { "n/a".into() },
                ratio(b, a),
                ratio(b, c),
                tgt
            );
        }
        let (a, b, c) = (get(ki, "a", false, "rps"), get(ki, "b", false, "rps"), get(ki, "c", false, "rps"));
        let _ = writeln!(
            md,
            "| {} | throughput @{} conns | {} | {} | {} | {} | {} | {} |",
            kind.label(),
            r.opts.conns,
            rps(a),
            rps(b),
            if has_c { rps(c) } else { "n/a".into() },
            ratio(b, a),
            ratio(b, c),
            if *kind == Kind::Kb1 { "≥ 0.90" } else { "" }
        );
        let cpu = |k: &str| get(ki, k, false, "cpu_us_per_req");
        let (a, b, c) = (cpu("a"), cpu("b"), cpu("c"));
        let _ = writeln!(
            md,
            "| {} | proxy CPU per request @{} conns | {} | {} | {} | {} | {} |  |",
            kind.label(),
            r.opts.conns,
            us_str(a),
            us_str(b),
            if has_c { us_str(c) } else { "n/a".into() },
            ratio(b, a),
            ratio(b, c),
        );
    }
    // Errors, if any.
    let mut errs = Vec::new();
    for (ki, kind) in KINDS.iter().enumerate() {
        for (ti, t) in r.targets.iter().enumerate() {
            if let Some((l, th)) = r.summaries.get(ki).and_then(|s| s.get(ti)) {
                for (what, v) in [("latency", l), ("throughput", th)] {
                    if v["errors"].as_u64().unwrap_or(0) > 0 {
                        errs.push(format!(
                            "{} {} {}: {} errors (first: {})",
                            kind.label(),
                            t.label,
                            what,
                            v["errors"],
                            v["first_error"].as_str().unwrap_or("")
                        ));
                    }
                }
            }
        }
    }
    if errs.is_empty() {
        let _ = writeln!(md, "\nNo errors: every measured response was a 200.");
    } else {
        let _ = writeln!(md, "\nErrors:\n");
        for e in errs {
            let _ = writeln!(md, "- {e}");
        }
    }

    // The failover arm, next to a and b.
    if r.targets.iter().any(|t| t.key == "f") {
        let _ = writeln!(md, "\n### Failover (f): every request fails over (first model 503, second serves), 1 KB\n");
        let _ = writeln!(
            md,
            "The generated bootstrap for worker `rr` = fallback `down` (a second mock, always 503, breaker \
             off) → `ma` (the healthy mock): each request makes two attempts through Envoy's router \
             (`x-model-workers-attempts: {FAILOVER_TRAIL}`, checked).\n"
        );
        let _ = writeln!(md, "| metric | (a) Envoy | (b) Envoy + filter | (f) failover | f/b | f/a |");
        let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|");
        for (field, lat, name) in [
            ("p50_us", true, "latency p50 @1 conn"),
            ("p99_us", true, "latency p99 @1 conn"),
            ("rps", false, "throughput @N conns"),
            ("cpu_us_per_req", false, "proxy CPU per request @N conns"),
        ] {
            let (a, b, f) = (get(0, "a", lat, field), get(0, "b", lat, field), get(0, "f", lat, field));
            let fmt = |v: Option<f64>| match field {
                "rps" => rps(v),
                "cpu_us_per_req" => us_str(v),
                _ => ms(us(v)),
            };
            let name = name.replace('N', &r.opts.conns.to_string());
            let _ =
                writeln!(md, "| {name} | {} | {} | {} | {} | {} |", fmt(a), fmt(b), fmt(f), ratio(f, b), ratio(f, a));
        }
        if !r.failover_counters.is_empty() {
            let list: Vec<String> = r.failover_counters.iter().map(|(k, v)| format!("`{k}` {v}")).collect();
            let _ = writeln!(md, "\nCounters of the failover Envoy after the load: {}.", list.join(", "));
        }
    }

    // The 1 MB cost, two ways.
    let d50 = match (get(1, "b", true, "p50_us"), get(1, "a", true, "p50_us")) {
        (Some(b), Some(a)) => Some((b - a) / 1000.0),
        _ => None,
    };
    let micro_1mb = r.micro.iter().find(|s| s.what.starts_with("route + plan_attempt") && s.body_bytes > 100_000);
    let _ = writeln!(md, "\n### Model lookup + rewrite of a 1 MB body (target ≤ 1 ms)\n");
    let _ = writeln!(
        md,
        "- in Envoy, p50(b) − p50(a) at 1 MB: **{}** (everything the filter adds: buffering the \
         body, copying it into the wasm VM and back, the JSON scan, the rewrite, host calls)",
        d50.map_or("–".into(), |d| format!("{d:.2} ms"))
    );
    if let Some(m) = micro_1mb {
        let _ = writeln!(
            md,
            "- natively, `request::route` + `request::plan_attempt`: **p50 {:.2} ms**, p99 {:.2} ms, \
             {} allocations ({:.1} MiB) per request",
            m.p50_us / 1000.0,
            m.p99_us / 1000.0,
            m.allocs,
            m.alloc_bytes as f64 / (1024.0 * 1024.0)
        );
    }
    let _ = writeln!(md);
    micro_table(&mut md, r.micro);

    // Ablation.
    if r.targets.iter().any(|t| t.probe) {
        let _ = writeln!(
            md,
            "\n### Where the filter's cost goes (ablation; p50 @1 conn, req/s and CPU/req @{} conns)\n",
            r.opts.conns
        );
        let _ = writeln!(
            md,
            "| Envoy with | 1 KB p50 | 1 KB req/s | 1 KB CPU/req | Δ CPU | 1 MB p50 | 1 MB req/s | 1 MB CPU/req | Δ CPU |"
        );
        let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        let mut rows: Vec<(String, String)> = vec![("a".into(), "no filter (a)".into())];
        for (mode, what) in PROBES {
            if r.targets.iter().any(|t| t.key == format!("p-{mode}")) {
                rows.push((format!("p-{mode}"), format!("probe `{mode}`: {what}")));
            }
        }
        rows.push(("b".into(), "model-workers (b)".into()));
        let mut prev: (Option<f64>, Option<f64>) = (None, None);
        for (key, label) in rows {
            let (c1, c2) = (get(0, &key, false, "cpu_us_per_req"), get(1, &key, false, "cpu_us_per_req"));
            let d = |x: Option<f64>, p: Option<f64>| match (x, p) {
                (Some(x), Some(p)) => format!("{:+.0} µs", x - p),
                _ => String::new(),
            };
            let _ = writeln!(
                md,
                "| {label} | {} | {} | {} | {} | {} | {} | {} | {} |",
                ms(us(get(0, &key, true, "p50_us"))),
                rps(get(0, &key, false, "rps")),
                us_str(c1),
                d(c1, prev.0),
                ms(us(get(1, &key, true, "p50_us"))),
                rps(get(1, &key, false, "rps")),
                us_str(c2),
                d(c2, prev.1)
            );
            prev = (c1, c2);
        }
        let _ = writeln!(
            md,
            "\nCPU/req = the Envoy process's user+system CPU time during the {}-connection window \
             divided by the requests it completed (robust to other load on the machine, unlike \
             latency).",
            r.opts.conns
        );
    }

    // Host calls.
    if let Some(h) = r.hostcalls {
        let _ = writeln!(
            md,
            "\n### Hot path per request (the .wasm under a fake proxy-wasm host in node {}, `bench/hostcalls.mjs`)\n",
            h["node"].as_str().unwrap_or("?")
        );
        let _ = writeln!(
            md,
            "| body | host calls | allocations by the host in the VM | bytes host→VM | bytes VM→host | VM time p50 |"
        );
        let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|");
        for x in h["results"].as_array().into_iter().flatten() {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {:.1} µs |",
                x["label"].as_str().unwrap_or(""),
                x["host_calls_total"],
                x["host_to_wasm_allocations"],
                x["bytes_host_to_wasm"],
                x["bytes_wasm_to_host"],
                x["vm_us_p50"].as_f64().unwrap_or(0.0)
            );
        }
        if let Some(x) = h["results"].get(0) {
            let list = |v: &serde_json::Value| {
                v.as_object()
                    .map(|o| {
                        o.iter()
                            .map(|(k, n)| format!("{} ×{n}", k.trim_start_matches("proxy_")))
                            .collect::<Vec<_>>()
                            .join(", ")
                    })
                    .unwrap_or_default()
            };
            let _ = writeln!(md, "\nRequest phase: {}.  ", list(&x["host_calls_request_phase"]));
            let _ = writeln!(md, "Response phase: {}.", list(&x["host_calls_response_phase"]));
        }
        let lm = &h["linear_memory"];
        let mb = |v: &serde_json::Value| v.as_f64().map_or("?".into(), |b| format!("{:.1} MiB", b / 1048576.0));
        let _ = writeln!(
            md,
            "\nVM linear memory: {} idle → {} with 32 concurrent 1 MB requests in flight → {} after they finished (wasm memory never shrinks).",
            mb(&lm["before_bytes"]),
            mb(&lm["with_32_inflight_1mb_bytes"]),
            mb(&lm["after_they_finished_bytes"])
        );
    }

    if !r.prices.is_empty() {
        // Calls per 1 KB request from the fake-host profile, priced with Envoy's numbers.
        let counts: std::collections::BTreeMap<String, u64> = r
            .hostcalls
            .and_then(|h| h["results"].get(0))
            .map(|x| {
                let mut m = std::collections::BTreeMap::new();
                for phase in ["host_calls_request_phase", "host_calls_response_phase"] {
                    for (k, v) in x[phase].as_object().into_iter().flatten() {
                        let k = k.trim_start_matches("proxy_");
                        let k = match k {
                            "log" => "log_debug",
                            "call_foreign_function" => "clear_route_cache",
                            k => k,
                        };
                        *m.entry(k.to_string()).or_insert(0) += v.as_u64().unwrap_or(0);
                    }
                }
                m
            })
            .unwrap_or_default();
        let _ = writeln!(
            md,
            "\n### Price of each host call inside Envoy (probe `cost`: N calls in a loop, best of 9 requests)\n"
        );
        let _ = writeln!(md, "| host call | ns per call | calls per 1 KB request | µs per request |");
        let _ = writeln!(md, "|---|---:|---:|---:|");
        let mut sum = 0.0;
        for (k, ns) in r.prices {
            let n = counts.get(k.as_str()).copied();
            let per = n.map(|n| n as f64 * ns / 1000.0);
            sum += per.unwrap_or(0.0);
            let _ = writeln!(
                md,
                "| {k} | {ns:.0} | {} | {} |",
                n.map_or("–".into(), |n| n.to_string()),
                per.map_or("–".into(), |p| format!("{p:.2}"))
            );
        }
        let _ = writeln!(md, "| **sum** | | {} | **{sum:.1}** |", counts.values().sum::<u64>());
    }

    let _ = writeln!(md, "\n### Size and memory\n");
    let _ = writeln!(md, "- model_workers.wasm: {} bytes ({:.0} KiB)\n", r.wasm_bytes, r.wasm_bytes as f64 / 1024.0);
    let _ = writeln!(md, "| VmRSS | idle (after start) | after the load | peak (VmHWM) |");
    let _ = writeln!(md, "|---|---:|---:|---:|");
    for (label, idle, after) in r.rss {
        let _ = writeln!(
            md,
            "| {label} | {} | {} | {} |",
            mib(idle.map(|x| x.0)),
            mib(after.map(|x| x.0)),
            mib(after.map(|x| x.1))
        );
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_have_exact_sizes_and_are_valid_chat_json() {
        for (len, stream) in [(1024, false), (1024, true), (1 << 20, false), (300, false)] {
            let b = chat_body(len, stream);
            assert_eq!(b.len(), len);
            let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
            assert_eq!(v["model"], "rr");
            assert_eq!(v["stream"].as_bool().unwrap_or(false), stream);
            assert!(!v["messages"].as_array().unwrap().is_empty());
        }
        assert!(
            serde_json::from_slice::<serde_json::Value>(&chat_body(1 << 20, false)).unwrap()["messages"]
                .as_array()
                .unwrap()
                .len()
                > 1000
        );
    }

    #[test]
    fn plain_and_probe_bootstraps_differ_only_by_the_filter() {
        let a = procs::envoy_bootstrap(1234, None);
        let p = procs::envoy_bootstrap(1234, Some((Path::new("/x.wasm"), "noop")));
        assert!(!a.contains("envoy.filters.http.wasm"));
        assert!(p.contains("envoy.filters.http.wasm"));
        assert!(a.contains("port_value: 1234") && p.contains("port_value: 1234"));
        assert!(a.contains("route: { cluster: up, timeout: 0s }"));
    }

    #[test]
    fn filter_arms_run_the_generated_bootstrap() {
        // What `model-workers envoy` writes: the matcher on filter state, the retry policy and
        // the filter upstream too, each cluster on the mock's loopback port.
        let b = procs::generated_bootstrap(Path::new("/x.wasm"), micro::FILTER_CONFIG, &[("up", 1234)]).unwrap();
        assert!(b.contains("wasm.model_workers.next"), "{b}");
        assert!(b.contains("retriable_status_codes"));
        assert!(b.contains("envoy.filters.http.upstream_codec"));
        assert!(b.contains("port_value: 1234"));
        assert!(!b.contains("cluster_header"));
        let f =
            procs::generated_bootstrap(Path::new("/x.wasm"), FAILOVER_CONFIG, &[("up", 1234), ("down", 4321)]).unwrap();
        assert!(f.contains("port_value: 4321") && f.contains("port_value: 1234"));
        assert!(f.contains("cooldown_failures: 0"));
        // Both clusters need an address: a missing one is an error, not a silent default.
        assert!(procs::generated_bootstrap(Path::new("/x.wasm"), FAILOVER_CONFIG, &[("up", 1234)]).is_err());
        model_workers::config::Config::parse(FAILOVER_CONFIG, &|_| None).unwrap();
    }

    #[test]
    fn micro_config_parses() {
        model_workers::config::Config::parse(micro::FILTER_CONFIG, &|_| None).unwrap();
        model_workers::config::Config::parse(micro::POLICY_CONFIG, &|_| None).unwrap();
        model_workers::config::Config::parse(micro::STICKY_CONFIG, &|_| None).unwrap();
    }
}
