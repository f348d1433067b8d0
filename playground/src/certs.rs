//! A certificate for a principal, made in the browser: rcgen builds it, p256 signs it (deterministic ECDSA, no RNG).
//!
//! The CA and leaf keys are derived from their names, so the same principal, issuer, lifetime and
//! time always give the same certificate. They are playground keys, published in this source:
//! nothing signed with them may be trusted anywhere.

use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey as EcdsaKey, VerifyingKey};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod,
    KeyUsagePurpose, PublicKeyData, SanType, SerialNumber, SignatureAlgorithm, SigningKey,
};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

/// The issuer DN when none is given.
pub const DEFAULT_ISSUER: &str = "O=cluster.local";
/// A generated leaf becomes valid this long before the chosen time.
const BACKDATE_SECS: i64 = 300;

/// An ECDSA P-256 key derived from a label.
struct Key {
    signing: EcdsaKey,
    public: Vec<u8>,
}

impl Key {
    fn derive(label: &str) -> Result<Key, String> {
        let seed = Sha256::digest(format!("peerguard playground key: {label}").as_bytes());
        let signing = EcdsaKey::from_slice(&seed).map_err(|e| format!("key for {label:?}: {e}"))?;
        let public = VerifyingKey::from(&signing).to_encoded_point(false).as_bytes().to_vec();
        Ok(Key { signing, public })
    }

    /// RFC 7093 method 1: the first 160 bits of the SHA-256 of the SubjectPublicKeyInfo.
    fn key_id(&self) -> Vec<u8> {
        Sha256::digest(self.subject_public_key_info()).iter().take(20).copied().collect()
    }
}

impl PublicKeyData for Key {
    fn der_bytes(&self) -> &[u8] {
        &self.public
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        &rcgen::PKCS_ECDSA_P256_SHA256
    }
}

impl SigningKey for Key {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        let sig: Signature = self.signing.sign(msg);
        Ok(sig.to_der().as_bytes().to_vec())
    }
}

/// What the generated certificate carries.
pub struct LeafSpec<'a> {
    /// With `/`: the SPIFFE URI SAN `spiffe://PRINCIPAL`. Without: the subject CN (and a DNS SAN
    /// when it is a host name).
    pub principal: &'a str,
    /// The CA's DN, RFC 4514 order (`CN=demo CA,O=example`).
    pub issuer: &'a str,
    /// notAfter - notBefore, seconds.
    pub lifetime_secs: i64,
    /// The leaf is valid from 5 minutes before this time (Unix seconds).
    pub at: i64,
}

/// The PEM of a leaf for `spec`, signed by the CA named `spec.issuer`.
pub fn leaf_pem(spec: &LeafSpec<'_>) -> Result<String, String> {
    let ca_key = Key::derive(&format!("CA {}", spec.issuer))?;
    let mut ca = CertificateParams::default();
    ca.distinguished_name = parse_dn(spec.issuer)?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.key_identifier_method = KeyIdMethod::PreSpecified(ca_key.key_id());
    let issuer = Issuer::new(ca, ca_key);

    let principal = spec.principal.strip_prefix("spiffe://").unwrap_or(spec.principal).trim();
    if principal.is_empty() {
        return Err("the principal is empty".to_owned());
    }
    let key = Key::derive(&format!("leaf {principal}"))?;
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    if principal.contains('/') {
        let uri = format!("spiffe://{principal}");
        let ia5 = uri.as_str().try_into().map_err(|e| format!("principal {principal:?}: {e}"))?;
        p.subject_alt_names.push(SanType::URI(ia5));
    } else {
        dn.push(DnType::CommonName, principal);
        if is_host_name(principal) {
            let ia5 = principal.try_into().map_err(|e| format!("principal {principal:?}: {e}"))?;
            p.subject_alt_names.push(SanType::DnsName(ia5));
        }
    }
    p.distinguished_name = dn;
    let not_before = spec.at.saturating_sub(BACKDATE_SECS);
    p.not_before = timestamp(not_before)?;
    p.not_after = timestamp(not_before.saturating_add(spec.lifetime_secs))?;
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth, ExtendedKeyUsagePurpose::ServerAuth];
    p.use_authority_key_identifier_extension = true;
    p.key_identifier_method = KeyIdMethod::PreSpecified(key.key_id());
    let mut serial: Vec<u8> = Sha256::digest(format!("{principal}|{}|{}|{}", spec.issuer, spec.at, spec.lifetime_secs))
        .iter()
        .take(16)
        .copied()
        .collect();
    if let Some(first) = serial.first_mut() {
        // Positive and without a leading zero byte, as RFC 5280 asks.
        *first = (*first & 0x7f) | 0x40;
    }
    p.serial_number = Some(SerialNumber::from_slice(&serial));
    let cert = p.signed_by(&key, &issuer).map_err(|e| format!("certificate: {e}"))?;
    Ok(cert.pem())
}

fn timestamp(t: i64) -> Result<OffsetDateTime, String> {
    OffsetDateTime::from_unix_timestamp(t).map_err(|e| format!("time {t} is out of range: {e}"))
}

fn is_host_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// `CN=a,O=b` (most specific first) into a DN encoded least specific first, so that the engine
/// renders it back exactly as written.
pub fn parse_dn(s: &str) -> Result<DistinguishedName, String> {
    if s.contains('\\') || s.contains('+') {
        return Err(format!("issuer {s:?}: escapes and multi-valued RDNs are not supported; paste a PEM instead"));
    }
    let mut rdns = Vec::new();
    for part in s.split(',') {
        let (k, v) = part.split_once('=').ok_or_else(|| format!("issuer {s:?}: {part:?} is not KEY=VALUE"))?;
        let ty = match k.trim() {
            "CN" => DnType::CommonName,
            "O" => DnType::OrganizationName,
            "OU" => DnType::OrganizationalUnitName,
            "C" => DnType::CountryName,
            "L" => DnType::LocalityName,
            "ST" => DnType::StateOrProvinceName,
            other => return Err(format!("issuer {s:?}: {other:?} is not one of CN, O, OU, C, L, ST")),
        };
        if v.is_empty() {
            return Err(format!("issuer {s:?}: {k} is empty"));
        }
        rdns.push((ty, v.to_owned()));
    }
    let mut dn = DistinguishedName::new();
    for (ty, v) in rdns.into_iter().rev() {
        dn.push(ty, v);
    }
    Ok(dn)
}
