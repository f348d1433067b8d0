//! Fixtures the policy integration tests share: a fixed clock and a hand-built leaf certificate.

use peerguard_policy::{CertFacts, KeyKind};

/// A fixed clock: these tests never read the host's.
pub const NOW: i64 = 1_800_000_000;

/// A hand-built leaf `CN=cn,O=example` with the URI SAN `uri`, issued by
/// `CN=intermediate-ca,O=cluster.local`, an ECDSA P-256 key and clientAuth, valid from an hour
/// before [`NOW`] to an hour after. Tests change the fields they are about.
pub fn leaf(cn: &str, uri: &str) -> CertFacts {
    CertFacts {
        der: vec![0x30, 0x03, 0x02, 0x01, 0x01],
        sha256_hex: "ab".repeat(32),
        spki_sha256_b64: "c3BraS1kaWdlc3Q=".to_owned(),
        serial_hex: "1a2b3c".to_owned(),
        subject: format!("CN={cn},O=example"),
        subject_cn: vec![cn.to_owned()],
        subject_o: vec!["example".to_owned()],
        subject_ou: vec![],
        issuer: "CN=intermediate-ca,O=cluster.local".to_owned(),
        issuer_cn: vec!["intermediate-ca".to_owned()],
        issuer_o: vec!["cluster.local".to_owned()],
        uri_sans: vec![uri.to_owned()],
        dns_sans: vec![],
        not_before: NOW - 3600,
        not_after: NOW + 3600,
        key: KeyKind::EcdsaP256,
        eku_allows_client_auth: Some(true),
        self_issued: false,
        spki_der: Vec::new(),
    }
}
