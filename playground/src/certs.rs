//! A certificate for a principal, made in the browser: rcgen builds it, p256 signs it (deterministic ECDSA, no RNG).
//!
//! The CA and leaf keys are derived from their names, so the same principal, issuer, lifetime and
//! time always give the same certificate. They are playground keys, published in this source:
//! nothing signed with them may be trusted anywhere.

use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey as EcdsaKey, VerifyingKey};
pub use peerguard_certkit::{PrincipalLeaf as LeafSpec, DEFAULT_ISSUER};
use rcgen::{Issuer, KeyIdMethod, PublicKeyData, SerialNumber, SignatureAlgorithm, SigningKey};
use sha2::{Digest, Sha256};

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

/// The PEM of a leaf for `spec`, signed by the CA named `spec.issuer`: the certificate factory's
/// CA and leaf (`peerguard_certkit`), signed with keys derived from their names.
pub fn leaf_pem(spec: &LeafSpec<'_>) -> Result<String, String> {
    let ca_key = Key::derive(&format!("CA {}", spec.issuer))?;
    let mut ca = spec.ca().and_then(|c| c.params(false)).map_err(|e| e.to_string())?;
    ca.key_identifier_method = KeyIdMethod::PreSpecified(ca_key.key_id());
    let issuer = Issuer::new(ca, ca_key);

    let principal = spec.principal().map_err(|e| e.to_string())?;
    let key = Key::derive(&format!("leaf {principal}"))?;
    let mut p = spec.leaf().and_then(|l| l.params()).map_err(|e| e.to_string())?;
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
