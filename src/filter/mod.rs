//! Host glue: the only code that talks to proxy-wasm. Each callback makes one pure step
//! (from `crate::request`, `crate::failover`, …) and maps its result to host calls.
//!
//! - [`root::Root`]: one per VM (Envoy worker thread). Parses the configuration, owns the
//!   per-VM timer list (attempt timeouts, backoff) driven by `on_tick`, and receives the
//!   callouts it dispatched for timers.
//! - [`http::Http`]: one per request; a thin shell around an [`exchange::Exchange`], the
//!   request's state, shared (`Rc<RefCell<_>>`) with the root's timers.
//! - [`host`]: non-panicking wrappers around `proxy_wasm::hostcalls` (the SDK's convenience
//!   methods unwrap host errors and non-UTF-8 header values, which would trap the VM).

mod exchange;
mod host;
mod http;
mod metrics;
mod root;
mod state;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(proxy_wasm::types::LogLevel::Trace);
    proxy_wasm::set_root_context(|_| -> Box<dyn proxy_wasm::traits::RootContext> { Box::new(root::Root::new()) });
}}
