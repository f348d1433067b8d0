//! Certificates made in memory for test cases that name a `principal`: an ECDSA P-256 leaf signed by an in-memory CA.

use std::collections::HashMap;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use time::OffsetDateTime;

/// The issuer DN of the in-memory CA when a case names none.
pub(crate) const DEFAULT_ISSUER: &str = "O=cluster.local";
/// The lifetime of a generated leaf when a case names none (Istio's workload certificates live 24h).
pub(crate) const DEFAULT_LIFETIME_SECS: i64 = 24 * 3600;
/// A generated leaf becomes valid this long before the case's time.
const BACKDATE_SECS: i64 = 300;

/// One in-memory CA per issuer DN, made on first use and kept for the run.
#[derive(Default)]
pub(crate) struct CertFactory {
    issuers: HashMap<String, Issuer<'static, KeyPair>>,
}

/// What a generated certificate carries.
pub(crate) struct LeafSpec<'a> {
    /// A principal with `/` becomes the SPIFFE URI SAN `spiffe://PRINCIPAL`; one without `/`
    /// becomes the subject CN (and a DNS SAN when it is a host name).
    pub principal: &'a str,
    /// The CA's DN in RFC 4514 form, most specific RDN first (`CN=demo CA,O=example`).
    pub issuer: &'a str,
    /// notAfter - notBefore.
    pub lifetime_secs: i64,
    /// The case's time: the leaf is valid from 5 minutes before it.
    pub at: i64,
}

impl CertFactory {
    /// A PEM leaf for `spec`.
    pub(crate) fn leaf(&mut self, spec: &LeafSpec<'_>) -> Result<String, String> {
        if !self.issuers.contains_key(spec.issuer) {
            let issuer = make_ca(spec.issuer)?;
            self.issuers.insert(spec.issuer.to_owned(), issuer);
        }
        let issuer = self.issuers.get(spec.issuer).ok_or("the in-memory CA is missing")?;
        let principal = spec.principal.strip_prefix("spiffe://").unwrap_or(spec.principal);
        let mut p = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        if principal.contains('/') {
            let uri = format!("spiffe://{principal}");
            let ia5 = uri.as_str().try_into().map_err(|e| format!("principal {principal:?}: {e}"))?;
            p.subject_alt_names.push(SanType::URI(ia5));
        } else {
            dn.push(DnType::CommonName, principal);
            if is_host_name(principal) {
                let ia5 = principal.try_into().map_err(|e| format!("principal {principal:?}: {e}"))?;
                p.subject_alt_names.push(SanType::DnsName(ia5));
            }
        }
        p.distinguished_name = dn;
        let not_before = spec.at.saturating_sub(BACKDATE_SECS);
        p.not_before = timestamp(not_before)?;
        p.not_after = timestamp(not_before.saturating_add(spec.lifetime_secs))?;
        p.is_ca = IsCa::ExplicitNoCa;
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth, ExtendedKeyUsagePurpose::ServerAuth];
        p.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(|e| format!("leaf key: {e}"))?;
        let cert = p.signed_by(&key, issuer).map_err(|e| format!("leaf certificate: {e}"))?;
        Ok(cert.pem())
    }
}

fn timestamp(t: i64) -> Result<OffsetDateTime, String> {
    OffsetDateTime::from_unix_timestamp(t).map_err(|e| format!("time {t} is out of range: {e}"))
}

/// Letters, digits, `-` and `.`, with no empty label: what the `dns` identity source accepts.
fn is_host_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// Parses `CN=a,O=b` (RFC 4514 order: most specific first) into a DN encoded least specific
/// first, so that the engine renders it back exactly as written.
pub(crate) fn parse_dn(s: &str) -> Result<DistinguishedName, String> {
    if s.contains('\\') || s.contains('+') {
        return Err(format!("issuer {s:?}: escapes and multi-valued RDNs are not supported here; use a cert file"));
    }
    let mut rdns = Vec::new();
    for part in s.split(',') {
        let (k, v) = part.split_once('=').ok_or_else(|| format!("issuer {s:?}: {part:?} is not KEY=VALUE"))?;
        let ty = match k.trim() {
            "CN" => DnType::CommonName,
            "O" => DnType::OrganizationName,
            "OU" => DnType::OrganizationalUnitName,
            "C" => DnType::CountryName,
            "L" => DnType::LocalityName,
            "ST" => DnType::StateOrProvinceName,
            other => return Err(format!("issuer {s:?}: attribute {other:?} is not one of CN, O, OU, C, L, ST")),
        };
        if v.is_empty() {
            return Err(format!("issuer {s:?}: {k} is empty"));
        }
        rdns.push((ty, v.to_owned()));
    }
    let mut dn = DistinguishedName::new();
    for (ty, v) in rdns.into_iter().rev() {
        dn.push(ty, v);
    }
    Ok(dn)
}

fn make_ca(issuer: &str) -> Result<Issuer<'static, KeyPair>, String> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(|e| format!("CA key: {e}"))?;
    let mut p = CertificateParams::default();
    p.distinguished_name = parse_dn(issuer)?;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    p.not_before = rcgen::date_time_ymd(2000, 1, 1);
    p.not_after = rcgen::date_time_ymd(2099, 12, 31);
    Ok(Issuer::new(p, key))
}
