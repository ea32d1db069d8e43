//! `mock-provider`: a mock LLM backend (OpenAI, Anthropic Messages, Azure OpenAI) for
//! model-workers e2e tests, `make run` and benchmarks. One process = one backend.
//! See README.md for flags, endpoints and the control API.

mod anthropic;
mod api;
mod azure;
mod http;
mod record;

use api::{Action, FaultKind, Faults, Shared};
use http::ReadError;
use std::io::{self, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const USAGE: &str = "\
usage: mock-provider --name NAME [--listen 127.0.0.1:0] [options]

  --name NAME             backend name (required; appears in responses and stats)
  --listen ADDR           loopback address to bind (default 127.0.0.1:0 = ephemeral port)
  --status CODE           answer every API request with CODE + that API's error body (e.g. 529)
  --retry-after SECS      Retry-After value sent with injected 429/503 (default 1)
  --fault-rate R          probability 0..1 that an API request gets a random fault
  --faults LIST           comma list of fault kinds for --fault-rate: status codes,
                          reset, hang, sse-error (default 500)
  --seed N                PRNG seed for --fault-rate (default 1)
  --delay-ms N            wait N ms before sending response headers
  --hang                  read requests, never answer
  --reset                 read requests, then close with TCP RST
  --sse-error             stream requests get a single SSE error event
  --chunks N              SSE content events per stream (default 5)
  --chunk-delay-ms N      gap between SSE events (default 50)
  --fail-first N          only the first N API requests get the faults above (default 0 = all)
  --pad-bytes N           pad successful non-stream JSON answers to at least N bytes
  -v, --verbose           log every request to stderr
  -h, --help              this help

Prints `LISTENING NAME ADDR` on stdout once bound.";

struct Cli {
    name: String,
    listen: SocketAddr,
    seed: u64,
    verbose: bool,
    faults: Faults,
}

fn parse_num<T: std::str::FromStr>(flag: &str, v: &str) -> Result<T, String> {
    v.trim().parse().map_err(|_| format!("{flag}: invalid value {v:?}"))
}

fn parse_listen(v: &str) -> Result<SocketAddr, String> {
    let addr: SocketAddr = match v.parse() {
        Ok(a) => a,
        Err(_) => match v.rsplit_once(':') {
            Some(("localhost", port)) => {
                SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), parse_num("--listen port", port)?)
            }
            _ => return Err(format!("--listen: invalid socket address {v:?} (want IP:PORT)")),
        },
    };
    if !addr.ip().is_loopback() {
        return Err(format!(
            "--listen: refusing to bind non-loopback address {addr} (only 127.0.0.0/8 and ::1 are allowed)"
        ));
    }
    Ok(addr)
}

fn parse_args(args: Vec<String>) -> Result<Option<Cli>, String> {
    let mut name: Option<String> = None;
    let mut listen = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0);
    let mut seed = 1u64;
    let mut verbose = false;
    let mut f = Faults::default();

    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((a, b)) if a.starts_with("--") => (a.to_string(), Some(b.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = || -> Result<String, String> {
            match &inline {
                Some(v) => Ok(v.clone()),
                None => it.next().ok_or_else(|| format!("{flag} requires a value")),
            }
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(None),
            "-v" | "--verbose" => verbose = true,
            "--hang" => f.hang = true,
            "--reset" => f.reset = true,
            "--sse-error" => f.sse_error = true,
            "--name" => {
                let v = value()?;
                if v.is_empty() || v.chars().any(|c| c.is_whitespace() || c.is_control()) {
                    return Err("--name must be non-empty without whitespace".into());
                }
                name = Some(v);
            }
            "--listen" => listen = parse_listen(&value()?)?,
            "--status" => f.status = Some(api::parse_status(&value()?).map_err(|e| format!("--status: {e}"))?),
            "--retry-after" => f.retry_after = parse_num(&flag, &value()?)?,
            "--fault-rate" => {
                let r: f64 = parse_num(&flag, &value()?)?;
                if !(0.0..=1.0).contains(&r) {
                    return Err("--fault-rate must be within 0..=1".into());
                }
                f.fault_rate = r;
            }
            "--faults" => {
                f.faults = value()?
                    .split(',')
                    .filter(|s| !s.trim().is_empty())
                    .map(FaultKind::parse)
                    .collect::<Result<_, _>>()
                    .map_err(|e| format!("--faults: {e}"))?;
            }
            "--seed" => seed = parse_num(&flag, &value()?)?,
            "--delay-ms" => f.delay_ms = parse_num(&flag, &value()?)?,
            "--chunks" => f.chunks = parse_num(&flag, &value()?)?,
            "--chunk-delay-ms" => f.chunk_delay_ms = parse_num(&flag, &value()?)?,
            "--fail-first" => f.fail_first = parse_num(&flag, &value()?)?,
            "--pad-bytes" => {
                f.pad_bytes = api::check_pad(parse_num(&flag, &value()?)?).map_err(|e| format!("--pad-bytes: {e}"))?
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let name = name.ok_or("--name is required")?;
    Ok(Some(Cli { name, listen, seed, verbose, faults: f }))
}

fn main() {
    let cli = match parse_args(std::env::args().skip(1).collect()) {
        Ok(Some(c)) => c,
        Ok(None) => {
            println!("{USAGE}");
            return;
        }
        Err(e) => {
            eprintln!("mock-provider: {e}\n\n{USAGE}");
            std::process::exit(2);
        }
    };
    let listener = match TcpListener::bind(cli.listen) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("mock-provider: cannot bind {}: {e}", cli.listen);
            std::process::exit(1);
        }
    };
    let local = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("mock-provider: local_addr: {e}");
            std::process::exit(1);
        }
    };
    {
        let mut out = io::stdout().lock();
        let _ = writeln!(out, "LISTENING {} {}", cli.name, local);
        let _ = out.flush();
    }
    let shared = Arc::new(Shared::new(cli.name, cli.seed, cli.faults, cli.verbose));

    for conn in listener.incoming() {
        match conn {
            Ok(stream) => {
                let sh = Arc::clone(&shared);
                let spawned = std::thread::Builder::new()
                    .name("conn".into())
                    .stack_size(1 << 20)
                    .spawn(move || serve_conn(stream, &sh));
                if let Err(e) = spawned {
                    eprintln!("mock-provider {}: cannot spawn connection thread: {e}", shared.name);
                }
            }
            Err(e) => {
                // e.g. EMFILE: back off briefly instead of spinning.
                eprintln!("mock-provider {}: accept: {e}", shared.name);
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

fn quiet_io(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
    )
}

fn serve_conn(stream: TcpStream, sh: &Shared) {
    let _ = stream.set_nodelay(true);
    let mut reader = BufReader::with_capacity(16 * 1024, &stream);
    let mut w = &stream;
    loop {
        let req = match http::read_request(&mut reader, &mut w) {
            Ok(r) => r,
            Err(ReadError::Eof) => return,
            Err(ReadError::Io(e)) => {
                if sh.verbose || !quiet_io(&e) {
                    eprintln!("mock-provider {}: read error: {e}", sh.name);
                }
                return;
            }
            Err(ReadError::Bad(msg)) => {
                eprintln!("mock-provider {}: bad request: {msg}", sh.name);
                let r = api::error_response(&sh.name, 400, &format!("bad request: {msg}"), None);
                let _ = http::write_response(&mut w, r.status, &r.headers, &r.body, false, true);
                return;
            }
            Err(ReadError::TooLarge(status, msg)) => {
                eprintln!("mock-provider {}: {msg}", sh.name);
                let r = api::error_response(&sh.name, status, msg, None);
                let _ = http::write_response(&mut w, r.status, &r.headers, &r.body, false, true);
                return;
            }
        };
        let keep = req.keep_alive;
        let res = match api::handle(sh, &req) {
            Action::Hang => {
                // Never answer; hold the socket until the peer goes away.
                let mut sink = [0u8; 4096];
                while let Ok(n) = reader.read(&mut sink) {
                    if n == 0 {
                        break;
                    }
                }
                return;
            }
            Action::Reset => {
                let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
                return; // dropping the stream now sends RST
            }
            Action::Respond(r) => {
                http::write_response(&mut w, r.status, &stamped(&r.headers), &r.body, keep, req.http11)
            }
            Action::Stream(s) => write_stream(&mut w, &s, keep, req.http11),
        };
        if let Err(e) = res {
            if sh.verbose || !quiet_io(&e) {
                eprintln!("mock-provider {}: write error: {e}", sh.name);
            }
            return;
        }
        if !keep {
            return;
        }
    }
}

/// `headers` plus `x-mock-sent-at-us`: the wall-clock time (µs since the Unix epoch) at which
/// the response head is written — for a stream, its first event follows at once. Tests on the
/// same machine compare it with when the head or the first event reached the client.
fn stamped(headers: &[(String, String)]) -> Vec<(String, String)> {
    let us = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros());
    let mut out = headers.to_vec();
    out.push(("x-mock-sent-at-us".to_string(), us.to_string()));
    out
}

fn write_stream<W: Write>(w: &mut W, s: &api::Stream, keep: bool, http11: bool) -> io::Result<()> {
    http::write_chunked_head(w, 200, &stamped(&s.headers), keep, http11)?;
    for (delay_ms, ev) in &s.events {
        if *delay_ms > 0 {
            std::thread::sleep(Duration::from_millis(*delay_ms));
        }
        http::write_chunk(w, ev)?;
    }
    http::write_last_chunk(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn cli_parsing() {
        let c = parse_args(args(
            "--name a --status 429 --retry-after=3 --faults 500,reset,hang,sse-error --fault-rate 0.5",
        ))
        .unwrap()
        .unwrap();
        assert_eq!(c.name, "a");
        assert_eq!(c.faults.status, Some(429));
        assert_eq!(c.faults.retry_after, 3);
        assert_eq!(c.faults.faults.len(), 4);
        assert!(parse_args(args("--status 503")).is_err());
        assert!(parse_args(args("--name a --listen 0.0.0.0:0")).is_err());
        assert!(parse_args(args("--name a --listen 10.0.0.1:80")).is_err());
        assert!(parse_args(args("--name a --listen [::1]:0")).is_ok());
        assert!(parse_args(args("--name a --listen 127.0.0.2:0")).is_ok());
        assert!(parse_args(args("--name a --listen localhost:0")).is_ok());
        assert!(parse_args(args("--name a --faults boom")).is_err());
        assert!(parse_args(args("--name a --bogus")).is_err());
        assert!(parse_args(args("--help")).unwrap().is_none());
        let c = parse_args(args("--name a --fail-first 2 --pad-bytes 5000000")).unwrap().unwrap();
        assert_eq!((c.faults.fail_first, c.faults.pad_bytes), (2, 5_000_000));
        assert!(parse_args(args("--name a --pad-bytes 99999999999")).is_err());
        assert!(parse_args(args("--name a --fail-first -1")).is_err());
    }
}
