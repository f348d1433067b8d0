//! The filter in the Envoy config istiod generates for a peerguard WasmPlugin, or for the native
//! build as an EnvoyFilter inserts it (see `peerguard_e2e::istio_shaped`): the same decisions as
//! the standalone setup, XFCC under APPEND_FORWARD that a client cannot forge, and the XFCC-only
//! certificate path (older Envoys for the Wasm build; always, for the native build).
//! Runs the build `PEERGUARD_BUILD` names (`just test` runs both), except where a test pins one.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use peerguard_e2e::certs::{spiffe_id, DemoCa, Issued, LeafSpec};
use peerguard_e2e::client::{Client, Request, Response};
use peerguard_e2e::demo::{cases, Stack, DEMO_POLICY, IDENTITIES, IDENTITY_HEADER};
use peerguard_e2e::envoy::{wasm_path, Build};
use peerguard_e2e::istio_shaped::{self as istio, Plugin, Workload, Xfcc};
use peerguard_e2e::sidecar::RawEnvoy;
use peerguard_e2e::upstream::EchoServer;
use serde_json::Value;
use tempfile::TempDir;

const H: Duration = Duration::from_secs(3600);

/// The build under test: `PEERGUARD_BUILD`.
fn env_build() -> Build {
    Build::from_env().unwrap()
}

/// The Wasm filter's VM option that plays an Envoy without `connection.peer_certificate`
/// (older than 1.38). The native build has no VM options and always reads the certificate from
/// the digest-bound XFCC element (README "The native build"), so it runs without it.
fn without_peer_certificate_attribute(build: Build) -> Option<&'static str> {
    match build {
        Build::Wasm => Some(r#"{"emulateEnvoyWithoutPeerCertificate": true}"#),
        Build::Native => None,
    }
}

/// An Istio-shaped inbound sidecar in front of an echo app, with its own demo PKI.
struct IstioStack {
    envoy: RawEnvoy,
    upstream: EchoServer,
    ids: BTreeMap<String, Issued>,
    ca: DemoCa,
    port: u16,
    _dir: TempDir,
}

impl IstioStack {
    /// The build `PEERGUARD_BUILD` names, with the XFCC details its Istio config sets
    /// ([`Xfcc::for_build`]).
    fn start(policy_json: &str) -> IstioStack {
        let build = env_build();
        IstioStack::start_with(build, policy_json, None, Xfcc::for_build(build))
    }

    fn start_with(build: Build, policy_json: &str, vm_configuration: Option<&str>, xfcc: Xfcc) -> IstioStack {
        let dir = tempfile::Builder::new().prefix("peerguard-istio-").tempdir().unwrap();
        let ca = DemoCa::create(dir.path()).unwrap();
        let server = ca.issue("server", &LeafSpec::server().uri("spiffe://cluster.local/ns/backend/sa/api")).unwrap();
        let mut ids = BTreeMap::new();
        for (name, ns, sa) in IDENTITIES {
            // Istio-like lifetimes: well under a day.
            let spec = LeafSpec::workload(ns, sa).valid_around_now(H, 12 * H);
            ids.insert(name.to_string(), ca.issue(name, &spec).unwrap());
        }
        let long = LeafSpec::workload("frontend", "web").valid_around_now(H, 47 * H);
        ids.insert("long-lived".into(), ca.issue("long-lived", &long).unwrap());
        // Two SPIFFE IDs: the handshake attributes show only the first (frontend's).
        let two = LeafSpec::workload("frontend", "web").uri(&spiffe_id("backend", "admin")).valid_around_now(H, 12 * H);
        ids.insert("two-ids".into(), ca.issue("two-ids", &two).unwrap());
        let upstream = EchoServer::start().unwrap();
        let plugin = Plugin {
            namespace: "backend".into(),
            name: "peerguard".into(),
            plugin_name: "peerguard".into(),
            wasm: None,
            plugin_config: serde_json::from_str(policy_json).unwrap(),
            vm_configuration: vm_configuration.map(String::from),
            build: Some(build),
        };
        let workload =
            Workload { cert: server.cert_path.clone(), key: server.key_path.clone(), root_ca: ca.cert_path.clone() };
        let app = SocketAddr::from(([127, 0, 0, 1], upstream.port()));
        let listen = SocketAddr::from(([127, 0, 0, 1], 0));
        let boot = istio::bootstrap(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            &workload,
            vec![istio::inbound_listener(listen, upstream.port(), "cluster.local", Some(&plugin), xfcc).unwrap()],
            vec![istio::inbound_cluster(app)],
        );
        let cfg = dir.path().join("sidecar.yaml");
        istio::write(&cfg, &boot).unwrap();
        let envoy = RawEnvoy::start("sidecar", &cfg, dir.path(), dir.path(), Duration::from_secs(300)).unwrap();
        let port = envoy.listener_port("virtualInbound").unwrap();
        IstioStack { envoy, upstream, ids, ca, port, _dir: dir }
    }

    fn client(&self, id: Option<&str>) -> Client {
        match id {
            None => Client::tls(&self.ca.cert_path).unwrap(),
            Some(n) => {
                let i = &self.ids[n];
                Client::mtls(&self.ca.cert_path, &i.cert_path, &i.key_path).unwrap()
            }
        }
    }

    fn send(&self, id: Option<&str>, req: &Request) -> anyhow::Result<Response> {
        self.client(id).send(self.port, req)
    }
}

fn outcome(r: &Response) -> (u16, Option<String>) {
    (r.status, r.reason())
}

/// The same status and reason, and for an allowed request the same identity header at the app;
/// `b_stack`'s log on a difference.
fn assert_same_answer(a: &Response, b: &Response, what: &str, b_stack: &IstioStack) {
    assert_eq!(outcome(a), outcome(b), "{what}\nlog:\n{}", b_stack.envoy.log_tail(30));
    if a.status == 200 {
        assert_eq!(a.echo().unwrap().header(IDENTITY_HEADER), b.echo().unwrap().header(IDENTITY_HEADER), "{what}");
    }
}

/// URL-encodes a PEM the way Envoy writes `Cert=` in XFCC.
fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn sha256_hex(der: &[u8]) -> String {
    peerguard_policy::CertFacts::from_der(der).unwrap().sha256_hex
}

/// A forged XFCC element claiming `victim`'s certificate; `hash` is what it puts in `Hash=`.
fn forged_element(victim: &Issued, hash: &str) -> String {
    format!(
        "Hash={hash};Cert=\"{}\";Subject=\"CN=web\";URI=spiffe://cluster.local/ns/frontend/sa/web",
        url_encode(&victim.cert_pem)
    )
}

fn demo_policy_with(extra: &str) -> String {
    let mut v: Value = serde_json::from_str(DEMO_POLICY).unwrap();
    let extra: Value = serde_json::from_str(extra).unwrap();
    for (k, val) in extra.as_object().unwrap() {
        v[k] = val.clone();
    }
    v.to_string()
}

#[test]
fn istio_shaped_sidecar_decides_exactly_like_the_standalone_setup() {
    let standalone = Stack::demo().unwrap();
    let istio = IstioStack::start(DEMO_POLICY);
    let mut compared = 0;
    for c in cases() {
        let a = standalone.send(c.identity, &c.request()).unwrap();
        match c.identity {
            Some(_) => {
                let b = istio.send(c.identity, &c.request()).unwrap_or_else(|e| panic!("{}: {e:#}", c.name));
                assert_same_answer(&a, &b, &format!("case {:?}: standalone vs Istio-shaped", c.name), &istio);
                compared += 1;
            }
            None => {
                // Standalone answers 403 no_peer_certificate at L7; an Istio STRICT sidecar
                // (require_client_certificate) already refuses the handshake.
                assert_eq!(outcome(&a), (403, Some("no_peer_certificate".into())));
                assert!(
                    istio.send(None, &c.request()).is_err(),
                    "STRICT sidecar accepted a TLS client without a certificate"
                );
            }
        }
    }
    assert!(compared >= 4, "only {compared} cases compared");
    // The filter is NAMESPACE.NAME right before the router, in the build under test, and it ran.
    let config = std::fs::read_to_string(&istio.envoy.config_path).unwrap();
    let boot: Value = serde_yaml::from_str(&config).unwrap();
    let hcm = &boot["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"];
    let names: Vec<&str> =
        hcm["http_filters"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["backend.peerguard", "envoy.filters.http.router"], "{config}");
    let filter = &hcm["http_filters"][0]["typed_config"];
    let details = &hcm["set_current_client_cert_details"];
    match env_build() {
        // The AUTHZ-phase WasmPlugin as istiod renders it, under Istio's default XFCC details.
        Build::Wasm => {
            assert_eq!(filter["config"]["root_id"], "peerguard", "{config}");
            assert_eq!(details["cert"], false, "{config}");
        }
        // The EnvoyFilter's dynamic module, which also turns on Cert= in XFCC.
        Build::Native => {
            assert_eq!(filter["dynamic_module_config"]["name"], "peerguard_native", "{config}");
            assert_eq!(
                filter["filter_config"]["value"].as_str().map(serde_json::from_str::<Value>).unwrap().unwrap(),
                serde_json::from_str::<Value>(DEMO_POLICY).unwrap()
            );
            assert_eq!(details["cert"], true, "{config}");
        }
    }
    assert_eq!(hcm["forward_client_cert_details"], "APPEND_FORWARD", "{config}");
    assert!(istio.envoy.log().contains("policy loaded"), "{}", istio.envoy.log_tail(30));
}

#[test]
fn forged_xfcc_under_append_forward_does_not_change_the_identity() {
    let s = IstioStack::start(DEMO_POLICY);
    let victim = s.ids["frontend"].clone();
    let victim_hash = sha256_hex(&victim.cert_der);
    // `other` claims to be frontend through a forged element carrying frontend's real Hash and Cert.
    let forged = forged_element(&victim, &victim_hash);
    let r = s.send(Some("other"), &Request::get("/api/items").header("x-forwarded-client-cert", &forged)).unwrap();
    assert_eq!(outcome(&r), (403, Some("no_matching_allow".into())), "{}", r.body_text());
    // The forged element is still in the header that APPEND_FORWARD passes on...
    let r = s
        .send(
            Some("frontend"),
            &Request::get("/api/items")
                .header("x-forwarded-client-cert", "Hash=00;URI=spiffe://cluster.local/ns/other/sa/batch")
                .header(IDENTITY_HEADER, "cluster.local/ns/other/sa/batch"),
        )
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body_text());
    let echo = r.echo().unwrap();
    // ...but the identity the app is told is the verified one, and Envoy appended the real element.
    assert_eq!(echo.header(IDENTITY_HEADER), Some("cluster.local/ns/frontend/sa/web"));
    let xfcc = echo.header("x-forwarded-client-cert").unwrap();
    assert!(xfcc.starts_with("Hash=00;"), "APPEND_FORWARD keeps the client's element first: {xfcc}");
    assert!(xfcc.contains(&format!("Hash={}", sha256_hex(&s.ids["frontend"].cert_der))), "{xfcc}");
    assert_eq!(s.upstream.count(), 1);
}

#[test]
fn xfcc_only_certificate_path_allows_a_healthy_certificate_and_rejects_forgeries() {
    // As on an Envoy older than 1.38 (Wasm) and always (native): no connection.peer_certificate;
    // the full certificate must come from the XFCC element bound to the connection's digest
    // (Cert= added to XFCC).
    let policy = demo_policy_with(r#"{"certificate": {"maxLifetime": "24h"}}"#);
    let build = env_build();
    let s = IstioStack::start_with(build, &policy, without_peer_certificate_attribute(build), Xfcc { cert: true });
    let log = || s.envoy.log_tail(30);

    let r = s.send(Some("frontend"), &Request::get("/api/items")).unwrap();
    assert_eq!(r.status, 200, "healthy 13h certificate: {} {:?}\n{}", r.body_text(), r.reason(), log());
    assert_eq!(r.echo().unwrap().header(IDENTITY_HEADER), Some("cluster.local/ns/frontend/sa/web"));

    // The certificate really is read from XFCC: a 48h one breaks maxLifetime.
    let r = s.send(Some("long-lived"), &Request::get("/api/items")).unwrap();
    assert_eq!(outcome(&r), (403, Some("lifetime_too_long".into())), "{}", log());

    // Forged XFCC alone cannot help: the long-lived peer sends frontend's healthy certificate
    // in an element of its own, once with frontend's hash and once with its own connection's.
    let victim = s.ids["frontend"].clone();
    let own_hash = sha256_hex(&s.ids["long-lived"].cert_der);
    for hash in [sha256_hex(&victim.cert_der), own_hash] {
        let forged = forged_element(&victim, &hash);
        let r =
            s.send(Some("long-lived"), &Request::get("/api/items").header("x-forwarded-client-cert", &forged)).unwrap();
        assert_eq!(outcome(&r), (403, Some("lifetime_too_long".into())), "forged Hash={hash}\n{}", log());
    }
}

#[test]
fn xfcc_only_path_without_cert_in_xfcc_fails_closed() {
    // Istio's default XFCC (Subject, URI, DNS) carries no Cert=: a policy that needs the full
    // certificate cannot be satisfied on an old Envoy (Wasm), or by the native build under an
    // EnvoyFilter that does not set cert: true, and peerguard says so instead of allowing.
    let policy = demo_policy_with(r#"{"certificate": {"maxLifetime": "24h"}}"#);
    let build = env_build();
    let s = IstioStack::start_with(build, &policy, without_peer_certificate_attribute(build), Xfcc::ISTIO_DEFAULT);
    let r = s.send(Some("frontend"), &Request::get("/api/items")).unwrap();
    assert_eq!(outcome(&r), (403, Some("certificate_unavailable".into())), "{}", s.envoy.log_tail(30));
    // ...and a client cannot fill the gap with a Cert= of its own choosing.
    let me = s.ids["frontend"].clone();
    let forged = forged_element(&me, &sha256_hex(&me.cert_der));
    let r = s.send(Some("other"), &Request::get("/api/items").header("x-forwarded-client-cert", &forged)).unwrap();
    assert_eq!(r.status, 403, "{}", r.body_text());
    assert_eq!(s.upstream.count(), 0);
}

#[test]
fn a_second_spiffe_uri_san_is_an_ambiguous_identity_with_or_without_cert_in_xfcc() {
    // Envoy's URI SAN attribute is the first one only. Whether the certificate comes whole (Wasm on
    // Envoy 1.40, native with cert: true) or not at all (Istio's default XFCC: the native build
    // under an EnvoyFilter without cert: true, Wasm on an old Envoy), a second SPIFFE ID must make
    // the identity ambiguous, never leave the first one standing.
    let build = env_build();
    for (vm, xfcc) in [(without_peer_certificate_attribute(build), Xfcc::ISTIO_DEFAULT), (None, Xfcc::for_build(build))]
    {
        let s = IstioStack::start_with(build, DEMO_POLICY, vm, xfcc);
        let r = s.send(Some("two-ids"), &Request::get("/api/items")).unwrap();
        assert_eq!(outcome(&r), (403, Some("invalid_identity".into())), "{xfcc:?}: {}", s.envoy.log_tail(20));
        let r = s.send(Some("frontend"), &Request::get("/api/items")).unwrap();
        assert_eq!(outcome(&r), (200, None), "{xfcc:?}");
        assert_eq!(s.upstream.count(), 1);
    }
}

/// The policy as `peerguard render` puts it into a WasmPlugin and into a TrafficExtension.
fn rendered_plugin_configs(policy_json: &str) -> (Value, Value) {
    use peerguard_cli::render::trafficextension::{trafficextension_value, TrafficExtensionArgs};
    use peerguard_cli::render::{wasmplugin_value, WasmPluginArgs};
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.json");
    std::fs::write(&policy, policy_json).unwrap();
    let plugin = || WasmPluginArgs {
        policy: policy.clone(),
        url: "oci://ghcr.io/example/peerguard:0.1.0".into(),
        wasm: Some(wasm_path().unwrap()),
        sha256: None,
        name: "peerguard".into(),
        namespace: Some("backend".into()),
        plugin_name: "peerguard".into(),
        selector: vec!["app=api".into()],
        gateway: None,
        out: None,
    };
    let wp = wasmplugin_value(&plugin()).unwrap();
    let te = trafficextension_value(&TrafficExtensionArgs { plugin: plugin(), waypoint_service: None }).unwrap();
    // Placement and module are the same resource's; only the layout differs.
    assert_eq!(te["spec"]["selector"], wp["spec"]["selector"]);
    assert_eq!(te["spec"]["wasm"]["sha256"], wp["spec"]["sha256"]);
    assert_eq!(te["spec"]["wasm"]["pluginName"], wp["spec"]["pluginName"]);
    (wp["spec"]["pluginConfig"].clone(), te["spec"]["wasm"]["pluginConfig"].clone())
}

#[test]
fn trafficextension_and_wasmplugin_plugin_configs_decide_alike() {
    // Istio 1.30 turns a WasmPlugin into a TrafficExtension and renders either as the same Wasm
    // filter: NAMESPACE.NAME, root_id = pluginName, the pluginConfig as a JSON StringValue. Each
    // resource's pluginConfig runs in its own Istio-shaped sidecar; every answer must match.
    // Wasm only, under either PEERGUARD_BUILD: both resources load Wasm; the native build has neither.
    let (wp_config, te_config) = rendered_plugin_configs(DEMO_POLICY);
    let wp = IstioStack::start_with(Build::Wasm, &wp_config.to_string(), None, Xfcc::ISTIO_DEFAULT);
    let te = IstioStack::start_with(Build::Wasm, &te_config.to_string(), None, Xfcc::ISTIO_DEFAULT);
    let mut statuses = std::collections::BTreeSet::new();
    let mut compared = 0;
    for c in cases().iter().filter(|c| c.identity.is_some()) {
        let a = wp.send(c.identity, &c.request()).unwrap_or_else(|e| panic!("{}: {e:#}", c.name));
        let b = te.send(c.identity, &c.request()).unwrap_or_else(|e| panic!("{}: {e:#}", c.name));
        assert_same_answer(&a, &b, &format!("case {:?}: WasmPlugin vs TrafficExtension", c.name), &te);
        statuses.insert(a.status);
        compared += 1;
    }
    assert!(compared >= 4 && statuses.contains(&200) && statuses.contains(&403), "{compared} cases, {statuses:?}");
    // The shipped manifests embed the same policy document in both layouts.
    let load = |f: &str| peerguard_e2e::istio_schema::load_yaml_docs(&peerguard_e2e::repo_root().join(f)).unwrap();
    let shipped_te = load("istio/peerguard/trafficextension.yaml").remove(0);
    let shipped_wp = load("istio/peerguard/wasmplugin.yaml").remove(0);
    assert_eq!(shipped_te["spec"]["wasm"]["pluginConfig"], shipped_wp["spec"]["pluginConfig"]);
}
