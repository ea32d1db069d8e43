//! The bad-input catalog, each case through the real Envoy: malformed, hostile or unsupported
//! requests get an exact status and an OpenAI-style JSON error, reach no backend, crash nothing,
//! and leave Envoy serving the next good request. Plus the good inputs that look odd (unicode
//! escapes, non-UTF-8 header values, chunked uploads split anywhere inside `model`).

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::time::Duration;

use common::*;

const PATH: &str = "/v1/chat/completions";
const LIMIT: usize = 65536;

/// One backend `a` serving model `foo` as `openai:gpt-foo`, with a 64 KiB body limit.
fn config() -> String {
    format!("models:\n{}model_workers: {{ max_body_bytes: {LIMIT} }}\n", model_yaml("foo", "gpt-foo", "a", ""))
}

fn world() -> World {
    World::start(&[("a", &[])], &config())
}

/// A raw HTTP/1.1 request (`Host`, `Connection: close`, and `Content-Length` when there is a
/// body and neither a content-length nor a transfer-encoding header is given). Header values
/// are bytes, so they need not be UTF-8.
fn http(method: &str, path: &str, headers: &[(&str, &[u8])], body: &[u8]) -> Vec<u8> {
    let mut out = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n").into_bytes();
    let has = |n: &str| headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(n));
    for (k, v) in headers {
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(v);
        out.extend_from_slice(b"\r\n");
    }
    if !body.is_empty() && !has("content-length") && !has("transfer-encoding") {
        out.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

/// POST to the chat endpoint with `content-type: application/json`.
fn post(body: &[u8]) -> Vec<u8> {
    http("POST", PATH, &[("content-type", b"application/json")], body)
}

/// `body` in HTTP/1.1 chunked encoding, `size` bytes per chunk, with the final 0-chunk.
fn chunked(body: &[u8], size: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for c in body.chunks(size) {
        out.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        out.extend_from_slice(c);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// The head of a chunked POST (no body bytes).
fn chunked_head() -> Vec<u8> {
    http("POST", PATH, &[("content-type", b"application/json"), ("transfer-encoding", b"chunked")], b"")
}

/// A chat body of about `n` bytes (valid JSON, model `foo`).
fn big_body(n: usize) -> Vec<u8> {
    let head = r#"{"model":"foo","messages":[{"role":"user","content":""#;
    let tail = r#""}]}"#;
    let fill = n.saturating_sub(head.len() + tail.len());
    format!("{head}{}{tail}", "x".repeat(fill)).into_bytes()
}

fn send(w: &World, raw: &[u8]) -> Response {
    send_raw(w.envoy.port, &[raw], Duration::ZERO)
}

/// The OpenAI-style error shape with this status and code, nothing forwarded, and Envoy still
/// serves a good request right after.
fn assert_rejected(w: &World, name: &str, r: &Response, status: u16, code: &str) {
    assert_eq!(r.status, status, "{name}: {}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"), "{name}: {:?}", r.headers);
    let v = r.json();
    let e = v["error"].as_object().unwrap_or_else(|| panic!("{name}: no error object: {v}"));
    assert_eq!(e.len(), 4, "{name}: {v}");
    assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "{name}: {v}");
    assert_eq!(e["type"], "invalid_request_error", "{name}: {v}");
    assert!(e.contains_key("param") && e["param"].is_null(), "{name}: {v}");
    assert_eq!(e["code"], code, "{name}: {v}");
    assert_nothing_forwarded_then_good(w, name);
}

fn assert_nothing_forwarded_then_good(w: &World, name: &str) {
    assert_eq!(w.hits("a"), 0, "{name}: the backend received the request");
    let good = w.chat("foo");
    assert_eq!(good.status, 200, "{name}: good request after it: {}", good.text());
    assert_eq!(good.header("x-mock-model"), Some("gpt-foo"));
    w.mock("a").reset();
}

/// No plugin panic in the log and no wasm VM reload; prints the reload counters that exist.
fn assert_no_crash(w: &World) {
    let log = w.envoy.log();
    assert!(!log.contains("panicked"), "plugin panicked:\n{log}");
    let stats = w.envoy.stats();
    let reload: Vec<&str> = stats.lines().filter(|l| l.starts_with("wasm.") && l.contains("reload")).collect();
    eprintln!("wasm reload counters: {reload:?}");
    assert!(!reload.is_empty(), "no wasm reload counters in /stats:\n{stats}");
    for l in &reload {
        let v: u64 = l.rsplit(": ").next().and_then(|v| v.trim().parse().ok()).unwrap_or(u64::MAX);
        assert_eq!(v, 0, "{l}");
    }
}

#[test]
fn bad_input_catalog() {
    let w = world();
    let deep_valid = format!(r#"{{"model":"foo","x":{}{}}}"#, "[".repeat(10_000), "]".repeat(10_000));
    let model_10k = format!(r#"{{"model":"{}","messages":[]}}"#, "m".repeat(10 * 1024));
    let over = big_body(100 * 1024);
    let mut over_chunked = chunked_head();
    over_chunked.extend(chunked(&over, 8192));
    let with_type = |ct: &'static [u8]| http("POST", PATH, &[("content-type", ct)], br#"{"model":"foo"}"#);
    let with_method = |m: &str| http(m, PATH, &[("content-type", b"application/json")], b"");

    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        // Syntax.
        ("invalid JSON (trailing comma)", post(br#"{"model":"foo",}"#), 400, "invalid_json"),
        ("not JSON at all", post(b"hello"), 400, "invalid_json"),
        ("form data labelled JSON", post(b"model=foo&messages=hi"), 400, "invalid_json"),
        ("truncated body", post(br#"{"model":"foo","messages":[{"role":"us"#), 400, "invalid_json"),
        ("truncated inside model", post(br#"{"model":"fo"#), 400, "invalid_json"),
        ("trailing garbage", post(br#"{"model":"foo"} x"#), 400, "invalid_json"),
        (
            "non-UTF-8 byte in a string",
            post(b"{\"model\":\"foo\",\"messages\":[{\"content\":\"\xff\xfe\"}]}"),
            400,
            "invalid_json",
        ),
        ("non-UTF-8 byte in the model", post(b"{\"model\":\"fo\xc0\"}"), 400, "invalid_json"),
        ("lone surrogate escape in the model", post(br#"{"model":"\ud800foo"}"#), 400, "invalid_json"),
        ("UTF-8 BOM", post(b"\xEF\xBB\xBF{\"model\":\"foo\"}"), 400, "invalid_json"),
        ("10,000 `[`", post("[".repeat(10_000).as_bytes()), 400, "invalid_json"),
        ("valid JSON nested 10,000 deep", post(deep_valid.as_bytes()), 400, "invalid_json"),
        // Shape.
        ("body is an array", post(br#"[{"model":"foo"}]"#), 400, "invalid_body"),
        ("body is a string", post(br#""foo""#), 400, "invalid_body"),
        ("body is a number", post(b"42"), 400, "invalid_body"),
        ("body is null", post(b"null"), 400, "invalid_body"),
        ("missing model", post(br#"{"messages":[{"role":"user","content":"hi"}]}"#), 400, "missing_model"),
        ("model only nested", post(br#"{"messages":[{"model":"foo"}],"x":{"model":"foo"}}"#), 400, "missing_model"),
        ("model is a number", post(br#"{"model":42}"#), 400, "invalid_model"),
        ("model is null", post(br#"{"model":null}"#), 400, "invalid_model"),
        ("model is an object", post(br#"{"model":{"name":"foo"}}"#), 400, "invalid_model"),
        ("model is an array", post(br#"{"model":["foo"]}"#), 400, "invalid_model"),
        ("model is a bool", post(br#"{"model":true}"#), 400, "invalid_model"),
        ("model is empty", post(br#"{"model":""}"#), 400, "invalid_model"),
        ("model is 10 KB", post(model_10k.as_bytes()), 400, "invalid_model"),
        ("duplicate model, same value", post(br#"{"model":"foo","model":"foo"}"#), 400, "duplicate_model"),
        (
            "duplicate model, other value",
            post(br#"{"model":"foo","messages":[],"model":"bar"}"#),
            400,
            "duplicate_model",
        ),
        ("duplicate model via escape", post(br#"{"model":"a", "mod\u0065l":"b"}"#), 400, "duplicate_model"),
        ("unknown model", post(br#"{"model":"nope"}"#), 404, "model_not_found"),
        // Size.
        ("100 KB with content-length", post(&over), 413, "request_too_large"),
        ("100 KB chunked, no content-length", over_chunked, 413, "request_too_large"),
        ("no body, no content-length", with_method("POST"), 400, "missing_body"),
        (
            "content-length: 0",
            http("POST", PATH, &[("content-type", b"application/json"), ("content-length", b"0")], b""),
            400,
            "missing_body",
        ),
        // Encoding and media type. The filter must read `model` to route, and it cannot read a
        // compressed body (it has no decompressor): a compressed body is rejected clearly
        // rather than passed through unrouted.
        (
            "content-encoding: gzip",
            http(
                "POST",
                PATH,
                &[("content-type", b"application/json"), ("content-encoding", b"gzip")],
                b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03",
            ),
            415,
            "unsupported_content_encoding",
        ),
        (
            "content-encoding: br",
            http(
                "POST",
                PATH,
                &[("content-type", b"application/json"), ("content-encoding", b"br")],
                br#"{"model":"foo"}"#,
            ),
            415,
            "unsupported_content_encoding",
        ),
        ("content-type: text/plain", with_type(b"text/plain"), 415, "unsupported_media_type"),
        (
            "content-type: form-urlencoded",
            with_type(b"application/x-www-form-urlencoded"),
            415,
            "unsupported_media_type",
        ),
        ("content-type: multipart", with_type(b"multipart/form-data; boundary=xyz"), 415, "unsupported_media_type"),
        // Methods.
        ("GET", with_method("GET"), 405, "method_not_allowed"),
        ("OPTIONS", with_method("OPTIONS"), 405, "method_not_allowed"),
        (
            "PUT with a body",
            http("PUT", PATH, &[("content-type", b"application/json")], br#"{"model":"foo"}"#),
            405,
            "method_not_allowed",
        ),
        ("DELETE", with_method("DELETE"), 405, "method_not_allowed"),
        (
            "PATCH with a body",
            http("PATCH", PATH, &[("content-type", b"application/json")], br#"{"model":"foo"}"#),
            405,
            "method_not_allowed",
        ),
        ("TRACE", with_method("TRACE"), 405, "method_not_allowed"),
        ("CONNECT", http("CONNECT", "localhost:80", &[], b""), 405, "method_not_allowed"),
        // Envoy joins repeated headers with `,` before the filter reads them: two
        // content-types (even equal ones) or an encoding list containing gzip are rejected.
        (
            "two content-type headers",
            http(
                "POST",
                PATH,
                &[("content-type", b"application/json"), ("content-type", b"text/plain")],
                br#"{"model":"foo"}"#,
            ),
            415,
            "unsupported_media_type",
        ),
        (
            "content-encoding: identity, gzip",
            http(
                "POST",
                PATH,
                &[
                    ("content-type", b"application/json"),
                    ("content-encoding", b"identity"),
                    ("content-encoding", b"gzip"),
                ],
                br#"{"model":"foo"}"#,
            ),
            415,
            "unsupported_content_encoding",
        ),
    ];
    assert!(cases.len() >= 20);
    for (name, raw, status, code) in &cases {
        let r = send(&w, raw);
        assert_rejected(&w, name, &r, *status, code);
    }

    // HEAD has no body: status only.
    let r = request(w.envoy.port, "HEAD", PATH, &[], b"");
    assert_eq!(r.status, 405);
    assert_nothing_forwarded_then_good(&w, "HEAD");

    // GET /v1/models is answered by the filter itself.
    let r = request(w.envoy.port, "GET", "/v1/models", &[], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    let v = r.json();
    assert_eq!(v["object"], "list");
    assert_eq!(v["data"][0]["id"], "foo", "{v}");
    assert_nothing_forwarded_then_good(&w, "GET /v1/models");

    assert_no_crash(&w);
}

#[test]
fn odd_but_valid_inputs_route() {
    let w = world();
    // A unicode-escaped model name is the name it decodes to; the provider gets its own id.
    let r = send(&w, &post(br#"{"model":"\u0066oo","messages":[{"role":"user","content":"hi"}]}"#));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-mock-model"), Some("gpt-foo"));
    assert_eq!(r.json()["mock"]["model"], "gpt-foo");
    assert_eq!(r.header("x-model-workers-model"), Some("foo"));

    // Non-UTF-8 bytes in a header value: the filter reads headers as bytes and must not trap.
    let raw = http(
        "POST",
        PATH,
        &[("content-type", b"application/json"), ("x-foo", b"\xff\xfe bytes \x80")],
        chat_body("foo", false).as_bytes(),
    );
    let r = send(&w, &raw);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["mock"]["model"], "gpt-foo");
    // The header reached the provider untouched (the mock decodes it lossily).
    let seen = r.json()["mock"]["headers"]["x-foo"].as_str().unwrap().to_string();
    assert!(seen.contains("bytes"), "{seen}");

    // Exactly at the limit passes, one byte over does not (checked at header time).
    let at = big_body(LIMIT);
    assert_eq!(at.len(), LIMIT);
    let r = send(&w, &post(&at));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["mock"]["body_bytes"], LIMIT + 4, "rewritten foo → gpt-foo");
    // The same, chunked (no content-length): the filter counts the buffered body.
    let mut raw = chunked_head();
    raw.extend(chunked(&at, 4096));
    let r = send(&w, &raw);
    assert_eq!(r.status, 200, "{}", r.text());
    // `model` last, as the OpenAI SDKs send it: the ~64 KB before it go back to Envoy as their
    // own prepend, after the new literal; the provider gets every other byte unchanged.
    let fill = "y".repeat(LIMIT - 59);
    let last = format!(r#"{{"messages":[{{"role":"user","content":"a{fill}z"}}],"model":"foo"}}"#);
    assert_eq!(last.len(), LIMIT);
    let r = send(&w, &post(last.as_bytes()));
    assert_eq!(r.status, 200, "{}", r.text());
    let got = w.mock("a").last();
    assert_eq!(got["body_bytes"], LIMIT + 4, "rewritten foo → gpt-foo");
    let want: serde_json::Value =
        serde_json::from_str(&last.replace(r#""model":"foo""#, r#""model":"gpt-foo""#)).unwrap();
    assert_eq!(got["body"], want, "the provider got the client's body with only the model replaced");
    w.mock("a").reset();
    let r = send(&w, &post(&big_body(LIMIT + 1)));
    assert_rejected(&w, "one byte over", &r, 413, "request_too_large");
    let mut raw = chunked_head();
    raw.extend(chunked(&big_body(LIMIT + 1), 4096));
    let r = send(&w, &raw);
    assert_rejected(&w, "one byte over, chunked", &r, 413, "request_too_large");

    // `content-type` with parameters and `+json` types are JSON.
    for ct in ["application/json; charset=utf-8", "Application/JSON", "application/vnd.api+json"] {
        let r = request(w.envoy.port, "POST", PATH, &[("content-type", ct)], chat_body("foo", false).as_bytes());
        assert_eq!(r.status, 200, "{ct}: {}", r.text());
    }
    // No content-type at all is accepted (curl -d sends form type, SDKs send JSON; absent is
    // taken as JSON).
    let r = send(&w, &http("POST", PATH, &[], chat_body("foo", false).as_bytes()));
    assert_eq!(r.status, 200, "{}", r.text());
    // `expect: 100-continue` works (Envoy answers the 100 itself).
    let r = request(
        w.envoy.port,
        "POST",
        PATH,
        &[("content-type", "application/json"), ("expect", "100-continue")],
        chat_body("foo", false).as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    // `content-encoding: identity` is no encoding.
    let r = request(
        w.envoy.port,
        "POST",
        PATH,
        &[("content-type", "application/json"), ("content-encoding", "identity")],
        chat_body("foo", false).as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());

    assert_no_crash(&w);
}

/// Observed (Envoy 1.40.0): every invalid `Content-Length` — not a decimal number, signed,
/// hex, overflowing, empty, a list (even of equal values), two headers (even equal ones), or
/// combined with `Transfer-Encoding: chunked` — is answered by Envoy's HTTP/1 codec with
/// `400`, `content-type: text/plain`, body `Bad Request`, `connection: close`, before any
/// filter runs (the filter's request counter does not move). So are a lower-case method
/// (400), a transfer-coding other than `chunked` (501 `Not Implemented`) and HTTP/1.0 (426
/// `Upgrade Required`). Whitespace around the length is legal (OWS) and routes normally.
#[test]
fn invalid_framing_is_rejected_by_envoy_itself() {
    let w = world();
    let body = br#"{"model":"foo"}"#;
    let json: (&str, &[u8]) = ("content-type", b"application/json");
    let cl = |v: &'static [u8]| http("POST", PATH, &[json, ("content-length", v)], body);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("letters", cl(b"abc")),
        ("negative", cl(b"-1")),
        ("plus sign", cl(b"+15")),
        ("hex", cl(b"0xf")),
        ("overflowing", cl(b"99999999999999999999999")),
        ("empty", cl(b"")),
        ("list of two", cl(b"15, 16")),
        ("list of equal values", cl(b"15, 15")),
        (
            "two headers differing",
            http("POST", PATH, &[json, ("content-length", b"15"), ("content-length", b"16")], body),
        ),
        ("two equal headers", http("POST", PATH, &[json, ("content-length", b"15"), ("content-length", b"15")], body)),
        (
            "with transfer-encoding: chunked",
            http(
                "POST",
                PATH,
                &[json, ("content-length", b"15"), ("transfer-encoding", b"chunked")],
                &chunked(body, 15),
            ),
        ),
    ];
    let mut gzip_chunked = http("POST", PATH, &[json, ("transfer-encoding", b"gzip, chunked")], b"");
    gzip_chunked.extend(chunked(body, 5));
    let mut http10 =
        format!("POST {PATH} HTTP/1.0\r\ncontent-type: application/json\r\ncontent-length: 15\r\n\r\n").into_bytes();
    http10.extend_from_slice(body);
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = cases
        .into_iter()
        .map(|(n, raw)| (n, raw, 400, "Bad Request"))
        .chain([
            ("lower-case method", http("post", PATH, &[json], body), 400, "Bad Request"),
            ("transfer-encoding: gzip, chunked", gzip_chunked, 501, "Not Implemented"),
            ("HTTP/1.0", http10, 426, "Upgrade Required"),
        ])
        .collect();
    let filter_requests = || w.envoy.counter("wasmcustom.model_workers.rq_total").expect("rq_total counter");
    for (name, raw, status, text) in &cases {
        let before = filter_requests();
        let r = send(&w, raw);
        assert_eq!(r.status, *status, "{name}: {}", r.text());
        assert_eq!(r.header("content-type"), Some("text/plain"), "{name}: {:?}", r.headers);
        assert_eq!(r.text(), *text, "{name}");
        assert_eq!(filter_requests(), before, "{name}: the filter saw it");
        assert_nothing_forwarded_then_good(&w, name);
    }
    let r = send(&w, &cl(b" 15 "));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["mock"]["body_bytes"], 19);
    assert_no_crash(&w);
}

/// The body arrives in two HTTP chunks split at every byte from the start of the `"model"` key
/// to the end of its value, then in 1-byte chunks; each write is its own TCP segment with a
/// pause, so the filter sees the body in pieces.
#[test]
fn chunked_uploads_split_anywhere_in_model_route() {
    let w = world();
    let body = chat_body("foo", false).into_bytes();
    let text = String::from_utf8(body.clone()).unwrap();
    let key = text.find("\"model\"").unwrap();
    let value_end = key + "\"model\":\"foo\"".len();
    assert_eq!(&text[key..value_end], "\"model\":\"foo\"");
    let head = chunked_head();
    let check = |what: &str, r: &Response| {
        assert_eq!(r.status, 200, "{what}: {}", r.text());
        let m = &r.json()["mock"];
        assert_eq!(m["model"], "gpt-foo", "{what}: {m}");
        assert_eq!(m["body_bytes"], body.len() + 4, "{what}: {m}");
        assert_eq!(r.header("x-model-workers-model"), Some("foo"), "{what}");
    };
    let mut splits = 0u64;
    for at in key..=value_end {
        let (a, b) = body.split_at(at);
        let first = format!("{:x}\r\n", a.len()).into_bytes().into_iter().chain(a.iter().copied()).chain(*b"\r\n");
        let first: Vec<u8> = first.collect();
        let rest = chunked(b, b.len());
        let r = send_raw(w.envoy.port, &[&head, &first, &rest], Duration::from_millis(3));
        check(&format!("split at {at}"), &r);
        splits += 1;
    }
    assert_eq!(splits, 14);

    // Every byte its own chunk, each its own write.
    let pieces: Vec<Vec<u8>> = body.iter().map(|b| chunked(&[*b], 1)[..6].to_vec()).collect();
    let mut parts: Vec<&[u8]> = vec![&head];
    parts.extend(pieces.iter().map(Vec::as_slice));
    parts.push(b"0\r\n\r\n");
    let r = send_raw(w.envoy.port, &parts, Duration::from_millis(1));
    check("1-byte chunks", &r);

    // Every byte its own chunk, all in one write.
    let mut raw = head.clone();
    raw.extend(chunked(&body, 1));
    check("1-byte chunks, one write", &send(&w, &raw));

    assert_eq!(w.hits("a"), splits + 2);
    assert_no_crash(&w);
}

/// Non-UTF-8 header bytes on the failover path must not crash the callout attempt either.
/// Observed: the callout attempt does not carry such a header at all (`dispatch_http_call` in
/// proxy-wasm 0.2 takes `&str` values, so `exchange.rs` drops non-UTF-8 values), while the
/// first attempt (through the route) passes it on unchanged; not asserted either way.
#[test]
fn non_utf8_header_value_on_the_failover_path() {
    let config = format!(
        "models:\n{}{}workers:\n  - name: fb\n    load_balance:\n      routing:\n        - from: primary\n          order: 1\n        - from: foo\n          order: 2\n",
        model_yaml("primary", "gpt-p", "p", ""),
        model_yaml("foo", "gpt-foo", "a", ""),
    );
    let w = World::start(&[("p", &["--status", "503"]), ("a", &[])], &config);
    let raw = http(
        "POST",
        PATH,
        &[("content-type", b"application/json"), ("x-foo", b"\xff\xfe bytes \x80"), ("x-bar", b"plain")],
        chat_body("fb", false).as_bytes(),
    );
    let r = send(&w, &raw);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-model-workers-attempts"), Some("primary=503,foo=200"));
    let hs = &r.json()["mock"]["headers"];
    eprintln!("callout attempt received x-foo={} x-bar={}", hs["x-foo"], hs["x-bar"]);
    assert_eq!(hs["x-bar"], "plain");
    assert_no_crash(&w);
}
