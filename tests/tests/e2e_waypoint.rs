//! peerguard at an Istio ambient waypoint (see `peerguard_e2e::waypoint`): the client's ztunnel
//! (an Envoy stand-in) tunnels each request over HBONE with its workload certificate; the
//! waypoint ends that mTLS on `connect_terminate` and runs the filter on the internal listener
//! `main_internal`. What this shows, and istio/README.md "Sidecar vs ambient" says:
//! - identity-based authorization works there with `proxy: waypoint` (principal from the HBONE
//!   handshake, never from a header);
//! - the filter's connection there has no certificate, so a sidecar policy denies everything
//!   with `no_peer_certificate`;
//! - certificate checks are refused when the policy compiles (503 config_invalid, fail closed).
//!
//! Runs the build `PEERGUARD_BUILD` names (`just test` runs both). Fails (never skips) without
//! Envoy or the built module.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use peerguard_e2e::certs::{DemoCa, LeafSpec};
use peerguard_e2e::client::{Client, Request, Response};
use peerguard_e2e::demo::{DEMO_POLICY, IDENTITY_HEADER};
use peerguard_e2e::envoy::Build;
use peerguard_e2e::istio_shaped::{self as istio, Plugin, Workload};
use peerguard_e2e::sidecar::RawEnvoy;
use peerguard_e2e::upstream::EchoServer;
use peerguard_e2e::waypoint::{self, ClientWorkload};
use peerguard_filter::envoy_config::{NATIVE_TYPE_URL, WASM_TYPE_URL};
use serde_json::Value;
use tempfile::TempDir;

const H: Duration = Duration::from_secs(3600);

/// Client workloads: (name, namespace, service account).
const CLIENTS: &[(&str, &str, &str)] = &[("frontend", "frontend", "web"), ("other", "other", "batch")];

/// Client certificates an attacker might get signed by the mesh CA: frontend's SPIFFE ID plus a
/// second one, and no URI SAN at all (a DNS name and a CN that look like frontend's).
fn odd_clients() -> Vec<(&'static str, LeafSpec)> {
    vec![
        ("two-sans", LeafSpec::workload("frontend", "web").uri("spiffe://cluster.local/ns/other/sa/batch")),
        ("no-uri", LeafSpec::client().cn("web").dns("web.frontend.svc.cluster.local")),
    ]
}

struct WaypointStack {
    waypoint: RawEnvoy,
    ztunnel: RawEnvoy,
    upstream: EchoServer,
    /// The ztunnel stand-in's plaintext port per client workload.
    ports: BTreeMap<String, u16>,
    _dir: TempDir,
}

impl WaypointStack {
    fn start(policy_json: &str) -> WaypointStack {
        let dir = tempfile::Builder::new().prefix("peerguard-waypoint-").tempdir().unwrap();
        let ca = DemoCa::create(dir.path()).unwrap();
        let wp_cert =
            ca.issue("waypoint", &LeafSpec::server().uri("spiffe://cluster.local/ns/backend/sa/waypoint")).unwrap();
        let mut clients = Vec::new();
        for (name, ns, sa) in CLIENTS {
            let i = ca.issue(name, &LeafSpec::workload(ns, sa).valid_around_now(H, 12 * H)).unwrap();
            clients.push(ClientWorkload { name: name.to_string(), cert: i.cert_path, key: i.key_path });
        }
        for (name, spec) in odd_clients() {
            let i = ca.issue(name, &spec.valid_around_now(H, 12 * H)).unwrap();
            clients.push(ClientWorkload { name: name.to_string(), cert: i.cert_path, key: i.key_path });
        }
        let upstream = EchoServer::start().unwrap();
        // The build is PEERGUARD_BUILD's: a TrafficExtension's Wasm filter, or the native build
        // as an EnvoyFilter inserts it.
        let plugin = Plugin {
            namespace: "backend".into(),
            name: "peerguard-waypoint".into(),
            plugin_name: "peerguard".into(),
            wasm: None,
            plugin_config: serde_json::from_str(policy_json).unwrap(),
            vm_configuration: None,
            build: None,
        };
        let workload = Workload { cert: wp_cert.cert_path, key: wp_cert.key_path, root_ca: ca.cert_path.clone() };
        let app = SocketAddr::from(([127, 0, 0, 1], upstream.port()));
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        let cfg = dir.path().join("waypoint.yaml");
        istio::write(&cfg, &waypoint::waypoint_bootstrap(any, &workload, Some(&plugin), app).unwrap()).unwrap();
        let limit = Duration::from_secs(300);
        let waypoint = RawEnvoy::start("waypoint", &cfg, dir.path(), dir.path(), limit).unwrap();
        let hbone = SocketAddr::from(([127, 0, 0, 1], waypoint.listener_port("connect_terminate").unwrap()));
        let zcfg = dir.path().join("ztunnel.yaml");
        let zt = waypoint::ztunnel_bootstrap(any, &clients, &ca.cert_path, hbone, "10.96.0.10:8080");
        istio::write(&zcfg, &zt).unwrap();
        let ztunnel = RawEnvoy::start("ztunnel", &zcfg, dir.path(), dir.path(), limit).unwrap();
        let ports = clients
            .iter()
            .map(|c| (c.name.clone(), ztunnel.listener_port(&format!("ztunnel_{}", c.name)).unwrap()))
            .collect();
        WaypointStack { waypoint, ztunnel, upstream, ports, _dir: dir }
    }

    /// A plaintext request from `client`'s workload, as its ztunnel carries it to the waypoint.
    fn send(&self, client: &str, req: &Request) -> Response {
        Client::plaintext().send(self.ports[client], req).unwrap_or_else(|e| {
            panic!(
                "{client}: {e:#}\nwaypoint log:\n{}\nztunnel log:\n{}",
                self.waypoint.log_tail(30),
                self.ztunnel.log_tail(30)
            )
        })
    }

    fn logs(&self) -> String {
        format!("waypoint log:\n{}\nztunnel log:\n{}", self.waypoint.log_tail(40), self.ztunnel.log_tail(20))
    }
}

fn outcome(r: &Response) -> (u16, Option<String>) {
    (r.status, r.reason())
}

fn policy_with(base: &str, extra: &str) -> String {
    let mut v: Value = serde_json::from_str(base).unwrap();
    let extra: Value = serde_json::from_str(extra).unwrap();
    for (k, val) in extra.as_object().unwrap() {
        v[k] = val.clone();
    }
    v.to_string()
}

fn waypoint_policy() -> String {
    policy_with(DEMO_POLICY, r#"{"proxy": "waypoint", "denyResponse": {"exposeReason": true}}"#)
}

#[test]
fn identity_based_authorization_works_at_the_waypoint_from_the_hbone_identity() {
    let s = WaypointStack::start(&waypoint_policy());
    // Allowed: frontend's workload may GET /api/*; the app is told the verified principal even
    // when the client sends its own copy of the identity header.
    let r = s.send("frontend", &Request::get("/api/items").header(IDENTITY_HEADER, "cluster.local/ns/admin/sa/root"));
    assert_eq!(r.status, 200, "{} {:?}\n{}", r.body_text(), r.reason(), s.logs());
    assert_eq!(r.echo().unwrap().header(IDENTITY_HEADER), Some("cluster.local/ns/frontend/sa/web"));
    // Denied by identity, by method, and by a DENY policy.
    let r = s.send("other", &Request::get("/api/items"));
    assert_eq!(outcome(&r), (403, Some("no_matching_allow".into())), "{}", s.logs());
    let r = s.send("frontend", &Request::new("POST", "/api/items"));
    assert_eq!(outcome(&r), (403, Some("no_matching_allow".into())));
    let r = s.send("frontend", &Request::get("/api/admin/users"));
    assert_eq!(outcome(&r), (403, Some("denied_by_policy".into())));
    // A client cannot claim another identity through headers the waypoint might trust:
    // XFCC (Istio's waypoint may synthesize one from filter state; peerguard never reads it
    // there) and a header named like the filter state key.
    let r = s.send(
        "other",
        &Request::get("/api/items")
            .header(
                "x-forwarded-client-cert",
                "By=spiffe://cluster.local/ns/backend/sa/api;URI=spiffe://cluster.local/ns/frontend/sa/web",
            )
            .header("io.istio.peer_principal", "spiffe://cluster.local/ns/frontend/sa/web"),
    );
    assert_eq!(outcome(&r), (403, Some("no_matching_allow".into())), "{}", s.logs());
    assert_eq!(s.upstream.count(), 1, "only the allowed request reached the app");
    // It really is the waypoint shape: the requests came through the HBONE listener.
    let stats = s.waypoint.stats("connect_terminate").unwrap();
    assert!(stats.contains("http.connect_terminate.downstream_rq_total"), "{stats}");
    // ...and the build under test decided on main_internal (for the native build, from the
    // filter state read through the dynamic-module ABI), right before the router.
    let config = std::fs::read_to_string(&s.waypoint.config_path).unwrap();
    let boot: Value = serde_yaml::from_str(&config).unwrap();
    let main = boot["static_resources"]["listeners"].as_array().unwrap().iter().find(|l| l["name"] == "main_internal");
    let filters = &main.unwrap()["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"];
    let want = match Build::from_env().unwrap() {
        Build::Wasm => WASM_TYPE_URL,
        Build::Native => NATIVE_TYPE_URL,
    };
    assert_eq!(filters[0]["name"], "backend.peerguard-waypoint", "{config}");
    assert_eq!(filters[0]["typed_config"]["@type"], want, "{config}");
    assert_eq!(filters[1]["name"], "envoy.filters.http.router", "{config}");
}

#[test]
fn a_certificate_with_two_uri_sans_or_none_is_no_peer_at_the_waypoint() {
    // Envoy joins several URI SANs with ',' in %DOWNSTREAM_PEER_URI_SAN%: peerguard does not
    // pick one (the first would be frontend's), it refuses. A certificate without a URI SAN
    // leaves the filter state empty; its CN and DNS name that look like frontend's count for
    // nothing.
    let s = WaypointStack::start(&waypoint_policy());
    for client in ["two-sans", "no-uri"] {
        let r = s.send(client, &Request::get("/api/items"));
        assert_eq!(outcome(&r), (403, Some("no_peer_certificate".into())), "{client}\n{}", s.logs());
    }
    assert_eq!(s.upstream.count(), 0);
    // The same stack still allows frontend's real workload: the refusals above are about the
    // certificates, not a broken tunnel.
    assert_eq!(s.send("frontend", &Request::get("/api/items")).status, 200, "{}", s.logs());
}

#[test]
fn a_sidecar_policy_at_the_waypoint_sees_no_certificate_and_denies() {
    // Without `proxy: waypoint`, the filter looks at its own connection: the internal listener's,
    // which carries no TLS. Every request is no_peer_certificate; nothing falls open.
    let policy = policy_with(DEMO_POLICY, r#"{"denyResponse": {"exposeReason": true}}"#);
    let s = WaypointStack::start(&policy);
    for client in ["frontend", "other"] {
        let r = s.send(client, &Request::get("/api/items"));
        assert_eq!(outcome(&r), (403, Some("no_peer_certificate".into())), "{client}\n{}", s.logs());
    }
    assert_eq!(s.upstream.count(), 0);
}

#[test]
fn certificate_checks_are_refused_at_a_waypoint_and_fail_closed() {
    // The waypoint never sees the client's certificate: a policy asking for certificate checks
    // does not compile under proxy: waypoint, and the filter answers 503 config_invalid.
    let policy = policy_with(&waypoint_policy(), r#"{"certificate": {"maxLifetime": "24h"}}"#);
    let err = peerguard_policy::Engine::from_json(&policy).unwrap_err().to_string();
    assert!(err.contains("certificate") && err.contains("waypoint"), "{err}");
    let s = WaypointStack::start(&policy);
    let r = s.send("frontend", &Request::get("/api/items"));
    assert_eq!(r.status, 503, "{} {:?}\n{}", r.body_text(), r.reason(), s.logs());
    assert_eq!(r.reason().as_deref(), Some("config_invalid"));
    assert!(s.waypoint.log().contains("never sees the client's certificate"), "{}", s.logs());
    assert_eq!(s.upstream.count(), 0);
}
