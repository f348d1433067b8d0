//! Just enough DER (X.690) to split a certificate, a CRL and an SPKI, and to check their signatures.
//!
//! The parts are what a signature check (with [`crate::sigalg`]) and the CRL conformance checks
//! need; everything else is read with x509-parser or webpki.

use x509_parser::prelude::{ASN1Time, FromDer as _};

use crate::cert::CertFacts;

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

const BOOLEAN: u8 = 0x01;
const INTEGER: u8 = 0x02;
const BIT_STRING: u8 = 0x03;
const OCTET_STRING: u8 = 0x04;
const OID: u8 = 0x06;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;
const SEQUENCE: u8 = 0x30;
const EXPLICIT_0: u8 = 0xa0;
/// 2.5.29.20, id-ce-cRLNumber.
const CRL_NUMBER: &[u8] = &[0x55, 0x1d, 0x14];

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

/// `Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue BIT STRING }`
/// (RFC 5280 section 4.1); a CRL's `CertificateList` has the same shape (section 5.1).
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

/// Whether the signature of a certificate or CRL verifies with the key of `spki`.
pub(super) fn signed_by(der: &[u8], spki: &[u8]) -> bool {
    let (Some(parts), Some((key_alg, key))) = (certificate_parts(der), spki_parts(spki)) else {
        return false;
    };
    crate::sigalg::find(key_alg, parts.signature_alg)
        .is_some_and(|alg| alg.verify_signature(key, parts.tbs, parts.signature).is_ok())
}

/// What the CRL checks read from a `TBSCertList` (RFC 5280 section 5.1).
pub(super) struct CrlFields<'a> {
    /// The issuer Name, whole (as x509-parser's `as_raw`) and its contents (as webpki keeps it).
    pub issuer_whole: &'a [u8],
    pub issuer_contents: &'a [u8],
    /// The Time TLVs.
    pub this_update: &'a [u8],
    pub next_update: Option<&'a [u8]>,
    /// `None` without a CRLNumber extension, else whether it is marked critical.
    pub crl_number_critical: Option<bool>,
    /// The CRLNumber INTEGER's contents (two's complement, big-endian), when it reads as one.
    pub crl_number: Option<&'a [u8]>,
    /// How many entries `revokedCertificates` lists.
    pub revoked: usize,
}

pub(super) fn crl_fields(der: &[u8]) -> Option<CrlFields<'_>> {
    let list = tlv(der).filter(|t| t.tag == SEQUENCE)?;
    let tbs = tlv(list.contents).filter(|t| t.tag == SEQUENCE)?;
    let mut next = tlv(tbs.contents)?;
    if next.tag == INTEGER {
        next = tlv(next.rest)?;
    }
    let signature = Some(next).filter(|t| t.tag == SEQUENCE)?;
    let issuer = tlv(signature.rest).filter(|t| t.tag == SEQUENCE)?;
    let this_update = tlv(issuer.rest).filter(|t| t.tag == UTC_TIME || t.tag == GENERALIZED_TIME)?;
    let mut rest = this_update.rest;
    let mut next_update = None;
    if let Some(t) = tlv(rest).filter(|t| t.tag == UTC_TIME || t.tag == GENERALIZED_TIME) {
        next_update = Some(t.whole);
        rest = t.rest;
    }
    let mut revoked = 0;
    if let Some(t) = tlv(rest).filter(|t| t.tag == SEQUENCE) {
        rest = t.rest; // revokedCertificates
        let mut entries = t.contents;
        while let Some(e) = tlv(entries) {
            revoked += 1;
            entries = e.rest;
        }
    }
    let mut crl_number_critical = None;
    let mut crl_number = None;
    if let Some(t) = tlv(rest).filter(|t| t.tag == EXPLICIT_0) {
        let exts = tlv(t.contents).filter(|t| t.tag == SEQUENCE)?;
        let mut items = exts.contents;
        while !items.is_empty() {
            let ext = tlv(items).filter(|t| t.tag == SEQUENCE)?;
            items = ext.rest;
            let oid = tlv(ext.contents).filter(|t| t.tag == OID)?;
            if oid.contents == CRL_NUMBER {
                let flag = tlv(oid.rest).filter(|t| t.tag == BOOLEAN);
                let critical = flag.as_ref().is_some_and(|b| b.contents != [0]);
                crl_number_critical = Some(critical);
                // extnValue OCTET STRING { CRLNumber INTEGER } (RFC 5280 sections 4.1, 5.2.3).
                let value = tlv(flag.map_or(oid.rest, |b| b.rest)).filter(|t| t.tag == OCTET_STRING);
                crl_number = value.and_then(|v| tlv(v.contents)).filter(|t| t.tag == INTEGER).map(|t| t.contents);
            }
        }
    }
    Some(CrlFields {
        issuer_whole: issuer.whole,
        issuer_contents: issuer.contents,
        this_update: this_update.whole,
        next_update,
        crl_number_critical,
        crl_number,
        revoked,
    })
}

/// Unix seconds of a UTCTime or GeneralizedTime TLV.
pub(super) fn time(der: &[u8]) -> Option<i64> {
    ASN1Time::from_der(der).ok().map(|(_, t)| t.timestamp())
}

/// Whether a certificate's signature verifies with its own public key (RFC 5280 section 6.1:
/// "self-signed" means self-issued and verifiable with the key in the certificate).
///
/// A certificate whose algorithms peerguard cannot verify counts as self-signed when it is
/// self-issued: `rejectSelfSigned` then fails closed rather than open.
pub(crate) fn self_signature_verifies(facts: &CertFacts) -> bool {
    let Some(parts) = certificate_parts(&facts.der) else {
        return facts.self_issued;
    };
    let Some((key_alg, key_bits)) = spki_parts(&facts.spki_der) else {
        return facts.self_issued;
    };
    match crate::sigalg::find(key_alg, parts.signature_alg) {
        Some(alg) => alg.verify_signature(key_bits, parts.tbs, parts.signature).is_ok(),
        None => facts.self_issued,
    }
}
