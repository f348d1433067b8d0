//! The native build (Envoy dynamic module) under abuse in a real Envoy: a malformed policy, a
//! garbage certificate, 1 MB of headers and a storm of policy reloads leave Envoy running and
//! answering, and each is answered as the Wasm build answers it. These tests always run the
//! native build (whatever `PEERGUARD_BUILD` says); they fail (never skip) without Envoy or
//! dist/libpeerguard_native.so (`just build-native`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::time::{Duration, Instant};

use peerguard_cli::live::{write_ecds, FilterBuild};
use peerguard_e2e::certs::{DemoCa, LeafSpec};
use peerguard_e2e::client::{Client, Request, Response};
use peerguard_e2e::demo::{Stack, StackOptions, DEMO_POLICY, IDENTITY_HEADER};
use peerguard_e2e::envoy::{Build, Envoy, EnvoyConfig, ForwardClientCert, ListenerTls};
use peerguard_e2e::upstream::EchoServer;
use peerguard_policy::CertFacts;

fn native(c: EnvoyConfig) -> EnvoyConfig {
    c.with_build(Build::Native)
}

/// Envoy still serves: its admin API says LIVE and an allowed request gets through.
fn assert_alive(stack: &Stack) {
    let ready = stack.envoy.admin_get("/ready").unwrap().1;
    assert!(ready.contains("LIVE"), "admin /ready: {ready}\n{}", stack.envoy.log_tail(30));
}

#[test]
fn the_native_module_is_what_envoy_runs() {
    let stack = Stack::start(StackOptions { tweak: native, ..StackOptions::default() }).unwrap();
    let resp = stack.send(Some("frontend"), &Request::get("/api/items")).unwrap();
    assert_eq!(resp.status, 200, "{}", resp.body_text());
    // The counters are the Wasm build's, under the same names.
    let stats = stack.envoy.stats("peerguard").unwrap();
    assert!(stats.contains("wasmcustom.peerguard.allowed: 1"), "{stats}");
    let config = stack.envoy.admin_get("/config_dump").unwrap().1;
    assert!(
        config.contains("type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter"),
        "{config}"
    );
    assert!(!config.contains("type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"), "{config}");
    assert!(stack.envoy.log_tail(400).contains("(native dynamic module) loaded"), "{}", stack.envoy.log_tail(40));
}

#[test]
fn a_malformed_policy_answers_503_config_invalid_and_envoy_keeps_running() {
    for policy in ["{not json", "", r#"{"mtls":"strict","policies":[{"name":"x","action":"MAYBE"}]}"#, "[]"] {
        let opts = StackOptions { policy: Some(policy.to_owned()), tweak: native, ..StackOptions::default() };
        let stack = Stack::start(opts).unwrap();
        for _ in 0..3 {
            let resp = stack.send(Some("frontend"), &Request::get("/api/items")).unwrap();
            assert_eq!((resp.status, resp.reason().as_deref()), (503, Some("config_invalid")), "{policy:?}");
        }
        assert_eq!(stack.upstream.count(), 0);
        assert_alive(&stack);
        let stats = stack.envoy.stats("peerguard.config_errors").unwrap();
        assert!(stats.contains("wasmcustom.peerguard.config_errors: 1"), "{policy:?}: {stats}");
    }
}

/// The client's own XFCC reaches the filter (ALWAYS_FORWARD_ONLY), so it can name the
/// connection's real digest with a certificate that is garbage.
fn forward_client_xfcc(c: EnvoyConfig) -> EnvoyConfig {
    native(c).with_forward_client_cert(ForwardClientCert::AlwaysForwardOnly)
}

#[test]
fn a_garbage_certificate_claiming_the_connection_digest_is_never_used() {
    // A policy that needs the whole certificate: without `connection.peer_certificate` in the
    // dynamic-module ABI, the native build takes it from the digest-bound XFCC element.
    let policy = DEMO_POLICY.replacen('{', r#"{"certificate":{"maxLifetime":"8760h"},"#, 1);
    let opts = StackOptions { policy: Some(policy), tweak: forward_client_xfcc, ..StackOptions::default() };
    let stack = Stack::start(opts).unwrap();
    let digest = CertFacts::from_der(&stack.identity("frontend").unwrap().cert_der).unwrap().sha256_hex;
    let garbage = [
        "-----BEGIN%20CERTIFICATE-----%0AAAAA%0A-----END%20CERTIFICATE-----%0A".to_owned(),
        "-----BEGIN%20CERTIFICATE-----%0A".to_owned() + &"%FF".repeat(4096),
        "not a certificate at all".to_owned(),
    ];
    for g in &garbage {
        let xfcc = format!("Hash={digest};Cert=\"{g}\"");
        let resp =
            stack.send(Some("frontend"), &Request::get("/api/items").header("x-forwarded-client-cert", &xfcc)).unwrap();
        // An XFCC certificate counts only if it hashes to the connection's digest
        // (docs/policy.md "Where the certificate comes from"): garbage never does, so the policy
        // that needs the certificate fails closed.
        assert_eq!(resp.status, 403, "{g:.60}: {}", resp.body_text());
        assert_eq!(resp.reason().as_deref(), Some("certificate_unavailable"), "{g:.60}");
    }
    // Without any XFCC the certificate is unavailable too.
    let resp = stack.send(Some("frontend"), &Request::get("/api/items")).unwrap();
    assert_eq!((resp.status, resp.reason().as_deref()), (403, Some("certificate_unavailable")));
    assert_eq!(stack.upstream.count(), 0);
    assert_alive(&stack);
}

#[test]
fn one_megabyte_of_headers_leaves_envoy_answering() {
    let stack = Stack::start(StackOptions { tweak: native, ..StackOptions::default() }).unwrap();
    let big = "a".repeat(1 << 20);
    for req in [
        Request::get("/api/items").header("x-big", &big),
        Request::get("/api/items").header(IDENTITY_HEADER, &big),
        Request::get(&format!("/api/{big}")),
    ] {
        // Envoy refuses headers over its limit (60 KiB by default) before any filter runs, or
        // closes the connection; either way it must not reach the upstream or crash.
        if let Ok(resp) = stack.send(Some("frontend"), &req) {
            assert!(resp.status == 431 || resp.status == 400 || resp.status == 413, "{}", resp.status);
        }
    }
    // Just under Envoy's limit, the filter decides as usual.
    let resp = stack.send(Some("frontend"), &Request::get("/api/items").header("x-big", &"b".repeat(50_000))).unwrap();
    assert_eq!(resp.status, 200, "{}", resp.body_text());
    let resp = stack.send(Some("other"), &Request::get("/api/items").header("x-big", &"b".repeat(50_000))).unwrap();
    assert_eq!((resp.status, resp.reason().as_deref()), (403, Some("no_matching_allow")));
    assert_eq!(stack.upstream.count(), 1);
    assert_alive(&stack);
}

#[test]
fn a_reload_storm_leaves_envoy_answering_with_the_last_policy() {
    let dir = tempfile::tempdir().unwrap();
    let ca = DemoCa::create(dir.path()).unwrap();
    let frontend = ca.issue("frontend", &LeafSpec::workload("frontend", "web")).unwrap();
    let server = ca.issue("server", &LeafSpec::server()).unwrap();
    let upstream = EchoServer::start().unwrap();
    let tls = ListenerTls {
        server_cert: server.cert_path.clone(),
        server_key: server.key_path.clone(),
        trusted_ca: ca.cert_path.clone(),
        require_client_certificate: false,
    };
    let ecds = dir.path().join("ecds");
    std::fs::create_dir_all(&ecds).unwrap();
    let cfg = EnvoyConfig::new(upstream.port(), Some(tls))
        .with_build(Build::Native)
        .with_policy(DEMO_POLICY)
        .with_ecds(&ecds)
        .with_timeout(Duration::from_secs(180));
    cfg.write_dynamic_files().unwrap();
    let envoy = Envoy::start(&cfg, dir.path()).unwrap();
    let client = Client::mtls(&ca.cert_path, &frontend.cert_path, &frontend.key_path).unwrap();
    let send = || -> Response { client.send(envoy.port(), &Request::get("/api/items")).unwrap() };
    assert_eq!(send().status, 200);

    let deny_all = r#"{"mtls":"strict","denyResponse":{"exposeReason":true},"policies":[{"name":"stop","action":"DENY","rules":[{}]}]}"#;
    let ecds_file = ecds.join(peerguard_cli::live::ECDS_FILE);
    let policies = [deny_all, "{broken", DEMO_POLICY, "", deny_all];
    // 100 reloads as fast as the file can be swapped, a request after every fifth.
    for i in 0..100 {
        write_ecds(&ecds_file, policies[i % policies.len()], &FilterBuild::Native).unwrap();
        if i % 5 == 4 {
            let r = send();
            assert!(matches!(r.status, 200 | 403 | 503), "reload {i}: {} {}", r.status, r.body_text());
        }
    }
    // Settle on the denying policy; Envoy applies it within a few seconds and keeps answering.
    write_ecds(&ecds_file, deny_all, &FilterBuild::Native).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = send();
        if (r.status, r.reason().as_deref()) == (403, Some("denied_by_policy")) {
            break;
        }
        assert!(Instant::now() < deadline, "the last policy never applied: {} {}", r.status, envoy.log_tail(30));
        std::thread::sleep(Duration::from_millis(100));
    }
    let ready = envoy.admin_get("/ready").unwrap().1;
    assert!(ready.contains("LIVE"), "{ready}");
    // Each of the 100 configs was built: one config error counted per invalid one applied.
    let stats = envoy.stats("peerguard.config_errors").unwrap();
    assert!(stats.contains("wasmcustom.peerguard.config_errors"), "{stats}");
}
