//! model-workers: Spice-style model workers as a Proxy-Wasm filter for Envoy.
//!
//! The crate has two halves:
//! - the **policy core** (every module but `filter`): configuration, body scanning, selection,
//!   failover decisions, errors. It never imports `proxy_wasm`, so it is tested natively and on
//!   wasm32 without a host;
//! - the **host glue** (`filter`): the downstream and upstream state machines behind one host
//!   seam (tested natively against an in-memory fake), and the thin proxy-wasm shell
//!   (`filter::wasm`, wasm32 + feature `filter` only).
//!
//! Plus, natively only, `generate`: a Spice file → the whole Envoy bootstrap (the
//! `model-workers` CLI), so the .wasm does not carry it.

pub mod attempt;
pub mod body;
pub mod config;
pub mod cooldown;
pub mod counter;
pub mod cron;
pub mod error;
pub mod failover;
#[cfg(not(target_arch = "wasm32"))]
pub mod generate;
pub mod inject;
pub mod plan;
pub mod policy;
pub mod request;
pub mod sse;
pub mod state;
pub mod status;
pub mod translate;

pub mod filter;
