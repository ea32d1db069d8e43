//! Filter metrics via proxy-wasm. Envoy shows them in `/stats` as `wasmcustom.<name>` and in
//! `/stats/prometheus` as `<name>` with dots turned into underscores, summed across VMs.
//! Names follow Envoy's habit of `<scope>.<name>.<stat>`:
//!
//! | name | type | meaning |
//! |---|---|---|
//! | `model_workers.rq_total` | counter | requests the filter handled (any method) |
//! | `model_workers.rq_rejected` | counter | requests answered locally with a 4xx (bad input, unknown model) |
//! | `model_workers.worker.<w>.rq_total` | counter | requests naming worker `w` |
//! | `model_workers.worker.<w>.rq_success` | counter | … answered with 2xx/3xx |
//! | `model_workers.worker.<w>.rq_error` | counter | … answered with anything else |
//! | `model_workers.worker.<w>.fallbacks` | counter | … answered by another model than the first pick |
//! | `model_workers.worker.<w>.retries` | counter | extra attempts made for `w`'s requests |
//! | `model_workers.worker.<w>.latency_ms` | histogram | request start to response end |
//! | `model_workers.worker.<w>.cron_runs` | counter | scheduled prompts sent (one per fire time per process; workers with `cron` + `params.prompt` only) |
//! | `model_workers.worker.<w>.cron_failures` | counter | … that no model answered with a 2xx |
//! | `model_workers.model.<m>.attempts` | counter | attempts sent to model `m` |
//! | `model_workers.model.<m>.rq_2xx` … `rq_5xx` | counter | attempts by status class |
//! | `model_workers.model.<m>.rq_reset` | counter | connection failures / resets |
//! | `model_workers.model.<m>.rq_timeout` | counter | attempts past their timeout |
//! | `model_workers.model.<m>.rq_stream_error` | counter | 2xx streams whose first event was an error |
//! | `model_workers.model.<m>.cooldowns` | counter | times the breaker opened |
//! | `model_workers.model.<m>.ttfb_ms` | histogram | attempt start to response headers |
//! | `model_workers.model.<m>.in_flight` | gauge | `least_busy` models: attempts in flight, process-wide, as the shared table held it at its last write |
//! | `model_workers.model.<m>.ewma_ms` | gauge | `latency` models: the shared table's time-to-first-byte EWMA at its last write |
//! | `model_workers.vm.memory_bytes` | gauge | the linear memory of this filter's wasm VMs, summed over the process (main thread and every worker); each VM adds its growth from its root tick, off the request path. Wasm memory never shrinks, so this is each VM's high-water mark (a VM Envoy replaced after a crash stays counted) |
//!
//! `<w>` / `<m>` are the config names with characters other than `[A-Za-z0-9_-]` as `_`.
//!
//! The status document shows the counters too ([`Metrics::counts`]): Envoy keeps one stat per
//! name for the whole process (every VM that defines the name increments the same atomic), so
//! reading it back is the count of every worker thread, with no work per request beyond the
//! increments the stats already cost.

use std::cell::Cell;

use crate::config::{Config, ModelId, WorkerId};
use crate::failover::Outcome;
use crate::status::{Counters, Counts};

use super::host::{Host, MetricKind};
use super::state::ModelTable;

#[derive(Default)]
struct ModelIds {
    attempts: Option<u32>,
    rq_2xx: Option<u32>,
    rq_3xx: Option<u32>,
    rq_4xx: Option<u32>,
    rq_5xx: Option<u32>,
    rq_reset: Option<u32>,
    rq_timeout: Option<u32>,
    rq_stream_error: Option<u32>,
    cooldowns: Option<u32>,
    ttfb_ms: Option<u32>,
    in_flight: Option<u32>,
    ewma_ms: Option<u32>,
}

#[derive(Default)]
struct WorkerIds {
    rq_total: Option<u32>,
    rq_success: Option<u32>,
    rq_error: Option<u32>,
    fallbacks: Option<u32>,
    retries: Option<u32>,
    latency_ms: Option<u32>,
    cron_runs: Option<u32>,
    cron_failures: Option<u32>,
}

pub struct Metrics {
    rq_total: Option<u32>,
    rq_rejected: Option<u32>,
    vm_memory_bytes: Option<u32>,
    models: Vec<ModelIds>,
    workers: Vec<WorkerIds>,
}

pub fn sanitize(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' }).collect()
}

fn counter(host: &mut dyn Host, name: &str) -> Option<u32> {
    host.define_metric(MetricKind::Counter, name)
}

fn histogram(host: &mut dyn Host, name: &str) -> Option<u32> {
    host.define_metric(MetricKind::Histogram, name)
}

fn inc(host: &mut dyn Host, id: Option<u32>) {
    if let Some(id) = id {
        host.add_metric(id, 1);
    }
}

fn add(host: &mut dyn Host, id: Option<u32>, n: u32) {
    if let (Some(id), true) = (id, n > 0) {
        host.add_metric(id, i64::from(n));
    }
}

fn record(host: &mut dyn Host, id: Option<u32>, v: u64) {
    if let Some(id) = id {
        host.record_metric(id, v);
    }
}

impl Metrics {
    pub fn define(config: &Config, table: &ModelTable, host: &mut dyn Host) -> Metrics {
        let models = config
            .models
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let p = format!("model_workers.model.{}", sanitize(&m.name));
                let tracked = table.tracked(ModelId(i as u32));
                let gauge = |host: &mut dyn Host, on: bool, stat: &str| {
                    if on {
                        host.define_metric(MetricKind::Gauge, &format!("{p}.{stat}"))
                    } else {
                        None
                    }
                };
                ModelIds {
                    attempts: counter(host, &format!("{p}.attempts")),
                    rq_2xx: counter(host, &format!("{p}.rq_2xx")),
                    rq_3xx: counter(host, &format!("{p}.rq_3xx")),
                    rq_4xx: counter(host, &format!("{p}.rq_4xx")),
                    rq_5xx: counter(host, &format!("{p}.rq_5xx")),
                    rq_reset: counter(host, &format!("{p}.rq_reset")),
                    rq_timeout: counter(host, &format!("{p}.rq_timeout")),
                    rq_stream_error: counter(host, &format!("{p}.rq_stream_error")),
                    cooldowns: counter(host, &format!("{p}.cooldowns")),
                    ttfb_ms: histogram(host, &format!("{p}.ttfb_ms")),
                    in_flight: gauge(host, tracked.in_flight, "in_flight"),
                    ewma_ms: gauge(host, tracked.latency, "ewma_ms"),
                }
            })
            .collect();
        let workers = config
            .workers
            .iter()
            .map(|w| {
                let p = format!("model_workers.worker.{}", sanitize(&w.name));
                let cron = matches!(w.cron, crate::config::Cron::Prompt(_));
                WorkerIds {
                    cron_runs: if cron { counter(host, &format!("{p}.cron_runs")) } else { None },
                    cron_failures: if cron { counter(host, &format!("{p}.cron_failures")) } else { None },
                    rq_total: counter(host, &format!("{p}.rq_total")),
                    rq_success: counter(host, &format!("{p}.rq_success")),
                    rq_error: counter(host, &format!("{p}.rq_error")),
                    fallbacks: counter(host, &format!("{p}.fallbacks")),
                    retries: counter(host, &format!("{p}.retries")),
                    latency_ms: histogram(host, &format!("{p}.latency_ms")),
                }
            })
            .collect();
        Metrics {
            rq_total: counter(host, "model_workers.rq_total"),
            rq_rejected: counter(host, "model_workers.rq_rejected"),
            vm_memory_bytes: host.define_metric(MetricKind::Gauge, "model_workers.vm.memory_bytes"),
            models,
            workers,
        }
    }

    /// Every counter's value now (one host call each; the status request only).
    pub fn counts(&self, host: &dyn Host) -> Counts {
        let read = |list: &[(&'static str, Option<u32>)]| -> Counters {
            list.iter().filter_map(|(k, id)| id.map(|id| (*k, host.metric_value(id)))).collect()
        };
        Counts {
            filter: read(&[("rq_total", self.rq_total), ("rq_rejected", self.rq_rejected)]),
            workers: self
                .workers
                .iter()
                .map(|w| {
                    read(&[
                        ("rq_total", w.rq_total),
                        ("rq_success", w.rq_success),
                        ("rq_error", w.rq_error),
                        ("fallbacks", w.fallbacks),
                        ("retries", w.retries),
                        ("cron_runs", w.cron_runs),
                        ("cron_failures", w.cron_failures),
                    ])
                })
                .collect(),
            models: self
                .models
                .iter()
                .map(|m| {
                    read(&[
                        ("attempts", m.attempts),
                        ("rq_2xx", m.rq_2xx),
                        ("rq_3xx", m.rq_3xx),
                        ("rq_4xx", m.rq_4xx),
                        ("rq_5xx", m.rq_5xx),
                        ("rq_reset", m.rq_reset),
                        ("rq_timeout", m.rq_timeout),
                        ("rq_stream_error", m.rq_stream_error),
                        ("cooldowns", m.cooldowns),
                    ])
                })
                .collect(),
        }
    }

    fn model(&self, m: ModelId) -> Option<&ModelIds> {
        self.models.get(m.0 as usize)
    }

    fn worker(&self, w: WorkerId) -> Option<&WorkerIds> {
        self.workers.get(w.0 as usize)
    }

    pub fn request(&self, host: &mut dyn Host) {
        inc(host, self.rq_total);
    }

    pub fn rejected(&self, host: &mut dyn Host) {
        inc(host, self.rq_rejected);
    }

    /// This VM's linear memory is `bytes` now (the root's tick); `reported` is what the VM has
    /// added to the process-wide gauge so far — one per VM, shared by all its root contexts, so
    /// that the gauge is the sum over VMs. Adds the growth (a host call only when it grew).
    pub fn vm_memory(&self, host: &mut dyn Host, reported: &Cell<u64>, bytes: u64) {
        let (Some(id), before) = (self.vm_memory_bytes, reported.get()) else { return };
        if bytes > before {
            host.add_metric(id, i64::try_from(bytes - before).unwrap_or(i64::MAX));
            reported.set(bytes);
        }
    }

    /// One attempt on `m` ended with `outcome` after `ttfb_ms`.
    pub fn attempt(&self, host: &mut dyn Host, m: ModelId, outcome: Outcome, ttfb_ms: u64) {
        let Some(ids) = self.model(m) else { return };
        inc(host, ids.attempts);
        let class = match outcome {
            Outcome::Status(s) => match s / 100 {
                2 => ids.rq_2xx,
                3 => ids.rq_3xx,
                4 => ids.rq_4xx,
                _ => ids.rq_5xx,
            },
            Outcome::Reset => ids.rq_reset,
            Outcome::Timeout => ids.rq_timeout,
            Outcome::StreamError => ids.rq_stream_error,
        };
        inc(host, class);
        if let Outcome::Status(_) | Outcome::StreamError = outcome {
            record(host, ids.ttfb_ms, ttfb_ms);
        }
    }

    /// The shared table's state of `m` after a write (gauges of tracked models).
    pub fn model_state(&self, host: &mut dyn Host, m: ModelId, in_flight: Option<u32>, ewma_ms: Option<u32>) {
        let Some(ids) = self.model(m) else { return };
        if let Some(n) = in_flight {
            record(host, ids.in_flight, u64::from(n));
        }
        if let Some(ms) = ewma_ms {
            record(host, ids.ewma_ms, u64::from(ms));
        }
    }

    pub fn cooldown_opened(&self, host: &mut dyn Host, m: ModelId) {
        if let Some(ids) = self.model(m) {
            inc(host, ids.cooldowns);
        }
    }

    /// A scheduled prompt of `w` was sent.
    pub fn cron_run(&self, host: &mut dyn Host, w: WorkerId) {
        if let Some(ids) = self.worker(w) {
            inc(host, ids.cron_runs);
        }
    }

    /// A scheduled prompt of `w` got no 2xx from any model.
    pub fn cron_failure(&self, host: &mut dyn Host, w: WorkerId) {
        if let Some(ids) = self.worker(w) {
            inc(host, ids.cron_failures);
        }
    }

    pub fn worker_request(&self, host: &mut dyn Host, w: WorkerId) {
        if let Some(ids) = self.worker(w) {
            inc(host, ids.rq_total);
        }
    }

    /// A worker request finished: final status, attempts made, whether the answering model
    /// was not the first pick, total latency.
    pub fn worker_done(
        &self,
        host: &mut dyn Host,
        w: WorkerId,
        status: u16,
        attempts: u32,
        fell_back: bool,
        latency_ms: u64,
    ) {
        let Some(ids) = self.worker(w) else { return };
        inc(host, if (200..400).contains(&status) { ids.rq_success } else { ids.rq_error });
        add(host, ids.retries, attempts.saturating_sub(1));
        if fell_back {
            inc(host, ids.fallbacks);
        }
        record(host, ids.latency_ms, latency_ms);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::cell::Cell;

    use super::Metrics;
    use crate::config::Config;
    use crate::filter::fake::FakeHost;
    use crate::filter::state::ModelTable;

    const CFG: &str = "models:\n  - from: openai:gpt-a\n    name: a\n    params: { cluster: ca }\n";

    #[test]
    fn vm_memory_gauge_is_the_sum_of_each_vms_growth() {
        let config = Config::parse(CFG, &|_| None).unwrap();
        let table = ModelTable::new(&config);
        let mut host = FakeHost::new();
        // Two root contexts in one VM (downstream and upstream plugin) share its `reported`.
        let (root1, root2) = (Metrics::define(&config, &table, &mut host), Metrics::define(&config, &table, &mut host));
        let vm = Cell::new(0);
        let gauge = |h: &FakeHost| h.metrics.get("model_workers.vm.memory_bytes").copied();
        root1.vm_memory(&mut host, &vm, 17 << 16);
        assert_eq!(gauge(&host), Some(17 << 16));
        root2.vm_memory(&mut host, &vm, 17 << 16);
        root1.vm_memory(&mut host, &vm, 17 << 16);
        assert_eq!(gauge(&host), Some(17 << 16), "no growth, no change: each VM counted once");
        root2.vm_memory(&mut host, &vm, 160 << 16);
        assert_eq!(gauge(&host), Some(160 << 16));
        // A second VM (another worker thread) adds its own.
        let other = Cell::new(0);
        root1.vm_memory(&mut host, &other, 20 << 16);
        assert_eq!(gauge(&host), Some(180 << 16));
        assert!(host
            .metric_names
            .iter()
            .any(|(k, n)| *k == super::MetricKind::Gauge && n == "model_workers.vm.memory_bytes"));
    }
}
