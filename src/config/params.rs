//! Which model `params` each provider accepts: a model's params are checked against **its
//! provider's** table, and anything else is an error (a mistyped or foreign key such as
//! `openai_api_kye`, or `anthropic_api_key` on an `openai:` model, would otherwise be
//! silently ignored and the client's own key sent upstream).
//!
//! A provider accepts:
//! - [`FILTER_PARAMS`]: the filter's own keys, the same for every provider;
//! - its [`ProviderParams::read`] keys: the key param the filter injects, plus
//!   `anthropic_version` for Anthropic;
//! - its [`ProviderParams::spice`] keys: Spice's documented params of that provider that a
//!   proxy has no use for (org / project ids, usage tiers, Azure's deployment name and API
//!   version, …), accepted so a spicepod pastes unchanged, and ignored;
//! - [`SPICE_COMMON_PARAMS`] and the unprefixed [`OVERRIDES`]: Spice's provider-independent LLM
//!   params (prompts, tools, rate limits, chat-completion defaults), accepted and ignored;
//! - `<prefix>_<override>` and `openai_<override>` for every [`OVERRIDES`] entry and `tools`
//!   (`openai_temperature`, `anthropic_max_completion_tokens`, `azure_tools`, …): Spice's
//!   prefixed forms of the same defaults (the `openai_` form is Spice's deprecated alias on the
//!   other providers), accepted and ignored.
//!
//! Credentials Spice knows but the proxy cannot inject ([`ProviderParams::not_injected`]:
//! `anthropic_auth_token`, `azure_entra_token`) are rejected with a message saying so, rather
//! than ignored: ignoring them would silently turn the model into pass-through.
//!
//! Sources: Spice's model provider docs (docs.spice.ai / spiceai.org `components/models/`
//! pages for openai, anthropic, azure, xai) and the Spice runtime's own parameter tables
//! (`crates/runtime/src/model/params/{common,openai,anthropic,azure,xai}.rs`).
//!
//! Error messages name only the key and keys from these tables, never a value.

use super::Provider;

/// The filter's own params, read for every provider (see the README's `params` table).
pub const FILTER_PARAMS: &[&str] = &[
    "cluster",
    "endpoint",
    "max_retries",
    "timeout",
    "backoff",
    "cooldown_failures",
    "cooldown",
    "cost",
    "system_prompt",
    "messages",
];

/// Spice's provider-independent LLM params (unprefixed): they shape prompts, tools and rate
/// limits inside Spice. Accepted on every provider and ignored.
pub const SPICE_COMMON_PARAMS: &[&str] = &[
    "tools",
    "tool_embedding_model",
    "parameterized_prompt",
    "max_concurrency",
    "requests_per_minute_limit",
    "responses_api",
    "spice_tools",
    "model_type",
];

/// The OpenAI chat-completion request defaults a Spice model may set (Spice's "parameter
/// overrides"). Accepted unprefixed, as `<prefix>_<name>` and as `openai_<name>` (plus
/// `<prefix>_tools` / `openai_tools`), on every provider, and ignored: the client's request
/// reaches the provider as sent.
pub const OVERRIDES: &[&str] = &[
    "frequency_penalty",
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "max_completion_tokens",
    "reasoning_effort",
    "store",
    "metadata",
    "n",
    "presence_penalty",
    "response_format",
    "seed",
    "stop",
    "stream",
    "stream_options",
    "temperature",
    "top_p",
    "tool_choice",
    "parallel_tool_calls",
    "prompt_cache_key",
    "prompt_cache_retention",
    "user",
];

/// One provider's params.
#[derive(Debug)]
pub struct ProviderParams {
    /// `openai`, `anthropic`, …: the `from:` prefix and the prefix of its params.
    pub prefix: &'static str,
    /// The param holding the key the filter injects.
    pub key: &'static str,
    /// Provider params the filter reads (the key first).
    pub read: &'static [&'static str],
    /// Spice's documented params of this provider that a proxy ignores.
    pub spice: &'static [&'static str],
    /// Credentials Spice accepts that the proxy cannot inject: rejected, never ignored.
    pub not_injected: &'static [&'static str],
}

/// `openai:` (and OpenAI-compatible servers via `endpoint`).
pub const OPENAI: ProviderParams = ProviderParams {
    prefix: "openai",
    key: "openai_api_key",
    read: &["openai_api_key"],
    spice: &["openai_org_id", "openai_project_id", "openai_usage_tier", "openai_responses_tools"],
    not_injected: &[],
};

/// `anthropic:`.
pub const ANTHROPIC: ProviderParams = ProviderParams {
    prefix: "anthropic",
    key: "anthropic_api_key",
    read: &["anthropic_api_key", "anthropic_version"],
    spice: &["anthropic_usage_tier"],
    not_injected: &["anthropic_auth_token"],
};

/// `azure:` (Azure OpenAI). `azure_openai_responses_tools` is the docs' spelling,
/// `openai_responses_tools` the key current Spice reads.
pub const AZURE: ProviderParams = ProviderParams {
    prefix: "azure",
    key: "azure_api_key",
    read: &["azure_api_key", "azure_deployment_name", "azure_api_version"],
    spice: &["azure_openai_responses_tools", "openai_responses_tools"],
    not_injected: &["azure_entra_token"],
};

/// `xai:`.
pub const XAI: ProviderParams = ProviderParams {
    prefix: "xai",
    key: "xai_api_key",
    read: &["xai_api_key"],
    spice: &["xai_usage_tier"],
    not_injected: &[],
};

/// `gemini:` (Google's OpenAI-compatible endpoint).
pub const GEMINI: ProviderParams = ProviderParams {
    prefix: "gemini",
    key: "gemini_api_key",
    read: &["gemini_api_key"],
    spice: &[],
    not_injected: &[],
};

const ALL: [&ProviderParams; 5] = [&OPENAI, &ANTHROPIC, &AZURE, &XAI, &GEMINI];

/// Suggestions are offered within this edit distance (and below half the key's length, so
/// short keys get no random suggestions).
const MAX_DISTANCE: usize = 2;

pub fn of(provider: Provider) -> &'static ProviderParams {
    match provider {
        Provider::OpenAi => &OPENAI,
        Provider::Anthropic => &ANTHROPIC,
        Provider::Azure => &AZURE,
        Provider::Xai => &XAI,
        Provider::Gemini => &GEMINI,
    }
}

impl ProviderParams {
    /// Whether this provider accepts `key`.
    pub fn accepts(&self, key: &str) -> bool {
        let prefixed_override = |prefix: &str| {
            key.strip_prefix(prefix)
                .and_then(|k| k.strip_prefix('_'))
                .is_some_and(|rest| rest == "tools" || OVERRIDES.contains(&rest))
        };
        FILTER_PARAMS.contains(&key)
            || self.read.contains(&key)
            || self.spice.contains(&key)
            || SPICE_COMMON_PARAMS.contains(&key)
            || OVERRIDES.contains(&key)
            || prefixed_override(self.prefix)
            || prefixed_override("openai")
    }

    /// Every accepted key, in table order (for suggestions).
    fn accepted(&self) -> Vec<String> {
        let tables = [FILTER_PARAMS, self.read, self.spice, SPICE_COMMON_PARAMS, OVERRIDES];
        let mut keys: Vec<String> = tables.iter().flat_map(|t| t.iter()).map(|k| k.to_string()).collect();
        let own = std::iter::once(&"tools").chain(OVERRIDES);
        keys.extend(own.clone().map(|o| format!("{}_{o}", self.prefix)));
        if self.prefix != "openai" {
            keys.extend(own.map(|o| format!("openai_{o}")));
        }
        keys
    }

    /// Check one param key; the error is the rule text of a `ConfigError::Model`.
    pub fn check(&self, key: &str) -> Result<(), String> {
        if self.accepts(key) {
            return Ok(());
        }
        let p = self.prefix;
        if self.not_injected.contains(&key) {
            return Err(format!(
                "param `{key}` is not supported: the proxy does not inject this credential; set `{}` instead, or remove it to pass the client's own auth through",
                self.key
            ));
        }
        let unknown = format!("unknown param `{key}` for provider {p}");
        if let Some(other) = ALL.iter().find(|o| o.prefix != p && o.key == key) {
            return Err(format!(
                "{unknown} (`{key}` is provider {}'s key param; provider {p} takes its key in `{}`)",
                other.prefix, self.key
            ));
        }
        if let Some(s) = self.suggestion(key) {
            return Err(format!("{unknown} (did you mean `{s}`?)"));
        }
        if let Some(other) = ALL.iter().find(|o| o.prefix != p && o.owns(key)) {
            return Err(format!("{unknown} (`{key}` is a param of provider {})", other.prefix));
        }
        if ALL.iter().any(|o| near(key, o.key)) {
            return Err(format!("{unknown} (provider {p} takes its key in `{}`)", self.key));
        }
        Err(format!("{unknown} (see the README's config reference)"))
    }

    /// Keys only this provider has (its own tables, not the shared ones).
    fn owns(&self, key: &str) -> bool {
        self.read.contains(&key) || self.spice.contains(&key) || self.not_injected.contains(&key)
    }

    /// The accepted key `key` most likely means: the same key of another provider
    /// (`anthropic_temperature` → `openai_temperature`), this provider's prefixed form
    /// (`org_id` → `openai_org_id`), or the nearest key within [`MAX_DISTANCE`].
    fn suggestion(&self, key: &str) -> Option<String> {
        let p = self.prefix;
        let foreign_rest =
            ALL.iter().filter(|o| o.prefix != p).find_map(|o| key.strip_prefix(o.prefix)?.strip_prefix('_'));
        if let Some(rest) = foreign_rest {
            let own = format!("{p}_{rest}");
            if self.accepts(&own) {
                return Some(own);
            }
            if self.accepts(rest) {
                return Some(rest.to_string());
            }
        }
        let own = format!("{p}_{key}");
        if self.accepts(&own) {
            return Some(own);
        }
        // The first of the nearest candidates (table order breaks ties).
        self.accepted()
            .into_iter()
            .map(|candidate| (distance(key, &candidate), candidate))
            .filter(|(d, _)| within(key, *d))
            .min_by_key(|(d, _)| *d)
            .map(|(_, candidate)| candidate)
    }
}

fn within(key: &str, d: usize) -> bool {
    d <= MAX_DISTANCE && d * 2 < key.chars().count()
}

fn near(key: &str, candidate: &str) -> bool {
    within(key, distance(key, candidate))
}

/// Optimal string alignment distance (Levenshtein plus adjacent transpositions, so
/// `kye` → `key` is 1).
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    if a.len().abs_diff(b.len()) > MAX_DISTANCE {
        return MAX_DISTANCE + 1;
    }
    let at = |row: &[usize], j: usize| row.get(j).copied().unwrap_or(usize::MAX / 2);
    let mut before: Vec<usize> = Vec::new();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = Vec::with_capacity(b.len() + 1);
        cur.push(i + 1);
        for (j, cb) in b.iter().enumerate() {
            let substitute = at(&prev, j) + usize::from(ca != cb);
            let mut d = substitute.min(at(&prev, j + 1) + 1).min(at(&cur, j) + 1);
            let transposed = i > 0 && j > 0 && a.get(i - 1) == Some(cb) && b.get(j - 1) == Some(ca);
            if transposed {
                d = d.min(at(&before, j - 1) + 1);
            }
            cur.push(d);
        }
        before = std::mem::replace(&mut prev, cur);
    }
    at(&prev, b.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_counts_edits_and_transpositions() {
        assert_eq!(distance("openai_api_kye", "openai_api_key"), 1);
        assert_eq!(distance("timout", "timeout"), 1);
        assert_eq!(distance("", "ab"), 2);
        assert_eq!(distance("abc", "abc"), 0);
        assert_eq!(distance("ca", "abc"), 3);
        assert!(distance("colour", "cooldown") > MAX_DISTANCE);
    }

    #[test]
    fn tables_are_consistent() {
        for p in ALL {
            assert_eq!(p.read.first(), Some(&p.key), "{}", p.prefix);
            assert!(p.key.starts_with(p.prefix), "{}", p.prefix);
            for k in p.accepted() {
                assert!(p.accepts(&k) && p.check(&k).is_ok(), "{}: {k}", p.prefix);
            }
            for k in p.not_injected {
                assert!(!p.accepts(k), "{}: {k}", p.prefix);
            }
            // A provider's own keys are foreign to every other provider, unless that one lists
            // the key too (`openai_responses_tools` on azure).
            for other in ALL.iter().filter(|o| o.prefix != p.prefix) {
                for k in p.read.iter().chain(p.spice).chain(p.not_injected).filter(|k| !other.owns(k)) {
                    assert!(!other.accepts(k), "{k} accepted by {}", other.prefix);
                }
            }
        }
    }
}
