//! Non-panicking host calls. Every function here returns an `Option`/`bool` instead of
//! unwrapping: a host error degrades one request, never the VM.

use std::time::{Duration, UNIX_EPOCH};

use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, LogLevel, MapType, MetricType};

pub fn log(level: LogLevel, msg: &str) {
    let _ = hostcalls::log(level, msg);
}

/// Milliseconds since the epoch (host clock).
pub fn now_ms() -> u64 {
    hostcalls::get_current_time()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// All headers; values as raw bytes (never assumed UTF-8).
pub fn headers(map: MapType) -> Vec<(String, Vec<u8>)> {
    hostcalls::get_map_bytes(map).unwrap_or_default()
}

pub fn set_header(map: MapType, name: &str, value: &str) -> bool {
    hostcalls::set_map_value_bytes(map, name, Some(value.as_bytes())).is_ok()
}

pub fn remove_header(map: MapType, name: &str) -> bool {
    hostcalls::remove_map_value(map, name).is_ok()
}

pub fn buffer(kind: BufferType, size: usize) -> Option<Vec<u8>> {
    if size == 0 {
        return Some(Vec::new());
    }
    hostcalls::get_buffer(kind, 0, size).ok().flatten()
}

/// Replace the first `replaced` bytes of a buffer with `data` (Envoy drains them and
/// prepends `data`); the rest of the buffer never crosses into the VM.
pub fn splice_buffer(kind: BufferType, replaced: usize, data: &[u8]) -> bool {
    hostcalls::set_buffer(kind, 0, replaced, data).is_ok()
}

/// Whether the host logs at `level` (skip formatting a message it would drop).
pub fn log_enabled(level: LogLevel) -> bool {
    hostcalls::get_log_level().map_or(true, |l| l as u32 <= level as u32)
}

/// Replace a whole buffer of `old_size` bytes.
pub fn set_buffer(kind: BufferType, old_size: usize, data: &[u8]) -> bool {
    hostcalls::set_buffer(kind, 0, old_size, data).is_ok()
}

pub fn send_response(status: u16, headers: &[(&str, &str)], body: &[u8]) -> bool {
    let body = if body.is_empty() { None } else { Some(body) };
    hostcalls::send_http_response(u32::from(status), headers.to_vec(), body).is_ok()
}

pub fn property(path: &[&str]) -> Option<Vec<u8>> {
    hostcalls::get_property(path.to_vec()).ok().flatten()
}

pub fn set_effective_context(id: u32) -> bool {
    hostcalls::set_effective_context(id).is_ok()
}

pub fn set_tick_period(ms: u64) -> bool {
    hostcalls::set_tick_period(Duration::from_millis(ms)).is_ok()
}

/// Ask Envoy to recompute the route after the routing header changed (harmless when no
/// filter cached it yet).
pub fn clear_route_cache() {
    let _ = hostcalls::call_foreign_function("clear_route_cache", None);
}

pub fn plugin_configuration() -> Option<Vec<u8>> {
    buffer_all(BufferType::PluginConfiguration)
}

fn buffer_all(kind: BufferType) -> Option<Vec<u8>> {
    hostcalls::get_buffer(kind, 0, usize::MAX).ok().flatten()
}

/// Shared data: read-modify-write with CAS through the pure loop in `crate::counter`.
pub fn shared_get(key: &str) -> Option<(Option<Vec<u8>>, Option<u32>)> {
    hostcalls::get_shared_data(key).ok()
}

/// `Some(true)` stored, `Some(false)` CAS mismatch, `None` host error.
pub fn shared_set(key: &str, value: &[u8], cas: Option<u32>) -> Option<bool> {
    match hostcalls::set_shared_data(key, Some(value), cas) {
        Ok(()) => Some(true),
        Err(proxy_wasm::types::Status::CasMismatch) => Some(false),
        Err(_) => None,
    }
}

pub fn define_metric(kind: MetricType, name: &str) -> Option<u32> {
    hostcalls::define_metric(kind, name).ok()
}

pub fn increment_metric(id: u32, by: i64) {
    let _ = hostcalls::increment_metric(id, by);
}

pub fn record_metric(id: u32, value: u64) {
    let _ = hostcalls::record_metric(id, value);
}
