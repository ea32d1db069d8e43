//! The Kubernetes manifests under deploy/: every YAML document is a resource of a known kind
//! with the fields that kind needs, every embedded plugin configuration is accepted by the
//! filter's own parser, and each platform carries the plumbing of "Envoy retries, the filter
//! decides" (README: "Why Envoy retries, the filter decides") the way the filter needs it:
//!
//! * the downstream wasm filter before the router, `allow_on_headers_stop_iteration`,
//!   `FAIL_RELOAD`;
//! * the LLM routes pick the cluster with the matcher on filter state `wasm.model_workers.next`:
//!   one entry per model, naming that model's `cluster`, which a manifest of the same platform
//!   defines (an Istio ServiceEntry port `outbound|<port>||<host>`, an Envoy Gateway rule
//!   `httproute/<ns>/<route>/rule/<i>`); the spec's retry policy, `timeout: 0s`;
//! * the same filter (same configuration text, `vm_id`, module) as an upstream HTTP filter on
//!   every model cluster, before the upstream codec;
//! * retry circuit breakers raised, buffer limits above `max_body_bytes`;
//! * and everything the routing header (`x-model-workers-cluster`, attempt 1 without the
//!   plumbing), TLS and secrets need.
//!
//! Pure file checks, no cluster and no network — except [`envoy_accepts_the_assembled_configs`],
//! which assembles each platform's Envoy config from the manifests (as Istio and Envoy Gateway
//! would generate and patch it) and runs `envoy --mode validate` on it when Envoy and the
//! release module are there (`make wasm envoy`; otherwise it says so and passes).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use model_workers::config::{Config, ModelId};
use serde::Deserialize;
use serde_json::{json, Value};

const WASM_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm";
const IMAGE_REPOSITORY: &str = "registry.example.com/model-workers";
const ROUTING_HEADER: &str = "x-model-workers-cluster";
/// The filter-state key the matcher reads: Envoy prefixes keys a wasm filter sets with `wasm.`.
const NEXT_KEY: &str = "wasm.model_workers.next";
const MATCHER_PLUGIN: &str = "envoy.router.cluster_specifier_plugin.matcher";
const MATCHER_TYPE: &str =
    "type.googleapis.com/envoy.extensions.router.cluster_specifiers.matcher.v3.MatcherClusterSpecifier";
const FILTER_STATE_INPUT_TYPE: &str =
    "type.googleapis.com/envoy.extensions.matching.common_inputs.network.v3.FilterStateInput";
const CLUSTER_ACTION_TYPE: &str =
    "type.googleapis.com/envoy.extensions.router.cluster_specifiers.matcher.v3.ClusterAction";
const HPO_KEY: &str = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";
const HPO_TYPE: &str = "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions";
const CODEC_NAME: &str = "envoy.filters.http.upstream_codec";
const CODEC_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.http.upstream_codec.v3.UpstreamCodec";
const FILTER_CONFIG_TYPE: &str = "type.googleapis.com/envoy.config.route.v3.FilterConfig";
const HCM_NAME: &str = "envoy.filters.network.http_connection_manager";
const HCM_TYPE: &str =
    "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
const ROUTER_NAME: &str = "envoy.filters.http.router";
const ROUTER_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router";
const TLS_TYPE: &str = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext";
const RETRY_ON: [&str; 4] = ["connect-failure", "refused-stream", "reset", "retriable-status-codes"];
/// Envoy's own retry circuit breaker is 3 concurrent retries per cluster: it refuses retries
/// under load. Anything shipped must be far above.
const MIN_MAX_RETRIES: u64 = 1024;

struct Doc {
    file: PathBuf,
    v: Value,
}

impl Doc {
    fn kind(&self) -> &str {
        self.v["kind"].as_str().unwrap_or("")
    }
    fn name(&self) -> &str {
        self.v["metadata"]["name"].as_str().unwrap_or("")
    }
    fn namespace(&self) -> &str {
        self.v["metadata"]["namespace"].as_str().unwrap_or("")
    }
    fn what(&self) -> String {
        format!("{} {}/{} ({})", self.kind(), self.namespace(), self.name(), self.file.display())
    }
    /// The value at a JSON pointer below the document, or a panic naming the document.
    fn at(&self, ptr: &str) -> &Value {
        self.v.pointer(ptr).unwrap_or_else(|| panic!("{}: missing {ptr}", self.what()))
    }
    fn str_at(&self, ptr: &str) -> &str {
        self.at(ptr).as_str().unwrap_or_else(|| panic!("{}: {ptr} is not a string", self.what()))
    }
    fn arr_at(&self, ptr: &str) -> &Vec<Value> {
        let a = self.at(ptr).as_array().unwrap_or_else(|| panic!("{}: {ptr} is not a list", self.what()));
        assert!(!a.is_empty(), "{}: {ptr} is empty", self.what());
        a
    }
}

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            yaml_files(&p, out);
        } else if matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")) {
            out.push(p);
        }
    }
}

/// Every document of every YAML file below deploy/<platform> (all of deploy/ for "").
fn docs(platform: &str) -> Vec<Doc> {
    let mut files = Vec::new();
    yaml_files(&deploy_dir().join(platform), &mut files);
    let mut out = Vec::new();
    for file in files {
        let text = fs::read_to_string(&file).unwrap();
        for de in serde_norway::Deserializer::from_str(&text) {
            let v = Value::deserialize(de).unwrap_or_else(|e| panic!("{}: invalid YAML: {e}", file.display()));
            if !v.is_null() {
                out.push(Doc { file: file.clone(), v });
            }
        }
    }
    out
}

/// The documents of deploy/<platform>, without those in the listed subdirectories.
fn docs_without<'a>(all: &'a [Doc], platform: &str, excluded: &[&str]) -> Vec<&'a Doc> {
    let base = deploy_dir().join(platform);
    all.iter().filter(|d| !excluded.iter().any(|x| d.file.starts_with(base.join(x)))).collect()
}

fn find<'a>(docs: &[&'a Doc], kind: &str, namespace: &str, name: &str) -> &'a Doc {
    docs.iter()
        .copied()
        .find(|d| d.kind() == kind && d.namespace() == namespace && d.name() == name)
        .unwrap_or_else(|| panic!("no {kind} {namespace}/{name}"))
}

fn of_kind<'a>(docs: &[&'a Doc], kind: &str) -> Vec<&'a Doc> {
    docs.iter().copied().filter(|d| d.kind() == kind).collect()
}

fn strs(v: &Value) -> BTreeSet<String> {
    v.as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect()).unwrap_or_default()
}

/// Parse a plugin configuration as the filter does; returns it with the secret names it read.
fn parse_plugin(text: &str, what: &str) -> (Config, BTreeSet<String>) {
    let asked = RefCell::new(BTreeSet::new());
    let config = Config::parse(text, &|name| {
        asked.borrow_mut().insert(name.to_string());
        Some(format!("test-{name}"))
    })
    .unwrap_or_else(|e| panic!("{what}: plugin config rejected: {e}"));
    assert!(!config.models.is_empty() && !config.workers.is_empty(), "{what}: models and workers");
    assert_eq!(config.settings.routing_header, ROUTING_HEADER, "{what}: the header the routes match");
    (config, asked.into_inner())
}

/// A structured plugin config (WasmPlugin.pluginConfig) reaches the plugin as JSON text.
fn as_json_text(v: &Value) -> String {
    assert!(v.is_object(), "a structured plugin config is an object");
    serde_json::to_string(v).unwrap()
}

/// `repo:tag` (optionally `oci://`-prefixed): the published image at the crate's version.
fn check_image_ref(what: &str, url: &str) {
    let reference = url.strip_prefix("oci://").unwrap_or(url);
    let (repo, tag) = reference.rsplit_once(':').unwrap_or_else(|| panic!("{what}: {url} has no tag"));
    assert_eq!(repo, IMAGE_REPOSITORY, "{what}: image repository");
    assert_eq!(tag, env!("CARGO_PKG_VERSION"), "{what}: image tag is the crate version");
}

/// Milliseconds of an Envoy JSON duration (`60s`, `0.001s`).
fn duration_ms(what: &str, v: &Value) -> u64 {
    let s = v.as_str().unwrap_or_else(|| panic!("{what}: duration {v} is not a string"));
    let secs: f64 = s
        .strip_suffix('s')
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{what}: duration {s:?} is not `<seconds>s`"));
    (secs * 1000.0).round() as u64
}

/// Bytes of a Kubernetes quantity as used here (`8Mi`, or plain bytes).
fn quantity_bytes(q: &str) -> usize {
    match q.strip_suffix("Mi") {
        Some(n) => n.parse::<usize>().unwrap() * 1024 * 1024,
        None => q.parse().unwrap(),
    }
}

/// The most attempts one request can make: a worker tries all its models, each `1 +
/// max_retries` times; a plain model only itself; `max_attempts` caps both.
fn max_attempts(config: &Config) -> u32 {
    let per_model = |id: &ModelId| 1 + config.model(*id).unwrap().retry.max_retries;
    let singles = config.models.iter().map(|m| 1 + m.retry.max_retries);
    let chains = config.workers.iter().map(|w| w.policy.models().iter().map(per_model).sum::<u32>());
    let most = singles.chain(chains).max().unwrap_or(1);
    config.settings.max_attempts.map_or(most, |cap| most.min(cap))
}

fn largest_timeout_ms(config: &Config) -> u64 {
    config.models.iter().map(|m| m.retry.timeout_ms).max().unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------
// The plumbing, platform-independent
// ---------------------------------------------------------------------------------------------

/// A route action of "Envoy retries, the filter decides": the cluster comes from the matcher on
/// the filter's filter state, one entry per model naming its `cluster` (one of `clusters`, the
/// clusters the platform's manifests define and patch); retries on the filter's 599; no route
/// timeout.
fn check_route_action(action: &Value, config: &Config, clusters: &BTreeSet<String>, what: &str) {
    assert_eq!(action["timeout"], "0s", "{what}: route timeout 0s (a finite one cuts long streams)");
    for other in ["cluster", "cluster_header", "weighted_clusters", "cluster_specifier_plugin"] {
        assert!(action.get(other).is_none(), "{what}: `{other}` next to the matcher (they are one oneof)");
    }
    let ext = &action["inline_cluster_specifier_plugin"]["extension"];
    assert_eq!(ext["name"], MATCHER_PLUGIN, "{what}: inline_cluster_specifier_plugin is the matcher");
    assert_eq!(ext["typed_config"]["@type"], MATCHER_TYPE, "{what}");
    let matcher = &ext["typed_config"]["cluster_matcher"];
    assert!(
        matcher.get("on_no_match").is_none(),
        "{what}: no fallback: a request the filter did not prepare finds no cluster"
    );
    let tree = &matcher["matcher_tree"];
    assert_eq!(tree["input"]["typed_config"]["@type"], FILTER_STATE_INPUT_TYPE, "{what}: the input is filter state");
    assert_eq!(tree["input"]["typed_config"]["key"], NEXT_KEY, "{what}: the filter-state key the filter sets");
    let map = tree["exact_match_map"]["map"].as_object().unwrap_or_else(|| panic!("{what}: exact_match_map.map"));
    let names: BTreeSet<&str> = config.models.iter().map(|m| m.name.as_str()).collect();
    let keys: BTreeSet<&str> = map.keys().map(String::as_str).collect();
    assert_eq!(keys, names, "{what}: one matcher entry per model in `models:`");
    for m in &config.models {
        let action = &map[&m.name]["action"];
        assert_eq!(action["typed_config"]["@type"], CLUSTER_ACTION_TYPE, "{what}: {}", m.name);
        let cluster = action["typed_config"]["cluster"].as_str().unwrap_or("");
        assert_eq!(cluster, m.cluster, "{what}: the matcher sends {} to its `cluster` param", m.name);
        assert!(
            clusters.contains(cluster),
            "{what}: {} → {cluster:?}, a cluster no manifest defines ({clusters:?})",
            m.name
        );
    }

    let r = &action["retry_policy"];
    let on: BTreeSet<&str> = r["retry_on"].as_str().unwrap_or("").split(',').map(str::trim).collect();
    assert_eq!(on, RETRY_ON.into_iter().collect(), "{what}: retry_on");
    assert!(
        r["retriable_status_codes"].as_array().is_some_and(|c| c.iter().any(|c| c == 599)),
        "{what}: retriable_status_codes has 599 (the upstream filter's verdict)"
    );
    assert_eq!(
        r["num_retries"].as_u64(),
        Some(u64::from(max_attempts(config) - 1)),
        "{what}: num_retries = most attempts - 1"
    );
    assert_eq!(
        duration_ms(what, &r["per_try_timeout"]),
        largest_timeout_ms(config),
        "{what}: per_try_timeout = the largest model timeout"
    );
    assert_eq!(r["refresh_cluster_on_retry"], true, "{what}: refresh_cluster_on_retry (re-run the matcher per retry)");
    for k in ["base_interval", "max_interval"] {
        assert!(
            duration_ms(what, &r["retry_back_off"][k]) <= 10,
            "{what}: Envoy's {k} stays ~0 (the filter backs off)"
        );
    }
}

/// The Envoy wasm PluginConfig both copies need; returns (configuration text, vm_id).
fn check_plugin_config(cfg: &Value, what: &str) -> (String, String) {
    assert_eq!(
        cfg["allow_on_headers_stop_iteration"], true,
        "{what}: allow_on_headers_stop_iteration (the filter pauses the headers and reads the body)"
    );
    assert_eq!(cfg["failure_policy"], "FAIL_RELOAD", "{what}: FAIL_RELOAD in every shipped config");
    assert!(cfg["reload_config"]["backoff"]["base_interval"].is_string(), "{what}: short reload backoff");
    assert_eq!(cfg["vm_config"]["runtime"], "envoy.wasm.runtime.v8", "{what}");
    assert_eq!(cfg["configuration"]["@type"], "type.googleapis.com/google.protobuf.StringValue", "{what}");
    let text = cfg["configuration"]["value"].as_str().unwrap_or_else(|| panic!("{what}: configuration text"));
    let vm_id = cfg["vm_config"]["vm_id"].as_str().filter(|v| !v.is_empty());
    let vm_id = vm_id.unwrap_or_else(|| panic!("{what}: a vm_id (both copies share the VM and its shared data)"));
    (text.to_string(), vm_id.to_string())
}

/// The upstream HTTP filter chain of a model cluster: the filter, then the codec Envoy requires
/// last. Returns the filter's entry.
fn check_upstream_chain<'a>(filters: &'a Value, what: &str) -> &'a Value {
    let filters = filters.as_array().unwrap_or_else(|| panic!("{what}: upstream http_filters"));
    assert_eq!(filters.len(), 2, "{what}: upstream http_filters = [model-workers, upstream codec]");
    assert_eq!(filters[1]["name"], CODEC_NAME, "{what}: the upstream codec ends the chain");
    assert_eq!(filters[1]["typed_config"]["@type"], CODEC_TYPE, "{what}");
    &filters[0]
}

// ---------------------------------------------------------------------------------------------
// Every document
// ---------------------------------------------------------------------------------------------

/// The required fields of each kind (one level of semantic checks; cross-references are checked
/// by the platform tests below).
fn check_resource(d: &Doc) {
    let api = d.v["apiVersion"].as_str().unwrap_or_else(|| panic!("{}: no apiVersion", d.file.display()));
    assert!(!d.name().is_empty(), "{}: metadata.name", d.what());
    assert!(!d.namespace().is_empty(), "{}: metadata.namespace (every resource here is namespaced)", d.what());
    let expected: &[&str] = match d.kind() {
        "Gateway" if api.starts_with("networking.istio.io/") => {
            &["networking.istio.io/v1", "networking.istio.io/v1beta1"]
        }
        "VirtualService" | "ServiceEntry" | "DestinationRule" => {
            &["networking.istio.io/v1", "networking.istio.io/v1beta1"]
        }
        "EnvoyFilter" => &["networking.istio.io/v1alpha3"],
        "WasmPlugin" => &["extensions.istio.io/v1alpha1"],
        "Service" => &["v1"],
        "Deployment" => &["apps/v1"],
        "Gateway" | "HTTPRoute" => &["gateway.networking.k8s.io/v1"],
        "BackendTLSPolicy" => &["gateway.networking.k8s.io/v1alpha3", "gateway.networking.k8s.io/v1"],
        "Backend"
        | "EnvoyExtensionPolicy"
        | "EnvoyPatchPolicy"
        | "EnvoyProxy"
        | "ClientTrafficPolicy"
        | "BackendTrafficPolicy" => &["gateway.envoyproxy.io/v1alpha1"],
        other => panic!("{}: unexpected kind {other:?}", d.file.display()),
    };
    assert!(expected.contains(&api), "{}: apiVersion {api}, expected one of {expected:?}", d.what());

    match (d.kind(), api.starts_with("networking.istio.io/")) {
        ("Gateway", true) => {
            assert!(d.at("/spec/selector").is_object(), "{}: selector", d.what());
            for s in d.arr_at("/spec/servers") {
                assert!(
                    s["port"]["number"].is_u64() && s["hosts"].as_array().is_some_and(|h| !h.is_empty()),
                    "{}",
                    d.what()
                );
            }
        }
        ("VirtualService", _) => {
            d.arr_at("/spec/hosts");
            for route in d.arr_at("/spec/http") {
                assert!(route["name"].is_string(), "{}: every route is named (EnvoyFilters match the name)", d.what());
                match route.get("match") {
                    Some(matches) => {
                        for m in matches.as_array().unwrap_or_else(|| panic!("{}: http[].match", d.what())) {
                            assert!(
                                m["headers"][ROUTING_HEADER]["exact"].is_string(),
                                "{}: every matching route matches the routing header exactly",
                                d.what()
                            );
                        }
                        assert!(route["route"][0]["destination"]["host"].is_string(), "{}: destination", d.what());
                    }
                    None => assert!(
                        route["directResponse"]["status"].is_u64(),
                        "{}: a route without a match is an entry point answering directly, never a provider",
                        d.what()
                    ),
                }
            }
        }
        ("ServiceEntry", _) => {
            d.arr_at("/spec/hosts");
            for p in d.arr_at("/spec/ports") {
                assert!(
                    p["number"].is_u64() && p["name"].is_string() && p["protocol"].is_string(),
                    "{}: port",
                    d.what()
                );
            }
            d.str_at("/spec/resolution");
        }
        ("DestinationRule", _) => {
            d.str_at("/spec/host");
            d.str_at("/spec/trafficPolicy/tls/mode");
        }
        ("EnvoyFilter", _) => {
            assert!(d.at("/spec/workloadSelector/labels").is_object(), "{}: workloadSelector", d.what());
            for p in d.arr_at("/spec/configPatches") {
                assert!(p["applyTo"].is_string() && p["patch"]["operation"].is_string(), "{}: patch", d.what());
            }
        }
        ("WasmPlugin", _) => {
            let url = d.str_at("/spec/url");
            assert!(url.starts_with("oci://"), "{}: url", d.what());
            check_image_ref(&d.what(), url);
            assert!(d.v["spec"]["selector"].is_object() || d.v["spec"]["targetRefs"].is_array(), "{}", d.what());
            assert!(d.at("/spec/pluginConfig").is_object(), "{}: pluginConfig", d.what());
            assert_eq!(d.v["spec"]["failStrategy"], "FAIL_RELOAD", "{}: FAIL_RELOAD in every shipped config", d.what());
        }
        ("Service", _) => {
            for p in d.arr_at("/spec/ports") {
                assert!(p["port"].is_u64() && p["name"].is_string(), "{}: port", d.what());
            }
        }
        ("Deployment", _) => {
            let selector = d.at("/spec/selector/matchLabels").as_object().unwrap();
            let labels = d.at("/spec/template/metadata/labels").as_object().unwrap();
            assert!(selector.iter().all(|(k, v)| labels.get(k) == Some(v)), "{}: selector matches the pods", d.what());
            for c in d.arr_at("/spec/template/spec/containers") {
                assert!(c["name"].is_string() && c["image"].is_string(), "{}: container", d.what());
            }
        }
        ("Gateway", false) => {
            d.str_at("/spec/gatewayClassName");
            for l in d.arr_at("/spec/listeners") {
                assert!(l["name"].is_string() && l["port"].is_u64() && l["protocol"].is_string(), "{}", d.what());
            }
        }
        ("HTTPRoute", _) => {
            d.arr_at("/spec/parentRefs");
            for rule in d.arr_at("/spec/rules") {
                let matches = rule["matches"].as_array().unwrap_or_else(|| panic!("{}: rules[].matches", d.what()));
                assert!(!matches.is_empty(), "{}", d.what());
                for m in matches {
                    if let Some(headers) = m.get("headers") {
                        for h in headers.as_array().unwrap() {
                            assert!(h["name"].is_string() && h["value"].is_string(), "{}: header match", d.what());
                        }
                    }
                }
            }
        }
        ("Backend", _) => {
            for e in d.arr_at("/spec/endpoints") {
                assert!(e["fqdn"]["hostname"].is_string() && e["fqdn"]["port"].is_u64(), "{}: fqdn endpoint", d.what());
            }
        }
        ("BackendTLSPolicy", _) => {
            d.arr_at("/spec/targetRefs");
            d.str_at("/spec/validation/hostname");
        }
        ("EnvoyExtensionPolicy", _) => {
            d.arr_at("/spec/targetRefs");
            for w in d.arr_at("/spec/wasm") {
                assert_ne!(w["failOpen"], true, "{}: never fail open", d.what());
            }
        }
        ("EnvoyPatchPolicy", _) => {
            assert!(d.at("/spec/targetRef").is_object(), "{}", d.what());
            assert_eq!(d.str_at("/spec/type"), "JSONPatch", "{}", d.what());
            for p in d.arr_at("/spec/jsonPatches") {
                assert!(
                    p["type"].is_string() && p["name"].is_string() && p["operation"]["op"].is_string(),
                    "{}",
                    d.what()
                );
            }
        }
        ("EnvoyProxy", _) => {
            d.str_at("/spec/provider/type");
        }
        ("ClientTrafficPolicy" | "BackendTrafficPolicy", _) => {
            d.arr_at("/spec/targetRefs");
            d.str_at("/spec/connection/bufferLimit");
        }
        _ => {}
    }
}

#[test]
fn every_document_is_a_known_resource_with_its_required_fields() {
    let all = docs("");
    assert!(all.len() >= 20, "found {} documents under deploy/", all.len());
    let mut seen = BTreeSet::new();
    for d in &all {
        check_resource(d);
        let key = (
            d.v["apiVersion"].as_str().unwrap().to_string(),
            d.kind().to_string(),
            d.namespace().to_string(),
            d.name().to_string(),
        );
        assert!(seen.insert(key), "{}: defined twice", d.what());
    }
    for platform in ["istio", "istio/mesh", "envoy-gateway"] {
        assert!(!docs(platform).is_empty(), "deploy/{platform} has manifests");
    }
}

// ---------------------------------------------------------------------------------------------
// Istio (both forms)
// ---------------------------------------------------------------------------------------------

/// What one Istio form defines, checked for the plumbing.
struct Istio<'a> {
    config: Config,
    secrets: BTreeSet<String>,
    /// `host_env_keys` of the Wasm config.
    env_keys: BTreeSet<String>,
    /// The plumbing EnvoyFilter's workloadSelector labels.
    labels: &'a Value,
    /// Istio cluster name (`outbound|<port>||<host>`) → (host, port, endpoint port).
    clusters: BTreeMap<String, (String, u64, u64)>,
    vs_hosts: BTreeSet<String>,
    /// VirtualService http routes by name, in order.
    vs_routes: Vec<(String, &'a Value)>,
    /// The EXTENSION_CONFIG value, the HTTP_FILTER value.
    ext: &'a Value,
    http_filter: &'a Value,
    /// The HTTP_FILTER patch's match.
    http_filter_match: &'a Value,
    /// HTTP_ROUTE patches (route name → (match, value)), CLUSTER patches (cluster name → value).
    route_patches: BTreeMap<String, (&'a Value, &'a Value)>,
    cluster_patches: BTreeMap<String, &'a Value>,
}

fn check_istio<'a>(docs: &[&'a Doc], context: &str) -> Istio<'a> {
    // ServiceEntry ports → Istio's cluster names.
    let mut clusters = BTreeMap::new();
    for se in of_kind(docs, "ServiceEntry") {
        assert_eq!(se.str_at("/spec/location"), "MESH_EXTERNAL", "{}", se.what());
        assert_eq!(se.str_at("/spec/resolution"), "DNS", "{}", se.what());
        for h in se.arr_at("/spec/hosts") {
            for p in se.arr_at("/spec/ports") {
                let (host, port) = (h.as_str().unwrap().to_string(), p["number"].as_u64().unwrap());
                let target = p["targetPort"].as_u64().unwrap_or(port);
                clusters.insert(format!("outbound|{port}||{host}"), (host, port, target));
            }
        }
    }
    assert!(!clusters.is_empty(), "ServiceEntries for the providers");

    // DestinationRules: TLS origination, raised retry breaker, HTTP/1.1, no outlier detection.
    let mut hosts_with_dr = BTreeSet::new();
    for dr in of_kind(docs, "DestinationRule") {
        let host = dr.str_at("/spec/host");
        let p = dr.at("/spec/trafficPolicy");
        assert_eq!(
            (p["tls"]["mode"].as_str(), p["tls"]["sni"].as_str()),
            (Some("SIMPLE"), Some(host)),
            "{}: TLS origination with SNI",
            dr.what()
        );
        let max_retries = p["connectionPool"]["http"]["maxRetries"].as_u64().unwrap_or(0);
        assert!(
            max_retries >= MIN_MAX_RETRIES,
            "{}: connectionPool.http.maxRetries {max_retries} (Envoy's max_retries breaker)",
            dr.what()
        );
        assert!(max_retries <= u64::from(i32::MAX.unsigned_abs()), "{}: maxRetries is an int32", dr.what());
        assert_eq!(
            p["connectionPool"]["http"]["h2UpgradePolicy"],
            "DO_NOT_UPGRADE",
            "{}: the protocol the upstream options state",
            dr.what()
        );
        assert!(
            p.get("outlierDetection").is_none() && p.get("portLevelSettings").is_none(),
            "{}: no outlier detection (599s would eject providers)",
            dr.what()
        );
        hosts_with_dr.insert(host.to_string());
    }
    for (host, _, _) in clusters.values() {
        assert!(hosts_with_dr.contains(host), "{host} has a DestinationRule");
    }

    // VirtualService routes: header value = the Istio cluster of its destination.
    let mut vs_hosts = BTreeSet::new();
    let mut vs_routes = Vec::new();
    for vs in of_kind(docs, "VirtualService") {
        vs_hosts.extend(strs(&vs.v["spec"]["hosts"]));
        for r in vs.arr_at("/spec/http") {
            let name = r["name"].as_str().unwrap().to_string();
            assert!(vs_routes.iter().all(|(n, _)| n != &name), "{}: route name {name} twice", vs.what());
            if r.get("match").is_some() {
                let value = r["match"][0]["headers"][ROUTING_HEADER]["exact"].as_str().unwrap();
                let dest = &r["route"][0]["destination"];
                let cluster = format!(
                    "outbound|{}||{}",
                    dest["port"]["number"].as_u64().unwrap(),
                    dest["host"].as_str().unwrap()
                );
                assert_eq!(
                    value,
                    cluster,
                    "{}: {name}: the header value is its destination's Istio cluster",
                    vs.what()
                );
                assert!(clusters.contains_key(value), "{}: {name}: {value} is a ServiceEntry port", vs.what());
                assert_eq!(r["timeout"], "0s", "{}: {name}: no route timeout (long streams)", vs.what());
                assert_eq!(r["retries"]["attempts"], 0, "{}: {name}: no Istio retry policy to merge with", vs.what());
                assert!(
                    strs(&r["headers"]["request"]["remove"]).contains(ROUTING_HEADER),
                    "{}: {name}: providers never see the routing header",
                    vs.what()
                );
            }
            vs_routes.push((name, r));
        }
    }

    // The plumbing EnvoyFilter: the one that ADDs the extension config.
    let plumbing: Vec<&Doc> = of_kind(docs, "EnvoyFilter")
        .into_iter()
        .filter(|ef| ef.arr_at("/spec/configPatches").iter().any(|p| p["applyTo"] == "EXTENSION_CONFIG"))
        .collect();
    assert_eq!(plumbing.len(), 1, "one EnvoyFilter carries the plumbing");
    let ef = plumbing[0];
    let labels = ef.at("/spec/workloadSelector/labels");
    for other in of_kind(docs, "EnvoyFilter") {
        assert_eq!(other.at("/spec/workloadSelector/labels"), labels, "{}: selects the same proxies", other.what());
    }
    let (mut ext, mut http) = (None, None);
    let mut route_patches = BTreeMap::new();
    let mut cluster_patches = BTreeMap::new();
    for p in ef.arr_at("/spec/configPatches") {
        let (apply, op, value) =
            (p["applyTo"].as_str().unwrap(), p["patch"]["operation"].as_str().unwrap(), &p["patch"]["value"]);
        if apply != "EXTENSION_CONFIG" {
            assert_eq!(p["match"]["context"], context, "{}: {apply} patch in {context}", ef.what());
        }
        match apply {
            "EXTENSION_CONFIG" => {
                assert_eq!(op, "ADD", "{}: EXTENSION_CONFIG supports only ADD", ef.what());
                assert!(ext.replace(value).is_none(), "{}: one extension config", ef.what());
            }
            "HTTP_FILTER" => {
                assert_eq!(op, "INSERT_BEFORE", "{}", ef.what());
                let l = &p["match"]["listener"]["filterChain"]["filter"];
                assert_eq!(
                    (l["name"].as_str(), l["subFilter"]["name"].as_str()),
                    (Some(HCM_NAME), Some(ROUTER_NAME)),
                    "{}: before the router",
                    ef.what()
                );
                assert!(http.replace((value, &p["match"])).is_none(), "{}: one HTTP filter", ef.what());
            }
            "HTTP_ROUTE" => {
                assert_eq!(op, "MERGE", "{}", ef.what());
                let name = p["match"]["routeConfiguration"]["vhost"]["route"]["name"].as_str().unwrap();
                assert!(
                    route_patches.insert(name.to_string(), (&p["match"], value)).is_none(),
                    "{}: route {name} patched twice",
                    ef.what()
                );
            }
            "CLUSTER" => {
                assert_eq!(op, "MERGE", "{}", ef.what());
                let name = p["match"]["cluster"]["name"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{}: CLUSTER patches match the cluster by name", ef.what()));
                assert!(
                    cluster_patches.insert(name.to_string(), value).is_none(),
                    "{}: cluster {name} patched twice",
                    ef.what()
                );
            }
            other => panic!("{}: unexpected {other} patch", ef.what()),
        }
    }
    let ext = ext.unwrap_or_else(|| panic!("{}: EXTENSION_CONFIG", ef.what()));
    let (http_filter, http_filter_match) = http.unwrap_or_else(|| panic!("{}: HTTP_FILTER", ef.what()));

    // The extension config: the complete Wasm config, module fetched by istio-agent.
    let ext_name = ext["name"].as_str().unwrap();
    let what = format!("{} (extension config {ext_name})", ef.what());
    assert_eq!(ext["typed_config"]["@type"], WASM_TYPE, "{what}");
    let cfg = &ext["typed_config"]["config"];
    let (text, _vm_id) = check_plugin_config(cfg, &what);
    let uri = cfg["vm_config"]["code"]["remote"]["http_uri"]["uri"].as_str().unwrap();
    assert!(uri.starts_with("oci://"), "{what}: fetched by istio-agent from OCI");
    check_image_ref(&what, uri);
    let env_keys = strs(&cfg["vm_config"]["environment_variables"]["host_env_keys"]);

    // Both copies load it by name through ECDS: same module, vm_id and configuration text.
    let check_discovery = |f: &Value, what: &str| {
        assert_eq!(f["name"], ext_name, "{what}: loads the extension config by its name");
        let d = &f["config_discovery"];
        assert_eq!(
            strs(&d["type_urls"]),
            BTreeSet::from([WASM_TYPE.to_string()]),
            "{what}: only the Wasm type (a substitute is refused)"
        );
        assert!(d["config_source"]["ads"].is_object(), "{what}: ECDS over ADS (istio-agent rewrites the module)");
        assert_eq!(d["config_source"]["initial_fetch_timeout"], "0s", "{what}: wait for the module");
        assert!(f.get("typed_config").is_none(), "{what}: no inline config next to config_discovery");
    };
    check_discovery(http_filter, &format!("{}: HTTP_FILTER", ef.what()));

    let (config, secrets) = parse_plugin(&text, &what);
    assert!(!secrets.is_empty(), "{what}: provider keys come from secrets");
    assert!(secrets.is_subset(&env_keys), "{what}: secrets {secrets:?} must be host env keys {env_keys:?}");
    for m in &config.models {
        assert!(!m.auth.is_empty(), "{what}: model {} injects its provider key", m.name);
        let (host, _, target) = clusters
            .get(&m.cluster)
            .unwrap_or_else(|| panic!("{what}: model {} cluster {:?} is no ServiceEntry port", m.name, m.cluster));
        let ep = m.endpoint.as_ref().unwrap_or_else(|| panic!("{what}: model {} needs an endpoint", m.name));
        // The filter sets :authority to the endpoint host: the TLS host, served by the routes.
        assert_eq!(&ep.host, host, "{what}: {} endpoint host", m.name);
        assert_eq!(u64::from(ep.port), *target, "{what}: {} endpoint port is where the cluster connects", m.name);
        assert!(
            vs_hosts.contains(host),
            "{what}: the VirtualService serves {host} (re-routing after :authority changes)"
        );
    }

    // Routes: every header route carries the same, complete action.
    let known: BTreeSet<String> = clusters.keys().cloned().collect();
    let mut actions = BTreeSet::new();
    for (name, r) in &vs_routes {
        if r.get("match").is_none() {
            continue;
        }
        let (_, value) =
            route_patches.get(name).unwrap_or_else(|| panic!("{}: no HTTP_ROUTE patch for route {name}", ef.what()));
        check_route_action(&value["route"], &config, &known, &format!("{}: route {name}", ef.what()));
        actions.insert(value["route"].to_string());
    }
    assert_eq!(actions.len(), 1, "{}: every header route gets the same action", ef.what());
    for name in route_patches.keys() {
        assert!(
            vs_routes.iter().any(|(n, _)| n == name),
            "{}: patch for route {name}, which no VirtualService defines",
            ef.what()
        );
    }

    // Clusters: every model cluster carries the upstream copy.
    for m in &config.models {
        assert!(cluster_patches.contains_key(&m.cluster), "{}: no CLUSTER patch for {}", ef.what(), m.cluster);
    }
    for (name, value) in &cluster_patches {
        let what = format!("{}: cluster {name}", ef.what());
        assert!(clusters.contains_key(name), "{what}: no ServiceEntry port makes this cluster");
        assert!(
            value.get("circuit_breakers").is_none(),
            "{what}: circuit_breakers (a MERGE appends a threshold Envoy ignores; use the DestinationRule)"
        );
        let options = &value["typed_extension_protocol_options"][HPO_KEY];
        assert_eq!(options["@type"], HPO_TYPE, "{what}: {HPO_KEY}");
        // It replaces Istio's entry whole, so it must choose the protocol itself.
        assert!(
            ["explicit_http_config", "use_downstream_protocol_config", "auto_config"]
                .iter()
                .any(|k| options.get(*k).is_some()),
            "{what}: the upstream protocol (Envoy requires one)"
        );
        let filter = check_upstream_chain(&options["http_filters"], &what);
        check_discovery(filter, &what);
    }

    Istio {
        config,
        secrets,
        env_keys,
        labels,
        clusters,
        vs_hosts,
        vs_routes,
        ext,
        http_filter,
        http_filter_match,
        route_patches,
        cluster_patches,
    }
}

/// Buffer limits on the listener and every provider cluster, at least `max_body_bytes`.
fn check_istio_buffer_limits(docs: &[&Doc], ist: &Istio, context: &str) {
    let limits: Vec<&Doc> = of_kind(docs, "EnvoyFilter")
        .into_iter()
        .filter(|ef| ef.arr_at("/spec/configPatches").iter().any(|p| p["applyTo"] == "LISTENER"))
        .collect();
    assert_eq!(limits.len(), 1, "one EnvoyFilter raises the buffer limits");
    let ef = limits[0];
    let mut services = BTreeSet::new();
    for p in ef.arr_at("/spec/configPatches") {
        assert_eq!(p["match"]["context"], context, "{}", ef.what());
        let bytes = p["patch"]["value"]["per_connection_buffer_limit_bytes"].as_u64().unwrap();
        assert!(bytes as usize >= ist.config.settings.max_body_bytes, "{}: limit below max_body_bytes", ef.what());
        if p["applyTo"] == "CLUSTER" {
            services.insert(p["match"]["cluster"]["service"].as_str().unwrap().to_string());
        }
    }
    for m in &ist.config.models {
        let (host, _, _) = &ist.clusters[&m.cluster];
        assert!(services.contains(host), "{}: buffer limit for {host}", ef.what());
    }
}

#[test]
fn istio_gateway_carries_the_failover_plumbing() {
    let all = docs("istio");
    let docs = docs_without(&all, "istio", &["mesh"]);
    let ist = check_istio(&docs, "GATEWAY");

    let gateways = of_kind(&docs, "Gateway");
    assert_eq!(gateways.len(), 1, "one Istio Gateway");
    let gateway = gateways[0];
    assert_eq!(
        gateway.at("/spec/selector"),
        ist.labels,
        "{}: the EnvoyFilters select the gateway's pods",
        gateway.what()
    );
    let gateway_hosts: BTreeSet<String> =
        gateway.arr_at("/spec/servers").iter().flat_map(|s| strs(&s["hosts"])).collect();
    for vs in of_kind(&docs, "VirtualService") {
        assert!(strs(&vs.v["spec"]["gateways"]).contains(gateway.name()), "{}: bound to the gateway", vs.what());
    }
    for (host, _, _) in ist.clusters.values() {
        assert!(gateway_hosts.contains(host), "{}: serves {host}", gateway.what());
    }
    assert!(ist.http_filter.get("disabled").is_none(), "a dedicated gateway: the filter runs on every route");
    assert!(ist.vs_routes.iter().all(|(_, r)| r.get("match").is_some()), "the gateway's routes are the header routes");

    // The WasmPlugin form (not applied) carries the same models and workers.
    let shape = |c: &Config| {
        let models: Vec<(String, String)> = c.models.iter().map(|m| (m.name.clone(), m.cluster.clone())).collect();
        (models, c.workers.iter().map(|w| w.name.clone()).collect::<Vec<_>>())
    };
    let plugins = of_kind(&docs, "WasmPlugin");
    assert_eq!(plugins.len(), 1, "the WasmPlugin form");
    let wp = plugins[0];
    assert_eq!(wp.at("/spec/selector/matchLabels"), ist.labels, "{}: on the gateway", wp.what());
    let env: BTreeSet<String> = wp.v["spec"]["vmConfig"]["env"]
        .as_array()
        .map(|a| {
            a.iter().filter(|e| e["valueFrom"] == "HOST").map(|e| e["name"].as_str().unwrap().to_string()).collect()
        })
        .unwrap_or_default();
    let (config, secrets) = parse_plugin(&as_json_text(wp.at("/spec/pluginConfig")), &wp.what());
    assert!(secrets.is_subset(&env), "{}: secrets {secrets:?} must be HOST env {env:?}", wp.what());
    assert_eq!(
        shape(&config),
        shape(&ist.config),
        "the EnvoyFilter and the WasmPlugin carry the same models and workers"
    );
    assert!(ist.secrets.is_subset(&ist.env_keys));

    check_istio_buffer_limits(&docs, &ist, "GATEWAY");
}

#[test]
fn istio_mesh_sidecars_carry_the_failover_plumbing() {
    let all = docs("istio/mesh");
    let docs: Vec<&Doc> = all.iter().collect();
    let ist = check_istio(&docs, "SIDECAR_OUTBOUND");
    assert!(of_kind(&docs, "Gateway").is_empty(), "the mesh form has no gateway");
    for vs in of_kind(&docs, "VirtualService") {
        assert!(vs.v["spec"].get("gateways").is_none(), "{}: for the sidecars (mesh)", vs.what());
    }

    // The sidecar's port-80 listener carries all of the pod's HTTP calls: the filter is disabled
    // there and enabled on the VirtualService's routes only, all of them, so the route a request
    // first matches always runs it.
    assert_eq!(ist.http_filter["disabled"], true, "the sidecar filter is disabled by default");
    let ports: BTreeSet<u64> = ist.clusters.values().map(|(_, port, _)| *port).collect();
    assert_eq!(ports.len(), 1, "one plain-HTTP port for every provider");
    let port = *ports.iter().next().unwrap();
    assert_eq!(
        ist.http_filter_match["listener"]["portNumber"], port,
        "the filter is on the outbound port-{port} listener"
    );
    let filter_name = ist.http_filter["name"].as_str().unwrap();
    for (name, r) in &ist.vs_routes {
        let (m, value) = ist.route_patches.get(name).unwrap_or_else(|| panic!("no HTTP_ROUTE patch for route {name}"));
        assert_eq!(m["routeConfiguration"]["portNumber"], port, "route {name}: the port-{port} route configuration");
        let enable = &value["typed_per_filter_config"][filter_name];
        assert_eq!(enable["@type"], FILTER_CONFIG_TYPE, "route {name} enables the filter");
        assert!(
            enable["config"].is_object() && enable["disabled"] != true,
            "route {name}: FilterConfig with a `config` enables it"
        );
        if r.get("match").is_none() {
            assert!(value.get("route").is_none(), "the entry route {name} answers directly");
        }
    }
    let last = ist.vs_routes.last().unwrap();
    assert!(last.1.get("match").is_none(), "the entry route (no match) comes last");

    // What the applications call: a Service whose name the VirtualService serves.
    let services = of_kind(&docs, "Service");
    assert_eq!(services.len(), 1, "one entry Service");
    let svc = services[0];
    assert!(svc.v["spec"].get("selector").is_none(), "{}: no selector: nothing is ever sent to it", svc.what());
    assert_eq!(svc.at("/spec/ports/0/port"), port, "{}: the port the filter listens on", svc.what());
    let fqdn = format!("{}.{}.svc.cluster.local", svc.name(), svc.namespace());
    assert!(ist.vs_hosts.contains(&fqdn), "the VirtualService serves {fqdn}");

    // Selected pods: the labels, and the keys in istio-proxy's environment from a Secret.
    let deployments = of_kind(&docs, "Deployment");
    assert!(!deployments.is_empty(), "an example application");
    for d in deployments {
        let labels = d.at("/spec/template/metadata/labels").as_object().unwrap();
        for (k, v) in ist.labels.as_object().unwrap() {
            assert_eq!(labels.get(k), Some(v), "{}: selected by the EnvoyFilters", d.what());
        }
        let proxy = d
            .arr_at("/spec/template/spec/containers")
            .iter()
            .find(|c| c["name"] == "istio-proxy")
            .unwrap_or_else(|| panic!("{}: an istio-proxy container (merged into the sidecar)", d.what()));
        for s in &ist.secrets {
            let e = proxy["env"].as_array().unwrap().iter().find(|e| e["name"] == s.as_str());
            let e = e.unwrap_or_else(|| panic!("{}: istio-proxy env {s}", d.what()));
            assert!(e["valueFrom"]["secretKeyRef"]["name"].is_string(), "{}: {s} comes from a Secret", d.what());
        }
    }
    assert!(ist.secrets.is_subset(&ist.env_keys));

    check_istio_buffer_limits(&docs, &ist, "SIDECAR_OUTBOUND");
}

// ---------------------------------------------------------------------------------------------
// Envoy Gateway
// ---------------------------------------------------------------------------------------------

/// What the Envoy Gateway manifests define, checked for the plumbing.
struct EnvoyGateway<'a> {
    config: Config,
    listener_name: String,
    route_config_name: String,
    /// Rule cluster name → (rule index, backend host, backend port, TLS hostname).
    clusters: BTreeMap<String, (usize, String, u64, String)>,
    route: &'a Doc,
    patch: &'a Doc,
    /// The wasm HttpFilter the listener patch inserts.
    filter: &'a Value,
    mount_path: String,
    buffer_limit: usize,
    max_retries: u64,
}

/// Envoy Gateway's names (xDS name scheme v2; see deploy/envoy-gateway/patch-policy.yaml).
fn eg_route_name(route: &Doc, rule: usize, m: usize) -> String {
    format!("httproute/{}/{}/rule/{rule}/match/{m}/*", route.namespace(), route.name())
}
fn eg_route_selector(name: &str) -> String {
    format!("$.virtual_hosts[*].routes[?(@.name=='{name}')]")
}
const EG_ROUTER_SELECTOR: &str = "$..http_filters[?(@.name=='envoy.filters.http.router')]";

fn check_envoy_gateway<'a>(docs: &[&'a Doc]) -> EnvoyGateway<'a> {
    let gateways = of_kind(docs, "Gateway");
    assert_eq!(gateways.len(), 1, "one Gateway");
    let gateway = gateways[0];
    let listeners = gateway.arr_at("/spec/listeners");
    assert_eq!(listeners.len(), 1, "{}: one listener", gateway.what());
    let port = listeners[0]["port"].as_u64().unwrap();
    let (listener_name, route_config_name) = (format!("tcp-{port}"), format!("http-{port}"));
    assert_eq!(listeners[0]["protocol"], "HTTP");

    let routes = of_kind(docs, "HTTPRoute");
    assert_eq!(routes.len(), 1, "one HTTPRoute");
    let route = routes[0];
    assert!(route.arr_at("/spec/parentRefs").iter().any(|p| p["name"] == gateway.name()), "{}: attached", route.what());
    assert!(
        route.v["spec"].get("hostnames").is_none(),
        "{}: no hostnames (the filter rewrites :authority)",
        route.what()
    );

    // Every rule matches the routing header with its own cluster name and routes to a Backend
    // with TLS.
    let prefix = format!("httproute/{}/{}/rule/", route.namespace(), route.name());
    let mut clusters = BTreeMap::new();
    for (i, rule) in route.arr_at("/spec/rules").iter().enumerate() {
        let what = format!("{} rule {i}", route.what());
        for m in rule["matches"].as_array().unwrap() {
            let h = m["headers"].as_array().and_then(|h| h.iter().find(|h| h["name"] == ROUTING_HEADER));
            let h = h.unwrap_or_else(|| panic!("{what}: matches the routing header"));
            assert!(h.get("type").is_none() || h["type"] == "Exact", "{what}: exact header match");
            assert_eq!(h["value"], format!("{prefix}{i}"), "{what}: the header value is the rule's cluster name");
        }
        assert_eq!(rule["timeouts"]["request"], "0s", "{what}: no route timeout (long streams)");
        let removes = rule["filters"].as_array().is_some_and(|f| {
            f.iter().any(|f| {
                f["type"] == "RequestHeaderModifier"
                    && strs(&f["requestHeaderModifier"]["remove"]).contains(ROUTING_HEADER)
            })
        });
        assert!(removes, "{what}: providers never see the routing header");
        let backend_refs = rule["backendRefs"].as_array().unwrap();
        assert_eq!(backend_refs.len(), 1, "{what}: one backend: one cluster");
        assert_eq!(backend_refs[0]["kind"], "Backend");
        let backend = find(docs, "Backend", route.namespace(), backend_refs[0]["name"].as_str().unwrap());
        let fqdn = &backend.arr_at("/spec/endpoints")[0]["fqdn"];
        assert_eq!(backend_refs[0]["port"], fqdn["port"], "{what}: port");
        let tls = of_kind(docs, "BackendTLSPolicy")
            .into_iter()
            .find(|p| {
                p.arr_at("/spec/targetRefs").iter().any(|t| t["kind"] == "Backend" && t["name"] == backend.name())
            })
            .unwrap_or_else(|| panic!("{} has a BackendTLSPolicy", backend.what()));
        let host = fqdn["hostname"].as_str().unwrap().to_string();
        let sni = tls.str_at("/spec/validation/hostname").to_string();
        assert_eq!(sni, host, "{}: SNI / certificate host", tls.what());
        clusters.insert(format!("{prefix}{i}"), (i, host, fqdn["port"].as_u64().unwrap(), sni));
    }

    // The EnvoyPatchPolicy: the listener filter, the routes, the clusters.
    let patches = of_kind(docs, "EnvoyPatchPolicy");
    assert_eq!(patches.len(), 1, "one EnvoyPatchPolicy");
    let patch = patches[0];
    assert_eq!(patch.at("/spec/targetRef/kind"), "Gateway");
    assert_eq!(patch.at("/spec/targetRef/name"), gateway.name());
    let mut filter = None;
    let mut route_actions = BTreeMap::new();
    let mut cluster_filters = BTreeMap::new();
    for p in patch.arr_at("/spec/jsonPatches") {
        let (ty, name, o) = (p["type"].as_str().unwrap(), p["name"].as_str().unwrap(), &p["operation"]);
        let what = format!("{}: {ty} {name}", patch.what());
        match ty {
            "type.googleapis.com/envoy.config.listener.v3.Listener" => {
                assert_eq!(name, listener_name, "{what}: Envoy Gateway's listener name");
                assert_eq!(
                    (o["op"].as_str(), o["jsonPath"].as_str()),
                    (Some("add"), Some(EG_ROUTER_SELECTOR)),
                    "{what}: add at the router's position (before it)"
                );
                assert!(o.get("path").is_none(), "{what}: the pointer is the router's own");
                assert!(filter.replace(&o["value"]).is_none(), "{what}: one downstream filter");
            }
            "type.googleapis.com/envoy.config.route.v3.RouteConfiguration" => {
                assert_eq!(name, route_config_name, "{what}: Envoy Gateway's route configuration name");
                assert_eq!(
                    (o["op"].as_str(), o["path"].as_str()),
                    (Some("replace"), Some("/route")),
                    "{what}: replaces the route action"
                );
                let sel = o["jsonPath"].as_str().unwrap();
                let route_name = sel
                    .strip_prefix("$.virtual_hosts[*].routes[?(@.name=='")
                    .and_then(|s| s.strip_suffix("')]"))
                    .unwrap_or_else(|| panic!("{what}: selects a route by name"));
                assert_eq!(sel, eg_route_selector(route_name), "{what}");
                assert!(
                    route_actions.insert(route_name.to_string(), &o["value"]).is_none(),
                    "{what}: {route_name} twice"
                );
            }
            "type.googleapis.com/envoy.config.cluster.v3.Cluster" => {
                assert!(clusters.contains_key(name), "{what}: a cluster no rule makes");
                assert_eq!(o["op"], "add", "{what}");
                assert_eq!(
                    o["path"],
                    format!("/typed_extension_protocol_options/{HPO_KEY}/http_filters"),
                    "{what}: into Envoy Gateway's protocol options"
                );
                assert!(cluster_filters.insert(name.to_string(), &o["value"]).is_none(), "{what}: twice");
            }
            other => panic!("{}: unexpected patch type {other}", patch.what()),
        }
    }
    let filter = filter.unwrap_or_else(|| panic!("{}: the listener patch", patch.what()));
    let what = format!("{}: the filter", patch.what());
    assert_eq!(filter["typed_config"]["@type"], WASM_TYPE, "{what}");
    assert!(filter.get("disabled").is_none(), "{what}: runs on every route of the dedicated gateway");
    let cfg = &filter["typed_config"]["config"];
    let (text, _) = check_plugin_config(cfg, &what);
    let (config, secrets) = parse_plugin(&text, &what);

    // The module: a versioned file from a ConfigMap the EnvoyProxy mounts.
    let params = gateway.at("/spec/infrastructure/parametersRef");
    assert_eq!(params["kind"], "EnvoyProxy");
    let proxy = find(docs, "EnvoyProxy", gateway.namespace(), params["name"].as_str().unwrap());
    let deployment = proxy.at("/spec/provider/kubernetes/envoyDeployment");
    let file =
        cfg["vm_config"]["code"]["local"]["filename"].as_str().unwrap_or_else(|| panic!("{what}: a local module file"));
    assert!(
        file.ends_with(&format!("/model-workers-{}.wasm", env!("CARGO_PKG_VERSION"))),
        "{what}: {file} carries the crate version"
    );
    let mount = deployment["container"]["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| file.starts_with(&format!("{}/", m["mountPath"].as_str().unwrap())))
        .unwrap_or_else(|| panic!("{}: mounts {file}", proxy.what()));
    let volume = deployment["pod"]["volumes"].as_array().unwrap().iter().find(|v| v["name"] == mount["name"]).unwrap();
    assert!(volume["configMap"]["name"].is_string(), "{}: the module comes from a ConfigMap", proxy.what());

    // Secrets: config → host_env_keys → EnvoyProxy env from a Secret.
    let host_keys = strs(&cfg["vm_config"]["environment_variables"]["host_env_keys"]);
    assert!(
        !secrets.is_empty() && secrets.is_subset(&host_keys),
        "{what}: secrets {secrets:?} ⊆ host_env_keys {host_keys:?}"
    );
    let env = deployment["container"]["env"].as_array().unwrap();
    for s in &secrets {
        let e = env.iter().find(|e| e["name"] == s.as_str()).unwrap_or_else(|| panic!("{}: env {s}", proxy.what()));
        assert!(e["valueFrom"]["secretKeyRef"]["name"].is_string(), "{}: {s} comes from a Secret", proxy.what());
    }

    // Models: a rule's cluster each, the endpoint host being that backend's.
    for m in &config.models {
        assert!(!m.auth.is_empty(), "{what}: model {} injects its provider key", m.name);
        let (_, host, port, _) = clusters
            .get(&m.cluster)
            .unwrap_or_else(|| panic!("{what}: model {} cluster {:?} is no rule", m.name, m.cluster));
        let ep = m.endpoint.as_ref().unwrap_or_else(|| panic!("{what}: model {} needs an endpoint", m.name));
        assert_eq!((&ep.host, u64::from(ep.port)), (host, *port), "{what}: {} endpoint is its backend", m.name);
    }

    // Routes: every match of every rule gets the same, complete action.
    let known: BTreeSet<String> = clusters.keys().cloned().collect();
    let mut expected = BTreeSet::new();
    for (i, rule) in route.arr_at("/spec/rules").iter().enumerate() {
        for j in 0..rule["matches"].as_array().unwrap().len() {
            expected.insert(eg_route_name(route, i, j));
        }
    }
    assert_eq!(
        route_actions.keys().cloned().collect::<BTreeSet<_>>(),
        expected,
        "{}: one route patch per rule match",
        patch.what()
    );
    for (name, action) in &route_actions {
        check_route_action(action, &config, &known, &format!("{}: route {name}", patch.what()));
    }
    assert_eq!(
        route_actions.values().map(|a| a.to_string()).collect::<BTreeSet<_>>().len(),
        1,
        "{}: one action",
        patch.what()
    );

    // Clusters: the same filter — same configuration text, vm_id, module — then the codec.
    for m in &config.models {
        assert!(cluster_filters.contains_key(&m.cluster), "{}: no upstream filter on {}", patch.what(), m.cluster);
    }
    for (name, filters) in &cluster_filters {
        let what = format!("{}: cluster {name}", patch.what());
        let upstream = check_upstream_chain(filters, &what);
        let ucfg = &upstream["typed_config"]["config"];
        assert_eq!(
            check_plugin_config(ucfg, &what),
            check_plugin_config(cfg, &what),
            "{what}: same configuration text and vm_id"
        );
        assert_eq!(upstream, filter, "{what}: the very same filter (module, keys, flags) as downstream");
    }

    // Buffer limits on both sides, the retry breaker.
    let mut buffer_limit = usize::MAX;
    for kind in ["ClientTrafficPolicy", "BackendTrafficPolicy"] {
        let p = of_kind(docs, kind);
        assert_eq!(p.len(), 1, "one {kind}");
        let bytes = quantity_bytes(p[0].str_at("/spec/connection/bufferLimit"));
        assert!(bytes >= config.settings.max_body_bytes, "{}: bufferLimit below max_body_bytes", p[0].what());
        buffer_limit = buffer_limit.min(bytes);
    }
    let btp = of_kind(docs, "BackendTrafficPolicy")[0];
    assert_eq!(btp.at("/spec/targetRefs/0/name"), route.name(), "{}: on the route's clusters", btp.what());
    let max_retries = btp.at("/spec/circuitBreaker/maxParallelRetries").as_u64().unwrap();
    assert!(max_retries >= MIN_MAX_RETRIES, "{}: maxParallelRetries (Envoy's max_retries breaker)", btp.what());
    assert!(max_retries <= u64::from(u32::MAX), "{}: a uint32", btp.what());

    EnvoyGateway {
        config,
        listener_name,
        route_config_name,
        clusters,
        route,
        patch,
        filter,
        mount_path: mount["mountPath"].as_str().unwrap().to_string(),
        buffer_limit,
        max_retries,
    }
}

#[test]
fn envoy_gateway_carries_the_failover_plumbing() {
    let all = docs("envoy-gateway");
    let docs: Vec<&Doc> = all.iter().collect();
    let eg = check_envoy_gateway(&docs);
    assert!(
        of_kind(&docs, "EnvoyExtensionPolicy").is_empty(),
        "the filter comes from the patch policy only (never twice)"
    );
    assert_eq!(eg.clusters.len(), eg.route.arr_at("/spec/rules").len());
    assert!(eg.patch.name() == "model-workers" && eg.mount_path.starts_with('/'));
    assert!(eg.filter["name"].is_string());
}

// ---------------------------------------------------------------------------------------------
// Envoy itself: the assembled configs validate
// ---------------------------------------------------------------------------------------------

/// Istio's EnvoyFilter MERGE (a protobuf merge, istio/istio pkg/proto/merge): messages merge
/// field by field, lists append, map entries (`typed_extension_protocol_options`,
/// `typed_per_filter_config`) and scalars are replaced, and setting one member of the route's
/// cluster-specifier oneof clears the others.
fn istio_merge(dst: &mut Value, src: &Value) {
    const CLUSTER_ONEOF: [&str; 5] = [
        "cluster",
        "cluster_header",
        "weighted_clusters",
        "cluster_specifier_plugin",
        "inline_cluster_specifier_plugin",
    ];
    let (Value::Object(d), Value::Object(s)) = (dst, src) else { panic!("merging {src} into a non-object") };
    for (k, v) in s {
        if CLUSTER_ONEOF.contains(&k.as_str()) {
            for other in CLUSTER_ONEOF {
                d.remove(other);
            }
        }
        if k == "typed_extension_protocol_options" || k == "typed_per_filter_config" {
            let map = d.entry(k.clone()).or_insert_with(|| json!({}));
            for (mk, mv) in v.as_object().unwrap() {
                map[mk] = mv.clone();
            }
            continue;
        }
        match d.get_mut(k) {
            Some(dv @ Value::Object(_)) if v.is_object() => istio_merge(dv, v),
            Some(Value::Array(a)) if v.is_array() => a.extend(v.as_array().unwrap().iter().cloned()),
            _ => {
                d.insert(k.clone(), v.clone());
            }
        }
    }
}

/// The wasm module under test, with its code pointing at `wasm`.
fn with_local_code(wasm_filter_typed_config: &Value, wasm: &Path) -> Value {
    let mut t = wasm_filter_typed_config.clone();
    t["config"]["vm_config"]["code"] = json!({"local": {"filename": wasm.display().to_string()}});
    t
}

/// Resolve an Istio HTTP filter as the proxy would run it: `config_discovery` either inline
/// (the extension config's content, module rewritten to a local file — what istio-agent hands
/// Envoy) or from an ECDS file.
fn istio_filter(filter: &Value, ext: &Value, wasm: &Path, ecds: Option<&Path>) -> Value {
    let mut f = filter.clone();
    let o = f.as_object_mut().unwrap();
    match ecds {
        None => {
            o.remove("config_discovery");
            o.insert("typed_config".into(), with_local_code(&ext["typed_config"], wasm));
        }
        Some(path) => {
            f["config_discovery"]["config_source"] =
                json!({"path_config_source": {"path": path.display().to_string()}, "initial_fetch_timeout": "0s"});
        }
    }
    f
}

/// An Envoy bootstrap as an Istio proxy would get it from these manifests: the listener with the
/// filter before the router, the VirtualService routes (one virtual host per host) with the
/// HTTP_ROUTE patches merged in, the ServiceEntry clusters (TLS, breaker from the
/// DestinationRule) with the CLUSTER patches merged in, buffer limits.
fn istio_bootstrap(docs: &[&Doc], ist: &Istio, wasm: &Path, ecds: Option<&Path>) -> Value {
    let mut routes = Vec::new();
    for (name, r) in &ist.vs_routes {
        let mut route = match r.get("match") {
            Some(m) => {
                let dest = &r["route"][0]["destination"];
                json!({
                    "name": name,
                    "match": {"prefix": "/", "headers": [{"name": ROUTING_HEADER, "string_match": {"exact": m[0]["headers"][ROUTING_HEADER]["exact"]}}]},
                    "route": {"cluster": format!("outbound|{}||{}", dest["port"]["number"], dest["host"].as_str().unwrap()), "timeout": r["timeout"]},
                    "request_headers_to_remove": r["headers"]["request"]["remove"],
                })
            }
            None => json!({
                "name": name,
                "match": {"prefix": "/"},
                "direct_response": {"status": r["directResponse"]["status"], "body": {"inline_string": r["directResponse"]["body"]["string"]}},
            }),
        };
        if let Some((_, patch)) = ist.route_patches.get(name) {
            istio_merge(&mut route, patch);
        }
        routes.push(route);
    }
    let virtual_hosts: Vec<Value> =
        ist.vs_hosts.iter().map(|h| json!({"name": format!("{h}:80"), "domains": [h], "routes": routes})).collect();

    let http_filter = istio_filter(ist.http_filter, ist.ext, wasm, ecds);
    let mut listener = json!({
        "name": "model-workers",
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
        "filter_chains": [{"filters": [{"name": HCM_NAME, "typed_config": {
            "@type": HCM_TYPE,
            "stat_prefix": "model_workers",
            "route_config": {"name": "http.80", "virtual_hosts": virtual_hosts},
            "http_filters": [http_filter, {"name": ROUTER_NAME, "typed_config": {"@type": ROUTER_TYPE}}],
        }}]}],
    });

    let limits: Vec<&Value> = of_kind(docs, "EnvoyFilter")
        .into_iter()
        .flat_map(|ef| ef.arr_at("/spec/configPatches").iter())
        .filter(|p| {
            p["applyTo"] == "LISTENER" || (p["applyTo"] == "CLUSTER" && p["match"]["cluster"]["service"].is_string())
        })
        .collect();
    for p in &limits {
        if p["applyTo"] == "LISTENER" {
            istio_merge(&mut listener, &p["patch"]["value"]);
        }
    }

    let mut clusters = Vec::new();
    for (name, (host, _, target)) in &ist.clusters {
        let dr = of_kind(docs, "DestinationRule").into_iter().find(|d| d.str_at("/spec/host") == host).unwrap();
        let mut c = json!({
            "name": name,
            "type": "STRICT_DNS",
            "connect_timeout": "10s",
            "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {"address": host, "port_value": target}}}}]}]},
            "circuit_breakers": {"thresholds": [{"max_connections": u32::MAX, "max_pending_requests": u32::MAX, "max_requests": u32::MAX,
                "max_retries": dr.at("/spec/trafficPolicy/connectionPool/http/maxRetries"), "track_remaining": true}]},
            "transport_socket": {"name": "envoy.transport_sockets.tls", "typed_config": {"@type": TLS_TYPE, "sni": dr.str_at("/spec/trafficPolicy/tls/sni")}},
        });
        for p in &limits {
            if p["applyTo"] == "CLUSTER" && p["match"]["cluster"]["service"] == host.as_str() {
                istio_merge(&mut c, &p["patch"]["value"]);
            }
        }
        if let Some(patch) = ist.cluster_patches.get(name) {
            istio_merge(&mut c, patch);
            let filters = c["typed_extension_protocol_options"][HPO_KEY]["http_filters"].as_array_mut().unwrap();
            filters[0] = istio_filter(&filters[0], ist.ext, wasm, ecds);
        }
        clusters.push(c);
    }
    json!({
        "node": {"id": "manifests-test", "cluster": "manifests-test"},
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
        "static_resources": {"listeners": [listener], "clusters": clusters},
    })
}

/// JSON-pointer tokens (RFC 6901).
fn pointer_tokens(p: &str) -> Vec<String> {
    if p.is_empty() {
        return Vec::new();
    }
    p.strip_prefix('/').unwrap().split('/').map(|t| t.replace("~1", "/").replace("~0", "~")).collect()
}

fn pointer_push(p: &str, key: &str) -> String {
    format!("{p}/{}", key.replace('~', "~0").replace('/', "~1"))
}

/// One JSON Patch operation (RFC 6902 add / replace / remove), creating missing parents on add
/// as Envoy Gateway does (`EnsurePathExistsOnAdd`).
fn json_patch(doc: &mut Value, op: &str, path: &str, value: Option<&Value>, what: &str) {
    let tokens = pointer_tokens(path);
    let (last, parents) = tokens.split_last().unwrap_or_else(|| panic!("{what}: patching the whole resource"));
    let mut cur = doc;
    for t in parents {
        cur = match cur {
            Value::Object(m) => {
                if op == "add" && !m.contains_key(t) {
                    m.insert(t.clone(), json!({}));
                }
                m.get_mut(t).unwrap_or_else(|| panic!("{what}: {path}: no {t}"))
            }
            Value::Array(a) => {
                a.get_mut(t.parse::<usize>().unwrap()).unwrap_or_else(|| panic!("{what}: {path}: no {t}"))
            }
            _ => panic!("{what}: {path}: {t} below a scalar"),
        };
    }
    let value = || value.unwrap_or_else(|| panic!("{what}: {op} needs a value")).clone();
    match cur {
        Value::Object(m) => match op {
            "add" => {
                m.insert(last.clone(), value());
            }
            "replace" => {
                let slot = m.get_mut(last).unwrap_or_else(|| panic!("{what}: replace {path}: nothing there"));
                *slot = value();
            }
            "remove" => {
                m.remove(last).unwrap_or_else(|| panic!("{what}: remove {path}: nothing there"));
            }
            other => panic!("{what}: op {other}"),
        },
        Value::Array(a) => {
            let i = if last == "-" { a.len() } else { last.parse::<usize>().unwrap() };
            match op {
                "add" => {
                    assert!(i <= a.len(), "{what}: add {path}: index past the end");
                    a.insert(i, value());
                }
                "replace" => a[i] = value(),
                "remove" => {
                    a.remove(i);
                }
                other => panic!("{what}: op {other}"),
            }
        }
        _ => panic!("{what}: {path}: below a scalar"),
    }
}

/// The JSON pointers a JSONPath selects, for the forms the patch policy uses: `$`, `.key`,
/// `..key`, `[*]`, `[?(@.name=='x')]`.
fn json_path(doc: &Value, path: &str, what: &str) -> Vec<String> {
    fn descend<'v>(p: &str, v: &'v Value, key: &str, out: &mut Vec<(String, &'v Value)>) {
        match v {
            Value::Object(m) => {
                for (k, c) in m {
                    if k == key {
                        out.push((pointer_push(p, k), c));
                    }
                    descend(&pointer_push(p, k), c, key, out);
                }
            }
            Value::Array(a) => {
                for (i, c) in a.iter().enumerate() {
                    descend(&pointer_push(p, &i.to_string()), c, key, out);
                }
            }
            _ => {}
        }
    }
    let ident = |s: &str| s.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(s.len());
    let mut rest = path.strip_prefix('$').unwrap_or_else(|| panic!("{what}: {path} does not start at $"));
    let mut nodes: Vec<(String, &Value)> = vec![(String::new(), doc)];
    while !rest.is_empty() {
        let mut next = Vec::new();
        if let Some(r) = rest.strip_prefix("..") {
            let n = ident(r);
            for (p, v) in &nodes {
                descend(p, v, &r[..n], &mut next);
            }
            rest = &r[n..];
        } else if let Some(r) = rest.strip_prefix('.') {
            let n = ident(r);
            for (p, v) in &nodes {
                if let Some(c) = v.get(&r[..n]) {
                    next.push((pointer_push(p, &r[..n]), c));
                }
            }
            rest = &r[n..];
        } else if let Some(r) = rest.strip_prefix("[*]") {
            for (p, v) in &nodes {
                for (i, c) in v.as_array().into_iter().flatten().enumerate() {
                    next.push((pointer_push(p, &i.to_string()), c));
                }
            }
            rest = r;
        } else if let Some(r) = rest.strip_prefix("[?(@.name=='") {
            let end = r.find("')]").unwrap_or_else(|| panic!("{what}: {path}: unterminated filter"));
            let name = &r[..end];
            for (p, v) in &nodes {
                for (i, c) in v.as_array().into_iter().flatten().enumerate() {
                    if c["name"] == name {
                        next.push((pointer_push(p, &i.to_string()), c));
                    }
                }
            }
            rest = &r[end + 3..];
        } else {
            panic!("{what}: {path}: JSONPath form not supported here at {rest:?}");
        }
        nodes = next;
    }
    nodes.into_iter().map(|(p, _)| p).collect()
}

/// Apply the EnvoyPatchPolicy's patches of one resource as Envoy Gateway does: a `jsonPath`
/// is expanded to pointers, `path` appended to each.
fn eg_patch(resource: &mut Value, patches: &[&Value], what: &str) {
    for p in patches {
        let o = &p["operation"];
        let path = o["path"].as_str().unwrap_or("");
        let pointers = match o["jsonPath"].as_str() {
            Some(jp) => {
                let found = json_path(resource, jp, what);
                assert!(!found.is_empty(), "{what}: {jp} selects nothing in the Envoy Gateway-shaped resource");
                found.into_iter().map(|ptr| format!("{ptr}{path}")).collect()
            }
            None => vec![path.to_string()],
        };
        for ptr in pointers {
            json_patch(resource, o["op"].as_str().unwrap(), &ptr, o.get("value"), what);
        }
    }
}

/// Replace every `filename` below `dir` (the module's mount path in the Envoy pod) by `wasm`.
fn relocate_module(v: &mut Value, dir: &str, wasm: &Path) {
    match v {
        Value::Object(m) => {
            for (k, c) in m.iter_mut() {
                if k == "filename" && c.as_str().is_some_and(|f| f.starts_with(dir)) {
                    *c = json!(wasm.display().to_string());
                } else {
                    relocate_module(c, dir, wasm);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|c| relocate_module(c, dir, wasm)),
        _ => {}
    }
}

/// An Envoy bootstrap shaped as Envoy Gateway generates it for these manifests (listener
/// `tcp-<port>` with the router, route configuration `http-<port>` with one route per rule
/// match, one cluster per rule with TLS and `auto_config` protocol options — the shapes of its
/// translator's test data), with the EnvoyPatchPolicy applied.
fn eg_bootstrap(eg: &EnvoyGateway, wasm: &Path) -> Value {
    let ops = eg.patch.arr_at("/spec/jsonPatches");
    let of = |ty: &str, name: &str| -> Vec<&Value> {
        ops.iter().filter(|p| p["type"].as_str().is_some_and(|t| t.ends_with(ty)) && p["name"] == name).collect()
    };
    let mut listener = json!({
        "name": eg.listener_name,
        "address": {"socket_address": {"address": "0.0.0.0", "port_value": 10080}},
        "per_connection_buffer_limit_bytes": eg.buffer_limit,
        "default_filter_chain": {"filters": [{"name": HCM_NAME, "typed_config": {
            "@type": HCM_TYPE,
            "stat_prefix": eg.route_config_name,
            "rds": {"route_config_name": eg.route_config_name, "config_source": {"ads": {}, "resource_api_version": "V3"}},
            "http_filters": [{"name": ROUTER_NAME, "typed_config": {"@type": ROUTER_TYPE}}],
        }}]},
    });
    eg_patch(&mut listener, &of("Listener", &eg.listener_name), &eg.patch.what());

    let mut routes = Vec::new();
    for (i, rule) in eg.route.arr_at("/spec/rules").iter().enumerate() {
        for (j, m) in rule["matches"].as_array().unwrap().iter().enumerate() {
            let header = m["headers"].as_array().unwrap().iter().find(|h| h["name"] == ROUTING_HEADER).unwrap();
            routes.push(json!({
                "name": eg_route_name(eg.route, i, j),
                "match": {"prefix": "/", "headers": [{"name": ROUTING_HEADER, "string_match": {"exact": header["value"]}}]},
                "route": {"cluster": format!("httproute/{}/{}/rule/{i}", eg.route.namespace(), eg.route.name()), "timeout": "0s", "upgrade_configs": [{"upgrade_type": "websocket"}]},
                "request_headers_to_remove": [ROUTING_HEADER],
            }));
        }
    }
    let mut route_config = json!({
        "name": eg.route_config_name,
        "ignore_port_in_host_matching": true,
        "virtual_hosts": [{"name": "*", "domains": ["*"], "routes": routes}],
    });
    eg_patch(&mut route_config, &of("RouteConfiguration", &eg.route_config_name), &eg.patch.what());

    let mut clusters = Vec::new();
    for (name, (_, host, port, sni)) in &eg.clusters {
        let mut c = json!({
            "name": name,
            "type": "STRICT_DNS",
            "connect_timeout": "10s",
            "dns_lookup_family": "V4_PREFERRED",
            "per_connection_buffer_limit_bytes": eg.buffer_limit,
            "circuit_breakers": {"thresholds": [{"max_retries": eg.max_retries}]},
            "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {"address": host, "port_value": port}}}}]}]},
            "transport_socket": {"name": "envoy.transport_sockets.tls", "typed_config": {"@type": TLS_TYPE, "sni": sni, "common_tls_context": {}}},
            "typed_extension_protocol_options": {HPO_KEY: {"@type": HPO_TYPE, "auto_config": {"http_protocol_options": {}, "http2_protocol_options": {}}}},
        });
        eg_patch(&mut c, &of("Cluster", name), &eg.patch.what());
        clusters.push(c);
    }

    // What Envoy runs: the route configuration in place of RDS, the module at a local path.
    let hcm = &mut listener["default_filter_chain"]["filters"][0]["typed_config"];
    hcm.as_object_mut().unwrap().remove("rds");
    hcm["route_config"] = route_config;
    let mut bootstrap = json!({
        "node": {"id": "manifests-test", "cluster": "manifests-test"},
        "static_resources": {"listeners": [listener], "clusters": clusters},
    });
    relocate_module(&mut bootstrap, &eg.mount_path, wasm);
    bootstrap
}

/// A child Envoy, killed (by its own PID) when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn admin_get(addr: &str, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

/// Run the ECDS form for real (validate mode does not read ECDS resources): both the downstream
/// filter and every cluster's upstream copy must accept the one extension config.
fn ecds_loads_everywhere(envoy: &Path, bootstrap: &Path, dir: &Path, label: &str) {
    let admin_file = dir.join(format!("{label}.admin"));
    let _ = fs::remove_file(&admin_file);
    let log = fs::File::create(dir.join(format!("{label}.log"))).unwrap();
    let child = Command::new(envoy)
        .args(["--disable-hot-restart", "--concurrency", "1", "--log-level", "info", "--admin-address-path"])
        .arg(&admin_file)
        .arg("-c")
        .arg(bootstrap)
        .env("OPENAI_API_KEY", "sk-validate")
        .env("ANTHROPIC_API_KEY", "sk-ant-validate")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let _running = Running(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    let stat = |stats: &str, name: &str| -> Option<u64> {
        stats
            .lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(": ")).and_then(|v| v.trim().parse().ok()))
    };
    loop {
        let stats = fs::read_to_string(&admin_file)
            .ok()
            .and_then(|a| admin_get(a.trim(), "/stats?filter=extension_config_discovery"))
            .unwrap_or_default();
        let down = stat(&stats, "extension_config_discovery.http_filter.model-workers.config_reload");
        let up = stat(&stats, "extension_config_discovery.upstream_http_filter.model-workers.config_reload");
        let rejected = stat(&stats, "extension_config_discovery.upstream_http_filter.model-workers.update_rejected")
            .unwrap_or(0)
            + stat(&stats, "extension_config_discovery.http_filter.model-workers.update_rejected").unwrap_or(0);
        assert_eq!(rejected, 0, "{label}: the extension config was rejected:\n{stats}");
        // One subscription downstream, one for the clusters' upstream copies (shared by name).
        if down == Some(1) && up == Some(1) {
            eprintln!("{label}: Envoy loaded the extension config downstream and upstream (ECDS)");
            return;
        }
        assert!(Instant::now() < deadline, "{label}: Envoy did not load the extension config in both places:\n{stats}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn env_path(var: &str, default: &str) -> PathBuf {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(default), PathBuf::from)
}

#[test]
fn envoy_gateway_patches_apply_to_the_generated_shapes() {
    // The patch policy's selectors find their targets in Envoy Gateway-shaped resources, and the
    // result has the filter before the router and the action on every header route (no Envoy
    // needed for this part).
    let all = docs("envoy-gateway");
    let docs: Vec<&Doc> = all.iter().collect();
    let eg = check_envoy_gateway(&docs);
    let b = eg_bootstrap(&eg, Path::new("/nonexistent.wasm"));
    let hcm = &b["static_resources"]["listeners"][0]["default_filter_chain"]["filters"][0]["typed_config"];
    let names: Vec<&str> =
        hcm["http_filters"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap()).collect();
    assert_eq!(names, [eg.filter["name"].as_str().unwrap(), ROUTER_NAME], "the filter just before the router");
    let known: BTreeSet<String> = eg.clusters.keys().cloned().collect();
    for r in hcm["route_config"]["virtual_hosts"][0]["routes"].as_array().unwrap() {
        check_route_action(&r["route"], &eg.config, &known, &format!("patched route {}", r["name"]));
        assert!(strs(&r["request_headers_to_remove"]).contains(ROUTING_HEADER));
    }
    for c in b["static_resources"]["clusters"].as_array().unwrap() {
        let o = &c["typed_extension_protocol_options"][HPO_KEY];
        assert!(o["auto_config"].is_object(), "{}: Envoy Gateway's protocol options kept", c["name"]);
        check_upstream_chain(&o["http_filters"], c["name"].as_str().unwrap());
    }
}

#[test]
fn envoy_accepts_the_assembled_configs() {
    let envoy = env_path("ENVOY_BIN", ".venv/bin/envoy");
    let wasm = env_path("MODEL_WORKERS_WASM", "target/wasm32-wasip1/release/model_workers.wasm");
    if !envoy.is_file() || !wasm.is_file() {
        eprintln!(
            "envoy_accepts_the_assembled_configs: SKIPPED — needs {} and {} (`make envoy wasm`)",
            envoy.display(),
            wasm.display()
        );
        return;
    }
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("manifests");
    fs::create_dir_all(&dir).unwrap();

    let mut bootstraps: Vec<(String, Value)> = Vec::new();
    let istio_all = docs("istio");
    let istio_gw = docs_without(&istio_all, "istio", &["mesh"]);
    let mesh_all = docs("istio/mesh");
    let mesh: Vec<&Doc> = mesh_all.iter().collect();
    for (label, docs, context) in [("istio-gateway", &istio_gw, "GATEWAY"), ("istio-mesh", &mesh, "SIDECAR_OUTBOUND")] {
        let ist = check_istio(docs, context);
        bootstraps.push((format!("{label}-inline"), istio_bootstrap(docs, &ist, &wasm, None)));
        // The ECDS form as the proxy has it: both copies subscribe to one resource.
        let ecds = dir.join(format!("{label}-extension-config.json"));
        let mut resource = ist.ext.clone();
        resource["typed_config"] = with_local_code(&ist.ext["typed_config"], &wasm);
        resource["@type"] = json!("type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig");
        fs::write(&ecds, serde_json::to_string_pretty(&json!({"resources": [resource]})).unwrap()).unwrap();
        bootstraps.push((format!("{label}-ecds"), istio_bootstrap(docs, &ist, &wasm, Some(&ecds))));
    }
    let eg_all = docs("envoy-gateway");
    let eg_docs: Vec<&Doc> = eg_all.iter().collect();
    let eg = check_envoy_gateway(&eg_docs);
    bootstraps.push(("envoy-gateway".into(), eg_bootstrap(&eg, &wasm)));

    for (label, bootstrap) in bootstraps {
        let file = dir.join(format!("{label}.json"));
        fs::write(&file, serde_json::to_string_pretty(&bootstrap).unwrap()).unwrap();
        let out = Command::new(&envoy)
            .args(["--mode", "validate", "--disable-hot-restart", "--log-level", "warn", "-c"])
            .arg(&file)
            // The plugin's on_configure runs in validate mode too; its secrets come from here.
            .env("OPENAI_API_KEY", "sk-validate")
            .env("ANTHROPIC_API_KEY", "sk-ant-validate")
            .output()
            .unwrap();
        let log = String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{label}: envoy --mode validate {} failed:\n{log}", file.display());
        eprintln!("{label}: envoy --mode validate OK ({})", file.display());
        if label.ends_with("-ecds") {
            ecds_loads_everywhere(&envoy, &file, &dir, &label);
        }
    }
}
