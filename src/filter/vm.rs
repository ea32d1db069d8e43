//! What one VM (one Envoy worker thread) shares between its requests: the configuration, the
//! metrics, the breaker table's key, the VM-local ticket fallback, and the timers of upstream
//! attempts (backoff, first-event deadline) that the root fires from its tick, and the
//! scheduled prompts.

use std::cell::RefCell;
use std::rc::{Rc, Weak};

use crate::config::Config;
use crate::counter::LocalTickets;
use crate::request;

use super::cron::Jobs;
use super::host::Host;
use super::metrics::Metrics;
use super::state::Breakers;
use super::upstream::Upstream;

/// Timer resolution: backoff and first-event deadlines fire within this many ms of due time.
pub const TICK_MS: u64 = 20;

/// What a timer does when it fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerKind {
    /// A same-model retry's backoff is over.
    BackoffDone,
    /// A stream attempt's model timeout: no first event yet.
    FirstEventDeadline,
}

pub struct Timer {
    pub due_ms: u64,
    pub context_id: u32,
    pub kind: TimerKind,
    pub attempt: Weak<RefCell<Upstream>>,
}

pub struct Vm {
    pub config: Rc<Config>,
    pub models_json: String,
    pub metrics: Metrics,
    pub breakers: Breakers,
    pub local_tickets: RefCell<LocalTickets>,
    pub timers: RefCell<Vec<Timer>>,
    /// The scheduled prompts (fired from the root's tick).
    pub cron: Jobs,
}

impl Vm {
    pub fn new(config: Config, host: &mut dyn Host) -> Vm {
        Vm {
            models_json: request::models_list_json(&config),
            metrics: Metrics::define(&config, host),
            breakers: Breakers::new(&config),
            cron: Jobs::new(&config, host),
            config: Rc::new(config),
            local_tickets: RefCell::new(LocalTickets::default()),
            timers: RefCell::new(Vec::new()),
        }
    }

    pub fn schedule(&self, due_ms: u64, context_id: u32, kind: TimerKind, attempt: Weak<RefCell<Upstream>>) {
        self.timers.borrow_mut().push(Timer { due_ms, context_id, kind, attempt });
    }

    /// Remove and return the timers due at `now_ms` (and forget those whose attempt is gone).
    pub fn take_due(&self, now_ms: u64) -> Vec<Timer> {
        let mut timers = self.timers.borrow_mut();
        if timers.is_empty() {
            return Vec::new();
        }
        timers.retain(|t| t.attempt.strong_count() > 0);
        let (due, keep): (Vec<Timer>, Vec<Timer>) = timers.drain(..).partition(|t| t.due_ms <= now_ms);
        *timers = keep;
        due
    }
}
