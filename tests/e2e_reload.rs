//! Live reload against a real Envoy: the bootstrap from `model-workers envoy --xds-dir`, and
//! `model-workers apply --admin` (the CLI, as an operator runs it, waiting on Envoy's admin for
//! new clusters to warm) changing models and workers 10 times while 32 connections send 20,000
//! requests (every 8th streaming). Nothing may fail; the round-robin worker whose routing never
//! changes keeps its exact rotation; a broken version is refused by `apply` (nothing written)
//! and one Envoy refuses keeps the previous one serving (`apply` reports it and restores the
//! previous files).

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::*;

const TOTAL: usize = 20_000;
const CLIENTS: usize = 32;
const STREAM_EVERY: usize = 8;

/// Models on mocks m1..m5; `rr` never changes, `w` (and what it routes to) changes every time.
fn version(k: usize) -> (String, Vec<&'static str>) {
    let models = |list: &[(&str, &str)]| -> String {
        list.iter().map(|(name, mock)| model_yaml(name, &format!("{name}-id"), mock, "")).collect()
    };
    // (models, the weighted worker's routing, extra workers)
    let (m, w, extra): (&[(&str, &str)], &str, &str) = match k {
        0 => (&[("a", "m1"), ("b", "m2"), ("c", "m3")], "[{ from: a, weight: 3 }, { from: c, weight: 1 }]", ""),
        // 1: a model added, used by w
        1 => (
            &[("a", "m1"), ("b", "m2"), ("c", "m3"), ("d", "m4")],
            "[{ from: c, weight: 1 }, { from: d, weight: 1 }]",
            "",
        ),
        // 2: a weight changed
        2 => (
            &[("a", "m1"), ("b", "m2"), ("c", "m3"), ("d", "m4")],
            "[{ from: c, weight: 1 }, { from: d, weight: 4 }]",
            "",
        ),
        // 3: a worker added
        3 => (
            &[("a", "m1"), ("b", "m2"), ("c", "m3"), ("d", "m4")],
            "[{ from: c, weight: 1 }, { from: d, weight: 4 }]",
            "  - name: extra\n    load_balance: { routing: [{ from: c }, { from: d }] }\n",
        ),
        // 4: a model removed (c, and its cluster m3)
        4 => (&[("a", "m1"), ("b", "m2"), ("d", "m4")], "[{ from: a, weight: 1 }, { from: d, weight: 1 }]", ""),
        // 5: a model on a new cluster
        5 => (
            &[("a", "m1"), ("b", "m2"), ("d", "m4"), ("e", "m5")],
            "[{ from: d, weight: 2 }, { from: e, weight: 1 }]",
            "",
        ),
        // 6: weights again, a fallback worker added
        6 => (
            &[("a", "m1"), ("b", "m2"), ("d", "m4"), ("e", "m5")],
            "[{ from: d, weight: 1 }, { from: e, weight: 3 }]",
            "  - name: fb\n    load_balance: { routing: [{ from: e, order: 1 }, { from: a, order: 2 }] }\n",
        ),
        // 7: d removed, c back
        7 => (
            &[("a", "m1"), ("b", "m2"), ("c", "m3"), ("e", "m5")],
            "[{ from: c, weight: 1 }, { from: e, weight: 1 }]",
            "",
        ),
        // 8: e removed
        8 => (&[("a", "m1"), ("b", "m2"), ("c", "m3")], "[{ from: b, weight: 1 }, { from: c, weight: 2 }]", ""),
        // 9: d back, three-way weights
        9 => (
            &[("a", "m1"), ("b", "m2"), ("c", "m3"), ("d", "m4")],
            "[{ from: b, weight: 1 }, { from: c, weight: 1 }, { from: d, weight: 1 }]",
            "",
        ),
        // 10: round robin over what is left
        _ => (&[("a", "m1"), ("b", "m2"), ("d", "m4")], "[{ from: a, weight: 1 }, { from: d, weight: 1 }]", ""),
    };
    let mut mocks: Vec<&'static str> = Vec::new();
    for (_, mock) in m {
        let mock: &'static str = ["m1", "m2", "m3", "m4", "m5"].into_iter().find(|x| x == mock).unwrap();
        if !mocks.contains(&mock) {
            mocks.push(mock);
        }
    }
    let text = format!(
        "models:\n{}workers:\n  - name: rr\n    load_balance: {{ routing: [{{ from: a }}, {{ from: b }}] }}\n  - name: w\n    load_balance: {{ routing: {w} }}\n{extra}",
        models(m)
    );
    (text, mocks)
}

/// `model-workers apply` as an operator runs it: waiting on Envoy's admin for new clusters to
/// warm (`--admin`), 300 ms for requests in flight on what a version drops (`--grace`).
fn apply(world: &World, dir: &Path, text: &str, mocks: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let file = dir.parent().unwrap().join(format!("spicepod-{}.yaml", std::process::id()));
    std::fs::write(&file, text).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_model-workers"));
    cmd.arg("apply").arg(&file).arg("--dir").arg(dir).arg("--wasm").arg(wasm_path()).args(["--grace", "300ms"]);
    cmd.arg("--admin").arg(format!("http://127.0.0.1:{}", world.envoy.admin_port));
    for m in mocks {
        cmd.arg("--cluster").arg(format!("{m}=127.0.0.1:{}", world.mock(m).port));
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn snapshot(dir: &Path) -> Vec<String> {
    ["ecds.yaml", "rds.yaml", "cds.yaml"].iter().map(|f| std::fs::read_to_string(dir.join(f)).unwrap()).collect()
}

#[test]
fn models_and_workers_change_under_load_without_a_failed_request() {
    let xds = TempDir::new("mw-reload");
    let dir = xds.path.join("xds");
    let mocks: Vec<(&str, &[&str])> =
        ["m1", "m2", "m3", "m4", "m5"].iter().map(|m| (*m, &["--chunks", "3", "--chunk-delay-ms", "20"][..])).collect();
    let world = World::start_with(&mocks, &version(0).0, |o| {
        o.xds_dir = Some(dir.clone());
    });
    let port = world.envoy.port;

    let done = AtomicUsize::new(0);
    let failures: Mutex<Vec<String>> = Mutex::new(Vec::new());
    // (worker, model) → count
    let served: Mutex<BTreeMap<(String, String), u64>> = Mutex::new(BTreeMap::new());
    let started = Instant::now();
    let mut applied = Vec::new();

    std::thread::scope(|s| {
        // The operator: a change every TOTAL/12 requests.
        let changes = s.spawn(|| {
            let mut log = Vec::new();
            for k in 1..=10 {
                let waiting = Instant::now();
                while done.load(Ordering::Relaxed) < k * TOTAL / 12 {
                    assert!(waiting.elapsed() < Duration::from_secs(60), "the load stalled");
                    std::thread::sleep(Duration::from_millis(5));
                }
                if k == 6 {
                    // Refused by apply: nothing is written.
                    let before = snapshot(&dir);
                    let (text, m) = version(5);
                    let broken = text.replace("{ from: e, weight: 1 }", "{ from: dd, weight: 1 }");
                    let out = apply(&world, &dir, &broken, &m, &[]);
                    assert_eq!(out.status.code(), Some(1), "{out:?}");
                    let said = String::from_utf8_lossy(&out.stdout).to_string();
                    assert!(
                        said.contains("rejected configuration: worker `w`: routes to unknown model `dd`"),
                        "{said}"
                    );
                    assert_eq!(snapshot(&dir), before, "a refused version writes nothing");
                    // Refused by Envoy (a secret `apply` can see and Envoy cannot): the previous
                    // version keeps serving, and apply, watching the admin, says so, fails and
                    // puts the previous files back (an Envoy restart would load them).
                    let needs_secret = text.replace(
                        "      cluster: m1\n",
                        "      cluster: m1\n      openai_api_key: ${ secrets:MW_RELOAD_ONLY_HERE }\n",
                    );
                    let out = apply(&world, &dir, &needs_secret, &m, &[("MW_RELOAD_ONLY_HERE", "sk-x")]);
                    assert_eq!(out.status.code(), Some(1), "{out:?}");
                    let said = String::from_utf8_lossy(&out.stderr).to_string();
                    assert!(said.contains("Envoy refused the new filter config"), "{said}");
                    assert!(said.contains("the previous files are back"), "{said}");
                    assert_eq!(snapshot(&dir), before, "the refused version's files are gone again");
                    assert!(
                        world.envoy.wait_for_log("secret `MW_RELOAD_ONLY_HERE` is not set", Duration::from_secs(5)),
                        "{}",
                        world.envoy.log()
                    );
                }
                let (text, m) = version(k);
                let t = Instant::now();
                let out = apply(&world, &dir, &text, &m, &[]);
                assert!(out.status.success(), "version {k}: {out:?}");
                // When the clusters changed, apply waited for Envoy's admin to show them warm.
                let said = String::from_utf8_lossy(&out.stdout);
                let warm = said.lines().find(|l| l.contains("all warm")).map(|l| {
                    let v = l.split("version ").nth(1).unwrap().split(',').next().unwrap().to_string();
                    let shown = world.envoy.stats().lines().find_map(|l| {
                        l.strip_prefix("cluster_manager.cds.version_text: ").map(|v| v.trim_matches('"').to_string())
                    });
                    // That version, or the one without the dropped clusters that came after.
                    let last = std::fs::read_to_string(dir.join("cds.yaml")).unwrap();
                    let last = model_workers::generate::cds_version(&last).map(str::to_string);
                    assert!(shown == Some(v.clone()) || shown == last, "{v} {shown:?} {last:?}");
                    l.split(" in ").nth(1).unwrap().to_string()
                });
                log.push((k, done.load(Ordering::Relaxed), t.elapsed(), warm));
            }
            log
        });

        parallel(CLIENTS, CLIENTS, |_| {
            let mut conn = Conn::open(port);
            loop {
                let i = done.fetch_add(1, Ordering::Relaxed);
                if i >= TOTAL {
                    break;
                }
                let worker = if i % 2 == 0 { "rr" } else { "w" };
                let stream = i % STREAM_EVERY == STREAM_EVERY - 1;
                let (status, model, ok_body, what) = if stream {
                    match try_post_stream(port, "/v1/chat/completions", &chat_body(worker, true), &[]) {
                        Ok(r) => {
                            let full = r.text().contains("data: [DONE]");
                            (r.status, r.header("x-model-workers-model").map(str::to_string), full, r.text())
                        }
                        Err(e) => (0, None, false, e.to_string()),
                    }
                } else {
                    let body = chat_body(worker, false);
                    match conn.try_request(
                        "POST",
                        "/v1/chat/completions",
                        &[("content-type", "application/json")],
                        body.as_bytes(),
                    ) {
                        Ok(r) => {
                            let ok = serde_json::from_slice::<serde_json::Value>(&r.body)
                                .is_ok_and(|v| v["choices"].is_array());
                            (r.status, r.header("x-model-workers-model").map(str::to_string), ok, r.text())
                        }
                        Err(e) => {
                            conn = Conn::open(port);
                            (0, None, false, e.to_string())
                        }
                    }
                };
                match (status, model) {
                    (200, Some(m)) if ok_body => {
                        *served.lock().unwrap().entry((worker.to_string(), m)).or_default() += 1
                    }
                    (st, m) => {
                        failures.lock().unwrap().push(format!("#{i} {worker} stream={stream}: {st} {m:?} {what:.300}"))
                    }
                }
            }
        });
        applied = changes.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
    });
    let elapsed = started.elapsed();

    let failures = failures.into_inner().unwrap();
    let served = served.into_inner().unwrap();
    eprintln!("[reload] {TOTAL} requests at {CLIENTS} connections in {elapsed:.2?}; changes (version, requests done, apply took, warm after): {applied:?}");
    eprintln!("[reload] served: {served:?}");
    assert!(failures.is_empty(), "{} failed requests, e.g. {:?}", failures.len(), &failures[..failures.len().min(5)]);
    assert_eq!(applied.len(), 10);
    assert!(applied.iter().all(|(_, at, _, _)| *at < TOTAL), "every change happened under load: {applied:?}");
    // Every version that adds a cluster (1: m4, 5: m5, 7: m3 back, 9: m4 back) waited on the
    // admin for it.
    for k in [1, 5, 7, 9] {
        assert!(applied.iter().any(|(v, _, _, warm)| *v == k && warm.is_some()), "version {k}: {applied:?}");
    }

    // The unchanged round-robin worker: exactly half each, and the next pick continues the
    // same rotation (ticket number TOTAL/2).
    let rr = |m: &str| served.get(&("rr".to_string(), m.to_string())).copied().unwrap_or(0);
    assert_eq!(rr("a") + rr("b"), (TOTAL / 2) as u64);
    assert_eq!((rr("a"), rr("b")), ((TOTAL / 4) as u64, (TOTAL / 4) as u64), "{served:?}");
    let next: Vec<String> =
        (0..4).map(|_| world.chat("rr").header("x-model-workers-model").unwrap_or("").to_string()).collect();
    assert_eq!(next, ["a", "b", "a", "b"]);

    // The last version is the one serving: w over a and d, 1:1, a fresh rotation.
    let mut w = BTreeMap::new();
    for _ in 0..20 {
        let r = world.chat("w");
        assert_eq!(r.status, 200, "{}", r.text());
        *w.entry(r.header("x-model-workers-model").unwrap().to_string()).or_insert(0) += 1;
    }
    assert_eq!(w, BTreeMap::from([("a".to_string(), 10), ("d".to_string(), 10)]));
    // Removed workers and models are gone; m3 and m5's clusters too.
    assert_eq!(world.chat("extra").status, 404);
    assert_eq!(world.chat("e").status, 404);
    let clusters = world.envoy.admin("GET", "/clusters").text();
    assert!(!clusters.contains("m3::") && !clusters.contains("m5::"), "{clusters}");
    assert!(clusters.contains("m4::"), "{clusters}");

    // Envoy said why it refused the one version, in the filter's own line.
    let log = world.envoy.log();
    assert!(log.contains("model-workers: rejected configuration: model `a`: param `openai_api_key`: secret `MW_RELOAD_ONLY_HERE` is not set"), "{log}");
    assert!(elapsed < Duration::from_secs(60), "{elapsed:?}");
}

/// State keyed by names survives a change: a model's open breaker stays open after a reload
/// that adds a model and a worker (the status document and the routing both show it).
#[test]
fn an_open_breaker_on_an_unchanged_model_stays_open_across_a_reload() {
    let xds = TempDir::new("mw-reload-breaker");
    let dir = xds.path.join("xds");
    let v = |extra_model: &str, extra_worker: &str| {
        format!(
            "models:\n{}{}{extra_model}workers:\n  - name: fb\n    load_balance: {{ routing: [{{ from: p, order: 1 }}, {{ from: b, order: 2 }}] }}\n{extra_worker}model_workers:\n  status_path: /status\n",
            model_yaml("p", "p-id", "m1", "      cooldown_failures: 1\n      cooldown: 10m\n"),
            model_yaml("b", "b-id", "m2", ""),
        )
    };
    let mocks: Vec<(&str, &[&str])> = vec![("m1", &["--status", "500"]), ("m2", &[]), ("m3", &[])];
    let world = World::start_with(&mocks, &v("", ""), |o| o.xds_dir = Some(dir.clone()));
    let r = world.chat("fb");
    assert_eq!(r.header("x-model-workers-attempts"), Some("p=500,b=200"));
    let breaker = || request(world.envoy.port, "GET", "/status", &[], b"").json()["models"][0]["breaker"].clone();
    assert_eq!(breaker()["state"], "open");

    let out = apply(
        &world,
        &dir,
        &v(&model_yaml("c", "c-id", "m3", ""), "  - name: more\n    load_balance: { routing: [{ from: c }] }\n"),
        &["m1", "m2", "m3"],
        &[],
    );
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    // The new version serves (its new worker answers), and p is still cooling down.
    let t = Instant::now();
    loop {
        let r = world.chat("more");
        if r.status == 200 {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "the new version never served: {}", r.text());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(breaker()["state"], "open", "{}", breaker());
    let hits = world.hits("m1");
    let r = world.chat("fb");
    assert_eq!(r.header("x-model-workers-attempts"), Some("b=200"), "the open breaker still skips p");
    assert_eq!(world.hits("m1"), hits);
}
