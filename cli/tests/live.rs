//! `peerguard live init|reload|rotate`, run as the real binary on a scratch directory: what it
//! writes is what the filter would compile, and a policy or key it refuses writes nothing.
//! (tests/tests/e2e_operations.rs drives the same code against a running Envoy.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use std::path::{Path, PathBuf};

use common::{peerguard, run, s};
use peerguard_cli::policy_file::PolicyFile;
use peerguard_filter::envoy_config::{NATIVE_TYPE_URL, STRING_VALUE_TYPE_URL, WASM_TYPE_URL};
use serde_json::Value;

fn repo(rel: &str) -> String {
    peerguard_e2e::repo_root().join(rel).display().to_string()
}

/// A scratch directory with `live init` done from envoy/policy.yaml and envoy/certs.
struct Live {
    tmp: tempfile::TempDir,
    dir: PathBuf,
}

impl Live {
    /// `live init` of the Wasm build with the module /opt/peerguard/peerguard.wasm.
    fn init() -> Live {
        Live::init_with(&["--wasm", "/opt/peerguard/peerguard.wasm"])
    }

    /// `live init` with `build_args` (`--wasm PATH`, `--native`, or none).
    fn init_with(build_args: &[&str]) -> Live {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("live");
        let out = live_init(&[&["--dir", s(&dir)], build_args].concat(), None);
        assert_eq!(out.code, 0, "{}", out.stderr);
        Live { tmp, dir }
    }

    fn ecds(&self) -> Vec<u8> {
        std::fs::read(self.dir.join("ecds/peerguard.yaml")).unwrap()
    }

    fn ecds_config(&self) -> Value {
        self.ecds_typed_config()["config"].clone()
    }

    fn ecds_typed_config(&self) -> Value {
        let v: Value = serde_json::from_slice(&self.ecds()).unwrap();
        v["resources"][0]["typed_config"].clone()
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.tmp.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn data_link(&self) -> PathBuf {
        std::fs::read_link(self.dir.join("server-certs/..data")).unwrap()
    }
}

/// `peerguard live init` with envoy/policy.yaml and envoy/certs/server*, then `args`, run in
/// `cwd` (else this process's directory).
fn live_init(args: &[&str], cwd: Option<&Path>) -> common::Out {
    let (policy, cert, key) =
        (repo("envoy/policy.yaml"), repo("envoy/certs/server.pem"), repo("envoy/certs/server-key.pem"));
    let mut all = vec!["live", "init", "--policy", &policy, "--cert", &cert, "--key", &key];
    all.extend_from_slice(args);
    run(&all, cwd, None)
}

#[test]
fn init_writes_the_plugin_configuration_the_loader_compiled_and_the_server_secret() {
    let live = Live::init();
    let config = live.ecds_config();
    let loaded = PolicyFile::load(Path::new(&repo("envoy/policy.yaml"))).unwrap();
    assert_eq!(config["configuration"]["value"], loaded.json.as_str());
    assert_eq!(config["vm_config"]["code"]["local"]["filename"], "/opt/peerguard/peerguard.wasm");
    assert_eq!(config["fail_open"], false);
    let sds: Value = serde_json::from_slice(&std::fs::read(live.dir.join("sds/server.yaml")).unwrap()).unwrap();
    let tls = &sds["resources"][0]["tls_certificate"];
    assert_eq!(tls["certificate_chain"]["filename"], s(&live.dir.join("server-certs/cert.pem")));
    assert_eq!(tls["private_key"]["filename"], s(&live.dir.join("server-certs/key.pem")));
    assert_eq!(live.data_link(), PathBuf::from("..gen-1"));
    assert_eq!(
        std::fs::read(live.dir.join("server-certs/cert.pem")).unwrap(),
        std::fs::read(repo("envoy/certs/server.pem")).unwrap()
    );
}

#[test]
fn reload_refuses_an_invalid_policy_and_writes_nothing() {
    let live = Live::init();
    let before = live.ecds();
    for (name, text, needle) in [
        ("typo.yaml", "policies:\n  - name: a\n    rulez: []\n", ": policies[0].rulez: "),
        ("compile.json", r#"{"policies":[{"name":"a"},{"name":"a"}]}"#, ": policies[1].name: "),
        ("twice.json", r#"{"mtls":"strict","mtls":"permissive"}"#, ": mtls: the key \"mtls\" is given twice"),
        ("broken.yaml", "policies: [\n", ": .: not valid syntax"),
        ("empty.yaml", "", ": .: empty"),
    ] {
        let file = live.write(name, text);
        let out = peerguard(&["live", "reload", "--dir", s(&live.dir), s(&file)]);
        assert_eq!(out.code, 2, "{name}: {}", out.stderr);
        assert!(out.stderr.contains(&format!("{}{needle}", file.display())), "{name}: {}", out.stderr);
        assert!(out.stderr.contains("nothing written"), "{name}: {}", out.stderr);
        assert!(out.stdout.is_empty(), "{name}: {}", out.stdout);
        assert_eq!(live.ecds(), before, "{name}: the ECDS file changed");
    }
    // A file that does not exist is refused the same way.
    let out = peerguard(&["live", "reload", "--dir", s(&live.dir), s(&live.tmp.path().join("missing.yaml"))]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert_eq!(live.ecds(), before);
}

#[test]
fn reload_swaps_the_policy_and_keeps_the_module_unless_told() {
    let live = Live::init();
    let yaml = live.write("p.yaml", "mtls: permissive\npolicies:\n  - name: b\n    rules: [{}]\n");
    let out = peerguard(&["live", "reload", "--dir", s(&live.dir), s(&yaml)]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("swapped"), "{}", out.stdout);
    let config = live.ecds_config();
    assert_eq!(config["configuration"]["value"], PolicyFile::load(&yaml).unwrap().json.as_str());
    assert_eq!(config["vm_config"]["code"]["local"]["filename"], "/opt/peerguard/peerguard.wasm");
    // The same policy as JSON, keys in another order: the same plugin configuration string.
    let json = live.write("p.json", r#"{"policies":[{"rules":[{}],"name":"b"}],"mtls":"permissive"}"#);
    assert_eq!(peerguard(&["live", "reload", "--dir", s(&live.dir), "--wasm", "other.wasm", s(&json)]).code, 0);
    let again = live.ecds_config();
    assert_eq!(again["configuration"], config["configuration"]);
    assert_eq!(again["vm_config"]["code"]["local"]["filename"], "other.wasm");
}

#[test]
fn reload_force_writes_a_policy_the_filter_will_refuse_and_says_so() {
    let live = Live::init();
    let bad = live.write("bad.json", r#"{"policies":[{"name":"a","rulez":[]}]}"#);
    let out = peerguard(&["live", "reload", "--force", "--dir", s(&live.dir), s(&bad)]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("policies[0].rulez") && out.stderr.contains("503 config_invalid"), "{}", out.stderr);
    assert_eq!(live.ecds_config()["configuration"]["value"], r#"{"policies":[{"name":"a","rulez":[]}]}"#);
    // --force does not make a file that is not JSON or YAML into a policy.
    let before = live.ecds();
    let garbage = live.write("garbage.json", "{\"policies\": [");
    assert_eq!(peerguard(&["live", "reload", "--force", "--dir", s(&live.dir), s(&garbage)]).code, 2);
    assert_eq!(live.ecds(), before);
}

#[test]
fn reload_and_rotate_without_init_say_what_to_run() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("nothing");
    let out = peerguard(&["live", "reload", "--dir", s(&dir), &repo("envoy/policy.yaml")]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("peerguard live init"), "{}", out.stderr);
    let out = peerguard(&[
        "live",
        "rotate",
        "--dir",
        s(&dir),
        &repo("envoy/certs/server.pem"),
        &repo("envoy/certs/server-key.pem"),
    ]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("peerguard live init"), "{}", out.stderr);
    assert!(!dir.exists(), "rotate without init created {}", dir.display());
}

#[test]
fn rotate_checks_the_pair_then_moves_data_once() {
    let live = Live::init();
    let dir = s(&live.dir).to_owned();
    // Another certificate's key, a policy file as the certificate, a certificate as the key.
    for (cert, key, needle) in [
        ("envoy/certs/server.pem", "envoy/certs/frontend-key.pem", "is not the private key of"),
        ("envoy/policy.yaml", "envoy/certs/server-key.pem", "envoy/policy.yaml"),
        ("envoy/certs/server.pem", "envoy/certs/server.pem", "not a PEM private key"),
    ] {
        let out = peerguard(&["live", "rotate", "--dir", &dir, &repo(cert), &repo(key)]);
        assert_eq!(out.code, 2, "{cert} {key}: {}", out.stderr);
        assert!(out.stderr.contains(needle), "{cert} {key}: {}", out.stderr);
        assert!(out.stderr.contains("nothing written"), "{}", out.stderr);
        assert_eq!(live.data_link(), PathBuf::from("..gen-1"));
    }
    let out = peerguard(&[
        "live",
        "rotate",
        "--dir",
        &dir,
        &repo("envoy/certs/frontend.pem"),
        &repo("envoy/certs/frontend-key.pem"),
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(live.data_link(), PathBuf::from("..gen-2"));
    for (link, want) in [("cert.pem", "envoy/certs/frontend.pem"), ("key.pem", "envoy/certs/frontend-key.pem")] {
        assert_eq!(
            std::fs::read(live.dir.join("server-certs").join(link)).unwrap(),
            std::fs::read(repo(want)).unwrap()
        );
    }
}

/// The type URLs envoy/live-reload.yaml lets its `peerguard` filter take by ECDS.
fn live_reload_yaml_type_urls() -> Vec<String> {
    let text = std::fs::read_to_string(repo("envoy/live-reload.yaml")).unwrap();
    let v: Value = serde_yaml::from_str(&text).unwrap();
    let hcm = &v["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"];
    let filter = hcm["http_filters"].as_array().unwrap().iter().find(|f| f["name"] == "peerguard").unwrap();
    let urls = filter["config_discovery"]["type_urls"].as_array().unwrap();
    urls.iter().map(|u| u.as_str().unwrap().to_owned()).collect()
}

#[test]
fn init_native_writes_the_dynamic_module_filter_with_the_compiled_policy() {
    let live = Live::init_with(&["--native"]);
    let typed = live.ecds_typed_config();
    assert_eq!(typed["@type"], NATIVE_TYPE_URL);
    assert_eq!(typed["dynamic_module_config"]["name"], "peerguard_native");
    assert_eq!(typed["filter_name"], "peerguard");
    let loaded = PolicyFile::load(Path::new(&repo("envoy/policy.yaml"))).unwrap();
    assert_eq!(typed["filter_config"]["@type"], STRING_VALUE_TYPE_URL);
    assert_eq!(typed["filter_config"]["value"], loaded.json.as_str());
    // Nothing of the Wasm filter is left in it.
    assert!(typed.get("config").is_none(), "{typed}");
    assert!(!String::from_utf8(live.ecds()).unwrap().contains(".wasm"));
    // The certificate and the SDS secret are the same as for the Wasm build.
    assert_eq!(live.data_link(), PathBuf::from("..gen-1"));
    assert!(live.dir.join("sds/server.yaml").is_file());
}

#[test]
fn init_says_which_type_url_envoy_must_allow_and_how_the_native_module_is_found() {
    // The default --dir is where envoy/live-reload.yaml reads: the hint names that bootstrap,
    // which must allow the type URL just written.
    let allowed = live_reload_yaml_type_urls();
    for (args, type_url, env) in [
        (&[][..], WASM_TYPE_URL, false),
        (&["--wasm", "x/peerguard.wasm"][..], WASM_TYPE_URL, false),
        (&["--native"][..], NATIVE_TYPE_URL, true),
    ] {
        let cwd = tempfile::tempdir().unwrap();
        let out = live_init(args, Some(cwd.path()));
        assert_eq!(out.code, 0, "{args:?}: {}", out.stderr);
        let ecds: Value =
            serde_json::from_slice(&std::fs::read(cwd.path().join(".run/live/ecds/peerguard.yaml")).unwrap()).unwrap();
        assert_eq!(ecds["resources"][0]["typed_config"]["@type"], type_url, "{args:?}");
        assert!(allowed.iter().any(|u| u == type_url), "envoy/live-reload.yaml allows only {allowed:?}");
        assert!(out.stdout.contains(&format!("type_urls: [{type_url}]")), "{args:?}: {}", out.stdout);
        assert!(out.stdout.contains("envoy -c envoy/live-reload.yaml"), "{args:?}: {}", out.stdout);
        assert_eq!(
            out.stdout.contains("ENVOY_DYNAMIC_MODULES_SEARCH_PATH=dist envoy -c envoy/live-reload.yaml"),
            env,
            "{args:?}: {}",
            out.stdout
        );
    }
    // Without --wasm, the Wasm build's module is dist/peerguard.wasm (relative to where Envoy runs).
    let live = Live::init_with(&[]);
    assert_eq!(live.ecds_config()["vm_config"]["code"]["local"]["filename"], "dist/peerguard.wasm");
}

#[test]
fn init_refuses_native_and_wasm_together_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("live");
    for order in [["--native", "--wasm", "m.wasm"], ["--wasm", "m.wasm", "--native"]] {
        let out = live_init(&[&["--dir", s(&dir)], &order[..]].concat(), None);
        assert_eq!(out.code, 2, "{order:?}: {}", out.stderr);
        assert!(out.stderr.contains("--native") && out.stderr.contains("--wasm"), "{}", out.stderr);
        assert!(out.stdout.is_empty(), "{}", out.stdout);
        assert!(!dir.exists(), "{order:?}: wrote {}", dir.display());
    }
}

#[test]
fn reload_keeps_the_native_build_of_the_ecds_file() {
    let live = Live::init_with(&["--native"]);
    let yaml = live.write("p.yaml", "mtls: permissive\npolicies:\n  - name: b\n    rules: [{}]\n");
    let out = peerguard(&["live", "reload", "--dir", s(&live.dir), s(&yaml)]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let typed = live.ecds_typed_config();
    assert_eq!(typed["@type"], NATIVE_TYPE_URL);
    assert_eq!(typed["filter_config"]["value"], PolicyFile::load(&yaml).unwrap().json.as_str());
    // --force also keeps it native.
    let bad = live.write("bad.json", r#"{"policies":[{"name":"a","rulez":[]}]}"#);
    assert_eq!(peerguard(&["live", "reload", "--force", "--dir", s(&live.dir), s(&bad)]).code, 0);
    let typed = live.ecds_typed_config();
    assert_eq!(typed["@type"], NATIVE_TYPE_URL);
    assert_eq!(typed["filter_config"]["value"], r#"{"policies":[{"name":"a","rulez":[]}]}"#);
    // And a Wasm file stays Wasm without --wasm (its module kept).
    let wasm = Live::init();
    assert_eq!(peerguard(&["live", "reload", "--dir", s(&wasm.dir), s(&yaml)]).code, 0);
    assert_eq!(wasm.ecds_typed_config()["@type"], WASM_TYPE_URL);
    assert_eq!(wasm.ecds_config()["vm_config"]["code"]["local"]["filename"], "/opt/peerguard/peerguard.wasm");
}

#[test]
fn reload_refuses_wasm_on_a_native_file_and_a_file_of_neither_build_and_writes_nothing() {
    let live = Live::init_with(&["--native"]);
    let before = live.ecds();
    let policy = repo("envoy/policy.yaml");
    let out = peerguard(&["live", "reload", "--dir", s(&live.dir), "--wasm", "dist/peerguard.wasm", &policy]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("runs the native build") && out.stderr.contains("--wasm"), "{}", out.stderr);
    assert!(out.stderr.contains("peerguard live init"), "{}", out.stderr);
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    assert_eq!(live.ecds(), before);

    // An ECDS file that holds some other filter (or no filter, or no JSON) is not guessed at.
    let ecds = live.dir.join("ecds/peerguard.yaml");
    for (name, text) in [
        (
            "rbac",
            r#"{"resources":[{"typed_config":{"@type":"type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC"}}]}"#,
        ),
        ("no type", r#"{"resources":[{"typed_config":{}}]}"#),
        ("not JSON", "resources: ["),
    ] {
        std::fs::write(&ecds, text).unwrap();
        let out = peerguard(&["live", "reload", "--dir", s(&live.dir), &policy]);
        assert_eq!(out.code, 2, "{name}: {}", out.stderr);
        assert!(out.stderr.contains("neither the Wasm nor the native"), "{name}: {}", out.stderr);
        assert_eq!(std::fs::read_to_string(&ecds).unwrap(), text, "{name}: the ECDS file changed");
    }
    // A Wasm ECDS file that names no module needs --wasm.
    let no_module = format!(r#"{{"resources":[{{"typed_config":{{"@type":"{WASM_TYPE_URL}","config":{{}}}}}}]}}"#);
    std::fs::write(&ecds, &no_module).unwrap();
    let out = peerguard(&["live", "reload", "--dir", s(&live.dir), &policy]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("names no Wasm module; pass --wasm"), "{}", out.stderr);
    assert_eq!(std::fs::read_to_string(&ecds).unwrap(), no_module);
}
