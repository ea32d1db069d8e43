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

mod messages;
mod request;

#[cfg(test)]
mod tests;

pub use request::{request_to_anthropic, translate_request, AnthropicRequest};
