//! The peer leaf certificate: decoded once (PEM or DER, within a size budget) into the facts policies read.

use base64::Engine as _;
use sha2::{Digest, Sha256};
use x509_parser::prelude::*;

use crate::dn::{attr_values, rfc4514, OID_CN, OID_O, OID_OU};
use crate::pem::pem_certificates;

/// Largest DER certificate accepted. Real workload certificates are 1-3 KiB; anything near
/// this budget is an attack on the parser or a misconfiguration.
pub const MAX_CERT_DER_BYTES: usize = 16 * 1024;
/// Most SAN entries accepted on one certificate.
pub const MAX_SAN_ENTRIES: usize = 128;

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
#[non_exhaustive]
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

impl std::error::Error for CertError {}

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
    fn serial_is_lowercase_hex_without_leading_zeros() {
        assert_eq!(serial_hex(&[0x00, 0x0a, 0xbc]), "abc");
        assert_eq!(serial_hex(&[0x00]), "0");
        assert_eq!(serial_hex(&[0x7f, 0x01]), "7f01");
    }
}
