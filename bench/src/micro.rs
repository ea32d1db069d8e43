//! Native micro-benchmark of the filter's pure per-request work: `request::route` (parse the
//! body, find `model`, resolve the worker, draw a round-robin ticket) and
//! `request::plan_attempt` (rewrite `model` into a new body), as `on_request_body` calls them.
//! Allocations are counted with a counting global allocator. Plus the Anthropic translators
//! an attempt on an `anthropic:` model runs: `translate::request_to_anthropic` on the same
//! kind of body, and `StreamTranslator::push` per SSE event.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use model_workers::config::{Config, ModelId};
use model_workers::counter::LocalTickets;
use model_workers::request;
use model_workers::translate::{request_to_anthropic, StreamTranslator};

pub struct Counting;

static ON: AtomicBool = AtomicBool::new(false);
static ALLOCS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

// SAFETY: delegates to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if ON.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
            BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
        }
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if ON.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
            BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
        }
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if ON.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
            BYTES.fetch_add(new_size as u64, Ordering::Relaxed);
        }
        System.realloc(ptr, layout, new_size)
    }
}

/// Counts allocations made by `f` (single-threaded use only).
fn counted<T>(f: impl FnOnce() -> T) -> (T, u64, u64) {
    ALLOCS.store(0, Ordering::Relaxed);
    BYTES.store(0, Ordering::Relaxed);
    ON.store(true, Ordering::SeqCst);
    let r = f();
    ON.store(false, Ordering::SeqCst);
    (r, ALLOCS.load(Ordering::Relaxed), BYTES.load(Ordering::Relaxed))
}

/// The filter configuration cell (b) runs: a round-robin worker over two models that the
/// same upstream cluster serves.
pub const FILTER_CONFIG: &str = "models:
  - from: openai:gpt-a
    name: ma
    params:
      cluster: up
  - from: openai:gpt-b
    name: mb
    params:
      cluster: up
workers:
  - name: rr
    type: load_balance
    description: round robin over two models on the same upstream
    load_balance:
      routing:
        - from: ma
        - from: mb
";

#[derive(Debug, Clone, serde::Serialize)]
pub struct Stat {
    pub what: String,
    pub body_bytes: usize,
    pub iters: usize,
    pub min_us: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    /// Heap allocations per iteration (and bytes requested).
    pub allocs: u64,
    pub alloc_bytes: u64,
}

fn stat(what: &str, body_bytes: usize, mut ns: Vec<u64>, allocs: u64, bytes: u64) -> Stat {
    ns.sort_unstable();
    let pick = |q: f64| {
        let i = ((q * ns.len() as f64).ceil() as usize).clamp(1, ns.len().max(1)) - 1;
        ns.get(i).copied().unwrap_or(0) as f64 / 1000.0
    };
    Stat {
        what: what.to_string(),
        body_bytes,
        iters: ns.len(),
        min_us: ns.first().copied().unwrap_or(0) as f64 / 1000.0,
        p50_us: pick(0.5),
        p99_us: pick(0.99),
        allocs,
        alloc_bytes: bytes,
    }
}

/// Times `f` repeatedly for about `budget` (at least 20, at most `max` iterations).
fn time_loop(budget: Duration, max: usize, mut f: impl FnMut()) -> Vec<u64> {
    for _ in 0..3 {
        f();
    }
    let mut ns = Vec::with_capacity(max.min(100_000));
    let end = Instant::now() + budget;
    while ns.len() < max && (ns.len() < 20 || Instant::now() < end) {
        let t = Instant::now();
        f();
        ns.push(u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX));
    }
    ns
}

pub fn run(bodies: &[(&str, Vec<u8>)], budget: Duration) -> Result<Vec<Stat>, String> {
    let config = Config::parse(FILTER_CONFIG, &|_| None).map_err(|e| format!("config: {e}"))?;
    let cooling = |_: ModelId| false;
    let view = request::View { cooling: &cooling, load: &[], random: 0 };
    let mut out = Vec::new();
    for (label, body) in bodies {
        let mut tickets = LocalTickets::default();
        // Check once that this is the work the filter does.
        let routed = request::route(&config, body, &[], &mut tickets, &view)
            .map_err(|e| format!("route({label}): {}", e.code))?;
        let first = *routed.chain.first().ok_or("empty chain")?;
        let plan =
            request::plan_attempt(&config, first, body.as_slice(), &routed.scan).ok_or("plan_attempt returned None")?;
        if plan.body_len + 2 != body.len() + plan.model.model_id.len() {
            return Err(format!("unexpected rewrite size {} for a {} B body", plan.body_len, body.len()));
        }

        let one = |tickets: &mut LocalTickets| {
            let r = request::route(&config, body, &[], tickets, &view).ok();
            let r = black_box(r);
            if let Some(r) = r {
                if let Some(m) = r.chain.first() {
                    let p = request::plan_attempt(&config, *m, body.as_slice(), &r.scan);
                    black_box(p.map(|p| p.body_len));
                }
            }
        };
        let max = if body.len() > 100_000 { 2_000 } else { 200_000 };
        let ((), a, b) = counted(|| one(&mut tickets));
        let ns = time_loop(budget, max, || one(&mut tickets));
        out.push(stat(&format!("route + plan_attempt ({label})"), body.len(), ns, a, b));

        let (_, a, b) = counted(|| black_box(request::route(&config, body, &[], &mut tickets, &view).ok()));
        let ns = time_loop(budget / 2, max, || {
            black_box(request::route(&config, body, &[], &mut tickets, &view).ok());
        });
        out.push(stat(&format!("  route only ({label})"), body.len(), ns, a, b));

        let (_, a, b) = counted(|| {
            black_box(request::plan_attempt(&config, first, body.as_slice(), &routed.scan).map(|p| p.body_len))
        });
        let ns = time_loop(budget / 2, max, || {
            black_box(request::plan_attempt(&config, first, body.as_slice(), &routed.scan).map(|p| p.body_len));
        });
        out.push(stat(&format!("  plan_attempt only ({label})"), body.len(), ns, a, b));

        // Reference points for the same body: the cheapest possible validating JSON pass
        // (serde, no tree) and one memcpy of the body.
        let (_, a, b) = counted(|| black_box(serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok()));
        let ns = time_loop(budget / 2, max, || {
            black_box(serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok());
        });
        out.push(stat(&format!("  ref: validate JSON, no tree ({label})"), body.len(), ns, a, b));
        let (_, a, b) = counted(|| black_box(body.to_vec().len()));
        let ns = time_loop(budget / 4, max, || {
            black_box(black_box(body).to_vec());
        });
        out.push(stat(&format!("  ref: one copy ({label})"), body.len(), ns, a, b));
    }
    Ok(out)
}

// ---- per-policy cost --------------------------------------------------------------------------

/// Workers of every strategy over the same four models (no sticky worker: a config with one
/// makes every request's scan also look for its body field, measured separately below).
pub const POLICY_CONFIG: &str = "models:
  - { from: openai:gpt-a, name: ma, params: { cluster: up, cost: 3 } }
  - { from: openai:gpt-b, name: mb, params: { cluster: up, cost: 0.5 } }
  - { from: openai:gpt-c, name: mc, params: { cluster: up, cost: 1 } }
  - { from: openai:gpt-d, name: md, params: { cluster: up, cost: 15 } }
workers:
  - name: rr
    load_balance: { routing: [{ from: ma }, { from: mb }, { from: mc }, { from: md }] }
  - name: fallback
    load_balance: { routing: [{ from: ma, order: 1 }, { from: mb, order: 2 }, { from: mc, order: 3 }, { from: md, order: 4 }] }
  - name: weighted
    load_balance: { routing: [{ from: ma, weight: 0.4 }, { from: mb, weight: 0.3 }, { from: mc, weight: 0.2 }, { from: md, weight: 0.1 }] }
  - name: priority
    load_balance: { routing: [{ from: ma, priority: 100, weight: 3 }, { from: mb, priority: 100, weight: 1 }, { from: mc, priority: 50 }, { from: md, priority: 50 }] }
  - name: cost
    load_balance: { strategy: cost, routing: [{ from: ma }, { from: mb }, { from: mc }, { from: md }] }
  - name: latency
    load_balance: { strategy: latency, routing: [{ from: ma }, { from: mb }, { from: mc }, { from: md }] }
  - name: least_busy
    load_balance: { strategy: least_busy, routing: [{ from: ma }, { from: mb }, { from: mc }, { from: md }] }
";

/// The same models with sticky workers (body `user`, and a header over weights).
pub const STICKY_CONFIG: &str = "models:
  - { from: openai:gpt-a, name: ma, params: { cluster: up } }
  - { from: openai:gpt-b, name: mb, params: { cluster: up } }
  - { from: openai:gpt-c, name: mc, params: { cluster: up } }
  - { from: openai:gpt-d, name: md, params: { cluster: up } }
workers:
  - name: rr
    load_balance: { routing: [{ from: ma }, { from: mb }, { from: mc }, { from: md }] }
  - name: sticky-user
    load_balance: { sticky: {}, routing: [{ from: ma }, { from: mb }, { from: mc }, { from: md }] }
  - name: sticky-header
    load_balance:
      sticky: { header: x-session-id }
      routing: [{ from: ma, weight: 4 }, { from: mb, weight: 3 }, { from: mc, weight: 2 }, { from: md, weight: 1 }]
";

/// `body` (the bench's chat body, ending in `"model":"rr"}`) naming `worker` instead, plus a
/// top-level `user` when `user` is given.
fn body_for(body: &[u8], worker: &str, user: Option<&str>) -> Result<Vec<u8>, String> {
    let tail = br#""model":"rr"}"#;
    let head = body.strip_suffix(tail.as_slice()).ok_or("the bench body must end with \"model\":\"rr\"}")?;
    let mut out = head.to_vec();
    out.extend_from_slice(format!("\"model\":\"{worker}\"").as_bytes());
    if let Some(u) = user {
        out.extend_from_slice(format!(",\"user\":\"{u}\"").as_bytes());
    }
    out.push(b'}');
    Ok(out)
}

/// Times `batch` calls of `f` per sample; per-call nanoseconds.
fn time_batch(budget: Duration, batch: u32, mut f: impl FnMut()) -> Vec<u64> {
    for _ in 0..batch {
        f();
    }
    let mut ns = Vec::new();
    let end = Instant::now() + budget;
    while ns.len() < 20 || (Instant::now() < end && ns.len() < 100_000) {
        let t = Instant::now();
        for _ in 0..batch {
            f();
        }
        ns.push(u64::try_from(t.elapsed().as_nanos() / u128::from(batch)).unwrap_or(u64::MAX));
    }
    ns
}

/// Per-request cost of each policy: the whole `request::route` on a 1 KB body, and the
/// policy's `candidates` alone (healthy, and with one model cooling); plus what a sticky
/// worker's body field adds to the scan of every request (1 KB and 1 MB bodies).
pub fn run_policies(kb1: &[u8], mb1: &[u8], budget: Duration) -> Result<Vec<Stat>, String> {
    use model_workers::config::Target;
    use model_workers::policy::{Load, Pick};

    let policies = Config::parse(POLICY_CONFIG, &|_| None).map_err(|e| format!("config: {e}"))?;
    let sticky = Config::parse(STICKY_CONFIG, &|_| None).map_err(|e| format!("config: {e}"))?;
    let healthy = |_: ModelId| false;
    let one_cooling = |m: ModelId| m == ModelId(0);
    // Every model measured and busy (what latency and least-busy read).
    let load: Vec<Load> =
        (0..4u32).map(|i| Load { ewma_ms: 400 - 90 * i, samples: 100, in_flight: 3 + (i * 5) % 7 }).collect();
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut random = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let view = request::View { cooling: &healthy, load: &load, random: 0 };
    let mut out = Vec::new();
    let cases: [(&Config, &str, Option<&str>, bool); 9] = [
        (&policies, "rr", None, false),
        (&policies, "fallback", None, false),
        (&policies, "weighted", None, false),
        (&policies, "priority", None, false),
        (&policies, "cost", None, false),
        (&policies, "latency", None, false),
        (&policies, "least_busy", None, false),
        (&sticky, "sticky-user", Some("user-1234"), false),
        (&sticky, "sticky-header", None, true),
    ];
    for (config, worker, user, header) in cases {
        let body = body_for(kb1, worker, user)?;
        let headers: Vec<Option<String>> = if header { vec![Some("session-1234".into())] } else { Vec::new() };
        let mut tickets = LocalTickets::default();
        let routed = request::route(config, &body, &headers, &mut tickets, &view)
            .map_err(|e| format!("route({worker}): {}", e.code))?;
        if routed.chain.len() != 4 {
            return Err(format!("{worker}: chain {:?}", routed.chain));
        }
        let (_, a, b) = counted(|| black_box(request::route(config, &body, &headers, &mut tickets, &view).ok()));
        let ns = time_loop(budget / 2, 200_000, || {
            let v = request::View { random: random(), ..view };
            black_box(request::route(config, &body, &headers, &mut tickets, &v).ok());
        });
        out.push(stat(&format!("route, {worker} (1 KB)"), body.len(), ns, a, b));

        let Some(Target::Worker(w)) = config.resolve(worker) else { return Err(format!("no worker {worker}")) };
        let policy = &config.worker(w).ok_or("no worker")?.policy;
        let session = if user.is_some() || header { Some("session-1234") } else { None };
        for (label, cooling) in [("", &healthy as &dyn Fn(ModelId) -> bool), (", 1 cooling", &one_cooling)] {
            let mut t = 0u64;
            let mut one = || {
                t = t.wrapping_add(1);
                let r = random();
                black_box(policy.candidates(&Pick { ticket: t, session, load: &load, random: r }, cooling));
            };
            let (_, a, b) = counted(&mut one);
            let ns = time_batch(budget / 4, 200, one);
            out.push(stat(&format!("  candidates, {worker}{label}"), 0, ns, a, b));
        }
    }

    // The shared per-model table: what routing decodes once per request, and one attempt's
    // read-modify-write (decode, change one entry, encode), for 4 and 64 models.
    for n in [4usize, 64] {
        use model_workers::state::{ModelState, Table};
        let table = Table {
            entries: (0..n)
                .map(|i| {
                    (format!("model-{i}"), ModelState { ewma_ms: 120, samples: 9, in_flight: 2, ..Default::default() })
                })
                .collect(),
        };
        let bytes = table.encode();
        let (_, a, b) = counted(|| black_box(Table::decode(Some(&bytes))));
        let ns = time_batch(budget / 4, 100, || {
            black_box(Table::decode(Some(black_box(&bytes))));
        });
        out.push(stat(&format!("state table decode ({n} models)"), bytes.len(), ns, a, b));
        let update = || {
            let mut t = Table::decode(Some(black_box(&bytes)));
            if let Some(s) = t.entry("model-1", &|_| true) {
                s.in_flight += 1;
            }
            black_box(t.encode());
        };
        let (_, a, b) = counted(update);
        let ns = time_batch(budget / 4, 100, update);
        out.push(stat(&format!("state table update ({n} models)"), bytes.len(), ns, a, b));
    }

    // The scan of every request under a config with a sticky body field, against the plain
    // scan: interleaved rounds, so background load hits both alike.
    let fields = vec!["user".to_string()];
    for (label, body) in [("1 KB", kb1), ("1 MB", mb1)] {
        let max = if body.len() > 100_000 { 500 } else { 50_000 };
        let (mut plain, mut with) = (Vec::new(), Vec::new());
        for _ in 0..4 {
            plain.extend(time_loop(budget / 8, max, || {
                black_box(model_workers::body::scan(body).ok());
            }));
            with.extend(time_loop(budget / 8, max, || {
                black_box(model_workers::body::scan_fields(body, &fields).ok());
            }));
        }
        let (_, a, b) = counted(|| black_box(model_workers::body::scan(body).ok()));
        out.push(stat(&format!("scan, no field ({label})"), body.len(), plain, a, b));
        let (_, a, b) = counted(|| black_box(model_workers::body::scan_fields(body, &fields).ok()));
        out.push(stat(&format!("scan_fields [user] ({label})"), body.len(), with, a, b));
    }
    Ok(out)
}

/// Per-model messages (`system_prompt` + one appended message): `inject::add_messages` on
/// each body, what an attempt to such a model adds to the `model` rewrite.
pub fn inject(bodies: &[(&str, Vec<u8>)], budget: Duration) -> Result<Vec<Stat>, String> {
    use model_workers::inject::{add_messages, ModelMessages};
    let m = ModelMessages::new(Some("Be brief."), &[("user".into(), "Answer in French.".into())]);
    let mut out = Vec::new();
    for (label, body) in bodies {
        add_messages(body, &m).ok_or_else(|| format!("inject({label}): the body has no messages array"))?;
        let max = if body.len() > 100_000 { 5_000 } else { 200_000 };
        let (_, a, b) = counted(|| black_box(add_messages(body, &m).map(|v| v.len())));
        let ns = time_loop(budget, max, || {
            black_box(add_messages(black_box(body), &m).map(|v| v.len()));
        });
        out.push(stat(&format!("inject::add_messages ({label})"), body.len(), ns, a, b));
    }
    Ok(out)
}

/// The Anthropic translators: `request_to_anthropic` on each OpenAI body, and
/// `StreamTranslator::push` per event (one `text_delta` event on a started stream, and a whole
/// recorded-style stream fed event by event, per event).
pub fn translate(bodies: &[(&str, Vec<u8>)], budget: Duration) -> Result<Vec<Stat>, String> {
    let mut out = Vec::new();
    for (label, body) in bodies {
        request_to_anthropic(body, "claude-sonnet-4-5", 1024)
            .map_err(|e| format!("request_to_anthropic({label}): {e}"))?;
        let max = if body.len() > 100_000 { 5_000 } else { 200_000 };
        let (_, a, b) = counted(|| black_box(request_to_anthropic(body, "claude-sonnet-4-5", 1024).map(|v| v.len())));
        let ns = time_loop(budget, max, || {
            black_box(request_to_anthropic(black_box(body), "claude-sonnet-4-5", 1024).map(|v| v.len()).ok());
        });
        out.push(stat(&format!("translate::request_to_anthropic ({label})"), body.len(), ns, a, b));
    }

    let start = concat!(
        "event: message_start\n",
        "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_01TmX\",\"type\":\"message\",",
        "\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5-20250929\",\"content\":[],\"stop_reason\":null,",
        "\"stop_sequence\":null,\"usage\":{\"input_tokens\":472,\"output_tokens\":2}}}\n\n",
        "event: content_block_start\n",
        "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
    );
    let text = concat!(
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",",
        "\"text\":\" the quick brown fox jumps over the lazy dog\"}}\n\n",
    );
    let tool = concat!(
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
        "event: content_block_start\n",
        "data: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",",
        "\"id\":\"toolu_01A\",\"name\":\"get_weather\",\"input\":{}}}\n\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",",
        "\"partial_json\":\"{\\\"city\\\": \\\"Paris\\\"}\"}}\n\n",
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}\n\n",
        "event: message_delta\n",
        "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},",
        "\"usage\":{\"output_tokens\":89}}\n\n",
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
    );

    // One text_delta event on a started stream (the steady state).
    let mut t = StreamTranslator::new(true);
    if t.push(start.as_bytes()).is_empty() || t.push(text.as_bytes()).is_empty() {
        return Err("StreamTranslator produced nothing".into());
    }
    let (_, a, b) = counted(|| black_box(t.push(black_box(text.as_bytes())).len()));
    let ns = time_loop(budget / 2, 200_000, || {
        black_box(t.push(black_box(text.as_bytes())));
    });
    out.push(stat("StreamTranslator::push (one text_delta event)", text.len(), ns, a, b));

    // A whole stream, one push per event: 2 + 100 text deltas + 7 events.
    let mut events: Vec<&str> = Vec::new();
    events.extend(start.split_inclusive("\n\n"));
    events.extend(std::iter::repeat(text).take(100));
    events.extend(tool.split_inclusive("\n\n"));
    let n = events.len();
    let bytes: usize = events.iter().map(|e| e.len()).sum();
    let whole = |events: &[&str]| {
        let mut t = StreamTranslator::new(true);
        let mut len = 0;
        for e in events {
            len += t.push(e.as_bytes()).len();
        }
        len + t.finish().len()
    };
    let (_, a, b) = counted(|| black_box(whole(&events)));
    let ns: Vec<u64> = time_loop(budget / 2, 50_000, || {
        black_box(whole(black_box(&events)));
    })
    .into_iter()
    .map(|t| t / n as u64)
    .collect();
    out.push(stat(
        &format!("StreamTranslator::push ({n}-event stream, per event)"),
        bytes / n,
        ns,
        a / n as u64,
        b / n as u64,
    ));
    Ok(out)
}
