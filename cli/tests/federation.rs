//! `peerguard cert ca --trust-domain` makes a second trust domain's CA and bundle, and `peerguard
//! check` decides federation (`trustBundles`, `trustDomainAliases`) and `l5d-client-id` behind
//! Linkerd as the filter does.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;

use common::{ok, peerguard, s};
use serde_json::{json, Value};

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap()
}

/// `check` with `policy` (written as JSON) and `args`: the exit code and the reason.
fn check(dir: &Path, policy: &Value, args: &[&str]) -> (i32, Value) {
    let path = dir.join("policy.json");
    std::fs::write(&path, policy.to_string()).unwrap();
    let mut all = vec!["check", "--policy", s(&path)];
    all.extend_from_slice(args);
    let out = peerguard(&all);
    (out.code, out.json())
}

#[test]
fn a_second_trust_domain_ca_its_bundle_and_the_cross_domain_mint_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(&["cert", "ca", "--out-dir", s(d), "--name", "local-ca", "--trust-domain", "cluster.local"]);
    let partner = ok(&[
        "cert",
        "ca",
        "--out-dir",
        s(d),
        "--name",
        "partner-ca",
        "--org",
        "partner.example",
        "--trust-domain",
        "partner.example",
    ]);
    assert!(partner.stdout.contains("spiffe://partner.example"), "{}", partner.stdout);
    let bundle: Value = serde_json::from_str(&read(d, "partner-ca-bundle.json")).unwrap();
    let key = &bundle["keys"][0];
    assert_eq!(
        (key["use"].as_str(), key["kty"].as_str(), key["crv"].as_str()),
        (Some("x509-svid"), Some("EC"), Some("P-256"))
    );
    assert_eq!(key["x5c"].as_array().unwrap().len(), 1);
    assert_eq!(key["x"].as_str().unwrap().len(), 43, "32 bytes, base64url without padding");

    let (partner_ca, partner_key) = (d.join("partner-ca.pem"), d.join("partner-ca-key.pem"));
    let (local_ca, local_key) = (d.join("local-ca.pem"), d.join("local-ca-key.pem"));
    let issue = |ca: &Path, key: &Path, name: &str, spiffe: &str| {
        ok(&[
            "cert",
            "issue",
            "--ca",
            s(ca),
            "--ca-key",
            s(key),
            "--out-dir",
            s(d),
            "--name",
            name,
            "--spiffe",
            spiffe,
        ]);
        d.join(format!("{name}.pem"))
    };
    let billing = issue(&partner_ca, &partner_key, "billing", "spiffe://partner.example/ns/billing/sa/api");
    let mint = issue(&partner_ca, &partner_key, "mint", "spiffe://cluster.local/ns/prod/sa/admin");
    let admin = issue(&local_ca, &local_key, "admin", "spiffe://cluster.local/ns/prod/sa/admin");

    let policy = json!({
        "certificate": {"trustBundles": {
            "cluster.local": [read(d, "local-ca.pem")],
            "partner.example": [read(d, "partner-ca-bundle.json")],
        }},
        "denyResponse": {"exposeReason": true},
    });
    let (code, v) = check(d, &policy, &["--cert", s(&billing)]);
    assert_eq!((code, v["principal"].as_str()), (0, Some("partner.example/ns/billing/sa/api")), "{v}");
    let (code, v) = check(d, &policy, &["--cert", s(&admin)]);
    assert_eq!(code, 0, "{v}");
    let (code, v) = check(d, &policy, &["--cert", s(&mint)]);
    assert_eq!((code, v["reason"].as_str()), (1, Some("untrusted_chain")), "{v}");
    // One pool of both anchors is what lets the mint through.
    let pool = json!({"certificate": {"trustAnchors": [read(d, "local-ca.pem"), read(d, "partner-ca.pem")]}});
    let (code, v) = check(d, &pool, &["--cert", s(&mint)]);
    assert_eq!((code, v["principal"].as_str()), (0, Some("cluster.local/ns/prod/sa/admin")), "{v}");

    let bad = peerguard(&["cert", "ca", "--out-dir", s(d), "--name", "x", "--trust-domain", "Partner.Example"]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(bad.stderr.contains("--trust-domain"), "{}", bad.stderr);
}

#[test]
fn an_alias_is_allowed_what_its_main_domain_is_and_a_lookalike_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(&["cert", "ca", "--out-dir", s(d), "--name", "ca"]);
    let policy = json!({
        "trustDomainAliases": ["*.partner.example"],
        "policies": [{"name": "billing", "rules": [{"from": [{"source": {"principals": ["cluster.local/ns/billing/sa/api"]}}]}]}],
        "denyResponse": {"exposeReason": true},
    });
    for (td, allowed) in [
        ("cluster.local", true),
        ("eu.partner.example", true),
        ("evil-partner.example", false),
        ("partner.example", false),
    ] {
        let name = td.replace('.', "-");
        ok(&[
            "cert",
            "issue",
            "--ca",
            s(&d.join("ca.pem")),
            "--ca-key",
            s(&d.join("ca-key.pem")),
            "--out-dir",
            s(d),
            "--name",
            &name,
            "--trust-domain",
            td,
            "--workload",
            "billing/api",
        ]);
        let (code, v) = check(d, &policy, &["--cert", s(&d.join(format!("{name}.pem")))]);
        assert_eq!(code == 0, allowed, "{td}: {v}");
        if allowed {
            assert_eq!(v["principal"].as_str(), Some("cluster.local/ns/billing/sa/api"), "{v}");
        }
    }
}

#[test]
fn check_behind_linkerd_believes_l5d_client_id_only_from_the_proxy() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let policy = json!({
        "identity": ["linkerdHeader"],
        "mtls": "permissive",
        "policies": [{"name": "billing", "rules": [{"from": [{"source": {"principals": ["cluster.local/ns/billing/sa/api"]}}]}]}],
        "denyResponse": {"exposeReason": true},
    });
    let id = "api.billing.serviceaccount.identity.linkerd.cluster.local";
    let (code, v) = check(d, &policy, &["--l5d-client-id", id]);
    assert_eq!((code, v["principal"].as_str()), (0, Some("cluster.local/ns/billing/sa/api")), "{v}");
    let (code, v) = check(d, &policy, &["--l5d-client-id", id, "--source-address", "10.0.0.7:41000"]);
    assert_eq!((code, v["reason"].as_str(), v["principal"].as_str()), (1, Some("no_matching_allow"), None), "{v}");
    let (code, v) = check(d, &policy, &["--l5d-client-id", id, "--l5d-client-id", id]);
    assert_eq!((code, v["reason"].as_str()), (1, Some("invalid_identity")), "{v}");
    let (code, v) = check(d, &policy, &["--l5d-client-id", ""]);
    assert_eq!((code, v["reason"].as_str()), (1, Some("invalid_identity")), "{v}");
    let strict = json!({"identity": ["linkerdHeader"], "denyResponse": {"exposeReason": true}});
    let (code, v) = check(d, &strict, &[]);
    assert_eq!((code, v["reason"].as_str()), (1, Some("no_peer_certificate")), "{v}");
    let with_cert = json!({"identity": ["linkerdHeader"], "certificate": {"maxLifetime": "24h"}});
    let (code, v) = check(d, &with_cert, &["--l5d-client-id", id]);
    assert_eq!((code, v["reason"].as_str()), (1, Some("certificate_unavailable")), "{v}");
}
