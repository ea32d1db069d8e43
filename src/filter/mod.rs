//! The host glue. Two state machines, both behind the one host seam ([`host::Host`]):
//!
//! - [`downstream::Downstream`]: the filter before the router, one per request — classify,
//!   route, plan every attempt, prepare attempt 1, name the outcome on the way back;
//! - [`upstream::Upstream`]: the same .wasm as an upstream filter on every model cluster, one
//!   per attempt — rewrite the attempt for its model, back off, judge the outcome so that
//!   Envoy's router retries exactly the failures the worker's policy retries.
//!
//! They share the VM's services ([`vm::Vm`]: config, metrics, breakers, timers). The wasm
//! shell (`wasm/`, wasm32 only) is the only code that touches proxy-wasm; tests drive the
//! state machines through the in-memory [`fake::FakeHost`].

pub mod cron;
pub mod downstream;
pub mod headers;
pub mod host;
pub mod metrics;
pub mod state;
pub mod translated;
pub mod upstream;
pub mod vm;

#[cfg(test)]
pub mod fake;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_state;

#[cfg(all(target_arch = "wasm32", feature = "filter"))]
mod wasm;
