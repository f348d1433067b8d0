//! Peer identities: SPIFFE IDs (validated to the SPIFFE ID spec), Linkerd DNS identities and subject CNs.

use core::fmt;
use core::str::FromStr;

/// The maximum length of a SPIFFE ID in bytes (SPIFFE ID spec, section 2.3).
pub const MAX_SPIFFE_ID_LEN: usize = 2048;

/// A SPIFFE ID that passed validation.
///
/// See <https://github.com/spiffe/spiffe/blob/main/standards/SPIFFE-ID.md>.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpiffeId {
    trust_domain: String,
    path: String,
}

/// Why a SPIFFE ID was refused; each variant names the clause of the spec it breaks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SpiffeIdError {
    /// The scheme is not exactly `spiffe://` (section 2).
    WrongScheme,
    /// The trust domain is empty (section 2.1).
    EmptyTrustDomain,
    /// The trust domain has a character outside `[a-z0-9.-_]`, for example an upper-case letter,
    /// a port or userinfo (section 2.1).
    BadTrustDomainChar(char),
    /// A path segment is empty, for example `//` or a trailing `/` (section 2.2).
    EmptySegment,
    /// A path segment is `.` or `..` (section 2.2).
    DotSegment,
    /// A path character outside `[a-zA-Z0-9.-_]`; percent-encoding is not allowed (section 2.2).
    BadPathChar(char),
    /// A query or fragment is present (section 2).
    QueryOrFragment,
    /// Longer than 2048 bytes (section 2.3).
    TooLong,
}

impl fmt::Display for SpiffeIdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpiffeIdError::WrongScheme => f.write_str("scheme must be exactly \"spiffe://\""),
            SpiffeIdError::EmptyTrustDomain => f.write_str("trust domain is empty"),
            SpiffeIdError::BadTrustDomainChar(c) => {
                write!(f, "trust domain contains {c:?}; only a-z, 0-9, '.', '-' and '_' are allowed")
            }
            SpiffeIdError::EmptySegment => f.write_str("path has an empty segment"),
            SpiffeIdError::DotSegment => f.write_str("path has a '.' or '..' segment"),
            SpiffeIdError::BadPathChar(c) => {
                write!(f, "path contains {c:?}; only a-z, A-Z, 0-9, '.', '-' and '_' are allowed")
            }
            SpiffeIdError::QueryOrFragment => f.write_str("query and fragment are not allowed"),
            SpiffeIdError::TooLong => write!(f, "longer than {MAX_SPIFFE_ID_LEN} bytes"),
        }
    }
}

impl SpiffeId {
    /// The trust domain, e.g. `cluster.local`.
    pub fn trust_domain(&self) -> &str {
        &self.trust_domain
    }

    /// The path, e.g. `/ns/default/sa/sleep`, or empty.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The principal in Istio's form: the ID without `spiffe://`.
    pub fn principal(&self) -> String {
        format!("{}{}", self.trust_domain, self.path)
    }

    /// The namespace when the path has Istio's `/ns/NS/sa/SA` form.
    pub fn istio_namespace(&self) -> Option<&str> {
        let mut segs = self.path.strip_prefix('/')?.split('/');
        match (segs.next(), segs.next(), segs.next(), segs.next(), segs.next()) {
            (Some("ns"), Some(ns), Some("sa"), Some(_sa), None) => Some(ns),
            _ => None,
        }
    }
}

impl FromStr for SpiffeId {
    type Err = SpiffeIdError;

    fn from_str(s: &str) -> Result<SpiffeId, SpiffeIdError> {
        if s.len() > MAX_SPIFFE_ID_LEN {
            return Err(SpiffeIdError::TooLong);
        }
        let rest = s.strip_prefix("spiffe://").ok_or(SpiffeIdError::WrongScheme)?;
        if rest.contains(['?', '#']) {
            return Err(SpiffeIdError::QueryOrFragment);
        }
        let (td, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if td.is_empty() {
            return Err(SpiffeIdError::EmptyTrustDomain);
        }
        if let Some(c) =
            td.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-' | '_')))
        {
            return Err(SpiffeIdError::BadTrustDomainChar(c));
        }
        if !path.is_empty() {
            for seg in path[1..].split('/') {
                if seg.is_empty() {
                    return Err(SpiffeIdError::EmptySegment);
                }
                if seg == "." || seg == ".." {
                    return Err(SpiffeIdError::DotSegment);
                }
                if let Some(c) = seg.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))) {
                    return Err(SpiffeIdError::BadPathChar(c));
                }
            }
        }
        Ok(SpiffeId { trust_domain: td.to_owned(), path: path.to_owned() })
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "spiffe://{}{}", self.trust_domain, self.path)
    }
}

/// Where an identity came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IdentitySource {
    /// The SPIFFE URI SAN.
    Spiffe,
    /// The first DNS SAN (Linkerd identities map to the SPIFFE principal form).
    Dns,
    /// The subject CN.
    Subject,
}

impl fmt::Display for IdentitySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IdentitySource::Spiffe => "spiffe",
            IdentitySource::Dns => "dns",
            IdentitySource::Subject => "subject",
        })
    }
}

/// The authenticated peer, as the policy sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// Compared with `principals`, e.g. `cluster.local/ns/default/sa/sleep`.
    pub principal: String,
    /// Compared with `trustDomains`; absent for subject-CN identities.
    pub trust_domain: Option<String>,
    /// Compared with `namespaces`.
    pub namespace: Option<String>,
    /// Which identity source produced it.
    pub source: IdentitySource,
}

impl Identity {
    /// The identity of a validated SPIFFE ID.
    pub fn from_spiffe(id: &SpiffeId) -> Identity {
        Identity {
            principal: id.principal(),
            trust_domain: Some(id.trust_domain().to_owned()),
            namespace: id.istio_namespace().map(str::to_owned),
            source: IdentitySource::Spiffe,
        }
    }

    /// The identity of a DNS SAN. A Linkerd identity
    /// `SA.NS.serviceaccount.identity.CTRL.TD` maps to `TD/ns/NS/sa/SA`, so that one
    /// policy serves Istio and Linkerd; any other name is its own principal.
    pub fn from_dns(name: &str) -> Identity {
        let lower = name.to_ascii_lowercase();
        if let Some((sa_ns, ctrl_td)) = lower.split_once(".serviceaccount.identity.") {
            // Namespaces are DNS labels (no dots); service-account names may hold dots.
            if let (Some((sa, ns)), Some((_ctrl, td))) = (sa_ns.rsplit_once('.'), ctrl_td.split_once('.')) {
                if !sa.is_empty() && !ns.is_empty() && !td.is_empty() {
                    return Identity {
                        principal: format!("{td}/ns/{ns}/sa/{sa}"),
                        trust_domain: Some(td.to_owned()),
                        namespace: Some(ns.to_owned()),
                        source: IdentitySource::Dns,
                    };
                }
            }
        }
        Identity { principal: lower, trust_domain: None, namespace: None, source: IdentitySource::Dns }
    }

    /// The identity of a subject CN, for certificates from a private CA.
    pub fn from_subject_cn(cn: &str) -> Identity {
        Identity { principal: cn.to_owned(), trust_domain: None, namespace: None, source: IdentitySource::Subject }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    type Expected = Result<(&'static str, &'static str), SpiffeIdError>;

    #[test]
    fn spiffe_id_table() {
        use SpiffeIdError::*;
        let long = format!("spiffe://td/{}", "a".repeat(MAX_SPIFFE_ID_LEN));
        let cases: Vec<(&str, Expected)> = vec![
            ("spiffe://cluster.local/ns/default/sa/sleep", Ok(("cluster.local", "/ns/default/sa/sleep"))),
            ("spiffe://example.org", Ok(("example.org", ""))),
            ("spiffe://td-1_x.y/a.b-c_D/E", Ok(("td-1_x.y", "/a.b-c_D/E"))),
            ("http://example.org/a", Err(WrongScheme)),
            ("SPIFFE://example.org/a", Err(WrongScheme)),
            ("spiffe:/example.org", Err(WrongScheme)),
            ("spiffe://", Err(EmptyTrustDomain)),
            ("spiffe:///a", Err(EmptyTrustDomain)),
            ("spiffe://Example.org/a", Err(BadTrustDomainChar('E'))),
            ("spiffe://example.org:8080/a", Err(BadTrustDomainChar(':'))),
            ("spiffe://user@example.org/a", Err(BadTrustDomainChar('@'))),
            ("spiffe://example.org/", Err(EmptySegment)),
            ("spiffe://example.org/a//b", Err(EmptySegment)),
            ("spiffe://example.org/a/", Err(EmptySegment)),
            ("spiffe://example.org/a/./b", Err(DotSegment)),
            ("spiffe://example.org/a/..", Err(DotSegment)),
            ("spiffe://example.org/a%20b", Err(BadPathChar('%'))),
            ("spiffe://example.org/a b", Err(BadPathChar(' '))),
            ("spiffe://example.org/a?x=1", Err(QueryOrFragment)),
            ("spiffe://example.org/a#f", Err(QueryOrFragment)),
            (long.as_str(), Err(TooLong)),
        ];
        for (input, expected) in cases {
            let got = input.parse::<SpiffeId>();
            match expected {
                Ok((td, path)) => {
                    let id = got.unwrap_or_else(|e| panic!("{input} should be valid: {e}"));
                    assert_eq!((id.trust_domain(), id.path()), (td, path), "{input}");
                    assert_eq!(id.to_string(), input, "display round-trips");
                }
                Err(e) => assert_eq!(got, Err(e), "{input}"),
            }
        }
    }

    #[test]
    fn istio_form_gives_namespace() {
        let id: SpiffeId = "spiffe://cluster.local/ns/frontend/sa/web".parse().unwrap();
        let ident = Identity::from_spiffe(&id);
        assert_eq!(ident.principal, "cluster.local/ns/frontend/sa/web");
        assert_eq!(ident.namespace.as_deref(), Some("frontend"));
        assert_eq!(ident.trust_domain.as_deref(), Some("cluster.local"));
        let other: SpiffeId = "spiffe://cluster.local/workload/web".parse().unwrap();
        assert_eq!(Identity::from_spiffe(&other).namespace, None);
        let too_long: SpiffeId = "spiffe://cluster.local/ns/a/sa/b/c".parse().unwrap();
        assert_eq!(too_long.istio_namespace(), None);
    }

    #[test]
    fn linkerd_dns_identity_maps_to_istio_principal() {
        let id = Identity::from_dns("web.emojivoto.serviceaccount.identity.linkerd.cluster.local");
        assert_eq!(id.principal, "cluster.local/ns/emojivoto/sa/web");
        assert_eq!(id.namespace.as_deref(), Some("emojivoto"));
        assert_eq!(id.trust_domain.as_deref(), Some("cluster.local"));
        let dotted_sa = Identity::from_dns("my.sa.ns1.serviceaccount.identity.linkerd.example.org");
        assert_eq!(dotted_sa.principal, "example.org/ns/ns1/sa/my.sa");
        let plain = Identity::from_dns("API.Example.com");
        assert_eq!(plain.principal, "api.example.com");
        assert_eq!(plain.namespace, None);
        let truncated = Identity::from_dns("web.serviceaccount.identity.linkerd");
        assert_eq!(truncated.namespace, None);
    }
}
