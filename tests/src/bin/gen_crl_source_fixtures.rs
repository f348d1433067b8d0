//! Writes `policy/tests/fixtures/crl-source/`: a CA, two leaves and the CRLs that the CRL source
//! tests install (numbered, stale, forged), around 2030-06-01T12:00:00Z.
//!
//! Run with `cargo run -p peerguard-e2e --bin gen_crl_source_fixtures`. Keys are fresh on every
//! run; tests never compare bytes.

use anyhow::{Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, RevocationReason, RevokedCertParams,
    SanType, SerialNumber,
};
use time::{Duration, OffsetDateTime};

fn t() -> OffsetDateTime {
    rcgen::date_time_ymd(2030, 6, 1) + Duration::hours(12)
}

fn ca_params(cn: &str) -> CertificateParams {
    let mut p = CertificateParams::default();
    let mut d = DistinguishedName::new();
    d.push(DnType::OrganizationName, "cluster.local");
    d.push(DnType::CommonName, cn);
    p.distinguished_name = d;
    p.serial_number = Some(SerialNumber::from(1u64));
    p.not_before = rcgen::date_time_ymd(2020, 1, 1);
    p.not_after = rcgen::date_time_ymd(2040, 1, 1);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    p
}

fn leaf_params(name: &str, serial: u64) -> Result<CertificateParams> {
    let mut p = CertificateParams::default();
    let mut d = DistinguishedName::new();
    d.push(DnType::CommonName, name);
    p.distinguished_name = d;
    p.serial_number = Some(SerialNumber::from(serial));
    p.not_before = t() - Duration::days(1);
    p.not_after = t() + Duration::days(30);
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let uri = format!("spiffe://cluster.local/ns/default/sa/{name}");
    p.subject_alt_names.push(SanType::URI(uri.as_str().try_into().context("URI SAN")?));
    // RFC 5280 section 4.2.1.1: the profile check refuses a leaf without authorityKeyIdentifier.
    p.use_authority_key_identifier_extension = true;
    Ok(p)
}

fn crl(
    issuer: &Issuer<'_, KeyPair>,
    number: u64,
    revoked: &[u64],
    this_update: OffsetDateTime,
    next_update: OffsetDateTime,
) -> Result<rcgen::CertificateRevocationList> {
    let params = CertificateRevocationListParams {
        this_update,
        next_update,
        crl_number: SerialNumber::from(number),
        issuing_distribution_point: None,
        revoked_certs: revoked
            .iter()
            .map(|s| RevokedCertParams {
                serial_number: SerialNumber::from(*s),
                revocation_time: t() - Duration::hours(2),
                reason_code: Some(RevocationReason::KeyCompromise),
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: KeyIdMethod::Sha256,
    };
    Ok(params.signed_by(issuer)?)
}

fn main() -> Result<()> {
    let dir = peerguard_e2e::repo_root().join("policy/tests/fixtures/crl-source");
    std::fs::create_dir_all(&dir)?;
    let write = |name: &str, bytes: &[u8]| std::fs::write(dir.join(name), bytes).with_context(|| name.to_owned());

    let ca_key = KeyPair::generate()?;
    let ca = ca_params("crl source CA").self_signed(&ca_key)?;
    write("ca.pem", ca.pem().as_bytes())?;
    let issuer = Issuer::new(ca_params("crl source CA"), ca_key);
    for (name, serial) in [("leaf-a", 0xA1u64), ("leaf-b", 0xB2)] {
        let key = KeyPair::generate()?;
        write(&format!("{name}.pem"), leaf_params(name, serial)?.signed_by(&key, &issuer)?.pem().as_bytes())?;
    }
    let (h, m) = (Duration::hours(1), Duration::minutes(1));
    write("crl-1-empty.pem", crl(&issuer, 1, &[], t() - 2 * h, t() + h)?.pem()?.as_bytes())?;
    let two = crl(&issuer, 2, &[0xA1], t() - h, t() + h)?;
    write("crl-2-revokes-a.pem", two.pem()?.as_bytes())?;
    write("crl-2-revokes-a.der", two.der())?;
    write("crl-2-revokes-b.pem", crl(&issuer, 2, &[0xB2], t() - h, t() + h)?.pem()?.as_bytes())?;
    // nextUpdate 10 minutes before T: fresh at T only with maxStale of 10m or more.
    write(
        "crl-3-revokes-a-next-update-t-minus-10m.pem",
        crl(&issuer, 3, &[0xA1], t() - 2 * h, t() - 10 * m)?.pem()?.as_bytes(),
    )?;
    // 20 octets of CRLNumber, the most RFC 5280 allows.
    let big = CertificateRevocationListParams {
        crl_number: SerialNumber::from_slice(&[0x7f; 20]),
        ..CertificateRevocationListParams {
            this_update: t() - h,
            next_update: t() + h,
            crl_number: SerialNumber::from(0u64),
            issuing_distribution_point: None,
            revoked_certs: Vec::new(),
            key_identifier_method: KeyIdMethod::Sha256,
        }
    };
    write("crl-max-number-empty.pem", big.signed_by(&issuer)?.pem()?.as_bytes())?;

    // Another CA, and an impostor: the same name as the CA, another key.
    let other = Issuer::new(ca_params("another CA"), KeyPair::generate()?);
    write("crl-another-ca.pem", crl(&other, 9, &[], t() - h, t() + h)?.pem()?.as_bytes())?;
    let impostor = Issuer::new(ca_params("crl source CA"), KeyPair::generate()?);
    write("crl-impostor-9-empty.pem", crl(&impostor, 9, &[], t() - h, t() + h)?.pem()?.as_bytes())?;
    println!("wrote {}", dir.display());
    Ok(())
}
