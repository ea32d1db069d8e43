//! The configuration as written: Spice's `models:` + `workers:` plus the `model_workers:`
//! extension section. Serde structs only; all validation happens in `super::build`.

use std::collections::BTreeMap;

use serde::Deserialize;

/// A scalar as YAML/JSON may spell it (`30`, `"30s"`, `true`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Scalar {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

impl Scalar {
    pub fn describe(&self) -> String {
        match self {
            Scalar::Bool(b) => b.to_string(),
            Scalar::Int(i) => i.to_string(),
            Scalar::Float(f) => f.to_string(),
            Scalar::Str(s) => format!("{s:?}"),
        }
    }
}

/// Any value: provider params may be nested (Spice's `tools`, response formats…); the filter
/// only reads scalar keys it knows.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Value {
    Scalar(Scalar),
    List(Vec<Value>),
    Map(BTreeMap<String, Value>),
    Null,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Root {
    // Spicepod header keys, accepted so a whole spicepod section can be pasted.
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub models: Vec<Model>,
    #[serde(default)]
    pub workers: Vec<Worker>,
    #[serde(default)]
    pub model_workers: Option<Settings>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Model {
    pub from: String,
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub params: BTreeMap<String, Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Worker {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub load_balance: Option<LoadBalance>,
    #[serde(default)]
    pub cron: Option<String>,
    #[serde(default)]
    pub params: BTreeMap<String, Value>,
    #[serde(default)]
    pub sql: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadBalance {
    #[serde(default)]
    pub routing: Vec<Route>,
    /// Extension: an explicit strategy the routing fields cannot say (`cost`).
    #[serde(default)]
    pub strategy: Option<String>,
    /// Extension: sticky sessions.
    #[serde(default)]
    pub sticky: Option<Sticky>,
    /// Extension: the share of a `latency` worker's requests that explore the slower models.
    #[serde(default)]
    pub explore: Option<Scalar>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    pub from: String,
    #[serde(default)]
    pub order: Option<i64>,
    /// A whole number, or a decimal with up to 4 places (`0.7`).
    #[serde(default)]
    pub weight: Option<Scalar>,
    /// Extension (SMG): 0–100, higher preferred.
    #[serde(default)]
    pub priority: Option<i64>,
}

/// `load_balance.sticky`: where the session key comes from (at most one; none: body `user`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sticky {
    #[serde(default)]
    pub header: Option<String>,
    #[serde(default)]
    pub body: Option<String>,
}

/// The `model_workers:` extension section (everything Spice has no key for).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    #[serde(default)]
    pub routing_header: Option<String>,
    #[serde(default)]
    pub retry_on: Option<Vec<i64>>,
    #[serde(default)]
    pub max_attempts: Option<i64>,
    #[serde(default)]
    pub max_retries: Option<i64>,
    #[serde(default)]
    pub timeout: Option<Scalar>,
    #[serde(default)]
    pub backoff: Option<Scalar>,
    #[serde(default)]
    pub max_backoff: Option<Scalar>,
    #[serde(default)]
    pub max_body_bytes: Option<i64>,
    #[serde(default)]
    pub response_model: Option<String>,
    #[serde(default)]
    pub models_endpoint: Option<bool>,
    #[serde(default)]
    pub status_path: Option<String>,
    #[serde(default)]
    pub cooldown: Option<Cooldown>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cooldown {
    #[serde(default)]
    pub failures: Option<i64>,
    #[serde(default)]
    pub duration: Option<Scalar>,
    #[serde(default)]
    pub max_duration: Option<Scalar>,
}
