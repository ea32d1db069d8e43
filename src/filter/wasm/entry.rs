//! The proxy-wasm ABI (0.2.1) entry points: the functions Envoy calls in this VM, and the
//! tables that map Envoy's context ids to this filter's root and per-request contexts.
//!
//! Owned here rather than taken from the SDK's dispatcher for three reasons:
//! - **No trap on a surprise.** The SDK's dispatcher `panic!`s on a context id it does not
//!   know, a duplicate one, or a callback that re-enters while it holds its tables; a panic
//!   traps the VM for every request. Here an unknown or busy context is passed on
//!   (`Continue`), and a context is looked up, then its table released, before it runs.
//! - **Fewer VM entries.** Envoy calls only what a module exports (proxy-wasm-cpp-host skips a
//!   missing `proxy_on_log`, `proxy_on_delete`, `proxy_on_response_trailers`, …). This module
//!   exports no `proxy_on_log` and no `proxy_on_delete`: a request's end is `proxy_on_done`
//!   (Envoy's `onDestroy`, for every HTTP context, reset and timeout included, after the
//!   access-log pass), where its context is dropped too — two VM entries fewer per context,
//!   four per routed request (downstream and attempt 1).
//! - **A smaller module** (no dispatcher, no SDK).
//!
//! Envoy defers what a callback asks of the stream (local reply, resume) until the VM call
//! returns, so callbacks do not nest; should one ever re-enter a context that is running, it
//! gets `Continue` instead of a second borrow.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::rc::Rc;

use crate::filter::host::Flow;
use crate::filter::vm::Vm;

use super::http::Http;
use super::root::Root;

/// proxy-wasm `Action`: Continue = 0, Pause = 1.
const CONTINUE: u32 = 0;
const PAUSE: u32 = 1;

/// Context ids are small integers Envoy hands out in order: a multiplicative hash spreads them
/// without the cost of SipHash on every callback.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8 | u64::from(*b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.0 = u64::from(n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type Table<T> = RefCell<HashMap<u32, Rc<RefCell<T>>, BuildHasherDefault<IdHasher>>>;

thread_local! {
    static ROOTS: Table<Root> = RefCell::default();
    /// Each configured root's services, apart from the root itself, so that a context can be
    /// created while its root is running (a callout's stream starting inside the root's tick).
    static VMS: RefCell<HashMap<u32, Rc<Vm>, BuildHasherDefault<IdHasher>>> = RefCell::default();
    static STREAMS: Table<Http> = RefCell::default();
}

fn get<T>(table: &'static std::thread::LocalKey<Table<T>>, id: u32) -> Option<Rc<RefCell<T>>> {
    table.with(|t| t.try_borrow().ok().and_then(|t| t.get(&id).cloned()))
}

fn insert<T>(table: &'static std::thread::LocalKey<Table<T>>, id: u32, v: T) {
    table.with(|t| {
        if let Ok(mut t) = t.try_borrow_mut() {
            t.insert(id, Rc::new(RefCell::new(v)));
        }
    });
}

fn remove<T>(table: &'static std::thread::LocalKey<Table<T>>, id: u32) -> Option<Rc<RefCell<T>>> {
    table.with(|t| t.try_borrow_mut().ok().and_then(|mut t| t.remove(&id)))
}

/// Run `f` on request context `id`; unknown or busy: `Continue`.
fn stream(id: u32, f: impl FnOnce(&mut Http) -> Flow) -> u32 {
    let Some(s) = get(&STREAMS, id) else { return CONTINUE };
    let Ok(mut s) = s.try_borrow_mut() else { return CONTINUE };
    match f(&mut s) {
        Flow::Continue => CONTINUE,
        Flow::Pause => PAUSE,
    }
}

/// Run `f` on root context `id`; unknown or busy: `None`.
fn root<R>(id: u32, f: impl FnOnce(&mut Root) -> R) -> Option<R> {
    let r = get(&ROOTS, id)?;
    let mut r = r.try_borrow_mut().ok()?;
    Some(f(&mut r))
}

#[no_mangle]
pub extern "C" fn proxy_abi_version_0_2_1() {}

/// The host's way to hand the VM bytes (header maps, bodies, properties): an exact-size
/// allocation from Rust's allocator, which [`super::abi`] takes back as a `Vec`.
#[no_mangle]
pub extern "C" fn proxy_on_memory_allocate(size: usize) -> *mut u8 {
    // Not zeroed: the host writes every byte before the VM reads any (a 1 MB body would
    // otherwise be written twice).
    let mut buf: Vec<std::mem::MaybeUninit<u8>> = Vec::with_capacity(size);
    // SAFETY: `MaybeUninit` needs no initialisation; the capacity is `size`.
    unsafe { buf.set_len(size) };
    Box::into_raw(buf.into_boxed_slice()).cast::<u8>()
}

#[no_mangle]
pub extern "C" fn proxy_on_context_create(context_id: u32, root_context_id: u32) {
    if root_context_id == 0 {
        insert(&ROOTS, context_id, Root::new());
        return;
    }
    // A request under a root that was never configured gets no context (its callbacks pass).
    let Some(vm) = VMS.with(|v| v.try_borrow().ok().and_then(|v| v.get(&root_context_id).cloned())) else { return };
    insert(&STREAMS, context_id, Http::new(context_id, vm));
}

#[no_mangle]
pub extern "C" fn proxy_on_vm_start(_root_context_id: u32, _vm_configuration_size: usize) -> u32 {
    1
}

#[no_mangle]
pub extern "C" fn proxy_on_configure(root_context_id: u32, _plugin_configuration_size: usize) -> u32 {
    let Some(vm) = root(root_context_id, Root::on_configure).flatten() else { return 0 };
    VMS.with(|v| {
        if let Ok(mut v) = v.try_borrow_mut() {
            v.insert(root_context_id, vm);
        }
    });
    1
}

#[no_mangle]
pub extern "C" fn proxy_on_tick(root_context_id: u32) {
    root(root_context_id, Root::on_tick);
}

#[no_mangle]
pub extern "C" fn proxy_on_http_call_response(
    root_context_id: u32,
    token: u32,
    num_headers: usize,
    body_size: usize,
    _num_trailers: usize,
) {
    root(root_context_id, |r| r.on_http_call_response(token, num_headers, body_size));
}

#[no_mangle]
pub extern "C" fn proxy_on_request_headers(context_id: u32, _num_headers: usize, end_of_stream: u32) -> u32 {
    stream(context_id, |s| s.on_request_headers(end_of_stream != 0))
}

#[no_mangle]
pub extern "C" fn proxy_on_request_body(context_id: u32, body_size: usize, end_of_stream: u32) -> u32 {
    stream(context_id, |s| s.on_request_body(body_size, end_of_stream != 0))
}

#[no_mangle]
pub extern "C" fn proxy_on_request_trailers(context_id: u32, _num_trailers: usize) -> u32 {
    stream(context_id, Http::on_request_trailers)
}

#[no_mangle]
pub extern "C" fn proxy_on_response_headers(context_id: u32, _num_headers: usize, end_of_stream: u32) -> u32 {
    stream(context_id, |s| s.on_response_headers(end_of_stream != 0))
}

#[no_mangle]
pub extern "C" fn proxy_on_response_body(context_id: u32, body_size: usize, end_of_stream: u32) -> u32 {
    stream(context_id, |s| s.on_response_body(body_size, end_of_stream != 0))
}

/// A request context's end (its last callback: the context is dropped), or a root's (the
/// plugin is being removed: done at once).
#[no_mangle]
pub extern "C" fn proxy_on_done(context_id: u32) -> u32 {
    if let Some(s) = remove(&STREAMS, context_id) {
        if let Ok(mut s) = s.try_borrow_mut() {
            s.on_done();
        }
        return 1;
    }
    if remove(&ROOTS, context_id).is_some() {
        VMS.with(|v| v.try_borrow_mut().ok().map(|mut v| v.remove(&context_id)));
    }
    1
}
