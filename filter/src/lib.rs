//! peerguard's Envoy filter: the glue between Envoy and the policy engine, for both builds.
//!
//! The request glue ([`request::Worker`]) talks to Envoy only through the [`host::Host`] trait.
//! The proxy-wasm bindings (`wasm`, feature `proxy-wasm`, on by default) are one implementation;
//! the native dynamic module (`native/`) is the other, so both builds decide every request with
//! the same code. Nothing here panics: host errors become "absent", and absent facts lead the
//! engine to deny.

pub mod audit;
pub mod configure;
pub mod crl_fetch;
pub mod envoy_config;
pub mod expiry;
pub mod host;
pub mod metrics;
pub mod request;
pub mod stats;
#[cfg(feature = "proxy-wasm")]
pub mod wasm;

#[cfg(feature = "proxy-wasm")]
pub use wasm::{PeerguardHttp, PeerguardRoot, VmOptions};

/// Crate version and git revision, logged on VM start.
pub const BUILD: &str = concat!(env!("CARGO_PKG_VERSION"), "+", env!("PEERGUARD_GIT_REV"));
