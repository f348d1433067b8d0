//! Certificate authorities with ring-generated keys: issuing leaves and intermediates, CRLs, PEM files.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rcgen::{CertificateRevocationListParams, Issuer, KeyIdMethod, KeyPair, RevokedCertParams, SerialNumber};

use crate::spec::{CaSpec, CrlSpec, Leaf, PrincipalLeaf};
use crate::Error;

/// A certificate authority: its certificate, and its key to sign with.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
    cert_der: Vec<u8>,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca").field("cert_pem", &self.cert_pem).finish_non_exhaustive()
    }
}

/// An issued certificate and its key (PKCS#8).
#[derive(Clone, Debug)]
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
    pub cert_der: Vec<u8>,
}

fn generate(what: &str) -> impl FnOnce(rcgen::Error) -> Error + '_ {
    move |source| Error::Generate { what: what.to_owned(), source }
}

impl Ca {
    /// A self-signed root.
    pub fn self_signed(spec: &CaSpec) -> Result<Ca, Error> {
        let key = KeyPair::generate_for(spec.alg).map_err(generate("the CA key"))?;
        let params = spec.params(false)?;
        let cert = params.self_signed(&key).map_err(generate("the CA"))?;
        Ok(Ca { cert_pem: cert.pem(), cert_der: cert.der().to_vec(), issuer: Issuer::new(params, key) })
    }

    /// An intermediate CA signed by this one.
    pub fn intermediate(&self, spec: &CaSpec) -> Result<Ca, Error> {
        let key = KeyPair::generate_for(spec.alg).map_err(generate("the intermediate CA key"))?;
        let params = spec.params(true)?;
        let cert = params.signed_by(&key, &self.issuer).map_err(generate("the intermediate CA"))?;
        Ok(Ca { cert_pem: cert.pem(), cert_der: cert.der().to_vec(), issuer: Issuer::new(params, key) })
    }

    /// A CA from its PEM certificate and key, as `peerguard cert issue --ca --ca-key` reads them.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Ca, Error> {
        use rustls_pki_types::pem::PemObject as _;
        let key = KeyPair::from_pem(key_pem).map_err(generate("the issuer key"))?;
        let der = rustls_pki_types::CertificateDer::from_pem_slice(cert_pem.as_bytes())
            .map_err(|e| Error::Invalid(format!("the issuer certificate is not PEM: {e}")))?;
        let issuer = Issuer::from_ca_cert_der(&der, key).map_err(generate("the issuer from its certificate"))?;
        Ok(Ca { issuer, cert_pem: cert_pem.to_owned(), cert_der: der.to_vec() })
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA certificate, DER.
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// The CA key, PKCS#8 PEM.
    pub fn key_pem(&self) -> String {
        self.issuer.key().serialize_pem()
    }

    /// The CA's raw public key: the uncompressed point for ECDSA, the 32 bytes for Ed25519.
    pub fn public_key_raw(&self) -> &[u8] {
        self.issuer.key().public_key_raw()
    }

    /// Issues `leaf` with a new key.
    pub fn issue(&self, leaf: &Leaf) -> Result<Issued, Error> {
        let key = KeyPair::generate_for(leaf.alg).map_err(generate("the leaf key"))?;
        let cert = leaf.params()?.signed_by(&key, &self.issuer).map_err(generate("the leaf certificate"))?;
        Ok(Issued { cert_pem: cert.pem(), key_pem: key.serialize_pem(), cert_der: cert.der().to_vec() })
    }

    /// The CRL `spec`, signed by this CA.
    pub fn crl(&self, spec: &CrlSpec) -> Result<String, Error> {
        let revoked_certs = spec
            .revoked
            .iter()
            .map(|r| RevokedCertParams {
                serial_number: r.serial.clone(),
                revocation_time: r.at,
                reason_code: r.reason,
                invalidity_date: None,
            })
            .collect();
        let params = CertificateRevocationListParams {
            this_update: spec.this_update,
            next_update: spec.next_update,
            crl_number: SerialNumber::from(spec.number),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: KeyIdMethod::Sha256,
        };
        let crl = params.signed_by(&self.issuer).map_err(generate("the CRL"))?;
        crl.pem().map_err(generate("the CRL's PEM"))
    }

    /// Writes the CA's certificate and key as `<stem>.pem` and `<stem>-key.pem` in `dir`.
    pub fn write(&self, dir: &Path, stem: &str) -> Result<(PathBuf, PathBuf), Error> {
        write_pair(dir, stem, &self.cert_pem, &self.key_pem())
    }
}

impl Issued {
    /// Writes the certificate and key as `<stem>.pem` and `<stem>-key.pem` in `dir`.
    pub fn write(&self, dir: &Path, stem: &str) -> Result<(PathBuf, PathBuf), Error> {
        write_pair(dir, stem, &self.cert_pem, &self.key_pem)
    }
}

fn write_pair(dir: &Path, stem: &str, cert_pem: &str, key_pem: &str) -> Result<(PathBuf, PathBuf), Error> {
    let (cert, key) = (dir.join(format!("{stem}.pem")), dir.join(format!("{stem}-key.pem")));
    write_file(&cert, cert_pem)?;
    write_key(&key, key_pem)?;
    Ok((cert, key))
}

/// Writes `contents` to `path`.
pub fn write_file(path: &Path, contents: &str) -> Result<(), Error> {
    std::fs::write(path, contents).map_err(|source| Error::Io { path: path.to_path_buf(), source })
}

/// Writes a private key readable by its owner only (0600 on Unix).
pub fn write_key(path: &Path, contents: &str) -> Result<(), Error> {
    write_file(path, contents)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
    }
    Ok(())
}

/// One in-memory CA per issuer DN, made on first use and kept, for leaves named by a principal
/// (`peerguard test` and `peerguard test init`).
#[derive(Debug, Default)]
pub struct CertFactory {
    cas: HashMap<String, Ca>,
}

impl CertFactory {
    /// The PEM of a leaf for `spec`, signed by the CA named `spec.issuer`.
    pub fn leaf_pem(&mut self, spec: &PrincipalLeaf<'_>) -> Result<String, Error> {
        let ca = match self.cas.entry(spec.issuer.to_owned()) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => e.insert(Ca::self_signed(&spec.ca()?)?),
        };
        Ok(ca.issue(&spec.leaf()?)?.cert_pem)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code
    use super::*;
    use crate::spec::{parse_dn, DEFAULT_ISSUER};

    #[test]
    fn a_leaf_names_its_issuer_and_an_intermediate_chains_to_the_root() {
        let root = Ca::self_signed(&CaSpec::named("CN=root,O=example").unwrap()).unwrap();
        let inter = root.intermediate(&CaSpec::named("CN=inter,O=example").unwrap()).unwrap();
        let leaf = inter.issue(&Leaf::workload("ns", "sa")).unwrap();
        assert!(leaf.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"), "{}", leaf.cert_pem);
        assert!(leaf.key_pem.contains("PRIVATE KEY"));
        // The engine reads the DNs back exactly as the specs wrote them.
        let facts = peerguard_policy::CertFacts::from_pem(leaf.cert_pem.as_bytes()).unwrap();
        assert_eq!(facts.issuer, "CN=inter,O=example");
        assert_eq!(facts.subject, "CN=sa");
        assert_eq!(facts.uri_sans, vec!["spiffe://cluster.local/ns/ns/sa/sa".to_owned()]);
        assert_eq!(facts.eku_allows_client_auth, Some(true));
        let inter_facts = peerguard_policy::CertFacts::from_pem(inter.cert_pem().as_bytes()).unwrap();
        assert_eq!(
            (inter_facts.subject.as_str(), inter_facts.issuer.as_str()),
            ("CN=inter,O=example", "CN=root,O=example")
        );
        let again = Ca::from_pem(inter.cert_pem(), &inter.key_pem()).unwrap();
        assert_eq!(again.cert_der(), inter.cert_der());
        assert_eq!(again.public_key_raw(), inter.public_key_raw());
        assert_eq!(inter.public_key_raw().len(), 65, "an uncompressed P-256 point");
        assert!(again.issue(&Leaf::server()).is_ok());
    }

    #[test]
    fn the_factory_keeps_one_ca_per_issuer_and_refuses_bad_names() {
        let mut f = CertFactory::default();
        let spec = PrincipalLeaf { principal: "alice", issuer: DEFAULT_ISSUER, lifetime_secs: 60, at: 1_800_000_000 };
        f.leaf_pem(&spec).unwrap();
        f.leaf_pem(&PrincipalLeaf { principal: "bob", ..spec }).unwrap();
        assert_eq!(f.cas.len(), 1);
        assert!(f.leaf_pem(&PrincipalLeaf { issuer: "NOPE", ..spec }).is_err());
        assert!(f.leaf_pem(&PrincipalLeaf { principal: "", ..spec }).is_err());
        assert_eq!(parse_dn(DEFAULT_ISSUER).unwrap().len(), 1);
    }

    #[test]
    fn a_crl_lists_the_serials_it_is_given() {
        let ca = Ca::self_signed(&CaSpec::named("CN=crl CA").unwrap()).unwrap();
        let now = time::OffsetDateTime::now_utc();
        let spec = CrlSpec::new(now, now + std::time::Duration::from_secs(60)).revoke(
            SerialNumber::from(7u64),
            now,
            Some(rcgen::RevocationReason::KeyCompromise),
        );
        let pem = ca.crl(&spec).unwrap();
        assert!(pem.starts_with("-----BEGIN X509 CRL-----"), "{pem}");
        assert!(ca.crl(&CrlSpec::new(now, now)).is_err(), "nextUpdate must follow thisUpdate");
    }
}
