//! Chain verification to pinned trust anchors, with CRL revocation (rustls-webpki, pure-Rust signatures).
//!
//! webpki does the path building (RFC 5280 section 6, as webpki profiles it), the clientAuth EKU
//! check, validity at the request time, and CRL revocation (RFC 5280 section 6.3). Signatures are
//! checked by [`crate::sigalg`], so the same code runs natively, in wasm32-wasip1 and in
//! wasm32-unknown-unknown.
//!
//! How webpki errors become reasons:
//! - `CertRevoked` gives `revoked`.
//! - `UnknownRevocationStatus` (no CRL covers a certificate and `unknownStatus: deny`) also gives
//!   `revoked`: the policy asked for a proven non-revoked status and did not get one.
//! - Everything else gives `untrusted_chain`: an unknown issuer, a bad signature, an unsupported
//!   signature algorithm, an expired or not-yet-valid intermediate, a wrong EKU on an issuer, a
//!   CA certificate used as a leaf, and also a CRL whose signature does not verify with its
//!   issuer's key (a forged CRL proves nothing, so the chain is not trusted).

use rustls_pki_types::{CertificateDer, TrustAnchor, UnixTime};
use webpki::{
    CertRevocationList, EndEntityCert, KeyUsage, OwnedCertRevocationList, RevocationCheckDepth,
    RevocationOptionsBuilder, UnknownStatusPolicy,
};
use x509_parser::prelude::{FromDer as _, X509Certificate};

use crate::cert::{pem_blocks_within, pem_certificates, CertError, CertFacts, MAX_CONFIG_PEM_BYTES};
use crate::config::{CertificateRequirements, RevocationDepth, UnknownStatus};
use crate::error::ConfigError;
use crate::reason::Reason;
use crate::sigalg;

/// Most intermediates (presented plus configured) offered to one path build. webpki also
/// bounds its own work (path length, signature budget); this keeps a hostile XFCC `Chain=`
/// from making every request pay for hundreds of certificates.
pub const MAX_INTERMEDIATES: usize = 16;

/// A failed verification is re-checked after this many seconds: a failure caused by time (an
/// intermediate not yet valid) must not be cached until the leaf's notAfter.
const FAILURE_RECHECK_SECS: i64 = 300;

/// A configured trust anchor and the notAfter of the certificate it came from.
#[derive(Debug)]
struct Anchor {
    anchor: TrustAnchor<'static>,
    not_after: i64,
}

/// Verifies a leaf (plus presented intermediates) to configured trust anchors, with CRLs.
#[derive(Debug)]
pub struct ChainVerifier {
    anchors: Vec<Anchor>,
    /// webpki takes the anchors as a slice of `TrustAnchor`.
    anchor_list: Vec<TrustAnchor<'static>>,
    intermediates: Vec<CertificateDer<'static>>,
    crls: Vec<CertRevocationList<'static>>,
    depth: RevocationCheckDepth,
    unknown_status: UnknownStatusPolicy,
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
        let mut errors = Vec::new();
        let mut anchors = Vec::new();
        match &reqs.trust_anchors {
            None => errors.push(ConfigError::new(
                format!("{path}.trustAnchors"),
                "intermediates, crls and revocation need trustAnchors: chain verification and CRL checks run on a path that verifies to a trust anchor",
            )),
            Some(list) if list.is_empty() => errors.push(ConfigError::new(
                format!("{path}.trustAnchors"),
                "empty list trusts nothing; remove the field to disable chain verification",
            )),
            Some(list) => {
                for (i, pem) in list.iter().enumerate() {
                    let at = format!("{path}.trustAnchors[{i}]");
                    for der in pem_der_list(pem, &at, &mut errors) {
                        match anchor_from_der(der) {
                            Ok(a) => anchors.push(a),
                            Err(msg) => errors.push(ConfigError::new(at.clone(), msg)),
                        }
                    }
                }
            }
        }
        let mut intermediates = Vec::new();
        for (i, pem) in reqs.intermediates.iter().flatten().enumerate() {
            let at = format!("{path}.intermediates[{i}]");
            for der in pem_der_list(pem, &at, &mut errors) {
                match X509Certificate::from_der(&der) {
                    Ok(([], _)) => intermediates.push(CertificateDer::from(der)),
                    _ => errors.push(ConfigError::new(at.clone(), "not an X.509 certificate")),
                }
            }
        }
        if intermediates.len() > MAX_INTERMEDIATES {
            errors.push(ConfigError::new(
                format!("{path}.intermediates"),
                format!("{} certificates is over the budget of {MAX_INTERMEDIATES}", intermediates.len()),
            ));
        }
        let mut crls = Vec::new();
        if let Some(list) = &reqs.crls {
            if list.is_empty() {
                errors.push(ConfigError::new(
                    format!("{path}.crls"),
                    "empty list; remove the field to disable CRL checks",
                ));
            }
            for (i, pem) in list.iter().enumerate() {
                let at = format!("{path}.crls[{i}]");
                match pem_blocks_within(pem.as_bytes(), "X509 CRL", MAX_CONFIG_PEM_BYTES) {
                    Ok(ders) => {
                        for der in ders {
                            match OwnedCertRevocationList::from_der(&der) {
                                Ok(crl) => crls.push(CertRevocationList::Owned(crl)),
                                Err(e) => {
                                    errors.push(ConfigError::new(at.clone(), format!("CRL does not parse: {e:?}")))
                                }
                            }
                        }
                    }
                    Err(CertError::TooLarge(n)) => errors.push(ConfigError::new(
                        at,
                        format!("{n} bytes is over the {MAX_CONFIG_PEM_BYTES}-byte limit for one CRL entry"),
                    )),
                    Err(_) => errors.push(ConfigError::new(at, "expected a PEM CRL (-----BEGIN X509 CRL-----)")),
                }
            }
        }
        let revocation = reqs.revocation.clone().unwrap_or_default();
        if reqs.revocation.is_some() && reqs.crls.is_none() {
            errors.push(ConfigError::new(
                format!("{path}.revocation"),
                "revocation options need crls: peerguard checks revocation only through configured CRLs",
            ));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let anchor_list = anchors.iter().map(|a| a.anchor.clone()).collect();
        Ok(Some(ChainVerifier {
            anchors,
            anchor_list,
            intermediates,
            crls,
            depth: match revocation.depth {
                RevocationDepth::Chain => RevocationCheckDepth::Chain,
                RevocationDepth::Leaf => RevocationCheckDepth::EndEntity,
            },
            unknown_status: match revocation.unknown_status {
                UnknownStatus::Allow => UnknownStatusPolicy::Allow,
                UnknownStatus::Deny => UnknownStatusPolicy::Deny,
            },
        }))
    }

    /// Verifies `leaf` at `now` (Unix seconds) for client authentication, with `presented`
    /// (DER, e.g. from a bound XFCC `Chain=`) and the configured intermediates.
    pub fn verify(&self, leaf: &CertFacts, presented: &[Vec<u8>], now: i64) -> ChainVerdict {
        let fail = |reason| ChainVerdict {
            result: Err(reason),
            valid_until: leaf.not_after.min(now.saturating_add(FAILURE_RECHECK_SECS)),
        };
        let leaf_der = CertificateDer::from(leaf.der.as_slice());
        let Ok(ee) = EndEntityCert::try_from(&leaf_der) else {
            return fail(Reason::UntrustedChain);
        };
        // A copy of the leaf in the presented chain is ignored (XFCC Chain= usually repeats it).
        let mut pool: Vec<CertificateDer<'_>> = presented
            .iter()
            .filter(|d| d.as_slice() != leaf.der.as_slice())
            .map(|d| CertificateDer::from(d.as_slice()))
            .collect();
        if pool.len() + self.intermediates.len() > MAX_INTERMEDIATES {
            return fail(Reason::UntrustedChain);
        }
        pool.extend(self.intermediates.iter().map(|c| CertificateDer::from(c.as_ref())));
        let crl_refs: Vec<&CertRevocationList<'_>> = self.crls.iter().collect();
        let revocation = RevocationOptionsBuilder::new(&crl_refs)
            .ok()
            .map(|b| b.with_depth(self.depth).with_status_policy(self.unknown_status).build());
        let time = UnixTime::since_unix_epoch(core::time::Duration::from_secs(u64::try_from(now).unwrap_or(0)));
        let verified =
            ee.verify_for_usage(sigalg::ALL, &self.anchor_list, &pool, time, KeyUsage::client_auth(), revocation, None);
        match verified {
            Ok(path) => {
                let mut valid_until = leaf.not_after;
                for c in path.intermediate_certificates() {
                    if let Some(t) = not_after(c.der().as_ref()) {
                        valid_until = valid_until.min(t);
                    }
                }
                let anchor = path.anchor();
                if let Some(a) = self.anchors.iter().find(|a| {
                    a.anchor.subject.as_ref() == anchor.subject.as_ref()
                        && a.anchor.subject_public_key_info.as_ref() == anchor.subject_public_key_info.as_ref()
                }) {
                    valid_until = valid_until.min(a.not_after);
                }
                ChainVerdict { result: Ok(()), valid_until }
            }
            Err(webpki::Error::CertRevoked) | Err(webpki::Error::UnknownRevocationStatus) => fail(Reason::Revoked),
            Err(_) => fail(Reason::UntrustedChain),
        }
    }
}

/// Every certificate of a PEM bundle at `at`, recording an error when there is none.
fn pem_der_list(pem: &str, at: &str, errors: &mut Vec<ConfigError>) -> Vec<Vec<u8>> {
    match pem_certificates(pem.as_bytes()) {
        Ok(ders) => ders,
        Err(_) => {
            errors.push(ConfigError::new(at, "expected a PEM certificate (-----BEGIN CERTIFICATE-----)"));
            Vec::new()
        }
    }
}

fn anchor_from_der(der: Vec<u8>) -> Result<Anchor, String> {
    let not_after = not_after(&der).ok_or_else(|| "not an X.509 certificate".to_owned())?;
    let cert = CertificateDer::from(der);
    let anchor =
        webpki::anchor_from_trusted_cert(&cert).map_err(|e| format!("not usable as a trust anchor: {e:?}"))?.to_owned();
    Ok(Anchor { anchor, not_after })
}

fn not_after(der: &[u8]) -> Option<i64> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    Some(cert.validity().not_after.timestamp())
}

/// Whether a certificate's signature verifies with its own public key (RFC 5280 section 6.1:
/// "self-signed" means self-issued and verifiable with the key in the certificate).
///
/// A certificate whose algorithms peerguard cannot verify counts as self-signed when it is
/// self-issued: `rejectSelfSigned` then fails closed rather than open.
pub fn self_signature_verifies(facts: &CertFacts) -> bool {
    let Some(parts) = der::certificate_parts(&facts.der) else {
        return facts.self_issued;
    };
    let Some((key_alg, key_bits)) = der::spki_parts(&facts.spki_der) else {
        return facts.self_issued;
    };
    match sigalg::find(key_alg, parts.signature_alg) {
        Some(alg) => alg.verify_signature(key_bits, parts.tbs, parts.signature).is_ok(),
        None => facts.self_issued,
    }
}

/// Just enough DER (X.690) to split a certificate and an SPKI into the parts a signature check needs.
mod der {
    /// One TLV: its tag, its contents, the whole encoding, and what follows.
    struct Tlv<'a> {
        tag: u8,
        contents: &'a [u8],
        whole: &'a [u8],
        rest: &'a [u8],
    }

    fn tlv(input: &[u8]) -> Option<Tlv<'_>> {
        let (&tag, after_tag) = input.split_first()?;
        let (&first, after_len) = after_tag.split_first()?;
        let (len, body) = if first < 0x80 {
            (usize::from(first), after_len)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 || after_len.len() < n {
                return None;
            }
            let len = after_len[..n].iter().fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            (len, &after_len[n..])
        };
        if body.len() < len {
            return None;
        }
        let header = input.len() - body.len();
        Some(Tlv { tag, contents: &body[..len], whole: &input[..header + len], rest: &body[len..] })
    }

    const SEQUENCE: u8 = 0x30;
    const BIT_STRING: u8 = 0x03;

    /// A BIT STRING's bytes, when it has no unused bits.
    fn bit_string_bytes<'a>(t: &Tlv<'a>) -> Option<&'a [u8]> {
        if t.tag != BIT_STRING {
            return None;
        }
        match t.contents.split_first() {
            Some((0, bytes)) => Some(bytes),
            _ => None,
        }
    }

    pub(super) struct CertParts<'a> {
        pub tbs: &'a [u8],
        pub signature_alg: &'a [u8],
        pub signature: &'a [u8],
    }

    /// `Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue BIT STRING }` (RFC 5280 section 4.1).
    pub(super) fn certificate_parts(der: &[u8]) -> Option<CertParts<'_>> {
        let cert = tlv(der).filter(|t| t.tag == SEQUENCE)?;
        let tbs = tlv(cert.contents).filter(|t| t.tag == SEQUENCE)?;
        let alg = tlv(tbs.rest).filter(|t| t.tag == SEQUENCE)?;
        let sig = tlv(alg.rest)?;
        Some(CertParts { tbs: tbs.whole, signature_alg: alg.contents, signature: bit_string_bytes(&sig)? })
    }

    /// `SubjectPublicKeyInfo ::= SEQUENCE { algorithm, subjectPublicKey BIT STRING }`: the
    /// algorithm's contents and the key bytes.
    pub(super) fn spki_parts(der: &[u8]) -> Option<(&[u8], &[u8])> {
        let spki = tlv(der).filter(|t| t.tag == SEQUENCE)?;
        let alg = tlv(spki.contents).filter(|t| t.tag == SEQUENCE)?;
        let key = tlv(alg.rest)?;
        Some((alg.contents, bit_string_bytes(&key)?))
    }
}
