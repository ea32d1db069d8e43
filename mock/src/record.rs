//! The request journal behind `GET /__mock/last` and `GET /__mock/requests`: the last
//! [`KEEP`] API requests as received (method, path, query, headers, body), so tests can
//! assert what a proxy actually sent — e.g. that an OpenAI request was translated into a
//! valid Anthropic one. Raw bytes are kept; JSON is only parsed when a test asks.

use crate::http::Request;
use serde_json::{json, Map, Value};
use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};

/// Requests kept (oldest dropped first).
pub const KEEP: usize = 64;

struct Entry {
    seq: u64,
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

#[derive(Default)]
pub struct Journal {
    inner: Mutex<(u64, VecDeque<Entry>)>,
}

impl Journal {
    fn lock(&self) -> MutexGuard<'_, (u64, VecDeque<Entry>)> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn record(&self, req: &Request) {
        let mut g = self.lock();
        g.0 += 1;
        let seq = g.0;
        if g.1.len() >= KEEP {
            g.1.pop_front();
        }
        g.1.push_back(Entry {
            seq,
            method: req.method.clone(),
            path: req.path.clone(),
            query: req.query.clone(),
            headers: req.headers.clone(),
            body: req.body.clone(),
        });
    }

    pub fn clear(&self) {
        let mut g = self.lock();
        g.1.clear();
    }

    /// The most recent request (to `path`, when given).
    pub fn last(&self, path: Option<&str>) -> Option<Value> {
        let g = self.lock();
        g.1.iter().rev().find(|e| path.is_none_or(|p| e.path == p)).map(Entry::to_json)
    }

    /// All kept requests (to `path`, when given), oldest first.
    pub fn all(&self, path: Option<&str>) -> Vec<Value> {
        let g = self.lock();
        g.1.iter().filter(|e| path.is_none_or(|p| e.path == p)).map(Entry::to_json).collect()
    }
}

impl Entry {
    fn to_json(&self) -> Value {
        let mut headers = Map::new();
        for (n, v) in &self.headers {
            match headers.get_mut(n) {
                Some(Value::String(s)) => {
                    s.push_str(", ");
                    s.push_str(v);
                }
                _ => {
                    headers.insert(n.clone(), Value::from(v.as_str()));
                }
            }
        }
        let mut v = json!({
            "seq": self.seq,
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "headers": headers,
            "body_bytes": self.body.len(),
        });
        if let Some(o) = v.as_object_mut() {
            match serde_json::from_slice::<Value>(&self.body) {
                Ok(b) => {
                    o.insert("body".into(), b);
                }
                Err(_) => {
                    o.insert("body".into(), Value::Null);
                    o.insert("body_text".into(), Value::from(String::from_utf8_lossy(&self.body).into_owned()));
                }
            }
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(path: &str, body: &[u8]) -> Request {
        Request {
            method: "POST".into(),
            path: path.into(),
            query: "a=1".into(),
            http11: true,
            headers: vec![("x-k".into(), "1".into()), ("x-k".into(), "2".into())],
            body: body.to_vec(),
            keep_alive: true,
        }
    }

    #[test]
    fn keeps_the_last_requests_per_path() {
        let j = Journal::default();
        assert!(j.last(None).is_none());
        j.record(&req("/a", br#"{"x":1}"#));
        j.record(&req("/b", b"not json"));
        let b = j.last(None).unwrap();
        assert_eq!(b["path"], "/b");
        assert_eq!(b["body"], Value::Null);
        assert_eq!(b["body_text"], "not json");
        assert_eq!(b["headers"]["x-k"], "1, 2");
        let a = j.last(Some("/a")).unwrap();
        assert_eq!((a["seq"].as_u64(), &a["body"]["x"]), (Some(1), &json!(1)));
        assert_eq!(a["query"], "a=1");
        for _ in 0..KEEP {
            j.record(&req("/c", b""));
        }
        assert_eq!(j.all(None).len(), KEEP);
        assert!(j.last(Some("/a")).is_none());
        j.clear();
        assert!(j.all(None).is_empty());
    }
}
