//! Turns a [`PolicyDocument`] into an [`Engine`], collecting every error with its JSON path.

use std::sync::Arc;

use crate::certreq::CertRequirements;
use crate::config::{
    Action, AuthorizationPolicy, CertificateRule, Condition, From, Operation, PathNormalization, PolicyDocument,
    PortValue, Rule, Source, To,
};
use crate::engine::{CompiledCertRule, Engine};
use crate::error::{ConfigError, ConfigErrors};
use crate::namespace::NamespaceMatcher;
use crate::pattern::{Pattern, StringMatcher};
use crate::rule::{
    parse_port, CompiledCondition, CompiledOperation, CompiledRule, CompiledSource, PathMatcher, RuleSet, Values,
    WhenKey,
};
use crate::template::{self, PathTemplate};

/// Policies and rules beyond this many are refused: a decision stays indexed, but compile time
/// and memory grow with the document, and such a document is almost certainly generated wrongly.
pub const MAX_RULES: usize = 200_000;

impl PolicyDocument {
    /// Parses JSON, naming the path of the first structural error (unknown key, wrong type).
    pub fn from_json(text: &str) -> Result<PolicyDocument, ConfigErrors> {
        if let Ok(value) = serde_json::from_str::<serde_json::Value>(text) {
            check_mappings(&value)?;
        }
        let de = &mut serde_json::Deserializer::from_str(text);
        serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            ConfigErrors::one(path, e.inner().to_string())
        })
    }

    /// Parses YAML (the CLI and files), naming the path of the first structural error.
    #[cfg(feature = "yaml")]
    pub fn from_yaml(text: &str) -> Result<PolicyDocument, ConfigErrors> {
        if let Ok(value) = serde_yaml::from_str::<serde_json::Value>(text) {
            check_mappings(&value)?;
        }
        let de = serde_yaml::Deserializer::from_str(text);
        serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            ConfigErrors::one(path, e.inner().to_string())
        })
    }
}

/// Where the document's structs sit. Serde's derive reads a struct from a sequence of its fields
/// as well as from a mapping, so `rules: [[]]` would silently become a rule with no conditions,
/// which matches everything; [`check_mappings`] refuses a sequence at each of these positions.
enum Shape {
    Map(&'static [(&'static str, Shape)]),
    List(&'static Shape),
}

const OPERATIONS: Shape = Shape::List(&Shape::Map(&[("operation", Shape::Map(&[]))]));
const REQUIREMENTS: Shape = Shape::Map(&[("revocation", Shape::Map(&[]))]);
const DOCUMENT: Shape = Shape::Map(&[
    ("denyResponse", Shape::Map(&[])),
    ("certificate", REQUIREMENTS),
    ("certificateRules", Shape::List(&Shape::Map(&[("to", OPERATIONS), ("require", REQUIREMENTS)]))),
    (
        "policies",
        Shape::List(&Shape::Map(&[(
            "rules",
            Shape::List(&Shape::Map(&[
                ("from", Shape::List(&Shape::Map(&[("source", Shape::Map(&[]))]))),
                ("to", OPERATIONS),
                ("when", Shape::List(&Shape::Map(&[]))),
            ])),
        )])),
    ),
]);

fn check_mappings(doc: &serde_json::Value) -> Result<(), ConfigErrors> {
    fn walk(v: &serde_json::Value, shape: &Shape, path: &str) -> Result<(), ConfigErrors> {
        let join = |key: &str| if path == "." { key.to_owned() } else { format!("{path}.{key}") };
        match (shape, v) {
            (Shape::Map(_), serde_json::Value::Array(_)) => {
                Err(ConfigErrors::one(path, "expected a mapping (key: value), found a sequence"))
            }
            (Shape::Map(fields), serde_json::Value::Object(map)) => {
                for (key, inner) in fields.iter() {
                    if let Some(child) = map.get(*key) {
                        walk(child, inner, &join(key))?;
                    }
                }
                Ok(())
            }
            (Shape::List(item), serde_json::Value::Array(items)) => {
                for (i, child) in items.iter().enumerate() {
                    walk(child, item, &format!("{path}[{i}]"))?;
                }
                Ok(())
            }
            // Any other mismatch is a type error that the typed parse reports with its path.
            _ => Ok(()),
        }
    }
    walk(doc, &DOCUMENT, ".")
}

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
            trust_domains,
            identity,
            path_normalization,
            allow_path_parameters,
            certificate,
            certificate_rules,
            policies,
            deny_response,
            identity_header,
        } = doc;
        let mut c = Compiler {
            errors: Vec::new(),
            header_names: Vec::new(),
            reads_paths: false,
            enforces_paths: false,
            enforcing: true,
            needs_full_certificate: false,
            path_normalization: *path_normalization,
            allow_path_parameters: *allow_path_parameters,
        };

        if let Some(tds) = trust_domains {
            if tds.is_empty() {
                c.error("trustDomains", "empty list accepts no trust domain; remove the field to accept any");
            }
            for (i, td) in tds.iter().enumerate() {
                if !is_trust_domain(td) {
                    c.error(
                        format!("trustDomains[{i}]"),
                        format!("{td:?} is not a SPIFFE trust domain (lower-case letters, digits, '.', '-', '_')"),
                    );
                }
            }
        }
        if identity.is_empty() {
            c.error("identity", "empty list: no identity could ever be found; use e.g. [spiffe]");
        }
        for (i, s) in identity.iter().enumerate() {
            if identity[..i].contains(s) {
                c.error(format!("identity[{i}]"), format!("{s} is listed twice"));
            }
        }
        if !(400..=599).contains(&deny_response.status) {
            c.error("denyResponse.status", "must be an HTTP error status, 400-599");
        }
        if deny_response.body.len() > 4096 {
            c.error("denyResponse.body", "longer than 4096 bytes; keep deny bodies short");
        }
        if !is_header_name(identity_header) {
            c.error("identityHeader", "must be a lower-case HTTP header name, e.g. x-peerguard-principal");
        }

        let certificate = certificate.as_ref().map(|req| CertRequirements::compile(req, "certificate", &mut c.errors));
        if certificate.as_ref().is_some_and(CertRequirements::needs_full_certificate) {
            c.needs_full_certificate = true;
        }
        let cert_rules: Vec<CompiledCertRule> = certificate_rules
            .iter()
            .enumerate()
            .map(|(i, r)| c.cert_rule(r, &format!("certificateRules[{i}]")))
            .collect();

        let total_rules: usize = policies.iter().map(|p| p.rules.as_ref().map_or(0, Vec::len)).sum();
        if total_rules > MAX_RULES {
            c.error("policies", format!("{total_rules} rules is over the limit of {MAX_RULES}"));
            return Err(ConfigErrors(c.errors));
        }
        let mut sets = PolicySets::default();
        let mut policy_names: Vec<Arc<str>> = cert_rules.iter().map(|r| r.name.clone()).collect();
        let mut seen_names = std::collections::HashSet::new();
        for (pi, policy) in policies.iter().enumerate() {
            let path = format!("policies[{pi}]");
            if !policy.name.is_empty() && !seen_names.insert(policy.name.as_str()) {
                c.error(format!("{path}.name"), format!("duplicate policy name {:?}", policy.name));
            }
            if let Some(name) = c.policy(policy, &path, &mut sets) {
                policy_names.push(name);
            }
        }

        let Compiler { errors, header_names, reads_paths, enforces_paths, needs_full_certificate, .. } = c;
        if !errors.is_empty() {
            return Err(ConfigErrors(errors));
        }
        Ok(Engine {
            mode: *mode,
            mtls: *mtls,
            trust_domains: trust_domains.clone(),
            identity_sources: identity.clone(),
            path_normalization: *path_normalization,
            allow_path_parameters: *allow_path_parameters,
            reads_paths,
            enforces_paths,
            certificate,
            cert_rules,
            deny: sets.deny,
            dry_deny: sets.dry_deny,
            audit: sets.audit,
            allow: sets.allow,
            dry_allow: sets.dry_allow,
            allow_policies: sets.allow_policies,
            dry_allow_policies: sets.dry_allow_policies,
            needs_full_certificate,
            header_names,
            deny_response: deny_response.clone(),
            identity_header: identity_header.clone(),
            policy_names,
        })
    }
}

/// The rule sets of every action, filled while compiling policies.
#[derive(Default)]
struct PolicySets {
    deny: RuleSet,
    dry_deny: RuleSet,
    audit: RuleSet,
    allow: RuleSet,
    dry_allow: RuleSet,
    allow_policies: usize,
    dry_allow_policies: usize,
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
    path_normalization: PathNormalization,
    allow_path_parameters: bool,
}

fn is_header_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with(':')
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// A SPIFFE trust domain: lower-case letters, digits, `.`, `-` and `_` (SPIFFE ID spec 2.1).
fn is_trust_domain(td: &str) -> bool {
    !td.is_empty()
        && td.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_'))
}

impl Compiler {
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

    fn patterns(&mut self, values: &[String], path: &str, lowercase: bool) -> Vec<Pattern> {
        self.non_empty(values, path, "remove the field, or use [\"*\"] to mean any value");
        let mut out = Vec::with_capacity(values.len());
        for (i, v) in values.iter().enumerate() {
            match Pattern::parse(v) {
                Ok(p) => out.push(if lowercase { p.to_lowercase() } else { p }),
                Err(e) => self.error(format!("{path}[{i}]"), e.to_string()),
            }
        }
        out
    }

    fn strings(&mut self, values: &Option<Vec<String>>, path: &str, lowercase: bool) -> Option<StringMatcher> {
        values.as_ref().map(|v| StringMatcher::new(self.patterns(v, path, lowercase)))
    }

    fn namespaces(&mut self, values: &Option<Vec<String>>, path: &str) -> Option<NamespaceMatcher> {
        values.as_ref().map(|v| NamespaceMatcher::new(self.patterns(v, path, false)))
    }

    fn trust_domain_patterns(&mut self, values: &Option<Vec<String>>, path: &str) -> Option<StringMatcher> {
        for (i, v) in values.iter().flatten().enumerate() {
            let literal = v.trim_start_matches('*').trim_end_matches('*');
            if !literal.is_empty() && !is_trust_domain(literal) {
                self.error(
                    format!("{path}[{i}]"),
                    format!("{v:?} can never match a SPIFFE trust domain (lower-case letters, digits, '.', '-', '_')"),
                );
            }
        }
        self.strings(values, path, false)
    }

    /// Path patterns are matched against the normal form (docs/policy.md "Paths"), so one
    /// that is not itself in normal form could never match. Istio path templates (`{*}`,
    /// `{**}`) are compiled apart.
    fn paths(&mut self, values: &Option<Vec<String>>, path: &str) -> Option<PathMatcher> {
        let values = values.as_ref()?;
        self.reads_paths = true;
        self.enforces_paths |= self.enforcing;
        let mut templates = Vec::new();
        for (i, p) in values.iter().enumerate() {
            let at = format!("{path}[{i}]");
            if template::is_template(p) {
                match PathTemplate::parse(p) {
                    Ok(t) => {
                        if self.path_normalization != PathNormalization::None {
                            let problems: Vec<String> = t
                                .literals()
                                .filter_map(|l| {
                                    crate::path::pattern_problem(l, false, false, self.allow_path_parameters)
                                        .or_else(|| (l == "." || l == "..").then(|| "a '.' or '..' segment".to_owned()))
                                })
                                .collect();
                            if let Some(problem) = problems.first() {
                                self.error(at.clone(), format!("{p:?} can never match a normalized path: {problem}"));
                            }
                        }
                        templates.push(t);
                    }
                    Err(e) => self.error(at, e.to_string()),
                }
                continue;
            }
            if !(p.starts_with('/') || p.starts_with('*')) {
                self.error(at, format!("{p:?} can never match: paths start with '/'"));
                continue;
            }
            if p.contains(['{', '}']) {
                self.error(at, format!("{p:?}: '{{' and '}}' are allowed only in Istio path templates, as whole segments {{*}} or {{**}}"));
                continue;
            }
            if self.path_normalization == PathNormalization::None {
                continue;
            }
            let (open_left, open_right) = (p.starts_with('*') && p != "*", p.ends_with('*'));
            let text = p.trim_start_matches('*').trim_end_matches('*');
            if let Some(problem) = crate::path::pattern_problem(text, open_left, open_right, self.allow_path_parameters)
            {
                self.error(at, format!("{p:?} can never match a normalized path: {problem}"));
            }
        }
        if values.is_empty() {
            self.non_empty(values, path, "remove the field, or use [\"*\"] to mean any value");
        }
        // Indices in error paths must stay those of the document, so patterns are parsed here.
        let mut patterns = Vec::with_capacity(values.len());
        for (i, v) in values.iter().enumerate().filter(|(_, v)| !template::is_template(v)) {
            match Pattern::parse(v) {
                Ok(p) => patterns.push(p),
                Err(e) => self.error(format!("{path}[{i}]"), e.to_string()),
            }
        }
        Some(PathMatcher { strings: StringMatcher::new(patterns), templates })
    }

    /// Hosts are compared lower-case, with one trailing dot of the request's host removed, so a
    /// pattern ending in `.` (before an optional `*`) could never match.
    fn hosts(&mut self, values: &Option<Vec<String>>, path: &str) -> Option<StringMatcher> {
        for (i, h) in values.iter().flatten().enumerate() {
            let name = crate::request::split_host_port(h).0;
            if name.len() > 1 && name.ends_with('.') && !h.ends_with('*') {
                self.error(
                    format!("{path}[{i}]"),
                    format!("{h:?} can never match: one trailing dot of the request's host is removed before matching; write it without the dot"),
                );
            }
        }
        self.strings(values, path, true)
    }

    fn ports(&mut self, values: &Option<Vec<PortValue>>, path: &str) -> Option<Vec<u32>> {
        let values = values.as_ref()?;
        self.non_empty(values, path, "remove the field to match any port");
        let mut out = Vec::with_capacity(values.len());
        for (i, v) in values.iter().enumerate() {
            let parsed = match v {
                PortValue::Number(n) => u32::try_from(*n).ok().filter(|n| *n <= 65535),
                PortValue::Text(t) => parse_port(t),
            };
            match parsed {
                Some(p) => out.push(p),
                None => self.error(
                    format!("{path}[{i}]"),
                    "not a port: decimal digits, 0-65535, as Istio's validation accepts (no patterns)",
                ),
            }
        }
        Some(out)
    }

    fn source(&mut self, s: &Source, path: &str) -> CompiledSource {
        let Source {
            principals,
            not_principals,
            namespaces,
            not_namespaces,
            trust_domains,
            not_trust_domains,
            request_principals,
            not_request_principals,
            ip_blocks,
            not_ip_blocks,
            remote_ip_blocks,
            not_remote_ip_blocks,
            service_accounts,
            not_service_accounts,
        } = s;
        let unsupported: [(&str, bool, &str); 8] = [
            ("requestPrincipals", request_principals.is_some(), "request principals come from JWTs; peerguard authorizes the mTLS peer. Use Istio's RequestAuthentication and AuthorizationPolicy for JWTs"),
            ("notRequestPrincipals", not_request_principals.is_some(), "request principals come from JWTs; peerguard authorizes the mTLS peer"),
            ("ipBlocks", ip_blocks.is_some(), "peerguard decides on cryptographic identity, not addresses; keep IP rules in Istio's AuthorizationPolicy or Envoy's RBAC"),
            ("notIpBlocks", not_ip_blocks.is_some(), "peerguard decides on cryptographic identity, not addresses"),
            ("remoteIpBlocks", remote_ip_blocks.is_some(), "peerguard decides on cryptographic identity, not addresses"),
            ("notRemoteIpBlocks", not_remote_ip_blocks.is_some(), "peerguard decides on cryptographic identity, not addresses"),
            ("serviceAccounts", service_accounts.is_some(), "write the service account as a principal instead, e.g. cluster.local/ns/NS/sa/SA"),
            ("notServiceAccounts", not_service_accounts.is_some(), "write the service account as a notPrincipals entry instead"),
        ];
        let mut any = false;
        for (name, present, why) in unsupported {
            any |= present;
            if present {
                self.error(format!("{path}.{name}"), format!("not supported: {why}"));
            }
        }
        let compiled = CompiledSource {
            principals: self.strings(principals, &format!("{path}.principals"), false),
            not_principals: self.strings(not_principals, &format!("{path}.notPrincipals"), false),
            namespaces: self.namespaces(namespaces, &format!("{path}.namespaces")),
            not_namespaces: self.namespaces(not_namespaces, &format!("{path}.notNamespaces")),
            trust_domains: self.trust_domain_patterns(trust_domains, &format!("{path}.trustDomains")),
            not_trust_domains: self.trust_domain_patterns(not_trust_domains, &format!("{path}.notTrustDomains")),
        };
        let set = [principals, not_principals, namespaces, not_namespaces, trust_domains, not_trust_domains];
        if !any && set.iter().all(|f| f.is_none()) {
            self.error(path, "empty source: Istio refuses it; remove the `from` entry to match any source");
        }
        compiled
    }

    fn operation(&mut self, o: &Operation, path: &str) -> CompiledOperation {
        let Operation { hosts, not_hosts, ports, not_ports, methods, not_methods, paths, not_paths } = o;
        if hosts.is_none()
            && not_hosts.is_none()
            && ports.is_none()
            && not_ports.is_none()
            && methods.is_none()
            && not_methods.is_none()
            && paths.is_none()
            && not_paths.is_none()
        {
            self.error(path, "empty operation: Istio refuses it; remove the `to` entry to match any operation");
        }
        CompiledOperation {
            hosts: self.hosts(hosts, &format!("{path}.hosts")),
            not_hosts: self.hosts(not_hosts, &format!("{path}.notHosts")),
            ports: self.ports(ports, &format!("{path}.ports")),
            not_ports: self.ports(not_ports, &format!("{path}.notPorts")),
            methods: self.strings(methods, &format!("{path}.methods"), false),
            not_methods: self.strings(not_methods, &format!("{path}.notMethods"), false),
            paths: self.paths(paths, &format!("{path}.paths")),
            not_paths: self.paths(not_paths, &format!("{path}.notPaths")),
        }
    }

    fn operations(&mut self, ops: &[To], path: &str) -> Vec<CompiledOperation> {
        self.non_empty(ops, path, "remove the field to match any operation");
        ops.iter()
            .enumerate()
            .map(|(i, To { operation })| self.operation(operation, &format!("{path}[{i}].operation")))
            .collect()
    }

    fn cert_rule(&mut self, rule: &CertificateRule, path: &str) -> CompiledCertRule {
        let CertificateRule { name, to, require } = rule;
        if name.is_empty() {
            self.error(format!("{path}.name"), "must not be empty");
        }
        let to = to.as_ref().map(|t| self.operations(t, &format!("{path}.to")));
        let errors_before = self.errors.len();
        let require = CertRequirements::compile(require, &format!("{path}.require"), &mut self.errors);
        // A requirement that failed to compile is already reported at its own path.
        if self.errors.len() == errors_before && !require.needs_full_certificate() {
            self.error(format!("{path}.require"), "sets no requirement");
        }
        CompiledCertRule { name: Arc::from(name.as_str()), to, require }
    }

    /// Compiles one policy into its action's rule set; returns its name for metrics.
    fn policy(&mut self, policy: &AuthorizationPolicy, path: &str, sets: &mut PolicySets) -> Option<Arc<str>> {
        let AuthorizationPolicy { name, action, dry_run, rules, selector, target_ref, target_refs, provider } = policy;
        if name.is_empty() {
            self.error(format!("{path}.name"), "must not be empty: decisions, logs and metrics name the policy");
        }
        for (field, value, why) in [
            ("selector", selector, "is part of the Kubernetes resource, not the policy: attach the filter with the WasmPlugin's selector, or run `peerguard import` on the whole resource"),
            ("targetRef", target_ref, "is part of the Kubernetes resource, not the policy: attach the filter with the WasmPlugin's targetRefs"),
            ("targetRefs", target_refs, "is part of the Kubernetes resource, not the policy: attach the filter with the WasmPlugin's targetRefs"),
            ("provider", provider, "belongs to action CUSTOM (external authorization), which peerguard does not support"),
        ] {
            if value.is_some() {
                self.error(format!("{path}.{field}"), format!("not supported: {field} {why}"));
            }
        }
        let deny_side = *action == Action::Deny;
        let set = match (action, dry_run) {
            (Action::Deny, false) => &mut sets.deny,
            (Action::Deny, true) => &mut sets.dry_deny,
            // AUDIT never changes a decision, so dryRun makes no difference to it.
            (Action::Audit, _) => &mut sets.audit,
            (Action::Allow, false) => {
                sets.allow_policies += 1;
                &mut sets.allow
            }
            (Action::Allow, true) => {
                sets.dry_allow_policies += 1;
                &mut sets.dry_allow
            }
            (Action::Custom, _) => {
                self.error(
                    format!("{path}.action"),
                    "CUSTOM (external authorization) is not supported; use ALLOW, DENY or AUDIT",
                );
                return None;
            }
        };
        // As Istio's validation: a DENY or AUDIT policy must say what it denies or audits. An
        // ALLOW policy without rules is fine and matches nothing (it denies everything).
        if matches!(action, Action::Deny | Action::Audit) && rules.as_ref().is_none_or(Vec::is_empty) {
            self.error(
                format!("{path}.rules"),
                format!("a {action} policy needs at least one rule (use `rules: [{{}}]` to match every request)"),
            );
        }
        let name: Arc<str> = Arc::from(name.as_str());
        // A dry-run or AUDIT policy must never change traffic, not even through the path check.
        self.enforcing = matches!(action, Action::Deny | Action::Allow) && !dry_run;
        for (ri, rule) in rules.iter().flatten().enumerate() {
            let compiled = self.rule(rule, &format!("{path}.rules[{ri}]"), name.clone(), deny_side);
            set.push(compiled);
        }
        self.enforcing = true;
        Some(name)
    }

    fn rule(&mut self, rule: &Rule, path: &str, policy: Arc<str>, deny_side: bool) -> CompiledRule {
        let Rule { from, to, when } = rule;
        let from = from.as_ref().map(|sources| {
            self.non_empty(sources, &format!("{path}.from"), "remove the field to match any source");
            sources
                .iter()
                .enumerate()
                .map(|(si, From { source })| self.source(source, &format!("{path}.from[{si}].source")))
                .collect()
        });
        let to = to.as_ref().map(|t| self.operations(t, &format!("{path}.to")));
        let mut compiled_when = Vec::new();
        if let Some(conds) = when {
            self.non_empty(conds, &format!("{path}.when"), "remove the field to match any request");
            for (ci, cond) in conds.iter().enumerate() {
                if let Some(c) = self.condition(cond, &format!("{path}.when[{ci}]"), deny_side) {
                    compiled_when.push(c);
                }
            }
        }
        CompiledRule { policy, from, to, when: compiled_when }
    }

    fn header_index(&mut self, name: String) -> usize {
        match self.header_names.iter().position(|h| *h == name) {
            Some(i) => i,
            None => {
                self.header_names.push(name);
                self.header_names.len() - 1
            }
        }
    }

    fn condition(&mut self, cond: &Condition, path: &str, deny_side: bool) -> Option<CompiledCondition> {
        let Condition { key, values, not_values } = cond;
        let key = match compile_when_key(key) {
            Ok(WhenKeyName::Header(name)) => WhenKey::Header(self.header_index(name)),
            Ok(WhenKeyName::Other(k)) => k,
            Err(e) => {
                self.error(format!("{path}.key"), e);
                return None;
            }
        };
        if values.is_none() && not_values.is_none() {
            self.error(path, "needs values or notValues");
        }
        if key.needs_full_certificate() {
            self.needs_full_certificate = true;
        }
        let mut compile_values = |field: &str, v: &Option<Vec<String>>| -> Option<Values> {
            let v = v.as_ref()?;
            let at = format!("{path}.{field}");
            Some(match key {
                WhenKey::DestinationPort => {
                    let ports: Vec<PortValue> = v.iter().map(|s| PortValue::Text(s.clone())).collect();
                    Values::Ports(self.ports(&Some(ports), &at).unwrap_or_default())
                }
                WhenKey::SourceNamespace => Values::Namespaces(NamespaceMatcher::new(self.patterns(v, &at, false))),
                _ => Values::Strings(StringMatcher::new(self.patterns(v, &at, false))),
            })
        };
        let values = compile_values("values", values);
        let not_values = compile_values("notValues", not_values);
        Some(CompiledCondition { key, values, not_values, deny_side })
    }
}

/// A `when` key, before headers are given their index.
enum WhenKeyName {
    Header(String),
    Other(WhenKey),
}

fn compile_when_key(key: &str) -> Result<WhenKeyName, String> {
    if let Some(rest) = key.strip_prefix("request.headers[") {
        let name = rest.strip_suffix(']').ok_or("missing ']' in request.headers[NAME]")?;
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b':') {
            return Err(format!("{name:?} is not a header name"));
        }
        return Ok(WhenKeyName::Header(name.to_ascii_lowercase()));
    }
    Ok(WhenKeyName::Other(match key {
        "source.principal" => WhenKey::SourcePrincipal,
        "source.namespace" => WhenKey::SourceNamespace,
        "destination.port" => WhenKey::DestinationPort,
        "connection.sni" => WhenKey::ConnectionSni,
        "cert.subject" => WhenKey::CertSubject,
        "cert.subject.cn" => WhenKey::CertSubjectCn,
        "cert.subject.o" => WhenKey::CertSubjectO,
        "cert.subject.ou" => WhenKey::CertSubjectOu,
        "cert.issuer" => WhenKey::CertIssuer,
        "cert.issuer.cn" => WhenKey::CertIssuerCn,
        "cert.issuer.o" => WhenKey::CertIssuerO,
        "cert.san.uri" => WhenKey::CertSanUri,
        "cert.san.dns" => WhenKey::CertSanDns,
        "cert.serial" => WhenKey::CertSerial,
        "cert.sha256" => WhenKey::CertSha256,
        "cert.spki.sha256" => WhenKey::CertSpkiSha256,
        k if k.starts_with("request.auth.") => {
            return Err(format!("{k} is not supported: it reads JWT claims, and peerguard authorizes the mTLS peer"))
        }
        k if matches!(k, "source.ip" | "remote.ip" | "destination.ip") => {
            return Err(format!("{k} is not supported: peerguard decides on cryptographic identity, not addresses"))
        }
        k if k.starts_with("experimental.") => return Err(format!("{k} is not supported")),
        k => {
            return Err(format!(
                "unknown key {k:?}; supported: request.headers[NAME], source.principal, source.namespace, destination.port, connection.sni, cert.subject, cert.subject.cn, cert.subject.o, cert.subject.ou, cert.issuer, cert.issuer.cn, cert.issuer.o, cert.san.uri, cert.san.dns, cert.serial, cert.sha256, cert.spki.sha256"
            ))
        }
    }))
}
