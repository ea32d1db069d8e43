//! What the Envoy config needs from a validated [`Config`]: one cluster per distinct model
//! cluster name with its address, the route's cluster map, the retry policy's numbers and the
//! secret names. Pure data; [`super::render`] writes it out.

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::GenerateError;
use crate::config::{Config, Model, Provider};

/// Added to `max_body_bytes` for the listener's and the clusters' buffer limits: the router
/// keeps the (rewritten) body for retries, plus headers and framing.
pub const BUFFER_HEADROOM_BYTES: u64 = 1024 * 1024;

/// Where a cluster's connections go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    pub host: String,
    pub port: u16,
    pub tls: bool,
}

impl Address {
    /// IP literals need no DNS: `STATIC`. Otherwise TLS → `LOGICAL_DNS` (one connection target,
    /// re-resolved, as Envoy advises for large web services), plain → `STRICT_DNS` (every
    /// address the name resolves to, as for a service name in a cluster network).
    pub fn kind(&self) -> &'static str {
        if self.is_ip() {
            "STATIC"
        } else if self.tls {
            "LOGICAL_DNS"
        } else {
            "STRICT_DNS"
        }
    }

    pub fn is_ip(&self) -> bool {
        self.host.parse::<IpAddr>().is_ok()
    }

    /// `https://host:port` (brackets around an IPv6 host), for messages.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        if self.host.contains(':') {
            format!("{scheme}://[{}]:{}", self.host, self.port)
        } else {
            format!("{scheme}://{}:{}", self.host, self.port)
        }
    }
}

/// Where a cluster's address came from (for the comment above it in the output).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `Options::cluster_addrs` (`--cluster NAME=HOST:PORT`).
    Override,
    /// A model's `endpoint` param.
    Endpoint,
    /// The provider's public API (a model on its provider's default cluster, no `endpoint`).
    Public,
}

#[derive(Debug, Clone)]
pub struct ClusterPlan {
    pub name: String,
    pub address: Address,
    pub source: Source,
    /// The models this cluster serves, in config order.
    pub models: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Plan {
    /// `(model name, cluster name)` in config order: the route's matcher map.
    pub routes: Vec<(String, String)>,
    pub clusters: Vec<ClusterPlan>,
    /// The largest number of attempts any request can have, minus 1.
    pub num_retries: u32,
    /// The largest model `timeout`.
    pub per_try_timeout_ms: u64,
    pub routing_header: String,
    pub max_body_bytes: u64,
    /// Listener and cluster `per_connection_buffer_limit_bytes`.
    pub buffer_limit_bytes: u64,
    /// Some worker sends scheduled prompts: every model cluster gets a callout twin.
    pub callouts: bool,
}

/// The address a model asks for: its `endpoint` (for a model on its provider's own cluster
/// without one, the config gives it the provider's public API).
fn model_address(m: &Model) -> Option<(Address, Source)> {
    let e = m.endpoint.as_ref()?;
    let public = m.cluster == m.provider.prefix()
        && m.provider.public_base_url().is_some_and(|u| u.trim_start_matches("https://").starts_with(e.host.as_str()));
    let source = if public { Source::Public } else { Source::Endpoint };
    Some((Address { host: e.host.clone(), port: e.port, tls: e.tls }, source))
}

pub fn plan(config: &Config, overrides: &BTreeMap<String, (String, u16)>) -> Result<Plan, GenerateError> {
    for name in overrides.keys() {
        if !config.models.iter().any(|m| &m.cluster == name) {
            return Err(GenerateError::UnknownCluster(name.clone()));
        }
    }

    // Distinct cluster names in order of first use.
    let mut names: Vec<&str> = Vec::new();
    for m in &config.models {
        if !names.contains(&m.cluster.as_str()) {
            names.push(&m.cluster);
        }
    }

    let mut clusters = Vec::with_capacity(names.len());
    for name in names {
        let members: Vec<&Model> = config.models.iter().filter(|m| m.cluster == name).collect();
        let models = members.iter().map(|m| m.name.clone()).collect();
        if let Some((host, port)) = overrides.get(name) {
            let address = Address { host: host.clone(), port: *port, tls: false };
            clusters.push(ClusterPlan { name: name.to_string(), address, source: Source::Override, models });
            continue;
        }
        let mut chosen: Option<(Address, Source, &Model)> = None;
        for m in &members {
            let Some((address, source)) = model_address(m) else { continue };
            match &chosen {
                None => chosen = Some((address, source, m)),
                Some((first, _, first_model)) if *first != address => {
                    return Err(GenerateError::ConflictingEndpoints {
                        cluster: name.to_string(),
                        first: (first_model.name.clone(), first.url()),
                        second: (m.name.clone(), address.url()),
                    });
                }
                Some(_) => {}
            }
        }
        match chosen {
            Some((address, source, _)) => {
                clusters.push(ClusterPlan { name: name.to_string(), address, source, models });
            }
            None => {
                // The first model names the problem (there is one: the name came from a model).
                let first = members.first();
                let model = first.map_or_else(String::new, |m| m.name.clone());
                let azure_default = first.is_some_and(|m| m.provider == Provider::Azure && name == m.provider.prefix());
                return Err(if azure_default {
                    GenerateError::NeedsEndpoint { model }
                } else {
                    GenerateError::NoAddress { model, cluster: name.to_string() }
                });
            }
        }
    }

    let max_body_bytes = u64::try_from(config.settings.max_body_bytes).unwrap_or(u64::MAX);
    Ok(Plan {
        routes: config.models.iter().map(|m| (m.name.clone(), m.cluster.clone())).collect(),
        clusters,
        num_retries: max_attempts(config).saturating_sub(1),
        per_try_timeout_ms: config.models.iter().map(|m| m.retry.timeout_ms).max().unwrap_or(0),
        routing_header: config.settings.routing_header.clone(),
        max_body_bytes,
        buffer_limit_bytes: max_body_bytes.saturating_add(BUFFER_HEADROOM_BYTES),
        callouts: config.workers.iter().any(|w| matches!(w.cron, crate::config::Cron::Prompt(_))),
    })
}

/// The largest number of attempts a request can have: a model contributes `1 + max_retries`,
/// a worker's chain is all its models, both capped by `model_workers.max_attempts`.
pub fn max_attempts(config: &Config) -> u32 {
    let attempts = |m: &Model| 1u32.saturating_add(m.retry.max_retries);
    let cap = |n: u32| config.settings.max_attempts.map_or(n, |c| n.min(c));
    let plain = config.models.iter().map(|m| cap(attempts(m)));
    let workers = config.workers.iter().map(|w| {
        cap(w.policy.models().into_iter().filter_map(|id| config.model(id)).map(attempts).fold(0, u32::saturating_add))
    });
    plain.chain(workers).max().unwrap_or(1)
}
