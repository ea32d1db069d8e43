//! `make bench`: the cost of the model-workers filter, measured end to end on loopback.
//!
//! Cells: the same requests (1 KB chat POST, 1 MB chat POST, 1 KB streaming POST) through
//! (a) plain Envoy, same route, no filter; (n) Envoy's own C++ body routing (`json_to_metadata`
//! → a `dynamic_metadata` route match → `weighted_clusters`), what an Envoy user builds without
//! this project; (b) Envoy + the filter, a round-robin worker over two models on the same
//! upstream, in the bootstrap `model-workers envoy` generates (what users deploy); (c) LiteLLM
//! proxy with an equivalent model group — all in front of one release-mode mock provider. Plus
//! (f) failover: the generated bootstrap for a fallback worker whose first model (a second
//! mock) always answers 503, 1 KB requests only; the per-event arms (t, a200, b200, t200:
//! streams of 20 and 200 events, untranslated and translated to Anthropic) for the VM's cost
//! per SSE event. Latency at 1 connection, throughput at 32; the cells are interleaved
//! (round-robin over targets, several rounds) so that background load on the machine hits
//! all alike. Then the memory burst (48 concurrent 7 MiB bodies, fresh Envoys), a native
//! micro-benchmark of the filter's pure per-request work and the RSS of every Envoy.
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

const USAGE: &str = "usage: bench [--scale F] [--conns N] [--concurrency N] [--no-litellm] [--no-ablation]
             [--no-split] [--no-hostcalls] [--no-events] [--no-burst] [--rounds L,T] [--only KINDS]
             [--micro-only] [--out DIR]

  --scale F        multiply every cell's duration by F (default 1: ~5-6 min in total with
                   LiteLLM on 2 cores; the memory burst's size does not scale)
  --conns N        connections for the throughput cells (default 32)
  --concurrency N  Envoy --concurrency (worker threads) of the measured Envoys (default 1; the
                   memory burst always runs --concurrency 1)
  --no-litellm     skip cell (c)
  --no-ablation    skip the probe filters (bench/probe/probe.rs) that split the filter's cost
  --no-split       skip the upstream-pass split, 1 KB: (bu) = (b) without the upstream filter,
                   (bn) = (b) with a no-op wasm filter as the upstream filter
  --no-hostcalls   skip the host-call profile (node bench/hostcalls.mjs)
  --no-events      skip the per-SSE-event arms (t, a200, b200, t200: 20 vs 200 events)
  --no-burst       skip the memory burst (48 concurrent 7 MiB requests, 3 rounds, plain vs filter)
  --rounds L,T     interleaved latency and throughput rounds per cell (default 3,2); on this
                   shared machine 10,10 or more separate arms that differ by ~10 µs
  --only KINDS     only these request kinds, comma-separated: 1kb, 1mb, stream (default all)
  --micro-only     only the native micro-benchmark
  --out DIR        results directory (default <workspace>/target/bench)

Opt-in arms: MODEL_WORKERS_BASELINE_WASM=<path> (b0: an earlier build in its own bootstrap),
MODEL_WORKERS_BENCH_VARIANT_WASM=<path> (bv: another build on the generated bootstrap),
MODEL_WORKERS_BENCH_BURST_ABLATION=1 (the memory burst also for (n) and (b) without retry_policy).

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
    split: bool,
    lat_rounds: usize,
    thr_rounds: usize,
    kinds: Vec<Kind>,
    hostcalls: bool,
    events: bool,
    burst: bool,
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
        split: true,
        lat_rounds: 3,
        thr_rounds: 2,
        kinds: KINDS.to_vec(),
        hostcalls: true,
        events: true,
        burst: true,
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
            "--no-split" => o.split = false,
            "--rounds" => {
                let v = val("--rounds")?;
                let parsed = v.split_once(',').and_then(|(l, t)| Some((l.parse().ok()?, t.parse().ok()?)));
                match parsed {
                    Some((l, t)) if (1..=100).contains(&l) && (1..=100).contains(&t) => {
                        (o.lat_rounds, o.thr_rounds) = (l, t);
                    }
                    _ => return Err(format!("--rounds {v:?}: want L,T, each in 1..=100")),
                }
            }
            "--only" => {
                let v = val("--only")?;
                let mut kinds = Vec::new();
                for k in v.split(',') {
                    match KINDS.iter().find(|x| x.key() == k) {
                        Some(x) if !kinds.contains(x) => kinds.push(*x),
                        Some(_) => {}
                        None => return Err(format!("--only: unknown kind {k:?} (1kb, 1mb, stream)")),
                    }
                }
                o.kinds = kinds;
            }
            "--no-hostcalls" => o.hostcalls = false,
            "--no-events" => o.events = false,
            "--no-burst" => o.burst = false,
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
/// SSE events per streamed response of the per-event arms (a second mock, `--chunks 200`).
const LONG_STREAM_CHUNKS: u32 = 200;
/// The per-event arms: streams only, throughput cells only (proxy CPU per stream).
const EVENT_ARMS: [&str; 4] = ["t", "a200", "b200", "t200"];
/// The memory burst: this many requests at once, each with a body of `BURST_BODY` bytes
/// (below the generated config's default `max_body_bytes`, 8 MiB), `BURST_ROUNDS` times.
const BURST_CONNS: usize = 48;
const BURST_BODY: usize = 7 << 20;
const BURST_ROUNDS: usize = 3;
/// How long after the burst's load the last memory reading is taken.
const BURST_SETTLE: Duration = Duration::from_secs(5);

/// The translated arms (t, t200): worker `rr` with a single Anthropic model on the mock (its
/// `/v1/messages` dialect): the request body is translated whole, the stream event by event.
pub const TRANSLATED_CONFIG: &str = "models:
  - from: anthropic:claude-t
    name: mt
    params:
      cluster: up
      anthropic_api_key: ${ secrets:ANTHROPIC_API_KEY }
workers:
  - name: rr
    type: load_balance
    description: one Anthropic model, translated both ways
    load_balance:
      routing:
        - from: mt
";

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
    /// The proxy's admin port (Envoys).
    admin: Option<u16>,
}

impl Target {
    fn runs(&self, kind: Kind) -> bool {
        if matches!(self.key.as_str(), "f" | "bu" | "bn") {
            // The failover arm and the upstream-pass split: 1 KB only (latency and
            // throughput next to a and b).
            return kind == Kind::Kb1;
        }
        if self.events_arm() {
            return kind == Kind::Stream;
        }
        !(self.probe && kind == Kind::Stream)
    }
    /// The per-event arms measure CPU per stream only (no latency cells).
    fn events_arm(&self) -> bool {
        EVENT_ARMS.contains(&self.key.as_str())
    }
    /// SSE events per stream from this target's upstream mock.
    fn chunks(&self) -> u32 {
        if self.key.ends_with("200") {
            LONG_STREAM_CHUNKS
        } else {
            STREAM_CHUNKS
        }
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
    let keep = if kind == Kind::Stream { 1 << 20 } else { 512 };
    let r = client::once(t.port, req, keep).map_err(|e| format!("{}: {e}", t.label))?;
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
    let ok = match t.key.as_str() {
        "f" => model == "gpt-a",
        "b" | "b0" | "bu" | "bn" | "bv" | "c" | "b200" => model == "gpt-a" || model == "gpt-b",
        "t" | "t200" => model == "claude-t",
        _ => model == "rr",
    };
    if !ok {
        return Err(format!("{} {}: upstream received model {model:?}", t.label, kind.label()));
    }
    if r.body_len == 0 || (kind == Kind::Stream && !r.body_head.starts_with(b"data: ")) {
        return Err(format!("{} stream: not SSE: {}", t.label, String::from_utf8_lossy(&r.body_head)));
    }
    if kind == Kind::Stream {
        // Every event arrived (translated ones as OpenAI chunks).
        let events = r.body_head.split(|b| *b == b'\n').filter(|l| l.starts_with(b"data: {")).count();
        if events < t.chunks() as usize || r.body_len > r.body_head.len() {
            return Err(format!("{} stream: {events} events, want at least {}", t.label, t.chunks()));
        }
        if t.key.starts_with('t') && !r.body_head.windows(21).any(|w| w == b"chat.completion.chunk") {
            return Err(format!("{} stream: not translated to OpenAI chunks", t.label));
        }
    }
    if matches!(t.key.as_str(), "b" | "f" | "b200" | "t" | "t200") && r.header("x-model-workers-worker") != Some("rr") {
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

/// The native arm really routes by the body's model: an unknown model gets the fallback 404
/// (Envoy's `direct_response`, never the mock), and `rr` is spread over both weighted
/// clusters (Envoy's per-cluster request counters after 40 requests).
fn check_native(t: &Target) -> Result<String, String> {
    let unknown = Kind::Kb1.body();
    let unknown = String::from_utf8_lossy(&unknown).replace("\"model\":\"rr\"", "\"model\":\"zz\"");
    let req = Request::post_json(t.port, "/v1/chat/completions", &[], unknown.as_bytes());
    let r = client::once(t.port, &req, 512).map_err(|e| format!("{}: {e}", t.label))?;
    if r.status != 404 || r.header("x-mock-model").is_some() {
        return Err(format!("{}: model `zz` got {} (want the fallback route's 404)", t.label, r.status));
    }
    let req = Request::post_json(t.port, "/v1/chat/completions", &[], &Kind::Kb1.body());
    for _ in 0..40 {
        let r = client::once(t.port, &req, 64).map_err(|e| format!("{}: {e}", t.label))?;
        if r.status != 200 {
            return Err(format!("{}: status {}", t.label, r.status));
        }
    }
    let stats =
        envoy_stats(t.admin.unwrap_or(0), &["cluster.up_a.upstream_rq_total", "cluster.up_b.upstream_rq_total"]);
    let n = |k: &str| stats.iter().find(|(s, _)| s == k).map_or(0, |(_, v)| *v);
    let (a, b) = (n("cluster.up_a.upstream_rq_total"), n("cluster.up_b.upstream_rq_total"));
    if a == 0 || b == 0 {
        return Err(format!("{}: weighted clusters not both used (up_a {a}, up_b {b})", t.label));
    }
    Ok(format!("model `zz` → 404 (fallback route); `rr` → up_a {a}, up_b {b} requests"))
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
const PRICED_CALLS: [&str; 17] = [
    "none",
    "set_property",
    "get_property",
    "get_property_missing",
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
/// Also, under `events`, the VM time per SSE event of a 200-event stream through both contexts
/// (`HOSTCALLS_EVENTS`): `untranslated` with that config, `translated` with [`TRANSLATED_CONFIG`].
fn hostcall_profile(root: &Path, wasm: &Path, out: &Path) -> Result<serde_json::Value, String> {
    let run = |config: &str, file: &str, events: Option<&str>| -> Result<serde_json::Value, String> {
        let cfg = out.join(file);
        fs::write(&cfg, config).map_err(|e| e.to_string())?;
        let mut c = Command::new("node");
        c.arg("--no-warnings").arg(root.join("bench/hostcalls.mjs")).arg(wasm).arg(&cfg);
        if let Some(mode) = events {
            c.env("HOSTCALLS_EVENTS", mode);
        }
        let o = c.output().map_err(|e| format!("node: {e}"))?;
        if !o.status.success() {
            return Err(format!("node hostcalls.mjs: {}", String::from_utf8_lossy(&o.stderr)));
        }
        serde_json::from_slice(&o.stdout).map_err(|e| format!("hostcalls.mjs output: {e}"))
    };
    let mut v = run(micro::FILTER_CONFIG, "filter-config.yaml", None)?;
    let events = json!({
        "untranslated": run(micro::FILTER_CONFIG, "filter-config.yaml", Some("openai"))?,
        "translated": run(TRANSLATED_CONFIG, "translated-config.yaml", Some("anthropic"))?,
    });
    if let Some(m) = v.as_object_mut() {
        m.insert("events".into(), events);
    }
    Ok(v)
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
    // The per-event arms' upstream: the same mock with 200 events per stream.
    let long = LONG_STREAM_CHUNKS.to_string();
    let long_mock = if opts.events {
        let (m, p) = procs::start_mock(&mock_bin, &run_dir, "up200", &["--chunks", &long, "--chunk-delay-ms", "0"])?;
        progress!("mock-provider `up200` ({long} events per stream) on 127.0.0.1:{p}");
        Some((m, p))
    } else {
        None
    };
    // (key, label, envoy)
    let mut envoys: Vec<(String, String, procs::Envoy)> = Vec::new();
    let start =
        |name: &str, bootstrap: String| procs::start_envoy(name, &envoy_bin, &run_dir, &bootstrap, opts.concurrency);
    envoys.push(("a".into(), "(a) Envoy".into(), start("envoy-a", procs::envoy_bootstrap(mock_port, None))?));
    envoys.push(("n".into(), "(n) Envoy native".into(), start("envoy-n", procs::native_bootstrap(mock_port))?));
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
        start("envoy-b", procs::generated_bootstrap(&wasm, micro::FILTER_CONFIG, &[("up", mock_port)], &[])?)?,
    ));
    // Ablation of the new plumbing: the generated bootstrap without the upstream filter on
    // the cluster (attempt 1 exactly as (b) prepares it, no per-attempt pass), to price that
    // pass in the same run (1 KB; `--no-split` skips it).
    if opts.split {
        let y = procs::generated_bootstrap(&wasm, micro::FILTER_CONFIG, &[("up", mock_port)], &[])?;
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
    // The same, with the ablation probe's no-op wasm filter as the upstream filter: the price
    // of any wasm upstream filter in Envoy, next to (bu) and (b).
    if opts.split {
        let probe = build_probe(&root, &out)?;
        let y = procs::generated_bootstrap(&wasm, micro::FILTER_CONFIG, &[("up", mock_port)], &[])?;
        let y = y.replace("   # the listener's filter (YAML alias): same config, same VM", "");
        let noop = format!(
            "        - name: envoy.filters.http.wasm\n          typed_config:\n            \"@type\": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm\n            config:\n              name: noop\n              root_id: noop\n              vm_config: {{ vm_id: noop, runtime: envoy.wasm.runtime.v8, code: {{ local: {{ filename: {:?} }} }} }}\n              configuration: {{ \"@type\": type.googleapis.com/google.protobuf.StringValue, value: noop }}\n",
            probe.to_string_lossy()
        );
        let upstream = "        - name: envoy.filters.http.wasm\n          typed_config: *model_workers_filter\n";
        if !y.contains(upstream) {
            return Err("(bn): the generated bootstrap's upstream filter is not where the bench expects it".into());
        }
        let y = y.replace(upstream, &noop);
        envoys.push(("bn".into(), "(bn) no-op wasm upstream filter".into(), start("envoy-bn", y)?));
    }
    // Another build of this filter on the same generated bootstrap (an A/B of two builds in
    // one run, e.g. before and after a change). Opt-in: MODEL_WORKERS_BENCH_VARIANT_WASM=<path>.
    if let Some(other) = std::env::var_os("MODEL_WORKERS_BENCH_VARIANT_WASM").filter(|v| !v.is_empty()) {
        let other = PathBuf::from(other);
        let y = procs::generated_bootstrap(&other, micro::FILTER_CONFIG, &[("up", mock_port)], &[])?;
        envoys.push(("bv".into(), "(bv) variant build".into(), start("envoy-bv", y)?));
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
            procs::generated_bootstrap(&wasm, FAILOVER_CONFIG, &[("up", mock_port), ("down", down_port)], &[])?,
        )?,
    ));
    if let Some((_, p)) = &long_mock {
        let anthropic_key = [("ANTHROPIC_API_KEY", "sk-ant-bench")];
        let translated =
            |port: u16| procs::generated_bootstrap(&wasm, TRANSLATED_CONFIG, &[("up", port)], &anthropic_key);
        envoys.push(("t".into(), "(t) filter, translated".into(), start("envoy-t", translated(mock_port)?)?));
        envoys.push((
            "a200".into(),
            format!("(a) Envoy, {LONG_STREAM_CHUNKS} events"),
            start("envoy-a200", procs::envoy_bootstrap(*p, None))?,
        ));
        envoys.push((
            "b200".into(),
            format!("(b) filter, {LONG_STREAM_CHUNKS} events"),
            start("envoy-b200", procs::generated_bootstrap(&wasm, micro::FILTER_CONFIG, &[("up", *p)], &[])?)?,
        ));
        envoys.push((
            "t200".into(),
            format!("(t) translated, {LONG_STREAM_CHUNKS} events"),
            start("envoy-t200", translated(*p)?)?,
        ));
    }
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
            admin: Some(e.admin_port),
        })
        .collect();
    if let Some(l) = &litellm {
        targets.push(Target {
            key: "c".into(),
            label: "(c) LiteLLM".into(),
            port: l.port,
            pid: l.proc.pid(),
            probe: false,
            admin: None,
        });
    }
    let rss_idle: Vec<Option<(u64, u64)>> = envoys.iter().map(|(_, _, e)| e.proc.rss_kib()).collect();
    std::thread::sleep(Duration::from_millis(100)); // a root tick: the memory gauge is set
    let vm_idle: Vec<Option<u64>> = envoys.iter().map(|(_, _, e)| vm_memory(e.admin_port)).collect();

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
    let mut native_check = String::new();
    if let Some(t) = targets.iter().find(|t| t.key == "n") {
        native_check = check_native(t)?;
        progress!("check {}: {native_check}", t.label);
    }

    // ---- 5. cells, interleaved over targets ------------------------------------------
    let (lat_rounds, thr_rounds) = (opts.lat_rounds, opts.thr_rounds);
    let mut cells: Vec<Vec<Cells>> = vec![vec![Cells::default(); targets.len()]; KINDS.len()];
    for (ki, kind) in KINDS.iter().enumerate() {
        if !opts.kinds.contains(kind) {
            continue;
        }
        for round in 0..lat_rounds {
            for (ti, t) in targets.iter().enumerate().filter(|(_, t)| t.runs(*kind) && !t.events_arm()) {
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
    let vm_after: Vec<Option<u64>> = envoys.iter().map(|(_, _, e)| vm_memory(e.admin_port)).collect();
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
        .enumerate()
        .map(|(i, (k, l, _))| RssRow {
            key: k.clone(),
            label: l.clone(),
            idle: rss_idle.get(i).copied().flatten(),
            after: rss_after.get(i).copied().flatten(),
            vm_idle: vm_idle.get(i).copied().flatten(),
            vm_after: vm_after.get(i).copied().flatten(),
        })
        .chain(litellm.as_ref().map(|_| RssRow {
            key: "c".into(),
            label: "(c) LiteLLM".into(),
            idle: None,
            after: litellm_rss,
            vm_idle: None,
            vm_after: None,
        }))
        .collect();
    // The children of the cells are done: the memory burst runs on its own.
    let litellm_available = litellm.is_some();
    drop(litellm);
    drop(envoys);
    drop(long_mock);
    let burst = if opts.burst {
        progress!(
            "memory burst: {BURST_CONNS} × {} MiB at once, {BURST_ROUNDS} rounds, plain vs filter",
            BURST_BODY >> 20
        );
        match memory_burst(&envoy_bin, &run_dir, &wasm, mock_port) {
            Ok(b) => b,
            Err(e) => {
                progress!("memory burst failed: {e}");
                Vec::new()
            }
        }
    } else {
        Vec::new()
    };
    let _ = mock.alive();
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
        burst: &burst,
        native_check: &native_check,
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
            "long_stream_chunks": LONG_STREAM_CHUNKS,
            "burst": {"conns": BURST_CONNS, "body_bytes": BURST_BODY, "rounds": BURST_ROUNDS,
                      "settle_s": BURST_SETTLE.as_secs_f64()},
        },
        "native_check": native_check,
        "memory_burst": burst.iter().map(BurstArm::to_json).collect::<Vec<_>>(),
        "cells": by_kind,
        "micro": micro,
        "hostcalls": hostcalls,
        "host_call_ns_in_envoy": prices.iter().map(|(k, v)| (k.clone(), json!(v))).collect::<serde_json::Map<_, _>>(),
        "wasm_bytes": wasm_bytes,
        "rss_kib": rss.iter().map(|r| json!({
            "target": r.label, "key": r.key, "idle": r.idle.map(|r| r.0), "after": r.after.map(|r| r.0),
            "hwm": r.after.map(|r| r.1), "vm_memory_bytes_idle": r.vm_idle, "vm_memory_bytes_after": r.vm_after,
        })).collect::<Vec<_>>(),
        "litellm": {"available": litellm_available, "note": litellm_note},
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
    drop(mock);
    Ok(())
}

/// `model_workers.vm.memory_bytes` of an Envoy running the filter: its wasm VMs' linear
/// memory (main thread + workers), or None (no filter, or a build without the gauge).
fn vm_memory(admin_port: u16) -> Option<u64> {
    const GAUGE: &str = "wasmcustom.model_workers.vm.memory_bytes";
    envoy_stats(admin_port, &[GAUGE]).first().map(|(_, v)| *v)
}

/// The generated bootstrap minus its route's `retry_policy` block (None if it has none).
fn without_retry_policy(y: &str) -> Option<String> {
    let lines: Vec<&str> = y.lines().collect();
    let start = lines.iter().position(|l| l.trim() == "retry_policy:")?;
    let indent = lines.get(start)?.len() - lines.get(start)?.trim_start().len();
    let end = lines
        .iter()
        .enumerate()
        .skip(start + 1)
        .find(|(_, l)| !l.trim().is_empty() && l.len() - l.trim_start().len() <= indent)
        .map_or(lines.len(), |(i, _)| i);
    let mut out: Vec<&str> = lines.get(..start)?.to_vec();
    out.extend(lines.get(end..)?);
    Some(out.iter().map(|l| format!("{l}\n")).collect())
}

/// One memory reading of an Envoy.
#[derive(Clone, Debug)]
struct MemPoint {
    when: String,
    /// VmRSS, KiB.
    rss_kib: Option<u64>,
    /// The filter's gauge (bytes).
    vm_bytes: Option<u64>,
    /// Envoy admin `/memory`: `allocated` and `heap_size` of Envoy's own allocator (bytes).
    allocated: Option<u64>,
    heap_size: Option<u64>,
}

struct BurstArm {
    label: String,
    points: Vec<MemPoint>,
    /// Per round: wall time from release to the last answer (s).
    round_s: Vec<f64>,
    ok: u64,
    errors: u64,
    first_error: Option<String>,
}

impl BurstArm {
    fn to_json(&self) -> serde_json::Value {
        json!({
            "target": self.label, "round_s": self.round_s, "ok": self.ok, "errors": self.errors,
            "first_error": self.first_error,
            "points": self.points.iter().map(|p| json!({
                "when": p.when, "rss_kib": p.rss_kib, "vm_memory_bytes": p.vm_bytes,
                "envoy_allocated_bytes": p.allocated, "envoy_heap_size_bytes": p.heap_size,
            })).collect::<Vec<_>>(),
        })
    }
}

fn mem_point(e: &procs::Envoy, when: &str) -> MemPoint {
    let memory: Option<serde_json::Value> =
        client::get(e.admin_port, "/memory").ok().and_then(|t| serde_json::from_slice(&t.body_head).ok());
    let field = |k: &str| memory.as_ref().and_then(|m| m[k].as_str().and_then(|v| v.parse::<u64>().ok()));
    MemPoint {
        when: when.to_string(),
        rss_kib: e.proc.rss_kib().map(|r| r.0),
        vm_bytes: vm_memory(e.admin_port),
        allocated: field("allocated"),
        heap_size: field("heap_size"),
    }
}

/// The memory burst: a fresh plain Envoy and a fresh Envoy + filter (generated bootstrap,
/// round-robin worker), both `--concurrency 1`; `BURST_ROUNDS` × (`BURST_CONNS` requests of
/// `BURST_BODY` bytes at once, on fresh connections), interleaved; memory idle, after each
/// round, and `BURST_SETTLE` after the last.
fn memory_burst(envoy_bin: &Path, run_dir: &Path, wasm: &Path, mock_port: u16) -> Result<Vec<BurstArm>, String> {
    let config = model_workers::config::Config::parse(micro::FILTER_CONFIG, &|_| None).map_err(|e| e.to_string())?;
    if config.settings.max_body_bytes < BURST_BODY {
        return Err(format!("max_body_bytes {} < the burst's body {BURST_BODY}", config.settings.max_body_bytes));
    }
    let generated = procs::generated_bootstrap(wasm, micro::FILTER_CONFIG, &[("up", mock_port)], &[])?;
    let mut arms = vec![
        ("(a) Envoy", procs::envoy_bootstrap(mock_port, None), "envoy-burst-a"),
        ("(b) Envoy + filter", generated.clone(), "envoy-burst-b"),
    ];
    // Opt-in (MODEL_WORKERS_BENCH_BURST_ABLATION=1; ~10 s per round each on 2 cores): the
    // native arm, and the generated bootstrap without the route's retry policy (no failover),
    // to show what the router's copy of each body for a retry costs.
    if std::env::var_os("MODEL_WORKERS_BENCH_BURST_ABLATION").is_some_and(|v| v == "1") {
        arms.insert(1, ("(n) Envoy native", procs::native_bootstrap(mock_port), "envoy-burst-n"));
        if let Some(y) = without_retry_policy(&generated) {
            arms.push(("(b−r) filter, no retry_policy", y, "envoy-burst-b-noretry"));
        }
    }
    let mut envoys = Vec::new();
    for (label, bootstrap, name) in arms {
        envoys.push((label, procs::start_envoy(name, envoy_bin, run_dir, &bootstrap, 1)?));
    }
    std::thread::sleep(Duration::from_millis(200)); // a root tick: the gauge is set
    let mut out: Vec<BurstArm> = envoys
        .iter()
        .map(|(label, e)| BurstArm {
            label: label.to_string(),
            points: vec![mem_point(e, "idle")],
            round_s: Vec::new(),
            ok: 0,
            errors: 0,
            first_error: None,
        })
        .collect();
    let body = chat_body(BURST_BODY, false);
    for round in 1..=BURST_ROUNDS {
        for ((_, e), arm) in envoys.iter().zip(out.iter_mut()) {
            let req = Request::post_json(e.port, "/v1/chat/completions", &[], &body);
            let (answers, took) = client::burst(e.port, &req, BURST_CONNS);
            for a in answers {
                match a {
                    Ok(t) if t.status == 200 => arm.ok += 1,
                    Ok(t) => {
                        arm.errors += 1;
                        arm.first_error.get_or_insert(format!(
                            "status {}: {}",
                            t.status,
                            String::from_utf8_lossy(&t.body_head)
                        ));
                    }
                    Err(err) => {
                        arm.errors += 1;
                        arm.first_error.get_or_insert(err);
                    }
                }
            }
            arm.round_s.push(took.as_secs_f64());
            std::thread::sleep(Duration::from_millis(100)); // a root tick
            arm.points.push(mem_point(e, &format!("after round {round}")));
            progress!("burst {} round {round}: {:.2} s, {} errors", arm.label, took.as_secs_f64(), arm.errors);
        }
    }
    std::thread::sleep(BURST_SETTLE);
    for ((_, e), arm) in envoys.iter().zip(out.iter_mut()) {
        arm.points.push(mem_point(e, &format!("{} s later", BURST_SETTLE.as_secs())));
    }
    Ok(out)
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
    envoy_stats(admin_port, &WANTED)
}

/// Values of Envoy counters/gauges (`/stats` text), those present.
fn envoy_stats(admin_port: u16, wanted: &[&str]) -> Vec<(String, u64)> {
    let text = client::get(admin_port, "/stats").map(|t| String::from_utf8_lossy(&t.body_head).into_owned());
    let text = text.unwrap_or_default();
    wanted
        .iter()
        .filter_map(|name| {
            let prefix = format!("{name}: ");
            text.lines().find_map(|l| l.strip_prefix(&prefix)?.trim().parse().ok()).map(|v| (name.to_string(), v))
        })
        .collect()
}

/// One proxy's memory: (VmRSS, VmHWM) in KiB after start and after all the load; for the
/// filter's Envoys also the VMs' linear memory (`model_workers.vm.memory_bytes`).
struct RssRow {
    key: String,
    label: String,
    idle: Option<(u64, u64)>,
    after: Option<(u64, u64)>,
    vm_idle: Option<u64>,
    vm_after: Option<u64>,
}

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
    burst: &'a [BurstArm],
    /// What the native arm's routing check found.
    native_check: &'a str,
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

fn div(x: Option<f64>, y: Option<f64>) -> Option<f64> {
    match (x, y) {
        (Some(x), Some(y)) if y > 0.0 => Some(x / y),
        _ => None,
    }
}

fn mark(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "✓",
        Some(false) => "✗",
        None => "",
    }
}

/// One of issue 12's targets: what, the measured value, whether it is met.
struct TargetRow {
    what: String,
    measured: String,
    met: Option<bool>,
}

impl TargetRow {
    fn new(what: &str, measured: Option<String>, met: Option<bool>) -> TargetRow {
        TargetRow { what: what.to_string(), measured: measured.unwrap_or_else(|| "–".into()), met }
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
         `--num_workers 1`: {}. Latency at 1 connection, throughput at {} connections; {} \
         latency and {} throughput rounds per cell, interleaved over the arms. Run took \
         {:.0} s; load average at the end: {}.\n",
        nproc(),
        cpu_model(),
        r.opts.concurrency,
        r.litellm_note,
        r.opts.conns,
        r.opts.lat_rounds,
        r.opts.thr_rounds,
        r.runtime.as_secs_f64(),
        loadavg()
    );
    let _ = writeln!(
        md,
        "(n) = Envoy's own C++ body routing: `json_to_metadata` lifts `model` into dynamic \
         metadata, the route matches it and splits over two weighted clusters ({}).\n",
        if r.native_check.is_empty() { "not checked" } else { r.native_check }
    );
    let _ = writeln!(
        md,
        "| request | metric | (a) Envoy | (n) native | (b) Envoy + filter | (c) LiteLLM | n/a | b/a | b/n | b/c | target (issue 12) |"
    );
    let _ = writeln!(md, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    let mut rows: Vec<TargetRow> = Vec::new();
    for (ki, kind) in KINDS.iter().enumerate() {
        let mut lat_rows: Vec<(&str, &str)> = if *kind == Kind::Stream {
            vec![
                ("first_byte_p50_us", "first event p50 @1 conn"),
                ("first_byte_p99_us", "first event p99 @1 conn"),
                ("p50_us", "whole stream p50 @1 conn"),
                ("p99_us", "whole stream p99 @1 conn"),
            ]
        } else {
            vec![("p50_us", "latency p50 @1 conn"), ("p99_us", "latency p99 @1 conn")]
        };
        if *kind != Kind::Stream {
            lat_rows.push(("rps", "throughput @1 conn"));
        }
        let thr = format!("throughput @{} conns", r.opts.conns);
        let cpu = format!("proxy CPU per request @{} conns", r.opts.conns);
        let rows_of_kind: Vec<(&str, bool, &str)> = lat_rows
            .iter()
            .map(|(f, n)| (*f, true, *n))
            .chain([("rps", false, thr.as_str()), ("cpu_us_per_req", false, cpu.as_str())])
            .collect();
        for (field, lat, name) in rows_of_kind {
            let v = |k: &str| get(ki, k, lat, field);
            let (a, n, b, c) = (v("a"), v("n"), v("b"), v("c"));
            let fmt = |x: Option<f64>| match field {
                "rps" => rps(x),
                "cpu_us_per_req" => us_str(x),
                _ => ms(us(x)),
            };
            let (ba, bn) = (div(b, a), div(b, n));
            let tgt = match (*kind, field, lat) {
                (Kind::Kb1, "p50_us", true) => {
                    rows.push(TargetRow::new(
                        "1 KB p50 @1 conn ≤ 1.20 × plain",
                        ba.map(|x| format!("{x:.2} × plain")),
                        ba.map(|x| x <= 1.20),
                    ));
                    format!("b/a ≤ 1.20 {}", mark(ba.map(|x| x <= 1.20)))
                }
                (Kind::Kb1, "rps", false) => {
                    rows.push(TargetRow::new(
                        &format!("1 KB throughput @{} ≥ 0.85 × plain", r.opts.conns),
                        ba.map(|x| format!("{x:.2} × plain")),
                        ba.map(|x| x >= 0.85),
                    ));
                    rows.push(TargetRow::new(
                        &format!("1 KB throughput @{} ≥ native", r.opts.conns),
                        bn.map(|x| format!("{x:.2} × native")),
                        bn.map(|x| x >= 1.0),
                    ));
                    format!("b/a ≥ 0.85 {}, b/n ≥ 1.00 {}", mark(ba.map(|x| x >= 0.85)), mark(bn.map(|x| x >= 1.0)))
                }
                (Kind::Mb1, "rps", _) => {
                    rows.push(TargetRow::new(
                        &format!("1 MB {name} ≥ 0.80 × plain"),
                        ba.map(|x| format!("{x:.2} × plain")),
                        ba.map(|x| x >= 0.80),
                    ));
                    format!("b/a ≥ 0.80 {}", mark(ba.map(|x| x >= 0.80)))
                }
                _ => String::new(),
            };
            let _ = writeln!(
                md,
                "| {} | {name} | {} | {} | {} | {} | {} | {} | {} | {} | {tgt} |",
                kind.label(),
                fmt(a),
                fmt(n),
                fmt(b),
                if has_c { fmt(c) } else { "n/a".into() },
                ratio(n, a),
                ratio(b, a),
                ratio(b, n),
                ratio(b, c),
            );
        }
    }
    let _ =
        writeln!(md, "\n\"@1 conn\" throughput is the latency cells' requests ÷ their window (one request at a time).");
    let targets_at = md.len();
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

    // The opt-in arms (b0, bu, bn, bv), next to a and b: one line each, 1 KB and 1 MB.
    let arms: Vec<&Target> =
        r.targets.iter().filter(|t| matches!(t.key.as_str(), "a" | "b" | "b0" | "bu" | "bn" | "bv")).collect();
    if arms.len() > 2 {
        let n = r.opts.conns;
        let _ = writeln!(md, "\n### Arms next to (a) and (b), same run\n");
        let _ = writeln!(
            md,
            "| arm | 1 KB p50 @1 conn (/ a) | 1 KB req/s @{n} (/ a) | 1 KB CPU/req @{n} | 1 MB req/s @{n} (/ a) | 1 MB CPU/req @{n} |"
        );
        let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|");
        for t in arms {
            let k = t.key.as_str();
            let (p50, p50a) = (get(0, k, true, "p50_us"), get(0, "a", true, "p50_us"));
            let (kb, kba) = (get(0, k, false, "rps"), get(0, "a", false, "rps"));
            let (mb, mba) = (get(1, k, false, "rps"), get(1, "a", false, "rps"));
            let _ = writeln!(
                md,
                "| {} | {} ({}) | {} ({}) | {} | {} ({}) | {} |",
                t.label,
                ms(us(p50)),
                ratio(p50, p50a),
                rps(kb),
                ratio(kb, kba),
                us_str(get(0, k, false, "cpu_us_per_req")),
                rps(mb),
                ratio(mb, mba),
                us_str(get(1, k, false, "cpu_us_per_req")),
            );
        }
    }

    // The upstream pass, split (issue 8's success path): what any wasm upstream filter costs
    // in Envoy, and what this filter's attempt logic adds to it.
    let delta = |x: &str, y: &str, lat: bool, what: &str| match (get(0, x, lat, what), get(0, y, lat, what)) {
        (Some(x), Some(y)) => Some(x - y),
        _ => None,
    };
    if let (Some(pass), Some(any)) =
        (delta("b", "bu", false, "cpu_us_per_req"), delta("bn", "bu", false, "cpu_us_per_req"))
    {
        let signed = |v: Option<f64>| v.map_or("–".into(), |v| format!("{v:+.0} µs"));
        let _ = writeln!(
            md,
            "\n**The upstream pass, split (1 KB):** (b) − (bu) = **{}** of Envoy CPU per request at {} \
             connections ({} p50 at one); of it, any wasm filter in the upstream chain, (bn) − (bu): \
             **{}** ({} p50), and this filter's attempt logic, (b) − (bn): **{}** ({} p50).",
            signed(Some(pass)),
            r.opts.conns,
            signed(delta("b", "bu", true, "p50_us")),
            signed(Some(any)),
            signed(delta("bn", "bu", true, "p50_us")),
            signed(delta("b", "bn", false, "cpu_us_per_req")),
            signed(delta("b", "bn", true, "p50_us")),
        );
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

    // Per SSE event in the VM.
    if r.targets.iter().any(|t| t.key == "b200") {
        let cpu = |k: &str| get(2, k, false, "cpu_us_per_req");
        let (a, b, t) = (cpu("a"), cpu("b"), cpu("t"));
        let (a2, b2, t2) = (cpu("a200"), cpu("b200"), cpu("t200"));
        let sub = |x: Option<f64>, y: Option<f64>| Some(x? - y?);
        let long = f64::from(LONG_STREAM_CHUNKS);
        let extra = f64::from(LONG_STREAM_CHUNKS - STREAM_CHUNKS);
        let per = |x2: Option<f64>| sub(x2, a2).map(|d| d / long);
        let marginal = |x2: Option<f64>, x: Option<f64>| sub(sub(x2, a2), sub(x, a)).map(|d| d / extra);
        let ns = |v: Option<f64>| v.map_or("–".into(), |u| format!("{:.0} ns", u * 1000.0));
        let _ = writeln!(
            md,
            "\n### Streaming: cost per SSE event in the VM (target ≤ 1 µs per event)\n\n\
             Proxy CPU per stream @{} conns, streams of {STREAM_CHUNKS} and {LONG_STREAM_CHUNKS} events \
             (two mocks, `--chunks`, back to back), the 1 KB streaming request; (t) = the filter with \
             one Anthropic model: request translated, every event translated back to OpenAI chunks.\n",
            r.opts.conns
        );
        let _ = writeln!(md, "| | (a) Envoy | (b) filter | (t) translated | b − a | t − a |");
        let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|");
        for (label, (x, y, z)) in [(STREAM_CHUNKS, (a, b, t)), (LONG_STREAM_CHUNKS, (a2, b2, t2))]
            .map(|(n, v)| (format!("CPU per stream, {n} events"), v))
        {
            let _ = writeln!(
                md,
                "| {label} | {} | {} | {} | {} | {} |",
                us_str(x),
                us_str(y),
                us_str(z),
                us_str(sub(y, x)),
                us_str(sub(z, x))
            );
        }
        let _ = writeln!(
            md,
            "| per event: (x{LONG_STREAM_CHUNKS} − a{LONG_STREAM_CHUNKS}) ÷ {LONG_STREAM_CHUNKS} (includes the per-request cost) | | | | {} | {} |",
            ns(per(b2)),
            ns(per(t2))
        );
        let _ = writeln!(
            md,
            "| per event, marginal: ((x{LONG_STREAM_CHUNKS} − a{LONG_STREAM_CHUNKS}) − (x{STREAM_CHUNKS} − a{STREAM_CHUNKS})) ÷ {} | | | | {} | {} |",
            LONG_STREAM_CHUNKS - STREAM_CHUNKS,
            ns(marginal(b2, b)),
            ns(marginal(t2, t))
        );
        // The target's own measure: time in the VM, per event of a 200-event stream, both
        // contexts (downstream and attempt 1's upstream), from the fake-host profile.
        let vm_ns = |k: &str| r.hostcalls.and_then(|h| h["events"][k]["vm_ns_per_event_p50"].as_f64());
        let (vu, vt) = (vm_ns("untranslated"), vm_ns("translated"));
        let ns_of = |v: Option<f64>| v.map_or("–".into(), |n| format!("{n:.0} ns"));
        let _ = writeln!(
            md,
            "| in the VM, per event of a {LONG_STREAM_CHUNKS}-event stream (node's V8, fake host, both contexts) | | | | {} | {} |",
            ns_of(vu),
            ns_of(vt)
        );
        let _ = writeln!(
            md,
            "\nThe marginal rows are what the filter adds to Envoy's CPU per event (the VM time, plus \
             Envoy's side of each callback and of the body copied in and out); the last row is the \
             time inside the VM, which the target bounds."
        );
        for (what, v) in [("untranslated", vu), ("translated (Anthropic)", vt)] {
            rows.push(TargetRow::new(
                &format!("stream, {what}: VM time per event ≤ 1 µs"),
                v.map(|n| format!("{n:.0} ns")),
                v.map(|n| n <= 1000.0),
            ));
        }
    }

    let _ = writeln!(md, "\n### Size and memory\n");
    let _ = writeln!(md, "- model_workers.wasm: {} bytes ({:.0} KiB)\n", r.wasm_bytes, r.wasm_bytes as f64 / 1024.0);
    let _ = writeln!(
        md,
        "| proxy | VmRSS idle (after start) | VmRSS after the load | peak (VmHWM) | wasm VMs' linear memory, idle → after |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---:|");
    let bytes_mib = |b: Option<u64>| b.map_or("–".into(), |b| format!("{:.1} MiB", b as f64 / 1048576.0));
    for row in r.rss {
        let vm = if row.vm_idle.is_some() || row.vm_after.is_some() {
            format!("{} → {}", bytes_mib(row.vm_idle), bytes_mib(row.vm_after))
        } else {
            String::new()
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {vm} |",
            row.label,
            mib(row.idle.map(|x| x.0)),
            mib(row.after.map(|x| x.0)),
            mib(row.after.map(|x| x.1))
        );
    }
    let row = |k: &str| r.rss.iter().find(|x| x.key == k);
    let after = |k: &str| row(k).and_then(|x| x.after).map(|x| x.0 as f64 * 1024.0);
    let idle = |k: &str| row(k).and_then(|x| x.idle).map(|x| x.0 as f64 * 1024.0);
    let over = sub_f(after("b"), after("a"));
    let d_mib = |d: Option<f64>| d.map_or("–".into(), |d| format!("{:+.1} MiB", d / 1048576.0));
    let vm_growth = row("b").and_then(|x| Some(x.vm_after? as f64 - x.vm_idle? as f64));
    let _ = writeln!(
        md,
        "\nRSS after the bench, filter − plain: **{}** (target: filter ≤ plain + 40 MB = 38.1 MiB {}); native − plain: {}.",
        over.map_or("–".into(), |d| format!("{:+.1} MiB", d / 1048576.0)),
        mark(over.map(|d| d <= 40e6)),
        sub_f(after("n"), after("a")).map_or("–".into(), |d| format!("{:+.1} MiB", d / 1048576.0)),
    );
    let _ = writeln!(
        md,
        "Of that: idle, before any load, {} (V8 and the compiled module in the main thread's and the \
         worker's VM; a probe's tiny module: {}); growth under the load: (a) {}, (b) {}, of which the \
         VMs' linear memory {} (the rest is Envoy's own heap: its copies of the bodies, see the burst).",
        d_mib(sub_f(idle("b"), idle("a"))),
        d_mib(sub_f(idle("p-noop"), idle("a"))),
        d_mib(sub_f(after("a"), idle("a"))),
        d_mib(sub_f(after("b"), idle("b"))),
        d_mib(vm_growth),
    );
    rows.push(TargetRow::new(
        "RSS after the bench: filter ≤ plain + 40 MB",
        over.map(|d| format!("{:+.1} MiB", d / 1048576.0)),
        over.map(|d| d <= 40e6),
    ));

    // The memory burst.
    if !r.burst.is_empty() {
        let _ = writeln!(
            md,
            "\n### Memory burst: {BURST_CONNS} concurrent requests × {} MiB bodies, {BURST_ROUNDS} rounds, Envoy `--concurrency 1`\n\n\
             Fresh Envoys (plain, and the generated bootstrap with the round-robin worker), each round \
             {BURST_CONNS} connections released at once, interleaved; readings ~0.1 s after each round and \
             {} s after the last. VmRSS from `/proc`; \"VM linear memory\" = the filter's gauge \
             `model_workers.vm.memory_bytes` (all its VMs: main thread + the worker); \"Envoy heap \
             allocated\" / \"heap size\" = admin `/memory` `allocated` / `heap_size` (Envoy's own \
             allocator, where its buffers of the bodies live: in use now / taken from the OS and \
             kept; V8 and the wasm memory are outside it). With \
             `MODEL_WORKERS_BENCH_BURST_ABLATION=1` also (n) and (b−r) = (b) without the route's \
             `retry_policy` (no failover: shows what the router's retry copy of each body costs).\n",
            BURST_BODY >> 20,
            BURST_SETTLE.as_secs()
        );
        let whens: Vec<String> =
            r.burst.first().map(|a| a.points.iter().map(|p| p.when.clone()).collect()).unwrap_or_default();
        let _ = writeln!(md, "| | {} |", whens.join(" | "));
        let _ = writeln!(md, "|---|{}", "---:|".repeat(whens.len()));
        for arm in r.burst {
            let line = |f: &dyn Fn(&MemPoint) -> String| arm.points.iter().map(f).collect::<Vec<_>>().join(" | ");
            let _ = writeln!(md, "| {}: VmRSS | {} |", arm.label, line(&|p| mib(p.rss_kib)));
            if arm.points.iter().any(|p| p.vm_bytes.is_some()) {
                let _ = writeln!(md, "| {}: VM linear memory | {} |", arm.label, line(&|p| bytes_mib(p.vm_bytes)));
            }
            let _ = writeln!(md, "| {}: Envoy heap allocated | {} |", arm.label, line(&|p| bytes_mib(p.allocated)));
            let _ = writeln!(
                md,
                "| {}: Envoy heap size (taken from the OS) | {} |",
                arm.label,
                line(&|p| bytes_mib(p.heap_size))
            );
        }
        for arm in r.burst {
            let rounds: Vec<String> = arm.round_s.iter().map(|s| format!("{s:.2} s")).collect();
            let _ = writeln!(
                md,
                "\n{}: rounds took {}; {} answers 200, {} errors{}.",
                arm.label,
                rounds.join(", "),
                arm.ok,
                arm.errors,
                arm.first_error.as_deref().map_or(String::new(), |e| format!(" (first: {e})"))
            );
        }
        if let Some(b) = r.burst.iter().find(|a| a.points.iter().any(|p| p.vm_bytes.is_some())) {
            let idle = b.points.first().and_then(|p| p.vm_bytes);
            let last = b.points.last().and_then(|p| p.vm_bytes);
            let bodies = last.map(|v| v as f64 / BURST_BODY as f64);
            let grown = sub_f(last.map(|v| v as f64), idle.map(|v| v as f64)).map(|g| g / BURST_BODY as f64);
            let _ = writeln!(
                md,
                "\nVM linear memory after the burst: **{}** = {} bodies' worth (grown by {} bodies since idle; \
                 target: at most a few bodies' worth, read here as ≤ 3 {}), against {BURST_CONNS} bodies in flight.",
                bytes_mib(last),
                bodies.map_or("–".into(), |x| format!("{x:.1}")),
                grown.map_or("–".into(), |x| format!("{x:.1}")),
                mark(bodies.map(|x| x <= 3.0)),
            );
            rows.push(TargetRow::new(
                &format!(
                    "after the {BURST_CONNS} × {} MiB burst the VM's linear memory is a few bodies' worth (≤ 3)",
                    BURST_BODY >> 20
                ),
                bodies.map(|x| format!("{} = {x:.1} bodies", bytes_mib(last))),
                bodies.map(|x| x <= 3.0),
            ));
        }
    }

    // The targets in one place, after the main table.
    let mut summary = String::from("\n### Issue 12 targets\n\n| target | measured | met |\n|---|---:|:---:|\n");
    for t in &rows {
        let _ = writeln!(summary, "| {} | {} | {} |", t.what, t.measured, mark(t.met));
    }
    md.insert_str(targets_at, &summary);
    md
}

fn sub_f(x: Option<f64>, y: Option<f64>) -> Option<f64> {
    Some(x? - y?)
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
        let b = procs::generated_bootstrap(Path::new("/x.wasm"), micro::FILTER_CONFIG, &[("up", 1234)], &[]).unwrap();
        assert!(b.contains("wasm.model_workers.next"), "{b}");
        assert!(b.contains("retriable_status_codes"));
        assert!(b.contains("envoy.filters.http.upstream_codec"));
        assert!(b.contains("port_value: 1234"));
        assert!(!b.contains("cluster_header"));
        let f = procs::generated_bootstrap(Path::new("/x.wasm"), FAILOVER_CONFIG, &[("up", 1234), ("down", 4321)], &[])
            .unwrap();
        assert!(f.contains("port_value: 4321") && f.contains("port_value: 1234"));
        assert!(f.contains("cooldown_failures: 0"));
        // Both clusters need an address: a missing one is an error, not a silent default.
        assert!(procs::generated_bootstrap(Path::new("/x.wasm"), FAILOVER_CONFIG, &[("up", 1234)], &[]).is_err());
        model_workers::config::Config::parse(FAILOVER_CONFIG, &|_| None).unwrap();
    }

    #[test]
    fn native_arm_routes_on_body_metadata_to_two_weighted_clusters() {
        let n = procs::native_bootstrap(1234);
        assert!(n.contains("envoy.filters.http.json_to_metadata"));
        assert!(n.contains("dynamic_metadata:") && n.contains("string_match: { exact: rr }"));
        assert!(n.contains("weighted_clusters:") && n.contains("name: up_a") && n.contains("name: up_b"));
        assert!(n.contains("direct_response: { status: 404"));
        assert!(!n.contains("envoy.filters.http.wasm"));
        assert_eq!(n.matches("port_value: 1234").count(), 2);
    }

    #[test]
    fn burst_and_translated_arms_fit_the_generated_config() {
        let c = model_workers::config::Config::parse(micro::FILTER_CONFIG, &|_| None).unwrap();
        assert!(c.settings.max_body_bytes >= BURST_BODY, "the burst's bodies must pass the filter");
        let env = |k: &str| (k == "ANTHROPIC_API_KEY").then(|| "sk".to_string());
        model_workers::config::Config::parse(TRANSLATED_CONFIG, &env).unwrap();
        assert!(EVENT_ARMS.iter().all(|k| k.starts_with('t') || k.ends_with("200")));
    }

    #[test]
    fn micro_config_parses() {
        let g = procs::generated_bootstrap(Path::new("/x.wasm"), micro::FILTER_CONFIG, &[("up", 1234)], &[]).unwrap();
        let r = without_retry_policy(&g).unwrap();
        assert!(g.contains("retriable_status_codes") && !r.contains("retriable_status_codes"));
        assert!(!r.contains("retry_policy") && !r.contains("retry_back_off"));
        assert!(r.contains("request_headers_to_remove") && r.contains("envoy.filters.http.router"));
        assert!(without_retry_policy("a: 1\n").is_none());
        model_workers::config::Config::parse(micro::FILTER_CONFIG, &|_| None).unwrap();
        model_workers::config::Config::parse(micro::POLICY_CONFIG, &|_| None).unwrap();
        model_workers::config::Config::parse(micro::STICKY_CONFIG, &|_| None).unwrap();
    }
}
