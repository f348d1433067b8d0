//! The bench PKI: one CA, the server's certificate, one client certificate with a SPIFFE ID, and a
//! CRL with many entries (none of them the client) for the full-certificate-checks configuration.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use peerguard_certkit::{Ca, CaSpec, CrlSpec, DnType, Leaf, SerialNumber};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};
use time::OffsetDateTime;

/// The client's SPIFFE ID, and so the principal the last rule of every policy names.
pub const CLIENT_SPIFFE: &str = "spiffe://cluster.local/ns/bench/sa/client";
/// The CA's common name.
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
    ca: Ca,
}

impl Pki {
    /// The CA (valid for 30 days) and 24 h leaves, as a mesh CA issues them, from the
    /// certificate factory.
    pub fn create(dir: &Path) -> Result<Pki> {
        let hour = Duration::from_secs(3600);
        let subject =
            vec![(DnType::OrganizationName, "cluster.local".to_owned()), (DnType::CommonName, CA_CN.to_owned())];
        let ca = Ca::self_signed(&CaSpec::around_now(subject, hour, 30 * 24 * hour)).context("CA")?;
        let (ca_path, _) = ca.write(dir, "ca")?;
        let server = ca.issue(&Leaf::server().valid_around_now(hour, 23 * hour)).context("server certificate")?;
        let (server_cert, server_key) = server.write(dir, "server")?;
        let client = Leaf::client().cn("client").uri(CLIENT_SPIFFE).valid_around_now(hour, 23 * hour);
        let client = ca.issue(&client).context("client certificate")?;
        let (client_cert, client_key) = client.write(dir, "client")?;
        Ok(Pki {
            ca_pem: ca.cert_pem().to_owned(),
            ca_path,
            server_cert,
            server_key,
            client_cert,
            client_key,
            client_der: client.cert_der,
            ca,
        })
    }

    /// A CRL from the CA revoking `entries` serial numbers, none of which is the client's.
    pub fn crl_pem(&self, entries: usize) -> Result<String> {
        let now = OffsetDateTime::now_utc();
        let minute = Duration::from_secs(60);
        let mut crl = CrlSpec::new(now - minute, now + 7 * 24 * 60 * minute);
        for i in 0..entries {
            // Serials the bench never issues: 0x7e prefix plus a counter.
            let serial = SerialNumber::from_slice(&[&[0x7e][..], &(i as u64).to_be_bytes()[..]].concat());
            crl = crl.revoke(serial, now - minute, None);
        }
        self.ca.crl(&crl).context("CRL")
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
