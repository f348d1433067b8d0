//! End-to-end harness for peerguard: demo certificates, an echo upstream, an mTLS client and a real Envoy.
//!
//! Everything binds 127.0.0.1 only, and every Envoy started here has a hard timeout and is killed
//! on drop. Missing prerequisites (Envoy binary, built `.wasm`) are errors, never skips.

#![forbid(unsafe_code)]

pub mod admin;
pub mod certs;
pub mod client;
pub mod crl_server;
pub mod demo;
pub mod demo_revocation;
pub mod diff;
pub mod envoy;
pub mod istio_schema;
pub mod istio_shaped;
pub mod launcher;
pub mod mesh;
pub mod repo;
pub mod sidecar;
pub mod standalone;
pub mod upstream;
pub mod waypoint;

pub use repo::{envoy_bin, repo_root, wasm_path};
