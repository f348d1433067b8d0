//! Istio path templates (`{*}`, `{**}`) in `paths` and `notPaths`, matched and validated as Istio
//! does, on the normalized path. Natively and in wasm.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use peerguard_policy::{Engine, Peer, PeerAttributes, Reason, Request};
use serde_json::{json, Value};

fn decide(policy: &Value, path: &str) -> (bool, Option<Reason>) {
    let e = Engine::from_json(&policy.to_string()).unwrap_or_else(|e| panic!("{policy}: {e}"));
    let headers: Vec<(String, String)> = Vec::new();
    let req = Request { method: "GET", path, host: "h", port: None, sni: None, headers: &headers };
    let attrs = PeerAttributes {
        uri_san: Some("spiffe://cluster.local/ns/a/sa/b".to_owned()),
        dns_san: None,
        subject: None,
        several_spiffe_uris: false,
    };
    let d = e.decide(&req, &Peer::Attributes(&attrs), 1_800_000_000);
    (d.allowed(), d.reason())
}

fn deny(paths: Value) -> Value {
    json!({"policies": [{"name": "d", "action": "DENY", "rules": [{"to": [{"operation": {"paths": paths}}]}]}]})
}

#[test]
fn one_segment_template_denies_every_single_segment() {
    let p = deny(json!(["/api/{*}/admin"]));
    for path in ["/api/v1/admin", "/api/v2/admin?x=1", "//api/v1//admin", "/api/x/../v1/admin"] {
        assert_eq!(decide(&p, path), (false, Some(Reason::DeniedByPolicy)), "{path}");
    }
    for path in ["/api/v1/v2/admin", "/api/admin", "/api/v1/admin/x"] {
        assert!(decide(&p, path).0, "{path}");
    }
}

#[test]
fn rest_template_denies_everything_below_the_folder_as_istio_does() {
    let p = deny(json!(["/files/{**}"]));
    assert_eq!(decide(&p, "/files/a/b").1, Some(Reason::DeniedByPolicy));
    assert_eq!(decide(&p, "/files//a").1, Some(Reason::DeniedByPolicy));
    // Envoy's `**` is zero or more characters: `/files/` itself is below the folder.
    assert_eq!(decide(&p, "/files/").1, Some(Reason::DeniedByPolicy));
    assert!(decide(&p, "/files").0);
    let tail = deny(json!(["/{**}/admin"]));
    assert_eq!(decide(&tail, "/a/b/admin").1, Some(Reason::DeniedByPolicy));
    assert!(decide(&tail, "/a/b/admin/x").0);
}

#[test]
fn not_paths_templates_exclude() {
    let p = json!({"policies": [{"name": "p", "rules": [{"to": [{"operation": {"notPaths": ["/internal/{**}"]}}]}]}]});
    assert_eq!(decide(&p, "/internal/x").1, Some(Reason::NoMatchingAllow));
    assert!(decide(&p, "/public/x").0);
}

#[test]
fn malformed_templates_are_configuration_errors() {
    for bad in ["/a/{**}/{*}", "/a{*}", "/{x}", "/a*/{*}", "/a/{*}/%61", "/a/{*}/../b", "/a}"] {
        let err = Engine::from_json(&deny(json!([bad])).to_string()).err().unwrap_or_else(|| panic!("{bad} accepted"));
        assert_eq!(err.0[0].path, "policies[0].rules[0].to[0].operation.paths[0]", "{bad}: {err}");
    }
}
