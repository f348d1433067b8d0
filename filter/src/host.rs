//! The few host calls the filter makes, behind a trait so that the glue can be tested natively.

/// What the request path needs from Envoy.
pub trait Host {
    /// A property such as `["connection", "sha256_peer_certificate_digest"]`; `None` when absent.
    fn property(&self, path: &[&str]) -> Option<Vec<u8>>;
    /// A request header's raw bytes (the first copy).
    fn request_header(&self, name: &str) -> Option<Vec<u8>>;
    /// Every copy of a request header, in the order received (one host call for the whole map).
    fn request_header_values(&self, name: &str) -> Vec<Vec<u8>>;
    /// Sets (`Some`) or removes (`None`) a request header.
    fn set_request_header(&self, name: &str, value: Option<&str>);
    /// Ends the request with a local reply.
    fn send_response(&self, status: u32, headers: &[(&str, &str)], body: &[u8]);
    /// The host clock, Unix seconds.
    fn now_unix(&self) -> i64;
    /// Adds one to a counter defined with `define_metric`.
    fn increment_metric(&self, id: u32);
    /// Defines (or finds) a counter by name; `None` when the host refuses.
    fn define_counter(&self, name: &str) -> Option<u32>;
}

/// The real host: proxy-wasm hostcalls, with every error turned into "absent" rather than a panic.
#[cfg(feature = "proxy-wasm")]
pub struct ProxyWasmHost;

#[cfg(feature = "proxy-wasm")]
impl Host for ProxyWasmHost {
    fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
        proxy_wasm::hostcalls::get_property(path.to_vec()).ok().flatten()
    }

    fn request_header(&self, name: &str) -> Option<Vec<u8>> {
        proxy_wasm::hostcalls::get_map_value_bytes(proxy_wasm::types::MapType::HttpRequestHeaders, name).ok().flatten()
    }

    fn request_header_values(&self, name: &str) -> Vec<Vec<u8>> {
        proxy_wasm::hostcalls::get_map_bytes(proxy_wasm::types::MapType::HttpRequestHeaders)
            .map(|all| all.into_iter().filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v).collect())
            .unwrap_or_default()
    }

    fn set_request_header(&self, name: &str, value: Option<&str>) {
        let _ = proxy_wasm::hostcalls::set_map_value(proxy_wasm::types::MapType::HttpRequestHeaders, name, value);
    }

    fn send_response(&self, status: u32, headers: &[(&str, &str)], body: &[u8]) {
        if let Err(e) = proxy_wasm::hostcalls::send_http_response(status, headers.to_vec(), Some(body)) {
            log::error!("peerguard: send_http_response failed: {e:?}");
        }
    }

    fn now_unix(&self) -> i64 {
        proxy_wasm::hostcalls::get_current_time()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
    }

    fn increment_metric(&self, id: u32) {
        let _ = proxy_wasm::hostcalls::increment_metric(id, 1);
    }

    fn define_counter(&self, name: &str) -> Option<u32> {
        proxy_wasm::hostcalls::define_metric(proxy_wasm::types::MetricType::Counter, name).ok()
    }
}
