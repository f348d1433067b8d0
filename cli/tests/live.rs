//! `peerguard live init|reload|rotate`, run as the real binary on a scratch directory: what it
//! writes is what the filter would compile, and a policy or key it refuses writes nothing.
//! (tests/tests/e2e_operations.rs drives the same code against a running Envoy.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use std::path::{Path, PathBuf};

use common::{peerguard, s};
use peerguard_cli::policy_file::PolicyFile;
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
    fn init() -> Live {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("live");
        let out = peerguard(&[
            "live",
            "init",
            "--dir",
            s(&dir),
            "--policy",
            &repo("envoy/policy.yaml"),
            "--cert",
            &repo("envoy/certs/server.pem"),
            "--key",
            &repo("envoy/certs/server-key.pem"),
            "--wasm",
            "/opt/peerguard/peerguard.wasm",
        ]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        Live { tmp, dir }
    }

    fn ecds(&self) -> Vec<u8> {
        std::fs::read(self.dir.join("ecds/peerguard.yaml")).unwrap()
    }

    fn ecds_config(&self) -> Value {
        let v: Value = serde_json::from_slice(&self.ecds()).unwrap();
        v["resources"][0]["typed_config"]["config"].clone()
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
