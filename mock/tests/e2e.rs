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
