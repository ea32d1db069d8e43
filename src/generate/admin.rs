//! What `model-workers apply --admin` asks Envoy's admin, natively and with std only: one
//! HTTP/1.1 `GET` over a `TcpStream`, and the reading of `/stats` that says whether Envoy
//! applied a CDS version ([`super::cds_version`]) and every cluster of it is warm.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// The stats `apply` reads (one `GET /stats?filter=…`).
pub const STATS_PATH: &str = "/stats?filter=%5Ecluster_manager%5C.";

/// Envoy's admin, as `http://HOST:PORT` or `HOST:PORT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admin {
    host: String,
    port: u16,
}

impl Admin {
    pub fn parse(url: &str) -> Result<Admin, String> {
        let bad = || format!("{url:?}: expected http://HOST:PORT (Envoy's admin address)");
        if url.starts_with("https://") {
            return Err(format!("{url:?}: the admin is plain HTTP (http://HOST:PORT)"));
        }
        let rest = url.strip_prefix("http://").unwrap_or(url).trim_end_matches('/');
        if rest.contains('/') {
            return Err(bad());
        }
        let (host, port) = match rest.strip_prefix('[') {
            Some(v6) => v6.split_once("]:").ok_or_else(bad)?,
            None => rest.rsplit_once(':').filter(|(h, _)| !h.contains(':')).ok_or_else(bad)?,
        };
        let port = port.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(bad)?;
        if host.is_empty() {
            return Err(bad());
        }
        Ok(Admin { host: host.to_string(), port })
    }

    /// `GET path`: the status and the body (a chunked body decoded).
    pub fn get(&self, path: &str, timeout: Duration) -> Result<(u16, String), String> {
        let addr = (self.host.as_str(), self.port)
            .to_socket_addrs()
            .map_err(|e| e.to_string())?
            .next()
            .ok_or_else(|| "no address".to_string())?;
        let mut s = TcpStream::connect_timeout(&addr, timeout).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(timeout)).map_err(|e| e.to_string())?;
        s.set_write_timeout(Some(timeout)).map_err(|e| e.to_string())?;
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        write!(s, "GET {path} HTTP/1.1\r\nhost: {host}:{}\r\nconnection: close\r\n\r\n", self.port)
            .map_err(|e| e.to_string())?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).map_err(|e| e.to_string())?;
        parse_response(&raw).ok_or_else(|| "not an HTTP/1.1 response".to_string())
    }
}

impl std::fmt::Display for Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "http://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "http://{}:{}", self.host, self.port)
        }
    }
}

/// Status and body of a whole HTTP/1.1 response (`connection: close`).
fn parse_response(raw: &[u8]) -> Option<(u16, String)> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.strip_prefix("HTTP/1.")?.get(2..5)?.parse().ok()?;
    let chunked = lines.any(|l| {
        l.split_once(':').is_some_and(|(k, v)| {
            k.trim().eq_ignore_ascii_case("transfer-encoding") && v.trim().eq_ignore_ascii_case("chunked")
        })
    });
    Some((status, if chunked { dechunk(body)? } else { body.to_string() }))
}

fn dechunk(mut body: &str) -> Option<String> {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n")?;
        let n = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        if n == 0 {
            return Some(out);
        }
        out.push_str(rest.get(..n)?);
        body = rest.get(n..)?.strip_prefix("\r\n")?;
    }
}

/// What `/stats` says about CDS (None: the stat is not there).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CdsStats {
    /// `cluster_manager.cds.version_text`: the version Envoy last applied.
    pub version: Option<String>,
    /// `cluster_manager.warming_clusters`.
    pub warming: Option<u64>,
    /// `cluster_manager.cds.update_rejected`.
    pub rejected: Option<u64>,
}

impl CdsStats {
    pub fn parse(stats: &str) -> CdsStats {
        let mut s = CdsStats::default();
        for line in stats.lines() {
            let Some((name, value)) = line.split_once(": ") else { continue };
            let value = value.trim();
            match name {
                "cluster_manager.cds.version_text" => {
                    s.version = Some(value.trim_matches('"').to_string());
                }
                "cluster_manager.warming_clusters" => s.warming = value.parse().ok(),
                "cluster_manager.cds.update_rejected" => s.rejected = value.parse().ok(),
                _ => {}
            }
        }
        s
    }

    /// Whether `version` is applied and warm, given `update_rejected` before it was written.
    pub fn judge(&self, version: &str, rejected_before: u64) -> Warm {
        if self.version.as_deref() == Some(version) {
            return if self.warming == Some(0) { Warm::Ready } else { Warm::Warming };
        }
        if self.rejected.is_some_and(|r| r > rejected_before) {
            return Warm::Rejected;
        }
        Warm::NotYet
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Warm {
    /// Envoy has not applied the version (yet).
    NotYet,
    /// Applied; some cluster is still warming.
    Warming,
    /// Applied, and no cluster is warming: the new clusters are active on every thread.
    Ready,
    /// Envoy refused an update since (its log says why).
    Rejected,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn admin_addresses() {
        for (url, want) in [
            ("http://127.0.0.1:9901", Some(("127.0.0.1", 9901))),
            ("127.0.0.1:9901", Some(("127.0.0.1", 9901))),
            ("http://localhost:19000/", Some(("localhost", 19000))),
            ("http://[::1]:9901", Some(("::1", 9901))),
            ("https://127.0.0.1:9901", None),
            ("http://127.0.0.1", None),
            ("http://127.0.0.1:0", None),
            ("http://127.0.0.1:9901/stats", None),
            ("::1:9901", None),
            (":9901", None),
        ] {
            let got = Admin::parse(url).ok();
            assert_eq!(got, want.map(|(h, p)| Admin { host: h.to_string(), port: p }), "{url}");
        }
        assert_eq!(Admin::parse("[::1]:9901").unwrap().to_string(), "http://[::1]:9901");
    }

    #[test]
    fn responses_plain_and_chunked() {
        let plain = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\na: 1\nb: 2\n";
        assert_eq!(parse_response(plain), Some((200, "a: 1\nb: 2\n".to_string())));
        let chunked =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\na: 1\n\r\n5;x=y\r\nb: 2\n\r\n0\r\n\r\n";
        assert_eq!(parse_response(chunked), Some((200, "a: 1\nb: 2\n".to_string())));
        assert_eq!(parse_response(b"HTTP/1.1 404 Not Found\r\n\r\n"), Some((404, String::new())));
        // Cut short or not HTTP: None, never a panic.
        assert_eq!(parse_response(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nff\r\nab"), None);
        assert_eq!(parse_response(b"SSH-2.0-x\r\n\r\n"), None);
        assert_eq!(parse_response(b""), None);
    }

    #[test]
    fn cds_stats_are_judged_by_version_then_warming_then_rejections() {
        let stats = |version: &str, warming: u64, rejected: u64| {
            CdsStats::parse(&format!(
                "cluster_manager.active_clusters: 3\ncluster_manager.cds.update_rejected: {rejected}\ncluster_manager.cds.version_text: \"{version}\"\ncluster_manager.warming_clusters: {warming}\n"
            ))
        };
        // (version Envoy shows, warming, rejected so far, rejected before) → verdict for "new"
        let cases = [
            ("old", 0, 0, 0, Warm::NotYet),
            ("old", 1, 0, 0, Warm::NotYet),
            ("new", 1, 0, 0, Warm::Warming),
            ("new", 0, 0, 0, Warm::Ready),
            ("new", 0, 3, 2, Warm::Ready),
            ("old", 0, 3, 2, Warm::Rejected),
            ("old", 0, 2, 2, Warm::NotYet),
        ];
        for (version, warming, rejected, before, want) in cases {
            assert_eq!(stats(version, warming, rejected).judge("new", before), want, "{version} {warming} {rejected}");
        }
        assert_eq!(stats("v", 2, 7), CdsStats { version: Some("v".into()), warming: Some(2), rejected: Some(7) });
        // Not Envoy's stats: nothing known, never ready.
        let none = CdsStats::parse("<html>");
        assert_eq!(none, CdsStats::default());
        assert_eq!(none.judge("new", 0), Warm::NotYet);
    }
}

/// The stats `apply` reads for the filter config (ECDS).
pub const ECDS_STATS_PATH: &str = "/stats?filter=%5Eextension_config_discovery%5C.";

/// What `/stats` says about the filter config resource `name` (ECDS), per filter that loads
/// it: the listener's (`http_filter`) and the clusters' (`upstream_http_filter`), each with
/// its own subscription to the same file. None: no such stat.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EcdsStats {
    pub success: [Option<u64>; 2],
    pub rejected: [Option<u64>; 2],
}

const ECDS_LOADERS: [&str; 2] = ["http_filter", "upstream_http_filter"];

impl EcdsStats {
    pub fn parse(stats: &str, name: &str) -> EcdsStats {
        let mut s = EcdsStats::default();
        for line in stats.lines() {
            let Some((stat, value)) = line.split_once(": ") else { continue };
            let Ok(value) = value.trim().parse::<u64>() else { continue };
            let Some(rest) = stat.strip_prefix("extension_config_discovery.") else { continue };
            for (k, kind) in ECDS_LOADERS.iter().enumerate() {
                let Some(counter) = rest
                    .strip_prefix(kind)
                    .and_then(|r| r.strip_prefix('.'))
                    .and_then(|r| r.strip_prefix(name))
                    .and_then(|r| r.strip_prefix('.'))
                else {
                    continue;
                };
                let slot = match counter {
                    "update_success" => s.success.get_mut(k),
                    "update_rejected" => s.rejected.get_mut(k),
                    _ => None,
                };
                if let Some(slot) = slot {
                    *slot = Some(value);
                }
            }
        }
        s
    }

    /// Whether any loader has the resource at all (else this Envoy does not load it by ECDS).
    pub fn present(&self) -> bool {
        self.success.iter().any(Option::is_some)
    }

    /// After a write, against the stats before it: `Some(false)` when a loader refused it,
    /// `Some(true)` when every loader that had the resource applied it, else not yet.
    pub fn judge(&self, before: &EcdsStats) -> Option<bool> {
        let grew = |now: &[Option<u64>; 2], then: &[Option<u64>; 2], k: usize| {
            now.get(k).copied().flatten().unwrap_or(0) > then.get(k).copied().flatten().unwrap_or(0)
        };
        if (0..2).any(|k| grew(&self.rejected, &before.rejected, k)) {
            return Some(false);
        }
        let loaders: Vec<usize> = (0..2).filter(|k| before.success.get(*k).copied().flatten().is_some()).collect();
        (!loaders.is_empty() && loaders.iter().all(|k| grew(&self.success, &before.success, *k))).then_some(true)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod ecds_tests {
    use super::*;

    const STATS: &str = "extension_config_discovery.http_filter.model_workers.update_success: 1\n\
extension_config_discovery.http_filter.model_workers.update_rejected: 0\n\
extension_config_discovery.upstream_http_filter.model_workers.update_success: 1\n\
extension_config_discovery.upstream_http_filter.model_workers.update_rejected: 2\n\
extension_config_discovery.http_filter.model_workers_x.update_success: 9\n\
extension_config_discovery.http_filter.model_workers.version_text: \"\"\n";

    #[test]
    fn ecds_stats_are_read_per_loader_for_the_named_resource_only() {
        let s = EcdsStats::parse(STATS, "model_workers");
        assert_eq!(s, EcdsStats { success: [Some(1), Some(1)], rejected: [Some(0), Some(2)] });
        assert!(s.present());
        assert!(!EcdsStats::parse("", "model_workers").present());
        let before = s;
        assert_eq!(s.judge(&before), None, "nothing new yet");
        assert_eq!(EcdsStats { success: [Some(2), Some(1)], ..s }.judge(&before), None, "one loader of two");
        assert_eq!(EcdsStats { success: [Some(2), Some(2)], ..s }.judge(&before), Some(true));
        assert_eq!(EcdsStats { rejected: [Some(1), Some(2)], ..s }.judge(&before), Some(false));
        assert_eq!(
            EcdsStats { success: [Some(2), Some(2)], rejected: [Some(0), Some(3)] }.judge(&before),
            Some(false),
            "a refusal wins"
        );
    }
}
