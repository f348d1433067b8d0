//! The hardening issue's table, row by row, through the real `peerguard` binary: each way around
//! the filter is now a deny with the reason the policy reference names (or a validate error),
//! with certificates made by `peerguard cert` and the shipped example policies where a row used one.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{ok, peerguard};
use peerguard_e2e::repo_root;
use serde_json::Value;
use tempfile::TempDir;

/// `peerguard check` with `args`; returns the exit code and the decision JSON.
fn check(args: &[&str]) -> (i32, Value) {
    let out = peerguard(&[&["check"], args].concat());
    (out.code, out.json())
}

fn assert_deny(args: &[&str], reason: &str) -> Value {
    let (code, v) = check(args);
    assert_eq!(code, 1, "{args:?}: {v}");
    assert_eq!(v["reason"], reason, "{args:?}: {v}");
    v
}

/// A CA and workload certificates made with `peerguard cert`.
struct Pki {
    dir: TempDir,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        // Subject O=cluster.local, as Istio's self-signed CA (the shipped policies pin that issuer).
        ok(&["cert", "ca", "--out-dir", dir.path().to_str().unwrap(), "--name", "ca", "--cn", ""]);
        Pki { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_str().unwrap().to_owned()
    }

    /// Issues `<name>.pem` with extra `peerguard cert issue` flags.
    fn issue(&self, name: &str, flags: &[&str]) -> String {
        let (ca, key, out) = (self.path("ca.pem"), self.path("ca-key.pem"), self.path(""));
        let base = ["cert", "issue", "--ca", &ca, "--ca-key", &key, "--out-dir", &out, "--name", name];
        ok(&[&base[..], flags].concat());
        self.path(&format!("{name}.pem"))
    }

    fn policy(&self, name: &str, json: &str) -> String {
        let p = self.path(name);
        std::fs::write(&p, json).unwrap();
        p
    }
}

const DENY_ADMIN: &str = r#"{"policies": [{"name": "deny-admin", "action": "DENY", "rules": [{"to": [{"operation": {"paths": ["/admin*"]}}]}]}]}"#;

#[test]
fn rows_1_to_3_paths_escape_no_deny() {
    let pki = Pki::new();
    let cert = pki.issue("web", &["--spiffe", "spiffe://cluster.local/ns/prod/sa/web"]);
    let policy = pki.policy("deny-admin.json", DENY_ADMIN);
    for path in ["/admin/..%2Fusers", "/admin\\..\\x", "/api/.;/admin"] {
        let v = assert_deny(&["--policy", &policy, "--cert", &cert, "--path", path], "invalid_path");
        assert!(v["pathError"].is_string(), "{v}");
    }
    // Normalized and forwarded as /x: the upstream receives what was matched.
    let (code, v) = check(&["--policy", &policy, "--cert", &cert, "--path", "/admin/%2e%2e/x"]);
    assert_eq!((code, v["forwardedPath"].as_str()), (0, Some("/x")), "{v}");
    // Row 2 with the shipped Istio example policy and the curl workload's identity.
    let shipped = repo_root().join("istio/peerguard/policy.yaml");
    let curl = pki.issue("curl", &["--spiffe", "spiffe://cluster.local/ns/client/sa/curl", "--ttl", "24h"]);
    let v =
        assert_deny(&["--policy", shipped.to_str().unwrap(), "--cert", &curl, "--path", "//admin"], "denied_by_policy");
    assert!(v["policy"].is_string());
    let double = pki.policy(
        "deny-api-admin.json",
        r#"{"policies": [{"name": "d", "action": "DENY", "rules": [{"to": [{"operation": {"paths": ["/api/admin*"]}}]}]}]}"#,
    );
    assert_deny(&["--policy", &double, "--cert", &cert, "--path", "/api//admin"], "denied_by_policy");
}

#[test]
fn row_4_certificate_rule_applies_to_double_slash() {
    let pki = Pki::new();
    let cert = pki.issue("web", &["--spiffe", "spiffe://cluster.local/ns/prod/sa/web", "--ttl", "24h"]);
    let policy = pki.policy(
        "admin-rule.json",
        r#"{"certificateRules": [{"name": "admin-short", "to": [{"operation": {"paths": ["/admin/*"]}}], "require": {"maxLifetime": "1h"}}]}"#,
    );
    assert_deny(&["--policy", &policy, "--cert", &cert, "--path", "//admin/users"], "lifetime_too_long");
}

#[test]
fn rows_5_to_8_identities_never_collide() {
    let pki = Pki::new();
    let allow_admin = pki.policy(
        "allow-admin.json",
        r#"{"trustDomains": ["cluster.local"], "policies": [{"name": "p", "rules": [{"from": [{"source": {"principals": ["cluster.local/ns/prod/sa/admin"]}}]}]}]}"#,
    );
    let cn = pki.issue("cn", &["--cn", "cluster.local/ns/prod/sa/admin"]);
    let v = assert_deny(&["--policy", &allow_admin, "--cert", &cn], "untrusted_trust_domain");
    assert_eq!(v["principal"], Value::Null);
    let linkerd = pki.issue("l5d", &["--dns", "admin.prod.serviceaccount.identity.linkerd.cluster.local", "--cn", "x"]);
    let v = assert_deny(&["--policy", &allow_admin, "--cert", &linkerd], "untrusted_trust_domain");
    assert_eq!(v["principal"], Value::Null, "DNS identities are opt-in");

    let dns_prefix = pki.policy(
        "dns.json",
        r#"{"identity": ["dns"], "policies": [{"name": "p", "rules": [{"from": [{"source": {"principals": ["cluster.local/ns/prod/*"]}}]}]}]}"#,
    );
    let slash =
        pki.issue("slash", &["--dns", "x.y.serviceaccount.identity.l.cluster.local/ns/prod/sa/admin", "--cn", "x"]);
    assert_deny(&["--policy", &dns_prefix, "--cert", &slash], "invalid_identity");
    let dot = pki.issue("dot", &["--dns", "admin.prod.serviceaccount.identity.linkerd.cluster.local.", "--cn", "x"]);
    assert_deny(&["--policy", &dns_prefix, "--cert", &dot], "invalid_identity");
}

#[test]
fn row_9_repeated_header() {
    let pki = Pki::new();
    let cert = pki.issue("web", &["--spiffe", "spiffe://cluster.local/ns/prod/sa/web"]);
    let policy = pki.policy(
        "role.json",
        r#"{"policies": [{"name": "d", "action": "DENY", "rules": [{"when": [{"key": "request.headers[x-role]", "values": ["*admin"]}]}]}]}"#,
    );
    let args = ["--policy", &policy, "--cert", &cert, "--header", "x-role: user", "--header", "x-role: admin"];
    assert_deny(&args, "denied_by_policy");
}

#[test]
fn row_10_nested_namespaces() {
    let pki = Pki::new();
    let policy = pki.policy(
        "ns.json",
        r#"{"policies": [{"name": "d", "action": "DENY", "rules": [{"from": [{"source": {"namespaces": ["prod"]}}]}]}]}"#,
    );
    for id in ["spiffe://cluster.local/ns/prod/sa/admin/pod/x", "spiffe://cluster.local/k8s/ns/prod/sa/admin"] {
        let cert = pki.issue("nested", &["--spiffe", id]);
        assert_deny(&["--policy", &policy, "--cert", &cert], "denied_by_policy");
    }
}

#[test]
fn row_11_plaintext_and_a_deny_on_an_absent_certificate_key() {
    let pki = Pki::new();
    let policy = pki.policy(
        "good-ca.json",
        r#"{"mtls": "permissive", "policies": [{"name": "d", "action": "DENY", "rules": [{"when": [{"key": "cert.issuer.cn", "notValues": ["good-ca"]}]}]}]}"#,
    );
    assert_deny(&["--policy", &policy], "denied_by_policy");
}

#[test]
fn row_12_validate_refuses_what_istio_refuses() {
    let pki = Pki::new();
    for (doc, path) in [
        (
            r#"{"policies": [{"name": "p", "action": "DENY", "rules": [{"from": [{"source": {}}]}]}]}"#,
            "policies[0].rules[0].from[0].source",
        ),
        (r#"{"policies": [{"name": "p", "action": "DENY"}]}"#, "policies[0].rules"),
        (r#"{"trustDomains": ["Cluster.Local"]}"#, "trustDomains[0]"),
        (r#"{"certificate": {"certPins": []}}"#, "certificate.certPins"),
    ] {
        let file = pki.policy("bad.json", doc);
        let out = peerguard(&["validate", &file]);
        assert_eq!(out.code, 2, "{doc}");
        assert!(out.stderr.contains(path), "{doc}: {}", out.stderr);
    }
    let port = pki.policy(
        "port.json",
        r#"{"policies": [{"name": "d", "action": "DENY", "rules": [{"to": [{"operation": {"ports": ["08080"]}}]}]}]}"#,
    );
    let cert = pki.issue("web", &["--spiffe", "spiffe://cluster.local/ns/prod/sa/web"]);
    assert_deny(&["--policy", &port, "--cert", &cert, "--port", "8080"], "denied_by_policy");
}

#[test]
fn rows_15_and_16_common_names_stay_single_and_header_safe() {
    let pki = Pki::new();
    let policy = pki.policy("subject.json", r#"{"identity": ["subject"]}"#);
    let crlf = pki.issue("crlf", &["--cn", "web\r\nx-peerguard-principal: cluster.local/ns/prod/sa/admin"]);
    let v = assert_deny(&["--policy", &policy, "--cert", &crlf], "invalid_identity");
    assert_eq!(v["principal"], Value::Null);
}
