//! One `models:` entry → a runtime [`Model`]: its provider and id, params checked against
//! the provider's table, key, endpoint, API, retry and breaker settings, messages.

use super::build::{
    check_name, dur, int_in, ConfigError, ModelDefaults, DEFAULT_ANTHROPIC_MAX_TOKENS, DEFAULT_AZURE_API_VERSION,
};
use super::wire::{self, Scalar, Value};
use super::{params, secrets, Api, CooldownPolicy, Endpoint, Model, Provider, RetryPolicy, Secret};

pub(super) fn build_model(
    m: wire::Model,
    defaults: &ModelDefaults,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Model, ConfigError> {
    let name = m.name.clone();
    let fail = |rule: String| ConfigError::Model { model: name.clone(), rule };
    check_name(&m.name).map_err(fail)?;

    let (prefix, model_id) = m
        .from
        .split_once(':')
        .ok_or_else(|| fail(format!("from {:?} must be `<provider>:<model id>`, e.g. openai:gpt-4o", m.from)))?;
    let provider = match prefix {
        "openai" => Provider::OpenAi,
        "xai" => Provider::Xai,
        "azure" => Provider::Azure,
        "anthropic" => Provider::Anthropic,
        "gemini" => Provider::Gemini,
        "file" | "huggingface" | "hf" | "spiceai" => {
            return Err(fail(format!("provider `{prefix}` runs a model inside Spice; a proxy can only route to HTTP providers (openai, anthropic, azure, xai, gemini)")))
        }
        other => return Err(fail(format!("unsupported provider `{other}` (supported: openai — also any OpenAI-compatible server via `endpoint` —, anthropic, azure, xai, gemini)"))),
    };
    if model_id.trim().is_empty() {
        return Err(fail(format!("from {:?} has no model id after `{prefix}:`", m.from)));
    }

    // Params: checked against this provider's table (the filter's keys are read, Spice's
    // documented ones accepted and ignored, anything else is an error).
    let table = params::of(provider);
    for key in m.params.keys() {
        table.check(key).map_err(fail)?;
    }
    let text = |key: &str| -> Result<Option<String>, ConfigError> {
        match m.params.get(key) {
            None | Some(Value::Null) => Ok(None),
            // Secrets resolve only where a secret belongs: an API key. Anywhere else a value
            // may end up quoted in an error message.
            Some(Value::Scalar(Scalar::Str(s))) if key.ends_with("_api_key") => {
                secrets::resolve(s, env).map(Some).map_err(|e| fail(format!("param `{key}`: {e}")))
            }
            Some(Value::Scalar(Scalar::Str(s))) if s.contains("${") => {
                Err(fail(format!("param `{key}`: `${{ … }}` references are only resolved in `*_api_key` params")))
            }
            Some(Value::Scalar(Scalar::Str(s))) => Ok(Some(s.clone())),
            Some(Value::Scalar(Scalar::Bool(b))) => Ok(Some(b.to_string())),
            Some(Value::Scalar(Scalar::Int(i))) => Ok(Some(i.to_string())),
            Some(Value::Scalar(Scalar::Float(f))) => Ok(Some(f.to_string())),
            Some(_) => Err(fail(format!("param `{key}` must be a string"))),
        }
    };

    let cluster = match text("cluster")? {
        Some(c) if !c.trim().is_empty() => c.trim().to_string(),
        Some(_) => return Err(fail("param `cluster` must not be empty".into())),
        None => prefix.to_string(),
    };

    let key_param = table.key;
    let mut auth: Vec<(&'static str, Secret)> = Vec::new();
    if let Some(key) = text(key_param)? {
        if key.is_empty() || key.bytes().any(|b| b < 0x20 || b == 0x7f) {
            return Err(fail(format!("param `{key_param}` resolved to an empty value or one with control characters")));
        }
        match provider {
            Provider::OpenAi | Provider::Xai | Provider::Gemini => {
                auth.push(("authorization", Secret::new(format!("Bearer {key}"))))
            }
            Provider::Azure => auth.push(("api-key", Secret::new(key))),
            Provider::Anthropic => {
                auth.push(("x-api-key", Secret::new(key)));
                let version = text("anthropic_version")?.unwrap_or_else(|| "2023-06-01".to_string());
                auth.push(("anthropic-version", Secret::new(version)));
            }
        }
    }

    let endpoint = match text("endpoint")? {
        // On the cluster named after its provider, a model without an `endpoint` talks to
        // the provider's public API: every attempt to it carries that host.
        None if cluster == provider.prefix() => provider.public_base_url().and_then(|u| parse_endpoint(u).ok()),
        None => None,
        Some(url) => Some(parse_endpoint(&url).map_err(|e| fail(format!("param `endpoint`: {e}")))?),
    };

    let num = |key: &str| -> Result<Option<i64>, ConfigError> {
        match m.params.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Scalar(Scalar::Int(i))) => Ok(Some(*i)),
            Some(Value::Scalar(Scalar::Str(s))) => {
                s.trim().parse().map(Some).map_err(|_| fail(format!("param `{key}` must be a whole number")))
            }
            Some(_) => Err(fail(format!("param `{key}` must be a whole number"))),
        }
    };
    let duration_param = |key: &str, default: u64, min: u64| -> Result<u64, ConfigError> {
        match m.params.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(Value::Scalar(s)) => dur(&format!("param `{key}`"), Some(s), default, min).map_err(fail),
            Some(_) => Err(fail(format!("param `{key}` must be a duration such as 30s"))),
        }
    };
    let retry = RetryPolicy {
        max_retries: int_in("param `max_retries`", num("max_retries")?, 0, 10, defaults.retry.max_retries)
            .map_err(fail)?,
        timeout_ms: duration_param("timeout", defaults.retry.timeout_ms, 1)?,
        backoff_ms: duration_param("backoff", defaults.retry.backoff_ms, 0)?,
    };
    let cooldown = CooldownPolicy {
        failures: int_in("param `cooldown_failures`", num("cooldown_failures")?, 0, 1000, defaults.cooldown.failures)
            .map_err(fail)?,
        duration_ms: duration_param("cooldown", defaults.cooldown.duration_ms, 1)?,
        max_duration_ms: defaults.cooldown.max_duration_ms,
    };

    let api = match provider {
        // Azure addresses a deployment (Spice's `azure_deployment_name`, else the model id)
        // with an `api-version` in the query.
        Provider::Azure => Api::AzureDeployment {
            deployment: text("azure_deployment_name")?
                .filter(|d| !d.trim().is_empty())
                .unwrap_or_else(|| model_id.to_string()),
            api_version: text("azure_api_version")?
                .filter(|v| !v.trim().is_empty())
                .unwrap_or_else(|| DEFAULT_AZURE_API_VERSION.to_string()),
        },
        // Anthropic's own Messages API: attempts are translated from and to OpenAI's.
        Provider::Anthropic => {
            let key = ["anthropic_max_completion_tokens", "max_completion_tokens"]
                .into_iter()
                .find(|k| m.params.contains_key(*k));
            let max_tokens = match key {
                Some(k) => int_in(&format!("param `{k}`"), num(k)?, 1, 1_000_000, DEFAULT_ANTHROPIC_MAX_TOKENS)
                    .map_err(fail)?,
                None => DEFAULT_ANTHROPIC_MAX_TOKENS,
            };
            Api::AnthropicMessages { max_tokens }
        }
        _ => Api::OpenAi,
    };
    if let Api::AzureDeployment { deployment, api_version } = &api {
        let plain = |s: &str| s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !plain(deployment) || !plain(api_version) {
            return Err(fail("params `azure_deployment_name` and `azure_api_version` may only hold letters, digits, `-`, `_` and `.`".into()));
        }
    }

    let messages = super::messages::model_messages(&m.params).map_err(fail)?;
    Ok(Model {
        name: m.name,
        provider,
        model_id: model_id.to_string(),
        cluster,
        auth,
        endpoint,
        api,
        retry,
        cooldown,
        messages,
    })
}

fn parse_endpoint(url: &str) -> Result<Endpoint, String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| format!("{url:?} must start with http:// or https://"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (rest.get(..i).unwrap_or(""), rest.get(i..).unwrap_or("")),
        None => (rest, ""),
    };
    if authority.is_empty() || authority.contains('@') || authority.bytes().any(|b| b <= 0x20 || b == 0x7f) {
        return Err(format!("{url:?} has no valid host"));
    }
    if path.contains('?') || path.contains('#') || path.bytes().any(|b| b <= 0x20 || b == 0x7f) {
        return Err(format!("{url:?}: the path must be a plain prefix such as /v1"));
    }
    let tls = url.starts_with("https://");
    let (host, port) = split_host_port(authority, if tls { 443 } else { 80 })
        .ok_or_else(|| format!("{url:?} has no valid host[:port]"))?;
    Ok(Endpoint {
        tls,
        host,
        port,
        authority: authority.to_string(),
        path_prefix: path.trim_end_matches('/').to_string(),
    })
}

/// `host`, `host:port`, `[v6]` or `[v6]:port` → (host without brackets, port).
fn split_host_port(authority: &str, default_port: u16) -> Option<(String, u16)> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (h, after) = rest.split_once(']')?;
        match after {
            "" => (h, None),
            p => (h, Some(p.strip_prefix(':')?)),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h, Some(p)),
            Some(_) => return None,
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return None;
    }
    let port = match port {
        None => default_port,
        Some(p) => p.parse::<u16>().ok().filter(|p| *p > 0)?,
    };
    Some((host.to_string(), port))
}
