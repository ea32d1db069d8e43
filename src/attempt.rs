//! The header edits of one attempt, for every attempt alike: the downstream filter applies
//! attempt 1's (it prepares it once), each upstream filter those of attempts ≥ 2. Envoy's
//! router keeps one request header map for all attempts, so an attempt after the first sets
//! everything it owns and restores what an earlier attempt changed.

use std::borrow::Cow;

use crate::config::Model;
use crate::request::CLIENT_AUTH_HEADERS;

/// Every header a model's auth can set.
pub const AUTH_HEADERS: [&str; 4] =
    [CLIENT_AUTH_HEADERS[0], CLIENT_AUTH_HEADERS[1], CLIENT_AUTH_HEADERS[2], "anthropic-version"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderEdit<'a> {
    Set(&'a str, Cow<'a, str>),
    Remove(&'a str),
}

/// What an attempt's header edits depend on.
#[derive(Debug, Clone, Copy)]
pub struct AttemptHead<'a> {
    pub model: &'a Model,
    pub client_path: &'a str,
    pub client_authority: &'a str,
    /// The client's own auth headers, restored for a model without a key.
    pub client_auth: &'a [(String, String)],
    /// An earlier attempt set a model's key (the client's auth is gone from the map).
    pub keyed_before: bool,
    /// Attempt 2 or later: restore `:path` / `:authority` an earlier attempt changed.
    pub later: bool,
    /// The body's new length; `None` while it is not known yet (a translated body).
    pub content_length: Option<usize>,
    /// Attempt 1 also names its cluster in the routing header (for a `cluster_header` route).
    pub routing_header: Option<&'a str>,
}

pub fn header_edits<'a>(a: &AttemptHead<'a>) -> Vec<HeaderEdit<'a>> {
    let m = a.model;
    let mut out = Vec::with_capacity(8);
    match a.content_length {
        Some(n) => {
            out.push(HeaderEdit::Remove("transfer-encoding"));
            out.push(HeaderEdit::Set("content-length", Cow::Owned(crate::body::u64_string(n as u64))));
        }
        None => out.push(HeaderEdit::Remove("content-length")),
    }
    if let Some(h) = a.routing_header {
        out.push(HeaderEdit::Set(h, Cow::Borrowed(m.cluster.as_str())));
    }
    // A model with a key gets only its key; one without gets the client's own auth back if an
    // earlier attempt's key replaced it — never that earlier model's key.
    if !m.auth.is_empty() || a.keyed_before {
        out.extend(AUTH_HEADERS.iter().map(|h| HeaderEdit::Remove(h)));
    }
    if m.auth.is_empty() {
        if a.keyed_before {
            out.extend(a.client_auth.iter().map(|(k, v)| HeaderEdit::Set(k.as_str(), Cow::Borrowed(v.as_str()))));
        }
    } else {
        out.extend(m.auth.iter().map(|(k, v)| HeaderEdit::Set(k, Cow::Borrowed(v.expose()))));
    }
    let path = m.upstream_path(a.client_path);
    if a.later || path != a.client_path {
        out.push(HeaderEdit::Set(":path", Cow::Owned(path)));
    }
    match m.endpoint.as_ref() {
        Some(e) => out.push(HeaderEdit::Set(":authority", Cow::Borrowed(e.authority.as_str()))),
        None if a.later && !a.client_authority.is_empty() => {
            out.push(HeaderEdit::Set(":authority", Cow::Borrowed(a.client_authority)))
        }
        None => {}
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use crate::config::Config;

    fn config() -> Config {
        Config::parse(
            "models:\n  - from: openai:a\n    name: keyed\n    params: { cluster: ca, openai_api_key: k }\n  - from: openai:b\n    name: open\n    params: { cluster: cb }\n  - from: openai:c\n    name: far\n    params: { cluster: cc, endpoint: \"https://far.example/x/v1\" }\n",
            &|_| None,
        )
        .unwrap()
    }

    fn sets<'a>(e: &'a [HeaderEdit<'a>]) -> Vec<(&'a str, &'a str)> {
        e.iter()
            .filter_map(|e| match e {
                HeaderEdit::Set(k, v) => Some((*k, v.as_ref())),
                HeaderEdit::Remove(_) => None,
            })
            .collect()
    }

    #[test]
    fn attempt_edits_table() {
        let c = config();
        let auth = vec![("authorization".to_string(), "Bearer client".to_string())];
        let head = |m: usize, keyed_before: bool, later: bool| AttemptHead {
            model: &c.models[m],
            client_path: "/v1/chat/completions",
            client_authority: "llm.local",
            client_auth: &auth,
            keyed_before,
            later,
            content_length: Some(42),
            routing_header: (!later).then_some("x-model-workers-cluster"),
        };
        // Attempt 1 on a keyed model: its key, the routing header, the length.
        let e = header_edits(&head(0, false, false));
        assert!(e.contains(&HeaderEdit::Remove("authorization")));
        assert_eq!(
            sets(&e),
            vec![("content-length", "42"), ("x-model-workers-cluster", "ca"), ("authorization", "Bearer k")]
        );
        // Attempt 1 on an open model: the client's auth untouched.
        let e = header_edits(&head(1, false, false));
        assert!(!e.iter().any(|e| matches!(e, HeaderEdit::Remove("authorization"))));
        // Attempt 2 on an open model after a keyed one: the client's auth back, path and authority restored.
        let e = header_edits(&head(1, true, true));
        assert_eq!(
            sets(&e),
            vec![
                ("content-length", "42"),
                ("authorization", "Bearer client"),
                (":path", "/v1/chat/completions"),
                (":authority", "llm.local")
            ]
        );
        // An endpoint: its path prefix and authority.
        let e = header_edits(&head(2, false, true));
        assert!(sets(&e).contains(&(":path", "/x/v1/chat/completions")));
        assert!(sets(&e).contains(&(":authority", "far.example")));
        // A length not known yet.
        let mut h = head(1, false, true);
        h.content_length = None;
        assert!(header_edits(&h).contains(&HeaderEdit::Remove("content-length")));
    }
}
