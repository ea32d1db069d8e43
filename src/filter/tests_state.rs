//! The shared per-model table through the glue: each attempt's in-flight count goes up once
//! and down once however it ends, latency samples land in the EWMA, routing reads the table
//! once, CAS races are retried and a broken host degrades without a panic.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::rc::Rc;

use super::downstream::Downstream;
use super::fake::FakeHost;
use super::host::Flow;
use super::upstream::Upstream;
use super::vm::{TimerKind, Vm};
use crate::config::Config;
use crate::plan::{Plan, PLAN_KEY};
use crate::state::{ModelState, Table, TABLE_KEY};

const CFG: &str = r#"
models:
  - { from: openai:gpt-a, name: a, params: { cluster: ca, timeout: 5s } }
  - { from: openai:gpt-b, name: b, params: { cluster: cb, timeout: 5s } }
workers:
  - name: lb
    load_balance: { strategy: least_busy, routing: [{ from: a }, { from: b }] }
  - name: lat
    load_balance: { strategy: latency, explore: 0, routing: [{ from: a }, { from: b }] }
  - name: rr
    load_balance: { routing: [{ from: a }, { from: b }] }
"#;

fn vm(host: &mut FakeHost) -> Rc<Vm> {
    let vm = Rc::new(Vm::new(Config::parse(CFG, &|_| None).unwrap(), host));
    vm.rng.set(1);
    vm
}

fn request(model: &str, stream: bool) -> FakeHost {
    let body = format!(r#"{{"model":"{model}","stream":{stream},"messages":[{{"role":"user","content":"hi"}}]}}"#);
    FakeHost::new().with_request(
        &[
            (":method", "POST"),
            (":path", "/v1/chat/completions"),
            ("content-type", "application/json"),
            ("content-length", &body.len().to_string()),
        ],
        &body,
    )
}

fn table(h: &FakeHost) -> Table {
    Table::decode(h.shared.get(TABLE_KEY).map(|(v, _)| v.as_slice()))
}

fn state(h: &FakeHost, name: &str) -> ModelState {
    table(h).get(name).copied().unwrap_or_default()
}

/// Route one request on `vm` (fresh request state in `h`); returns the first model's name.
fn route(h: &mut FakeHost, vm: &Rc<Vm>, model: &str, stream: bool) -> String {
    let fresh = request(model, stream);
    h.request_headers = fresh.request_headers;
    h.request_body = fresh.request_body;
    h.properties.clear();
    let mut down = Downstream::new(vm.clone(), 1);
    assert_eq!(down.on_request_headers(h, false), Flow::Pause);
    let len = h.request_body.len();
    assert_eq!(down.on_request_body(h, len, true), Flow::Continue);
    h.prop(crate::plan::NEXT_KEY).unwrap()
}

fn upstream(h: &FakeHost, vm: &Rc<Vm>) -> Rc<std::cell::RefCell<Upstream>> {
    let plan = Plan::decode(&h.properties[PLAN_KEY], &vm.config).unwrap();
    Upstream::new(vm.clone(), 7, plan)
}

#[derive(Debug, Clone, Copy)]
enum End {
    /// Response headers 200, body, done.
    Success,
    /// A 2xx stream: headers held until its first event.
    Stream,
    /// 503, retried by the router.
    Failure,
    /// Connection reset before any response.
    Reset,
    /// The per-try timeout: the router gives up on it.
    Timeout,
    /// The stream's first-event deadline fires, then the router abandons the attempt.
    FirstEventDeadline,
    /// The client went away mid-request (headers sent, nothing back).
    ClientCancel,
    /// The client went away while the answer streamed.
    CancelWhileStreaming,
}

#[test]
fn in_flight_goes_up_and_down_exactly_once_per_attempt() {
    for end in [
        End::Success,
        End::Stream,
        End::Failure,
        End::Reset,
        End::Timeout,
        End::FirstEventDeadline,
        End::ClientCancel,
        End::CancelWhileStreaming,
    ] {
        let mut h = FakeHost::new();
        let vm = vm(&mut h);
        let stream = matches!(end, End::Stream | End::FirstEventDeadline | End::CancelWhileStreaming);
        let first = route(&mut h, &vm, "lb", stream);
        let up = upstream(&h, &vm);
        let mut u = up.borrow_mut();
        assert_eq!(u.on_request_headers(&mut h), Flow::Continue);
        assert_eq!(state(&h, &first).in_flight, 1, "{end:?}: started");
        let len = h.request_body.len();
        let _ = u.on_request_body(&mut h, len, true);
        h.advance(40);
        match end {
            End::Success | End::Failure => {
                let s = if matches!(end, End::Success) { "200" } else { "503" };
                h.set_response(&[(":status", s), ("content-type", "application/json")], "{}");
                if u.on_response_headers(&mut h, false) == Flow::Pause {
                    let len = h.response_body.len();
                    let _ = u.on_response_body(&mut h, len, true);
                }
            }
            End::Stream | End::CancelWhileStreaming | End::FirstEventDeadline => {
                h.set_response(&[(":status", "200"), ("content-type", "text/event-stream")], "");
                assert_eq!(u.on_response_headers(&mut h, false), Flow::Pause);
                if matches!(end, End::FirstEventDeadline) {
                    h.advance(6000);
                    let _ = u.on_timer(&mut h, TimerKind::FirstEventDeadline);
                } else {
                    h.response_body = b"data: {\"choices\":[]}\n\n".to_vec();
                    let len = h.response_body.len();
                    assert_eq!(u.on_response_body(&mut h, len, false), Flow::Continue);
                }
            }
            End::Timeout => h.advance(u64::from(u32::MAX)),
            End::Reset | End::ClientCancel => {}
        }
        assert_eq!(state(&h, &first).in_flight, 1, "{end:?}: still in flight until on_done");
        u.on_done(&mut h);
        assert_eq!(state(&h, &first).in_flight, 0, "{end:?}: ended");
        u.on_done(&mut h);
        assert_eq!(state(&h, &first).in_flight, 0, "{end:?}: a second on_done changes nothing");
        let other = if first == "a" { "b" } else { "a" };
        assert_eq!(state(&h, other).in_flight, 0, "{end:?}: the other model untouched");
        // The gauge shows the table's value at its last write.
        assert_eq!(h.recorded[&format!("model_workers.model.{first}.in_flight")].last(), Some(&0), "{end:?}");
    }
}

#[test]
fn least_busy_avoids_the_model_with_attempts_piling_up() {
    let mut h = FakeHost::new();
    let vm = vm(&mut h);
    // Five attempts hang on whichever model each request picked: they pile up on one model
    // only while the other stays free (p2c of two: the less busy always leads).
    let mut held = Vec::new();
    let first = route(&mut h, &vm, "lb", false);
    for _ in 0..5 {
        let name = route(&mut h, &vm, "lb", false);
        if name != first {
            continue;
        }
        let up = upstream(&h, &vm);
        assert_eq!(up.borrow_mut().on_request_headers(&mut h), Flow::Continue);
        held.push(up);
        break;
    }
    assert_eq!(held.len(), 1);
    let busy = first.clone();
    for _ in 0..20 {
        assert_ne!(route(&mut h, &vm, "lb", false), busy, "never the busier model while the other is idle");
    }
    held.pop().unwrap().borrow_mut().on_done(&mut h);
    assert_eq!(state(&h, &busy).in_flight, 0);
}

#[test]
fn latency_samples_feed_the_ewma_and_the_fastest_model_leads() {
    let mut h = FakeHost::new();
    let vm = vm(&mut h);
    // Both models unmeasured: config order, and each gets measured once.
    for (ms, stream) in [(300u64, false), (30, true)] {
        let first = route(&mut h, &vm, "lat", stream);
        let up = upstream(&h, &vm);
        let mut u = up.borrow_mut();
        let _ = u.on_request_headers(&mut h);
        h.advance(ms);
        let ct = if stream { "text/event-stream" } else { "application/json" };
        h.set_response(&[(":status", "200"), ("content-type", ct)], "data: {\"choices\":[]}\n\n");
        if u.on_response_headers(&mut h, false) == Flow::Pause {
            // A stream's sample is its first event.
            let len = h.response_body.len();
            let _ = u.on_response_body(&mut h, len, false);
        }
        u.on_done(&mut h);
        assert_eq!((state(&h, &first).ewma_ms, state(&h, &first).samples), (ms as u32, 1), "{first}");
        assert_eq!(h.recorded[&format!("model_workers.model.{first}.ewma_ms")].last(), Some(&ms));
    }
    assert_eq!(state(&h, "a").ewma_ms, 300);
    for _ in 0..5 {
        assert_eq!(route(&mut h, &vm, "lat", false), "b", "the faster model serves");
    }
}

#[test]
fn routing_reads_the_table_once_per_request() {
    let mut h = FakeHost::new();
    let vm = vm(&mut h);
    let before = h.shared_reads.get();
    route(&mut h, &vm, "lb", false);
    assert_eq!(h.shared_reads.get() - before, 1, "least busy: the table, no ticket");
    let before = h.shared_reads.get();
    route(&mut h, &vm, "lat", false);
    assert_eq!(h.shared_reads.get() - before, 1, "latency with explore 0: the table, no ticket");
}

#[test]
fn cas_races_are_retried_and_a_broken_host_degrades() {
    let mut h = FakeHost::new();
    let vm = vm(&mut h);
    let first = route(&mut h, &vm, "lb", false);
    let up = upstream(&h, &vm);
    let mut u = up.borrow_mut();
    h.cas_mismatches = 3;
    let writes = h.shared_writes;
    let _ = u.on_request_headers(&mut h);
    assert_eq!(h.shared_writes - writes, 4, "three lost races, then stored");
    assert_eq!(state(&h, &first).in_flight, 1);
    u.on_done(&mut h);
    assert_eq!(state(&h, &first).in_flight, 0);
    drop(u);

    // Every race lost: the increment is given up, so its end does not decrement either.
    let first = route(&mut h, &vm, "lb", false);
    let up = upstream(&h, &vm);
    let mut u = up.borrow_mut();
    h.cas_mismatches = 1000;
    let _ = u.on_request_headers(&mut h);
    h.cas_mismatches = 0;
    assert_eq!(state(&h, &first).in_flight, 0);
    u.on_done(&mut h);
    assert_eq!(state(&h, &first).in_flight, 0, "no decrement without its increment");
    drop(u);

    // Shared data broken: requests still route and attempts still run.
    h.shared_broken = true;
    let first = route(&mut h, &vm, "lb", false);
    let up = upstream(&h, &vm);
    let mut u = up.borrow_mut();
    assert_eq!(u.on_request_headers(&mut h), Flow::Continue);
    h.set_response(&[(":status", "503"), ("content-type", "application/json")], "{}");
    let _ = u.on_response_headers(&mut h, true);
    u.on_done(&mut h);
    assert!(!first.is_empty());
}

#[test]
fn state_is_kept_by_model_name_across_configurations() {
    let mut h = FakeHost::new();
    let vm1 = vm(&mut h);
    let first = route(&mut h, &vm1, "lb", false);
    let up = upstream(&h, &vm1);
    let _ = up.borrow_mut().on_request_headers(&mut h);
    // A new configuration that drops the other model and reorders: `first` keeps its count.
    let cfg2 = format!(
        "models:\n  - {{ from: openai:gpt-z, name: z, params: {{ cluster: cz }} }}\n  - {{ from: openai:gpt-x, name: {first}, params: {{ cluster: cx }} }}\nworkers:\n  - name: lb\n    load_balance: {{ strategy: least_busy, routing: [{{ from: z }}, {{ from: {first} }}] }}\n"
    );
    let vm2 = Rc::new(Vm::new(Config::parse(&cfg2, &|_| None).unwrap(), &mut h));
    let states = vm2.models.read(&h).unwrap();
    assert_eq!(states[1].in_flight, 1, "{first} is model 1 now and keeps its in-flight count");
    assert_eq!(states[0], ModelState::default());
    // The old VM's attempt ends: the count the new configuration reads goes back to 0.
    up.borrow_mut().on_done(&mut h);
    assert_eq!(vm2.models.read(&h).unwrap()[1].in_flight, 0);
}

/// Round robin takes its tickets from the shared counter; should the host refuse or every CAS
/// race be lost, the request is still served from the VM's own counter, and Envoy's log says
/// so (an inexact rotation can be traced to it).
#[test]
fn a_lost_ticket_race_is_served_locally_and_logged() {
    let mut h = FakeHost::new();
    let vm = vm(&mut h);
    let local = |h: &FakeHost| h.logs.borrow().iter().filter(|(_, m)| m.contains("takes a local ticket")).count();
    let a = route(&mut h, &vm, "rr", false);
    let b = route(&mut h, &vm, "rr", false);
    assert_ne!(a, b, "shared tickets rotate");
    assert_eq!(local(&h), 0);
    h.cas_mismatches = 1000;
    let _ = route(&mut h, &vm, "rr", false);
    h.cas_mismatches = 0;
    assert_eq!(local(&h), 1);
    h.shared_broken = true;
    let _ = route(&mut h, &vm, "rr", false);
    assert_eq!(local(&h), 2);
}
