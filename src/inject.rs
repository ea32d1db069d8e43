//! Per-model messages: what a model adds to every chat request it serves — Spice's
//! `system_prompt` (a system message before the client's) and the `messages` extension
//! (IronlabsAI's per-model messages, after the client's).
//!
//! The messages are serialized once, when the config is built; per attempt the body's
//! top-level `messages` array is located (one pass, no DOM) and the bytes are spliced in.
//! Every other byte of the body is copied unchanged (key order, numbers, whitespace), so a
//! provider sees exactly the client's request plus these messages.
//!
//! Which arrays: **every** top-level `messages` member that holds an array, keys compared
//! after unescaping (`"m\u0065ssages"` is `messages`). Parsers disagree on duplicate keys, so
//! whichever one the provider reads carries the model's messages: a client cannot hide its
//! conversation from a system prompt behind a second key or an escape. A body without one (an
//! embeddings or completions request) is left as it is.
//!
//! The body has been validated by [`crate::body::scan`] before any attempt; on bytes that are
//! not JSON the functions here return `None`, never panic.

use crate::body;

/// A model's messages, serialized (each part: JSON message objects joined by `,`, no brackets).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModelMessages {
    /// Put before the client's messages (the system prompt).
    pub before: Vec<u8>,
    /// Put after the client's messages.
    pub after: Vec<u8>,
}

impl ModelMessages {
    /// `system_prompt` (if any) before, `appended` (role, content) after.
    pub fn new(system_prompt: Option<&str>, appended: &[(String, String)]) -> ModelMessages {
        let mut m = ModelMessages::default();
        if let Some(p) = system_prompt {
            push_message(&mut m.before, "system", p);
        }
        for (role, content) in appended {
            push_message(&mut m.after, role, content);
        }
        m
    }

    pub fn is_empty(&self) -> bool {
        self.before.is_empty() && self.after.is_empty()
    }
}

fn push_message(out: &mut Vec<u8>, role: &str, content: &str) {
    if !out.is_empty() {
        out.push(b',');
    }
    out.extend_from_slice(b"{\"role\":");
    body::write_json_string(out, role);
    out.extend_from_slice(b",\"content\":");
    body::write_json_string(out, content);
    out.push(b'}');
}

/// The body with `m` added to each top-level `messages` array; `None` when there is nothing
/// to add or no such array (the body is then sent as it is).
pub fn add_messages(body: &[u8], m: &ModelMessages) -> Option<Vec<u8>> {
    if m.is_empty() {
        return None;
    }
    let arrays = message_arrays(body)?;
    if arrays.is_empty() {
        return None;
    }
    let extra = (m.before.len() + m.after.len() + 2) * arrays.len();
    let mut out = Vec::with_capacity(body.len() + extra);
    let mut copied = 0;
    for (open, close) in arrays {
        out.extend_from_slice(body.get(copied..=open)?);
        let inner = body.get(open + 1..close)?;
        let parts = [m.before.as_slice(), inner, m.after.as_slice()];
        let mut first = true;
        for part in parts.into_iter().filter(|p| p.iter().any(|b| !b.is_ascii_whitespace())) {
            if !first {
                out.push(b',');
            }
            first = false;
            out.extend_from_slice(part);
        }
        copied = close;
    }
    out.extend_from_slice(body.get(copied..)?);
    Some(out)
}

/// Byte offsets of the `[` and `]` of every top-level `messages` array, in order. `None`: the
/// bytes are not a well-formed JSON object (unbalanced, unterminated string).
fn message_arrays(b: &[u8]) -> Option<Vec<(usize, usize)>> {
    let mut found = Vec::new();
    let mut depth = 0usize;
    // At depth 1: the next string is a key / the last key was `messages` (its value not seen).
    let mut key_next = false;
    let mut pending = false;
    let mut open: Option<usize> = None;
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        match c {
            b'"' => {
                let end = string_end(b, i)?;
                if depth == 1 && key_next {
                    pending = is_messages_key(b, i, end);
                    key_next = false;
                }
                i = end;
                continue;
            }
            b'{' | b'[' => {
                if depth == 1 {
                    if pending && c == b'[' {
                        open = Some(i);
                    }
                    pending = false;
                }
                depth += 1;
                key_next = depth == 1;
            }
            b'}' | b']' => {
                depth = depth.checked_sub(1)?;
                if depth == 1 && c == b']' {
                    if let Some(o) = open.take() {
                        found.push((o, i));
                    }
                }
            }
            b',' if depth == 1 => {
                key_next = true;
                pending = false;
            }
            _ => {}
        }
        i += 1;
    }
    (depth == 0).then_some(found)
}

/// The index just past the string literal that starts at `start` (its opening quote).
fn string_end(b: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    loop {
        // Plain text 8 bytes at a time (no quote, backslash or control byte in the word).
        if let Some(word) = b.get(i..i + 8).and_then(|w| <[u8; 8]>::try_from(w).ok()) {
            if !body::needs_escape(u64::from_le_bytes(word)) {
                i += 8;
                continue;
            }
        }
        match b.get(i)? {
            b'"' => return Some(i + 1),
            b'\\' => i += 2,
            _ => i += 1,
        }
    }
}

fn is_messages_key(b: &[u8], start: usize, end: usize) -> bool {
    match b.get(start + 1..end.saturating_sub(1)) {
        Some(raw) if !raw.contains(&b'\\') => raw == b"messages",
        Some(_) => body::string_at(b, &(start..end)).is_some_and(|k| k == "messages"),
        None => false,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn msgs() -> ModelMessages {
        ModelMessages::new(Some("Be \"brief\"."), &[("user".into(), "Keep it short.".into())])
    }

    fn add(body: &str) -> Option<String> {
        add_messages(body.as_bytes(), &msgs()).map(|b| String::from_utf8(b).unwrap())
    }

    const SYS: &str = r#"{"role":"system","content":"Be \"brief\"."}"#;
    const USR: &str = r#"{"role":"user","content":"Keep it short."}"#;

    #[test]
    fn messages_go_before_and_after_the_clients() {
        let cases: &[(&str, String)] = &[
            (
                r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#,
                format!(r#"{{"model":"m","messages":[{SYS},{{"role":"user","content":"hi"}},{USR}]}}"#),
            ),
            // Empty arrays (whitespace inside too): no stray commas.
            (r#"{"messages":[],"model":"m"}"#, format!(r#"{{"messages":[{SYS},{USR}],"model":"m"}}"#)),
            (r#"{"messages":[ ],"model":"m"}"#, format!(r#"{{"messages":[{SYS},{USR}],"model":"m"}}"#)),
            // Whitespace, nested arrays and objects, brackets and keys inside strings.
            (
                "{ \"model\" : \"m\" ,\n \"messages\" : [ {\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"] \\\"messages\\\": [\"}]} ] , \"n\":[1,[2]] }",
                format!("{{ \"model\" : \"m\" ,\n \"messages\" : [{SYS}, {{\"role\":\"user\",\"content\":[{{\"type\":\"text\",\"text\":\"] \\\"messages\\\": [\"}}]}} ,{USR}] , \"n\":[1,[2]] }}"),
            ),
            // An escaped key is the same key; both duplicates get them.
            (
                r#"{"m\u0065ssages":[1],"model":"m","messages":[2]}"#,
                format!(r#"{{"m\u0065ssages":[{SYS},1,{USR}],"model":"m","messages":[{SYS},2,{USR}]}}"#),
            ),
        ];
        for (body, want) in cases {
            assert_eq!(add(body).as_deref(), Some(want.as_str()), "{body}");
            let v: serde_json::Value = serde_json::from_str(want).unwrap();
            assert!(v.is_object());
        }
    }

    #[test]
    fn bodies_without_a_top_level_messages_array_are_left_alone() {
        for body in [
            r#"{"model":"m","input":"text"}"#,
            r#"{"model":"m","messages":"not an array"}"#,
            r#"{"model":"m","messages":{"a":[1]}}"#,
            r#"{"model":"m","x":{"messages":[1]}}"#,
            r#"{"model":"m","x":[{"messages":[1]}]}"#,
            r#"{"model":"m","x":"messages","y":[1]}"#,
            r#"{"model":"m","messages":[1]"#,
            r#"{"model":"m","messages":["unterminated]}"#,
            r#"{"model":"m"}]]"#,
            "",
        ] {
            assert_eq!(add(body), None, "{body}");
        }
        // Nothing to add: nothing done.
        assert_eq!(add_messages(br#"{"messages":[]}"#, &ModelMessages::default()), None);
    }

    #[test]
    fn each_side_alone() {
        let only_after = ModelMessages::new(None, &[("assistant".into(), "ok".into())]);
        let out = add_messages(br#"{"messages":[1]}"#, &only_after).unwrap();
        assert_eq!(out, br#"{"messages":[1,{"role":"assistant","content":"ok"}]}"#);
        let only_before = ModelMessages::new(Some("s\n"), &[]);
        let out = add_messages(br#"{"messages":[]}"#, &only_before).unwrap();
        assert_eq!(out, br#"{"messages":[{"role":"system","content":"s\n"}]}"#);
    }

    #[test]
    fn never_panics_on_any_prefix() {
        let body = r#"{"model":"m","messages":[{"role":"user","content":"a\"]"}],"z":[]}"#;
        for n in 0..=body.len() {
            let _ = add_messages(&body.as_bytes()[..n], &msgs());
        }
    }
}
