//! The proxy-wasm shell: the ABI's entry points ([`entry`]), the host calls ([`abi`], behind
//! the [`hostcalls::WasmHost`] seam), the root context and the per-request context. No other
//! code touches the ABI; every decision is in `downstream` / `upstream`.

mod abi;
mod entry;
mod hostcalls;
mod http;
mod root;

#[cfg(target_os = "wasi")]
extern "C" {
    fn __wasm_call_ctors();
}

/// The module's initialiser (a WASI reactor's `_initialize`): static constructors, then a
/// panic hook that says what panicked in Envoy's log before the VM traps (`panic = "abort"`;
/// no code path is meant to panic — clippy denies `unwrap`, `expect`, `panic!` and indexing).
#[no_mangle]
pub extern "C" fn _initialize() {
    // SAFETY: the linker's constructor list, run once, before anything else in the module.
    #[cfg(target_os = "wasi")]
    unsafe {
        __wasm_call_ctors();
    }
    std::panic::set_hook(Box::new(|info| abi::log(5, &format!("model-workers: {info}"))));
}
