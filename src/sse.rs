//! Server-sent events: is a stream's first event an error?
//!
//! Some providers answer `200 text/event-stream` and then report a failure as the stream's
//! first event (OpenAI-compatible servers: `data: {"error": …}`; Anthropic: `event: error`).
//! Before any byte has reached the client that is as retryable as a 5xx, so the glue holds a
//! streamed first attempt's response headers until the first event is complete and asks here.

/// Bytes held at most while waiting for the first event to complete.
pub const MAX_PEEK_BYTES: usize = 16 * 1024;

/// `Some(true)`: the first event is an error; `Some(false)`: it is not (or it cannot be told
/// within [`MAX_PEEK_BYTES`], or the stream ended); `None`: the first event is incomplete.
pub fn first_event_is_error(buf: &[u8], end_of_stream: bool) -> Option<bool> {
    let Some(event) = first_event(buf) else {
        return if end_of_stream || buf.len() >= MAX_PEEK_BYTES { Some(is_error_event(buf)) } else { None };
    };
    Some(is_error_event(event))
}

/// The bytes of the first event (up to the blank line that ends it), skipping leading blank
/// lines, comments-only events and Anthropic's preamble (`message_start`, `ping`): an
/// Anthropic stream that fails reports `event: error` right after `message_start`.
fn first_event(buf: &[u8]) -> Option<&[u8]> {
    let mut rest = buf;
    loop {
        let end = find_event_end(rest)?;
        let (event, after) = (rest.get(..end.0)?, rest.get(end.1..)?);
        let meaningful = lines(event).any(|l| !l.is_empty() && !l.starts_with(b":"));
        let preamble = lines(event)
            .any(|l| l.strip_prefix(b"event:").is_some_and(|v| matches!(v.trim_ascii(), b"message_start" | b"ping")));
        if meaningful && !preamble {
            return Some(event);
        }
        rest = after;
    }
}

/// (end of event, start of next) for the first `\n\n`, `\r\n\r\n` or `\r\r`.
fn find_event_end(buf: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while i < buf.len() {
        for sep in [&b"\r\n\r\n"[..], b"\n\n", b"\r\r"] {
            if buf.get(i..i + sep.len()) == Some(sep) {
                return Some((i, i + sep.len()));
            }
        }
        i += 1;
    }
    None
}

fn lines(event: &[u8]) -> impl Iterator<Item = &[u8]> {
    event.split(|b| *b == b'\n').map(|l| l.strip_suffix(b"\r").unwrap_or(l))
}

fn is_error_event(event: &[u8]) -> bool {
    lines(event).any(|l| {
        if let Some(v) = l.strip_prefix(b"event:") {
            return v.trim_ascii() == b"error";
        }
        if let Some(v) = l.strip_prefix(b"data:") {
            let v = v.trim_ascii();
            return v.starts_with(b"{") && json_has_top_level_error(v);
        }
        false
    })
}

/// `{"error": …}` as the first key (how OpenAI-compatible servers report a stream error).
fn json_has_top_level_error(v: &[u8]) -> bool {
    let inner = v.strip_prefix(b"{").unwrap_or(v).trim_ascii_start();
    inner.starts_with(b"\"error\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anthropic_preamble_is_skipped() {
        let start = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{}}\n\nevent: ping\ndata: {\"type\":\"ping\"}\n\n";
        let err = format!(
            "{start}event: error\ndata: {{\"type\":\"error\",\"error\":{{\"type\":\"overloaded_error\"}}}}\n\n"
        );
        assert_eq!(first_event_is_error(err.as_bytes(), false), Some(true));
        let ok = format!("{start}event: content_block_start\ndata: {{\"type\":\"content_block_start\"}}\n\n");
        assert_eq!(first_event_is_error(ok.as_bytes(), false), Some(false));
        assert_eq!(first_event_is_error(start.as_bytes(), false), None, "only the preamble so far");
    }

    #[test]
    fn table() {
        let cases: &[(&[u8], bool, Option<bool>)] = &[
            (b"data: {\"id\":\"c1\",\"choices\":[]}\n\n", false, Some(false)),
            (b"data: {\"error\":{\"message\":\"overloaded\"}}\n\n", false, Some(true)),
            (b"data: { \"error\" : {}}\r\n\r\n", false, Some(true)),
            (
                b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\"}}\n\n",
                false,
                Some(true),
            ),
            (b"event: message_start\ndata: {\"type\":\"message_start\"}\n\n", false, None),
            (b"event: message_start\ndata: {\"type\":\"message_start\"}\n\n", true, Some(false)),
            (b": keep-alive\n\ndata: {\"error\":{}}\n\n", false, Some(true)),
            (b": keep-alive\n\ndata: {\"id\":1}\n\n", false, Some(false)),
            (b"data: {\"choices\":[{\"delta\":{\"content\":\"\\\"error\\\"\"}}]}\n\n", false, Some(false)),
            (b"data: {\"error\":", false, None),
            (b"data: {\"error\":", true, Some(true)),
            (b"data: {\"id\":", true, Some(false)),
            (b"", false, None),
            (b"", true, Some(false)),
            (b"data: [DONE]\n\n", false, Some(false)),
        ];
        for (buf, eos, want) in cases {
            assert_eq!(first_event_is_error(buf, *eos), *want, "{:?}", String::from_utf8_lossy(buf));
        }
    }

    #[test]
    fn gives_up_waiting_after_the_peek_limit() {
        let long = vec![b'x'; MAX_PEEK_BYTES];
        assert_eq!(first_event_is_error(&long, false), Some(false));
    }
}
