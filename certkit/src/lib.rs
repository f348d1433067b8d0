//! peerguard's one certificate factory: the CAs and leaves of `peerguard cert` and `peerguard test`, the e2e tests, the bench and the playground.
//!
//! What a certificate carries is plain data ([`CaSpec`], [`Leaf`], [`PrincipalLeaf`]) that
//! becomes rcgen params here, in one place. With the `generate` feature, [`Ca`] signs them with
//! keys from ring and [`CertFactory`] keeps one CA per issuer DN. The playground, built for
//! wasm32-unknown-unknown where ring does not build, signs the same params with deterministic
//! keys of its own.

#[cfg(feature = "generate")]
mod ca;
mod spec;

use std::fmt;
use std::path::PathBuf;

#[cfg(feature = "generate")]
pub use ca::{write_file, write_key, Ca, CertFactory, Issued};
pub use rcgen::{DnType, ExtendedKeyUsagePurpose, KeyUsagePurpose, RevocationReason, SerialNumber, SignatureAlgorithm};
pub use spec::{
    is_host_name, parse_dn, spiffe_id, timestamp, CaSpec, CrlSpec, Leaf, PrincipalLeaf, Revoked, Subject,
    DEFAULT_ISSUER, DEFAULT_LIFETIME_SECS, TRUST_DOMAIN,
};

/// Why a certificate could not be made; each names the value, step or file at fault.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A value that cannot go into a certificate: a DN, a SAN, a time, an empty principal.
    Invalid(String),
    /// rcgen refused to generate a key, or to build or sign a certificate or CRL.
    Generate { what: String, source: rcgen::Error },
    /// Reading or writing a file failed.
    Io { path: PathBuf, source: std::io::Error },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Invalid(m) => write!(f, "{m}"),
            Error::Generate { what, source } => write!(f, "cannot generate {what}: {source}"),
            Error::Io { path, source } => write!(f, "{}: {source}", path.display()),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Invalid(_) => None,
            Error::Generate { source, .. } => Some(source),
            Error::Io { source, .. } => Some(source),
        }
    }
}
