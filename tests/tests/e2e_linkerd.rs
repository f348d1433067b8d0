//! peerguard behind Linkerd, in a real Envoy running the shipped `envoy/linkerd-ingress.yaml`
//! (README "Behind Linkerd"): the principal comes from `l5d-client-id` only on a connection from
//! the linkerd-proxy's address, and from anywhere else the header is removed and ignored.
//!
//! The test client connecting from 127.0.0.1 plays the linkerd-proxy (which forwards over
//! loopback). A client somewhere else is a relay Envoy whose upstream connections are bound to
//! 127.0.0.2 (`upstream_bind_config`), so Envoy's `source.address` really is another address,
//! not a header. Fails (never skips) without Envoy or the built module.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use peerguard_e2e::client::{Client, Request, Response};
use peerguard_e2e::envoy::{default_timeout, native_path, wasm_path, Build, Envoy};
use peerguard_e2e::istio_schema::load_yaml_docs;
use peerguard_e2e::repo_root;
use peerguard_e2e::standalone::rewrite_ports;
use peerguard_e2e::upstream::EchoServer;
use peerguard_filter::envoy_config::NativeFilter;
use serde_json::{json, Value};

const FRONTEND: &str = "frontend.web.serviceaccount.identity.linkerd.cluster.local";

/// The shipped ingress config with `policy` (None: the shipped one), bound to 127.0.0.1 on a port
/// the OS picks, sending to `upstream`, and with `use_remote_address` as given.
fn ingress(dir: &Path, upstream: u16, policy: Option<&Value>, use_remote_address: bool) -> Envoy {
    let mut doc = load_yaml_docs(&repo_root().join("envoy/linkerd-ingress.yaml")).unwrap().remove(0);
    rewrite_ports(&mut doc, &BTreeMap::from([(8081, upstream)])).unwrap();
    doc["static_resources"]["listeners"][0]["address"]["socket_address"]["address"] = json!("127.0.0.1");
    let hcm = &mut doc["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"];
    assert_eq!(hcm["use_remote_address"], json!(true), "the shipped config must use the TCP peer's address");
    hcm["use_remote_address"] = json!(use_remote_address);
    // What Envoy took as the downstream address (source.address), to show what peerguard saw.
    hcm["access_log"] = json!([{
        "name": "envoy.access_loggers.file",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
            "path": dir.join("access.log").display().to_string(),
            "log_format": {"text_format_source": {"inline_string": "%DOWNSTREAM_REMOTE_ADDRESS% %REQ(:PATH)% %RESPONSE_CODE%\n"}},
        },
    }]);
    let wasm = &mut hcm["http_filters"][0]["typed_config"]["config"];
    wasm["vm_config"]["code"]["local"]["filename"] = json!(wasm_path().unwrap().display().to_string());
    if let Some(p) = policy {
        wasm["configuration"]["value"] = json!(p.to_string());
    }
    // The same filter in the native build when `PEERGUARD_BUILD=native` (README "The native build").
    if Build::from_env().unwrap() == Build::Native {
        native_path().unwrap();
        let configuration = wasm["configuration"]["value"].as_str().unwrap().to_owned();
        hcm["http_filters"][0]["typed_config"] = NativeFilter { configuration: &configuration }.typed_config();
    }
    std::fs::create_dir_all(dir).unwrap();
    Envoy::start_yaml(&doc.to_string(), dir, default_timeout(), "info", None).unwrap()
}

/// A TCP relay for each target port, whose connections to Envoy leave from 127.0.0.2: the
/// listener named `to-PORT` relays to 127.0.0.1:PORT.
fn relay(dir: &Path, targets: &[u16]) -> Envoy {
    let listeners: Vec<Value> = targets
        .iter()
        .map(|p| {
            json!({
                "name": format!("to-{p}"),
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
                "filter_chains": [{"filters": [{
                    "name": "envoy.filters.network.tcp_proxy",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
                        "stat_prefix": "relay", "cluster": format!("ingress-{p}"),
                    },
                }]}],
            })
        })
        .collect();
    let clusters: Vec<Value> = targets
        .iter()
        .map(|p| {
            json!({
                "name": format!("ingress-{p}"), "type": "STATIC", "connect_timeout": "2s",
                "upstream_bind_config": {"source_address": {"address": "127.0.0.2", "port_value": 0}},
                "load_assignment": {"cluster_name": format!("ingress-{p}"), "endpoints": [{"lb_endpoints": [
                    {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": p}}}},
                ]}]},
            })
        })
        .collect();
    let bootstrap = json!({
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
        "static_resources": {"listeners": listeners, "clusters": clusters},
    });
    std::fs::create_dir_all(dir).unwrap();
    Envoy::start_yaml(&bootstrap.to_string(), dir, default_timeout(), "info", None).unwrap()
}

fn send(port: u16, req: &Request) -> Response {
    Client::plaintext().timeout(Duration::from_secs(10)).send(port, req).unwrap()
}

fn expect(what: &str, resp: &Response, status: u16, reason: Option<&str>, envoy: &Envoy) {
    assert_eq!(
        (resp.status, resp.reason().as_deref()),
        (status, reason),
        "{what}: body {:?}\nenvoy log tail:\n{}",
        resp.body_text(),
        envoy.log_tail(30)
    );
}

#[test]
fn l5d_client_id_is_the_principal_only_from_the_linkerd_proxy() {
    let tmp = tempfile::tempdir().unwrap();
    let upstream = EchoServer::start().unwrap();
    let envoy = ingress(&tmp.path().join("ingress"), upstream.port(), None, true);
    let port = envoy.port();
    let relay = relay(&tmp.path().join("relay"), &[port]);
    let elsewhere = relay.listener_port(&format!("to-{port}")).unwrap();
    let get = |path: &str| Request::get(path);

    // From the proxy's address (127.0.0.1).
    let ok = send(port, &get("/api/items").header("l5d-client-id", FRONTEND));
    expect("proxy, frontend, GET /api/items", &ok, 200, None, &envoy);
    let seen = ok.echo().unwrap();
    assert_eq!(seen.header("x-peerguard-principal"), Some("cluster.local/ns/web/sa/frontend"));
    assert_eq!(seen.header("l5d-client-id"), Some(FRONTEND), "the proxy's header reaches the app");
    let post = send(port, &Request::new("POST", "/api/items").header("l5d-client-id", FRONTEND));
    expect("proxy, frontend, POST /api/items", &post, 403, Some("no_matching_allow"), &envoy);
    let billing = "api.billing.serviceaccount.identity.linkerd.cluster.local";
    expect("proxy, billing", &send(port, &get("/invoices/7").header("l5d-client-id", billing)), 200, None, &envoy);
    let unmeshed = send(port, &get("/api/items"));
    expect("proxy, no l5d-client-id (an unmeshed client)", &unmeshed, 403, Some("no_peer_certificate"), &envoy);
    for (what, values) in [
        ("two copies", vec![FRONTEND, FRONTEND]),
        ("two different copies", vec![FRONTEND, billing]),
        ("an empty header", vec![""]),
        ("a principal instead of an identity", vec!["cluster.local/ns/web/sa/frontend"]),
        ("a plain DNS name", vec!["frontend.example.com"]),
    ] {
        let mut req = get("/api/items");
        for v in values {
            req = req.header("l5d-client-id", v);
        }
        expect(what, &send(port, &req), 403, Some("invalid_identity"), &envoy);
    }
    let other_td = "frontend.web.serviceaccount.identity.linkerd.partner.example";
    let td = send(port, &get("/api/items").header("l5d-client-id", other_td));
    expect("another trust domain", &td, 403, Some("untrusted_trust_domain"), &envoy);

    // From 127.0.0.2, which is not a listed proxy: the forged header is no principal, even with
    // an x-forwarded-for naming the proxy's address.
    let forged = send(elsewhere, &get("/api/items").header("l5d-client-id", FRONTEND));
    expect("127.0.0.2, forged l5d-client-id", &forged, 403, Some("no_peer_certificate"), &envoy);
    let xff = get("/api/items").header("l5d-client-id", FRONTEND).header("x-forwarded-for", "127.0.0.1");
    expect(
        "127.0.0.2, forged l5d-client-id and x-forwarded-for",
        &send(elsewhere, &xff),
        403,
        Some("no_peer_certificate"),
        &envoy,
    );
    assert_eq!(upstream.count(), 2, "only the two allowed requests reached the app");
}

#[test]
fn a_forged_l5d_client_id_from_elsewhere_is_removed_before_the_app_sees_it() {
    // Permissive, with a public route: the forged header's request goes through, without it.
    let shipped: Value =
        serde_yaml::from_str(&std::fs::read_to_string(repo_root().join("envoy/linkerd-ingress-policy.yaml")).unwrap())
            .unwrap();
    let mut policy = shipped.clone();
    policy["mtls"] = json!("permissive");
    policy["policies"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "public", "rules": [{"to": [{"operation": {"paths": ["/public/*"]}}]}]}));
    let tmp = tempfile::tempdir().unwrap();
    let upstream = EchoServer::start().unwrap();
    let remote = ingress(&tmp.path().join("remote-address"), upstream.port(), Some(&policy), true);
    // Envoy's default use_remote_address: false takes source.address from x-forwarded-for.
    let xff_trusting = ingress(&tmp.path().join("xff"), upstream.port(), Some(&policy), false);
    let (a, b) = (remote.port(), xff_trusting.port());
    let relay = relay(&tmp.path().join("relay"), &[a, b]);

    for (envoy, port, log) in [(&remote, a, "remote-address"), (&xff_trusting, b, "xff")] {
        let elsewhere = relay.listener_port(&format!("to-{port}")).unwrap();
        for xff in [None, Some("127.0.0.1")] {
            let mut req = Request::get("/public/page").header("l5d-client-id", FRONTEND);
            if let Some(x) = xff {
                req = req.header("x-forwarded-for", x);
            }
            let resp = send(elsewhere, &req);
            expect(&format!("127.0.0.2 via :{port}, x-forwarded-for {xff:?}"), &resp, 200, None, envoy);
            let seen = resp.echo().unwrap();
            assert_eq!(seen.header("l5d-client-id"), None, "the forged header is removed ({port}, {xff:?})");
            assert_eq!(seen.header("x-peerguard-principal"), None, "no principal ({port}, {xff:?})");
            let api = send(elsewhere, &req_with(&req, "/api/items"));
            expect("127.0.0.2, forged, /api/items", &api, 403, Some("no_matching_allow"), envoy);
        }
        // What the filter was shown: with use_remote_address: false, the client's x-forwarded-for
        // really became the proxy's address, with port 0, and was refused all the same.
        let log = access_log(&tmp.path().join(log).join("access.log"), 4);
        let spoofed = log.lines().any(|l| l.starts_with("127.0.0.1:0 /public/page 200"));
        assert_eq!(spoofed, port == b, "access log of :{port}:\n{log}");
        assert!(log.lines().any(|l| l.starts_with("127.0.0.2:")), "{log}");
        // The proxy's own request still works on both.
        let ok = send(port, &Request::get("/api/items").header("l5d-client-id", FRONTEND));
        expect("proxy", &ok, 200, None, envoy);
    }
}

/// The access log once it has `lines` lines: Envoy writes file access logs in the background
/// (about every 10 s), so wait for it, up to 30 s.
fn access_log(path: &Path, lines: usize) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let log = std::fs::read_to_string(path).unwrap_or_default();
        if log.lines().count() >= lines || std::time::Instant::now() > deadline {
            return log;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `req` with another path.
fn req_with(req: &Request, path: &str) -> Request {
    Request { path: path.to_owned(), ..req.clone() }
}
