//! model-workers: Spice-style model workers as a Proxy-Wasm filter for Envoy.
//!
//! The crate has two halves:
//! - the **policy core** (every module but `filter`): configuration, body scanning, selection,
//!   failover decisions, errors. It never imports `proxy_wasm`, so it is tested natively and on
//!   wasm32 without a host;
//! - the **host glue** (`filter`, wasm32 + feature `filter` only): thin proxy-wasm contexts that
//!   call one pure step per callback and map the result to host calls.

pub mod body;
pub mod config;
pub mod cooldown;
pub mod counter;
pub mod error;
pub mod failover;
pub mod plan;
pub mod request;
pub mod select;
pub mod sse;

pub mod filter;
