//! The root context: configuration, per-VM timers, and callouts dispatched by timers.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::{Rc, Weak};

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{ContextType, LogLevel};

use crate::config::Config;
use crate::counter::LocalTickets;
use crate::request;

use super::exchange::Exchange;
use super::host;
use super::http::Http;
use super::metrics::Metrics;
use super::state::Breakers;

/// Timer resolution: attempt timeouts and backoff fire within this many ms of their due time.
pub const TICK_MS: u64 = 20;

/// What a timer does when it fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerKind {
    /// Attempt `n` (through the route) got no response headers in time.
    AttemptTimeout(u32),
    /// Start attempt `n` after its backoff.
    StartAttempt(u32),
}

pub struct Timer {
    pub due_ms: u64,
    pub kind: TimerKind,
    pub exchange: Weak<RefCell<Exchange>>,
}

/// Per-VM state shared by the root and every request of this VM.
pub struct Vm {
    pub config: Rc<Config>,
    pub models_json: String,
    pub timers: RefCell<Vec<Timer>>,
    /// Callouts the root dispatched (for timers): token → request.
    pub callouts: RefCell<HashMap<u32, Weak<RefCell<Exchange>>>>,
    pub local_tickets: RefCell<LocalTickets>,
    pub metrics: Metrics,
    pub breakers: Breakers,
}

impl Vm {
    pub fn schedule(&self, due_ms: u64, kind: TimerKind, exchange: Weak<RefCell<Exchange>>) {
        self.timers.borrow_mut().push(Timer { due_ms, kind, exchange });
    }
}

pub struct Root {
    vm: Option<Rc<Vm>>,
}

impl Root {
    pub fn new() -> Self {
        Root { vm: None }
    }
}

impl Context for Root {
    fn on_http_call_response(&mut self, token_id: u32, _num_headers: usize, body_size: usize, _num_trailers: usize) {
        let Some(vm) = self.vm.clone() else { return };
        let weak = vm.callouts.borrow_mut().remove(&token_id);
        let Some(ex) = weak.and_then(|w| w.upgrade()) else {
            return;
        };
        let Ok(mut ex) = ex.try_borrow_mut() else {
            return;
        };
        if host::set_effective_context(ex.context_id()) {
            ex.on_callout_response(token_id, body_size, self, true);
        }
    }
}

impl RootContext for Root {
    fn on_vm_start(&mut self, _vm_configuration_size: usize) -> bool {
        true
    }

    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        let Some(bytes) = host::plugin_configuration() else {
            host::log(LogLevel::Error, "model-workers: rejected configuration: the plugin configuration is empty");
            return false;
        };
        let Ok(text) = std::str::from_utf8(&bytes) else {
            host::log(LogLevel::Error, "model-workers: rejected configuration: not UTF-8 text");
            return false;
        };
        let config = match Config::parse(text, &|name| std::env::var(name).ok()) {
            Ok(c) => c,
            Err(e) => {
                host::log(LogLevel::Error, &format!("model-workers: rejected configuration: {e}"));
                return false;
            }
        };
        let models_json = request::models_list_json(&config);
        host::log(
            LogLevel::Info,
            &format!("model-workers: configured {} models, {} workers", config.models.len(), config.workers.len()),
        );
        self.vm = Some(Rc::new(Vm {
            metrics: Metrics::define(&config),
            breakers: Breakers::new(&config),
            config: Rc::new(config),
            models_json,
            timers: RefCell::new(Vec::new()),
            callouts: RefCell::new(HashMap::new()),
            local_tickets: RefCell::new(LocalTickets::default()),
        }));
        host::set_tick_period(TICK_MS);
        true
    }

    fn on_tick(&mut self) {
        let Some(vm) = self.vm.clone() else { return };
        // A callout whose request went away is cancelled by Envoy and never answers: forget it.
        vm.callouts.borrow_mut().retain(|_, ex| ex.strong_count() > 0);
        if vm.timers.borrow().is_empty() {
            return;
        }
        let now = host::now_ms();
        let due: Vec<Timer> = {
            let mut timers = vm.timers.borrow_mut();
            timers.retain(|t| t.exchange.strong_count() > 0);
            let (due, keep): (Vec<Timer>, Vec<Timer>) = timers.drain(..).partition(|t| t.due_ms <= now);
            *timers = keep;
            due
        };
        for t in due {
            let Some(ex) = t.exchange.upgrade() else {
                continue;
            };
            let Ok(mut ex) = ex.try_borrow_mut() else {
                continue;
            };
            if host::set_effective_context(ex.context_id()) {
                ex.on_timer(t.kind, self);
            }
        }
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        let vm = self.vm.clone()?;
        Some(Box::new(Http::new(context_id, vm)))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
