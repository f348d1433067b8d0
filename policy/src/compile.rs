//! Turns a [`PolicyDocument`] into an [`Engine`], collecting every error with its JSON path.

use std::sync::Arc;

use crate::certreq::{compile_patterns, CertRequirements};
use crate::config::{Action, Condition, Operation, PolicyDocument, PortValue, Source, To};
use crate::engine::{
    CompiledCertRule, CompiledCondition, CompiledOperation, CompiledRule, CompiledSource, Engine, RuleSet, WhenKey,
};
use crate::error::{ConfigError, ConfigErrors};
use crate::pattern::StringMatcher;

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
        let mut errors: Vec<ConfigError> = Vec::new();
        let mut needs_full_certificate = false;
        let mut needed_headers: Vec<String> = Vec::new();
        let mut uses_paths = false;
        let mut uses_ports = false;
        let mut uses_sni = false;

        if let Some(tds) = &doc.trust_domains {
            if tds.is_empty() {
                errors.push(ConfigError::new(
                    "trustDomains",
                    "empty list accepts no trust domain; remove the field to accept any",
                ));
            }
            for (i, td) in tds.iter().enumerate() {
                if td.is_empty()
                    || td
                        .chars()
                        .any(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-' | '_')))
                {
                    errors.push(ConfigError::new(
                        format!("trustDomains[{i}]"),
                        format!("{td:?} is not a SPIFFE trust domain (lower-case letters, digits, '.', '-', '_')"),
                    ));
                }
            }
        }
        if doc.identity.is_empty() {
            errors.push(ConfigError::new("identity", "empty list: no identity could ever be found; use e.g. [spiffe]"));
        }
        for (i, s) in doc.identity.iter().enumerate() {
            if doc.identity[..i].contains(s) {
                errors.push(ConfigError::new(format!("identity[{i}]"), format!("{s} is listed twice")));
            }
        }
        if !(400..=599).contains(&doc.deny_response.status) {
            errors.push(ConfigError::new("denyResponse.status", "must be an HTTP error status, 400-599"));
        }
        if doc.deny_response.body.len() > 4096 {
            errors.push(ConfigError::new("denyResponse.body", "longer than 4096 bytes; keep deny bodies short"));
        }
        if !is_header_name(&doc.identity_header) {
            errors.push(ConfigError::new(
                "identityHeader",
                "must be a lower-case HTTP header name, e.g. x-peerguard-principal",
            ));
        }

        let certificate = doc.certificate.as_ref().map(|c| CertRequirements::compile(c, "certificate", &mut errors));
        if certificate.as_ref().is_some_and(CertRequirements::needs_full_certificate) {
            needs_full_certificate = true;
        }

        let mut cert_rules = Vec::with_capacity(doc.certificate_rules.len());
        for (i, rule) in doc.certificate_rules.iter().enumerate() {
            let path = format!("certificateRules[{i}]");
            if rule.name.is_empty() {
                errors.push(ConfigError::new(format!("{path}.name"), "must not be empty"));
            }
            let to =
                rule.to.as_ref().map(|t| compile_operations(t, &format!("{path}.to"), &mut errors, &mut uses_paths));
            let errors_before = errors.len();
            let require = CertRequirements::compile(&rule.require, &format!("{path}.require"), &mut errors);
            // A requirement that failed to compile is already reported at its own path.
            if errors.len() == errors_before && !require.needs_full_certificate() {
                errors.push(ConfigError::new(format!("{path}.require"), "sets no requirement"));
            }
            needs_full_certificate = true;
            cert_rules.push(CompiledCertRule { name: Arc::from(rule.name.as_str()), to, require });
        }

        let mut deny = RuleSet::default();
        let mut dry_deny = RuleSet::default();
        let mut audit = RuleSet::default();
        let mut allow = RuleSet::default();
        let mut dry_allow = RuleSet::default();
        let mut allow_policies = 0;
        let mut dry_allow_policies = 0;
        let mut policy_names: Vec<Arc<str>> = cert_rules.iter().map(|r| r.name.clone()).collect();
        let mut seen_names = std::collections::HashSet::new();
        let total_rules: usize = doc.policies.iter().map(|p| p.rules.as_ref().map_or(0, Vec::len)).sum();
        if total_rules > MAX_RULES {
            errors.push(ConfigError::new("policies", format!("{total_rules} rules is over the limit of {MAX_RULES}")));
            return Err(ConfigErrors(errors));
        }

        for (pi, policy) in doc.policies.iter().enumerate() {
            let path = format!("policies[{pi}]");
            if policy.name.is_empty() {
                errors.push(ConfigError::new(
                    format!("{path}.name"),
                    "must not be empty: decisions, logs and metrics name the policy",
                ));
            } else if !seen_names.insert(policy.name.as_str()) {
                errors
                    .push(ConfigError::new(format!("{path}.name"), format!("duplicate policy name {:?}", policy.name)));
            }
            for (field, value, why) in [
                ("selector", &policy.selector, "is part of the Kubernetes resource, not the policy: attach the filter with the WasmPlugin's selector, or run `peerguard import` on the whole resource"),
                ("targetRef", &policy.target_ref, "is part of the Kubernetes resource, not the policy: attach the filter with the WasmPlugin's targetRefs"),
                ("targetRefs", &policy.target_refs, "is part of the Kubernetes resource, not the policy: attach the filter with the WasmPlugin's targetRefs"),
                ("provider", &policy.provider, "belongs to action CUSTOM (external authorization), which peerguard does not support"),
            ] {
                if value.is_some() {
                    errors.push(ConfigError::new(format!("{path}.{field}"), format!("not supported: {field} {why}")));
                }
            }
            let name: Arc<str> = Arc::from(policy.name.as_str());
            policy_names.push(name.clone());
            let set = match (policy.action, policy.dry_run) {
                (Action::Deny, false) => &mut deny,
                (Action::Deny, true) => &mut dry_deny,
                // AUDIT never changes a decision, so dryRun makes no difference to it.
                (Action::Audit, _) => &mut audit,
                (Action::Allow, false) => {
                    allow_policies += 1;
                    &mut allow
                }
                (Action::Allow, true) => {
                    dry_allow_policies += 1;
                    &mut dry_allow
                }
                (Action::Custom, _) => {
                    errors.push(ConfigError::new(
                        format!("{path}.action"),
                        "CUSTOM (external authorization) is not supported; use ALLOW, DENY or AUDIT",
                    ));
                    continue;
                }
            };
            for (ri, rule) in policy.rules.iter().flatten().enumerate() {
                let rpath = format!("{path}.rules[{ri}]");
                let from = rule.from.as_ref().map(|sources| {
                    if sources.is_empty() {
                        errors.push(ConfigError::new(
                            format!("{rpath}.from"),
                            "empty list; remove the field to match any source",
                        ));
                    }
                    sources
                        .iter()
                        .enumerate()
                        .map(|(si, f)| compile_source(&f.source, &format!("{rpath}.from[{si}].source"), &mut errors))
                        .collect()
                });
                let to = rule
                    .to
                    .as_ref()
                    .map(|t| compile_operations(t, &format!("{rpath}.to"), &mut errors, &mut uses_paths));
                let mut when = Vec::new();
                for (ci, cond) in rule.when.iter().flatten().enumerate() {
                    if let Some(c) = compile_condition(cond, &format!("{rpath}.when[{ci}]"), &mut errors) {
                        uses_ports |= c.key == WhenKey::DestinationPort;
                        uses_sni |= c.key == WhenKey::ConnectionSni;
                        if c.key.needs_full_certificate() {
                            needs_full_certificate = true;
                        }
                        if let WhenKey::Header(h) = &c.key {
                            if !needed_headers.contains(h) {
                                needed_headers.push(h.clone());
                            }
                        }
                        when.push(c);
                    }
                }
                set.push(CompiledRule { policy: name.clone(), from, to, when });
            }
        }

        let all_ops: Vec<&To> = doc
            .policies
            .iter()
            .flat_map(|p| p.rules.iter().flatten())
            .flat_map(|r| r.to.iter().flatten())
            .chain(doc.certificate_rules.iter().flat_map(|r| r.to.iter().flatten()))
            .collect();
        let uses_methods = all_ops.iter().any(|t| t.operation.methods.is_some() || t.operation.not_methods.is_some());
        let uses_hosts = all_ops.iter().any(|t| t.operation.hosts.is_some() || t.operation.not_hosts.is_some());
        uses_ports |= all_ops.iter().any(|t| t.operation.ports.is_some() || t.operation.not_ports.is_some());
        if !errors.is_empty() {
            return Err(ConfigErrors(errors));
        }
        Ok(Engine {
            mode: doc.mode,
            mtls: doc.mtls,
            trust_domains: doc.trust_domains.clone(),
            identity_sources: doc.identity.clone(),
            certificate,
            cert_rules,
            deny,
            dry_deny,
            audit,
            allow,
            dry_allow,
            allow_policies,
            dry_allow_policies,
            needs_full_certificate,
            needed_headers,
            uses_paths,
            uses_methods,
            uses_hosts,
            uses_ports,
            uses_sni,
            deny_response: doc.deny_response.clone(),
            identity_header: doc.identity_header.clone(),
            policy_names,
        })
    }
}

fn is_header_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with(':')
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

fn field(
    values: &Option<Vec<String>>,
    path: &str,
    name: &str,
    errors: &mut Vec<ConfigError>,
    lowercase: bool,
) -> Option<StringMatcher> {
    values.as_ref().map(|v| compile_patterns(v, &format!("{path}.{name}"), errors, lowercase))
}

fn compile_source(s: &Source, path: &str, errors: &mut Vec<ConfigError>) -> CompiledSource {
    let unsupported: [(&str, bool, &str); 8] = [
        ("requestPrincipals", s.request_principals.is_some(), "request principals come from JWTs; peerguard authorizes the mTLS peer. Use Istio's RequestAuthentication and AuthorizationPolicy for JWTs"),
        ("notRequestPrincipals", s.not_request_principals.is_some(), "request principals come from JWTs; peerguard authorizes the mTLS peer"),
        ("ipBlocks", s.ip_blocks.is_some(), "peerguard decides on cryptographic identity, not addresses; keep IP rules in Istio's AuthorizationPolicy or Envoy's RBAC"),
        ("notIpBlocks", s.not_ip_blocks.is_some(), "peerguard decides on cryptographic identity, not addresses"),
        ("remoteIpBlocks", s.remote_ip_blocks.is_some(), "peerguard decides on cryptographic identity, not addresses"),
        ("notRemoteIpBlocks", s.not_remote_ip_blocks.is_some(), "peerguard decides on cryptographic identity, not addresses"),
        ("serviceAccounts", s.service_accounts.is_some(), "write the service account as a principal instead, e.g. cluster.local/ns/NS/sa/SA"),
        ("notServiceAccounts", s.not_service_accounts.is_some(), "write the service account as a notPrincipals entry instead"),
    ];
    for (name, present, why) in unsupported {
        if present {
            errors.push(ConfigError::new(format!("{path}.{name}"), format!("not supported: {why}")));
        }
    }
    CompiledSource {
        principals: field(&s.principals, path, "principals", errors, false),
        not_principals: field(&s.not_principals, path, "notPrincipals", errors, false),
        namespaces: field(&s.namespaces, path, "namespaces", errors, false),
        not_namespaces: field(&s.not_namespaces, path, "notNamespaces", errors, false),
        trust_domains: field(&s.trust_domains, path, "trustDomains", errors, false),
        not_trust_domains: field(&s.not_trust_domains, path, "notTrustDomains", errors, false),
    }
}

fn compile_ports(values: &Option<Vec<PortValue>>, path: &str, errors: &mut Vec<ConfigError>) -> Option<Vec<u32>> {
    let values = values.as_ref()?;
    if values.is_empty() {
        errors.push(ConfigError::new(path, "empty list; remove the field to match any port"));
    }
    let mut out = Vec::with_capacity(values.len());
    for (i, v) in values.iter().enumerate() {
        let parsed = match v {
            PortValue::Number(n) => u32::try_from(*n).ok(),
            PortValue::Text(t) => t.parse::<u32>().ok(),
        };
        match parsed {
            Some(p) if (1..=65535).contains(&p) => out.push(p),
            _ => errors.push(ConfigError::new(
                format!("{path}[{i}]"),
                "not a port number (1-65535); Istio ports are exact, without patterns",
            )),
        }
    }
    Some(out)
}

fn compile_operations(
    ops: &[To],
    path: &str,
    errors: &mut Vec<ConfigError>,
    uses_paths: &mut bool,
) -> Vec<CompiledOperation> {
    if ops.is_empty() {
        errors.push(ConfigError::new(path, "empty list; remove the field to match any operation"));
    }
    ops.iter()
        .enumerate()
        .map(|(i, t)| compile_operation(&t.operation, &format!("{path}[{i}].operation"), errors, uses_paths))
        .collect()
}

fn compile_operation(
    o: &Operation,
    path: &str,
    errors: &mut Vec<ConfigError>,
    uses_paths: &mut bool,
) -> CompiledOperation {
    if o.paths.is_some() || o.not_paths.is_some() {
        *uses_paths = true;
    }
    for (name, list) in [("paths", &o.paths), ("notPaths", &o.not_paths)] {
        for (i, p) in list.iter().flatten().enumerate() {
            if !(p.starts_with('/') || p.starts_with('*')) {
                errors.push(ConfigError::new(
                    format!("{path}.{name}[{i}]"),
                    format!("{p:?} can never match: paths start with '/'"),
                ));
            }
        }
    }
    CompiledOperation {
        hosts: field(&o.hosts, path, "hosts", errors, true),
        not_hosts: field(&o.not_hosts, path, "notHosts", errors, true),
        ports: compile_ports(&o.ports, &format!("{path}.ports"), errors),
        not_ports: compile_ports(&o.not_ports, &format!("{path}.notPorts"), errors),
        methods: field(&o.methods, path, "methods", errors, false),
        not_methods: field(&o.not_methods, path, "notMethods", errors, false),
        paths: field(&o.paths, path, "paths", errors, false),
        not_paths: field(&o.not_paths, path, "notPaths", errors, false),
    }
}

fn compile_when_key(key: &str) -> Result<WhenKey, String> {
    if let Some(rest) = key.strip_prefix("request.headers[") {
        let name = rest.strip_suffix(']').ok_or("missing ']' in request.headers[NAME]")?;
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b':') {
            return Err(format!("{name:?} is not a header name"));
        }
        return Ok(WhenKey::Header(name.to_ascii_lowercase()));
    }
    Ok(match key {
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
    })
}

fn compile_condition(c: &Condition, path: &str, errors: &mut Vec<ConfigError>) -> Option<CompiledCondition> {
    let key = match compile_when_key(&c.key) {
        Ok(k) => k,
        Err(e) => {
            errors.push(ConfigError::new(format!("{path}.key"), e));
            return None;
        }
    };
    if c.values.is_none() && c.not_values.is_none() {
        errors.push(ConfigError::new(path, "needs values or notValues"));
    }
    Some(CompiledCondition {
        key,
        values: field(&c.values, path, "values", errors, false),
        not_values: field(&c.not_values, path, "notValues", errors, false),
    })
}
