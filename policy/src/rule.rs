//! Compiled rules (sources, operations, `when` conditions) and how each matches a request.

use std::sync::Arc;

use crate::cert::CertFacts;
use crate::identity::Identity;
use crate::namespace::NamespaceMatcher;
use crate::pattern::StringMatcher;
use crate::request::{HeaderValues, LazyRequest};
use crate::template::PathTemplate;

/// `when` keys, resolved at compile time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum WhenKey {
    /// `request.headers[NAME]`: the index of NAME in `Engine::header_names`.
    Header(usize),
    SourcePrincipal,
    SourceNamespace,
    DestinationPort,
    ConnectionSni,
    CertSubject,
    CertSubjectCn,
    CertSubjectO,
    CertSubjectOu,
    CertIssuer,
    CertIssuerCn,
    CertIssuerO,
    CertSanUri,
    CertSanDns,
    CertSerial,
    CertSha256,
    CertSpkiSha256,
}

impl WhenKey {
    /// Keys that only a full certificate can answer (subject is also an Envoy attribute).
    pub(crate) fn needs_full_certificate(&self) -> bool {
        matches!(
            self,
            WhenKey::CertSubjectO
                | WhenKey::CertSubjectOu
                | WhenKey::CertIssuer
                | WhenKey::CertIssuerCn
                | WhenKey::CertIssuerO
                | WhenKey::CertSanDns
                | WhenKey::CertSerial
                | WhenKey::CertSha256
                | WhenKey::CertSpkiSha256
        )
    }
}

/// A field of a source or operation: boxed, so that the many fields a rule leaves out cost one
/// pointer each rather than a whole matcher (the README's "Performance" section gives the heap
/// per rule).
pub(crate) type Field<T> = Option<Box<T>>;

#[derive(Debug, Default)]
pub(crate) struct CompiledSource {
    pub principals: Field<StringMatcher>,
    pub not_principals: Field<StringMatcher>,
    pub namespaces: Field<NamespaceMatcher>,
    pub not_namespaces: Field<NamespaceMatcher>,
    pub trust_domains: Field<StringMatcher>,
    pub not_trust_domains: Field<StringMatcher>,
}

#[derive(Debug, Default)]
pub(crate) struct CompiledOperation {
    pub hosts: Field<StringMatcher>,
    pub not_hosts: Field<StringMatcher>,
    pub ports: Field<Vec<u32>>,
    pub not_ports: Field<Vec<u32>>,
    pub methods: Field<StringMatcher>,
    pub not_methods: Field<StringMatcher>,
    pub paths: Field<PathMatcher>,
    pub not_paths: Field<PathMatcher>,
}

/// `paths` / `notPaths`: Istio string patterns and Istio path templates (`{*}`, `{**}`), ORed.
#[derive(Debug, Default)]
pub(crate) struct PathMatcher {
    pub strings: StringMatcher,
    pub templates: Vec<PathTemplate>,
}

impl PathMatcher {
    fn matches(&self, path: Option<&str>) -> bool {
        let Some(p) = path else { return false };
        self.strings.matches(Some(p)) || self.templates.iter().any(|t| t.matches(p))
    }
}

/// The values of a `when` condition, in the form its key compares.
#[derive(Debug)]
pub(crate) enum Values {
    Strings(StringMatcher),
    Ports(Vec<u32>),
    Namespaces(NamespaceMatcher),
}

#[derive(Debug)]
pub(crate) struct CompiledCondition {
    pub key: WhenKey,
    pub values: Option<Values>,
    pub not_values: Option<Values>,
    /// The condition belongs to a DENY policy: with several copies of a header it matches when
    /// the joined value or any single copy does (fail closed), see `header_condition`.
    pub deny_side: bool,
}

#[derive(Debug)]
pub(crate) struct CompiledRule {
    pub policy: Arc<str>,
    pub from: Option<Vec<CompiledSource>>,
    pub to: Option<Vec<CompiledOperation>>,
    pub when: Vec<CompiledCondition>,
}

/// What one request looks like to the matchers.
pub(crate) struct EvalCtx<'a> {
    pub identity: Option<&'a Identity>,
    pub cert: Option<&'a CertFacts>,
    /// Set when only Envoy attributes are known: the subject for `cert.subject*` keys.
    pub attr_subject: Option<&'a str>,
    pub attr_uri_san: Option<&'a str>,
    pub req: &'a LazyRequest<'a>,
}

impl EvalCtx<'_> {
    pub(crate) fn principal(&self) -> Option<&str> {
        self.identity.map(|i| i.principal.as_str())
    }
}

/// A positive field: absent matcher means "any"; an absent value never matches.
fn positive(m: &Field<StringMatcher>, v: Option<&str>) -> bool {
    m.as_ref().is_none_or(|m| m.matches(v))
}

/// A `not*` field: an absent value always passes (Istio's rule for absent attributes).
fn negative(m: &Field<StringMatcher>, v: Option<&str>) -> bool {
    m.as_ref().is_none_or(|m| !m.matches(v))
}

impl CompiledSource {
    fn matches(&self, ctx: &EvalCtx<'_>) -> bool {
        let principal = ctx.principal();
        let td = ctx.identity.and_then(|i| i.trust_domain.as_deref());
        positive(&self.principals, principal)
            && negative(&self.not_principals, principal)
            && self.namespaces.as_ref().is_none_or(|m| m.matches(principal))
            && self.not_namespaces.as_ref().is_none_or(|m| !m.matches(principal))
            && positive(&self.trust_domains, td)
            && negative(&self.not_trust_domains, td)
    }
}

/// `host:port` also matches a rule for `host` (a known difference from Istio, which compares
/// `:authority` exactly). The request's host is already lower-case without its trailing dot.
fn host_matches(m: &StringMatcher, host: Option<&str>) -> bool {
    let Some(host) = host else { return false };
    m.matches(Some(host)) || matches!(crate::request::split_host_port(host), (name, Some(_)) if m.matches(Some(name)))
}

impl CompiledOperation {
    pub(crate) fn matches(&self, ctx: &EvalCtx<'_>) -> bool {
        let req = ctx.req;
        self.hosts.as_ref().is_none_or(|m| host_matches(m, req.host()))
            && self.not_hosts.as_ref().is_none_or(|m| !host_matches(m, req.host()))
            && self.ports.as_ref().is_none_or(|p| req.port().is_some_and(|x| p.contains(&x)))
            && self.not_ports.as_ref().is_none_or(|p| !req.port().is_some_and(|x| p.contains(&x)))
            && positive(&self.methods, req.method())
            && negative(&self.not_methods, req.method())
            && self.paths.as_ref().is_none_or(|m| m.matches(req.path()))
            && self.not_paths.as_ref().is_none_or(|m| !m.matches(req.path()))
    }
}

impl Values {
    fn matches_one(&self, v: &str) -> bool {
        match self {
            Values::Strings(m) => m.matches(Some(v)),
            Values::Ports(ports) => parse_port(v).is_some_and(|p| ports.contains(&p)),
            Values::Namespaces(m) => m.matches(Some(v)),
        }
    }
}

/// A port as Istio's validation accepts it: decimal digits (leading zeros allowed), 0-65535.
pub(crate) fn parse_port(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits = s.trim_start_matches('0');
    if digits.len() > 5 {
        return None;
    }
    let n: u32 = if digits.is_empty() { 0 } else { digits.parse().ok()? };
    (n <= 65535).then_some(n)
}

/// Several copies of a header. Envoy's RBAC matches the copies joined with `,`, but a join alone
/// lets the order hide a value (`admin,user` does not end in `admin`). So: in a DENY policy,
/// `values` matches if the joined value or any copy matches, `notValues` if no pattern matches
/// the joined value; in ALLOW and AUDIT, `values` matches only the joined value, and `notValues`
/// only if no pattern matches the joined value nor any copy. An absent header never matches
/// `values` and always matches `notValues`.
fn header_condition(values: Option<&Values>, not_values: Option<&Values>, h: &HeaderValues, deny_side: bool) -> bool {
    let Some(joined) = h.joined.as_deref() else {
        return values.is_none();
    };
    let any_copy = |m: &Values| h.each.iter().any(|v| m.matches_one(v));
    let values_ok = values.is_none_or(|m| m.matches_one(joined) || (deny_side && any_copy(m)));
    let not_values_ok = not_values.is_none_or(|m| !(m.matches_one(joined) || (!deny_side && any_copy(m))));
    values_ok && not_values_ok
}

impl CompiledCondition {
    /// One value (or none): `values` must match it, `notValues` must not.
    fn check(&self, v: Option<&str>) -> bool {
        let hit = |m: &Values| v.is_some_and(|v| m.matches_one(v));
        self.values.as_ref().is_none_or(hit) && !self.not_values.as_ref().is_some_and(hit)
    }

    /// A multi-valued attribute (SANs, several CNs): any value matches `values`, none `notValues`.
    fn check_many(&self, vs: &[String]) -> bool {
        let hit = |m: &Values| vs.iter().any(|v| m.matches_one(v));
        self.values.as_ref().is_none_or(hit) && !self.not_values.as_ref().is_some_and(hit)
    }

    fn matches(&self, ctx: &EvalCtx<'_>) -> bool {
        let cert = ctx.cert;
        let cert_many =
            |f: fn(&CertFacts) -> &Vec<String>| cert.map_or_else(|| self.check(None), |c| self.check_many(f(c)));
        match &self.key {
            WhenKey::Header(i) => match ctx.req.header(*i) {
                Some(h) => header_condition(self.values.as_ref(), self.not_values.as_ref(), h, self.deny_side),
                None => self.check(None),
            },
            WhenKey::SourcePrincipal => self.check(ctx.principal()),
            WhenKey::SourceNamespace => {
                // Namespaces match on the whole principal, as `namespaces` does.
                let hit = |m: &Values| match m {
                    Values::Namespaces(n) => n.matches(ctx.principal()),
                    _ => false,
                };
                self.values.as_ref().is_none_or(hit) && !self.not_values.as_ref().is_some_and(hit)
            }
            WhenKey::DestinationPort => {
                let port = ctx.req.port().map(|p| p.to_string());
                self.check(port.as_deref())
            }
            WhenKey::ConnectionSni => self.check(ctx.req.sni()),
            WhenKey::CertSubject => self.check(cert.map(|c| c.subject.as_str()).or(ctx.attr_subject)),
            WhenKey::CertSubjectCn => match cert {
                Some(c) => self.check_many(&c.subject_cn),
                None => match ctx.attr_subject {
                    None => self.check(None),
                    Some(s) => self.check_many(&crate::dn::common_names(s).unwrap_or_default()),
                },
            },
            WhenKey::CertSubjectO => cert_many(|c| &c.subject_o),
            WhenKey::CertSubjectOu => cert_many(|c| &c.subject_ou),
            WhenKey::CertIssuer => self.check(cert.map(|c| c.issuer.as_str())),
            WhenKey::CertIssuerCn => cert_many(|c| &c.issuer_cn),
            WhenKey::CertIssuerO => cert_many(|c| &c.issuer_o),
            WhenKey::CertSanUri => match cert {
                Some(c) => self.check_many(&c.uri_sans),
                None => self.check(ctx.attr_uri_san),
            },
            WhenKey::CertSanDns => cert_many(|c| &c.dns_sans),
            WhenKey::CertSerial => self.check(cert.map(|c| c.serial_hex.as_str())),
            WhenKey::CertSha256 => self.check(cert.map(|c| c.sha256_hex.as_str())),
            WhenKey::CertSpkiSha256 => self.check(cert.map(|c| c.spki_sha256_b64.as_str())),
        }
    }
}

impl CompiledRule {
    pub(crate) fn matches(&self, ctx: &EvalCtx<'_>) -> bool {
        self.from.as_ref().is_none_or(|f| f.iter().any(|s| s.matches(ctx)))
            && self.to.as_ref().is_none_or(|t| t.iter().any(|o| o.matches(ctx)))
            && self.when.iter().all(|c| c.matches(ctx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn ports_take_istio_forms_only() {
        assert_eq!(parse_port("8080"), Some(8080));
        assert_eq!(parse_port("08080"), Some(8080));
        assert_eq!(parse_port("0"), Some(0));
        assert_eq!(parse_port("000000000080"), Some(80));
        assert_eq!(parse_port("65535"), Some(65535));
        for bad in ["65536", "+80", "-1", " 80", "80 ", "0x50", "", "8o"] {
            assert_eq!(parse_port(bad), None, "{bad:?}");
        }
    }

    fn hv(vals: &[&str]) -> HeaderValues {
        let each: Vec<String> = vals.iter().map(|s| (*s).to_owned()).collect();
        HeaderValues { joined: (!each.is_empty()).then(|| each.join(",")), each }
    }

    fn strings(p: &[&str]) -> Values {
        Values::Strings(StringMatcher::new(p.iter().map(|p| crate::pattern::Pattern::parse(p).unwrap())))
    }

    #[test]
    fn repeated_header_cannot_hide_a_denied_value() {
        let admin = strings(&["*admin"]);
        // DENY values: any copy is enough.
        assert!(header_condition(Some(&admin), None, &hv(&["user", "admin"]), true));
        assert!(header_condition(Some(&admin), None, &hv(&["admin", "user"]), true));
        // ALLOW values: only the joined value.
        let exact = strings(&["admin"]);
        assert!(!header_condition(Some(&exact), None, &hv(&["admin", "user"]), false));
        assert!(header_condition(Some(&exact), None, &hv(&["admin"]), false));
        // ALLOW notValues: no copy may match.
        assert!(!header_condition(None, Some(&exact), &hv(&["user", "admin"]), false));
        // DENY notValues: only the joined value counts, so a second copy cannot make it miss.
        assert!(header_condition(None, Some(&exact), &hv(&["admin", "admin"]), true));
        // Absent: values never, notValues always.
        assert!(!header_condition(Some(&admin), None, &hv(&[]), true));
        assert!(header_condition(None, Some(&admin), &hv(&[]), false));
    }
}
