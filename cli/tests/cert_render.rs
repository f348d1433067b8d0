//! `peerguard cert` and `peerguard render`, run as the real binary: certificates parse with the
//! requested identities, lifetimes and key types; rendered manifests validate against Istio's CRD
//! schemas; a rendered Envoy config passes `envoy --mode validate`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use std::path::{Path, PathBuf};

use common::{ok, peerguard, s};
use peerguard_e2e::istio_schema::{parse_yaml_docs, Schemas};
use serde_json::Value;
use x509_parser::prelude::*;

fn pem_der(path: &Path) -> Vec<Vec<u8>> {
    let text = std::fs::read(path).unwrap();
    x509_parser::pem::Pem::iter_from_buffer(&text).map(|p| p.unwrap().contents).collect()
}

fn with_cert<R>(path: &Path, f: impl FnOnce(&X509Certificate<'_>) -> R) -> R {
    let der = pem_der(path).remove(0);
    let (_, c) = X509Certificate::from_der(&der).unwrap();
    f(&c)
}

fn lifetime_secs(c: &X509Certificate<'_>) -> i64 {
    c.validity().not_after.timestamp() - c.validity().not_before.timestamp()
}

/// A CA in a fresh temp dir; returns (dir, ca.pem, ca-key.pem).
fn ca(extra: &[&str]) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec!["cert", "ca", "--out-dir", s(dir.path()), "--cn", "test root"];
    args.extend_from_slice(extra);
    ok(&args);
    let (c, k) = (dir.path().join("ca.pem"), dir.path().join("ca-key.pem"));
    (dir, c, k)
}

fn issue(dir: &Path, ca: &Path, key: &Path, extra: &[&str]) -> String {
    let mut args = vec!["cert", "issue", "--ca", s(ca), "--ca-key", s(key), "--out-dir", s(dir)];
    args.extend_from_slice(extra);
    ok(&args).stdout
}

#[test]
fn cert_ca_is_a_self_signed_ca_with_the_requested_subject_and_ttl() {
    let (_d, ca, key) = ca(&["--ttl", "48h"]);
    with_cert(&ca, |c| {
        assert!(c.is_ca());
        assert_eq!(c.subject().to_string(), c.issuer().to_string());
        assert!(c.subject().to_string().contains("CN=test root"), "{}", c.subject());
        assert_eq!(lifetime_secs(c), 48 * 3600);
    });
    assert!(std::fs::read_to_string(key).unwrap().contains("PRIVATE KEY"));
}

#[test]
fn cert_issue_spiffe_workload_has_the_uri_san_ttl_both_ekus_and_chains_to_the_ca() {
    let (d, ca, key) = ca(&[]);
    let summary: Value = serde_json::from_str(&issue(
        d.path(),
        &ca,
        &key,
        &["--name", "web", "--workload", "frontend/web", "--ttl", "12h"],
    ))
    .unwrap();
    assert_eq!(summary["sans"][0], "URI:spiffe://cluster.local/ns/frontend/sa/web");
    let leaf = d.path().join("web.pem");
    with_cert(&leaf, |c| {
        let san = c.subject_alternative_name().unwrap().unwrap();
        let uris: Vec<String> = san
            .value
            .general_names
            .iter()
            .filter_map(|n| if let GeneralName::URI(u) = n { Some(u.to_string()) } else { None })
            .collect();
        assert_eq!(uris, ["spiffe://cluster.local/ns/frontend/sa/web"]);
        assert_eq!(lifetime_secs(c), 12 * 3600);
        assert!(!c.is_ca());
        let eku = c.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.client_auth && eku.server_auth);
        assert!(c.subject().to_string().contains("CN=web"));
        assert!(c.issuer().to_string().contains("CN=test root"));
    });
    // The engine verifies the chain to the CA and derives the Istio identity from it.
    let policy = d.path().join("policy.json");
    let anchor = std::fs::read_to_string(&ca).unwrap();
    let p = serde_json::json!({"mtls": "strict", "certificate": {"trustAnchors": [anchor], "maxLifetime": "12h", "requireClientAuth": true},
        "policies": [{"name": "fe", "action": "ALLOW", "rules": [{"from": [{"source": {"namespaces": ["frontend"]}}]}]}]});
    std::fs::write(&policy, p.to_string()).unwrap();
    let out: Value = serde_json::from_str(&ok(&["check", "--policy", s(&policy), "--cert", s(&leaf)]).stdout).unwrap();
    assert_eq!(out["decision"], "allow", "{out}");
    assert_eq!(out["principal"], "cluster.local/ns/frontend/sa/web");
}

#[test]
fn cert_issue_key_types_dns_and_cn_identities() {
    let (d, ca, key) = ca(&["--key-type", "ecdsa-p384"]);
    with_cert(&ca, |c| {
        assert_eq!(
            c.public_key().algorithm.parameters.as_ref().unwrap().as_oid().unwrap().to_id_string(),
            "1.3.132.0.34"
        )
    });
    issue(
        d.path(),
        &ca,
        &key,
        &["--name", "api", "--dns", "api.example.com", "--dns", "api", "--usage", "server", "--key-type", "ed25519"],
    );
    with_cert(&d.path().join("api.pem"), |c| {
        assert_eq!(c.public_key().algorithm.algorithm.to_id_string(), "1.3.101.112", "Ed25519");
        let names: Vec<String> =
            c.subject_alternative_name().unwrap().unwrap().value.general_names.iter().map(|n| n.to_string()).collect();
        assert_eq!(names, ["DNSName(api.example.com)", "DNSName(api)"]);
        assert!(c.subject().to_string().contains("CN=api.example.com"));
        let eku = c.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.server_auth && !eku.client_auth);
    });
    issue(d.path(), &ca, &key, &["--name", "alice", "--cn", "alice", "--usage", "client"]);
    with_cert(&d.path().join("alice.pem"), |c| {
        assert_eq!(c.subject().to_string(), "CN=alice");
        assert!(c.subject_alternative_name().unwrap().is_none());
        assert_eq!(c.public_key().algorithm.algorithm.to_id_string(), "1.2.840.10045.2.1", "ECDSA (P-256 default)");
    });
}

#[test]
fn cert_issue_writes_a_kubernetes_tls_secret() {
    let (d, ca, key) = ca(&[]);
    issue(
        d.path(),
        &ca,
        &key,
        &[
            "--name",
            "gw",
            "--dns",
            "gw.example.com",
            "--k8s-secret",
            "--namespace",
            "istio-ingress",
            "--secret-name",
            "gw-cert",
        ],
    );
    let secret = parse_yaml_docs(&std::fs::read_to_string(d.path().join("gw-secret.yaml")).unwrap()).unwrap().remove(0);
    assert_eq!(secret["kind"], "Secret");
    assert_eq!(secret["type"], "kubernetes.io/tls");
    assert_eq!(secret["metadata"]["name"], "gw-cert");
    assert_eq!(secret["metadata"]["namespace"], "istio-ingress");
    let data = &secret["stringData"];
    assert_eq!(data["tls.crt"].as_str().unwrap(), std::fs::read_to_string(d.path().join("gw.pem")).unwrap());
    assert_eq!(data["tls.key"].as_str().unwrap(), std::fs::read_to_string(d.path().join("gw-key.pem")).unwrap());
    assert_eq!(data["ca.crt"].as_str().unwrap(), std::fs::read_to_string(&ca).unwrap());
}

#[test]
fn cert_ca_writes_istios_plug_in_ca_layout() {
    let (d, root, root_key) = ca(&[]);
    let inter = d.path().join("cluster1");
    ok(&[
        "cert",
        "ca",
        "--out-dir",
        s(&inter),
        "--cn",
        "cluster1 intermediate",
        "--issuer",
        s(&root),
        "--issuer-key",
        s(&root_key),
        "--istio-cacerts",
    ]);
    for f in ["ca-cert.pem", "ca-key.pem", "root-cert.pem", "cert-chain.pem", "cacerts.yaml"] {
        assert!(inter.join(f).is_file(), "{f} missing");
    }
    with_cert(&inter.join("ca-cert.pem"), |c| {
        assert!(c.is_ca());
        assert!(c.issuer().to_string().contains("CN=test root"));
        assert!(c.subject().to_string().contains("CN=cluster1 intermediate"));
    });
    assert_eq!(std::fs::read(inter.join("root-cert.pem")).unwrap(), std::fs::read(&root).unwrap());
    let chain = pem_der(&inter.join("cert-chain.pem"));
    assert_eq!(chain.len(), 2);
    assert_eq!(chain[0], pem_der(&inter.join("ca-cert.pem"))[0]);
    assert_eq!(chain[1], pem_der(&root)[0]);
    let secret = parse_yaml_docs(&std::fs::read_to_string(inter.join("cacerts.yaml")).unwrap()).unwrap().remove(0);
    assert_eq!(secret["metadata"]["name"], "cacerts");
    assert_eq!(secret["metadata"]["namespace"], "istio-system");
    let keys: Vec<&String> = secret["stringData"].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["ca-cert.pem", "ca-key.pem", "cert-chain.pem", "root-cert.pem"]);
    // A workload certificate from the intermediate verifies to the root through the chain.
    issue(&inter, &inter.join("ca-cert.pem"), &inter.join("ca-key.pem"), &["--name", "w", "--workload", "ns1/sa1"]);
    let policy = d.path().join("p.json");
    let p = serde_json::json!({"certificate": {"trustAnchors": [std::fs::read_to_string(&root).unwrap()]}});
    std::fs::write(&policy, p.to_string()).unwrap();
    let out: Value = serde_json::from_str(
        &ok(&[
            "check",
            "--policy",
            s(&policy),
            "--cert",
            s(&inter.join("w.pem")),
            "--chain",
            s(&inter.join("ca-cert.pem")),
        ])
        .stdout,
    )
    .unwrap();
    assert_eq!(out["decision"], "allow", "{out}");
}

#[test]
fn cert_rejects_bad_input_with_exit_code_2() {
    let (d, ca, key) = ca(&[]);
    for extra in [
        vec!["--name", "x", "--workload", "frontend/web", "--ttl", "soon"],
        vec!["--name", "x", "--spiffe", "spiffe://Bad Domain/x"],
        vec!["--name", "x", "--workload", "no-slash"],
        vec!["--name", "x"],
    ] {
        let mut args = vec!["cert", "issue", "--ca", s(&ca), "--ca-key", s(&key), "--out-dir", s(d.path())];
        args.extend_from_slice(&extra);
        let out = peerguard(&args);
        assert_eq!(out.code, 2, "{extra:?}: {}", out.stderr);
        assert!(!out.stderr.is_empty());
    }
}

fn policy_file(dir: &Path) -> PathBuf {
    let p = dir.join("policy.yaml");
    std::fs::write(
        &p,
        "mtls: strict\nidentity: [spiffe]\npolicies:\n  - name: a\n    action: ALLOW\n    rules:\n      - from: [{source: {namespaces: [client]}}]\n",
    )
    .unwrap();
    p
}

fn fake_wasm(dir: &Path) -> PathBuf {
    let p = dir.join("m.wasm");
    std::fs::write(&p, b"\0asm\x01\0\0\0peerguard-test-module").unwrap();
    p
}

#[test]
fn render_wasmplugin_validates_against_the_crd_and_embeds_policy_and_image_digest() {
    let d = tempfile::tempdir().unwrap();
    let (policy, wasm) = (policy_file(d.path()), fake_wasm(d.path()));
    let schemas = Schemas::load().unwrap();
    let url = "oci://registry.example.com/peerguard:1.0";
    let out = ok(&[
        "render",
        "wasmplugin",
        "--policy",
        s(&policy),
        "--url",
        url,
        "--wasm",
        s(&wasm),
        "--namespace",
        "server",
        "--selector",
        "app=nginx",
    ])
    .stdout;
    let doc = parse_yaml_docs(&out).unwrap().remove(0);
    schemas.validate(&doc).unwrap_or_else(|e| panic!("{}\n{out}", e.join("\n")));
    let spec = &doc["spec"];
    assert_eq!((spec["phase"].as_str(), spec["failStrategy"].as_str()), (Some("AUTHZ"), Some("FAIL_CLOSE")));
    assert_eq!(spec["match"][0]["mode"], "SERVER");
    assert_eq!(spec["pluginConfig"]["policies"][0]["name"], "a");
    // For oci:// Istio compares sha256 with the image manifest digest: the one `render oci` prints.
    let img = d.path().join("oci");
    let built: Value = serde_json::from_str(
        &ok(&["render", "oci", "--wasm", s(&wasm), "--out", s(&img), "--tar", s(&d.path().join("i.tar"))]).stdout,
    )
    .unwrap();
    assert_eq!(format!("sha256:{}", spec["sha256"].as_str().unwrap()), built["manifestDigest"].as_str().unwrap());
    // For https:// it is the module's own SHA-256, which is plugin.wasm's.
    let out = ok(&[
        "render",
        "wasmplugin",
        "--policy",
        s(&policy),
        "--url",
        "https://example.com/peerguard.wasm",
        "--wasm",
        s(&wasm),
    ])
    .stdout;
    let doc = parse_yaml_docs(&out).unwrap().remove(0);
    schemas.validate(&doc).unwrap();
    assert_eq!(doc["spec"]["sha256"].as_str().unwrap(), built["pluginWasmSha256"].as_str().unwrap());
}

#[test]
fn render_wasmplugin_gateway_variant_uses_target_refs() {
    let d = tempfile::tempdir().unwrap();
    let policy = policy_file(d.path());
    let out = ok(&[
        "render",
        "wasmplugin",
        "--policy",
        s(&policy),
        "--url",
        "oci://r.example/p:1",
        "--gateway",
        "ingress",
        "--namespace",
        "istio-ingress",
    ])
    .stdout;
    let doc = parse_yaml_docs(&out).unwrap().remove(0);
    Schemas::load().unwrap().validate(&doc).unwrap();
    assert_eq!(doc["spec"]["targetRefs"][0]["name"], "ingress");
    assert!(doc["spec"].get("selector").is_none() && doc["spec"].get("sha256").is_none());
}

#[test]
fn render_refuses_an_invalid_policy_naming_its_path() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("bad.yaml");
    std::fs::write(&p, "mtls: strict\npolicies:\n  - name: a\n    action: ALOW\n").unwrap();
    for args in [
        vec!["render", "wasmplugin", "--policy", s(&p), "--url", "oci://r/p:1"],
        vec!["render", "envoy", "--policy", s(&p)],
    ] {
        let out = peerguard(&args);
        assert_eq!(out.code, 2);
        let err = &out.stderr;
        assert!(
            err.contains("policies[0].action") || err.contains("policies.0.action") || err.contains("action"),
            "{err}"
        );
    }
}

#[test]
fn render_envoy_embeds_the_policy_as_a_string_value_and_passes_envoy_validate() {
    let root = peerguard_e2e::repo_root();
    let d = tempfile::tempdir().unwrap();
    let policy = policy_file(d.path());
    let cfg = d.path().join("inbound.yaml");
    let wasm = peerguard_e2e::envoy::wasm_path().unwrap();
    ok(&["render", "envoy", "--policy", s(&policy), "--wasm", s(&wasm), "--out", s(&cfg)]);
    let doc = parse_yaml_docs(&std::fs::read_to_string(&cfg).unwrap()).unwrap().remove(0);
    let conf = &doc["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
        ["http_filters"][0]["typed_config"]["config"];
    assert_eq!(conf["root_id"], "peerguard");
    assert_eq!(conf["configuration"]["@type"], "type.googleapis.com/google.protobuf.StringValue");
    let embedded: Value = serde_json::from_str(conf["configuration"]["value"].as_str().unwrap()).unwrap();
    assert_eq!(embedded["policies"][0]["name"], "a");
    // Default certificate paths (envoy/certs) resolve from the repository root.
    peerguard_e2e::sidecar::validate(&cfg, &root).unwrap();
}

#[test]
fn render_envoy_native_loads_the_dynamic_module_with_the_same_policy_and_passes_envoy_validate() {
    let root = peerguard_e2e::repo_root();
    let d = tempfile::tempdir().unwrap();
    let policy = policy_file(d.path());
    let cfg = d.path().join("native.yaml");
    peerguard_e2e::envoy::native_path().unwrap();
    ok(&["render", "envoy", "--native", "--policy", s(&policy), "--out", s(&cfg)]);
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(text.contains("ENVOY_DYNAMIC_MODULES_SEARCH_PATH"), "{text}");
    let doc = parse_yaml_docs(&text).unwrap().remove(0);
    let filter = &rendered_hcm(&doc)["http_filters"][0]["typed_config"];
    assert_eq!(filter["@type"], peerguard_filter::envoy_config::NATIVE_TYPE_URL);
    assert_eq!(filter["dynamic_module_config"]["name"], "peerguard_native");
    let embedded: Value = serde_json::from_str(filter["filter_config"]["value"].as_str().unwrap()).unwrap();
    assert_eq!(embedded["policies"][0]["name"], "a");
    // The wasm path and plugin name belong to the Wasm filter: refused with --native.
    let bad = peerguard(&["render", "envoy", "--native", "--policy", s(&policy), "--wasm", "x.wasm"]);
    assert_ne!(bad.code, 0);
    peerguard_e2e::sidecar::validate(&cfg, &root).unwrap();
}

/// The HTTP connection manager of a rendered inbound config.
fn rendered_hcm(doc: &Value) -> &Value {
    &doc["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
}

#[test]
fn render_envoy_normalizes_paths_in_envoy_as_a_second_layer() {
    let d = tempfile::tempdir().unwrap();
    let policy = policy_file(d.path());
    let doc = parse_yaml_docs(&ok(&["render", "envoy", "--policy", s(&policy)]).stdout).unwrap().remove(0);
    let hcm = rendered_hcm(&doc);
    assert_eq!(hcm["normalize_path"], true, "{hcm}");
    assert_eq!(hcm["merge_slashes"], true, "{hcm}");
    assert_eq!(hcm["path_with_escaped_slashes_action"], "REJECT_REQUEST", "{hcm}");
    // By default Envoy itself verifies the client's chain against --ca.
    let vc = &doc["static_resources"]["listeners"][0]["filter_chains"][0]["transport_socket"]["typed_config"]
        ["common_tls_context"]["validation_context"];
    assert_eq!(vc["trust_chain_verification"], "VERIFY_TRUST_CHAIN", "{vc}");
}

#[test]
fn render_envoy_names_the_plugin_fails_closed_and_turns_counter_names_into_labels() {
    let d = tempfile::tempdir().unwrap();
    let policy = policy_file(d.path());
    let out = ok(&["render", "envoy", "--policy", s(&policy), "--plugin-name", "pg-inbound"]).stdout;
    let doc = parse_yaml_docs(&out).unwrap().remove(0);
    let filter = &rendered_hcm(&doc)["http_filters"][0];
    assert_eq!(filter["name"], "peerguard", "{filter}");
    let conf = &filter["typed_config"]["config"];
    assert_eq!(
        (&conf["name"], &conf["root_id"]),
        (&serde_json::json!("pg-inbound"), &serde_json::json!("pg-inbound")),
        "{conf}"
    );
    assert_eq!(conf["vm_config"]["vm_id"], "pg-inbound", "{conf}");
    assert_eq!(conf["fail_open"], false, "{conf}");
    // Without the extractors the reason and policy stay in the counter names, unlabelled.
    assert_eq!(doc["stats_config"]["stats_tags"], peerguard_filter::envoy_config::stats_tags());
    let reason = &doc["stats_config"]["stats_tags"][0];
    assert_eq!(reason["tag_name"], "reason", "{reason}");
}

/// A policy whose `certificate` block is `certificate_yaml` (indented under `certificate:`).
fn policy_with_certificate(dir: &Path, name: &str, certificate_yaml: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(
        &p,
        format!(
            "mtls: strict\nidentity: [spiffe]\ncertificate:\n{certificate_yaml}policies:\n  - name: a\n    action: ALLOW\n    rules:\n      - from: [{{source: {{namespaces: [client]}}}}]\n"
        ),
    )
    .unwrap();
    p
}

/// The demo CA of envoy/certs as a YAML block scalar, indented for a list item.
fn demo_ca_block(indent: &str) -> String {
    let pem = std::fs::read_to_string(peerguard_e2e::repo_root().join("envoy/certs/ca.pem")).unwrap();
    pem.lines().map(|l| format!("{indent}{l}\n")).collect()
}

#[test]
fn render_envoy_refuses_accept_untrusted_when_no_trust_anchor_would_catch_a_self_made_certificate() {
    let d = tempfile::tempdir().unwrap();
    // Certificate checks, but none of them verifies who signed the certificate.
    let policy = policy_with_certificate(d.path(), "p.yaml", "  requireClientAuth: true\n  rejectSelfSigned: true\n");
    let out_file = d.path().join("inbound.yaml");
    let out = peerguard(&[
        "render",
        "envoy",
        "--policy",
        s(&policy),
        "--trust-chain-verification",
        "ACCEPT_UNTRUSTED",
        "--out",
        s(&out_file),
    ]);
    let err = &out.stderr;
    assert_eq!(out.code, 2, "stderr: {err}");
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    assert!(!out_file.exists(), "a refused config was written");
    for want in ["ACCEPT_UNTRUSTED", "certificate.trustAnchors", "certificate.trustBundles", "self-made certificate"] {
        assert!(err.contains(want), "error does not say {want:?}: {err}");
    }
    // The policy without any certificate block is refused the same way.
    let bare = policy_file(d.path());
    let out = peerguard(&["render", "envoy", "--policy", s(&bare), "--trust-chain-verification", "ACCEPT_UNTRUSTED"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
}

#[test]
fn render_envoy_accepts_accept_untrusted_with_trust_anchors_and_passes_envoy_validate() {
    let root = peerguard_e2e::repo_root();
    let d = tempfile::tempdir().unwrap();
    let policy =
        policy_with_certificate(d.path(), "p.yaml", &format!("  trustAnchors:\n    - |\n{}", demo_ca_block("      ")));
    let cfg = d.path().join("inbound.yaml");
    let wasm = peerguard_e2e::envoy::wasm_path().unwrap();
    ok(&[
        "render",
        "envoy",
        "--policy",
        s(&policy),
        "--wasm",
        s(&wasm),
        "--trust-chain-verification",
        "ACCEPT_UNTRUSTED",
        "--out",
        s(&cfg),
    ]);
    let doc = parse_yaml_docs(&std::fs::read_to_string(&cfg).unwrap()).unwrap().remove(0);
    let vc = &doc["static_resources"]["listeners"][0]["filter_chains"][0]["transport_socket"]["typed_config"]
        ["common_tls_context"]["validation_context"];
    assert_eq!(vc["trust_chain_verification"], "ACCEPT_UNTRUSTED", "{vc}");
    peerguard_e2e::sidecar::validate(&cfg, &root).unwrap();
}
