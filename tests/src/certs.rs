//! Demo PKI made with rcgen: a CA plus SPIFFE/DNS/CN leaf certificates written as PEM files.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType, SignatureAlgorithm,
};
use time::OffsetDateTime;

/// The trust domain the demo identities live in.
pub const TRUST_DOMAIN: &str = "cluster.local";

/// The SPIFFE ID of an Istio-style workload identity, `spiffe://cluster.local/ns/NS/sa/SA`.
pub fn spiffe_id(ns: &str, sa: &str) -> String {
    format!("spiffe://{TRUST_DOMAIN}/ns/{ns}/sa/{sa}")
}

/// What to put in a leaf certificate. Start from [`LeafSpec::client`] or [`LeafSpec::server`].
#[derive(Debug, Clone)]
pub struct LeafSpec {
    /// Subject common name; `None` leaves the subject empty.
    pub common_name: Option<String>,
    /// Extra subject attributes, e.g. `(DnType::OrganizationName, "example")`.
    pub subject_extra: Vec<(DnType, String)>,
    /// URI SANs, e.g. SPIFFE IDs.
    pub uris: Vec<String>,
    /// DNS SANs.
    pub dns: Vec<String>,
    /// IP SANs.
    pub ips: Vec<IpAddr>,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    pub client_auth: bool,
    pub server_auth: bool,
    /// Key algorithm; ECDSA P-256 by default.
    pub alg: &'static SignatureAlgorithm,
}

impl LeafSpec {
    /// A client certificate valid from one hour ago for 24 hours, EKU clientAuth, no SANs.
    pub fn client() -> Self {
        let now = OffsetDateTime::now_utc();
        Self {
            common_name: None,
            subject_extra: Vec::new(),
            uris: Vec::new(),
            dns: Vec::new(),
            ips: Vec::new(),
            not_before: now - Duration::from_secs(3600),
            not_after: now + Duration::from_secs(24 * 3600),
            client_auth: true,
            server_auth: false,
            alg: &rcgen::PKCS_ECDSA_P256_SHA256,
        }
    }

    /// A workload certificate for `spiffe://cluster.local/ns/NS/sa/SA` with CN = SA.
    pub fn workload(ns: &str, sa: &str) -> Self {
        Self::client().cn(sa).spiffe(&spiffe_id(ns, sa))
    }

    /// A server certificate for `localhost` and `127.0.0.1`, EKU serverAuth.
    pub fn server() -> Self {
        let mut s = Self::client().cn("localhost").dns("localhost");
        s.ips.push(IpAddr::from([127, 0, 0, 1]));
        s.client_auth = false;
        s.server_auth = true;
        s
    }

    pub fn cn(mut self, cn: &str) -> Self {
        self.common_name = Some(cn.to_string());
        self
    }

    pub fn no_cn(mut self) -> Self {
        self.common_name = None;
        self
    }

    pub fn subject(mut self, ty: DnType, value: &str) -> Self {
        self.subject_extra.push((ty, value.to_string()));
        self
    }

    /// Adds a URI SAN (any URI, typically `spiffe://...`).
    pub fn spiffe(mut self, uri: &str) -> Self {
        self.uris.push(uri.to_string());
        self
    }

    pub fn dns(mut self, name: &str) -> Self {
        self.dns.push(name.to_string());
        self
    }

    /// Sets the validity window explicitly.
    pub fn validity(mut self, not_before: OffsetDateTime, not_after: OffsetDateTime) -> Self {
        self.not_before = not_before;
        self.not_after = not_after;
        self
    }

    /// Valid from `ago` in the past until `remaining` from now.
    pub fn valid_around_now(self, ago: Duration, remaining: Duration) -> Self {
        let now = OffsetDateTime::now_utc();
        self.validity(now - ago, now + remaining)
    }

    pub fn client_auth(mut self, on: bool) -> Self {
        self.client_auth = on;
        self
    }

    pub fn server_auth(mut self, on: bool) -> Self {
        self.server_auth = on;
        self
    }

    pub fn alg(mut self, alg: &'static SignatureAlgorithm) -> Self {
        self.alg = alg;
        self
    }

    fn params(&self) -> Result<CertificateParams> {
        let mut p = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        if let Some(cn) = &self.common_name {
            dn.push(DnType::CommonName, cn.as_str());
        }
        for (ty, v) in &self.subject_extra {
            dn.push(ty.clone(), v.as_str());
        }
        p.distinguished_name = dn;
        for u in &self.uris {
            p.subject_alt_names.push(SanType::URI(u.as_str().try_into().context("URI SAN")?));
        }
        for d in &self.dns {
            p.subject_alt_names.push(SanType::DnsName(d.as_str().try_into().context("DNS SAN")?));
        }
        for ip in &self.ips {
            p.subject_alt_names.push(SanType::IpAddress(*ip));
        }
        p.not_before = self.not_before;
        p.not_after = self.not_after;
        p.is_ca = IsCa::ExplicitNoCa;
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        if self.client_auth {
            p.extended_key_usages.push(ExtendedKeyUsagePurpose::ClientAuth);
        }
        if self.server_auth {
            p.extended_key_usages.push(ExtendedKeyUsagePurpose::ServerAuth);
        }
        p.use_authority_key_identifier_extension = true;
        Ok(p)
    }
}

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
    issuer: Issuer<'static, KeyPair>,
    pub cert_pem: String,
    pub cert_path: PathBuf,
    dir: PathBuf,
}

impl DemoCa {
    /// Creates a CA (`CN=peerguard demo CA,O=cluster.local`) and writes `ca.pem` into `dir`.
    pub fn create(dir: &Path) -> Result<Self> {
        Self::create_named(dir, "ca", "peerguard demo CA")
    }

    /// Creates a CA with the given CN and writes `<file_stem>.pem` (and its key) into `dir`.
    pub fn create_named(dir: &Path, file_stem: &str, cn: &str) -> Result<Self> {
        let key = KeyPair::generate().context("generate CA key")?;
        let mut p = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, cn);
        dn.push(DnType::OrganizationName, TRUST_DOMAIN);
        p.distinguished_name = dn;
        let now = OffsetDateTime::now_utc();
        p.not_before = now - Duration::from_secs(24 * 3600);
        p.not_after = now + Duration::from_secs(365 * 24 * 3600);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let cert = p.self_signed(&key).context("self-sign CA")?;
        let cert_pem = cert.pem();
        let cert_path = dir.join(format!("{file_stem}.pem"));
        write(&cert_path, &cert_pem)?;
        write(&dir.join(format!("{file_stem}-key.pem")), &key.serialize_pem())?;
        Ok(Self { issuer: Issuer::new(p, key), cert_pem, cert_path, dir: dir.to_path_buf() })
    }

    /// Issues a leaf and writes `<name>.pem` and `<name>-key.pem`.
    pub fn issue(&self, name: &str, spec: &LeafSpec) -> Result<Issued> {
        let key = KeyPair::generate_for(spec.alg).context("generate leaf key")?;
        let cert = spec.params()?.signed_by(&key, &self.issuer).with_context(|| format!("sign leaf {name}"))?;
        let cert_pem = cert.pem();
        let key_pem = key.serialize_pem();
        let cert_path = self.dir.join(format!("{name}.pem"));
        let key_path = self.dir.join(format!("{name}-key.pem"));
        write(&cert_path, &cert_pem)?;
        write(&key_path, &key_pem)?;
        Ok(Issued { cert_pem, key_pem, cert_der: cert.der().to_vec(), cert_path, key_path })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

fn write(path: &Path, contents: &str) -> Result<()> {
    std::fs::write(path, contents).with_context(|| format!("write {}", path.display()))
}
