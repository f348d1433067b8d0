//! What a certificate carries, as plain data that becomes rcgen params: CA and leaf profiles, a principal's SANs, DNs.

use std::net::IpAddr;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyUsagePurpose,
    RevocationReason, SanType, SerialNumber, SignatureAlgorithm,
};
use time::OffsetDateTime;

use crate::Error;

/// The trust domain the test and demo identities live in.
pub const TRUST_DOMAIN: &str = "cluster.local";
/// The issuer DN of a principal's leaf when none is named.
pub const DEFAULT_ISSUER: &str = "O=cluster.local";
/// The lifetime of a principal's leaf when none is named (Istio's workload certificates live 24h).
pub const DEFAULT_LIFETIME_SECS: i64 = 24 * 3600;
/// A principal's leaf becomes valid this long before the chosen time, as a CA backdates for skew.
const BACKDATE_SECS: i64 = 300;

/// Subject attributes in the order they are encoded: least specific first (`O`, then `CN`).
/// Envoy and the engine render them the other way round, RFC 4514's `CN=...,O=...`.
pub type Subject = Vec<(DnType, String)>;

/// The SPIFFE ID of an Istio workload identity, `spiffe://cluster.local/ns/NS/sa/SA`.
pub fn spiffe_id(ns: &str, sa: &str) -> String {
    format!("spiffe://{TRUST_DOMAIN}/ns/{ns}/sa/{sa}")
}

/// Parses `CN=a,O=b` (RFC 4514 order: most specific first) into a [`Subject`], so that the
/// engine renders the certificate's DN back exactly as written. Escapes and multi-valued RDNs
/// are refused rather than guessed at.
pub fn parse_dn(s: &str) -> Result<Subject, Error> {
    let bad = |m: String| Error::Invalid(format!("{s:?}: {m}"));
    if s.contains('\\') || s.contains('+') {
        return Err(bad("escapes and multi-valued RDNs are not supported here; use a certificate file".to_owned()));
    }
    let mut rdns = Vec::new();
    for part in s.split(',') {
        let (k, v) = part.split_once('=').ok_or_else(|| bad(format!("{part:?} is not KEY=VALUE")))?;
        let ty = match k.trim() {
            "CN" => DnType::CommonName,
            "O" => DnType::OrganizationName,
            "OU" => DnType::OrganizationalUnitName,
            "C" => DnType::CountryName,
            "L" => DnType::LocalityName,
            "ST" => DnType::StateOrProvinceName,
            other => return Err(bad(format!("attribute {other:?} is not one of CN, O, OU, C, L, ST"))),
        };
        if v.is_empty() {
            return Err(bad(format!("{k} is empty")));
        }
        rdns.push((ty, v.to_owned()));
    }
    rdns.reverse();
    Ok(rdns)
}

fn distinguished_name(subject: &[(DnType, String)]) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    for (ty, v) in subject {
        dn.push(ty.clone(), v.as_str());
    }
    dn
}

/// Letters, digits, `-` and `.`, with no empty label: what the `dns` identity source accepts.
pub fn is_host_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// Unix seconds as a certificate time.
pub fn timestamp(t: i64) -> Result<OffsetDateTime, Error> {
    OffsetDateTime::from_unix_timestamp(t).map_err(|e| Error::Invalid(format!("time {t} is out of range: {e}")))
}

fn ia5(what: &str, v: &str) -> Result<rcgen::string::Ia5String, Error> {
    v.try_into().map_err(|e: rcgen::Error| Error::Invalid(format!("{what} SAN {v:?}: {e}")))
}

/// What a CA certificate carries.
#[derive(Clone, Debug)]
pub struct CaSpec {
    pub subject: Subject,
    /// URI SANs, e.g. the path-less SPIFFE ID of the trust domain a SPIFFE CA issues for.
    pub uris: Vec<String>,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    /// Key algorithm; ECDSA P-256 unless set.
    pub alg: &'static SignatureAlgorithm,
    /// keyCertSign, cRLSign and digitalSignature unless set: RFC 5280 CAs, as the engine's chain
    /// check requires.
    pub key_usages: Vec<KeyUsagePurpose>,
}

impl CaSpec {
    /// A CA for `subject`, valid from `not_before` to `not_after`.
    pub fn new(subject: Subject, not_before: OffsetDateTime, not_after: OffsetDateTime) -> CaSpec {
        CaSpec {
            subject,
            uris: Vec::new(),
            not_before,
            not_after,
            alg: &rcgen::PKCS_ECDSA_P256_SHA256,
            key_usages: vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature],
        }
    }

    /// A CA named by its DN in RFC 4514 form (`CN=demo CA,O=example`), valid from 2000 to 2099:
    /// the in-memory CAs of `peerguard test` and the playground, whose leaves carry the times.
    pub fn named(dn: &str) -> Result<CaSpec, Error> {
        Ok(CaSpec::new(parse_dn(dn)?, rcgen::date_time_ymd(2000, 1, 1), rcgen::date_time_ymd(2099, 12, 31)))
    }

    /// Valid from `ago` in the past until `remaining` from now.
    pub fn around_now(subject: Subject, ago: Duration, remaining: Duration) -> CaSpec {
        let now = OffsetDateTime::now_utc();
        CaSpec::new(subject, now - ago, now + remaining)
    }

    /// rcgen's params; `intermediate` adds the authority key identifier (RFC 5280 asks for it
    /// on every certificate but a self-signed root).
    pub fn params(&self, intermediate: bool) -> Result<CertificateParams, Error> {
        let mut p = CertificateParams::default();
        p.distinguished_name = distinguished_name(&self.subject);
        for u in &self.uris {
            p.subject_alt_names.push(SanType::URI(ia5("URI", u)?));
        }
        p.not_before = self.not_before;
        p.not_after = self.not_after;
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = self.key_usages.clone();
        p.use_authority_key_identifier_extension = intermediate;
        Ok(p)
    }
}

/// What a leaf certificate carries. Start from [`Leaf::client`], [`Leaf::server`],
/// [`Leaf::workload`] or [`PrincipalLeaf::leaf`].
#[derive(Clone, Debug)]
pub struct Leaf {
    pub subject: Subject,
    /// URI SANs, e.g. SPIFFE IDs.
    pub uris: Vec<String>,
    pub dns: Vec<String>,
    pub ips: Vec<IpAddr>,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    /// digitalSignature unless set.
    pub key_usages: Vec<KeyUsagePurpose>,
    /// Extended key usages, in the order they are encoded.
    pub ekus: Vec<ExtendedKeyUsagePurpose>,
    /// Key algorithm; ECDSA P-256 unless set.
    pub alg: &'static SignatureAlgorithm,
    /// The serial number; a random one unless set (tests that revoke a leaf choose it).
    pub serial: Option<u64>,
}

impl Leaf {
    /// A client certificate valid from one hour ago for 24 hours, EKU clientAuth, no subject
    /// and no SANs.
    pub fn client() -> Leaf {
        let now = OffsetDateTime::now_utc();
        Leaf::client_valid(now - Duration::from_secs(3600), now + Duration::from_secs(24 * 3600))
    }

    /// [`Leaf::client`] with its validity given: no clock is read (there is none in the
    /// playground's wasm32-unknown-unknown).
    pub fn client_valid(not_before: OffsetDateTime, not_after: OffsetDateTime) -> Leaf {
        Leaf {
            subject: Vec::new(),
            uris: Vec::new(),
            dns: Vec::new(),
            ips: Vec::new(),
            not_before,
            not_after,
            key_usages: vec![KeyUsagePurpose::DigitalSignature],
            ekus: vec![ExtendedKeyUsagePurpose::ClientAuth],
            alg: &rcgen::PKCS_ECDSA_P256_SHA256,
            serial: None,
        }
    }

    /// A workload certificate for `spiffe://cluster.local/ns/NS/sa/SA` with CN = SA.
    pub fn workload(ns: &str, sa: &str) -> Leaf {
        Leaf::client().cn(sa).uri(&spiffe_id(ns, sa))
    }

    /// A server certificate for `localhost` and `127.0.0.1`, EKU serverAuth.
    pub fn server() -> Leaf {
        Leaf::client()
            .cn("localhost")
            .dns("localhost")
            .ip(IpAddr::from([127, 0, 0, 1]))
            .client_auth(false)
            .server_auth(true)
    }

    /// Sets the subject CN (replacing one already set).
    pub fn cn(mut self, cn: &str) -> Leaf {
        self = self.no_cn();
        self.subject.push((DnType::CommonName, cn.to_owned()));
        self
    }

    /// Leaves the CN out of the subject.
    pub fn no_cn(mut self) -> Leaf {
        self.subject.retain(|(ty, _)| *ty != DnType::CommonName);
        self
    }

    /// Adds a URI SAN (any URI, typically `spiffe://...`).
    pub fn uri(mut self, uri: &str) -> Leaf {
        self.uris.push(uri.to_owned());
        self
    }

    /// Adds a DNS SAN.
    pub fn dns(mut self, name: &str) -> Leaf {
        self.dns.push(name.to_owned());
        self
    }

    /// Adds an IP SAN.
    pub fn ip(mut self, ip: IpAddr) -> Leaf {
        self.ips.push(ip);
        self
    }

    /// Sets the validity window.
    pub fn validity(mut self, not_before: OffsetDateTime, not_after: OffsetDateTime) -> Leaf {
        self.not_before = not_before;
        self.not_after = not_after;
        self
    }

    /// Valid from `ago` in the past until `remaining` from now.
    pub fn valid_around_now(self, ago: Duration, remaining: Duration) -> Leaf {
        let now = OffsetDateTime::now_utc();
        self.validity(now - ago, now + remaining)
    }

    /// Adds or removes the clientAuth EKU.
    pub fn client_auth(self, on: bool) -> Leaf {
        self.eku(ExtendedKeyUsagePurpose::ClientAuth, on)
    }

    /// Adds or removes the serverAuth EKU.
    pub fn server_auth(self, on: bool) -> Leaf {
        self.eku(ExtendedKeyUsagePurpose::ServerAuth, on)
    }

    fn eku(mut self, eku: ExtendedKeyUsagePurpose, on: bool) -> Leaf {
        self.ekus.retain(|e| *e != eku);
        if on {
            self.ekus.push(eku);
        }
        self
    }

    /// Sets the key algorithm.
    pub fn alg(mut self, alg: &'static SignatureAlgorithm) -> Leaf {
        self.alg = alg;
        self
    }

    /// Sets the serial number.
    pub fn serial(mut self, serial: u64) -> Leaf {
        self.serial = Some(serial);
        self
    }

    /// rcgen's params: not a CA, the authority key identifier set.
    pub fn params(&self) -> Result<CertificateParams, Error> {
        let mut p = CertificateParams::default();
        p.distinguished_name = distinguished_name(&self.subject);
        for u in &self.uris {
            p.subject_alt_names.push(SanType::URI(ia5("URI", u)?));
        }
        for d in &self.dns {
            p.subject_alt_names.push(SanType::DnsName(ia5("DNS", d)?));
        }
        for ip in &self.ips {
            p.subject_alt_names.push(SanType::IpAddress(*ip));
        }
        p.not_before = self.not_before;
        p.not_after = self.not_after;
        p.is_ca = IsCa::ExplicitNoCa;
        p.key_usages = self.key_usages.clone();
        p.extended_key_usages = self.ekus.clone();
        p.use_authority_key_identifier_extension = true;
        p.serial_number = self.serial.map(SerialNumber::from);
        Ok(p)
    }
}

/// What a CRL says: its number, its window, and the certificates it revokes.
#[derive(Clone, Debug)]
pub struct CrlSpec {
    /// The CRLNumber; a newer CRL of the same issuer must not have a smaller one.
    pub number: u64,
    pub this_update: OffsetDateTime,
    pub next_update: OffsetDateTime,
    pub revoked: Vec<Revoked>,
}

/// One revoked certificate.
#[derive(Clone, Debug)]
pub struct Revoked {
    pub serial: SerialNumber,
    pub at: OffsetDateTime,
    pub reason: Option<RevocationReason>,
}

impl CrlSpec {
    /// CRL number 1 from `this_update` to `next_update`, revoking nothing yet.
    pub fn new(this_update: OffsetDateTime, next_update: OffsetDateTime) -> CrlSpec {
        CrlSpec { number: 1, this_update, next_update, revoked: Vec::new() }
    }

    /// Revokes `serial` at `at`, for `reason` (none: the CRL entry carries no reason code).
    pub fn revoke(mut self, serial: SerialNumber, at: OffsetDateTime, reason: Option<RevocationReason>) -> CrlSpec {
        self.revoked.push(Revoked { serial, at, reason });
        self
    }
}

/// A leaf for a policy principal, as `peerguard test` cases and the playground name them.
#[derive(Clone, Copy, Debug)]
pub struct PrincipalLeaf<'a> {
    /// A principal with `/` becomes the SPIFFE URI SAN `spiffe://PRINCIPAL`; one without `/`
    /// becomes the subject CN (and a DNS SAN when it is a host name).
    pub principal: &'a str,
    /// The CA's DN in RFC 4514 form, most specific RDN first (`CN=demo CA,O=example`).
    pub issuer: &'a str,
    /// notAfter - notBefore, seconds.
    pub lifetime_secs: i64,
    /// The chosen time (Unix seconds): the leaf is valid from 5 minutes before it.
    pub at: i64,
}

impl PrincipalLeaf<'_> {
    /// The principal without `spiffe://` and surrounding blanks; an empty one is refused.
    pub fn principal(&self) -> Result<&str, Error> {
        let p = self.principal.strip_prefix("spiffe://").unwrap_or(self.principal).trim();
        if p.is_empty() {
            return Err(Error::Invalid("the principal is empty".to_owned()));
        }
        Ok(p)
    }

    /// The leaf: clientAuth and serverAuth, as Istio's workload certificates.
    pub fn leaf(&self) -> Result<Leaf, Error> {
        let principal = self.principal()?;
        let not_before = self.at.saturating_sub(BACKDATE_SECS);
        let mut leaf =
            Leaf::client_valid(timestamp(not_before)?, timestamp(not_before.saturating_add(self.lifetime_secs))?)
                .server_auth(true);
        if principal.contains('/') {
            leaf = leaf.uri(&format!("spiffe://{principal}"));
        } else {
            leaf = leaf.cn(principal);
            if is_host_name(principal) {
                leaf = leaf.dns(principal);
            }
        }
        Ok(leaf)
    }

    /// The issuing CA, named by [`PrincipalLeaf::issuer`].
    pub fn ca(&self) -> Result<CaSpec, Error> {
        CaSpec::named(self.issuer).map_err(|e| Error::Invalid(format!("issuer {e}")))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code
    use super::*;

    #[test]
    fn parse_dn_encodes_least_specific_first_and_refuses_what_it_cannot_write_back() {
        assert_eq!(
            parse_dn("CN=demo CA,O=example").unwrap(),
            vec![(DnType::OrganizationName, "example".to_owned()), (DnType::CommonName, "demo CA".to_owned())]
        );
        for bad in ["CN=a\\,b", "CN=a+O=b", "CN", "CN=", "X=1", ""] {
            assert!(parse_dn(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_principal_with_a_slash_is_a_spiffe_uri_and_one_without_a_cn_and_maybe_a_dns_name() {
        let at = 1_800_000_000;
        let spec = |principal| PrincipalLeaf { principal, issuer: DEFAULT_ISSUER, lifetime_secs: 3600, at };
        let l = spec("spiffe://cluster.local/ns/a/sa/b").leaf().unwrap();
        assert_eq!(l.uris, vec!["spiffe://cluster.local/ns/a/sa/b"]);
        assert!(l.subject.is_empty() && l.dns.is_empty());
        assert_eq!(l.ekus, vec![ExtendedKeyUsagePurpose::ClientAuth, ExtendedKeyUsagePurpose::ServerAuth]);
        assert_eq!(l.not_before.unix_timestamp(), at - 300);
        assert_eq!(l.not_after.unix_timestamp(), at - 300 + 3600);
        let l = spec("api.example.com").leaf().unwrap();
        assert_eq!(
            (l.subject, l.dns, l.uris.len()),
            (vec![(DnType::CommonName, "api.example.com".to_owned())], vec!["api.example.com".to_owned()], 0)
        );
        let l = spec("Alice Smith").leaf().unwrap();
        assert!(l.dns.is_empty(), "not a host name: no DNS SAN");
        assert!(spec("  ").leaf().is_err());
        assert!(spec("spiffe://").leaf().is_err());
    }

    #[test]
    fn is_host_name_refuses_empty_labels_and_edge_hyphens() {
        assert!(is_host_name("a-b.example"));
        for bad in ["", "a..b", "-a", "a-", "a_b", ".a", &"a".repeat(254)] {
            assert!(!is_host_name(bad), "{bad}");
        }
    }

    #[test]
    fn cn_replaces_and_ekus_toggle() {
        let l = Leaf::client().cn("a").cn("b").server_auth(true).client_auth(false);
        assert_eq!(l.subject, vec![(DnType::CommonName, "b".to_owned())]);
        assert_eq!(l.ekus, vec![ExtendedKeyUsagePurpose::ServerAuth]);
        assert!(Leaf::client().cn("a").no_cn().subject.is_empty());
    }
}
