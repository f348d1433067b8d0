//! Every manifest in istio/ is valid against Istio's published CRD schemas (vendored in
//! istio/crds, validated with the `jsonschema` crate) and carries what the walkthrough relies on.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::collections::BTreeSet;
use std::path::PathBuf;

use peerguard_e2e::istio_schema::{is_istio_group, load_yaml_docs, parse_yaml_docs, yaml_files, Schemas};
use peerguard_e2e::repo_root;
use serde_json::{json, Value};

/// Every Kubernetes resource under istio/ (not the CRDs, kustomizations or policy documents).
fn manifests() -> Vec<(PathBuf, Value)> {
    let root = repo_root().join("istio");
    let mut out = Vec::new();
    for f in yaml_files(&root).unwrap() {
        if f.starts_with(root.join("crds")) || f.file_name().unwrap() == "kustomization.yaml" {
            continue;
        }
        for d in load_yaml_docs(&f).unwrap() {
            if d.get("apiVersion").is_some() {
                out.push((f.clone(), d));
            }
        }
    }
    out
}

fn rel(p: &std::path::Path) -> String {
    p.strip_prefix(repo_root()).unwrap().display().to_string()
}

#[test]
fn every_istio_resource_validates_against_the_vendored_crd_schema() {
    let schemas = Schemas::load().unwrap();
    let mut kinds = BTreeSet::new();
    let mut failures = Vec::new();
    for (f, doc) in manifests() {
        let api = doc["apiVersion"].as_str().unwrap();
        let kind = doc["kind"].as_str().unwrap().to_string();
        if is_istio_group(api) {
            if let Err(errs) = schemas.validate(&doc) {
                failures.push(format!("{} {kind}/{}: {}", rel(&f), doc["metadata"]["name"], errs.join("; ")));
            }
            kinds.insert(kind);
        } else {
            // Core resources: no Kubernetes OpenAPI is vendored; check the envelope.
            let known = matches!(
                (api, kind.as_str()),
                ("v1", "Namespace" | "ServiceAccount" | "Service" | "Secret" | "ConfigMap") | ("apps/v1", "Deployment")
            );
            assert!(known, "{}: unexpected {api} {kind}", rel(&f));
            assert!(doc["metadata"]["name"].is_string(), "{}: {kind} without a name", rel(&f));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    for k in ["WasmPlugin", "TrafficExtension", "PeerAuthentication"] {
        assert!(kinds.contains(k), "no {k} among {kinds:?}");
    }
}

#[test]
fn schema_validation_catches_what_the_api_server_would_refuse() {
    let schemas = Schemas::load().unwrap();
    let good = json!({
        "apiVersion": "extensions.istio.io/v1alpha1", "kind": "WasmPlugin",
        "metadata": {"name": "peerguard", "namespace": "server"},
        "spec": {"url": "oci://localhost:5000/peerguard:0.1.0", "phase": "AUTHZ", "pluginConfig": {"anything": [1, 2]}}
    });
    schemas.validate(&good).unwrap();
    let bad = |path: &[&str], value: Value| {
        let mut d = good.clone();
        let mut cur = &mut d;
        for p in &path[..path.len() - 1] {
            cur = &mut cur[*p];
        }
        cur[path[path.len() - 1]] = value;
        schemas.validate(&d).expect_err(&format!("{path:?} should be refused"))
    };
    assert!(bad(&["spec", "failStratgy"], json!("FAIL_CLOSE"))[0].contains("failStratgy"));
    bad(&["spec", "phase"], json!("AUTHORIZE"));
    bad(&["spec", "sha256"], json!("ABC"));
    bad(&["spec", "match"], json!([{"mode": "INBOUND"}]));
    bad(&["spec", "selector"], json!({"matchLabel": {"app": "x"}}));
    bad(&["apiVersion"], json!("extensions.istio.io/v1"));
    let mut both = good.clone();
    both["spec"]["selector"] = json!({"matchLabels": {"app": "x"}});
    both["spec"]["targetRefs"] = json!([{"kind": "Gateway", "group": "gateway.networking.k8s.io", "name": "gw"}]);
    assert!(schemas.validate(&both).unwrap_err().join(" ").contains("only one of targetRefs or selector"));
    let pa = parse_yaml_docs("apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: default}\nspec: {mtls: {mode: STRICTER}}\n").unwrap();
    schemas.validate(&pa[0]).unwrap_err();
}

fn wasmplugin(file: &str) -> Value {
    load_yaml_docs(&repo_root().join(file)).unwrap().remove(0)
}

#[test]
fn sidecar_wasmplugin_is_authz_fail_close_inbound_with_a_real_policy_and_image_digest() {
    let w = wasmplugin("istio/peerguard/wasmplugin.yaml");
    let spec = &w["spec"];
    assert_eq!(spec["phase"], "AUTHZ");
    assert_eq!(spec["failStrategy"], "FAIL_CLOSE");
    assert_eq!(spec["pluginName"], "peerguard");
    assert_eq!(spec["match"], json!([{"mode": "SERVER"}]));
    assert_eq!(spec["selector"]["matchLabels"]["app"], "nginx");
    assert!(spec["url"].as_str().unwrap().starts_with("oci://"));
    let sha = spec["sha256"].as_str().unwrap();
    assert!(sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_hexdigit()), "{sha}");
    let policy: Value =
        serde_yaml::from_str(&std::fs::read_to_string(repo_root().join("istio/peerguard/policy.yaml")).unwrap())
            .unwrap();
    assert_eq!(spec["pluginConfig"], policy, "pluginConfig differs from istio/peerguard/policy.yaml: run `just oci`");
    peerguard_policy::Engine::from_json(&policy.to_string()).unwrap();
}

#[test]
fn gateway_wasmplugin_targets_a_gateway_and_not_a_selector() {
    let w = wasmplugin("istio/peerguard/wasmplugin-gateway.yaml");
    let spec = &w["spec"];
    assert_eq!(spec["targetRefs"][0]["kind"], "Gateway");
    assert_eq!(spec["targetRefs"][0]["group"], "gateway.networking.k8s.io");
    assert!(spec.get("selector").is_none());
    assert_eq!(spec["phase"], "AUTHZ");
    assert_eq!(spec["failStrategy"], "FAIL_CLOSE");
    peerguard_policy::Engine::from_json(&spec["pluginConfig"].to_string()).unwrap();
}

#[test]
fn every_meshed_namespace_has_a_strict_peer_authentication() {
    let all = manifests();
    let meshed: BTreeSet<String> = all
        .iter()
        .filter(|(_, d)| d["kind"] == "Namespace" && d["metadata"]["labels"]["istio-injection"] == "enabled")
        .map(|(_, d)| d["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    let strict: BTreeSet<String> = all
        .iter()
        .filter(|(_, d)| d["kind"] == "PeerAuthentication" && d["spec"]["mtls"]["mode"] == "STRICT")
        .map(|(_, d)| d["metadata"]["namespace"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(meshed, strict);
    assert!(meshed.contains("client") && meshed.contains("server"));
}

#[test]
fn workloads_run_as_their_own_service_accounts() {
    let all = manifests();
    let sas: BTreeSet<(String, String)> = all
        .iter()
        .filter(|(_, d)| d["kind"] == "ServiceAccount")
        .map(|(_, d)| {
            (d["metadata"]["namespace"].as_str().unwrap().into(), d["metadata"]["name"].as_str().unwrap().into())
        })
        .collect();
    let mut n = 0;
    for (_, d) in all.iter().filter(|(_, d)| d["kind"] == "Deployment") {
        let ns = d["metadata"]["namespace"].as_str().unwrap().to_string();
        let sa = d["spec"]["template"]["spec"]["serviceAccountName"].as_str().unwrap().to_string();
        assert!(sas.contains(&(ns.clone(), sa.clone())), "{ns}/{sa} has no ServiceAccount");
        n += 1;
    }
    assert!(n >= 3);
}

#[test]
fn kustomizations_list_existing_files() {
    for k in ["istio/base/kustomization.yaml", "istio/peerguard/kustomization.yaml"] {
        let path = repo_root().join(k);
        let doc = load_yaml_docs(&path).unwrap().remove(0);
        for r in doc["resources"].as_array().unwrap() {
            let f = path.parent().unwrap().join(r.as_str().unwrap());
            assert!(f.is_file(), "{k}: {} missing", f.display());
        }
    }
}

/// peerguard's own placement rule, beyond the CRD: a policy for a waypoint (`proxy: waypoint`)
/// must be attached with `targetRefs`, since a waypoint ignores `selector` (the filter would
/// silently not run there), and a sidecar policy must not target a waypoint's Service.
fn placement_errors(doc: &Value) -> Vec<String> {
    let spec = &doc["spec"];
    let config = if doc["kind"] == "TrafficExtension" { &spec["wasm"]["pluginConfig"] } else { &spec["pluginConfig"] };
    let waypoint = config["proxy"] == "waypoint";
    let targets_service =
        spec["targetRefs"].as_array().into_iter().flatten().any(|t| t["kind"] == "Service" && t["group"] == "");
    let mut errors = Vec::new();
    if waypoint && spec.get("selector").is_some() {
        errors.push("proxy: waypoint with a selector: a waypoint ignores selector; use targetRefs".to_string());
    }
    if waypoint && spec.get("targetRefs").is_none() {
        errors.push("proxy: waypoint without targetRefs".to_string());
    }
    if targets_service && !waypoint {
        errors.push("targetRefs to a Service (a waypoint) with a policy that is not proxy: waypoint".to_string());
    }
    errors
}

fn manifest(file: &str) -> Value {
    load_yaml_docs(&repo_root().join(file)).unwrap().remove(0)
}

/// A shipped policy as `peerguard render` embeds it (loaded and compiled by the CLI's one loader).
fn policy_file(file: &str) -> Value {
    peerguard_cli::policy_file::PolicyFile::load(&repo_root().join(file)).unwrap().value
}

#[test]
fn every_shipped_plugin_is_placed_where_its_policy_can_work() {
    let mut n = 0;
    for (f, doc) in manifests() {
        if matches!(doc["kind"].as_str(), Some("TrafficExtension" | "WasmPlugin")) {
            assert_eq!(placement_errors(&doc), Vec::<String>::new(), "{}", rel(&f));
            n += 1;
        }
    }
    assert!(n >= 4, "{n}");
}

#[test]
fn trafficextension_schema_catches_what_the_api_server_would_refuse() {
    let schemas = Schemas::load().unwrap();
    let good = json!({
        "apiVersion": "extensions.istio.io/v1alpha1", "kind": "TrafficExtension",
        "metadata": {"name": "peerguard", "namespace": "server"},
        "spec": {"phase": "AUTHZ", "selector": {"matchLabels": {"app": "nginx"}}, "match": [{"mode": "SERVER"}],
                 "wasm": {"url": "oci://localhost:5000/peerguard:0.1.0", "failStrategy": "FAIL_CLOSE",
                          "pluginName": "peerguard", "pluginConfig": {"anything": [1, 2]}}}
    });
    schemas.validate(&good).unwrap();
    let refused = |edit: &dyn Fn(&mut Value)| {
        let mut d = good.clone();
        edit(&mut d);
        schemas.validate(&d).expect_err(&format!("should be refused: {d}")).join("; ")
    };
    // Both a Wasm module and Lua code; neither.
    let e = refused(&|d| d["spec"]["lua"] = json!({"inlineCode": "function envoy_on_request(h) end"}));
    assert!(e.contains("exactly one of wasm or lua"), "{e}");
    let e = refused(&|d| {
        d["spec"].as_object_mut().unwrap().remove("wasm");
    });
    assert!(e.contains("exactly one of wasm or lua"), "{e}");
    // selector and targetRefs together.
    let e = refused(&|d| d["spec"]["targetRefs"] = json!([{"kind": "Service", "group": "", "name": "nginx"}]));
    assert!(e.contains("only one of targetRefs or selector"), "{e}");
    // WasmPlugin's flat layout is not a TrafficExtension: url at the top is an unknown field.
    let e = refused(&|d| d["spec"]["url"] = json!("oci://x/y:1"));
    assert!(e.contains("url"), "{e}");
    let e = refused(&|d| d["spec"]["wasm"]["failStratgy"] = json!("FAIL_CLOSE"));
    assert!(e.contains("failStratgy"), "{e}");
    refused(&|d| {
        d["spec"]["wasm"].as_object_mut().unwrap().remove("url");
    });
    let e = refused(&|d| d["spec"]["wasm"]["url"] = json!("ftp://x/y"));
    assert!(e.contains("url must have schema"), "{e}");
    refused(&|d| d["spec"]["phase"] = json!("AUTHORIZE"));
    refused(&|d| d["spec"]["wasm"]["failStrategy"] = json!("FAIL_SOMETIMES"));
    refused(&|d| d["spec"]["wasm"]["sha256"] = json!("ABC"));
    refused(&|d| d["spec"]["match"] = json!([{"mode": "INBOUND"}]));
    refused(&|d| d["spec"]["match"] = json!([{"ports": [{"number": 0}]}]));
    refused(&|d| d["spec"]["selector"] = json!({"matchLabel": {"app": "x"}}));
    refused(&|d| d["apiVersion"] = json!("extensions.istio.io/v1"));
    // Lua alone is valid; oversized Lua is not.
    let mut lua = good.clone();
    lua["spec"].as_object_mut().unwrap().remove("wasm");
    lua["spec"]["lua"] = json!({"inlineCode": "function envoy_on_request(h) end"});
    schemas.validate(&lua).unwrap();
    lua["spec"]["lua"]["inlineCode"] = json!("-".repeat(65537));
    schemas.validate(&lua).unwrap_err();
    // targetRefs: no cross-namespace references, at most 16, kind required.
    let mut t = good.clone();
    t["spec"].as_object_mut().unwrap().remove("selector");
    t["spec"]["targetRefs"] = json!([{"kind": "Service", "group": "", "name": "nginx"}]);
    schemas.validate(&t).unwrap();
    let mut x = t.clone();
    x["spec"]["targetRefs"][0]["namespace"] = json!("other");
    assert!(schemas.validate(&x).unwrap_err().join(" ").contains("cross namespace"));
    let mut x = t.clone();
    x["spec"]["targetRefs"] = json!(vec![json!({"kind": "Service", "name": "s"}); 17]);
    schemas.validate(&x).unwrap_err();
    let mut x = t.clone();
    x["spec"]["targetRefs"] = json!([{"name": "nginx"}]);
    schemas.validate(&x).unwrap_err();
}

#[test]
fn a_waypoint_policy_on_a_selector_or_a_sidecar_policy_on_a_waypoint_is_refused() {
    let waypoint = manifest("istio/peerguard/trafficextension-waypoint.yaml");
    assert!(placement_errors(&waypoint).is_empty());
    // The same TrafficExtension with a selector: valid for the API server, but the waypoint
    // would ignore it.
    let mut with_selector = waypoint.clone();
    with_selector["spec"].as_object_mut().unwrap().remove("targetRefs");
    with_selector["spec"]["selector"] = json!({"matchLabels": {"app": "nginx"}});
    Schemas::load().unwrap().validate(&with_selector).unwrap();
    assert!(placement_errors(&with_selector).join(" ").contains("ignores selector"));
    // The sidecar policy sent to a waypoint's Service.
    let mut sidecar_at_waypoint = manifest("istio/peerguard/trafficextension.yaml");
    sidecar_at_waypoint["spec"].as_object_mut().unwrap().remove("selector");
    sidecar_at_waypoint["spec"]["targetRefs"] = waypoint["spec"]["targetRefs"].clone();
    assert!(placement_errors(&sidecar_at_waypoint).join(" ").contains("not proxy: waypoint"));
}

#[test]
fn sidecar_trafficextension_carries_the_same_settings_as_the_wasmplugin() {
    let te = manifest("istio/peerguard/trafficextension.yaml");
    let wp = manifest("istio/peerguard/wasmplugin.yaml");
    let (t, w) = (&te["spec"], &wp["spec"]);
    assert_eq!(te["metadata"], wp["metadata"]);
    for k in ["selector", "phase", "match"] {
        assert_eq!(t[k], w[k], "spec.{k}");
    }
    for k in ["url", "sha256", "imagePullPolicy", "failStrategy", "pluginName", "pluginConfig"] {
        assert_eq!(t["wasm"][k], w[k], "spec.wasm.{k} differs from the WasmPlugin's spec.{k}: run `just oci`");
    }
    assert_eq!(t["phase"], "AUTHZ");
    assert_eq!(t["wasm"]["failStrategy"], "FAIL_CLOSE");
    assert_eq!(t["match"], json!([{"mode": "SERVER"}]));
    assert_eq!(t["wasm"]["pluginConfig"], policy_file("istio/peerguard/policy.yaml"));
}

#[test]
fn waypoint_trafficextension_targets_a_service_with_an_identity_only_policy() {
    let te = manifest("istio/peerguard/trafficextension-waypoint.yaml");
    let spec = &te["spec"];
    assert_eq!(spec["targetRefs"], json!([{"kind": "Service", "group": "", "name": "nginx"}]));
    assert!(spec.get("selector").is_none() && spec.get("match").is_none(), "{spec}");
    assert_eq!(spec["phase"], "AUTHZ");
    assert_eq!(spec["wasm"]["failStrategy"], "FAIL_CLOSE");
    let config = &spec["wasm"]["pluginConfig"];
    assert_eq!(*config, policy_file("istio/peerguard/waypoint-policy.yaml"), "run `just oci`");
    assert_eq!(config["proxy"], "waypoint");
    let engine = peerguard_policy::Engine::from_json(&config.to_string()).unwrap();
    assert_eq!(engine.proxy(), peerguard_policy::Proxy::Waypoint);
    // The sidecar policy's certificate block would not compile at a waypoint.
    let mut with_cert = config.clone();
    with_cert["certificate"] = policy_file("istio/peerguard/policy.yaml")["certificate"].clone();
    let err = peerguard_policy::Engine::from_json(&with_cert.to_string()).unwrap_err().to_string();
    assert!(err.contains("certificate") && err.contains("waypoint"), "{err}");
}

mod rendered {
    use super::*;
    use peerguard_cli::render::trafficextension::{trafficextension_value, TrafficExtensionArgs};
    use peerguard_cli::render::{RenderError, WasmPluginArgs};

    fn args(policy: &str) -> TrafficExtensionArgs {
        TrafficExtensionArgs {
            plugin: WasmPluginArgs {
                policy: repo_root().join(policy),
                url: "oci://ghcr.io/example/peerguard:0.1.0".into(),
                wasm: None,
                sha256: Some("a".repeat(64)),
                name: "peerguard".into(),
                namespace: Some("server".into()),
                plugin_name: "peerguard".into(),
                selector: Vec::new(),
                gateway: None,
                out: None,
            },
            waypoint_service: None,
        }
    }

    #[test]
    fn render_trafficextension_output_validates_in_every_placement() {
        let schemas = Schemas::load().unwrap();
        let mut sidecar = args("istio/peerguard/policy.yaml");
        sidecar.plugin.selector = vec!["app=nginx".into()];
        let mut gateway = args("istio/peerguard/gateway-policy.yaml");
        gateway.plugin.gateway = Some("ingress".into());
        let mut waypoint = args("istio/peerguard/waypoint-policy.yaml");
        waypoint.waypoint_service = Some("nginx".into());
        for (what, a) in [("sidecar", sidecar), ("gateway", gateway), ("waypoint", waypoint)] {
            let v = trafficextension_value(&a).unwrap();
            schemas.validate(&v).unwrap_or_else(|e| panic!("{what}: {e:?}\n{v:#}"));
            assert!(placement_errors(&v).is_empty(), "{what}: {:?}", placement_errors(&v));
            assert_eq!(v["spec"]["wasm"]["sha256"], "a".repeat(64), "{what}");
            assert_eq!(v["spec"]["phase"], "AUTHZ", "{what}");
            assert_eq!(v["spec"]["wasm"]["failStrategy"], "FAIL_CLOSE", "{what}");
        }
    }

    #[test]
    fn render_refuses_a_waypoint_with_a_sidecar_policy_and_a_selector_with_a_waypoint_policy() {
        let mut a = args("istio/peerguard/policy.yaml");
        a.waypoint_service = Some("nginx".into());
        let e = trafficextension_value(&a).unwrap_err();
        assert!(matches!(e, RenderError::Unsafe(_)) && e.to_string().contains("proxy: waypoint"), "{e}");
        let mut a = args("istio/peerguard/waypoint-policy.yaml");
        a.plugin.selector = vec!["app=nginx".into()];
        let e = trafficextension_value(&a).unwrap_err();
        assert!(e.to_string().contains("ignores `selector`"), "{e}");
    }
}
