//! [`Host`] over the proxy-wasm ABI ([`super::abi`]): every call returns a value instead of
//! unwrapping, so a host error degrades one request, never the VM.

use crate::filter::host::{Body, Headers, Host, Level, Map, MetricKind};

use super::abi;

pub struct WasmHost;

thread_local! {
    /// Envoy's log level for this plugin, as last read (`u32::MAX`: not read yet). Refreshed
    /// on every root tick, so `log_enabled` costs no host call on the request path and a
    /// level changed at runtime (admin `/logging`) holds within one tick.
    static LOG_LEVEL: std::cell::Cell<u32> = const { std::cell::Cell::new(u32::MAX) };
}

/// Read Envoy's log level again (root: at configure and on every tick).
pub fn refresh_log_level() {
    LOG_LEVEL.with(|l| l.set(abi::log_level().unwrap_or(0)));
}

fn map(m: Map) -> u32 {
    match m {
        Map::Request => abi::MAP_REQUEST_HEADERS,
        Map::Response => abi::MAP_RESPONSE_HEADERS,
    }
}

fn buffer(b: Body) -> u32 {
    match b {
        Body::Request => abi::BUFFER_REQUEST_BODY,
        Body::Response => abi::BUFFER_RESPONSE_BODY,
    }
}

/// proxy-wasm log levels: trace 0 … error 4.
fn level(l: Level) -> u32 {
    match l {
        Level::Trace => 0,
        Level::Debug => 1,
        Level::Info => 2,
        Level::Warn => 3,
        Level::Error => 4,
    }
}

impl Host for WasmHost {
    fn now_ms(&self) -> u64 {
        abi::now_ns().map_or(0, |ns| ns / 1_000_000)
    }
    fn log(&self, l: Level, msg: &str) {
        // Below Envoy's level: no host call.
        if self.log_enabled(l) {
            abi::log(level(l), msg);
        }
    }
    fn log_enabled(&self, l: Level) -> bool {
        let mut have = LOG_LEVEL.with(std::cell::Cell::get);
        if have == u32::MAX {
            refresh_log_level();
            have = LOG_LEVEL.with(std::cell::Cell::get);
        }
        have <= level(l)
    }
    fn headers(&self, m: Map) -> Headers {
        abi::header_pairs(map(m))
    }
    fn header(&self, m: Map, name: &str) -> Option<Vec<u8>> {
        abi::header(map(m), name)
    }
    fn set_header(&mut self, m: Map, name: &str, value: &str) -> bool {
        abi::set_header(map(m), name, value.as_bytes())
    }
    fn remove_header(&mut self, m: Map, name: &str) -> bool {
        abi::remove_header(map(m), name)
    }
    fn body(&self, b: Body, start: usize, len: usize) -> Option<Vec<u8>> {
        if len == 0 {
            return Some(Vec::new());
        }
        abi::buffer(buffer(b), start, len)
    }
    fn splice_body(&mut self, b: Body, replaced: usize, data: &[u8]) -> bool {
        abi::set_buffer(buffer(b), 0, replaced, data)
    }
    fn send_response(&mut self, status: u16, headers: &[(&str, &str)], body: &[u8]) -> bool {
        abi::send_local_response(status, headers, body)
    }
    fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
        abi::property(path)
    }
    fn set_property(&mut self, name: &str, value: &[u8]) -> bool {
        abi::set_property(name, value)
    }
    fn clear_route_cache(&mut self) {
        abi::foreign_function("clear_route_cache", &[]);
    }
    fn shared_get(&self, key: &str) -> Option<(Option<Vec<u8>>, Option<u32>)> {
        abi::shared_get(key)
    }
    fn shared_set(&mut self, key: &str, value: &[u8], cas: Option<u32>) -> Option<bool> {
        abi::shared_set(key, value, cas)
    }
    fn define_metric(&mut self, kind: MetricKind, name: &str) -> Option<u32> {
        let t = match kind {
            MetricKind::Counter => 0,
            MetricKind::Gauge => 1,
            MetricKind::Histogram => 2,
        };
        abi::define_metric(t, name)
    }
    fn add_metric(&mut self, id: u32, by: i64) {
        abi::increment_metric(id, by);
    }
    fn record_metric(&mut self, id: u32, value: u64) {
        abi::record_metric(id, value);
    }
    fn metric_value(&self, id: u32) -> Option<u64> {
        abi::get_metric(id)
    }
    fn dispatch_http_call(
        &mut self,
        cluster: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        timeout_ms: u64,
    ) -> Option<u32> {
        abi::http_call(cluster, headers, body, timeout_ms)
    }
    fn call_response_headers(&self) -> Vec<(String, Vec<u8>)> {
        let h = abi::header_pairs(abi::MAP_HTTP_CALL_RESPONSE_HEADERS);
        h.iter().map(|(k, v)| (k.to_string(), v.to_vec())).collect()
    }
    fn call_response_body(&self, start: usize, len: usize) -> Option<Vec<u8>> {
        if len == 0 {
            return Some(Vec::new());
        }
        abi::buffer(abi::BUFFER_HTTP_CALL_RESPONSE_BODY, start, len)
    }
    fn resume_request(&mut self) -> bool {
        abi::continue_stream(abi::STREAM_REQUEST)
    }
    fn resume_response(&mut self) -> bool {
        abi::continue_stream(abi::STREAM_RESPONSE)
    }
}

/// The plugin configuration bytes.
pub fn plugin_configuration() -> Option<Vec<u8>> {
    abi::buffer(abi::BUFFER_PLUGIN_CONFIGURATION, 0, usize::MAX)
}

pub fn set_tick_period(ms: u64) -> bool {
    abi::set_tick_period_ms(u32::try_from(ms).unwrap_or(u32::MAX))
}

pub fn set_effective_context(id: u32) -> bool {
    abi::set_effective_context(id)
}
