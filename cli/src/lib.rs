//! The `peerguard` CLI's shipping commands as a library: `cert` (CA and workload certificates)
//! and `render` (WasmPlugin, Envoy config, OCI image), so tests can call them directly.
#![forbid(unsafe_code)]

pub mod cert;
pub mod render;
