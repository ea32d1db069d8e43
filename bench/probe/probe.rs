//! A dependency-free proxy-wasm 0.2.1 filter for the benchmark's ablation cells
//! (`bench --ablation`): it does a fixed slice of what model-workers does, so the cost of the
//! real filter can be split into "a wasm filter exists", "headers paused + body buffered",
//! "body copied into the VM" and "body copied back". Built by the bench with
//!
//!   rustc --edition 2021 --target wasm32-wasip1 --crate-type cdylib -C opt-level=3 probe.rs
//!
//! The plugin configuration is the mode: `noop` | `pause` | `read` | `rewrite`
//! (each includes the previous one's work), or `cost`: a request carrying
//! `x-probe-cost: <host call>` and `x-probe-n: <N>` makes that host call N times in a loop
//! (headers paused, at the end of the body) and gets the mean ns per call back in the
//! response header `x-probe-ns` — the in-Envoy price of each host call the filter makes.
#![allow(clippy::missing_safety_doc)]

use std::cell::RefCell;
use std::collections::HashMap;
use std::ptr::null_mut;
use std::sync::atomic::{AtomicU32, AtomicU8, Ordering};

static MODE: AtomicU8 = AtomicU8::new(0);
const NOOP: u8 = 0;
const PAUSE: u8 = 1;
const READ: u8 = 2;
const REWRITE: u8 = 3;
const COST: u8 = 4;
static COUNTER: AtomicU32 = AtomicU32::new(0);
static HISTOGRAM: AtomicU32 = AtomicU32::new(0);
const RESPONSE_HEADERS: u32 = 2;

thread_local! {
    /// context id → (call, n) requested, then ns per call measured.
    static WANT: RefCell<HashMap<u32, (String, u32)>> = RefCell::new(HashMap::new());
    static GOT: RefCell<HashMap<u32, f64>> = RefCell::new(HashMap::new());
}

const CONTINUE: u32 = 0;
const STOP: u32 = 1;
const REQUEST_BODY: u32 = 0;
const PLUGIN_CONFIGURATION: u32 = 7;
const REQUEST_HEADERS: u32 = 0;

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_get_buffer_bytes(t: u32, start: usize, max: usize, rp: *mut *mut u8, rl: *mut usize) -> u32;
    fn proxy_set_buffer_bytes(t: u32, start: usize, size: usize, p: *const u8, l: usize) -> u32;
    fn proxy_replace_header_map_value(t: u32, kp: *const u8, kl: usize, vp: *const u8, vl: usize) -> u32;
    fn proxy_get_header_map_value(t: u32, kp: *const u8, kl: usize, rp: *mut *mut u8, rl: *mut usize) -> u32;
    fn proxy_get_header_map_pairs(t: u32, rp: *mut *mut u8, rl: *mut usize) -> u32;
    fn proxy_remove_header_map_value(t: u32, kp: *const u8, kl: usize) -> u32;
    fn proxy_get_shared_data(kp: *const u8, kl: usize, rp: *mut *mut u8, rl: *mut usize, cas: *mut u32) -> u32;
    fn proxy_set_shared_data(kp: *const u8, kl: usize, vp: *const u8, vl: usize, cas: u32) -> u32;
    fn proxy_define_metric(t: u32, np: *const u8, nl: usize, id: *mut u32) -> u32;
    fn proxy_increment_metric(id: u32, by: i64) -> u32;
    fn proxy_record_metric(id: u32, v: u64) -> u32;
    fn proxy_log(level: u32, mp: *const u8, ml: usize) -> u32;
    fn proxy_get_current_time_nanoseconds(t: *mut u64) -> u32;
    fn proxy_get_property(pp: *const u8, pl: usize, rp: *mut *mut u8, rl: *mut usize) -> u32;
    fn proxy_set_property(pp: *const u8, pl: usize, vp: *const u8, vl: usize) -> u32;
    fn proxy_call_foreign_function(
        np: *const u8,
        nl: usize,
        ap: *const u8,
        al: usize,
        rp: *mut *mut u8,
        rl: *mut usize,
    ) -> u32;
}

/// Frees a buffer the host allocated through `proxy_on_memory_allocate`.
unsafe fn free(p: *mut u8, l: usize) {
    if !p.is_null() {
        drop(Vec::from_raw_parts(p, l, l));
    }
}

fn now_ns() -> u64 {
    let mut t = 0u64;
    // SAFETY: writes one u64.
    unsafe { proxy_get_current_time_nanoseconds(&mut t) };
    t
}

fn header(map: u32, k: &str) -> Option<String> {
    let (mut p, mut l) = (null_mut(), 0usize);
    // SAFETY: see get_buffer.
    unsafe {
        if proxy_get_header_map_value(map, k.as_ptr(), k.len(), &mut p, &mut l) != 0 || p.is_null() {
            return None;
        }
        Some(String::from_utf8_lossy(&Vec::from_raw_parts(p, l, l)).into_owned())
    }
}

/// One host call of the kind the filter makes (same arguments shape).
#[allow(clippy::needless_pass_by_value)]
const PROP: &str = "model_workers.probe_plan";
const PLAN: &str = "v1 1024 13 20 0 60000\npath /v1/chat/completions\nauthority 127.0.0.1:10000\na 0 1 ma\na 0 1 mb\n";

fn one_call(kind: &str, body: &[u8], size: usize) {
    let (mut p, mut l) = (null_mut(), 0usize);
    const MSG: &str = "model-workers[42]: `rr` → model `ma` (cluster `up`)";
    // SAFETY: every pointer is to a live local or static buffer; returned buffers are freed.
    unsafe {
        match kind {
            "get_header_map_value" => {
                proxy_get_header_map_value(REQUEST_HEADERS, ":path".as_ptr(), 5, &mut p, &mut l);
                free(p, l);
            }
            "get_header_map_pairs" => {
                proxy_get_header_map_pairs(REQUEST_HEADERS, &mut p, &mut l);
                free(p, l);
            }
            "replace_header_map_value" => {
                let (k, v) = ("x-model-workers-cluster", "up");
                proxy_replace_header_map_value(REQUEST_HEADERS, k.as_ptr(), k.len(), v.as_ptr(), v.len());
            }
            "remove_header_map_value" => {
                let k = "transfer-encoding";
                proxy_remove_header_map_value(REQUEST_HEADERS, k.as_ptr(), k.len());
            }
            "get_shared_data" => {
                let (k, mut cas) = ("model_workers.probe", 0u32);
                proxy_get_shared_data(k.as_ptr(), k.len(), &mut p, &mut l, &mut cas);
                free(p, l);
            }
            "set_shared_data" => {
                let (k, v) = ("model_workers.probe", 7u64.to_le_bytes());
                proxy_set_shared_data(k.as_ptr(), k.len(), v.as_ptr(), v.len(), 0);
            }
            "increment_metric" => {
                proxy_increment_metric(COUNTER.load(Ordering::Relaxed), 1);
            }
            "record_metric" => {
                proxy_record_metric(HISTOGRAM.load(Ordering::Relaxed), 5);
            }
            "log_debug" => {
                let m = format!("{MSG} {size}");
                proxy_log(1, m.as_ptr(), m.len());
            }
            "get_current_time_nanoseconds" => {
                std::hint::black_box(now_ns());
            }
            "clear_route_cache" => {
                let f = "clear_route_cache";
                proxy_call_foreign_function(f.as_ptr(), f.len(), std::ptr::null(), 0, &mut p, &mut l);
                free(p, l);
            }
            // Filter state as the filter uses it: a ~150-byte plan written once, read back.
            "set_property" => {
                let v = PLAN.as_bytes();
                proxy_set_property(PROP.as_ptr(), PROP.len(), v.as_ptr(), v.len());
            }
            "get_property" => {
                proxy_get_property(PROP.as_ptr(), PROP.len(), &mut p, &mut l);
                free(p, l);
            }
            "get_property_missing" => {
                let k = "model_workers.probe_missing";
                proxy_get_property(k.as_ptr(), k.len(), &mut p, &mut l);
                free(p, l);
            }
            "get_buffer_bytes" => {
                proxy_get_buffer_bytes(REQUEST_BODY, 0, size, &mut p, &mut l);
                free(p, l);
            }
            "set_buffer_bytes" => {
                proxy_set_buffer_bytes(REQUEST_BODY, 0, size, body.as_ptr(), body.len());
            }
            _ => {
                std::hint::black_box(kind);
            }
        }
    }
}

fn get_buffer(t: u32, size: usize) -> Vec<u8> {
    let mut p: *mut u8 = std::ptr::null_mut();
    let mut l: usize = 0;
    // SAFETY: the host writes a pointer it got from proxy_on_memory_allocate (a Vec with
    // capacity == length) and that length.
    unsafe {
        if proxy_get_buffer_bytes(t, 0, size, &mut p, &mut l) != 0 || p.is_null() {
            return Vec::new();
        }
        Vec::from_raw_parts(p, l, l)
    }
}

#[no_mangle]
pub extern "C" fn proxy_abi_version_0_2_1() {}

#[no_mangle]
pub extern "C" fn proxy_on_memory_allocate(size: usize) -> *mut u8 {
    let mut v: Vec<u8> = Vec::with_capacity(size);
    let p = v.as_mut_ptr();
    std::mem::forget(v);
    p
}

#[no_mangle]
pub extern "C" fn proxy_on_context_create(_ctx: u32, _parent: u32) {}

#[no_mangle]
pub extern "C" fn proxy_on_vm_start(_ctx: u32, _size: usize) -> u32 {
    1
}

#[no_mangle]
pub extern "C" fn proxy_on_configure(_ctx: u32, size: usize) -> u32 {
    let cfg = get_buffer(PLUGIN_CONFIGURATION, size);
    let mode = match String::from_utf8_lossy(&cfg).trim() {
        "noop" => NOOP,
        "pause" => PAUSE,
        "read" => READ,
        "rewrite" => REWRITE,
        "cost" => COST,
        _ => return 0,
    };
    MODE.store(mode, Ordering::Relaxed);
    let (mut c, mut h) = (0u32, 0u32);
    let (cn, hn) = ("model_workers_probe.counter", "model_workers_probe.histogram");
    // SAFETY: writes one u32 each.
    unsafe {
        proxy_define_metric(0, cn.as_ptr(), cn.len(), &mut c);
        proxy_define_metric(2, hn.as_ptr(), hn.len(), &mut h);
    }
    COUNTER.store(c, Ordering::Relaxed);
    HISTOGRAM.store(h, Ordering::Relaxed);
    let v = 0u64.to_le_bytes();
    let k = "model_workers.probe";
    // SAFETY: plain pointers.
    unsafe { proxy_set_shared_data(k.as_ptr(), k.len(), v.as_ptr(), v.len(), 0) };
    1
}

#[no_mangle]
pub extern "C" fn proxy_on_request_headers(ctx: u32, _n: usize, eos: u32) -> u32 {
    if MODE.load(Ordering::Relaxed) == COST {
        if let Some(kind) = header(REQUEST_HEADERS, "x-probe-cost") {
            let n = header(REQUEST_HEADERS, "x-probe-n").and_then(|v| v.parse().ok()).unwrap_or(1000);
            WANT.with(|w| w.borrow_mut().insert(ctx, (kind, n)));
        }
    }
    if MODE.load(Ordering::Relaxed) >= PAUSE && eos == 0 {
        STOP
    } else {
        CONTINUE
    }
}

#[no_mangle]
pub extern "C" fn proxy_on_request_body(ctx: u32, size: usize, eos: u32) -> u32 {
    let mode = MODE.load(Ordering::Relaxed);
    if mode < PAUSE {
        return CONTINUE;
    }
    if eos == 0 {
        return STOP;
    }
    if mode == COST {
        if let Some((kind, n)) = WANT.with(|w| w.borrow_mut().remove(&ctx)) {
            let body = get_buffer(REQUEST_BODY, size);
            // The warm-up call; for `get_property` it is the plan being there to read.
            one_call(if kind == "get_property" { "set_property" } else { &kind }, &body, size);
            let t0 = now_ns();
            for _ in 0..n {
                one_call(&kind, &body, size);
            }
            let t1 = now_ns();
            let ns = t1.saturating_sub(t0) as f64 / f64::from(n.max(1));
            GOT.with(|g| g.borrow_mut().insert(ctx, ns));
        }
        return CONTINUE;
    }
    if mode >= READ {
        let body = get_buffer(REQUEST_BODY, size);
        if mode >= REWRITE {
            let len = body.len().to_string();
            let k = "content-length";
            // SAFETY: plain pointers into live buffers.
            unsafe {
                proxy_set_buffer_bytes(REQUEST_BODY, 0, size, body.as_ptr(), body.len());
                proxy_replace_header_map_value(REQUEST_HEADERS, k.as_ptr(), k.len(), len.as_ptr(), len.len());
            }
        }
        std::hint::black_box(&body);
    }
    CONTINUE
}

#[no_mangle]
pub extern "C" fn proxy_on_response_headers(ctx: u32, _n: usize, _eos: u32) -> u32 {
    if let Some(ns) = GOT.with(|g| g.borrow_mut().remove(&ctx)) {
        let (k, v) = ("x-probe-ns", format!("{ns:.1}"));
        // SAFETY: plain pointers.
        unsafe { proxy_replace_header_map_value(RESPONSE_HEADERS, k.as_ptr(), k.len(), v.as_ptr(), v.len()) };
    }
    CONTINUE
}

#[no_mangle]
pub extern "C" fn proxy_on_response_body(_ctx: u32, _size: usize, _eos: u32) -> u32 {
    CONTINUE
}

#[no_mangle]
pub extern "C" fn proxy_on_done(_ctx: u32) -> u32 {
    1
}

#[no_mangle]
pub extern "C" fn proxy_on_log(_ctx: u32) {}

#[no_mangle]
pub extern "C" fn proxy_on_delete(ctx: u32) {
    WANT.with(|w| w.borrow_mut().remove(&ctx));
    GOT.with(|g| g.borrow_mut().remove(&ctx));
}
