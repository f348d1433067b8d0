//! Regression tests for every way the filter was walked around (the hardening issue's table):
//! each test is named after the attack it stops. Natively and, through wasm-bindgen-test, in wasm.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use peerguard_policy::{CertFacts, Decision, Engine, KeyKind, Peer, PeerAttributes, Reason, Request};
use serde_json::{json, Value};

mod common;
use common::NOW;

const ADMIN: &str = "spiffe://cluster.local/ns/prod/sa/admin";

/// A hand-built leaf for `spiffe://cluster.local/ns/prod/sa/admin`, valid around [`NOW`].
fn leaf() -> CertFacts {
    common::leaf("admin", ADMIN)
}

fn engine(policy: Value) -> Engine {
    Engine::from_json(&policy.to_string()).unwrap_or_else(|e| panic!("{policy}: {e}"))
}

fn config_errors(policy: Value) -> Vec<(String, String)> {
    match Engine::from_json(&policy.to_string()) {
        Ok(_) => panic!("expected a configuration error for {policy}"),
        Err(e) => e.0.into_iter().map(|e| (e.path, e.message)).collect(),
    }
}

fn assert_config_error(policy: Value, path: &str) {
    let errs = config_errors(policy.clone());
    assert!(errs.iter().any(|(p, _)| p == path), "expected an error at {path} for {policy}, got {errs:?}");
}

struct Req {
    path: &'static str,
    host: &'static str,
    headers: Vec<(String, String)>,
    port: Option<u32>,
}

fn get(path: &'static str) -> Req {
    Req { path, host: "svc.example", headers: vec![], port: Some(8080) }
}

impl Req {
    fn header(mut self, k: &str, v: &str) -> Req {
        self.headers.push((k.to_owned(), v.to_owned()));
        self
    }
    fn host(mut self, h: &'static str) -> Req {
        self.host = h;
        self
    }
    fn port(mut self, p: Option<u32>) -> Req {
        self.port = p;
        self
    }
}

fn decide(e: &Engine, r: &Req, peer: &Peer<'_>) -> Decision {
    let req = Request { method: "GET", path: r.path, host: r.host, port: r.port, sni: None, headers: &r.headers };
    e.decide(&req, peer, NOW)
}

fn with_cert(e: &Engine, r: &Req, facts: CertFacts) -> Decision {
    let prepared = e.prepare(facts, &[], NOW);
    decide(e, r, &Peer::Certificate(&prepared))
}

fn with_uri(e: &Engine, r: &Req, uri: &str) -> Decision {
    let attrs =
        PeerAttributes { uri_san: Some(uri.to_owned()), dns_san: None, subject: None, several_spiffe_uris: false };
    decide(e, r, &Peer::Attributes(&attrs))
}

fn deny_paths(paths: Value) -> Value {
    json!({"policies": [{"name": "deny-admin", "action": "DENY", "rules": [{"to": [{"operation": {"paths": paths}}]}]}]})
}

fn allow_principal(p: &str) -> Value {
    json!({"policies": [{"name": "p", "action": "ALLOW", "rules": [{"from": [{"source": {"principals": [p]}}]}]}]})
}

// Row 1: an escaped slash, an escaped dot segment, a backslash.

#[test]
fn escaped_slash_cannot_climb_out_of_a_denied_prefix() {
    let e = engine(deny_paths(json!(["/admin*"])));
    for path in ["/admin/..%2Fusers", "/admin/..%2fusers", "/admin%5C..%5Cx"] {
        let d = with_uri(&e, &get(path), ADMIN);
        assert_eq!(d.reason(), Some(Reason::InvalidPath), "{path}");
        assert!(!d.allowed());
    }
}

#[test]
fn escaped_dot_segments_are_matched_as_the_path_that_is_forwarded() {
    let e = engine(deny_paths(json!(["/admin*"])));
    let d = with_uri(&e, &get("/admin/%2e%2e/x"), ADMIN);
    // The normal form is /x, it is what the rules saw and what the upstream receives.
    assert!(d.allowed());
    assert_eq!(d.path_rewrite.as_deref(), Some("/x"));
    let d = with_uri(&e, &get("/x/%2e%2e/admin"), ADMIN);
    assert_eq!(d.reason(), Some(Reason::DeniedByPolicy));
}

#[test]
fn backslash_dot_segments_are_invalid_path() {
    let e = engine(deny_paths(json!(["/admin*"])));
    assert_eq!(with_uri(&e, &get("/admin\\..\\x"), ADMIN).reason(), Some(Reason::InvalidPath));
}

// Rows 2-4: merged slashes and path parameters.

#[test]
fn double_slash_does_not_escape_a_deny_on_admin() {
    let e = engine(deny_paths(json!(["/admin*"])));
    for path in ["//admin", "///admin/x", "/./admin", "/x/../admin"] {
        let d = with_uri(&e, &get(path), ADMIN);
        assert_eq!(d.reason(), Some(Reason::DeniedByPolicy), "{path}");
    }
}

#[test]
fn path_parameter_segment_is_invalid_path_unless_allowed() {
    let e = engine(deny_paths(json!(["/api/admin*"])));
    assert_eq!(with_uri(&e, &get("/api/.;/admin"), ADMIN).reason(), Some(Reason::InvalidPath));
    assert_eq!(with_uri(&e, &get("/api//admin"), ADMIN).reason(), Some(Reason::DeniedByPolicy));
    let mut lenient = deny_paths(json!(["/api/admin*"]));
    lenient["allowPathParameters"] = json!(true);
    let e = engine(lenient);
    let d = with_uri(&e, &get("/api/x;v=1"), ADMIN);
    assert!(d.allowed(), "{d:?}");
}

#[test]
fn double_slash_does_not_skip_a_certificate_rule() {
    let e = engine(json!({"certificateRules": [{
        "name": "admin-short-lived",
        "to": [{"operation": {"paths": ["/admin/*"]}}],
        "require": {"maxLifetime": "1h"}
    }]}));
    let long_lived = CertFacts { not_before: NOW - 86_400, not_after: NOW + 86_400, ..leaf() };
    for path in ["//admin/users", "/admin//users", "/x/../admin/users"] {
        let d = with_cert(&e, &get(path), long_lived.clone());
        assert_eq!(d.reason(), Some(Reason::LifetimeTooLong), "{path}");
        assert_eq!(d.policy.as_deref(), Some("admin-short-lived"));
    }
}

#[test]
fn reject_mode_refuses_what_rewrite_would_change() {
    let mut policy = deny_paths(json!(["/admin*"]));
    policy["pathNormalization"] = json!("reject");
    let e = engine(policy);
    assert_eq!(with_uri(&e, &get("//admin"), ADMIN).reason(), Some(Reason::InvalidPath));
    let d = with_uri(&e, &get("/a/b?x=1"), ADMIN);
    assert!(d.allowed());
    assert_eq!(d.path_rewrite, None);
}

#[test]
fn none_mode_matches_the_path_as_received() {
    let mut policy = deny_paths(json!(["/admin*"]));
    policy["pathNormalization"] = json!("none");
    let e = engine(policy);
    let d = with_uri(&e, &get("//admin"), ADMIN);
    assert!(d.allowed(), "none trusts Envoy's own normalization");
    assert_eq!(d.path_rewrite, None);
}

#[test]
fn allowed_path_is_forwarded_in_normal_form_with_its_query() {
    let e = engine(json!({"policies": [{"name": "p", "rules": [{"to": [{"operation": {"paths": ["/a/b/c"]}}]}]}]}));
    let d = with_uri(&e, &get("/a/./b//c?x=1&y=%2F"), ADMIN);
    assert!(d.allowed(), "{d:?}");
    assert_eq!(d.path_rewrite.as_deref(), Some("/a/b/c?x=1&y=%2F"));
}

#[test]
fn not_paths_allow_cannot_be_opened_by_a_forgotten_path() {
    // An ALLOW with only notPaths once matched every request because the glue passed "" for a
    // path it had not fetched. The engine now asks for the path itself.
    let e = engine(json!({"policies": [{"name": "p", "rules": [{"to": [{"operation": {"notPaths": ["/admin*"]}}]}]}]}));
    assert_eq!(with_uri(&e, &get("/admin"), ADMIN).reason(), Some(Reason::NoMatchingAllow));
    assert_eq!(with_uri(&e, &get("//admin"), ADMIN).reason(), Some(Reason::NoMatchingAllow));
    assert!(with_uri(&e, &get("/api"), ADMIN).allowed());
    assert_eq!(with_uri(&e, &get(""), ADMIN).reason(), Some(Reason::InvalidPath), "a missing :path");
}

#[test]
fn dry_run_never_rewrites_and_reports_invalid_path_as_would_deny() {
    let mut policy = deny_paths(json!(["/admin*"]));
    policy["mode"] = json!("dryRun");
    let e = engine(policy);
    let d = with_uri(&e, &get("/admin/..%2Fx"), ADMIN);
    assert!(d.allowed() && d.dry_run());
    assert_eq!(d.reason(), Some(Reason::InvalidPath));
    let d = with_uri(&e, &get("//admin"), ADMIN);
    assert!(d.allowed() && d.dry_run());
    assert_eq!(d.reason(), Some(Reason::DeniedByPolicy), "evaluated on the normal form");
    assert_eq!(d.path_rewrite, None);
}

#[test]
fn path_patterns_not_in_normal_form_are_refused() {
    assert_config_error(deny_paths(json!(["/api//x"])), "policies[0].rules[0].to[0].operation.paths[0]");
    assert_config_error(deny_paths(json!(["/%61dmin"])), "policies[0].rules[0].to[0].operation.paths[0]");
    assert_config_error(deny_paths(json!(["/a/../b"])), "policies[0].rules[0].to[0].operation.paths[0]");
    assert_config_error(deny_paths(json!(["/a%2fb"])), "policies[0].rules[0].to[0].operation.paths[0]");
    engine(deny_paths(json!(["/.well-known/*", "*.php", "/api/.*"])));
}

// Rows 5-8, 15, 16: identities from different sources never collide.

#[test]
fn common_name_never_becomes_a_mesh_principal_by_default() {
    let e = engine(allow_principal("cluster.local/ns/prod/sa/admin"));
    let cn_only = CertFacts {
        subject: "CN=cluster.local/ns/prod/sa/admin".to_owned(),
        subject_cn: vec!["cluster.local/ns/prod/sa/admin".to_owned()],
        uri_sans: vec![],
        ..leaf()
    };
    let d = with_cert(&e, &get("/"), cn_only.clone());
    assert_eq!(d.reason(), Some(Reason::NoMatchingAllow));
    assert_eq!(d.principal(), None);
    // Opting in to subject identities does not help: a CN with `/` is refused.
    let mut policy = allow_principal("cluster.local/ns/prod/sa/admin");
    policy["identity"] = json!(["subject"]);
    assert_eq!(with_cert(&engine(policy), &get("/"), cn_only).reason(), Some(Reason::InvalidIdentity));
}

#[test]
fn linkerd_dns_name_is_not_a_principal_by_default() {
    let mut policy = allow_principal("cluster.local/ns/prod/sa/admin");
    policy["trustDomains"] = json!(["cluster.local"]);
    let e = engine(policy);
    let linkerd = CertFacts {
        uri_sans: vec![],
        dns_sans: vec!["admin.prod.serviceaccount.identity.linkerd.cluster.local".to_owned()],
        ..leaf()
    };
    let d = with_cert(&e, &get("/"), linkerd);
    assert!(!d.allowed());
    assert_eq!(d.principal(), None);
}

#[test]
fn slash_in_a_dns_name_never_builds_a_principal() {
    let mut policy = json!({"identity": ["dns"], "policies": [{"name": "p", "rules": [{"from": [{"source": {"principals": ["cluster.local/ns/prod/*"]}}]}]}]});
    policy["mtls"] = json!("strict");
    let e = engine(policy);
    let forged = CertFacts {
        uri_sans: vec![],
        dns_sans: vec!["x.y.serviceaccount.identity.l.cluster.local/ns/prod/sa/admin".to_owned()],
        ..leaf()
    };
    assert_eq!(with_cert(&e, &get("/"), forged).reason(), Some(Reason::InvalidIdentity));
}

#[test]
fn trailing_dot_dns_name_cannot_slip_past_a_deny() {
    let e = engine(json!({"identity": ["dns"], "policies": [
        {"name": "deny-admin", "action": "DENY", "rules": [{"from": [{"source": {"principals": ["cluster.local/ns/prod/sa/admin"]}}]}]},
        {"name": "allow-prod", "rules": [{"from": [{"source": {"namespaces": ["prod"]}}]}]}
    ]}));
    let dotted = CertFacts {
        uri_sans: vec![],
        dns_sans: vec!["admin.prod.serviceaccount.identity.linkerd.cluster.local.".to_owned()],
        ..leaf()
    };
    assert_eq!(with_cert(&e, &get("/"), dotted).reason(), Some(Reason::InvalidIdentity));
    let plain = CertFacts {
        uri_sans: vec![],
        dns_sans: vec!["admin.prod.serviceaccount.identity.linkerd.cluster.local".to_owned()],
        ..leaf()
    };
    assert_eq!(with_cert(&e, &get("/"), plain).reason(), Some(Reason::DeniedByPolicy));
}

#[test]
fn crlf_in_a_common_name_never_reaches_the_identity_header() {
    let mut policy = json!({"identity": ["subject"]});
    policy["mtls"] = json!("strict");
    let e = engine(policy);
    let injected = "web\r\nx-peerguard-principal: cluster.local/ns/prod/sa/admin";
    let cert = CertFacts { uri_sans: vec![], subject_cn: vec![injected.to_owned()], ..leaf() };
    let d = with_cert(&e, &get("/"), cert);
    assert_eq!(d.reason(), Some(Reason::InvalidIdentity));
    assert_eq!(d.principal(), None);
    // Envoy's subject attribute renders the same CN with hex escapes.
    let attrs = PeerAttributes {
        uri_san: None,
        dns_san: None,
        subject: Some(r"CN=web\0D\0Ax-peerguard-principal: a".to_owned()),
        several_spiffe_uris: false,
    };
    assert_eq!(decide(&e, &get("/"), &Peer::Attributes(&attrs)).reason(), Some(Reason::InvalidIdentity));
}

#[test]
fn escaped_plus_in_envoy_subject_does_not_split_the_common_name() {
    let e = engine(
        json!({"identity": ["subject"], "policies": [{"name": "p", "rules": [{"from": [{"source": {"principals": ["admin"]}}]}]}]}),
    );
    let attrs = PeerAttributes {
        uri_san: None,
        dns_san: None,
        subject: Some(r"CN=admin\+O=x".to_owned()),
        several_spiffe_uris: false,
    };
    let d = decide(&e, &get("/"), &Peer::Attributes(&attrs));
    assert_eq!(d.principal(), Some("admin+O=x"));
    assert_eq!(d.reason(), Some(Reason::NoMatchingAllow));
    let two = PeerAttributes {
        uri_san: None,
        dns_san: None,
        subject: Some("CN=admin+CN=other".to_owned()),
        several_spiffe_uris: false,
    };
    assert_eq!(decide(&e, &get("/"), &Peer::Attributes(&two)).reason(), Some(Reason::InvalidIdentity));
}

#[test]
fn trust_domain_id_without_path_is_invalid_identity() {
    let e = engine(json!({}));
    assert_eq!(with_uri(&e, &get("/"), "spiffe://cluster.local").reason(), Some(Reason::InvalidIdentity));
}

// Row 9: repeated headers.

#[test]
fn second_copy_of_a_header_cannot_hide_a_denied_value() {
    let e = engine(json!({"policies": [{"name": "deny-admin-role", "action": "DENY", "rules": [{"when": [
        {"key": "request.headers[x-role]", "values": ["*admin"]}]}]}]}));
    for order in [["user", "admin"], ["admin", "user"]] {
        let r = get("/").header("x-role", order[0]).header("x-role", order[1]);
        assert_eq!(with_uri(&e, &r, ADMIN).reason(), Some(Reason::DeniedByPolicy), "{order:?}");
    }
    let allow = engine(json!({"policies": [{"name": "p", "rules": [{"when": [
        {"key": "request.headers[x-role]", "values": ["admin"]}]}]}]}));
    let r = get("/").header("x-role", "admin").header("x-role", "user");
    assert_eq!(with_uri(&allow, &r, ADMIN).reason(), Some(Reason::NoMatchingAllow), "joined value is admin,user");
    assert!(with_uri(&allow, &get("/").header("x-role", "admin"), ADMIN).allowed());
}

#[test]
fn forged_identity_header_is_absent_to_conditions() {
    let e = engine(json!({"policies": [{"name": "p", "rules": [{"when": [
        {"key": "request.headers[x-peerguard-principal]", "values": ["*"]}]}]}]}));
    let r = get("/").header("x-peerguard-principal", "cluster.local/ns/prod/sa/admin");
    assert_eq!(with_uri(&e, &r, ADMIN).reason(), Some(Reason::NoMatchingAllow));
}

// Row 10: Istio's namespace rule.

#[test]
fn nested_spiffe_path_is_in_the_namespace_istio_says() {
    let e = engine(
        json!({"policies": [{"name": "deny-prod", "action": "DENY", "rules": [{"from": [{"source": {"namespaces": ["prod"]}}]}]}]}),
    );
    for uri in [
        "spiffe://cluster.local/ns/prod/sa/admin/pod/x",
        "spiffe://cluster.local/k8s/ns/prod/sa/admin",
        "spiffe://ns/prod/x",
    ] {
        assert_eq!(with_uri(&e, &get("/"), uri).reason(), Some(Reason::DeniedByPolicy), "{uri}");
    }
    assert!(with_uri(&e, &get("/"), "spiffe://cluster.local/ns/production/sa/x").allowed());
    let not_ns = engine(
        json!({"policies": [{"name": "only-dev", "rules": [{"from": [{"source": {"notNamespaces": ["prod"]}}]}]}]}),
    );
    assert_eq!(
        with_uri(&not_ns, &get("/"), "spiffe://cluster.local/k8s/ns/prod/sa/x").reason(),
        Some(Reason::NoMatchingAllow)
    );
}

// Row 11: absent attributes.

#[test]
fn plaintext_meets_a_deny_with_not_values_on_a_certificate_key() {
    let e = engine(
        json!({"mtls": "permissive", "policies": [{"name": "only-good-ca", "action": "DENY", "rules": [{"when": [
        {"key": "cert.issuer.cn", "notValues": ["good-ca"]}]}]}]}),
    );
    let d = decide(&e, &get("/"), &Peer::None);
    assert_eq!(d.reason(), Some(Reason::DeniedByPolicy));
    let allow_not = engine(json!({"mtls": "permissive", "policies": [{"name": "p", "rules": [{"when": [
        {"key": "cert.issuer.cn", "notValues": ["bad-ca"]}]}]}]}));
    assert!(decide(&allow_not, &get("/"), &Peer::None).allowed(), "Istio: a not* field always matches an absent value");
    let allow_pos = engine(json!({"mtls": "permissive", "policies": [{"name": "p", "rules": [{"when": [
        {"key": "cert.issuer.cn", "values": ["*"]}]}]}]}));
    assert_eq!(decide(&allow_pos, &get("/"), &Peer::None).reason(), Some(Reason::NoMatchingAllow));
}

// Row 12: validation like Istio's, and Istio's port forms.

#[test]
fn empty_source_or_operation_is_refused() {
    assert_config_error(
        json!({"policies": [{"name": "p", "action": "DENY", "rules": [{"from": [{"source": {}}]}]}]}),
        "policies[0].rules[0].from[0].source",
    );
    assert_config_error(
        json!({"policies": [{"name": "p", "rules": [{"to": [{"operation": {}}]}]}]}),
        "policies[0].rules[0].to[0].operation",
    );
}

#[test]
fn deny_or_audit_without_rules_is_refused() {
    assert_config_error(json!({"policies": [{"name": "p", "action": "DENY"}]}), "policies[0].rules");
    assert_config_error(json!({"policies": [{"name": "p", "action": "AUDIT", "rules": []}]}), "policies[0].rules");
    engine(json!({"policies": [{"name": "p", "action": "ALLOW", "rules": []}]}));
    engine(json!({"policies": []}));
}

#[test]
fn upper_case_trust_domain_is_refused() {
    assert_config_error(json!({"trustDomains": ["Cluster.Local"]}), "trustDomains[0]");
    assert_config_error(
        json!({"policies": [{"name": "p", "rules": [{"from": [{"source": {"trustDomains": ["Cluster.Local"]}}]}]}]}),
        "policies[0].rules[0].from[0].source.trustDomains[0]",
    );
}

#[test]
fn empty_lists_never_switch_a_check_off() {
    assert_config_error(json!({"certificate": {"certPins": []}}), "certificate.certPins");
    assert_config_error(json!({"certificate": {"spkiPins": []}}), "certificate.spkiPins");
    let rule = |r: Value| json!({"policies": [{"name": "p", "rules": [r]}]});
    assert_config_error(rule(json!({"from": []})), "policies[0].rules[0].from");
    assert_config_error(rule(json!({"to": []})), "policies[0].rules[0].to");
    assert_config_error(rule(json!({"when": []})), "policies[0].rules[0].when");
    assert_config_error(
        rule(json!({"from": [{"source": {"principals": []}}]})),
        "policies[0].rules[0].from[0].source.principals",
    );
    assert_config_error(
        rule(json!({"when": [{"key": "request.headers[x]", "values": []}]})),
        "policies[0].rules[0].when[0].values",
    );
}

#[test]
fn port_with_leading_zeros_is_the_same_port() {
    let e = engine(
        json!({"policies": [{"name": "deny-8080", "action": "DENY", "rules": [{"to": [{"operation": {"ports": ["08080"]}}]}]}]}),
    );
    assert_eq!(with_uri(&e, &get("/").port(Some(8080)), ADMIN).reason(), Some(Reason::DeniedByPolicy));
    let when = engine(json!({"policies": [{"name": "deny-8080", "action": "DENY", "rules": [{"when": [
        {"key": "destination.port", "values": ["08080"]}]}]}]}));
    assert_eq!(with_uri(&when, &get("/").port(Some(8080)), ADMIN).reason(), Some(Reason::DeniedByPolicy));
    for bad in [json!(["+8080"]), json!(["65536"]), json!(["80-90"]), json!([70000])] {
        assert_config_error(
            json!({"policies": [{"name": "p", "action": "DENY", "rules": [{"to": [{"operation": {"ports": bad}}]}]}]}),
            "policies[0].rules[0].to[0].operation.ports[0]",
        );
    }
    engine(
        json!({"policies": [{"name": "p", "action": "DENY", "rules": [{"to": [{"operation": {"ports": ["0"]}}]}]}]}),
    );
}

// Hosts: one trailing dot, host:port.

#[test]
fn trailing_dot_host_cannot_slip_past_a_deny() {
    let e = engine(
        json!({"policies": [{"name": "deny-admin-host", "action": "DENY", "rules": [{"to": [{"operation": {"hosts": ["admin.example.com"]}}]}]}]}),
    );
    for host in ["admin.example.com.", "ADMIN.example.com.", "admin.example.com.:8443", "admin.example.com:8443"] {
        assert_eq!(with_uri(&e, &get("/").host(host), ADMIN).reason(), Some(Reason::DeniedByPolicy), "{host}");
    }
    assert!(with_uri(&e, &get("/").host("admin.example.com.."), ADMIN).allowed(), "only one dot is removed");
}

// Review findings: trial policies never change traffic; per-route certificate rules; order.

#[test]
fn dry_run_policy_reading_paths_never_denies_or_rewrites() {
    for policy in [
        json!({"policies": [{"name": "trial", "action": "DENY", "dryRun": true, "rules": [{"to": [{"operation": {"paths": ["/admin*"]}}]}]}]}),
        json!({"policies": [{"name": "watch", "action": "AUDIT", "rules": [{"to": [{"operation": {"paths": ["/admin*"]}}]}]}]}),
    ] {
        let e = engine(policy.clone());
        let d = with_uri(&e, &get("/admin/..%2Fx"), ADMIN);
        assert!(d.allowed(), "{policy}: {d:?}");
        assert_eq!((d.reason(), d.dry_run()), (Some(Reason::InvalidPath), true), "{policy}");
        let d = with_uri(&e, &get("/a/./b"), ADMIN);
        assert!(d.allowed());
        assert_eq!(d.path_rewrite, None, "{policy}: a trial policy never rewrites");
    }
}

#[test]
fn certificate_rule_without_a_certificate_denies_only_its_own_routes() {
    let e = engine(json!({"certificateRules": [{
        "name": "admin-short-lived",
        "to": [{"operation": {"paths": ["/admin/*"]}}],
        "require": {"maxLifetime": "1h"}
    }]}));
    let d = with_uri(&e, &get("/admin/x"), ADMIN);
    assert_eq!(d.reason(), Some(Reason::CertificateUnavailable));
    assert_eq!(d.policy.as_deref(), Some("admin-short-lived"));
    assert!(with_uri(&e, &get("/api/x"), ADMIN).allowed());
}

#[test]
fn weak_key_is_reported_in_decision_order() {
    let e = engine(json!({"certificate": {"maxLifetime": "24h"}}));
    let weak_and_long =
        CertFacts { key: KeyKind::Rsa { bits: 1024 }, not_before: NOW - 86_400, not_after: NOW + 86_400, ..leaf() };
    assert_eq!(with_cert(&e, &get("/"), weak_and_long.clone()).reason(), Some(Reason::LifetimeTooLong));
    let weak = CertFacts { key: KeyKind::Rsa { bits: 1024 }, ..leaf() };
    assert_eq!(with_cert(&e, &get("/"), weak.clone()).reason(), Some(Reason::KeyNotAllowed));
    assert_eq!(
        with_cert(&engine(json!({})), &get("/"), weak).reason(),
        Some(Reason::KeyNotAllowed),
        "floor without a certificate block"
    );
}

#[test]
fn host_pattern_with_a_trailing_dot_is_refused() {
    assert_config_error(
        json!({"policies": [{"name": "d", "action": "DENY", "rules": [{"to": [{"operation": {"hosts": ["admin.example.com."]}}]}]}]}),
        "policies[0].rules[0].to[0].operation.hosts[0]",
    );
    assert_config_error(
        json!({"policies": [{"name": "d", "action": "DENY", "rules": [{"to": [{"operation": {"notHosts": ["admin.example.com.:8443"]}}]}]}]}),
        "policies[0].rules[0].to[0].operation.notHosts[0]",
    );
    engine(
        json!({"policies": [{"name": "d", "action": "DENY", "rules": [{"to": [{"operation": {"hosts": ["*.example.com", "admin.*"]}}]}]}]}),
    );
}

#[test]
fn a_second_spiffe_uri_san_seen_only_in_xfcc_makes_the_attribute_identity_ambiguous() {
    let e = engine(
        json!({"policies": [{"name": "p", "rules": [{"from": [{"source": {"principals": ["cluster.local/ns/a/sa/x"]}}]}]}]}),
    );
    let first_only = PeerAttributes {
        uri_san: Some("spiffe://cluster.local/ns/a/sa/x".to_owned()),
        dns_san: None,
        subject: None,
        several_spiffe_uris: false,
    };
    assert!(decide(&e, &get("/"), &Peer::Attributes(&first_only)).allowed());
    let several = PeerAttributes { several_spiffe_uris: true, ..first_only };
    let d = decide(&e, &get("/"), &Peer::Attributes(&several));
    assert_eq!(d.reason(), Some(Reason::InvalidIdentity));
    assert_eq!(d.principal(), None);
}
