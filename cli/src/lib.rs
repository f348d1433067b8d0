//! The `peerguard` CLI's commands as a library: `cert` (CA and workload certificates), `render`
//! (WasmPlugin, Envoy config, OCI image), `live` (swap a running Envoy's policy and certificate)
//! and the one policy loader they all use, `policy_file`, so tests can call them directly.
#![forbid(unsafe_code)]

pub mod cert;
pub mod crl;
pub mod live;
pub mod policy_file;
pub mod render;
