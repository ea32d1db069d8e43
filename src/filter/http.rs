//! The per-request context: a thin shell that enters the request's [`Exchange`].

use std::cell::RefCell;
use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;

use super::exchange::Exchange;
use super::root::Vm;

pub struct Http {
    ex: Rc<RefCell<Exchange>>,
}

impl Http {
    pub fn new(context_id: u32, vm: Rc<Vm>) -> Self {
        Http { ex: Exchange::new(context_id, vm) }
    }
}

impl Context for Http {
    fn on_http_call_response(&mut self, token_id: u32, _num_headers: usize, body_size: usize, _num_trailers: usize) {
        let ex = self.ex.clone();
        let Ok(mut guard) = ex.try_borrow_mut() else {
            return;
        };
        guard.on_callout_response(token_id, body_size, self, false);
    }
}

impl HttpContext for Http {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        match self.ex.try_borrow_mut() {
            Ok(mut ex) => ex.on_request_headers(end_of_stream),
            Err(_) => Action::Continue,
        }
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        match self.ex.try_borrow_mut() {
            Ok(mut ex) => ex.on_request_body(body_size, end_of_stream),
            Err(_) => Action::Continue,
        }
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let ex = self.ex.clone();
        let Ok(mut guard) = ex.try_borrow_mut() else {
            return Action::Continue;
        };
        guard.on_response_headers(end_of_stream, self)
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let ex = self.ex.clone();
        let Ok(mut guard) = ex.try_borrow_mut() else { return Action::Continue };
        guard.on_response_body(body_size, end_of_stream, self)
    }

    fn on_log(&mut self) {
        if let Ok(ex) = self.ex.try_borrow() {
            ex.on_log();
        }
    }
}
