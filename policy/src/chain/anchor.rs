//! Configured trust anchors: their notAfter, their profile violations, and the load warnings about them.
//!
//! Trust anchors have no validity in webpki. An anchor past its notAfter is dropped before path
//! building (docs/policy.md "Certificates and revocation": it verifies nothing), and so is one
//! that breaks the RFC 5280 profile (see `profile`); [`Anchor::warning`] names the anchors that are
//! unusable, expired, or expire within 30 days, for the filter to log when it loads the policy.

use rustls_pki_types::{CertificateDer, Der, TrustAnchor};

use super::crl::CrlSigner;
use super::{not_after, pem_der_list, profile};
use crate::cert::CertFacts;
use crate::error::ConfigError;
use crate::timestamp::rfc3339;

/// An anchor that expires within this many seconds is named by [`Anchor::warning`].
const ANCHOR_WARNING_SECS: i64 = 30 * 86_400;

/// A configured trust anchor, the notAfter of the certificate it came from, and where it was
/// configured (for warnings).
#[derive(Debug)]
pub(super) struct Anchor {
    anchor: TrustAnchor<'static>,
    not_after: i64,
    path: String,
    subject: String,
    /// Why the anchor breaks the RFC 5280 profile, if it does: it then anchors no path.
    violation: Option<String>,
    /// The trust domain whose `trustBundles` entry holds the anchor: it then anchors only leaves
    /// with a SPIFFE ID in that trust domain. `None` for `trustAnchors`.
    domain: Option<String>,
    /// Why the anchor breaks the CA/Browser Forum rules for TLS server roots, if it does: it then
    /// anchors no serverAuth path (conformance only; client paths are not held to those rules).
    server_violation: Option<String>,
}

/// Compiles `trustAnchors` (`None` when the field is absent), recording every error. Each
/// certificate is also a possible CRL signer.
pub(super) fn compile(
    list: Option<&[String]>,
    path: &str,
    signers: &mut Vec<CrlSigner>,
    errors: &mut Vec<ConfigError>,
) -> Vec<Anchor> {
    let mut anchors = Vec::new();
    match list {
        None => errors.push(ConfigError::new(
            format!("{path}.trustAnchors"),
            "intermediates, crls and revocation need trustAnchors or trustBundles: chain verification and CRL checks run on a path that verifies to a trust anchor",
        )),
        Some([]) => errors.push(ConfigError::new(
            format!("{path}.trustAnchors"),
            "empty list trusts nothing; remove the field to disable chain verification",
        )),
        Some(list) => {
            for (i, pem) in list.iter().enumerate() {
                let at = format!("{path}.trustAnchors[{i}]");
                for der in pem_der_list(pem, &at, errors) {
                    signers.extend(CrlSigner::from_der(&der));
                    match anchor_from_der(der, &at, None) {
                        Ok(a) => anchors.push(a),
                        Err(msg) => errors.push(ConfigError::new(at.clone(), msg)),
                    }
                }
            }
        }
    }
    anchors
}

/// The anchors a path may end in at `now`: not past their notAfter (inclusive, as for every
/// certificate; webpki itself never looks at an anchor's validity), conforming, and, when
/// `domain` is given (`trustBundles`), from that trust domain's bundle.
pub(super) fn usable<'a>(
    anchors: &'a [Anchor],
    now: i64,
    server_auth: bool,
    domain: Option<&str>,
) -> Vec<TrustAnchor<'a>> {
    anchors
        .iter()
        .filter(|a| now <= a.not_after && a.violation.is_none() && !(server_auth && a.server_violation.is_some()))
        .filter(|a| domain.is_none_or(|d| a.domain.as_deref() == Some(d)))
        .map(|a| TrustAnchor {
            subject: Der::from(a.anchor.subject.as_ref()),
            subject_public_key_info: Der::from(a.anchor.subject_public_key_info.as_ref()),
            name_constraints: a.anchor.name_constraints.as_ref().map(|n| Der::from(n.as_ref())),
        })
        .collect()
}

/// The notAfter of the configured anchor that a verified path ended in.
pub(super) fn not_after_of(anchors: &[Anchor], used: &TrustAnchor<'_>) -> Option<i64> {
    anchors
        .iter()
        .find(|a| {
            a.anchor.subject.as_ref() == used.subject.as_ref()
                && a.anchor.subject_public_key_info.as_ref() == used.subject_public_key_info.as_ref()
        })
        .map(|a| a.not_after)
}

impl Anchor {
    /// The load warning for this anchor at `now`, if it is unusable, expired or expires within 30
    /// days.
    pub(super) fn warning(&self, now: i64) -> Option<String> {
        if let Some(why) = &self.violation {
            Some(format!(
                "{}: trust anchor {} is unusable, so every chain to it is untrusted_chain: {why}",
                self.path, self.subject
            ))
        } else if self.not_after < now {
            Some(format!(
                "{}: trust anchor {} expired at {}; it verifies nothing, so every chain to it is untrusted_chain",
                self.path,
                self.subject,
                rfc3339(self.not_after)
            ))
        } else if self.not_after - now <= ANCHOR_WARNING_SECS {
            Some(format!(
                "{}: trust anchor {} expires at {} (within 30 days); chains to it are untrusted_chain after that",
                self.path,
                self.subject,
                rfc3339(self.not_after)
            ))
        } else {
            None
        }
    }
}

/// An anchor from one configured certificate at `at`, of `domain`'s bundle if given.
pub(super) fn anchor_from_der(der: Vec<u8>, at: &str, domain: Option<&str>) -> Result<Anchor, String> {
    let Some(not_after) = not_after(&der) else {
        return Err("not an X.509 certificate".to_owned());
    };
    // The subject as peerguard renders DNs everywhere (x509-parser's own rendering would link its
    // whole OID registry into the module).
    let subject = CertFacts::from_der(&der).map(|f| f.subject).unwrap_or_default();
    // A non-conforming anchor anchors nothing, but does not make the policy invalid: the other
    // anchors still work, and the filter logs the reason at load (`anchor_warnings`).
    let violation = profile::violation(&der, profile::Role::Anchor, false);
    let server_violation = profile::violation(&der, profile::Role::Anchor, true);
    let cert = CertificateDer::from(der);
    let anchor =
        webpki::anchor_from_trusted_cert(&cert).map_err(|e| format!("not usable as a trust anchor: {e:?}"))?.to_owned();
    Ok(Anchor {
        anchor,
        not_after,
        path: at.to_owned(),
        subject,
        violation,
        domain: domain.map(str::to_owned),
        server_violation,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code
    use crate::chain::ChainVerifier;
    use crate::config::CertificateRequirements;

    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    /// 2030-06-01T12:00:00Z, the instant the fixtures are built around.
    const T: i64 = 1_906_545_600;

    fn verifier(anchors: &[&str]) -> ChainVerifier {
        let reqs = CertificateRequirements {
            trust_anchors: Some(anchors.iter().map(|a| (*a).to_owned()).collect()),
            ..CertificateRequirements::default()
        };
        ChainVerifier::compile(&reqs, "certificate").unwrap().unwrap()
    }

    #[test]
    fn expired_and_soon_expiring_anchors_are_named_for_the_load_log() {
        let v = verifier(&[
            include_str!("../../tests/fixtures/root-ca.pem"),
            include_str!("../../tests/fixtures/expired-root-ca.pem"),
            include_str!("../../tests/fixtures/expiring-root-ca.pem"),
        ]);
        let warnings = v.anchor_warnings(T);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].starts_with("certificate.trustAnchors[1]: "), "{}", warnings[0]);
        assert!(warnings[0].contains("expired at 2030-05-01T00:00:00Z"), "{}", warnings[0]);
        assert!(warnings[0].contains("expired root CA"), "{}", warnings[0]);
        assert!(warnings[1].starts_with("certificate.trustAnchors[2]: "), "{}", warnings[1]);
        assert!(warnings[1].contains("expires at 2030-06-11T12:00:00Z (within 30 days)"), "{}", warnings[1]);
        // 31 days before its notAfter, the expiring anchor is not worth a warning yet.
        assert_eq!(v.anchor_warnings(T + 10 * 86_400 - 31 * 86_400).len(), 1);
    }
}
