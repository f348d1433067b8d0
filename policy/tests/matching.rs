//! Istio AuthorizationPolicy semantics: each case is its own test, named after the rule it checks
//! (<https://istio.io/latest/docs/reference/config/security/authorization-policy/>) and grouped in
//! a module by topic, plus the bad-input cases of issue 3. Runs natively and, through
//! wasm-bindgen-test, in wasm.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use peerguard_policy::{
    CertFacts, ConfigErrors, Decision, Engine, HeaderSource, Peer, PeerAttributes, PolicyDocument, Reason, Request,
    MAX_RULES,
};
use serde_json::{json, Value};

mod common;
use common::NOW;

/// What the engine knows of the peer, in a form a table can hold.
#[derive(Clone)]
enum P {
    /// No peer certificate.
    Plain,
    /// A certificate that did not parse.
    Unparseable,
    /// Envoy attributes: URI SAN only.
    Spiffe(&'static str),
    /// Envoy attributes: DNS SAN only.
    Dns(&'static str),
    /// Envoy attributes: subject only.
    Subject(&'static str),
    /// Envoy attributes, all three.
    Attrs { uri: Option<&'static str>, dns: Option<&'static str>, subject: Option<&'static str> },
    /// A full certificate.
    Cert(Box<CertFacts>),
}

/// A request; `R::default()` is `GET /` to `localhost`.
#[derive(Clone)]
struct R {
    method: &'static str,
    path: &'static str,
    host: &'static str,
    port: Option<u32>,
    sni: Option<&'static str>,
    headers: Vec<(String, String)>,
}

impl Default for R {
    fn default() -> R {
        R { method: "GET", path: "/", host: "localhost", port: None, sni: None, headers: Vec::new() }
    }
}

fn get(path: &'static str) -> R {
    R { path, ..R::default() }
}

fn header(name: &str, value: &str) -> R {
    R { headers: vec![(name.to_owned(), value.to_owned())], ..R::default() }
}

/// The expected decision. `principal` and `audit` are checked only when set.
#[derive(Clone, Debug)]
struct Want {
    allowed: bool,
    reason: Option<Reason>,
    policy: Option<&'static str>,
    dry_run: bool,
    principal: Option<Option<&'static str>>,
    audit: Option<Vec<&'static str>>,
}

fn allow() -> Want {
    Want { allowed: true, reason: None, policy: None, dry_run: false, principal: None, audit: None }
}

fn allow_by(policy: &'static str) -> Want {
    Want { policy: Some(policy), ..allow() }
}

fn deny(reason: Reason) -> Want {
    Want { allowed: false, reason: Some(reason), ..allow() }
}

fn deny_by(reason: Reason, policy: &'static str) -> Want {
    Want { policy: Some(policy), ..deny(reason) }
}

/// Dry run: allowed, but reported as a would-deny with `reason` and `policy`.
fn would_deny(reason: Reason, policy: Option<&'static str>) -> Want {
    Want { allowed: true, reason: Some(reason), policy, dry_run: true, ..allow() }
}

impl Want {
    fn principal(mut self, p: Option<&'static str>) -> Want {
        self.principal = Some(p);
        self
    }

    fn audit(mut self, a: &[&'static str]) -> Want {
        self.audit = Some(a.to_vec());
        self
    }
}

/// The policy with `identity` set to `sources` (the default is `[spiffe]`).
fn with_identity(mut policy: Value, sources: &[&str]) -> Value {
    policy["identity"] = json!(sources);
    policy
}

fn compile(policy: &Value) -> Result<Engine, ConfigErrors> {
    Engine::from_json(&policy.to_string())
}

fn decide(engine: &Engine, req: &R, peer: &P) -> Decision {
    let request = Request {
        method: req.method,
        path: req.path,
        host: req.host,
        port: req.port,
        sni: req.sni,
        headers: &req.headers,
    };
    let attrs = |uri: Option<&str>, dns: Option<&str>, subject: Option<&str>| PeerAttributes {
        uri_san: uri.map(str::to_owned),
        dns_san: dns.map(str::to_owned),
        subject: subject.map(str::to_owned),
        several_spiffe_uris: false,
    };
    match peer {
        P::Plain => engine.decide(&request, &Peer::None, NOW),
        P::Unparseable => engine.decide(&request, &Peer::Unparseable, NOW),
        P::Spiffe(u) => engine.decide(&request, &Peer::Attributes(&attrs(Some(u), None, None)), NOW),
        P::Dns(d) => engine.decide(&request, &Peer::Attributes(&attrs(None, Some(d), None)), NOW),
        P::Subject(s) => engine.decide(&request, &Peer::Attributes(&attrs(None, None, Some(s))), NOW),
        P::Attrs { uri, dns, subject } => engine.decide(&request, &Peer::Attributes(&attrs(*uri, *dns, *subject)), NOW),
        P::Cert(facts) => {
            let prepared = engine.prepare((**facts).clone(), &[], NOW);
            engine.decide(&request, &Peer::Certificate(&prepared), NOW)
        }
    }
}

/// One `#[test]` per case, named after it: `name => (policy, request, peer, want),`. The test
/// compiles the policy, decides the request from the peer and compares the decision with `want`.
macro_rules! cases {
    ($($name:ident => ($policy:expr, $req:expr, $peer:expr, $want:expr $(,)?)),* $(,)?) => {
        $(
            // Spelled out: in the modules that invoke this, `test` would be ambiguous between the
            // file's wasm import (through `use super::*`) and the built-in attribute.
            #[cfg_attr(not(target_arch = "wasm32"), test)]
            #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
            fn $name() {
                check($policy, $req, $peer, $want);
            }
        )*
    };
}

/// Compiles `policy`, decides `req` from `peer`, and reports every field that differs from `want`.
fn check(policy: Value, req: R, peer: P, want: Want) {
    let engine = match compile(&policy) {
        Ok(e) => e,
        Err(e) => panic!("policy does not compile: {e}"),
    };
    let d = decide(&engine, &req, &peer);
    let w = want;
    let mut wrong = Vec::new();
    if d.allowed() != w.allowed {
        wrong.push(format!("allowed {} (want {})", d.allowed(), w.allowed));
    }
    if d.reason() != w.reason {
        wrong.push(format!("reason {:?} (want {:?})", d.reason(), w.reason));
    }
    if d.policy.as_deref() != w.policy {
        wrong.push(format!("policy {:?} (want {:?})", d.policy, w.policy));
    }
    if d.dry_run() != w.dry_run {
        wrong.push(format!("dry_run {} (want {})", d.dry_run(), w.dry_run));
    }
    if let Some(p) = w.principal {
        if d.principal() != p {
            wrong.push(format!("principal {:?} (want {p:?})", d.principal()));
        }
    }
    if let Some(a) = &w.audit {
        let got: Vec<&str> = d.audit.iter().map(|s| &**s).collect();
        if &got != a {
            wrong.push(format!("audit {got:?} (want {a:?})"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join(", "));
}

const WEB: &str = "spiffe://cluster.local/ns/frontend/sa/web";
const WEB_PRINCIPAL: &str = "cluster.local/ns/frontend/sa/web";
const DB: &str = "spiffe://cluster.local/ns/backend/sa/db";

/// A hand-built certificate for `cluster.local/ns/frontend/sa/web`, valid around [`NOW`], with an
/// OU and a DNS SAN.
fn cert() -> CertFacts {
    let mut c = common::leaf("web", WEB);
    c.subject = "CN=web,OU=payments,O=example".to_owned();
    c.subject_ou = vec!["payments".to_owned()];
    c.dns_sans = vec!["web.frontend.svc.cluster.local".to_owned()];
    c
}

fn cert_with(f: impl FnOnce(&mut CertFacts)) -> P {
    let mut c = cert();
    f(&mut c);
    P::Cert(Box::new(c))
}

fn web() -> P {
    P::Spiffe(WEB)
}

fn db() -> P {
    P::Spiffe(DB)
}

/// One ALLOW policy `p` with one rule.
fn allow_rule(rule: Value) -> Value {
    json!({"policies": [{"name": "p", "action": "ALLOW", "rules": [rule]}]})
}

fn allow_from(source: Value) -> Value {
    allow_rule(json!({"from": [{"source": source}]}))
}

fn allow_to(operation: Value) -> Value {
    allow_rule(json!({"to": [{"operation": operation}]}))
}

fn allow_when(key: &str, values: Value) -> Value {
    allow_rule(json!({"when": [{"key": key, "values": values}]}))
}

fn allow_when_not(key: &str, not_values: Value) -> Value {
    allow_rule(json!({"when": [{"key": key, "notValues": not_values}]}))
}

mod decision_order_follows_istio {
    use super::*;
    use Reason::*;

    fn deny_admin_allow_web() -> Value {
        json!({"policies": [
            {"name": "allow-web", "action": "ALLOW", "rules": [{"from": [{"source": {"principals": [WEB_PRINCIPAL]}}]}]},
            {"name": "deny-admin", "action": "DENY", "rules": [{"to": [{"operation": {"paths": ["/admin*"]}}]}]},
        ]})
    }

    cases! {
        deny_before_allow => (
            deny_admin_allow_web(),
            get("/admin/users"),
            web(),
            deny_by(DeniedByPolicy, "deny-admin"),
        ),
        allow_when_no_deny_matches => (deny_admin_allow_web(), get("/api"), web(), allow_by("allow-web")),
        no_matching_allow_names_no_policy => (deny_admin_allow_web(), get("/api"), db(), deny(NoMatchingAllow)),
        no_policies_means_allow => (json!({}), get("/"), web(), allow()),
        no_allow_policy_means_allow => (
            json!({"policies": [{"name": "d", "action": "DENY", "rules": [{"to": [{"operation": {"paths": ["/admin"]}}]}]}]}),
            get("/api"),
            web(),
            allow(),
        ),
        allow_policy_with_no_rules_denies_everything => (
            json!({"policies": [{"name": "allow-nothing", "action": "ALLOW"}]}),
            get("/"),
            web(),
            deny(NoMatchingAllow),
        ),
        allow_policy_with_empty_rules_denies_everything => (
            json!({"policies": [{"name": "allow-nothing", "action": "ALLOW", "rules": []}]}),
            get("/"),
            web(),
            deny(NoMatchingAllow),
        ),
        allow_policy_with_no_rules_still_lets_another_allow_policy_allow => (
            json!({"policies": [
                {"name": "allow-nothing", "action": "ALLOW"},
                {"name": "allow-web", "action": "ALLOW", "rules": [{"from": [{"source": {"principals": [WEB_PRINCIPAL]}}]}]},
            ]}),
            get("/"),
            web(),
            allow_by("allow-web"),
        ),
        rule_with_no_conditions_matches_everything => (allow_rule(json!({})), get("/x"), db(), allow_by("p")),
        deny_rule_with_no_conditions_denies_everything => (
            json!({"policies": [{"name": "deny-all", "action": "DENY", "rules": [{}]}]}),
            get("/"),
            web(),
            deny_by(DeniedByPolicy, "deny-all"),
        ),
        first_matching_allow_policy_in_document_order_is_named => (
            json!({"policies": [
                {"name": "first", "action": "ALLOW", "rules": [{"to": [{"operation": {"paths": ["/api/*"]}}]}]},
                {"name": "second", "action": "ALLOW", "rules": [{"from": [{"source": {"principals": [WEB_PRINCIPAL]}}]}]},
            ]}),
            get("/api/x"),
            web(),
            allow_by("first"),
        ),
        from_to_and_when_are_anded => (
            allow_rule(json!({
                "from": [{"source": {"principals": [WEB_PRINCIPAL]}}],
                "to": [{"operation": {"methods": ["GET"]}}],
                "when": [{"key": "request.headers[x-env]", "values": ["prod"]}],
            })),
            get("/"),
            web(),
            deny(NoMatchingAllow),
        ),
        any_source_in_from_matches => (
            allow_rule(
                json!({"from": [{"source": {"principals": ["nobody"]}}, {"source": {"namespaces": ["frontend"]}}]}),
            ),
            get("/"),
            web(),
            allow_by("p"),
        ),
        fields_within_one_source_are_anded => (
            allow_from(json!({"principals": [WEB_PRINCIPAL], "namespaces": ["backend"]})),
            get("/"),
            web(),
            deny(NoMatchingAllow),
        ),
        values_within_a_field_are_ored => (
            allow_from(json!({"principals": ["nobody", WEB_PRINCIPAL]})),
            get("/"),
            web(),
            allow_by("p"),
        ),
        any_operation_in_to_matches => (
            allow_rule(json!({"to": [{"operation": {"paths": ["/a"]}}, {"operation": {"methods": ["GET"]}}]})),
            get("/b"),
            web(),
            allow_by("p"),
        ),
    }
}

mod string_patterns_follow_istio {
    use super::*;
    use Reason::NoMatchingAllow;

    fn p(patterns: Value) -> Value {
        allow_from(json!({"principals": patterns}))
    }

    cases! {
        exact_pattern_matches_equal_value => (p(json!([WEB_PRINCIPAL])), get("/"), web(), allow_by("p")),
        exact_pattern_is_not_a_prefix => (
            p(json!(["cluster.local/ns/frontend/sa/we"])),
            get("/"),
            web(),
            deny(NoMatchingAllow),
        ),
        prefix_pattern_matches => (p(json!(["cluster.local/ns/frontend/*"])), get("/"), web(), allow_by("p")),
        prefix_pattern_needs_the_prefix => (
            p(json!(["cluster.local/ns/backend/*"])),
            get("/"),
            web(),
            deny(NoMatchingAllow),
        ),
        suffix_pattern_matches => (p(json!(["*/sa/web"])), get("/"), web(), allow_by("p")),
        suffix_pattern_needs_the_suffix => (p(json!(["*/sa/db"])), get("/"), web(), deny(NoMatchingAllow)),
        presence_pattern_matches_any_principal => (p(json!(["*"])), get("/"), db(), allow_by("p")),
        presence_pattern_does_not_match_plaintext => (
            json!({"mtls": "permissive", "policies": [{"name": "p", "rules": [{"from": [{"source": {"principals": ["*"]}}]}]}]}),
            get("/"),
            P::Plain,
            deny(NoMatchingAllow),
        ),
        principals_compare_without_spiffe_scheme => (p(json!([WEB])), get("/"), web(), deny(NoMatchingAllow)),
        principals_are_case_sensitive => (
            p(json!(["cluster.local/ns/frontend/sa/WEB"])),
            get("/"),
            web(),
            deny(NoMatchingAllow),
        ),
        not_principals_excludes => (
            allow_from(json!({"notPrincipals": [WEB_PRINCIPAL]})),
            get("/"),
            web(),
            deny(NoMatchingAllow),
        ),
        not_principals_lets_others_through => (
            allow_from(json!({"notPrincipals": [WEB_PRINCIPAL]})),
            get("/"),
            db(),
            allow_by("p"),
        ),
        not_principals_prefix_excludes => (
            allow_from(json!({"principals": ["cluster.local/*"], "notPrincipals": ["cluster.local/ns/frontend/*"]})),
            get("/"),
            web(),
            deny(NoMatchingAllow),
        ),
        namespaces_from_istio_form => (
            allow_from(json!({"namespaces": ["frontend"]})),
            get("/"),
            web(),
            allow_by("p").principal(Some(WEB_PRINCIPAL)),
        ),
        namespaces_other_namespace_no_match => (
            allow_from(json!({"namespaces": ["frontend"]})),
            get("/"),
            db(),
            deny(NoMatchingAllow),
        ),
        namespaces_non_istio_spiffe_path_has_no_namespace => (
            allow_from(json!({"namespaces": ["*"]})),
            get("/"),
            P::Spiffe("spiffe://cluster.local/workload/frontend"),
            deny(NoMatchingAllow),
        ),
        not_namespaces_excludes => (
            allow_from(json!({"notNamespaces": ["front*"]})),
            get("/"),
            web(),
            deny(NoMatchingAllow),
        ),
        source_trust_domains_match => (
            allow_from(json!({"trustDomains": ["cluster.local"]})),
            get("/"),
            web(),
            allow_by("p"),
        ),
        source_trust_domains_other_domain_no_match => (
            allow_from(json!({"trustDomains": ["cluster.local"]})),
            get("/"),
            P::Spiffe("spiffe://partner.example/ns/frontend/sa/web"),
            deny(NoMatchingAllow),
        ),
        not_trust_domains_excludes => (
            allow_from(json!({"notTrustDomains": ["partner.example"]})),
            get("/"),
            P::Spiffe("spiffe://partner.example/ns/frontend/sa/web"),
            deny(NoMatchingAllow),
        ),
    }
}

mod operations_follow_istio {
    use super::*;
    use Reason::{DeniedByPolicy, InvalidPath, NoMatchingAllow};

    fn deny_admin() -> Value {
        json!({"policies": [{"name": "deny-admin", "action": "DENY", "rules": [{"to": [{"operation": {"paths": ["/admin*"]}}]}]}]})
    }

    fn host(h: &'static str) -> R {
        R { host: h, ..R::default() }
    }

    fn port(p: Option<u32>) -> R {
        R { port: p, ..R::default() }
    }

    fn method(m: &'static str) -> R {
        R { method: m, ..R::default() }
    }

    cases! {
        hosts_case_insensitive => (
            allow_to(json!({"hosts": ["API.Example.com"]})),
            host("api.EXAMPLE.com"),
            web(),
            allow_by("p"),
        ),
        hosts_suffix_case_insensitive => (
            allow_to(json!({"hosts": ["*.Example.COM"]})),
            host("Api.example.com"),
            web(),
            allow_by("p"),
        ),
        hosts_other_host_no_match => (
            allow_to(json!({"hosts": ["api.example.com"]})),
            host("www.example.com"),
            web(),
            deny(NoMatchingAllow),
        ),
        host_with_port_matches_host_rule => (
            allow_to(json!({"hosts": ["api.example.com"]})),
            host("api.example.com:8443"),
            web(),
            allow_by("p"),
        ),
        host_rule_with_port_matches_exactly => (
            allow_to(json!({"hosts": ["api.example.com:8443"]})),
            host("api.example.com:8443"),
            web(),
            allow_by("p"),
        ),
        host_rule_with_port_needs_that_port => (
            allow_to(json!({"hosts": ["api.example.com:8443"]})),
            host("api.example.com:9443"),
            web(),
            deny(NoMatchingAllow),
        ),
        ipv6_host_with_port_matches_bracketed_rule => (
            allow_to(json!({"hosts": ["[::1]"]})),
            host("[::1]:8080"),
            web(),
            allow_by("p"),
        ),
        not_hosts_excludes_with_port => (
            allow_to(json!({"notHosts": ["admin.example.com"]})),
            host("ADMIN.example.com:443"),
            web(),
            deny(NoMatchingAllow),
        ),
        paths_exact => (allow_to(json!({"paths": ["/api/items"]})), get("/api/items"), web(), allow_by("p")),
        paths_exact_is_not_prefix => (
            allow_to(json!({"paths": ["/api/items"]})),
            get("/api/items/1"),
            web(),
            deny(NoMatchingAllow),
        ),
        paths_ignore_query_string => (
            allow_to(json!({"paths": ["/api/items"]})),
            get("/api/items?limit=10"),
            web(),
            allow_by("p"),
        ),
        fragment_in_path_is_invalid_path => (
            allow_to(json!({"paths": ["/api/items"]})),
            get("/api/items#top"),
            web(),
            deny(InvalidPath),
        ),
        paths_prefix => (allow_to(json!({"paths": ["/api/*"]})), get("/api/items"), web(), allow_by("p")),
        paths_suffix => (allow_to(json!({"paths": ["*.json"]})), get("/data/x.json?v=1"), web(), allow_by("p")),
        not_paths_excludes => (allow_to(json!({"notPaths": ["/admin*"]})), get("/admin"), web(), deny(NoMatchingAllow)),
        dot_segments_normalized_before_matching => (
            deny_admin(),
            get("/public/../admin/users"),
            web(),
            deny_by(DeniedByPolicy, "deny-admin"),
        ),
        dot_segments_cannot_escape_root => (
            deny_admin(),
            get("/../../admin"),
            web(),
            deny_by(DeniedByPolicy, "deny-admin"),
        ),
        single_dot_segments_removed => (deny_admin(), get("/./admin"), web(), deny_by(DeniedByPolicy, "deny-admin")),
        percent_encoded_path => (deny_admin(), get("/%61dmin"), web(), deny_by(DeniedByPolicy, "deny-admin")),
        percent_encoded_slash_is_invalid_path => (deny_admin(), get("/api%2F%2e%2e%2Fadmin"), web(), deny(InvalidPath)),
        backslash_is_invalid_path => (deny_admin(), get("/api\\..\\admin"), web(), deny(InvalidPath)),
        percent_escapes_that_are_not_hex_are_invalid_path => (
            allow_to(json!({"paths": ["/100*"]})),
            get("/100%zz"),
            web(),
            deny(InvalidPath),
        ),
        query_string_is_not_part_of_the_path => (deny_admin(), get("/public?next=/admin"), web(), allow()),
        ports => (allow_to(json!({"ports": ["8080"]})), port(Some(8080)), web(), allow_by("p")),
        ports_as_numbers => (allow_to(json!({"ports": [8080]})), port(Some(8080)), web(), allow_by("p")),
        ports_other_port_no_match => (
            allow_to(json!({"ports": ["8080"]})),
            port(Some(9090)),
            web(),
            deny(NoMatchingAllow),
        ),
        ports_unknown_port_no_match => (allow_to(json!({"ports": ["8080"]})), port(None), web(), deny(NoMatchingAllow)),
        not_ports_excludes => (allow_to(json!({"notPorts": ["9090"]})), port(Some(9090)), web(), deny(NoMatchingAllow)),
        not_ports_lets_other_ports_through => (
            allow_to(json!({"notPorts": ["9090"]})),
            port(Some(8080)),
            web(),
            allow_by("p"),
        ),
        methods => (allow_to(json!({"methods": ["GET", "HEAD"]})), method("HEAD"), web(), allow_by("p")),
        methods_other_method_no_match => (
            allow_to(json!({"methods": ["GET"]})),
            method("POST"),
            web(),
            deny(NoMatchingAllow),
        ),
        not_methods_excludes => (
            allow_to(json!({"notMethods": ["DELETE"]})),
            method("DELETE"),
            web(),
            deny(NoMatchingAllow),
        ),
        fields_within_one_operation_are_anded => (
            allow_to(json!({"methods": ["GET"], "paths": ["/api/*"]})),
            R { method: "GET", path: "/other", ..R::default() },
            web(),
            deny(NoMatchingAllow),
        ),
    }
}

mod identities_and_trust_domains {
    use super::*;
    use Reason::*;

    fn td(extra: Value) -> Value {
        let mut doc = json!({"trustDomains": ["cluster.local"], "policies": [{"name": "p", "rules": [{}]}]});
        if let (Some(d), Some(e)) = (doc.as_object_mut(), extra.as_object()) {
            d.extend(e.clone());
        }
        doc
    }

    const LINKERD: &str = "web.emojivoto.serviceaccount.identity.linkerd.cluster.local";

    cases! {
        trust_domain_accepted => (td(json!({})), get("/"), web(), allow_by("p").principal(Some(WEB_PRINCIPAL))),
        trust_domain_check_untrusted_trust_domain => (
            td(json!({})),
            get("/"),
            P::Spiffe("spiffe://partner.example/ns/frontend/sa/web"),
            deny(UntrustedTrustDomain).principal(Some("partner.example/ns/frontend/sa/web")),
        ),
        trust_domain_check_subject_identity_has_no_trust_domain => (
            td(json!({"identity": ["subject"]})),
            get("/"),
            P::Subject("CN=web,O=example"),
            deny(UntrustedTrustDomain),
        ),
        trust_domain_check_linkerd_identity => (
            td(json!({"identity": ["dns"]})),
            get("/"),
            P::Dns(LINKERD),
            allow_by("p").principal(Some("cluster.local/ns/emojivoto/sa/web")),
        ),
        trust_domain_check_skips_permissive_plaintext => (
            td(json!({"mtls": "permissive"})),
            get("/"),
            P::Plain,
            allow_by("p").principal(None),
        ),
        linkerd_dns_identity => (
            with_identity(allow_from(json!({"principals": ["cluster.local/ns/emojivoto/sa/web"]})), &["dns"]),
            get("/"),
            P::Dns(LINKERD),
            allow_by("p").principal(Some("cluster.local/ns/emojivoto/sa/web")),
        ),
        linkerd_dns_identity_namespace => (
            with_identity(allow_from(json!({"namespaces": ["emojivoto"]})), &["dns"]),
            get("/"),
            P::Dns(LINKERD),
            allow_by("p"),
        ),
        plain_dns_identity_is_the_lowercased_name => (
            with_identity(allow_from(json!({"principals": ["api.example.com"]})), &["dns"]),
            get("/"),
            P::Dns("API.Example.com"),
            allow_by("p").principal(Some("api.example.com")),
        ),
        subject_identity => (
            with_identity(allow_from(json!({"principals": ["payments"]})), &["subject"]),
            get("/"),
            P::Subject("CN=payments,OU=team,O=example"),
            allow_by("p").principal(Some("payments")),
        ),
        subject_identity_with_escaped_comma => (
            with_identity(allow_from(json!({"principals": ["pay,ments"]})), &["subject"]),
            get("/"),
            P::Subject("CN=pay\\,ments,O=example"),
            allow_by("p").principal(Some("pay,ments")),
        ),
        identity_order_spiffe_first_by_default => (
            allow_rule(json!({})),
            get("/"),
            P::Attrs { uri: Some(WEB), dns: Some("web.example.com"), subject: Some("CN=web-cn") },
            allow_by("p").principal(Some(WEB_PRINCIPAL)),
        ),
        identity_order_first_listed_source_wins => (
            json!({"identity": ["subject", "spiffe"], "policies": [{"name": "p", "rules": [{}]}]}),
            get("/"),
            P::Attrs { uri: Some(WEB), dns: Some("web.example.com"), subject: Some("CN=web-cn") },
            allow_by("p").principal(Some("web-cn")),
        ),
        identity_order_falls_through_to_next_source => (
            json!({"identity": ["spiffe", "dns"], "policies": [{"name": "p", "rules": [{}]}]}),
            get("/"),
            P::Attrs { uri: None, dns: Some("web.example.com"), subject: Some("CN=web-cn") },
            allow_by("p").principal(Some("web.example.com")),
        ),
        identity_order_unlisted_sources_are_ignored => (
            json!({"identity": ["spiffe"], "policies": [{"name": "p", "rules": [{"from": [{"source": {"principals": ["*"]}}]}]}]}),
            get("/"),
            P::Attrs { uri: None, dns: Some("web.example.com"), subject: Some("CN=web-cn") },
            deny(NoMatchingAllow).principal(None),
        ),
        identity_from_certificate => (
            allow_from(json!({"principals": [WEB_PRINCIPAL]})),
            get("/"),
            P::Cert(Box::new(cert())),
            allow_by("p").principal(Some(WEB_PRINCIPAL)),
        ),
        two_spiffe_sans_invalid_identity => (
            allow_rule(json!({})),
            get("/"),
            cert_with(|c| c.uri_sans = vec![WEB.to_owned(), DB.to_owned()]),
            deny(InvalidIdentity),
        ),
        two_spiffe_sans_invalid_identity_even_when_spiffe_is_not_first => (
            json!({"identity": ["dns", "spiffe"], "policies": [{"name": "p", "rules": [{}]}]}),
            get("/"),
            cert_with(|c| {
                c.uri_sans = vec![WEB.to_owned(), DB.to_owned()];
                c.dns_sans.clear();
                c.subject_cn.clear();
            }),
            deny(InvalidIdentity),
        ),
        spiffe_san_breaking_the_spec_is_invalid_identity => (
            allow_rule(json!({})),
            get("/"),
            cert_with(|c| c.uri_sans = vec!["spiffe://Cluster.Local/ns/a/sa/b".to_owned()]),
            deny(InvalidIdentity),
        ),
        spiffe_san_with_query_is_invalid_identity => (
            allow_rule(json!({})),
            get("/"),
            cert_with(|c| c.uri_sans = vec!["spiffe://cluster.local/ns/a/sa/b?x=1".to_owned()]),
            deny(InvalidIdentity),
        ),
        spiffe_attribute_breaking_the_spec_is_invalid_identity => (
            allow_rule(json!({})),
            get("/"),
            P::Spiffe("spiffe://cluster.local/ns/a/../sa/b"),
            deny(InvalidIdentity),
        ),
        upper_case_spiffe_scheme_is_invalid_identity_from_certificate => (
            allow_rule(json!({})),
            get("/"),
            cert_with(|c| c.uri_sans = vec!["SPIFFE://cluster.local/ns/a/sa/b".to_owned()]),
            deny(InvalidIdentity),
        ),
        upper_case_spiffe_scheme_is_invalid_identity_from_attributes => (
            allow_rule(json!({})),
            get("/"),
            P::Spiffe("SPIFFE://cluster.local/ns/a/sa/b"),
            deny(InvalidIdentity),
        ),
        non_spiffe_uri_sans_are_not_identities => (
            with_identity(allow_rule(json!({})), &["spiffe", "dns"]),
            get("/"),
            cert_with(|c| c.uri_sans = vec!["https://example.com/x".to_owned()]),
            allow_by("p").principal(Some("web.frontend.svc.cluster.local")),
        ),
        certificate_without_any_identity_has_no_principal => (
            allow_from(json!({"notPrincipals": ["*"]})),
            get("/"),
            cert_with(|c| {
                c.uri_sans.clear();
                c.dns_sans.clear();
                c.subject_cn.clear();
            }),
            allow_by("p").principal(None),
        ),
    }
}

mod when_conditions {
    use super::*;
    use Reason::*;

    fn sni(s: &'static str) -> R {
        R { sni: Some(s), ..R::default() }
    }

    fn port(p: u32) -> R {
        R { port: Some(p), ..R::default() }
    }

    fn full() -> P {
        P::Cert(Box::new(cert()))
    }

    cases! {
        when_request_headers => (
            allow_when("request.headers[x-env]", json!(["prod"])),
            header("x-env", "prod"),
            web(),
            allow_by("p"),
        ),
        when_request_headers_name_case_insensitive => (
            allow_when("request.headers[X-Env]", json!(["prod"])),
            header("X-ENV", "prod"),
            web(),
            allow_by("p"),
        ),
        when_request_headers_value_mismatch => (
            allow_when("request.headers[x-env]", json!(["prod"])),
            header("x-env", "dev"),
            web(),
            deny(NoMatchingAllow),
        ),
        when_request_headers_absent_header_no_match => (
            allow_when("request.headers[x-env]", json!(["*"])),
            get("/"),
            web(),
            deny(NoMatchingAllow),
        ),
        when_request_headers_prefix => (
            allow_when("request.headers[user-agent]", json!(["curl/*"])),
            header("user-agent", "curl/8.5"),
            web(),
            allow_by("p"),
        ),
        when_not_values_excludes => (
            allow_when_not("request.headers[x-env]", json!(["dev"])),
            header("x-env", "dev"),
            web(),
            deny(NoMatchingAllow),
        ),
        when_not_values_absent_header_matches => (
            allow_when_not("request.headers[x-env]", json!(["dev"])),
            get("/"),
            web(),
            allow_by("p"),
        ),
        when_source_principal => (
            allow_when("source.principal", json!([WEB_PRINCIPAL])),
            get("/"),
            web(),
            allow_by("p"),
        ),
        when_source_principal_mismatch => (
            allow_when("source.principal", json!([WEB_PRINCIPAL])),
            get("/"),
            db(),
            deny(NoMatchingAllow),
        ),
        when_source_namespace => (allow_when("source.namespace", json!(["front*"])), get("/"), web(), allow_by("p")),
        when_destination_port => (allow_when("destination.port", json!(["8443"])), port(8443), web(), allow_by("p")),
        when_destination_port_mismatch => (
            allow_when("destination.port", json!(["8443"])),
            port(80),
            web(),
            deny(NoMatchingAllow),
        ),
        when_connection_sni => (
            allow_when("connection.sni", json!(["*.example.com"])),
            sni("api.example.com"),
            web(),
            allow_by("p"),
        ),
        when_connection_sni_absent => (
            allow_when("connection.sni", json!(["*"])),
            get("/"),
            web(),
            deny(NoMatchingAllow),
        ),
        when_cert_subject => (allow_when("cert.subject", json!(["CN=web,*"])), get("/"), full(), allow_by("p")),
        when_cert_subject_from_attributes => (
            allow_when("cert.subject", json!(["CN=web,O=example"])),
            get("/"),
            P::Subject("CN=web,O=example"),
            allow_by("p"),
        ),
        when_cert_subject_cn => (allow_when("cert.subject.cn", json!(["web"])), get("/"), full(), allow_by("p")),
        when_cert_subject_cn_from_attributes => (
            allow_when("cert.subject.cn", json!(["web"])),
            get("/"),
            P::Subject("OU=x,CN=web,O=example"),
            allow_by("p"),
        ),
        when_cert_subject_o => (allow_when("cert.subject.o", json!(["example"])), get("/"), full(), allow_by("p")),
        when_cert_subject_ou => (allow_when("cert.subject.ou", json!(["pay*"])), get("/"), full(), allow_by("p")),
        when_cert_issuer => (
            allow_when("cert.issuer", json!(["CN=intermediate-ca,O=cluster.local"])),
            get("/"),
            full(),
            allow_by("p"),
        ),
        when_cert_issuer_cn => (
            allow_when("cert.issuer.cn", json!(["intermediate-ca"])),
            get("/"),
            full(),
            allow_by("p"),
        ),
        when_cert_issuer_cn_mismatch => (
            allow_when("cert.issuer.cn", json!(["other-ca"])),
            get("/"),
            full(),
            deny(NoMatchingAllow),
        ),
        when_cert_issuer_o => (allow_when("cert.issuer.o", json!(["cluster.local"])), get("/"), full(), allow_by("p")),
        when_cert_san_uri_any_san => (
            allow_when("cert.san.uri", json!(["https://*"])),
            get("/"),
            cert_with(|c| c.uri_sans.push("https://example.com/id".to_owned())),
            allow_by("p"),
        ),
        when_cert_san_dns => (
            allow_when("cert.san.dns", json!(["*.svc.cluster.local"])),
            get("/"),
            full(),
            allow_by("p"),
        ),
        when_cert_serial => (allow_when("cert.serial", json!(["1a2b3c"])), get("/"), full(), allow_by("p")),
        when_cert_sha256 => (allow_when("cert.sha256", json!(["ab".repeat(32)])), get("/"), full(), allow_by("p")),
        when_cert_spki_sha256 => (
            allow_when("cert.spki.sha256", json!(["c3BraS1kaWdlc3Q="])),
            get("/"),
            full(),
            allow_by("p"),
        ),
        when_cert_key_on_plaintext_no_match => (
            json!({"mtls": "permissive", "policies": [{"name": "p", "rules": [{"when": [{"key": "cert.issuer.cn", "values": ["*"]}]}]}]}),
            get("/"),
            P::Plain,
            deny(NoMatchingAllow),
        ),
        peer_attributes_when_full_cert_needed_certificate_unavailable => (
            allow_when("cert.issuer.cn", json!(["intermediate-ca"])),
            get("/"),
            web(),
            deny(CertificateUnavailable),
        ),
        when_conditions_are_anded => (
            allow_rule(json!({"when": [
                {"key": "request.headers[x-env]", "values": ["prod"]},
                {"key": "source.namespace", "values": ["backend"]},
            ]})),
            header("x-env", "prod"),
            web(),
            deny(NoMatchingAllow),
        ),
    }
}

mod dry_run_audit_and_mtls_modes {
    use super::*;
    use Reason::*;

    fn deny_admin(dry: bool) -> Value {
        json!({"name": "deny-admin", "action": "DENY", "dryRun": dry, "rules": [{"to": [{"operation": {"paths": ["/admin*"]}}]}]})
    }

    fn allow_web(dry: bool) -> Value {
        json!({"name": "allow-web", "action": "ALLOW", "dryRun": dry, "rules": [{"from": [{"source": {"principals": [WEB_PRINCIPAL]}}]}]})
    }

    fn audit_admin() -> Value {
        json!({"name": "audit-admin", "action": "AUDIT", "rules": [{"to": [{"operation": {"paths": ["/admin*"]}}]}]})
    }

    cases! {
        dry_run_mode_never_denies_but_reports_would_deny => (
            json!({"mode": "dryRun", "policies": [allow_web(false)]}),
            get("/"),
            db(),
            would_deny(NoMatchingAllow, None),
        ),
        dry_run_mode_reports_deny_policy => (
            json!({"mode": "dryRun", "policies": [deny_admin(false)]}),
            get("/admin"),
            web(),
            would_deny(DeniedByPolicy, Some("deny-admin")),
        ),
        dry_run_mode_covers_no_peer_certificate => (
            json!({"mode": "dryRun", "mtls": "strict"}),
            get("/"),
            P::Plain,
            would_deny(NoPeerCertificate, None),
        ),
        dry_run_mode_allow_is_plain_allow => (
            json!({"mode": "dryRun", "policies": [allow_web(false)]}),
            get("/"),
            web(),
            allow_by("allow-web"),
        ),
        per_policy_dry_run_deny_would_deny => (
            json!({"policies": [deny_admin(true)]}),
            get("/admin"),
            web(),
            would_deny(DeniedByPolicy, Some("deny-admin")),
        ),
        per_policy_dry_run_deny_no_match_is_allow => (
            json!({"policies": [deny_admin(true)]}),
            get("/api"),
            web(),
            allow(),
        ),
        per_policy_dry_run_allow_without_match_would_deny => (
            json!({"policies": [allow_web(true)]}),
            get("/"),
            db(),
            would_deny(NoMatchingAllow, None),
        ),
        per_policy_dry_run_allow_with_match_is_allow => (
            json!({"policies": [allow_web(true)]}),
            get("/"),
            web(),
            allow(),
        ),
        per_policy_dry_run_does_not_weaken_enforced_deny => (
            json!({"policies": [deny_admin(false), allow_web(true)]}),
            get("/admin"),
            db(),
            deny_by(DeniedByPolicy, "deny-admin"),
        ),
        per_policy_dry_run_allow_ignored_when_enforced_allow_matches => (
            json!({"policies": [allow_web(false), {"name": "allow-db", "action": "ALLOW", "dryRun": true, "rules": [{"from": [{"source": {"principals": ["cluster.local/ns/backend/sa/db"]}}]}]}]}),
            get("/"),
            web(),
            allow_by("allow-web"),
        ),
        per_policy_dry_run_deny_reported_on_enforced_allow => (
            json!({"policies": [deny_admin(true), allow_web(false)]}),
            get("/admin"),
            web(),
            would_deny(DeniedByPolicy, Some("deny-admin")),
        ),
        audit_never_changes_the_decision_allow => (
            json!({"policies": [audit_admin()]}),
            get("/admin"),
            web(),
            allow().audit(&["audit-admin"]),
        ),
        audit_never_changes_the_decision_deny => (
            json!({"policies": [audit_admin(), allow_web(false)]}),
            get("/admin"),
            db(),
            deny(NoMatchingAllow).audit(&["audit-admin"]),
        ),
        audit_is_reported_alongside_a_deny_policy => (
            json!({"policies": [audit_admin(), deny_admin(false)]}),
            get("/admin"),
            web(),
            deny_by(DeniedByPolicy, "deny-admin").audit(&["audit-admin"]),
        ),
        audit_lists_every_matching_policy_once => (
            json!({"policies": [
                {"name": "audit-a", "action": "AUDIT", "rules": [{}, {"to": [{"operation": {"paths": ["/admin"]}}]}]},
                {"name": "audit-b", "action": "AUDIT", "rules": [{"from": [{"source": {"principals": [WEB_PRINCIPAL]}}]}]},
                {"name": "audit-c", "action": "AUDIT", "rules": [{"from": [{"source": {"principals": ["nobody"]}}]}]},
            ]}),
            get("/admin"),
            web(),
            allow().audit(&["audit-a", "audit-b"]),
        ),
        audit_no_match_lists_nothing => (json!({"policies": [audit_admin()]}), get("/api"), web(), allow().audit(&[])),
        permissive_plaintext_gets_no_principal => (
            json!({"mtls": "permissive", "policies": [{"name": "p", "rules": [{}]}]}),
            get("/"),
            P::Plain,
            allow_by("p").principal(None),
        ),
        permissive_plaintext_never_matches_source_fields => (
            json!({"mtls": "permissive", "policies": [{"name": "p", "rules": [{"from": [{"source": {"namespaces": ["*"]}}]}]}]}),
            get("/"),
            P::Plain,
            deny(NoMatchingAllow),
        ),
        permissive_not_principals_star_deny_idiom_denies_plaintext => (
            json!({"mtls": "permissive", "policies": [{"name": "require-mtls", "action": "DENY", "rules": [{"from": [{"source": {"notPrincipals": ["*"]}}]}]}]}),
            get("/"),
            P::Plain,
            deny_by(DeniedByPolicy, "require-mtls"),
        ),
        permissive_not_principals_star_deny_idiom_allows_mtls => (
            json!({"mtls": "permissive", "policies": [{"name": "require-mtls", "action": "DENY", "rules": [{"from": [{"source": {"notPrincipals": ["*"]}}]}]}]}),
            get("/"),
            web(),
            allow(),
        ),
        strict_no_peer_certificate => (json!({}), get("/"), P::Plain, deny(NoPeerCertificate)),
        strict_no_peer_certificate_before_any_policy => (
            json!({"policies": [{"name": "all", "rules": [{}]}]}),
            get("/"),
            P::Plain,
            deny(NoPeerCertificate),
        ),
        unparseable_certificate_invalid_certificate => (
            json!({"mtls": "permissive"}),
            get("/"),
            P::Unparseable,
            deny(InvalidCertificate),
        ),
        expired_certificate_is_denied_without_a_certificate_block => (
            json!({}),
            get("/"),
            cert_with(|c| c.not_after = NOW - 1),
            deny(Expired),
        ),
        not_yet_valid_certificate_is_denied => (
            json!({}),
            get("/"),
            cert_with(|c| c.not_before = NOW + 60),
            deny(NotYetValid),
        ),
        certificate_checks_come_before_identity_checks => (
            json!({}),
            get("/"),
            cert_with(|c| {
                c.not_after = NOW - 1;
                c.uri_sans = vec![WEB.to_owned(), DB.to_owned()];
            }),
            deny(Expired),
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// Bad input: a clear error with a path, or a deny with a reason; never a panic, never an allow.

fn errors(policy: &str) -> Vec<(String, String)> {
    match Engine::from_json(policy) {
        Ok(_) => panic!("expected errors for {policy}"),
        Err(e) => e.0.into_iter().map(|e| (e.path, e.message)).collect(),
    }
}

fn assert_error(policy: Value, path: &str, message_contains: &str) {
    let errs = errors(&policy.to_string());
    assert!(
        errs.iter().any(|(p, m)| p == path && m.contains(message_contains)),
        "expected an error at {path} containing {message_contains:?}, got {errs:?}"
    );
}

#[test]
fn malformed_json_is_an_error_not_a_panic() {
    for text in ["", "{", "{\"policies\": [", "null", "[]", "{\"policies\": [{\"name\": \"a\",}]}", "\u{0}"] {
        let errs = errors(text);
        assert!(!errs.is_empty(), "{text:?}");
    }
}

#[test]
fn a_sequence_is_not_accepted_where_a_mapping_belongs() {
    // Serde would read a struct from a sequence of its fields: `"rules": [[]]` as a match-all rule.
    let cases = [
        (json!([]), "."),
        (json!({"policies": [[]]}), "policies[0]"),
        (json!({"policies": [{"name": "a", "rules": [[]]}]}), "policies[0].rules[0]"),
        (
            json!({"policies": [{"name": "a", "rules": [{"from": [{"source": []}]}]}]}),
            "policies[0].rules[0].from[0].source",
        ),
        (
            json!({"policies": [{"name": "a", "rules": [{"to": [{"operation": []}]}]}]}),
            "policies[0].rules[0].to[0].operation",
        ),
        (
            json!({"policies": [{"name": "a", "rules": [{"when": [["source.principal"]]}]}]}),
            "policies[0].rules[0].when[0]",
        ),
        (json!({"denyResponse": [403]}), "denyResponse"),
        (json!({"certificate": []}), "certificate"),
    ];
    for (policy, path) in cases {
        let errs = errors(&policy.to_string());
        assert_eq!(errs.len(), 1, "{policy}: {errs:?}");
        assert_eq!(errs[0].0, path, "{policy}: {errs:?}");
        assert!(errs[0].1.contains("sequence"), "{policy}: {errs:?}");
    }
}

#[test]
fn wrong_types_name_their_path() {
    let cases = [
        (json!({"policies": {"name": "a"}}), "policies"),
        (json!({"policies": [{"name": "a", "rules": "all"}]}), "policies[0].rules"),
        (json!({"policies": [{"name": 7}]}), "policies[0].name"),
        (json!({"policies": [{"name": "a", "action": "allow"}]}), "policies[0].action"),
        (json!({"policies": [{"name": "a", "dryRun": "yes"}]}), "policies[0].dryRun"),
        (
            json!({"policies": [{"name": "a", "rules": [{"from": [{"source": {"principals": "x"}}]}]}]}),
            "policies[0].rules[0].from[0].source.principals",
        ),
        (
            json!({"policies": [{"name": "a", "rules": [{"to": [{"operation": {"ports": [true]}}]}]}]}),
            "policies[0].rules[0].to[0].operation.ports[0]",
        ),
        (json!({"mode": "audit"}), "mode"),
        (json!({"mtls": true}), "mtls"),
        (json!({"denyResponse": {"status": "403"}}), "denyResponse.status"),
    ];
    for (policy, path) in cases {
        let errs = errors(&policy.to_string());
        assert_eq!(errs.len(), 1, "{policy}: {errs:?}");
        assert_eq!(errs[0].0, path, "{policy}: {errs:?}");
    }
}

#[test]
fn unknown_key_error_names_path() {
    let cases = [
        (json!({"mtsl": "strict"}), "", "mtsl"),
        (json!({"policies": [{"name": "a", "rulez": []}]}), "policies[0].", "rulez"),
        (
            json!({"policies": [{"name": "a", "rules": [{"from": [{"source": {"principal": ["x"]}}]}]}]}),
            "policies[0].rules[0].from[0].source.",
            "principal",
        ),
        (
            json!({"policies": [{"name": "a", "rules": [{"to": [{"operation": {"path": ["/x"]}}]}]}]}),
            "policies[0].rules[0].to[0].operation.",
            "path",
        ),
        (
            json!({"policies": [{"name": "a", "rules": [{"when": [{"key": "source.principal", "value": ["x"]}]}]}]}),
            "policies[0].rules[0].when[0].",
            "value",
        ),
        (json!({"certificate": {"maxLifetim": "1h"}}), "certificate.", "maxLifetim"),
    ];
    for (policy, parent, key) in cases {
        let errs = errors(&policy.to_string());
        assert_eq!(errs.len(), 1, "{policy}: {errs:?}");
        // The path ends with the unknown key itself.
        assert_eq!(errs[0].0, format!("{parent}{key}"), "{policy}: {errs:?}");
        assert!(errs[0].1.contains(&format!("`{key}`")), "{policy}: {errs:?}");
    }
}

#[test]
fn empty_pattern_is_refused() {
    assert_error(
        allow_from(json!({"principals": [""]})),
        "policies[0].rules[0].from[0].source.principals[0]",
        "empty pattern",
    );
    assert_error(allow_to(json!({"hosts": [""]})), "policies[0].rules[0].to[0].operation.hosts[0]", "empty pattern");
    assert_error(
        allow_when("request.headers[x]", json!([""])),
        "policies[0].rules[0].when[0].values[0]",
        "empty pattern",
    );
}

#[test]
fn inner_wildcard_is_refused() {
    for pattern in ["cluster.local/*/sa/web", "a**", "**", "*a*"] {
        assert_error(
            allow_from(json!({"principals": [pattern]})),
            "policies[0].rules[0].from[0].source.principals[0]",
            "'*' is allowed only",
        );
    }
    assert_error(
        allow_to(json!({"paths": ["/api/*/items"]})),
        "policies[0].rules[0].to[0].operation.paths[0]",
        "'*' is allowed only",
    );
}

#[test]
fn unsupported_istio_fields_are_named() {
    let source = "policies[0].rules[0].from[0].source";
    for field in [
        "requestPrincipals",
        "notRequestPrincipals",
        "ipBlocks",
        "notIpBlocks",
        "remoteIpBlocks",
        "notRemoteIpBlocks",
        "serviceAccounts",
        "notServiceAccounts",
    ] {
        assert_error(allow_from(json!({field: ["x"]})), &format!("{source}.{field}"), "not supported");
    }
    for key in ["request.auth.claims[iss]", "request.auth.principal", "source.ip", "remote.ip", "destination.ip"] {
        let errs = errors(&allow_when(key, json!(["x"])).to_string());
        assert!(
            errs.iter().any(|(p, m)| p == "policies[0].rules[0].when[0].key"
                && m.contains(key)
                && m.contains("not supported")),
            "{key}: {errs:?}"
        );
    }
    assert_error(
        json!({"policies": [{"name": "a", "action": "CUSTOM", "provider": {"name": "opa"}}]}),
        "policies[0].action",
        "CUSTOM",
    );
    assert_error(
        json!({"policies": [{"name": "a", "action": "CUSTOM", "provider": {"name": "opa"}}]}),
        "policies[0].provider",
        "not supported",
    );
    assert_error(
        json!({"policies": [{"name": "a", "selector": {"matchLabels": {"app": "x"}}}]}),
        "policies[0].selector",
        "WasmPlugin",
    );
    assert_error(json!({"policies": [{"name": "a", "targetRefs": []}]}), "policies[0].targetRefs", "WasmPlugin");
    assert_error(allow_when("cert.colour", json!(["x"])), "policies[0].rules[0].when[0].key", "unknown key");
}

#[test]
fn every_error_is_reported_not_just_the_first() {
    let policy = json!({"trustDomains": ["Bad.Domain"], "policies": [
        {"name": "a", "rules": [{"from": [{"source": {"principals": ["a*b"], "ipBlocks": ["10.0.0.0/8"]}}],
                                 "to": [{"operation": {"ports": ["http"], "paths": ["api"]}}]}]},
        {"name": "a", "rules": [{"when": [{"key": "request.auth.claims[iss]", "values": ["x"]}]}]},
    ]});
    let errs = errors(&policy.to_string());
    let paths: Vec<&str> = errs.iter().map(|(p, _)| p.as_str()).collect();
    for want in [
        "trustDomains[0]",
        "policies[0].rules[0].from[0].source.principals[0]",
        "policies[0].rules[0].from[0].source.ipBlocks",
        "policies[0].rules[0].to[0].operation.ports[0]",
        "policies[0].rules[0].to[0].operation.paths[0]",
        "policies[1].name",
        "policies[1].rules[0].when[0].key",
    ] {
        assert!(paths.contains(&want), "missing {want} in {paths:?}");
    }
}

#[test]
fn huge_policy_of_100000_rules_loads_and_stays_indexed() {
    let n = 100_000;
    let rules: Vec<Value> = (0..n)
        .map(|i| json!({"from": [{"source": {"principals": [format!("cluster.local/ns/ns{i}/sa/sa{i}")]}}]}))
        .collect();
    let policy = json!({"policies": [{"name": "big", "action": "ALLOW", "rules": rules}]});
    let engine = compile(&policy).unwrap();
    let last = "spiffe://cluster.local/ns/ns99999/sa/sa99999";
    let d = decide(&engine, &get("/"), &P::Spiffe(last));
    assert!(d.allowed());
    assert_eq!(d.policy.as_deref(), Some("big"));
    assert_eq!(decide(&engine, &get("/"), &db()).reason(), Some(Reason::NoMatchingAllow));
}

#[test]
fn policy_over_the_rule_limit_is_refused_with_a_message() {
    let n = MAX_RULES + 1;
    let text = format!("{{\"policies\": [{{\"name\": \"huge\", \"rules\": [{}{{}}]}}]}}", "{},".repeat(n - 1));
    let errs = errors(&text);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].0, "policies");
    assert!(errs[0].1.contains(&MAX_RULES.to_string()), "{errs:?}");
}

/// A header source like the filter's: a value that is not UTF-8 reaches the engine lossily
/// decoded, or not at all.
struct RawHeaders(Vec<(&'static str, Vec<u8>)>, Vec<(String, String)>);

impl RawHeaders {
    fn new(raw: Vec<(&'static str, Vec<u8>)>) -> RawHeaders {
        let lossy = raw.iter().map(|(k, v)| ((*k).to_owned(), String::from_utf8_lossy(v).into_owned())).collect();
        RawHeaders(raw, lossy)
    }
}

impl HeaderSource for RawHeaders {
    fn header_values(&self, name: &str) -> Vec<String> {
        self.1.iter().filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone()).collect()
    }
}

#[test]
fn non_utf8_headers_match_lossily_and_never_by_accident() {
    let engine = compile(&allow_when("request.headers[x-user]", json!(["caf\u{e9}"]))).unwrap();
    let prefix = compile(&allow_when("request.headers[x-user]", json!(["caf*"]))).unwrap();
    let latin1 = RawHeaders::new(vec![("x-user", b"caf\xe9".to_vec())]);
    assert_eq!(latin1.0.len(), 1);
    let req = |headers: &RawHeaders| -> (Decision, Decision) {
        let r = Request { method: "GET", path: "/", host: "h", port: None, sni: None, headers };
        let attrs =
            PeerAttributes { uri_san: Some(WEB.to_owned()), dns_san: None, subject: None, several_spiffe_uris: false };
        (engine.decide(&r, &Peer::Attributes(&attrs), NOW), prefix.decide(&r, &Peer::Attributes(&attrs), NOW))
    };
    let (exact, pre) = req(&latin1);
    assert_eq!(exact.reason(), Some(Reason::NoMatchingAllow), "a Latin-1 byte is not the UTF-8 é");
    assert!(pre.allowed(), "the valid prefix still matches");
    let utf8 = RawHeaders::new(vec![("x-user", "caf\u{e9}".as_bytes().to_vec())]);
    assert!(req(&utf8).0.allowed());

    // Control characters and odd bytes in paths and hosts are just strings to the matchers.
    let engine = compile(&allow_to(json!({"paths": ["/ok"], "hosts": ["h"]}))).unwrap();
    for path in ["/\u{fffd}ok", "/%ff%fe", "/.."] {
        let d = decide(&engine, &R { path, host: "h", ..R::default() }, &web());
        assert_eq!(d.reason(), Some(Reason::NoMatchingAllow), "{path:?}");
    }
    // ... except where upstreams disagree on what they mean: those have no normal form.
    for path in ["/ok\u{0}", "/ok/\u{7f}", "%", "%%%", "?", "#"] {
        let d = decide(&engine, &R { path, host: "h", ..R::default() }, &web());
        assert_eq!(d.reason(), Some(Reason::InvalidPath), "{path:?}");
    }
}

#[test]
fn yaml_and_json_documents_are_the_same_schema() {
    // Only JSON is compiled in without the `yaml` feature; the document round-trips through serde.
    let doc = PolicyDocument::from_json(&allow_from(json!({"principals": [WEB_PRINCIPAL]})).to_string()).unwrap();
    let again = PolicyDocument::from_json(&serde_json::to_string(&doc).unwrap()).unwrap();
    assert_eq!(doc, again);
}
