//! The compiled policy and the decision procedure (PRODUCT.md "Decision order").

use std::sync::Arc;

use crate::cert::CertFacts;
use crate::certreq::{CertRequirements, StaticVerdict};
use crate::config::{Mode, Mtls};
use crate::fnv::FnvHashMap;
use crate::identity::{Identity, IdentitySource, SpiffeId};
use crate::pattern::StringMatcher;
use crate::reason::Reason;

/// Looks up request headers by lower-case name.
pub trait HeaderSource {
    /// The header's value; `None` when absent or not valid UTF-8.
    fn header(&self, name: &str) -> Option<&str>;
}

impl HeaderSource for [(String, String)] {
    fn header(&self, name: &str) -> Option<&str> {
        self.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

impl HeaderSource for Vec<(String, String)> {
    fn header(&self, name: &str) -> Option<&str> {
        self.as_slice().header(name)
    }
}

/// The request facts the engine reads.
pub struct Request<'a> {
    /// `:method`.
    pub method: &'a str,
    /// `:path`, raw, with any query string.
    pub path: &'a str,
    /// `:authority`.
    pub host: &'a str,
    /// Destination port.
    pub port: Option<u32>,
    /// TLS SNI.
    pub sni: Option<&'a str>,
    /// Other headers (`request.headers[...]` conditions).
    pub headers: &'a dyn HeaderSource,
}

/// The connection attributes Envoy gives without the full certificate.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerAttributes {
    /// `connection.uri_san_peer_certificate` (Envoy gives the first URI SAN only).
    pub uri_san: Option<String>,
    /// `connection.dns_san_peer_certificate` (the first DNS SAN).
    pub dns_san: Option<String>,
    /// `connection.subject_peer_certificate`, RFC 4514.
    pub subject: Option<String>,
}

/// A parsed certificate with its time-independent verdicts, cached per connection digest.
#[derive(Debug)]
pub struct PreparedCert {
    /// The parsed facts.
    pub facts: CertFacts,
    /// Identity, or `invalid_identity`.
    pub identity: Result<Option<Arc<Identity>>, Reason>,
    /// `[global, certificateRules[0], certificateRules[1], ...]`; `None` where no requirement is set.
    verdicts: Vec<Option<StaticVerdict>>,
    /// The cache entry must not be used at or after this time.
    pub valid_until: i64,
}

/// What the engine knows of the peer.
pub enum Peer<'a> {
    /// No verified peer certificate on the connection.
    None,
    /// A peer certificate that could not be parsed.
    Unparseable,
    /// Only Envoy's connection attributes (no full certificate available).
    Attributes(&'a PeerAttributes),
    /// A full, parsed certificate.
    Certificate(&'a PreparedCert),
}

/// The outcome of one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request proceeds. In dry run this is true even when `reason` is set.
    pub allowed: bool,
    /// The deny (or would-deny) reason.
    pub reason: Option<Reason>,
    /// True when `reason` was not enforced because of `mode: dryRun` or a policy's `dryRun`.
    pub dry_run: bool,
    /// The policy or certificate rule behind the reason, or the ALLOW policy that allowed.
    pub policy: Option<Arc<str>>,
    /// The peer's identity, when there is one (shared with the cached certificate, not copied).
    pub identity: Option<Arc<Identity>>,
    /// AUDIT policies that matched.
    pub audit: Vec<Arc<str>>,
    /// The certificate is within `minRemaining` of expiry.
    pub expiring: bool,
}

impl Decision {
    fn deny(reason: Reason) -> Decision {
        Decision {
            allowed: false,
            reason: Some(reason),
            dry_run: false,
            policy: None,
            identity: None,
            audit: Vec::new(),
            expiring: false,
        }
    }

    /// A deny for an invalid configuration.
    pub fn config_invalid() -> Decision {
        Decision::deny(Reason::ConfigInvalid)
    }

    /// The principal, if any.
    pub fn principal(&self) -> Option<&str> {
        self.identity.as_ref().map(|i| i.principal.as_str())
    }
}

/// `when` keys, resolved at compile time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum WhenKey {
    Header(String),
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

#[derive(Debug, Default)]
pub(crate) struct CompiledSource {
    pub principals: Option<StringMatcher>,
    pub not_principals: Option<StringMatcher>,
    pub namespaces: Option<StringMatcher>,
    pub not_namespaces: Option<StringMatcher>,
    pub trust_domains: Option<StringMatcher>,
    pub not_trust_domains: Option<StringMatcher>,
}

#[derive(Debug, Default)]
pub(crate) struct CompiledOperation {
    pub hosts: Option<StringMatcher>,
    pub not_hosts: Option<StringMatcher>,
    pub ports: Option<Vec<u32>>,
    pub not_ports: Option<Vec<u32>>,
    pub methods: Option<StringMatcher>,
    pub not_methods: Option<StringMatcher>,
    pub paths: Option<StringMatcher>,
    pub not_paths: Option<StringMatcher>,
}

#[derive(Debug)]
pub(crate) struct CompiledCondition {
    pub key: WhenKey,
    pub values: Option<StringMatcher>,
    pub not_values: Option<StringMatcher>,
}

#[derive(Debug)]
pub(crate) struct CompiledRule {
    pub policy: Arc<str>,
    pub from: Option<Vec<CompiledSource>>,
    pub to: Option<Vec<CompiledOperation>>,
    pub when: Vec<CompiledCondition>,
}

/// Rules of one action, with an index so that a decision does not scan every rule.
#[derive(Debug, Default)]
pub(crate) struct RuleSet {
    pub rules: Vec<CompiledRule>,
    /// Rules whose every source lists only exact principals, by principal.
    pub by_principal: FnvHashMap<String, Vec<u32>>,
    /// Rules whose every source lists only exact namespaces, by namespace.
    pub by_namespace: FnvHashMap<String, Vec<u32>>,
    /// Rules that must always be evaluated.
    pub unindexed: Vec<u32>,
}

impl RuleSet {
    pub(crate) fn push(&mut self, rule: CompiledRule) {
        let id = u32::try_from(self.rules.len()).unwrap_or(u32::MAX);
        let index_by = |field: fn(&CompiledSource) -> &Option<StringMatcher>| -> Option<Vec<String>> {
            let sources = rule.from.as_ref()?;
            let mut keys = Vec::new();
            for s in sources {
                keys.extend(field(s).as_ref()?.exact_only()?.iter().cloned());
            }
            (!sources.is_empty()).then_some(keys)
        };
        if let Some(keys) = index_by(|s| &s.principals) {
            for k in keys {
                self.by_principal.entry(k).or_default().push(id);
            }
        } else if let Some(keys) = index_by(|s| &s.namespaces) {
            for k in keys {
                self.by_namespace.entry(k).or_default().push(id);
            }
        } else {
            self.unindexed.push(id);
        }
        self.rules.push(rule);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The first rule, in document order, that matches.
    fn first_match(&self, ctx: &EvalCtx<'_>) -> Option<&CompiledRule> {
        let mut best: Option<u32> = None;
        let mut scan = |ids: &[u32]| {
            for &id in ids {
                if best.is_some_and(|b| b <= id) {
                    return;
                }
                if self.rules.get(id as usize).is_some_and(|r| r.matches(ctx)) {
                    best = Some(id);
                    return;
                }
            }
        };
        if let Some(ident) = ctx.identity {
            if let Some(ids) = self.by_principal.get(&ident.principal) {
                scan(ids);
            }
            if let Some(ids) = ident.namespace.as_ref().and_then(|ns| self.by_namespace.get(ns)) {
                scan(ids);
            }
        }
        scan(&self.unindexed);
        best.and_then(|id| self.rules.get(id as usize))
    }

    /// Every matching rule's policy, once per policy, in document order. Only the rules the
    /// index leaves as candidates are evaluated, as in `first_match`.
    fn all_matching_policies(&self, ctx: &EvalCtx<'_>) -> Vec<Arc<str>> {
        let mut ids: Vec<u32> = self.unindexed.clone();
        if let Some(ident) = ctx.identity {
            ids.extend(self.by_principal.get(&ident.principal).into_iter().flatten());
            ids.extend(ident.namespace.as_ref().and_then(|ns| self.by_namespace.get(ns)).into_iter().flatten());
        }
        ids.sort_unstable();
        ids.dedup();
        let mut out: Vec<Arc<str>> = Vec::new();
        for r in ids.iter().filter_map(|&id| self.rules.get(id as usize)) {
            if r.matches(ctx) && !out.iter().any(|p| Arc::ptr_eq(p, &r.policy)) {
                out.push(r.policy.clone());
            }
        }
        out
    }
}

/// What one request looks like to the matchers.
pub(crate) struct EvalCtx<'a> {
    pub identity: Option<&'a Identity>,
    pub cert: Option<&'a CertFacts>,
    /// Set when only Envoy attributes are known: the subject for `cert.subject*` keys.
    pub attr_subject: Option<&'a str>,
    pub attr_uri_san: Option<&'a str>,
    pub method: &'a str,
    pub path: &'a str,
    pub host: &'a str,
    pub port: Option<u32>,
    pub sni: Option<&'a str>,
    pub headers: &'a dyn HeaderSource,
}

fn opt_matches(m: &Option<StringMatcher>, v: Option<&str>) -> bool {
    m.as_ref().is_none_or(|m| m.matches(v))
}

fn opt_not_matches(m: &Option<StringMatcher>, v: Option<&str>) -> bool {
    m.as_ref().is_none_or(|m| !m.matches(v))
}

impl CompiledSource {
    fn matches(&self, ctx: &EvalCtx<'_>) -> bool {
        let principal = ctx.identity.map(|i| i.principal.as_str());
        let namespace = ctx.identity.and_then(|i| i.namespace.as_deref());
        let td = ctx.identity.and_then(|i| i.trust_domain.as_deref());
        opt_matches(&self.principals, principal)
            && opt_not_matches(&self.not_principals, principal)
            && opt_matches(&self.namespaces, namespace)
            && opt_not_matches(&self.not_namespaces, namespace)
            && opt_matches(&self.trust_domains, td)
            && opt_not_matches(&self.not_trust_domains, td)
    }
}

fn host_matches(m: &StringMatcher, host: &str) -> bool {
    if m.matches(Some(host)) {
        return true;
    }
    // `example.com:8080` also matches a rule for `example.com`, as in Istio.
    match host.rsplit_once(':') {
        Some((h, port)) if !h.is_empty() && !h.ends_with(']') && port.bytes().all(|b| b.is_ascii_digit()) => {
            m.matches(Some(h))
        }
        Some((h, port)) if h.ends_with(']') && port.bytes().all(|b| b.is_ascii_digit()) => m.matches(Some(h)),
        _ => false,
    }
}

impl CompiledOperation {
    fn matches(&self, ctx: &EvalCtx<'_>) -> bool {
        if let Some(h) = &self.hosts {
            if !host_matches(h, ctx.host) {
                return false;
            }
        }
        if let Some(h) = &self.not_hosts {
            if host_matches(h, ctx.host) {
                return false;
            }
        }
        if let Some(ports) = &self.ports {
            if !ctx.port.is_some_and(|p| ports.contains(&p)) {
                return false;
            }
        }
        if let Some(ports) = &self.not_ports {
            if ctx.port.is_some_and(|p| ports.contains(&p)) {
                return false;
            }
        }
        opt_matches(&self.methods, Some(ctx.method))
            && opt_not_matches(&self.not_methods, Some(ctx.method))
            && opt_matches(&self.paths, Some(ctx.path))
            && opt_not_matches(&self.not_paths, Some(ctx.path))
    }
}

impl CompiledCondition {
    fn matches(&self, ctx: &EvalCtx<'_>) -> bool {
        let check = |v: Option<&str>| opt_matches(&self.values, v) && opt_not_matches(&self.not_values, v);
        let check_many = |vs: &[String]| {
            self.values.as_ref().is_none_or(|m| m.matches_any(vs.iter().map(String::as_str)))
                && self.not_values.as_ref().is_none_or(|m| !m.matches_any(vs.iter().map(String::as_str)))
        };
        let cert = ctx.cert;
        match &self.key {
            WhenKey::Header(name) => check(ctx.headers.header(name)),
            WhenKey::SourcePrincipal => check(ctx.identity.map(|i| i.principal.as_str())),
            WhenKey::SourceNamespace => check(ctx.identity.and_then(|i| i.namespace.as_deref())),
            WhenKey::DestinationPort => {
                let port = ctx.port.map(|p| p.to_string());
                check(port.as_deref())
            }
            WhenKey::ConnectionSni => check(ctx.sni),
            WhenKey::CertSubject => check(cert.map(|c| c.subject.as_str()).or(ctx.attr_subject)),
            WhenKey::CertSubjectCn => match cert {
                Some(c) => check_many(&c.subject_cn),
                None => {
                    let cns: Vec<String> = ctx.attr_subject.map(dn_values_cn).unwrap_or_default();
                    if ctx.attr_subject.is_none() {
                        check(None)
                    } else {
                        check_many(&cns)
                    }
                }
            },
            WhenKey::CertSubjectO => cert.map_or_else(|| check(None), |c| check_many(&c.subject_o)),
            WhenKey::CertSubjectOu => cert.map_or_else(|| check(None), |c| check_many(&c.subject_ou)),
            WhenKey::CertIssuer => check(cert.map(|c| c.issuer.as_str())),
            WhenKey::CertIssuerCn => cert.map_or_else(|| check(None), |c| check_many(&c.issuer_cn)),
            WhenKey::CertIssuerO => cert.map_or_else(|| check(None), |c| check_many(&c.issuer_o)),
            WhenKey::CertSanUri => match cert {
                Some(c) => check_many(&c.uri_sans),
                None => check(ctx.attr_uri_san),
            },
            WhenKey::CertSanDns => cert.map_or_else(|| check(None), |c| check_many(&c.dns_sans)),
            WhenKey::CertSerial => check(cert.map(|c| c.serial_hex.as_str())),
            WhenKey::CertSha256 => check(cert.map(|c| c.sha256_hex.as_str())),
            WhenKey::CertSpkiSha256 => check(cert.map(|c| c.spki_sha256_b64.as_str())),
        }
    }
}

/// Whether a URI SAN claims the `spiffe` scheme (compared case-insensitively, as RFC 3986 does
/// for schemes, so that `SPIFFE://` is validated and refused rather than silently skipped).
fn is_spiffe_uri(u: &str) -> bool {
    u.get(..9).is_some_and(|s| s.eq_ignore_ascii_case("spiffe://"))
}

/// The CN values of an RFC 4514 DN string (used when only Envoy's subject attribute is known).
fn dn_values_cn(dn: &str) -> Vec<String> {
    split_unescaped(dn, ',')
        .into_iter()
        .flat_map(|rdn| split_unescaped(&rdn, '+'))
        .filter_map(|atv| atv.strip_prefix("CN=").map(str::to_owned))
        .collect()
}

fn split_unescaped(s: &str, sep: char) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut escaped = false;
    for c in s.chars() {
        if escaped {
            cur.push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == sep {
            out.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    out.push(cur);
    out
}

impl CompiledRule {
    fn matches(&self, ctx: &EvalCtx<'_>) -> bool {
        self.from.as_ref().is_none_or(|f| f.iter().any(|s| s.matches(ctx)))
            && self.to.as_ref().is_none_or(|t| t.iter().any(|o| o.matches(ctx)))
            && self.when.iter().all(|c| c.matches(ctx))
    }
}

/// A `certificateRules` entry, compiled.
#[derive(Debug)]
pub(crate) struct CompiledCertRule {
    pub name: Arc<str>,
    pub to: Option<Vec<CompiledOperation>>,
    pub require: CertRequirements,
}

/// A compiled policy: build it once (in `on_configure`), then call [`Engine::decide`] per request.
#[derive(Debug)]
pub struct Engine {
    pub(crate) mode: Mode,
    pub(crate) mtls: Mtls,
    pub(crate) trust_domains: Option<Vec<String>>,
    pub(crate) identity_sources: Vec<IdentitySource>,
    pub(crate) certificate: Option<CertRequirements>,
    pub(crate) cert_rules: Vec<CompiledCertRule>,
    pub(crate) deny: RuleSet,
    pub(crate) dry_deny: RuleSet,
    pub(crate) audit: RuleSet,
    pub(crate) allow: RuleSet,
    pub(crate) dry_allow: RuleSet,
    /// Number of ALLOW policies (a policy with no rules still counts: it denies everything).
    pub(crate) allow_policies: usize,
    pub(crate) dry_allow_policies: usize,
    pub(crate) needs_full_certificate: bool,
    pub(crate) needed_headers: Vec<String>,
    pub(crate) uses_paths: bool,
    pub(crate) uses_methods: bool,
    pub(crate) uses_hosts: bool,
    pub(crate) uses_ports: bool,
    pub(crate) uses_sni: bool,
    pub(crate) deny_response: crate::config::DenyResponse,
    pub(crate) identity_header: String,
    pub(crate) policy_names: Vec<Arc<str>>,
}

impl Engine {
    /// Whether the policy reads anything beyond SANs and subject, so that the filter must fetch
    /// the full certificate (from `connection.peer_certificate` or a bound XFCC element).
    pub fn needs_full_certificate(&self) -> bool {
        self.needs_full_certificate
    }

    /// Lower-case names of the request headers that `when` conditions read.
    pub fn needed_headers(&self) -> &[String] {
        &self.needed_headers
    }

    /// Whether any rule reads `:path` (so the filter must fetch it).
    pub fn uses_paths(&self) -> bool {
        self.uses_paths
    }

    /// Whether any rule reads `:method` (so the filter must fetch it).
    pub fn uses_methods(&self) -> bool {
        self.uses_methods
    }

    /// Whether any rule reads `:authority` (so the filter must fetch it).
    pub fn uses_hosts(&self) -> bool {
        self.uses_hosts
    }

    /// Whether any rule reads the destination port (so the filter must fetch `destination.port`).
    pub fn uses_ports(&self) -> bool {
        self.uses_ports
    }

    /// Whether any rule reads the SNI (so the filter must fetch `connection.requested_server_name`).
    pub fn uses_sni(&self) -> bool {
        self.uses_sni
    }

    /// The configured deny response.
    pub fn deny_response(&self) -> &crate::config::DenyResponse {
        &self.deny_response
    }

    /// The header that carries the principal upstream.
    pub fn identity_header(&self) -> &str {
        &self.identity_header
    }

    /// Names of every policy and certificate rule, for metrics.
    pub fn policy_names(&self) -> &[Arc<str>] {
        &self.policy_names
    }

    /// Parses a certificate's facts into a cacheable [`PreparedCert`]: identity and the
    /// time-independent verdicts of every requirement block.
    pub fn prepare(&self, facts: CertFacts, presented_chain: &[Vec<u8>], now: i64) -> PreparedCert {
        let identity = self.identity_from_cert(&facts).map(|i| i.map(Arc::new));
        let mut verdicts = Vec::with_capacity(1 + self.cert_rules.len());
        let mut valid_until = facts.not_after;
        let mut push = |reqs: Option<&CertRequirements>| {
            let v = reqs.map(|r| r.static_verdict(&facts, presented_chain, now));
            if let Some(v) = &v {
                valid_until = valid_until.min(v.valid_until);
            }
            verdicts.push(v);
        };
        push(self.certificate.as_ref());
        for rule in &self.cert_rules {
            push(Some(&rule.require));
        }
        PreparedCert { facts, identity, verdicts, valid_until }
    }

    fn identity_from_cert(&self, facts: &CertFacts) -> Result<Option<Identity>, Reason> {
        for source in &self.identity_sources {
            match source {
                IdentitySource::Spiffe => {
                    let spiffe: Vec<&String> = facts.uri_sans.iter().filter(|u| is_spiffe_uri(u)).collect();
                    match spiffe.as_slice() {
                        [] => {}
                        [one] => {
                            let id: SpiffeId = one.parse().map_err(|_| Reason::InvalidIdentity)?;
                            return Ok(Some(Identity::from_spiffe(&id)));
                        }
                        _ => return Err(Reason::InvalidIdentity),
                    }
                }
                IdentitySource::Dns => {
                    if let Some(d) = facts.dns_sans.first() {
                        return Ok(Some(Identity::from_dns(d)));
                    }
                }
                IdentitySource::Subject => {
                    if let Some(cn) = facts.subject_cn.first() {
                        return Ok(Some(Identity::from_subject_cn(cn)));
                    }
                }
            }
        }
        Ok(None)
    }

    fn identity_from_attributes(&self, attrs: &PeerAttributes) -> Result<Option<Identity>, Reason> {
        for source in &self.identity_sources {
            match source {
                IdentitySource::Spiffe => {
                    // Same test as for a full certificate: a URI SAN that claims the spiffe
                    // scheme in any case is a SPIFFE ID and must validate, or it is invalid_identity.
                    if let Some(u) = attrs.uri_san.as_deref().filter(|u| is_spiffe_uri(u)) {
                        let id: SpiffeId = u.parse().map_err(|_| Reason::InvalidIdentity)?;
                        return Ok(Some(Identity::from_spiffe(&id)));
                    }
                }
                IdentitySource::Dns => {
                    if let Some(d) = attrs.dns_san.as_deref().filter(|d| !d.is_empty()) {
                        return Ok(Some(Identity::from_dns(d)));
                    }
                }
                IdentitySource::Subject => {
                    if let Some(cn) = attrs.subject.as_deref().map(dn_values_cn).and_then(|v| v.into_iter().next()) {
                        return Ok(Some(Identity::from_subject_cn(&cn)));
                    }
                }
            }
        }
        Ok(None)
    }

    /// Decides one request at `now` (Unix seconds, from the host clock).
    pub fn decide(&self, req: &Request<'_>, peer: &Peer<'_>, now: i64) -> Decision {
        let mut d = self.decide_enforced(req, peer, now);
        if self.mode == Mode::DryRun && !d.allowed {
            d.allowed = true;
            d.dry_run = true;
        }
        d
    }

    fn decide_enforced(&self, req: &Request<'_>, peer: &Peer<'_>, now: i64) -> Decision {
        // Step 1 and the certificate source.
        let (identity, prepared, attrs) = match peer {
            Peer::None => {
                if self.mtls == Mtls::Strict {
                    return Decision::deny(Reason::NoPeerCertificate);
                }
                (None, None, None)
            }
            Peer::Unparseable => return Decision::deny(Reason::InvalidCertificate),
            Peer::Attributes(a) => {
                if self.needs_full_certificate {
                    return Decision::deny(Reason::CertificateUnavailable);
                }
                (Some(self.identity_from_attributes(a).map(|i| i.map(Arc::new))), None, Some(*a))
            }
            Peer::Certificate(p) => (Some(p.identity.clone()), Some(*p), None),
        };

        // Step 2: certificate checks.
        let mut expiring = false;
        if let Some(p) = prepared {
            let f = &p.facts;
            // The certificate's identity (when valid) travels with a certificate deny so that
            // logs can say whose certificate was refused.
            let cert_deny = |reason: Reason, expiring: bool| {
                let mut d = Decision::deny(reason);
                d.identity = p.identity.clone().ok().flatten();
                d.expiring = expiring;
                d
            };
            if now < f.not_before {
                return cert_deny(Reason::NotYetValid, false);
            }
            if now > f.not_after {
                return cert_deny(Reason::Expired, false);
            }
            if let (Some(reqs), Some(Some(v))) = (&self.certificate, p.verdicts.first()) {
                expiring = reqs.is_expiring(f, now);
                if let Some(reason) = reqs.evaluate(f, v, now) {
                    return cert_deny(reason, expiring);
                }
            }
        }

        // Step 3: identity checks.
        let identity = match identity {
            Some(Ok(i)) => i,
            Some(Err(reason)) => return Decision::deny(reason),
            None => None,
        };
        if let Some(tds) = &self.trust_domains {
            if identity.is_some() || prepared.is_some() || attrs.is_some() {
                let ok = identity
                    .as_ref()
                    .and_then(|i| i.trust_domain.as_deref())
                    .is_some_and(|td| tds.iter().any(|t| t == td));
                if !ok {
                    let mut d = Decision::deny(Reason::UntrustedTrustDomain);
                    d.identity = identity;
                    return d;
                }
            }
        }

        let normalized_path;
        let path = if self.uses_paths {
            normalized_path = crate::path::normalize(req.path);
            normalized_path.as_ref()
        } else {
            req.path
        };
        let host_lower;
        let host = if req.host.bytes().any(|b| b.is_ascii_uppercase()) {
            host_lower = req.host.to_ascii_lowercase();
            host_lower.as_str()
        } else {
            req.host
        };
        let ctx = EvalCtx {
            identity: identity.as_deref(),
            cert: prepared.map(|p| &p.facts),
            attr_subject: attrs.and_then(|a| a.subject.as_deref()),
            attr_uri_san: attrs.and_then(|a| a.uri_san.as_deref()),
            method: req.method,
            path,
            host,
            port: req.port,
            sni: req.sni,
            headers: req.headers,
        };

        let mut d = Decision {
            allowed: true,
            reason: None,
            dry_run: false,
            policy: None,
            identity: None,
            audit: Vec::new(),
            expiring,
        };

        // Step 4: per-route certificate requirements.
        for (i, rule) in self.cert_rules.iter().enumerate() {
            if !rule.to.as_ref().is_none_or(|t| t.iter().any(|o| o.matches(&ctx))) {
                continue;
            }
            let failure = match prepared {
                None => Some(Reason::NoPeerCertificate),
                Some(p) => match p.verdicts.get(i + 1) {
                    Some(Some(v)) => rule.require.evaluate(&p.facts, v, now),
                    _ => Some(Reason::CertificateUnavailable),
                },
            };
            if let Some(reason) = failure {
                d.allowed = false;
                d.reason = Some(reason);
                d.policy = Some(rule.name.clone());
                d.identity = identity;
                return d;
            }
        }

        // Step 5: DENY.
        if let Some(rule) = self.deny.first_match(&ctx) {
            d.allowed = false;
            d.reason = Some(Reason::DeniedByPolicy);
            d.policy = Some(rule.policy.clone());
        }

        // Step 6: AUDIT never changes the decision.
        if !self.audit.is_empty() {
            d.audit = self.audit.all_matching_policies(&ctx);
        }

        // Step 7: ALLOW.
        if d.allowed && self.allow_policies > 0 {
            match self.allow.first_match(&ctx) {
                Some(rule) => d.policy = Some(rule.policy.clone()),
                None => {
                    d.allowed = false;
                    d.reason = Some(Reason::NoMatchingAllow);
                }
            }
        }

        // Dry-run policies: what would happen if they were enforced.
        if d.allowed && (!self.dry_deny.is_empty() || self.dry_allow_policies > 0) {
            if let Some(rule) = self.dry_deny.first_match(&ctx) {
                d.reason = Some(Reason::DeniedByPolicy);
                d.policy = Some(rule.policy.clone());
                d.dry_run = true;
            } else if self.dry_allow_policies > 0 {
                let enforced_allow_hit = self.allow_policies > 0 && d.policy.is_some();
                if !enforced_allow_hit && self.dry_allow.first_match(&ctx).is_none() {
                    d.reason = Some(Reason::NoMatchingAllow);
                    d.dry_run = true;
                }
            }
        }
        d.identity = identity;
        d
    }
}
