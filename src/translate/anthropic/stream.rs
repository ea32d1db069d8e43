//! Anthropic's SSE stream → OpenAI `chat.completion.chunk` SSE, incrementally.
//!
//! Bytes are fed as they arrive, split anywhere ([`StreamTranslator::push`]); each call
//! returns the OpenAI events that are complete now. Work per byte is only the search for line
//! ends (the SSE framing: `\n`, `\r\n` or `\r`); a line is looked at once, an event's `data`
//! is parsed once with `serde_json` (borrowing its strings) when the blank line that ends the
//! event arrives, and the chunks are written directly. A partial line is kept (copied once
//! into the pending buffer) and searched only from where the last search stopped.

use super::events::Event;
use super::{finish_reason, openai_error_type, write_error, write_json_string, Usage};
use crate::error::clip;

/// The longest SSE line or event data accepted (Anthropic's events are small: text and tool
/// input arrive in fragments).
pub const MAX_EVENT_BYTES: usize = 4 << 20;

const DONE: &[u8] = b"data: [DONE]\n\n";

/// One Anthropic stream → one OpenAI stream:
///
/// | Anthropic event | OpenAI output |
/// |---|---|
/// | `message_start` | first chunk, `delta: {role: "assistant", content: ""}`; `message.id` / `message.model` are every chunk's `id` / `model`; its usage is kept |
/// | `content_block_start` `text` | its text as `delta.content` if not empty, else nothing |
/// | `content_block_start` `tool_use` | `delta.tool_calls: [{index, id, type: "function", function: {name, arguments: ""}}]`, `index` counting tool calls from 0 |
/// | `content_block_delta` `text_delta` | `delta.content` |
/// | `content_block_delta` `input_json_delta` | `delta.tool_calls: [{index, function: {arguments: partial_json}}]`, same `index` as its block (empty fragments skipped) |
/// | `message_delta` | its usage is kept; with a `stop_reason`: a chunk with `delta: {}` and the `finish_reason` |
/// | `message_stop` | (`finish_reason: "stop"` chunk if none came) (usage chunk with `choices: []` if `include_usage`) `data: [DONE]` |
/// | `ping`, `content_block_stop`, thinking / signature / citation deltas, other blocks, unknown events | nothing |
/// | `error` event (or `event: error` with unparsable data) | `data: {"error":{"message","type","param":null,"code"}}` then `data: [DONE]` |
/// | end of input before `message_stop` | as `message_stop` if a `finish_reason` was sent, else an error event (`code: stream_truncated`) and `[DONE]` |
///
/// With `include_usage` every chunk carries `"usage":null`, as OpenAI's do, and the usage chunk
/// counts as in [`super::response_from_anthropic`] (the latest count of each kind wins:
/// `message_delta`'s are cumulative). Chunks have `created: 0`. After `[DONE]` input is
/// ignored. A line or event longer than [`MAX_EVENT_BYTES`] ends the stream with an error
/// event. Events with unparsable data are skipped (unless they are error events).
#[derive(Debug)]
pub struct StreamTranslator {
    include_usage: bool,
    /// The start of a line whose end has not arrived yet.
    pending: Vec<u8>,
    /// `pending[..searched]` holds no line end (a trailing `\r` is left unsearched).
    searched: usize,
    /// The current event's `data:` lines, joined by `\n`.
    data: Vec<u8>,
    has_data: bool,
    /// The current event said `event: error`.
    error_event: bool,
    /// `{"id":…,"object":"chat.completion.chunk","created":0,"model":…` of every chunk.
    head: Vec<u8>,
    /// (Anthropic content block index, OpenAI tool call index) of each `tool_use` block.
    tools: Vec<(Option<u64>, u64)>,
    usage: Usage,
    /// A chunk with a `finish_reason` was sent.
    finished: bool,
    /// `[DONE]` was sent.
    done: bool,
}

/// The commonest event, in the exact form Anthropic writes it —
/// `{"type":"content_block_delta","index":N,"delta":{"type":"text_delta","text":"…"}}` with
/// a non-empty text free of escapes — recognised without a JSON parse: its text (valid UTF-8,
/// no control character) is the same string `serde_json` would decode, so the chunk written is
/// byte for byte the one the full parse writes (a differential test holds them equal). Any
/// other form (escapes, other key order, spaces) takes the full parse.
pub(super) fn plain_text_delta(data: &[u8]) -> Option<&str> {
    let rest = data.strip_prefix(b"{\"type\":\"content_block_delta\",\"index\":")?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 9 || (digits > 1 && rest.first() == Some(&b'0')) {
        return None;
    }
    let rest = rest.get(digits..)?.strip_prefix(b",\"delta\":{\"type\":\"text_delta\",\"text\":\"")?;
    let text = rest.strip_suffix(b"\"}}")?;
    if text.is_empty() || text.iter().any(|&b| b == b'"' || b == b'\\' || b < 0x20) {
        return None;
    }
    std::str::from_utf8(text).ok()
}

impl StreamTranslator {
    /// `include_usage`: the client's `stream_options.include_usage`.
    pub fn new(include_usage: bool) -> Self {
        let mut t = StreamTranslator {
            include_usage,
            pending: Vec::new(),
            searched: 0,
            data: Vec::new(),
            has_data: false,
            error_event: false,
            head: Vec::new(),
            tools: Vec::new(),
            usage: Usage::default(),
            finished: false,
            done: false,
        };
        t.set_head("", "");
        t
    }

    /// Feed the next bytes of the Anthropic stream; returns the OpenAI events complete now
    /// (possibly none). A partial line or event is kept for the next call.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        self.push_into(chunk, &mut out);
        out
    }

    /// [`Self::push`], appending to `out` (a buffer the caller reuses from chunk to chunk).
    pub fn push_into(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        if self.done || chunk.is_empty() {
            return;
        }
        // An OpenAI chunk is about as long as the Anthropic event it comes from.
        out.reserve(chunk.len() + 256);
        if self.pending.is_empty() {
            let (used, resume) = self.lines(chunk, 0, false, out);
            if !self.done {
                self.pending.extend_from_slice(chunk.get(used..).unwrap_or_default());
                self.searched = resume.saturating_sub(used);
            }
        } else {
            let mut pending = std::mem::take(&mut self.pending);
            pending.extend_from_slice(chunk);
            let (used, resume) = self.lines(&pending, self.searched, false, out);
            if !self.done {
                pending.drain(..used.min(pending.len()));
                self.searched = resume.saturating_sub(used);
                self.pending = pending;
            }
        }
        if !self.done && self.pending.len() > MAX_EVENT_BYTES {
            self.too_large(out);
        }
    }

    /// The upstream stream ended: translate what is left (a last event without its blank
    /// line counts) and close the OpenAI stream. After this the output has ended with
    /// `data: [DONE]` exactly once.
    pub fn finish(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        if self.done {
            return out;
        }
        let pending = std::mem::take(&mut self.pending);
        let (used, _) = self.lines(&pending, self.searched, true, &mut out);
        if let Some(rest) = pending.get(used..).filter(|r| !r.is_empty() && !self.done) {
            self.line(rest, &mut out);
        }
        if !self.done {
            self.dispatch(&mut out);
        }
        if !self.done {
            if self.finished {
                self.end(&mut out);
            } else {
                self.fail(
                    &mut out,
                    "The Anthropic stream ended before its message_stop event",
                    "server_error",
                    Some("stream_truncated"),
                );
            }
        }
        out
    }

    /// Handle every complete line of `buf`, searching for line ends from `search`. Returns
    /// (bytes consumed, where the next search starts). `eof`: a trailing `\r` ends a line.
    fn lines(&mut self, buf: &[u8], mut search: usize, eof: bool, out: &mut Vec<u8>) -> (usize, usize) {
        let mut start = 0;
        loop {
            if self.done {
                return (buf.len(), buf.len());
            }
            let found = buf.get(search..).and_then(|s| s.iter().position(|&b| b == b'\n' || b == b'\r'));
            let Some(at) = found.map(|rel| search + rel) else {
                return (start, buf.len());
            };
            let next = match (buf.get(at), buf.get(at + 1)) {
                (Some(b'\r'), Some(b'\n')) => at + 2,
                (Some(b'\r'), None) if !eof => return (start, at),
                _ => at + 1,
            };
            self.line(buf.get(start..at).unwrap_or_default(), out);
            start = next;
            search = next;
        }
    }

    fn line(&mut self, line: &[u8], out: &mut Vec<u8>) {
        if line.is_empty() {
            self.dispatch(out);
            return;
        }
        if line.len().saturating_add(self.data.len()) > MAX_EVENT_BYTES {
            self.too_large(out);
            return;
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(0) => return, // a comment
            Some(i) => (line.get(..i).unwrap_or_default(), line.get(i + 1..).unwrap_or_default()),
            None => (line, &b""[..]),
        };
        let value = value.strip_prefix(b" ").unwrap_or(value);
        match field {
            b"data" => {
                if self.has_data {
                    self.data.push(b'\n');
                }
                self.data.extend_from_slice(value);
                self.has_data = true;
            }
            b"event" => self.error_event = value == b"error",
            _ => {}
        }
    }

    /// The blank line that ends an event.
    fn dispatch(&mut self, out: &mut Vec<u8>) {
        let error_event = std::mem::take(&mut self.error_event);
        if !std::mem::take(&mut self.has_data) {
            return;
        }
        let data = std::mem::take(&mut self.data);
        self.event(&data, error_event, out);
        self.data = data;
        self.data.clear();
    }

    fn event(&mut self, data: &[u8], error_event: bool, out: &mut Vec<u8>) {
        if !error_event {
            if let Some(text) = plain_text_delta(data) {
                self.content(out, text);
                return;
            }
        }
        let ev = match serde_json::from_slice::<Event<'_>>(data) {
            Ok(ev) => ev,
            Err(_) => {
                if error_event {
                    let text = String::from_utf8_lossy(data);
                    let message = format!("Anthropic stream error: {}", clip(text.trim(), 256));
                    self.fail(out, &message, "server_error", None);
                }
                return;
            }
        };
        if error_event || &*ev.kind == "error" {
            let kind = ev.error.as_ref().and_then(|e| e.kind.as_deref());
            let message = ev.error.as_ref().and_then(|e| e.message.as_deref()).unwrap_or("Anthropic stream error");
            self.fail(out, message, openai_error_type(kind, 0), kind);
            return;
        }
        match &*ev.kind {
            "message_start" => {
                if let Some(m) = ev.message {
                    self.set_head(m.id.as_deref().unwrap_or(""), m.model.as_deref().unwrap_or(""));
                    if let Some(u) = m.usage {
                        u.merge_into(&mut self.usage);
                    }
                }
                self.chunk(out, None, |o| o.extend_from_slice(b"\"role\":\"assistant\",\"content\":\"\""));
            }
            "content_block_start" => {
                let Some(block) = ev.content_block else { return };
                match block.kind.as_deref() {
                    Some("tool_use") => {
                        let n = self.tools.len() as u64;
                        self.tools.push((ev.index, n));
                        let (id, name) = (block.id.as_deref().unwrap_or(""), block.name.as_deref().unwrap_or(""));
                        self.chunk(out, None, |o| {
                            o.extend_from_slice(b"\"tool_calls\":[{\"index\":");
                            o.extend_from_slice(n.to_string().as_bytes());
                            o.extend_from_slice(b",\"id\":");
                            write_json_string(o, id);
                            o.extend_from_slice(b",\"type\":\"function\",\"function\":{\"name\":");
                            write_json_string(o, name);
                            o.extend_from_slice(b",\"arguments\":\"\"}}]");
                        });
                    }
                    Some("text") => {
                        if let Some(text) = block.text.as_deref().filter(|t| !t.is_empty()) {
                            self.content(out, text);
                        }
                    }
                    _ => {}
                }
            }
            "content_block_delta" => {
                let Some(delta) = ev.delta else { return };
                match delta.kind.as_deref() {
                    Some("text_delta") => {
                        if let Some(text) = delta.text.as_deref().filter(|t| !t.is_empty()) {
                            self.content(out, text);
                        }
                    }
                    Some("input_json_delta") => {
                        let Some(frag) = delta.partial_json.as_deref().filter(|t| !t.is_empty()) else { return };
                        let Some(&(_, n)) = self.tools.iter().rev().find(|(block, _)| *block == ev.index) else {
                            return;
                        };
                        self.chunk(out, None, |o| {
                            o.extend_from_slice(b"\"tool_calls\":[{\"index\":");
                            o.extend_from_slice(n.to_string().as_bytes());
                            o.extend_from_slice(b",\"function\":{\"arguments\":");
                            write_json_string(o, frag);
                            o.extend_from_slice(b"}}]");
                        });
                    }
                    _ => {}
                }
            }
            "message_delta" => {
                if let Some(u) = ev.usage {
                    u.merge_into(&mut self.usage);
                }
                if let Some(reason) = ev.delta.as_ref().and_then(|d| d.stop_reason.as_deref()) {
                    self.chunk(out, Some(finish_reason(Some(reason))), |_| {});
                    self.finished = true;
                }
            }
            "message_stop" => self.end(out),
            _ => {}
        }
    }

    fn set_head(&mut self, id: &str, model: &str) {
        self.head.clear();
        self.head.extend_from_slice(b"{\"id\":");
        write_json_string(&mut self.head, id);
        self.head.extend_from_slice(b",\"object\":\"chat.completion.chunk\",\"created\":0,\"model\":");
        write_json_string(&mut self.head, model);
    }

    fn content(&self, out: &mut Vec<u8>, text: &str) {
        self.chunk(out, None, |o| {
            o.extend_from_slice(b"\"content\":");
            write_json_string(o, text);
        });
    }

    /// `data: {head,"choices":[{"index":0,"delta":{…},"logprobs":null,"finish_reason":…}]}`.
    fn chunk(&self, out: &mut Vec<u8>, finish: Option<&str>, delta: impl FnOnce(&mut Vec<u8>)) {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(&self.head);
        out.extend_from_slice(b",\"choices\":[{\"index\":0,\"delta\":{");
        delta(out);
        out.extend_from_slice(b"},\"logprobs\":null,\"finish_reason\":");
        match finish {
            Some(f) => write_json_string(out, f),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b"}]");
        if self.include_usage {
            out.extend_from_slice(b",\"usage\":null");
        }
        out.extend_from_slice(b"}\n\n");
    }

    /// The end of a complete message.
    fn end(&mut self, out: &mut Vec<u8>) {
        if !self.finished {
            self.chunk(out, Some("stop"), |_| {});
            self.finished = true;
        }
        if self.include_usage {
            out.extend_from_slice(b"data: ");
            out.extend_from_slice(&self.head);
            out.extend_from_slice(b",\"choices\":[],\"usage\":");
            self.usage.write_openai(out);
            out.extend_from_slice(b"}\n\n");
        }
        out.extend_from_slice(DONE);
        self.done = true;
    }

    fn fail(&mut self, out: &mut Vec<u8>, message: &str, kind: &str, code: Option<&str>) {
        out.extend_from_slice(b"data: ");
        write_error(out, message, kind, code);
        out.extend_from_slice(b"\n\n");
        out.extend_from_slice(DONE);
        self.done = true;
        self.pending = Vec::new();
        self.data = Vec::new();
    }

    fn too_large(&mut self, out: &mut Vec<u8>) {
        let message = format!("An Anthropic stream event exceeds {MAX_EVENT_BYTES} bytes");
        self.fail(out, &message, "server_error", Some("stream_event_too_large"));
    }
}
