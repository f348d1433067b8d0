//! Writes the certificate fixtures of `policy/tests/fixtures/` (PEM certificates and CRLs).
//!
//! Run with `cargo run -p peerguard-e2e --bin gen_cert_fixtures`. The engine tests read the
//! committed files with `include_str!`, so they need neither rcgen nor ring at run time (neither
//! builds for wasm32-unknown-unknown).
//!
//! Every validity window is fixed around [`T`] (2030-06-01T12:00:00Z), so tests pass an explicit
//! `now` and never depend on the clock. Keys are fresh on every run; tests never compare bytes.
//!
//! RSA keys come from the `openssl` CLI (rcgen cannot generate RSA keys, and ring refuses
//! RSA-1024): the RSA-1024 leaf only needs its public key (the intermediate signs it); the
//! self-signed RSA PKCS#1 and RSA-PSS certificates are made by `openssl req -x509`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, PublicKeyData, RevocationReason,
    RevokedCertParams, SanType, SerialNumber, SignatureAlgorithm,
};
use time::{Duration, OffsetDateTime};

/// The reference instant of the fixtures: 2030-06-01T12:00:00Z.
fn t() -> OffsetDateTime {
    rcgen::date_time_ymd(2030, 6, 1) + Duration::hours(12)
}

fn dn(cn: &str) -> DistinguishedName {
    // Most general RDN first in the DER, as real CAs do; RFC 4514 renders it as CN=...,O=cluster.local.
    let mut d = DistinguishedName::new();
    d.push(DnType::OrganizationName, "cluster.local");
    d.push(DnType::CommonName, cn);
    d
}

fn ca_params(cn: &str, serial: u64, path_len: Option<u8>) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name = dn(cn);
    p.serial_number = Some(SerialNumber::from(serial));
    p.not_before = rcgen::date_time_ymd(2020, 1, 1);
    p.not_after = rcgen::date_time_ymd(2040, 1, 1);
    p.is_ca = IsCa::Ca(match path_len {
        Some(n) => BasicConstraints::Constrained(n),
        None => BasicConstraints::Unconstrained,
    });
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    p.use_authority_key_identifier_extension = true;
    p
}

/// A leaf valid from `from` to `to` (offsets from [`t`]), clientAuth, SPIFFE ID `ns/default/sa/<name>`.
fn leaf_params(name: &str, serial: u64, from: Duration, to: Duration) -> Result<CertificateParams> {
    let mut p = CertificateParams::default();
    let mut d = DistinguishedName::new();
    d.push(DnType::CommonName, name);
    p.distinguished_name = d;
    p.serial_number = Some(SerialNumber::from(serial));
    p.not_before = t() + from;
    p.not_after = t() + to;
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let uri = format!("spiffe://cluster.local/ns/default/sa/{name}");
    p.subject_alt_names.push(SanType::URI(uri.as_str().try_into().context("URI SAN")?));
    p.use_authority_key_identifier_extension = true;
    Ok(p)
}

/// The standard 1h window around [`t`]: 11:30 to 12:30.
fn hour() -> (Duration, Duration) {
    (Duration::minutes(-30), Duration::minutes(30))
}

/// An RSA public key made by `openssl`, as rcgen wants it for a subject key.
struct RsaPublic {
    pkcs1_der: Vec<u8>,
}

impl PublicKeyData for RsaPublic {
    fn der_bytes(&self) -> &[u8] {
        &self.pkcs1_der
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        &rcgen::PKCS_RSA_SHA256
    }
}

fn openssl(args: &[&str]) -> Result<()> {
    let out = Command::new("openssl").args(args).output().context("run openssl (needed for RSA fixtures)")?;
    if !out.status.success() {
        bail!("openssl {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

fn rsa_key(dir: &Path, bits: u32) -> Result<PathBuf> {
    let path = dir.join(format!("rsa{bits}.key"));
    openssl(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        &format!("rsa_keygen_bits:{bits}"),
        "-out",
        path_str(&path)?,
    ])?;
    Ok(path)
}

fn path_str(p: &Path) -> Result<&str> {
    p.to_str().context("non-UTF-8 path")
}

struct Out {
    dir: PathBuf,
}

impl Out {
    fn write(&self, name: &str, contents: &str) -> Result<()> {
        let path = self.dir.join(name);
        std::fs::write(&path, contents).with_context(|| format!("write {}", path.display()))
    }
}

fn main() -> Result<()> {
    let dir = peerguard_e2e::repo_root().join("policy/tests/fixtures");
    std::fs::create_dir_all(&dir)?;
    let out = Out { dir: dir.clone() };
    let scratch = tempfile::tempdir()?;

    // The PKI: root -> intermediate -> leaves; a second root "admin-ca"; an unknown root and
    // intermediate that no policy trusts; and an impostor key that claims the intermediate's name.
    let root_key = KeyPair::generate()?;
    let root_params = ca_params("peerguard root CA", 1, None);
    let root = root_params.self_signed(&root_key)?;
    out.write("root-ca.pem", &root.pem())?;
    let root_issuer = Issuer::new(root_params, root_key);

    let inter_key = KeyPair::generate()?;
    let mut inter_params = ca_params("intermediate-ca", 0x100, Some(0));
    inter_params.not_after = rcgen::date_time_ymd(2035, 1, 1);
    let inter = inter_params.signed_by(&inter_key, &root_issuer)?;
    out.write("intermediate-ca.pem", &inter.pem())?;
    let inter_issuer = Issuer::new(inter_params.clone(), inter_key);

    let unknown_root_key = KeyPair::generate()?;
    let unknown_root_params = ca_params("unknown root CA", 2, None);
    let unknown_root_issuer = Issuer::new(unknown_root_params, unknown_root_key);
    let unknown_inter_key = KeyPair::generate()?;
    let unknown_inter_params = ca_params("unknown-intermediate-ca", 0x200, Some(0));
    let unknown_inter = unknown_inter_params.signed_by(&unknown_inter_key, &unknown_root_issuer)?;
    out.write("unknown-intermediate-ca.pem", &unknown_inter.pem())?;
    let unknown_inter_issuer = Issuer::new(unknown_inter_params, unknown_inter_key);

    let admin_key = KeyPair::generate()?;
    let admin_params = ca_params("admin-ca", 3, None);
    let admin = admin_params.self_signed(&admin_key)?;
    out.write("admin-ca.pem", &admin.pem())?;
    let admin_issuer = Issuer::new(admin_params, admin_key);

    let impostor_issuer = Issuer::new(inter_params.clone(), KeyPair::generate()?);

    // Leaves signed by the intermediate.
    let (h0, h1) = hour();
    let leaves: Vec<(&str, u64, Duration, Duration, &'static SignatureAlgorithm)> = vec![
        ("healthy", 0x1000, h0, h1, &rcgen::PKCS_ECDSA_P256_SHA256),
        ("revoked", 0x1001, h0, h1, &rcgen::PKCS_ECDSA_P256_SHA256),
        ("expired", 0x1002, Duration::hours(-3), Duration::hours(-2), &rcgen::PKCS_ECDSA_P256_SHA256),
        ("not-yet-valid", 0x1003, Duration::hours(2), Duration::hours(3), &rcgen::PKCS_ECDSA_P256_SHA256),
        ("long-lived", 0x1004, Duration::days(-12), Duration::days(18), &rcgen::PKCS_ECDSA_P256_SHA256),
        ("day", 0x1005, Duration::hours(-12), Duration::hours(12), &rcgen::PKCS_ECDSA_P256_SHA256),
        ("ed25519", 0x1006, h0, h1, &rcgen::PKCS_ED25519),
        ("p384", 0x1007, h0, h1, &rcgen::PKCS_ECDSA_P384_SHA384),
    ];
    for (name, serial, from, to, alg) in leaves {
        let key = KeyPair::generate_for(alg)?;
        let cert = leaf_params(name, serial, from, to)?.signed_by(&key, &inter_issuer)?;
        out.write(&format!("{name}.pem"), &cert.pem())?;
    }

    let mut server_only = leaf_params("server-only", 0x1010, h0, h1)?;
    server_only.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    out.write("server-only.pem", &server_only.signed_by(&KeyPair::generate()?, &inter_issuer)?.pem())?;

    let rsa1024 = rsa_key(scratch.path(), 1024)?;
    let rsa1024_pub = scratch.path().join("rsa1024.pub.der");
    openssl(&[
        "rsa",
        "-in",
        path_str(&rsa1024)?,
        "-RSAPublicKey_out",
        "-outform",
        "DER",
        "-out",
        path_str(&rsa1024_pub)?,
    ])?;
    let public = RsaPublic { pkcs1_der: std::fs::read(&rsa1024_pub)? };
    out.write("rsa1024.pem", &leaf_params("rsa1024", 0x1011, h0, h1)?.signed_by(&public, &inter_issuer)?.pem())?;

    let rsa2048 = rsa_key(scratch.path(), 2048)?;
    let rsa2048_key = KeyPair::from_pem_and_sign_algo(&std::fs::read_to_string(&rsa2048)?, &rcgen::PKCS_RSA_SHA256)?;
    out.write("rsa2048.pem", &leaf_params("rsa2048", 0x1012, h0, h1)?.signed_by(&rsa2048_key, &inter_issuer)?.pem())?;

    let via_unknown =
        leaf_params("via-unknown", 0x1013, h0, h1)?.signed_by(&KeyPair::generate()?, &unknown_inter_issuer)?;
    out.write("via-unknown.pem", &via_unknown.pem())?;

    let admin_leaf = leaf_params("admin", 0x1014, h0, h1)?.signed_by(&KeyPair::generate()?, &admin_issuer)?;
    out.write("admin.pem", &admin_leaf.pem())?;

    let self_key = KeyPair::generate()?;
    out.write("self-signed.pem", &leaf_params("self-signed", 0x1015, h0, h1)?.self_signed(&self_key)?.pem())?;

    // Over the budgets of cert.rs: 200 SANs (MAX_SAN_ENTRIES is 128), and a 20 KiB extension
    // (MAX_CERT_DER_BYTES is 16 KiB).
    let mut many_sans = leaf_params("many-sans", 0x1016, h0, h1)?;
    for i in 0..200 {
        many_sans.subject_alt_names.push(SanType::DnsName(format!("a{i}.example").as_str().try_into()?));
    }
    out.write("many-sans.pem", &many_sans.signed_by(&KeyPair::generate()?, &inter_issuer)?.pem())?;
    let mut huge_ext = leaf_params("huge-extension", 0x1017, h0, h1)?;
    let mut blob = vec![0x04, 0x82, 0x50, 0x00];
    blob.resize(4 + 0x5000, 0x41);
    huge_ext.custom_extensions.push(rcgen::CustomExtension::from_oid_content(&[1, 3, 6, 1, 4, 1, 99999, 1], blob));
    out.write("huge-extension.pem", &huge_ext.signed_by(&KeyPair::generate()?, &inter_issuer)?.pem())?;

    // A CA signing with ECDSA P-521/SHA-512, which peerguard's provider does not support (as
    // webpki's ring provider). Made by openssl, valid from the time of generation for 100 years.
    let p521_key = scratch.path().join("p521.key");
    openssl(&["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-521", "-out", path_str(&p521_key)?])?;
    let p521_ca = dir.join("p521-ca.pem");
    openssl(&[
        "req",
        "-x509",
        "-new",
        "-key",
        path_str(&p521_key)?,
        "-subj",
        "/CN=p521-ca/O=cluster.local",
        "-days",
        "36500",
        "-sha512",
        "-out",
        path_str(&p521_ca)?,
    ])?;
    let leaf_key = scratch.path().join("via-p521.key");
    openssl(&["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", path_str(&leaf_key)?])?;
    let csr = scratch.path().join("via-p521.csr");
    openssl(&["req", "-new", "-key", path_str(&leaf_key)?, "-subj", "/CN=via-p521", "-out", path_str(&csr)?])?;
    let ext = scratch.path().join("leaf.ext");
    std::fs::write(
        &ext,
        "basicConstraints=critical,CA:FALSE\nextendedKeyUsage=clientAuth\nsubjectAltName=URI:spiffe://cluster.local/ns/default/sa/via-p521\n",
    )?;
    let via_p521 = dir.join("via-p521.pem");
    openssl(&[
        "x509",
        "-req",
        "-in",
        path_str(&csr)?,
        "-CA",
        path_str(&p521_ca)?,
        "-CAkey",
        path_str(&p521_key)?,
        "-set_serial",
        "4128",
        "-days",
        "36500",
        "-sha512",
        "-extfile",
        path_str(&ext)?,
        "-out",
        path_str(&via_p521)?,
    ])?;

    // Self-signed certificates, one per signature algorithm, for the signature provider's tests.
    let sigs = dir.join("selfsigned");
    std::fs::create_dir_all(&sigs)?;
    let sigs_out = Out { dir: sigs.clone() };
    for (name, alg) in [
        ("ecdsa-p256-sha256", &rcgen::PKCS_ECDSA_P256_SHA256),
        ("ecdsa-p384-sha384", &rcgen::PKCS_ECDSA_P384_SHA384),
        ("ed25519", &rcgen::PKCS_ED25519),
    ] {
        let key = KeyPair::generate_for(alg)?;
        sigs_out.write(&format!("{name}.pem"), &leaf_params(name, 1, h0, h1)?.self_signed(&key)?.pem())?;
    }
    for hash in ["sha256", "sha384", "sha512"] {
        for pss in [false, true] {
            let name = format!("rsa-{}-{hash}", if pss { "pss" } else { "pkcs1" });
            let out_path = sigs.join(format!("{name}.pem"));
            let subj = format!("/CN={name}");
            let digest = format!("-{hash}");
            let mut args = vec![
                "req",
                "-x509",
                "-new",
                "-key",
                path_str(&rsa2048)?,
                "-subj",
                &subj,
                "-days",
                "1",
                &digest,
                "-out",
                path_str(&out_path)?,
            ];
            if pss {
                args.extend(["-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:digest"]);
            }
            openssl(&args)?;
        }
    }

    // CRLs, valid 2030-01-01 to 2031-01-01.
    let crl = |revoked: &[u64], issuer: &Issuer<'_, KeyPair>| -> Result<String> {
        let params = CertificateRevocationListParams {
            this_update: rcgen::date_time_ymd(2030, 1, 1),
            next_update: rcgen::date_time_ymd(2031, 1, 1),
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: revoked
                .iter()
                .map(|s| RevokedCertParams {
                    serial_number: SerialNumber::from(*s),
                    revocation_time: rcgen::date_time_ymd(2030, 2, 1),
                    reason_code: Some(RevocationReason::KeyCompromise),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        };
        Ok(params.signed_by(issuer)?.pem()?)
    };
    out.write("crl-intermediate-revokes-leaf.pem", &crl(&[0x1001], &inter_issuer)?)?;
    out.write("crl-intermediate-empty.pem", &crl(&[], &inter_issuer)?)?;
    out.write("crl-root-revokes-intermediate.pem", &crl(&[0x100], &root_issuer)?)?;
    out.write("crl-root-empty.pem", &crl(&[], &root_issuer)?)?;
    out.write("crl-impostor-revokes-nothing.pem", &crl(&[], &impostor_issuer)?)?;
    out.write("crl-admin-ca-revokes-leaf-serial.pem", &crl(&[0x1001], &admin_issuer)?)?;

    println!("wrote fixtures into {}", dir.display());
    Ok(())
}
