//! The files `model-workers apply` writes for Envoy's file-based xDS (ECDS, RDS, CDS), and the
//! config sources that point at them.

use super::super::plan::Plan;
use super::super::Options;
use super::{cluster, clusters_comment, q, route_config, wasm_config, Out};

/// The file names `model-workers apply` writes in its directory.
pub const ECDS_FILE: &str = "ecds.yaml";
pub const RDS_FILE: &str = "rds.yaml";
pub const CDS_FILE: &str = "cds.yaml";

/// The ECDS resource (and the HTTP filters' `name`) both filters load by `config_discovery`.
pub const FILTER_NAME: &str = "model_workers";

pub(super) const WASM_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm";

/// A file-based `ConfigSource`: Envoy watches `path` for a file moved onto it.
pub(super) fn path_source(dir: &str, file: &str) -> String {
    format!("{{ resource_api_version: V3, path_config_source: {{ path: {} }} }}", q(&join(dir, file)))
}

fn join(dir: &str, file: &str) -> String {
    format!("{}/{file}", dir.trim_end_matches('/'))
}

/// `config_discovery` for the wasm filter at `i` (downstream or upstream), in file mode.
pub(super) fn filter_discovery(o: &mut Out, i: usize, dir: &str) {
    o.line(i, &format!("- name: {FILTER_NAME}"));
    o.line(i + 2, "config_discovery:");
    o.line(i + 4, &format!("config_source: {}", path_source(dir, ECDS_FILE)));
    o.line(i + 4, &format!("type_urls: [{}]", q(WASM_TYPE)));
}

fn resources_header(o: &mut Out, what: &str, type_url: &str) {
    o.comment(
        0,
        &[
            &format!("{what}, written by `model-workers apply` from a Spice file. Envoy reloads it when a"),
            "new version is moved onto this path; do not edit it in place.",
        ],
    );
    o.line(0, "resources:");
    o.line(0, &format!("- \"@type\": {type_url}"));
}

/// The ECDS file: the wasm filter's config (the Spice file, verbatim), loaded by the downstream
/// filter and every cluster's upstream filter.
pub fn ecds(config_text: &str, opts: &Options, host_env_keys: &[String]) -> String {
    let mut o = Out::new(4 * 1024 + config_text.len() * 2, 0);
    resources_header(
        &mut o,
        "The model_workers filter's config (ECDS)",
        "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig",
    );
    o.line(2, &format!("name: {FILTER_NAME}"));
    o.line(2, "typed_config:");
    wasm_config(&mut o, 4, config_text, opts, host_env_keys);
    o.text
}

/// The RDS file: the route configuration the listener loads by name.
pub fn rds(plan: &Plan) -> String {
    // The bootstrap writes the route configuration's keys at 12; here they sit at 2.
    let mut o = Out::new(4 * 1024, 10);
    resources_header(
        &mut o,
        "The model_workers route (RDS)",
        "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
    );
    route_config(&mut o, plan);
    o.text
}

/// The CDS file: one cluster per model cluster name, then `extra` (clusters kept from the
/// previous version while in-flight requests drain: JSON, one a line).
pub fn cds(plan: &Plan, dir: &str, extra: &[String]) -> String {
    let mut o = Out::new(4 * 1024 * plan.clusters.len().max(1), 2);
    o.comment(
        0,
        &[
            "The model_workers clusters (CDS), written by `model-workers apply` from a Spice file. Envoy",
            "reloads it when a new version is moved onto this path; do not edit it in place.",
        ],
    );
    clusters_comment(&mut o);
    let start = o.text.len();
    o.line(2, "resources:");
    for c in &plan.clusters {
        cluster(&mut o, plan, c, false, Some(dir));
        if plan.callouts {
            cluster(&mut o, plan, c, true, Some(dir));
        }
    }
    for e in extra {
        o.comment(2, &["Kept from the previous version until in-flight requests have drained."]);
        o.line(2, &format!("- {e}"));
    }
    let version = format!(
        "# A hash of the resources: Envoy shows it as cluster_manager.cds.version_text once it applied\n\
         # them, which `model-workers apply --admin` waits for.\n\
         version_info: \"{}\"\n",
        fnv1a64(o.text.get(start..).unwrap_or_default())
    );
    o.text.insert_str(start, &version);
    o.text
}

/// The `version_info` of a CDS file [`cds`] wrote.
pub fn cds_version(cds: &str) -> Option<&str> {
    cds.lines().find_map(|l| l.strip_prefix("version_info: \"")?.strip_suffix('"'))
}

/// FNV-1a (64 bits) as 16 hex digits: stable across runs and builds, enough to tell versions
/// apart.
fn fnv1a64(text: &str) -> String {
    let h = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    format!("{h:016x}")
}
