//! Certificate policy through the public engine API: one test per rule and failure mode, each
//! asserting the exact reason. Fixtures are in `tests/fixtures` (see its README); every test
//! passes an explicit `now`, so none depends on the clock.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use peerguard_policy::{CertCache, CertError, CertFacts, Decision, Engine, Peer, Reason, Request};
use serde_json::{json, Value};

/// 2030-06-01T12:00:00Z, the instant the fixtures are built around.
const T: i64 = 1_906_545_600;
const MIN: i64 = 60;

macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!("fixtures/", $name))
    };
}

const ROOT: &str = fixture!("root-ca.pem");
const INTERMEDIATE: &str = fixture!("intermediate-ca.pem");
const UNKNOWN_INTERMEDIATE: &str = fixture!("unknown-intermediate-ca.pem");
const ADMIN_CA: &str = fixture!("admin-ca.pem");
const HEALTHY: &str = fixture!("healthy.pem");
const REVOKED: &str = fixture!("revoked.pem");
const EXPIRED: &str = fixture!("expired.pem");
const NOT_YET_VALID: &str = fixture!("not-yet-valid.pem");
const LONG_LIVED: &str = fixture!("long-lived.pem");
const DAY: &str = fixture!("day.pem");
const SERVER_ONLY: &str = fixture!("server-only.pem");
const SELF_SIGNED: &str = fixture!("self-signed.pem");
const RSA1024: &str = fixture!("rsa1024.pem");
const RSA2048: &str = fixture!("rsa2048.pem");
const ED25519: &str = fixture!("ed25519.pem");
const P384: &str = fixture!("p384.pem");
const VIA_UNKNOWN: &str = fixture!("via-unknown.pem");
const ADMIN: &str = fixture!("admin.pem");
const MANY_SANS: &str = fixture!("many-sans.pem");
const HUGE_EXTENSION: &str = fixture!("huge-extension.pem");
const P521_CA: &str = fixture!("p521-ca.pem");
const VIA_P521: &str = fixture!("via-p521.pem");
const CRL_REVOKES_LEAF: &str = fixture!("crl-intermediate-revokes-leaf.pem");
const CRL_INTERMEDIATE_EMPTY: &str = fixture!("crl-intermediate-empty.pem");
const CRL_REVOKES_INTERMEDIATE: &str = fixture!("crl-root-revokes-intermediate.pem");
const CRL_ROOT_EMPTY: &str = fixture!("crl-root-empty.pem");
const CRL_IMPOSTOR: &str = fixture!("crl-impostor-revokes-nothing.pem");
const CRL_OTHER_ISSUER: &str = fixture!("crl-admin-ca-revokes-leaf-serial.pem");
const CRL_INTERMEDIATE_STALE: &str = fixture!("crl-intermediate-stale.pem");
const CRL_STALE_REVOKES_LEAF: &str = fixture!("crl-intermediate-stale-revokes-leaf.pem");
const CRL_ROOT_STALE: &str = fixture!("crl-root-stale.pem");
const CRL_NEXT_UPDATE_AT_T: &str = fixture!("crl-intermediate-next-update-at-t.pem");
const CRL_FROM_T_PLUS_1M_REVOKES_LEAF: &str = fixture!("crl-intermediate-from-t-plus-1m-revokes-leaf.pem");
const CRL_NEWER_REVOKES_LEAF: &str = fixture!("crl-intermediate-newer-revokes-leaf.pem");
const CRL_NO_NEXT_UPDATE: &str = fixture!("crl-no-next-update.pem");
const CRL_NO_CRL_NUMBER: &str = fixture!("crl-no-crl-number.pem");
const CRL_CRITICAL_CRL_NUMBER: &str = fixture!("crl-critical-crl-number.pem");
const CRL_HAND_MADE_CONFORMING: &str = fixture!("crl-hand-made-conforming.pem");
const NO_CRL_SIGN_CA: &str = fixture!("no-crl-sign-ca.pem");
const CRL_NO_CRL_SIGN: &str = fixture!("crl-no-crl-sign-ca.pem");
const EXPIRED_ROOT: &str = fixture!("expired-root-ca.pem");
const VIA_EXPIRED_ROOT: &str = fixture!("via-expired-root.pem");
const EXPIRING_ROOT: &str = fixture!("expiring-root-ca.pem");
const VIA_EXPIRING_ROOT: &str = fixture!("via-expiring-root.pem");
const DSA: &str = fixture!("dsa.pem");
const P192: &str = fixture!("p192.pem");
const P521: &str = fixture!("p521.pem");
const RSA8192_CA: &str = fixture!("rsa8192-ca.pem");
const VIA_RSA8192: &str = fixture!("via-rsa8192.pem");
const SERIAL_ZERO: &str = fixture!("serial-zero.pem");
const UNDERSCORE_DNS: &str = fixture!("underscore-dns.pem");
const UNKNOWN_CRITICAL_ROOT: &str = fixture!("unknown-critical-extension-root-ca.pem");
const VIA_UNKNOWN_CRITICAL_ROOT: &str = fixture!("via-unknown-critical-extension-root.pem");
const DAY_SECS: i64 = 86_400;

const SELF_SIGNED_BY_ALGORITHM: [(&str, &str); 9] = [
    ("ecdsa-p256-sha256", fixture!("selfsigned/ecdsa-p256-sha256.pem")),
    ("ecdsa-p384-sha384", fixture!("selfsigned/ecdsa-p384-sha384.pem")),
    ("ed25519", fixture!("selfsigned/ed25519.pem")),
    ("rsa-pkcs1-sha256", fixture!("selfsigned/rsa-pkcs1-sha256.pem")),
    ("rsa-pkcs1-sha384", fixture!("selfsigned/rsa-pkcs1-sha384.pem")),
    ("rsa-pkcs1-sha512", fixture!("selfsigned/rsa-pkcs1-sha512.pem")),
    ("rsa-pss-sha256", fixture!("selfsigned/rsa-pss-sha256.pem")),
    ("rsa-pss-sha384", fixture!("selfsigned/rsa-pss-sha384.pem")),
    ("rsa-pss-sha512", fixture!("selfsigned/rsa-pss-sha512.pem")),
];

fn engine(policy: Value) -> Engine {
    match Engine::from_json(&policy.to_string()) {
        Ok(e) => e,
        Err(e) => panic!("policy does not compile: {e}"),
    }
}

fn facts(pem: &str) -> CertFacts {
    CertFacts::from_pem(pem.as_bytes()).unwrap()
}

fn der(pem: &str) -> Vec<u8> {
    peerguard_policy::pem_certificates(pem.as_bytes()).unwrap().remove(0)
}

/// Decides `GET path` for `leaf` presented with `chain` at `now`.
fn decide_at(e: &Engine, leaf: &str, chain: &[&str], path: &str, now: i64) -> Decision {
    let chain: Vec<Vec<u8>> = chain.iter().map(|p| der(p)).collect();
    let prepared = e.prepare(facts(leaf), &chain, now);
    let headers: Vec<(String, String)> = Vec::new();
    let req = Request { method: "GET", path, host: "api.example", port: Some(8443), sni: None, headers: &headers };
    e.decide(&req, &Peer::Certificate(&prepared), now)
}

/// The cacheable preparation of `leaf` (presented with `chain`) at `now`.
fn prepare_at(e: &Engine, leaf: &str, chain: &[&str], now: i64) -> peerguard_policy::PreparedCert {
    let chain: Vec<Vec<u8>> = chain.iter().map(|p| der(p)).collect();
    e.prepare(facts(leaf), &chain, now)
}

fn reason(e: &Engine, leaf: &str, chain: &[&str], now: i64) -> Option<Reason> {
    decide_at(e, leaf, chain, "/api/items", now).reason()
}

fn with_certificate(certificate: Value) -> Engine {
    engine(json!({ "certificate": certificate }))
}

/// The chain policy: the root as anchor, CRLs as given.
fn chain_policy(crls: &[&str], revocation: Value) -> Engine {
    with_certificate(json!({ "trustAnchors": [ROOT], "crls": crls, "revocation": revocation }))
}

#[test]
fn healthy_certificate_passes_every_check_at_once() {
    let f = facts(HEALTHY);
    let e = with_certificate(json!({
        "maxLifetime": "1h",
        "minRemaining": "5m",
        "requireClientAuth": true,
        "rejectSelfSigned": true,
        "keyTypes": ["ecdsaP256", "rsa2048"],
        "issuers": ["CN=intermediate-ca,O=cluster.local"],
        "spkiPins": [f.spki_sha256_b64],
        "trustAnchors": [ROOT],
        "intermediates": [INTERMEDIATE],
        "crls": [CRL_INTERMEDIATE_EMPTY, CRL_ROOT_EMPTY],
        "revocation": {"depth": "chain", "unknownStatus": "deny"},
    }));
    let d = decide_at(&e, HEALTHY, &[], "/api", T);
    assert_eq!(d.reason(), None);
    assert!(d.allowed());
    assert_eq!(d.principal(), Some("cluster.local/ns/default/sa/healthy"));
}

#[test]
fn expired_certificate_is_denied_even_without_a_certificate_block() {
    assert_eq!(reason(&engine(json!({})), EXPIRED, &[], T), Some(Reason::Expired));
}

#[test]
fn certificate_before_its_not_before_is_not_yet_valid() {
    assert_eq!(reason(&engine(json!({})), NOT_YET_VALID, &[], T), Some(Reason::NotYetValid));
}

#[test]
fn certificate_living_longer_than_max_lifetime_is_too_long_lived() {
    let e = with_certificate(json!({"maxLifetime": "24h"}));
    assert_eq!(reason(&e, LONG_LIVED, &[], T), Some(Reason::LifetimeTooLong));
    assert_eq!(reason(&e, DAY, &[], T), None);
}

#[test]
fn certificate_within_min_remaining_of_not_after_is_expiring_and_counted() {
    let e = with_certificate(json!({"minRemaining": "5m"}));
    // healthy ends at 12:30.
    assert_eq!(reason(&e, HEALTHY, &[], T + 20 * MIN), None);
    let d = decide_at(&e, HEALTHY, &[], "/", T + 26 * MIN);
    assert_eq!(d.reason(), Some(Reason::Expiring));
    assert!(d.expiring);
}

#[test]
fn cert_with_serverauth_only_eku_lacks_client_auth() {
    let e = with_certificate(json!({"requireClientAuth": true}));
    assert_eq!(reason(&e, SERVER_ONLY, &[], T), Some(Reason::MissingClientAuth));
    assert_eq!(reason(&e, HEALTHY, &[], T), None);
}

#[test]
fn self_signed_leaf_is_refused_when_reject_self_signed_is_set() {
    let e = with_certificate(json!({"rejectSelfSigned": true}));
    assert_eq!(reason(&e, SELF_SIGNED, &[], T), Some(Reason::SelfSigned));
    assert_eq!(reason(&e, HEALTHY, &[], T), None);
    assert_eq!(reason(&engine(json!({})), SELF_SIGNED, &[], T), None);
}

#[test]
fn self_signature_is_verified_for_every_supported_algorithm_and_a_forged_one_is_not_self_signed() {
    let e = with_certificate(json!({"rejectSelfSigned": true}));
    for (name, pem) in SELF_SIGNED_BY_ALGORITHM {
        let f = facts(pem);
        let now = f.not_before + 60;
        let prepared = e.prepare(f.clone(), &[], now);
        let headers: Vec<(String, String)> = Vec::new();
        let req = Request { method: "GET", path: "/", host: "h", port: None, sni: None, headers: &headers };
        assert_eq!(e.decide(&req, &Peer::Certificate(&prepared), now).reason(), Some(Reason::SelfSigned), "{name}");
        // Flip the last signature byte: the certificate is still self-issued, but its signature no
        // longer verifies with its own key, so it is not self-signed (RFC 5280 section 6.1). This
        // only passes when the algorithm is really supported: an unsupported one fails closed.
        let mut forged = f.der.clone();
        if let Some(b) = forged.last_mut() {
            *b ^= 0x01;
        }
        let forged = CertFacts::from_der(&forged).unwrap();
        assert!(forged.self_issued, "{name}");
        let prepared = e.prepare(forged, &[], now);
        assert_eq!(e.decide(&req, &Peer::Certificate(&prepared), now).reason(), None, "{name} (forged)");
    }
}

#[test]
fn rsa_1024_key_is_not_allowed_when_key_types_require_rsa_2048() {
    let e = with_certificate(json!({"keyTypes": ["rsa2048", "ecdsaP256"]}));
    assert_eq!(reason(&e, RSA1024, &[], T), Some(Reason::KeyNotAllowed));
    assert_eq!(reason(&e, RSA2048, &[], T), None);
    assert_eq!(reason(&e, HEALTHY, &[], T), None);
    assert_eq!(reason(&e, ED25519, &[], T), Some(Reason::KeyNotAllowed));
    assert_eq!(reason(&e, P384, &[], T), Some(Reason::KeyNotAllowed));
    let e = with_certificate(json!({"keyTypes": ["ed25519", "ecdsaP384"]}));
    assert_eq!(reason(&e, ED25519, &[], T), None);
    assert_eq!(reason(&e, P384, &[], T), None);
}

#[test]
fn issuer_outside_the_allowed_patterns_is_refused() {
    let e = with_certificate(json!({"issuers": ["CN=intermediate-ca,O=cluster.local"]}));
    assert_eq!(reason(&e, ADMIN, &[], T), Some(Reason::IssuerNotAllowed));
    assert_eq!(reason(&e, HEALTHY, &[], T), None);
    let e = with_certificate(json!({"issuers": ["*,O=cluster.local"]}));
    assert_eq!(reason(&e, ADMIN, &[], T), None);
}

#[test]
fn unpinned_key_is_a_pin_mismatch_and_pins_use_envoys_encodings() {
    let healthy = facts(HEALTHY);
    let e = with_certificate(json!({"spkiPins": [healthy.spki_sha256_b64]}));
    assert_eq!(reason(&e, HEALTHY, &[], T), None);
    assert_eq!(reason(&e, DAY, &[], T), Some(Reason::PinMismatch));
    // verify_certificate_hash accepts upper case with colons.
    let colons: Vec<String> =
        healthy.sha256_hex.as_bytes().chunks(2).map(|c| String::from_utf8_lossy(c).to_uppercase()).collect();
    let e = with_certificate(json!({"certPins": [colons.join(":")]}));
    assert_eq!(reason(&e, HEALTHY, &[], T), None);
    assert_eq!(reason(&e, DAY, &[], T), Some(Reason::PinMismatch));
}

#[test]
fn chain_to_the_pinned_root_verifies_with_presented_or_configured_intermediates() {
    let e = with_certificate(json!({"trustAnchors": [ROOT]}));
    assert_eq!(reason(&e, HEALTHY, &[INTERMEDIATE], T), None);
    // A copy of the leaf in the presented chain is ignored.
    assert_eq!(reason(&e, HEALTHY, &[HEALTHY, INTERMEDIATE], T), None);
    for leaf in [RSA2048, ED25519, P384] {
        assert_eq!(reason(&e, leaf, &[INTERMEDIATE], T), None);
    }
    let e = with_certificate(json!({"trustAnchors": [ROOT], "intermediates": [INTERMEDIATE]}));
    assert_eq!(reason(&e, HEALTHY, &[], T), None);
}

#[test]
fn chain_missing_its_intermediate_is_untrusted() {
    let e = with_certificate(json!({"trustAnchors": [ROOT]}));
    assert_eq!(reason(&e, HEALTHY, &[], T), Some(Reason::UntrustedChain));
}

#[test]
fn chain_through_an_unknown_intermediate_is_untrusted() {
    let e = with_certificate(json!({"trustAnchors": [ROOT], "intermediates": [INTERMEDIATE]}));
    assert_eq!(reason(&e, VIA_UNKNOWN, &[UNKNOWN_INTERMEDIATE], T), Some(Reason::UntrustedChain));
}

#[test]
fn leaf_from_another_ca_does_not_chain_to_the_pinned_root() {
    let e = with_certificate(json!({"trustAnchors": [ROOT], "intermediates": [INTERMEDIATE]}));
    assert_eq!(reason(&e, ADMIN, &[], T), Some(Reason::UntrustedChain));
    let e = with_certificate(json!({"trustAnchors": [ROOT, ADMIN_CA], "intermediates": [INTERMEDIATE]}));
    assert_eq!(reason(&e, ADMIN, &[], T), None);
}

#[test]
fn chain_verification_checks_client_auth_eku_and_self_signed_leaves() {
    let e = with_certificate(json!({"trustAnchors": [ROOT], "intermediates": [INTERMEDIATE]}));
    assert_eq!(reason(&e, SERVER_ONLY, &[], T), Some(Reason::UntrustedChain));
    assert_eq!(reason(&e, SELF_SIGNED, &[], T), Some(Reason::UntrustedChain));
}

#[test]
fn unsupported_signature_algorithm_is_untrusted_never_allowed() {
    let e = with_certificate(json!({"trustAnchors": [P521_CA]}));
    let now = facts(VIA_P521).not_before + 60;
    assert_eq!(reason(&e, VIA_P521, &[], now), Some(Reason::UntrustedChain));
}

#[test]
fn revoked_serial_is_revoked() {
    let e = chain_policy(&[CRL_REVOKES_LEAF], json!({"depth": "leaf"}));
    assert_eq!(reason(&e, REVOKED, &[INTERMEDIATE], T), Some(Reason::Revoked));
    assert_eq!(reason(&e, HEALTHY, &[INTERMEDIATE], T), None);
}

#[test]
fn revoked_intermediate_revokes_its_leaves_at_depth_chain_only() {
    let e = chain_policy(&[CRL_REVOKES_INTERMEDIATE, CRL_INTERMEDIATE_EMPTY], json!({"depth": "chain"}));
    assert_eq!(reason(&e, HEALTHY, &[INTERMEDIATE], T), Some(Reason::Revoked));
    let e = chain_policy(&[CRL_REVOKES_INTERMEDIATE, CRL_INTERMEDIATE_EMPTY], json!({"depth": "leaf"}));
    assert_eq!(reason(&e, HEALTHY, &[INTERMEDIATE], T), None);
}

#[test]
fn crl_signed_by_the_wrong_key_for_its_issuer_name_makes_the_chain_untrusted() {
    // The impostor CRL names the intermediate as issuer but is signed by another key.
    let e = chain_policy(&[CRL_IMPOSTOR], json!({"depth": "leaf"}));
    assert_eq!(reason(&e, HEALTHY, &[INTERMEDIATE], T), Some(Reason::UntrustedChain));
}

#[test]
fn crl_from_another_issuer_covers_nothing_so_unknown_status_decides() {
    // admin-ca's CRL lists serial 0x1001, but admin-ca did not issue the revoked leaf.
    let allow = chain_policy(&[CRL_OTHER_ISSUER], json!({"depth": "leaf", "unknownStatus": "allow"}));
    assert_eq!(reason(&allow, REVOKED, &[INTERMEDIATE], T), None);
    // Unknown is not revoked: an operator must tell a missing CRL from a revoked peer.
    let deny = chain_policy(&[CRL_OTHER_ISSUER], json!({"depth": "leaf", "unknownStatus": "deny"}));
    assert_eq!(reason(&deny, REVOKED, &[INTERMEDIATE], T), Some(Reason::RevocationUnknown));
    // With depth chain and deny, the intermediate needs the root's CRL too.
    let chain = chain_policy(&[CRL_INTERMEDIATE_EMPTY], json!({"depth": "chain", "unknownStatus": "deny"}));
    assert_eq!(reason(&chain, HEALTHY, &[INTERMEDIATE], T), Some(Reason::RevocationUnknown));
    let chain =
        chain_policy(&[CRL_INTERMEDIATE_EMPTY, CRL_ROOT_EMPTY], json!({"depth": "chain", "unknownStatus": "deny"}));
    assert_eq!(reason(&chain, HEALTHY, &[INTERMEDIATE], T), None);
}

#[test]
fn certificate_checks_run_in_decision_order() {
    // long-lived from an unknown issuer with a server-only EKU would fail several checks; the
    // first in PRODUCT.md's order wins.
    let e = with_certificate(json!({
        "maxLifetime": "24h", "requireClientAuth": true, "issuers": ["CN=admin-ca*"], "trustAnchors": [ADMIN_CA],
    }));
    assert_eq!(reason(&e, LONG_LIVED, &[], T), Some(Reason::LifetimeTooLong));
    assert_eq!(reason(&e, SERVER_ONLY, &[], T), Some(Reason::MissingClientAuth));
    assert_eq!(reason(&e, HEALTHY, &[], T), Some(Reason::IssuerNotAllowed));
    assert_eq!(reason(&e, EXPIRED, &[], T), Some(Reason::Expired));
    assert_eq!(reason(&e, ADMIN, &[], T), None);
}

fn per_route_engine() -> Engine {
    engine(json!({
        "certificate": {"maxLifetime": "24h"},
        "certificateRules": [{
            "name": "admin-needs-short-lived",
            "to": [{"operation": {"paths": ["/admin/*"]}}],
            "require": {"maxLifetime": "1h", "issuers": ["CN=admin-ca*"]},
        }],
        "denyResponse": {"exposeReason": true},
    }))
}

#[test]
fn per_route_rule_demands_admin_ca_and_one_hour_on_admin_paths_only() {
    let e = per_route_engine();
    // The rest of the service accepts 24h certificates from the intermediate.
    assert_eq!(decide_at(&e, DAY, &[], "/api/items", T).reason(), None);
    assert_eq!(decide_at(&e, HEALTHY, &[], "/api/items", T).reason(), None);
    assert_eq!(decide_at(&e, LONG_LIVED, &[], "/api/items", T).reason(), Some(Reason::LifetimeTooLong));
    // /admin/* needs admin-ca and at most 1h; the rule's name travels with the decision.
    let d = decide_at(&e, DAY, &[], "/admin/users", T);
    assert_eq!(d.reason(), Some(Reason::LifetimeTooLong));
    assert_eq!(d.policy.as_deref(), Some("admin-needs-short-lived"));
    let d = decide_at(&e, HEALTHY, &[], "/admin/users", T);
    assert_eq!(d.reason(), Some(Reason::IssuerNotAllowed));
    assert_eq!(d.policy.as_deref(), Some("admin-needs-short-lived"));
    assert_eq!(decide_at(&e, ADMIN, &[], "/admin/users", T).reason(), None);
    // Paths are normalized before matching.
    assert_eq!(decide_at(&e, HEALTHY, &[], "/api/../admin/users", T).reason(), Some(Reason::IssuerNotAllowed));
}

#[test]
fn per_route_rule_can_require_a_chain_and_revocation() {
    let e = engine(json!({
        "certificateRules": [{
            "name": "payments-chain",
            "to": [{"operation": {"paths": ["/payments/*"]}}],
            "require": {"trustAnchors": [ROOT], "intermediates": [INTERMEDIATE], "crls": [CRL_REVOKES_LEAF], "revocation": {"depth": "leaf"}},
        }],
    }));
    assert_eq!(decide_at(&e, REVOKED, &[], "/api/x", T).reason(), None);
    assert_eq!(decide_at(&e, REVOKED, &[], "/payments/x", T).reason(), Some(Reason::Revoked));
    assert_eq!(decide_at(&e, ADMIN, &[], "/payments/x", T).reason(), Some(Reason::UntrustedChain));
    assert_eq!(decide_at(&e, HEALTHY, &[], "/payments/x", T).reason(), None);
}

#[test]
fn cache_entry_never_outlives_the_certificates_not_after() {
    let e = with_certificate(json!({"trustAnchors": [ROOT], "intermediates": [INTERMEDIATE], "minRemaining": "1m"}));
    let f = facts(HEALTHY);
    let not_after = f.not_after;
    let digest = f.sha256_hex.clone();
    let prepared = e.prepare(f, &[], T);
    assert!(prepared.valid_until <= not_after);
    let mut cache = CertCache::new(4);
    cache.insert(digest.clone(), prepared);
    assert!(cache.get(&digest, not_after).is_some());
    assert!(cache.get(&digest, not_after + 1).is_none());
    assert!(cache.is_empty());
    // Time checks still run on a cache hit: the same prepared cert becomes expiring, then expired.
    let prepared = e.prepare(facts(HEALTHY), &[], T);
    let headers: Vec<(String, String)> = Vec::new();
    let req = Request { method: "GET", path: "/", host: "h", port: None, sni: None, headers: &headers };
    assert_eq!(e.decide(&req, &Peer::Certificate(&prepared), T).reason(), None);
    assert_eq!(e.decide(&req, &Peer::Certificate(&prepared), not_after - 30).reason(), Some(Reason::Expiring));
    assert_eq!(e.decide(&req, &Peer::Certificate(&prepared), not_after + 1).reason(), Some(Reason::Expired));
}

#[test]
fn failed_chain_verdict_is_rechecked_within_minutes_not_cached_until_not_after() {
    let e = with_certificate(json!({"trustAnchors": [ROOT]}));
    let f = facts(LONG_LIVED);
    let prepared = e.prepare(f, &[], T);
    assert!(prepared.valid_until <= T + 300, "valid_until {} vs now {T}", prepared.valid_until);
}

#[test]
fn reload_is_a_new_engine_with_a_new_cache() {
    let lenient = engine(json!({}));
    let strict = with_certificate(json!({"issuers": ["CN=admin-ca*"]}));
    let f = facts(HEALTHY);
    let digest = f.sha256_hex.clone();
    let mut cache = CertCache::new(4);
    cache.insert(digest.clone(), lenient.prepare(f, &[], T));
    assert!(cache.get(&digest, T).is_some());
    // The filter drops the cache with the old engine; the new engine prepares afresh.
    let mut cache = CertCache::new(4);
    assert!(cache.get(&digest, T).is_none());
    let prepared = cache.insert(digest, strict.prepare(facts(HEALTHY), &[], T));
    let headers: Vec<(String, String)> = Vec::new();
    let req = Request { method: "GET", path: "/", host: "h", port: None, sni: None, headers: &headers };
    assert_eq!(strict.decide(&req, &Peer::Certificate(&prepared), T).reason(), Some(Reason::IssuerNotAllowed));
}

#[test]
fn garbage_pem_truncated_der_and_oversized_certificates_are_invalid_certificates() {
    assert_eq!(CertFacts::from_pem(b"not a certificate"), Err(CertError::BadPem));
    let der = der(HEALTHY);
    assert!(matches!(CertFacts::from_der(&der[..der.len() / 2]), Err(CertError::BadDer(_))));
    assert!(matches!(CertFacts::from_pem(MANY_SANS.as_bytes()), Err(CertError::TooManySans(201))));
    assert!(matches!(CertFacts::from_pem(HUGE_EXTENSION.as_bytes()), Err(CertError::TooLarge(_))));
    // The filter maps any CertError to Peer::Unparseable.
    let e = with_certificate(json!({"maxLifetime": "1h"}));
    let headers: Vec<(String, String)> = Vec::new();
    let req = Request { method: "GET", path: "/", host: "h", port: None, sni: None, headers: &headers };
    assert_eq!(e.decide(&req, &Peer::Unparseable, T).reason(), Some(Reason::InvalidCertificate));
}

fn config_error_paths(policy: Value) -> Vec<String> {
    match Engine::from_json(&policy.to_string()) {
        Ok(_) => Vec::new(),
        Err(errors) => errors.iter().map(|e| e.path.clone()).collect(),
    }
}

#[test]
fn crl_that_does_not_parse_is_a_config_error_naming_its_path() {
    let broken = "-----BEGIN X509 CRL-----\nMIIBAAAA\n-----END X509 CRL-----\n";
    let paths =
        config_error_paths(json!({"certificate": {"trustAnchors": [ROOT], "crls": [CRL_REVOKES_LEAF, broken]}}));
    assert_eq!(paths, vec!["certificate.crls[1]".to_owned()]);
    let paths = config_error_paths(json!({"certificate": {"trustAnchors": [ROOT], "crls": ["garbage"]}}));
    assert_eq!(paths, vec!["certificate.crls[0]".to_owned()]);
    let paths = config_error_paths(
        json!({"certificateRules": [{"name": "r", "require": {"trustAnchors": [ROOT], "crls": [broken]}}]}),
    );
    assert_eq!(paths, vec!["certificateRules[0].require.crls[0]".to_owned()]);
}

#[test]
fn large_crls_are_accepted_but_a_crl_over_the_config_limit_is_refused_by_size() {
    // A 10,000-entry CRL is about 500 KB of PEM: over the peer-input budget, but it must load.
    // Padding with whitespace keeps the real CRL valid while making the entry large.
    let padded = format!("{}{}", " \n".repeat(300_000), CRL_REVOKES_LEAF);
    let policy = json!({"certificate": {"trustAnchors": [ROOT], "crls": [padded]}});
    assert!(Engine::from_json(&policy.to_string()).is_ok(), "a 600 KB CRL entry must compile");
    let huge = format!("-----BEGIN X509 CRL-----\n{}\n-----END X509 CRL-----\n", "A".repeat(33 * 1024 * 1024));
    let errors = Engine::from_json(&json!({"certificate": {"trustAnchors": [ROOT], "crls": [huge]}}).to_string())
        .expect_err("a 33 MiB CRL entry is refused");
    let first = errors.iter().next().unwrap();
    assert_eq!(first.path, "certificate.crls[0]");
    assert!(first.message.contains("limit"), "{}", first.message);
}

#[test]
fn crls_without_trust_anchors_and_bad_anchors_are_config_errors() {
    assert_eq!(
        config_error_paths(json!({"certificate": {"crls": [CRL_REVOKES_LEAF]}})),
        vec!["certificate.trustAnchors".to_owned()]
    );
    assert_eq!(
        config_error_paths(json!({"certificate": {"trustAnchors": []}})),
        vec!["certificate.trustAnchors".to_owned()]
    );
    assert_eq!(
        config_error_paths(json!({"certificate": {"trustAnchors": [ROOT, "nope"], "intermediates": ["nope"]}})),
        vec!["certificate.trustAnchors[1]".to_owned(), "certificate.intermediates[0]".to_owned()]
    );
    assert_eq!(
        config_error_paths(json!({"certificate": {"trustAnchors": [ROOT], "revocation": {"depth": "leaf"}}})),
        vec!["certificate.revocation".to_owned()]
    );
    assert_eq!(
        config_error_paths(json!({"certificate": {"trustAnchors": [ROOT], "revocation": {"depth": "root"}}})).len(),
        1
    );
}

#[test]
fn every_certificate_reason_is_exercised_by_this_file() {
    // A guard: when a reason is added to step 2, a test for it belongs here.
    let covered = [
        Reason::InvalidCertificate,
        Reason::NotYetValid,
        Reason::Expired,
        Reason::LifetimeTooLong,
        Reason::Expiring,
        Reason::MissingClientAuth,
        Reason::SelfSigned,
        Reason::KeyNotAllowed,
        Reason::IssuerNotAllowed,
        Reason::PinMismatch,
        Reason::UntrustedChain,
        Reason::Revoked,
        Reason::RevocationUnknown,
    ];
    let step2: Vec<Reason> = Reason::ALL
        .into_iter()
        .skip_while(|r| *r != Reason::InvalidCertificate)
        .take_while(|r| *r != Reason::InvalidIdentity)
        .filter(|r| *r != Reason::CertificateUnavailable)
        .collect();
    assert_eq!(step2, covered);
}

// --- Stale CRLs (PRODUCT.md "Certificates and revocation") ---

#[test]
fn stale_crl_is_not_proof_of_status() {
    // The attack: a leaf checked against a CRL whose nextUpdate was 8 days ago was allowed.
    let e = chain_policy(&[CRL_INTERMEDIATE_STALE], json!({"depth": "leaf"}));
    assert_eq!(reason(&e, HEALTHY, &[INTERMEDIATE], T), Some(Reason::RevocationUnknown));
    // The default is deny even without a revocation block.
    let e = with_certificate(json!({"trustAnchors": [ROOT], "crls": [CRL_INTERMEDIATE_STALE]}));
    assert_eq!(reason(&e, HEALTHY, &[INTERMEDIATE], T), Some(Reason::RevocationUnknown));
    // unknownStatus does not decide for an issuer that has a CRL, however stale.
    let e = chain_policy(&[CRL_INTERMEDIATE_STALE], json!({"depth": "leaf", "unknownStatus": "allow"}));
    assert_eq!(reason(&e, HEALTHY, &[INTERMEDIATE], T), Some(Reason::RevocationUnknown));
    // An operator may accept stale status explicitly.
    let e = chain_policy(&[CRL_INTERMEDIATE_STALE], json!({"depth": "leaf", "staleStatus": "allow"}));
    assert_eq!(reason(&e, HEALTHY, &[INTERMEDIATE], T), None);
    // The same CRL was proof while fresh: 9 days before T it is.
    let before = T - 9 * DAY_SECS;
    let e = chain_policy(&[CRL_INTERMEDIATE_STALE], json!({"depth": "leaf"}));
    let f = facts(HEALTHY);
    // healthy is only valid around T, so check the verifier's view through a long-lived leaf.
    assert!(f.not_before > before);
    assert_eq!(reason(&e, LONG_LIVED, &[INTERMEDIATE], before), None);
    assert_eq!(reason(&e, LONG_LIVED, &[INTERMEDIATE], T), Some(Reason::RevocationUnknown));
}

#[test]
fn stale_crl_still_revokes_what_it_lists() {
    // Stale means "no proof of good status", never "forget the revocations".
    for stale in ["deny", "allow"] {
        let e = chain_policy(&[CRL_STALE_REVOKES_LEAF], json!({"depth": "leaf", "staleStatus": stale}));
        assert_eq!(reason(&e, REVOKED, &[INTERMEDIATE], T), Some(Reason::Revoked), "staleStatus {stale}");
    }
}

#[test]
fn crl_is_fresh_through_its_next_update_second_and_stale_one_second_later() {
    let e = chain_policy(&[CRL_NEXT_UPDATE_AT_T], json!({"depth": "leaf"}));
    assert_eq!(reason(&e, HEALTHY, &[INTERMEDIATE], T), None);
    assert_eq!(reason(&e, HEALTHY, &[INTERMEDIATE], T + 1), Some(Reason::RevocationUnknown));
    // A verdict computed while the CRL is fresh never outlives its nextUpdate.
    let prepared = prepare_at(&e, HEALTHY, &[INTERMEDIATE], T - 100);
    assert_eq!(prepared.valid_until, T);
    let digest = prepared.facts.sha256_hex.clone();
    let mut cache = CertCache::new(4);
    cache.insert(digest.clone(), prepared);
    assert!(cache.get(&digest, T).is_some());
    assert!(cache.get(&digest, T + 1).is_none());
}

#[test]
fn verdict_cached_before_a_crls_this_update_expires_when_that_crl_takes_effect() {
    // At T the fresh empty CRL proves the leaf good; a newer CRL that revokes it starts at T+60.
    let e = chain_policy(&[CRL_INTERMEDIATE_EMPTY, CRL_FROM_T_PLUS_1M_REVOKES_LEAF], json!({"depth": "leaf"}));
    let prepared = prepare_at(&e, REVOKED, &[INTERMEDIATE], T);
    assert_eq!(e.decide(&get("/"), &Peer::Certificate(&prepared), T).reason(), None);
    assert_eq!(prepared.valid_until, T + 59, "the allow must not be served from cache once the CRL is proof");
    assert_eq!(reason(&e, REVOKED, &[INTERMEDIATE], T + 60), Some(Reason::Revoked));
}

#[test]
fn crl_is_no_proof_before_its_this_update() {
    // The only CRL of the issuer is not yet in force: stale status, until it is.
    let e = chain_policy(&[CRL_FROM_T_PLUS_1M_REVOKES_LEAF], json!({"depth": "leaf"}));
    let prepared = prepare_at(&e, HEALTHY, &[INTERMEDIATE], T);
    assert_eq!(e.decide(&get("/"), &Peer::Certificate(&prepared), T).reason(), Some(Reason::RevocationUnknown));
    assert_eq!(prepared.valid_until, T + 59);
    assert_eq!(reason(&e, HEALTHY, &[INTERMEDIATE], T + 60), None);
}

#[test]
fn newer_crl_wins_over_an_older_fresh_one_listed_first() {
    // webpki takes the first CRL of an issuer; an old CRL listed first must not hide a revocation.
    let e = chain_policy(&[CRL_INTERMEDIATE_EMPTY, CRL_NEWER_REVOKES_LEAF], json!({"depth": "leaf"}));
    assert_eq!(reason(&e, REVOKED, &[INTERMEDIATE], T), Some(Reason::Revoked));
    assert_eq!(reason(&e, HEALTHY, &[INTERMEDIATE], T), None);
}

#[test]
fn stale_crl_with_a_fresh_successor_is_superseded() {
    // During CRL rotation both are configured: the fresh one decides, the stale one is not a gap.
    let e = chain_policy(&[CRL_INTERMEDIATE_STALE, CRL_INTERMEDIATE_EMPTY], json!({"depth": "leaf"}));
    assert_eq!(reason(&e, HEALTHY, &[INTERMEDIATE], T), None);
}

#[test]
fn stale_root_crl_makes_the_intermediate_status_stale_at_depth_chain_only() {
    let crls = [CRL_INTERMEDIATE_EMPTY, CRL_ROOT_STALE];
    let e = chain_policy(&crls, json!({"depth": "chain"}));
    assert_eq!(reason(&e, HEALTHY, &[INTERMEDIATE], T), Some(Reason::RevocationUnknown));
    let e = chain_policy(&crls, json!({"depth": "leaf"}));
    assert_eq!(reason(&e, HEALTHY, &[INTERMEDIATE], T), None);
    // Without any root CRL the intermediate's status is unknown, and unknownStatus decides.
    let e = chain_policy(&[CRL_INTERMEDIATE_EMPTY], json!({"depth": "chain"}));
    assert_eq!(reason(&e, HEALTHY, &[INTERMEDIATE], T), None);
    let e = chain_policy(
        &[CRL_INTERMEDIATE_STALE],
        json!({"depth": "chain", "staleStatus": "allow", "unknownStatus": "deny"}),
    );
    assert_eq!(reason(&e, HEALTHY, &[INTERMEDIATE], T), Some(Reason::RevocationUnknown));
    let e = chain_policy(
        &[CRL_INTERMEDIATE_STALE],
        json!({"depth": "leaf", "staleStatus": "allow", "unknownStatus": "deny"}),
    );
    assert_eq!(reason(&e, HEALTHY, &[INTERMEDIATE], T), None);
}

// --- Non-conforming CRLs ---

#[test]
fn crl_without_next_update_is_a_config_error_naming_it() {
    let errors = Engine::from_json(
        &json!({"certificate": {"trustAnchors": [ROOT], "crls": [CRL_INTERMEDIATE_EMPTY, CRL_NO_NEXT_UPDATE]}})
            .to_string(),
    )
    .expect_err("a CRL without nextUpdate would be proof forever");
    let e = errors.iter().next().unwrap();
    assert_eq!(e.path, "certificate.crls[1]");
    assert!(e.message.contains("nextUpdate"), "{}", e.message);
}

#[test]
fn crl_without_crl_number_or_with_a_critical_one_is_a_config_error() {
    let policy = json!({"certificate": {"trustAnchors": [ROOT], "crls": [CRL_NO_CRL_NUMBER, CRL_CRITICAL_CRL_NUMBER]}});
    let errors = Engine::from_json(&policy.to_string()).expect_err("non-conforming CRLs");
    let found: Vec<(String, String)> = errors.iter().map(|e| (e.path.clone(), e.message.clone())).collect();
    assert_eq!(found.len(), 2, "{found:?}");
    assert_eq!(found[0].0, "certificate.crls[0]");
    assert!(found[0].1.contains("no CRLNumber"), "{}", found[0].1);
    assert_eq!(found[1].0, "certificate.crls[1]");
    assert!(found[1].1.contains("critical"), "{}", found[1].1);
    // The same hand-made encoding with a non-critical CRLNumber and a nextUpdate is accepted and
    // works, so the errors above are about those fields and nothing else.
    let e = chain_policy(&[CRL_HAND_MADE_CONFORMING], json!({"depth": "leaf"}));
    assert_eq!(reason(&e, HEALTHY, &[INTERMEDIATE], T), None);
}

#[test]
fn crl_signed_by_an_issuer_without_crl_sign_is_a_config_error() {
    let paths =
        config_error_paths(json!({"certificate": {"trustAnchors": [NO_CRL_SIGN_CA], "crls": [CRL_NO_CRL_SIGN]}}));
    assert_eq!(paths, vec!["certificate.crls[0]".to_owned()]);
    // A CA that may sign CRLs is fine with the same kind of CRL.
    assert!(config_error_paths(json!({"certificate": {"trustAnchors": [ROOT], "crls": [CRL_ROOT_EMPTY]}})).is_empty());
}

// --- Trust anchors past their notAfter ---

#[test]
fn chain_to_an_expired_trust_anchor_is_untrusted() {
    let e = with_certificate(json!({"trustAnchors": [EXPIRED_ROOT]}));
    assert_eq!(reason(&e, VIA_EXPIRED_ROOT, &[], T), Some(Reason::UntrustedChain));
    // The failing verdict is cached for a while, not born expired.
    let prepared = prepare_at(&e, VIA_EXPIRED_ROOT, &[], T);
    assert!(prepared.valid_until >= T && prepared.valid_until <= T + 300, "valid_until {}", prepared.valid_until);
    let digest = prepared.facts.sha256_hex.clone();
    let mut cache = CertCache::new(4);
    cache.insert(digest.clone(), prepared);
    assert!(cache.get(&digest, T).is_some(), "a verdict must serve the request it was computed for");
}

#[test]
fn chain_to_an_anchor_verifies_until_its_not_after_and_the_verdict_stops_there() {
    let e = with_certificate(json!({"trustAnchors": [EXPIRING_ROOT]}));
    let anchor_not_after = facts(EXPIRING_ROOT).not_after;
    assert_eq!(anchor_not_after, T + 10 * DAY_SECS);
    let prepared = prepare_at(&e, VIA_EXPIRING_ROOT, &[], T);
    assert_eq!(e.decide(&get("/"), &Peer::Certificate(&prepared), T).reason(), None);
    assert_eq!(prepared.valid_until, anchor_not_after);
    assert_eq!(reason(&e, VIA_EXPIRING_ROOT, &[], anchor_not_after), None);
    assert_eq!(reason(&e, VIA_EXPIRING_ROOT, &[], anchor_not_after + 1), Some(Reason::UntrustedChain));
}

#[test]
fn expired_and_soon_expiring_anchors_are_named_in_the_load_warnings() {
    let e = with_certificate(json!({"trustAnchors": [ROOT, EXPIRED_ROOT, EXPIRING_ROOT]}));
    let warnings = e.load_warnings(T);
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(warnings[0].starts_with("certificate.trustAnchors[1]") && warnings[0].contains("expired"), "{warnings:?}");
    assert!(warnings[1].starts_with("certificate.trustAnchors[2]") && warnings[1].contains("within 30 days"));
    assert!(with_certificate(json!({"trustAnchors": [ROOT]})).load_warnings(T).is_empty());
}

// --- Certificates a conforming CA never issues (RFC 5280 section 4) ---

#[test]
fn leaf_with_serial_number_zero_is_untrusted() {
    let e = with_certificate(json!({"trustAnchors": [ROOT]}));
    assert_eq!(reason(&e, SERIAL_ZERO, &[INTERMEDIATE], T), Some(Reason::UntrustedChain));
    assert_eq!(reason(&e, HEALTHY, &[INTERMEDIATE], T), None);
}

#[test]
fn leaf_with_a_dns_name_outside_the_preferred_name_syntax_is_untrusted() {
    let e = with_certificate(json!({"trustAnchors": [ROOT]}));
    assert_eq!(reason(&e, UNDERSCORE_DNS, &[INTERMEDIATE], T), Some(Reason::UntrustedChain));
}

#[test]
fn trust_anchor_with_an_unknown_critical_extension_anchors_nothing_and_is_named_at_load() {
    // webpki never reads an anchor's extensions; a critical one nobody understands must not be
    // ignored. The other anchors keep working, and the policy still loads.
    let e = with_certificate(json!({"trustAnchors": [UNKNOWN_CRITICAL_ROOT, ROOT]}));
    assert_eq!(reason(&e, VIA_UNKNOWN_CRITICAL_ROOT, &[], T), Some(Reason::UntrustedChain));
    assert_eq!(reason(&e, HEALTHY, &[INTERMEDIATE], T), None);
    let warnings = e.load_warnings(T);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].starts_with("certificate.trustAnchors[0]") && warnings[0].contains("unusable"), "{warnings:?}");
}

// --- Weak keys, key types and RSA sizes ---

#[test]
fn weak_keys_are_refused_even_without_a_certificate_block() {
    let e = engine(json!({}));
    for (name, pem) in [("rsa1024", RSA1024), ("dsa", DSA), ("p192", P192)] {
        let now = facts(pem).not_before + 60;
        assert_eq!(reason(&e, pem, &[], now), Some(Reason::KeyNotAllowed), "{name}");
    }
    for (name, pem) in [("p256", HEALTHY), ("p384", P384), ("p521", P521), ("ed25519", ED25519), ("rsa2048", RSA2048)] {
        let now = facts(pem).not_before + 60;
        assert_eq!(reason(&e, pem, &[], now), None, "{name}");
    }
    // The floor holds whatever keyTypes allows.
    let e = with_certificate(json!({"keyTypes": ["rsa2048", "ecdsaP256"]}));
    assert_eq!(reason(&e, RSA1024, &[], T), Some(Reason::KeyNotAllowed));
}

#[test]
fn key_types_accept_ecdsa_p521_and_refuse_rsa_entries_below_the_floor() {
    let e = with_certificate(json!({"keyTypes": ["ecdsaP521"]}));
    let now = facts(P521).not_before + 60;
    assert_eq!(reason(&e, P521, &[], now), None);
    assert_eq!(reason(&e, HEALTHY, &[], T), Some(Reason::KeyNotAllowed));
    // `rsa1024` would promise keys that the weak-key floor refuses anyway.
    assert_eq!(
        config_error_paths(json!({"certificate": {"keyTypes": ["ecdsaP256", "rsa1024"]}})),
        vec!["certificate.keyTypes[1]".to_owned()]
    );
}

#[test]
fn rsa_8192_ca_verifies() {
    // RSA keys up to 8192 bits verify; the rsa crate's own default limit is 4096.
    let e = with_certificate(json!({"trustAnchors": [RSA8192_CA]}));
    let now = facts(VIA_RSA8192).not_before + 60;
    assert_eq!(reason(&e, VIA_RSA8192, &[], now), None);
    // The same leaf does not verify against another anchor, so the allow above is the signature's.
    let e = with_certificate(json!({"trustAnchors": [ROOT]}));
    assert_eq!(reason(&e, VIA_RSA8192, &[], now), Some(Reason::UntrustedChain));
}

// --- URL-encoded PEM ---

/// Percent-encodes everything but RFC 3986's unreserved characters, as Envoy encodes
/// `connection.peer_certificate` and XFCC `Cert=` (so `-----` stays as it is).
fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => char::from(b).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn url_encoded_peer_certificate_parses_like_plain_pem() {
    // The attack: URL-encoded PEM did not parse, so the filter saw an invalid certificate.
    let encoded = url_encode(HEALTHY);
    assert!(encoded.contains("-----BEGIN%20CERTIFICATE-----%0A"), "{encoded}");
    assert!(encoded.contains("%2B") || encoded.contains("%2F") || encoded.contains("%3D"));
    let f = CertFacts::from_pem(encoded.as_bytes()).unwrap();
    assert_eq!(f, facts(HEALTHY));
    // Lower-case hex escapes are URL encoding too.
    let lower = encoded.replace("%0A", "%0a").replace("%2B", "%2b");
    assert_eq!(CertFacts::from_pem(lower.as_bytes()).unwrap(), f);
    let chain = peerguard_policy::pem_certificates(url_encode(INTERMEDIATE).as_bytes()).unwrap();
    assert_eq!(chain, vec![der(INTERMEDIATE)]);
}

// --- Empty lists and bad patterns ---

#[test]
fn empty_requirement_lists_are_config_errors_that_name_their_path() {
    let pin = facts(HEALTHY).spki_sha256_b64;
    let digest = facts(HEALTHY).sha256_hex;
    let cases: [(Value, &str); 7] = [
        // An empty pin list must not switch pinning off, even next to a non-empty one.
        (json!({"spkiPins": [], "certPins": [digest]}), "certificate.spkiPins"),
        (json!({"certPins": [], "spkiPins": [pin]}), "certificate.certPins"),
        (json!({"keyTypes": []}), "certificate.keyTypes"),
        (json!({"issuers": []}), "certificate.issuers"),
        (json!({"trustAnchors": []}), "certificate.trustAnchors"),
        (json!({"trustAnchors": [ROOT], "intermediates": []}), "certificate.intermediates"),
        (json!({"trustAnchors": [ROOT], "crls": []}), "certificate.crls"),
    ];
    for (certificate, path) in cases {
        assert_eq!(config_error_paths(json!({"certificate": certificate})), vec![path.to_owned()], "{path}");
        let rule = json!({"certificateRules": [{"name": "r", "require": certificate}]});
        let in_rule = path.replace("certificate.", "certificateRules[0].require.");
        assert_eq!(config_error_paths(rule), vec![in_rule], "{path} in a rule");
    }
    for bad in ["", "CN=a*b", "**"] {
        assert_eq!(
            config_error_paths(json!({"certificate": {"issuers": ["O=cluster.local", bad]}})),
            vec!["certificate.issuers[1]".to_owned()],
            "{bad:?}"
        );
    }
}

fn get(path: &'static str) -> Request<'static> {
    static NO_HEADERS: Vec<(String, String)> = Vec::new();
    Request { method: "GET", path, host: "api.example", port: Some(8443), sni: None, headers: &NO_HEADERS }
}
