//! The "native floor": the cheapest useful Envoy dynamic module, one attribute read and one header set per request.
//!
//! `peerguard-bench` runs it next to the native build (native/) so that its cost can be split
//! into what any dynamic module pays Envoy (filter creation, the hooks, ABI calls) and what is
//! peerguard's own. It does the Wasm floor's work (bench/floor-filter): read the peer's URI SAN,
//! set it as `x-floor-peer`. A benchmark fixture, not shipped. Its FFI is its own, written from
//! Envoy 1.40's `abi.h` (the hooks and signatures native/src/ffi.rs uses); nothing here can panic,
//! so no hook needs `catch_unwind`.

use std::ffi::{c_char, c_void};

/// `envoy_dynamic_module_type_envoy_buffer` / `_module_buffer`: a pointer and a length.
#[repr(C)]
#[derive(Clone, Copy)]
struct Buffer {
    ptr: *const c_char,
    length: usize,
}

/// `envoy_dynamic_module_type_http_header_type_RequestHeader`.
const REQUEST_HEADER: u32 = 0;
/// `envoy_dynamic_module_type_attribute_id_ConnectionUriSanPeerCertificate`.
const URI_SAN_PEER_CERTIFICATE: u32 = 37;
/// `*_status_Continue`: every status enum starts with it.
const CONTINUE: u32 = 0;
/// The header the Wasm floor sets too.
const HEADER: &[u8] = b"x-floor-peer";

extern "C" {
    fn envoy_dynamic_module_callback_http_filter_get_attribute_string(
        filter_envoy_ptr: *mut c_void,
        attribute_id: u32,
        result: *mut Buffer,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_set_header(
        filter_envoy_ptr: *mut c_void,
        header_type: u32,
        key: Buffer,
        value: Buffer,
    ) -> bool;
}

/// A non-null pointer for Envoy to hold as the config and as each filter: the floor has no state.
static STATELESS: u8 = 0;

fn stateless() -> *const c_void {
    std::ptr::addr_of!(STATELESS).cast()
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_on_program_init() -> *const c_char {
    // Envoy 1.40's ABI version (it only warns on another).
    c"v0.2.0".as_ptr()
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_config_new(_: *mut c_void, _: Buffer, _: Buffer) -> *const c_void {
    stateless()
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_config_destroy(_: *const c_void) {}

#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_new(_: *const c_void, _: *mut c_void) -> *const c_void {
    stateless()
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_destroy(_: *const c_void) {}

#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_request_headers(
    filter_envoy_ptr: *mut c_void,
    _: *const c_void,
    _end_of_stream: bool,
) -> u32 {
    let mut san = Buffer { ptr: std::ptr::null(), length: 0 };
    // SAFETY: `filter_envoy_ptr` is the filter pointer of this running hook; `san` is writable.
    let found = unsafe {
        envoy_dynamic_module_callback_http_filter_get_attribute_string(
            filter_envoy_ptr,
            URI_SAN_PEER_CERTIFICATE,
            &mut san,
        )
    };
    // Copied out, as any filter that keeps the value would (and as the Wasm floor's host call does).
    let value: Vec<u8> = if found && !san.ptr.is_null() {
        // SAFETY: Envoy filled `san` with `length` bytes it owns, valid until this hook returns.
        unsafe { std::slice::from_raw_parts(san.ptr.cast::<u8>(), san.length) }.to_vec()
    } else {
        Vec::new()
    };
    let key = Buffer { ptr: HEADER.as_ptr().cast(), length: HEADER.len() };
    let value = Buffer { ptr: value.as_ptr().cast(), length: value.len() };
    // SAFETY: the filter pointer of this running hook; both buffers outlive the call and Envoy
    // copies them (an empty value removes the header, as the Wasm floor's empty set does).
    unsafe { envoy_dynamic_module_callback_http_set_header(filter_envoy_ptr, REQUEST_HEADER, key, value) };
    CONTINUE
}

// The hooks below do nothing; Envoy 1.40 refuses a module that lacks any of them. Trailing
// arguments are left undeclared: under the C calling convention the callee may ignore them.

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
