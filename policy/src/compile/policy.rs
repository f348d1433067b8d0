//! Compiling `policies`: each policy's rules, with their sources, operations and `when` conditions.

use std::sync::Arc;

use super::{Compiler, MAX_RULES};
use crate::config::{Action, AuthorizationPolicy, Condition, Operation, PortValue, Rule, RuleFrom, RuleTo, Source};
use crate::index::PolicySets;
use crate::namespace::NamespaceMatcher;
use crate::pattern::StringMatcher;
use crate::rule::{CompiledCondition, CompiledOperation, CompiledRule, CompiledSource, Values, WhenKey};

impl Compiler {
    /// Compiles every policy into the rule set of its action, appending each policy's name to
    /// `names`; `None` (with the error recorded) when the document has more than [`MAX_RULES`]
    /// rules, which are then not compiled at all.
    pub(super) fn policies(
        &mut self,
        policies: &[AuthorizationPolicy],
        names: &mut Vec<Arc<str>>,
    ) -> Option<PolicySets> {
        let total_rules: usize = policies.iter().map(|p| p.rules.as_ref().map_or(0, Vec::len)).sum();
        if total_rules > MAX_RULES {
            self.error("policies", format!("{total_rules} rules is over the limit of {MAX_RULES}"));
            return None;
        }
        let mut sets = PolicySets::default();
        let mut seen_names = std::collections::HashSet::new();
        for (pi, policy) in policies.iter().enumerate() {
            let path = format!("policies[{pi}]");
            if !policy.name.is_empty() && !seen_names.insert(policy.name.as_str()) {
                self.error(format!("{path}.name"), format!("duplicate policy name {:?}", policy.name));
            }
            if let Some(name) = self.policy(policy, &path, &mut sets) {
                names.push(name);
            }
        }
        Some(sets)
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
                .map(|(si, RuleFrom { source })| self.source(source, &format!("{path}.from[{si}].source")))
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
                WhenKey::SourcePrincipal => Values::Strings(self.principals(&Some(v.clone()), &at).unwrap_or_default()),
                _ => Values::Strings(StringMatcher::new(self.patterns(v, &at, false))),
            })
        };
        let values = compile_values("values", values);
        let not_values = compile_values("notValues", not_values);
        Some(CompiledCondition { key, values, not_values, deny_side })
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
            principals: self.principals(principals, &format!("{path}.principals")).map(Box::new),
            not_principals: self.principals(not_principals, &format!("{path}.notPrincipals")).map(Box::new),
            namespaces: self.namespaces(namespaces, &format!("{path}.namespaces")).map(Box::new),
            not_namespaces: self.namespaces(not_namespaces, &format!("{path}.notNamespaces")).map(Box::new),
            trust_domains: self.trust_domain_patterns(trust_domains, &format!("{path}.trustDomains")).map(Box::new),
            not_trust_domains: self
                .trust_domain_patterns(not_trust_domains, &format!("{path}.notTrustDomains"))
                .map(Box::new),
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
            hosts: self.hosts(hosts, &format!("{path}.hosts")).map(Box::new),
            not_hosts: self.hosts(not_hosts, &format!("{path}.notHosts")).map(Box::new),
            ports: self.ports(ports, &format!("{path}.ports")).map(Box::new),
            not_ports: self.ports(not_ports, &format!("{path}.notPorts")).map(Box::new),
            methods: self.strings(methods, &format!("{path}.methods"), false).map(Box::new),
            not_methods: self.strings(not_methods, &format!("{path}.notMethods"), false).map(Box::new),
            paths: self.paths(paths, &format!("{path}.paths")).map(Box::new),
            not_paths: self.paths(not_paths, &format!("{path}.notPaths")).map(Box::new),
        }
    }

    pub(super) fn operations(&mut self, ops: &[RuleTo], path: &str) -> Vec<CompiledOperation> {
        self.non_empty(ops, path, "remove the field to match any operation");
        ops.iter()
            .enumerate()
            .map(|(i, RuleTo { operation })| self.operation(operation, &format!("{path}[{i}].operation")))
            .collect()
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
