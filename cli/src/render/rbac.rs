//! `peerguard render rbac`: the Envoy RBAC HTTP filters istiod would generate for the Istio part of a policy.
//!
//! The shapes follow istiod's generator (istio/istio `pilot/pkg/security/authz/builder` and
//! `.../authz/model`, read for this port; no code copied): one RBAC filter per action in
//! istiod's order (AUDIT with action LOG, then DENY, then ALLOW), `dryRun` policies in
//! `shadow_rules`, rule names `ns[NS]-policy[NAME]-rule[i]`, and per rule one permission per
//! operation and one principal per source, each an `and` of the fields in istiod's order with
//! the `when` conditions last. What RBAC cannot express (certificate checks, `cert.*` keys,
//! `mtls: strict`, peerguard's own top-level settings) is reported as [`Unsupported`].

use std::path::{Path, PathBuf};

use clap::Args;
use peerguard_policy::{Action, AuthorizationPolicy, Condition, ConfigErrors, Operation, PortValue, Rule, Source};
use serde_json::{json, Map, Value};

use super::{emit, load_policy, RenderError};
use crate::policy_file::{LoadError, PolicyFile};

/// `peerguard render rbac`
#[derive(Debug, Args)]
pub struct RbacArgs {
    /// Policy document, YAML or JSON
    pub policy: PathBuf,
    /// Render what RBAC can express and list the rest on stderr (exit 0) instead of refusing (exit 2)
    #[arg(long)]
    pub drop_unsupported: bool,
    /// Write here instead of stdout
    #[arg(long)]
    pub out: Option<PathBuf>,
}

pub(super) const RBAC_HELP: &str = "\
Prints a YAML list of `envoy.filters.http.rbac` HTTP filters, as istiod generates them for the
same AuthorizationPolicy specs: AUDIT (action LOG), DENY, then ALLOW; `dryRun` policies (and every
policy under `mode: dryRun`) go to `shadow_rules`. Put them before the router in the HTTP
connection manager's `http_filters`, and set `normalize_path: true` and `merge_slashes: true` on
that HCM, so that RBAC matches the normalized path as peerguard does.

RBAC cannot express: `certificate`, `certificateRules`, `cert.*` keys in `when`, `mtls: strict`
(the default; in Istio it is a PeerAuthentication in STRICT mode), top-level `trustDomains`,
`identity` other than [spiffe], `pathNormalization` other than rewrite, `allowPathParameters`, a
custom `denyResponse`, and peerguard's other top-level settings. They are listed on stderr and
the command exits 2. With --drop-unsupported they are left out as istiod leaves out what it
cannot generate: a `cert.*` condition drops its whole rule in an ALLOW policy (fewer requests
allowed) and only the condition in a DENY or AUDIT policy (more requests denied or audited).
`identityHeader` is not an authorization setting and is ignored.

Known differences that remain (README, \"Istio compatibility\"): host:port and a trailing dot of
the host, paths peerguard refuses as invalid_path, invalid SPIFFE IDs, `*` on an empty header,
repeated headers in DENY conditions.

Examples:
  peerguard render rbac policy.yaml > rbac-filters.yaml
  peerguard import authz.yaml > p.yaml && peerguard render rbac --drop-unsupported p.yaml";

/// Something in the policy that Envoy's RBAC filter cannot express.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unsupported {
    /// JSON path in the policy document, e.g. `certificate` or `policies[0].rules[1].when[0]`.
    pub path: String,
    /// Why, and what `--drop-unsupported` does with it.
    pub why: String,
}

impl std::fmt::Display for Unsupported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.why)
    }
}

/// The rendered filters and everything that was left out.
#[derive(Clone, Debug)]
pub struct RbacRender {
    /// `envoy.filters.http.rbac` HTTP filters, in istiod's order.
    pub filters: Vec<Value>,
    /// What RBAC cannot express; empty when the filters mean exactly what the policy means
    /// (up to the documented differences).
    pub unsupported: Vec<Unsupported>,
}

/// The `@type` of the RBAC HTTP filter's config.
pub const RBAC_TYPE_URL: &str = "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC";
/// The HTTP filter name istiod uses.
pub const RBAC_FILTER_NAME: &str = "envoy.filters.http.rbac";
const URI_TEMPLATE_TYPE_URL: &str =
    "type.googleapis.com/envoy.extensions.path.match.uri_template.v3.UriTemplateMatchConfig";
/// istiod's `RBACShadowRulesAllowStatPrefix` / `RBACShadowRulesDenyStatPrefix`.
const DRY_RUN_ALLOW_PREFIX: &str = "istio_dry_run_allow_";
const DRY_RUN_DENY_PREFIX: &str = "istio_dry_run_deny_";

/// `peerguard render rbac`: the filters as YAML, or the list of what RBAC cannot express.
pub fn run(a: &RbacArgs) -> Result<String, RenderError> {
    let doc = load_policy(&a.policy)?;
    let rendered = render_value(&doc).map_err(|errors| RenderError::Policy { path: a.policy.clone(), errors })?;
    if !rendered.unsupported.is_empty() {
        let list: Vec<String> = rendered.unsupported.iter().map(|u| format!("  {u}")).collect();
        if !a.drop_unsupported {
            return Err(RenderError::Usage(format!(
                "{}: Envoy's RBAC filter cannot express:\n{}\n(pass --drop-unsupported to render the rest anyway)",
                a.policy.display(),
                list.join("\n")
            )));
        }
        eprintln!("peerguard: {}: left out, RBAC cannot express it:\n{}", a.policy.display(), list.join("\n"));
    }
    let yaml = serde_yaml::to_string(&Value::Array(rendered.filters))
        .map_err(|e| RenderError::Usage(format!("cannot render YAML: {e}")))?;
    let text = format!(
        "# Rendered by `peerguard render rbac` from {}: the Envoy RBAC HTTP filters istiod generates for\n\
         # these policies (AUDIT, DENY, ALLOW). Put them before the router; set normalize_path: true and\n\
         # merge_slashes: true on the HTTP connection manager.\n{yaml}",
        a.policy.display()
    );
    emit(&text, a.out.as_deref())
}

/// Renders a policy document (as JSON). The document is loaded as every command loads a policy
/// ([`PolicyFile`]), so only a policy the filter would accept is rendered.
pub fn render_value(doc: &Value) -> Result<RbacRender, ConfigErrors> {
    let parsed =
        PolicyFile::from_value(Path::new("policy"), doc.clone()).map_err(LoadError::into_config_errors)?.document;
    let mut unsupported = top_level_unsupported(doc);
    let all_dry_run = doc.get("mode").and_then(Value::as_str) == Some("dryRun");

    let mut filters = Vec::new();
    // istiod's order: AUDIT, DENY, ALLOW (builder.go `build`).
    for action in [Action::Audit, Action::Deny, Action::Allow] {
        let mut enforce = Map::new();
        let mut shadow = Map::new();
        let (mut has_enforce, mut has_shadow) = (false, false);
        for (pi, policy) in parsed.policies.iter().enumerate() {
            if policy.action != action {
                continue;
            }
            let dry = all_dry_run || policy.dry_run;
            if dry {
                has_shadow = true;
            } else {
                has_enforce = true;
            }
            let target = if dry { &mut shadow } else { &mut enforce };
            render_policy(pi, policy, target, &mut unsupported);
        }
        if !has_enforce && !has_shadow {
            continue;
        }
        let rbac_action = match action {
            Action::Audit => Some("LOG"),
            Action::Deny => Some("DENY"),
            _ => None,
        };
        let rbac = |policies: Map<String, Value>| {
            let mut r = Map::new();
            if let Some(a) = rbac_action {
                r.insert("action".into(), a.into());
            }
            r.insert("policies".into(), Value::Object(policies));
            Value::Object(r)
        };
        let mut config = Map::new();
        config.insert("@type".into(), RBAC_TYPE_URL.into());
        if has_enforce {
            config.insert("rules".into(), rbac(enforce));
        }
        if has_shadow {
            config.insert("shadow_rules".into(), rbac(shadow));
        }
        // As istiod: the prefix follows the shadow rules' action, and an absent shadow RBAC reads as ALLOW.
        let prefix = match (has_shadow, action) {
            (true, Action::Audit) => None,
            (true, Action::Deny) => Some(DRY_RUN_DENY_PREFIX),
            _ => Some(DRY_RUN_ALLOW_PREFIX),
        };
        if let Some(p) = prefix {
            config.insert("shadow_rules_stat_prefix".into(), p.into());
        }
        filters.push(json!({"name": RBAC_FILTER_NAME, "typed_config": Value::Object(config)}));
    }
    Ok(RbacRender { filters, unsupported })
}

/// Top-level settings that RBAC cannot express. Unknown keys are listed too, so a setting added
/// to peerguard later is never silently dropped here.
fn top_level_unsupported(doc: &Value) -> Vec<Unsupported> {
    let mut out = Vec::new();
    let mut add = |path: &str, why: &str| out.push(Unsupported { path: path.to_owned(), why: why.to_owned() });
    let Some(obj) = doc.as_object() else { return out };
    let mtls = obj.get("mtls").and_then(Value::as_str).unwrap_or("strict");
    if mtls != "permissive" {
        add(
            "mtls",
            "strict (the default) denies requests without a client certificate; RBAC cannot require one (in Istio \
             that is a PeerAuthentication in STRICT mode). Set `mtls: permissive` to render the authorization part only",
        );
    }
    for (key, value) in obj {
        let why = match key.as_str() {
            "policies" | "mode" | "mtls" | "identityHeader" => continue,
            "pathNormalization" if value == "rewrite" => continue,
            "allowPathParameters" if value == false => continue,
            "identity" if value == &json!(["spiffe"]) => continue,
            "denyResponse" if is_default_deny_response(value) => continue,
            "pathNormalization" => {
                "RBAC matches the path the HTTP connection manager gives it; only the default `rewrite` \
                 corresponds to Envoy's normalize_path and merge_slashes"
            }
            "allowPathParameters" => "RBAC has no notion of path parameters (peerguard refuses `;` by default)",
            "identity" => {
                "Envoy's authenticated principal is the URI SAN (then DNS SAN, then subject); peerguard's \
                 identity sources other than [spiffe] have no RBAC equivalent"
            }
            "denyResponse" => "RBAC always denies with 403 and the body `RBAC: access denied`",
            "certificate" | "certificateRules" => {
                "certificate requirements (lifetime, issuer, key, pins, chain, revocation) have no RBAC matcher"
            }
            "trustDomains" => {
                "peerguard denies identities outside these trust domains (untrusted_trust_domain); in Istio the \
                 mesh trust domain is not an RBAC rule"
            }
            "trustDomainAliases" => "Istio applies trust domain aliases when it generates RBAC, from meshConfig",
            _ => "a peerguard setting with no RBAC equivalent",
        };
        add(key, why);
    }
    out
}

fn is_default_deny_response(v: &Value) -> bool {
    let status_ok = v.get("status").is_none_or(|s| s == 403);
    let body_ok = v.get("body").is_none_or(|b| b == "access denied");
    let reason_ok = v.get("exposeReason").is_none_or(|e| e == false);
    status_ok && body_ok && reason_ok
}

/// istiod's rule name: `ns[NS]-policy[NAME]-rule[i]`. `peerguard import` names policies
/// `NAMESPACE.NAME`, so the part before the first `.` is the namespace when it is a DNS label.
pub fn rule_name(policy: &str, rule: usize) -> String {
    let (ns, name) = match policy.split_once('.') {
        Some((ns, name)) if is_dns_label(ns) && !name.is_empty() => (ns, name),
        _ => ("", policy),
    };
    format!("ns[{ns}]-policy[{name}]-rule[{rule}]")
}

fn is_dns_label(s: &str) -> bool {
    (1..=63).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn render_policy(pi: usize, policy: &AuthorizationPolicy, target: &mut Map<String, Value>, out: &mut Vec<Unsupported>) {
    let rules = policy.rules.as_deref().unwrap_or_default();
    if rules.is_empty() {
        // istiod: an explicit policy that never matches (`rbacPolicyMatchNever`).
        target.insert(
            rule_name(&policy.name, 0),
            json!({"permissions": [{"not_rule": {"any": true}}], "principals": [{"not_id": {"any": true}}]}),
        );
        return;
    }
    for (ri, rule) in rules.iter().enumerate() {
        let at = format!("policies[{pi}].rules[{ri}]");
        if let Some(p) = render_rule(&at, policy.action, rule, out) {
            target.insert(rule_name(&policy.name, ri), p);
        }
    }
}

/// One `rbac.v3.Policy`, or `None` when an ALLOW rule has a condition RBAC cannot express
/// (istiod drops such a rule: fewer requests allowed).
fn render_rule(at: &str, action: Action, rule: &Rule, out: &mut Vec<Unsupported>) -> Option<Value> {
    let mut when_principal = Vec::new();
    let mut when_permission = Vec::new();
    for (ci, c) in rule.when.iter().flatten().enumerate() {
        match condition(c) {
            Some(Side::Principal(p)) => when_principal.extend(p),
            Some(Side::Permission(p)) => when_permission.extend(p),
            None => {
                let dropped = if action == Action::Allow {
                    "the whole rule is left out (an ALLOW rule that cannot be generated allows nothing, as in istiod)"
                } else {
                    "the condition is left out (a wider DENY or AUDIT rule, as in istiod)"
                };
                out.push(Unsupported {
                    path: format!("{at}.when[{ci}]"),
                    why: format!("key {:?} has no RBAC attribute; {dropped}", c.key),
                });
                if action == Action::Allow {
                    return None;
                }
            }
        }
    }
    let principals: Vec<Value> = match &rule.from {
        None => vec![principal_and(when_principal.clone())],
        Some(from) => from
            .iter()
            .map(|f| {
                let mut ids = source(&f.source);
                ids.extend(when_principal.iter().cloned());
                principal_and(ids)
            })
            .collect(),
    };
    let permissions: Vec<Value> = match &rule.to {
        None => vec![permission_and(when_permission.clone())],
        Some(to) => to
            .iter()
            .map(|t| {
                let mut rules = operation(&t.operation);
                rules.extend(when_permission.iter().cloned());
                permission_and(rules)
            })
            .collect(),
    };
    Some(json!({"permissions": permissions, "principals": principals}))
}

fn principal_and(mut ids: Vec<Value>) -> Value {
    if ids.is_empty() {
        ids.push(json!({"any": true}));
    }
    json!({"and_ids": {"ids": ids}})
}

fn permission_and(mut rules: Vec<Value>) -> Value {
    if rules.is_empty() {
        rules.push(json!({"any": true}));
    }
    json!({"and_rules": {"rules": rules}})
}

/// istiod's `rule.principal`: an `or` of the values, then `not(or(notValues))`.
fn principal_field(
    values: &Option<Vec<String>>,
    not_values: &Option<Vec<String>>,
    gen: impl Fn(&str) -> Value,
) -> Vec<Value> {
    let mut out = Vec::new();
    if let Some(v) = values.as_ref().filter(|v| !v.is_empty()) {
        out.push(json!({"or_ids": {"ids": v.iter().map(|x| gen(x)).collect::<Vec<_>>()}}));
    }
    if let Some(v) = not_values.as_ref().filter(|v| !v.is_empty()) {
        out.push(json!({"not_id": {"or_ids": {"ids": v.iter().map(|x| gen(x)).collect::<Vec<_>>()}}}));
    }
    out
}

/// istiod's `rule.permission`: an `or` of the values, then `not(or(notValues))`.
fn permission_field<T>(values: &Option<Vec<T>>, not_values: &Option<Vec<T>>, gen: impl Fn(&T) -> Value) -> Vec<Value> {
    let mut out = Vec::new();
    if let Some(v) = values.as_ref().filter(|v| !v.is_empty()) {
        out.push(json!({"or_rules": {"rules": v.iter().map(&gen).collect::<Vec<_>>()}}));
    }
    if let Some(v) = not_values.as_ref().filter(|v| !v.is_empty()) {
        out.push(json!({"not_rule": {"or_rules": {"rules": v.iter().map(&gen).collect::<Vec<_>>()}}}));
    }
    out
}

/// A source's fields in istiod's order: principals, trust domains, namespaces.
fn source(s: &Source) -> Vec<Value> {
    let mut ids = principal_field(&s.principals, &s.not_principals, principal);
    ids.extend(principal_field(&s.trust_domains, &s.not_trust_domains, trust_domain));
    ids.extend(principal_field(&s.namespaces, &s.not_namespaces, namespace));
    ids
}

/// An operation's fields in istiod's order: hosts, methods, paths, ports.
fn operation(o: &Operation) -> Vec<Value> {
    let mut rules = permission_field(&o.hosts, &o.not_hosts, |h: &String| json!({"header": host_matcher(h)}));
    rules.extend(permission_field(
        &o.methods,
        &o.not_methods,
        |m: &String| json!({"header": header_matcher(":method", m)}),
    ));
    rules.extend(permission_field(&o.paths, &o.not_paths, |p: &String| path(p)));
    rules.extend(permission_field(&o.ports, &o.not_ports, |p: &PortValue| json!({"destination_port": port(p)})));
    rules
}

/// Which side of an RBAC policy a `when` condition lands on.
enum Side {
    Principal(Vec<Value>),
    Permission(Vec<Value>),
}

/// A `when` condition as istiod maps its key; `None` for a key RBAC has no attribute for.
fn condition(c: &Condition) -> Option<Side> {
    let key = c.key.as_str();
    if let Some(name) = key.strip_prefix("request.headers[").and_then(|r| r.strip_suffix(']')) {
        let name = name.to_owned();
        return Some(Side::Principal(principal_field(
            &c.values,
            &c.not_values,
            move |v| json!({"header": header_matcher(&name, v)}),
        )));
    }
    Some(match key {
        "source.principal" => Side::Principal(principal_field(&c.values, &c.not_values, principal)),
        "source.namespace" => Side::Principal(principal_field(&c.values, &c.not_values, namespace)),
        "destination.port" => Side::Permission(permission_field(
            &c.values,
            &c.not_values,
            |v: &String| json!({"destination_port": port(&PortValue::Text(v.clone()))}),
        )),
        "connection.sni" => Side::Permission(permission_field(
            &c.values,
            &c.not_values,
            |v: &String| json!({"requested_server_name": string_matcher(v, "")}),
        )),
        _ => return None,
    })
}

/// istiod's `StringMatcherWithPrefix`: `*` is the presence regex `.+`; a suffix under a prefix
/// becomes a regex.
fn string_matcher(v: &str, prefix: &str) -> Value {
    if v == "*" {
        json!({"safe_regex": {"regex": ".+"}})
    } else if let Some(suffix) = v.strip_prefix('*') {
        if prefix.is_empty() {
            json!({"suffix": suffix})
        } else {
            json!({"safe_regex": {"regex": format!("{prefix}.*{}", quote_meta(suffix))}})
        }
    } else if let Some(p) = v.strip_suffix('*') {
        json!({"prefix": format!("{prefix}{p}")})
    } else {
        json!({"exact": format!("{prefix}{v}")})
    }
}

/// `principals` / `source.principal`: the URI SAN, with `spiffe://`.
fn principal(v: &str) -> Value {
    json!({"authenticated": {"principal_name": string_matcher(v, "spiffe://")}})
}

/// `namespaces` / `source.namespace`: Istio's regex `.*/ns/NS/.*`, a `*` in NS becoming `.*`.
fn namespace(v: &str) -> Value {
    let ns: Vec<String> = v.split('*').map(quote_meta).collect();
    json!({"authenticated": {"principal_name": {"safe_regex": {"regex": format!(".*/ns/{}/.*", ns.join(".*"))}}}})
}

/// `trustDomains`: a prefix `spiffe://TD/`, or for a wildcard the regex `spiffe://P[^/]*S/.*`.
fn trust_domain(v: &str) -> Value {
    let m = if v == "*" {
        json!({"prefix": "spiffe://"})
    } else if let Some((before, after)) = v.split_once('*') {
        json!({"safe_regex": {"regex": format!("spiffe://{}[^/]*{}/.*", quote_meta(before), quote_meta(after))}})
    } else {
        json!({"prefix": format!("spiffe://{v}/")})
    };
    json!({"authenticated": {"principal_name": m}})
}

/// istiod's `HeaderMatcher` (case-sensitive; `*` is a presence match).
fn header_matcher(name: &str, v: &str) -> Value {
    header_with_case(name, v, false)
}

/// istiod's `HostMatcher`: `:authority`, case-insensitive.
fn host_matcher(v: &str) -> Value {
    header_with_case(":authority", v, true)
}

fn header_with_case(name: &str, v: &str, ignore_case: bool) -> Value {
    let with_case = |mut m: Value| {
        if ignore_case {
            m["ignore_case"] = true.into();
        }
        json!({"name": name, "string_match": m})
    };
    if v == "*" {
        json!({"name": name, "present_match": true})
    } else if let Some(s) = v.strip_prefix('*') {
        with_case(json!({"suffix": s}))
    } else if let Some(p) = v.strip_suffix('*') {
        with_case(json!({"prefix": p}))
    } else {
        with_case(json!({"exact": v}))
    }
}

/// `paths`: `url_path`, or for a path template (`{*}`, `{**}`) Envoy's URI template matcher.
fn path(p: &str) -> Value {
    if p.contains("{*}") || p.contains("{**}") {
        let template = p.replace("{**}", "**").replace("{*}", "*");
        json!({"uri_template": {"name": "uri-template", "typed_config": {
            "@type": URI_TEMPLATE_TYPE_URL, "path_template": template
        }}})
    } else {
        json!({"url_path": {"path": string_matcher(p, "")}})
    }
}

/// A port as Istio's validation reads it (decimal, leading zeros allowed); the engine has
/// already refused anything else.
fn port(p: &PortValue) -> u64 {
    match p {
        PortValue::Number(n) => *n,
        PortValue::Text(s) => s.trim_start_matches('0').parse().unwrap_or(0),
    }
}

/// Go's `regexp.QuoteMeta`.
fn quote_meta(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_names_split_the_imported_namespace() {
        assert_eq!(rule_name("foo.httpbin", 2), "ns[foo]-policy[httpbin]-rule[2]");
        assert_eq!(rule_name("foo.my.policy", 0), "ns[foo]-policy[my.policy]-rule[0]");
        assert_eq!(rule_name("deny-admin", 0), "ns[]-policy[deny-admin]-rule[0]");
        assert_eq!(rule_name("Foo.x", 0), "ns[]-policy[Foo.x]-rule[0]");
    }

    #[test]
    fn string_matchers_are_istios() {
        assert_eq!(string_matcher("*", "spiffe://"), json!({"safe_regex": {"regex": ".+"}}));
        assert_eq!(string_matcher("*/sa/a.b", "spiffe://"), json!({"safe_regex": {"regex": "spiffe://.*/sa/a\\.b"}}));
        assert_eq!(string_matcher("*/x", ""), json!({"suffix": "/x"}));
        assert_eq!(string_matcher("td/ns/*", "spiffe://"), json!({"prefix": "spiffe://td/ns/"}));
        assert_eq!(string_matcher("/a", ""), json!({"exact": "/a"}));
    }

    #[test]
    fn namespaces_and_trust_domains_are_istios_regexes() {
        assert_eq!(namespace("a.b*")["authenticated"]["principal_name"]["safe_regex"]["regex"], ".*/ns/a\\.b.*/.*");
        assert_eq!(trust_domain("td")["authenticated"]["principal_name"]["prefix"], "spiffe://td/");
        assert_eq!(trust_domain("*")["authenticated"]["principal_name"]["prefix"], "spiffe://");
        assert_eq!(
            trust_domain("bad*")["authenticated"]["principal_name"]["safe_regex"]["regex"],
            "spiffe://bad[^/]*/.*"
        );
    }

    #[test]
    fn ports_keep_istios_leading_zeros() {
        assert_eq!(port(&PortValue::Text("08080".into())), 8080);
        assert_eq!(port(&PortValue::Text("0".into())), 0);
        assert_eq!(port(&PortValue::Number(80)), 80);
    }
}
