//! The root context: parses the configuration into the VM's services, fires the upstream
//! attempts' timers and the scheduled prompts from its tick, and takes the prompts' answers.

use std::cell::Cell;
use std::rc::Rc;

use crate::config::Config;
use crate::filter::cron;
use crate::filter::host::{Host, Level};
use crate::filter::upstream::Resume;
use crate::filter::vm::{Vm, TICK_MS};

use super::hostcalls::{self, WasmHost};

thread_local! {
    /// What this VM has added to `model_workers.vm.memory_bytes` (one per VM: its root
    /// contexts share it).
    static VM_MEMORY_REPORTED: Cell<u64> = const { Cell::new(0) };
}

/// This VM's linear memory in bytes (memory 0, in 64 KiB wasm pages).
fn linear_memory_bytes() -> u64 {
    u64::try_from(core::arch::wasm32::memory_size(0)).unwrap_or(0).saturating_mul(64 * 1024)
}

/// One per filter config (the downstream filter and the upstream filter each have theirs, in
/// the same VM).
pub struct Root {
    vm: Option<Rc<Vm>>,
}

impl Root {
    pub fn new() -> Self {
        Root { vm: None }
    }

    pub fn on_http_call_response(&mut self, token_id: u32, num_headers: usize, body_size: usize) {
        let Some(vm) = self.vm.clone() else { return };
        cron::on_response(&vm, &mut WasmHost, token_id, num_headers, body_size);
    }

    /// Parse the configuration into the VM's services: `None` (a rejection, logged) keeps the
    /// previous configuration, if any, out of use — Envoy refuses the update.
    pub fn on_configure(&mut self) -> Option<Rc<Vm>> {
        let mut host = WasmHost;
        let Some(bytes) = hostcalls::plugin_configuration() else {
            host.log(Level::Error, "model-workers: rejected configuration: the plugin configuration is empty");
            return None;
        };
        let Ok(text) = std::str::from_utf8(&bytes) else {
            host.log(Level::Error, "model-workers: rejected configuration: not UTF-8 text");
            return None;
        };
        let config = match Config::parse(text, &|name| std::env::var(name).ok()) {
            Ok(c) => c,
            Err(e) => {
                host.log(Level::Error, &format!("model-workers: rejected configuration: {e}"));
                return None;
            }
        };
        // Scheduled prompts go to each model cluster's callout twin (no upstream filter), so
        // a prompt's stream never runs this filter's attempt logic from inside the root's tick.
        host.log(
            Level::Info,
            &format!("model-workers: configured {} models, {} workers", config.models.len(), config.workers.len()),
        );
        let vm = Rc::new(Vm::new(config, &mut host));
        self.vm = Some(vm.clone());
        hostcalls::set_tick_period(TICK_MS);
        Some(vm)
    }

    pub fn on_tick(&mut self) {
        let Some(vm) = self.vm.clone() else { return };
        let mut host = WasmHost;
        hostcalls::refresh_log_level();
        VM_MEMORY_REPORTED.with(|r| vm.metrics.vm_memory(&mut host, r, linear_memory_bytes()));
        cron::tick(&vm, &mut host);
        for t in vm.take_due(host.now_ms()) {
            let Some(attempt) = t.attempt.upgrade() else { continue };
            if !hostcalls::set_effective_context(t.context_id) {
                continue;
            }
            // Decide under the borrow; resume after it (resuming may re-enter the context).
            let resume = match attempt.try_borrow_mut() {
                Ok(mut a) => a.on_timer(&mut host, t.kind),
                Err(_) => None,
            };
            match resume {
                Some(Resume::Request) => host.resume_request(),
                Some(Resume::Response) => host.resume_response(),
                None => true,
            };
        }
    }
}
