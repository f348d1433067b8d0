//! Pure-Rust signature verification for webpki (RustCrypto), building for every wasm target.
//!
//! webpki's own providers need ring or aws-lc-rs, which do not build for the wasm targets the
//! filter ships on. These implement [`SignatureVerificationAlgorithm`] with p256, p384, rsa and
//! ed25519-dalek. The set mirrors webpki's ring provider: ECDSA P-256/P-384 with SHA-256 or SHA-384,
//! RSA PKCS#1 v1.5 and RSA-PSS (MGF1 with the same hash, salt length = hash length) with SHA-256,
//! SHA-384 or SHA-512 on 2048-8192 bit keys, and Ed25519. Anything else is unsupported, which
//! webpki reports as an error, so it can only ever deny.
//!
//! ECDSA P-521 signatures are not verified (a chain with one is `untrusted_chain`): the pure-Rust
//! p521 crate (default features off) builds for wasm32-wasip1, but added about 70 KB to a module
//! already over its 1 MiB budget (measured 2026-12-04 with the rustup toolchain: 1,088,927 bytes
//! without it, 1,158,727 with it). P-521 *leaf keys* are fine: a leaf's key verifies nothing in
//! the chain.

use rustls_pki_types::alg_id;
use rustls_pki_types::{AlgorithmIdentifier, InvalidSignature, SignatureVerificationAlgorithm};
use sha2::{Digest, Sha256, Sha384, Sha512};

/// Hash functions used by the algorithms below.
#[derive(Clone, Copy, Debug)]
enum Hash {
    Sha256,
    Sha384,
    Sha512,
}

impl Hash {
    fn digest(self, message: &[u8]) -> Vec<u8> {
        match self {
            Hash::Sha256 => Sha256::digest(message).to_vec(),
            Hash::Sha384 => Sha384::digest(message).to_vec(),
            Hash::Sha512 => Sha512::digest(message).to_vec(),
        }
    }
}

/// The curves ECDSA is verified on.
#[derive(Clone, Copy, Debug)]
enum Curve {
    P256,
    P384,
}

/// ECDSA with an ASN.1 DER signature (`Ecdsa-Sig-Value`, RFC 5758 section 3.2).
#[derive(Debug)]
struct Ecdsa {
    curve: Curve,
    hash: Hash,
    sig_alg: AlgorithmIdentifier,
}

impl SignatureVerificationAlgorithm for Ecdsa {
    fn verify_signature(&self, public_key: &[u8], message: &[u8], signature: &[u8]) -> Result<(), InvalidSignature> {
        use signature::hazmat::PrehashVerifier as _;
        // The prehash form lets a curve take a digest of another size (P-256 with SHA-384):
        // ECDSA truncates or pads it to the field size (SEC 1 section 4.1.4, step 5).
        let digest = self.hash.digest(message);
        match self.curve {
            Curve::P256 => {
                let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(public_key).map_err(|_| InvalidSignature)?;
                let sig = p256::ecdsa::Signature::from_der(signature).map_err(|_| InvalidSignature)?;
                key.verify_prehash(&digest, &sig).map_err(|_| InvalidSignature)
            }
            Curve::P384 => {
                let key = p384::ecdsa::VerifyingKey::from_sec1_bytes(public_key).map_err(|_| InvalidSignature)?;
                let sig = p384::ecdsa::Signature::from_der(signature).map_err(|_| InvalidSignature)?;
                key.verify_prehash(&digest, &sig).map_err(|_| InvalidSignature)
            }
        }
    }

    fn public_key_alg_id(&self) -> AlgorithmIdentifier {
        match self.curve {
            Curve::P256 => alg_id::ECDSA_P256,
            Curve::P384 => alg_id::ECDSA_P384,
        }
    }

    fn signature_alg_id(&self) -> AlgorithmIdentifier {
        self.sig_alg
    }
}

/// RSA padding schemes.
#[derive(Clone, Copy, Debug)]
enum RsaPadding {
    /// RSASSA-PKCS1-v1_5 (RFC 8017 section 8.2).
    Pkcs1,
    /// RSASSA-PSS (RFC 8017 section 8.1) with MGF1 over the same hash and a salt as long as the hash,
    /// the only parameters webpki accepts (RFC 4055 section 3.1 as profiled by the CA/B Forum).
    Pss,
}

/// Smallest and largest RSA moduli accepted, as webpki's ring provider.
const RSA_MIN_BITS: usize = 2048;
const RSA_MAX_BITS: usize = 8192;

/// Decodes a PKCS#1 `RSAPublicKey` of 2048 to 8192 bits, a whole number of bytes long.
///
/// `rsa::RsaPublicKey::from_pkcs1_der` refuses moduli over 4096 bits (`RsaPublicKey::MAX_SIZE`),
/// which made every RSA-8192 CA untrusted; the size is checked here instead, with webpki's
/// bounds. A modulus whose size is not a multiple of 8 is refused, as the CA/Browser Forum
/// Baseline Requirements (section 6.1.5) and webpki's providers do.
fn rsa_public_key(pkcs1: &[u8]) -> Option<rsa::RsaPublicKey> {
    let key = rsa::pkcs1::RsaPublicKey::try_from(pkcs1).ok()?;
    let n = rsa::BigUint::from_bytes_be(key.modulus.as_bytes());
    let e = rsa::BigUint::from_bytes_be(key.public_exponent.as_bytes());
    let bits = n.bits();
    if !(RSA_MIN_BITS..=RSA_MAX_BITS).contains(&bits) || !bits.is_multiple_of(8) {
        return None;
    }
    rsa::RsaPublicKey::new_with_max_size(n, e, RSA_MAX_BITS).ok()
}

/// RSA signatures with a key in `rsaEncryption` form.
#[derive(Debug)]
struct Rsa {
    padding: RsaPadding,
    hash: Hash,
    sig_alg: AlgorithmIdentifier,
}

impl SignatureVerificationAlgorithm for Rsa {
    fn verify_signature(&self, public_key: &[u8], message: &[u8], signature: &[u8]) -> Result<(), InvalidSignature> {
        let key = rsa_public_key(public_key).ok_or(InvalidSignature)?;
        let digest = self.hash.digest(message);
        let result = match (self.padding, self.hash) {
            (RsaPadding::Pkcs1, Hash::Sha256) => key.verify(rsa::Pkcs1v15Sign::new::<Sha256>(), &digest, signature),
            (RsaPadding::Pkcs1, Hash::Sha384) => key.verify(rsa::Pkcs1v15Sign::new::<Sha384>(), &digest, signature),
            (RsaPadding::Pkcs1, Hash::Sha512) => key.verify(rsa::Pkcs1v15Sign::new::<Sha512>(), &digest, signature),
            (RsaPadding::Pss, Hash::Sha256) => key.verify(rsa::Pss::new::<Sha256>(), &digest, signature),
            (RsaPadding::Pss, Hash::Sha384) => key.verify(rsa::Pss::new::<Sha384>(), &digest, signature),
            (RsaPadding::Pss, Hash::Sha512) => key.verify(rsa::Pss::new::<Sha512>(), &digest, signature),
        };
        result.map_err(|_| InvalidSignature)
    }

    fn public_key_alg_id(&self) -> AlgorithmIdentifier {
        alg_id::RSA_ENCRYPTION
    }

    fn signature_alg_id(&self) -> AlgorithmIdentifier {
        self.sig_alg
    }
}

/// Ed25519 (RFC 8410), verified strictly: non-canonical and small-order inputs are refused.
#[derive(Debug)]
struct Ed25519;

impl SignatureVerificationAlgorithm for Ed25519 {
    fn verify_signature(&self, public_key: &[u8], message: &[u8], signature: &[u8]) -> Result<(), InvalidSignature> {
        let key_bytes: &[u8; 32] = public_key.try_into().map_err(|_| InvalidSignature)?;
        let key = ed25519_dalek::VerifyingKey::from_bytes(key_bytes).map_err(|_| InvalidSignature)?;
        let sig = ed25519_dalek::Signature::from_slice(signature).map_err(|_| InvalidSignature)?;
        key.verify_strict(message, &sig).map_err(|_| InvalidSignature)
    }

    fn public_key_alg_id(&self) -> AlgorithmIdentifier {
        alg_id::ED25519
    }

    fn signature_alg_id(&self) -> AlgorithmIdentifier {
        alg_id::ED25519
    }
}

static ECDSA_P256_SHA256: Ecdsa = Ecdsa { curve: Curve::P256, hash: Hash::Sha256, sig_alg: alg_id::ECDSA_SHA256 };
static ECDSA_P256_SHA384: Ecdsa = Ecdsa { curve: Curve::P256, hash: Hash::Sha384, sig_alg: alg_id::ECDSA_SHA384 };
static ECDSA_P384_SHA256: Ecdsa = Ecdsa { curve: Curve::P384, hash: Hash::Sha256, sig_alg: alg_id::ECDSA_SHA256 };
static ECDSA_P384_SHA384: Ecdsa = Ecdsa { curve: Curve::P384, hash: Hash::Sha384, sig_alg: alg_id::ECDSA_SHA384 };
static RSA_PKCS1_SHA256: Rsa =
    Rsa { padding: RsaPadding::Pkcs1, hash: Hash::Sha256, sig_alg: alg_id::RSA_PKCS1_SHA256 };
static RSA_PKCS1_SHA384: Rsa =
    Rsa { padding: RsaPadding::Pkcs1, hash: Hash::Sha384, sig_alg: alg_id::RSA_PKCS1_SHA384 };
static RSA_PKCS1_SHA512: Rsa =
    Rsa { padding: RsaPadding::Pkcs1, hash: Hash::Sha512, sig_alg: alg_id::RSA_PKCS1_SHA512 };
static RSA_PSS_SHA256: Rsa = Rsa { padding: RsaPadding::Pss, hash: Hash::Sha256, sig_alg: alg_id::RSA_PSS_SHA256 };
static RSA_PSS_SHA384: Rsa = Rsa { padding: RsaPadding::Pss, hash: Hash::Sha384, sig_alg: alg_id::RSA_PSS_SHA384 };
static RSA_PSS_SHA512: Rsa = Rsa { padding: RsaPadding::Pss, hash: Hash::Sha512, sig_alg: alg_id::RSA_PSS_SHA512 };
static ED25519: Ed25519 = Ed25519;

/// Every supported algorithm, in the form webpki takes.
pub(crate) static ALL: &[&dyn SignatureVerificationAlgorithm] = &[
    &ECDSA_P256_SHA256,
    &ECDSA_P256_SHA384,
    &ECDSA_P384_SHA256,
    &ECDSA_P384_SHA384,
    &RSA_PKCS1_SHA256,
    &RSA_PKCS1_SHA384,
    &RSA_PKCS1_SHA512,
    &RSA_PSS_SHA256,
    &RSA_PSS_SHA384,
    &RSA_PSS_SHA512,
    &ED25519,
];

/// The algorithm for a key (`AlgorithmIdentifier` contents of the SPKI) and a signature
/// (`AlgorithmIdentifier` contents of `signatureAlgorithm`), if supported.
pub(crate) fn find(public_key_alg: &[u8], signature_alg: &[u8]) -> Option<&'static dyn SignatureVerificationAlgorithm> {
    ALL.iter()
        .copied()
        .find(|a| a.public_key_alg_id().as_ref() == public_key_alg && a.signature_alg_id().as_ref() == signature_alg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    const MSG: &[u8] = b"peerguard signs nothing, it only verifies";

    #[test]
    fn ecdsa_verifies_with_matching_and_cross_hashes_and_refuses_tampering() {
        use signature::hazmat::PrehashSigner as _;
        let p256_key = p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).unwrap();
        let p256_pub = p256_key.verifying_key().to_encoded_point(false);
        let p384_key = p384::ecdsa::SigningKey::from_slice(&[9u8; 48]).unwrap();
        let p384_pub = p384_key.verifying_key().to_encoded_point(false);
        for (alg, hash) in [(&ECDSA_P256_SHA256, Hash::Sha256), (&ECDSA_P256_SHA384, Hash::Sha384)] {
            let sig: p256::ecdsa::Signature = p256_key.sign_prehash(&hash.digest(MSG)).unwrap();
            let der = sig.to_der();
            assert!(alg.verify_signature(p256_pub.as_bytes(), MSG, der.as_bytes()).is_ok());
            assert!(alg.verify_signature(p256_pub.as_bytes(), b"other", der.as_bytes()).is_err());
            assert!(alg.verify_signature(p384_pub.as_bytes(), MSG, der.as_bytes()).is_err());
        }
        for (alg, hash) in [(&ECDSA_P384_SHA384, Hash::Sha384), (&ECDSA_P384_SHA256, Hash::Sha256)] {
            let sig: p384::ecdsa::Signature = p384_key.sign_prehash(&hash.digest(MSG)).unwrap();
            let der = sig.to_der();
            assert!(alg.verify_signature(p384_pub.as_bytes(), MSG, der.as_bytes()).is_ok());
            assert!(alg.verify_signature(p384_pub.as_bytes(), b"other", der.as_bytes()).is_err());
        }
    }

    #[test]
    fn ed25519_verifies_and_refuses_a_short_key() {
        use ed25519_dalek::Signer as _;
        let key = ed25519_dalek::SigningKey::from_bytes(&[3u8; 32]);
        let sig = key.sign(MSG).to_bytes();
        let public = key.verifying_key().to_bytes();
        assert!(ED25519.verify_signature(&public, MSG, &sig).is_ok());
        assert!(ED25519.verify_signature(&public, b"other", &sig).is_err());
        assert!(ED25519.verify_signature(&public[..31], MSG, &sig).is_err());
    }

    #[test]
    fn garbage_keys_and_signatures_are_invalid_rather_than_panics() {
        for alg in ALL {
            assert!(alg.verify_signature(&[], MSG, &[]).is_err());
            assert!(alg.verify_signature(&[0x04; 65], MSG, &[0x30, 0x00]).is_err());
        }
    }

    #[test]
    fn lookup_pairs_key_and_signature_algorithms() {
        assert!(find(alg_id::ECDSA_P256.as_ref(), alg_id::ECDSA_SHA384.as_ref()).is_some());
        assert!(find(alg_id::RSA_ENCRYPTION.as_ref(), alg_id::RSA_PSS_SHA512.as_ref()).is_some());
        assert!(find(alg_id::ECDSA_P521.as_ref(), alg_id::ECDSA_SHA512.as_ref()).is_none());
        assert!(find(alg_id::ED25519.as_ref(), alg_id::ECDSA_SHA256.as_ref()).is_none());
    }
}
