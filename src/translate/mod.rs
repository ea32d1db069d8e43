//! Provider API translators: pure functions from the client's OpenAI-style API to a provider's
//! native API and back, for one attempt at a time (no proxy-wasm, no I/O, no clock).
//!
//! The glue calls them per attempt: an attempt on an `anthropic:` model sends
//! [`anthropic::request_to_anthropic`]'s body to `/v1/messages` and passes the answer through
//! [`anthropic::response_from_anthropic`], [`anthropic::error_from_anthropic`] or an
//! [`anthropic::StreamTranslator`]; every other attempt of the same request is untouched.
//!
//! A request the provider cannot honour as asked is never sent with the field silently
//! dropped: it is a [`TranslateError`], which names the field and becomes an OpenAI-style 400.

use std::fmt;

pub mod anthropic;

pub use anthropic::{
    error_from_anthropic, request_to_anthropic, response_from_anthropic, translate_request, AnthropicRequest,
    StreamTranslator,
};

/// The OpenAI `code` of every [`TranslateError`].
pub const TRANSLATE_ERROR_CODE: &str = "unsupported_parameter";

/// A request the target API cannot express: `param` is the OpenAI field at fault as a path
/// (`n`, `messages[2].content[0].image_url.url`; empty when the body as a whole is at fault),
/// `message` says why in a sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TranslateError {
    pub param: String,
    pub message: String,
}

impl TranslateError {
    pub fn new(param: impl Into<String>, message: impl Into<String>) -> Self {
        Self { param: param.into(), message: message.into() }
    }

    /// HTTP status for the client: always 400.
    pub fn status(&self) -> u16 {
        400
    }

    /// The OpenAI-style body: `{"error":{"message","type":"invalid_request_error","param","code"}}`
    /// (`param` is `null` when empty).
    pub fn to_json(&self) -> String {
        let param =
            if self.param.is_empty() { serde_json::Value::Null } else { serde_json::Value::String(self.param.clone()) };
        serde_json::json!({
            "error": {
                "message": self.message,
                "type": "invalid_request_error",
                "param": param,
                "code": TRANSLATE_ERROR_CODE,
            }
        })
        .to_string()
    }
}

impl fmt::Display for TranslateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.param.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "`{}`: {}", self.param, self.message)
        }
    }
}

impl std::error::Error for TranslateError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_json_names_the_param() {
        let e = TranslateError::new("n", "n > 1 is not supported");
        let v: serde_json::Value = serde_json::from_str(&e.to_json()).unwrap();
        assert_eq!(v["error"]["param"], "n");
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert_eq!(v["error"]["code"], TRANSLATE_ERROR_CODE);
        assert_eq!(v["error"]["message"], "n > 1 is not supported");
        assert_eq!(e.status(), 400);
        let whole = TranslateError::new("", "not JSON");
        let v: serde_json::Value = serde_json::from_str(&whole.to_json()).unwrap();
        assert!(v["error"]["param"].is_null());
        assert_eq!(whole.to_string(), "not JSON");
        assert_eq!(e.to_string(), "`n`: n > 1 is not supported");
    }
}
