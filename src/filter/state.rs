//! Process-wide state in proxy-wasm shared data (one store per Envoy process and `vm_id`,
//! seen by every worker thread's VM).

use crate::counter::{self, LocalTickets, Tickets};

use super::host;

/// Lost CAS races before a request falls back to this VM's local counter.
const MAX_CAS_TRIES: u32 = 64;

/// Tickets from a CAS-incremented shared-data counter; the VM-local counter is the fallback
/// should the host refuse (never observed; a request must still be served).
pub struct SharedTickets<'a> {
    pub fallback: &'a mut LocalTickets,
}

impl Tickets for SharedTickets<'_> {
    fn next(&mut self, key: &str) -> u64 {
        counter::cas_increment(
            || host::shared_get(key),
            |v, cas| host::shared_set(key, v, cas),
            MAX_CAS_TRIES,
        )
        .unwrap_or_else(|| self.fallback.next(key))
    }
}
