//! [`Host`] over proxy-wasm host calls. Every call returns a value instead of unwrapping: a
//! host error degrades one request, never the VM (the SDK's convenience methods on contexts
//! unwrap host errors and non-UTF-8 values, which would trap).

use std::time::{Duration, UNIX_EPOCH};

use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, LogLevel, MapType, MetricType, Status};

use crate::filter::host::{Body, Host, Level, Map, MetricKind};

pub struct WasmHost;

fn map(m: Map) -> MapType {
    match m {
        Map::Request => MapType::HttpRequestHeaders,
        Map::Response => MapType::HttpResponseHeaders,
    }
}

fn buffer(b: Body) -> BufferType {
    match b {
        Body::Request => BufferType::HttpRequestBody,
        Body::Response => BufferType::HttpResponseBody,
    }
}

pub fn level(l: Level) -> LogLevel {
    match l {
        Level::Trace => LogLevel::Trace,
        Level::Debug => LogLevel::Debug,
        Level::Info => LogLevel::Info,
        Level::Warn => LogLevel::Warn,
        Level::Error => LogLevel::Error,
    }
}

impl Host for WasmHost {
    fn now_ms(&self) -> u64 {
        hostcalls::get_current_time()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
    fn log(&self, l: Level, msg: &str) {
        let _ = hostcalls::log(level(l), msg);
    }
    fn log_enabled(&self, l: Level) -> bool {
        hostcalls::get_log_level().map_or(true, |have| have as u32 <= level(l) as u32)
    }
    fn headers(&self, m: Map) -> Vec<(String, Vec<u8>)> {
        hostcalls::get_map_bytes(map(m)).unwrap_or_default()
    }
    fn header(&self, m: Map, name: &str) -> Option<Vec<u8>> {
        hostcalls::get_map_value_bytes(map(m), name).ok().flatten()
    }
    fn set_header(&mut self, m: Map, name: &str, value: &str) -> bool {
        hostcalls::set_map_value_bytes(map(m), name, Some(value.as_bytes())).is_ok()
    }
    fn remove_header(&mut self, m: Map, name: &str) -> bool {
        hostcalls::remove_map_value(map(m), name).is_ok()
    }
    fn body(&self, b: Body, start: usize, len: usize) -> Option<Vec<u8>> {
        if len == 0 {
            return Some(Vec::new());
        }
        hostcalls::get_buffer(buffer(b), start, len).ok().flatten()
    }
    fn splice_body(&mut self, b: Body, replaced: usize, data: &[u8]) -> bool {
        hostcalls::set_buffer(buffer(b), 0, replaced, data).is_ok()
    }
    fn send_response(&mut self, status: u16, headers: &[(&str, &str)], body: &[u8]) -> bool {
        let body = if body.is_empty() { None } else { Some(body) };
        hostcalls::send_http_response(u32::from(status), headers.to_vec(), body).is_ok()
    }
    fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
        hostcalls::get_property(path.to_vec()).ok().flatten()
    }
    fn set_property(&mut self, name: &str, value: &[u8]) -> bool {
        hostcalls::set_property(vec![name], Some(value)).is_ok()
    }
    fn clear_route_cache(&mut self) {
        let _ = hostcalls::call_foreign_function("clear_route_cache", None);
    }
    fn shared_get(&self, key: &str) -> Option<(Option<Vec<u8>>, Option<u32>)> {
        hostcalls::get_shared_data(key).ok()
    }
    fn shared_set(&mut self, key: &str, value: &[u8], cas: Option<u32>) -> Option<bool> {
        match hostcalls::set_shared_data(key, Some(value), cas) {
            Ok(()) => Some(true),
            Err(Status::CasMismatch) => Some(false),
            Err(_) => None,
        }
    }
    fn define_metric(&mut self, kind: MetricKind, name: &str) -> Option<u32> {
        let t = match kind {
            MetricKind::Counter => MetricType::Counter,
            MetricKind::Histogram => MetricType::Histogram,
        };
        hostcalls::define_metric(t, name).ok()
    }
    fn add_metric(&mut self, id: u32, by: i64) {
        let _ = hostcalls::increment_metric(id, by);
    }
    fn record_metric(&mut self, id: u32, value: u64) {
        let _ = hostcalls::record_metric(id, value);
    }
    fn resume_request(&mut self) -> bool {
        hostcalls::resume_http_request().is_ok()
    }
    fn resume_response(&mut self) -> bool {
        hostcalls::resume_http_response().is_ok()
    }
}

/// The plugin configuration bytes.
pub fn plugin_configuration() -> Option<Vec<u8>> {
    hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX).ok().flatten()
}

pub fn set_tick_period(ms: u64) -> bool {
    hostcalls::set_tick_period(Duration::from_millis(ms)).is_ok()
}

pub fn set_effective_context(id: u32) -> bool {
    hostcalls::set_effective_context(id).is_ok()
}
