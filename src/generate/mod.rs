//! Spice file → complete Envoy bootstrap (native only: the `model-workers` CLI and tests).
//!
//! [`bootstrap`] parses the file with the filter's own parser ([`Config::parse`]), so a file it
//! accepts is one the filter accepts, then writes the Envoy plumbing of the native failover
//! contract: the downstream filter, a route whose matcher picks the cluster from the filter
//! state key `model_workers.next`, a retry policy sized for the largest attempt plan, and one
//! cluster per model cluster name carrying the same filter as an upstream filter. Secrets are
//! never needed: parsing uses a placeholder for every `${ secrets:NAME }` and records the names
//! for `host_env_keys`. [`check`] is exactly `on_configure`'s accept/reject.

pub mod admin;
mod plan;
mod render;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use crate::config::{Config, ConfigError};

pub use plan::BUFFER_HEADROOM_BYTES;
pub use render::{cds_version, CDS_FILE, ECDS_FILE, FILTER_NAME, RDS_FILE};

/// How the bootstrap is generated. `Default` is a real deployment's starting point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Listener address (an IP literal), default `("0.0.0.0", 10000)`.
    pub listen: (String, u16),
    /// Admin address (an IP literal), default `Some(("127.0.0.1", 9901))`; `None`: no admin.
    pub admin: Option<(String, u16)>,
    /// Path of `model_workers.wasm` in Envoy's filesystem.
    pub wasm: String,
    /// Cluster name → plain-HTTP address, overriding what the models say (local servers, tests).
    pub cluster_addrs: BTreeMap<String, (String, u16)>,
    /// Written as `vm_config.environment_variables.key_values` (tests and demos only). Secrets the
    /// configuration references and this list does not hold go to `host_env_keys`.
    pub env: Vec<(String, String)>,
    /// Envoy's `stats_flush_interval`; `None`: Envoy's default (5s).
    pub stats_flush_interval_ms: Option<u64>,
    /// Live reload: the directory (in Envoy's filesystem) of the ECDS, RDS and CDS files that
    /// `model-workers apply` writes; the bootstrap then loads the filter's config, the route and
    /// the clusters from there. `None`: everything inline in the bootstrap.
    pub xds_dir: Option<String>,
}

/// Where the release module is installed in the images and manifests of this project.
pub const DEFAULT_WASM_PATH: &str = "/etc/envoy/model_workers.wasm";

impl Default for Options {
    fn default() -> Self {
        Options {
            listen: ("0.0.0.0".to_string(), 10000),
            admin: Some(("127.0.0.1".to_string(), 9901)),
            wasm: DEFAULT_WASM_PATH.to_string(),
            cluster_addrs: BTreeMap::new(),
            env: Vec::new(),
            stats_flush_interval_ms: None,
            xds_dir: None,
        }
    }
}

/// Why no bootstrap could be generated. `Display` is one line without the program name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GenerateError {
    /// The filter would reject the configuration (`Display`: the filter's own log line, after
    /// `model-workers: `).
    Config(ConfigError),
    /// No model on this cluster says where it is.
    NoAddress { model: String, cluster: String },
    /// An Azure model on the default `azure` cluster without an `endpoint`: Azure has no public
    /// endpoint, every resource has its own host.
    NeedsEndpoint { model: String },
    /// Two models on one cluster name ask for different addresses: `(model, address)` each.
    ConflictingEndpoints { cluster: String, first: (String, String), second: (String, String) },
    /// An override (`--cluster NAME=…`) for a cluster no model uses (a typo, most likely).
    UnknownCluster(String),
    /// An option Envoy would refuse (e.g. a listener address that is not an IP).
    Options(String),
}

impl fmt::Display for GenerateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GenerateError::Config(e) => write!(f, "{} {e}", REJECTED.trim_start_matches("model-workers: ")),
            GenerateError::NoAddress { model, cluster } => write!(
                f,
                "model `{model}`: cluster `{cluster}` has no address: give the model an `endpoint` or pass --cluster {cluster}=HOST:PORT"
            ),
            GenerateError::NeedsEndpoint { model } => write!(
                f,
                "model `{model}`: azure has no public endpoint: give the model an `endpoint` (https://RESOURCE.openai.azure.com/…) or pass --cluster azure=HOST:PORT"
            ),
            GenerateError::ConflictingEndpoints { cluster, first, second } => write!(
                f,
                "cluster `{cluster}`: model `{}` goes to {} but model `{}` to {}; give one of them another `cluster` param",
                first.0, first.1, second.0, second.1
            ),
            GenerateError::UnknownCluster(c) => {
                write!(f, "--cluster {c}=…: no model uses cluster `{c}` (a model's cluster is its `cluster` param, else its provider)")
            }
            GenerateError::Options(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for GenerateError {}

impl From<ConfigError> for GenerateError {
    fn from(e: ConfigError) -> Self {
        GenerateError::Config(e)
    }
}

/// What the secret placeholder resolves to while generating (never reaches the output).
const PLACEHOLDER: &str = "model-workers-placeholder";

/// The whole Envoy bootstrap (YAML) for a Spice file. With [`Options::xds_dir`], the bootstrap
/// for live reload (the files themselves come from [`xds`]).
pub fn bootstrap(config_text: &str, opts: &Options) -> Result<String, GenerateError> {
    let (_, plan, host_env_keys) = prepare(config_text, opts)?;
    Ok(render::render(&plan, config_text, opts, &host_env_keys))
}

/// The three files of live reload, for [`Options::xds_dir`] (`opts.xds_dir` itself is where
/// Envoy will read them; `None` is taken as `.`).
#[derive(Debug, Clone)]
pub struct Xds {
    /// The filter's config: one `TypedExtensionConfig` named [`FILTER_NAME`].
    pub ecds: String,
    /// The route configuration named [`FILTER_NAME`].
    pub rds: String,
    /// The clusters.
    pub cds: String,
    plan: plan::Plan,
    dir: String,
}

impl Xds {
    /// [`Xds::rds`] plus the model → cluster entries of `old` (the RDS file now applied) that
    /// this version no longer has: written before the new filter config so that a request
    /// routed by either version finds its cluster. `None`: `old` is not a file this wrote.
    pub fn rds_keeping(&self, old: &str) -> Option<String> {
        let doc: serde_json::Value = serde_norway::from_str(old).ok()?;
        let map = doc
            .pointer("/resources/0/virtual_hosts/0/routes/0/route/inline_cluster_specifier_plugin/extension/typed_config/cluster_matcher/matcher_tree/exact_match_map/map")?
            .as_object()?;
        let mut plan = self.plan.clone();
        for (model, action) in map {
            let cluster = action.pointer("/action/typed_config/cluster")?.as_str()?;
            if !plan.routes.iter().any(|(m, _)| m == model) {
                plan.routes.push((model.clone(), cluster.to_string()));
            }
        }
        Some(render::rds(&plan))
    }

    /// [`Xds::cds`] plus the clusters of `old` (the CDS file now applied) that this version
    /// no longer has, so that requests still in flight on them finish. `None`: `old` is not a
    /// file this wrote.
    pub fn cds_keeping(&self, old: &str) -> Option<String> {
        let doc: serde_json::Value = serde_norway::from_str(old).ok()?;
        let mut extra = Vec::new();
        for c in doc.get("resources")?.as_array()? {
            let name = c.get("name")?.as_str()?;
            if !self.plan.clusters.iter().any(|p| p.name == name) {
                extra.push(serde_json::to_string(c).ok()?);
            }
        }
        Some(render::cds(&self.plan, &self.dir, &extra))
    }
}

/// The ECDS, RDS and CDS files for a Spice file (live reload; see [`Options::xds_dir`]).
pub fn xds(config_text: &str, opts: &Options) -> Result<Xds, GenerateError> {
    let (_, plan, host_env_keys) = prepare(config_text, opts)?;
    let dir = opts.xds_dir.clone().unwrap_or_else(|| ".".to_string());
    Ok(Xds {
        ecds: render::ecds(config_text, opts, &host_env_keys),
        rds: render::rds(&plan),
        cds: render::cds(&plan, &dir, &[]),
        plan,
        dir,
    })
}

/// Options checked, the file parsed as the filter parses it, the plan, the secrets Envoy's
/// environment must hold.
fn prepare(config_text: &str, opts: &Options) -> Result<(Config, plan::Plan, Vec<String>), GenerateError> {
    check_address("listen", &opts.listen)?;
    if let Some(admin) = &opts.admin {
        check_address("admin", admin)?;
    }
    if opts.xds_dir.as_deref().is_some_and(|d| d.is_empty()) {
        return Err(GenerateError::Options("the live-reload directory is empty".into()));
    }
    if opts.wasm.is_empty() {
        return Err(GenerateError::Options("the path of model_workers.wasm is empty".into()));
    }
    if opts.stats_flush_interval_ms == Some(0) {
        return Err(GenerateError::Options("stats_flush_interval must be at least 1ms".into()));
    }
    for (name, (host, port)) in &opts.cluster_addrs {
        if host.is_empty() || *port == 0 {
            return Err(GenerateError::Options(format!("cluster `{name}`: the address needs a host and a port > 0")));
        }
    }

    let secrets = RefCell::new(Vec::<String>::new());
    let record = |name: &str| {
        let mut s = secrets.borrow_mut();
        if !s.iter().any(|n| n == name) {
            s.push(name.to_string());
        }
        Some(PLACEHOLDER.to_string())
    };
    let config = Config::parse(config_text, &record)?;
    let plan = plan::plan(&config, &opts.cluster_addrs)?;
    let host_env_keys: Vec<String> =
        secrets.into_inner().into_iter().filter(|s| !opts.env.iter().any(|(k, _)| k == s)).collect();
    Ok((config, plan, host_env_keys))
}

fn check_address(what: &str, (host, port): &(String, u16)) -> Result<(), GenerateError> {
    if host.parse::<IpAddr>().is_err() {
        return Err(GenerateError::Options(format!(
            "{what} address {host:?} must be an IP address (Envoy does not resolve names here), e.g. 0.0.0.0 or 127.0.0.1"
        )));
    }
    // Port 0: Envoy binds a free port (tests read it back from the admin API).
    let _ = port;
    Ok(())
}

/// How a worker picks among its models.
pub use crate::policy::Kind as Strategy;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerSummary {
    pub name: String,
    pub strategy: Strategy,
    /// Its models in chain order (fallback: by `order`; cost: cheapest first; priority: by tier).
    pub models: Vec<String>,
    /// The policy as `check` prints it: `weighted: foo 4, bar 1`.
    pub detail: String,
}

/// An accepted configuration, for `model-workers check`. `Display` is its one-line summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub models: Vec<String>,
    pub workers: Vec<WorkerSummary>,
    /// Distinct cluster names, in order of first use.
    pub clusters: Vec<String>,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plural = |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        write!(
            f,
            "model-workers: configuration ok: {} ({}); {}",
            plural(self.models.len(), "model", "models"),
            self.models.join(", "),
            plural(self.workers.len(), "worker", "workers")
        )?;
        for (i, w) in self.workers.iter().enumerate() {
            write!(f, "{} {} ({})", if i == 0 { ":" } else { "," }, w.name, w.detail)?;
        }
        write!(f, "; clusters: {}", self.clusters.join(", "))
    }
}

/// Accepts and rejects exactly what the filter's `on_configure` does; `env` resolves secrets
/// the way the VM's environment would.
pub fn check(config_text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Summary, ConfigError> {
    Config::parse(config_text, env).map(|c| summarize(&c))
}

/// The line `on_configure` logs when it rejects a configuration starts with this.
pub const REJECTED: &str = "model-workers: rejected configuration:";

/// The plugin configuration's bytes as text, with `on_configure`'s two checks before parsing:
/// `Err` is its exact line for an empty configuration or one that is not UTF-8.
pub fn config_text(bytes: &[u8]) -> Result<&str, String> {
    if bytes.is_empty() {
        return Err(format!("{REJECTED} the plugin configuration is empty"));
    }
    std::str::from_utf8(bytes).map_err(|_| format!("{REJECTED} not UTF-8 text"))
}

/// [`check`] on the file's bytes, as Envoy hands them to the filter: `Err` is the exact line
/// `on_configure` logs (`model-workers: rejected configuration: …`).
pub fn check_bytes(bytes: &[u8], env: &dyn Fn(&str) -> Option<String>) -> Result<Summary, String> {
    check(config_text(bytes)?, env).map_err(|e| format!("{REJECTED} {e}"))
}

fn summarize(c: &Config) -> Summary {
    let name = |id| c.model(id).map_or(String::new(), |m| m.name.clone());
    let workers = c
        .workers
        .iter()
        .map(|w| WorkerSummary {
            name: w.name.clone(),
            strategy: w.policy.kind(),
            models: w.policy.models().into_iter().map(name).collect(),
            detail: w.policy.describe(&name),
        })
        .collect();
    let mut clusters: Vec<String> = Vec::new();
    for m in &c.models {
        if !clusters.contains(&m.cluster) {
            clusters.push(m.cluster.clone());
        }
    }
    Summary { models: c.models.iter().map(|m| m.name.clone()).collect(), workers, clusters }
}

#[cfg(test)]
mod tests;
