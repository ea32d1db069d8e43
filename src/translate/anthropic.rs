//! OpenAI chat completions ⇄ Anthropic Messages API (`POST /v1/messages`), for one attempt.
//!
//! - `request`: an OpenAI chat body → a Messages body ([`request_to_anthropic`]), or a
//!   [`TranslateError`](super::TranslateError) naming the field Anthropic cannot honour;
//! - `response`: a 2xx Messages JSON answer → `chat.completion` ([`response_from_anthropic`]);
//!   any error answer → an OpenAI error body ([`error_from_anthropic`]);
//! - `stream`: Anthropic's SSE events → `chat.completion.chunk` events, incrementally
//!   ([`StreamTranslator`]).
//!
//! Each body is parsed once with `serde_json` and written once: the request through
//! `serde_json` (keys sorted), the answers and chunks directly as bytes (keys in OpenAI's
//! order). No clock: `created` is always 0.
//!
//! # Mapping
//!
//! Request (OpenAI field → Anthropic field; `null` is the same as absent everywhere):
//!
//! | OpenAI | Anthropic |
//! |---|---|
//! | `model` | `model` = the model id of the attempt |
//! | `messages[]` `system` / `developer` (string or text parts) | top-level `system`: one string message stays a string, otherwise text blocks in order (messages anywhere in the conversation are hoisted, empty text skipped) |
//! | `user` content string / parts | `user` message: string, or blocks: `text`; `image_url` `data:image/{jpeg,png,gif,webp};base64,…` → `image` with a `base64` source, `http(s)://…` → `image` with a `url` source (`detail` dropped); `file` with `file_data` `data:application/pdf;base64,…` → `document` |
//! | `assistant` content (string / `text` / `refusal` parts) + `tool_calls[]` | `assistant` message: `text` blocks, then one `tool_use` block per call (`id`, `function.name`, `function.arguments` parsed into `input`; `""` → `{}`); an assistant message with nothing in it is skipped |
//! | `tool` message (`tool_call_id`, content) | `tool_result` block (`tool_use_id`, content string or blocks) in a `user` message, placed before any text of that turn |
//! | consecutive messages of one role | merged into one message (Anthropic requires alternating roles) |
//! | `name` on a message | dropped |
//! | `max_completion_tokens`, else `max_tokens`, else the model's default | `max_tokens` |
//! | `stop` (string or list) | `stop_sequences` |
//! | `temperature` (0–1), `top_p` (0–1), `top_k` (extension) | same |
//! | `stream` | `stream` (`stream_options.include_usage` is for [`StreamTranslator::new`]) |
//! | `user`, else `safety_identifier` | `metadata.user_id` |
//! | `tools[]` (`type: function`) | `tools[]`: `{name, description, input_schema: parameters or an empty object schema, strict: true if strict}` |
//! | `tool_choice` `auto` / `none` / `required` / `{type: function, function: {name}}` | `{type: auto}` / `{type: none}` / `{type: any}` / `{type: tool, name}` (`auto` or `none` without tools: dropped) |
//! | `parallel_tool_calls: false` (with tools) | `tool_choice.disable_parallel_tool_use: true` (`{type: auto}` if no choice; not with `none`) |
//! | `response_format` `text` / `json_schema` | dropped / `output_config.format = {type: json_schema, schema}` |
//!
//! Dropped, because they do not change the answer: `n: 1`, `logprobs: false`, `top_logprobs: 0`,
//! `frequency_penalty: 0`, `presence_penalty: 0`, `logit_bias: {}`, `modalities: ["text"]`,
//! `stream_options`, `store`, `metadata` (OpenAI's stored-completion tags), `seed` (best effort
//! at OpenAI too), `service_tier`, `prompt_cache_key`, `prompt_cache_retention`, `prediction`
//! (a latency hint).
//!
//! Rejected ([`TranslateError`](super::TranslateError) with that `param`): `n` ≠ 1,
//! `logprobs: true`, `top_logprobs` > 0, non-zero `frequency_penalty` / `presence_penalty`,
//! non-empty `logit_bias`, `modalities` with anything but `"text"`, `audio`,
//! `web_search_options`, `functions`, `function_call`, `reasoning_effort`, `verbosity`,
//! `response_format` `json_object` (Anthropic has no schema-less JSON mode) or any other type,
//! `temperature` / `top_p` outside 0–1, any top-level field not listed here, and inside
//! `messages`/`tools`: unknown roles (`function` included), `input_audio` and other unknown
//! content parts, non-PDF or `file_id` files, image URLs that are neither base64 data URLs of
//! a supported type nor http(s), tool arguments that are not a JSON object, non-`function` tools
//! and tool calls, `allowed_tools` choices. Wrong JSON types are rejected with their path.
//!
//! Response: `content[]` `text` blocks → `message.content` (joined; `null` when there are tool
//! calls and no text); `tool_use` → `message.tool_calls[]` (`id`, `type: function`,
//! `function.name`, `function.arguments` = `input` as JSON text); other blocks (thinking,
//! server tools) are dropped. `stop_reason` → `finish_reason`: `end_turn`, `stop_sequence`,
//! `pause_turn` → `stop`; `max_tokens`, `model_context_window_exceeded` → `length`; `tool_use` →
//! `tool_calls`; `refusal` → `content_filter`. Usage: `prompt_tokens` = `input_tokens` +
//! `cache_creation_input_tokens` + `cache_read_input_tokens` (Anthropic's total input, as
//! OpenAI counts cached tokens inside `prompt_tokens`), `prompt_tokens_details.cached_tokens`
//! = `cache_read_input_tokens`, `completion_tokens` = `output_tokens`, `total_tokens` = the sum.
//! `id` and `model` are Anthropic's; `object: chat.completion`; `created: 0`.
//!
//! Errors: Anthropic's `{"type":"error","error":{"type","message"},"request_id"}` →
//! `{"error":{"message","type","param":null,"code"}}` with `code` = Anthropic's error type and
//! `type` mapped ([`openai_error_type`]); a body of any other shape is wrapped with the status
//! and its first bytes, never dropped.
//!
//! Stream: the table is on [`StreamTranslator`].

mod events;
mod messages;
mod request;
mod response;
mod stream;

#[cfg(test)]
mod tests;

pub use request::{request_to_anthropic, translate_request, AnthropicRequest};
pub use response::{error_from_anthropic, response_from_anthropic};
pub use stream::{StreamTranslator, MAX_EVENT_BYTES};

/// OpenAI `finish_reason` for an Anthropic `stop_reason` (unknown or missing: `stop`).
pub fn finish_reason(stop_reason: Option<&str>) -> &'static str {
    match stop_reason {
        Some("max_tokens" | "model_context_window_exceeded") => "length",
        Some("tool_use") => "tool_calls",
        Some("refusal") => "content_filter",
        _ => "stop",
    }
}

/// OpenAI error `type` for an Anthropic error `type` (and the HTTP status when the type is
/// unknown or missing; status 0 = none, as in a stream).
pub fn openai_error_type(anthropic_type: Option<&str>, status: u16) -> &'static str {
    match anthropic_type {
        Some("invalid_request_error" | "not_found_error" | "request_too_large") => "invalid_request_error",
        Some("authentication_error") => "authentication_error",
        Some("permission_error") => "permission_error",
        Some("rate_limit_error") => "rate_limit_error",
        Some("billing_error") => "insufficient_quota",
        Some("api_error" | "overloaded_error" | "timeout_error") => "server_error",
        _ => match status {
            401 => "authentication_error",
            403 => "permission_error",
            429 => "rate_limit_error",
            400..=499 => "invalid_request_error",
            _ => "server_error",
        },
    }
}

/// Token counts as Anthropic reports them (absent counts are 0).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Usage {
    pub input: u64,
    pub cache_creation: u64,
    pub cache_read: u64,
    pub output: u64,
}

impl Usage {
    /// `{"prompt_tokens","completion_tokens","total_tokens","prompt_tokens_details":{"cached_tokens"}}`.
    pub fn write_openai(&self, out: &mut Vec<u8>) {
        let prompt = self.input.saturating_add(self.cache_creation).saturating_add(self.cache_read);
        let total = prompt.saturating_add(self.output);
        out.extend_from_slice(b"{\"prompt_tokens\":");
        push_u64(out, prompt);
        out.extend_from_slice(b",\"completion_tokens\":");
        push_u64(out, self.output);
        out.extend_from_slice(b",\"total_tokens\":");
        push_u64(out, total);
        out.extend_from_slice(b",\"prompt_tokens_details\":{\"cached_tokens\":");
        push_u64(out, self.cache_read);
        out.extend_from_slice(b"}}");
    }
}

pub(crate) use crate::body::{push_u64, write_json_string};

/// Append `v` as compact JSON (strings through [`write_json_string`]). The depth is bounded by
/// the parser that built `v` (`serde_json` stops at 128).
pub(crate) fn write_value(out: &mut Vec<u8>, v: &serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => out.extend_from_slice(n.to_string().as_bytes()),
        Value::String(s) => write_json_string(out, s),
        Value::Array(a) => {
            out.push(b'[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(out, x);
            }
            out.push(b']');
        }
        Value::Object(m) => {
            out.push(b'{');
            for (i, (k, x)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_json_string(out, k);
                out.push(b':');
                write_value(out, x);
            }
            out.push(b'}');
        }
    }
}

/// An OpenAI error object `{"error":{"message","type","param":null,"code"}}` (`code` `null`
/// when `None`).
pub(crate) fn write_error(out: &mut Vec<u8>, message: &str, kind: &str, code: Option<&str>) {
    out.extend_from_slice(b"{\"error\":{\"message\":");
    write_json_string(out, message);
    out.extend_from_slice(b",\"type\":");
    write_json_string(out, kind);
    out.extend_from_slice(b",\"param\":null,\"code\":");
    match code {
        Some(c) => write_json_string(out, c),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b"}}");
}
