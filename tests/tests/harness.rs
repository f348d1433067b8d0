//! Checks the harness itself against Envoy with no filter: mTLS client, XFCC, echo upstream, admin.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use peerguard_e2e::client::Request;
use peerguard_e2e::demo::{Stack, StackOptions};

fn no_filter_stack() -> Stack {
    Stack::start(StackOptions { policy: None, ..StackOptions::default() }).unwrap()
}

#[test]
fn envoy_without_filter_forwards_mtls_requests_with_xfcc() {
    let stack = no_filter_stack();
    let resp = stack.send(Some("frontend"), &Request::get("/api/items?x=1").header("x-test", "yes")).unwrap();
    assert_eq!(resp.status, 200, "{}", resp.body_text());
    let echo = resp.echo().unwrap();
    assert_eq!(echo.method, "GET");
    assert_eq!(echo.path, "/api/items?x=1");
    assert_eq!(echo.header("x-test"), Some("yes"));
    let xfcc = echo.header("x-forwarded-client-cert").unwrap();
    assert!(xfcc.contains("Hash="), "{xfcc}");
    assert!(xfcc.contains("URI=spiffe://cluster.local/ns/frontend/sa/web"), "{xfcc}");
    assert!(xfcc.contains("Cert=\"-----BEGIN%20CERTIFICATE"), "{xfcc}");
    assert_eq!(stack.upstream.count(), 1);
}

#[test]
fn envoy_without_filter_accepts_tls_without_a_client_certificate() {
    let stack = no_filter_stack();
    let resp = stack.send(None, &Request::get("/")).unwrap();
    assert_eq!(resp.status, 200);
    let echo = resp.echo().unwrap();
    // SANITIZE_SET drops anything the client claims when no certificate was presented.
    assert_eq!(echo.header("x-forwarded-client-cert"), None);
}

#[test]
fn envoy_sanitizes_a_client_supplied_xfcc_header() {
    let stack = no_filter_stack();
    let resp = stack.send(None, &Request::get("/").header("x-forwarded-client-cert", "Hash=forged")).unwrap();
    assert_eq!(resp.echo().unwrap().header("x-forwarded-client-cert"), None);
}

#[test]
fn non_utf8_header_bytes_reach_envoy() {
    let stack = no_filter_stack();
    let resp = stack.send(Some("frontend"), &Request::get("/").header_bytes("x-raw", b"caf\xe9")).unwrap();
    assert_eq!(resp.status, 200);
    assert!(resp.echo().unwrap().header("x-raw").is_some());
}

#[test]
fn admin_stats_and_log_are_readable() {
    let stack = no_filter_stack();
    stack.send(Some("frontend"), &Request::get("/")).unwrap();
    let stats = stack.envoy.stats("downstream_rq_2xx").unwrap();
    assert!(stats.contains("http.peerguard.downstream_rq_2xx: 1"), "{stats}");
    assert_eq!(stack.envoy.stat("http.peerguard.downstream_rq_2xx").unwrap(), Some(1));
    assert!(stack.envoy.log().contains("starting main dispatch loop"), "{}", stack.envoy.log());
}
