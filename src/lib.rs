//! model-workers: Spice-style model workers as a Proxy-Wasm filter for Envoy.
//!
//! The crate has two halves:
//! - the **policy core** (every module but `filter`): configuration, body scanning, selection,
//!   failover decisions, errors. It never imports `proxy_wasm`, so it is tested natively and on
//!   wasm32 without a host;
//! - the **host glue** (`filter`, wasm32 + feature `filter` only): thin proxy-wasm contexts that
//!   call one pure step per callback and map the result to host calls.
//!
//! Plus, natively only, `generate`: a Spice file → the whole Envoy bootstrap (the
//! `model-workers` CLI), so the .wasm does not carry it.

pub mod body;
pub mod config;
pub mod cooldown;
pub mod counter;
pub mod error;
pub mod failover;
#[cfg(not(target_arch = "wasm32"))]
pub mod generate;
pub mod request;
pub mod select;
pub mod sse;

#[cfg(all(target_arch = "wasm32", feature = "filter"))]
mod filter;
