//! The "wasm floor": the cheapest useful V8 filter, one property read and one header set per request.
//!
//! `peerguard-bench` runs it next to peerguard so that peerguard's cost can be split into what
//! any proxy-wasm filter pays the host (VM entry, context creation, host calls) and what is ours.
//! A plugin configuration of a number N (1 to 16) makes it read the property N times: the bench
//! runs N = 1..4 to measure what one more host call costs.
#![forbid(unsafe_code)]

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Warn);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(FloorRoot { reads: 1 }) });
}}

struct FloorRoot {
    reads: u32,
}

impl Context for FloorRoot {}

impl RootContext for FloorRoot {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        let config = self.get_plugin_configuration().unwrap_or_default();
        let text = String::from_utf8_lossy(&config);
        self.reads = if text.trim().is_empty() { 1 } else { text.trim().parse().unwrap_or(1).clamp(1, 16) };
        true
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(FloorHttp { reads: self.reads }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct FloorHttp {
    reads: u32,
}

impl Context for FloorHttp {}

impl HttpContext for FloorHttp {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        // The same first fact peerguard needs: which peer is this.
        let mut san = self.get_property(vec!["connection", "uri_san_peer_certificate"]).unwrap_or_default();
        for _ in 1..self.reads {
            // Extra reads of the same property, kept so that none is optimised away.
            let again = self.get_property(vec!["connection", "uri_san_peer_certificate"]).unwrap_or_default();
            if again.len() > san.len() {
                san = again;
            }
        }
        let value = String::from_utf8_lossy(&san);
        self.set_http_request_header("x-floor-peer", Some(&value));
        Action::Continue
    }
}
