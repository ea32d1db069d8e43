//! The Kubernetes manifests under deploy/: every YAML document is a resource of a known kind
//! with the fields that kind needs, every embedded plugin configuration is accepted by the
//! filter's own parser, and every cluster a model names is routed (routing-header value →
//! destination) by the manifests of the same platform, with TLS, secrets and the
//! `allow_on_headers_stop_iteration` flag wired the way the filter needs them.
//!
//! Pure file checks: no cluster, no network, well under a second.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use model_workers::config::Config;
use serde::Deserialize;
use serde_json::Value;

const WASM_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm";
const IMAGE_REPOSITORY: &str = "registry.example.com/model-workers";

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

fn find<'a>(docs: &'a [Doc], kind: &str, namespace: &str, name: &str) -> &'a Doc {
    docs.iter()
        .find(|d| d.kind() == kind && d.namespace() == namespace && d.name() == name)
        .unwrap_or_else(|| panic!("no {kind} {namespace}/{name}"))
}

fn of_kind<'a>(docs: &'a [Doc], kind: &str) -> Vec<&'a Doc> {
    docs.iter().filter(|d| d.kind() == kind).collect()
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
    (config, asked.into_inner())
}

/// A structured plugin config (WasmPlugin.pluginConfig, EnvoyExtensionPolicy wasm.config)
/// reaches the plugin as JSON text.
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
            d.arr_at("/spec/gateways");
            for route in d.arr_at("/spec/http") {
                let matches = route["match"].as_array().unwrap_or_else(|| panic!("{}: http[].match", d.what()));
                for m in matches {
                    assert!(
                        m["headers"]["x-model-workers-cluster"]["exact"].is_string(),
                        "{}: every route matches the routing header exactly",
                        d.what()
                    );
                }
                assert!(route["route"][0]["destination"]["host"].is_string(), "{}: destination", d.what());
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
                assert_eq!(w["code"]["type"], "Image", "{}", d.what());
                let url = w["code"]["image"]["url"].as_str().unwrap_or_else(|| panic!("{}: code.image.url", d.what()));
                check_image_ref(&d.what(), url);
                assert!(w["config"].is_object(), "{}: wasm[].config", d.what());
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
    assert!(all.len() >= 10, "found {} documents under deploy/", all.len());
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
    for platform in ["istio", "envoy-gateway"] {
        assert!(!docs(platform).is_empty(), "deploy/{platform} has manifests");
    }
}

// ---------------------------------------------------------------------------------------------
// Istio
// ---------------------------------------------------------------------------------------------

#[test]
fn istio_routes_every_model_cluster() {
    let docs = docs("istio");

    // Routing-header value → (host, port), from the VirtualServices.
    let mut routes: BTreeMap<String, (String, u64)> = BTreeMap::new();
    let mut vs_hosts = BTreeSet::new();
    let gateways = of_kind(&docs, "Gateway");
    assert_eq!(gateways.len(), 1, "one Istio Gateway");
    let gateway = gateways[0];
    for vs in of_kind(&docs, "VirtualService") {
        assert!(vs.arr_at("/spec/gateways").iter().any(|g| g == gateway.name()), "{}: bound to the gateway", vs.what());
        vs_hosts.extend(vs.arr_at("/spec/hosts").iter().map(|h| h.as_str().unwrap().to_string()));
        for r in vs.arr_at("/spec/http") {
            let value = r["match"][0]["headers"]["x-model-workers-cluster"]["exact"].as_str().unwrap().to_string();
            let dest = &r["route"][0]["destination"];
            let target = (dest["host"].as_str().unwrap().to_string(), dest["port"]["number"].as_u64().unwrap());
            assert_eq!(r["timeout"], "0s", "{}: no route timeout (long streams)", vs.what());
            assert_eq!(r["retries"]["attempts"], 0, "{}: the filter owns retries", vs.what());
            assert!(routes.insert(value.clone(), target).is_none(), "{}: {value} routed twice", vs.what());
        }
    }
    let gateway_hosts: BTreeSet<String> = gateway
        .arr_at("/spec/servers")
        .iter()
        .flat_map(|s| s["hosts"].as_array().unwrap().iter().map(|h| h.as_str().unwrap().to_string()))
        .collect();
    let gateway_labels = gateway.at("/spec/selector");

    // ServiceEntry (host, port) pairs, DestinationRule TLS per host.
    let mut service_ports = BTreeSet::new();
    for se in of_kind(&docs, "ServiceEntry") {
        assert_eq!(se.str_at("/spec/location"), "MESH_EXTERNAL", "{}", se.what());
        for h in se.arr_at("/spec/hosts") {
            for p in se.arr_at("/spec/ports") {
                service_ports.insert((h.as_str().unwrap().to_string(), p["number"].as_u64().unwrap()));
            }
        }
    }
    let mut tls: BTreeMap<String, (String, String)> = BTreeMap::new();
    for dr in of_kind(&docs, "DestinationRule") {
        tls.insert(
            dr.str_at("/spec/host").to_string(),
            (
                dr.str_at("/spec/trafficPolicy/tls/mode").to_string(),
                dr.str_at("/spec/trafficPolicy/tls/sni").to_string(),
            ),
        );
    }

    // Every header route goes to a ServiceEntry port with TLS origination, under Istio's own
    // cluster name (which the filter's callouts dispatch to).
    for (value, (host, port)) in &routes {
        assert_eq!(value, &format!("outbound|{port}||{host}"), "header value is the Istio cluster name");
        assert!(service_ports.contains(&(host.clone(), *port)), "{host}:{port} has a ServiceEntry");
        let (mode, sni) = tls.get(host).unwrap_or_else(|| panic!("{host} has a DestinationRule"));
        assert_eq!((mode.as_str(), sni.as_str()), ("SIMPLE", host.as_str()), "{host}: TLS origination with SNI");
    }

    // The plugin configs: the EnvoyFilter's (the one applied) and the WasmPlugin's.
    let mut configs: Vec<(String, String, BTreeSet<String>)> = Vec::new(); // (what, text, env keys)
    for ef in of_kind(&docs, "EnvoyFilter") {
        let patches = ef.arr_at("/spec/configPatches");
        let extension: Vec<&Value> = patches.iter().filter(|p| p["applyTo"] == "EXTENSION_CONFIG").collect();
        if extension.is_empty() {
            continue;
        }
        assert_eq!(&ef.v["spec"]["workloadSelector"]["labels"], gateway_labels, "{}: on the gateway", ef.what());
        for p in extension {
            assert_eq!(p["patch"]["operation"], "ADD", "{}", ef.what());
            let value = &p["patch"]["value"];
            let name = value["name"].as_str().unwrap();
            let typed = &value["typed_config"];
            assert_eq!(typed["@type"], WASM_TYPE, "{}", ef.what());
            let cfg = &typed["config"];
            assert_eq!(
                cfg["allow_on_headers_stop_iteration"],
                true,
                "{}: the filter reads the body before routing",
                ef.what()
            );
            assert_eq!(cfg["failure_policy"], "FAIL_RELOAD", "{}: FAIL_RELOAD in every shipped config", ef.what());
            assert!(
                cfg["reload_config"]["backoff"]["base_interval"].is_string(),
                "{}: short reload backoff",
                ef.what()
            );
            let uri = cfg["vm_config"]["code"]["remote"]["http_uri"]["uri"].as_str().unwrap();
            assert!(uri.starts_with("oci://"), "{}: fetched by istio-agent from OCI", ef.what());
            check_image_ref(&ef.what(), uri);
            assert_eq!(cfg["configuration"]["@type"], "type.googleapis.com/google.protobuf.StringValue");
            let text = cfg["configuration"]["value"].as_str().unwrap().to_string();
            let env: BTreeSet<String> = cfg["vm_config"]["environment_variables"]["host_env_keys"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k.as_str().unwrap().to_string())
                .collect();

            // The HTTP filter that loads it: by name, via ECDS, just before the router.
            let http = patches
                .iter()
                .find(|p| p["applyTo"] == "HTTP_FILTER" && p["patch"]["value"]["name"] == name)
                .unwrap_or_else(|| panic!("{}: an HTTP_FILTER patch loads {name}", ef.what()));
            assert_eq!(http["patch"]["operation"], "INSERT_BEFORE");
            assert_eq!(http["match"]["context"], "GATEWAY");
            assert_eq!(
                http["match"]["listener"]["filterChain"]["filter"]["subFilter"]["name"],
                "envoy.filters.http.router"
            );
            let discovery = &http["patch"]["value"]["config_discovery"];
            assert!(discovery["type_urls"].as_array().unwrap().iter().any(|t| t == WASM_TYPE));
            assert!(discovery["config_source"]["ads"].is_object());
            configs.push((format!("{} ({name})", ef.what()), text, env));
        }
    }
    for wp in of_kind(&docs, "WasmPlugin") {
        assert_eq!(wp.at("/spec/selector/matchLabels"), gateway_labels, "{}: on the gateway", wp.what());
        let env: BTreeSet<String> = wp.v["spec"]["vmConfig"]["env"]
            .as_array()
            .map(|a| {
                a.iter().filter(|e| e["valueFrom"] == "HOST").map(|e| e["name"].as_str().unwrap().to_string()).collect()
            })
            .unwrap_or_default();
        configs.push((wp.what(), as_json_text(wp.at("/spec/pluginConfig")), env));
    }
    assert_eq!(configs.len(), 2, "the EnvoyFilter's and the WasmPlugin's plugin configs");

    let mut shapes = BTreeSet::new();
    for (what, text, env) in &configs {
        let (config, secrets) = parse_plugin(text, what);
        let shape: Vec<(String, String)> = config.models.iter().map(|m| (m.name.clone(), m.cluster.clone())).collect();
        let workers: Vec<String> = config.workers.iter().map(|w| w.name.clone()).collect();
        shapes.insert((shape, workers));
        assert!(!secrets.is_empty(), "{what}: provider keys come from secrets");
        assert!(secrets.is_subset(env), "{what}: secrets {secrets:?} must be host env keys {env:?}");
        assert_eq!(config.settings.routing_header, "x-model-workers-cluster", "{what}: the header the routes match");
        for m in &config.models {
            assert!(!m.auth.is_empty(), "{what}: model {} injects its provider key", m.name);
            let (host, port) = routes
                .get(&m.cluster)
                .unwrap_or_else(|| panic!("{what}: model {} cluster {:?} has no route", m.name, m.cluster));
            let authority =
                &m.endpoint.as_ref().unwrap_or_else(|| panic!("{what}: model {} needs an endpoint", m.name)).authority;
            // The filter sets :authority to the endpoint host, for the routed attempt and for
            // failover callouts: it must be the TLS host, and the gateway and routes must match it.
            assert!(
                authority == host || authority == &format!("{host}:{port}"),
                "{what}: {} endpoint {authority} vs {host}",
                m.name
            );
            assert!(gateway_hosts.contains(host) && vs_hosts.contains(host), "{what}: gateway and routes serve {host}");
        }
        assert!(
            routes.keys().all(|c| config.models.iter().any(|m| &m.cluster == c)),
            "{what}: every route serves some model"
        );
    }
    assert_eq!(shapes.len(), 1, "the EnvoyFilter and the WasmPlugin carry the same models and workers");
}

// ---------------------------------------------------------------------------------------------
// Envoy Gateway
// ---------------------------------------------------------------------------------------------

#[test]
fn envoy_gateway_routes_every_model_cluster() {
    let docs = docs("envoy-gateway");

    let gateways = of_kind(&docs, "Gateway");
    assert_eq!(gateways.len(), 1, "one Gateway");
    let gateway = gateways[0];
    let gw_ns = gateway.namespace();

    let policies = of_kind(&docs, "EnvoyExtensionPolicy");
    assert_eq!(policies.len(), 1, "one EnvoyExtensionPolicy");
    let policy = policies[0];
    let wasm = policy.arr_at("/spec/wasm");
    assert_eq!(wasm.len(), 1, "one wasm extension");
    let w = &wasm[0];
    let target = &policy.arr_at("/spec/targetRefs")[0];
    assert_eq!(target["kind"], "HTTPRoute");
    let route = find(&docs, "HTTPRoute", policy.namespace(), target["name"].as_str().unwrap());
    assert!(
        route.arr_at("/spec/parentRefs").iter().any(|p| p["name"] == gateway.name()),
        "{}: attached to the gateway",
        route.what()
    );
    assert!(
        route.v["spec"].get("hostnames").is_none(),
        "{}: no hostnames (the filter rewrites :authority)",
        route.what()
    );

    let what = policy.what();
    let (config, secrets) = parse_plugin(&as_json_text(&w["config"]), &what);
    let header = config.settings.routing_header.clone();

    // Every rule that matches the routing header carries its own Envoy Gateway cluster name.
    let rules = route.arr_at("/spec/rules");
    let prefix = format!("httproute/{}/{}/rule/", route.namespace(), route.name());
    let mut entry_rule = false;
    for (i, rule) in rules.iter().enumerate() {
        let values: Vec<String> = rule["matches"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|m| m["headers"].as_array().cloned().unwrap_or_default())
            .filter(|h| h["name"] == header.as_str())
            .map(|h| {
                assert!(h.get("type").is_none() || h["type"] == "Exact", "{}: exact header match", route.what());
                h["value"].as_str().unwrap().to_string()
            })
            .collect();
        if values.is_empty() {
            entry_rule = true;
            assert!(
                rule["backendRefs"].as_array().cloned().unwrap_or_default().is_empty(),
                "{}: the catch-all rule has no backend",
                route.what()
            );
        } else {
            for v in values {
                assert_eq!(v, format!("{prefix}{i}"), "{}: rule {i} header value is its cluster name", route.what());
            }
            assert_eq!(rule["timeouts"]["request"], "0s", "{}: no route timeout (long streams)", route.what());
        }
    }
    assert!(entry_rule, "{}: a catch-all rule on which requests first meet the filter", route.what());

    for m in &config.models {
        assert!(!m.auth.is_empty(), "{what}: model {} injects its provider key", m.name);
        let index: usize = m.cluster.strip_prefix(&prefix).and_then(|i| i.parse().ok()).unwrap_or_else(|| {
            panic!("{what}: model {} cluster {:?} is not a rule of {}", m.name, m.cluster, route.what())
        });
        let rule = rules.get(index).unwrap_or_else(|| panic!("{what}: {} has no rule {index}", route.what()));
        let backend_ref = &rule["backendRefs"][0];
        assert_eq!(backend_ref["kind"], "Backend");
        let backend = find(&docs, "Backend", route.namespace(), backend_ref["name"].as_str().unwrap());
        let fqdn = &backend.arr_at("/spec/endpoints")[0]["fqdn"];
        let host = fqdn["hostname"].as_str().unwrap();
        assert_eq!(backend_ref["port"], fqdn["port"], "{}: port", route.what());
        let authority =
            &m.endpoint.as_ref().unwrap_or_else(|| panic!("{what}: model {} needs an endpoint", m.name)).authority;
        assert_eq!(authority, host, "{what}: model {} endpoint host is the backend's", m.name);
        let tls = of_kind(&docs, "BackendTLSPolicy")
            .into_iter()
            .find(|p| {
                p.arr_at("/spec/targetRefs").iter().any(|t| t["kind"] == "Backend" && t["name"] == backend.name())
            })
            .unwrap_or_else(|| panic!("{} has a BackendTLSPolicy", backend.what()));
        assert_eq!(tls.str_at("/spec/validation/hostname"), host, "{}: SNI / certificate host", tls.what());
    }

    // Secrets: config → hostKeys → EnvoyProxy env from a Secret.
    let host_keys: BTreeSet<String> =
        w["env"]["hostKeys"].as_array().unwrap().iter().map(|k| k.as_str().unwrap().to_string()).collect();
    assert!(
        !secrets.is_empty() && secrets.is_subset(&host_keys),
        "{what}: secrets {secrets:?} ⊆ hostKeys {host_keys:?}"
    );
    let params = gateway.at("/spec/infrastructure/parametersRef");
    assert_eq!(params["kind"], "EnvoyProxy");
    let proxy = find(&docs, "EnvoyProxy", gw_ns, params["name"].as_str().unwrap());
    let env = proxy.arr_at("/spec/provider/kubernetes/envoyDeployment/container/env");
    for s in &secrets {
        let e = env.iter().find(|e| e["name"] == s.as_str()).unwrap_or_else(|| panic!("{}: env {s}", proxy.what()));
        assert!(e["valueFrom"]["secretKeyRef"]["name"].is_string(), "{}: {s} comes from a Secret", proxy.what());
    }

    // The patch that sets allow_on_headers_stop_iteration names the listener and filter that
    // Envoy Gateway generates for this gateway and policy.
    let patch = of_kind(&docs, "EnvoyPatchPolicy");
    assert_eq!(patch.len(), 1, "one EnvoyPatchPolicy");
    let patch = patch[0];
    assert_eq!(patch.at("/spec/targetRef/kind"), "Gateway");
    assert_eq!(patch.at("/spec/targetRef/name"), gateway.name());
    let listeners: Vec<String> = gateway
        .arr_at("/spec/listeners")
        .iter()
        .map(|l| format!("{gw_ns}/{}/{}", gateway.name(), l["name"].as_str().unwrap()))
        .collect();
    let filter =
        format!("envoy.filters.http.wasm/envoyextensionpolicy/{}/{}/wasm/0", policy.namespace(), policy.name());
    let ops = patch.arr_at("/spec/jsonPatches");
    assert!(
        ops.iter().any(|p| {
            p["type"] == "type.googleapis.com/envoy.config.listener.v3.Listener"
                && listeners.iter().any(|l| p["name"] == l.as_str())
                && p["operation"]["op"] == "add"
                && p["operation"]["jsonPath"].as_str().is_some_and(|j| j.contains(&format!("'{filter}'")))
                && p["operation"]["path"] == "/allow_on_headers_stop_iteration"
                && p["operation"]["value"] == true
        }),
        "{}: sets allow_on_headers_stop_iteration on {filter} in one of {listeners:?}",
        patch.what()
    );
    assert!(
        ops.iter().any(|p| {
            p["operation"]["jsonPath"].as_str().is_some_and(|j| j.contains(&format!("'{filter}'")))
                && p["operation"]["path"] == "/failure_policy"
                && p["operation"]["value"] == "FAIL_RELOAD"
        }),
        "{}: FAIL_RELOAD in every shipped config",
        patch.what()
    );

    // Buffer limits on both sides, at least the plugin's body limit.
    for kind in ["ClientTrafficPolicy", "BackendTrafficPolicy"] {
        let p = of_kind(&docs, kind);
        assert_eq!(p.len(), 1, "one {kind}");
        let limit = p[0].str_at("/spec/connection/bufferLimit");
        let bytes: usize = match limit.strip_suffix("Mi") {
            Some(n) => n.parse::<usize>().unwrap() * 1024 * 1024,
            None => limit.parse().unwrap(),
        };
        assert!(bytes >= config.settings.max_body_bytes, "{}: bufferLimit {limit} below max_body_bytes", p[0].what());
    }
}

#[test]
fn istio_buffer_limits_cover_the_body_limit() {
    let docs = docs("istio");
    let (config, _) = {
        let ef = find(&docs, "EnvoyFilter", "istio-ingress", "model-workers");
        let text = ef.arr_at("/spec/configPatches")[0]["patch"]["value"]["typed_config"]["config"]["configuration"]
            ["value"]
            .as_str()
            .unwrap()
            .to_string();
        parse_plugin(&text, &ef.what())
    };
    let limits = find(&docs, "EnvoyFilter", "istio-ingress", "model-workers-buffer-limits");
    let patches = limits.arr_at("/spec/configPatches");
    assert!(patches.iter().any(|p| p["applyTo"] == "LISTENER"), "{}: the listener", limits.what());
    let clusters: BTreeSet<&str> = patches
        .iter()
        .filter(|p| p["applyTo"] == "CLUSTER")
        .map(|p| p["match"]["cluster"]["service"].as_str().unwrap())
        .collect();
    for p in patches {
        let bytes = p["patch"]["value"]["per_connection_buffer_limit_bytes"].as_u64().unwrap();
        assert!(bytes as usize >= config.settings.max_body_bytes, "{}: limit below max_body_bytes", limits.what());
    }
    for m in &config.models {
        let host = &m.endpoint.as_ref().unwrap().authority;
        assert!(clusters.contains(host.as_str()), "{}: buffer limit for {host}", limits.what());
    }
}
