//! The rule index for every rule shape (exact and prefix principals, namespaces, exact and prefix
//! hosts, exact and prefix paths): with many rules, a request is decided exactly as a scan of
//! every rule decides it. Debug builds also check every answer against that scan inside the
//! engine, so each decision here is compared twice. Runs natively and, through
//! wasm-bindgen-test, in wasm.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use peerguard_policy::{Engine, Peer, PeerAttributes, Request};
use serde_json::{json, Value};

/// `n` ALLOW policies built by `rule(i)`, after `deny` DENY policies.
fn engine(deny: &[Value], n: usize, rule: impl Fn(usize) -> Value) -> Engine {
    let mut policies: Vec<Value> = deny
        .iter()
        .enumerate()
        .map(|(i, r)| json!({"name": format!("deny-{i}"), "action": "DENY", "rules": [r]}))
        .collect();
    policies.extend((0..n).map(|i| json!({"name": format!("allow-{i}"), "action": "ALLOW", "rules": [rule(i)]})));
    Engine::from_json(&json!({"mtls": "permissive", "policies": policies}).to_string()).unwrap()
}

/// The decision's code: "allow", or the deny reason.
fn decide(e: &Engine, principal: Option<&str>, host: &str, path: &str) -> String {
    let attrs = PeerAttributes {
        uri_san: principal.map(|p| format!("spiffe://{p}")),
        dns_san: None,
        subject: None,
        several_spiffe_uris: false,
    };
    let peer = if principal.is_some() { Peer::Attributes(&attrs) } else { Peer::None };
    let headers: Vec<(String, String)> = Vec::new();
    let req = Request { method: "GET", path, host, port: Some(8080), sni: None, headers: &headers };
    let d = e.decide(&req, &peer, 1_800_000_000);
    match d.verdict {
        peerguard_policy::Verdict::Allow => format!("allow:{}", d.policy.as_deref().unwrap_or("")),
        peerguard_policy::Verdict::Deny(r) | peerguard_policy::Verdict::WouldDeny(r) => r.code().to_owned(),
    }
}

#[test]
fn principal_prefixes_of_several_lengths_and_exact_principals() {
    let e = engine(&[json!({"from": [{"source": {"principals": ["cluster.local/ns/team-7/sa/evil*"]}}]})], 3000, |i| {
        let p = match i % 3 {
            0 => format!("cluster.local/ns/team-{i}/*"),
            1 => format!("cluster.local/ns/team-{i}/sa/exact"),
            _ => format!("other.td/{i}*"),
        };
        json!({"from": [{"source": {"principals": [p]}}]})
    });
    let p = |s: &str| decide(&e, Some(s), "h", "/");
    assert_eq!(p("cluster.local/ns/team-2997/sa/x"), "allow:allow-2997");
    assert_eq!(p("cluster.local/ns/team-0/sa/x"), "allow:allow-0");
    assert_eq!(p("cluster.local/ns/team-1/sa/exact"), "allow:allow-1");
    assert_eq!(p("cluster.local/ns/team-1/sa/exact2"), "no_matching_allow");
    assert_eq!(p("other.td/2"), "allow:allow-2");
    // `other.td/2*` also covers `other.td/29`: the first ALLOW in document order wins.
    assert_eq!(p("other.td/29"), "allow:allow-2");
    assert_eq!(p("cluster.local/ns/team-7/sa/evil-twin"), "denied_by_policy");
    assert_eq!(p("cluster.local/ns/team-3/sa/evil"), "allow:allow-3");
    // The prefix is the whole segment: team-30 is not under team-3/.
    assert_eq!(p("cluster.local/ns/team-30"), "no_matching_allow");
    assert_eq!(decide(&e, None, "h", "/"), "no_matching_allow");
}

#[test]
fn namespaces_are_indexed_with_principals_in_other_rules() {
    let e = engine(&[], 2000, |i| {
        if i % 2 == 0 {
            json!({"from": [{"source": {"namespaces": [format!("team-{i}")]}}]})
        } else {
            json!({"from": [{"source": {"principals": [format!("cluster.local/ns/x/sa/{i}-*")]}}]})
        }
    });
    assert_eq!(decide(&e, Some("cluster.local/ns/team-1998/sa/a"), "h", "/"), "allow:allow-1998");
    assert_eq!(decide(&e, Some("cluster.local/ns/x/sa/1999-b"), "h", "/"), "allow:allow-1999");
    assert_eq!(decide(&e, Some("cluster.local/ns/team-1999/sa/a"), "h", "/"), "no_matching_allow");
}

#[test]
fn hosts_exact_and_prefix_with_port_case_and_trailing_dot() {
    let e = engine(&[json!({"to": [{"operation": {"hosts": ["admin.*"]}}]})], 3000, |i| {
        let h = if i % 2 == 0 { format!("svc-{i}.example.com") } else { format!("api-{i}.*") };
        json!({"to": [{"operation": {"hosts": [h]}}]})
    });
    let h = |host: &str| decide(&e, Some("a/b"), host, "/");
    assert_eq!(h("svc-2998.example.com"), "allow:allow-2998");
    assert_eq!(h("SVC-2998.Example.COM"), "allow:allow-2998");
    assert_eq!(h("svc-2998.example.com."), "allow:allow-2998");
    assert_eq!(h("svc-2998.example.com:8443"), "allow:allow-2998");
    assert_eq!(h("api-2999.internal"), "allow:allow-2999");
    assert_eq!(h("api-2999.internal:80"), "allow:allow-2999");
    assert_eq!(h("admin.example.com"), "denied_by_policy");
    assert_eq!(h("ADMIN.example.com:1"), "denied_by_policy");
    assert_eq!(h("svc-2999.example.com"), "no_matching_allow");
    assert_eq!(h(""), "no_matching_allow");
    // Prefix lengths (6 bytes for `admin.`) that end inside a character are skipped.
    assert_eq!(h("a\u{e9}\u{e9}\u{e9}\u{e9}"), "no_matching_allow");
}

#[test]
fn paths_exact_and_prefix() {
    let e = engine(&[json!({"to": [{"operation": {"paths": ["/admin/*", "/%C3%A9*"]}}]})], 3000, |i| {
        let p = if i % 2 == 0 { format!("/tenant-{i}/*") } else { format!("/exact/{i}") };
        json!({"to": [{"operation": {"paths": [p]}}]})
    });
    let p = |path: &str| decide(&e, Some("a/b"), "h", path);
    assert_eq!(p("/tenant-2998/items?x=1"), "allow:allow-2998");
    assert_eq!(p("/exact/2999"), "allow:allow-2999");
    assert_eq!(p("/exact/2999/"), "no_matching_allow");
    assert_eq!(p("/admin/users"), "denied_by_policy");
    assert_eq!(p("/tenant-1/../admin/x"), "denied_by_policy");
    assert_eq!(p("/%C3%A9t%C3%A9"), "denied_by_policy");
    assert_eq!(p("/\u{e9}t\u{e9}"), "denied_by_policy");
}

#[test]
fn a_rule_whose_alternatives_differ_in_shape_is_still_found() {
    // One operation by host, another by path: neither index covers the rule alone.
    let e = engine(
        &[],
        1000,
        |i| json!({"to": [{"operation": {"hosts": [format!("h{i}")]}}, {"operation": {"paths": [format!("/p{i}/*")]}}]}),
    );
    assert_eq!(decide(&e, Some("a/b"), "h999", "/"), "allow:allow-999");
    assert_eq!(decide(&e, Some("a/b"), "x", "/p999/q"), "allow:allow-999");
    assert_eq!(decide(&e, Some("a/b"), "x", "/q"), "no_matching_allow");
}
