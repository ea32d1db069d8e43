//! Configuration: Spice's `models:` + `workers:` (YAML or JSON, pasted unchanged) plus the
//! `model_workers:` extension section.
//!
//! Two phases, as in the best proxy-wasm filters: serde structs in [`wire`] mirror what is
//! written (`deny_unknown_fields`, so a typo fails loudly), then [`Config::parse`] validates and
//! builds the runtime types below. Every error names the model or worker and the rule it
//! broke, and never prints a secret's value.

mod build;
mod duration;
mod messages;
mod model;
mod params;
mod secrets;
mod strategy;
mod weights;
pub mod wire;
mod workers;

use std::collections::HashMap;
use std::sync::Arc;

/// Index of a model in [`Config::models`] (defined with the policies, which use it).
pub use crate::policy::ModelId;
pub use crate::policy::Policy;
pub use build::ConfigError;
pub use secrets::Secret;

/// A duration as the config spells it (`30s`, `250ms`, `1.5s`, bare seconds) in milliseconds.
pub fn parse_duration_ms(text: &str) -> Result<u64, String> {
    duration::parse_ms(&wire::Scalar::Str(text.to_string()))
}

/// Index of a worker in [`Config::workers`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WorkerId(pub u32);

/// What a request's `model` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Model(ModelId),
    Worker(WorkerId),
}

/// A provider API family: decides how auth is injected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    /// OpenAI and OpenAI-compatible servers (vLLM, Ollama, …): `Authorization: Bearer`.
    OpenAi,
    /// xAI (OpenAI-compatible): `Authorization: Bearer`.
    Xai,
    /// Azure OpenAI: `api-key`.
    Azure,
    /// Anthropic: `x-api-key` + `anthropic-version`.
    Anthropic,
    /// Google Gemini through its OpenAI-compatible endpoint: `Authorization: Bearer`.
    Gemini,
}

impl Provider {
    /// The provider's public API, used by a model without `endpoint` on the cluster named
    /// after its provider. Azure has none: every Azure OpenAI resource has its own host.
    pub fn public_base_url(self) -> Option<&'static str> {
        match self {
            Provider::OpenAi => Some("https://api.openai.com/v1"),
            Provider::Anthropic => Some("https://api.anthropic.com/v1"),
            Provider::Xai => Some("https://api.x.ai/v1"),
            Provider::Gemini => Some("https://generativelanguage.googleapis.com/v1beta/openai"),
            Provider::Azure => None,
        }
    }

    pub fn prefix(self) -> &'static str {
        match self {
            Provider::OpenAi => "openai",
            Provider::Xai => "xai",
            Provider::Azure => "azure",
            Provider::Anthropic => "anthropic",
            Provider::Gemini => "gemini",
        }
    }
}

/// Where a model's requests go beyond its cluster: `:authority` and a path prefix, from
/// Spice's `endpoint` param (`https://host[:port]/prefix`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `https://` (TLS to the provider) or `http://`.
    pub tls: bool,
    /// Host name or IP literal (IPv6 without brackets).
    pub host: String,
    /// The URL's port, or 443 / 80 by scheme.
    pub port: u16,
    /// `host[:port]` as written: the `:authority` an attempt to this model carries.
    pub authority: String,
    /// Without a trailing slash; empty for none.
    pub path_prefix: String,
}

impl Endpoint {
    /// The upstream path for a client path: the client's leading `/v1` is replaced by the
    /// endpoint's prefix (`https://h/openai/v1` + `/v1/chat/completions` →
    /// `/openai/v1/chat/completions`; `https://h` + `/v1/x` → `/v1/x`).
    pub fn upstream_path(&self, client_path: &str) -> String {
        if self.path_prefix.is_empty() {
            return client_path.to_string();
        }
        let rest = match client_path.strip_prefix("/v1") {
            Some(r) if r.is_empty() || r.starts_with('/') || r.starts_with('?') => r,
            _ => client_path,
        };
        format!("{}{}", self.path_prefix, rest)
    }
}

/// Per-model retry behaviour (before the worker moves on to its next candidate).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Extra attempts on the same model after a retryable failure.
    pub max_retries: u32,
    /// Per-attempt timeout: time until the response headers arrive.
    pub timeout_ms: u64,
    /// Base of the exponential backoff between attempts on the same model.
    pub backoff_ms: u64,
}

/// Per-model circuit breaker settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CooldownPolicy {
    /// Consecutive retryable failures that open the breaker; 0 disables it.
    pub failures: u32,
    pub duration_ms: u64,
    /// Upper bound for a `Retry-After` the provider asks for.
    pub max_duration_ms: u64,
}

#[derive(Debug, Clone)]
pub struct Model {
    /// The public name (Spice `name`).
    pub name: String,
    pub provider: Provider,
    /// The provider's model id (`openai:gpt-4o` → `gpt-4o`): what the upstream receives.
    pub model_id: String,
    /// The Envoy cluster that serves this model.
    pub cluster: String,
    /// Headers to set on every attempt (auth). Empty: the client's own auth passes through.
    pub auth: Vec<(&'static str, Secret)>,
    pub endpoint: Option<Endpoint>,
    /// The API the model's provider speaks (decides the upstream path).
    pub api: Api,
    pub retry: RetryPolicy,
    pub cooldown: CooldownPolicy,
    /// Messages added to the chat requests this model serves (Spice `system_prompt`, the
    /// `messages` extension), per attempt: see [`crate::inject`].
    pub messages: crate::inject::ModelMessages,
}

/// How a model's provider is addressed beyond its host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Api {
    /// OpenAI's paths (`/v1/chat/completions`, …), after the endpoint's prefix.
    OpenAi,
    /// Azure OpenAI: `/openai/deployments/{deployment}/…?api-version=…`.
    AzureDeployment { deployment: String, api_version: String },
    /// Anthropic's Messages API (`…/v1/messages`): OpenAI chat requests are translated for
    /// these attempts, and their answers back. `max_tokens`: the default when the client sends
    /// none (Anthropic requires one).
    AnthropicMessages { max_tokens: u32 },
}

impl Model {
    /// Whether attempts to this model are translated (the client speaks OpenAI's API).
    pub fn translates(&self) -> bool {
        matches!(self.api, Api::AnthropicMessages { .. })
    }

    /// Whether an attempt to this model needs its whole body (translated, or messages added),
    /// rather than only its `model` spliced in.
    pub fn rewrites_body(&self) -> bool {
        self.translates() || !self.messages.is_empty()
    }

    /// Whether this model can serve a client path: a translated model serves chat
    /// completions only.
    pub fn serves(&self, client_path: &str) -> bool {
        if !self.translates() {
            return true;
        }
        let path = client_path.split('?').next().unwrap_or("");
        matches!(path, "/v1/chat/completions" | "/chat/completions")
    }

    /// The `:path` an attempt to this model carries for the client's path: the endpoint's
    /// prefix replaces the client's `/v1`; Azure puts the deployment and `api-version` in it.
    pub fn upstream_path(&self, client_path: &str) -> String {
        match &self.api {
            Api::AnthropicMessages { .. } => {
                let prefix = self.endpoint.as_ref().map_or("/v1", |e| e.path_prefix.as_str());
                format!("{prefix}/messages")
            }
            Api::OpenAi => {
                self.endpoint.as_ref().map_or_else(|| client_path.to_string(), |e| e.upstream_path(client_path))
            }
            Api::AzureDeployment { deployment, api_version } => {
                let (path, query) = client_path.split_once('?').map_or((client_path, None), |(p, q)| (p, Some(q)));
                let rest = path.strip_prefix("/v1").filter(|r| r.is_empty() || r.starts_with('/')).unwrap_or(path);
                let prefix = self.endpoint.as_ref().map_or("", |e| e.path_prefix.as_str());
                let mut out = format!("{prefix}/openai/deployments/{deployment}{rest}?api-version={api_version}");
                for q in query
                    .into_iter()
                    .flat_map(|q| q.split('&'))
                    .filter(|q| !q.is_empty() && !q.starts_with("api-version="))
                {
                    out.push('&');
                    out.push_str(q);
                }
                out
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct Worker {
    pub name: String,
    pub description: Option<String>,
    /// How the worker picks among its models (inferred from the routing fields, as in
    /// Spice, plus the `load_balance` extensions): see [`crate::policy`].
    pub policy: Arc<dyn Policy>,
    /// Shared-data key of this worker's ticket counter.
    pub counter_key: String,
    /// Spice's `cron` + `params.prompt`: a prompt sent on a schedule.
    pub cron: Cron,
}

/// A worker's `cron` / `params.prompt`, as Spice reads them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cron {
    /// Neither.
    None,
    /// `cron` and `params.prompt`: the prompt is sent on the schedule.
    Prompt(Scheduled),
    /// `cron` without `params.prompt`: accepted, never fires (Spice: "the cron schedule is
    /// not activated"). The expression as written.
    Inactive(String),
    /// `params.prompt` without `cron`: ignored, as in Spice.
    PromptIgnored,
}

/// A scheduled prompt: sent through the worker's policy at every fire time of `schedule`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scheduled {
    /// The `cron` value as written (trimmed).
    pub expr: String,
    pub schedule: crate::cron::Schedule,
    pub prompt: String,
}

/// What the client sees as the response body's `model`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseModel {
    /// The provider's answer unchanged (default): clients see the model that served.
    Served,
    /// Spice's behaviour: the worker's name (non-streaming JSON responses only).
    Worker,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub routing_header: String,
    /// Statuses that move on to the next attempt, sorted.
    pub retry_on: Vec<u16>,
    /// Cap on attempts per request across all candidates and retries; None = the whole chain.
    pub max_attempts: Option<u32>,
    pub max_backoff_ms: u64,
    pub max_body_bytes: usize,
    pub response_model: ResponseModel,
    pub models_endpoint: bool,
    /// `GET` this path: the live state of every worker and model (off when None).
    pub status_path: Option<String>,
}

impl Settings {
    pub fn is_retryable(&self, status: u16) -> bool {
        self.retry_on.binary_search(&status).is_ok()
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub models: Vec<Model>,
    pub workers: Vec<Worker>,
    pub settings: Settings,
    /// The top-level body members sticky workers read their session key from (`user`), each
    /// once: the body scan records them in this order.
    pub session_fields: Vec<String>,
    /// The request headers sticky workers read their session key from (lower case), each
    /// once: the downstream filter keeps their values in this order.
    pub session_headers: Vec<String>,
    names: HashMap<String, Target>,
}

impl Config {
    /// Parse and validate a plugin configuration (YAML, or JSON when it starts with `{`).
    /// `env` resolves `${ secrets:NAME }` / `${ env:NAME }` (Envoy's
    /// `vm_config.environment_variables`).
    pub fn parse(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        build::parse(text, env)
    }

    pub fn resolve(&self, name: &str) -> Option<Target> {
        self.names.get(name).copied()
    }

    pub fn model(&self, id: ModelId) -> Option<&Model> {
        self.models.get(id.0 as usize)
    }

    pub fn worker(&self, id: WorkerId) -> Option<&Worker> {
        self.workers.get(id.0 as usize)
    }

    /// The public name of a target (worker or model).
    pub fn target_name(&self, t: Target) -> &str {
        match t {
            Target::Model(m) => self.model(m).map_or("", |m| m.name.as_str()),
            Target::Worker(w) => self.worker(w).map_or("", |w| w.name.as_str()),
        }
    }
}

#[cfg(test)]
mod tests;
