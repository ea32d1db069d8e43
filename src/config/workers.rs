//! Workers: routing entries → a validated [`Policy`] value. The strategy is inferred from the
//! entries' fields, as in Spice, plus the `load_balance` extensions:
//!
//! | entries | `strategy` | policy |
//! |---|---|---|
//! | all plain `from` | — | round robin |
//! | all `order` | — | fallback |
//! | all `weight` | — | weighted |
//! | all `priority` (inside each tier: all `weight` or none) | — | priority tiers |
//! | all plain `from` | `cost` | cost (every model needs `params.cost`) |
//! | all plain `from` | `latency` | lowest latency (`explore`: share of requests to the others) |
//! | all plain `from` | `least_busy` | least busy (power of two choices on in-flight attempts) |
//!
//! Any other mix is an error naming the worker. `sticky` goes on top of round robin,
//! weighted and priority workers.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::build::check_name;
use super::wire::{self, Scalar, Value};
use super::{ConfigError, Cron, Model, ModelId, Scheduled, Target, Worker};
use crate::cron::Schedule;
use crate::policy::{Explore, Latency, LeastBusy, Policy, Source, Sticky};

use super::strategy::{cost, explore, inferred, plain_only, Base};

/// Where sticky workers read their session keys, collected over all workers (each once).
#[derive(Debug, Default)]
pub(super) struct SessionInputs {
    pub fields: Vec<String>,
    pub headers: Vec<String>,
    /// `model_workers.routing_header`: the filter's own, never a session key.
    pub routing_header: String,
}

impl SessionInputs {
    fn add(&mut self, source: &Source) {
        let (list, name) = match source {
            Source::Body(f) => (&mut self.fields, f),
            Source::Header(h) => (&mut self.headers, h),
        };
        if !list.contains(name) {
            list.push(name.clone());
        }
    }
}

/// A model's `params.cost`: a non-negative number (e.g. its price per 1M tokens), read by
/// cost workers.
pub(super) fn model_cost(params: &BTreeMap<String, Value>) -> Result<Option<f64>, String> {
    let bad = |v: String| format!("param `cost` must be a non-negative number (e.g. the price per 1M tokens), got {v}");
    let c = match params.get("cost") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Scalar(Scalar::Int(i))) => *i as f64,
        Some(Value::Scalar(Scalar::Float(f))) => *f,
        Some(Value::Scalar(Scalar::Str(s))) if !s.contains("${") => {
            s.trim().parse::<f64>().map_err(|_| bad(format!("{s:?}")))?
        }
        Some(Value::Scalar(s)) => return Err(bad(s.describe())),
        Some(_) => return Err(bad("a list or map".into())),
    };
    if !c.is_finite() || c < 0.0 {
        return Err(bad(c.to_string()));
    }
    Ok(Some(c))
}

pub(super) fn build_worker(
    w: wire::Worker,
    names: &HashMap<String, Target>,
    models: &[Model],
    costs: &[Option<f64>],
    sessions: &mut SessionInputs,
) -> Result<Worker, ConfigError> {
    let name = w.name.clone();
    let fail = |rule: String| ConfigError::Worker { worker: name.clone(), rule };
    check_name(&w.name).map_err(fail)?;

    if w.sql.is_some() {
        return Err(fail("`sql` actions run queries inside a Spice runtime and can never run in a proxy; remove the worker or run it in Spice".into()));
    }
    if let Some(key) = w.params.keys().find(|k| k.as_str() != "prompt") {
        return Err(fail(format!("unknown worker param `{key}` (a worker takes `params.prompt`, with `cron`)")));
    }
    let cron = scheduled(w.cron.as_deref(), w.params.get("prompt")).map_err(fail)?;
    match w.kind.as_deref() {
        None | Some("load_balance") => {}
        Some(other) => return Err(fail(format!("type `{other}` is not supported (only `load_balance`)"))),
    }
    let Some(lb) = w.load_balance else {
        return Err(fail("missing `load_balance.routing`".into()));
    };
    if lb.routing.is_empty() {
        return Err(fail("`load_balance.routing` is empty (list at least one model)".into()));
    }
    let counter_key = counter_key(&w.name, &lb);

    let mut seen: BTreeMap<ModelId, ()> = BTreeMap::new();
    let mut entries = Vec::with_capacity(lb.routing.len());
    for r in &lb.routing {
        let id = match names.get(&r.from) {
            Some(Target::Model(id)) => *id,
            Some(Target::Worker(_)) => {
                return Err(fail(format!("routes to `{}`, which is a worker; workers route to models only", r.from)))
            }
            None => return Err(fail(format!("routes to unknown model `{}` (not in `models:`)", r.from))),
        };
        if seen.insert(id, ()).is_some() {
            return Err(fail(format!("lists model `{}` twice (use `weight` to give it a larger share)", r.from)));
        }
        entries.push((id, r));
    }

    if lb.explore.is_some() && lb.strategy.as_deref() != Some("latency") {
        return Err(fail("`load_balance.explore` belongs to `strategy: latency`".into()));
    }
    let base = match lb.strategy.as_deref() {
        None => inferred(&entries).map_err(fail)?,
        Some("cost") => Base::Cost(cost(&entries, costs).map_err(fail)?),
        Some(s @ ("latency" | "least_busy")) => {
            plain_only(&entries, s).map_err(fail)?;
            let models = entries.iter().map(|(id, _)| *id).collect();
            if s == "latency" {
                let explore = match &lb.explore {
                    None => Explore::DEFAULT,
                    Some(e) => explore(e).map_err(fail)?,
                };
                Base::Latency(Latency::new(models, explore))
            } else {
                Base::LeastBusy(LeastBusy::new(models))
            }
        }
        Some(other) => {
            return Err(fail(format!(
                "unknown `load_balance.strategy` {other:?}: the explicit strategies are `cost`, `latency` and `least_busy`; round robin, fallback, weighted and priority are inferred from the routing entries"
            )))
        }
    };
    let policy: Arc<dyn Policy> = match lb.sticky {
        None => base.into_policy(),
        Some(s) => {
            let source = sticky_source(s).map_err(fail)?;
            if source == Source::Header(sessions.routing_header.clone()) {
                return Err(fail(format!(
                    "`sticky.header` {:?} is the routing header (`model_workers.routing_header`), which belongs to the filter",
                    sessions.routing_header
                )));
            }
            let groups = base.rendezvous_groups(models).map_err(fail)?;
            sessions.add(&source);
            Arc::new(Sticky::new(source, base.into_policy(), groups))
        }
    };

    Ok(Worker { counter_key, cron, name: w.name, description: w.description, policy })
}

/// The shared-data key of a worker's ticket counter: its name and a fingerprint of its routing
/// (FNV-1a 64 of `load_balance` as written: each route's `from`, `order`, `weight`,
/// `priority`, in order, then `strategy` and `sticky`). A configuration reload that leaves the
/// worker's routing as it was keeps the very same counter, so its rotation goes on exactly where
/// it was; a changed worker starts a fresh one (the old count would skew its new ratios).
pub fn counter_key(worker: &str, lb: &wire::LoadBalance) -> String {
    let mut canonical = String::new();
    for r in &lb.routing {
        let weight = r.weight.as_ref().map(Scalar::describe);
        canonical.push_str(&format!("{}\0{:?}\0{weight:?}\0{:?}\n", r.from, r.order, r.priority));
    }
    canonical.push_str(&format!("{:?}\0{:?}", lb.strategy, lb.sticky));
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in canonical.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("model_workers.tickets.{worker}.{h:016x}")
}

/// A worker's `cron` and `params.prompt`, as Spice reads them: `cron` with a prompt sends it on
/// the schedule; `cron` alone is accepted and inactive; a prompt alone is ignored (Spice:
/// "valid only … with a cron schedule, otherwise ignored"). Both are reported at configure.
fn scheduled(cron: Option<&str>, prompt: Option<&Value>) -> Result<Cron, String> {
    let Some(expr) = cron else {
        return Ok(if prompt.is_some() { Cron::PromptIgnored } else { Cron::None });
    };
    let schedule = Schedule::parse(expr).map_err(|e| format!("cron {expr:?} {e}"))?;
    let prompt = match prompt {
        None | Some(Value::Null) => None,
        Some(Value::Scalar(Scalar::Str(p))) if p.trim().is_empty() => {
            return Err("`params.prompt` is empty; write the prompt to send on the schedule, or remove it (then `cron` is inactive)".into())
        }
        Some(Value::Scalar(Scalar::Str(p))) => Some(p.clone()),
        Some(Value::Scalar(other)) => {
            return Err(format!("`params.prompt` must be a string (the prompt to send), got {}", other.describe()))
        }
        Some(_) => return Err("`params.prompt` must be a string (the prompt to send), got a list or map".into()),
    };
    Ok(match prompt {
        Some(prompt) => Cron::Prompt(Scheduled { expr: expr.trim().to_string(), schedule, prompt }),
        None => Cron::Inactive(expr.trim().to_string()),
    })
}

pub(super) type Entry<'a> = (ModelId, &'a wire::Route);

fn sticky_source(s: wire::Sticky) -> Result<Source, String> {
    match (s.header, s.body) {
        (Some(_), Some(_)) => Err("`sticky` takes one key source: `header` or `body`, not both".into()),
        (Some(h), None) => {
            let h = h.trim().to_ascii_lowercase();
            let token =
                !h.is_empty() && h.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
            if !token {
                return Err(format!("`sticky.header` {h:?} must be a plain header name such as x-session-id"));
            }
            if h.starts_with("x-model-workers-") || h.starts_with("x-envoy-") {
                return Err(format!("`sticky.header` {h:?}: `x-model-workers-*` and `x-envoy-*` request headers belong to the filter and Envoy (they are removed); use the client's own session header"));
            }
            Ok(Source::Header(h))
        }
        (None, Some(b)) => {
            if b.is_empty() || b.len() > 256 || b.chars().any(char::is_control) {
                return Err(format!(
                    "`sticky.body` {b:?} must name a top-level member of the request body, such as user"
                ));
            }
            if b == "model" || b == "stream" {
                return Err(format!("`sticky.body` `{b}` cannot identify a session; use a member such as user"));
            }
            Ok(Source::Body(b))
        }
        (None, None) => Ok(Source::Body("user".into())),
    }
}
