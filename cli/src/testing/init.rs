//! `peerguard test --init POLICY`: a starter test file built from the policy, one allow and one deny case per policy.
//!
//! Requests are made from each policy's own rules (an exact principal becomes the case's
//! principal, a DENY path the deny case's path, a pattern gets a concrete value), then decided by
//! the engine: the expectation written is what the engine answered, so the file passes as
//! written. Where no request gave the intended outcome, a comment above the case says so.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use peerguard_policy::{Action, AuthorizationPolicy, Engine, IdentitySource, PolicyDocument, PortValue, Rule};

use super::{decide, Case, Expect, Outcome, PeerSpec, Verdict};
use crate::Failure;
use peerguard_certkit::{parse_dn, CertFactory, PrincipalLeaf, DEFAULT_ISSUER, DEFAULT_LIFETIME_SECS};

/// One request the generator proposes.
#[derive(Clone)]
struct Draft {
    principal: Option<String>,
    method: String,
    path: String,
    host: Option<String>,
    port: Option<u32>,
    headers: Vec<(String, String)>,
    sni: Option<String>,
    /// Parts of the rule a generated request cannot satisfy (certificate fields).
    unmet: Vec<String>,
}

impl Draft {
    /// How much the request sets beyond a principal, a method and a path.
    fn weight(&self) -> usize {
        usize::from(self.host.is_some())
            + usize::from(self.port.is_some())
            + self.headers.len()
            + usize::from(self.sni.is_some())
    }

    fn describe(&self) -> String {
        let mut s = format!("{} {}", self.method, self.path);
        if let Some(h) = &self.host {
            let _ = write!(s, " on {h}");
        }
        if let Some(p) = self.port {
            let _ = write!(s, " port {p}");
        }
        for (k, v) in &self.headers {
            let _ = write!(s, " with {k}: {v}");
        }
        match &self.principal {
            Some(p) => {
                let _ = write!(s, " from {p}");
            }
            None => s.push_str(" without a certificate"),
        }
        s
    }
}

/// A case as it will be written.
struct Written {
    name: String,
    note: Option<String>,
    draft: Draft,
    outcome: Outcome,
}

struct Generator<'a> {
    doc: &'a PolicyDocument,
    engine: &'a Engine,
    certs: CertFactory,
    now: i64,
    trust_domain: String,
    cn_identity: bool,
    issuer: Option<String>,
    lifetime: Option<String>,
}

/// Writes the starter file and returns its path.
pub(crate) fn write(policy: &Path, out: Option<&Path>, force: bool) -> Result<PathBuf, Failure> {
    let loaded = crate::load_policy(policy)?;
    let (doc, engine) = (loaded.document, loaded.engine);
    let out = match out {
        Some(o) => o.to_path_buf(),
        None => default_out(policy),
    };
    if out.exists() && !force {
        return Err(Failure(format!("{} exists; use --force to replace it", out.display())));
    }
    let policy_ref = relative_ref(policy, &out)?;
    let mut g = Generator::new(&doc, &engine, super::now()?);
    let cases = g.cases()?;
    let text = render(&policy_ref, policy, &out, &g, &cases);
    std::fs::write(&out, text).map_err(|e| Failure(format!("cannot write {}: {e}", out.display())))?;
    Ok(out)
}

fn default_out(policy: &Path) -> PathBuf {
    let name = policy.file_name().and_then(|n| n.to_str()).unwrap_or("policy");
    let stem = [".yaml", ".yml", ".json"].iter().find_map(|ext| name.strip_suffix(ext)).unwrap_or(name);
    policy.with_file_name(format!("{stem}.test.yaml"))
}

/// The policy as the test file names it: relative to the test file's directory.
fn relative_ref(policy: &Path, out: &Path) -> Result<String, Failure> {
    let canon = |p: &Path| p.canonicalize().map_err(|e| Failure(format!("cannot resolve {}: {e}", p.display())));
    let policy_abs = canon(policy)?;
    let out_dir = match out.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(d) => canon(d)?,
        None => canon(Path::new("."))?,
    };
    Ok(match policy_abs.strip_prefix(&out_dir) {
        Ok(rel) => rel.display().to_string(),
        Err(_) => policy_abs.display().to_string(),
    })
}

/// A concrete value that `pattern` matches: `prefix*` gives the prefix (plus `filler` when the
/// prefix ends in a separator), `*suffix` gives `filler` + suffix, `*` gives `filler`.
fn concrete(pattern: &str, filler: &str) -> String {
    if pattern == "*" {
        return filler.to_owned();
    }
    if let Some(prefix) = pattern.strip_suffix('*') {
        let ends_alnum = prefix.chars().last().is_some_and(char::is_alphanumeric);
        return if ends_alnum { prefix.to_owned() } else { format!("{prefix}{filler}") };
    }
    if let Some(suffix) = pattern.strip_prefix('*') {
        return format!("{filler}{suffix}");
    }
    pattern.to_owned()
}

fn concrete_path(pattern: &str) -> String {
    let p = concrete(&pattern.replace("{**}", "example/path").replace("{*}", "example"), "example");
    if p.starts_with('/') {
        p
    } else {
        format!("/{p}")
    }
}

fn matches_pattern(pattern: &str, value: &str) -> bool {
    peerguard_policy::Pattern::parse(pattern).is_ok_and(|p| p.matches(value))
}

fn port_of(v: &PortValue) -> Option<u32> {
    match v {
        PortValue::Number(n) => u32::try_from(*n).ok(),
        PortValue::Text(t) => t.parse().ok(),
    }
}

impl<'a> Generator<'a> {
    fn new(doc: &'a PolicyDocument, engine: &'a Engine, now: i64) -> Generator<'a> {
        let trust_domain =
            doc.trust_domains.as_ref().and_then(|t| t.first()).cloned().unwrap_or_else(|| "cluster.local".to_owned());
        let cn_identity = matches!(doc.identity.first(), Some(IdentitySource::Subject | IdentitySource::Dns));
        let cert = doc.certificate.as_ref();
        // A generated certificate should pass the policy's certificate checks where it can.
        let issuer = cert
            .and_then(|c| c.issuers.as_ref())
            .and_then(|i| i.first())
            .map(|p| concrete(p, "example"))
            .filter(|dn| parse_dn(dn).is_ok());
        let lifetime = cert
            .and_then(|c| c.max_lifetime.as_deref())
            .filter(|m| peerguard_policy::Duration::parse(m).is_ok_and(|d| d.as_secs() < DEFAULT_LIFETIME_SECS as u64))
            .map(str::to_owned);
        Generator { doc, engine, certs: CertFactory::default(), now, trust_domain, cn_identity, issuer, lifetime }
    }

    fn principal_in(&self, namespace: &str) -> String {
        format!("{}/ns/{namespace}/sa/default", self.trust_domain)
    }

    fn base(&self) -> Draft {
        let principal = if self.cn_identity { "client".to_owned() } else { self.principal_in("default") };
        Draft {
            principal: Some(principal),
            method: "GET".to_owned(),
            path: "/".to_owned(),
            host: None,
            port: None,
            headers: Vec::new(),
            sni: None,
            unmet: Vec::new(),
        }
    }

    fn outsider(&self) -> String {
        if self.cn_identity {
            "outsider".to_owned()
        } else {
            format!("{}/ns/outsider/sa/outsider", self.trust_domain)
        }
    }

    /// A request that `rule` matches, starting from `base`.
    fn request_for(&self, rule: &Rule, base: &Draft) -> Draft {
        let mut d = base.clone();
        if let Some(source) = rule.from.as_ref().and_then(|f| f.first()).map(|f| &f.source) {
            if let Some(p) = source.principals.as_ref().and_then(|p| p.first()).filter(|p| *p != "*") {
                d.principal = Some(concrete(p, "example"));
            } else if let Some(ns) = source.namespaces.as_ref().and_then(|n| n.first()) {
                d.principal = Some(self.principal_in(&concrete(ns, "example")));
            } else if let Some(td) = source.trust_domains.as_ref().and_then(|t| t.first()) {
                d.principal = Some(format!("{}/ns/default/sa/default", concrete(td, "example")));
            }
            let excluded = |p: &str| {
                source.not_principals.iter().flatten().any(|pat| matches_pattern(pat, p))
                    || source.not_namespaces.iter().flatten().any(|ns| p.contains(&format!("/ns/{ns}/")))
            };
            if source.not_principals.iter().flatten().any(|p| p == "*") {
                // `notPrincipals: ["*"]` matches only requests without a principal.
                d.principal = None;
            } else if d.principal.as_deref().is_some_and(excluded) {
                d.principal = Some(self.outsider());
            }
        }
        if let Some(op) = rule.to.as_ref().and_then(|t| t.first()).map(|t| &t.operation) {
            if let Some(m) = op.methods.as_ref().and_then(|m| m.first()) {
                d.method = if m == "*" { "GET".to_owned() } else { concrete(m, "GET") };
            }
            if let Some(p) = op.paths.as_ref().and_then(|p| p.first()) {
                d.path = concrete_path(p);
            }
            if let Some(h) = op.hosts.as_ref().and_then(|h| h.first()) {
                d.host = Some(concrete(h, "example"));
            }
            if let Some(p) = op.ports.as_ref().and_then(|p| p.first()).and_then(port_of) {
                d.port = Some(p);
            }
            if let Some(not) = &op.not_methods {
                if not.iter().any(|p| matches_pattern(p, &d.method)) {
                    let allowed = |m: &&&str| {
                        !not.iter().any(|p| matches_pattern(p, m))
                            && op.methods.as_ref().is_none_or(|ms| ms.iter().any(|p| matches_pattern(p, m)))
                    };
                    if let Some(m) = ["POST", "PUT", "DELETE", "PATCH", "GET", "HEAD", "OPTIONS"].iter().find(allowed) {
                        d.method = (*m).to_owned();
                    }
                }
            }
            if op.not_paths.iter().flatten().any(|p| matches_pattern(p, &d.path)) {
                d.path = "/unlisted".to_owned();
            }
            if d.host.as_deref().is_some_and(|h| op.not_hosts.iter().flatten().any(|p| matches_pattern(p, h))) {
                d.host = Some("unlisted.example".to_owned());
            }
            if d.port.is_some_and(|x| op.not_ports.iter().flatten().any(|p| port_of(p) == Some(x))) {
                d.port = Some(if d.port == Some(8080) { 8081 } else { 8080 });
            }
        }
        for cond in rule.when.iter().flatten() {
            let Some(v) = cond.values.as_ref().and_then(|v| v.first()) else { continue };
            let value = concrete(v, "example");
            if let Some(name) = cond.key.strip_prefix("request.headers[").and_then(|r| r.strip_suffix(']')) {
                d.headers.push((name.to_ascii_lowercase(), value));
            } else {
                match cond.key.as_str() {
                    "connection.sni" => d.sni = Some(value),
                    "destination.port" => d.port = value.parse().ok().or(d.port),
                    "source.principal" => d.principal = Some(value),
                    "source.namespace" => d.principal = Some(self.principal_in(&value)),
                    other => d.unmet.push(format!("{other} = {value}")),
                }
            }
        }
        d
    }

    /// Requests that `rule` should not match: another principal, method, path, host, no headers,
    /// no certificate.
    fn outside_rule(&self, rule: &Rule, matching: &Draft) -> Vec<Draft> {
        let mut out = Vec::new();
        let mut other = matching.clone();
        other.principal = Some(self.outsider());
        out.push(other);
        let op = rule.to.as_ref().and_then(|t| t.first()).map(|t| &t.operation);
        if let Some(methods) = op.and_then(|o| o.methods.as_ref()) {
            for m in ["DELETE", "PATCH", "POST", "PUT", "GET"] {
                if !methods.iter().any(|p| p == m || p == "*") {
                    let mut d = matching.clone();
                    d.method = m.to_owned();
                    out.push(d);
                    break;
                }
            }
        }
        if op.and_then(|o| o.paths.as_ref()).is_some() {
            let mut d = matching.clone();
            d.path = "/unlisted".to_owned();
            out.push(d);
        }
        if op.and_then(|o| o.hosts.as_ref()).is_some() {
            let mut d = matching.clone();
            d.host = Some("unlisted.example".to_owned());
            out.push(d);
        }
        if !matching.headers.is_empty() {
            let mut d = matching.clone();
            d.headers.clear();
            out.push(d);
        }
        let mut plain = matching.clone();
        plain.principal = None;
        out.push(plain);
        out
    }

    fn evaluate(&mut self, d: &Draft) -> Result<Outcome, Failure> {
        let peer = match &d.principal {
            None => PeerSpec::None,
            Some(p) => {
                let lifetime = match &self.lifetime {
                    Some(l) => super::lifetime_secs(l).map_err(Failure)?,
                    None => DEFAULT_LIFETIME_SECS,
                };
                let spec = PrincipalLeaf {
                    principal: p,
                    issuer: self.issuer.as_deref().unwrap_or(DEFAULT_ISSUER),
                    lifetime_secs: lifetime,
                    at: self.now,
                };
                let pem = self.certs.leaf_pem(&spec).map_err(|e| Failure(e.to_string()))?;
                PeerSpec::Pem { leaf: pem.into_bytes(), chain: Vec::new(), label: format!("principal {p}") }
            }
        };
        let case = Case {
            name: String::new(),
            method: d.method.clone(),
            path: d.path.clone(),
            host: d.host.clone().unwrap_or_else(|| "localhost".to_owned()),
            port: d.port,
            headers: d.headers.clone(),
            sni: d.sni.clone(),
            peer,
            at: self.now,
            expect: Expect { decision: Verdict::Allow, reason: None, policy: None, principal: None, would_deny: None },
        };
        Ok(Outcome::new(&decide(self.engine, &case).0))
    }

    /// The first candidate whose outcome `want` accepts; else the first, with `note`.
    fn pick(
        &mut self,
        candidates: Vec<Draft>,
        want: &dyn Fn(&Outcome) -> bool,
        note: &str,
    ) -> Result<Option<(Draft, Outcome, Option<String>)>, Failure> {
        let mut first = None;
        for d in candidates {
            let o = self.evaluate(&d)?;
            if want(&o) {
                return Ok(Some((d, o, None)));
            }
            if first.is_none() {
                first = Some((d, o));
            }
        }
        Ok(first.map(|(d, o)| {
            let mut n = note.to_owned();
            if !d.unmet.is_empty() {
                let _ = write!(n, " (a generated certificate cannot carry {})", d.unmet.join(", "));
            }
            (d, o, Some(n))
        }))
    }

    fn cases(&mut self) -> Result<Vec<Written>, Failure> {
        let mut out = Vec::new();
        if self.doc.mtls == peerguard_policy::Mtls::Strict {
            let mut d = self.base();
            d.principal = None;
            let o = self.evaluate(&d)?;
            out.push(Written {
                name: "plaintext is refused (mtls: strict)".to_owned(),
                note: None,
                draft: d,
                outcome: o,
            });
        }
        let policies = &self.doc.policies;
        // The simplest allowed request, for DENY policies to start from (so that their deny
        // is theirs).
        let mut allowed: Option<Draft> = None;
        for p in policies.iter().filter(|p| p.action == Action::Allow && !p.dry_run) {
            for rule in p.rules.iter().flatten() {
                let d = self.request_for(rule, &self.base());
                let o = self.evaluate(&d)?;
                if o.allowed && o.would_deny.is_none() && allowed.as_ref().is_none_or(|a| d.weight() < a.weight()) {
                    allowed = Some(d);
                }
            }
        }
        let base = allowed.unwrap_or_else(|| self.base());
        for p in policies {
            self.policy_cases(p, &base, &mut out)?;
        }
        Ok(out)
    }

    fn policy_cases(&mut self, p: &AuthorizationPolicy, base: &Draft, out: &mut Vec<Written>) -> Result<(), Failure> {
        let name = p.name.clone();
        let rules: Vec<&Rule> = p.rules.iter().flatten().collect();
        let clean_allow = |o: &Outcome| o.allowed && o.would_deny.is_none();
        let any_deny = |o: &Outcome| !o.allowed || o.would_deny.is_some();
        match p.action {
            Action::Allow => {
                let enforced = !p.dry_run;
                let by_it = |o: &Outcome| clean_allow(o) && (!enforced || o.policy.as_deref() == Some(name.as_str()));
                let matching: Vec<Draft> = rules.iter().map(|r| self.request_for(r, &self.base())).collect();
                let note = format!("no request made from {name}'s rules is allowed by it; check this case");
                if let Some((d, o, n)) = self.pick(matching.clone(), &by_it, &note)? {
                    let title = format!("{name} allows {}", d.describe());
                    out.push(Written { name: title, note: n, draft: d, outcome: o });
                }
                let mut outside = Vec::new();
                for (r, m) in rules.iter().zip(&matching) {
                    outside.extend(self.outside_rule(r, m));
                }
                if outside.is_empty() {
                    outside.push(self.base());
                }
                let note = format!("every request tried outside {name}'s rules was allowed; check this case");
                if let Some((d, o, n)) = self.pick(outside, &any_deny, &note)? {
                    let title = format!("{name} does not allow {}", d.describe());
                    out.push(Written { name: title, note: n, draft: d, outcome: o });
                }
            }
            Action::Deny => {
                let by_it = |o: &Outcome| any_deny(o) && o.policy.as_deref() == Some(name.as_str());
                let matching: Vec<Draft> = rules.iter().map(|r| self.request_for(r, base)).collect();
                let note = format!("no request made from {name}'s rules is denied by it; check this case");
                if let Some((d, o, n)) = self.pick(matching, &by_it, &note)? {
                    let title = format!("{name} denies {}", d.describe());
                    out.push(Written { name: title, note: n, draft: d, outcome: o });
                }
                let note = format!("no allowed request was found to show {name} letting one through; check this case");
                if let Some((d, o, n)) = self.pick(vec![base.clone(), self.base()], &clean_allow, &note)? {
                    let title = format!("{name} lets {} through", d.describe());
                    out.push(Written { name: title, note: n, draft: d, outcome: o });
                }
            }
            Action::Audit | Action::Custom => {
                if let Some(rule) = rules.first() {
                    let d = self.request_for(rule, base);
                    let o = self.evaluate(&d)?;
                    let note =
                        Some(format!("{name} is an AUDIT policy: it logs this request and never changes the decision"));
                    out.push(Written { name: format!("{name} audits {}", d.describe()), note, draft: d, outcome: o });
                }
            }
        }
        Ok(())
    }
}

/// A YAML scalar: plain when it is unambiguously a string, else double-quoted (JSON string
/// syntax is valid YAML).
fn q(s: &str) -> String {
    let keyword =
        ["true", "false", "null", "yes", "no", "on", "off", "y", "n"].contains(&s.to_ascii_lowercase().as_str());
    let plain = !s.is_empty()
        && !keyword
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'.' | b'-'))
        && s.bytes().next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'/')
        && s.parse::<f64>().is_err();
    if plain {
        return s.to_owned();
    }
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned())
}

fn render(policy_ref: &str, policy: &Path, out: &Path, g: &Generator<'_>, cases: &[Written]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Starter tests for {}, written by `peerguard test --init`.", policy.display());
    let _ = writeln!(s, "# Each expectation is what the engine answered when the file was written: read every case");
    let _ =
        writeln!(s, "# and make sure it is what the policy should do, then keep the file beside the policy and run");
    let _ = writeln!(s, "#   peerguard test {}", out.display());
    let _ = writeln!(s, "policy: {}", q(policy_ref));
    let _ = writeln!(s, "cases:");
    let mut names = std::collections::BTreeSet::new();
    for c in cases {
        let mut name = c.name.clone();
        let mut n = 2;
        while !names.insert(name.clone()) {
            name = format!("{} ({n})", c.name);
            n += 1;
        }
        if let Some(note) = &c.note {
            let _ = writeln!(s, "  # {note}");
        }
        let _ = writeln!(s, "  - name: {}", q(&name));
        let d = &c.draft;
        match &d.principal {
            Some(p) => {
                let _ = writeln!(s, "    principal: {}", q(p));
                if let Some(i) = &g.issuer {
                    let _ = writeln!(s, "    issuer: {}", q(i));
                }
                if let Some(l) = &g.lifetime {
                    let _ = writeln!(s, "    lifetime: {}", q(l));
                }
            }
            None => {
                let _ = writeln!(s, "    noCertificate: true");
            }
        }
        let _ = writeln!(s, "    method: {}", q(&d.method));
        let _ = writeln!(s, "    path: {}", q(&d.path));
        if let Some(h) = &d.host {
            let _ = writeln!(s, "    host: {}", q(h));
        }
        if let Some(p) = d.port {
            let _ = writeln!(s, "    port: {p}");
        }
        if !d.headers.is_empty() {
            let list: Vec<String> = d.headers.iter().map(|(k, v)| q(&format!("{k}: {v}"))).collect();
            let _ = writeln!(s, "    headers: [{}]", list.join(", "));
        }
        if let Some(sni) = &d.sni {
            let _ = writeln!(s, "    sni: {}", q(sni));
        }
        let o = &c.outcome;
        let mut expect = vec![format!("decision: {}", if o.allowed { "allow" } else { "deny" })];
        if let Some(r) = o.reason {
            expect.push(format!("reason: {r}"));
        }
        if let Some(w) = o.would_deny {
            expect.push(format!("wouldDeny: {w}"));
        }
        if let Some(p) = &o.policy {
            expect.push(format!("policy: {}", q(p)));
        }
        if let Some(p) = &o.principal {
            expect.push(format!("principal: {}", q(p)));
        }
        let _ = writeln!(s, "    expect: {{{}}}", expect.join(", "));
    }
    s
}
