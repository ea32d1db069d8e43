//! OpenAI `messages` → Anthropic `system` + `messages` (the table is in the parent module).

use serde_json::{Map, Value};

use crate::translate::TranslateError;

pub(super) fn object(pairs: impl IntoIterator<Item = (&'static str, Value)>) -> Value {
    // Inserted one by one: `collect()` into the map would sort the pairs first, with the
    // standard library's sort instantiated once per array length (~4 KB of .wasm each).
    let mut map = Map::new();
    for (k, v) in pairs {
        map.insert(k.to_string(), v);
    }
    Value::Object(map)
}

pub(super) fn text_block(text: String) -> Value {
    object([("type", Value::from("text")), ("text", Value::String(text))])
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    User,
    Assistant,
}

enum Content {
    Text(String),
    Blocks(Vec<Value>),
}

impl Content {
    fn into_blocks(self) -> Vec<Value> {
        match self {
            Content::Text(s) => vec![text_block(s)],
            Content::Blocks(b) => b,
        }
    }
}

struct Turn {
    role: Role,
    content: Content,
}

/// Append a message, merging it into the previous one when the role repeats; tool results go
/// before the text of the turn they join (Anthropic wants them first).
fn push_turn(turns: &mut Vec<Turn>, role: Role, content: Content, tool_result: bool) {
    if let Some(last) = turns.last_mut().filter(|t| t.role == role) {
        let mut blocks = std::mem::replace(&mut last.content, Content::Blocks(Vec::new())).into_blocks();
        let new = content.into_blocks();
        if tool_result {
            let at = blocks.iter().take_while(|b| b.get("type").and_then(Value::as_str) == Some("tool_result")).count();
            blocks.splice(at..at, new);
        } else {
            blocks.extend(new);
        }
        last.content = Content::Blocks(blocks);
    } else {
        turns.push(Turn { role, content });
    }
}

/// (top-level `system`, Anthropic `messages`).
pub(super) fn convert_messages(v: Value) -> Result<(Option<Value>, Vec<Value>), TranslateError> {
    let Value::Array(messages) = v else {
        return Err(TranslateError::new("messages", "`messages` must be an array"));
    };
    let mut system: Vec<String> = Vec::new();
    let mut system_parts = false;
    let mut turns: Vec<Turn> = Vec::with_capacity(messages.len());
    for (i, m) in messages.into_iter().enumerate() {
        let Value::Object(mut m) = m else {
            return Err(TranslateError::new(format!("messages[{i}]"), "each message must be an object"));
        };
        let role = match m.get("role").and_then(Value::as_str) {
            Some("system" | "developer") => "system",
            Some("user") => "user",
            Some("assistant") => "assistant",
            Some("tool") => "tool",
            Some(_) => {
                return Err(TranslateError::new(
                    format!("messages[{i}].role"),
                    "role must be system, developer, user, assistant or tool for Anthropic models",
                ))
            }
            None => {
                return Err(TranslateError::new(format!("messages[{i}].role"), "each message needs a string `role`"))
            }
        };
        let content = m.remove("content").unwrap_or(Value::Null);
        match role {
            "system" => system_parts |= system_text(content, i, &mut system)?,
            "user" => push_turn(&mut turns, Role::User, user_content(content, i)?, false),
            "assistant" => {
                if let Some(c) = assistant(content, &mut m, i)? {
                    push_turn(&mut turns, Role::Assistant, c, false);
                }
            }
            _ => {
                let block = tool_result(content, &mut m, i)?;
                push_turn(&mut turns, Role::User, Content::Blocks(vec![block]), true);
            }
        }
    }
    let system = match system.len() {
        0 => None,
        1 if !system_parts => system.pop().map(Value::String),
        _ => Some(Value::Array(system.into_iter().map(text_block).collect())),
    };
    let turns = turns
        .into_iter()
        .map(|t| {
            let role = if t.role == Role::User { "user" } else { "assistant" };
            let content = match t.content {
                Content::Text(s) => Value::String(s),
                Content::Blocks(b) => Value::Array(b),
            };
            object([("role", Value::from(role)), ("content", content)])
        })
        .collect();
    Ok((system, turns))
}

/// Appends a system message's non-empty texts; `true` if it was written as parts.
fn system_text(content: Value, i: usize, system: &mut Vec<String>) -> Result<bool, TranslateError> {
    match content {
        Value::String(s) => {
            if !s.is_empty() {
                system.push(s);
            }
            Ok(false)
        }
        Value::Array(parts) => {
            for (j, p) in parts.into_iter().enumerate() {
                let text = match p {
                    Value::Object(mut p) if p.get("type").and_then(Value::as_str) == Some("text") => p.remove("text"),
                    _ => None,
                };
                match text {
                    Some(Value::String(s)) => {
                        if !s.is_empty() {
                            system.push(s);
                        }
                    }
                    _ => {
                        return Err(TranslateError::new(
                            format!("messages[{i}].content[{j}]"),
                            "system and developer messages take text parts only",
                        ))
                    }
                }
            }
            Ok(true)
        }
        _ => Err(TranslateError::new(format!("messages[{i}].content"), "must be a string or an array of text parts")),
    }
}

fn user_content(content: Value, i: usize) -> Result<Content, TranslateError> {
    match content {
        Value::String(s) => Ok(Content::Text(s)),
        Value::Array(parts) => {
            let blocks = parts.into_iter().enumerate().map(|(j, p)| part(p, i, j)).collect::<Result<_, _>>()?;
            Ok(Content::Blocks(blocks))
        }
        _ => {
            Err(TranslateError::new(format!("messages[{i}].content"), "must be a string or an array of content parts"))
        }
    }
}

/// A user (or tool) content part → an Anthropic content block.
fn part(p: Value, i: usize, j: usize) -> Result<Value, TranslateError> {
    let at = |field: &str| format!("messages[{i}].content[{j}]{field}");
    let Value::Object(mut p) = p else {
        return Err(TranslateError::new(at(""), "each content part must be an object"));
    };
    let kind = p.get("type").and_then(Value::as_str).unwrap_or("");
    match kind {
        "text" => match p.remove("text") {
            Some(Value::String(s)) => Ok(text_block(s)),
            _ => Err(TranslateError::new(at(".text"), "a text part needs a string `text`")),
        },
        "image_url" => {
            let url = match p.remove("image_url") {
                Some(Value::String(u)) => Some(u),
                Some(Value::Object(mut o)) => match o.remove("url") {
                    Some(Value::String(u)) => Some(u),
                    _ => None,
                },
                _ => None,
            };
            let url =
                url.ok_or_else(|| TranslateError::new(at(".image_url.url"), "an image part needs a string `url`"))?;
            let source = image_source(url).map_err(|why| TranslateError::new(at(".image_url.url"), why))?;
            Ok(object([("type", Value::from("image")), ("source", source)]))
        }
        "file" => {
            let mut file = match p.remove("file") {
                Some(Value::Object(o)) => o,
                _ => return Err(TranslateError::new(at(".file"), "a file part needs a `file` object")),
            };
            match file.remove("file_data") {
                Some(Value::String(data)) => {
                    let data = base64_data_url(data, &["application/pdf"])
                        .map(|(_, d)| d)
                        .ok_or_else(|| TranslateError::new(at(".file.file_data"), "only base64 PDF data URLs (data:application/pdf;base64,…) are supported for Anthropic models"))?;
                    let source = object([
                        ("type", Value::from("base64")),
                        ("media_type", Value::from("application/pdf")),
                        ("data", Value::String(data)),
                    ]);
                    Ok(object([("type", Value::from("document")), ("source", source)]))
                }
                _ if file.contains_key("file_id") => Err(TranslateError::new(
                    at(".file.file_id"),
                    "OpenAI file ids cannot be sent to Anthropic models; send `file_data`",
                )),
                _ => Err(TranslateError::new(at(".file.file_data"), "a file part needs `file_data`")),
            }
        }
        "input_audio" => Err(TranslateError::new(at(".type"), "audio input is not supported by Anthropic models")),
        _ => {
            Err(TranslateError::new(at(".type"), "content parts must be text, image_url or file for Anthropic models"))
        }
    }
}

const IMAGE_TYPES: [&str; 5] = ["image/jpeg", "image/jpg", "image/png", "image/gif", "image/webp"];

fn image_source(url: String) -> Result<Value, &'static str> {
    if has_prefix_ci(&url, "data:") {
        let (media, data) = base64_data_url(url, &IMAGE_TYPES)
            .ok_or("image data URLs must be base64 JPEG, PNG, GIF or WebP (data:image/png;base64,…)")?;
        let media = if media == "image/jpg" { "image/jpeg" } else { media };
        return Ok(object([
            ("type", Value::from("base64")),
            ("media_type", Value::from(media)),
            ("data", Value::String(data)),
        ]));
    }
    if has_prefix_ci(&url, "https://") || has_prefix_ci(&url, "http://") {
        return Ok(object([("type", Value::from("url")), ("url", Value::String(url))]));
    }
    Err("image URLs must be http(s) URLs or base64 data URLs")
}

fn has_prefix_ci(s: &str, prefix: &str) -> bool {
    s.as_bytes().get(..prefix.len()).is_some_and(|p| p.eq_ignore_ascii_case(prefix.as_bytes()))
}

/// `data:<type>[;params];base64,<data>` with `<type>` one of `allowed` (case-insensitive) →
/// (the allowed type as written in `allowed`, the data).
fn base64_data_url(url: String, allowed: &[&'static str]) -> Option<(&'static str, String)> {
    if !has_prefix_ci(&url, "data:") {
        return None;
    }
    let comma = url.find(',')?;
    let header = url.get(5..comma)?;
    let mut params = header.split(';');
    let media = params.next()?;
    if !params.any(|p| p.eq_ignore_ascii_case("base64")) {
        return None;
    }
    let media = allowed.iter().find(|a| a.eq_ignore_ascii_case(media))?;
    Some((media, url.get(comma + 1..)?.to_string()))
}

/// An assistant message's text and tool calls as one Anthropic message (`None`: empty).
fn assistant(content: Value, m: &mut Map<String, Value>, i: usize) -> Result<Option<Content>, TranslateError> {
    for field in ["function_call", "audio"] {
        if m.get(field).is_some_and(|v| !v.is_null()) {
            return Err(TranslateError::new(
                format!("messages[{i}].{field}"),
                format!("assistant `{field}` is not supported for Anthropic models"),
            ));
        }
    }
    let calls = match m.remove("tool_calls") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a,
        Some(_) => {
            return Err(TranslateError::new(format!("messages[{i}].tool_calls"), "`tool_calls` must be an array"))
        }
    };
    let mut blocks = Vec::with_capacity(1 + calls.len());
    match content {
        Value::Null => {}
        Value::String(s) if calls.is_empty() => return Ok((!s.is_empty()).then_some(Content::Text(s))),
        Value::String(s) => {
            if !s.is_empty() {
                blocks.push(text_block(s));
            }
        }
        Value::Array(parts) => {
            for (j, p) in parts.into_iter().enumerate() {
                let text = match p {
                    Value::Object(mut p) => match p.get("type").and_then(Value::as_str) {
                        Some("text") => p.remove("text"),
                        Some("refusal") => p.remove("refusal"),
                        _ => None,
                    },
                    _ => None,
                };
                match text {
                    Some(Value::String(s)) => {
                        if !s.is_empty() {
                            blocks.push(text_block(s));
                        }
                    }
                    _ => {
                        return Err(TranslateError::new(
                            format!("messages[{i}].content[{j}]"),
                            "assistant content parts must be text or refusal parts",
                        ))
                    }
                }
            }
        }
        _ => {
            return Err(TranslateError::new(
                format!("messages[{i}].content"),
                "must be a string, an array of parts or null",
            ))
        }
    }
    for (j, call) in calls.into_iter().enumerate() {
        blocks.push(tool_use(call, i, j)?);
    }
    Ok((!blocks.is_empty()).then_some(Content::Blocks(blocks)))
}

fn tool_use(call: Value, i: usize, j: usize) -> Result<Value, TranslateError> {
    let at = |field: &str| format!("messages[{i}].tool_calls[{j}]{field}");
    let Value::Object(mut call) = call else {
        return Err(TranslateError::new(at(""), "each tool call must be an object"));
    };
    if call.get("type").is_some_and(|t| t.as_str() != Some("function")) {
        return Err(TranslateError::new(at(".type"), "only function tool calls are supported for Anthropic models"));
    }
    let Some(id @ Value::String(_)) = call.remove("id") else {
        return Err(TranslateError::new(at(".id"), "a tool call needs a string `id`"));
    };
    let Some(Value::Object(mut function)) = call.remove("function") else {
        return Err(TranslateError::new(at(".function"), "a tool call needs a `function` object"));
    };
    let Some(name @ Value::String(_)) = function.remove("name") else {
        return Err(TranslateError::new(at(".function.name"), "a tool call needs a string `function.name`"));
    };
    let input = match function.remove("arguments") {
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(Value::String(args)) if args.trim().is_empty() => Value::Object(Map::new()),
        Some(Value::String(args)) => match serde_json::from_str::<Value>(&args) {
            Ok(v @ Value::Object(_)) => v,
            _ => {
                return Err(TranslateError::new(
                    at(".function.arguments"),
                    "tool call arguments must be a JSON object for Anthropic models",
                ))
            }
        },
        Some(_) => return Err(TranslateError::new(at(".function.arguments"), "`arguments` must be a string")),
    };
    Ok(object([("type", Value::from("tool_use")), ("id", id), ("name", name), ("input", input)]))
}

fn tool_result(content: Value, m: &mut Map<String, Value>, i: usize) -> Result<Value, TranslateError> {
    let Some(id @ Value::String(_)) = m.remove("tool_call_id") else {
        return Err(TranslateError::new(
            format!("messages[{i}].tool_call_id"),
            "a tool message needs a string `tool_call_id`",
        ));
    };
    let mut block = Map::new();
    block.insert("type".into(), Value::from("tool_result"));
    block.insert("tool_use_id".into(), id);
    match content {
        Value::Null => {}
        Value::String(_) => {
            block.insert("content".into(), content);
        }
        Value::Array(parts) => {
            let blocks = parts.into_iter().enumerate().map(|(j, p)| part(p, i, j)).collect::<Result<_, _>>()?;
            block.insert("content".into(), Value::Array(blocks));
        }
        _ => {
            return Err(TranslateError::new(format!("messages[{i}].content"), "must be a string or an array of parts"))
        }
    }
    Ok(Value::Object(block))
}
