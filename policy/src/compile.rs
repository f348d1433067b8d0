//! Compiling a [`PolicyDocument`] into an [`Engine`], collecting every error with its JSON path.
//!
//! [`Engine::compile`] checks the top-level keys, compiles `certificate` and `certificateRules`,
//! then the policies (`policy`), whose value lists become matchers in `values`.

mod policy;
mod values;
mod waypoint;

use std::sync::Arc;

use crate::alias::{is_trust_domain, TrustDomainAliases};
use crate::certreq::CompiledRequirements;
use crate::config::{CertificateRequirements, CertificateRule, DenyResponse, PathNormalization, PolicyDocument, Proxy};
use crate::engine::{CompiledCertRule, Engine};
use crate::error::{ConfigError, ConfigErrors};
use crate::identity::IdentitySource;
use crate::linkerd::{LinkerdHeaderMode, LinkerdOptions};

/// Policies and rules beyond this many are refused: a decision stays indexed, but compile time
/// and memory grow with the document, and such a document is almost certainly generated wrongly.
pub const MAX_RULES: usize = 200_000;

impl Engine {
    /// Parses and compiles a JSON policy document.
    pub fn from_json(text: &str) -> Result<Engine, ConfigErrors> {
        Engine::compile(&PolicyDocument::from_json(text)?)
    }

    /// Compiles a parsed document. Every problem is reported, not just the first.
    pub fn compile(doc: &PolicyDocument) -> Result<Engine, ConfigErrors> {
        // Unpacked by name, without `..`: a field added to the document cannot be ignored here
        // by accident.
        let PolicyDocument {
            mode,
            mtls,
            proxy,
            trust_domains,
            identity,
            trust_domain,
            trust_domain_aliases,
            linkerd,
            path_normalization,
            allow_path_parameters,
            certificate,
            certificate_rules,
            policies,
            deny_response,
            identity_header,
            metrics,
        } = doc;
        let mut c = Compiler::new(*path_normalization, *allow_path_parameters);
        if *proxy == Proxy::Waypoint {
            c.errors.extend(waypoint::errors(doc));
        }
        c.globals(trust_domains.as_deref(), identity, deny_response, identity_header);
        c.aliases =
            TrustDomainAliases::compile(trust_domain.as_deref(), trust_domain_aliases.as_deref(), &mut c.errors);
        let linkerd = c.linkerd(identity, linkerd.as_ref());
        let certificate = c.certificate(certificate.as_ref());
        let cert_rules = c.certificate_rules(certificate_rules);
        let peer_cert_expiry = crate::config::PeerCertExpiry::compile(metrics.as_ref(), &mut c.errors);
        c.errors
            .extend(crate::sources::duplicate_names(certificate.iter().chain(cert_rules.iter().map(|r| &r.require))));
        let mut policy_names: Vec<Arc<str>> = cert_rules.iter().map(|r| r.name.clone()).collect();
        let Some(sets) = c.policies(policies, &mut policy_names) else {
            return Err(ConfigErrors(c.errors));
        };

        let Compiler { errors, header_names, reads_paths, enforces_paths, needs_full_certificate, aliases, .. } = c;
        if !errors.is_empty() {
            return Err(ConfigErrors(errors));
        }
        Ok(Engine {
            mode: *mode,
            mtls: *mtls,
            proxy: *proxy,
            trust_domains: trust_domains.clone(),
            identity_sources: identity.clone(),
            aliases,
            linkerd,
            path_normalization: *path_normalization,
            allow_path_parameters: *allow_path_parameters,
            reads_paths,
            enforces_paths,
            certificate,
            cert_rules,
            policies: sets,
            needs_full_certificate,
            header_names,
            deny_response: deny_response.clone(),
            identity_header: identity_header.clone(),
            peer_cert_expiry,
            policy_names,
        })
    }
}

/// Compile-time state: every error with its path, and what the rules read.
struct Compiler {
    errors: Vec<ConfigError>,
    header_names: Vec<String>,
    reads_paths: bool,
    /// An enforced rule (not dry run, not AUDIT) or a certificate rule reads the path: only then
    /// is an invalid path denied and a path rewritten.
    enforces_paths: bool,
    /// Whether the rules being compiled are enforced.
    enforcing: bool,
    needs_full_certificate: bool,
    /// `trustDomainAliases`: rules that name an alias are compiled to the main trust domain.
    aliases: Option<TrustDomainAliases>,
    path_normalization: PathNormalization,
    allow_path_parameters: bool,
}

fn is_header_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with(':')
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

impl Compiler {
    fn new(path_normalization: PathNormalization, allow_path_parameters: bool) -> Compiler {
        Compiler {
            errors: Vec::new(),
            header_names: Vec::new(),
            reads_paths: false,
            enforces_paths: false,
            enforcing: true,
            needs_full_certificate: false,
            aliases: None,
            path_normalization,
            allow_path_parameters,
        }
    }

    fn error(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ConfigError::new(path, message));
    }

    /// A list that must not be empty: in Istio an empty list is "unset" and widens the rule;
    /// here it is refused rather than silently meaning something.
    fn non_empty<T>(&mut self, list: &[T], path: &str, hint: &str) {
        if list.is_empty() {
            self.error(path, format!("empty list; {hint}"));
        }
    }

    /// The top-level keys that are checked but not compiled: `trustDomains`, `identity`,
    /// `denyResponse` and `identityHeader`.
    fn globals(
        &mut self,
        trust_domains: Option<&[String]>,
        identity: &[IdentitySource],
        deny_response: &DenyResponse,
        identity_header: &str,
    ) {
        if let Some(tds) = trust_domains {
            if tds.is_empty() {
                self.error("trustDomains", "empty list accepts no trust domain; remove the field to accept any");
            }
            for (i, td) in tds.iter().enumerate() {
                if !is_trust_domain(td) {
                    self.error(
                        format!("trustDomains[{i}]"),
                        format!("{td:?} is not a SPIFFE trust domain (lower-case letters, digits, '.', '-', '_')"),
                    );
                }
            }
        }
        if identity.is_empty() {
            self.error("identity", "empty list: no identity could ever be found; use e.g. [spiffe]");
        }
        for (i, s) in identity.iter().enumerate() {
            if identity[..i].contains(s) {
                self.error(format!("identity[{i}]"), format!("{s} is listed twice"));
            }
        }
        if !(400..=599).contains(&deny_response.status) {
            self.error("denyResponse.status", "must be an HTTP error status, 400-599");
        }
        if deny_response.body.len() > 4096 {
            self.error("denyResponse.body", "longer than 4096 bytes; keep deny bodies short");
        }
        if !is_header_name(identity_header) {
            self.error("identityHeader", "must be a lower-case HTTP header name, e.g. x-peerguard-principal");
        }
    }

    /// `identity: [linkerdHeader]` and its `linkerd` options (docs/policy.md "Behind Linkerd").
    fn linkerd(&mut self, identity: &[IdentitySource], options: Option<&LinkerdOptions>) -> Option<LinkerdHeaderMode> {
        let Some(at) = identity.iter().position(|s| *s == IdentitySource::LinkerdHeader) else {
            if options.is_some() {
                self.error(
                    "linkerd",
                    "applies only with identity: [linkerdHeader]; remove it, or set the identity source",
                );
            }
            return None;
        };
        if identity.len() > 1 {
            self.error(
                format!("identity[{at}]"),
                "linkerdHeader must be the only identity source: behind Linkerd, Envoy sees no client certificate, and a certificate source beside it would let a client choose which identity counts",
            );
        }
        Some(LinkerdHeaderMode::compile(options, &mut self.errors))
    }

    /// The `certificate` block, which applies to every peer leaf certificate.
    fn certificate(&mut self, reqs: Option<&CertificateRequirements>) -> Option<CompiledRequirements> {
        let certificate = reqs.map(|req| CompiledRequirements::compile(req, "certificate", &mut self.errors));
        if certificate.as_ref().is_some_and(CompiledRequirements::needs_full_certificate) {
            self.needs_full_certificate = true;
        }
        certificate
    }

    fn certificate_rules(&mut self, rules: &[CertificateRule]) -> Vec<CompiledCertRule> {
        rules.iter().enumerate().map(|(i, r)| self.cert_rule(r, &format!("certificateRules[{i}]"))).collect()
    }

    fn cert_rule(&mut self, rule: &CertificateRule, path: &str) -> CompiledCertRule {
        let CertificateRule { name, to, require } = rule;
        if name.is_empty() {
            self.error(format!("{path}.name"), "must not be empty");
        }
        let to = to.as_ref().map(|t| self.operations(t, &format!("{path}.to")));
        let errors_before = self.errors.len();
        let require = CompiledRequirements::compile(require, &format!("{path}.require"), &mut self.errors);
        // A requirement that failed to compile is already reported at its own path.
        if self.errors.len() == errors_before && !require.needs_full_certificate() {
            self.error(format!("{path}.require"), "sets no requirement");
        }
        CompiledCertRule { name: Arc::from(name.as_str()), to, require }
    }
}
