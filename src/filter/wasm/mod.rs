//! The proxy-wasm shell: the entry point, the root context and the per-request context. The
//! only code that imports `proxy_wasm`; every decision is in `downstream` / `upstream`.

mod abi;
mod hostcalls;
mod http;
mod root;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(proxy_wasm::types::LogLevel::Trace);
    proxy_wasm::set_root_context(|_| -> Box<dyn proxy_wasm::traits::RootContext> { Box::new(root::Root::new()) });
}}
