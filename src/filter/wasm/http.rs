//! The per-request context. Its first callback decides the role: a request whose filter
//! state holds a plan is an upstream attempt (this .wasm on a model cluster); anything else
//! is a new downstream request. Every callback then enters that role's state machine.

use std::cell::RefCell;
use std::rc::Rc;

use crate::filter::downstream::Downstream;
use crate::filter::host::{Flow, Host};
use crate::filter::upstream::Upstream;
use crate::filter::vm::Vm;
use crate::plan::{Plan, PLAN_KEY};

use super::hostcalls::WasmHost;

enum Role {
    Unknown,
    Down(Box<Downstream>),
    Up(Rc<RefCell<Upstream>>),
}

pub struct Http {
    context_id: u32,
    vm: Rc<Vm>,
    role: Role,
}

impl Http {
    pub fn new(context_id: u32, vm: Rc<Vm>) -> Self {
        Http { context_id, vm, role: Role::Unknown }
    }
}

/// Run `f` on the upstream attempt unless it is busy (a re-entrant callback during a resume
/// or a local reply passes).
fn up(a: &Rc<RefCell<Upstream>>, f: impl FnOnce(&mut Upstream, &mut WasmHost) -> Flow) -> Flow {
    match a.try_borrow_mut() {
        Ok(mut a) => f(&mut a, &mut WasmHost),
        Err(_) => Flow::Continue,
    }
}

impl Http {
    /// The request's end (Envoy's `onDestroy`, after its access-log pass; every HTTP context
    /// gets it, reset and timeout included): an attempt records how it ended, a downstream
    /// request its worker's outcome.
    pub fn on_done(&mut self) {
        match &self.role {
            Role::Up(a) => {
                if let Ok(mut a) = a.try_borrow_mut() {
                    a.on_done(&mut WasmHost);
                }
            }
            Role::Down(d) => d.on_done(&mut WasmHost),
            Role::Unknown => {}
        }
    }

    pub fn on_request_headers(&mut self, end_of_stream: bool) -> Flow {
        let mut host = WasmHost;
        if matches!(self.role, Role::Unknown) {
            self.role = match host.property(&[PLAN_KEY]) {
                Some(bytes) => match Plan::decode(&bytes, &self.vm.config) {
                    Some(plan) => Role::Up(Upstream::new(self.vm.clone(), self.context_id, plan)),
                    None => return Flow::Continue,
                },
                None => Role::Down(Box::new(Downstream::new(self.vm.clone(), self.context_id))),
            };
        }
        match &mut self.role {
            Role::Down(d) => d.on_request_headers(&mut host, end_of_stream),
            Role::Up(a) => up(a, |a, h| a.on_request_headers(h)),
            Role::Unknown => Flow::Continue,
        }
    }

    pub fn on_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Flow {
        match &mut self.role {
            Role::Down(d) => d.on_request_body(&mut WasmHost, body_size, end_of_stream),
            Role::Up(a) => up(a, |a, h| a.on_request_body(h, body_size, end_of_stream)),
            Role::Unknown => Flow::Continue,
        }
    }

    pub fn on_request_trailers(&mut self) -> Flow {
        match &mut self.role {
            Role::Down(d) => d.on_request_trailers(&mut WasmHost),
            _ => Flow::Continue,
        }
    }

    pub fn on_response_headers(&mut self, end_of_stream: bool) -> Flow {
        match &mut self.role {
            Role::Down(d) => d.on_response_headers(&mut WasmHost, end_of_stream),
            Role::Up(a) => up(a, |a, h| a.on_response_headers(h, end_of_stream)),
            Role::Unknown => Flow::Continue,
        }
    }

    pub fn on_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Flow {
        match &mut self.role {
            Role::Down(d) => d.on_response_body(&mut WasmHost, body_size, end_of_stream),
            Role::Up(a) => up(a, |a, h| a.on_response_body(h, body_size, end_of_stream)),
            Role::Unknown => Flow::Continue,
        }
    }
}
