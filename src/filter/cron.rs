//! Scheduled prompts (Spice's `cron` + `params.prompt`), fired from the root context's tick.
//!
//! Every VM ticks (main thread and each worker thread, and each plugin's root), so firing
//! exactly once per fire time per Envoy process takes a **lease** in shared data: the key
//! `model_workers.cron.<worker>` holds the last fire time (UTC ms) that some VM claimed. A VM
//! whose own next fire time has come reads it; if it is older, the VM writes its fire time
//! under the CAS token it read — only one writer can win that — and the winner sends the
//! prompt. Every VM then computes its next fire time after now. The key is created at
//! configure (before any tick), so the claim is always a compare-and-swap (an absent key
//! takes any write).
//!
//! The prompt goes through the worker's own policy: the chain's first model gets an OpenAI
//! chat body (`{"model": <its id>, "messages": [{"role": "user", "content": <prompt>}]}`,
//! translated for Anthropic's Messages API) by `dispatch_http_call` to its cluster, with its
//! path, `:authority` and key ([`crate::attempt::header_edits`]) and its `timeout`. A
//! retryable failure moves to the next candidate (no backoff); the outcome of each attempt
//! feeds the model's breaker, so a scheduled prompt doubles as an active health probe. One
//! info line and the worker's `cron_runs` / `cron_failures` counters report each run.

use std::cell::{Cell, RefCell};

use crate::attempt::{header_edits, AttemptHead, HeaderEdit};
use crate::config::{Config, Cron, ModelId, WorkerId};
use crate::cooldown::{parse_retry_after, Transition};
use crate::failover::Outcome;
use crate::policy::Pick;

use super::host::{Host, Level};
use super::state::SharedTickets;
use super::translated;
use super::vm::Vm;

/// The path a scheduled prompt is sent as (before the model's own path mapping).
pub const CHAT_PATH: &str = "/v1/chat/completions";
/// Lost CAS races before a VM gives the fire time up (another VM is claiming it).
const MAX_CAS_TRIES: u32 = 16;
/// Most response body bytes read back (for the log's error snippet only).
const SNIPPET_BYTES: usize = 200;

/// The scheduled prompts of one VM.
#[derive(Default)]
pub struct Jobs {
    jobs: Vec<Job>,
    pending: RefCell<Vec<Pending>>,
}

struct Job {
    worker: WorkerId,
    lease_key: String,
    /// This VM's next fire time (UTC ms); None: the schedule has no more.
    next_ms: Cell<Option<u64>>,
}

/// A dispatched attempt of one run.
struct Pending {
    token: u32,
    job: usize,
    chain: Vec<ModelId>,
    /// Index in `chain` of the model this call went to.
    pos: usize,
    /// When this attempt / the run started.
    sent_ms: u64,
    run_ms: u64,
    timeout_ms: u64,
}

/// The lease key of a worker's schedule.
pub fn lease_key(worker: &str) -> String {
    format!("model_workers.cron.{worker}")
}

fn decode(bytes: Option<&[u8]>) -> u64 {
    bytes.and_then(|b| <[u8; 8]>::try_from(b).ok()).map_or(0, u64::from_le_bytes)
}

/// Claim fire time `slot_ms` of `key`: true for exactly one caller per slot process-wide.
pub fn claim(host: &mut dyn Host, key: &str, slot_ms: u64) -> bool {
    for _ in 0..MAX_CAS_TRIES {
        let Some((bytes, cas)) = host.shared_get(key) else { return false };
        if decode(bytes.as_deref()) >= slot_ms {
            return false;
        }
        // No CAS token: the key is gone (never created at configure); a write without one
        // cannot lose, so it cannot be a lease either.
        if cas.is_none() {
            return false;
        }
        match host.shared_set(key, &slot_ms.to_le_bytes(), cas) {
            Some(true) => return true,
            Some(false) => continue,
            None => return false,
        }
    }
    false
}

impl Jobs {
    /// The active schedules of `config`, each with its first fire time after now; creates
    /// the lease keys that do not exist yet, and logs every `cron` that will not fire.
    pub fn new(config: &Config, host: &mut dyn Host) -> Jobs {
        let now = host.now_ms();
        let mut jobs = Vec::new();
        for (i, w) in config.workers.iter().enumerate() {
            let id = WorkerId(u32::try_from(i).unwrap_or(u32::MAX));
            match &w.cron {
                Cron::Prompt(s) => {
                    let key = lease_key(&w.name);
                    if let Some((None, _)) = host.shared_get(&key) {
                        host.shared_set(&key, &0u64.to_le_bytes(), None);
                    }
                    let next = s.schedule.next_after(now);
                    host.log(
                        Level::Debug,
                        &format!("model-workers: worker `{}`: prompt scheduled by cron {:?} (UTC)", w.name, s.expr),
                    );
                    jobs.push(Job { worker: id, lease_key: key, next_ms: Cell::new(next) });
                }
                Cron::Inactive(expr) => host.log(
                    Level::Info,
                    &format!(
                        "model-workers: worker `{}`: cron {expr:?} is inactive without `params.prompt` (as in Spice)",
                        w.name
                    ),
                ),
                Cron::PromptIgnored => host.log(
                    Level::Info,
                    &format!(
                        "model-workers: worker `{}`: `params.prompt` is ignored without `cron` (as in Spice)",
                        w.name
                    ),
                ),
                Cron::None => {}
            }
        }
        Jobs { jobs, pending: RefCell::new(Vec::new()) }
    }

    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }

    /// Calls this VM is waiting for.
    pub fn pending(&self) -> usize {
        self.pending.borrow().len()
    }
}

/// The root's tick: fire every schedule whose time has come and whose lease this VM wins.
pub fn tick(vm: &Vm, host: &mut dyn Host) {
    if vm.cron.jobs.is_empty() {
        return;
    }
    let now = host.now_ms();
    for (i, job) in vm.cron.jobs.iter().enumerate() {
        let Some(due) = job.next_ms.get() else { continue };
        if now < due {
            continue;
        }
        let Some(Cron::Prompt(s)) = vm.config.worker(job.worker).map(|w| &w.cron) else { continue };
        job.next_ms.set(s.schedule.next_after(now));
        if claim(host, &job.lease_key, due) {
            start_run(vm, host, i, now);
        }
    }
}

/// A run: the worker's chain for this fire time, its first model dispatched.
fn start_run(vm: &Vm, host: &mut dyn Host, job: usize, now: u64) {
    let config = &vm.config;
    let Some(j) = vm.cron.jobs.get(job) else { return };
    let Some(worker) = config.worker(j.worker) else { return };
    let states = vm.models.read(host);
    let states = states.as_deref().unwrap_or_default();
    let cooling = |m: ModelId| {
        let enabled = config.model(m).is_some_and(|model| model.cooldown.failures > 0);
        enabled && states.get(m.0 as usize).is_some_and(|s| s.breaker.is_open(now))
    };
    let load = crate::filter::state::ModelTable::load(states);
    let ticket = if worker.policy.needs_ticket(false) {
        let mut local = vm.local_tickets.borrow_mut();
        crate::counter::Tickets::next(&mut SharedTickets { host, fallback: &mut local }, &worker.counter_key)
    } else {
        0
    };
    let mut chain =
        worker.policy.candidates(&Pick { ticket, session: None, load: &load, random: vm.random() }, &cooling);
    if let Some(max) = config.settings.max_attempts {
        chain.truncate(usize::try_from(max).unwrap_or(usize::MAX));
    }
    vm.metrics.cron_run(host, j.worker);
    dispatch_from(vm, host, job, chain, 0, now);
}

/// Dispatch the run's attempt to `chain[pos]`, or the next model the host accepts a call
/// for; a run with no model left ends as a failure.
fn dispatch_from(vm: &Vm, host: &mut dyn Host, job: usize, chain: Vec<ModelId>, mut pos: usize, run_ms: u64) {
    let config = &vm.config;
    let prompt = match vm.cron.jobs.get(job).and_then(|j| config.worker(j.worker)).map(|w| &w.cron) {
        Some(Cron::Prompt(s)) => s.prompt.clone(),
        _ => return,
    };
    while let Some(m) = chain.get(pos).copied() {
        let now = host.now_ms();
        match request(config, m, &prompt) {
            Ok((cluster, headers, body, timeout_ms)) => {
                let refs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                if let Some(token) = host.dispatch_http_call(&cluster, &refs, &body, timeout_ms) {
                    vm.cron.pending.borrow_mut().push(Pending {
                        token,
                        job,
                        chain,
                        pos,
                        sent_ms: now,
                        run_ms,
                        timeout_ms,
                    });
                    return;
                }
                attempt_log(vm, host, job, m, &format!("the host refused a call to cluster `{cluster}`"));
            }
            Err(why) => attempt_log(vm, host, job, m, &why),
        }
        pos += 1;
    }
    finish(vm, host, job, chain.last().copied(), "none (no call could be sent)", run_ms);
}

/// The call for one model: cluster, headers, body, timeout.
#[allow(clippy::type_complexity)]
fn request(config: &Config, m: ModelId, prompt: &str) -> Result<(String, Vec<(String, String)>, Vec<u8>, u64), String> {
    let model = config.model(m).ok_or("unknown model")?;
    let openai = serde_json::to_vec(&serde_json::json!({
        "model": model.model_id,
        "messages": [{ "role": "user", "content": prompt }],
    }))
    .map_err(|e| e.to_string())?;
    // The model's own messages, as on every attempt a client makes.
    let openai = crate::inject::add_messages(&openai, &model.messages).unwrap_or(openai);
    let body = match translated::request_body(model, &openai) {
        None => openai,
        Some(Ok(t)) => t.body,
        Some(Err(e)) => return Err(format!("the prompt cannot be translated: {}", e.message)),
    };
    let head = AttemptHead {
        model,
        client_path: CHAT_PATH,
        client_authority: &model.cluster,
        client_auth: &[],
        keyed_before: false,
        later: true,
        content_length: Some(body.len()),
        routing_header: None,
    };
    let mut headers: Vec<(String, String)> = vec![
        (":method".into(), "POST".into()),
        ("content-type".into(), "application/json".into()),
        ("user-agent".into(), "model-workers-cron".into()),
    ];
    for e in header_edits(&head) {
        if let HeaderEdit::Set(k, v) = e {
            headers.push((k.to_string(), v.into_owned()));
        }
    }
    Ok((format!("{}{}", model.cluster, crate::cron::CALLOUT_CLUSTER_SUFFIX), headers, body, model.retry.timeout_ms))
}

/// A call's response arrived (`num_headers` 0: it failed before any response).
pub fn on_response(vm: &Vm, host: &mut dyn Host, token: u32, num_headers: usize, body_size: usize) {
    let p = {
        let mut pending = vm.cron.pending.borrow_mut();
        let Some(i) = pending.iter().position(|p| p.token == token) else { return };
        pending.swap_remove(i)
    };
    let config = &vm.config;
    let now = host.now_ms();
    let Some(m) = p.chain.get(p.pos).copied() else { return };
    let headers = if num_headers > 0 { host.call_response_headers() } else { Vec::new() };
    let find =
        |name: &str| headers.iter().find(|(k, _)| k == name).map(|(_, v)| String::from_utf8_lossy(v).into_owned());
    let outcome = match find(":status").and_then(|s| s.parse::<u16>().ok()) {
        Some(s) => Outcome::Status(s),
        // No response: Envoy gives no reason; past (nearly) the timeout it was the timeout.
        None if now.saturating_sub(p.sent_ms).saturating_add(50) >= p.timeout_ms => Outcome::Timeout,
        None => Outcome::Reset,
    };
    let ra = find("retry-after").as_deref().and_then(parse_retry_after);
    let change = crate::filter::state::Change {
        outcome: Some(outcome),
        retry_after_ms: ra,
        now_ms: now,
        sample_ms: None,
        known_clean: false,
        end: false,
    };
    if let Some(Transition::Opened { for_ms }) = vm.models.record(host, config, m, change).transition {
        vm.metrics.cooldown_opened(host, m);
        let name = config.model(m).map_or("?", |m| m.name.as_str());
        host.log(
            Level::Info,
            &format!(
                "model-workers: model `{name}` cooling down for {for_ms} ms after {} (scheduled prompt)",
                outcome.label()
            ),
        );
    }
    if matches!(outcome, Outcome::Status(200..=299)) {
        finish(vm, host, p.job, Some(m), &outcome.label(), p.run_ms);
        return;
    }
    let detail = if body_size > 0 {
        let b = host.call_response_body(0, body_size.min(SNIPPET_BYTES)).unwrap_or_default();
        format!("{}: {}", outcome.label(), String::from_utf8_lossy(&b).replace(['\n', '\r'], " "))
    } else {
        outcome.label()
    };
    if !outcome.is_retryable(config) || p.pos + 1 >= p.chain.len() {
        finish(vm, host, p.job, Some(m), &outcome.label(), p.run_ms);
        return;
    }
    attempt_log(vm, host, p.job, m, &detail);
    dispatch_from(vm, host, p.job, p.chain, p.pos + 1, p.run_ms);
}

fn attempt_log(vm: &Vm, host: &dyn Host, job: usize, m: ModelId, why: &str) {
    if !host.log_enabled(Level::Debug) {
        return;
    }
    let worker = vm.cron.jobs.get(job).and_then(|j| vm.config.worker(j.worker)).map_or("?", |w| w.name.as_str());
    let model = vm.config.model(m).map_or("?", |m| m.name.as_str());
    host.log(
        Level::Debug,
        &format!(
            "model-workers: scheduled prompt of worker `{worker}`: model `{model}` failed ({why}); next candidate"
        ),
    );
}

/// The run's one outcome line and its counters.
fn finish(vm: &Vm, host: &mut dyn Host, job: usize, m: Option<ModelId>, status: &str, run_ms: u64) {
    let Some(j) = vm.cron.jobs.get(job) else { return };
    let ok = status.len() == 3 && status.starts_with('2');
    if !ok {
        vm.metrics.cron_failure(host, j.worker);
    }
    let worker = vm.config.worker(j.worker).map_or("?", |w| w.name.as_str());
    let model = m.and_then(|m| vm.config.model(m)).map_or("-", |m| m.name.as_str());
    let ms = host.now_ms().saturating_sub(run_ms);
    host.log(
        Level::Info,
        &format!("model-workers: scheduled prompt: worker `{worker}` model `{model}` status {status} in {ms} ms"),
    );
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::expect_used)]
    use super::*;
    use crate::filter::fake::FakeHost;

    const SPICE: &str = r#"
models:
  - from: openai:gpt-4o
    name: foo
    params: { cluster: c_foo, openai_api_key: sk-foo, cooldown_failures: 1, cooldown: 2m, timeout: 5s }
  - from: openai:gpt-4o-mini
    name: bar
    params: { cluster: c_bar, endpoint: "https://bar.example/x/v1" }
  - from: anthropic:claude-sonnet-4-5
    name: claude
    params:
      cluster: c_claude
      anthropic_api_key: sk-ant
      system_prompt: Be brief.
      messages: [{ role: user, content: Answer in one word. }]
workers:
  - name: chain
    cron: "* * * * *"
    params: { prompt: "What's the date today?" }
    load_balance:
      routing: [{ from: foo, order: 1 }, { from: bar, order: 2 }]
  - name: idle
    cron: "*/10 * * * * *"
    load_balance:
      routing: [{ from: foo }]
  - name: ant
    cron: "@yearly"
    params: { prompt: hi }
    load_balance:
      routing: [{ from: claude }]
"#;

    /// 2025-01-01T00:00:00Z.
    const T0: u64 = 1_735_689_600_000;

    fn host() -> FakeHost {
        let h = FakeHost::new();
        h.now.set(T0 + 1_000);
        h
    }
    fn vm(host: &mut FakeHost) -> Vm {
        Vm::new(crate::config::Config::parse(SPICE, &|_| None).unwrap(), host)
    }
    fn answer(host: &mut FakeHost, status: u16, body: &str) {
        host.call_headers = vec![(":status".into(), status.to_string().into_bytes())];
        host.call_body = body.as_bytes().to_vec();
    }
    fn outcome_lines(host: &FakeHost) -> Vec<String> {
        host.logs
            .borrow()
            .iter()
            .filter(|(_, m)| m.contains("scheduled prompt: worker"))
            .map(|(_, m)| m.clone())
            .collect()
    }

    #[test]
    fn once_per_period_across_vms_ticking_together() {
        let mut h = host();
        // Five VMs (Envoy --concurrency 4) on one process's shared data.
        let vms: Vec<Vm> = (0..5).map(|_| vm(&mut h)).collect();
        for v in &vms {
            tick(v, &mut h);
        }
        assert!(h.calls.is_empty(), "nothing before the first fire time");
        h.now.set(T0 + 60_000 + 7);
        for _ in 0..3 {
            for v in &vms {
                tick(v, &mut h);
            }
        }
        // `chain` fired once (to foo); `ant` fires next year, `idle` never.
        assert_eq!(h.calls.len(), 1);
        assert_eq!(h.calls[0].cluster, "c_foo.callout");
        assert_eq!(decode(h.shared.get("model_workers.cron.chain").map(|(v, _)| v.as_slice())), T0 + 60_000);
        h.now.set(T0 + 90_000);
        for v in &vms {
            tick(v, &mut h);
        }
        assert_eq!(h.calls.len(), 1);
        h.now.set(T0 + 120_000);
        for v in vms.iter().rev() {
            tick(v, &mut h);
        }
        assert_eq!(h.calls.iter().filter(|c| c.cluster == "c_foo.callout").count(), 2);
        assert_eq!(h.metric("model_workers.worker.chain.cron_runs"), 2);
        assert_eq!(h.metric("model_workers.worker.ant.cron_runs"), 0);
        // A VM configured later (a reload, a new thread) does not fire a past period again.
        let late = vm(&mut h);
        tick(&late, &mut h);
        assert_eq!(h.calls.len(), 2);
        // A VM that stalled past several periods fires once, for the latest, if still free.
        h.now.set(T0 + 300_500);
        tick(&late, &mut h);
        tick(&vms[0], &mut h);
        assert_eq!(h.calls.iter().filter(|c| c.cluster == "c_foo.callout").count(), 3);
    }

    #[test]
    fn lease_cas_one_winner() {
        let mut h = host();
        h.shared.insert("k".into(), (0u64.to_le_bytes().to_vec(), 1));
        assert!(claim(&mut h, "k", 60_000));
        assert!(!claim(&mut h, "k", 60_000));
        assert!(!claim(&mut h, "k", 30_000), "an older fire time never wins");
        assert!(claim(&mut h, "k", 120_000));
        // No key (never created): no lease.
        assert!(!claim(&mut h, "absent", 60_000));
    }

    #[test]
    fn the_call_is_an_openai_chat_for_the_first_model() {
        let mut h = host();
        let v = vm(&mut h);
        h.now.set(T0 + 60_000);
        tick(&v, &mut h);
        let c = &h.calls[0];
        assert_eq!(c.header(":method"), Some("POST"));
        assert_eq!(c.header(":path"), Some("/v1/chat/completions"));
        assert_eq!(c.header(":authority"), Some("c_foo"));
        assert_eq!(c.header("authorization"), Some("Bearer sk-foo"));
        assert_eq!(c.header("content-length"), Some(c.body.len().to_string().as_str()));
        assert_eq!(c.timeout_ms, 5_000);
        let body: serde_json::Value = serde_json::from_slice(&c.body).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "What's the date today?"}]})
        );
        assert_eq!(v.cron.pending(), 1);
    }

    #[test]
    fn failure_moves_to_the_next_candidate_and_feeds_the_breaker() {
        let mut h = host();
        let v = vm(&mut h);
        h.now.set(T0 + 60_000);
        tick(&v, &mut h);
        h.advance(12);
        answer(&mut h, 503, "{\"error\":\"overloaded\"}");
        on_response(&v, &mut h, 1, 1, 22);
        // foo's breaker opened (cooldown_failures: 1) and bar got the prompt, at its endpoint.
        let b = v.models.read(&h).unwrap();
        assert!(b[0].breaker.is_open(h.now_ms()));
        assert_eq!(h.metric("model_workers.model.foo.cooldowns"), 1);
        assert_eq!(h.calls.len(), 2);
        assert_eq!(h.calls[1].cluster, "c_bar.callout");
        assert_eq!(h.calls[1].header(":path"), Some("/x/v1/chat/completions"));
        assert_eq!(h.calls[1].header(":authority"), Some("bar.example"));
        assert_eq!(h.calls[1].header("authorization"), None);
        assert!(String::from_utf8_lossy(&h.calls[1].body).contains("\"gpt-4o-mini\""));
        h.advance(30);
        answer(&mut h, 200, "{}");
        on_response(&v, &mut h, 2, 1, 2);
        assert_eq!(
            outcome_lines(&h),
            ["model-workers: scheduled prompt: worker `chain` model `bar` status 200 in 42 ms"]
        );
        assert_eq!(h.metric("model_workers.worker.chain.cron_runs"), 1);
        assert_eq!(h.metric("model_workers.worker.chain.cron_failures"), 0);
        assert_eq!(v.cron.pending(), 0);
        // The next run: foo is cooling, so the policy puts bar first.
        h.now.set(T0 + 120_000);
        tick(&v, &mut h);
        assert_eq!(h.calls[2].cluster, "c_bar.callout");
        // An unknown token (a reload's old call) is ignored.
        on_response(&v, &mut h, 99, 1, 0);
        assert_eq!(v.cron.pending(), 1);
    }

    #[test]
    fn every_candidate_failing_is_one_failed_run() {
        let mut h = host();
        let v = vm(&mut h);
        h.now.set(T0 + 60_000);
        tick(&v, &mut h);
        // foo: no response before its 5 s timeout; bar: reset at once.
        h.advance(5_000);
        h.call_headers.clear();
        on_response(&v, &mut h, 1, 0, 0);
        h.advance(3);
        on_response(&v, &mut h, 2, 0, 0);
        assert_eq!(
            outcome_lines(&h),
            ["model-workers: scheduled prompt: worker `chain` model `bar` status reset in 5003 ms"]
        );
        assert_eq!(h.metric("model_workers.worker.chain.cron_runs"), 1);
        assert_eq!(h.metric("model_workers.worker.chain.cron_failures"), 1);
        assert!(h
            .logs
            .borrow()
            .iter()
            .any(|(_, m)| m.contains("model `foo` cooling down") && m.contains("after timeout")));
    }

    #[test]
    fn a_client_error_ends_the_run_and_a_refused_cluster_is_skipped() {
        let mut h = host();
        let v = vm(&mut h);
        h.now.set(T0 + 60_000);
        tick(&v, &mut h);
        answer(&mut h, 400, "bad");
        on_response(&v, &mut h, 1, 1, 3);
        assert_eq!(h.calls.len(), 1, "400 is the answer, not a reason to try bar");
        assert_eq!(h.metric("model_workers.worker.chain.cron_failures"), 1);
        // The host refuses foo's cluster: bar is called straight away.
        h.refuse_calls_to = vec!["c_foo.callout".into()];
        h.now.set(T0 + 120_000);
        tick(&v, &mut h);
        assert_eq!(h.calls.len(), 2);
        assert_eq!(h.calls[1].cluster, "c_bar.callout");
        // Every cluster refused: the run fails at once.
        h.refuse_calls_to = vec!["c_foo.callout".into(), "c_bar.callout".into()];
        h.now.set(T0 + 180_000);
        tick(&v, &mut h);
        assert_eq!(h.metric("model_workers.worker.chain.cron_failures"), 2);
        assert!(outcome_lines(&h).last().unwrap().contains("status none"));
    }

    #[test]
    fn anthropic_models_get_a_translated_prompt() {
        let mut h = host();
        let v = vm(&mut h);
        h.now.set(T0 + 365 * 86_400_000);
        tick(&v, &mut h);
        let c = h.calls.iter().find(|c| c.cluster == "c_claude.callout").unwrap();
        assert_eq!(c.header(":path"), Some("/v1/messages"));
        assert_eq!(c.header("x-api-key"), Some("sk-ant"));
        assert!(c.header("anthropic-version").is_some());
        let body: serde_json::Value = serde_json::from_slice(&c.body).unwrap();
        assert_eq!(body["model"], "claude-sonnet-4-5");
        assert!(body["max_tokens"].as_u64().unwrap() > 0);
        // The model's own messages, as on a client's attempt: the system prompt hoisted, the
        // appended user message merged into the prompt's turn (Anthropic's roles alternate).
        assert_eq!(body["system"], "Be brief.");
        assert_eq!(body["messages"].as_array().unwrap().len(), 1, "{body}");
        let turn = body["messages"][0].to_string();
        assert!(turn.find("hi").unwrap() < turn.find("Answer in one word.").unwrap(), "{turn}");
    }

    #[test]
    fn inactive_and_ignored_are_logged_at_configure() {
        let mut h = host();
        let _ = vm(&mut h);
        let logs = h.logs.borrow();
        assert!(logs.iter().any(|(l, m)| *l == Level::Info
            && m.contains("worker `idle`: cron \"*/10 * * * * *\" is inactive without `params.prompt`")));
        // Only active schedules have counters.
        assert!(h.metric_names.iter().any(|(_, n)| n == "model_workers.worker.chain.cron_runs"));
        assert!(!h.metric_names.iter().any(|(_, n)| n == "model_workers.worker.idle.cron_runs"));
    }
}
