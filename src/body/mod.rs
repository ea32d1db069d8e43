//! Request-body scanning: find the top-level `"model"` (and `"stream"`) of an OpenAI-style
//! JSON request, and splice a new model into the body.
//!
//! # Design
//!
//! * **Single pass, no DOM.** [`scan`] walks the body once with an explicit state machine and a
//!   128-bit container stack (one bit per level: object or array). Nothing is allocated except
//!   the decoded model string (and a tiny buffer for the rare top-level key written with
//!   escapes). Only top-level keys are compared against `model` / `stream`; strings everywhere
//!   else are validated but never decoded.
//! * **Iterative, bounded depth.** No recursion, so no stack overflow on `[[[[...`; nesting
//!   deeper than [`MAX_DEPTH`] containers (the top-level object counts as depth 1) is
//!   [`BodyError::TooDeep`].
//! * **Whole-body validation.** The body must be exactly one RFC 8259 JSON text in UTF-8:
//!   whitespace only where the grammar allows it (space, tab, CR, LF), strict numbers (`01`,
//!   `1.`, `.5`, `+1`, `NaN` are rejected), only the standard escapes, no raw control
//!   characters in strings, nothing after the value except whitespace. A UTF-8 byte-order mark
//!   is rejected (RFC 8259 §8.1 says senders must not add one; `serde_json` rejects it too).
//!   UTF-8 is checked per string, fused into the string loop: the 8-bytes-at-a-time (SWAR)
//!   search for `"`/`\`/control bytes also ORs the bytes it skips, and only a string that
//!   contains a non-ASCII byte is handed to `std::str::from_utf8`. Outside strings every legal
//!   byte is ASCII, so a non-ASCII byte there is already a syntax error. Measured on a 1 MB
//!   chat body in wasm32 under node (V8), against one up-front `from_utf8` of the whole body:
//!   ~17% faster on ASCII-only content, ~5% slower on content full of non-ASCII text; both
//!   are ~0.2–0.4 ms per MB including the rewrite (`examples/bench.rs` in the scratch crate).
//!   Numbers are checked against the grammar only (their values are never used), so `1e999`
//!   is accepted where `serde_json` reports "number out of range"; and `serde_json` stops at
//!   depth 127 where this module allows [`MAX_DEPTH`] = 128. Those are the only known
//!   differences from `serde_json::from_slice::<Value>` on what is valid.
//! * **Surrogates.** A `\uXXXX` escape in the high-surrogate range must be immediately followed
//!   by a low-surrogate escape, and a lone low surrogate is an error, in *every* string (not
//!   just the model). Such strings cannot be decoded to Unicode text; `serde_json` (which the
//!   providers and the rest of this crate use) rejects them too, so rejecting them here keeps
//!   "the filter accepts it" ⇔ "a strict parser accepts it".
//! * **Duplicate `"model"` keys are an error**, compared after unescaping (`"mod\u0065l"` is
//!   `model`). JSON parsers disagree on duplicates (first wins, last wins, error); if the filter
//!   routed on one value while the provider billed/served another, a client could bypass
//!   routing policy. Rejecting the request is the only answer on which the filter and every
//!   provider agree. Duplicate `"stream"` keys are allowed: the last one wins (as in
//!   `serde_json` and most parsers), and `stream` only counts when it is the literal `true`.
//! * **Error precedence.** Syntax errors (and [`BodyError::TooDeep`]) win over semantic ones,
//!   because the whole body is validated before the result is judged: a body with two models
//!   and a trailing comma is `InvalidJson`. Then: `NotAnObject`, `DuplicateModel`,
//!   `MissingModel`, `ModelNotString`, `EmptyModel`, `ModelTooLong`.
//! * **Streaming contract.** `scan` needs the complete body; the host glue buffers the chunks
//!   and passes their concatenation, so "scan of the concatenation == scan of the whole" is the
//!   contract (tested, and fuzzed by `fuzz/fuzz_targets/body_chunks.rs`).
//!
//! [`rewrite_model`] replaces the model's string literal (the `model_span` from [`scan`])
//! with a freshly encoded literal and copies every other byte unchanged.
//!
//! No function here panics on any input; the module uses only `std`.

use std::fmt;
use std::ops::Range;

mod lex;
mod walk;

use lex::decode_string;
use walk::{invalid, literal_contents, walk, ModelSeen};

/// Longest accepted model name, in bytes of the decoded (unescaped) UTF-8 string.
pub const MAX_MODEL_LEN: usize = 256;
/// Deepest accepted nesting of objects/arrays; the top-level object is depth 1.
pub const MAX_DEPTH: usize = 128;

// The container stack is one `u128`, one bit per level.
const _: () = assert!(MAX_DEPTH <= 128);

/// Result of scanning an OpenAI-style JSON request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scan {
    /// The decoded top-level "model" value (escapes resolved: "\u0066oo" is "foo").
    pub model: String,
    /// Byte range of the model's JSON string literal in the body, INCLUDING both quotes.
    pub model_span: Range<usize>,
    /// Top-level "stream" is the JSON literal `true` (last top-level "stream" key wins).
    pub stream: bool,
    /// Only for [`scan_fields`]: per requested top-level member, in the order requested, the
    /// span of its string literal (quotes included) — `None` when the member is absent or its
    /// (last) value is not a string. Decode one with [`string_at`]. Empty for [`scan`].
    pub fields: Vec<Option<Range<usize>>>,
}

/// Why a request body was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// Not valid JSON (includes truncated bodies, trailing garbage, invalid UTF-8 anywhere,
    /// lone surrogate escapes in any string). `offset` = byte offset where it went wrong
    /// (`body.len()` for a truncated body).
    InvalidJson { offset: usize, reason: &'static str },
    /// Valid JSON, but the top level is not an object.
    NotAnObject,
    /// Object without a top-level "model".
    MissingModel,
    /// Top-level "model" is a number/null/object/array/bool.
    ModelNotString,
    /// Top-level "model" is "".
    EmptyModel,
    /// Top-level "model" key appears more than once (keys compared after unescaping).
    DuplicateModel,
    /// Decoded model is longer than `max` bytes.
    ModelTooLong { len: usize, max: usize },
    /// Nesting deeper than [`MAX_DEPTH`].
    TooDeep,
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BodyError::InvalidJson { offset, reason } => {
                write!(f, "invalid JSON at byte {offset}: {reason}")
            }
            BodyError::NotAnObject => f.write_str("request body is not a JSON object"),
            BodyError::MissingModel => f.write_str("request body has no \"model\" field"),
            BodyError::ModelNotString => f.write_str("\"model\" must be a string"),
            BodyError::EmptyModel => f.write_str("\"model\" must not be empty"),
            BodyError::DuplicateModel => f.write_str("\"model\" appears more than once"),
            BodyError::ModelTooLong { len, max } => {
                write!(f, "\"model\" is too long ({len} bytes, max {max})")
            }
            BodyError::TooDeep => write!(f, "JSON nested deeper than {MAX_DEPTH} levels"),
        }
    }
}

impl std::error::Error for BodyError {}

/// Validate the whole body as JSON (RFC 8259, UTF-8) without building a DOM, and find the
/// top-level "model" (and "stream"). Keys named "model" inside nested objects/arrays are
/// ignored. A duplicate top-level "model" is an error; for "stream" the last one wins.
/// See the module docs for the exact rules.
///
/// # Errors
///
/// A [`BodyError`]; syntax errors ([`BodyError::InvalidJson`], [`BodyError::TooDeep`]) take
/// precedence over the semantic ones, which are checked in the order `NotAnObject`,
/// `DuplicateModel`, `MissingModel`, `ModelNotString`, `EmptyModel`, `ModelTooLong`.
pub fn scan(body: &[u8]) -> Result<Scan, BodyError> {
    scan_fields(body, &[])
}

/// [`scan`], also recording where the top-level members named in `fields` hold a string
/// (sticky workers' session keys, `user`): the same single pass, and the value is only
/// located, not decoded ([`string_at`] decodes the one a worker needs). Keys compare after
/// unescaping, as for `model`; for a repeated member the last one counts.
///
/// # Errors
///
/// As [`scan`].
pub fn scan_fields(body: &[u8], fields: &[String]) -> Result<Scan, BodyError> {
    let found = walk(body, fields)?;
    if !found.top_is_object {
        return Err(BodyError::NotAnObject);
    }
    if found.model_dup {
        return Err(BodyError::DuplicateModel);
    }
    let span = match found.model {
        ModelSeen::Missing => return Err(BodyError::MissingModel),
        ModelSeen::NotString => return Err(BodyError::ModelNotString),
        ModelSeen::String { span } => span,
    };
    let model =
        literal_contents(body, &span).and_then(decode_string).ok_or_else(|| invalid(span.start, "invalid string"))?;
    if model.is_empty() {
        return Err(BodyError::EmptyModel);
    }
    if model.len() > MAX_MODEL_LEN {
        return Err(BodyError::ModelTooLong { len: model.len(), max: MAX_MODEL_LEN });
    }
    Ok(Scan { model, model_span: span, stream: found.stream, fields: found.fields })
}

/// The decoded text of the string literal at `span` (quotes included) of a body that
/// [`scan_fields`] accepted; `None` for a span that is not one.
pub fn string_at(body: &[u8], span: &Range<usize>) -> Option<String> {
    literal_contents(body, span).and_then(decode_string)
}

/// Return a new body where the bytes in `span` (a JSON string literal including its quotes,
/// normally [`Scan::model_span`]) are replaced by `new_model` encoded as a JSON string literal
/// (`"` and `\` escaped, control characters as `\u00XX`); every other byte is copied unchanged.
///
/// Returns `None` (never panics) if `span` is out of range, reversed, shorter than 2 bytes, or
/// does not start and end with `"`. The new model is not validated (empty/length): that is the
/// caller's policy.
#[must_use]
pub fn rewrite_model(body: &[u8], span: Range<usize>, new_model: &str) -> Option<Vec<u8>> {
    let head = body.get(..span.start)?;
    let old = body.get(span.clone())?;
    let tail = body.get(span.end..)?;
    if old.len() < 2 || old.first() != Some(&b'"') || old.last() != Some(&b'"') {
        return None;
    }
    let mut out = Vec::with_capacity(head.len() + tail.len() + new_model.len() + 2);
    out.extend_from_slice(head);
    write_json_string(&mut out, new_model);
    out.extend_from_slice(tail);
    Some(out)
}

/// The same rewrite as an edit in place: the new literal that replaces the model literal at
/// `span` (`None` if `span` is not a string literal of `body`). A host whose buffer API only
/// replaces a prefix (Envoy's `set_buffer(0, len, data)`) takes it as two prepends: the literal
/// in place of `body[..span.end]`, then `body[..span.start]` in front of it — the rest of the
/// body never crosses the VM boundary and the VM builds no copy of the head.
pub fn model_literal_edit(body: &[u8], span: Range<usize>, new_model: &str) -> Option<Vec<u8>> {
    let old = body.get(span)?;
    if old.len() < 2 || old.first() != Some(&b'"') || old.last() != Some(&b'"') {
        return None;
    }
    let mut out = Vec::with_capacity(new_model.len() + 2);
    write_json_string(&mut out, new_model);
    Some(out)
}

/// Append `s` as a JSON string literal: `"`, `\\` and control characters escaped (`\n`,
/// `\r`, `\t` short, as OpenAI writes them; the rest as `\u00XX`), everything else verbatim.
/// Plain text is skipped 8 bytes at a time (about 4× faster than `serde_json`'s byte loop on
/// long prompts).
pub fn write_json_string(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let (mut run, mut i) = (0, 0);
    while i < bytes.len() {
        if let Some(word) = bytes.get(i..i + 8).and_then(|w| <[u8; 8]>::try_from(w).ok()) {
            if !needs_escape(u64::from_le_bytes(word)) {
                i += 8;
                continue;
            }
        }
        let c = bytes.get(i).copied().unwrap_or(0);
        i += 1;
        if c != b'"' && c != b'\\' && c >= 0x20 {
            continue;
        }
        out.extend_from_slice(bytes.get(run..i - 1).unwrap_or_default());
        run = i;
        match c {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            _ => {
                let hi = HEX.get(usize::from(c >> 4)).copied().unwrap_or(b'0');
                let lo = HEX.get(usize::from(c & 0xf)).copied().unwrap_or(b'0');
                out.extend_from_slice(&[b'\\', b'u', b'0', b'0', hi, lo]);
            }
        }
    }
    out.extend_from_slice(bytes.get(run..).unwrap_or_default());
    out.push(b'"');
}

/// Append `n` in decimal (no formatter: the hot path writes lengths, timeouts and plans).
pub fn push_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut len = 0;
    for d in &mut digits {
        *d = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend(digits.iter().take(len).rev());
}

/// `n` in decimal, as a `String`.
pub fn u64_string(n: u64) -> String {
    let mut out = Vec::with_capacity(20);
    push_u64(&mut out, n);
    String::from_utf8(out).unwrap_or_default()
}

/// Whether any of the 8 bytes of `w` is `"`, `\\` or below 0x20 (exact, for the whole word).
pub(crate) fn needs_escape(w: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero_byte = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let quote = zero_byte(w ^ (ONES * u64::from(b'"')));
    let backslash = zero_byte(w ^ (ONES * u64::from(b'\\')));
    let control = w.wrapping_sub(ONES * 0x20) & !w & HIGH;
    quote | backslash | control != 0
}

#[cfg(test)]
mod tests;
