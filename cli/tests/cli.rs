//! The real `peerguard` binary on real files: the exit codes and JSON that scripts rely on.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::PathBuf;

use common::{peerguard, run};

use peerguard_certkit::{Ca, CaSpec, DnType, Leaf};
use serde_json::Value;
use tempfile::TempDir;
use time::macros::datetime;
use time::OffsetDateTime;

struct Dir(TempDir);

impl Dir {
    fn new() -> Dir {
        Dir(tempfile::tempdir().unwrap())
    }

    fn write(&self, name: &str, contents: &str) -> String {
        let path: PathBuf = self.0.path().join(name);
        std::fs::write(&path, contents).unwrap();
        path.to_str().unwrap().to_owned()
    }
}

/// The four keys every `check` answer has, in order.
fn assert_shape(v: &Value) {
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    for k in ["decision", "reason", "policy", "principal"] {
        assert!(keys.contains(&k), "missing {k} in {v}");
    }
}

const POLICY: &str = r#"
mtls: permissive
policies:
  - name: block-admin
    action: DENY
    rules:
      - to: [{operation: {paths: ["/admin*"]}}]
  - name: frontend-reads-api
    action: ALLOW
    rules:
      - from: [{source: {principals: ["cluster.local/ns/frontend/*"]}}]
        to: [{operation: {methods: [GET], paths: ["/api/*"]}}]
      - to: [{operation: {paths: ["/healthz"]}}]
"#;

#[test]
fn check_allow_exits_0_with_the_four_keys() {
    let dir = Dir::new();
    let policy = dir.write("policy.yaml", POLICY);
    let out = peerguard(&["check", "--policy", &policy, "--path", "/healthz"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v = out.json();
    assert_shape(&v);
    assert_eq!(
        v,
        serde_json::json!({"decision": "allow", "reason": null, "policy": "frontend-reads-api", "principal": null})
    );
    assert!(out.stdout.starts_with("{\"decision\":\"allow\",\"reason\":null,\"policy\":"), "key order: {}", out.stdout);
}

#[test]
fn check_deny_exits_1_with_reason_and_policy() {
    let dir = Dir::new();
    let policy = dir.write("policy.yaml", POLICY);
    let out = peerguard(&["check", "--policy", &policy, "--path", "/public/../admin/users?x=1"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert_eq!(
        out.json(),
        serde_json::json!({"decision": "deny", "reason": "denied_by_policy", "policy": "block-admin", "principal": null})
    );
    let out = peerguard(&["check", "--policy", &policy, "--path", "/api/items"]);
    assert_eq!(out.code, 1);
    assert_eq!(
        out.json(),
        serde_json::json!({"decision": "deny", "reason": "no_matching_allow", "policy": null, "principal": null})
    );
}

#[test]
fn check_strict_plaintext_is_no_peer_certificate() {
    let dir = Dir::new();
    let policy = dir.write("policy.json", r#"{"mtls": "strict"}"#);
    let out = peerguard(&["check", "--policy", &policy]);
    assert_eq!(out.code, 1);
    assert_eq!(out.json()["reason"], "no_peer_certificate");
}

#[test]
fn check_reads_json_and_yaml_with_any_extension() {
    let dir = Dir::new();
    for (name, text) in [
        ("p.json", r#"{"mtls": "permissive", "policies": [{"name": "all", "rules": [{}]}]}"#),
        ("p.conf", r#"{"mtls": "permissive", "policies": [{"name": "all", "rules": [{}]}]}"#),
        ("p.yml", "mtls: permissive\npolicies: [{name: all, rules: [{}]}]\n"),
        ("p.policy", "mtls: permissive\npolicies: [{name: all, rules: [{}]}]\n"),
    ] {
        let path = dir.write(name, text);
        let out = peerguard(&["check", "--policy", &path]);
        assert_eq!(out.code, 0, "{name}: {}", out.stderr);
        assert_eq!(out.json()["policy"], "all", "{name}");
    }
}

#[test]
fn check_dry_run_reports_would_deny_and_exits_0() {
    let dir = Dir::new();
    let policy = dir.write(
        "policy.yaml",
        "mode: dryRun\nmtls: permissive\npolicies: [{name: no-admin, action: DENY, rules: [{to: [{operation: {paths: [/admin]}}]}]}]\n",
    );
    let out = peerguard(&["check", "--policy", &policy, "--path", "/admin"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v = out.json();
    assert_shape(&v);
    assert_eq!(v["decision"], "allow");
    assert_eq!(v["reason"], Value::Null);
    assert_eq!(v["policy"], "no-admin");
    assert_eq!(v["dryRun"], true);
    assert_eq!(v["wouldDeny"], "denied_by_policy");
}

#[test]
fn check_headers_port_sni_and_host_reach_the_engine() {
    let dir = Dir::new();
    let policy = dir.write(
        "policy.yaml",
        r#"
mtls: permissive
policies:
  - name: prod-only
    rules:
      - to: [{operation: {hosts: [api.example.com], ports: ["8443"]}}]
        when:
          - {key: "request.headers[x-env]", values: [prod]}
          - {key: connection.sni, values: ["*.example.com"]}
"#,
    );
    let base =
        ["check", "--policy", &policy, "--host", "API.example.com:8443", "--port", "8443", "--sni", "api.example.com"];
    let ok = peerguard(&[&base[..], &["--header", "X-Env: prod"]].concat());
    assert_eq!(ok.code, 0, "{} {}", ok.stdout, ok.stderr);
    let wrong_env = peerguard(&[&base[..], &["--header", "x-env: dev"]].concat());
    assert_eq!(wrong_env.code, 1);
    let no_header = peerguard(&base);
    assert_eq!(no_header.code, 1);
}

#[test]
fn check_invalid_policy_exits_2_with_every_error_on_stderr() {
    let dir = Dir::new();
    let policy = dir.write(
        "bad.yaml",
        "policies:\n  - name: a\n    rules:\n      - from: [{source: {principals: [\"a*b\"], ipBlocks: [10.0.0.0/8]}}]\n",
    );
    let out = peerguard(&["check", "--policy", &policy]);
    assert_eq!(out.code, 2);
    assert!(out.stdout.is_empty(), "no decision for an invalid policy: {}", out.stdout);
    assert!(out.stderr.contains("policies[0].rules[0].from[0].source.principals[0]"), "{}", out.stderr);
    assert!(out.stderr.contains("policies[0].rules[0].from[0].source.ipBlocks"), "{}", out.stderr);
}

#[test]
fn check_garbage_certificate_is_an_invalid_certificate_deny() {
    let dir = Dir::new();
    let policy = dir.write("policy.yaml", "mtls: permissive\n");
    for (name, contents) in [
        ("garbage.pem", "not a certificate\n"),
        ("bad-base64.pem", "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n"),
        ("not-der.pem", "-----BEGIN CERTIFICATE-----\naGVsbG8=\n-----END CERTIFICATE-----\n"),
    ] {
        let cert = dir.write(name, contents);
        let out = peerguard(&["check", "--policy", &policy, "--cert", &cert]);
        assert_eq!(out.code, 1, "{name}: {}", out.stderr);
        assert_eq!(
            out.json(),
            serde_json::json!({"decision": "deny", "reason": "invalid_certificate", "policy": null, "principal": null}),
            "{name}"
        );
    }
}

#[test]
fn check_bad_flags_and_unreadable_files_exit_2() {
    let dir = Dir::new();
    let policy = dir.write("policy.yaml", "mtls: permissive\n");
    let missing = dir.0.path().join("missing.pem");
    let missing = missing.to_str().unwrap();
    let cases: Vec<Vec<&str>> = vec![
        vec!["check"],
        vec!["check", "--policy", missing],
        vec!["check", "--policy", &policy, "--cert", missing],
        vec!["check", "--policy", &policy, "--port", "0"],
        vec!["check", "--policy", &policy, "--port", "http"],
        vec!["check", "--policy", &policy, "--at", "yesterday"],
        vec!["check", "--policy", &policy, "--at", "2026-02-30T00:00:00Z"],
        vec!["check", "--policy", &policy, "--header", "no-colon"],
        vec!["check", "--policy", &policy, "--header", ": empty-name"],
        vec!["check", "--policy", &policy, "--chain", &policy],
        vec!["check", "--policy", &policy, "--bogus"],
        vec!["nonsense"],
        vec![],
    ];
    for args in cases {
        let out = peerguard(&args);
        assert_eq!(out.code, 2, "{args:?}: {} {}", out.stdout, out.stderr);
        assert!(out.stdout.is_empty(), "{args:?}: {}", out.stdout);
    }
}

/// A CA and leaves from the certificate factory, as PEM strings.
struct Pki {
    ca_pem: String,
    ca: Ca,
}

/// A CA `CN=<cn>` valid across the tests' fixed times.
fn ca_spec(cn: &str) -> CaSpec {
    CaSpec::new(
        vec![(DnType::CommonName, cn.to_owned())],
        datetime!(2000-01-01 00:00:00 UTC),
        datetime!(2099-12-31 00:00:00 UTC),
    )
}

impl Pki {
    fn new(cn: &str) -> Pki {
        let ca = Ca::self_signed(&ca_spec(cn)).unwrap();
        Pki { ca_pem: ca.cert_pem().to_owned(), ca }
    }

    fn intermediate(&self, cn: &str) -> (Pki, String) {
        let ca = self.ca.intermediate(&ca_spec(cn)).unwrap();
        let pem = ca.cert_pem().to_owned();
        (Pki { ca_pem: pem.clone(), ca }, pem)
    }

    /// A leaf `CN=workload` with the URI SAN `spiffe`.
    fn leaf(&self, spiffe: &str, not_before: OffsetDateTime, not_after: OffsetDateTime) -> String {
        let spec = Leaf::client().cn("workload").uri(spiffe).validity(not_before, not_after);
        self.ca.issue(&spec).unwrap().cert_pem
    }
}

const NOT_BEFORE: OffsetDateTime = datetime!(2030-01-01 00:00:00 UTC);
const NOT_AFTER: OffsetDateTime = datetime!(2030-01-01 12:00:00 UTC);
const DURING: &str = "2030-01-01T06:00:00Z";

#[test]
fn check_spiffe_certificate_allow_and_deny_by_principal() {
    let dir = Dir::new();
    let pki = Pki::new("test-ca");
    let web = dir.write("web.pem", &pki.leaf("spiffe://cluster.local/ns/frontend/sa/web", NOT_BEFORE, NOT_AFTER));
    let db = dir.write("db.pem", &pki.leaf("spiffe://cluster.local/ns/backend/sa/db", NOT_BEFORE, NOT_AFTER));
    let policy = dir.write("policy.yaml", POLICY);

    let out = peerguard(&["check", "--policy", &policy, "--cert", &web, "--path", "/api/items", "--at", DURING]);
    assert_eq!(out.code, 0, "{} {}", out.stdout, out.stderr);
    assert_eq!(
        out.json(),
        serde_json::json!({"decision": "allow", "reason": null, "policy": "frontend-reads-api", "principal": "cluster.local/ns/frontend/sa/web"})
    );

    let out = peerguard(&["check", "--policy", &policy, "--cert", &db, "--path", "/api/items", "--at", DURING]);
    assert_eq!(out.code, 1);
    assert_eq!(
        out.json(),
        serde_json::json!({"decision": "deny", "reason": "no_matching_allow", "policy": null, "principal": "cluster.local/ns/backend/sa/db"})
    );

    let out = peerguard(&[
        "check",
        "--policy",
        &policy,
        "--cert",
        &web,
        "--method",
        "POST",
        "--path",
        "/api/items",
        "--at",
        DURING,
    ]);
    assert_eq!(out.code, 1);
    assert_eq!(out.json()["reason"], "no_matching_allow");
}

#[test]
fn check_at_sets_the_clock_with_offsets() {
    let dir = Dir::new();
    let pki = Pki::new("test-ca");
    let web = dir.write("web.pem", &pki.leaf("spiffe://cluster.local/ns/frontend/sa/web", NOT_BEFORE, NOT_AFTER));
    let policy = dir.write("policy.yaml", "policies: [{name: all, rules: [{}]}]\n");
    let at = |t: &str| {
        let out = peerguard(&["check", "--policy", &policy, "--cert", &web, "--at", t]);
        (out.code, out.json()["reason"].clone())
    };
    assert_eq!(at("2029-12-31T23:59:59Z"), (1, Value::from("not_yet_valid")));
    assert_eq!(at("2030-01-01T06:00:00Z"), (0, Value::Null));
    // 13:30 at +02:00 is 11:30 UTC, before notAfter; 12:30 UTC is after it.
    assert_eq!(at("2030-01-01T13:30:00+02:00"), (0, Value::Null));
    assert_eq!(at("2030-01-01T12:30:00+00:00"), (1, Value::from("expired")));
    // 07:00 at -05:00 is 12:00 UTC, exactly notAfter: still valid; one second later is not.
    assert_eq!(at("2030-01-01T07:00:00-05:00"), (0, Value::Null));
    assert_eq!(at("2030-01-01T07:00:01-05:00"), (1, Value::from("expired")));
    assert_eq!(at("2030-01-01T12:00:00.5Z"), (0, Value::Null), "fractions of a second round down");
}

#[test]
fn check_chain_plays_xfcc_chain_and_ignores_a_copy_of_the_leaf() {
    let dir = Dir::new();
    let root = Pki::new("root-ca");
    let (inter, inter_pem) = root.intermediate("intermediate-ca");
    let leaf_pem = inter.leaf("spiffe://cluster.local/ns/frontend/sa/web", NOT_BEFORE, NOT_AFTER);
    let leaf = dir.write("leaf.pem", &leaf_pem);
    let chain = dir.write("chain.pem", &format!("{leaf_pem}{inter_pem}"));
    let root_pem = root.ca_pem.trim().replace('\n', "\n      ");
    let policy = dir.write(
        "policy.yaml",
        &format!(
            "certificate:\n  trustAnchors:\n    - |\n      {root_pem}\npolicies: [{{name: all, rules: [{{}}]}}]\n"
        ),
    );
    let without = peerguard(&["check", "--policy", &policy, "--cert", &leaf, "--at", DURING]);
    assert_eq!(without.code, 1, "{} {}", without.stdout, without.stderr);
    assert_eq!(without.json()["reason"], "untrusted_chain");
    let with = peerguard(&["check", "--policy", &policy, "--cert", &leaf, "--chain", &chain, "--at", DURING]);
    assert_eq!(with.code, 0, "{} {}", with.stdout, with.stderr);
    assert_eq!(with.json()["principal"], "cluster.local/ns/frontend/sa/web");
    // A --cert file with the intermediates after the leaf works the same.
    let bundle = dir.write("bundle.pem", &format!("{leaf_pem}{inter_pem}"));
    let bundled = peerguard(&["check", "--policy", &policy, "--cert", &bundle, "--at", DURING]);
    assert_eq!(bundled.code, 0, "{} {}", bundled.stdout, bundled.stderr);
}

#[test]
fn validate_ok_exits_0() {
    let dir = Dir::new();
    let policy = dir.write("policy.yaml", POLICY);
    let out = peerguard(&["validate", &policy]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout.trim(), "ok: 2 policies, 3 rules, 0 certificate rules (mode enforce, mtls permissive)");
}

#[test]
fn validate_lists_every_error_with_its_path() {
    let dir = Dir::new();
    let policy = dir.write(
        "bad.yaml",
        r#"
trustDomains: [Cluster.Local]
identity: [spiffe, spiffe]
denyResponse: {status: 200}
policies:
  - name: a
    rules:
      - from: [{source: {principals: ["a*b"], requestPrincipals: ["*"]}}]
        to: [{operation: {paths: [""], ports: ["http"]}}]
        when: [{key: "request.auth.claims[iss]", values: ["x"]}]
  - name: a
    action: CUSTOM
"#,
    );
    let out = peerguard(&["validate", &policy]);
    assert_eq!(out.code, 2);
    for path in [
        "trustDomains[0]",
        "identity[1]",
        "denyResponse.status",
        "policies[0].rules[0].from[0].source.principals[0]",
        "policies[0].rules[0].from[0].source.requestPrincipals",
        "policies[0].rules[0].to[0].operation.paths[0]",
        "policies[0].rules[0].to[0].operation.ports[0]",
        "policies[0].rules[0].when[0].key",
        "policies[1].name",
        "policies[1].action",
    ] {
        assert!(out.stderr.contains(&format!(": {path}: ")), "missing {path} in:\n{}", out.stderr);
    }
    assert!(out.stderr.contains("requestPrincipals: not supported"), "{}", out.stderr);
    assert!(out.stderr.contains("invalid: 11 errors"), "{}", out.stderr);
}

#[test]
fn validate_structural_errors_name_the_path() {
    let dir = Dir::new();
    let cases = [
        ("typo.yaml", "policies:\n  - name: a\n    rulez: []\n", "policies[0].rulez"),
        ("type.json", r#"{"policies": [{"name": "a", "rules": "all"}]}"#, "policies[0].rules"),
        ("seq.yaml", "policies:\n  - name: a\n    rules: [[]]\n", "policies[0].rules[0]"),
        ("broken.json", r#"{"policies": ["#, ""),
        ("broken.yaml", "policies: [\n", ""),
    ];
    for (name, text, path) in cases {
        let file = dir.write(name, text);
        let out = peerguard(&["validate", &file]);
        assert_eq!(out.code, 2, "{name}");
        assert!(out.stderr.contains(&format!("{file}: {path}")), "{name}: {}", out.stderr);
        assert!(out.stdout.is_empty());
    }
    let out = peerguard(&["validate", dir.0.path().join("missing.yaml").to_str().unwrap()]);
    assert_eq!(out.code, 2);
}

const ISTIO: &str = r#"
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: frontend-reads-api
  namespace: backend
spec:
  selector:
    matchLabels: {app: api}
  action: ALLOW
  rules:
    - from:
        - source:
            principals: ["cluster.local/ns/frontend/sa/web"]
      to:
        - operation:
            methods: ["GET"]
            paths: ["/api/*"]
---
apiVersion: v1
kind: Service
metadata:
  name: api
spec:
  ports: [{port: 80}]
---
apiVersion: security.istio.io/v1beta1
kind: AuthorizationPolicy
metadata:
  name: deny-admin
  namespace: backend
  annotations:
    istio.io/dry-run: "true"
spec:
  action: DENY
  rules:
    - to:
        - operation:
            paths: ["/admin*"]
---
apiVersion: v1
kind: List
items:
  - apiVersion: security.istio.io/v1
    kind: AuthorizationPolicy
    metadata:
      name: allow-nothing
      namespace: legacy
    spec: {}
"#;

#[test]
fn import_of_a_multi_document_file_round_trips_through_validate() {
    let dir = Dir::new();
    let istio = dir.write("istio.yaml", ISTIO);
    let out = peerguard(&["import", &istio]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("skipping kind Service (api)"), "{}", out.stderr);
    assert!(out.stderr.contains("dropped spec.selector"), "{}", out.stderr);
    assert!(out.stderr.contains("WasmPlugin"), "{}", out.stderr);
    let yaml = dir.write("imported.yaml", &out.stdout);
    let valid = peerguard(&["validate", &yaml]);
    assert_eq!(valid.code, 0, "{}\n{}", out.stdout, valid.stderr);
    assert!(valid.stdout.starts_with("ok: 3 policies, 2 rules"), "{}", valid.stdout);

    let json = peerguard(&["import", "--json", &istio]);
    assert_eq!(json.code, 0, "{}", json.stderr);
    let doc: Value = serde_json::from_str(&json.stdout).unwrap();
    let names: Vec<&str> = doc["policies"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["backend.frontend-reads-api", "backend.deny-admin", "legacy.allow-nothing"]);
    assert_eq!(doc["policies"][1]["dryRun"], true);
    assert_eq!(doc["policies"][1]["action"], "DENY");
    assert!(doc["policies"][0].get("selector").is_none());
    let json_file = dir.write("imported.json", &json.stdout);
    assert_eq!(peerguard(&["validate", &json_file]).code, 0);

    // The imported policy means what the Istio one meant.
    let pki = Pki::new("test-ca");
    let web = dir.write("web.pem", &pki.leaf("spiffe://cluster.local/ns/frontend/sa/web", NOT_BEFORE, NOT_AFTER));
    let check = |path: &str| {
        let out = peerguard(&["check", "--policy", &yaml, "--cert", &web, "--path", path, "--at", DURING]);
        (out.code, out.json())
    };
    let (code, v) = check("/api/items");
    // allow-nothing (an ALLOW policy with no rules) is a separate policy: Istio ORs ALLOW policies.
    assert_eq!((code, &v["policy"]), (0, &Value::from("backend.frontend-reads-api")), "{v}");
    let (code, v) = check("/admin");
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["reason"], "no_matching_allow");
    assert_eq!(v["dryRun"], Value::Null, "the enforced deny wins over the dry-run one: {v}");
}

#[test]
fn import_reads_stdin_and_validate_counts_in_the_singular() {
    let one = ISTIO.split("---").next().unwrap();
    let out = run(&["import", "--json", "-"], None, Some(one.as_bytes()));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let dir = Dir::new();
    let file = dir.write("one.json", &out.stdout);
    let valid = peerguard(&["validate", &file]);
    assert_eq!(valid.stdout.trim(), "ok: 1 policy, 1 rule, 0 certificate rules (mode enforce, mtls strict)");
}

#[test]
fn import_refuses_custom_and_unsupported_fields_naming_them() {
    let dir = Dir::new();
    let custom = dir.write(
        "custom.yaml",
        "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: ext, namespace: ns}\nspec:\n  action: CUSTOM\n  provider: {name: opa}\n  rules: [{}]\n",
    );
    let out = peerguard(&["import", &custom]);
    assert_eq!(out.code, 2);
    assert!(out.stdout.is_empty());
    assert!(out.stderr.contains("(ns.ext): spec.action: CUSTOM"), "{}", out.stderr);

    let jwt = dir.write(
        "jwt.yaml",
        "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: jwt}\nspec:\n  rules:\n    - from: [{source: {requestPrincipals: [\"*\"]}}]\n      when: [{key: \"request.auth.claims[iss]\", values: [x]}]\n",
    );
    let out = peerguard(&["import", &jwt]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("(jwt): spec.rules[0].from[0].source.requestPrincipals: not supported"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("(jwt): spec.rules[0].when[0].key: request.auth.claims[iss] is not supported"),
        "{}",
        out.stderr
    );

    let odd = dir.write(
        "odd.yaml",
        "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: odd}\nspec:\n  actions: DENY\n",
    );
    let out = peerguard(&["import", &odd]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("spec.actions"), "{}", out.stderr);

    let none = dir.write("none.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n");
    let out = peerguard(&["import", &none]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("no AuthorizationPolicy found"), "{}", out.stderr);

    let broken = dir.write("broken.yaml", "kind: [\n");
    assert_eq!(peerguard(&["import", &broken]).code, 2);
}

#[test]
fn every_subcommand_help_has_an_example() {
    for args in [vec!["--help"], vec!["check", "--help"], vec!["validate", "--help"], vec!["import", "--help"]] {
        let out = peerguard(&args);
        assert_eq!(out.code, 0, "{args:?}");
        assert!(out.stdout.contains("Example"), "{args:?}: {}", out.stdout);
        assert!(out.stdout.contains("peerguard "), "{args:?}");
    }
    let check = peerguard(&["check", "--help"]).stdout;
    for flag in ["--policy", "--cert", "--chain", "--method", "--path", "--host", "--port", "--header", "--sni", "--at"]
    {
        assert!(check.contains(flag), "check --help lacks {flag}");
    }
}
