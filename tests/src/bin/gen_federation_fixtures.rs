//! Writes the trust-domain federation fixtures of `policy/tests/fixtures/federation/`.
//!
//! Run with `cargo run -p peerguard-e2e --bin gen_federation_fixtures`. A partner trust domain
//! `partner.example` with its own root CA, leaves in it and under it, the attack certificate (the
//! partner's CA minting `spiffe://cluster.local/...`), and the partner's SPIFFE bundle (a JWK Set
//! with one `x509-svid` key and one `jwt-svid` key, which peerguard must ignore). Validity is
//! fixed around 2030-06-01T12:00:00Z as for the other fixtures; keys are fresh on every run.

use anyhow::{Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType, SerialNumber,
};
use time::Duration;

fn t() -> time::OffsetDateTime {
    rcgen::date_time_ymd(2030, 6, 1) + Duration::hours(12)
}

/// RFC 4648 base64, with the standard or the URL-safe alphabet (padding only for standard).
fn base64(bytes: &[u8], url: bool) -> String {
    let alphabet: &[u8; 64] = if url {
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    } else {
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    };
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(char::from(alphabet[(n >> (18 - 6 * i) & 63) as usize]));
        }
        if !url {
            out.push_str(&"=".repeat(3 - chunk.len()));
        }
    }
    out
}

fn leaf(uri: Option<&str>, dns: Option<&str>, serial: u64) -> Result<CertificateParams> {
    let mut p = CertificateParams::default();
    let mut d = DistinguishedName::new();
    d.push(DnType::CommonName, "partner workload");
    p.distinguished_name = d;
    p.serial_number = Some(SerialNumber::from(serial));
    p.not_before = t() - Duration::minutes(30);
    p.not_after = t() + Duration::minutes(30);
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    if let Some(uri) = uri {
        p.subject_alt_names.push(SanType::URI(uri.try_into().context("URI SAN")?));
    }
    if let Some(dns) = dns {
        p.subject_alt_names.push(SanType::DnsName(dns.try_into().context("DNS SAN")?));
    }
    p.use_authority_key_identifier_extension = true;
    Ok(p)
}

fn main() -> Result<()> {
    let dir = peerguard_e2e::repo_root().join("policy/tests/fixtures/federation");
    std::fs::create_dir_all(&dir)?;
    let write = |name: &str, text: &str| std::fs::write(dir.join(name), text).with_context(|| name.to_owned());

    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::default();
    let mut d = DistinguishedName::new();
    d.push(DnType::OrganizationName, "partner.example");
    d.push(DnType::CommonName, "partner root CA");
    ca.distinguished_name = d;
    ca.serial_number = Some(SerialNumber::from(7u64));
    ca.not_before = rcgen::date_time_ymd(2020, 1, 1);
    ca.not_after = rcgen::date_time_ymd(2040, 1, 1);
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    // A SPIFFE CA names its trust domain (SPIFFE Trust Domain and Bundle, appendix A).
    ca.subject_alt_names.push(SanType::URI("spiffe://partner.example".try_into().context("CA URI SAN")?));
    let ca_cert = ca.self_signed(&ca_key)?;
    write("partner-ca.pem", &ca_cert.pem())?;

    // The partner's SPIFFE bundle: the CA as an x509-svid key, and a jwt-svid key to be ignored.
    let point = ca_key.public_key_raw();
    let (x, y) = (&point[1..33], &point[33..65]);
    let jwt_key = KeyPair::generate()?;
    let jwt_point = jwt_key.public_key_raw();
    let bundle = serde_json::json!({
        "spiffe_sequence": 1,
        "spiffe_refresh_hint": 300,
        "keys": [
            {"use": "x509-svid", "kty": "EC", "crv": "P-256", "x": base64(x, true), "y": base64(y, true),
             "x5c": [base64(ca_cert.der(), false)]},
            {"use": "jwt-svid", "kty": "EC", "crv": "P-256", "kid": "jwt-1",
             "x": base64(&jwt_point[1..33], true), "y": base64(&jwt_point[33..65], true)}
        ]
    });
    write("partner-bundle.json", &format!("{}\n", serde_json::to_string_pretty(&bundle)?))?;

    let issuer = Issuer::new(ca, ca_key);
    for (name, uri, dns, serial) in [
        ("partner.pem", Some("spiffe://partner.example/ns/billing/sa/api"), None, 0x701),
        // The attack: the partner's CA signs an identity of the local trust domain.
        ("partner-mints-cluster-local.pem", Some("spiffe://cluster.local/ns/default/sa/healthy"), None, 0x702),
        ("partner-no-spiffe.pem", None, Some("api.partner.example"), 0x703),
        ("eu-partner.pem", Some("spiffe://eu.partner.example/ns/billing/sa/api"), None, 0x704),
        ("evil-partner.pem", Some("spiffe://evil-partner.example/ns/billing/sa/api"), None, 0x705),
    ] {
        let key = KeyPair::generate()?;
        write(name, &leaf(uri, dns, serial)?.signed_by(&key, &issuer)?.pem())?;
    }
    println!("wrote {}", dir.display());
    Ok(())
}
