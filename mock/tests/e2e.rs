//! Black-box tests: start the real `mock-provider` binary on an ephemeral
//! loopback port and talk to it with a tiny raw-TCP HTTP/1.1 client.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_mock-provider");

struct Mock {
    child: Child,
    addr: SocketAddr,
}

impl Mock {
    fn start(args: &[&str]) -> Mock {
        let mut child = Command::new(BIN)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn mock-provider");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let parts: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(parts.len(), 3, "bad LISTENING line {line:?}");
        assert_eq!(parts[0], "LISTENING");
        let name_pos = args.iter().position(|a| *a == "--name").unwrap();
        assert_eq!(parts[1], args[name_pos + 1]);
        Mock { child, addr: parts[2].parse().unwrap() }
    }

    fn client(&self) -> Client {
        Client::connect(self.addr)
    }
}

impl Drop for Mock {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// Arrival time of each body chunk (chunked responses only).
    chunks: Vec<(Instant, Vec<u8>)>,
}

impl Resp {
    fn header(&self, n: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str())
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

struct Client {
    r: BufReader<TcpStream>,
}

impl Client {
    fn connect(addr: SocketAddr) -> Client {
        let s = TcpStream::connect(addr).unwrap();
        s.set_nodelay(true).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Client { r: BufReader::new(s) }
    }

    fn send(&mut self, raw: &[u8]) {
        self.r.get_mut().write_all(raw).unwrap();
    }

    fn line(&mut self) -> std::io::Result<String> {
        let mut l = String::new();
        let n = self.r.read_line(&mut l)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        Ok(l.trim_end_matches(['\r', '\n']).to_string())
    }

    /// Reads one response; skips 1xx interim responses.
    fn read(&mut self) -> std::io::Result<Resp> {
        loop {
            let status_line = self.line()?;
            let status: u16 = status_line
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
            let mut headers = Vec::new();
            loop {
                let l = self.line()?;
                if l.is_empty() {
                    break;
                }
                let (k, v) = l.split_once(':').unwrap();
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
            if (100..200).contains(&status) {
                continue;
            }
            let mut resp = Resp { status, headers, body: Vec::new(), chunks: Vec::new() };
            if resp.header("transfer-encoding") == Some("chunked") {
                loop {
                    let size = usize::from_str_radix(&self.line()?, 16).unwrap();
                    if size == 0 {
                        assert_eq!(self.line()?, "");
                        break;
                    }
                    let mut buf = vec![0; size];
                    self.r.read_exact(&mut buf)?;
                    assert_eq!(self.line()?, "");
                    resp.chunks.push((Instant::now(), buf.clone()));
                    resp.body.extend_from_slice(&buf);
                }
            } else {
                let len: usize = resp.header("content-length").unwrap().parse().unwrap();
                resp.body = vec![0; len];
                self.r.read_exact(&mut resp.body)?;
            }
            return Ok(resp);
        }
    }

    fn post(&mut self, path: &str, body: &Value, extra: &str) -> Resp {
        let b = body.to_string();
        self.send(
            format!(
                "POST {path} HTTP/1.1\r\nHost: mock.test\r\ncontent-type: application/json\r\n{extra}content-length: {}\r\n\r\n{b}",
                b.len()
            )
            .as_bytes(),
        );
        self.read().unwrap()
    }

    /// Any method, raw body bytes (for invalid JSON and non-POST requests).
    fn raw(&mut self, method: &str, path: &str, body: &[u8], extra: &str) -> Resp {
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: mock.test\r\ncontent-type: application/json\r\n{extra}content-length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        req.extend_from_slice(body);
        self.send(&req);
        self.read().unwrap()
    }

    fn get(&mut self, path: &str) -> Resp {
        self.send(format!("GET {path} HTTP/1.1\r\nHost: mock.test\r\n\r\n").as_bytes());
        self.read().unwrap()
    }

    /// True if the server closed (EOF) or reset the connection.
    fn closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        match self.r.read(&mut b) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => matches!(e.kind(), std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted),
        }
    }
}

fn chat(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hi"}]})
}

#[test]
fn non_stream_shape_and_headers() {
    let m = Mock::start(&["--name", "alpha"]);
    let mut c = m.client();
    let r = c.post(
        "/v1/chat/completions",
        &chat("gpt-x"),
        "Authorization: Bearer sk-1\r\nx-api-key: k2\r\nX-Custom: a\r\nx-custom: b\r\n",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("x-mock-backend"), Some("alpha"));
    assert_eq!(r.header("x-mock-model"), Some("gpt-x"));
    let v = r.json();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "gpt-x");
    assert!(v["id"].is_string() && v["created"].is_u64());
    assert_eq!(v["choices"][0]["message"]["role"], "assistant");
    assert_eq!(v["choices"][0]["message"]["content"], "Hello from alpha");
    assert!(v["usage"]["total_tokens"].is_u64());
    let mock = &v["mock"];
    assert_eq!(mock["backend"], "alpha");
    assert_eq!(mock["model"], "gpt-x");
    assert_eq!(mock["path"], "/v1/chat/completions");
    assert_eq!(mock["authorization"], "Bearer sk-1");
    assert_eq!(mock["x_api_key"], "k2");
    assert_eq!(mock["anthropic_version"], Value::Null);
    assert_eq!(mock["host"], "mock.test");
    assert_eq!(mock["body_bytes"], chat("gpt-x").to_string().len());
    assert_eq!(mock["headers"]["x-custom"], "a, b");
    assert_eq!(mock["headers"]["content-type"], "application/json");

    // Other endpoints on the same (keep-alive) connection.
    let v = c.post("/v1/completions", &json!({"model": "m1", "prompt": "x"}), "").json();
    assert_eq!(v["object"], "text_completion");
    assert_eq!(v["choices"][0]["text"], "Hello from alpha");
    assert_eq!(v["mock"]["backend"], "alpha");
    let r = c.post("/v1/embeddings", &json!({"model": "e1", "input": ["a", "b", "c"]}), "");
    assert_eq!(r.header("x-mock-model"), Some("e1"));
    let v = r.json();
    assert_eq!(v["data"].as_array().unwrap().len(), 3);
    assert_eq!(v["data"][2]["index"], 2);
    assert!(v["data"][0]["embedding"].as_array().unwrap().len() >= 3);
    assert_eq!(v["mock"]["model"], "e1");
    let v = c.post("/v1/responses", &json!({"model": "r1", "input": "hi"}), "").json();
    assert_eq!(v["object"], "response");
    assert_eq!(v["status"], "completed");
    assert_eq!(v["output"][0]["content"][0]["text"], "Hello from alpha");
    assert_eq!(v["mock"]["path"], "/v1/responses");
    let v = c.get("/v1/models").json();
    assert_eq!(v["data"][0]["id"], "mock-alpha");

    // Errors.
    let r = c.get("/nope");
    assert_eq!(r.status, 404);
    assert!(r.json()["error"]["message"].is_string());
    c.send(b"POST /v1/chat/completions HTTP/1.1\r\nHost: h\r\ncontent-length: 5\r\n\r\n{bad}");
    let r = c.read().unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["type"], "invalid_request_error");
    let r = c.post("/v1/chat/completions", &json!({"messages": []}), "");
    assert_eq!(r.status, 400);

    let s = c.get("/__mock/stats").json();
    assert_eq!(s["name"], "alpha");
    assert_eq!(s["requests"], 8);
    assert_eq!(s["served"], 5);
    assert_eq!(s["faults"], 0);
    assert_eq!(s["by_model"]["gpt-x"], 1);
}

#[test]
fn chunked_request_body_and_expect_continue() {
    let m = Mock::start(&["--name", "b"]);
    let mut c = m.client();
    let body = chat("chunky").to_string();
    let (a, b) = body.split_at(10);
    c.send(
        format!(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: h\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{a}\r\n{:x};ext=1\r\n{b}\r\n0\r\n\r\n",
            a.len(),
            b.len()
        )
        .as_bytes(),
    );
    let r = c.read().unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["mock"]["body_bytes"], body.len());
    assert_eq!(r.json()["model"], "chunky");

    // Expect: 100-continue: the server must say 100 before we send the body.
    c.send(
        format!(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\ncontent-length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    assert_eq!(c.line().unwrap(), "HTTP/1.1 100 Continue");
    assert_eq!(c.line().unwrap(), "");
    c.send(body.as_bytes());
    assert_eq!(c.read().unwrap().status, 200);
}

#[test]
fn keep_alive_and_connection_close() {
    let m = Mock::start(&["--name", "ka"]);
    let mut c = m.client();
    let r1 = c.post("/v1/chat/completions", &chat("m1"), "");
    let r2 = c.post("/v1/chat/completions", &chat("m2"), "");
    assert_eq!((r1.status, r2.status), (200, 200));
    assert_eq!(r2.json()["model"], "m2");
    assert_eq!(r1.header("connection"), None);
    let r3 = c.post("/v1/chat/completions", &chat("m3"), "Connection: close\r\n");
    assert_eq!(r3.status, 200);
    assert_eq!(r3.header("connection"), Some("close"));
    assert!(c.closed(), "server must close after connection: close");
}

#[test]
fn stream_events_are_spaced() {
    let m = Mock::start(&["--name", "s", "--chunks", "5", "--chunk-delay-ms", "60"]);
    let mut c = m.client();
    let mut body = chat("streamer");
    body["stream"] = json!(true);
    let start = Instant::now();
    let r = c.post("/v1/chat/completions", &body, "");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    assert_eq!(r.header("x-mock-backend"), Some("s"));
    assert_eq!(r.header("x-mock-model"), Some("streamer"));
    let content: Vec<&(Instant, Vec<u8>)> = r.chunks.iter().filter(|(_, d)| d.starts_with(b"data: {")).collect();
    assert!(content.len() >= 5, "{} events", content.len());
    for (i, (_, d)) in content.iter().enumerate() {
        let s = std::str::from_utf8(d).unwrap();
        assert!(s.ends_with("\n\n"));
        let v: Value = serde_json::from_str(s.trim_start_matches("data: ").trim()).unwrap();
        assert_eq!(v["object"], "chat.completion.chunk");
        assert_eq!(v["model"], "streamer");
        assert_eq!(v["choices"][0]["delta"]["content"], format!("tok{i} "));
    }
    assert_eq!(r.chunks.last().unwrap().1, b"data: [DONE]\n\n");
    let first = content[0].0;
    let last = content[content.len() - 1].0;
    assert!(first - start < Duration::from_millis(1000), "first event should come promptly");
    assert!(last - first >= Duration::from_millis(4 * 60 * 7 / 10), "events not spaced: {:?}", last - first);
    // Connection is still usable afterwards.
    assert_eq!(c.get("/v1/models").status, 200);

    // Runtime stream shape change + Responses streaming.
    c.post("/__mock/faults", &json!({"chunks": 2, "chunk_delay_ms": 0}), "");
    let r = c.post("/v1/responses", &json!({"model": "r", "input": "x", "stream": true}), "");
    let text = String::from_utf8(r.body).unwrap();
    assert_eq!(text.matches("event: response.output_text.delta").count(), 2);
    assert!(text.contains("event: response.completed"));
}

#[test]
fn status_429_has_retry_after() {
    let m = Mock::start(&["--name", "rl", "--status", "429", "--retry-after", "7"]);
    let mut c = m.client();
    let r = c.post("/v1/chat/completions", &chat("m"), "");
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("7"));
    assert_eq!(r.header("x-mock-backend"), Some("rl"));
    let v = r.json();
    assert_eq!(v["error"]["message"], "mock rl injected 429");
    assert_eq!(v["error"]["code"], 429);
    assert!(v["error"]["type"].is_string());
    // Keep-alive survives injected errors; control API is exempt.
    assert_eq!(c.get("/__mock/stats").status, 200);
    let m2 = Mock::start(&["--name", "e5", "--status", "500"]);
    let r = m2.client().post("/v1/chat/completions", &chat("m"), "");
    assert_eq!(r.status, 500);
    assert_eq!(r.header("retry-after"), None);
}

#[test]
fn reset_closes_without_response() {
    let m = Mock::start(&["--name", "rst", "--reset"]);
    let mut c = m.client();
    c.send(b"POST /v1/chat/completions HTTP/1.1\r\nHost: h\r\ncontent-length: 2\r\n\r\n{}");
    let mut buf = Vec::new();
    match c.r.read_to_end(&mut buf) {
        Ok(_) => assert!(buf.is_empty(), "got a response: {:?}", String::from_utf8_lossy(&buf)),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset),
    }
    assert_eq!(m.client().get("/__mock/stats").json()["faults"], 1);
}

#[test]
fn hang_never_answers() {
    let m = Mock::start(&["--name", "h", "--hang"]);
    let mut c = m.client();
    c.r.get_ref().set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    c.send(b"GET /v1/models HTTP/1.1\r\nHost: h\r\n\r\n");
    let mut b = [0u8; 1];
    let err = c.r.read(&mut b).expect_err("must not answer");
    assert!(matches!(err.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut));
    // Control API still works while another connection hangs.
    let s = m.client().get("/__mock/stats").json();
    assert_eq!((s["requests"].as_u64(), s["faults"].as_u64()), (Some(1), Some(1)));
}

#[test]
fn fault_rate_band_and_exact_stats() {
    let m = Mock::start(&["--name", "fr", "--fault-rate", "0.3", "--faults", "500,503", "--seed", "42"]);
    let mut c = m.client();
    let mut faults = 0u64;
    for _ in 0..200 {
        let r = c.post("/v1/chat/completions", &chat("m"), "");
        match r.status {
            200 => {}
            500 => faults += 1,
            503 => {
                assert_eq!(r.header("retry-after"), Some("1"));
                faults += 1
            }
            s => panic!("unexpected status {s}"),
        }
    }
    assert!((40..=80).contains(&faults), "faults={faults}");
    let s = c.get("/__mock/stats").json();
    assert_eq!(s["requests"], 200);
    assert_eq!(s["faults"], faults);
    assert_eq!(s["served"], 200 - faults);
    assert_eq!(s["by_model"]["m"], 200);

    // Same seed => same sequence (after reseeding via the control API).
    let run = |c: &mut Client| -> Vec<u16> {
        c.post("/__mock/faults", &json!({"fault_rate": 0.3, "faults": [500, 503], "seed": 42}), "");
        (0..50).map(|_| c.post("/v1/chat/completions", &chat("m"), "").status).collect()
    };
    assert_eq!(run(&mut c), run(&mut c));
}

#[test]
fn control_api_changes_faults_at_runtime() {
    let m = Mock::start(&["--name", "ctl"]);
    let mut c = m.client();
    assert_eq!(c.post("/v1/chat/completions", &chat("m"), "").status, 200);
    let r = c.post("/__mock/faults", &json!({"status": 503, "retry_after": 2}), "");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["status"], 503);
    let r = c.post("/v1/chat/completions", &chat("m"), "");
    assert_eq!((r.status, r.header("retry-after")), (503, Some("2")));
    assert_eq!(c.get("/__mock/faults").json()["status"], 503);

    // sse-error for streams.
    c.post("/__mock/faults", &json!({"sse_error": true}), "");
    let mut body = chat("m");
    body["stream"] = json!(true);
    let r = c.post("/v1/chat/completions", &body, "");
    assert_eq!(r.status, 200);
    assert_eq!(r.chunks.len(), 1);
    let ev = String::from_utf8(r.body).unwrap();
    let v: Value = serde_json::from_str(ev.trim_start_matches("data: ").trim()).unwrap();
    assert!(v["error"]["message"].is_string());

    // Delay.
    c.post("/__mock/faults", &json!({"delay_ms": 150}), "");
    let t = Instant::now();
    assert_eq!(c.post("/v1/chat/completions", &chat("m"), "").status, 200);
    assert!(t.elapsed() >= Duration::from_millis(140));

    // Empty object clears everything.
    c.post("/__mock/faults", &json!({}), "");
    assert_eq!(c.post("/v1/chat/completions", &chat("m"), "").status, 200);
    assert_eq!(c.post("/__mock/faults", &json!({"status": "x"}), "").status, 400);
    assert_eq!(c.post("/__mock/faults", &json!({"bogus": 1}), "").status, 400);

    let s = c.get("/__mock/stats").json();
    assert_eq!((s["requests"].as_u64(), s["served"].as_u64(), s["faults"].as_u64()), (Some(5), Some(3), Some(2)));
    assert_eq!(c.post("/__mock/reset", &json!({}), "").status, 200);
    let s = c.get("/__mock/stats").json();
    assert_eq!((s["requests"].as_u64(), s["served"].as_u64(), s["faults"].as_u64()), (Some(0), Some(0), Some(0)));
    assert_eq!(s["by_model"], json!({}));
}

#[test]
fn concurrent_stats_are_exact() {
    let m = Mock::start(&["--name", "cc"]);
    let addr = m.addr;
    let threads: Vec<_> = (0..8)
        .map(|t| {
            std::thread::spawn(move || {
                let mut c = Client::connect(addr);
                for _ in 0..100 {
                    assert_eq!(c.post("/v1/chat/completions", &chat(&format!("m{}", t % 2)), "").status, 200);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let s = m.client().get("/__mock/stats").json();
    assert_eq!(s["requests"], 800);
    assert_eq!(s["served"], 800);
    assert_eq!(s["by_model"], json!({"m0": 400, "m1": 400}));
}

#[test]
fn garbage_input_does_not_kill_server() {
    let m = Mock::start(&["--name", "g"]);
    for raw in [
        &b"\x00\x01\x02 garbage\r\n\r\n"[..],
        b"POST /v1/chat/completions HTTP/1.1\r\ncontent-length: zz\r\n\r\n",
        b"POST /v1/chat/completions HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\nnothex\r\n",
        b"GET / HTTP/1.1\r\n", // truncated
    ] {
        let mut c = m.client();
        c.send(raw);
        c.r.get_mut().shutdown(std::net::Shutdown::Write).unwrap();
        let mut out = Vec::new();
        let _ = c.r.read_to_end(&mut out);
    }
    assert_eq!(m.client().get("/v1/models").status, 200);
}

#[test]
fn non_loopback_bind_refused() {
    for addr in ["0.0.0.0:0", "192.0.2.1:8080", "[::]:0"] {
        let out = Command::new(BIN).args(["--name", "x", "--listen", addr]).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{addr}");
        assert!(out.stdout.is_empty());
        assert!(String::from_utf8_lossy(&out.stderr).contains("non-loopback"));
    }
    let out = Command::new(BIN).args(["--listen", "127.0.0.1:0"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "missing --name");
}

#[test]
fn throughput_sequential_keep_alive() {
    let m = Mock::start(&["--name", "tp"]);
    let mut c = m.client();
    let n = 2000;
    let t = Instant::now();
    for _ in 0..n {
        assert_eq!(c.post("/v1/chat/completions", &chat("m"), "").status, 200);
    }
    let el = t.elapsed();
    let rps = f64::from(n) / el.as_secs_f64();
    eprintln!("throughput: {n} sequential keep-alive requests in {el:?} = {rps:.0} req/s");
    assert!(rps > 200.0, "{rps:.0} req/s");
}

// ---------------------------------------------------------------- Anthropic Messages API

/// Headers the real Anthropic API requires.
const ANTHROPIC: &str = "x-api-key: sk-ant-test\r\nanthropic-version: 2023-06-01\r\n";

fn user(text: &str) -> Value {
    json!({"role": "user", "content": text})
}

/// A minimal valid Messages request.
fn msgs_body() -> Value {
    json!({"model": "claude-test", "max_tokens": 64, "messages": [user("hi")]})
}

/// Applies `patch` (object merged at the top level; `null` deletes a key) to a valid body.
fn with(patch: Value) -> Value {
    let mut b = msgs_body();
    for (k, v) in patch.as_object().unwrap() {
        if v.is_null() {
            b.as_object_mut().unwrap().remove(k);
        } else {
            b[k] = v.clone();
        }
    }
    b
}

fn weather_tool(name: &str) -> Value {
    json!({"name": name, "description": "weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}})
}

/// Asserts an Anthropic-shaped error: status, `error.type`, and words of the message.
fn assert_anthropic_error(r: &Resp, status: u16, kind: &str, words: &str, case: &str) {
    let v = r.json();
    assert_eq!(r.status, status, "{case}: {v}");
    assert_eq!(v["type"], "error", "{case}: {v}");
    assert_eq!(v["error"]["type"], kind, "{case}: {v}");
    let msg = v["error"]["message"].as_str().unwrap_or_else(|| panic!("{case}: no message in {v}"));
    assert!(msg.contains(words), "{case}: message {msg:?} lacks {words:?}");
    assert!(v["request_id"].as_str().unwrap().starts_with("req_"), "{case}: {v}");
    assert!(r.header("request-id").is_some(), "{case}");
    assert_eq!(r.header("content-type"), Some("application/json"), "{case}");
}

#[test]
fn anthropic_validation_table() {
    let m = Mock::start(&["--name", "ant"]);
    let mut c = m.client();
    let tu = |id: &str| json!({"type": "tool_use", "id": id, "name": "get_weather", "input": {"city": "Paris"}});
    let tr = |id: &str| json!({"type": "tool_result", "tool_use_id": id, "content": "sunny"});
    let asst = |content: Value| json!({"role": "assistant", "content": content});
    let usr = |content: Value| json!({"role": "user", "content": content});
    let img = |source: Value| usr(json!([{"type": "image", "source": source}]));
    let tools = json!([weather_tool("get_weather")]);
    // (case, body, status, error type, words of the message)
    let cases: Vec<(&str, Value, u16, &str, &str)> = vec![
        ("model missing", with(json!({"model": null})), 400, "invalid_request_error", "model: Field required"),
        ("model not a string", with(json!({"model": 5})), 400, "invalid_request_error", "model: Input should be a valid string"),
        ("max_tokens missing", with(json!({"max_tokens": null})), 400, "invalid_request_error", "max_tokens: Field required"),
        ("max_tokens 0", with(json!({"max_tokens": 0})), 400, "invalid_request_error", "max_tokens: Input should be greater than or equal to 1"),
        ("max_tokens string", with(json!({"max_tokens": "64"})), 400, "invalid_request_error", "max_tokens: Input should be a valid integer"),
        ("max_tokens float", with(json!({"max_tokens": 1.5})), 400, "invalid_request_error", "max_tokens: Input should be a valid integer"),
        ("messages missing", with(json!({"messages": null})), 400, "invalid_request_error", "messages: Field required"),
        ("messages not a list", with(json!({"messages": "hi"})), 400, "invalid_request_error", "messages: Input should be a valid list"),
        ("messages empty", with(json!({"messages": []})), 400, "invalid_request_error", "messages: at least one message is required"),
        ("message not an object", with(json!({"messages": ["hi"]})), 400, "invalid_request_error", "messages.0: Input should be a valid dictionary"),
        ("system role", with(json!({"messages": [{"role": "system", "content": "be brief"}, user("hi")]})), 400, "invalid_request_error",
            "messages: Unexpected role \"system\". The Messages API accepts a top-level `system` parameter"),
        ("tool role", with(json!({"messages": [user("hi"), {"role": "tool", "content": "x", "tool_call_id": "c1"}]})), 400,
            "invalid_request_error", "messages.1.role: Input should be 'user' or 'assistant'"),
        ("role missing", with(json!({"messages": [{"content": "hi"}]})), 400, "invalid_request_error", "messages.0.role: Field required"),
        ("content missing", with(json!({"messages": [{"role": "user"}]})), 400, "invalid_request_error", "messages.0.content: Field required"),
        ("content a number", with(json!({"messages": [usr(json!(5))]})), 400, "invalid_request_error", "messages.0.content: Input should be a valid list"),
        ("message extra field", with(json!({"messages": [{"role": "user", "content": "hi", "name": "bob"}]})), 400,
            "invalid_request_error", "messages.0.name: Extra inputs are not permitted"),
        ("OpenAI tool_calls", with(json!({"messages": [user("hi"), {"role": "assistant", "content": "x", "tool_calls": []}, user("go")]})),
            400, "invalid_request_error", "messages.1.tool_calls: Extra inputs are not permitted"),
        ("first message assistant", with(json!({"messages": [asst(json!("hello")), user("hi")]})), 400, "invalid_request_error",
            "messages: first message must use the \"user\" role"),
        ("two user turns", with(json!({"messages": [user("a"), user("b")]})), 400, "invalid_request_error",
            "roles must alternate between \"user\" and \"assistant\", but found multiple \"user\" roles in a row"),
        ("two assistant turns", with(json!({"messages": [user("a"), asst(json!("b")), asst(json!("c"))]})), 400,
            "invalid_request_error", "found multiple \"assistant\" roles in a row"),
        ("empty string content", with(json!({"messages": [user("")]})), 400, "invalid_request_error",
            "messages.0: all messages must have non-empty content except for the optional final assistant message"),
        ("empty block list", with(json!({"messages": [usr(json!([]))]})), 400, "invalid_request_error", "messages.0: all messages must have non-empty content"),
        ("block without type", with(json!({"messages": [usr(json!([{"text": "hi"}]))]})), 400, "invalid_request_error",
            "messages.0.content.0: Unable to extract tag using discriminator 'type'"),
        ("OpenAI image_url block", with(json!({"messages": [usr(json!([{"type": "image_url", "image_url": {"url": "http://x/y.png"}}]))]})),
            400, "invalid_request_error", "messages.0.content.0: Input tag 'image_url' found using 'type' does not match any of the expected tags: 'text', 'image'"),
        ("text block without text", with(json!({"messages": [usr(json!([{"type": "text"}]))]})), 400, "invalid_request_error",
            "messages.0.content.0.text.text: Field required"),
        ("text block extra field", with(json!({"messages": [usr(json!([{"type": "text", "text": "hi", "name": "x"}]))]})), 400,
            "invalid_request_error", "messages.0.content.0.text.name: Extra inputs are not permitted"),
        ("empty text block", with(json!({"messages": [usr(json!([{"type": "text", "text": ""}]))]})), 400, "invalid_request_error",
            "messages: text content blocks must be non-empty"),
        ("whitespace text block", with(json!({"messages": [usr(json!([{"type": "text", "text": "  "}]))]})), 400,
            "invalid_request_error", "messages: text content blocks must contain non-whitespace text"),
        ("bad cache_control", with(json!({"messages": [usr(json!([{"type": "text", "text": "hi", "cache_control": {"type": "forever"}}]))]})),
            400, "invalid_request_error", "messages.0.content.0.text.cache_control.type: Input should be 'ephemeral'"),
        ("image media type", with(json!({"messages": [img(json!({"type": "base64", "media_type": "image/bmp", "data": "AAAA"}))]})), 400,
            "invalid_request_error",
            "messages.0.content.0.image.source.base64.media_type: Input should be 'image/jpeg', 'image/png', 'image/gif' or 'image/webp'"),
        ("image url without url", with(json!({"messages": [img(json!({"type": "url"}))]})), 400, "invalid_request_error",
            "messages.0.content.0.image.source.url.url: Field required"),
        ("image source type", with(json!({"messages": [img(json!({"type": "file", "file_id": "f"}))]})), 400, "invalid_request_error",
            "messages.0.content.0.image.source: Input tag 'file' found using 'type' does not match any of the expected tags: 'base64', 'url'"),
        ("tool_use input as string", with(json!({"tools": tools, "messages": [user("w"),
            asst(json!([{"type": "tool_use", "id": "t1", "name": "get_weather", "input": "{\"city\":\"Paris\"}"}])), usr(json!([tr("t1")]))]})),
            400, "invalid_request_error", "messages.1.content.0.tool_use.input: Input should be a valid dictionary"),
        ("tool_result without tool_use", with(json!({"messages": [usr(json!([tr("t9")]))]})), 400, "invalid_request_error",
            "messages.0.content.0: unexpected `tool_use_id` found in `tool_result` blocks: t9. Each `tool_result` block must have a corresponding `tool_use` block in the previous message."),
        ("tool_use without tool_result", with(json!({"tools": tools, "messages": [user("w"), asst(json!([tu("t1")])), user("next")]})),
            400, "invalid_request_error",
            "messages.1: `tool_use` ids were found without `tool_result` blocks immediately after: t1. Each `tool_use` block must have a corresponding `tool_result` block in the next message."),
        ("tool_result in assistant", with(json!({"messages": [user("w"), asst(json!([tr("t1")]))]})), 400, "invalid_request_error",
            "messages.1.content.0: `tool_result` blocks can only be in `user` messages"),
        ("final assistant trailing whitespace", with(json!({"messages": [user("hi"), asst(json!("Sure, "))]})), 400,
            "invalid_request_error", "messages: final assistant content cannot end with trailing whitespace"),
        ("system a number", with(json!({"system": 5})), 400, "invalid_request_error", "system: Input should be a valid list"),
        ("system block type", with(json!({"system": [{"type": "image", "text": "x"}]})), 400, "invalid_request_error", "system.0.type: Input should be 'text'"),
        ("system empty block", with(json!({"system": [{"type": "text", "text": ""}]})), 400, "invalid_request_error", "system: text content blocks must be non-empty"),
        ("OpenAI function tool", with(json!({"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]})),
            400, "invalid_request_error", "tools.0: Input tag 'function' found using 'type' does not match any of the expected tags: 'custom'"),
        ("tool without input_schema", with(json!({"tools": [{"name": "f"}]})), 400, "invalid_request_error", "tools.0.custom.input_schema: Field required"),
        ("tool without name", with(json!({"tools": [{"input_schema": {"type": "object"}}]})), 400, "invalid_request_error", "tools.0.custom.name: Field required"),
        ("tool name pattern", with(json!({"tools": [{"name": "mcp.get", "input_schema": {"type": "object"}}]})), 400, "invalid_request_error",
            "tools.0.custom.name: String should match pattern '^[a-zA-Z0-9_-]{1,128}$'"),
        ("input_schema without type", with(json!({"tools": [{"name": "f", "input_schema": {"properties": {}}}]})), 400,
            "invalid_request_error", "tools.0.custom.input_schema.type: Field required"),
        ("tool extra field", with(json!({"tools": [{"name": "f", "input_schema": {"type": "object"}, "parameters": {}}]})), 400,
            "invalid_request_error", "tools.0.custom.parameters: Extra inputs are not permitted"),
        ("duplicate tool names", with(json!({"tools": [weather_tool("f"), weather_tool("f")]})), 400, "invalid_request_error", "tools: Tool names must be unique."),
        ("tool_choice string", with(json!({"tools": tools, "tool_choice": "auto"})), 400, "invalid_request_error",
            "tool_choice: Input should be a valid dictionary or object to extract fields from"),
        ("tool_choice required", with(json!({"tools": tools, "tool_choice": {"type": "required"}})), 400, "invalid_request_error",
            "tool_choice: Input tag 'required' found using 'type' does not match any of the expected tags: 'auto', 'any', 'tool', 'none'"),
        ("tool_choice OpenAI function", with(json!({"tools": tools, "tool_choice": {"type": "function", "function": {"name": "get_weather"}}})),
            400, "invalid_request_error", "tool_choice: Input tag 'function'"),
        ("tool_choice tool without name", with(json!({"tools": tools, "tool_choice": {"type": "tool"}})), 400, "invalid_request_error",
            "tool_choice.tool.name: Field required"),
        ("tool_choice without tools", with(json!({"tool_choice": {"type": "any"}})), 400, "invalid_request_error",
            "tool_choice may only be specified while providing tools"),
        ("temperature above 1", with(json!({"temperature": 1.5})), 400, "invalid_request_error", "temperature: Input should be less than or equal to 1"),
        ("temperature negative", with(json!({"temperature": -0.5})), 400, "invalid_request_error", "temperature: Input should be greater than or equal to 0"),
        ("top_p above 1", with(json!({"top_p": 2})), 400, "invalid_request_error", "top_p: Input should be less than or equal to 1"),
        ("top_k negative", with(json!({"top_k": -1})), 400, "invalid_request_error", "top_k: Input should be greater than or equal to 0"),
        ("stop_sequences string", with(json!({"stop_sequences": "x"})), 400, "invalid_request_error", "stop_sequences: Input should be a valid list"),
        ("stream not bool", with(json!({"stream": "yes"})), 400, "invalid_request_error", "stream: Input should be a valid boolean"),
        ("metadata extra", with(json!({"metadata": {"user_id": "u", "session": "s"}})), 400, "invalid_request_error", "metadata.session: Extra inputs are not permitted"),
        ("service_tier", with(json!({"service_tier": "flex"})), 400, "invalid_request_error", "service_tier: Input should be 'auto' or 'standard_only'"),
        ("thinking budget too small", with(json!({"thinking": {"type": "enabled", "budget_tokens": 100}})), 400, "invalid_request_error",
            "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024"),
        ("thinking budget >= max_tokens", with(json!({"max_tokens": 2000, "thinking": {"type": "enabled", "budget_tokens": 2000}})), 400,
            "invalid_request_error", "`max_tokens` must be greater than `thinking.budget_tokens`"),
        ("OpenAI n", with(json!({"n": 1})), 400, "invalid_request_error", "n: Extra inputs are not permitted"),
        ("OpenAI frequency_penalty", with(json!({"frequency_penalty": 0.5})), 400, "invalid_request_error", "frequency_penalty: Extra inputs are not permitted"),
        ("OpenAI presence_penalty", with(json!({"presence_penalty": 0.5})), 400, "invalid_request_error", "presence_penalty: Extra inputs are not permitted"),
        ("OpenAI stream_options", with(json!({"stream": true, "stream_options": {"include_usage": true}})), 400, "invalid_request_error",
            "stream_options: Extra inputs are not permitted"),
        ("OpenAI response_format", with(json!({"response_format": {"type": "json_object"}})), 400, "invalid_request_error",
            "response_format: Extra inputs are not permitted"),
        ("OpenAI stop", with(json!({"stop": ["\n"]})), 400, "invalid_request_error", "stop: Extra inputs are not permitted"),
        ("OpenAI user", with(json!({"user": "u1"})), 400, "invalid_request_error", "user: Extra inputs are not permitted"),
        ("OpenAI max_completion_tokens", with(json!({"max_completion_tokens": 5})), 400, "invalid_request_error",
            "max_completion_tokens: Extra inputs are not permitted"),
        ("OpenAI parallel_tool_calls", with(json!({"tools": tools, "parallel_tool_calls": false})), 400, "invalid_request_error",
            "parallel_tool_calls: Extra inputs are not permitted"),
        ("provider prefix left in model", with(json!({"model": "anthropic:claude-test"})), 404, "not_found_error", "model: anthropic:claude-test"),
    ];
    for (case, body, status, kind, words) in &cases {
        let r = c.post("/v1/messages", body, ANTHROPIC);
        assert_anthropic_error(&r, *status, kind, words, case);
        assert_eq!(r.header("x-mock-backend"), Some("ant"), "{case}");
    }

    // Header and framing rules.
    let body = msgs_body();
    let r = c.post("/v1/messages", &body, "anthropic-version: 2023-06-01\r\n");
    assert_anthropic_error(&r, 401, "authentication_error", "x-api-key header is required", "no x-api-key");
    let r = c.post("/v1/messages", &body, "Authorization: Bearer sk-ant\r\nanthropic-version: 2023-06-01\r\n");
    assert_anthropic_error(
        &r,
        401,
        "authentication_error",
        "x-api-key header is required",
        "bearer instead of x-api-key",
    );
    let r = c.post("/v1/messages", &body, "x-api-key: k\r\n");
    assert_anthropic_error(&r, 400, "invalid_request_error", "anthropic-version: header is required", "no version");
    let r = c.post("/v1/messages", &body, "x-api-key: k\r\nanthropic-version: 2024-01-01\r\n");
    assert_anthropic_error(
        &r,
        400,
        "invalid_request_error",
        "anthropic-version: \"2024-01-01\" is not a valid version",
        "bad version",
    );
    let r = c.raw("POST", "/v1/messages", b"{bad", ANTHROPIC);
    assert_anthropic_error(&r, 400, "invalid_request_error", "The request body is not valid JSON", "invalid JSON");
    let r = c.raw("POST", "/v1/messages", b"[1]", ANTHROPIC);
    assert_anthropic_error(&r, 400, "invalid_request_error", "Input should be a valid dictionary", "array body");
    let r = c.raw("GET", "/v1/messages", b"", ANTHROPIC);
    assert_anthropic_error(&r, 404, "not_found_error", "Not Found", "GET");
    let r = c.post("/v1/messages/count_tokens", &body, ANTHROPIC);
    assert_anthropic_error(&r, 404, "not_found_error", "Not Found", "unmodelled sub-path");

    // Valid shapes are accepted.
    let png = json!({"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="});
    let oks: Vec<(&str, Value)> = vec![
        ("minimal", msgs_body()),
        ("version 2023-01-01", msgs_body()),
        ("system string", with(json!({"system": "be brief"}))),
        (
            "system blocks",
            with(
                json!({"system": [{"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral", "ttl": "1h"}}]}),
            ),
        ),
        (
            "all sampling params",
            with(json!({"temperature": 0.7, "top_p": 0.9, "top_k": 40, "stop_sequences": ["END"],
            "metadata": {"user_id": "u1"}, "service_tier": "auto", "stream": false})),
        ),
        ("nulls are absent", with(json!({"temperature": Value::Null, "system": Value::Null}))),
        (
            "image blocks",
            with(
                json!({"messages": [usr(json!([{"type": "text", "text": "what is this?"}, {"type": "image", "source": png},
            {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}}]))]}),
            ),
        ),
        (
            "documents",
            with(json!({"messages": [usr(json!([
            {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="}, "title": "t"},
            {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "plain"}, "citations": {"enabled": true}},
            {"type": "document", "source": {"type": "url", "url": "https://example.com/a.pdf"}},
            {"type": "text", "text": "summarise"}]))]})),
        ),
        (
            "tool round trip",
            with(json!({"tools": tools, "messages": [user("weather in Paris?"),
            asst(json!([{"type": "text", "text": "Let me check."}, tu("t1")])),
            usr(json!([{"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "text", "text": "sunny"}], "is_error": false}]))]})),
        ),
        ("prefill", with(json!({"messages": [user("hi"), asst(json!("Sure"))]}))),
        ("empty final assistant", with(json!({"messages": [user("hi"), asst(json!(""))]}))),
        (
            "tool_choice shapes",
            with(json!({"tools": tools, "tool_choice": {"type": "auto", "disable_parallel_tool_use": true}})),
        ),
        ("tool_choice none", with(json!({"tools": tools, "tool_choice": {"type": "none"}}))),
        ("server tool", with(json!({"tools": [{"type": "web_search_20250305", "name": "web_search", "max_uses": 3}]}))),
        ("thinking", with(json!({"max_tokens": 4096, "thinking": {"type": "enabled", "budget_tokens": 1024}}))),
        (
            "thinking blocks",
            with(
                json!({"messages": [user("hi"), asst(json!([{"type": "thinking", "thinking": "hmm", "signature": "sig"},
            {"type": "redacted_thinking", "data": "xx"}, {"type": "text", "text": "ok"}])), user("more")]}),
            ),
        ),
    ];
    for (case, body) in &oks {
        let hdr =
            if *case == "version 2023-01-01" { "x-api-key: k\r\nanthropic-version: 2023-01-01\r\n" } else { ANTHROPIC };
        let r = c.post("/v1/messages", body, hdr);
        assert_eq!(r.status, 200, "{case}: {}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.json()["type"], "message", "{case}");
    }
    let s = c.get("/__mock/stats").json();
    let total = (cases.len() + 8 + oks.len()) as u64;
    assert_eq!((s["requests"].as_u64(), s["served"].as_u64()), (Some(total), Some(oks.len() as u64)));
}

#[test]
fn openai_body_on_messages_is_rejected() {
    let m = Mock::start(&["--name", "strict"]);
    let mut c = m.client();
    // What an OpenAI client sends; fixing each complaint in turn reveals the next one.
    let mut body = json!({
        "model": "claude-test",
        "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
        "n": 1,
        "stream_options": {"include_usage": true},
        "stream": true,
        "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}],
        "tool_choice": "auto",
    });
    let mut expect = |b: &Value, words: &str| {
        let r = c.post("/v1/messages", b, ANTHROPIC);
        assert_anthropic_error(&r, 400, "invalid_request_error", words, words);
    };
    expect(&body, "max_tokens: Field required");
    body["max_tokens"] = json!(64);
    expect(&body, "messages: Unexpected role \"system\"");
    body["system"] = json!("be brief");
    body["messages"] = json!([{"role": "user", "content": "hi"}]);
    expect(&body, "tool_choice: Input should be a valid dictionary or object to extract fields from");
    body["tool_choice"] = json!({"type": "auto"});
    expect(&body, "tools.0: Input tag 'function'");
    body["tools"] = json!([weather_tool("get_weather")]);
    expect(&body, "n: Extra inputs are not permitted");
    body.as_object_mut().unwrap().remove("n");
    expect(&body, "stream_options: Extra inputs are not permitted");
    body.as_object_mut().unwrap().remove("stream_options");
    let r = c.post("/v1/messages", &body, ANTHROPIC);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    // The same OpenAI body is fine on the OpenAI endpoint of the same mock.
    assert_eq!(
        c.post("/v1/chat/completions", &json!({"model": "m", "messages": [user("hi")], "n": 1}), "").status,
        200
    );
}

#[test]
fn anthropic_json_answer_shape() {
    let m = Mock::start(&["--name", "claude1"]);
    let mut c = m.client();
    let r = c.post("/v1/messages", &msgs_body(), ANTHROPIC);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("x-mock-backend"), Some("claude1"));
    assert_eq!(r.header("x-mock-model"), Some("claude-test"));
    assert!(r.header("request-id").unwrap().starts_with("req_"));
    let v = r.json();
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        ["content", "id", "model", "role", "stop_reason", "stop_sequence", "type", "usage"],
        "no extra fields: {v}"
    );
    assert!(v["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(v["type"], "message");
    assert_eq!(v["role"], "assistant");
    assert_eq!(v["model"], "claude-test");
    assert_eq!(v["content"], json!([{"type": "text", "text": "Hello from claude1"}]));
    assert_eq!(v["stop_reason"], "end_turn");
    assert_eq!(v["stop_sequence"], Value::Null);
    assert!(v["usage"]["input_tokens"].as_u64().unwrap() >= 1);
    assert_eq!(v["usage"]["output_tokens"], 3);

    // max_tokens and stop_sequences shape the answer like a real model's.
    let v = c.post("/v1/messages", &with(json!({"max_tokens": 2})), ANTHROPIC).json();
    assert_eq!((v["content"][0]["text"].as_str(), v["stop_reason"].as_str()), (Some("Hello from"), Some("max_tokens")));
    assert_eq!(v["usage"]["output_tokens"], 2);
    let v = c.post("/v1/messages", &with(json!({"stop_sequences": ["zzz", " from"]})), ANTHROPIC).json();
    assert_eq!(v["content"][0]["text"], "Hello");
    assert_eq!((v["stop_reason"].as_str(), v["stop_sequence"].as_str()), (Some("stop_sequence"), Some(" from")));

    // Stats count the Anthropic model like any other.
    let s = c.get("/__mock/stats").json();
    assert_eq!(s["by_model"]["claude-test"], 3);
    assert_eq!(s["served"], 3);
}

#[test]
fn anthropic_tool_use_answer() {
    let m = Mock::start(&["--name", "tools"]);
    let mut c = m.client();
    let tools = json!([weather_tool("get_weather"), weather_tool("other")]);
    // `auto` (or no tool_choice) + "weather" in the last user message: text + tool_use.
    let v = c
        .post(
            "/v1/messages",
            &with(json!({"tools": tools, "messages": [user("What's the Weather in Paris?")]})),
            ANTHROPIC,
        )
        .json();
    assert_eq!(v["stop_reason"], "tool_use");
    assert_eq!(v["content"][0], json!({"type": "text", "text": "Hello from tools"}));
    let call = &v["content"][1];
    assert_eq!(call["type"], "tool_use");
    assert!(call["id"].as_str().unwrap().starts_with("toolu_"));
    assert_eq!(call["name"], "get_weather");
    assert_eq!(call["input"], json!({"city": "Paris"}));
    // No trigger word: a plain text answer.
    let v = c.post("/v1/messages", &with(json!({"tools": tools})), ANTHROPIC).json();
    assert_eq!((v["stop_reason"].as_str(), v["content"].as_array().unwrap().len()), (Some("end_turn"), 1));
    // Forced by tool_choice: only the tool_use block (no preamble), named as asked.
    let v = c.post("/v1/messages", &with(json!({"tools": tools, "tool_choice": {"type": "any"}})), ANTHROPIC).json();
    assert_eq!(v["content"].as_array().unwrap().len(), 1);
    assert_eq!((v["content"][0]["name"].as_str(), v["stop_reason"].as_str()), (Some("get_weather"), Some("tool_use")));
    let v = c
        .post(
            "/v1/messages",
            &with(json!({"tools": tools, "tool_choice": {"type": "tool", "name": "other"}})),
            ANTHROPIC,
        )
        .json();
    assert_eq!(v["content"][0]["name"], "other");
    // tool_choice none wins over the trigger word.
    let v = c
        .post(
            "/v1/messages",
            &with(json!({"tools": tools, "tool_choice": {"type": "none"}, "messages": [user("weather?")]})),
            ANTHROPIC,
        )
        .json();
    assert_eq!(v["stop_reason"], "end_turn");
    // The follow-up turn with the tool result gets a text answer.
    let id = call["id"].as_str().unwrap();
    let follow = with(json!({"tools": tools, "messages": [
        user("What's the weather in Paris?"),
        {"role": "assistant", "content": v["content"].clone().as_array().unwrap().iter().cloned()
            .chain([json!({"type": "tool_use", "id": id, "name": "get_weather", "input": {"city": "Paris"}})]).collect::<Vec<_>>()},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": id, "content": "sunny, 24°C"}]},
    ]}));
    let v = c.post("/v1/messages", &follow, ANTHROPIC).json();
    assert_eq!((v["stop_reason"].as_str(), v["content"][0]["type"].as_str()), (Some("end_turn"), Some("text")));
}

/// (event name, data JSON, arrival) of an Anthropic SSE response, checking the framing.
fn sse_events(r: &Resp) -> Vec<(String, Value, Instant)> {
    let mut out = Vec::new();
    for (at, chunk) in &r.chunks {
        let text = std::str::from_utf8(chunk).unwrap();
        assert!(text.ends_with("\n\n"), "each chunk is whole events: {text:?}");
        for ev in text.split("\n\n").filter(|e| !e.is_empty()) {
            let mut lines = ev.lines();
            let name = lines.next().unwrap().strip_prefix("event: ").unwrap_or_else(|| panic!("no event line: {ev:?}"));
            let data = lines.next().unwrap().strip_prefix("data: ").unwrap_or_else(|| panic!("no data line: {ev:?}"));
            assert!(lines.next().is_none(), "{ev:?}");
            let v: Value = serde_json::from_str(data).unwrap();
            assert_eq!(v["type"], name, "data.type names the event");
            out.push((name.to_string(), v, *at));
        }
    }
    out
}

#[test]
fn anthropic_sse_event_sequence() {
    let m = Mock::start(&["--name", "sse", "--chunks", "4", "--chunk-delay-ms", "60"]);
    let mut c = m.client();
    let r = c.post("/v1/messages", &with(json!({"stream": true})), ANTHROPIC);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    assert_eq!(r.header("x-mock-model"), Some("claude-test"));
    assert_eq!(r.header("x-mock-backend"), Some("sse"));
    let evs = sse_events(&r);
    let names: Vec<&str> = evs.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    let start = &evs[0].1["message"];
    assert_eq!(
        (start["type"].as_str(), start["role"].as_str(), start["model"].as_str()),
        (Some("message"), Some("assistant"), Some("claude-test"))
    );
    assert_eq!((start["content"].clone(), start["stop_reason"].clone()), (json!([]), Value::Null));
    assert!(start["usage"]["input_tokens"].as_u64().unwrap() >= 1);
    assert_eq!(evs[1].1["content_block"], json!({"type": "text", "text": ""}));
    let deltas: Vec<&(String, Value, Instant)> = evs.iter().filter(|e| e.0 == "content_block_delta").collect();
    let text: String = deltas
        .iter()
        .map(|e| {
            assert_eq!((e.1["index"].as_u64(), e.1["delta"]["type"].as_str()), (Some(0), Some("text_delta")));
            e.1["delta"]["text"].as_str().unwrap()
        })
        .collect();
    assert_eq!(text, "tok0 tok1 tok2 tok3 ");
    let spread = deltas[3].2 - deltas[0].2;
    assert!(spread >= Duration::from_millis(3 * 60 * 7 / 10), "deltas not spaced: {spread:?}");
    let md = &evs[8].1;
    assert_eq!(md["delta"], json!({"stop_reason": "end_turn", "stop_sequence": null}));
    assert_eq!(md["usage"]["output_tokens"], 4);

    // max_tokens cuts the stream short.
    c.post("/__mock/faults", &json!({"chunks": 4, "chunk_delay_ms": 0}), "");
    let evs = sse_events(&c.post("/v1/messages", &with(json!({"stream": true, "max_tokens": 2})), ANTHROPIC));
    assert_eq!(evs.iter().filter(|e| e.0 == "content_block_delta").count(), 2);
    assert_eq!(evs[evs.len() - 2].1["delta"]["stop_reason"], "max_tokens");

    // Tool use: a text block, then a tool_use block whose input arrives as input_json_delta.
    let body =
        with(json!({"stream": true, "tools": [weather_tool("get_weather")], "messages": [user("weather please")]}));
    let evs = sse_events(&c.post("/v1/messages", &body, ANTHROPIC));
    let starts: Vec<&Value> = evs.iter().filter(|e| e.0 == "content_block_start").map(|e| &e.1).collect();
    assert_eq!(starts.len(), 2);
    assert_eq!((starts[0]["index"].as_u64(), starts[0]["content_block"]["type"].as_str()), (Some(0), Some("text")));
    let tb = &starts[1]["content_block"];
    assert_eq!(
        (starts[1]["index"].as_u64(), tb["type"].as_str(), tb["name"].as_str()),
        (Some(1), Some("tool_use"), Some("get_weather"))
    );
    assert_eq!(tb["input"], json!({}));
    let partial: String = evs
        .iter()
        .filter(|e| e.0 == "content_block_delta" && e.1["index"] == 1)
        .map(|e| {
            assert_eq!(e.1["delta"]["type"], "input_json_delta");
            e.1["delta"]["partial_json"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(serde_json::from_str::<Value>(&partial).unwrap(), json!({"city": "Paris"}));
    let stops: Vec<u64> =
        evs.iter().filter(|e| e.0 == "content_block_stop").map(|e| e.1["index"].as_u64().unwrap()).collect();
    assert_eq!(stops, [0, 1]);
    assert_eq!(evs[evs.len() - 2].1["delta"]["stop_reason"], "tool_use");
    assert_eq!(evs.last().unwrap().0, "message_stop");
    // Forced: the tool_use block is block 0.
    let mut forced = body.clone();
    forced["tool_choice"] = json!({"type": "any"});
    let evs = sse_events(&c.post("/v1/messages", &forced, ANTHROPIC));
    assert_eq!(evs[1].1["content_block"]["type"], "tool_use");
    assert_eq!(evs[1].1["index"], 0);
}

#[test]
fn anthropic_faults() {
    // 529 overloaded_error with retry-after; faults come before validation (no headers needed).
    let m = Mock::start(&["--name", "busy", "--status", "529", "--retry-after", "4"]);
    let mut c = m.client();
    let r = c.post("/v1/messages", &msgs_body(), "");
    assert_anthropic_error(&r, 529, "overloaded_error", "mock busy injected 529", "529");
    assert_eq!(r.header("retry-after"), Some("4"));
    assert_eq!(r.header("x-mock-fault"), Some("529"));
    assert_eq!(r.header("x-mock-backend"), Some("busy"));
    // The OpenAI endpoints of the same mock keep their own error shape.
    let v = c.post("/v1/chat/completions", &chat("m"), "").json();
    assert_eq!(v["error"]["code"], 529);

    let kinds = [
        (429, "rate_limit_error", Some("4")),
        (500, "api_error", None),
        (503, "api_error", Some("4")),
        (401, "authentication_error", None),
    ];
    for (status, kind, ra) in kinds {
        c.post("/__mock/faults", &json!({"status": status, "retry_after": 4}), "");
        let r = c.post("/v1/messages", &msgs_body(), ANTHROPIC);
        assert_anthropic_error(&r, status, kind, &format!("injected {status}"), kind);
        assert_eq!(r.header("retry-after"), ra, "{status}");
    }

    // sse-error on a stream: the FIRST event is Anthropic's `event: error`, then the end.
    c.post("/__mock/faults", &json!({"sse_error": true}), "");
    let r = c.post("/v1/messages", &with(json!({"stream": true})), ANTHROPIC);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    assert_eq!(r.header("x-mock-fault"), Some("sse-error"));
    let evs = sse_events(&r);
    assert_eq!(evs.len(), 1);
    assert_eq!(evs[0].0, "error");
    assert_eq!(evs[0].1, json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}));
    assert!(String::from_utf8(r.body.clone()).unwrap().starts_with("event: error\ndata: {"));
    // ...but validation still comes first for sse_error, and non-streams are unaffected.
    let r = c.post("/v1/messages", &with(json!({"stream": true, "n": 2})), ANTHROPIC);
    assert_eq!(r.status, 400);
    assert_eq!(c.post("/v1/messages", &msgs_body(), ANTHROPIC).status, 200);

    // Random faults: an sse-error picked for a stream, reset, delay.
    c.post("/__mock/faults", &json!({"fault_rate": 1.0, "faults": ["sse-error"]}), "");
    let evs = sse_events(&c.post("/v1/messages", &with(json!({"stream": true})), ANTHROPIC));
    assert_eq!(evs[0].0, "error");
    let r = c.post("/v1/messages", &msgs_body(), ANTHROPIC);
    assert_anthropic_error(&r, 500, "api_error", "injected 500", "sse-error on a non-stream");
    c.post("/__mock/faults", &json!({"delay_ms": 120}), "");
    let t = Instant::now();
    assert_eq!(c.post("/v1/messages", &msgs_body(), ANTHROPIC).status, 200);
    assert!(t.elapsed() >= Duration::from_millis(110));
    c.post("/__mock/faults", &json!({"reset": true}), "");
    c.send(b"POST /v1/messages HTTP/1.1\r\nHost: h\r\ncontent-length: 2\r\n\r\n{}");
    assert!(c.closed());
    let s = m.client().get("/__mock/stats").json();
    assert_eq!(s["by_status"]["529"], 2);
    assert_eq!(s["by_status"]["sse-error"], 2);
    assert_eq!(s["by_status"]["reset"], 1);
}

#[test]
fn mock_last_records_requests() {
    let m = Mock::start(&["--name", "rec"]);
    let mut c = m.client();
    let r = c.get("/__mock/last");
    assert_eq!(r.status, 404);
    assert!(r.json()["error"]["message"].as_str().unwrap().contains("no request recorded"));

    let body = with(json!({"system": "be brief", "temperature": 0.2}));
    c.post("/v1/messages", &body, ANTHROPIC);
    c.post("/v1/chat/completions", &chat("gpt"), "Authorization: Bearer sk-o\r\n");
    c.raw(
        "POST",
        "/openai/deployments/d1/chat/completions?api-version=2024-10-21&x=%2F",
        b"not json",
        "api-key: az\r\n",
    );

    let last = c.get("/__mock/last").json();
    assert_eq!(last["path"], "/openai/deployments/d1/chat/completions");
    assert_eq!(last["query"], "api-version=2024-10-21&x=%2F");
    assert_eq!(last["method"], "POST");
    assert_eq!(last["headers"]["api-key"], "az");
    assert_eq!(last["body"], Value::Null);
    assert_eq!(last["body_text"], "not json");
    assert_eq!(last["body_bytes"], 8);

    let a = c.get("/__mock/last?path=/v1/messages").json();
    assert_eq!(a["body"], body, "the exact JSON the mock received");
    assert_eq!(a["body"]["system"], "be brief");
    assert_eq!(a["headers"]["x-api-key"], "sk-ant-test");
    assert_eq!(a["headers"]["anthropic-version"], "2023-06-01");
    assert_eq!(a["headers"]["host"], "mock.test");
    let o = c.get("/__mock/last?path=%2Fv1%2Fchat%2Fcompletions").json();
    assert_eq!(o["headers"]["authorization"], "Bearer sk-o");
    assert_eq!(o["body"]["model"], "gpt");
    assert_eq!(c.get("/__mock/last?path=/v1/embeddings").status, 404);

    // Faulted and rejected requests are recorded too; control requests are not.
    c.post("/__mock/faults", &json!({"status": 529}), "");
    c.post("/v1/messages", &with(json!({"model": "faulted"})), ANTHROPIC);
    c.post("/__mock/faults", &json!({}), "");
    assert_eq!(c.get("/__mock/last").json()["body"]["model"], "faulted");
    let all = c.get("/__mock/requests").json();
    let paths: Vec<&str> = all["requests"].as_array().unwrap().iter().map(|r| r["path"].as_str().unwrap()).collect();
    assert_eq!(
        paths,
        ["/v1/messages", "/v1/chat/completions", "/openai/deployments/d1/chat/completions", "/v1/messages"]
    );
    let seqs: Vec<u64> = all["requests"].as_array().unwrap().iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [1, 2, 3, 4]);
    assert_eq!(c.get("/__mock/requests?path=/v1/messages").json()["requests"].as_array().unwrap().len(), 2);
    c.post("/__mock/reset", &json!({}), "");
    assert_eq!(c.get("/__mock/last").status, 404);
    assert_eq!(c.get("/__mock/requests").json()["requests"], json!([]));
}

// ---------------------------------------------------------------- Azure OpenAI

const AZ_CHAT: &str = "/openai/deployments/gpt4o-prod/chat/completions?api-version=2024-10-21";

/// Asserts an Azure-shaped error `{"error":{"code","message"}}`.
fn assert_azure_error(r: &Resp, status: u16, code: &str, words: &str, case: &str) {
    let v = r.json();
    assert_eq!(r.status, status, "{case}: {v}");
    assert_eq!(v["error"]["code"], code, "{case}: {v}");
    assert!(v["error"]["message"].as_str().unwrap().contains(words), "{case}: {v}");
}

#[test]
fn azure_paths_query_key_and_echo() {
    let m = Mock::start(&["--name", "az", "--chunks", "2", "--chunk-delay-ms", "0"]);
    let mut c = m.client();
    let key = "api-key: az-key\r\n";
    let body = json!({"messages": [user("hi")]});

    // Path / query / key rules.
    let deps = "/openai/deployments/gpt4o-prod";
    let cases: Vec<(&str, String, &str, u16, &str, &str)> = vec![
        ("no api-version", format!("{deps}/chat/completions"), key, 404, "404", "Resource not found"),
        ("empty api-version", format!("{deps}/chat/completions?api-version="), key, 404, "404", "Resource not found"),
        (
            "bad api-version",
            format!("{deps}/chat/completions?api-version=v1"),
            key,
            400,
            "BadRequest",
            "API version not supported",
        ),
        (
            "no api-key",
            AZ_CHAT.to_string(),
            "",
            401,
            "401",
            "Access denied due to invalid subscription key or wrong API endpoint",
        ),
        (
            "bearer instead of api-key",
            AZ_CHAT.to_string(),
            "Authorization: Bearer az-key\r\n",
            401,
            "401",
            "Access denied",
        ),
        (
            "unknown operation",
            format!("{deps}/responses?api-version=2025-04-01-preview"),
            key,
            404,
            "404",
            "Resource not found",
        ),
        (
            "no deployment",
            "/openai/deployments//chat/completions?api-version=2024-10-21".into(),
            key,
            404,
            "404",
            "Resource not found",
        ),
        (
            "bad deployment",
            "/openai/deployments/a%20b/chat/completions?api-version=2024-10-21".into(),
            key,
            404,
            "DeploymentNotFound",
            "The API deployment for this resource does not exist",
        ),
        ("OpenAI path under /openai", "/openai/v1/chat/completions".into(), key, 404, "404", "Resource not found"),
    ];
    for (case, path, hdr, status, code, words) in &cases {
        let r = c.post(path, &body, hdr);
        assert_azure_error(&r, *status, code, words, case);
        assert_eq!(r.header("x-mock-backend"), Some("az"), "{case}");
    }
    assert_azure_error(&c.raw("GET", AZ_CHAT, b"", key), 404, "404", "Resource not found", "GET");
    assert_azure_error(&c.raw("POST", AZ_CHAT, b"{bad", key), 400, "BadRequest", "Invalid JSON body", "invalid JSON");

    // The deployment is echoed and names the model when the body has none.
    let r = c.post(AZ_CHAT, &body, key);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-mock-deployment"), Some("gpt4o-prod"));
    assert_eq!(r.header("x-mock-model"), Some("gpt4o-prod"));
    let v = r.json();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "gpt4o-prod");
    assert_eq!(v["choices"][0]["message"]["content"], "Hello from az");
    assert_eq!(v["choices"][0]["content_filter_results"]["hate"]["filtered"], false);
    assert_eq!(v["prompt_filter_results"][0]["prompt_index"], 0);
    let mock = &v["mock"];
    assert_eq!(
        (mock["deployment"].as_str(), mock["api_version"].as_str(), mock["api_key"].as_str()),
        (Some("gpt4o-prod"), Some("2024-10-21"), Some("az-key"))
    );
    assert_eq!(mock["path"], "/openai/deployments/gpt4o-prod/chat/completions");
    assert_eq!(mock["authorization"], Value::Null);
    // A body model (Azure ignores it) only changes the echo.
    let r = c.post("/openai/deployments/d2/chat/completions?api-version=2025-01-01-preview", &chat("gpt-4o"), key);
    assert_eq!((r.header("x-mock-deployment"), r.header("x-mock-model")), (Some("d2"), Some("gpt-4o")));
    assert_eq!(r.json()["mock"]["api_version"], "2025-01-01-preview");

    // completions and embeddings.
    let v = c.post("/openai/deployments/inst/completions?api-version=2024-10-21", &json!({"prompt": "x"}), key).json();
    assert_eq!((v["object"].as_str(), v["model"].as_str()), (Some("text_completion"), Some("inst")));
    assert!(v["prompt_filter_results"].is_array());
    let r = c.post("/openai/deployments/emb/embeddings?api-version=2024-10-21", &json!({"input": ["a", "b"]}), key);
    assert_eq!(r.header("x-mock-deployment"), Some("emb"));
    let v = r.json();
    assert_eq!((v["data"].as_array().unwrap().len(), v["model"].as_str()), (2, Some("emb")));
    assert!(v.get("prompt_filter_results").is_none());

    // Streaming: Azure's prompt-filter chunk first, then the OpenAI chunks and [DONE].
    let r = c.post(AZ_CHAT, &json!({"messages": [user("hi")], "stream": true}), key);
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    assert_eq!(r.header("x-mock-deployment"), Some("gpt4o-prod"));
    let events: Vec<String> =
        String::from_utf8(r.body).unwrap().split("\n\n").filter(|e| !e.is_empty()).map(String::from).collect();
    assert_eq!(events.len(), 4, "{events:?}");
    let first: Value = serde_json::from_str(events[0].strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(first["choices"], json!([]));
    assert!(first["prompt_filter_results"].is_array());
    let second: Value = serde_json::from_str(events[1].strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(
        (second["object"].as_str(), second["model"].as_str()),
        (Some("chat.completion.chunk"), Some("gpt4o-prod"))
    );
    assert_eq!(second["choices"][0]["delta"]["content"], "tok0 ");
    assert_eq!(second["mock"]["deployment"], "gpt4o-prod");
    assert_eq!(events[3], "data: [DONE]");

    // Faults: Azure-shaped status errors; sse-error is the OpenAI stream error.
    c.post("/__mock/faults", &json!({"status": 429, "retry_after": 3}), "");
    let r = c.post(AZ_CHAT, &body, "");
    assert_azure_error(&r, 429, "429", "mock az injected 429", "429");
    assert_eq!((r.header("retry-after"), r.header("x-mock-fault")), (Some("3"), Some("429")));
    c.post("/__mock/faults", &json!({"sse_error": true}), "");
    let r = c.post(AZ_CHAT, &json!({"messages": [user("hi")], "stream": true}), key);
    assert_eq!(r.chunks.len(), 1);
    let ev: Value =
        serde_json::from_str(String::from_utf8(r.body).unwrap().trim_start_matches("data: ").trim()).unwrap();
    assert!(ev["error"]["message"].is_string());
    c.post("/__mock/faults", &json!({}), "");

    let s = c.get("/__mock/stats").json();
    assert_eq!(s["by_model"]["gpt4o-prod"].as_u64(), Some(12), "{s}");
    assert_eq!(s["by_model"]["gpt-4o"], 1);
}

#[test]
fn pad_bytes_grows_json_answers_only() {
    const N: usize = 5 * 1024 * 1024;
    let n = N.to_string();
    let m = Mock::start(&["--name", "pad", "--pad-bytes", &n]);
    let mut c = m.client();
    let r = c.post("/v1/chat/completions", &chat("big"), "");
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), N, "padded exactly to N");
    assert_eq!(r.header("content-length"), Some(n.as_str()));
    let v = r.json();
    assert_eq!(v["model"], "big");
    assert_eq!(v["choices"][0]["message"]["content"], "Hello from pad");
    let pad = v["mock_padding"].as_str().unwrap();
    assert!(pad.len() > N - 2048 && pad.bytes().all(|b| b == b'x'), "{}", pad.len());
    // Other JSON endpoints too; streams, errors and the control API are never padded.
    assert_eq!(c.post("/v1/embeddings", &json!({"model": "e", "input": "a"}), "").body.len(), N);
    let mut body = chat("s");
    body["stream"] = json!(true);
    let r = c.post("/v1/chat/completions", &body, "");
    assert!(r.body.len() < 10_000 && !String::from_utf8_lossy(&r.body).contains("mock_padding"));
    assert!(c.get("/nope").body.len() < 1000);
    assert!(c.get("/__mock/stats").body.len() < 1000);
    assert_eq!(c.get("/__mock/faults").json()["pad_bytes"], N);

    // The same through the control API; a body already longer than N is left as it is.
    let r = c.post("/__mock/faults", &json!({"pad_bytes": 4000}), "");
    assert_eq!(r.json()["pad_bytes"], 4000);
    assert_eq!(c.post("/v1/chat/completions", &chat("m"), "").body.len(), 4000);
    c.post("/__mock/faults", &json!({"pad_bytes": 10}), "");
    let r = c.post("/v1/chat/completions", &chat("m"), "");
    assert!(r.body.len() > 10 && r.json().get("mock_padding").is_none());
    c.post("/__mock/faults", &json!({}), "");
    assert!(c.post("/v1/chat/completions", &chat("m"), "").json().get("mock_padding").is_none());
    assert_eq!(c.post("/__mock/faults", &json!({"pad_bytes": -1}), "").status, 400);
    assert_eq!(c.post("/__mock/faults", &json!({"pad_bytes": 1u64 << 31}), "").status, 400);
}

#[test]
fn fail_first_faults_only_the_first_requests() {
    let m = Mock::start(&["--name", "ff", "--status", "500", "--fail-first", "2"]);
    let mut c = m.client();
    let statuses: Vec<u16> = (0..4).map(|_| c.post("/v1/chat/completions", &chat("m"), "").status).collect();
    assert_eq!(statuses, [500, 500, 200, 200]);
    // A reset starts the count again; so does a new fault setting.
    c.post("/__mock/reset", &json!({}), "");
    let statuses: Vec<u16> = (0..2).map(|_| c.post("/v1/chat/completions", &chat("m"), "").status).collect();
    assert_eq!(statuses, [500, 500]);
    assert_eq!(c.post("/v1/chat/completions", &chat("m"), "").status, 200);
    c.post("/__mock/faults", &json!({"sse_error": true, "fail_first": 1}), "");
    let mut body = chat("m");
    body["stream"] = json!(true);
    let first = String::from_utf8(c.post("/v1/chat/completions", &body, "").body).unwrap();
    let second = String::from_utf8(c.post("/v1/chat/completions", &body, "").body).unwrap();
    assert!(first.contains("\"error\""), "{first}");
    assert!(second.contains("tok0") && !second.contains("\"error\""), "{second}");
    assert_eq!(c.get("/__mock/faults").json()["fail_first"], 1);
}

#[test]
fn responses_carry_the_time_their_head_was_sent() {
    let m = Mock::start(&["--name", "ts", "--chunks", "2", "--chunk-delay-ms", "100"]);
    let mut c = m.client();
    let wall_us = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() as u64;
    let mut body = chat("m");
    body["stream"] = json!(true);
    for b in [chat("m"), body] {
        let before = wall_us();
        let r = c.post("/v1/chat/completions", &b, "");
        let after = wall_us();
        let sent: u64 = r.header("x-mock-sent-at-us").unwrap().parse().unwrap();
        assert!(before <= sent && sent <= after, "{before} <= {sent} <= {after}");
        if let Some((first, _)) = r.chunks.first() {
            // The stream's first event follows its head at once; the whole stream takes 100 ms.
            assert!(after - sent >= 90_000, "stamped at the head, not the end: {}", after - sent);
            assert!(first.elapsed() >= Duration::from_millis(90));
        }
    }
    let r = c.post("/v1/chat/completions", &chat("m"), "");
    assert!(r.header("x-mock-sent-at-us").is_some());
}
