//! The peer leaf certificate: decoded once (PEM or DER, within a size budget) into the facts policies read.

use base64::Engine as _;
use sha2::{Digest, Sha256};
use x509_parser::prelude::*;

/// Largest DER certificate accepted. Real workload certificates are 1-3 KiB; anything near
/// this budget is an attack on the parser or a misconfiguration.
pub const MAX_CERT_DER_BYTES: usize = 16 * 1024;
/// Most SAN entries accepted on one certificate.
pub const MAX_SAN_ENTRIES: usize = 128;
/// Largest PEM input accepted (leaf plus a generous chain).
pub const MAX_PEM_BYTES: usize = 64 * 1024;

/// The key in the certificate's SubjectPublicKeyInfo.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyKind {
    /// ECDSA on NIST P-256.
    EcdsaP256,
    /// ECDSA on NIST P-384.
    EcdsaP384,
    /// ECDSA on NIST P-521.
    EcdsaP521,
    /// An EC key on another curve, named by OID (empty for explicit curve parameters, which
    /// name no curve).
    EcdsaOther(String),
    /// DSA (FIPS 186-5 no longer allows DSA signatures).
    Dsa,
    /// Ed25519.
    Ed25519,
    /// RSA with this modulus size.
    Rsa {
        /// Modulus bits.
        bits: u32,
    },
    /// Anything else (algorithm OID).
    Other(String),
}

impl core::fmt::Display for KeyKind {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            KeyKind::EcdsaP256 => f.write_str("ecdsaP256"),
            KeyKind::EcdsaP384 => f.write_str("ecdsaP384"),
            KeyKind::EcdsaP521 => f.write_str("ecdsaP521"),
            KeyKind::Dsa => f.write_str("dsa"),
            KeyKind::EcdsaOther(oid) => write!(f, "ecdsa({oid})"),
            KeyKind::Ed25519 => f.write_str("ed25519"),
            KeyKind::Rsa { bits } => write!(f, "rsa{bits}"),
            KeyKind::Other(oid) => write!(f, "key({oid})"),
        }
    }
}

/// Why a certificate could not be decoded. Every variant leads to `invalid_certificate`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CertError {
    /// No PEM block, or a PEM block that is not base64.
    BadPem,
    /// The DER does not parse as an X.509 certificate (or has trailing bytes).
    BadDer(String),
    /// Input over the size budget.
    TooLarge(usize),
    /// More SAN entries than [`MAX_SAN_ENTRIES`].
    TooManySans(usize),
    /// A duplicate or malformed extension that policies read.
    BadExtension(String),
}

impl core::fmt::Display for CertError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            CertError::BadPem => f.write_str("not a PEM certificate"),
            CertError::BadDer(e) => write!(f, "certificate DER does not parse: {e}"),
            CertError::TooLarge(n) => write!(f, "certificate input of {n} bytes is over the size budget"),
            CertError::TooManySans(n) => write!(f, "{n} SAN entries is over the budget of {MAX_SAN_ENTRIES}"),
            CertError::BadExtension(e) => write!(f, "bad extension: {e}"),
        }
    }
}

/// What peerguard knows about a parsed certificate. Time-independent: parsed once and cached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertFacts {
    /// The DER encoding.
    pub der: Vec<u8>,
    /// Lowercase hex SHA-256 of the DER (`cert.sha256`, Envoy's `verify_certificate_hash`).
    pub sha256_hex: String,
    /// Base64 SHA-256 of the SPKI (`cert.spki.sha256`, Envoy's `verify_certificate_spki`).
    pub spki_sha256_b64: String,
    /// Serial number, lowercase hex, no leading zeros.
    pub serial_hex: String,
    /// Subject DN, RFC 4514.
    pub subject: String,
    /// Subject CN values.
    pub subject_cn: Vec<String>,
    /// Subject O values.
    pub subject_o: Vec<String>,
    /// Subject OU values.
    pub subject_ou: Vec<String>,
    /// Issuer DN, RFC 4514.
    pub issuer: String,
    /// Issuer CN values.
    pub issuer_cn: Vec<String>,
    /// Issuer O values.
    pub issuer_o: Vec<String>,
    /// URI SANs, in certificate order.
    pub uri_sans: Vec<String>,
    /// DNS SANs, in certificate order.
    pub dns_sans: Vec<String>,
    /// notBefore, Unix seconds.
    pub not_before: i64,
    /// notAfter, Unix seconds.
    pub not_after: i64,
    /// Public key type.
    pub key: KeyKind,
    /// `None` when there is no EKU extension; else whether clientAuth (or anyExtendedKeyUsage) is allowed.
    pub eku_allows_client_auth: Option<bool>,
    /// Issuer DN equals subject DN (self-issued). Signature self-verification is checked by the chain module.
    pub self_issued: bool,
    /// The SPKI DER (for self-signature checks).
    pub spki_der: Vec<u8>,
}

impl CertFacts {
    /// notAfter - notBefore, in seconds.
    pub fn lifetime_secs(&self) -> i64 {
        self.not_after.saturating_sub(self.not_before)
    }

    /// Decodes a PEM certificate. Envoy may URL-encode `connection.peer_certificate` and XFCC
    /// `Cert=`; both forms are accepted.
    pub fn from_pem(pem: &[u8]) -> Result<CertFacts, CertError> {
        let ders = pem_certificates(pem)?;
        let first = ders.into_iter().next().ok_or(CertError::BadPem)?;
        CertFacts::from_der(&first)
    }

    /// Decodes a DER certificate.
    pub fn from_der(der: &[u8]) -> Result<CertFacts, CertError> {
        if der.len() > MAX_CERT_DER_BYTES {
            return Err(CertError::TooLarge(der.len()));
        }
        let (rest, cert) = X509Certificate::from_der(der).map_err(|e| CertError::BadDer(e.to_string()))?;
        if !rest.is_empty() {
            return Err(CertError::BadDer(format!("{} trailing bytes", rest.len())));
        }
        let mut uri_sans = Vec::new();
        let mut dns_sans = Vec::new();
        match cert.subject_alternative_name() {
            Ok(Some(san)) => {
                let names = &san.value.general_names;
                if names.len() > MAX_SAN_ENTRIES {
                    return Err(CertError::TooManySans(names.len()));
                }
                for name in names {
                    match name {
                        GeneralName::URI(u) => uri_sans.push((*u).to_owned()),
                        GeneralName::DNSName(d) => dns_sans.push((*d).to_owned()),
                        _ => {}
                    }
                }
            }
            Ok(None) => {}
            Err(e) => return Err(CertError::BadExtension(format!("subjectAltName: {e}"))),
        }
        let eku_allows_client_auth = match cert.extended_key_usage() {
            Ok(Some(eku)) => Some(eku.value.client_auth || eku.value.any),
            Ok(None) => None,
            Err(e) => return Err(CertError::BadExtension(format!("extendedKeyUsage: {e}"))),
        };
        let spki = cert.public_key();
        let key = key_kind(spki);
        let subject_name = cert.subject();
        let issuer_name = cert.issuer();
        Ok(CertFacts {
            der: der.to_vec(),
            sha256_hex: hex::encode(Sha256::digest(der)),
            spki_sha256_b64: base64::engine::general_purpose::STANDARD.encode(Sha256::digest(spki.raw)),
            serial_hex: serial_hex(cert.raw_serial()),
            subject: rfc4514(subject_name),
            subject_cn: attr_values(subject_name, OID_CN),
            subject_o: attr_values(subject_name, OID_O),
            subject_ou: attr_values(subject_name, OID_OU),
            issuer: rfc4514(issuer_name),
            issuer_cn: attr_values(issuer_name, OID_CN),
            issuer_o: attr_values(issuer_name, OID_O),
            uri_sans,
            dns_sans,
            not_before: cert.validity().not_before.timestamp(),
            not_after: cert.validity().not_after.timestamp(),
            key,
            eku_allows_client_auth,
            self_issued: subject_name.as_raw() == issuer_name.as_raw(),
            spki_der: spki.raw.to_vec(),
        })
    }
}

/// Decodes every `CERTIFICATE` block of a PEM bundle into DER, in order.
/// Accepts URL-encoded PEM, as Envoy may send it.
pub fn pem_certificates(input: &[u8]) -> Result<Vec<Vec<u8>>, CertError> {
    pem_blocks(input, "CERTIFICATE")
}

/// Largest PEM accepted from the policy itself (trusted input): a CRL with 10,000 entries is
/// about 500 KB, so the peer budget above would refuse real revocation lists.
pub const MAX_CONFIG_PEM_BYTES: usize = 32 * 1024 * 1024;

/// Decodes every PEM block with the given label (e.g. `X509 CRL`) from peer input, within the
/// peer size budget.
pub fn pem_blocks(input: &[u8], label: &str) -> Result<Vec<Vec<u8>>, CertError> {
    pem_blocks_within(input, label, MAX_PEM_BYTES * 4)
}

/// Decodes every PEM block with the given label, refusing input over `max_bytes`.
///
/// URL-encoded input is decoded first. Envoy's encoding keeps the unreserved `-` (so
/// `-----BEGIN` survives) but encodes spaces, newlines, `+`, `/` and `=`. A `%` never occurs in
/// plain PEM (labels and base64 have none), so its presence is what tells the two forms apart.
pub fn pem_blocks_within(input: &[u8], label: &str, max_bytes: usize) -> Result<Vec<Vec<u8>>, CertError> {
    if input.len() > max_bytes {
        return Err(CertError::TooLarge(input.len()));
    }
    let decoded;
    let text: &[u8] = if input.contains(&b'%') {
        decoded = percent_decode(input);
        &decoded
    } else {
        input
    };
    let text = core::str::from_utf8(text).map_err(|_| CertError::BadPem)?;
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(&begin) {
        let after = &rest[start + begin.len()..];
        let stop = after.find(&end).ok_or(CertError::BadPem)?;
        let body: String = after[..stop].chars().filter(|c| !c.is_ascii_whitespace()).collect();
        let der = base64::engine::general_purpose::STANDARD.decode(body.as_bytes()).map_err(|_| CertError::BadPem)?;
        out.push(der);
        rest = &after[stop + end.len()..];
    }
    if out.is_empty() {
        return Err(CertError::BadPem);
    }
    Ok(out)
}

/// Percent-decodes `%XX` sequences; invalid sequences are kept as they are.
pub fn percent_decode(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        if input[i] == b'%' && i + 2 < input.len() {
            if let (Some(h), Some(l)) = (hex_val(input[i + 1]), hex_val(input[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(input[i]);
        i += 1;
    }
    out
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

const OID_CN: &str = "2.5.4.3";
const OID_O: &str = "2.5.4.10";
const OID_OU: &str = "2.5.4.11";

fn attr_short_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "STREET",
        "2.5.4.5" => "serialNumber",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        "1.2.840.113549.1.9.1" => "emailAddress",
        _ => return None,
    })
}

fn attr_values(name: &X509Name<'_>, oid: &str) -> Vec<String> {
    name.iter_attributes().filter(|a| a.attr_type().to_id_string() == oid).map(attr_text).collect()
}

fn attr_text(attr: &AttributeTypeAndValue<'_>) -> String {
    match attr.as_str() {
        Ok(s) => s.to_owned(),
        // BMPString, T61String etc.: render the bytes lossily rather than fail the whole cert.
        Err(_) => String::from_utf8_lossy(attr.as_slice()).into_owned(),
    }
}

/// Renders a DN as RFC 4514 text, most specific RDN first, `,` between RDNs, no spaces,
/// which is how Envoy renders `connection.subject_peer_certificate`.
/// See <https://www.rfc-editor.org/rfc/rfc4514#section-2>.
pub fn rfc4514(name: &X509Name<'_>) -> String {
    let rdns: Vec<_> = name.iter_rdn().collect();
    let mut out = String::new();
    for (i, rdn) in rdns.iter().rev().enumerate() {
        if i > 0 {
            out.push(',');
        }
        for (j, attr) in rdn.iter().enumerate() {
            if j > 0 {
                out.push('+');
            }
            let oid = attr.attr_type().to_id_string();
            match attr_short_name(&oid) {
                Some(short) => out.push_str(short),
                None => out.push_str(&oid),
            }
            out.push('=');
            escape_rfc4514_value(&attr_text(attr), &mut out);
        }
    }
    out
}

fn escape_rfc4514_value(v: &str, out: &mut String) {
    let n = v.chars().count();
    for (i, c) in v.chars().enumerate() {
        let needs = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == '#' || c == ' '))
            || (i + 1 == n && c == ' ');
        if needs {
            out.push('\\');
        }
        if c == '\0' {
            out.push_str("\\00");
        } else {
            out.push(c);
        }
    }
}

fn serial_hex(raw: &[u8]) -> String {
    let h = hex::encode(raw);
    let trimmed = h.trim_start_matches('0');
    if trimmed.is_empty() {
        "0".to_owned()
    } else {
        trimmed.to_owned()
    }
}

fn key_kind(spki: &SubjectPublicKeyInfo<'_>) -> KeyKind {
    let alg = spki.algorithm.algorithm.to_id_string();
    match alg.as_str() {
        "1.2.840.113549.1.1.1" | "1.2.840.113549.1.1.10" => match spki.parsed() {
            Ok(x509_parser::public_key::PublicKey::RSA(rsa)) => KeyKind::Rsa { bits: modulus_bits(rsa.modulus) },
            _ => KeyKind::Other(alg),
        },
        "1.2.840.10040.4.1" => KeyKind::Dsa,
        "1.2.840.10045.2.1" => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|o| o.to_id_string())
                .unwrap_or_default();
            match curve.as_str() {
                "1.2.840.10045.3.1.7" => KeyKind::EcdsaP256,
                "1.3.132.0.34" => KeyKind::EcdsaP384,
                "1.3.132.0.35" => KeyKind::EcdsaP521,
                _ => KeyKind::EcdsaOther(curve),
            }
        }
        "1.3.101.112" => KeyKind::Ed25519,
        _ => KeyKind::Other(alg),
    }
}

/// The size in bits of an RSA modulus (a DER INTEGER's bytes: big-endian, maybe a leading 0).
/// x509-parser's `key_size` counts whole bytes after dropping the first one, which misstates a
/// modulus whose size is not a multiple of 8 (a 2047-bit modulus reads as 2040).
fn modulus_bits(modulus: &[u8]) -> u32 {
    let significant = match modulus.iter().position(|b| *b != 0) {
        Some(i) => &modulus[i..],
        None => return 0,
    };
    let bytes = u32::try_from(significant.len()).unwrap_or(u32::MAX);
    let top_bits = significant.first().map_or(0, |b| 8 - b.leading_zeros());
    bytes.saturating_sub(1).saturating_mul(8).saturating_add(top_bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn garbage_is_refused_without_panicking() {
        assert_eq!(CertFacts::from_pem(b"hello"), Err(CertError::BadPem));
        assert_eq!(
            CertFacts::from_pem(b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n"),
            Err(CertError::BadPem)
        );
        assert!(matches!(
            CertFacts::from_pem(b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"),
            Err(CertError::BadDer(_))
        ));
        assert!(matches!(CertFacts::from_der(&[0x30, 0x82, 0x01]), Err(CertError::BadDer(_))));
        assert!(matches!(CertFacts::from_der(&vec![0u8; MAX_CERT_DER_BYTES + 1]), Err(CertError::TooLarge(_))));
    }

    #[test]
    fn percent_decoding_handles_envoy_url_encoding() {
        assert_eq!(percent_decode(b"-----BEGIN%20CERT%0A"), b"-----BEGIN CERT\n".to_vec());
        assert_eq!(percent_decode(b"100%"), b"100%".to_vec());
        assert_eq!(percent_decode(b"%zz%4"), b"%zz%4".to_vec());
    }

    #[test]
    fn rsa_modulus_size_counts_bits_not_bytes() {
        // A weak or odd-sized key must not read as the next byte size up (or down).
        assert_eq!(modulus_bits(&[0x00, 0x80, 0, 0]), 24);
        assert_eq!(modulus_bits(&[0x7f, 0, 0]), 23);
        assert_eq!(modulus_bits(&[0x00, 0x00, 0x01]), 1);
        assert_eq!(modulus_bits(&[0x00]), 0);
        assert_eq!(modulus_bits(&[]), 0);
        let mut m2047 = vec![0x7f];
        m2047.resize(256, 0xff);
        assert_eq!(modulus_bits(&m2047), 2047);
        let mut m2048 = vec![0x00, 0x80];
        m2048.resize(257, 0x01);
        assert_eq!(modulus_bits(&m2048), 2048);
    }

    #[test]
    fn url_encoded_pem_is_decoded_even_though_dashes_stay_plain() {
        // Only the decision to decode is tested here; a real certificate is in tests/certificates.rs.
        let plain = b"-----BEGIN X-----\nAAEC\n-----END X-----\n";
        let encoded = b"-----BEGIN%20X-----%0AAAEC%0A-----END%20X-----%0A";
        assert_eq!(pem_blocks(plain, "X"), Ok(vec![vec![0, 1, 2]]));
        assert_eq!(pem_blocks(encoded, "X"), Ok(vec![vec![0, 1, 2]]));
    }

    #[test]
    fn serial_is_lowercase_hex_without_leading_zeros() {
        assert_eq!(serial_hex(&[0x00, 0x0a, 0xbc]), "abc");
        assert_eq!(serial_hex(&[0x00]), "0");
        assert_eq!(serial_hex(&[0x7f, 0x01]), "7f01");
    }
}
