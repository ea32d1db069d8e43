//! Minimal, defensive HTTP/1.1 server-side codec: request head parsing,
//! content-length / chunked request bodies, `Expect: 100-continue`,
//! keep-alive decision, and response / chunked-response writing.
//!
//! Nothing in here panics on peer input: every malformed input maps to a
//! [`ReadError`] that the connection loop turns into a 4xx + close.

use std::io::{self, BufRead, Read, Write};

const MAX_LINE: u64 = 16 * 1024;
const MAX_HEADER_BYTES: usize = 64 * 1024;
const MAX_HEADERS: usize = 256;
const MAX_BODY: u64 = 64 * 1024 * 1024;

#[derive(Debug)]
pub struct Request {
    pub method: String,
    /// Origin-form path without the query string (`/v1/chat/completions`).
    pub path: String,
    /// Raw query string without the `?` (empty when absent).
    pub query: String,
    /// `true` for HTTP/1.1, `false` for HTTP/1.0.
    pub http11: bool,
    /// Lower-cased names, trimmed values, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Whether the connection may be reused after this request.
    pub keep_alive: bool,
}

impl Request {
    /// First value of a header (name must be lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// All values of a header joined with ", " (name must be lower case).
    pub fn header_joined(&self, name: &str) -> Option<String> {
        let vals: Vec<&str> = self.headers.iter().filter(|(n, _)| n == name).map(|(_, v)| v.as_str()).collect();
        if vals.is_empty() {
            None
        } else {
            Some(vals.join(", "))
        }
    }

    /// First value of a query parameter, percent-decoded (`+` is a space).
    pub fn query_param(&self, name: &str) -> Option<String> {
        self.query.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k) == name).then(|| percent_decode(v))
        })
    }
}

/// `a%2Fb+c` -> `a/b c`; malformed escapes are kept as they are.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        let hex = b
            .get(i + 1..i + 3)
            .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (c, hex) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[derive(Debug)]
pub enum ReadError {
    /// Peer closed cleanly between requests.
    Eof,
    /// Socket error or truncated request.
    Io(io::Error),
    /// Malformed request: answer 400 and close.
    Bad(String),
    /// Request too large: answer with the given status (413/431) and close.
    TooLarge(u16, &'static str),
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> Self {
        ReadError::Io(e)
    }
}

/// Reads one line (terminated by LF) of at most `MAX_LINE` bytes.
/// Returns `Ok(None)` on EOF before any byte.
fn read_line<R: BufRead>(r: &mut R, buf: &mut Vec<u8>) -> Result<Option<()>, ReadError> {
    buf.clear();
    let n = r.by_ref().take(MAX_LINE).read_until(b'\n', buf)?;
    if n == 0 {
        return Ok(None);
    }
    if buf.last() != Some(&b'\n') {
        if n as u64 >= MAX_LINE {
            return Err(ReadError::TooLarge(431, "header line too long"));
        }
        return Err(ReadError::Io(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed mid-line")));
    }
    // strip LF and optional CR
    buf.pop();
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    Ok(Some(()))
}

/// Reads one full request (head + body). Sends `100 Continue` through `w`
/// when the client asked for it and a body is expected.
pub fn read_request<R: BufRead, W: Write>(r: &mut R, w: &mut W) -> Result<Request, ReadError> {
    let mut line = Vec::with_capacity(256);

    // Request line (tolerate a few stray empty lines between requests, RFC 9112 §2.2).
    let mut empties = 0;
    loop {
        match read_line(r, &mut line)? {
            None => return Err(ReadError::Eof),
            Some(()) if line.is_empty() => {
                empties += 1;
                if empties > 8 {
                    return Err(ReadError::Bad("too many empty lines".into()));
                }
            }
            Some(()) => break,
        }
    }
    let request_line = String::from_utf8_lossy(&line).into_owned();
    let mut parts = request_line.split(' ').filter(|s| !s.is_empty());
    let (method, target, version) = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(m), Some(t), Some(v), None) => (m.to_string(), t.to_string(), v),
        _ => return Err(ReadError::Bad(format!("malformed request line: {request_line:?}"))),
    };
    let http11 = match version {
        "HTTP/1.1" => true,
        "HTTP/1.0" => false,
        _ => return Err(ReadError::Bad(format!("unsupported version {version:?}"))),
    };
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(ReadError::Bad("bad method".into()));
    }

    // Headers.
    let mut headers: Vec<(String, String)> = Vec::with_capacity(16);
    let mut total = 0usize;
    loop {
        match read_line(r, &mut line)? {
            None => {
                return Err(ReadError::Io(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed in headers")))
            }
            Some(()) if line.is_empty() => break,
            Some(()) => {}
        }
        total += line.len();
        if total > MAX_HEADER_BYTES || headers.len() >= MAX_HEADERS {
            return Err(ReadError::TooLarge(431, "request headers too large"));
        }
        if matches!(line.first(), Some(b' ' | b'\t')) {
            return Err(ReadError::Bad("obsolete header line folding".into()));
        }
        let colon =
            line.iter().position(|&b| b == b':').ok_or_else(|| ReadError::Bad("header without colon".into()))?;
        let (name, value) = line.split_at(colon);
        let value = value.get(1..).unwrap_or_default();
        if name.is_empty() || name.iter().any(|b| b.is_ascii_whitespace()) {
            return Err(ReadError::Bad("bad header name".into()));
        }
        let name = String::from_utf8_lossy(name).to_ascii_lowercase();
        let value = String::from_utf8_lossy(value).trim().to_string();
        headers.push((name, value));
    }

    // Connection management.
    let mut conn_close = false;
    let mut conn_keep_alive = false;
    for (n, v) in &headers {
        if n == "connection" {
            for tok in v.split(',') {
                let tok = tok.trim();
                if tok.eq_ignore_ascii_case("close") {
                    conn_close = true;
                } else if tok.eq_ignore_ascii_case("keep-alive") {
                    conn_keep_alive = true;
                }
            }
        }
    }
    let keep_alive = !conn_close && (http11 || conn_keep_alive);

    // Body framing (RFC 9112 §6.3): transfer-encoding wins over content-length.
    let te: Vec<&str> = headers
        .iter()
        .filter(|(n, _)| n == "transfer-encoding")
        .flat_map(|(_, v)| v.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    enum Framing {
        None,
        Length(u64),
        Chunked,
    }
    let framing = if !te.is_empty() {
        if te.last().is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
            Framing::Chunked
        } else {
            return Err(ReadError::Bad("transfer-encoding without final chunked".into()));
        }
    } else {
        let mut len: Option<u64> = None;
        for (n, v) in &headers {
            if n != "content-length" {
                continue;
            }
            for piece in v.split(',') {
                let piece = piece.trim();
                if piece.is_empty() || !piece.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(ReadError::Bad(format!("bad content-length {v:?}")));
                }
                let l: u64 = piece.parse().map_err(|_| ReadError::Bad(format!("bad content-length {v:?}")))?;
                if len.is_some_and(|prev| prev != l) {
                    return Err(ReadError::Bad("conflicting content-length".into()));
                }
                len = Some(l);
            }
        }
        match len {
            Some(0) | None => Framing::None,
            Some(l) => Framing::Length(l),
        }
    };

    if let Framing::Length(l) = framing {
        if l > MAX_BODY {
            return Err(ReadError::TooLarge(413, "request body too large"));
        }
    }

    // Expect: 100-continue
    let has_body = !matches!(framing, Framing::None);
    let expects_continue = headers.iter().any(|(n, v)| n == "expect" && v.eq_ignore_ascii_case("100-continue"));
    if expects_continue && http11 && has_body {
        w.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        w.flush()?;
    }

    let body = match framing {
        Framing::None => Vec::new(),
        Framing::Length(l) => read_exact_vec(r, l)?,
        Framing::Chunked => read_chunked(r, &mut line)?,
    };

    let path = origin_path(&target);
    let query = origin_query(&target);
    Ok(Request { method, path, query, http11, headers, body, keep_alive })
}

fn read_exact_vec<R: Read>(r: &mut R, len: u64) -> Result<Vec<u8>, ReadError> {
    let mut body = Vec::with_capacity(usize::try_from(len.min(1 << 20)).unwrap_or(0));
    let got = r.by_ref().take(len).read_to_end(&mut body)?;
    if (got as u64) < len {
        return Err(ReadError::Io(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed mid-body")));
    }
    Ok(body)
}

fn read_chunked<R: BufRead>(r: &mut R, line: &mut Vec<u8>) -> Result<Vec<u8>, ReadError> {
    let eof = || ReadError::Io(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed mid-chunked-body"));
    let mut body = Vec::new();
    loop {
        read_line(r, line)?.ok_or_else(eof)?;
        let text = String::from_utf8_lossy(line);
        let size_str = text.split(';').next().unwrap_or("").trim();
        if size_str.is_empty() || size_str.len() > 16 {
            return Err(ReadError::Bad(format!("bad chunk size line {text:?}")));
        }
        let size =
            u64::from_str_radix(size_str, 16).map_err(|_| ReadError::Bad(format!("bad chunk size {size_str:?}")))?;
        if size == 0 {
            // trailers until empty line
            let mut trailer_bytes = 0usize;
            loop {
                read_line(r, line)?.ok_or_else(eof)?;
                if line.is_empty() {
                    return Ok(body);
                }
                trailer_bytes += line.len();
                if trailer_bytes > MAX_HEADER_BYTES {
                    return Err(ReadError::TooLarge(431, "trailers too large"));
                }
            }
        }
        if body.len() as u64 + size > MAX_BODY {
            return Err(ReadError::TooLarge(413, "request body too large"));
        }
        let got = r.by_ref().take(size).read_to_end(&mut body)?;
        if (got as u64) < size {
            return Err(eof());
        }
        read_line(r, line)?.ok_or_else(eof)?;
        if !line.is_empty() {
            return Err(ReadError::Bad("missing CRLF after chunk data".into()));
        }
    }
}

/// `/v1/x?y` -> `/v1/x`; `http://h:1/v1/x` -> `/v1/x`.
fn origin_path(target: &str) -> String {
    let mut t = target;
    if let Some(idx) = t.find("://") {
        let rest = t.get(idx + 3..).unwrap_or("");
        t = match rest.find('/') {
            Some(p) => rest.get(p..).unwrap_or("/"),
            None => "/",
        };
    }
    let t = t.split(['?', '#']).next().unwrap_or("");
    if t.is_empty() {
        "/".to_string()
    } else {
        t.to_string()
    }
}

/// `/v1/x?a=b#f` -> `a=b`; no `?` -> empty.
fn origin_query(target: &str) -> String {
    let t = target.split('#').next().unwrap_or("");
    t.split_once('?').map(|(_, q)| q.to_string()).unwrap_or_default()
}

pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        413 => "Payload Too Large",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        529 => "Overloaded",
        _ => "Status",
    }
}

fn head(status: u16, headers: &[(String, String)], keep_alive: bool, http11: bool, cap: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + cap);
    let _ = write!(out, "HTTP/1.1 {} {}\r\n", status, reason(status));
    for (n, v) in headers {
        out.extend_from_slice(n.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(v.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if !keep_alive {
        out.extend_from_slice(b"connection: close\r\n");
    } else if !http11 {
        out.extend_from_slice(b"connection: keep-alive\r\n");
    }
    out
}

/// Writes a complete response with `content-length` in a single write.
pub fn write_response<W: Write>(
    w: &mut W,
    status: u16,
    headers: &[(String, String)],
    body: &[u8],
    keep_alive: bool,
    http11: bool,
) -> io::Result<()> {
    let mut out = head(status, headers, keep_alive, http11, body.len());
    let _ = write!(out, "content-length: {}\r\n\r\n", body.len());
    out.extend_from_slice(body);
    w.write_all(&out)?;
    w.flush()
}

/// Writes the head of a chunked response (adds `transfer-encoding: chunked`).
pub fn write_chunked_head<W: Write>(
    w: &mut W,
    status: u16,
    headers: &[(String, String)],
    keep_alive: bool,
    http11: bool,
) -> io::Result<()> {
    let mut out = head(status, headers, keep_alive, http11, 0);
    out.extend_from_slice(b"transfer-encoding: chunked\r\n\r\n");
    w.write_all(&out)?;
    w.flush()
}

/// Writes one HTTP chunk (size line + data + CRLF) in a single write.
pub fn write_chunk<W: Write>(w: &mut W, data: &[u8]) -> io::Result<()> {
    if data.is_empty() {
        return Ok(()); // an empty chunk would terminate the body
    }
    let mut out = Vec::with_capacity(data.len() + 16);
    let _ = write!(out, "{:x}\r\n", data.len());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
    w.write_all(&out)?;
    w.flush()
}

/// Writes the terminating zero-length chunk.
pub fn write_last_chunk<W: Write>(w: &mut W) -> io::Result<()> {
    w.write_all(b"0\r\n\r\n")?;
    w.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &[u8]) -> Result<Request, ReadError> {
        let mut r = io::BufReader::new(raw);
        let mut sink = Vec::new();
        read_request(&mut r, &mut sink)
    }

    #[test]
    fn content_length_body() {
        let req = parse(b"POST /v1/x?a=b HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc").unwrap();
        assert_eq!(req.path, "/v1/x");
        assert_eq!(req.body, b"abc");
        assert!(req.keep_alive);
        assert_eq!(req.header("host"), Some("h"));
    }

    #[test]
    fn chunked_body_with_ext_and_trailer() {
        let req = parse(
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\nA\r\n0123456789\r\n0\r\nT: v\r\n\r\n",
        )
        .unwrap();
        assert_eq!(req.body, b"abc0123456789");
    }

    #[test]
    fn bad_inputs_do_not_panic() {
        for raw in [
            &b"GARBAGE\r\n\r\n"[..],
            b"GET / HTTP/2.0\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 1, 2\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc",
            b"GET / HTTP/1.1\r\nNoColon\r\n\r\n",
            b"\xff\xfe / HTTP/1.1\r\n\r\n",
        ] {
            assert!(parse(raw).is_err(), "{:?}", String::from_utf8_lossy(raw));
        }
        assert!(matches!(parse(b""), Err(ReadError::Eof)));
    }

    #[test]
    fn connection_semantics() {
        assert!(!parse(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n").unwrap().keep_alive);
        assert!(!parse(b"GET / HTTP/1.0\r\n\r\n").unwrap().keep_alive);
        assert!(parse(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").unwrap().keep_alive);
    }

    #[test]
    fn expect_continue() {
        let mut r = io::BufReader::new(&b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi"[..]);
        let mut sink = Vec::new();
        let req = read_request(&mut r, &mut sink).unwrap();
        assert_eq!(req.body, b"hi");
        assert_eq!(sink, b"HTTP/1.1 100 Continue\r\n\r\n");
    }

    #[test]
    fn origin_paths() {
        assert_eq!(origin_path("http://a:1/v1/models?x"), "/v1/models");
        assert_eq!(origin_path("http://a:1"), "/");
        assert_eq!(origin_path("/p#f"), "/p");
        assert_eq!(origin_query("/p?api-version=2024-10-21&x#f"), "api-version=2024-10-21&x");
        assert_eq!(origin_query("/p"), "");
    }

    #[test]
    fn query_params() {
        let req = parse(b"GET /__mock/last?path=%2Fv1%2Fmessages&a=b+c&e&bad=%zz HTTP/1.1\r\n\r\n").unwrap();
        assert_eq!(req.path, "/__mock/last");
        assert_eq!(req.query_param("path").as_deref(), Some("/v1/messages"));
        assert_eq!(req.query_param("a").as_deref(), Some("b c"));
        assert_eq!(req.query_param("e").as_deref(), Some(""));
        assert_eq!(req.query_param("bad").as_deref(), Some("%zz"));
        assert_eq!(req.query_param("nope"), None);
    }
}
