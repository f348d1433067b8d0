//! peerguard's policy engine: parse, compile and evaluate mTLS peer policies.
//!
//! The engine has no proxy-wasm dependency: the filter, the `peerguard` CLI, the benches and the
//! wasm-bindgen tests all use this crate. Compile a [`PolicyDocument`] once into an [`Engine`],
//! then call [`Engine::decide`] per request.
#![forbid(unsafe_code)]

mod alias;
mod cache;
mod cert;
mod certreq;
mod chain;
mod compile;
mod config;
mod decision;
mod dn;
mod duration;
mod engine;
mod error;
pub mod explain;
mod fnv;
mod identity;
mod index;
mod linkerd;
#[cfg(feature = "yaml")]
pub mod load;
mod namespace;
mod parse;
pub mod path;
mod pattern;
mod peer;
mod pem;
mod reason;
mod request;
mod rule;
mod sigalg;
mod sources;
mod spiffe;
mod template;
mod timestamp;
pub mod xfcc;

pub use cache::CertCache;
pub use cert::{CertError, CertFacts, KeyKind};
pub use chain::{CrlInfo, CrlInstalled, CrlSourceSpec};
pub use compile::MAX_RULES;
pub use config::*;
pub use decision::{Decision, Peer, PeerAttributes, PreparedCert, Verdict};
pub use duration::Duration;
pub use engine::Engine;
pub use error::{ConfigError, ConfigErrors};
pub use identity::{Identity, IdentityError, IdentitySource};
pub use linkerd::{LinkerdOptions, CLIENT_ID_HEADER as LINKERD_CLIENT_ID_HEADER};
pub use path::PathError;
pub use pattern::{Pattern, PatternError};
pub use peer::{resolve as resolve_peer, PeerEvidence, ResolvedPeer};
pub use pem::{pem_certificates, percent_decode};
pub use reason::Reason;
pub use request::{HeaderSource, Request, RequestSource};
pub use spiffe::{SpiffeId, SpiffeIdError};
pub use timestamp::rfc3339;
