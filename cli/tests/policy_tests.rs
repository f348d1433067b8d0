//! `peerguard test` on real files with the real binary: pass, fail, invalid files, JUnit, coverage, --init.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};

use common::{peerguard_in, Out};
use peerguard_e2e::repo_root;
use tempfile::TempDir;

fn fixture(name: &str) -> String {
    std::fs::read_to_string(repo_root().join("policy/tests/fixtures").join(name)).unwrap()
}

struct Dir(TempDir);

impl Dir {
    fn new() -> Dir {
        Dir(tempfile::tempdir().unwrap())
    }

    fn path(&self) -> &Path {
        self.0.path()
    }

    fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.0.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, contents).unwrap();
        path
    }

    fn run(&self, args: &[&str]) -> Out {
        peerguard_in(self.path(), args)
    }
}

/// The summary line, which must be alone on its line.
fn summary(out: &Out) -> (usize, usize) {
    let line = out
        .stdout
        .lines()
        .find(|l| l.ends_with(" failed") && l.contains(" passed, "))
        .unwrap_or_else(|| panic!("no summary line in {:?} (stderr {:?})", out.stdout, out.stderr));
    let words: Vec<&str> = line.split(' ').collect();
    assert_eq!(words.len(), 4, "summary line {line:?}");
    assert_eq!((words[1], words[3]), ("passed,", "failed"), "summary line {line:?}");
    (words[0].parse().unwrap(), words[2].parse().unwrap())
}

const POLICY: &str = r#"
mtls: strict
trustDomains: [cluster.local]
identity: [spiffe, subject]
certificate:
  maxLifetime: 25h
  issuers: ["O=cluster.local", "CN=intermediate-ca,O=cluster.local"]
policies:
  - name: block-admin
    action: DENY
    rules:
      - to: [{operation: {paths: ["/api/admin*"]}}]
  - name: frontend-reads-api
    action: ALLOW
    rules:
      - from: [{source: {principals: ["cluster.local/ns/frontend/sa/*"]}}]
        to: [{operation: {methods: [GET], paths: ["/api/*"]}}]
      - from: [{source: {namespaces: ["default"]}}]
        when: [{key: "request.headers[x-env]", values: ["prod"]}]
"#;

/// Every peer kind, both header forms, `at`, and each expect key.
const PASSING: &str = r#"
policy: policy.yaml
cases:
  - name: frontend reads the API
    principal: cluster.local/ns/frontend/sa/web
    method: GET
    path: /api/items
    expect: {decision: allow, policy: frontend-reads-api, principal: cluster.local/ns/frontend/sa/web, reason: null}
  - name: another namespace is refused
    principal: cluster.local/ns/other/sa/batch
    path: /api/items
    expect: {decision: deny, reason: no_matching_allow, policy: null}
  - name: admin is denied even to the frontend
    principal: spiffe://cluster.local/ns/frontend/sa/web
    path: /api/admin/users
    expect: {decision: deny, reason: denied_by_policy, policy: block-admin}
  - name: plaintext is refused
    noCertificate: true
    expect: {decision: deny, reason: no_peer_certificate, principal: null}
  - name: another trust domain is refused
    principal: evil.example/ns/frontend/sa/web
    path: /api/items
    expect: {decision: deny, reason: untrusted_trust_domain}
  - name: a CN principal has no trust domain
    principal: alice
    expect: {decision: deny, reason: untrusted_trust_domain, principal: alice}
  - name: a certificate from another CA
    principal: cluster.local/ns/frontend/sa/web
    issuer: "CN=rogue,O=elsewhere"
    path: /api/items
    expect: {decision: deny, reason: issuer_not_allowed}
  - name: a long-lived certificate
    principal: cluster.local/ns/frontend/sa/web
    lifetime: 48h
    path: /api/items
    expect: {decision: deny, reason: lifetime_too_long}
  - name: header list
    principal: cluster.local/ns/default/sa/job
    headers: ["x-env: prod"]
    expect: {decision: allow, policy: frontend-reads-api}
  - name: header map
    principal: cluster.local/ns/default/sa/job
    headers: {X-Env: prod}
    expect: {decision: allow}
  - name: a repeated header joins
    principal: cluster.local/ns/default/sa/job
    headers: {x-env: [prod, dev]}
    expect: {decision: deny, reason: no_matching_allow}
  - name: a certificate file with its chain, in its lifetime
    cert: certs/healthy.pem
    chain: certs/intermediate-ca.pem
    at: 2030-06-01T12:00:00Z
    headers: ["x-env: prod"]
    expect: {decision: allow, principal: cluster.local/ns/default/sa/healthy}
  - name: the same certificate after notAfter
    cert: certs/healthy.pem
    at: 2030-06-01T13:00:00Z
    expect: {decision: deny, reason: expired, principal: cluster.local/ns/default/sa/healthy}
  - name: a file that is no certificate
    cert: policy.yaml
    expect: {decision: deny, reason: invalid_certificate}
"#;

fn passing_dir() -> Dir {
    let dir = Dir::new();
    dir.write("policy.yaml", POLICY);
    dir.write("certs/healthy.pem", &fixture("healthy.pem"));
    dir.write("certs/intermediate-ca.pem", &fixture("intermediate-ca.pem"));
    dir.write("policy.test.yaml", PASSING);
    dir
}

#[test]
fn a_passing_file_exits_0_with_the_summary() {
    let dir = passing_dir();
    let out = dir.run(&["test", "policy.test.yaml"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(summary(&out), (14, 0));
    assert!(!out.stdout.contains("FAIL"), "{}", out.stdout);
}

#[test]
fn a_case_decides_as_check_does() {
    let dir = passing_dir();
    // The certificate-file case, through `check` with the same inputs.
    let out = dir.run(&[
        "check",
        "--policy",
        "policy.yaml",
        "--cert",
        "certs/healthy.pem",
        "--chain",
        "certs/intermediate-ca.pem",
        "--at",
        "2030-06-01T12:00:00Z",
        "--header",
        "x-env: prod",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(v["principal"], "cluster.local/ns/default/sa/healthy");
    assert_eq!(v["policy"], "frontend-reads-api");
    // And the test runner agrees on the policy that decided.
    dir.write(
        "one.test.yaml",
        "policy: policy.yaml\ncases:\n  - name: c\n    cert: certs/healthy.pem\n    chain: certs/intermediate-ca.pem\n    at: 2030-06-01T12:00:00Z\n    headers: [\"x-env: prod\"]\n    expect: {decision: allow, policy: frontend-reads-api, principal: cluster.local/ns/default/sa/healthy}\n",
    );
    let out = dir.run(&["test", "one.test.yaml"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(summary(&out), (1, 0));
}

#[test]
fn a_wrong_expectation_prints_what_was_expected_and_what_came_and_exits_1() {
    let dir = passing_dir();
    dir.write(
        "wrong.test.yaml",
        r#"
policy: policy.yaml
cases:
  - name: right
    noCertificate: true
    expect: {decision: deny}
  - name: admin is allowed (wrong)
    principal: cluster.local/ns/frontend/sa/web
    path: /api/admin
    expect: {decision: allow, policy: frontend-reads-api}
  - name: wrong principal
    principal: cluster.local/ns/frontend/sa/web
    path: /api/items
    expect: {decision: allow, principal: cluster.local/ns/frontend/sa/api}
"#,
    );
    let out = dir.run(&["test", "wrong.test.yaml"]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(summary(&out), (1, 2));
    let fails: Vec<&str> = out.stdout.lines().filter(|l| l.starts_with("FAIL ")).collect();
    assert_eq!(fails.len(), 2, "{}", out.stdout);
    assert_eq!(
        fails[0],
        "FAIL wrong.test.yaml: admin is allowed (wrong): expected allow (policy frontend-reads-api), got deny denied_by_policy (policy block-admin, principal cluster.local/ns/frontend/sa/web)"
    );
    assert!(fails[1].contains("expected allow (principal cluster.local/ns/frontend/sa/api)"), "{}", fails[1]);
    assert!(fails[1].contains("got allow (policy frontend-reads-api, principal cluster.local/ns/frontend/sa/web)"));
}

#[test]
fn invalid_or_unreadable_files_exit_2_and_name_the_path() {
    let dir = passing_dir();
    let bad = [
        ("unknown-key.test.yaml", "policy: policy.yaml\ncases:\n  - name: a\n    noCertificat: true\n    expect: {decision: deny}\n", "unknown field `noCertificat`"),
        ("bad-reason.test.yaml", "policy: policy.yaml\ncases:\n  - name: a\n    noCertificate: true\n    expect: {decision: deny, reason: no_such}\n", "cases[0].expect.reason"),
        ("bad-policy-name.test.yaml", "policy: policy.yaml\ncases:\n  - name: a\n    noCertificate: true\n    expect: {decision: deny, policy: nope}\n", "no policy or certificate rule named \"nope\""),
        ("no-peer.test.yaml", "policy: policy.yaml\ncases:\n  - name: a\n    expect: {decision: deny}\n", "give the peer"),
        ("two-peers.test.yaml", "policy: policy.yaml\ncases:\n  - name: a\n    noCertificate: true\n    principal: x\n    expect: {decision: deny}\n", "only one of"),
        ("missing-policy.test.yaml", "policy: nope.yaml\ncases:\n  - name: a\n    noCertificate: true\n    expect: {decision: deny}\n", "nope.yaml"),
        ("missing-cert.test.yaml", "policy: policy.yaml\ncases:\n  - name: a\n    cert: nope.pem\n    expect: {decision: deny}\n", "nope.pem"),
        ("bad-at.test.yaml", "policy: policy.yaml\ncases:\n  - name: a\n    noCertificate: true\n    at: yesterday\n    expect: {decision: deny}\n", "cases[0].at"),
        ("bad-decision.test.yaml", "policy: policy.yaml\ncases:\n  - name: a\n    noCertificate: true\n    expect: {decision: maybe}\n", "unknown variant `maybe`"),
        ("dup.test.yaml", "policy: policy.yaml\ncases:\n  - name: a\n    noCertificate: true\n    expect: {decision: deny}\n  - name: a\n    noCertificate: true\n    expect: {decision: deny}\n", "used twice"),
        ("invalid-inline.test.yaml", "policy: {policies: [{name: x, action: DENY}]}\ncases:\n  - name: a\n    noCertificate: true\n    expect: {decision: deny}\n", "a DENY policy needs at least one rule"),
    ];
    for (name, text, needle) in bad {
        dir.write(name, text);
        let out = dir.run(&["test", name]);
        assert_eq!(out.code, 2, "{name}: {}\n{}", out.stdout, out.stderr);
        assert!(out.stderr.contains(name), "{name}: the path is named: {}", out.stderr);
        assert!(out.stderr.contains(needle), "{name}: {needle:?} in {}", out.stderr);
    }
    let out = dir.run(&["test", "does-not-exist.test.yaml"]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("does-not-exist.test.yaml"), "{}", out.stderr);
    // A bad file does not stop the good ones from running, and still exits 2.
    let out = dir.run(&["test", "policy.test.yaml", "dup.test.yaml"]);
    assert_eq!(out.code, 2);
    assert_eq!(summary(&out), (14, 0));
}

#[test]
fn a_directory_runs_every_test_file_in_it_and_only_those() {
    let dir = passing_dir();
    dir.write("sub/inline.test.yml", "policy: {mtls: permissive}\ncases:\n  - name: open\n    noCertificate: true\n    expect: {decision: allow, principal: null}\n");
    dir.write("sub/not-a-test.yaml", "this: is not a test file\n");
    let out = dir.run(&["test", "."]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(summary(&out), (15, 0));
    let empty = Dir::new();
    let out = empty.run(&["test", "."]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("no test files"), "{}", out.stderr);
}

#[test]
fn junit_reports_every_case_and_each_failure() {
    let dir = passing_dir();
    dir.write(
        "wrong.test.yaml",
        "policy: policy.yaml\ncases:\n  - name: \"<wrong> & bad\"\n    noCertificate: true\n    expect: {decision: allow}\n",
    );
    let out = dir.run(&["test", "policy.test.yaml", "wrong.test.yaml", "--junit", "report.xml"]);
    assert_eq!(out.code, 1);
    let xml = std::fs::read_to_string(dir.path().join("report.xml")).unwrap();
    assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>"), "{xml}");
    assert!(xml.contains("<testsuites name=\"peerguard test\" tests=\"15\" failures=\"1\" errors=\"0\">"), "{xml}");
    assert!(xml.contains("<testsuite name=\"policy.test.yaml\" tests=\"14\" failures=\"0\""), "{xml}");
    assert!(xml.contains("name=\"&lt;wrong&gt; &amp; bad\""), "{xml}");
    assert!(
        xml.contains("<failure message=\"expected allow, got deny no_peer_certificate (no policy, no principal)\"/>"),
        "{xml}"
    );
    assert_eq!(xml.matches("<testcase ").count(), 15);
}

#[test]
fn coverage_lists_the_rules_no_case_matched() {
    let dir = Dir::new();
    dir.write(
        "p.yaml",
        r#"
mtls: permissive
certificateRules:
  - name: admin-short
    to: [{operation: {paths: ["/admin/*"]}}]
    require: {maxLifetime: 1h}
policies:
  - name: reads
    action: ALLOW
    rules:
      - to: [{operation: {methods: [GET]}}]
      - to: [{operation: {paths: ["/healthz"]}}]
  - name: never
    action: DENY
    rules:
      - to: [{operation: {paths: ["/never"]}}]
  - name: empty
    action: ALLOW
"#,
    );
    dir.write(
        "p.test.yaml",
        "policy: p.yaml\ncases:\n  - name: get\n    noCertificate: true\n    expect: {decision: allow}\n",
    );
    let out = dir.run(&["test", "--coverage", "p.test.yaml"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(
        lines.contains(&"coverage p.yaml: 1 of 3 rules matched, 0 of 1 certificate rules applied"),
        "{}",
        out.stdout
    );
    for want in [
        "  unmatched policies[0].rules[1] (reads)",
        "  unmatched policies[1] (never)",
        "  unmatched policies[1].rules[0] (never)",
        "  unmatched policies[2] (empty): it has no rules",
        "  unmatched certificateRules[0] (admin-short)",
    ] {
        assert!(lines.contains(&want), "{want:?} in {}", out.stdout);
    }
    assert!(!out.stdout.contains("unmatched policies[0] (reads)"), "{}", out.stdout);
    assert!(!out.stdout.contains("policies[0].rules[0]"), "{}", out.stdout);
    // The summary stays the last line.
    assert_eq!(lines.last(), Some(&"1 passed, 0 failed"));
}

#[test]
fn init_writes_a_file_built_from_the_policy_that_passes() {
    let dir = Dir::new();
    dir.write("policy.yaml", POLICY);
    let out = dir.run(&["test", "--init", "policy.yaml"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let text = std::fs::read_to_string(dir.path().join("policy.test.yaml")).unwrap();
    assert!(text.contains("policy: policy.yaml"), "{text}");
    // A principal from the ALLOW rule, a path from the DENY rule.
    assert!(text.contains("principal: cluster.local/ns/frontend/sa/example"), "{text}");
    assert!(text.contains("path: /api/admin\n"), "{text}");
    assert!(text.contains("expect: {decision: deny, reason: denied_by_policy, policy: block-admin"), "{text}");
    assert!(text.contains("expect: {decision: allow, policy: frontend-reads-api"), "{text}");
    assert!(text.contains("reason: no_matching_allow"), "{text}");
    assert!(text.contains("reason: no_peer_certificate"), "{text}");
    // One allow and one deny case per policy, and the plaintext case.
    assert_eq!(text.matches("  - name: ").count(), 5, "{text}");
    // It runs as written, now and later.
    let out = dir.run(&["test", "policy.test.yaml"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(summary(&out), (5, 0));
    // It is not overwritten by accident.
    let again = dir.run(&["test", "--init", "policy.yaml"]);
    assert_eq!(again.code, 2);
    assert!(again.stderr.contains("--force"), "{}", again.stderr);
    let out = dir.run(&["test", "--init", "policy.yaml", "--out", "elsewhere/x.test.yaml"]);
    assert_eq!(out.code, 2, "the directory must exist: {}", out.stderr);
    std::fs::create_dir(dir.path().join("elsewhere")).unwrap();
    let out = dir.run(&["test", "--init", "policy.yaml", "--out", "elsewhere/x.test.yaml"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let moved = std::fs::read_to_string(dir.path().join("elsewhere/x.test.yaml")).unwrap();
    assert!(moved.contains(&format!("policy: {}", dir.path().canonicalize().unwrap().join("policy.yaml").display())));
}

#[test]
fn init_refuses_an_invalid_policy() {
    let dir = Dir::new();
    dir.write("bad.yaml", "policies: [{name: x, action: DENY}]\n");
    let out = dir.run(&["test", "--init", "bad.yaml"]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("bad.yaml: policies[0].rules"), "{}", out.stderr);
    assert!(!dir.path().join("bad.test.yaml").exists());
}

#[test]
fn the_shipped_example_policies_pass_their_tests() {
    let root = repo_root();
    let out = peerguard_in(&root, &["test", "envoy", "istio"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let (passed, failed) = summary(&out);
    assert_eq!(failed, 0);
    assert!(passed >= 30, "only {passed} cases in the shipped tests");
    for file in [
        "envoy/policy.test.yaml",
        "envoy/front-proxy-policy.test.yaml",
        "envoy/mesh/api.test.yaml",
        "envoy/mesh/db.test.yaml",
        "envoy/mesh/frontend.test.yaml",
        "istio/peerguard/policy.test.yaml",
        "istio/peerguard/gateway-policy.test.yaml",
    ] {
        assert!(out.stdout.contains(&format!("ok   {file} (")), "{file} did not run: {}", out.stdout);
    }
}
