//! A minimal keep-alive HTTP/1.1 client over `std::net::TcpStream` and a closed-loop load
//! generator (one thread per connection, each sending the same pre-serialised request).

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

/// A request serialised once (head + body) and replayed on every iteration.
#[derive(Clone)]
pub struct Request {
    pub bytes: Arc<Vec<u8>>,
}

impl Request {
    pub fn post_json(port: u16, path: &str, extra_headers: &[(&str, &str)], body: &[u8]) -> Self {
        let mut head = format!(
            "POST {path} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\ncontent-type: application/json\r\n\
             content-length: {}\r\n",
            body.len()
        );
        for (k, v) in extra_headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        let mut bytes = Vec::with_capacity(head.len() + body.len());
        bytes.extend_from_slice(head.as_bytes());
        bytes.extend_from_slice(body);
        Request { bytes: Arc::new(bytes) }
    }
}

/// One response, timed from the first byte written.
#[derive(Debug, Clone)]
pub struct Timing {
    pub status: u16,
    /// Until the first byte of the body (for a stream: the first SSE event) was received.
    pub first_byte: Duration,
    /// Until the whole response (last chunk) was received.
    pub total: Duration,
    pub body_len: usize,
    /// The first bytes of the body (for sanity checks).
    pub body_head: Vec<u8>,
    pub headers: Vec<(String, String)>,
}

impl Timing {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

pub struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// When the last `fill` that returned data finished.
    last_fill: Instant,
    /// How many body bytes to keep in [`Timing::body_head`].
    pub keep: usize,
}

const BODY_HEAD: usize = 512;

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

impl Conn {
    pub fn connect(port: u16, timeout: Duration) -> io::Result<Conn> {
        let stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        Ok(Conn { stream, buf: vec![0; 64 * 1024], start: 0, end: 0, last_fill: Instant::now(), keep: BODY_HEAD })
    }

    fn avail(&self) -> &[u8] {
        self.buf.get(self.start..self.end).unwrap_or(&[])
    }

    /// Reads more bytes into the buffer; error on EOF.
    fn fill(&mut self) -> io::Result<()> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end == self.buf.len() {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            } else {
                let n = self.buf.len();
                self.buf.resize(n * 2, 0);
            }
        }
        let n = {
            let spare = self.buf.get_mut(self.end..).unwrap_or(&mut []);
            self.stream.read(spare)?
        };
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed by peer"));
        }
        self.end += n;
        self.last_fill = Instant::now();
        Ok(())
    }

    /// Consumes one CRLF-terminated line and returns it (without CRLF).
    fn line(&mut self) -> io::Result<Vec<u8>> {
        loop {
            if let Some(i) = find(self.avail(), b"\r\n") {
                let l = self.avail().get(..i).unwrap_or(&[]).to_vec();
                self.start += i + 2;
                return Ok(l);
            }
            if self.end - self.start > 64 * 1024 {
                return Err(bad("line too long"));
            }
            self.fill()?;
        }
    }

    /// Consumes `n` body bytes (keeping the first few for `head`).
    fn skip(&mut self, mut n: usize, head: &mut Vec<u8>) -> io::Result<()> {
        while n > 0 {
            if self.start == self.end {
                self.fill()?;
            }
            let take = n.min(self.end - self.start);
            if head.len() < self.keep {
                let keep = take.min(self.keep - head.len());
                head.extend_from_slice(self.avail().get(..keep).unwrap_or(&[]));
            }
            self.start += take;
            n -= take;
        }
        Ok(())
    }

    /// Sends `req` and reads one full response. The connection stays usable unless the
    /// server asked to close it (then the caller gets `Ok` and must reconnect: see
    /// [`Conn::exchange`]'s second value).
    pub fn exchange(&mut self, req: &[u8]) -> io::Result<(Timing, bool)> {
        let t0 = Instant::now();
        self.stream.write_all(req)?;
        // Head.
        let head_end = loop {
            if let Some(i) = find(self.avail(), b"\r\n\r\n") {
                break self.start + i + 4;
            }
            if self.end - self.start > 256 * 1024 {
                return Err(bad("response head too long"));
            }
            self.fill()?;
        };
        let head = self.buf.get(self.start..head_end).unwrap_or(&[]).to_vec();
        self.start = head_end;
        let text = String::from_utf8_lossy(&head);
        let mut lines = text.split("\r\n");
        let status_line = lines.next().unwrap_or("");
        let status: u16 = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad(format!("bad status line {status_line:?}")))?;
        let mut headers = Vec::new();
        let mut content_length = None;
        let mut chunked = false;
        let mut close = status_line.starts_with("HTTP/1.0");
        for l in lines {
            let Some((k, v)) = l.split_once(':') else {
                continue;
            };
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().to_string());
            match k.as_str() {
                "content-length" => content_length = v.parse::<usize>().ok(),
                "transfer-encoding" => chunked = v.to_ascii_lowercase().contains("chunked"),
                "connection" => close = v.eq_ignore_ascii_case("close"),
                _ => {}
            }
            headers.push((k, v));
        }
        // Body.
        let mut body_head = Vec::new();
        let mut body_len = 0;
        let mut first_byte = None;
        if chunked {
            loop {
                let size_line = self.line()?;
                let size_text = String::from_utf8_lossy(&size_line);
                let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                    .map_err(|_| bad(format!("bad chunk size {size_text:?}")))?;
                if size == 0 {
                    // Trailers until an empty line.
                    while !self.line()?.is_empty() {}
                    break;
                }
                if first_byte.is_none() {
                    first_byte = Some(self.last_fill.duration_since(t0));
                }
                self.skip(size, &mut body_head)?;
                body_len += size;
                if !self.line()?.is_empty() {
                    return Err(bad("chunk not followed by CRLF"));
                }
            }
        } else if let Some(n) = content_length {
            if n > 0 {
                if self.start == self.end {
                    self.fill()?;
                }
                first_byte = Some(self.last_fill.duration_since(t0));
            }
            self.skip(n, &mut body_head)?;
            body_len = n;
        } else if status != 204 && status != 304 {
            // Body until close.
            loop {
                match self.fill() {
                    Ok(()) => {
                        first_byte.get_or_insert_with(|| self.last_fill.duration_since(t0));
                        let n = self.end - self.start;
                        self.skip(n, &mut body_head)?;
                        body_len += n;
                    }
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
                    Err(e) => return Err(e),
                }
            }
            close = true;
        }
        let total = t0.elapsed();
        Ok((Timing { status, first_byte: first_byte.unwrap_or(total), total, body_len, body_head, headers }, close))
    }
}

/// One request on a fresh connection (sanity checks), keeping up to `keep` body bytes.
pub fn once(port: u16, req: &Request, keep: usize) -> io::Result<Timing> {
    let mut c = Conn::connect(port, Duration::from_secs(30))?;
    c.keep = keep;
    c.exchange(&req.bytes).map(|(t, _)| t)
}

/// `GET path` on a fresh connection; the whole body (up to 16 MiB).
pub fn get(port: u16, path: &str) -> io::Result<Timing> {
    let req = format!("GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n");
    let mut c = Conn::connect(port, Duration::from_secs(5))?;
    c.keep = 16 << 20;
    c.exchange(req.as_bytes()).map(|(t, _)| t)
}

/// `n` requests at once, each on its own fresh connection (all released by one barrier): the
/// answers (or errors) and the wall time from the release to the last answer.
pub fn burst(port: u16, req: &Request, n: usize) -> (Vec<Result<Timing, String>>, Duration) {
    let barrier = Arc::new(Barrier::new(n + 1));
    let handles: Vec<_> = (0..n)
        .map(|_| {
            let (req, barrier) = (req.clone(), barrier.clone());
            std::thread::spawn(move || {
                let conn = Conn::connect(port, Duration::from_secs(120));
                barrier.wait();
                let mut c = conn.map_err(|e| format!("connect: {e}"))?;
                c.exchange(&req.bytes).map(|(t, _)| t).map_err(|e| e.to_string())
            })
        })
        .collect();
    barrier.wait();
    let t0 = Instant::now();
    let out = handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err("thread panicked".into()))).collect();
    (out, t0.elapsed())
}

/// What one load cell produced.
#[derive(Debug, Clone, Default)]
pub struct CellResult {
    /// Latencies (total, µs) of requests completed inside the measurement window.
    pub total_us: Vec<u32>,
    /// Time to first body byte (µs), same requests.
    pub first_us: Vec<u32>,
    /// Requests completed with status 200 inside the window.
    pub ok: u64,
    /// Non-200 answers and I/O errors inside the window.
    pub errors: u64,
    /// Wall time of the measurement window (s).
    pub window_s: f64,
    /// CPU time (user + system, all threads) the proxy process used during the window (s).
    pub cpu_s: f64,
    pub first_error: Option<String>,
}

impl CellResult {
    pub fn merge(&mut self, o: CellResult) {
        self.total_us.extend(o.total_us);
        self.first_us.extend(o.first_us);
        self.ok += o.ok;
        self.errors += o.errors;
        self.window_s += o.window_s;
        self.cpu_s += o.cpu_s;
        if self.first_error.is_none() {
            self.first_error = o.first_error;
        }
    }
    pub fn rps(&self) -> f64 {
        if self.window_s > 0.0 {
            self.ok as f64 / self.window_s
        } else {
            0.0
        }
    }
    /// Proxy CPU time per completed request (µs).
    pub fn cpu_us_per_req(&self) -> Option<f64> {
        (self.ok > 0 && self.cpu_s > 0.0).then(|| self.cpu_s * 1e6 / self.ok as f64)
    }
}

/// utime + stime of a process (all threads), in seconds (`/proc/<pid>/stat`, USER_HZ = 100).
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the `(comm)`, which may contain spaces: state is field 3, utime 14, stime 15.
    let rest = s.get(s.rfind(')')? + 2..)?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// Closed loop: `conns` threads, each with its own keep-alive connection, send `req` back to
/// back. Requests completing during `warmup` are discarded; the window then lasts `measure`
/// (or until `max_requests` completed in total, whichever is first). With `cpu_pid`, the CPU
/// time that process used during the window is recorded too.
pub fn run_cell(
    port: u16,
    req: &Request,
    conns: usize,
    warmup: Duration,
    measure: Duration,
    max_requests: u64,
    cpu_pid: Option<u32>,
) -> CellResult {
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let barrier = Arc::new(Barrier::new(conns + 1));
    let mut handles = Vec::with_capacity(conns);
    // All threads share one clock: the window starts after the barrier + warm-up.
    let epoch = Arc::new(std::sync::Mutex::new(None::<(Instant, Instant)>));
    for _ in 0..conns {
        let (req, stop, barrier, epoch, done) =
            (req.clone(), stop.clone(), barrier.clone(), epoch.clone(), done.clone());
        handles.push(std::thread::spawn(move || {
            let mut out = CellResult::default();
            let mut conn = Conn::connect(port, Duration::from_secs(60)).ok();
            barrier.wait();
            let (w0, w1) = epoch
                .lock()
                .map(|e| e.unwrap_or((Instant::now(), Instant::now())))
                .unwrap_or((Instant::now(), Instant::now()));
            while !stop.load(Ordering::Relaxed) {
                let c = match conn.as_mut() {
                    Some(c) => c,
                    None => match Conn::connect(port, Duration::from_secs(60)) {
                        Ok(c) => conn.insert(c),
                        Err(e) => {
                            if Instant::now() >= w0 {
                                out.errors += 1;
                                out.first_error.get_or_insert(format!("connect: {e}"));
                            }
                            std::thread::sleep(Duration::from_millis(5));
                            continue;
                        }
                    },
                };
                let r = c.exchange(&req.bytes);
                let now = Instant::now();
                let in_window = now >= w0 && now <= w1;
                match r {
                    Ok((t, close)) => {
                        if close {
                            conn = None;
                        }
                        if in_window {
                            if t.status == 200 {
                                out.ok += 1;
                                out.total_us.push(u32::try_from(t.total.as_micros()).unwrap_or(u32::MAX));
                                out.first_us.push(u32::try_from(t.first_byte.as_micros()).unwrap_or(u32::MAX));
                                if done.fetch_add(1, Ordering::Relaxed) + 1 >= max_requests {
                                    stop.store(true, Ordering::Relaxed);
                                }
                            } else {
                                out.errors += 1;
                                out.first_error.get_or_insert(format!(
                                    "status {}: {}",
                                    t.status,
                                    String::from_utf8_lossy(&t.body_head)
                                ));
                            }
                        }
                    }
                    Err(e) => {
                        conn = None;
                        if in_window {
                            out.errors += 1;
                            out.first_error.get_or_insert(format!("{e}"));
                        }
                    }
                }
                if now > w1 {
                    break;
                }
            }
            out
        }));
    }
    let start = Instant::now() + Duration::from_millis(5);
    let w0 = start + warmup;
    let w1 = w0 + measure;
    if let Ok(mut e) = epoch.lock() {
        *e = Some((w0, w1));
    }
    barrier.wait();
    std::thread::sleep(w0.saturating_duration_since(Instant::now()));
    let cpu0 = cpu_pid.and_then(cpu_seconds);
    // Wait until the window closes (or the request cap stopped it early).
    while Instant::now() < w1 && !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(1).min(w1.saturating_duration_since(Instant::now())));
    }
    let cpu1 = cpu_pid.and_then(cpu_seconds);
    let stopped_at = Instant::now().min(w1);
    stop.store(true, Ordering::Relaxed);
    let mut total = CellResult::default();
    for h in handles {
        if let Ok(r) = h.join() {
            total.merge(r);
        }
    }
    total.window_s = stopped_at.saturating_duration_since(w0).as_secs_f64();
    if let (Some(a), Some(b)) = (cpu0, cpu1) {
        total.cpu_s = (b - a).max(0.0);
    }
    total
}

/// The `q`-quantile (0..=1) of `v` (nearest rank), in µs.
pub fn quantile(v: &mut [u32], q: f64) -> Option<u32> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v.get(rank - 1).copied()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn serve(responses: Vec<&'static [u8]>) -> u16 {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut buf = [0u8; 4096];
            for r in responses {
                let _ = s.read(&mut buf).unwrap();
                s.write_all(r).unwrap();
            }
        });
        port
    }

    #[test]
    fn parses_content_length_and_chunked_on_one_connection() {
        let port = serve(vec![
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello",
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\ndata:\r\n3;x=y\r\n 1\n\r\n0\r\n\r\n",
            b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
        ]);
        let mut c = Conn::connect(port, Duration::from_secs(5)).unwrap();
        let (t, close) = c.exchange(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        assert_eq!((t.status, t.body_len, close), (200, 5, false));
        assert_eq!(t.body_head, b"hello");
        assert_eq!(t.header("x-a"), Some("b"));
        let (t, _) = c.exchange(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        assert_eq!((t.status, t.body_len), (200, 8));
        assert_eq!(t.body_head, b"data: 1\n");
        let (t, close) = c.exchange(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        assert_eq!((t.status, t.body_len, close), (503, 0, true));
    }

    #[test]
    fn reads_own_cpu_time() {
        let t = cpu_seconds(std::process::id()).unwrap();
        assert!(t >= 0.0);
    }

    #[test]
    fn quantiles() {
        let mut v: Vec<u32> = (1..=100).collect();
        assert_eq!(quantile(&mut v, 0.5), Some(50));
        assert_eq!(quantile(&mut v, 0.99), Some(99));
        assert_eq!(quantile(&mut [], 0.5), None);
    }
}
