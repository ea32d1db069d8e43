//! The attempt plan of one request, and the attempt trail: what the downstream filter decides
//! once and every attempt's upstream filter reads.
//!
//! The downstream filter expands the candidate chain into attempts (each model `1 + max_retries`
//! times, backoff before a same-model retry, capped by `max_attempts`) and writes the plan into
//! Envoy filter state. Envoy's router then makes the attempts (`x-envoy-max-retries` = attempts
//! − 1); the route's matcher picks each attempt's cluster from the filter-state key
//! [`NEXT_KEY`], which every attempt advances. Each attempt appends its outcome to the trail
//! ([`TRAIL_KEY`]), which the downstream filter turns into the `x-model-workers-*` headers.
//!
//! Both encodings are line-based text: model names never contain control characters.

use crate::body::push_u64;
use crate::config::{Config, ModelId};
use crate::failover::Outcome;

/// Filter-state keys (Envoy stores them as `wasm.<key>`).
pub const PLAN_KEY: &str = "model_workers.plan";
pub const NEXT_KEY: &str = "model_workers.next";
pub const TRAIL_KEY: &str = "model_workers.trail";

/// The status an attempt's upstream filter gives a retryable failure so that the router
/// retries it (the route's only `retriable_status_codes` entry). Never reaches a client: the
/// last attempt's failure passes unchanged.
pub const RETRY_STATUS: u16 = 599;

/// One attempt: which model, after how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub model: ModelId,
    /// Backoff before this attempt (same-model retries only).
    pub delay_ms: u64,
    /// The model's breaker was closed with no failures when the request was routed: a
    /// success then changes nothing and skips shared data.
    pub clean: bool,
}

/// Everything an attempt ≥ 2 needs to rewrite the request for its model.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    pub attempts: Vec<Attempt>,
    /// Length of the body as the router holds it (attempt 1's edit applied).
    pub body_len: usize,
    /// The `model` string literal (quotes included) in that body.
    pub lit_start: usize,
    pub lit_end: usize,
    pub stream: bool,
    /// The per-try timeout set for the request (largest attempt timeout + its backoff).
    pub per_try_ms: u64,
    /// The client's `:path` and `:authority`, to restore for models without an endpoint.
    pub client_path: String,
    pub client_authority: String,
    /// The client's own auth headers, kept only when a model without a key follows one with a
    /// key (the keyed attempt replaced them). Never logged.
    pub client_auth: Vec<(String, String)>,
}

impl Plan {
    /// Expand a candidate chain into attempts.
    pub fn attempts(config: &Config, chain: &[ModelId]) -> Vec<Attempt> {
        let cap = config.settings.max_attempts.map_or(usize::MAX, |n| n as usize);
        let mut out = Vec::with_capacity(chain.len());
        for &m in chain {
            let Some(model) = config.model(m) else { continue };
            for k in 0..=model.retry.max_retries {
                if out.len() >= cap {
                    return out;
                }
                let delay_ms = if k == 0 {
                    0
                } else {
                    let exp = (k - 1).min(30);
                    model.retry.backoff_ms.saturating_mul(1u64 << exp).min(config.settings.max_backoff_ms)
                };
                out.push(Attempt { model: m, delay_ms, clean: false });
            }
        }
        out
    }

    /// The plan of a routed request. `literal`: (start, end) of the `model` literal in the body
    /// as the router holds it, and that body's length. The client's auth is kept only when a
    /// model without a key may follow one with a key.
    pub fn for_request(
        config: &Config,
        attempts: Vec<Attempt>,
        literal: (usize, usize, usize),
        stream: bool,
        client_path: String,
        client_authority: String,
        client_auth: Vec<(String, String)>,
    ) -> Plan {
        let (mut any_keyed, mut any_open) = (false, false);
        for m in attempts.iter().filter_map(|a| config.model(a.model)) {
            any_keyed |= !m.auth.is_empty();
            any_open |= m.auth.is_empty();
        }
        Plan {
            per_try_ms: Plan::per_try_timeout(config, &attempts),
            attempts,
            lit_start: literal.0,
            lit_end: literal.1,
            body_len: literal.2,
            stream,
            client_path,
            client_authority,
            client_auth: if any_keyed && any_open { client_auth } else { Vec::new() },
        }
    }

    /// The per-try timeout covering every attempt: Envoy has one per request.
    pub fn per_try_timeout(config: &Config, attempts: &[Attempt]) -> u64 {
        attempts
            .iter()
            .filter_map(|a| config.model(a.model).map(|m| m.retry.timeout_ms.saturating_add(a.delay_ms)))
            .max()
            .unwrap_or(0)
    }

    pub fn attempt(&self, n: usize) -> Option<&Attempt> {
        n.checked_sub(1).and_then(|i| self.attempts.get(i))
    }

    pub fn encode(&self, config: &Config) -> Vec<u8> {
        let mut s = Vec::with_capacity(96 + self.client_path.len() + self.client_authority.len());
        s.extend_from_slice(b"v1");
        for n in
            [self.body_len as u64, self.lit_start as u64, self.lit_end as u64, u64::from(self.stream), self.per_try_ms]
        {
            s.push(b' ');
            push_u64(&mut s, n);
        }
        for (k, v) in [("\npath ", &self.client_path), ("\nauthority ", &self.client_authority)] {
            s.extend_from_slice(k.as_bytes());
            s.extend_from_slice(v.as_bytes());
        }
        s.push(b'\n');
        for (k, v) in &self.client_auth {
            for part in ["auth ", k, " ", v, "\n"] {
                s.extend_from_slice(part.as_bytes());
            }
        }
        for a in &self.attempts {
            let name = config.model(a.model).map_or("", |m| m.name.as_str());
            s.extend_from_slice(b"a ");
            push_u64(&mut s, a.delay_ms);
            s.extend_from_slice(if a.clean { b" 1 " } else { b" 0 " });
            s.extend_from_slice(name.as_bytes());
            s.push(b'\n');
        }
        s
    }

    /// `None` for anything this version did not write.
    pub fn decode(bytes: &[u8], config: &Config) -> Option<Plan> {
        let text = std::str::from_utf8(bytes).ok()?;
        let mut lines = text.split('\n');
        let mut head = lines.next()?.split(' ');
        if head.next()? != "v1" {
            return None;
        }
        let mut num = || head.next().and_then(|v| v.parse::<u64>().ok());
        let body_len = usize::try_from(num()?).ok()?;
        let lit_start = usize::try_from(num()?).ok()?;
        let lit_end = usize::try_from(num()?).ok()?;
        let stream = num()? == 1;
        let per_try_ms = num()?;
        let mut plan = Plan { body_len, lit_start, lit_end, stream, per_try_ms, ..Plan::default() };
        for line in lines {
            if let Some(p) = line.strip_prefix("path ") {
                plan.client_path = p.to_string();
            } else if let Some(a) = line.strip_prefix("authority ") {
                plan.client_authority = a.to_string();
            } else if let Some(kv) = line.strip_prefix("auth ") {
                let (k, v) = kv.split_once(' ')?;
                plan.client_auth.push((k.to_string(), v.to_string()));
            } else if let Some(rest) = line.strip_prefix("a ") {
                let (delay, rest) = rest.split_once(' ')?;
                let (clean, name) = rest.split_once(' ')?;
                let model = match config.resolve(name)? {
                    crate::config::Target::Model(m) => m,
                    crate::config::Target::Worker(_) => return None,
                };
                plan.attempts.push(Attempt { model, delay_ms: delay.parse().ok()?, clean: clean == "1" });
            } else if !line.is_empty() {
                return None;
            }
        }
        Some(plan)
    }
}

/// One finished attempt, as the trail records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub model: ModelId,
    pub outcome: Outcome,
}

/// Append one attempt's outcome to an encoded trail.
pub fn trail_push(trail: &mut Vec<u8>, config: &Config, e: &Entry) {
    let name = config.model(e.model).map_or("?", |m| m.name.as_str());
    trail.extend_from_slice(name.as_bytes());
    trail.push(b'\t');
    trail.extend_from_slice(e.outcome.label().as_bytes());
    trail.push(b'\n');
}

/// The entries of an encoded trail; unreadable entries are skipped.
pub fn trail_decode(bytes: &[u8], config: &Config) -> Vec<Entry> {
    let Ok(text) = std::str::from_utf8(bytes) else { return Vec::new() };
    text.split('\n')
        .filter_map(|line| {
            let (name, label) = line.split_once('\t')?;
            let model = match config.resolve(name)? {
                crate::config::Target::Model(m) => m,
                crate::config::Target::Worker(_) => return None,
            };
            Some(Entry { model, outcome: Outcome::parse(label)? })
        })
        .collect()
}

/// `name=outcome,…` for the `x-model-workers-attempts` header.
pub fn trail_header(config: &Config, entries: &[Entry]) -> String {
    let mut out = String::new();
    for (i, e) in entries.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(config.model(e.model).map_or("?", |m| m.name.as_str()));
        out.push('=');
        out.push_str(&e.outcome.label());
    }
    out
}

/// What the client gets, decided from the trail when the final response arrives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The response passes on; `answer` is the model whose answer it is (None: every attempt
    /// failed and this is the last provider's error).
    Pass { answer: Option<ModelId>, trail: Vec<Entry> },
    /// No provider answered (every attempt reset, timed out, or streamed an error first):
    /// replace the response with this status and an error naming the attempts.
    NoAnswer { status: u16, trail: Vec<Entry> },
}

/// `entries`: the trail; `from_upstream`: the response is a provider's (not Envoy's own
/// reply); `status`: its status; `first`: attempt 1's model, for a request whose cluster had
/// no upstream filter (an empty trail: one attempt).
pub fn verdict(
    config: &Config,
    entries: Vec<Entry>,
    from_upstream: bool,
    status: u16,
    first: Option<ModelId>,
) -> Verdict {
    match entries.last() {
        None if !from_upstream => Verdict::NoAnswer { status: 503, trail: entries },
        None => Verdict::Pass {
            answer: first,
            trail: first.map(|m| vec![Entry { model: m, outcome: Outcome::Status(status) }]).unwrap_or_default(),
        },
        Some(e) if !matches!(e.outcome, Outcome::Status(_)) => {
            let all_timeouts = entries.iter().all(|e| e.outcome == Outcome::Timeout);
            Verdict::NoAnswer { status: if all_timeouts { 504 } else { 503 }, trail: entries }
        }
        Some(e) => {
            let answer = (!e.outcome.is_retryable(config)).then_some(e.model);
            Verdict::Pass { answer, trail: entries }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> Config {
        let text = format!(
            "models:\n  - from: openai:a\n    name: a\n    params: {{ cluster: ca {extra} }}\n  - from: openai:b\n    name: b b\n    params: {{ cluster: cb, timeout: 5s }}\nmodel_workers:\n  max_backoff: 1s\n  timeout: 2s\n"
        );
        Config::parse(&text, &|_| None).unwrap()
    }
    const A: ModelId = ModelId(0);
    const B: ModelId = ModelId(1);

    #[test]
    fn chain_expands_into_attempts_with_backoff() {
        let c = config(", max_retries: 3, backoff: 300ms");
        let got = Plan::attempts(&c, &[A, B]);
        let delays: Vec<(ModelId, u64)> = got.iter().map(|a| (a.model, a.delay_ms)).collect();
        assert!(got.iter().all(|a| !a.clean), "clean is the router's knowledge, set later");
        assert_eq!(delays, vec![(A, 0), (A, 300), (A, 600), (A, 1000), (B, 0)]);
        assert_eq!(Plan::per_try_timeout(&c, &got), 5000);
        let c = config(", timeout: 9s, max_retries: 1, backoff: 300ms");
        assert_eq!(Plan::per_try_timeout(&c, &Plan::attempts(&c, &[A, B])), 9300);
    }

    #[test]
    fn max_attempts_caps_the_plan() {
        let text = "models:\n  - from: openai:a\n    name: a\n    params: { max_retries: 5 }\n  - from: openai:b\n    name: b\nmodel_workers: { max_attempts: 2 }\n";
        let c = Config::parse(text, &|_| None).unwrap();
        assert_eq!(Plan::attempts(&c, &[A, B]).len(), 2);
    }

    #[test]
    fn plan_round_trips() {
        let c = config(", max_retries: 1");
        let mut attempts = Plan::attempts(&c, &[B, A]);
        attempts[0].clean = true;
        let p = Plan {
            attempts,
            body_len: 120,
            lit_start: 9,
            lit_end: 17,
            stream: true,
            per_try_ms: 5000,
            client_path: "/v1/chat/completions?x=1 2".into(),
            client_authority: "llm.local:10000".into(),
            client_auth: vec![("authorization".into(), "Bearer sk client".into())],
        };
        let bytes = p.encode(&c);
        assert_eq!(Plan::decode(&bytes, &c), Some(p.clone()));
        assert_eq!(p.attempt(1).map(|a| a.model), Some(B));
        assert_eq!(p.attempt(3).map(|a| a.delay_ms), Some(100));
        assert_eq!(p.attempt(0), None);
        assert_eq!(p.attempt(4), None);
        for bad in [&b"v2 1 2 3 0 1\n"[..], b"v1 1 2\n", b"v1 1 2 3 0 1\na 0 0 nope\n", b"v1 1 2 3 0 1\nzzz\n", b"\xff"]
        {
            assert_eq!(Plan::decode(bad, &c), None);
        }
    }

    #[test]
    fn verdicts() {
        let c = config("");
        let e = |m, o| Entry { model: m, outcome: o };
        let pass = |answer, trail| Verdict::Pass { answer, trail };
        let cases = [
            // A provider's success, after failures.
            (
                vec![e(A, Outcome::Reset), e(B, Outcome::Status(200))],
                true,
                200,
                pass(Some(B), vec![e(A, Outcome::Reset), e(B, Outcome::Status(200))]),
            ),
            // A client error is the answer.
            (vec![e(A, Outcome::Status(400))], true, 400, pass(Some(A), vec![e(A, Outcome::Status(400))])),
            // Every attempt failed; the last provider's error passes, no model answered.
            (
                vec![e(A, Outcome::Status(503)), e(B, Outcome::Status(429))],
                true,
                429,
                pass(None, vec![e(A, Outcome::Status(503)), e(B, Outcome::Status(429))]),
            ),
            // No provider answered.
            (
                vec![e(A, Outcome::Status(503)), e(B, Outcome::Reset)],
                false,
                503,
                Verdict::NoAnswer { status: 503, trail: vec![e(A, Outcome::Status(503)), e(B, Outcome::Reset)] },
            ),
            (
                vec![e(A, Outcome::Timeout), e(B, Outcome::Timeout)],
                false,
                504,
                Verdict::NoAnswer { status: 504, trail: vec![e(A, Outcome::Timeout), e(B, Outcome::Timeout)] },
            ),
            (
                vec![e(A, Outcome::StreamError)],
                true,
                200,
                Verdict::NoAnswer { status: 503, trail: vec![e(A, Outcome::StreamError)] },
            ),
            // No upstream filter ran (a hand-written route): attempt 1 only.
            (vec![], true, 200, pass(Some(A), vec![e(A, Outcome::Status(200))])),
            (vec![], false, 503, Verdict::NoAnswer { status: 503, trail: vec![] }),
        ];
        for (entries, from_upstream, status, want) in cases {
            assert_eq!(verdict(&c, entries.clone(), from_upstream, status, Some(A)), want, "{entries:?}");
        }
    }

    #[test]
    fn trail_round_trips_into_the_header() {
        let c = config("");
        let mut t = Vec::new();
        for (m, o) in [
            (A, Outcome::Status(503)),
            (A, Outcome::Reset),
            (B, Outcome::Timeout),
            (B, Outcome::StreamError),
            (A, Outcome::Status(200)),
        ] {
            trail_push(&mut t, &c, &Entry { model: m, outcome: o });
        }
        let entries = trail_decode(&t, &c);
        assert_eq!(entries.len(), 5);
        assert_eq!(trail_header(&c, &entries), "a=503,a=reset,b b=timeout,b b=stream_error,a=200");
        assert!(trail_decode(b"junk\nnope\t200\n", &c).is_empty());
    }
}
