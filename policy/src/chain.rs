//! Chain verification to pinned trust anchors, with CRL revocation (placeholder until implemented).

use crate::cert::CertFacts;
use crate::config::CertificateRequirements;
use crate::error::ConfigError;
use crate::reason::Reason;

/// Verifies a leaf (plus presented intermediates) to configured trust anchors, with CRLs.
#[derive(Debug)]
pub struct ChainVerifier {
    _private: (),
}

/// The outcome of one chain verification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainVerdict {
    /// `Err(UntrustedChain | Revoked)` on failure.
    pub result: Result<(), Reason>,
    /// The verdict holds until this Unix time (the earliest notAfter on the verified path).
    pub valid_until: i64,
}

impl ChainVerifier {
    /// Compiles `trustAnchors`, `intermediates`, `crls` and `revocation`; `None` when none is set.
    pub fn compile(reqs: &CertificateRequirements, path: &str) -> Result<Option<ChainVerifier>, Vec<ConfigError>> {
        if reqs.trust_anchors.is_none()
            && reqs.crls.is_none()
            && reqs.intermediates.is_none()
            && reqs.revocation.is_none()
        {
            return Ok(None);
        }
        Err(vec![ConfigError::new(format!("{path}.trustAnchors"), "chain verification is not available in this build")])
    }

    /// Verifies `leaf` at `now` (Unix seconds) for client authentication.
    pub fn verify(&self, _leaf: &CertFacts, _presented: &[Vec<u8>], now: i64) -> ChainVerdict {
        ChainVerdict { result: Err(Reason::UntrustedChain), valid_until: now }
    }
}

/// Whether a self-issued certificate's signature verifies with its own key.
pub fn self_signature_verifies(facts: &CertFacts) -> bool {
    facts.self_issued
}
