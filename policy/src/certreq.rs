//! Compiled certificate requirements (`certificate:` and each `certificateRules[].require`).

use std::collections::HashSet;

use base64::Engine as _;

use crate::cert::{CertFacts, KeyKind};
use crate::chain::{self, ChainVerdict, ChainVerifier};
use crate::config::CertificateRequirements;
use crate::duration::Duration;
use crate::error::ConfigError;
use crate::pattern::{parse_list, StringMatcher};
use crate::reason::Reason;

/// One allowed key type.
#[derive(Clone, Debug, PartialEq, Eq)]
enum KeyRequirement {
    EcdsaP256,
    EcdsaP384,
    EcdsaP521,
    Ed25519,
    RsaAtLeast(u32),
}

impl KeyRequirement {
    fn allows(&self, key: &KeyKind) -> bool {
        match (self, key) {
            (KeyRequirement::EcdsaP256, KeyKind::EcdsaP256)
            | (KeyRequirement::EcdsaP384, KeyKind::EcdsaP384)
            | (KeyRequirement::EcdsaP521, KeyKind::EcdsaP521)
            | (KeyRequirement::Ed25519, KeyKind::Ed25519) => true,
            (KeyRequirement::RsaAtLeast(min), KeyKind::Rsa { bits }) => bits >= min,
            _ => false,
        }
    }
}

/// `certificate:` compiled: durations in seconds, patterns and pins in lookup form.
#[derive(Debug, Default)]
pub struct CompiledRequirements {
    max_lifetime: Option<i64>,
    /// Read by the engine for the expiring-certificates counter.
    pub(crate) min_remaining: Option<i64>,
    require_client_auth: bool,
    reject_self_signed: bool,
    key_types: Option<Vec<KeyRequirement>>,
    issuers: Option<StringMatcher>,
    spki_pins: HashSet<String>,
    cert_pins: HashSet<String>,
    chain: Option<ChainVerifier>,
}

/// The time-independent part of a requirement check, computed once per certificate and cached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StaticVerdict {
    /// The first failing static check, in decision order.
    pub failure: Option<Reason>,
    /// The verdict may be reused until this Unix time.
    pub valid_until: i64,
}

impl CompiledRequirements {
    /// Compiles one requirements block found at `path`.
    pub fn compile(reqs: &CertificateRequirements, path: &str, errors: &mut Vec<ConfigError>) -> CompiledRequirements {
        let mut out = CompiledRequirements::default();
        let mut duration = |field: &str, v: &Option<String>| -> Option<i64> {
            let s = v.as_ref()?;
            match Duration::parse(s) {
                Ok(d) => Some(i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
                Err(e) => {
                    errors.push(ConfigError::new(format!("{path}.{field}"), e.to_string()));
                    None
                }
            }
        };
        out.max_lifetime = duration("maxLifetime", &reqs.max_lifetime);
        out.min_remaining = duration("minRemaining", &reqs.min_remaining);
        out.require_client_auth = reqs.require_client_auth.unwrap_or(false);
        out.reject_self_signed = reqs.reject_self_signed.unwrap_or(false);
        if let Some(kts) = &reqs.key_types {
            if kts.is_empty() {
                errors.push(ConfigError::new(
                    format!("{path}.keyTypes"),
                    "empty list allows no key; remove the field to allow any key",
                ));
            }
            let mut list = Vec::new();
            for (i, kt) in kts.iter().enumerate() {
                match parse_key_type(kt) {
                    Some(k) => list.push(k),
                    None => errors.push(ConfigError::new(
                        format!("{path}.keyTypes[{i}]"),
                        format!("unknown key type {kt:?}; expected ecdsaP256, ecdsaP384, ecdsaP521, ed25519 or rsaN (RSA with at least N bits, N from 2048 to 16384, e.g. rsa2048)"),
                    )),
                }
            }
            out.key_types = Some(list);
        }
        if let Some(issuers) = &reqs.issuers {
            out.issuers = Some(StringMatcher::new(parse_list(issuers, &format!("{path}.issuers"), false, errors)));
        }
        // An empty pin list must never silently switch pinning off, nor lean on the other list.
        for (field, list) in [("spkiPins", &reqs.spki_pins), ("certPins", &reqs.cert_pins)] {
            if list.as_ref().is_some_and(Vec::is_empty) {
                errors.push(ConfigError::new(
                    format!("{path}.{field}"),
                    "empty pin list pins nothing; remove the field to disable pinning",
                ));
            }
        }
        for (i, pin) in reqs.spki_pins.iter().flatten().enumerate() {
            match base64::engine::general_purpose::STANDARD.decode(pin.trim()) {
                Ok(bytes) if bytes.len() == 32 => {
                    out.spki_pins.insert(base64::engine::general_purpose::STANDARD.encode(bytes));
                }
                _ => errors.push(ConfigError::new(
                    format!("{path}.spkiPins[{i}]"),
                    "expected the base64 SHA-256 of a SubjectPublicKeyInfo (44 characters), as Envoy's verify_certificate_spki",
                )),
            }
        }
        for (i, pin) in reqs.cert_pins.iter().flatten().enumerate() {
            let norm: String = pin.chars().filter(|c| *c != ':').collect::<String>().to_ascii_lowercase();
            if norm.len() == 64 && norm.chars().all(|c| c.is_ascii_hexdigit()) {
                out.cert_pins.insert(norm);
            } else {
                errors.push(ConfigError::new(
                    format!("{path}.certPins[{i}]"),
                    "expected the hex SHA-256 of the certificate DER (64 hex digits, colons allowed), as Envoy's verify_certificate_hash",
                ));
            }
        }
        match ChainVerifier::compile(reqs, path) {
            Ok(v) => out.chain = v,
            Err(es) => errors.extend(es),
        }
        out
    }

    /// The chain verifier, when trust anchors are configured (CRL sources live there).
    pub(crate) fn chain(&self) -> Option<&ChainVerifier> {
        self.chain.as_ref()
    }

    /// Whether any check needs more than SANs and subject, i.e. the full certificate.
    pub fn needs_full_certificate(&self) -> bool {
        self.max_lifetime.is_some()
            || self.min_remaining.is_some()
            || self.require_client_auth
            || self.reject_self_signed
            || self.key_types.is_some()
            || self.issuers.is_some()
            || !self.spki_pins.is_empty()
            || !self.cert_pins.is_empty()
            || self.chain.is_some()
    }

    /// Runs the checks that do not depend on the clock (except chain validity, whose result
    /// carries its own expiry).
    pub fn static_verdict(&self, facts: &CertFacts, presented_chain: &[Vec<u8>], now: i64) -> StaticVerdict {
        // Never before `now`: a verdict born expired would be recomputed on every request (the
        // engine denies an expired leaf on its own, whatever the verdict says).
        let mut valid_until = facts.not_after.max(now);
        let failure = (|| {
            if self.max_lifetime.is_some_and(|max| facts.lifetime_secs() > max) {
                return Some(Reason::LifetimeTooLong);
            }
            if self.require_client_auth && facts.eku_allows_client_auth == Some(false) {
                return Some(Reason::MissingClientAuth);
            }
            if self.reject_self_signed && facts.self_issued && chain::self_signature_verifies(facts) {
                return Some(Reason::SelfSigned);
            }
            if let Some(kts) = &self.key_types {
                if !kts.iter().any(|k| k.allows(&facts.key)) {
                    return Some(Reason::KeyNotAllowed);
                }
            }
            if let Some(issuers) = &self.issuers {
                if !issuers.matches(Some(&facts.issuer)) {
                    return Some(Reason::IssuerNotAllowed);
                }
            }
            let pinned = !(self.spki_pins.is_empty() && self.cert_pins.is_empty());
            let pin_hit = self.spki_pins.contains(&facts.spki_sha256_b64) || self.cert_pins.contains(&facts.sha256_hex);
            if pinned && !pin_hit {
                return Some(Reason::PinMismatch);
            }
            if let Some(chain) = &self.chain {
                let ChainVerdict { result, valid_until: until } = chain.verify(facts, presented_chain, now);
                valid_until = valid_until.min(until);
                if let Err(reason) = result {
                    return Some(reason);
                }
            }
            None
        })();
        StaticVerdict { failure, valid_until }
    }

    /// Runs every check in decision order, with the time checks at `now`.
    /// `lifetime_too_long` precedes `expiring`, which precedes the static checks.
    pub fn evaluate(&self, facts: &CertFacts, verdict: &StaticVerdict, now: i64) -> Option<Reason> {
        if verdict.failure == Some(Reason::LifetimeTooLong) {
            return Some(Reason::LifetimeTooLong);
        }
        if self.is_expiring(facts, now) {
            return Some(Reason::Expiring);
        }
        verdict.failure
    }

    /// Warnings for the filter to log at load: configured trust anchors that are expired at `now`
    /// or expire within 30 days, each named by its path (e.g. `certificate.trustAnchors[0]`).
    pub(crate) fn anchor_warnings(&self, now: i64) -> Vec<String> {
        self.chain.as_ref().map(|c| c.anchor_warnings(now)).unwrap_or_default()
    }

    /// notAfter - now is below `minRemaining`.
    pub fn is_expiring(&self, facts: &CertFacts, now: i64) -> bool {
        self.min_remaining.is_some_and(|min| facts.not_after.saturating_sub(now) < min)
    }
}

/// Smallest RSA modulus the floor accepts.
const RSA_FLOOR_BITS: u32 = 2048;

/// The weak-key floor (docs/policy.md "Certificates and revocation"), checked on every peer
/// certificate even without a `certificate:` block: RSA below 2048 bits, DSA, and keys on curves
/// other than P-256, P-384, P-521 and Ed25519 give `key_not_allowed`. Whatever is not known to be
/// strong is refused, so an unknown algorithm is below the floor too. An RSA modulus whose size
/// is not a multiple of 8 is refused as well, as the CA/Browser Forum Baseline Requirements
/// (section 6.1.5) and webpki do: no conforming CA issues one.
pub(crate) fn below_key_floor(facts: &CertFacts) -> bool {
    match &facts.key {
        KeyKind::Rsa { bits } => *bits < RSA_FLOOR_BITS || !bits.is_multiple_of(8),
        KeyKind::EcdsaP256 | KeyKind::EcdsaP384 | KeyKind::EcdsaP521 | KeyKind::Ed25519 => false,
        KeyKind::EcdsaOther(_) | KeyKind::Dsa | KeyKind::Other(_) => true,
    }
}

fn parse_key_type(s: &str) -> Option<KeyRequirement> {
    match s {
        "ecdsaP256" => Some(KeyRequirement::EcdsaP256),
        "ecdsaP384" => Some(KeyRequirement::EcdsaP384),
        "ecdsaP521" => Some(KeyRequirement::EcdsaP521),
        "ed25519" => Some(KeyRequirement::Ed25519),
        _ => {
            let bits: u32 = s.strip_prefix("rsa")?.parse().ok()?;
            // Below 2048 the weak-key floor refuses the key anyway: `rsa1024` would promise what
            // never passes.
            (RSA_FLOOR_BITS..=16384).contains(&bits).then_some(KeyRequirement::RsaAtLeast(bits))
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code
    use super::*;

    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn facts(pem: &str) -> CertFacts {
        CertFacts::from_pem(pem.as_bytes()).unwrap()
    }

    fn with_key(key: KeyKind) -> CertFacts {
        let mut f = facts(include_str!("../tests/fixtures/healthy.pem"));
        f.key = key;
        f
    }

    #[test]
    fn weak_keys_are_below_the_floor_and_strong_ones_are_not() {
        for (name, pem) in [
            ("rsa1024", include_str!("../tests/fixtures/rsa1024.pem")),
            ("dsa", include_str!("../tests/fixtures/dsa.pem")),
            ("p192", include_str!("../tests/fixtures/p192.pem")),
        ] {
            assert!(below_key_floor(&facts(pem)), "{name}");
        }
        for (name, pem) in [
            ("p256", include_str!("../tests/fixtures/healthy.pem")),
            ("p384", include_str!("../tests/fixtures/p384.pem")),
            ("p521", include_str!("../tests/fixtures/p521.pem")),
            ("ed25519", include_str!("../tests/fixtures/ed25519.pem")),
            ("rsa2048", include_str!("../tests/fixtures/rsa2048.pem")),
        ] {
            assert!(!below_key_floor(&facts(pem)), "{name}");
        }
        // The fixtures parse to the kinds the floor reads.
        assert_eq!(facts(include_str!("../tests/fixtures/dsa.pem")).key, KeyKind::Dsa);
        assert_eq!(facts(include_str!("../tests/fixtures/p521.pem")).key, KeyKind::EcdsaP521);
        assert_eq!(facts(include_str!("../tests/fixtures/rsa1024.pem")).key, KeyKind::Rsa { bits: 1024 });
        assert_eq!(facts(include_str!("../tests/fixtures/rsa8192-ca.pem")).key, KeyKind::Rsa { bits: 8192 });
    }

    #[test]
    fn odd_sized_rsa_explicit_curves_and_unknown_algorithms_are_below_the_floor() {
        // Whatever is not known to be strong is refused (fail closed).
        assert!(below_key_floor(&with_key(KeyKind::Rsa { bits: 2047 })));
        assert!(below_key_floor(&with_key(KeyKind::Rsa { bits: 2052 })));
        assert!(!below_key_floor(&with_key(KeyKind::Rsa { bits: 3072 })));
        assert!(below_key_floor(&with_key(KeyKind::EcdsaOther(String::new()))));
        assert!(below_key_floor(&with_key(KeyKind::EcdsaOther("1.3.132.0.10".to_owned()))));
        assert!(below_key_floor(&with_key(KeyKind::Other("1.3.101.113".to_owned()))));
    }
}
