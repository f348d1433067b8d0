//! Stable deny reason codes, one per step of the decision order (docs/policy.md "Decision order").

use core::fmt;

/// Why a request was denied (or would have been, in dry run).
///
/// The `code()` strings are a stable interface: they appear in metrics, audit
/// lines, the `x-peerguard-reason` header and `peerguard check` output.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// The request path cannot be put in normal form (or, under `pathNormalization: reject`, is
    /// not in it). Checked before everything else; answered with 400.
    InvalidPath,
    /// The policy is invalid; every request is refused until a valid one arrives.
    ConfigInvalid,
    /// `mtls: strict` and the connection carries no verified peer certificate.
    NoPeerCertificate,
    /// The peer certificate could not be parsed.
    InvalidCertificate,
    /// The policy needs the full certificate, and neither Envoy nor a bound XFCC element gave it.
    CertificateUnavailable,
    /// The certificate's notBefore is in the future.
    NotYetValid,
    /// The certificate's notAfter is in the past.
    Expired,
    /// notAfter - notBefore exceeds `maxLifetime`.
    LifetimeTooLong,
    /// notAfter - now is below `minRemaining`.
    Expiring,
    /// An EKU extension is present and does not allow clientAuth.
    MissingClientAuth,
    /// The certificate is self-signed.
    SelfSigned,
    /// The key type or size is not in `keyTypes`.
    KeyNotAllowed,
    /// The issuer DN matches none of `issuers`.
    IssuerNotAllowed,
    /// Neither the SPKI nor the certificate digest matches a configured pin.
    PinMismatch,
    /// The chain does not verify to a configured trust anchor.
    UntrustedChain,
    /// A CRL lists the certificate (or, with `depth: chain`, one of its issuers).
    Revoked,
    /// The revocation status is unknown (no CRL for the issuer) or stale (only CRLs past their
    /// `nextUpdate`), and `unknownStatus` / `staleStatus` says deny.
    RevocationUnknown,
    /// A SPIFFE ID that breaks the SPIFFE ID spec, or more than one SPIFFE URI SAN.
    InvalidIdentity,
    /// The identity's trust domain is not in `trustDomains`.
    UntrustedTrustDomain,
    /// A DENY policy matched.
    DeniedByPolicy,
    /// ALLOW policies exist and none matched.
    NoMatchingAllow,
}

impl Reason {
    /// Every reason, in decision order.
    pub const ALL: [Reason; 21] = [
        Reason::InvalidPath,
        Reason::ConfigInvalid,
        Reason::NoPeerCertificate,
        Reason::InvalidCertificate,
        Reason::CertificateUnavailable,
        Reason::NotYetValid,
        Reason::Expired,
        Reason::LifetimeTooLong,
        Reason::Expiring,
        Reason::MissingClientAuth,
        Reason::SelfSigned,
        Reason::KeyNotAllowed,
        Reason::IssuerNotAllowed,
        Reason::PinMismatch,
        Reason::UntrustedChain,
        Reason::Revoked,
        Reason::RevocationUnknown,
        Reason::InvalidIdentity,
        Reason::UntrustedTrustDomain,
        Reason::DeniedByPolicy,
        Reason::NoMatchingAllow,
    ];

    /// The stable snake_case code.
    pub const fn code(self) -> &'static str {
        match self {
            Reason::InvalidPath => "invalid_path",
            Reason::ConfigInvalid => "config_invalid",
            Reason::NoPeerCertificate => "no_peer_certificate",
            Reason::InvalidCertificate => "invalid_certificate",
            Reason::CertificateUnavailable => "certificate_unavailable",
            Reason::NotYetValid => "not_yet_valid",
            Reason::Expired => "expired",
            Reason::LifetimeTooLong => "lifetime_too_long",
            Reason::Expiring => "expiring",
            Reason::MissingClientAuth => "missing_client_auth",
            Reason::SelfSigned => "self_signed",
            Reason::KeyNotAllowed => "key_not_allowed",
            Reason::IssuerNotAllowed => "issuer_not_allowed",
            Reason::PinMismatch => "pin_mismatch",
            Reason::UntrustedChain => "untrusted_chain",
            Reason::Revoked => "revoked",
            Reason::RevocationUnknown => "revocation_unknown",
            Reason::InvalidIdentity => "invalid_identity",
            Reason::UntrustedTrustDomain => "untrusted_trust_domain",
            Reason::DeniedByPolicy => "denied_by_policy",
            Reason::NoMatchingAllow => "no_matching_allow",
        }
    }

    /// Parses a code back into a reason.
    pub fn from_code(code: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| r.code() == code)
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn every_reason_code_round_trips_and_is_unique() {
        let mut seen = std::collections::HashSet::new();
        for r in Reason::ALL {
            assert_eq!(Reason::from_code(r.code()), Some(r));
            assert!(seen.insert(r.code()), "duplicate code {}", r.code());
        }
        assert_eq!(Reason::from_code("nope"), None);
    }
}
