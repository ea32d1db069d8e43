//! The Anthropic stream events as [`super::stream`] reads them: only the fields it uses,
//! strings borrowed from the event's data when they have no escapes, unknown fields ignored.

use std::borrow::Cow;

use serde::Deserialize;

use super::Usage;

/// One Anthropic stream event's data, as far as the translation reads it (strings borrowed
/// from the data when they have no escapes).
#[derive(Deserialize)]
pub(super) struct Event<'a> {
    #[serde(rename = "type", borrow)]
    pub(super) kind: Cow<'a, str>,
    #[serde(default)]
    pub(super) index: Option<u64>,
    #[serde(default, borrow)]
    pub(super) delta: Option<Delta<'a>>,
    #[serde(default, borrow)]
    pub(super) content_block: Option<Block<'a>>,
    #[serde(default, borrow)]
    pub(super) message: Option<Message<'a>>,
    #[serde(default)]
    pub(super) usage: Option<UsageIn>,
    #[serde(default, borrow)]
    pub(super) error: Option<ErrorIn<'a>>,
}

#[derive(Deserialize)]
pub(super) struct Delta<'a> {
    #[serde(rename = "type", default, borrow)]
    pub(super) kind: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub(super) text: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub(super) partial_json: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub(super) stop_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
pub(super) struct Block<'a> {
    #[serde(rename = "type", default, borrow)]
    pub(super) kind: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub(super) id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub(super) name: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub(super) text: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
pub(super) struct Message<'a> {
    #[serde(default, borrow)]
    pub(super) id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub(super) model: Option<Cow<'a, str>>,
    #[serde(default)]
    pub(super) usage: Option<UsageIn>,
}

#[derive(Deserialize)]
pub(super) struct ErrorIn<'a> {
    #[serde(rename = "type", default, borrow)]
    pub(super) kind: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub(super) message: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
pub(super) struct UsageIn {
    #[serde(default)]
    pub(super) input_tokens: Option<u64>,
    #[serde(default)]
    pub(super) cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    pub(super) cache_read_input_tokens: Option<u64>,
    #[serde(default)]
    pub(super) output_tokens: Option<u64>,
}

impl UsageIn {
    pub(super) fn merge_into(&self, u: &mut Usage) {
        let set = |slot: &mut u64, v: Option<u64>| {
            if let Some(v) = v {
                *slot = v;
            }
        };
        set(&mut u.input, self.input_tokens);
        set(&mut u.cache_creation, self.cache_creation_input_tokens);
        set(&mut u.cache_read, self.cache_read_input_tokens);
        set(&mut u.output, self.output_tokens);
    }
}
