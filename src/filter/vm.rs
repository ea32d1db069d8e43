//! What one VM (one Envoy worker thread) shares between its requests: the configuration, the
//! metrics, the shared per-model table, the request random source, the VM-local ticket
//! fallback, the timers of upstream attempts (backoff, first-event deadline) that the root
//! fires from its tick, and the scheduled prompts.

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};

use crate::config::Config;
use crate::counter::LocalTickets;
use crate::request;

use super::cron::Jobs;
use super::host::Host;
use super::metrics::Metrics;
use super::state::ModelTable;
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
    pub models: ModelTable,
    /// xorshift64* state: random bits for least-busy's two choices (seeded from the OS per
    /// VM; tests set it).
    pub rng: Cell<u64>,
    pub local_tickets: RefCell<LocalTickets>,
    pub timers: RefCell<Vec<Timer>>,
    /// The scheduled prompts (fired from the root's tick).
    pub cron: Jobs,
}

impl Vm {
    pub fn new(config: Config, host: &mut dyn Host) -> Vm {
        let models = ModelTable::new(&config);
        Vm {
            models_json: request::models_list_json(&config),
            metrics: Metrics::define(&config, &models, host),
            models,
            rng: Cell::new(seed()),
            cron: Jobs::new(&config, host),
            config: Rc::new(config),
            local_tickets: RefCell::new(LocalTickets::default()),
            timers: RefCell::new(Vec::new()),
        }
    }

    /// 64 random bits (xorshift64*: a few ns, no host call per request).
    pub fn random(&self) -> u64 {
        let mut x = self.rng.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng.set(x);
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
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

/// A non-zero seed from the OS (WASI `random_get` in the VM); a fixed one should it fail.
fn seed() -> u64 {
    let mut b = [0u8; 8];
    let s = if getrandom::fill(&mut b).is_ok() { u64::from_le_bytes(b) } else { 0 };
    if s == 0 {
        0x9e37_79b9_7f4a_7c15
    } else {
        s
    }
}
