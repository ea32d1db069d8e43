//! One attempt to a model whose API is not the client's (Anthropic's Messages API): the
//! request body is translated whole before it goes out, and the answer back — a JSON body
//! whole, a stream event by event as it arrives (never buffered beyond an incomplete event).

use crate::config::{Api, Model};
use crate::translate::anthropic::{self, AnthropicRequest, StreamTranslator};
use crate::translate::TranslateError;

use super::host::{Body, Host, Map};

/// Translate an OpenAI body for `model` (None: the model needs no translation).
pub fn request_body(model: &Model, openai: &[u8]) -> Option<Result<AnthropicRequest, TranslateError>> {
    match &model.api {
        Api::AnthropicMessages { max_tokens } => {
            Some(anthropic::translate_request(openai, &model.model_id, *max_tokens))
        }
        Api::OpenAi | Api::AzureDeployment { .. } => None,
    }
}

/// The response side of one translated attempt.
pub struct Translation {
    include_usage: bool,
    stream: Option<StreamTranslator>,
    /// The translated chunk, reused from chunk to chunk (no allocation per event).
    out: Vec<u8>,
}

impl Translation {
    pub fn new(include_usage: bool) -> Translation {
        Translation { include_usage, stream: None, out: Vec::new() }
    }

    /// Response headers arrived: the body's length changes.
    pub fn on_headers(&mut self, host: &mut dyn Host, streaming: bool) {
        host.remove_header(Map::Response, "content-length");
        if streaming {
            self.stream = Some(StreamTranslator::new(self.include_usage));
        }
    }

    /// Translate the `body_size` bytes now in the buffer (the whole buffer: held bytes are
    /// translated once, when the stream is released).
    pub fn stream_chunk(&mut self, host: &mut dyn Host, body_size: usize, end_of_stream: bool) {
        let Some(st) = self.stream.as_mut() else { return };
        let chunk = host.body(Body::Response, 0, body_size).unwrap_or_default();
        let out = &mut self.out;
        out.clear();
        st.push_into(&chunk, out);
        if end_of_stream {
            out.extend_from_slice(&st.finish());
        }
        host.splice_body(Body::Response, body_size, out);
    }

    /// The whole (non-stream) answer: a message, or an error in OpenAI's shape.
    pub fn whole(&mut self, host: &mut dyn Host, status: u16, body_size: usize) {
        let body = host.body(Body::Response, 0, body_size).unwrap_or_default();
        let out = if (200..300).contains(&status) {
            anthropic::response_from_anthropic(&body).unwrap_or_else(|| anthropic::error_from_anthropic(502, &body))
        } else {
            anthropic::error_from_anthropic(status, &body)
        };
        host.splice_body(Body::Response, body_size, &out);
    }

    pub fn is_stream(&self) -> bool {
        self.stream.is_some()
    }
}
