//! Self-tests of the e2e harness (tests/common): plain Envoy (no wasm filter) in front of a
//! stand-in upstream and in front of the real mock provider.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod common;

use common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

/// A tiny HTTP/1.1 upstream on a std thread (keep-alive, content-length or chunked request
/// bodies). `POST /stream` answers chunked with 5 chunks 100 ms apart; anything else answers
/// 200 JSON `{"path", "len"}` with `x-mock-backend: <name>`.
struct StandIn {
    port: u16,
}

impl StandIn {
    fn start(name: &'static str) -> StandIn {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for s in l.incoming().flatten() {
                std::thread::spawn(move || {
                    let _ = serve(name, s);
                });
            }
        });
        StandIn { port }
    }
}

fn serve(name: &str, s: TcpStream) -> std::io::Result<()> {
    let mut out = s.try_clone()?;
    let mut r = BufReader::new(s);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
        let (mut len, mut chunked) = (0usize, false);
        loop {
            let mut h = String::new();
            r.read_line(&mut h)?;
            let h = h.trim_end().to_ascii_lowercase();
            if h.is_empty() {
                break;
            }
            if let Some(v) = h.strip_prefix("content-length:") {
                len = v.trim().parse().unwrap_or(0);
            }
            if h.starts_with("transfer-encoding:") && h.contains("chunked") {
                chunked = true;
            }
        }
        let mut body = Vec::new();
        if chunked {
            loop {
                let mut sz = String::new();
                r.read_line(&mut sz)?;
                let n = usize::from_str_radix(sz.trim(), 16).unwrap_or(0);
                let mut chunk = vec![0u8; n + 2];
                r.read_exact(&mut chunk)?;
                if n == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..n]);
            }
        } else {
            body.resize(len, 0);
            r.read_exact(&mut body)?;
        }
        if path == "/stream" {
            out.write_all(
                format!(
                    "HTTP/1.1 200 OK\r\nx-mock-backend: {name}\r\ncontent-type: text/event-stream\r\n\
                     transfer-encoding: chunked\r\n\r\n"
                )
                .as_bytes(),
            )?;
            for i in 0..5 {
                std::thread::sleep(Duration::from_millis(100));
                let ev = format!("data: {{\"i\":{i}}}\n\n");
                out.write_all(format!("{:x}\r\n{ev}\r\n", ev.len()).as_bytes())?;
            }
            out.write_all(b"0\r\n\r\n")?;
        } else {
            let b = serde_json::json!({ "path": path, "len": body.len(), "body": String::from_utf8_lossy(&body) })
                .to_string();
            out.write_all(
                format!(
                    "HTTP/1.1 200 OK\r\nx-mock-backend: {name}\r\ncontent-type: application/json\r\n\
                     content-length: {}\r\n\r\n{b}",
                    b.len()
                )
                .as_bytes(),
            )?;
        }
    }
}

fn plain(name: &str, port: u16) -> EnvoyOptions {
    EnvoyOptions { clusters: vec![Cluster::new(name, port)], ..Default::default() }
}

#[test]
fn plain_envoy_proxies_posts_streams_and_uploads() {
    let up = StandIn::start("standin");
    let opts = plain("standin", up.port);
    validate_config(&opts).unwrap_or_else(|e| panic!("bootstrap rejected by envoy --mode validate:\n{e}"));
    let envoy = Envoy::start(opts);

    // A plain POST goes through.
    let r = post_json(envoy.port, "/v1/chat/completions", r#"{"model":"m","messages":[]}"#);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-mock-backend"), Some("standin"));
    assert_eq!(r.json()["len"], 27);

    // Chunks of a streamed response arrive spread over time (5 × 100 ms upstream).
    let s = post_stream(envoy.port, "/stream", r#"{"stream":true}"#, &[]);
    assert_eq!(s.status, 200);
    assert_eq!(s.header("x-mock-backend"), Some("standin"));
    assert_eq!(s.sse_data().len(), 5, "{}", s.text());
    assert!(s.chunks.len() >= 3, "expected separate chunks, got {:?}", s.chunks);
    assert!(s.spread() >= Duration::from_millis(250), "chunks not spread: {:?}", s.chunks);

    // A chunked upload written in pieces with pauses.
    let raw = b"POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    let (a, b) = raw.split_at(raw.len() - 9);
    let r = send_raw(envoy.port, &[a, b], Duration::from_millis(50));
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["body"], "hello");

    // Keep-alive connection: several requests on one connection.
    let mut c = Conn::open(envoy.port);
    for i in 0..3 {
        let r = c.post_json("/ka", &format!("{{\"i\":{i}}}"));
        assert_eq!(r.status, 200);
    }
    c.close();

    // Parallel load helper, results in index order.
    let statuses = parallel(8, 40, |i| {
        let r = try_request(envoy.port, "GET", &format!("/p{i}"), &[], b"").unwrap();
        (r.status, r.json()["path"].as_str().unwrap().to_string())
    });
    assert_eq!(statuses.len(), 40);
    for (i, (st, path)) in statuses.iter().enumerate() {
        assert_eq!((*st, path.as_str()), (200, format!("/p{i}").as_str()));
    }

    // Admin stats.
    assert!(envoy.counter("cluster.standin.upstream_rq_200").unwrap() >= 46);
    assert!(envoy.prometheus().contains("envoy_cluster_upstream_rq_total"));
}

#[test]
fn two_envoys_at_once_and_gone_after_drop() {
    let up = StandIn::start("both");
    let e1 = Envoy::start(plain("both", up.port));
    let e2 = Envoy::start(plain("both", up.port));
    assert_ne!(e1.port, e2.port);
    assert_ne!(e1.admin_port, e2.admin_port);
    for e in [&e1, &e2] {
        assert_eq!(request(e.port, "GET", "/", &[], b"").status, 200);
    }
    let (p1, p2) = (e1.pid(), e2.pid());
    assert!(pid_alive(p1) && pid_alive(p2));
    drop(e1);
    assert!(!pid_alive(p1), "envoy pid {p1} still exists after drop");
    assert_eq!(request(e2.port, "GET", "/", &[], b"").status, 200);
    drop(e2);
    assert!(!pid_alive(p2), "envoy pid {p2} still exists after drop");
}

#[test]
fn mock_provider_behind_plain_envoy() {
    let mock = Mock::start("alpha", &["--chunks", "4", "--chunk-delay-ms", "80"]);
    let envoy = Envoy::start(EnvoyOptions { clusters: vec![mock.cluster()], ..Default::default() });

    let r = post_json(
        envoy.port,
        "/v1/chat/completions",
        r#"{"model":"gpt-x","messages":[{"role":"user","content":"hi"}]}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-mock-backend"), Some("alpha"));
    assert_eq!(r.header("x-mock-model"), Some("gpt-x"));
    assert_eq!(r.json()["mock"]["backend"], "alpha");

    let s = post_stream(
        envoy.port,
        "/v1/chat/completions",
        r#"{"model":"gpt-x","stream":true,"messages":[{"role":"user","content":"hi"}]}"#,
        &[],
    );
    assert_eq!(s.status, 200, "{}", s.text());
    assert!(s.spread() >= Duration::from_millis(150), "chunks not spread: {:?}", s.chunks);

    let st = mock.stats();
    assert_eq!(st["requests"], 2, "{st}");

    mock.set_faults(r#"{"status":503}"#);
    let r = post_json(envoy.port, "/v1/chat/completions", r#"{"model":"gpt-x","messages":[]}"#);
    assert_eq!(r.status, 503, "{}", r.text());
    mock.reset();
    assert_eq!(mock.stats()["requests"], 0);

    let pid = mock.pid();
    drop(mock);
    assert!(!pid_alive(pid), "mock pid {pid} still exists after drop");
}

#[test]
fn start_expect_failure_returns_the_log_of_a_rejected_bootstrap() {
    // Two clusters with one name: Envoy refuses the bootstrap and exits.
    let log = Envoy::start_expect_failure(EnvoyOptions {
        clusters: vec![Cluster::new("dup", 1), Cluster::new("dup", 2)],
        ..Default::default()
    });
    assert!(log.contains("dup"), "{log}");
    assert!(log.contains("[harness] envoy exited"), "{log}");
}

/// The filter variant of the bootstrap passes `envoy --mode validate` (needs the built .wasm:
/// validate mode instantiates the VM and runs `on_configure`, and fails when it returns false).
#[test]
fn filter_bootstrap_validates() {
    let opts = EnvoyOptions {
        filter_config: Some(
            "models:\n  - from: openai:x\n    name: m\n    params: { cluster: a }\n# \"quotes\", colons: and\ttabs \u{e9}\n"
                .to_string(),
        ),
        clusters: vec![Cluster::new("a", 1), Cluster::new("b", 2)],
        env: vec![("OPENAI_API_KEY".to_string(), "sk-\"test\"\n#x".to_string())],
        ..Default::default()
    };
    let yaml = opts.bootstrap_yaml(&wasm_path());
    assert!(yaml.contains("allow_on_headers_stop_iteration: true"));
    assert!(yaml.contains("failure_policy: FAIL_RELOAD"));
    validate_config(&opts).unwrap_or_else(|e| panic!("filter bootstrap rejected:\n{e}\n{yaml}"));
}
