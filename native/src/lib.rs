//! peerguard as an Envoy dynamic module (`envoy.filters.http.dynamic_modules`): the policy engine and the Wasm filter's request glue, loaded as a shared library.
//!
//! [`ffi`] is the only module with `unsafe` code (the C ABI); [`filter`] is safe Rust on the
//! same [`peerguard_filter::request::Worker`] the Wasm build runs.
#![deny(unsafe_code)]

#[cfg(not(test))]
mod ffi;
#[cfg(not(test))]
mod filter;
