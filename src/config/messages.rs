//! A model's `system_prompt` (Spice's param) and `messages` (extension: IronlabsAI's
//! per-model messages) → the [`ModelMessages`] its attempts add to chat requests.
//!
//! Errors name the param and the message's index, never a value.

use std::collections::BTreeMap;

use super::wire::{Scalar, Value};
use crate::inject::ModelMessages;

/// The roles a configured message may have (a `tool` message needs a call to answer).
const ROLES: &[&str] = &["system", "developer", "user", "assistant"];

pub fn model_messages(params: &BTreeMap<String, Value>) -> Result<ModelMessages, String> {
    let system = match params.get("system_prompt") {
        None | Some(Value::Null) => None,
        Some(Value::Scalar(Scalar::Str(s))) => Some(text("system_prompt", s)?).filter(|s| !s.trim().is_empty()),
        Some(_) => return Err("param `system_prompt` must be a string".into()),
    };
    let mut appended = Vec::new();
    match params.get("messages") {
        None | Some(Value::Null) => {}
        Some(Value::List(items)) => {
            for (i, item) in items.iter().enumerate() {
                let Value::Map(m) = item else {
                    return Err(format!("param `messages[{i}]` must be a map with `role` and `content`"));
                };
                if let Some(k) = m.keys().find(|k| *k != "role" && *k != "content") {
                    return Err(format!(
                        "param `messages[{i}]`: unknown key `{k}` (a message has `role` and `content`)"
                    ));
                }
                let role = match m.get("role") {
                    Some(Value::Scalar(Scalar::Str(r))) if ROLES.contains(&r.as_str()) => r.clone(),
                    _ => return Err(format!("param `messages[{i}].role` must be one of {}", ROLES.join(", "))),
                };
                let content = match m.get("content") {
                    Some(Value::Scalar(Scalar::Str(c))) => text(&format!("messages[{i}].content"), c)?.to_string(),
                    _ => return Err(format!("param `messages[{i}].content` must be a string")),
                };
                appended.push((role, content));
            }
        }
        Some(_) => return Err("param `messages` must be a list of messages, each with `role` and `content`".into()),
    }
    Ok(ModelMessages::new(system, &appended))
}

/// Prompt text: taken as written; a `${ … }` reference is refused (secrets resolve only in
/// `*_api_key` params, so a key can never be sent to a model as a prompt).
fn text<'a>(what: &str, s: &'a str) -> Result<&'a str, String> {
    if s.contains("${") {
        return Err(format!("param `{what}`: `${{ … }}` references are only resolved in `*_api_key` params"));
    }
    Ok(s)
}
