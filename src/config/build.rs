//! Validation: wire structs → runtime [`Config`].

use std::collections::HashMap;
use std::fmt;

use super::wire::{self, Scalar};
use super::{
    duration, workers, Config, CooldownPolicy, ModelId, ResponseModel, RetryPolicy, Settings, Target, WorkerId,
};

/// A configuration the filter refuses. `Display` is the one log line `on_configure` prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// Not YAML/JSON, or a key/type the schema does not have.
    Syntax(String),
    Model {
        model: String,
        rule: String,
    },
    Worker {
        worker: String,
        rule: String,
    },
    Settings(String),
}

impl fmt::Display for ConfigError {
    /// Anything in the message that looks like a credential is shown as `<redacted>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            ConfigError::Syntax(m) => format!("invalid configuration: {m}"),
            ConfigError::Model { model, rule } => format!("model `{model}`: {rule}"),
            ConfigError::Worker { worker, rule } => format!("worker `{worker}`: {rule}"),
            ConfigError::Settings(m) => format!("model_workers: {m}"),
        };
        f.write_str(&redact(&text))
    }
}

impl ConfigError {
    /// Replace every resolved secret value in the message (a backstop behind the rule that
    /// secrets are only resolved in key params).
    fn scrub(self, values: &[String]) -> Self {
        let clean = |mut m: String| {
            for v in values.iter().filter(|v| v.len() >= 4) {
                m = m.replace(v.as_str(), "<redacted>");
            }
            m
        };
        match self {
            ConfigError::Syntax(m) => ConfigError::Syntax(clean(m)),
            ConfigError::Model { model, rule } => ConfigError::Model { model, rule: clean(rule) },
            ConfigError::Worker { worker, rule } => ConfigError::Worker { worker, rule: clean(rule) },
            ConfigError::Settings(m) => ConfigError::Settings(clean(m)),
        }
    }
}

impl std::error::Error for ConfigError {}

pub const DEFAULT_ROUTING_HEADER: &str = "x-model-workers-cluster";
/// 529 is Anthropic's `overloaded_error`.
pub const DEFAULT_RETRY_ON: [u16; 7] = [408, 429, 500, 502, 503, 504, 529];
/// `max_tokens` for an Anthropic attempt whose client sent none (Anthropic requires it) and
/// whose model sets no `max_completion_tokens`.
pub const DEFAULT_ANTHROPIC_MAX_TOKENS: u32 = 4096;
pub const DEFAULT_TIMEOUT_MS: u64 = 60_000;
pub const DEFAULT_BACKOFF_MS: u64 = 100;
pub const DEFAULT_MAX_BACKOFF_MS: u64 = 5_000;
pub const DEFAULT_MAX_BODY_BYTES: usize = 8 * 1024 * 1024;
pub const DEFAULT_COOLDOWN_FAILURES: u32 = 5;
pub const DEFAULT_COOLDOWN_MS: u64 = 30_000;
pub const DEFAULT_MAX_COOLDOWN_MS: u64 = 300_000;
/// Bound on a weighted worker's schedule (sum of weights after dividing by their gcd).
pub const MAX_WEIGHT_SUM: u64 = 10_000;
pub const MAX_NAME_LEN: usize = 256;
/// Azure OpenAI's `api-version` when the model sets no `azure_api_version` (a GA version).
pub const DEFAULT_AZURE_API_VERSION: &str = "2024-10-21";

pub fn parse(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
    let root = parse_wire(text)?;
    let resolved = std::cell::RefCell::new(Vec::new());
    let recording = |name: &str| {
        let v = env(name);
        if let Some(v) = &v {
            resolved.borrow_mut().push(v.clone());
        }
        v
    };
    build(root, &recording).map_err(|e| e.scrub(&resolved.borrow()))
}

fn parse_wire(text: &str) -> Result<wire::Root, ConfigError> {
    let trimmed = text.trim_start();
    if trimmed.is_empty() {
        return Err(ConfigError::Syntax("configuration is empty (expected `models:` and `workers:`)".into()));
    }
    if trimmed.starts_with('{') {
        serde_json::from_str(trimmed).map_err(|e| ConfigError::Syntax(format!("JSON: {}", redact(&e.to_string()))))
    } else {
        serde_norway::from_str(text).map_err(|e| ConfigError::Syntax(format!("YAML: {}", redact(&e.to_string()))))
    }
}

/// Serde errors may quote the offending value; if it looks like a credential, hide it.
fn redact(msg: &str) -> String {
    let sep = |c: char| c.is_whitespace() || matches!(c, '"' | '`' | '\'' | ':' | '@' | '/' | '=' | ',' | '(' | ')');
    msg.split_inclusive(sep)
        .map(|w| {
            let core = w.trim_matches(sep);
            if looks_like_secret(core) {
                w.replace(core, "<redacted>")
            } else {
                w.to_string()
            }
        })
        .collect()
}

/// API keys: `sk-…`, `xai-…`, and long opaque tokens mixing upper case, lower case and digits
/// (model ids such as `claude-sonnet-4-5-20250929` are lower case and stay readable).
pub fn looks_like_secret(s: &str) -> bool {
    let known = ["sk-", "sk_", "xai-", "AKIA", "ghp_", "gsk_", "AIza"];
    if known.iter().any(|p| s.starts_with(p)) && s.len() > 8 {
        return true;
    }
    s.len() >= 32
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        && s.chars().any(|c| c.is_ascii_digit())
        && s.chars().any(|c| c.is_ascii_lowercase())
        && s.chars().any(|c| c.is_ascii_uppercase())
}

fn build(root: wire::Root, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
    let ws = root.model_workers.unwrap_or_default();
    let (settings, defaults) = build_settings(&ws)?;
    if root.models.is_empty() {
        return Err(ConfigError::Syntax("no `models:` defined (a worker routes to models)".into()));
    }

    let mut names: HashMap<String, Target> = HashMap::new();
    let mut models = Vec::with_capacity(root.models.len());
    let mut costs = Vec::with_capacity(root.models.len());
    for (i, m) in root.models.into_iter().enumerate() {
        let cost = workers::model_cost(&m.params);
        let model = super::model::build_model(m, &defaults, env)?;
        costs.push(cost.map_err(|rule| ConfigError::Model { model: model.name.clone(), rule })?);
        let id = ModelId(u32::try_from(i).map_err(|_| ConfigError::Syntax("too many models".into()))?);
        if names.insert(model.name.clone(), Target::Model(id)).is_some() {
            return Err(ConfigError::Model {
                model: model.name,
                rule: "duplicate name (names must be unique across models and workers)".into(),
            });
        }
        models.push(model);
    }

    let mut workers = Vec::with_capacity(root.workers.len());
    let mut sessions = workers::SessionInputs { routing_header: settings.routing_header.clone(), ..Default::default() };
    for (i, w) in root.workers.into_iter().enumerate() {
        let worker = workers::build_worker(w, &names, &models, &costs, &mut sessions)?;
        let id = WorkerId(u32::try_from(i).map_err(|_| ConfigError::Syntax("too many workers".into()))?);
        if names.insert(worker.name.clone(), Target::Worker(id)).is_some() {
            return Err(ConfigError::Worker {
                worker: worker.name,
                rule: "duplicate name (names must be unique across models and workers)".into(),
            });
        }
        workers.push(worker);
    }

    Ok(Config { models, workers, settings, session_fields: sessions.fields, session_headers: sessions.headers, names })
}

/// Defaults that per-model params may override.
pub(super) struct ModelDefaults {
    pub(super) retry: RetryPolicy,
    pub(super) cooldown: CooldownPolicy,
}

fn build_settings(ws: &wire::Settings) -> Result<(Settings, ModelDefaults), ConfigError> {
    let err = |m: String| ConfigError::Settings(m);
    let routing_header = match &ws.routing_header {
        None => DEFAULT_ROUTING_HEADER.to_string(),
        Some(h) => {
            let h = h.trim().to_ascii_lowercase();
            let valid = !h.is_empty()
                && h.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                && !matches!(
                    h.as_str(),
                    "host" | "content-length" | "content-type" | "authorization" | "transfer-encoding" | "connection"
                );
            if !valid {
                return Err(err(format!(
                    "routing_header {h:?} must be a plain header name such as {DEFAULT_ROUTING_HEADER}"
                )));
            }
            h
        }
    };
    let retry_on = match &ws.retry_on {
        None => DEFAULT_RETRY_ON.to_vec(),
        Some(list) => {
            // Sorted and without duplicates, through a table of the 200 codes (no sort code).
            let mut listed = [false; 200];
            for s in list {
                match u16::try_from(*s) {
                    Ok(code) if (400..=599).contains(&code) => {
                        if let Some(seen) = listed.get_mut(usize::from(code - 400)) {
                            *seen = true;
                        }
                    }
                    _ => return Err(err(format!("retry_on: {s} is not a 4xx/5xx status"))),
                }
            }
            (400..=599u16).zip(listed).filter(|(_, seen)| *seen).map(|(code, _)| code).collect()
        }
    };
    let max_attempts = match ws.max_attempts {
        None => None,
        Some(n) if (1..=100).contains(&n) => u32::try_from(n).ok(),
        Some(n) => return Err(err(format!("max_attempts: {n} must be between 1 and 100"))),
    };
    let max_retries = int_in("max_retries", ws.max_retries, 0, 10, 0).map_err(err)?;
    let timeout_ms = dur("timeout", ws.timeout.as_ref(), DEFAULT_TIMEOUT_MS, 1).map_err(err)?;
    let backoff_ms = dur("backoff", ws.backoff.as_ref(), DEFAULT_BACKOFF_MS, 0).map_err(err)?;
    let max_backoff_ms = dur("max_backoff", ws.max_backoff.as_ref(), DEFAULT_MAX_BACKOFF_MS, 0).map_err(err)?;
    let max_body_bytes = match ws.max_body_bytes {
        None => DEFAULT_MAX_BODY_BYTES,
        Some(n) if (1024..=(256 * 1024 * 1024)).contains(&n) => usize::try_from(n).unwrap_or(DEFAULT_MAX_BODY_BYTES),
        Some(n) => return Err(err(format!("max_body_bytes: {n} must be between 1024 and 268435456"))),
    };
    let response_model = match ws.response_model.as_deref() {
        None | Some("served") => ResponseModel::Served,
        Some("worker") => ResponseModel::Worker,
        Some(other) => return Err(err(format!("response_model: {other:?} must be `served` or `worker`"))),
    };
    let cd = ws.cooldown.as_ref();
    let cooldown = CooldownPolicy {
        failures: int_in("cooldown.failures", cd.and_then(|c| c.failures), 0, 1000, DEFAULT_COOLDOWN_FAILURES)
            .map_err(err)?,
        duration_ms: dur("cooldown.duration", cd.and_then(|c| c.duration.as_ref()), DEFAULT_COOLDOWN_MS, 1)
            .map_err(err)?,
        max_duration_ms: dur(
            "cooldown.max_duration",
            cd.and_then(|c| c.max_duration.as_ref()),
            DEFAULT_MAX_COOLDOWN_MS,
            1,
        )
        .map_err(err)?,
    };
    let status_path = match ws.status_path.as_deref() {
        None => None,
        Some(p)
            if p.starts_with('/')
                && p.len() <= 256
                && !p.contains('?')
                && !p.bytes().any(|b| b <= 0x20 || b == 0x7f) =>
        {
            Some(p.to_string())
        }
        Some(_) => {
            return Err(err("`status_path` must be a path such as /model-workers/status (a leading `/`, no query, no spaces, ≤ 256 bytes)".to_string()))
        }
    };
    let settings = Settings {
        status_path,
        routing_header,
        retry_on,
        max_attempts,
        max_backoff_ms,
        max_body_bytes,
        response_model,
        models_endpoint: ws.models_endpoint.unwrap_or(true),
    };
    let defaults = ModelDefaults { retry: RetryPolicy { max_retries, timeout_ms, backoff_ms }, cooldown };
    Ok((settings, defaults))
}

pub(super) fn int_in(key: &str, v: Option<i64>, min: i64, max: i64, default: u32) -> Result<u32, String> {
    match v {
        None => Ok(default),
        Some(n) if (min..=max).contains(&n) => u32::try_from(n).map_err(|_| format!("{key}: {n} is out of range")),
        Some(n) => Err(format!("{key}: {n} must be between {min} and {max}")),
    }
}

pub(super) fn dur(key: &str, v: Option<&Scalar>, default: u64, min_ms: u64) -> Result<u64, String> {
    match v {
        None => Ok(default),
        Some(s) => {
            let ms = duration::parse_ms(s).map_err(|e| format!("{key}: {e}"))?;
            if ms < min_ms {
                return Err(format!("{key}: must be at least {min_ms}ms"));
            }
            Ok(ms)
        }
    }
}

pub(super) fn check_name(name: &str) -> Result<(), String> {
    if name.trim().is_empty() {
        return Err("name must not be empty".into());
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!("name is longer than {MAX_NAME_LEN} bytes"));
    }
    if name.chars().any(char::is_control) {
        return Err("name must not contain control characters".into());
    }
    Ok(())
}
