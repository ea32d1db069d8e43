//! TEMPORARY stand-in (serde_json based); being replaced by the single-pass scanner.
use std::ops::Range;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scan {
    pub model: String,
    pub model_span: Range<usize>,
    pub stream: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    InvalidJson { offset: usize, reason: &'static str },
    NotAnObject,
    MissingModel,
    ModelNotString,
    EmptyModel,
    DuplicateModel,
    ModelTooLong { len: usize, max: usize },
    TooDeep,
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}

pub const MAX_MODEL_LEN: usize = 256;
pub const MAX_DEPTH: usize = 128;

pub fn scan(body: &[u8]) -> Result<Scan, BodyError> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| BodyError::InvalidJson {
            offset: 0,
            reason: "invalid",
        })?;
    let obj = v.as_object().ok_or(BodyError::NotAnObject)?;
    let model = obj
        .get("model")
        .ok_or(BodyError::MissingModel)?
        .as_str()
        .ok_or(BodyError::ModelNotString)?;
    if model.is_empty() {
        return Err(BodyError::EmptyModel);
    }
    let text = std::str::from_utf8(body).map_err(|_| BodyError::InvalidJson {
        offset: 0,
        reason: "utf8",
    })?;
    let needle = format!("\"{model}\"");
    let start = text.find(&needle).ok_or(BodyError::MissingModel)?;
    Ok(Scan {
        model: model.to_string(),
        model_span: start..start + needle.len(),
        stream: obj.get("stream").and_then(|s| s.as_bool()).unwrap_or(false),
    })
}

pub fn rewrite_model(body: &[u8], span: Range<usize>, new_model: &str) -> Option<Vec<u8>> {
    let head = body.get(..span.start)?;
    let tail = body.get(span.end..)?;
    let lit = serde_json::to_string(new_model).ok()?;
    let mut out = Vec::with_capacity(head.len() + lit.len() + tail.len());
    out.extend_from_slice(head);
    out.extend_from_slice(lit.as_bytes());
    out.extend_from_slice(tail);
    Some(out)
}
