//! The only unsafe code of the native build: Envoy's dynamic-module C ABI (`abi.h`, Envoy 1.40), the hooks Envoy calls and the callbacks it exports.
//!
//! Written from the header, for the hooks an HTTP filter must export and the callbacks peerguard
//! uses. Every hook runs its body under `catch_unwind` (the native profile builds with
//! `panic = "unwind"`), so a panic never unwinds into Envoy: a request whose hook panicked is
//! answered 503, as an invalid policy is. Everything above this module is safe Rust
//! ([`crate::filter`]).
#![allow(unsafe_code)]

use std::ffi::{c_char, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use crate::filter::{self, Config, FilterHandle};

// ----------------------------------------------------------------------------- ABI types

/// `envoy_dynamic_module_type_envoy_buffer`: bytes owned by Envoy, valid during the hook.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct EnvoyBuffer {
    ptr: *const c_char,
    length: usize,
}

/// `envoy_dynamic_module_type_module_buffer`: bytes owned by the module, valid during the call.
#[repr(C)]
#[derive(Clone, Copy)]
struct ModuleBuffer {
    ptr: *const c_char,
    length: usize,
}

impl ModuleBuffer {
    fn of(bytes: &[u8]) -> ModuleBuffer {
        ModuleBuffer { ptr: bytes.as_ptr().cast(), length: bytes.len() }
    }
    const NULL: ModuleBuffer = ModuleBuffer { ptr: std::ptr::null(), length: 0 };
}

/// `envoy_dynamic_module_type_module_http_header`.
#[repr(C)]
struct ModuleHttpHeader {
    key_ptr: *const c_char,
    key_length: usize,
    value_ptr: *const c_char,
    value_length: usize,
}

/// `envoy_dynamic_module_type_envoy_http_header`: a header owned by Envoy, valid during the hook.
#[repr(C)]
pub struct EnvoyHttpHeader {
    key_ptr: *const c_char,
    key_length: usize,
    value_ptr: *const c_char,
    value_length: usize,
}

/// `envoy_dynamic_module_type_http_header_type_RequestHeader`.
const REQUEST_HEADER: u32 = 0;
/// `envoy_dynamic_module_type_on_http_filter_*_status_Continue` (every status enum starts with it).
const CONTINUE: u32 = 0;
/// `envoy_dynamic_module_type_on_http_filter_request_headers_status_StopIteration`.
const STOP_ITERATION: u32 = 1;
/// `envoy_dynamic_module_type_metrics_result_Success`.
const METRICS_SUCCESS: u32 = 0;

/// `envoy_dynamic_module_type_attribute_id`: the attributes the request glue reads, numbered as
/// in the header's enum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Attribute {
    SourceAddress = 24,
    DestinationPort = 27,
    ConnectionRequestedServerName = 30,
    ConnectionSubjectPeerCertificate = 33,
    ConnectionDnsSanPeerCertificate = 35,
    ConnectionUriSanPeerCertificate = 37,
    ConnectionSha256PeerCertificateDigest = 38,
}

/// `envoy_dynamic_module_type_log_level`.
#[derive(Clone, Copy, Debug)]
#[repr(u32)]
pub enum LogLevel {
    Trace = 0,
    Debug = 1,
    Info = 2,
    Warn = 3,
    Error = 4,
}

// ------------------------------------------------------------------- Envoy's callbacks

extern "C" {
    fn envoy_dynamic_module_callback_log(level: u32, message: ModuleBuffer);
    fn envoy_dynamic_module_callback_log_enabled(level: u32) -> bool;
    fn envoy_dynamic_module_callback_http_get_header(
        filter_envoy_ptr: *mut c_void,
        header_type: u32,
        key: ModuleBuffer,
        result: *mut EnvoyBuffer,
        index: usize,
        optional_size: *mut usize,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_set_header(
        filter_envoy_ptr: *mut c_void,
        header_type: u32,
        key: ModuleBuffer,
        value: ModuleBuffer,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_clear_route_cache(filter_envoy_ptr: *mut c_void);
    fn envoy_dynamic_module_callback_http_send_response(
        filter_envoy_ptr: *mut c_void,
        status_code: u32,
        headers: *const ModuleHttpHeader,
        headers_size: usize,
        body: ModuleBuffer,
        details: ModuleBuffer,
    );
    fn envoy_dynamic_module_callback_http_filter_get_attribute_string(
        filter_envoy_ptr: *mut c_void,
        attribute_id: u32,
        result: *mut EnvoyBuffer,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_filter_get_attribute_int(
        filter_envoy_ptr: *mut c_void,
        attribute_id: u32,
        result: *mut u64,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_get_filter_state_bytes(
        filter_envoy_ptr: *mut c_void,
        key: ModuleBuffer,
        result: *mut EnvoyBuffer,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_filter_config_define_counter(
        config_envoy_ptr: *mut c_void,
        name: ModuleBuffer,
        label_names: *const ModuleBuffer,
        label_names_length: usize,
        counter_id: *mut usize,
    ) -> u32;
    fn envoy_dynamic_module_callback_http_filter_config_increment_counter(
        config_envoy_ptr: *mut c_void,
        id: usize,
        label_values: *const ModuleBuffer,
        label_values_length: usize,
        value: u64,
    ) -> u32;
    fn envoy_dynamic_module_callback_http_filter_config_define_gauge(
        config_envoy_ptr: *mut c_void,
        name: ModuleBuffer,
        label_names: *const ModuleBuffer,
        label_names_length: usize,
        gauge_id: *mut usize,
    ) -> u32;
    fn envoy_dynamic_module_callback_http_filter_config_define_histogram(
        config_envoy_ptr: *mut c_void,
        name: ModuleBuffer,
        label_names: *const ModuleBuffer,
        label_names_length: usize,
        histogram_id: *mut usize,
    ) -> u32;
    fn envoy_dynamic_module_callback_http_filter_config_set_gauge(
        config_envoy_ptr: *mut c_void,
        id: usize,
        label_values: *const ModuleBuffer,
        label_values_length: usize,
        value: u64,
    ) -> u32;
    fn envoy_dynamic_module_callback_http_filter_config_record_histogram_value(
        config_envoy_ptr: *mut c_void,
        id: usize,
        label_values: *const ModuleBuffer,
        label_values_length: usize,
        value: u64,
    ) -> u32;
    fn envoy_dynamic_module_callback_http_filter_config_http_callout(
        config_envoy_ptr: *mut c_void,
        callout_id: *mut u64,
        cluster_name: ModuleBuffer,
        headers: *const ModuleHttpHeader,
        headers_size: usize,
        body: ModuleBuffer,
        timeout_milliseconds: u64,
    ) -> u32;
    fn envoy_dynamic_module_callback_http_filter_config_scheduler_new(config_envoy_ptr: *mut c_void) -> *mut c_void;
    fn envoy_dynamic_module_callback_http_filter_config_scheduler_commit(scheduler: *mut c_void, event_id: u64);
    fn envoy_dynamic_module_callback_http_filter_config_scheduler_delete(scheduler: *mut c_void);
    fn envoy_dynamic_module_callback_http_filter_increment_counter(
        filter_envoy_ptr: *mut c_void,
        id: usize,
        label_values: *const ModuleBuffer,
        label_values_length: usize,
        value: u64,
    ) -> u32;
}

/// Copies an Envoy buffer that a callback filled.
fn copy_out(ok: bool, buf: EnvoyBuffer) -> Option<Vec<u8>> {
    if !ok {
        return None;
    }
    if buf.ptr.is_null() || buf.length == 0 {
        return Some(Vec::new());
    }
    // SAFETY: Envoy filled `buf` with a pointer to `length` bytes it owns, valid until the end of
    // the current hook (abi.h, "OWNERSHIP"); we copy them before returning to Envoy.
    Some(unsafe { std::slice::from_raw_parts(buf.ptr.cast::<u8>(), buf.length) }.to_vec())
}

const EMPTY: EnvoyBuffer = EnvoyBuffer { ptr: std::ptr::null(), length: 0 };

/// Writes a line to Envoy's log (component `dynamic_modules`).
pub fn log(level: LogLevel, message: &str) {
    // SAFETY: the buffer points into `message`, which outlives the call; Envoy copies it.
    unsafe { envoy_dynamic_module_callback_log(level as u32, ModuleBuffer::of(message.as_bytes())) }
}

/// Whether Envoy logs at `level` now.
pub fn log_enabled(level: LogLevel) -> bool {
    // SAFETY: a plain call with an enum value from the header.
    unsafe { envoy_dynamic_module_callback_log_enabled(level as u32) }
}

/// A filter config's Envoy side: valid from `on_http_filter_config_new` until
/// `on_http_filter_config_destroy`, and used only on Envoy's main thread (the config hooks).
/// Metrics can be defined only inside `config_new` (Envoy freezes them after it).
pub struct EnvoyConfig(*mut c_void);

/// Kinds of metric, as the ABI defines them with one callback each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricKind {
    Counter,
    Gauge,
    Histogram,
}

/// Label values as the ABI takes them (pointers into the strings, which outlive the call).
fn label_buffers(labels: &[&str]) -> Vec<ModuleBuffer> {
    labels.iter().map(|l| ModuleBuffer::of(l.as_bytes())).collect()
}

/// One header of an HTTP callout, as the ABI takes it.
fn module_headers(headers: &[(&str, &str)]) -> Vec<ModuleHttpHeader> {
    headers
        .iter()
        .map(|(k, v)| ModuleHttpHeader {
            key_ptr: k.as_ptr().cast(),
            key_length: k.len(),
            value_ptr: v.as_ptr().cast(),
            value_length: v.len(),
        })
        .collect()
}

impl EnvoyConfig {
    /// Defines a metric with these label names (none for a plain one); `None` when Envoy refuses.
    /// Labelled and plain metrics have separate id spaces in Envoy: an id is only meaningful with
    /// the same number of label values it was defined with.
    pub fn define(&self, kind: MetricKind, name: &str, label_names: &[&str]) -> Option<usize> {
        let labels = label_buffers(label_names);
        let (ptr, len) = if labels.is_empty() { (std::ptr::null(), 0) } else { (labels.as_ptr(), labels.len()) };
        let define = match kind {
            MetricKind::Counter => envoy_dynamic_module_callback_http_filter_config_define_counter,
            MetricKind::Gauge => envoy_dynamic_module_callback_http_filter_config_define_gauge,
            MetricKind::Histogram => envoy_dynamic_module_callback_http_filter_config_define_histogram,
        };
        let mut id = 0usize;
        // SAFETY: `self.0` is the config pointer of the running `config_new` hook; the name and the
        // label buffers (and the strings they point into) live through the call; `id` is writable.
        let r = unsafe { define(self.0, ModuleBuffer::of(name.as_bytes()), ptr, len, &mut id) };
        (r == METRICS_SUCCESS).then_some(id)
    }

    /// Defines a plain counter; `None` when Envoy refuses.
    pub fn define_counter(&self, name: &str) -> Option<u32> {
        self.define(MetricKind::Counter, name, &[]).and_then(|id| u32::try_from(id).ok())
    }

    /// Adds to a counter, sets a gauge or records a histogram value, with the label values the
    /// metric was defined for (Envoy stats are thread-safe; this runs on the main thread).
    pub fn record(&self, kind: MetricKind, id: usize, label_values: &[&str], value: u64) {
        let labels = label_buffers(label_values);
        let (ptr, len) = if labels.is_empty() { (std::ptr::null(), 0) } else { (labels.as_ptr(), labels.len()) };
        let update = match kind {
            MetricKind::Counter => envoy_dynamic_module_callback_http_filter_config_increment_counter,
            MetricKind::Gauge => envoy_dynamic_module_callback_http_filter_config_set_gauge,
            MetricKind::Histogram => envoy_dynamic_module_callback_http_filter_config_record_histogram_value,
        };
        // SAFETY: `self.0` is the config pointer of a running config hook; the label buffers live
        // through the call. A wrong id or label count is refused by Envoy with a result code.
        unsafe {
            update(self.0, id, ptr, len, value);
        }
    }

    /// Adds one to a plain counter of this config (an invalid policy is counted while it is built).
    pub fn increment_counter(&self, id: u32) {
        self.record(MetricKind::Counter, id as usize, &[], 1);
    }

    /// Starts an HTTP call through `cluster` on the main thread; its answer comes to
    /// `on_http_filter_config_http_callout_done` with the returned id. `Err` carries Envoy's
    /// `http_callout_init_result` (1 missing `:method`/`:path`/host, 2 unknown cluster, 4 no
    /// request could be made).
    pub fn http_callout(&self, cluster: &str, headers: &[(&str, &str)], timeout_ms: u64) -> Result<u64, u32> {
        let hs = module_headers(headers);
        let mut id = 0u64;
        // SAFETY: `self.0` is the config pointer of a running config hook on the main thread (the
        // only thread Envoy allows config callouts on); the headers, the strings they point into
        // and the cluster name live through the call, and Envoy copies them; `id` is writable.
        let r = unsafe {
            envoy_dynamic_module_callback_http_filter_config_http_callout(
                self.0,
                &mut id,
                ModuleBuffer::of(cluster.as_bytes()),
                hs.as_ptr(),
                hs.len(),
                ModuleBuffer::NULL,
                timeout_ms,
            )
        };
        if r == 0 {
            Ok(id)
        } else {
            Err(r)
        }
    }

    /// A scheduler that posts events to this config's `on_http_filter_config_scheduled` on the
    /// main thread, from any thread.
    pub fn scheduler(&self) -> Option<ConfigScheduler> {
        // SAFETY: `self.0` is the config pointer of the running `config_new` hook.
        let p = unsafe { envoy_dynamic_module_callback_http_filter_config_scheduler_new(self.0) };
        (!p.is_null()).then_some(ConfigScheduler(p))
    }
}

/// Envoy's config scheduler, owned by the module: dropping it deletes it.
pub struct ConfigScheduler(*mut c_void);

// SAFETY: abi.h allows `scheduler_commit` from any thread (that is what the scheduler is for);
// Envoy's side holds only a weak reference to the config and posts to the main dispatcher.
unsafe impl Send for ConfigScheduler {}
// SAFETY: as above; `commit` takes `&self` and Envoy synchronises the posting.
unsafe impl Sync for ConfigScheduler {}

impl ConfigScheduler {
    /// Posts `event_id` to the main thread; a no-op once the config is gone.
    pub fn commit(&self, event_id: u64) {
        // SAFETY: the pointer is live until `drop` below, which takes `self` by value, so no
        // commit can follow the delete.
        unsafe { envoy_dynamic_module_callback_http_filter_config_scheduler_commit(self.0, event_id) }
    }
}

impl Drop for ConfigScheduler {
    fn drop(&mut self) {
        // SAFETY: created by `scheduler_new`, deleted exactly once, here.
        unsafe { envoy_dynamic_module_callback_http_filter_config_scheduler_delete(self.0) }
    }
}

/// One HTTP stream's Envoy side, valid during the hook that received it.
pub struct EnvoyFilter(*mut c_void);

impl EnvoyFilter {
    /// The value at `index` of a request header (`None` past its last value, or when absent).
    /// The one place that reads request headers through the ABI.
    fn request_header_at(&self, name: &str, index: usize) -> Option<Vec<u8>> {
        let mut buf = EMPTY;
        let mut count = 0usize;
        // SAFETY: `self.0` is the filter pointer of the running hook; key, result and count are
        // valid for the call, and `count` is written on every call that finds the key.
        let ok = unsafe {
            envoy_dynamic_module_callback_http_get_header(
                self.0,
                REQUEST_HEADER,
                ModuleBuffer::of(name.as_bytes()),
                &mut buf,
                index,
                &mut count,
            )
        };
        if index >= count {
            return None;
        }
        copy_out(ok, buf)
    }

    /// The first value of a request header (`None` when absent).
    pub fn request_header(&self, name: &str) -> Option<Vec<u8>> {
        self.request_header_at(name, 0)
    }

    /// Every value of a request header, in order.
    pub fn request_header_values(&self, name: &str) -> Vec<Vec<u8>> {
        (0..).map_while(|i| self.request_header_at(name, i)).collect()
    }

    /// Replaces every copy of a request header with one value, or removes it (`None`).
    pub fn set_request_header(&self, name: &str, value: Option<&str>) {
        let v = value.map_or(ModuleBuffer::NULL, |v| ModuleBuffer::of(v.as_bytes()));
        // SAFETY: `self.0` is the filter pointer of the running hook; both buffers live through
        // the call (a null value removes the header, abi.h).
        unsafe {
            envoy_dynamic_module_callback_http_set_header(self.0, REQUEST_HEADER, ModuleBuffer::of(name.as_bytes()), v);
        }
    }

    /// Makes Envoy choose the route again (after `:path` changed).
    pub fn clear_route_cache(&self) {
        // SAFETY: `self.0` is the filter pointer of the running hook.
        unsafe { envoy_dynamic_module_callback_http_clear_route_cache(self.0) }
    }

    /// Ends the stream with a local reply.
    pub fn send_response(&self, status: u32, headers: &[(&str, &str)], body: &[u8]) {
        let hs = module_headers(headers);
        // SAFETY: `self.0` is the filter pointer of the running hook; `hs` and the strings it
        // points into, the body and the details live through the call; Envoy copies them.
        unsafe {
            envoy_dynamic_module_callback_http_send_response(
                self.0,
                status,
                hs.as_ptr(),
                hs.len(),
                ModuleBuffer::of(body),
                ModuleBuffer::of(b"peerguard"),
            );
        }
    }

    /// A string attribute (`None` when Envoy has none).
    pub fn attribute_string(&self, id: Attribute) -> Option<Vec<u8>> {
        let mut buf = EMPTY;
        // SAFETY: `self.0` is the filter pointer of the running hook; `buf` is writable.
        let ok = unsafe { envoy_dynamic_module_callback_http_filter_get_attribute_string(self.0, id as u32, &mut buf) };
        copy_out(ok, buf)
    }

    /// An integer attribute (`None` when Envoy has none).
    pub fn attribute_int(&self, id: Attribute) -> Option<u64> {
        let mut v = 0u64;
        // SAFETY: `self.0` is the filter pointer of the running hook; `v` is writable.
        let ok = unsafe { envoy_dynamic_module_callback_http_filter_get_attribute_int(self.0, id as u32, &mut v) };
        ok.then_some(v)
    }

    /// A filter state object's bytes (`None` when absent).
    pub fn filter_state(&self, key: &str) -> Option<Vec<u8>> {
        let mut buf = EMPTY;
        // SAFETY: `self.0` is the filter pointer of the running hook; key and result are valid.
        let ok = unsafe {
            envoy_dynamic_module_callback_http_get_filter_state_bytes(
                self.0,
                ModuleBuffer::of(key.as_bytes()),
                &mut buf,
            )
        };
        copy_out(ok, buf)
    }

    /// Adds one to a counter defined at config time.
    pub fn increment_counter(&self, id: u32) {
        // SAFETY: `self.0` is the filter pointer of the running hook; no labels.
        unsafe {
            envoy_dynamic_module_callback_http_filter_increment_counter(self.0, id as usize, std::ptr::null(), 0, 1);
        }
    }
}

// ------------------------------------------------------------------------ the hooks

/// Runs a hook body; a panic is logged and turned into `fallback` instead of unwinding into Envoy.
fn guard<T>(hook: &str, fallback: T, body: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(v) => v,
        Err(_) => {
            // Logging itself must not panic again here: `log` only formats a &str.
            let _ = catch_unwind(|| log(LogLevel::Error, &format!("peerguard: panic in {hook}; failing closed")));
            fallback
        }
    }
}

/// The ABI version this module was written against (Envoy warns on a mismatch, nothing more).
static ABI_VERSION: &[u8] = b"v0.2.0\0";

#[no_mangle]
extern "C" fn envoy_dynamic_module_on_program_init() -> *const c_char {
    guard("on_program_init", std::ptr::null(), || {
        filter::program_init();
        ABI_VERSION.as_ptr().cast()
    })
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_config_new(
    config_envoy_ptr: *mut c_void,
    name: EnvoyBuffer,
    config: EnvoyBuffer,
) -> *const c_void {
    guard("on_http_filter_config_new", std::ptr::null(), || {
        let name = copy_out(true, name).unwrap_or_default();
        let config = copy_out(true, config).unwrap_or_default();
        let handle = filter::config_new(&EnvoyConfig(config_envoy_ptr), &name, &config);
        // Envoy keeps this pointer until `config_destroy`: one strong reference, owned by Envoy.
        Arc::into_raw(handle).cast()
    })
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_config_destroy(config_module_ptr: *const c_void) {
    guard("on_http_filter_config_destroy", (), || {
        if !config_module_ptr.is_null() {
            // SAFETY: the pointer came from `Arc::into_raw` in `config_new`, and Envoy destroys
            // each config exactly once: this gives back the reference Envoy owned.
            let config = unsafe { Arc::from_raw(config_module_ptr.cast::<Config>()) };
            // The tick thread stops before its scheduler is deleted; streams still running keep
            // their workers (and so the policy) through their own references.
            config.shutdown();
            drop(config);
        }
    });
}

/// The config behind a config hook's module pointer, borrowed for the hook.
///
/// SAFETY (for callers): `ptr` must be the pointer `config_new` returned, and Envoy must still own
/// its reference, which holds during every config hook (Envoy drops the weak handle it posts
/// events through before `config_destroy`).
unsafe fn config_ref<'a>(ptr: *const c_void) -> Option<&'a Config> {
    // SAFETY: see above; a null pointer is refused.
    unsafe { ptr.cast::<Config>().as_ref() }
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_config_scheduled(
    config_envoy_ptr: *mut c_void,
    config_module_ptr: *const c_void,
    _event_id: u64,
) {
    guard("on_http_filter_config_scheduled", (), || {
        // SAFETY: a config hook: Envoy still owns the config (see `config_ref`).
        if let Some(config) = unsafe { config_ref(config_module_ptr) } {
            filter::config_tick(config, &EnvoyConfig(config_envoy_ptr));
        }
    });
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_config_http_callout_done(
    config_envoy_ptr: *mut c_void,
    config_module_ptr: *const c_void,
    callout_id: u64,
    result: u32,
    headers: *const EnvoyHttpHeader,
    headers_size: usize,
    body_chunks: *const EnvoyBuffer,
    body_chunks_size: usize,
) {
    guard("on_http_filter_config_http_callout_done", (), || {
        // SAFETY: a config hook: Envoy still owns the config (see `config_ref`).
        let Some(config) = (unsafe { config_ref(config_module_ptr) }) else {
            return;
        };
        let headers: Vec<(String, String)> = if result != 0 || headers.is_null() {
            Vec::new()
        } else {
            // SAFETY: Envoy passes `headers_size` headers it owns, valid until the hook returns.
            unsafe { std::slice::from_raw_parts(headers, headers_size) }
                .iter()
                .map(|h| {
                    let text = |p: *const c_char, n: usize| {
                        String::from_utf8_lossy(&copy_out(true, EnvoyBuffer { ptr: p, length: n }).unwrap_or_default())
                            .into_owned()
                    };
                    (text(h.key_ptr, h.key_length), text(h.value_ptr, h.value_length))
                })
                .collect()
        };
        let chunks: &[EnvoyBuffer] = if result != 0 || body_chunks.is_null() {
            &[]
        } else {
            // SAFETY: Envoy passes `body_chunks_size` buffers it owns, valid until the hook returns.
            unsafe { std::slice::from_raw_parts(body_chunks, body_chunks_size) }
        };
        let body_size = chunks.iter().map(|c| c.length).sum();
        let read_body = |limit: usize| {
            let mut body = Vec::with_capacity(limit.min(body_size));
            for c in chunks {
                body.extend(copy_out(true, *c).unwrap_or_default());
            }
            body.truncate(limit);
            (!body.is_empty()).then_some(body)
        };
        filter::config_callout_done(config, &EnvoyConfig(config_envoy_ptr), callout_id, headers, body_size, &read_body);
    });
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_new(
    config_module_ptr: *const c_void,
    _filter_envoy_ptr: *mut c_void,
) -> *const c_void {
    guard("on_http_filter_new", std::ptr::null(), || {
        if config_module_ptr.is_null() {
            return std::ptr::null();
        }
        let p = config_module_ptr.cast::<Config>();
        // SAFETY: the pointer came from `Arc::into_raw` in `config_new` and Envoy keeps the
        // config alive while it creates filters from it, so the count is at least one: taking
        // one more reference and turning it into an `Arc` leaves Envoy's own untouched.
        let config = unsafe {
            Arc::increment_strong_count(p);
            Arc::from_raw(p)
        };
        Box::into_raw(Box::new(filter::filter_new(&config))).cast_const().cast()
    })
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_destroy(filter_module_ptr: *const c_void) {
    guard("on_http_filter_destroy", (), || {
        if !filter_module_ptr.is_null() {
            // SAFETY: the pointer came from `Box::into_raw` in `filter_new`; Envoy destroys each
            // filter once, on the worker thread that created it.
            drop(unsafe { Box::from_raw(filter_module_ptr.cast::<FilterHandle>().cast_mut()) });
        }
    });
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_request_headers(
    filter_envoy_ptr: *mut c_void,
    filter_module_ptr: *const c_void,
    _end_of_stream: bool,
) -> u32 {
    let envoy = EnvoyFilter(filter_envoy_ptr);
    let decided = catch_unwind(AssertUnwindSafe(|| {
        if filter_module_ptr.is_null() {
            return None;
        }
        // SAFETY: the pointer came from `Box::into_raw` in `filter_new` and is alive until
        // `filter_destroy`, which Envoy never runs during a hook of the same filter.
        let f = unsafe { &*filter_module_ptr.cast::<FilterHandle>() };
        Some(f.on_request_headers(&envoy))
    }));
    match decided {
        Ok(Some(true)) => CONTINUE,
        Ok(Some(false)) => STOP_ITERATION,
        // No filter object, or a panic: fail closed with a local reply.
        Ok(None) | Err(_) => {
            let _ = catch_unwind(AssertUnwindSafe(|| {
                log(LogLevel::Error, "peerguard: internal error deciding a request; answering 503");
                envoy.send_response(503, &[], b"peerguard: internal error\n");
            }));
            STOP_ITERATION
        }
    }
}

// The hooks below do nothing for peerguard; Envoy 1.40 refuses a module that lacks them.
// Their extra arguments (after the two pointers, or the end-of-stream flag) are left undeclared:
// under the C calling convention the callee may ignore trailing arguments.

/// Hooks that let the stream continue (`*_status_Continue`).
macro_rules! continue_hooks {
    ($($name:ident($($arg:ty),*);)*) => {$(
        #[no_mangle]
        extern "C" fn $name($(_: $arg),*) -> u32 {
            CONTINUE
        }
    )*};
}

/// Hooks with nothing to do and nothing to return.
macro_rules! empty_hooks {
    ($($name:ident;)*) => {$(
        #[no_mangle]
        extern "C" fn $name(_: *mut c_void, _: *const c_void) {}
    )*};
}

continue_hooks! {
    envoy_dynamic_module_on_http_filter_request_body(*mut c_void, *const c_void, bool);
    envoy_dynamic_module_on_http_filter_request_trailers(*mut c_void, *const c_void);
    envoy_dynamic_module_on_http_filter_response_headers(*mut c_void, *const c_void, bool);
    envoy_dynamic_module_on_http_filter_response_body(*mut c_void, *const c_void, bool);
    envoy_dynamic_module_on_http_filter_response_trailers(*mut c_void, *const c_void);
}

empty_hooks! {
    envoy_dynamic_module_on_http_filter_stream_complete;
    envoy_dynamic_module_on_http_filter_http_callout_done;
    envoy_dynamic_module_on_http_filter_http_stream_headers;
    envoy_dynamic_module_on_http_filter_http_stream_data;
    envoy_dynamic_module_on_http_filter_http_stream_trailers;
    envoy_dynamic_module_on_http_filter_http_stream_complete;
    envoy_dynamic_module_on_http_filter_http_stream_reset;
    envoy_dynamic_module_on_http_filter_scheduled;
    envoy_dynamic_module_on_http_filter_downstream_above_write_buffer_high_watermark;
    envoy_dynamic_module_on_http_filter_downstream_below_write_buffer_low_watermark;
}
