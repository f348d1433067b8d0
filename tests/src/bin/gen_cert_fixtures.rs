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
//! self-signed RSA PKCS#1 and RSA-PSS certificates are made by `openssl req -x509`. So are the
//! keys ring cannot make at all (DSA, P-192, P-521, RSA-8192): those certificates are valid from
//! the time of generation for 100 years, and their tests take `now` from the certificate.
//!
//! CRLs that RFC 5280 says a conforming issuer never produces (no nextUpdate, no CRLNumber, a
//! critical CRLNumber) cannot be made with rcgen: they are encoded by hand below and signed with
//! the intermediate's key.

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

/// A self-signed certificate from `openssl req -x509` with a fresh key made by `genpkey_args`
/// (e.g. `["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-192"]`), clientAuth and a SPIFFE ID.
fn openssl_self_signed(scratch: &Path, out: &Path, name: &str, genpkey_args: &[&str], ca: bool) -> Result<()> {
    let key = scratch.join(format!("{name}.key"));
    let mut args = vec!["genpkey"];
    args.extend_from_slice(genpkey_args);
    args.extend(["-out", path_str(&key)?]);
    openssl(&args)?;
    let subj = format!("/CN={name}/O=cluster.local");
    let (bc, eku, san);
    let mut args = vec!["req", "-x509", "-new", "-key", path_str(&key)?, "-subj", &subj, "-days", "36500", "-sha256"];
    if ca {
        bc = "basicConstraints=critical,CA:TRUE".to_owned();
        eku = "keyUsage=critical,keyCertSign,cRLSign,digitalSignature".to_owned();
        args.extend(["-addext", &bc, "-addext", &eku]);
    } else {
        bc = "basicConstraints=critical,CA:FALSE".to_owned();
        eku = "extendedKeyUsage=clientAuth".to_owned();
        san = format!("subjectAltName=URI:spiffe://cluster.local/ns/default/sa/{name}");
        args.extend(["-addext", &bc, "-addext", &eku, "-addext", &san]);
    }
    args.extend(["-out", path_str(out)?]);
    openssl(&args)
}

/// One DER TLV (X.690 definite length).
fn tlv(tag: u8, contents: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = contents.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len.to_be_bytes().into_iter().skip_while(|b| *b == 0).collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(contents);
    out
}

/// UTCTime `YYMMDDHHMMSSZ`.
fn utc_time(t: OffsetDateTime) -> Vec<u8> {
    let s = format!(
        "{:02}{:02}{:02}{:02}{:02}{:02}Z",
        t.year() % 100,
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    tlv(0x17, s.as_bytes())
}

/// The subject Name (whole DER) of a certificate: the sixth element of its TBSCertificate.
fn subject_der(cert_der: &[u8]) -> Result<Vec<u8>> {
    fn split(input: &[u8]) -> Result<(&[u8], &[u8], &[u8])> {
        let first = *input.get(1).context("short DER")?;
        let (len, header) = if first < 0x80 {
            (usize::from(first), 2)
        } else {
            let n = usize::from(first & 0x7f);
            let len = input.get(2..2 + n).context("short DER")?.iter().fold(0usize, |a, b| (a << 8) | usize::from(*b));
            (len, 2 + n)
        };
        let whole = input.get(..header + len).context("short DER")?;
        Ok((whole, &whole[header..], &input[header + len..]))
    }
    let (_, cert, _) = split(cert_der)?;
    let (_, tbs, _) = split(cert)?;
    let mut rest = tbs;
    let mut fields = Vec::new();
    while !rest.is_empty() {
        let (whole, _, next) = split(rest)?;
        fields.push(whole);
        rest = next;
    }
    // [0] version, serial, signature, issuer, validity, subject
    Ok(fields.get(5).context("no subject")?.to_vec())
}

/// A v2 CRL encoded by hand, signed with `key` (ECDSA P-256/SHA-256), revoking nothing. `next`
/// and the CRLNumber (`Some(critical)`) may be left out, which rcgen never does.
fn hand_crl(
    issuer: &[u8],
    key: &KeyPair,
    this: OffsetDateTime,
    next: Option<OffsetDateTime>,
    crl_number: Option<bool>,
) -> Result<String> {
    use rcgen::SigningKey as _;
    let ecdsa_sha256 = tlv(0x30, &tlv(0x06, &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02]));
    let mut tbs = tlv(0x02, &[1]);
    tbs.extend(&ecdsa_sha256);
    tbs.extend(issuer);
    tbs.extend(utc_time(this));
    if let Some(next) = next {
        tbs.extend(utc_time(next));
    }
    if let Some(critical) = crl_number {
        let mut ext = tlv(0x06, &[0x55, 0x1d, 0x14]);
        if critical {
            ext.extend(tlv(0x01, &[0xff]));
        }
        ext.extend(tlv(0x04, &tlv(0x02, &[7])));
        tbs.extend(tlv(0xa0, &tlv(0x30, &tlv(0x30, &ext))));
    }
    let tbs = tlv(0x30, &tbs);
    let signature = key.sign(&tbs)?;
    let mut bits = vec![0u8];
    bits.extend(signature);
    let mut list = tbs;
    list.extend(&ecdsa_sha256);
    list.extend(tlv(0x03, &bits));
    let der = tlv(0x30, &list);
    Ok(pem_encode("X509 CRL", &der))
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::new();
    for chunk in der.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, b)| acc | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                b64.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                b64.push('=');
            }
        }
    }
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
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

    // CRLs, valid 2030-01-01 to 2031-01-01 unless `crl_window` says otherwise.
    let crl_window = |revoked: &[u64],
                      issuer: &Issuer<'_, KeyPair>,
                      this_update: OffsetDateTime,
                      next_update: OffsetDateTime|
     -> Result<String> {
        let params = CertificateRevocationListParams {
            this_update,
            next_update,
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
    let crl = |revoked: &[u64], issuer: &Issuer<'_, KeyPair>| -> Result<String> {
        crl_window(revoked, issuer, rcgen::date_time_ymd(2030, 1, 1), rcgen::date_time_ymd(2031, 1, 1))
    };
    out.write("crl-intermediate-revokes-leaf.pem", &crl(&[0x1001], &inter_issuer)?)?;
    out.write("crl-intermediate-empty.pem", &crl(&[], &inter_issuer)?)?;
    out.write("crl-root-revokes-intermediate.pem", &crl(&[0x100], &root_issuer)?)?;
    out.write("crl-root-empty.pem", &crl(&[], &root_issuer)?)?;
    out.write("crl-impostor-revokes-nothing.pem", &crl(&[], &impostor_issuer)?)?;
    out.write("crl-admin-ca-revokes-leaf-serial.pem", &crl(&[0x1001], &admin_issuer)?)?;

    // Freshness: stale 8 days before T, nextUpdate exactly T, thisUpdate one minute after T, and a
    // newer CRL that revokes what an older, still fresh one does not.
    let may1 = rcgen::date_time_ymd(2030, 5, 1);
    let stale_next = t() - Duration::days(8);
    out.write("crl-intermediate-stale.pem", &crl_window(&[], &inter_issuer, may1, stale_next)?)?;
    out.write("crl-intermediate-stale-revokes-leaf.pem", &crl_window(&[0x1001], &inter_issuer, may1, stale_next)?)?;
    out.write("crl-root-stale.pem", &crl_window(&[], &root_issuer, may1, stale_next)?)?;
    out.write("crl-intermediate-next-update-at-t.pem", &crl_window(&[], &inter_issuer, t() - Duration::days(1), t())?)?;
    out.write(
        "crl-intermediate-from-t-plus-1m-revokes-leaf.pem",
        &crl_window(&[0x1001], &inter_issuer, t() + Duration::minutes(1), t() + Duration::days(7))?,
    )?;
    out.write(
        "crl-intermediate-newer-revokes-leaf.pem",
        &crl_window(&[0x1001], &inter_issuer, may1, rcgen::date_time_ymd(2030, 7, 1))?,
    )?;

    // Non-conforming CRLs from the intermediate (RFC 5280 section 5), encoded by hand.
    let inter_name = subject_der(inter.der())?;
    let (jan, next_jan) = (rcgen::date_time_ymd(2030, 1, 1), rcgen::date_time_ymd(2031, 1, 1));
    let inter_key = inter_issuer.key();
    out.write("crl-no-next-update.pem", &hand_crl(&inter_name, inter_key, jan, None, Some(false))?)?;
    out.write("crl-no-crl-number.pem", &hand_crl(&inter_name, inter_key, jan, Some(next_jan), None)?)?;
    out.write("crl-critical-crl-number.pem", &hand_crl(&inter_name, inter_key, jan, Some(next_jan), Some(true))?)?;
    // The same encoder with everything in place, so that the tests above fail for their reason.
    out.write("crl-hand-made-conforming.pem", &hand_crl(&inter_name, inter_key, jan, Some(next_jan), Some(false))?)?;

    // A CA whose keyUsage allows keyCertSign but not cRLSign, and a CRL signed with its key.
    let no_crl_sign_key = KeyPair::generate()?;
    let mut no_crl_sign_params = ca_params("no-crl-sign-ca", 4, None);
    no_crl_sign_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
    out.write("no-crl-sign-ca.pem", &no_crl_sign_params.self_signed(&no_crl_sign_key)?.pem())?;
    // rcgen refuses to sign a CRL for an issuer without cRLSign: sign with the same name and key.
    let mut crl_signing_params = no_crl_sign_params.clone();
    crl_signing_params.key_usages.push(KeyUsagePurpose::CrlSign);
    let no_crl_sign_issuer = Issuer::new(crl_signing_params, no_crl_sign_key);
    out.write("crl-no-crl-sign-ca.pem", &crl(&[], &no_crl_sign_issuer)?)?;

    // Trust anchors past their notAfter (expired before T) and near it (10 days after T), each
    // with a leaf that outlives it.
    let expired_root_key = KeyPair::generate()?;
    let mut expired_root_params = ca_params("expired root CA", 5, None);
    expired_root_params.not_after = rcgen::date_time_ymd(2030, 5, 1);
    out.write("expired-root-ca.pem", &expired_root_params.self_signed(&expired_root_key)?.pem())?;
    let expired_root_issuer = Issuer::new(expired_root_params, expired_root_key);
    let via_expired_root = leaf_params("via-expired-root", 0x1020, h0, h1)?;
    out.write("via-expired-root.pem", &via_expired_root.signed_by(&KeyPair::generate()?, &expired_root_issuer)?.pem())?;
    let expiring_root_key = KeyPair::generate()?;
    let mut expiring_root_params = ca_params("expiring root CA", 6, None);
    expiring_root_params.not_after = t() + Duration::days(10);
    out.write("expiring-root-ca.pem", &expiring_root_params.self_signed(&expiring_root_key)?.pem())?;
    let expiring_root_issuer = Issuer::new(expiring_root_params, expiring_root_key);
    let via_expiring_root = leaf_params("via-expiring-root", 0x1021, Duration::days(-12), Duration::days(18))?;
    out.write(
        "via-expiring-root.pem",
        &via_expiring_root.signed_by(&KeyPair::generate()?, &expiring_root_issuer)?.pem(),
    )?;

    // Certificates a conforming CA never issues (RFC 5280 section 4), which webpki does not
    // check: a serial number of zero, a dNSName outside the preferred name syntax, and a root with
    // an unknown critical extension (webpki never looks at an anchor's extensions).
    let serial_zero = leaf_params("serial-zero", 0, h0, h1)?;
    out.write("serial-zero.pem", &serial_zero.signed_by(&KeyPair::generate()?, &inter_issuer)?.pem())?;
    let mut underscore = leaf_params("underscore-dns", 0x1022, h0, h1)?;
    underscore.subject_alt_names.push(SanType::DnsName("foo_bar.example".try_into()?));
    out.write("underscore-dns.pem", &underscore.signed_by(&KeyPair::generate()?, &inter_issuer)?.pem())?;
    let odd_root_key = KeyPair::generate()?;
    let mut odd_root_params = ca_params("unknown-critical-extension root CA", 7, None);
    let mut odd_ext = rcgen::CustomExtension::from_oid_content(&[1, 3, 6, 1, 4, 1, 99999, 2], vec![0x05, 0x00]);
    odd_ext.set_criticality(true);
    odd_root_params.custom_extensions.push(odd_ext);
    out.write("unknown-critical-extension-root-ca.pem", &odd_root_params.self_signed(&odd_root_key)?.pem())?;
    let odd_root_issuer = Issuer::new(odd_root_params, odd_root_key);
    let via_odd_root = leaf_params("via-unknown-critical-extension-root", 0x1023, h0, h1)?;
    out.write(
        "via-unknown-critical-extension-root.pem",
        &via_odd_root.signed_by(&KeyPair::generate()?, &odd_root_issuer)?.pem(),
    )?;

    // Weak and strong keys ring cannot make: self-signed by openssl (the weak-key floor and
    // keyTypes read only the key).
    let dsa_params = scratch.path().join("dsa.params");
    openssl(&[
        "genpkey",
        "-genparam",
        "-algorithm",
        "DSA",
        "-pkeyopt",
        "dsa_paramgen_bits:2048",
        "-out",
        path_str(&dsa_params)?,
    ])?;
    openssl_self_signed(scratch.path(), &dir.join("dsa.pem"), "dsa", &["-paramfile", path_str(&dsa_params)?], false)?;
    openssl_self_signed(
        scratch.path(),
        &dir.join("p192.pem"),
        "p192",
        &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-192"],
        false,
    )?;
    openssl_self_signed(
        scratch.path(),
        &dir.join("p521.pem"),
        "p521",
        &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-521"],
        false,
    )?;

    // An RSA-8192 CA (RSA keys up to 8192 bits verify) and a P-256 leaf it signs with SHA-256.
    let rsa8192_ca = dir.join("rsa8192-ca.pem");
    openssl_self_signed(
        scratch.path(),
        &rsa8192_ca,
        "rsa8192-ca",
        &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:8192"],
        true,
    )?;
    let rsa8192_key = scratch.path().join("rsa8192-ca.key");
    let leaf_key = scratch.path().join("via-rsa8192.key");
    openssl(&["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", path_str(&leaf_key)?])?;
    let csr = scratch.path().join("via-rsa8192.csr");
    openssl(&["req", "-new", "-key", path_str(&leaf_key)?, "-subj", "/CN=via-rsa8192", "-out", path_str(&csr)?])?;
    let ext = scratch.path().join("via-rsa8192.ext");
    std::fs::write(
        &ext,
        "basicConstraints=critical,CA:FALSE\nextendedKeyUsage=clientAuth\nsubjectAltName=URI:spiffe://cluster.local/ns/default/sa/via-rsa8192\n",
    )?;
    openssl(&[
        "x509",
        "-req",
        "-in",
        path_str(&csr)?,
        "-CA",
        path_str(&rsa8192_ca)?,
        "-CAkey",
        path_str(&rsa8192_key)?,
        "-set_serial",
        "4129",
        "-days",
        "36500",
        "-sha256",
        "-extfile",
        path_str(&ext)?,
        "-out",
        path_str(&dir.join("via-rsa8192.pem"))?,
    ])?;

    println!("wrote fixtures into {}", dir.display());
    Ok(())
}
