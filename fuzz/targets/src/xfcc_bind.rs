//! Target `xfcc_bind`: `x-forwarded-client-cert` parsing and binding an element to a digest.
//!
//! Input: an optional first line with a digest to bind to, then the header value. The header is
//! also bound to every `Hash=` it carries and to the SHA-256 of every `Cert=` it carries (in
//! lower and upper case), so that the fuzzer reaches the bound path without inverting SHA-256.
//! Properties:
//! - parsing and binding never panic, and parsing is deterministic;
//! - a bound certificate's SHA-256 equals the digest it was bound to;
//! - it comes from an element whose `Hash=` is that digest, and the chain never repeats the leaf;
//! - a header over `MAX_XFCC_BYTES` binds nothing;
//! - peer resolution (`resolve_peer`, XFCC and digest only, as on an Envoy without
//!   `connection.peer_certificate`) trusts a certificate exactly when one is bound and parses,
//!   and then it is the bound one, its chain without the leaf.

use peerguard_policy::xfcc::{self, MAX_XFCC_BYTES};
use peerguard_policy::{pem_certificates, percent_decode, resolve_peer, CertFacts, PeerEvidence, ResolvedPeer};
use sha2::{Digest, Sha256};

/// Most digests tried per input (each one re-parses the header).
const MAX_DIGESTS: usize = 8;

/// The target body.
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (digest, header) = text.split_once('\n').unwrap_or(("", text));
    let elements = xfcc::parse(header);
    assert_eq!(elements, xfcc::parse(header), "parse gave two answers for one header");

    let mut digests = vec![digest.to_owned()];
    for e in &elements {
        digests.extend(e.hash.clone());
        let leaf = e.cert.as_deref().and_then(|c| pem_certificates(&percent_decode(c.as_bytes())).ok());
        if let Some(der) = leaf.and_then(|ders| ders.into_iter().next()) {
            let hex = hex::encode(Sha256::digest(&der));
            digests.push(hex.to_ascii_uppercase());
            digests.push(hex);
        }
    }
    digests.dedup();
    for digest in digests.iter().take(MAX_DIGESTS) {
        check_binding(header, digest, &elements);
    }
}

fn check_binding(header: &str, digest: &str, elements: &[xfcc::Element]) {
    let bound = xfcc::bound_certificate(header, digest);
    check_resolution(header, digest, bound.as_ref());
    let Some((leaf, chain)) = bound else { return };
    assert!(header.len() <= MAX_XFCC_BYTES, "a header over the budget bound a certificate");
    assert_eq!(
        hex::encode(Sha256::digest(&leaf)),
        digest.to_ascii_lowercase(),
        "the bound certificate does not hash to the digest it was bound to"
    );
    assert!(
        elements.iter().any(|e| e.hash.as_deref().is_some_and(|h| h.eq_ignore_ascii_case(digest))),
        "bound to {digest:?}, but no element has that Hash"
    );
    assert!(!chain.contains(&leaf), "the chain repeats the leaf");
}

fn check_resolution(header: &str, digest: &str, bound: Option<&(Vec<u8>, Vec<Vec<u8>>)>) {
    let evidence = PeerEvidence { digest: Some(digest), xfcc: Some(header), ..PeerEvidence::default() };
    let resolved = resolve_peer(evidence);
    let bound = bound.filter(|_| !digest.is_empty());
    let expected = match (&resolved, bound) {
        (ResolvedPeer::Certificate { facts, chain }, Some((leaf, _))) => {
            assert_eq!(&facts.der, leaf, "resolve_peer trusted another certificate than the bound one");
            assert!(!chain.contains(leaf), "the resolved chain repeats the leaf");
            true
        }
        (ResolvedPeer::Unparseable(_), Some((leaf, _))) => {
            assert!(CertFacts::from_der(leaf).is_err(), "resolve_peer refused a bound certificate that parses");
            true
        }
        (ResolvedPeer::AttributesOnly, None) => true,
        _ => false,
    };
    assert!(expected, "resolve_peer gave {resolved:?} for digest {digest:?}, bound: {}", bound.is_some());
}
