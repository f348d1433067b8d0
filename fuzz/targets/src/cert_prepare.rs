//! Target `cert_prepare`: a peer certificate from arbitrary DER or PEM into `Engine::prepare`.
//!
//! The input is tried as DER (`CertFacts::from_der`, with the fixtures' intermediate as the
//! presented chain) and as PEM (`CertFacts::from_pem`, the input's other certificates as the
//! chain). Each certificate that parses is prepared against a fixed policy that has every
//! certificate requirement (trust anchor, intermediates, CRLs, pins, issuers, key types, per-route
//! rules) and then decided. Properties:
//! - parsing, preparing and deciding never panic;
//! - the facts' `sha256_hex` is the SHA-256 of the DER, and the same DER wrapped in PEM parses to
//!   the same facts;
//! - peer resolution from `connection.peer_certificate` (`resolve_peer`) parses the input as
//!   `CertFacts::from_pem` does, and its presented chain never repeats the leaf;
//! - a prepared certificate is never cached past its own notAfter (one already expired: past the
//!   instant it was prepared at, as the engine keeps it usable for that one decision).

use std::sync::OnceLock;

use base64::Engine as _;
use peerguard_policy::{pem_certificates, resolve_peer, CertFacts, Engine, Peer, PeerEvidence, ResolvedPeer};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::fixtures::{self, NOW};
use crate::request::{self, Parts};

/// The target body.
pub fn run(data: &[u8]) {
    let engine = engine();
    if let Ok(facts) = CertFacts::from_der(data) {
        assert_eq!(facts.sha256_hex, hex::encode(Sha256::digest(data)), "sha256_hex is not the DER's digest");
        let pem = to_pem(data);
        assert_eq!(
            CertFacts::from_pem(pem.as_bytes()).as_ref(),
            Ok(&facts),
            "the DER wrapped in PEM parses differently"
        );
        let chain: Vec<Vec<u8>> = pem_certificates(fixtures::INTERMEDIATE.as_bytes()).unwrap_or_default();
        exercise(engine, facts, &chain);
    }
    let from_pem = CertFacts::from_pem(data);
    let evidence = PeerEvidence { certificate_pem: Some(data), ..PeerEvidence::default() };
    match resolve_peer(evidence) {
        ResolvedPeer::Certificate { facts, chain } => {
            assert_eq!(from_pem.as_ref(), Ok(&*facts), "resolve_peer and from_pem parse differently");
            assert!(!chain.contains(&facts.der), "the presented chain repeats the leaf");
            exercise(engine, *facts, &chain);
        }
        ResolvedPeer::Unparseable(e) => {
            assert!(from_pem.is_err() || data.is_empty(), "resolve_peer refused ({e}) what from_pem parses")
        }
        ResolvedPeer::AttributesOnly => assert!(data.is_empty(), "resolve_peer ignored a non-empty peer certificate"),
    }
}

fn exercise(engine: &Engine, facts: CertFacts, chain: &[Vec<u8>]) {
    let until = facts.not_after.max(NOW);
    let prepared = engine.prepare(facts, chain, NOW);
    assert!(prepared.valid_until <= until, "cached until {} past max(notAfter, now) {until}", prepared.valid_until);
    for path in ["/api/items", "/pinned/x", "/admin/x"] {
        let parts = Parts { method: "GET", path, host: "api.example", port: Some(8443), sni: None, headers: &[] };
        let _ = request::decide(engine, &parts, &Peer::Certificate(&prepared), NOW);
    }
}

fn to_pem(der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem
}

/// The fixed policy: every certificate requirement, globally and per route.
fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Result<Engine, String>> = OnceLock::new();
    fixtures::built(ENGINE.get_or_init(build), "the cert_prepare policy")
}

fn build() -> Result<Engine, String> {
    let healthy = CertFacts::from_pem(fixtures::HEALTHY.as_bytes()).map_err(|e| format!("healthy.pem: {e}"))?;
    let policy = json!({
        "mtls": "permissive",
        "identity": ["spiffe", "dns", "subject"],
        "certificate": {
            "maxLifetime": "48h",
            "minRemaining": "5m",
            "requireClientAuth": true,
            "rejectSelfSigned": true,
            "keyTypes": ["ecdsaP256", "ecdsaP384", "ed25519", "rsa2048"],
            "issuers": ["CN=intermediate-ca*", "O=cluster.local", "CN=admin-ca*"],
            "trustAnchors": [fixtures::ROOT, fixtures::ADMIN_CA],
            "intermediates": [fixtures::INTERMEDIATE],
            "crls": [fixtures::CRL_REVOKES_LEAF, fixtures::CRL_ROOT_EMPTY, fixtures::CRL_OTHER_ISSUER],
            "revocation": {"depth": "chain", "unknownStatus": "deny", "staleStatus": "deny"},
        },
        "certificateRules": [
            {
                "name": "pinned",
                "to": [{"operation": {"paths": ["/pinned/*"]}}],
                "require": {"certPins": [healthy.sha256_hex], "spkiPins": [healthy.spki_sha256_b64]},
            },
            {
                "name": "admin",
                "to": [{"operation": {"paths": ["/admin/*"]}}],
                "require": {
                    "maxLifetime": "1h",
                    "trustAnchors": [fixtures::ADMIN_CA],
                    "crls": [fixtures::CRL_OTHER_ISSUER],
                    "revocation": {"depth": "leaf", "unknownStatus": "allow"},
                },
            },
        ],
        "policies": [
            {"name": "admins", "action": "ALLOW", "rules": [{"when": [{"key": "cert.issuer.cn", "values": ["admin-ca*"]}]}]},
            {"name": "workloads", "action": "ALLOW", "rules": [{"from": [{"source": {"principals": ["cluster.local/*"]}}]}]},
        ],
    });
    Engine::from_json(&policy.to_string()).map_err(|e| e.to_string())
}
