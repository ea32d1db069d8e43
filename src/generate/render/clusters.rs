//! The per-model clusters of the generated config (and their callout twins): address, DNS,
//! TLS with SNI and a SAN check for `https://` endpoints, raised limits, the upstream filter.

use super::super::plan::{Address, ClusterPlan, Plan, Source};
use super::xds::filter_discovery;
use super::{q, Out, ANCHOR, BREAKER_LIMIT, CA_BUNDLE, CONNECT_TIMEOUT};

pub(super) fn clusters_comment(o: &mut Out) {
    o.comment(
        2,
        &[
            "One cluster per model cluster name (a model's `cluster` param, else its provider). REQUIRED in each:",
            "- per_connection_buffer_limit_bytes above max_body_bytes, as on the listener;",
            "- circuit_breakers raised: at Envoy's default of 3 concurrent retries per cluster, failovers",
            "  are refused under load;",
            "- the same filter again as an upstream filter (before upstream_codec): it runs once per attempt,",
            "  rewrites the attempt for its model (body `model`, key, path, content-length) and turns a",
            "  retryable failure into status 599, which the route's retry policy retries.",
            "HTTP/1.1 to every provider, TLS or not: the protocol the failover path is verified with.",
        ],
    );
}

/// One cluster at indent 2 (`- name:`) and 4; `callout`: its twin for scheduled prompts,
/// without the upstream filter; `xds_dir`: as a CDS resource, whose upstream filter loads the
/// ECDS file.
pub(super) fn cluster(o: &mut Out, plan: &Plan, c: &ClusterPlan, callout: bool, xds_dir: Option<&str>) {
    let a = &c.address;
    let name = if callout { format!("{}{}", c.name, crate::cron::CALLOUT_CLUSTER_SUFFIX) } else { c.name.clone() };
    let served = c.models.iter().map(|m| format!("`{m}`")).collect::<Vec<_>>().join(", ");
    let from = match c.source {
        Source::Override => "given with --cluster",
        Source::Endpoint => "the `endpoint` param",
        Source::Public => "the provider's public API",
    };
    if callout {
        o.comment(2, &[&format!("Scheduled prompts to {served} (no upstream filter: the root calls it).")]);
    } else {
        o.comment(2, &[&format!("Serves {served}; address: {from}.")]);
    }
    if xds_dir.is_some() {
        o.line(2, "- \"@type\": type.googleapis.com/envoy.config.cluster.v3.Cluster");
        o.line(4, &format!("name: {}", q(&name)));
    } else {
        o.line(2, &format!("- name: {}", q(&name)));
    }
    o.line(4, &format!("type: {}", a.kind()));
    if !a.is_ip() {
        o.line(4, "dns_lookup_family: V4_PREFERRED");
    }
    o.line(4, &format!("connect_timeout: {CONNECT_TIMEOUT}"));
    o.line(4, &format!("per_connection_buffer_limit_bytes: {}   # REQUIRED", plan.buffer_limit_bytes));
    o.line(4, "circuit_breakers:   # REQUIRED");
    o.line(6, "thresholds:");
    o.line(
        6,
        &format!(
            "- {{ priority: DEFAULT, max_connections: {BREAKER_LIMIT}, max_pending_requests: {BREAKER_LIMIT}, max_requests: {BREAKER_LIMIT}, max_retries: {BREAKER_LIMIT} }}"
        ),
    );
    o.line(4, "load_assignment:");
    o.line(6, &format!("cluster_name: {}", q(&name)));
    o.line(6, "endpoints:");
    // No `auto_host_rewrite`: the filter sets each attempt's `:authority` from its model's
    // endpoint (a provider's public API included), so two models on one cluster keep theirs.
    o.line(6, &format!("- lb_endpoints: [{{ endpoint: {{ address: {} }} }}]", socket_address(&a.host, a.port)));
    if a.tls {
        tls(o, a);
    }
    o.line(4, "typed_extension_protocol_options:");
    o.line(6, "envoy.extensions.upstreams.http.v3.HttpProtocolOptions:");
    o.line(8, "\"@type\": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions");
    o.line(8, "explicit_http_config: { http_protocol_options: {} }");
    if callout {
        return;
    }
    o.line(8, "http_filters:   # REQUIRED");
    match xds_dir {
        None => {
            o.line(8, "- name: envoy.filters.http.wasm");
            o.line(
                10,
                &format!("typed_config: *{ANCHOR}   # the listener's filter (YAML alias): same config, same VM"),
            );
        }
        // The listener's filter's ECDS resource: same config, same VM.
        Some(dir) => filter_discovery(o, 8, dir),
    }
    o.line(8, "- name: envoy.filters.http.upstream_codec");
    o.line(
        10,
        "typed_config: { \"@type\": type.googleapis.com/envoy.extensions.filters.http.upstream_codec.v3.UpstreamCodec }",
    );
}

fn tls(o: &mut Out, a: &Address) {
    o.comment(4, &["TLS; the provider's certificate is checked against the system CAs and its name."]);
    o.line(4, "transport_socket:");
    o.line(6, "name: envoy.transport_sockets.tls");
    o.line(6, "typed_config:");
    o.line(8, "\"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext");
    let san_type = if a.is_ip() {
        "IP_ADDRESS"
    } else {
        o.line(8, &format!("sni: {}", q(&a.host)));
        "DNS"
    };
    o.line(8, "common_tls_context:");
    o.line(10, "alpn_protocols: [\"http/1.1\"]");
    o.line(10, "validation_context:");
    o.line(12, &format!("trusted_ca: {{ filename: {} }}", q(CA_BUNDLE)));
    o.line(
        12,
        &format!("match_typed_subject_alt_names: [{{ san_type: {san_type}, matcher: {{ exact: {} }} }}]", q(&a.host)),
    );
}

pub(super) fn socket_address(host: &str, port: u16) -> String {
    format!("{{ socket_address: {{ address: {}, port_value: {port} }} }}", q(host))
}
