//! Scheduled prompts (Spice's `cron` + `params.prompt`) in a real Envoy with `--concurrency 4`:
//! five VMs (main thread + four workers, each with a downstream and an upstream plugin root)
//! tick every 20 ms, and the shared-data lease lets exactly one of them send each fire time's
//! prompt. Spice takes a seconds field (`*/10 * * * * *`), so the test waits ~25 s, not minutes.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;

const PERIOD_S: u64 = 10;

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

/// The prompts go to each model cluster's callout twin (`<cluster>.callout`, no upstream
/// filter), which `model-workers envoy` writes when a worker has a schedule: a call from the
/// root into a cluster that runs this filter would create its upstream context inside the
/// root's callback and trap the VM (measured on Envoy 1.40).
#[test]
fn a_scheduled_prompt_fires_once_per_period_across_five_vms_and_probes_the_breaker() {
    let config = format!(
        "models:\n{}{}workers:\n  - name: probe\n    cron: '*/10 * * * * *'\n    params:\n      prompt: \"What's the date today?\"\n    load_balance:\n      routing:\n        - from: good\n  - name: sick\n    cron: '*/10 * * * * *'\n    params:\n      prompt: are you up?\n    load_balance:\n      routing:\n        - from: bad\n  - name: idle\n    cron: '* * * * *'\n    load_balance:\n      routing:\n        - from: good\n",
        model_yaml("good", "gpt-good", "a", ""),
        model_yaml("bad", "gpt-bad", "b", "      cooldown_failures: 1\n      cooldown: 5m\n"),
    );
    let w = World::start_with(&[("a", &[]), ("b", &["--status", "503"])], &config, |o| o.concurrency = 4);
    // The generator wrote each model cluster's callout twin.
    assert!(std::fs::read_to_string(w.envoy.dir().join("envoy.yaml")).unwrap().contains("\"a.callout\""));
    assert!(w.envoy.log().contains("worker `idle`: cron \"* * * * *\" is inactive without `params.prompt`"));

    // The first fire time after start; then wait until 3 s past the next one: two runs each.
    let line = "scheduled prompt: worker `probe` model `good` status 200";
    assert!(w.envoy.wait_for_log(line, Duration::from_secs(PERIOD_S + 5)), "no run: {}", w.envoy.log());
    let first = now_ms() / (PERIOD_S * 1000) * (PERIOD_S * 1000);
    let until = first + (PERIOD_S + 3) * 1000;
    std::thread::sleep(Duration::from_millis(until.saturating_sub(now_ms())));

    let log = w.envoy.log();
    let stats = w.mock("a").stats();
    eprintln!("mock a: {stats}");
    assert_eq!(stats["by_model"]["gpt-good"].as_u64(), Some(2), "one prompt per period across all VMs");
    assert_eq!(log.matches(line).count(), 2, "{log}");
    assert_eq!(w.envoy.counter("wasmcustom.model_workers.worker.probe.cron_runs"), Some(2));
    assert_eq!(w.envoy.counter("wasmcustom.model_workers.worker.probe.cron_failures"), Some(0));
    let last = w.mock("a").last();
    assert_eq!(last["body"]["messages"][0]["content"], "What's the date today?", "{last}");

    // The failing model: every run fails, the first opened its breaker (cooldown_failures: 1).
    assert_eq!(w.mock("b").stats()["by_model"]["gpt-bad"].as_u64(), Some(2));
    assert_eq!(log.matches("scheduled prompt: worker `sick` model `bad` status 503").count(), 2, "{log}");
    assert_eq!(w.envoy.counter("wasmcustom.model_workers.worker.sick.cron_failures"), Some(2));
    // The mock's 503 carries `Retry-After: 1`, which the breaker honours over `cooldown`: it
    // opens for 1 s at each run.
    assert!(log.contains("model `bad` cooling down for 1000 ms after 503 (scheduled prompt)"), "{log}");
    assert_eq!(w.envoy.counter("wasmcustom.model_workers.model.bad.cooldowns"), Some(2));
    // No counters for the inactive schedule.
    assert_eq!(w.envoy.counter("wasmcustom.model_workers.worker.idle.cron_runs"), None);
}
