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
    assert!(kinds.contains("WasmPlugin") && kinds.contains("PeerAuthentication"), "{kinds:?}");
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
