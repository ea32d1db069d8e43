//! Table-driven tests of the Anthropic translators, with realistic fixtures.

mod request;
mod response;
mod stream;
