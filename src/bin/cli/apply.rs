//! `model-workers apply`: the live-reload files, written atomically in an order that keeps
//! every request routable, optionally waiting for Envoy's admin to report new clusters warm.

use std::io::Write;
use std::process::ExitCode;

use model_workers::generate::admin::{Admin, CdsStats, EcdsStats, Warm, ECDS_STATS_PATH, STATS_PATH};
use model_workers::generate::{self, Options};

use super::{read, Warmup, POLL_MS};

/// `check`, then the live-reload files, each written atomically, in an order that never
/// lets a request find no cluster: the clusters of both versions first (then, when they
/// changed, `warmup` for new ones to warm), the route of both versions, the new filter
/// config, and, after `grace_ms` for requests in flight, the route and clusters of the new
/// version alone.
pub(super) fn apply(file: &str, opts: &Options, grace_ms: u64, warmup: &Warmup) -> ExitCode {
    let Some(dir) = opts.xds_dir.as_deref() else { return ExitCode::from(2) };
    let bytes = match read(file) {
        Ok(b) => b,
        Err(code) => return code,
    };
    let env = |name: &str| {
        opts.env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()).or_else(|| std::env::var(name).ok())
    };
    let summary = match generate::check_bytes(&bytes, &env) {
        Ok(s) => s,
        Err(line) => {
            println!("{line}");
            eprintln!("model-workers: nothing applied: {dir} is unchanged");
            return ExitCode::FAILURE;
        }
    };
    let xds = match generate::config_text(&bytes)
        .map_err(|l| l.to_string())
        .and_then(|t| generate::xds(t, opts).map_err(|e| format!("model-workers: {e}")))
    {
        Ok(x) => x,
        Err(line) => {
            eprintln!("{line}");
            return ExitCode::FAILURE;
        }
    };
    let dir_path = std::path::Path::new(dir);
    if let Err(e) = std::fs::create_dir_all(dir_path) {
        eprintln!("model-workers: cannot create {dir}: {e}");
        return ExitCode::FAILURE;
    }
    let old = |name: &str| std::fs::read_to_string(dir_path.join(name)).ok();
    let rds_both = old(generate::RDS_FILE).and_then(|o| xds.rds_keeping(&o)).filter(|r| *r != xds.rds);
    let cds_both = old(generate::CDS_FILE).and_then(|o| xds.cds_keeping(&o)).filter(|c| *c != xds.cds);
    let old_cds = old(generate::CDS_FILE);
    let cds_first = cds_both.as_deref().unwrap_or(&xds.cds);
    let changed = old_cds.as_deref().is_some_and(|o| o != cds_first);
    // With --admin, Envoy's admin must answer before anything is written.
    let rejected_before = match (changed, warmup) {
        (true, Warmup::Admin { admin, .. }) => match cds_stats(admin) {
            Ok(s) => s.rejected.unwrap_or(0),
            Err(e) => {
                eprintln!("model-workers: --admin {admin}: {e}");
                eprintln!("model-workers: nothing applied: {dir} is unchanged");
                return ExitCode::FAILURE;
            }
        },
        _ => 0,
    };
    if let Err(e) = write_atomically(dir_path, generate::CDS_FILE, cds_first) {
        eprintln!("model-workers: cannot write {}: {e}", dir_path.join(generate::CDS_FILE).display());
        return ExitCode::FAILURE;
    }
    // New or changed clusters warm (a DNS cluster until its first resolution) before the
    // new filter config may route to them: a request routed to a cluster not yet on its
    // worker thread would get Envoy's own 503.
    if changed {
        match (warmup, generate::cds_version(cds_first)) {
            (Warmup::Admin { admin, timeout_ms }, Some(version)) => {
                match wait_warm(admin, version, rejected_before, *timeout_ms) {
                    Ok(ms) => {
                        println!("model-workers: Envoy applied clusters version {version}, all warm, in {ms} ms")
                    }
                    Err(e) => {
                        eprintln!("model-workers: {e}");
                        // Back to the clusters file Envoy had: nothing of this version stays.
                        let restored = old_cds
                            .as_deref()
                            .is_some_and(|o| write_atomically(dir_path, generate::CDS_FILE, o).is_ok());
                        if restored {
                            eprintln!("model-workers: nothing applied: the previous clusters file is back in {dir}; the filter config and route are unchanged");
                        } else {
                            eprintln!("model-workers: could not restore the previous clusters file in {dir}; the filter config and route are unchanged");
                        }
                        return ExitCode::FAILURE;
                    }
                }
            }
            _ => std::thread::sleep(std::time::Duration::from_millis(grace_ms)),
        }
    }
    let old_ecds = old(generate::ECDS_FILE);
    // With --admin, the filter config's stats before it is written: Envoy's VM may refuse
    // what `check` accepted here (a `${ secrets:… }` its environment lacks).
    let ecds_before = match warmup {
        Warmup::Admin { admin, .. } if old_ecds.as_deref() != Some(xds.ecds.as_str()) => {
            ecds_stats(admin).ok().filter(EcdsStats::present)
        }
        _ => None,
    };
    let first =
        [(generate::RDS_FILE, rds_both.as_deref().unwrap_or(&xds.rds)), (generate::ECDS_FILE, xds.ecds.as_str())];
    for (name, text) in first {
        if let Err(e) = write_atomically(dir_path, name, text) {
            eprintln!("model-workers: cannot write {}: {e}", dir_path.join(name).display());
            return ExitCode::FAILURE;
        }
    }
    if let (Some(before), Warmup::Admin { admin, timeout_ms }) = (ecds_before, warmup) {
        if let Err(e) = wait_filter_config(admin, &before, *timeout_ms) {
            eprintln!("model-workers: {e}");
            // Back to the files Envoy had: the previous filter config keeps serving.
            let back = [
                (generate::ECDS_FILE, old_ecds),
                (generate::RDS_FILE, old(generate::RDS_FILE)),
                (generate::CDS_FILE, old_cds),
            ];
            let restored = back
                .iter()
                .all(|(name, text)| text.as_deref().is_none_or(|t| write_atomically(dir_path, name, t).is_ok()));
            if restored {
                eprintln!("model-workers: nothing applied: the previous files are back in {dir}");
            } else {
                eprintln!("model-workers: could not restore every previous file in {dir}");
            }
            return ExitCode::FAILURE;
        }
    }
    // Once more: Envoy builds a new cluster's upstream filter from the ECDS file on disk, so
    // clusters added while that file held a version Envoy refused were refused too; now it
    // holds this one. (Unchanged clusters are a no-op for Envoy.)
    if let Err(e) = write_atomically(dir_path, generate::CDS_FILE, cds_both.as_deref().unwrap_or(&xds.cds)) {
        eprintln!("model-workers: cannot write {}: {e}", dir_path.join(generate::CDS_FILE).display());
        return ExitCode::FAILURE;
    }
    if rds_both.is_some() || cds_both.is_some() {
        std::thread::sleep(std::time::Duration::from_millis(grace_ms));
        for (name, text) in [(generate::RDS_FILE, &xds.rds), (generate::CDS_FILE, &xds.cds)] {
            if let Err(e) = write_atomically(dir_path, name, text) {
                eprintln!("model-workers: cannot write {}: {e}", dir_path.join(name).display());
                return ExitCode::FAILURE;
            }
        }
    }
    println!("{summary}");
    println!("model-workers: applied to {dir}");
    ExitCode::SUCCESS
}

/// The CDS stats of Envoy's admin (one GET).
fn cds_stats(admin: &Admin) -> Result<CdsStats, String> {
    let (status, body) = admin.get(STATS_PATH, std::time::Duration::from_secs(2))?;
    if status != 200 {
        return Err(format!("GET {STATS_PATH} answered {status}"));
    }
    let stats = CdsStats::parse(&body);
    if stats.version.is_none() {
        return Err(format!("GET {STATS_PATH} has no cluster_manager.cds.version_text: not an Envoy with CDS"));
    }
    Ok(stats)
}

/// The filter config's (ECDS) stats of Envoy's admin (one GET).
fn ecds_stats(admin: &Admin) -> Result<EcdsStats, String> {
    let (status, body) = admin.get(ECDS_STATS_PATH, std::time::Duration::from_secs(2))?;
    if status != 200 {
        return Err(format!("GET {ECDS_STATS_PATH} answered {status}"));
    }
    Ok(EcdsStats::parse(&body, generate::FILTER_NAME))
}

/// Ask Envoy's admin every [`POLL_MS`] until every filter that loads the filter config applied
/// the new one, or one refused it, or `timeout_ms` passed.
fn wait_filter_config(admin: &Admin, before: &EcdsStats, timeout_ms: u64) -> Result<(), String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(timeout_ms);
    loop {
        match ecds_stats(admin).map(|s| s.judge(before)) {
            Ok(Some(true)) => return Ok(()),
            Ok(Some(false)) => {
                return Err("Envoy refused the new filter config (extension_config_discovery.…update_rejected grew) and keeps serving the previous one; its log says why — a `${ secrets:… }` missing from Envoy's environment is the usual cause, as `check` resolves secrets from this process's".to_string())
            }
            Ok(None) | Err(_) => {}
        }
        if std::time::Instant::now() >= deadline {
            return Err(format!(
                "Envoy's admin at {admin} did not report the new filter config applied within {timeout_ms} ms"
            ));
        }
        std::thread::sleep(std::time::Duration::from_millis(POLL_MS));
    }
}

/// Ask Envoy's admin every [`POLL_MS`] until it shows `version` applied with no cluster
/// warming (the ms that took), it rejected an update, or `timeout_ms` passed.
fn wait_warm(admin: &Admin, version: &str, rejected_before: u64, timeout_ms: u64) -> Result<u64, String> {
    let start = std::time::Instant::now();
    let deadline = start + std::time::Duration::from_millis(timeout_ms);
    loop {
        let stats = cds_stats(admin);
        if let Ok(s) = &stats {
            match s.judge(version, rejected_before) {
                Warm::Ready => return Ok(u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)),
                Warm::Rejected => {
                    return Err(format!(
                        "Envoy rejected the clusters (cluster_manager.cds.update_rejected {rejected_before} → {}); its log says why",
                        s.rejected.unwrap_or(0)
                    ))
                }
                Warm::NotYet | Warm::Warming => {}
            }
        }
        if std::time::Instant::now() >= deadline {
            let seen = match &stats {
                Ok(s) => format!(
                    "it shows version {:?} with {} cluster(s) warming",
                    s.version.as_deref().unwrap_or(""),
                    s.warming.map_or("?".to_string(), |n| n.to_string())
                ),
                Err(e) => format!("it did not answer ({e})"),
            };
            return Err(format!(
                "Envoy's admin at {admin} did not report clusters version {version} warm within {timeout_ms} ms: {seen}"
            ));
        }
        std::thread::sleep(std::time::Duration::from_millis(POLL_MS));
    }
}

/// Envoy reloads a watched file when another is moved onto it (a write in place could be
/// read half-done): write a temporary file in the same directory (same filesystem), flush
/// it to disk, then `rename` it over the target, which is atomic.
fn write_atomically(dir: &std::path::Path, name: &str, text: &str) -> std::io::Result<()> {
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, dir.join(name))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
