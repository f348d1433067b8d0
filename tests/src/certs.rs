//! Demo PKI on disk: a CA from the certificate factory (`peerguard_certkit`) that writes each leaf it issues as PEM files.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
pub use peerguard_certkit::{spiffe_id, Leaf as LeafSpec, TRUST_DOMAIN};
use peerguard_certkit::{Ca, CaSpec, DnType};

/// An issued certificate and its key, in memory and on disk.
#[derive(Debug, Clone)]
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
    pub cert_der: Vec<u8>,
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
}

/// A demo certificate authority that writes everything it issues into one directory.
pub struct DemoCa {
    ca: Ca,
    pub cert_pem: String,
    pub cert_path: PathBuf,
    dir: PathBuf,
}

impl DemoCa {
    /// Creates a CA (`CN=peerguard demo CA,O=cluster.local`) and writes `ca.pem` into `dir`.
    pub fn create(dir: &Path) -> Result<Self> {
        Self::create_named(dir, "ca", "peerguard demo CA")
    }

    /// Creates a CA `CN=<cn>,O=cluster.local`, valid from a day ago for a year, and writes
    /// `<file_stem>.pem` (and its key) into `dir`.
    pub fn create_named(dir: &Path, file_stem: &str, cn: &str) -> Result<Self> {
        let subject = vec![(DnType::OrganizationName, TRUST_DOMAIN.to_owned()), (DnType::CommonName, cn.to_owned())];
        let spec = CaSpec::around_now(subject, Duration::from_secs(24 * 3600), Duration::from_secs(365 * 24 * 3600));
        let ca = Ca::self_signed(&spec).with_context(|| format!("CA {cn}"))?;
        let (cert_path, _) = ca.write(dir, file_stem)?;
        Ok(Self { cert_pem: ca.cert_pem().to_owned(), ca, cert_path, dir: dir.to_path_buf() })
    }

    /// Issues a leaf and writes `<name>.pem` and `<name>-key.pem`.
    pub fn issue(&self, name: &str, spec: &LeafSpec) -> Result<Issued> {
        let issued = self.ca.issue(spec).with_context(|| format!("leaf {name}"))?;
        let (cert_path, key_path) = issued.write(&self.dir, name)?;
        Ok(Issued {
            cert_pem: issued.cert_pem,
            key_pem: issued.key_pem,
            cert_der: issued.cert_der,
            cert_path,
            key_path,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}
