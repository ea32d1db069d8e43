//! The walk: one pass over the body, validating every byte and noting the top-level
//! members the scan asks about.

use std::ops::Range;

use super::lex::{decode_string, literal, number, skip_string, skip_ws};
use super::{BodyError, MAX_DEPTH};

// ---------------------------------------------------------------------------------------------
// The walk.

pub(super) fn invalid(offset: usize, reason: &'static str) -> BodyError {
    BodyError::InvalidJson { offset, reason }
}

/// What the walk saw as the value of top-level "model" keys.
pub(super) enum ModelSeen {
    Missing,
    NotString,
    /// Span of the first model's literal, including quotes.
    String {
        span: Range<usize>,
    },
}

/// Which interesting top-level key the next value belongs to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum TopKey {
    Other,
    Model,
    Stream,
    /// The `i`-th requested field.
    Field(usize),
}

pub(super) struct Found {
    pub(super) top_is_object: bool,
    pub(super) model: ModelSeen,
    pub(super) model_dup: bool,
    pub(super) stream: bool,
    pub(super) fields: Vec<Option<Range<usize>>>,
}

/// Kind of a completed top-level member value, as far as model/stream care.
enum ValueKind {
    String(Range<usize>),
    True,
    Other,
}

impl Found {
    fn note(&mut self, key: TopKey, value: ValueKind) {
        match key {
            TopKey::Other => {}
            TopKey::Stream => self.stream = matches!(value, ValueKind::True),
            TopKey::Field(i) => {
                if let Some(slot) = self.fields.get_mut(i) {
                    *slot = match value {
                        ValueKind::String(span) => Some(span),
                        _ => None,
                    };
                }
            }
            TopKey::Model => {
                if matches!(self.model, ModelSeen::Missing) {
                    self.model = match value {
                        ValueKind::String(span) => ModelSeen::String { span },
                        _ => ModelSeen::NotString,
                    };
                } else {
                    self.model_dup = true;
                }
            }
        }
    }
}

/// Validate `b` as exactly one JSON value and record the top-level model/stream members.
pub(super) fn walk(b: &[u8], fields: &[String]) -> Result<Found, BodyError> {
    let mut found = Found {
        top_is_object: false,
        model: ModelSeen::Missing,
        model_dup: false,
        stream: false,
        fields: vec![None; fields.len()],
    };
    // Bit `d` of `stack` is set when the container at depth `d + 1` is an object.
    let mut stack: u128 = 0;
    let mut depth: usize = 0;
    // The key whose value comes next, meaningful only when `depth == 1` in the top object.
    let mut key = TopKey::Other;
    let mut pos = skip_ws(b, 0);

    'value: loop {
        // Expecting a value at `pos` (whitespace already skipped).
        let member = depth == 1 && found.top_is_object;
        match b.get(pos) {
            Some(&open @ (b'{' | b'[')) => {
                let is_obj = open == b'{';
                if depth == 0 {
                    found.top_is_object = is_obj;
                }
                if member {
                    found.note(key, ValueKind::Other);
                }
                if depth >= MAX_DEPTH {
                    return Err(BodyError::TooDeep);
                }
                if is_obj {
                    stack |= 1u128 << depth;
                } else {
                    stack &= !(1u128 << depth);
                }
                depth += 1;
                pos = skip_ws(b, pos + 1);
                let close = if is_obj { b'}' } else { b']' };
                if b.get(pos) == Some(&close) {
                    depth -= 1;
                    pos += 1;
                    // Empty container: a completed value; fall through to the separator loop.
                } else if is_obj {
                    (pos, key) = parse_key(b, pos, (depth == 1).then_some(fields))?;
                    continue 'value;
                } else {
                    continue 'value;
                }
            }
            Some(b'"') => {
                let end = skip_string(b, pos)?.0;
                if member {
                    found.note(key, ValueKind::String(pos..end));
                }
                pos = end;
            }
            Some(b't') => {
                pos = literal(b, pos, b"true")?;
                if member {
                    found.note(key, ValueKind::True);
                }
            }
            Some(b'f') => {
                pos = literal(b, pos, b"false")?;
                if member {
                    found.note(key, ValueKind::Other);
                }
            }
            Some(b'n') => {
                pos = literal(b, pos, b"null")?;
                if member {
                    found.note(key, ValueKind::Other);
                }
            }
            Some(b'-' | b'0'..=b'9') => {
                pos = number(b, pos)?;
                if member {
                    found.note(key, ValueKind::Other);
                }
            }
            Some(_) => return Err(invalid(pos, "expected a value")),
            None => return Err(invalid(pos, "unexpected end of input")),
        }

        // A value just completed: expect a separator, a closing bracket, or the end.
        loop {
            pos = skip_ws(b, pos);
            if depth == 0 {
                return if pos == b.len() {
                    Ok(found)
                } else {
                    Err(invalid(pos, "trailing characters after the JSON value"))
                };
            }
            let in_obj = (stack >> (depth - 1)) & 1 == 1;
            match (b.get(pos), in_obj) {
                (Some(b','), true) => {
                    (pos, key) = parse_key(b, skip_ws(b, pos + 1), (depth == 1).then_some(fields))?;
                    continue 'value;
                }
                (Some(b','), false) => {
                    pos = skip_ws(b, pos + 1);
                    continue 'value;
                }
                (Some(b'}'), true) | (Some(b']'), false) => {
                    depth -= 1;
                    pos += 1;
                }
                (Some(_), true) => return Err(invalid(pos, "expected ',' or '}'")),
                (Some(_), false) => return Err(invalid(pos, "expected ',' or ']'")),
                (None, _) => return Err(invalid(pos, "unexpected end of input")),
            }
        }
    }
}

/// Parse `"key" :` at `pos` and skip the whitespace after the colon. With `classify` (the
/// requested fields; top level only), tell whether the (unescaped) key is `model`, `stream`
/// or one of the fields.
fn parse_key(b: &[u8], pos: usize, classify: Option<&[String]>) -> Result<(usize, TopKey), BodyError> {
    match b.get(pos) {
        Some(b'"') => {}
        Some(_) => return Err(invalid(pos, "expected a string key")),
        None => return Err(invalid(pos, "unexpected end of input")),
    }
    let (end, escaped) = skip_string(b, pos)?;
    let key = match classify {
        Some(fields) => classify_key(b, pos..end, escaped, fields),
        None => TopKey::Other,
    };
    let colon = skip_ws(b, end);
    match b.get(colon) {
        Some(b':') => Ok((skip_ws(b, colon + 1), key)),
        Some(_) => Err(invalid(colon, "expected ':'")),
        None => Err(invalid(colon, "unexpected end of input")),
    }
}

fn classify_key(b: &[u8], span: Range<usize>, escaped: bool, fields: &[String]) -> TopKey {
    let Some(raw) = literal_contents(b, &span) else {
        return TopKey::Other;
    };
    let matches = |name: &str| {
        if escaped {
            // Rare. An ASCII byte takes at most 6 raw bytes (`\u0065`), so longer keys
            // cannot decode to `name` and are not decoded at all.
            raw.len() <= 6 * name.len() && decode_string(raw).is_some_and(|k| k == name)
        } else {
            raw == name.as_bytes()
        }
    };
    if matches("model") {
        TopKey::Model
    } else if matches("stream") {
        TopKey::Stream
    } else {
        fields.iter().position(|f| matches(f)).map_or(TopKey::Other, TopKey::Field)
    }
}

/// The bytes between the quotes of the string literal at `span`.
pub(super) fn literal_contents<'a>(b: &'a [u8], span: &Range<usize>) -> Option<&'a [u8]> {
    b.get(span.start.checked_add(1)?..span.end.checked_sub(1)?)
}
