//! The bench PKI: one CA, the server's certificate, one client certificate with a SPIFFE ID, and a
//! CRL with many entries (none of them the client) for the full-certificate-checks configuration.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, RevokedCertParams, SanType,
    SerialNumber,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};
use time::OffsetDateTime;

/// The client's SPIFFE ID, and so the principal the last rule of every policy names.
pub const CLIENT_SPIFFE: &str = "spiffe://cluster.local/ns/bench/sa/client";
/// The CA's subject as Envoy renders it (RFC 4514).
pub const CA_CN: &str = "peerguard bench CA";

/// Files and facts the configurations need.
pub struct Pki {
    pub ca_pem: String,
    pub ca_path: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    pub client_der: Vec<u8>,
    issuer: Issuer<'static, KeyPair>,
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).with_context(|| format!("write {}", path.display()))
}

impl Pki {
    pub fn create(dir: &Path) -> Result<Pki> {
        let now = OffsetDateTime::now_utc();
        let ca_key = KeyPair::generate().context("CA key")?;
        let mut p = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, CA_CN);
        dn.push(DnType::OrganizationName, "cluster.local");
        p.distinguished_name = dn;
        p.not_before = now - Duration::from_secs(3600);
        p.not_after = now + Duration::from_secs(30 * 24 * 3600);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let ca = p.self_signed(&ca_key).context("self-sign CA")?;
        let ca_pem = ca.pem();
        let ca_path = dir.join("ca.pem");
        write(&ca_path, &ca_pem)?;
        let issuer = Issuer::new(p, ca_key);

        let leaf = |name: &str, san: SanType, eku: ExtendedKeyUsagePurpose| -> Result<(PathBuf, PathBuf, Vec<u8>)> {
            let key = KeyPair::generate().context("leaf key")?;
            let mut p = CertificateParams::default();
            let mut dn = DistinguishedName::new();
            dn.push(DnType::CommonName, name);
            p.distinguished_name = dn;
            p.subject_alt_names = vec![san];
            // A 24 h certificate, as a mesh CA issues them.
            p.not_before = now - Duration::from_secs(3600);
            p.not_after = now + Duration::from_secs(23 * 3600);
            p.is_ca = IsCa::ExplicitNoCa;
            p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            p.extended_key_usages = vec![eku];
            p.use_authority_key_identifier_extension = true;
            let cert = p.signed_by(&key, &issuer).with_context(|| format!("sign {name}"))?;
            let (c, k) = (dir.join(format!("{name}.pem")), dir.join(format!("{name}-key.pem")));
            write(&c, &cert.pem())?;
            write(&k, &key.serialize_pem())?;
            Ok((c, k, cert.der().to_vec()))
        };
        let (server_cert, server_key, _) =
            leaf("server", SanType::DnsName("localhost".try_into()?), ExtendedKeyUsagePurpose::ServerAuth)?;
        let (client_cert, client_key, client_der) =
            leaf("client", SanType::URI(CLIENT_SPIFFE.try_into()?), ExtendedKeyUsagePurpose::ClientAuth)?;
        Ok(Pki { ca_pem, ca_path, server_cert, server_key, client_cert, client_key, client_der, issuer })
    }

    /// A CRL from the CA revoking `entries` serial numbers, none of which is the client's.
    pub fn crl_pem(&self, entries: usize) -> Result<String> {
        let now = OffsetDateTime::now_utc();
        let revoked = (0..entries)
            .map(|i| RevokedCertParams {
                // Serials the bench never issues: 0x7e prefix plus a counter.
                serial_number: SerialNumber::from_slice(&[&[0x7e][..], &(i as u64).to_be_bytes()[..]].concat()),
                revocation_time: now - Duration::from_secs(60),
                reason_code: None,
                invalidity_date: None,
            })
            .collect();
        let params = CertificateRevocationListParams {
            this_update: now - Duration::from_secs(60),
            next_update: now + Duration::from_secs(7 * 24 * 3600),
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: revoked,
            key_identifier_method: KeyIdMethod::Sha256,
        };
        let crl = params.signed_by(&self.issuer).context("sign CRL")?;
        crl.pem().context("CRL PEM")
    }

    /// A rustls client config trusting the CA and presenting the client certificate.
    pub fn client_config(&self) -> Result<Arc<ClientConfig>> {
        let mut roots = RootCertStore::empty();
        roots.add(CertificateDer::from_pem_file(&self.ca_path).context("CA PEM")?)?;
        let chain = vec![CertificateDer::from_pem_file(&self.client_cert).context("client PEM")?];
        let key = PrivateKeyDer::from_pem_file(&self.client_key).context("client key")?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .context("client certificate")?;
        Ok(Arc::new(config))
    }
}
