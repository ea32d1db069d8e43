//! OpenAI chat request → Anthropic Messages request (the table is in the parent module).
//!
//! The body is parsed once into a `serde_json::Value`; every string (prompts, images, schemas)
//! is moved, not copied, into the new body, which is serialized once. Errors carry the path of
//! the field at fault, built only when an error happens.

use serde_json::{Map, Value};

use super::messages::{convert_messages, object};
use super::write_value;
use crate::translate::TranslateError;

/// A translated request and what the response side needs to know about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnthropicRequest {
    /// The Messages API body.
    pub body: Vec<u8>,
    /// `"stream": true`: the answer is SSE, for a [`super::StreamTranslator`].
    pub stream: bool,
    /// `stream_options.include_usage` was `true` (with `stream`): pass to
    /// [`super::StreamTranslator::new`].
    pub include_usage: bool,
}

/// The OpenAI chat body `openai` as an Anthropic Messages body for the model `model_id`, with
/// `max_tokens` = `default_max_tokens` when the client sets neither `max_completion_tokens` nor
/// `max_tokens`.
///
/// # Errors
///
/// A [`TranslateError`] naming the field that Anthropic cannot honour, or whose value is not
/// what OpenAI's API allows there.
pub fn request_to_anthropic(openai: &[u8], model_id: &str, default_max_tokens: u32) -> Result<Vec<u8>, TranslateError> {
    translate_request(openai, model_id, default_max_tokens).map(|r| r.body)
}

/// [`request_to_anthropic`], also telling whether the answer streams and with usage.
///
/// # Errors
///
/// As [`request_to_anthropic`].
pub fn translate_request(
    openai: &[u8],
    model_id: &str,
    default_max_tokens: u32,
) -> Result<AnthropicRequest, TranslateError> {
    let value: Value = serde_json::from_slice(openai)
        .map_err(|e| TranslateError::new("", format!("The request body is not valid JSON: {e}")))?;
    let Value::Object(req) = value else {
        return Err(TranslateError::new("", "The request body must be a JSON object"));
    };
    let f = Fields::collect(req)?;
    let mut out = Map::new();
    out.insert("model".into(), Value::String(model_id.to_string()));

    let messages = f.messages.ok_or_else(|| TranslateError::new("messages", "`messages` is required"))?;
    let (system, turns) = convert_messages(messages)?;
    if let Some(system) = system {
        out.insert("system".into(), system);
    }
    out.insert("messages".into(), Value::Array(turns));

    let max_tokens = match (f.max_completion_tokens, f.max_tokens) {
        (Some(v), _) => positive(&v, "max_completion_tokens")?,
        (None, Some(v)) => positive(&v, "max_tokens")?,
        (None, None) => u64::from(default_max_tokens),
    };
    out.insert("max_tokens".into(), Value::from(max_tokens));

    if let Some(stop) = f.stop {
        let list = stop_sequences(stop)?;
        if !list.is_empty() {
            out.insert("stop_sequences".into(), Value::Array(list));
        }
    }
    for (name, v) in [("temperature", f.temperature), ("top_p", f.top_p)] {
        if let Some(v) = v {
            match v.as_f64() {
                Some(x) if (0.0..=1.0).contains(&x) => {
                    out.insert(name.into(), v);
                }
                _ => {
                    return Err(TranslateError::new(
                        name,
                        format!("`{name}` must be a number from 0 to 1 for Anthropic models"),
                    ))
                }
            }
        }
    }
    if let Some(v) = f.top_k {
        if v.as_u64().is_none() {
            return Err(TranslateError::new("top_k", "`top_k` must be a non-negative integer"));
        }
        out.insert("top_k".into(), v);
    }

    let stream = match f.stream {
        None => false,
        Some(Value::Bool(b)) => b,
        Some(_) => return Err(TranslateError::new("stream", "`stream` must be a boolean")),
    };
    if stream {
        out.insert("stream".into(), Value::Bool(true));
    }
    let include_usage = match f.stream_options {
        None => false,
        Some(Value::Object(o)) => stream && o.get("include_usage") == Some(&Value::Bool(true)),
        Some(_) => return Err(TranslateError::new("stream_options", "`stream_options` must be an object")),
    };

    let user = match (f.user, f.safety_identifier) {
        (Some(v), _) => Some(("user", v)),
        (None, Some(v)) => Some(("safety_identifier", v)),
        (None, None) => None,
    };
    if let Some((name, v)) = user {
        if !v.is_string() {
            return Err(TranslateError::new(name, format!("`{name}` must be a string")));
        }
        let mut metadata = Map::new();
        metadata.insert("user_id".into(), v);
        out.insert("metadata".into(), Value::Object(metadata));
    }

    tools_and_choice(&mut out, f.tools, f.tool_choice, f.parallel_tool_calls)?;
    if let Some(v) = f.response_format {
        response_format(&mut out, v)?;
    }

    // Prompts dominate the size: the output is about as long as the input.
    let mut body = Vec::with_capacity(openai.len() + 256);
    write_value(&mut body, &Value::Object(out));
    Ok(AnthropicRequest { body, stream, include_usage })
}

/// The top-level fields that map to something; the others are checked and dropped (or
/// rejected) while collecting.
#[derive(Default)]
struct Fields {
    messages: Option<Value>,
    max_tokens: Option<Value>,
    max_completion_tokens: Option<Value>,
    stop: Option<Value>,
    temperature: Option<Value>,
    top_p: Option<Value>,
    top_k: Option<Value>,
    stream: Option<Value>,
    stream_options: Option<Value>,
    user: Option<Value>,
    safety_identifier: Option<Value>,
    tools: Option<Value>,
    tool_choice: Option<Value>,
    parallel_tool_calls: Option<Value>,
    response_format: Option<Value>,
}

impl Fields {
    fn collect(req: Map<String, Value>) -> Result<Self, TranslateError> {
        let mut f = Fields::default();
        for (key, value) in req {
            if value.is_null() {
                continue;
            }
            let slot = match key.as_str() {
                "model" => continue,
                "messages" => &mut f.messages,
                "max_tokens" => &mut f.max_tokens,
                "max_completion_tokens" => &mut f.max_completion_tokens,
                "stop" => &mut f.stop,
                "temperature" => &mut f.temperature,
                "top_p" => &mut f.top_p,
                "top_k" => &mut f.top_k,
                "stream" => &mut f.stream,
                "stream_options" => &mut f.stream_options,
                "user" => &mut f.user,
                "safety_identifier" => &mut f.safety_identifier,
                "tools" => &mut f.tools,
                "tool_choice" => &mut f.tool_choice,
                "parallel_tool_calls" => &mut f.parallel_tool_calls,
                "response_format" => &mut f.response_format,
                // Harmless: they do not change the answer.
                "store"
                | "metadata"
                | "seed"
                | "service_tier"
                | "prompt_cache_key"
                | "prompt_cache_retention"
                | "prediction" => continue,
                "n" if value.as_u64() == Some(1) => continue,
                "logprobs" if value == Value::Bool(false) => continue,
                "top_logprobs" if value.as_u64() == Some(0) => continue,
                "frequency_penalty" | "presence_penalty" if value.as_f64() == Some(0.0) => continue,
                "logit_bias" if value.as_object().is_some_and(Map::is_empty) => continue,
                "modalities" if only_text_modality(&value) => continue,
                _ => return Err(unsupported(&key)),
            };
            *slot = Some(value);
        }
        Ok(f)
    }
}

fn unsupported(key: &str) -> TranslateError {
    let why = match key {
        "n" => "Anthropic models return one choice: `n` must be 1",
        "logprobs" | "top_logprobs" => "Anthropic models do not return log probabilities",
        "frequency_penalty" | "presence_penalty" => "Anthropic models have no frequency or presence penalty",
        "logit_bias" => "Anthropic models do not accept a logit bias",
        "modalities" | "audio" => "Anthropic models answer in text only",
        "functions" | "function_call" => {
            "the deprecated `functions` API is not translated for Anthropic models; use `tools`"
        }
        _ => {
            return TranslateError::new(
                key,
                format!("`{}` is not supported for Anthropic models", crate::error::clip(key, 64)),
            )
        }
    };
    TranslateError::new(key, why)
}

fn only_text_modality(v: &Value) -> bool {
    v.as_array().is_some_and(|a| a.iter().all(|m| m.as_str() == Some("text")))
}

fn positive(v: &Value, name: &str) -> Result<u64, TranslateError> {
    match v.as_u64() {
        Some(n) if n >= 1 => Ok(n),
        _ => Err(TranslateError::new(name, format!("`{name}` must be a positive integer"))),
    }
}

fn stop_sequences(v: Value) -> Result<Vec<Value>, TranslateError> {
    match v {
        Value::String(_) => Ok(vec![v]),
        Value::Array(list) => {
            for (i, s) in list.iter().enumerate() {
                if !s.is_string() {
                    return Err(TranslateError::new(format!("stop[{i}]"), "stop sequences must be strings"));
                }
            }
            Ok(list)
        }
        _ => Err(TranslateError::new("stop", "`stop` must be a string or a list of strings")),
    }
}

fn tools_and_choice(
    out: &mut Map<String, Value>,
    tools: Option<Value>,
    choice: Option<Value>,
    parallel: Option<Value>,
) -> Result<(), TranslateError> {
    let tools = match tools {
        None => Vec::new(),
        Some(Value::Array(a)) => a.into_iter().enumerate().map(|(i, t)| tool(t, i)).collect::<Result<_, _>>()?,
        Some(_) => return Err(TranslateError::new("tools", "`tools` must be an array")),
    };
    let parallel = match parallel {
        None => true,
        Some(Value::Bool(b)) => b,
        Some(_) => return Err(TranslateError::new("parallel_tool_calls", "`parallel_tool_calls` must be a boolean")),
    };
    let mut choice = choice.map(tool_choice).transpose()?;
    if tools.is_empty() {
        if let Some(c) = &choice {
            if !matches!(c.get("type").and_then(Value::as_str), Some("auto" | "none")) {
                return Err(TranslateError::new("tool_choice", "`tool_choice` requires `tools`"));
            }
        }
        return Ok(());
    }
    out.insert("tools".into(), Value::Array(tools));
    if !parallel {
        let c = choice.get_or_insert_with(|| {
            let mut m = Map::new();
            m.insert("type".into(), Value::from("auto"));
            m
        });
        if c.get("type").and_then(Value::as_str) != Some("none") {
            c.insert("disable_parallel_tool_use".into(), Value::Bool(true));
        }
    }
    if let Some(c) = choice {
        out.insert("tool_choice".into(), Value::Object(c));
    }
    Ok(())
}

fn tool(t: Value, i: usize) -> Result<Value, TranslateError> {
    let Value::Object(mut t) = t else {
        return Err(TranslateError::new(format!("tools[{i}]"), "each tool must be an object"));
    };
    if t.get("type").and_then(Value::as_str) != Some("function") {
        return Err(TranslateError::new(
            format!("tools[{i}].type"),
            "only function tools are supported for Anthropic models",
        ));
    }
    let Some(Value::Object(mut f)) = t.remove("function") else {
        return Err(TranslateError::new(format!("tools[{i}].function"), "a function tool needs a `function` object"));
    };
    let mut out = Map::new();
    match f.remove("name") {
        Some(name @ Value::String(_)) => out.insert("name".into(), name),
        _ => return Err(TranslateError::new(format!("tools[{i}].function.name"), "a function needs a string `name`")),
    };
    match f.remove("description") {
        None | Some(Value::Null) => {}
        Some(d @ Value::String(_)) => {
            out.insert("description".into(), d);
        }
        Some(_) => return Err(TranslateError::new(format!("tools[{i}].function.description"), "must be a string")),
    }
    let schema = match f.remove("parameters") {
        None | Some(Value::Null) => {
            object([("type", Value::from("object")), ("properties", Value::Object(Map::new()))])
        }
        Some(s @ Value::Object(_)) => s,
        Some(_) => {
            return Err(TranslateError::new(format!("tools[{i}].function.parameters"), "must be a JSON Schema object"))
        }
    };
    out.insert("input_schema".into(), schema);
    match f.remove("strict") {
        None | Some(Value::Null) | Some(Value::Bool(false)) => {}
        Some(Value::Bool(true)) => {
            out.insert("strict".into(), Value::Bool(true));
        }
        Some(_) => return Err(TranslateError::new(format!("tools[{i}].function.strict"), "must be a boolean")),
    }
    Ok(Value::Object(out))
}

fn tool_choice(v: Value) -> Result<Map<String, Value>, TranslateError> {
    let kind = match &v {
        Value::String(s) => match s.as_str() {
            "auto" => "auto",
            "none" => "none",
            "required" => "any",
            _ => {
                return Err(TranslateError::new(
                    "tool_choice",
                    "`tool_choice` must be none, auto, required or a function",
                ))
            }
        },
        Value::Object(o) => {
            let name = match (o.get("type").and_then(Value::as_str), o.get("function")) {
                (Some("function"), Some(Value::Object(f))) => f.get("name").filter(|n| n.is_string()).cloned(),
                _ => None,
            };
            let Some(name) = name else {
                return Err(TranslateError::new(
                    "tool_choice",
                    "for Anthropic models `tool_choice` must be none, auto, required or {\"type\":\"function\",\"function\":{\"name\":…}}",
                ));
            };
            let mut m = Map::new();
            m.insert("type".into(), Value::from("tool"));
            m.insert("name".into(), name);
            return Ok(m);
        }
        _ => return Err(TranslateError::new("tool_choice", "`tool_choice` must be a string or an object")),
    };
    let mut m = Map::new();
    m.insert("type".into(), Value::from(kind));
    Ok(m)
}

fn response_format(out: &mut Map<String, Value>, v: Value) -> Result<(), TranslateError> {
    let Value::Object(mut rf) = v else {
        return Err(TranslateError::new("response_format", "`response_format` must be an object"));
    };
    match rf.get("type").and_then(Value::as_str) {
        Some("text") => Ok(()),
        Some("json_schema") => {
            let schema = match rf.remove("json_schema") {
                Some(Value::Object(mut js)) => js.remove("schema"),
                _ => None,
            };
            let Some(schema @ Value::Object(_)) = schema else {
                return Err(TranslateError::new(
                    "response_format.json_schema.schema",
                    "a JSON Schema object is required",
                ));
            };
            let format = object([("type", Value::from("json_schema")), ("schema", schema)]);
            out.insert("output_config".into(), object([("format", format)]));
            Ok(())
        }
        Some("json_object") => Err(TranslateError::new(
            "response_format",
            "Anthropic models have no JSON mode without a schema: use `json_schema`",
        )),
        _ => Err(TranslateError::new("response_format.type", "`response_format.type` must be text or json_schema")),
    }
}
