//! The playground's evaluation natively: presets decide as they say, principals become real certificates, errors carry paths.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use peerguard_playground::evaluate::{evaluate, Input, PeerInput, RequestInput};
use peerguard_playground::presets;
use serde_json::Value;

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

fn rfc3339(s: &str) -> i64 {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).unwrap().unix_timestamp()
}

fn input(policy: &str, peer: PeerInput, path: &str) -> Input {
    Input {
        policy: policy.to_owned(),
        peer,
        request: RequestInput {
            method: "GET".into(),
            path: path.into(),
            host: "localhost".into(),
            ..RequestInput::default()
        },
        at: now(),
    }
}

fn principal(p: &str) -> PeerInput {
    PeerInput { kind: "principal".into(), principal: p.into(), ..PeerInput::default() }
}

#[test]
fn every_preset_decides_as_it_says() {
    let all = presets::all();
    assert!(all.len() >= 10);
    for id in ["strict-no-certificate", "other-namespace", "expired", "admin-path"] {
        assert!(all.iter().any(|p| p.id == id), "preset {id} is missing");
    }
    for p in all {
        let i = Input {
            policy: p.policy.to_owned(),
            peer: PeerInput {
                kind: p.peer.kind.into(),
                principal: p.peer.principal.into(),
                issuer: p.peer.issuer.into(),
                pem: p.peer.pem.into(),
                ..PeerInput::default()
            },
            request: RequestInput {
                method: p.request.method.into(),
                path: p.request.path.into(),
                host: p.request.host.into(),
                headers: p.request.headers.into(),
                ..RequestInput::default()
            },
            at: if p.at.is_empty() { now() } else { rfc3339(p.at) },
        };
        let out = evaluate(&i);
        assert!(out.errors.is_empty() && out.input_errors.is_empty(), "{}: {out:?}", p.id);
        let d = out.decision.unwrap();
        assert_eq!(d.decision, p.expect.decision, "{}: {d:?}", p.id);
        assert_eq!(d.reason, p.expect.reason, "{}: {d:?}", p.id);
    }
}

#[test]
fn a_principal_becomes_a_certificate_with_that_spiffe_id() {
    let policy = include_str!("../../envoy/policy.yaml");
    let out = evaluate(&input(policy, principal("cluster.local/ns/frontend/sa/web"), "/api/items"));
    let d = out.decision.as_ref().unwrap();
    assert_eq!((d.decision, d.policy.as_deref()), ("allow", Some("frontend-reads-api")));
    assert_eq!(d.principal.as_deref(), Some("cluster.local/ns/frontend/sa/web"));
    let c = out.certificate.as_ref().unwrap();
    assert_eq!(c.uri_sans, ["spiffe://cluster.local/ns/frontend/sa/web"]);
    assert_eq!(c.issuer, "O=cluster.local");
    assert_eq!(c.subject, "");
    assert_eq!(c.lifetime_secs, 24 * 3600);
    assert_eq!(c.key, "ecdsaP256");
    assert_eq!(c.client_auth, Some(true));
    assert_eq!(c.identity.as_ref().unwrap().trust_domain.as_deref(), Some("cluster.local"));
    assert_eq!(out.matched_rules.len(), 1);
    assert_eq!(out.matched_rules[0].path, "policies[0].rules[0]");
    // The same input gives the same certificate (deterministic keys and signatures).
    let again = evaluate(&input(policy, principal("cluster.local/ns/frontend/sa/web"), "/api/items"));
    assert_eq!(out.generated_pem, again.generated_pem);
    assert!(out.generated_pem.unwrap().starts_with("-----BEGIN CERTIFICATE-----"));
}

#[test]
fn a_cn_principal_from_a_named_issuer_passes_the_front_proxy() {
    let policy = include_str!("../../envoy/front-proxy-policy.yaml");
    let mut peer = principal("alice");
    peer.issuer = "CN=peerguard demo CA,O=cluster.local".into();
    let out = evaluate(&input(policy, peer.clone(), "/"));
    assert_eq!(out.certificate.as_ref().unwrap().issuer, "CN=peerguard demo CA,O=cluster.local");
    assert_eq!(out.decision.unwrap().decision, "allow");
    peer.issuer = "O=elsewhere".into();
    let out = evaluate(&input(policy, peer.clone(), "/"));
    assert_eq!(out.decision.unwrap().reason, Some("issuer_not_allowed"));
    peer.lifetime = "forever".into();
    let out = evaluate(&input(policy, peer, "/"));
    assert_eq!(out.input_errors[0].path, "peer.lifetime");
    assert!(out.decision.is_none());
}

#[test]
fn an_invalid_policy_lists_errors_with_paths_and_refuses_everything() {
    let policy =
        "policies:\n  - name: x\n    action: DENY\n  - name: y\n    rules: [{to: [{operation: {paths: [\"api\"]}}]}]\n";
    let out = evaluate(&input(policy, PeerInput { kind: "none".into(), ..PeerInput::default() }, "/"));
    let paths: Vec<&str> = out.errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["policies[0].rules", "policies[1].rules[0].to[0].operation.paths[0]"], "{out:?}");
    let d = out.decision.unwrap();
    assert_eq!((d.decision, d.reason, d.status), ("deny", Some("config_invalid"), Some(503)));
    assert!(out.summary.is_none());
    // A YAML error names where it is too.
    let out = evaluate(&input("policies: [{name: x, bogus: 1}]", PeerInput::default(), "/"));
    assert!(out.errors[0].message.contains("bogus"), "{out:?}");
}

#[test]
fn request_fields_are_checked_with_their_paths() {
    let policy = "mtls: permissive\npolicies:\n  - name: env\n    rules: [{when: [{key: \"request.headers[x-env]\", values: [prod]}]}]\n";
    let mut i = input(policy, PeerInput::default(), "/");
    i.request.headers = "x-env: prod\n\nnot a header\n".into();
    i.request.port = "99999".into();
    let out = evaluate(&i);
    let paths: Vec<&str> = out.input_errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["request.port", "request.headers (line 3)"]);
    // The valid header still counts.
    assert_eq!(out.decision.unwrap().decision, "allow");
    assert_eq!(out.summary.as_deref(), Some("1 policy, 1 rule, 0 certificate rules (mode enforce, mtls permissive)"));
}

#[test]
fn pasted_pem_facts_and_garbage() {
    let policy = include_str!("../../envoy/policy.yaml");
    let pem = include_str!("../../policy/tests/fixtures/expired.pem");
    let mut i = input(policy, PeerInput { kind: "pem".into(), pem: pem.into(), ..PeerInput::default() }, "/api/items");
    i.at = rfc3339("2030-06-01T12:00:00Z");
    let out = evaluate(&i);
    assert_eq!(out.decision.as_ref().unwrap().reason, Some("expired"));
    let c = out.certificate.unwrap();
    assert_eq!(c.subject, "CN=expired");
    assert_eq!(c.issuer, "CN=intermediate-ca,O=cluster.local");
    assert_eq!(c.not_after, rfc3339("2030-06-01T10:00:00Z"));
    i.peer.pem = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".into();
    let out = evaluate(&i);
    assert_eq!(out.decision.unwrap().reason, Some("invalid_certificate"));
    assert!(out.certificate_error.is_some());
}

#[test]
fn the_json_entry_points_round_trip() {
    let list: Value = serde_json::from_str(&peerguard_playground::presets()).unwrap();
    assert_eq!(list.as_array().unwrap().len(), presets::all().len());
    assert_eq!(list[0]["policyFile"], "envoy/policy.yaml");
    let out: Value = serde_json::from_str(&peerguard_playground::evaluate(
        r#"{"policy": "mtls: permissive", "peer": {"kind": "none"}, "request": {"method": "GET", "path": "/"}, "at": 0}"#,
    ))
    .unwrap();
    assert_eq!(out["decision"]["decision"], "allow");
    let out: Value = serde_json::from_str(&peerguard_playground::evaluate("not json")).unwrap();
    assert_eq!(out["inputErrors"][0]["path"], "(input)");
}
