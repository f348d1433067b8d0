//! Every Envoy config the repository ships passes `envoy --mode validate`; the docker compose
//! file references files that exist; and its topology answers as envoy/README.md says, run
//! without Docker. Fails (never skips) without Envoy or the built module.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use peerguard_cli::live::InitArgs;
use peerguard_e2e::envoy::wasm_path;
use peerguard_e2e::istio_schema::{load_yaml_docs, yaml_files};
use peerguard_e2e::repo_root;
use peerguard_e2e::sidecar::validate;
use peerguard_e2e::standalone::{compose_envoys, compose_file, documented_app_port, rewrite_ports, run, table};
use serde_json::Value;

/// A YAML file is an Envoy bootstrap when its (single) document has `static_resources`.
fn shipped_envoy_configs() -> Vec<PathBuf> {
    let root = repo_root();
    let mut out = Vec::new();
    for dir in ["envoy", "istio"] {
        for f in yaml_files(&root.join(dir)).unwrap() {
            let docs = load_yaml_docs(&f).unwrap();
            if docs.iter().any(|d| d.get("static_resources").is_some()) {
                out.push(f);
            }
        }
    }
    out
}

#[test]
fn every_shipped_envoy_config_passes_envoy_validate() {
    let configs = shipped_envoy_configs();
    let names: Vec<String> = configs.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    for want in ["inbound-sidecar.yaml", "outbound-sidecar.yaml", "front-proxy.yaml", "linkerd-ingress.yaml"] {
        assert!(names.iter().any(|n| n == want), "{want} not found among {names:?}");
    }
    let scratch = scratch_root();
    let mut failures = Vec::new();
    for c in &configs {
        // Run from a copy of the repository root: the configs' relative paths (envoy/certs,
        // dist/, .run/live) resolve there exactly as they do for a user.
        let rel = c.strip_prefix(repo_root()).unwrap();
        if let Err(e) = validate(&scratch.path().join(rel), scratch.path()) {
            failures.push(format!("{e:#}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// A stand-in for the repository root: `envoy/`, `istio/` and `dist/` linked in, and `.run/live`
/// written as `just live-init` writes it (for envoy/live-reload.yaml), without touching the
/// real `.run/` (a live demo may be using it).
fn scratch_root() -> tempfile::TempDir {
    let root = repo_root();
    let d = tempfile::tempdir().unwrap();
    for dir in ["envoy", "istio", "dist"] {
        std::os::unix::fs::symlink(root.join(dir), d.path().join(dir)).unwrap();
    }
    peerguard_cli::live::init(&InitArgs {
        dir: d.path().join(".run/live"),
        policy: root.join("envoy/policy.yaml"),
        cert: root.join("envoy/certs/server.pem"),
        key: root.join("envoy/certs/server-key.pem"),
        wasm: Some(wasm_path().unwrap().display().to_string()),
        native: false,
    })
    .unwrap();
    d
}

/// Every `stats_tags` array in `v`, also inside JSON documents embedded as strings (the Istio
/// bootstrap-override ConfigMap carries its bootstrap as a JSON string).
fn find_stats_tags(v: &Value, out: &mut Vec<Value>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                if k == "stats_tags" {
                    out.push(child.clone());
                } else {
                    find_stats_tags(child, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| find_stats_tags(i, out)),
        Value::String(s) if s.trim_start().starts_with('{') => {
            if let Ok(inner) = serde_json::from_str::<Value>(s) {
                find_stats_tags(&inner, out);
            }
        }
        _ => {}
    }
}

#[test]
fn every_shipped_stats_tags_block_equals_the_filters_extractors() {
    // The regexes are copied into Envoy and Istio configs; they must stay the filter's own.
    let want = peerguard_filter::envoy_config::stats_tags();
    let mut found = Vec::new();
    for dir in ["envoy", "istio"] {
        for f in yaml_files(&repo_root().join(dir)).unwrap() {
            for doc in load_yaml_docs(&f).unwrap() {
                let mut blocks = Vec::new();
                find_stats_tags(&doc, &mut blocks);
                for b in blocks {
                    assert_eq!(
                        b,
                        want,
                        "{}: stats_tags differ from peerguard_filter::metrics::STATS_TAGS",
                        f.display()
                    );
                    found.push(f.strip_prefix(repo_root()).unwrap().display().to_string());
                }
            }
        }
    }
    // Each copy by name: the Istio ConfigMap carries its bootstrap as a JSON string, so its copy
    // is only checked if find_stats_tags looks inside strings.
    for copy in [
        "envoy/inbound-sidecar.yaml",
        "envoy/front-proxy.yaml",
        "envoy/live-reload.yaml",
        "istio/peerguard/stats-tags-bootstrap.yaml",
    ] {
        assert!(found.iter().any(|f| f == copy), "no stats_tags block checked in {copy} (checked: {found:?})");
    }
}

#[test]
fn envoy_validate_is_not_vacuous() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "static_resources:\n  listeners:\n  - name: x\n    adress: {}\n").unwrap();
    let err = validate(&bad, dir.path()).unwrap_err();
    assert!(format!("{err:#}").contains("adress"), "{err:#}");
}

/// The `configuration` StringValue of the Wasm filter, parsed as JSON.
fn embedded_policy(config: &str) -> Value {
    fn find(v: &Value) -> Option<&str> {
        match v {
            Value::Object(o) => {
                if let Some(c) = o.get("configuration") {
                    if c["@type"] == "type.googleapis.com/google.protobuf.StringValue" {
                        return c["value"].as_str();
                    }
                }
                o.values().find_map(find)
            }
            Value::Array(a) => a.iter().find_map(find),
            _ => None,
        }
    }
    let docs = load_yaml_docs(&repo_root().join(config)).unwrap();
    let text = find(&docs[0]).unwrap_or_else(|| panic!("{config}: no StringValue configuration"));
    serde_json::from_str(text).unwrap()
}

#[test]
fn embedded_policies_equal_their_documented_files_and_compile() {
    for (config, policy) in [
        ("envoy/inbound-sidecar.yaml", "envoy/policy.yaml"),
        ("envoy/front-proxy.yaml", "envoy/front-proxy-policy.yaml"),
        ("envoy/linkerd-ingress.yaml", "envoy/linkerd-ingress-policy.yaml"),
    ] {
        let embedded = embedded_policy(config);
        let file: Value = serde_yaml::from_str(&std::fs::read_to_string(repo_root().join(policy)).unwrap()).unwrap();
        assert_eq!(embedded, file, "{config} embeds a policy that differs from {policy}");
        peerguard_policy::Engine::from_json(&embedded.to_string()).unwrap_or_else(|e| panic!("{policy}: {e}"));
    }
}

fn exists_under(base: &Path, rel: &str) -> bool {
    base.join(rel).exists()
}

#[test]
fn compose_file_uses_the_official_envoy_image_and_references_existing_files() {
    let compose = compose_file().unwrap();
    let envoy_dir = repo_root().join("envoy");
    let services = compose["services"].as_object().unwrap();
    for want in ["app", "inbound", "outbound", "front-proxy", "client"] {
        assert!(services.contains_key(want), "service {want} missing");
    }
    let envoys = compose_envoys(&compose).unwrap();
    assert_eq!(envoys.len(), 3, "{envoys:?}");
    let mut mounted_wasm = false;
    for (name, svc) in services {
        // Every bind mount's source exists (relative to the compose file).
        for v in svc["volumes"].as_array().into_iter().flatten() {
            let v = v.as_str().unwrap();
            let src = v.split(':').next().unwrap();
            assert!(exists_under(&envoy_dir, src), "{name}: volume source {src} does not exist");
            if v.contains("peerguard.wasm") {
                assert!(src.ends_with("dist/peerguard.wasm"), "{v}");
                mounted_wasm = true;
            }
        }
        let image = svc["image"].as_str().unwrap_or_default();
        assert!(
            !image.is_empty() && image.contains(':') && !image.ends_with(":latest"),
            "{name}: unpinned image {image:?}"
        );
    }
    assert!(mounted_wasm, "the module is not mounted");
    for (name, cfg) in &envoys {
        let svc = &services[name];
        assert!(svc["image"].as_str().unwrap().starts_with("envoyproxy/envoy:v1.40"), "{name}: {}", svc["image"]);
        assert_eq!(svc["working_dir"], "/peerguard");
        // The config is inside the mounted envoy/ directory and exists in the repository.
        assert!(cfg.starts_with("envoy/"), "{cfg:?}");
        assert!(repo_root().join(cfg).is_file(), "{name}: {cfg:?} missing");
        // Every file the config names exists, relative to the repository root (= working_dir).
        let text = std::fs::read_to_string(repo_root().join(cfg)).unwrap();
        for line in text.lines() {
            if let Some(i) = line.find("filename: ") {
                let f = line[i + 10..].trim_end_matches(['}', ' ']).trim();
                assert!(repo_root().join(f).is_file(), "{cfg:?} names {f}, which does not exist");
            }
        }
    }
    let client = &services["client"];
    assert_eq!(client["network_mode"], "service:app");
    assert!(envoy_dir.join("compose-client.sh").is_file());
}

#[test]
fn compose_topology_runs_without_docker_and_answers_as_documented() {
    let logdir = tempfile::tempdir().unwrap();
    let calls = run(logdir.path()).unwrap();
    let t = table(&calls);
    assert!(calls.iter().all(|c| c.ok()), "{t}");
    assert_eq!(calls.len(), 8, "{t}");
}

/// Every HTTP connection manager in `v` that runs the peerguard filter (inline or by ECDS).
fn peerguard_hcms(v: &Value, out: &mut Vec<Value>) {
    match v {
        Value::Object(map) => {
            let tc = &map.get("typed_config").cloned().unwrap_or(Value::Null);
            let is_hcm = tc["@type"].as_str().is_some_and(|t| t.ends_with(".HttpConnectionManager"));
            let runs_peerguard = tc["http_filters"].as_array().into_iter().flatten().any(|f| {
                f["name"] == "peerguard"
                    || f["typed_config"]["@type"].as_str().is_some_and(|t| t.ends_with("wasm.v3.Wasm"))
            });
            if is_hcm && runs_peerguard {
                out.push(tc.clone());
            }
            map.values().for_each(|c| peerguard_hcms(c, out));
        }
        Value::Array(items) => items.iter().for_each(|i| peerguard_hcms(i, out)),
        _ => {}
    }
}

#[test]
fn every_shipped_peerguard_listener_normalizes_paths_in_envoy_as_a_second_layer() {
    let mut found = Vec::new();
    for f in yaml_files(&repo_root().join("envoy")).unwrap() {
        for doc in load_yaml_docs(&f).unwrap() {
            let mut hcms = Vec::new();
            peerguard_hcms(&doc, &mut hcms);
            for hcm in hcms {
                let name = f.file_name().unwrap().to_string_lossy().into_owned();
                assert_eq!(hcm["normalize_path"], true, "{name}: normalize_path");
                assert_eq!(hcm["merge_slashes"], true, "{name}: merge_slashes");
                assert_eq!(hcm["path_with_escaped_slashes_action"], "REJECT_REQUEST", "{name}");
                found.push(name);
            }
        }
    }
    for want in ["inbound-sidecar.yaml", "front-proxy.yaml", "live-reload.yaml"] {
        assert!(found.iter().any(|n| n == want), "no peerguard HCM found in {want} (found {found:?})");
    }
}

#[test]
fn shipped_configs_keep_their_documented_ports_and_run_without_them() {
    let compose = compose_file().unwrap();
    let app = documented_app_port(&compose).unwrap();
    assert_eq!(app, 8080);
    // Documented port -> a stand-in runtime port, as the topology fills it in.
    let ports = BTreeMap::from([(8080, 40080), (15006, 40006)]);
    let want_listener: BTreeMap<&str, u16> = BTreeMap::from([
        ("envoy/inbound-sidecar.yaml", 15006),
        ("envoy/outbound-sidecar.yaml", 15001),
        ("envoy/front-proxy.yaml", 8443),
    ]);
    for (name, cfg) in compose_envoys(&compose).unwrap() {
        let rel = cfg.to_str().unwrap();
        let mut doc = load_yaml_docs(&repo_root().join(&cfg)).unwrap().remove(0);
        let listener = &doc["static_resources"]["listeners"][0]["address"]["socket_address"]["port_value"];
        assert_eq!(listener.as_u64(), want_listener.get(rel).map(|p| u64::from(*p)), "{name}: {rel}");
        rewrite_ports(&mut doc, &ports).unwrap();
        assert_eq!(doc["admin"]["address"]["socket_address"]["port_value"], 0, "{name}");
        for l in doc["static_resources"]["listeners"].as_array().unwrap() {
            assert_eq!(l["address"]["socket_address"]["port_value"], 0, "{name}");
        }
        let text = serde_json::to_string(&doc["static_resources"]["clusters"]).unwrap();
        assert!(text.contains("\"port_value\":40080") || text.contains("\"port_value\":40006"), "{name}: {text}");
    }
    // A cluster port nothing provides is an error, never left fixed.
    let mut doc = load_yaml_docs(&repo_root().join("envoy/outbound-sidecar.yaml")).unwrap().remove(0);
    let err = rewrite_ports(&mut doc, &BTreeMap::from([(8080, 40080)])).unwrap_err();
    assert!(format!("{err:#}").contains("15006"), "{err:#}");
}
