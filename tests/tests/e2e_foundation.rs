//! The demo contract against the real filter in a real Envoy: allow, deny reasons, identity header,
//! and the fail-closed answer to an invalid policy. Fails (never skips) without Envoy or the wasm.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::time::Duration;

use peerguard_e2e::client::Request;
use peerguard_e2e::demo::{cases, Case, Stack, IDENTITY_HEADER};

fn case(name: &str) -> Case {
    cases().into_iter().find(|c| c.name == name).unwrap()
}

fn run(stack: &Stack, c: &Case) -> peerguard_e2e::client::Response {
    let resp = stack.send(c.identity, &c.request()).unwrap();
    if let Err(e) = c.check(&resp) {
        panic!("case {:?}: {e}\nbody: {}\nenvoy log tail:\n{}", c.name, resp.body_text(), stack.envoy.log_tail(30));
    }
    resp
}

#[test]
fn frontend_get_api_is_allowed_and_upstream_sees_the_principal() {
    let stack = Stack::demo().unwrap();
    let resp = run(&stack, &case("frontend reads the API"));
    assert_eq!(resp.status, 200);
    assert_eq!(resp.reason(), None);
    let echo = resp.echo().unwrap();
    assert_eq!(echo.path, "/api/items");
    assert_eq!(echo.header(IDENTITY_HEADER), Some("cluster.local/ns/frontend/sa/web"));
}

#[test]
fn other_namespace_is_denied_with_no_matching_allow() {
    let stack = Stack::demo().unwrap();
    let resp = run(&stack, &case("other namespace is not allowed"));
    assert_eq!(resp.status, 403);
    assert_eq!(resp.reason().as_deref(), Some("no_matching_allow"));
    assert!(resp.body_text().contains("access denied"), "{}", resp.body_text());
    assert_eq!(stack.upstream.count(), 0, "a denied request reached the upstream");
}

#[test]
fn admin_path_is_denied_by_policy_even_for_frontend() {
    let stack = Stack::demo().unwrap();
    let resp = run(&stack, &case("admin paths are denied to everyone"));
    assert_eq!(resp.status, 403);
    assert_eq!(resp.reason().as_deref(), Some("denied_by_policy"));
    assert_eq!(stack.upstream.count(), 0, "a denied request reached the upstream");
}

#[test]
fn request_without_client_certificate_is_denied_under_strict_mtls() {
    let stack = Stack::demo().unwrap();
    let resp = run(&stack, &case("no client certificate under strict mTLS"));
    assert_eq!(resp.status, 403);
    assert_eq!(resp.reason().as_deref(), Some("no_peer_certificate"));
    assert_eq!(stack.upstream.count(), 0, "a denied request reached the upstream");
}

#[test]
fn forged_identity_header_is_replaced_by_the_verified_principal() {
    let stack = Stack::demo().unwrap();
    let resp = run(&stack, &case("forged identity header is replaced"));
    assert_eq!(resp.status, 200);
    let seen = stack.upstream.seen();
    assert_eq!(seen.len(), 1);
    let got = seen[0].header(IDENTITY_HEADER);
    assert_eq!(got, Some("cluster.local/ns/frontend/sa/web"));
    assert!(!got.unwrap_or_default().contains("admin"), "forged value leaked: {got:?}");
}

#[test]
fn every_forged_copy_of_the_identity_header_is_dropped() {
    // The filter replaces the header in one host call; a replace must drop every copy the
    // client sent, or the upstream would see "forged,real" (the echo joins repeats with ',').
    let stack = Stack::demo().unwrap();
    let req = Request::get("/api/items")
        .header(IDENTITY_HEADER, "cluster.local/ns/admin/sa/root")
        .header(IDENTITY_HEADER, "cluster.local/ns/admin/sa/other");
    let resp = stack.send(Some("frontend"), &req).unwrap();
    assert_eq!(resp.status, 200, "{}", resp.body_text());
    let seen = stack.upstream.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].header(IDENTITY_HEADER), Some("cluster.local/ns/frontend/sa/web"));
}

#[test]
fn forged_identity_header_is_removed_when_the_peer_has_no_principal() {
    // A permissive policy lets a plaintext request through with no principal: the header the
    // client sent must not reach the upstream either.
    let stack = Stack::with_policy(r#"{"mtls":"permissive"}"#).unwrap();
    let req = Request::get("/api/items").header(IDENTITY_HEADER, "cluster.local/ns/admin/sa/root");
    let resp = stack.send(None, &req).unwrap();
    assert_eq!(resp.status, 200, "{}", resp.body_text());
    let seen = stack.upstream.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].header(IDENTITY_HEADER), None);
}

#[test]
fn all_demo_cases_pass_against_one_envoy() {
    let stack = Stack::demo().unwrap();
    for c in cases() {
        run(&stack, &c);
    }
}

#[test]
fn invalid_policy_answers_every_request_with_503_config_invalid() {
    let stack = Stack::with_policy(r#"{"mtls":"strict","bogus":1}"#).unwrap();
    for (identity, path) in [(Some("frontend"), "/api/items"), (Some("other"), "/"), (None, "/api/items")] {
        let resp = stack.send(identity, &Request::get(path)).unwrap();
        assert_eq!(
            resp.status,
            503,
            "{identity:?} {path}: body {:?}\nlog:\n{}",
            resp.body_text(),
            stack.envoy.log_tail(30)
        );
        assert_eq!(resp.reason().as_deref(), Some("config_invalid"));
    }
    assert_eq!(stack.upstream.count(), 0, "a request reached the upstream under an invalid policy");
    let line = stack.envoy.wait_for_log("bogus", Duration::from_secs(5));
    assert!(line.is_some(), "Envoy log does not name the JSON path `bogus`:\n{}", stack.envoy.log());
}
