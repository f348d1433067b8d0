//! `peerguard render trafficextension`, run as the real binary: the manifest validates against
//! the vendored TrafficExtension CRD in every placement, carries the same module digest and
//! policy as `render wasmplugin`, and the waypoint placement refuses policies that could not work
//! there.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use common::{ok, peerguard, s, write};
use peerguard_e2e::istio_schema::{parse_yaml_docs, Schemas};
use serde_json::{json, Value};

/// A rendered manifest: exit 0, and the first document validates against the vendored CRDs.
fn rendered(args: &[&str]) -> Value {
    let text = ok(args).stdout;
    let doc = parse_yaml_docs(&text).unwrap().remove(0);
    Schemas::load().unwrap().validate(&doc).unwrap_or_else(|e| panic!("{}\n{text}", e.join("\n")));
    doc
}

/// Exit code 2 and stderr.
fn refused(args: &[&str]) -> String {
    let out = peerguard(args);
    assert_eq!(out.code, 2, "peerguard {args:?} should fail: {}", out.stdout);
    out.stderr
}

const SIDECAR: &str = "mtls: strict\npolicies:\n- name: a\n  rules:\n  - from: [{source: {principals: [\"cluster.local/ns/client/sa/curl\"]}}]\n";
const WAYPOINT: &str = "proxy: waypoint\nmtls: strict\npolicies:\n- name: a\n  rules:\n  - from: [{source: {principals: [\"cluster.local/ns/client/sa/curl\"]}}]\n";

#[test]
fn sidecar_trafficextension_has_the_wasmplugins_digest_and_policy_under_wasm() {
    let d = tempfile::tempdir().unwrap();
    let policy = write(d.path(), "p.yaml", SIDECAR);
    let wasm = write(d.path(), "m.wasm", "\0asm\x01\0\0\0");
    let common = [
        "--policy",
        s(&policy),
        "--url",
        "oci://r.example/peerguard:1",
        "--wasm",
        s(&wasm),
        "--namespace",
        "server",
        "--selector",
        "app=nginx",
    ];
    let te = rendered(&[&["render", "trafficextension"], &common[..]].concat());
    let wp = rendered(&[&["render", "wasmplugin"], &common[..]].concat());
    assert_eq!(te["kind"], "TrafficExtension");
    let (t, w) = (&te["spec"], &wp["spec"]);
    assert_eq!(t["selector"], json!({"matchLabels": {"app": "nginx"}}));
    assert_eq!(t["match"], json!([{"mode": "SERVER"}]));
    assert_eq!(t["phase"], "AUTHZ");
    for k in ["url", "sha256", "failStrategy", "pluginName", "pluginConfig", "imagePullPolicy"] {
        assert_eq!(t["wasm"][k], w[k], "{k}");
    }
    assert_eq!(t["wasm"]["failStrategy"], "FAIL_CLOSE");
    assert!(t["wasm"]["sha256"].as_str().is_some_and(|h| h.len() == 64));
    // Nothing of the WasmPlugin's flat layout is left at the top.
    assert!(t.get("url").is_none() && t.get("pluginConfig").is_none(), "{t}");
    // --out writes the same document.
    let out = d.path().join("te.yaml");
    let o = peerguard(&[&["render", "trafficextension", "--out", s(&out)], &common[..]].concat());
    assert!(o.code == 0 && o.stdout.is_empty(), "{}", o.stderr);
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.starts_with("# Rendered by `peerguard render trafficextension`"), "{text}");
    assert_eq!(parse_yaml_docs(&text).unwrap().remove(0), te);
}

#[test]
fn waypoint_trafficextension_targets_the_service_and_refuses_what_a_waypoint_cannot_do() {
    let d = tempfile::tempdir().unwrap();
    let waypoint = write(d.path(), "w.yaml", WAYPOINT);
    let sidecar = write(d.path(), "s.yaml", SIDECAR);
    let with_cert = write(d.path(), "c.yaml", &format!("{WAYPOINT}certificate: {{maxLifetime: 24h}}\n"));
    let url = "oci://r.example/peerguard:1";
    let te = rendered(&[
        "render",
        "trafficextension",
        "--policy",
        s(&waypoint),
        "--url",
        url,
        "--waypoint-service",
        "nginx",
    ]);
    assert_eq!(te["spec"]["targetRefs"], json!([{"kind": "Service", "group": "", "name": "nginx"}]));
    assert!(te["spec"].get("selector").is_none() && te["spec"].get("match").is_none(), "{}", te["spec"]);
    assert_eq!(te["spec"]["wasm"]["pluginConfig"]["proxy"], "waypoint");
    // A sidecar policy at a waypoint would deny everything: refused, saying why.
    let e =
        refused(&["render", "trafficextension", "--policy", s(&sidecar), "--url", url, "--waypoint-service", "nginx"]);
    assert!(e.contains("proxy: waypoint") && e.contains("no_peer_certificate"), "{e}");
    // A waypoint policy attached by selector would never run at the waypoint.
    let e = refused(&["render", "trafficextension", "--policy", s(&waypoint), "--url", url, "--selector", "app=nginx"]);
    assert!(e.contains("ignores `selector`"), "{e}");
    // A selector and a waypoint at once: a usage error.
    let e = refused(&[
        "render",
        "trafficextension",
        "--policy",
        s(&waypoint),
        "--url",
        url,
        "--selector",
        "app=x",
        "--waypoint-service",
        "nginx",
    ]);
    assert!(e.contains("cannot be used with"), "{e}");
    // Certificate checks at a waypoint: the policy does not compile; the path is named.
    let e = refused(&[
        "render",
        "trafficextension",
        "--policy",
        s(&with_cert),
        "--url",
        url,
        "--waypoint-service",
        "nginx",
    ]);
    assert!(e.contains("certificate") && e.contains("never sees the client's certificate"), "{e}");
}

#[test]
fn wasmplugin_refuses_a_waypoint_policy_attached_by_selector_and_names_the_ways_that_work() {
    let d = tempfile::tempdir().unwrap();
    let waypoint = write(d.path(), "w.yaml", WAYPOINT);
    let as_json = write(d.path(), "w.json", r#"{"proxy": "waypoint", "mtls": "strict", "policies": [{"name": "a"}]}"#);
    let url = "oci://r.example/peerguard:1";
    let out = d.path().join("wp.yaml");
    for policy in [&waypoint, &as_json] {
        for selectors in [&["--selector", "app=nginx"][..], &["--selector", "app=nginx", "--selector", "tier=web"]] {
            let args = [&["render", "wasmplugin", "--policy", s(policy), "--url", url, "--out", s(&out)], selectors];
            let o = peerguard(&args.concat());
            assert_eq!(o.code, 2, "{policy:?} {selectors:?} should be refused: {}", o.stdout);
            assert!(o.stdout.is_empty(), "{}", o.stdout);
            assert!(!out.exists(), "a refused WasmPlugin was written");
            let e = &o.stderr;
            for want in
                ["proxy: waypoint", "ignores `selector`", "--gateway", "render trafficextension --waypoint-service"]
            {
                assert!(e.contains(want), "error does not say {want:?}: {e}");
            }
        }
    }
    // The ways that work: targetRefs to the waypoint's Gateway, and the same policy in a
    // TrafficExtension for one Service's waypoint.
    let wp = rendered(&["render", "wasmplugin", "--policy", s(&waypoint), "--url", url, "--gateway", "waypoint"]);
    assert_eq!(wp["spec"]["targetRefs"][0]["name"], "waypoint");
    assert!(wp["spec"].get("selector").is_none(), "{}", wp["spec"]);
    assert_eq!(wp["spec"]["pluginConfig"]["proxy"], "waypoint");
    rendered(&["render", "trafficextension", "--policy", s(&waypoint), "--url", url, "--waypoint-service", "nginx"]);
    // A sidecar policy with a selector is still a WasmPlugin for those sidecars.
    let sidecar = write(d.path(), "s.yaml", SIDECAR);
    let wp = rendered(&["render", "wasmplugin", "--policy", s(&sidecar), "--url", url, "--selector", "app=nginx"]);
    assert_eq!(wp["spec"]["selector"], json!({"matchLabels": {"app": "nginx"}}));
}
