//! The "wasm floor": the cheapest useful V8 filter, one property read and one header set per request.
//!
//! `peerguard-bench` runs it next to peerguard so that peerguard's cost can be split into what
//! any proxy-wasm filter pays the host (VM entry, context creation, host calls) and what is ours.
#![forbid(unsafe_code)]

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Warn);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(FloorRoot) });
}}

struct FloorRoot;

impl Context for FloorRoot {}

impl RootContext for FloorRoot {
    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(FloorHttp))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct FloorHttp;

impl Context for FloorHttp {}

impl HttpContext for FloorHttp {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        // The same first fact peerguard needs: which peer is this.
        let san = self.get_property(vec!["connection", "uri_san_peer_certificate"]).unwrap_or_default();
        let value = String::from_utf8_lossy(&san);
        self.set_http_request_header("x-floor-peer", Some(&value));
        Action::Continue
    }
}
