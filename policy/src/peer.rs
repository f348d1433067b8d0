//! Which certificate evidence to trust for the peer: one function, used by the filter and the CLI.
//!
//! In order of preference (docs/policy.md "Where the certificate comes from"): Envoy's own
//! `connection.peer_certificate`; else the XFCC element bound to the connection by its digest
//! (its `Cert` must hash to `connection.sha256_peer_certificate_digest`, so an element a client
//! forged under `APPEND_FORWARD` is never used); else only Envoy's SAN and subject attributes.
//! Presented intermediates are untrusted input for chain building; a copy of the leaf among them
//! is dropped here, once.

use crate::cert::{CertError, CertFacts};
use crate::pem::pem_certificates;
use crate::xfcc;

/// What the connection and the request offer about the peer's certificate.
#[derive(Debug, Default)]
pub struct PeerEvidence<'a> {
    /// `connection.sha256_peer_certificate_digest`, hex; binds an XFCC element to the connection.
    pub digest: Option<&'a str>,
    /// `connection.peer_certificate` (Envoy 1.38+), PEM or URL-encoded PEM; may carry
    /// intermediates after the leaf (a CLI `--cert` file does).
    pub certificate_pem: Option<&'a [u8]>,
    /// The `x-forwarded-client-cert` header.
    pub xfcc: Option<&'a str>,
    /// Intermediates presented some other way (the CLI's `--chain`, playing XFCC `Chain=`).
    pub presented_chain: Vec<Vec<u8>>,
}

/// The certificate the engine may rely on, if any.
#[derive(Debug)]
pub enum ResolvedPeer {
    /// A parsed leaf and the intermediates presented with it (leaf copies removed).
    Certificate {
        /// The parsed leaf (boxed: it is much larger than the other variants).
        facts: Box<CertFacts>,
        /// Presented intermediates, for chain building only.
        chain: Vec<Vec<u8>>,
    },
    /// A certificate was given but does not parse: `invalid_certificate`.
    Unparseable(CertError),
    /// No certificate evidence beyond Envoy's SAN and subject attributes.
    AttributesOnly,
}

/// Decides which evidence to trust, parses the leaf, and assembles the presented chain.
pub fn resolve(evidence: PeerEvidence<'_>) -> ResolvedPeer {
    let PeerEvidence { digest, certificate_pem, xfcc: xfcc_header, presented_chain } = evidence;
    let bound = match (digest, xfcc_header) {
        (Some(d), Some(h)) if !d.is_empty() => xfcc::bound_certificate(h, d),
        _ => None,
    };
    let (leaf, mut chain) = match (certificate_pem.filter(|p| !p.is_empty()), bound) {
        (Some(pem), bound) => {
            // Plain or URL-encoded PEM; an empty result is refused inside as BadPem.
            let ders = match pem_certificates(pem) {
                Ok(d) => d,
                Err(e) => return ResolvedPeer::Unparseable(e),
            };
            let mut ders = ders.into_iter();
            let leaf = ders.next().unwrap_or_default();
            let mut chain: Vec<Vec<u8>> = ders.collect();
            chain.extend(bound.map(|(_, c)| c).unwrap_or_default());
            (leaf, chain)
        }
        (None, Some((leaf, chain))) => (leaf, chain),
        (None, None) => return ResolvedPeer::AttributesOnly,
    };
    chain.extend(presented_chain);
    chain.retain(|der| *der != leaf);
    match CertFacts::from_der(&leaf) {
        Ok(facts) => ResolvedPeer::Certificate { facts: Box::new(facts), chain },
        Err(e) => ResolvedPeer::Unparseable(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn no_evidence_means_attributes_only() {
        assert!(matches!(resolve(PeerEvidence::default()), ResolvedPeer::AttributesOnly));
        let forged = PeerEvidence { digest: Some("ab"), xfcc: Some("Hash=ab;Cert=\"x\""), ..PeerEvidence::default() };
        assert!(matches!(resolve(forged), ResolvedPeer::AttributesOnly), "an unbound XFCC element is never used");
    }

    #[test]
    fn garbage_from_envoy_is_unparseable_not_absent() {
        let ev = PeerEvidence {
            certificate_pem: Some(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
            ..PeerEvidence::default()
        };
        assert!(matches!(resolve(ev), ResolvedPeer::Unparseable(_)));
        let ev = PeerEvidence { certificate_pem: Some(b"not pem at all"), ..PeerEvidence::default() };
        assert!(matches!(resolve(ev), ResolvedPeer::Unparseable(_)));
    }
}
