//! The proxy-wasm ABI (0.2.1) host functions this filter calls, declared here so that every
//! host error comes back as a status (the SDK's `hostcalls` wrappers `panic!` on any status
//! they do not expect — a header write after the headers went on, a property that does not
//! exist in this phase, a map read the host refuses — and a panic traps the VM for every
//! request; this module does not use the SDK). Memory the host returns was allocated through
//! this module's `proxy_on_memory_allocate` ([`super::entry`], Rust's allocator, exact size),
//! so it is owned as a `Vec`.

use std::ptr::null_mut;

use crate::filter::headers::Headers;

pub const OK: u32 = 0;
pub const NOT_FOUND: u32 = 1;
pub const CAS_MISMATCH: u32 = 8;

pub const MAP_REQUEST_HEADERS: u32 = 0;
pub const MAP_RESPONSE_HEADERS: u32 = 2;
pub const BUFFER_REQUEST_BODY: u32 = 0;
pub const BUFFER_RESPONSE_BODY: u32 = 1;
pub const BUFFER_HTTP_CALL_RESPONSE_BODY: u32 = 4;
pub const BUFFER_PLUGIN_CONFIGURATION: u32 = 7;
pub const MAP_HTTP_CALL_RESPONSE_HEADERS: u32 = 6;
pub const STREAM_REQUEST: u32 = 0;
pub const STREAM_RESPONSE: u32 = 1;

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_log(level: u32, ptr: *const u8, len: usize) -> u32;
    fn proxy_get_log_level(level: *mut u32) -> u32;
    fn proxy_get_current_time_nanoseconds(t: *mut u64) -> u32;
    fn proxy_get_header_map_pairs(map: u32, rp: *mut *mut u8, rl: *mut usize) -> u32;
    fn proxy_get_header_map_value(map: u32, kp: *const u8, kl: usize, rp: *mut *mut u8, rl: *mut usize) -> u32;
    fn proxy_replace_header_map_value(map: u32, kp: *const u8, kl: usize, vp: *const u8, vl: usize) -> u32;
    fn proxy_remove_header_map_value(map: u32, kp: *const u8, kl: usize) -> u32;
    fn proxy_get_buffer_bytes(buffer: u32, start: usize, max: usize, rp: *mut *mut u8, rl: *mut usize) -> u32;
    fn proxy_set_buffer_bytes(buffer: u32, start: usize, size: usize, p: *const u8, l: usize) -> u32;
    #[allow(clippy::too_many_arguments)]
    fn proxy_send_local_response(
        status: u32,
        details_ptr: *const u8,
        details_len: usize,
        body_ptr: *const u8,
        body_len: usize,
        headers_ptr: *const u8,
        headers_len: usize,
        grpc_status: i32,
    ) -> u32;
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
    fn proxy_get_shared_data(kp: *const u8, kl: usize, rp: *mut *mut u8, rl: *mut usize, cas: *mut u32) -> u32;
    fn proxy_set_shared_data(kp: *const u8, kl: usize, vp: *const u8, vl: usize, cas: u32) -> u32;
    fn proxy_define_metric(kind: u32, np: *const u8, nl: usize, id: *mut u32) -> u32;
    fn proxy_increment_metric(id: u32, by: i64) -> u32;
    fn proxy_record_metric(id: u32, value: u64) -> u32;
    fn proxy_get_metric(id: u32, value: *mut u64) -> u32;
    fn proxy_continue_stream(stream: u32) -> u32;
    fn proxy_set_effective_context(id: u32) -> u32;
    fn proxy_set_tick_period_milliseconds(ms: u32) -> u32;
    #[allow(clippy::too_many_arguments)]
    fn proxy_http_call(
        up: *const u8,
        up_len: usize,
        headers: *const u8,
        headers_len: usize,
        body: *const u8,
        body_len: usize,
        trailers: *const u8,
        trailers_len: usize,
        timeout_ms: u32,
        token: *mut u32,
    ) -> u32;
}

/// Take ownership of a host-returned buffer (None: the host returned no data).
fn owned(p: *mut u8, l: usize) -> Option<Vec<u8>> {
    if p.is_null() {
        return None;
    }
    // SAFETY: the host allocated `l` bytes at `p` through `proxy_on_memory_allocate`
    // (an exact-size allocation from Rust's global allocator), wrote them all, and hands
    // them over to us.
    Some(unsafe { Vec::from_raw_parts(p, l, l) })
}

/// Run a host call that returns bytes: `Ok(Some)` on OK with data, `Ok(None)` on NotFound or
/// no data, `Err(status)` otherwise.
fn bytes_call(f: impl FnOnce(*mut *mut u8, *mut usize) -> u32) -> Result<Option<Vec<u8>>, u32> {
    let mut p: *mut u8 = null_mut();
    let mut l: usize = 0;
    match f(&mut p, &mut l) {
        OK => Ok(owned(p, l)),
        NOT_FOUND => Ok(None),
        s => Err(s),
    }
}

pub fn log(level: u32, msg: &str) {
    // SAFETY: pointer/length of a live string.
    unsafe { proxy_log(level, msg.as_ptr(), msg.len()) };
}

pub fn log_level() -> Option<u32> {
    let mut l = 0u32;
    // SAFETY: out-pointer to a local.
    (unsafe { proxy_get_log_level(&mut l) } == OK).then_some(l)
}

pub fn now_ns() -> Option<u64> {
    let mut t = 0u64;
    // SAFETY: out-pointer to a local.
    (unsafe { proxy_get_current_time_nanoseconds(&mut t) } == OK).then_some(t)
}

/// The pairs of a header map, in the host's encoding (read in place by [`Headers`]).
pub fn header_pairs(map: u32) -> Headers {
    // SAFETY: out-pointers to locals.
    let bytes = bytes_call(|p, l| unsafe { proxy_get_header_map_pairs(map, p, l) }).ok().flatten();
    bytes.map(Headers::from_raw).unwrap_or_default()
}

/// The ABI's map encoding of pairs this filter sends (the same as [`Headers`] reads).
pub fn encode_pairs(pairs: &[(&str, &str)]) -> Vec<u8> {
    Headers::encode(pairs.iter().map(|(k, v)| (*k, v.as_bytes()))).into_raw()
}

pub fn header(map: u32, name: &str) -> Option<Vec<u8>> {
    let mut p: *mut u8 = null_mut();
    let mut l: usize = 0;
    // SAFETY: pointer/length of a live string; out-pointers to locals.
    match unsafe { proxy_get_header_map_value(map, name.as_ptr(), name.len(), &mut p, &mut l) } {
        // A present header with no data is an empty value.
        OK => Some(owned(p, l).unwrap_or_default()),
        _ => None,
    }
}

pub fn set_header(map: u32, name: &str, value: &[u8]) -> bool {
    // SAFETY: pointers/lengths of live slices.
    unsafe { proxy_replace_header_map_value(map, name.as_ptr(), name.len(), value.as_ptr(), value.len()) == OK }
}

pub fn remove_header(map: u32, name: &str) -> bool {
    // SAFETY: pointer/length of a live string.
    unsafe { proxy_remove_header_map_value(map, name.as_ptr(), name.len()) == OK }
}

pub fn buffer(kind: u32, start: usize, len: usize) -> Option<Vec<u8>> {
    // SAFETY: out-pointers to locals.
    bytes_call(|p, l| unsafe { proxy_get_buffer_bytes(kind, start, len, p, l) }).ok().flatten()
}

pub fn set_buffer(kind: u32, start: usize, size: usize, data: &[u8]) -> bool {
    // SAFETY: pointer/length of a live slice.
    unsafe { proxy_set_buffer_bytes(kind, start, size, data.as_ptr(), data.len()) == OK }
}

pub fn send_local_response(status: u16, headers: &[(&str, &str)], body: &[u8]) -> bool {
    let h = encode_pairs(headers);
    // SAFETY: pointers/lengths of live slices (a null details pointer with length 0).
    unsafe {
        proxy_send_local_response(
            u32::from(status),
            std::ptr::null(),
            0,
            body.as_ptr(),
            body.len(),
            h.as_ptr(),
            h.len(),
            -1,
        ) == OK
    }
}

fn path_bytes(path: &[&str]) -> Vec<u8> {
    path.join("\0").into_bytes()
}

pub fn property(path: &[&str]) -> Option<Vec<u8>> {
    let p = path_bytes(path);
    // SAFETY: pointer/length of a live buffer; out-pointers to locals.
    bytes_call(|rp, rl| unsafe { proxy_get_property(p.as_ptr(), p.len(), rp, rl) }).ok().flatten()
}

pub fn set_property(name: &str, value: &[u8]) -> bool {
    // SAFETY: pointers/lengths of live slices.
    unsafe { proxy_set_property(name.as_ptr(), name.len(), value.as_ptr(), value.len()) == OK }
}

pub fn foreign_function(name: &str, args: &[u8]) -> bool {
    let mut p: *mut u8 = null_mut();
    let mut l: usize = 0;
    // SAFETY: pointers/lengths of live slices; out-pointers to locals.
    let s =
        unsafe { proxy_call_foreign_function(name.as_ptr(), name.len(), args.as_ptr(), args.len(), &mut p, &mut l) };
    drop(owned(p, l));
    s == OK
}

pub fn shared_get(key: &str) -> Option<(Option<Vec<u8>>, Option<u32>)> {
    let mut cas = 0u32;
    // SAFETY: pointer/length of a live string; out-pointers to locals.
    let r = bytes_call(|p, l| unsafe { proxy_get_shared_data(key.as_ptr(), key.len(), p, l, &mut cas) }).ok()?;
    Some((r, (cas > 0).then_some(cas)))
}

pub fn shared_set(key: &str, value: &[u8], cas: Option<u32>) -> Option<bool> {
    // SAFETY: pointers/lengths of live slices.
    match unsafe { proxy_set_shared_data(key.as_ptr(), key.len(), value.as_ptr(), value.len(), cas.unwrap_or(0)) } {
        OK => Some(true),
        CAS_MISMATCH => Some(false),
        _ => None,
    }
}

pub fn define_metric(kind: u32, name: &str) -> Option<u32> {
    let mut id = 0u32;
    // SAFETY: pointer/length of a live string; out-pointer to a local.
    (unsafe { proxy_define_metric(kind, name.as_ptr(), name.len(), &mut id) } == OK).then_some(id)
}

pub fn increment_metric(id: u32, by: i64) {
    // SAFETY: plain values.
    unsafe { proxy_increment_metric(id, by) };
}

pub fn record_metric(id: u32, value: u64) {
    // SAFETY: plain values.
    unsafe { proxy_record_metric(id, value) };
}

/// A counter's or gauge's value. Envoy answers from the stat itself, which every VM that
/// defined the same name shares (one atomic per process): the total over all worker threads.
pub fn get_metric(id: u32) -> Option<u64> {
    let mut v = 0u64;
    // SAFETY: plain value; out-pointer to a local.
    (unsafe { proxy_get_metric(id, &mut v) } == OK).then_some(v)
}

pub fn continue_stream(stream: u32) -> bool {
    // SAFETY: plain value.
    unsafe { proxy_continue_stream(stream) == OK }
}

pub fn set_effective_context(id: u32) -> bool {
    // SAFETY: plain value.
    unsafe { proxy_set_effective_context(id) == OK }
}

pub fn set_tick_period_ms(ms: u32) -> bool {
    // SAFETY: plain value.
    unsafe { proxy_set_tick_period_milliseconds(ms) == OK }
}

/// `proxy_http_call`: the token its answer will carry (`proxy_on_http_call_response` on the
/// calling root), or None when Envoy refused it (unknown cluster, missing pseudo-header).
pub fn http_call(cluster: &str, headers: &[(&str, &str)], body: &[u8], timeout_ms: u64) -> Option<u32> {
    let h = encode_pairs(headers);
    let t = encode_pairs(&[]);
    let mut token = 0u32;
    let timeout = u32::try_from(timeout_ms).unwrap_or(u32::MAX);
    // SAFETY: pointers/lengths of live slices; out-pointer to a local.
    let status = unsafe {
        proxy_http_call(
            cluster.as_ptr(),
            cluster.len(),
            h.as_ptr(),
            h.len(),
            body.as_ptr(),
            body.len(),
            t.as_ptr(),
            t.len(),
            timeout,
            &mut token,
        )
    };
    (status == OK).then_some(token)
}
