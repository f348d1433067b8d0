//! End-to-end harness for peerguard: demo certificates, an echo upstream, an mTLS client and a real Envoy.
//!
//! Everything binds 127.0.0.1 only, and every Envoy started here has a hard timeout and is killed
//! on drop. Missing prerequisites (Envoy binary, built `.wasm`) are errors, never skips.

#![forbid(unsafe_code)]

pub mod certs;
pub mod client;
pub mod demo;
pub mod diff;
pub mod envoy;
pub mod istio_schema;
pub mod istio_shaped;
pub mod mesh;
pub mod sidecar;
pub mod standalone;
pub mod upstream;

use std::path::PathBuf;

/// The repository root (the parent of this crate's directory).
pub fn repo_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}
