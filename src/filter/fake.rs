//! An in-memory host for the glue's table-driven tests: header maps, body buffers, filter
//! state, shared data (with CAS), metrics (one value per name, as in Envoy), local replies and
//! resumes, all inspectable.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};

use super::host::{Body, Headers, Host, Level, Map, MetricKind};

/// A local reply: status, headers, body.
pub type Reply = (u16, Vec<(String, String)>, Vec<u8>);

/// A dispatched HTTP call: token, cluster, headers, body, timeout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub token: u32,
    pub cluster: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub timeout_ms: u64,
}

impl Call {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Default)]
pub struct FakeHost {
    pub now: Cell<u64>,
    pub request_headers: Vec<(String, Vec<u8>)>,
    pub response_headers: Vec<(String, Vec<u8>)>,
    pub request_body: Vec<u8>,
    pub response_body: Vec<u8>,
    pub properties: HashMap<String, Vec<u8>>,
    pub shared: HashMap<String, (Vec<u8>, u32)>,
    pub metric_names: Vec<(MetricKind, String)>,
    pub metrics: BTreeMap<String, i64>,
    pub recorded: BTreeMap<String, Vec<u64>>,
    pub replies: Vec<Reply>,
    pub logs: RefCell<Vec<(Level, String)>>,
    pub route_cache_cleared: u32,
    pub resumed_requests: u32,
    pub resumed_responses: u32,
    /// Make `set_header` on the response map fail (headers already sent).
    pub response_headers_locked: bool,
    /// Make `send_response` fail.
    pub refuse_replies: bool,
    /// HTTP calls dispatched, in order.
    pub calls: Vec<Call>,
    /// Clusters whose calls the host refuses.
    pub refuse_calls_to: Vec<String>,
    /// The answered call's response (set by a test before `on_response`).
    pub call_headers: Vec<(String, Vec<u8>)>,
    pub call_body: Vec<u8>,
    /// Shared-data reads so far (host calls per request).
    pub shared_reads: Cell<u32>,
    /// Shared-data writes attempted so far.
    pub shared_writes: u32,
    /// The next N CAS writes lose a race: another "thread" wrote first (the token moves).
    pub cas_mismatches: u32,
    /// Every shared-data call fails (a host error).
    pub shared_broken: bool,
    /// Body splices so far (`set_buffer` calls).
    pub splices: u32,
    /// Splices from this one on (1-based) fail (a host error).
    pub splices_fail_from: Option<u32>,
    /// Metric reads so far.
    pub metric_reads: Cell<u32>,
    /// Every metric read fails (a host error).
    pub metrics_unreadable: bool,
}

fn find<'a>(map: &'a [(String, Vec<u8>)], name: &str) -> Option<&'a Vec<u8>> {
    map.iter().find(|(k, _)| k == name).map(|(_, v)| v)
}

impl FakeHost {
    pub fn new() -> FakeHost {
        FakeHost { now: Cell::new(1_000_000), ..FakeHost::default() }
    }
    pub fn with_request(mut self, headers: &[(&str, &str)], body: &str) -> FakeHost {
        self.request_headers = headers.iter().map(|(k, v)| (k.to_string(), v.as_bytes().to_vec())).collect();
        self.request_body = body.as_bytes().to_vec();
        self
    }
    pub fn set_response(&mut self, headers: &[(&str, &str)], body: &str) {
        self.response_headers = headers.iter().map(|(k, v)| (k.to_string(), v.as_bytes().to_vec())).collect();
        self.response_body = body.as_bytes().to_vec();
    }
    pub fn advance(&self, ms: u64) {
        self.now.set(self.now.get() + ms);
    }
    pub fn req(&self, name: &str) -> Option<String> {
        find(&self.request_headers, name).map(|v| String::from_utf8_lossy(v).into_owned())
    }
    pub fn resp(&self, name: &str) -> Option<String> {
        find(&self.response_headers, name).map(|v| String::from_utf8_lossy(v).into_owned())
    }
    pub fn prop(&self, name: &str) -> Option<String> {
        self.properties.get(name).map(|v| String::from_utf8_lossy(v).into_owned())
    }
    pub fn metric(&self, name: &str) -> i64 {
        self.metrics.get(name).copied().unwrap_or(0)
    }
    fn map_mut(&mut self, map: Map) -> &mut Vec<(String, Vec<u8>)> {
        match map {
            Map::Request => &mut self.request_headers,
            Map::Response => &mut self.response_headers,
        }
    }
    fn buf_mut(&mut self, body: Body) -> &mut Vec<u8> {
        match body {
            Body::Request => &mut self.request_body,
            Body::Response => &mut self.response_body,
        }
    }
}

impl Host for FakeHost {
    fn now_ms(&self) -> u64 {
        self.now.get()
    }
    fn log(&self, level: Level, msg: &str) {
        self.logs.borrow_mut().push((level, msg.to_string()));
    }
    fn log_enabled(&self, _level: Level) -> bool {
        true
    }
    fn headers(&self, map: Map) -> Headers {
        let pairs = match map {
            Map::Request => &self.request_headers,
            Map::Response => &self.response_headers,
        };
        Headers::encode(pairs.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
    }
    fn header(&self, map: Map, name: &str) -> Option<Vec<u8>> {
        match map {
            Map::Request => find(&self.request_headers, name).cloned(),
            Map::Response => find(&self.response_headers, name).cloned(),
        }
    }
    fn set_header(&mut self, map: Map, name: &str, value: &str) -> bool {
        if map == Map::Response && self.response_headers_locked {
            return false;
        }
        let m = self.map_mut(map);
        m.retain(|(k, _)| k != name);
        m.push((name.to_string(), value.as_bytes().to_vec()));
        true
    }
    fn remove_header(&mut self, map: Map, name: &str) -> bool {
        self.map_mut(map).retain(|(k, _)| k != name);
        true
    }
    fn body(&self, body: Body, start: usize, len: usize) -> Option<Vec<u8>> {
        let b = match body {
            Body::Request => &self.request_body,
            Body::Response => &self.response_body,
        };
        let end = start.saturating_add(len).min(b.len());
        b.get(start..end).map(<[u8]>::to_vec)
    }
    fn splice_body(&mut self, body: Body, replaced: usize, data: &[u8]) -> bool {
        self.splices += 1;
        if self.splices_fail_from.is_some_and(|n| self.splices >= n) {
            return false;
        }
        let b = self.buf_mut(body);
        if replaced > b.len() {
            return false;
        }
        let tail = b.split_off(replaced);
        *b = data.to_vec();
        b.extend_from_slice(&tail);
        true
    }
    fn send_response(&mut self, status: u16, headers: &[(&str, &str)], body: &[u8]) -> bool {
        if self.refuse_replies {
            return false;
        }
        self.replies.push((
            status,
            headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            body.to_vec(),
        ));
        true
    }
    fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
        self.properties.get(&path.join(".")).cloned()
    }
    fn set_property(&mut self, name: &str, value: &[u8]) -> bool {
        self.properties.insert(name.to_string(), value.to_vec());
        true
    }
    fn clear_route_cache(&mut self) {
        self.route_cache_cleared += 1;
    }
    fn shared_get(&self, key: &str) -> Option<(Option<Vec<u8>>, Option<u32>)> {
        self.shared_reads.set(self.shared_reads.get() + 1);
        if self.shared_broken {
            return None;
        }
        Some(match self.shared.get(key) {
            Some((v, cas)) => (Some(v.clone()), Some(*cas)),
            None => (None, None),
        })
    }
    fn shared_set(&mut self, key: &str, value: &[u8], cas: Option<u32>) -> Option<bool> {
        self.shared_writes += 1;
        if self.shared_broken {
            return None;
        }
        if self.cas_mismatches > 0 {
            self.cas_mismatches -= 1;
            if let Some((_, c)) = self.shared.get_mut(key) {
                *c += 1;
            }
            return Some(false);
        }
        let current = self.shared.get(key).map(|(_, c)| *c);
        if let (Some(want), Some(have)) = (cas, current) {
            if want != have {
                return Some(false);
            }
        }
        let next = current.unwrap_or(0) + 1;
        self.shared.insert(key.to_string(), (value.to_vec(), next));
        Some(true)
    }
    fn define_metric(&mut self, kind: MetricKind, name: &str) -> Option<u32> {
        self.metric_names.push((kind, name.to_string()));
        u32::try_from(self.metric_names.len() - 1).ok()
    }
    fn add_metric(&mut self, id: u32, by: i64) {
        if let Some((_, name)) = self.metric_names.get(id as usize) {
            *self.metrics.entry(name.clone()).or_insert(0) += by;
        }
    }
    fn record_metric(&mut self, id: u32, value: u64) {
        if let Some((_, name)) = self.metric_names.get(id as usize) {
            self.recorded.entry(name.clone()).or_default().push(value);
        }
    }
    fn metric_value(&self, id: u32) -> Option<u64> {
        self.metric_reads.set(self.metric_reads.get() + 1);
        if self.metrics_unreadable {
            return None;
        }
        // One value per name, as in Envoy (where every VM's metric of a name is one stat).
        let (_, name) = self.metric_names.get(id as usize)?;
        Some(u64::try_from(self.metric(name)).unwrap_or(0))
    }
    fn dispatch_http_call(
        &mut self,
        cluster: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        timeout_ms: u64,
    ) -> Option<u32> {
        if self.refuse_calls_to.iter().any(|c| c == cluster) {
            return None;
        }
        let token = u32::try_from(self.calls.len()).ok()? + 1;
        self.calls.push(Call {
            token,
            cluster: cluster.to_string(),
            headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            body: body.to_vec(),
            timeout_ms,
        });
        Some(token)
    }
    fn call_response_headers(&self) -> Vec<(String, Vec<u8>)> {
        self.call_headers.clone()
    }
    fn call_response_body(&self, start: usize, len: usize) -> Option<Vec<u8>> {
        let end = start.saturating_add(len).min(self.call_body.len());
        self.call_body.get(start..end).map(<[u8]>::to_vec)
    }
    fn resume_request(&mut self) -> bool {
        self.resumed_requests += 1;
        true
    }
    fn resume_response(&mut self) -> bool {
        self.resumed_responses += 1;
        true
    }
}
