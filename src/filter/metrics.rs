//! Filter metrics (proxy-wasm counters; `/stats/prometheus` shows them without the
//! `wasmcustom.` prefix, summed across VMs). Placeholder until the metrics issue lands.

pub struct Metrics;

impl Metrics {
    pub fn new() -> Self {
        Metrics
    }
}
