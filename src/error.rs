//! Errors a client can see, and the one place that maps them to an HTTP status and an
//! OpenAI-style JSON body (`{"error": {"message", "type", "param", "code"}}`).

use crate::body::BodyError;

/// A request the filter answers itself instead of forwarding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    /// OpenAI error `type`, e.g. `invalid_request_error`.
    pub kind: &'static str,
    /// Machine-readable `code`, e.g. `model_not_found`.
    pub code: &'static str,
    pub message: String,
    /// The request field the error is about (OpenAI's `param`), when there is one.
    pub param: Option<String>,
}

impl ApiError {
    pub fn new(status: u16, kind: &'static str, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, kind, code, message: message.into(), param: None }
    }

    /// A request a model's API cannot take: 400 naming the field.
    pub fn untranslatable(model: &str, param: &str, why: &str) -> Self {
        let mut e = Self::invalid_request(
            "unsupported_parameter",
            format!(
                "model `{}` (Anthropic Messages API) cannot take `{}`: {}",
                clip(model, 80),
                clip(param, 80),
                clip(why, 300)
            ),
        );
        e.param = Some(param.to_string());
        e
    }

    /// A client path a translated model does not serve.
    pub fn unsupported_endpoint(model: &str, path: &str) -> Self {
        Self::invalid_request(
            "unsupported_endpoint",
            format!(
                "model `{}` speaks Anthropic's Messages API, which serves chat completions only, not `{}`",
                clip(model, 80),
                clip(path.split('?').next().unwrap_or(""), 120)
            ),
        )
    }

    pub fn invalid_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(400, "invalid_request_error", code, message)
    }

    pub fn unknown_model(name: &str) -> Self {
        Self::new(
            404,
            "invalid_request_error",
            "model_not_found",
            format!("The model `{}` does not exist: it names no worker and no model of this gateway", clip(name, 80)),
        )
    }

    pub fn body_too_large(limit: usize) -> Self {
        Self::new(
            413,
            "invalid_request_error",
            "request_too_large",
            format!("Request body exceeds the gateway limit of {limit} bytes"),
        )
    }

    pub fn method_not_allowed(method: &str) -> Self {
        Self::new(
            405,
            "invalid_request_error",
            "method_not_allowed",
            format!("Method {} is not allowed here; send a POST with a JSON body", clip(method, 16)),
        )
    }

    pub fn unsupported_media_type(content_type: &str) -> Self {
        Self::new(
            415,
            "invalid_request_error",
            "unsupported_media_type",
            format!("Content-Type `{}` is not supported; send application/json", clip(content_type, 64)),
        )
    }

    pub fn unsupported_encoding(encoding: &str) -> Self {
        Self::new(
            415,
            "invalid_request_error",
            "unsupported_content_encoding",
            format!(
                "Content-Encoding `{}` is not supported: the gateway must read `model`; send an uncompressed JSON body",
                clip(encoding, 32)
            ),
        )
    }

    /// Every candidate failed and no upstream response can be passed on.
    pub fn all_failed(target: &str, trail: &str) -> Self {
        Self::new(
            503,
            "server_error",
            "all_models_failed",
            format!("All attempts for `{}` failed: {}", clip(target, 80), trail),
        )
    }

    pub fn from_body(err: &BodyError) -> Self {
        let code = match err {
            BodyError::InvalidJson { .. } | BodyError::TooDeep => "invalid_json",
            BodyError::NotAnObject => "invalid_body",
            BodyError::MissingModel => "missing_model",
            BodyError::ModelNotString | BodyError::EmptyModel | BodyError::ModelTooLong { .. } => "invalid_model",
            BodyError::DuplicateModel => "duplicate_model",
        };
        Self::invalid_request(code, format!("Invalid request body: {err}"))
    }

    /// The OpenAI-style JSON body.
    pub fn to_json(&self) -> String {
        serde_json::json!({
            "error": {
                "message": self.message,
                "type": self.kind,
                "param": self.param,
                "code": self.code,
            }
        })
        .to_string()
    }
}

/// Shorten client-provided text that is echoed in an error (at a char boundary).
pub fn clip(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", s.get(..end).unwrap_or(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_shape_is_openai_style() {
        let e = ApiError::unknown_model("nope");
        let v: serde_json::Value = serde_json::from_str(&e.to_json()).unwrap();
        assert_eq!(v["error"]["code"], "model_not_found");
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert!(v["error"]["message"].as_str().unwrap().contains("`nope`"));
        assert!(v["error"]["param"].is_null());
        assert_eq!(e.status, 404);
    }

    #[test]
    fn clip_respects_char_boundaries() {
        assert_eq!(clip("abc", 5), "abc");
        assert_eq!(clip("ééé", 3), "é…");
        assert_eq!(clip(&"x".repeat(10_000), 80).len(), 80 + "…".len());
    }

    #[test]
    fn every_body_error_maps_to_400() {
        for e in [
            BodyError::InvalidJson { offset: 3, reason: "x" },
            BodyError::NotAnObject,
            BodyError::MissingModel,
            BodyError::ModelNotString,
            BodyError::EmptyModel,
            BodyError::DuplicateModel,
            BodyError::ModelTooLong { len: 9, max: 1 },
            BodyError::TooDeep,
        ] {
            assert_eq!(ApiError::from_body(&e).status, 400, "{e:?}");
        }
    }
}
