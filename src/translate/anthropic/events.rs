//! The Anthropic stream events as [`super::stream`] reads them: only the fields it uses,
//! strings borrowed from the event's data when they have no escapes, unknown fields ignored.

use std::borrow::Cow;
use std::fmt;
use std::ops::Deref;

use serde::de::{Deserializer, Visitor};
use serde::Deserialize;

use super::Usage;

/// One Anthropic stream event's data, as far as the translation reads it (strings borrowed
/// from the data when they have no escapes).
#[derive(Deserialize)]
pub(super) struct Event<'a> {
    #[serde(rename = "type", borrow)]
    pub(super) kind: Str<'a>,
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
    pub(super) kind: Option<Str<'a>>,
    #[serde(default, borrow)]
    pub(super) text: Option<Str<'a>>,
    #[serde(default, borrow)]
    pub(super) partial_json: Option<Str<'a>>,
    #[serde(default, borrow)]
    pub(super) stop_reason: Option<Str<'a>>,
}

#[derive(Deserialize)]
pub(super) struct Block<'a> {
    #[serde(rename = "type", default, borrow)]
    pub(super) kind: Option<Str<'a>>,
    #[serde(default, borrow)]
    pub(super) id: Option<Str<'a>>,
    #[serde(default, borrow)]
    pub(super) name: Option<Str<'a>>,
    #[serde(default, borrow)]
    pub(super) text: Option<Str<'a>>,
}

#[derive(Deserialize)]
pub(super) struct Message<'a> {
    #[serde(default, borrow)]
    pub(super) id: Option<Str<'a>>,
    #[serde(default, borrow)]
    pub(super) model: Option<Str<'a>>,
    #[serde(default)]
    pub(super) usage: Option<UsageIn>,
}

#[derive(Deserialize)]
pub(super) struct ErrorIn<'a> {
    #[serde(rename = "type", default, borrow)]
    pub(super) kind: Option<Str<'a>>,
    #[serde(default, borrow)]
    pub(super) message: Option<Str<'a>>,
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

/// A string of the event: borrowed from the data unless it has escapes. (serde borrows a
/// `Cow<str>` field, but not one inside an `Option`: this one borrows either way.)
pub(super) struct Str<'a>(Cow<'a, str>);

impl Deref for Str<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Str<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V(std::marker::PhantomData))
    }
}
