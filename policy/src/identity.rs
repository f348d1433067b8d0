//! Peer identities from a SPIFFE ID, a DNS SAN (Linkerd), the subject CN or Linkerd's `l5d-client-id`, and which source wins.
//!
//! Identities from different sources must never collide. SPIFFE IDs themselves are validated to
//! the SPIFFE ID spec in `spiffe`.

use core::fmt;

use crate::spiffe::{is_spiffe_uri, SpiffeId, SpiffeIdError};

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
    /// Linkerd's `l5d-client-id` header, set by the linkerd-proxy in front of Envoy, trusted
    /// only from `linkerd.proxyAddresses` (docs/policy.md "Behind Linkerd").
    #[serde(rename = "linkerdHeader")]
    LinkerdHeader,
}

impl fmt::Display for IdentitySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IdentitySource::Spiffe => "spiffe",
            IdentitySource::Dns => "dns",
            IdentitySource::Subject => "subject",
            IdentitySource::LinkerdHeader => "linkerdHeader",
        })
    }
}

/// The authenticated peer, as the policy sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// Compared with `principals`, e.g. `cluster.local/ns/default/sa/sleep`. SPIFFE and Linkerd
    /// principals always contain `/`; CN and plain DNS principals never do, so the two kinds
    /// can never collide.
    pub principal: String,
    /// Compared with `trustDomains`; absent for subject-CN and plain DNS identities.
    pub trust_domain: Option<String>,
    /// The namespace of the Istio form `TD/ns/NS/sa/SA` (logs; matching uses Istio's rule on
    /// the whole principal, see `namespace.rs`).
    pub namespace: Option<String>,
    /// Which identity source produced it.
    pub source: IdentitySource,
    /// The principal as the peer stated it, when a trust-domain alias made `principal` the main
    /// trust domain's (docs/policy.md "Trust-domain aliases"); for logs.
    pub presented: Option<String>,
}

/// Why an identity source that is present yields no identity (the deny reason `invalid_identity`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdentityError {
    /// The SPIFFE ID breaks the SPIFFE ID spec.
    Spiffe(SpiffeIdError),
    /// A SPIFFE ID without a path names a trust domain, not a workload.
    TrustDomainOnly,
    /// More than one SPIFFE URI SAN.
    SeveralSpiffeIds,
    /// A DNS SAN that is not a valid host name.
    DnsName,
    /// Not exactly one CN, or a CN with `/`, a control character or surrounding spaces.
    CommonName,
    /// `l5d-client-id` sent more than once, empty, or not a Linkerd identity.
    LinkerdClientId,
}

impl Identity {
    /// The identity of a validated SPIFFE ID. A trust-domain ID (no path) identifies no workload.
    pub fn from_spiffe(id: &SpiffeId) -> Result<Identity, IdentityError> {
        if id.path().is_empty() {
            return Err(IdentityError::TrustDomainOnly);
        }
        Ok(Identity {
            principal: id.principal(),
            trust_domain: Some(id.trust_domain().to_owned()),
            namespace: id.istio_namespace().map(str::to_owned),
            source: IdentitySource::Spiffe,
            presented: None,
        })
    }

    /// The identity of a DNS SAN, which must be a valid host name: letters (lower-cased),
    /// digits and `-` in labels of 1-63 characters, no trailing dot, no `*`, no `/`. A Linkerd
    /// identity `SA.NS.serviceaccount.identity.CTRL.TD` maps to `TD/ns/NS/sa/SA`, so that one
    /// policy serves Istio and Linkerd; any other name is its own principal (without `/`).
    pub fn from_dns(name: &str) -> Result<Identity, IdentityError> {
        let valid_label = |l: &str| {
            (1..=63).contains(&l.len())
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        if name.is_empty() || name.len() > 253 || !name.split('.').all(valid_label) {
            return Err(IdentityError::DnsName);
        }
        let lower = name.to_ascii_lowercase();
        if let Some((sa_ns, ctrl_td)) = lower.split_once(".serviceaccount.identity.") {
            // Namespaces are DNS labels (no dots); service-account names may hold dots.
            if let (Some((sa, ns)), Some((_ctrl, td))) = (sa_ns.rsplit_once('.'), ctrl_td.split_once('.')) {
                return Ok(Identity {
                    principal: format!("{td}/ns/{ns}/sa/{sa}"),
                    trust_domain: Some(td.to_owned()),
                    namespace: Some(ns.to_owned()),
                    source: IdentitySource::Dns,
                    presented: None,
                });
            }
        }
        Ok(Identity {
            principal: lower,
            trust_domain: None,
            namespace: None,
            source: IdentitySource::Dns,
            presented: None,
        })
    }

    /// The identity in Linkerd's `l5d-client-id` (one copy): a Linkerd DNS identity
    /// `SA.NS.serviceaccount.identity.CTRL.TD`, mapped as [`Identity::from_dns`] maps it, or a
    /// SPIFFE ID (Linkerd's mesh expansion gives external workloads one). Anything else, a plain
    /// DNS name included, is refused: the header never carries one, so it is not Linkerd's.
    pub fn from_linkerd_client_id(values: &[String]) -> Result<Identity, IdentityError> {
        let [value] = values else { return Err(IdentityError::LinkerdClientId) };
        let identity = if is_spiffe_uri(value) {
            value.parse::<SpiffeId>().map_err(IdentityError::Spiffe).and_then(|id| Identity::from_spiffe(&id))?
        } else {
            Identity::from_dns(value).ok().filter(|i| i.trust_domain.is_some()).ok_or(IdentityError::LinkerdClientId)?
        };
        Ok(Identity { source: IdentitySource::LinkerdHeader, ..identity })
    }

    /// The identity of a subject, for certificates from a private CA: exactly one CN in the
    /// whole subject, without `/` (only mesh principals have one), control characters or
    /// surrounding spaces (it must travel unchanged in an HTTP header).
    pub fn from_subject_cns(cns: &[String]) -> Result<Identity, IdentityError> {
        let [cn] = cns else { return Err(IdentityError::CommonName) };
        let bad = cn.is_empty()
            || cn.contains('/')
            || cn.chars().any(char::is_control)
            || cn.starts_with(char::is_whitespace)
            || cn.ends_with(char::is_whitespace);
        if bad {
            return Err(IdentityError::CommonName);
        }
        Ok(Identity {
            principal: cn.clone(),
            trust_domain: None,
            namespace: None,
            source: IdentitySource::Subject,
            presented: None,
        })
    }
}

/// What one identity source found on the peer: nothing, or a candidate to validate.
enum Found<'a> {
    Absent,
    Spiffe(&'a str),
    SeveralSpiffe,
    Dns(&'a str),
    Subject(Option<Vec<String>>),
}

fn validate(found: Found<'_>) -> Option<Result<Identity, IdentityError>> {
    Some(match found {
        Found::Absent => return None,
        Found::Spiffe(uri) => {
            uri.parse::<SpiffeId>().map_err(IdentityError::Spiffe).and_then(|id| Identity::from_spiffe(&id))
        }
        Found::SeveralSpiffe => Err(IdentityError::SeveralSpiffeIds),
        Found::Dns(name) => Identity::from_dns(name),
        Found::Subject(None) => Err(IdentityError::CommonName),
        Found::Subject(Some(cns)) => Identity::from_subject_cns(&cns),
    })
}

/// The identity from the first source in `sources` that is present on the peer. A source that
/// is present but invalid is an error: it never falls through to the next source.
fn resolve<'a>(
    sources: &[IdentitySource],
    mut lookup: impl FnMut(IdentitySource) -> Found<'a>,
) -> Result<Option<Identity>, IdentityError> {
    for &source in sources {
        if let Some(result) = validate(lookup(source)) {
            return result.map(Some);
        }
    }
    Ok(None)
}

/// The identity of a parsed certificate.
pub(crate) fn from_certificate(
    sources: &[IdentitySource],
    uri_sans: &[String],
    dns_sans: &[String],
    subject_cns: &[String],
) -> Result<Option<Identity>, IdentityError> {
    resolve(sources, |source| match source {
        IdentitySource::Spiffe => {
            let mut spiffe = uri_sans.iter().filter(|u| is_spiffe_uri(u));
            match (spiffe.next(), spiffe.next()) {
                (None, _) => Found::Absent,
                (Some(one), None) => Found::Spiffe(one),
                (Some(_), Some(_)) => Found::SeveralSpiffe,
            }
        }
        IdentitySource::Dns => dns_sans.first().map_or(Found::Absent, |d| Found::Dns(d)),
        IdentitySource::Subject => {
            if subject_cns.is_empty() {
                Found::Absent
            } else {
                Found::Subject(Some(subject_cns.to_vec()))
            }
        }
        // Never on a certificate; the engine reads it from the header (`Peer::LinkerdClientId`).
        IdentitySource::LinkerdHeader => Found::Absent,
    })
}

/// The identity from Envoy's connection attributes (no full certificate): the first URI SAN,
/// the first DNS SAN and the subject string, read with the same DN reader as everything else.
pub(crate) fn from_attributes(
    sources: &[IdentitySource],
    uri_san: Option<&str>,
    several_spiffe_uris: bool,
    dns_san: Option<&str>,
    subject: Option<&str>,
) -> Result<Option<Identity>, IdentityError> {
    resolve(sources, |source| match source {
        IdentitySource::Spiffe if several_spiffe_uris => Found::SeveralSpiffe,
        IdentitySource::Spiffe => uri_san.filter(|u| is_spiffe_uri(u)).map_or(Found::Absent, Found::Spiffe),
        IdentitySource::Dns => dns_san.filter(|d| !d.is_empty()).map_or(Found::Absent, Found::Dns),
        IdentitySource::Subject => match subject.filter(|s| !s.is_empty()).map(crate::dn::common_names) {
            None => Found::Absent,
            Some(Some(cns)) if cns.is_empty() => Found::Absent,
            Some(cns) => Found::Subject(cns),
        },
        IdentitySource::LinkerdHeader => Found::Absent,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn istio_form_gives_namespace() {
        let id: SpiffeId = "spiffe://cluster.local/ns/frontend/sa/web".parse().unwrap();
        let ident = Identity::from_spiffe(&id).unwrap();
        assert_eq!(ident.principal, "cluster.local/ns/frontend/sa/web");
        assert_eq!(ident.namespace.as_deref(), Some("frontend"));
        assert_eq!(ident.trust_domain.as_deref(), Some("cluster.local"));
        let other: SpiffeId = "spiffe://cluster.local/workload/web".parse().unwrap();
        assert_eq!(Identity::from_spiffe(&other).unwrap().namespace, None);
        let too_long: SpiffeId = "spiffe://cluster.local/ns/a/sa/b/c".parse().unwrap();
        assert_eq!(too_long.istio_namespace(), None);
    }

    #[test]
    fn trust_domain_id_identifies_no_workload() {
        let id: SpiffeId = "spiffe://alice".parse().unwrap();
        assert_eq!(Identity::from_spiffe(&id), Err(IdentityError::TrustDomainOnly));
    }

    #[test]
    fn linkerd_dns_identity_maps_to_istio_principal() {
        let id = Identity::from_dns("web.emojivoto.serviceaccount.identity.linkerd.cluster.local").unwrap();
        assert_eq!(id.principal, "cluster.local/ns/emojivoto/sa/web");
        assert_eq!(id.namespace.as_deref(), Some("emojivoto"));
        assert_eq!(id.trust_domain.as_deref(), Some("cluster.local"));
        let dotted_sa = Identity::from_dns("my.sa.ns1.serviceaccount.identity.linkerd.example.org").unwrap();
        assert_eq!(dotted_sa.principal, "example.org/ns/ns1/sa/my.sa");
        let plain = Identity::from_dns("API.Example.com").unwrap();
        assert_eq!(plain.principal, "api.example.com");
        assert_eq!(plain.namespace, None);
        let truncated = Identity::from_dns("web.serviceaccount.identity.linkerd").unwrap();
        assert_eq!(truncated.namespace, None);
        assert!(!truncated.principal.contains('/'));
    }

    #[test]
    fn linkerd_client_id_is_one_linkerd_identity_or_spiffe_id() {
        let one = |s: &str| vec![s.to_owned()];
        let id =
            Identity::from_linkerd_client_id(&one("web.shop.serviceaccount.identity.linkerd.cluster.local")).unwrap();
        assert_eq!(id.principal, "cluster.local/ns/shop/sa/web");
        assert_eq!(id.trust_domain.as_deref(), Some("cluster.local"));
        assert_eq!(id.source, IdentitySource::LinkerdHeader);
        let spiffe = Identity::from_linkerd_client_id(&one("spiffe://partner.example/vm/billing")).unwrap();
        assert_eq!(spiffe.principal, "partner.example/vm/billing");
        for bad in [
            vec![],
            one(""),
            one("api.example.com"),
            one("web.shop.serviceaccount.identity.linkerd.cluster.local."),
            one("web.shop.serviceaccount.identity.linkerd.cluster.local/ns/prod/sa/admin"),
            one("spiffe://Cluster.local/ns/a/sa/b"),
            one("spiffe://cluster.local"),
            one("web.shop.serviceaccount.identity.linkerd.cluster.local\u{fffd}"),
            vec!["web.shop.serviceaccount.identity.linkerd.cluster.local".to_owned(); 2],
        ] {
            assert!(Identity::from_linkerd_client_id(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn dns_name_with_a_slash_never_builds_a_principal() {
        for bad in [
            "x.y.serviceaccount.identity.l.cluster.local/ns/prod/sa/admin",
            "admin.prod.serviceaccount.identity.linkerd.cluster.local.",
            "*.example.com",
            "a..b",
            "-a.example",
            "a_b.example",
            "",
            &format!("{}.example", "a".repeat(64)),
        ] {
            assert_eq!(Identity::from_dns(bad), Err(IdentityError::DnsName), "{bad:?}");
        }
    }

    #[test]
    fn common_name_must_be_single_and_header_safe() {
        let one = |s: &str| vec![s.to_owned()];
        assert_eq!(Identity::from_subject_cns(&one("web")).unwrap().principal, "web");
        for bad in [
            one("cluster.local/ns/prod/sa/admin"),
            one("web\r\nx-peerguard-principal: cluster.local/ns/prod/sa/admin"),
            one(" web"),
            one("web "),
            one(""),
            one("a\u{7f}"),
            vec!["a".to_owned(), "b".to_owned()],
            vec![],
        ] {
            assert_eq!(Identity::from_subject_cns(&bad), Err(IdentityError::CommonName), "{bad:?}");
        }
    }

    #[test]
    fn first_present_source_decides_and_never_falls_through() {
        use IdentitySource::*;
        let uris = vec!["spiffe://cluster.local/ns/a/sa/b".to_owned()];
        let bad_uris = vec!["spiffe://Cluster.local/ns/a/sa/b".to_owned()];
        let dns = vec!["web.example".to_owned()];
        let cns = vec!["web".to_owned()];
        let got = from_certificate(&[Spiffe, Dns], &uris, &dns, &cns).unwrap().unwrap();
        assert_eq!(got.principal, "cluster.local/ns/a/sa/b");
        assert!(
            from_certificate(&[Spiffe, Dns], &bad_uris, &dns, &cns).is_err(),
            "invalid SPIFFE ID never falls through to DNS"
        );
        assert_eq!(from_certificate(&[Spiffe], &[], &dns, &cns), Ok(None), "default [spiffe] ignores DNS and CN");
        let two = vec![uris[0].clone(), "spiffe://cluster.local/ns/a/sa/c".to_owned()];
        assert_eq!(from_certificate(&[Spiffe], &two, &[], &[]), Err(IdentityError::SeveralSpiffeIds));
        assert_eq!(from_certificate(&[Dns, Subject], &[], &[], &cns).unwrap().unwrap().principal, "web");
    }

    #[test]
    fn envoy_subject_string_is_read_with_escapes() {
        use IdentitySource::*;
        assert_eq!(
            from_attributes(&[Subject], None, false, None, Some(r"CN=admin\+O=x")).unwrap().unwrap().principal,
            "admin+O=x"
        );
        assert!(from_attributes(&[Subject], None, false, None, Some("CN=a+CN=b")).is_err());
        assert!(from_attributes(&[Subject], None, false, None, Some(r"CN=web\0D\0Ax")).is_err());
        assert_eq!(from_attributes(&[Subject], None, false, None, Some("O=x")), Ok(None));
    }
}
