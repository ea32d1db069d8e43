//! The one seam between the request state machines and the proxy: every host capability the
//! glue uses, as a trait. The wasm shell implements it with proxy-wasm host calls (never
//! panicking); tests use the in-memory [`super::fake::FakeHost`].

pub use super::headers::Headers;

/// Which header map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Map {
    Request,
    Response,
}

/// Which body buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Body {
    Request,
    Response,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    Counter,
    /// Set to a value with [`Host::record_metric`].
    Gauge,
    Histogram,
}

/// What a callback tells the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Pause,
}

pub trait Host {
    fn now_ms(&self) -> u64;
    fn log(&self, level: Level, msg: &str);
    /// Whether `level` is logged at all (skip formatting a message the host would drop).
    fn log_enabled(&self, level: Level) -> bool;

    /// Every header of a map, values as raw bytes (never assumed UTF-8).
    fn headers(&self, map: Map) -> Headers;
    fn header(&self, map: Map, name: &str) -> Option<Vec<u8>>;
    fn set_header(&mut self, map: Map, name: &str, value: &str) -> bool;
    fn remove_header(&mut self, map: Map, name: &str) -> bool;

    /// `len` bytes of a body buffer from `start` (fewer at its end).
    fn body(&self, body: Body, start: usize, len: usize) -> Option<Vec<u8>>;
    /// Replace the first `replaced` bytes of a body buffer with `data`; the rest never
    /// crosses into the VM.
    fn splice_body(&mut self, body: Body, replaced: usize, data: &[u8]) -> bool;

    /// Answer the request locally. May run this filter's response callbacks before it returns.
    fn send_response(&mut self, status: u16, headers: &[(&str, &str)], body: &[u8]) -> bool;

    /// A host property (`["response", "code_details"]`) or a filter-state value set with
    /// [`Host::set_property`] (one path segment).
    fn property(&self, path: &[&str]) -> Option<Vec<u8>>;
    fn set_property(&mut self, name: &str, value: &[u8]) -> bool;
    fn clear_route_cache(&mut self);

    /// Shared data: `(value, cas)`; `None` on a host error.
    fn shared_get(&self, key: &str) -> Option<(Option<Vec<u8>>, Option<u32>)>;
    /// `Some(true)` stored, `Some(false)` CAS mismatch, `None` host error.
    fn shared_set(&mut self, key: &str, value: &[u8], cas: Option<u32>) -> Option<bool>;

    fn define_metric(&mut self, kind: MetricKind, name: &str) -> Option<u32>;
    fn add_metric(&mut self, id: u32, by: i64);
    fn record_metric(&mut self, id: u32, value: u64);
    /// A counter's (or gauge's) current value; None on a host error. In Envoy a metric is one
    /// stat per name for the whole process, so this is the count of every worker thread.
    fn metric_value(&self, id: u32) -> Option<u64>;

    /// An HTTP call from the root context to `cluster`; `headers` carry `:method`, `:path`
    /// and `:authority`. The call's token, or None when the host refuses it (an unknown
    /// cluster, a missing pseudo-header). The answer comes to the root's
    /// `on_http_call_response` with that token.
    fn dispatch_http_call(
        &mut self,
        cluster: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        timeout_ms: u64,
    ) -> Option<u32>;
    /// The answered call's response headers (inside `on_http_call_response`).
    fn call_response_headers(&self) -> Vec<(String, Vec<u8>)>;
    /// `len` bytes of the answered call's response body from `start`.
    fn call_response_body(&self, start: usize, len: usize) -> Option<Vec<u8>>;

    /// Let a paused request (headers and body) go on.
    fn resume_request(&mut self) -> bool;
    /// Let a paused response go on.
    fn resume_response(&mut self) -> bool;
}

/// A header value as text (lossy), or None.
pub fn header_text(host: &dyn Host, map: Map, name: &str) -> Option<String> {
    host.header(map, name).map(|v| String::from_utf8_lossy(&v).into_owned())
}

/// Apply an attempt's header edits (see [`crate::attempt`]) to a map.
pub fn apply(host: &mut dyn Host, map: Map, edits: &[crate::attempt::HeaderEdit<'_>]) {
    for e in edits {
        match e {
            crate::attempt::HeaderEdit::Set(k, v) => host.set_header(map, k, v),
            crate::attempt::HeaderEdit::Remove(k) => host.remove_header(map, k),
        };
    }
}
