//! The compiled policy and the decision procedure (docs/policy.md "Decision order").

use std::sync::Arc;

use crate::alias::TrustDomainAliases;
use crate::cert::CertFacts;
use crate::certreq::CompiledRequirements;
use crate::config::{Mode, Mtls, PathNormalization, Proxy};
use crate::decision::{Decision, Peer, PeerAttributes, PreparedCert, Verdict};
use crate::identity::{self, Identity, IdentitySource};
use crate::index::PolicySets;
use crate::linkerd::LinkerdHeaderMode;
use crate::reason::Reason;
use crate::request::{CheckedPath, LazyRequest, RequestSource};
use crate::rule::{CompiledOperation, EvalCtx};

/// A `certificateRules` entry, compiled.
#[derive(Debug)]
pub(crate) struct CompiledCertRule {
    pub name: Arc<str>,
    pub to: Option<Vec<CompiledOperation>>,
    pub require: CompiledRequirements,
}

/// A compiled policy: build it once (in `on_configure`), then call [`Engine::decide`] per request.
#[derive(Debug)]
pub struct Engine {
    pub(crate) mode: Mode,
    pub(crate) mtls: Mtls,
    pub(crate) proxy: Proxy,
    pub(crate) trust_domains: Option<Vec<String>>,
    pub(crate) identity_sources: Vec<IdentitySource>,
    /// `trustDomainAliases`: an alias's identities are matched as the main trust domain's.
    pub(crate) aliases: Option<TrustDomainAliases>,
    /// `identity: [linkerdHeader]`: the peer is the `l5d-client-id` of a listed proxy.
    pub(crate) linkerd: Option<LinkerdHeaderMode>,
    pub(crate) path_normalization: PathNormalization,
    pub(crate) allow_path_parameters: bool,
    /// Whether any policy or certificate rule reads the path: then the path is checked (and
    /// perhaps rewritten) before step 1. The path is still fetched lazily, and checked, if a
    /// rule reads it without this being set.
    pub(crate) reads_paths: bool,
    /// Whether an enforced rule (or a certificate rule) reads the path: only then is an invalid
    /// path denied and a path rewritten; otherwise it is a would-deny.
    pub(crate) enforces_paths: bool,
    pub(crate) certificate: Option<CompiledRequirements>,
    pub(crate) cert_rules: Vec<CompiledCertRule>,
    pub(crate) policies: PolicySets,
    pub(crate) needs_full_certificate: bool,
    /// Lower-case names of the headers `when` conditions read; `WhenKey::Header` indexes it.
    pub(crate) header_names: Vec<String>,
    pub(crate) deny_response: crate::config::DenyResponse,
    pub(crate) identity_header: String,
    pub(crate) policy_names: Vec<Arc<str>>,
    pub(crate) peer_cert_expiry: crate::config::PeerCertExpiry,
}

impl Engine {
    /// Whether the policy reads anything beyond SANs and subject, so that the filter must fetch
    /// the full certificate (from `connection.peer_certificate` or a bound XFCC element).
    pub fn needs_full_certificate(&self) -> bool {
        self.needs_full_certificate
    }

    /// Where the filter runs: at a waypoint the peer is the HBONE client's SPIFFE ID.
    pub fn proxy(&self) -> Proxy {
        self.proxy
    }

    /// Whether the principal comes from Linkerd's `l5d-client-id` (`identity: [linkerdHeader]`):
    /// then the filter passes [`Peer::LinkerdClientId`] for a request from a listed proxy, and
    /// removes the header and passes [`Peer::None`] for any other.
    pub fn linkerd_header(&self) -> bool {
        self.linkerd.is_some()
    }

    /// Whether Envoy's `source.address` is one of `linkerd.proxyAddresses` (always false
    /// without `identity: [linkerdHeader]`).
    pub fn is_linkerd_proxy(&self, source_address: &str) -> bool {
        self.linkerd.as_ref().is_some_and(|l| l.is_proxy(source_address))
    }

    /// The identity as rules match it: an alias's principal in the main trust domain.
    fn aliased(&self, identity: Arc<Identity>) -> Arc<Identity> {
        match &self.aliases {
            Some(a) => a.apply(identity),
            None => identity,
        }
    }

    /// The configured deny response.
    pub fn deny_response(&self) -> &crate::config::DenyResponse {
        &self.deny_response
    }

    /// The header that carries the principal upstream.
    pub fn identity_header(&self) -> &str {
        &self.identity_header
    }

    /// Warnings to log when the policy is loaded at `now`: trust anchors that have expired (they
    /// verify nothing) or expire within 30 days.
    pub fn load_warnings(&self, now: i64) -> Vec<String> {
        let mut out: Vec<String> = self.certificate.iter().flat_map(|c| c.anchor_warnings(now)).collect();
        for rule in &self.cert_rules {
            out.extend(rule.require.anchor_warnings(now));
        }
        out
    }

    /// `metrics.peerCertExpiry`: how many identities get an expiry gauge, seen how recently.
    pub fn peer_cert_expiry(&self) -> crate::config::PeerCertExpiry {
        self.peer_cert_expiry
    }

    /// Names of every policy and certificate rule, for metrics.
    pub fn policy_names(&self) -> &[Arc<str>] {
        &self.policy_names
    }

    /// Parses a certificate's facts into a cacheable [`PreparedCert`]: identity and the
    /// time-independent verdicts of every requirement block.
    pub fn prepare(&self, facts: CertFacts, presented_chain: &[Vec<u8>], now: i64) -> PreparedCert {
        let identity =
            identity::from_certificate(&self.identity_sources, &facts.uri_sans, &facts.dns_sans, &facts.subject_cn)
                .map(|i| i.map(|i| self.aliased(Arc::new(i))))
                .map_err(|_| Reason::InvalidIdentity);
        let mut verdicts = Vec::with_capacity(1 + self.cert_rules.len());
        // An expired leaf's entry lives until now at least: never born expired, so it is not
        // re-prepared on every request (expiry itself is checked on every request).
        let mut valid_until = facts.not_after.max(now);
        let mut push = |reqs: Option<&CompiledRequirements>| {
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

    fn identity_from_attributes(&self, attrs: &PeerAttributes) -> Result<Option<Identity>, Reason> {
        identity::from_attributes(
            &self.identity_sources,
            attrs.uri_san.as_deref(),
            attrs.several_spiffe_uris,
            attrs.dns_san.as_deref(),
            attrs.subject.as_deref(),
        )
        .map_err(|_| Reason::InvalidIdentity)
    }

    /// This policy's lazy view of one request (`decide` and `explain` read requests the same way).
    pub(crate) fn lazy_request<'r>(&'r self, req: &'r dyn RequestSource) -> LazyRequest<'r> {
        LazyRequest::new(
            req,
            self.path_normalization,
            self.allow_path_parameters,
            &self.identity_header,
            &self.header_names,
        )
    }

    /// Decides one request at `now` (Unix seconds, from the host clock). The engine asks `req`
    /// for each attribute the first time a rule reads it.
    pub fn decide(&self, req: &dyn RequestSource, peer: &Peer<'_>, now: i64) -> Decision {
        let lazy = self.lazy_request(req);
        let dry_run_mode = self.mode == Mode::DryRun;
        let enforce_path = self.enforces_paths && !dry_run_mode;
        // Before step 1: a path that cannot be put in normal form is `invalid_path`. Under
        // `mode: dryRun`, or when only dry-run and AUDIT policies read the path, it is only a
        // would-deny, and policies still see the best form there is.
        let mut d = if enforce_path && matches!(lazy.checked_path(), CheckedPath::Invalid { .. }) {
            Decision::deny(Reason::InvalidPath)
        } else {
            self.decide_enforced(&lazy, peer, now)
        };
        match lazy.path_if_read() {
            // Also when no rule was known to read the path: a path read is a path checked.
            Some(CheckedPath::Invalid { error, .. }) => {
                // Unless only dry-run and AUDIT policies read the path (mode dryRun turns this
                // deny into a would-deny below).
                if !self.reads_paths || self.enforces_paths {
                    if d.verdict != Verdict::Deny(Reason::InvalidPath) {
                        let identity = d.identity.take();
                        d = Decision::deny(Reason::InvalidPath);
                        d.identity = identity;
                    }
                } else if d.allowed() {
                    // It comes before every policy in the decision order, so it is the
                    // would-deny reason even when a dry-run policy also matched.
                    d.verdict = Verdict::WouldDeny(Reason::InvalidPath);
                    d.policy = None;
                }
                d.path_error = Some(*error);
            }
            Some(CheckedPath::Ok { rewrite: Some(r), .. }) if d.allowed() && enforce_path => {
                d.path_rewrite = Some(r.clone())
            }
            _ => {}
        }
        if dry_run_mode {
            // Nothing is denied or rewritten; the reason stays, as a would-deny.
            d.path_rewrite = None;
            if let Verdict::Deny(r) = d.verdict {
                d.verdict = Verdict::WouldDeny(r);
            }
        }
        d
    }

    pub(crate) fn decide_enforced(&self, req: &LazyRequest<'_>, peer: &Peer<'_>, now: i64) -> Decision {
        // Step 1 and the certificate source. `l5d-client-id` is a peer only under
        // `identity: [linkerdHeader]`; from a caller that passes it otherwise, it is no peer.
        let peer = match peer {
            Peer::LinkerdClientId(_) if self.linkerd.is_none() => &Peer::None,
            p => p,
        };
        let mut linkerd_peer = false;
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
                (Some(self.identity_from_attributes(a).map(|i| i.map(|i| self.aliased(Arc::new(i))))), None, Some(*a))
            }
            Peer::LinkerdClientId(values) => {
                // Linkerd verified the client's certificate, but Envoy never sees it.
                if self.needs_full_certificate {
                    return Decision::deny(Reason::CertificateUnavailable);
                }
                let identity = Identity::from_linkerd_client_id(values)
                    .map(|i| Some(self.aliased(Arc::new(i))))
                    .map_err(|_| Reason::InvalidIdentity);
                linkerd_peer = true;
                (Some(identity), None, None)
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
            // The weak-key floor holds even without a `certificate:` block; it reports in the
            // decision order, after the configured checks that come before `key_not_allowed`.
            let floor = crate::certreq::below_key_floor(f).then_some(Reason::KeyNotAllowed);
            let mut configured = None;
            if let (Some(reqs), Some(Some(v))) = (&self.certificate, p.verdicts.first()) {
                expiring = reqs.is_expiring(f, now);
                configured = reqs.evaluate(f, v, now);
            }
            let first = match (configured, floor) {
                (Some(c), Some(k)) => Some(c.min(k)),
                (c, k) => c.or(k),
            };
            if let Some(reason) = first {
                return cert_deny(reason, expiring);
            }
        }

        // Step 3: identity checks.
        let identity = match identity {
            Some(Ok(i)) => i,
            Some(Err(reason)) => return Decision::deny(reason),
            None => None,
        };
        if let Some(tds) = &self.trust_domains {
            if identity.is_some() || prepared.is_some() || attrs.is_some() || linkerd_peer {
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

        let ctx = EvalCtx {
            identity: identity.as_deref(),
            cert: prepared.map(|p| &p.facts),
            attr_subject: attrs.and_then(|a| a.subject.as_deref()),
            attr_uri_san: attrs.and_then(|a| a.uri_san.as_deref()),
            req,
        };

        let mut d = Decision { expiring, ..Decision::allow() };

        // Step 4: per-route certificate requirements.
        for (i, rule) in self.cert_rules.iter().enumerate() {
            if !rule.to.as_ref().is_none_or(|t| t.iter().any(|o| o.matches(&ctx))) {
                continue;
            }
            let failure = match prepared {
                // Envoy's attributes only: the rule needs a certificate that is not available.
                None if attrs.is_some() || linkerd_peer => Some(Reason::CertificateUnavailable),
                None => Some(Reason::NoPeerCertificate),
                Some(p) => match p.verdicts.get(i + 1) {
                    Some(Some(v)) => rule.require.evaluate(&p.facts, v, now),
                    _ => Some(Reason::CertificateUnavailable),
                },
            };
            if let Some(reason) = failure {
                d.verdict = Verdict::Deny(reason);
                d.policy = Some(rule.name.clone());
                d.identity = identity;
                return d;
            }
        }

        // Step 5: DENY.
        if let Some(rule) = self.policies.deny.first_match(&ctx) {
            d.verdict = Verdict::Deny(Reason::DeniedByPolicy);
            d.policy = Some(rule.policy.clone());
        }

        // Step 6: AUDIT never changes the decision.
        if !self.policies.audit.is_empty() {
            d.audit = self.policies.audit.all_matching_policies(&ctx);
        }

        // Step 7: ALLOW.
        if d.allowed() && self.policies.allow_policies > 0 {
            match self.policies.allow.first_match(&ctx) {
                Some(rule) => d.policy = Some(rule.policy.clone()),
                None => {
                    d.verdict = Verdict::Deny(Reason::NoMatchingAllow);
                }
            }
        }

        // Dry-run policies: what would happen if they were enforced.
        if d.allowed() && (!self.policies.dry_deny.is_empty() || self.policies.dry_allow_policies > 0) {
            if let Some(rule) = self.policies.dry_deny.first_match(&ctx) {
                d.verdict = Verdict::WouldDeny(Reason::DeniedByPolicy);
                d.policy = Some(rule.policy.clone());
            } else if self.policies.dry_allow_policies > 0 {
                let enforced_allow_hit = self.policies.allow_policies > 0 && d.policy.is_some();
                if !enforced_allow_hit && self.policies.dry_allow.first_match(&ctx).is_none() {
                    d.verdict = Verdict::WouldDeny(Reason::NoMatchingAllow);
                }
            }
        }
        d.identity = identity;
        d
    }
}
