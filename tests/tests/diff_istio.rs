//! Differential test: random policies as istiod's RBAC and as peerguard, in one real Envoy, must decide alike
//! (up to the documented differences; see `peerguard_e2e::diff` for the oracle).
//!
//! `just test` runs a bounded number of policies. `just diff-istio N` runs N
//! (`PEERGUARD_DIFF_POLICIES`); `PEERGUARD_DIFF_SEED` picks another sequence,
//! `PEERGUARD_DIFF_REQUESTS` the requests per policy, and `PEERGUARD_DIFF_POLICY_FILE=path` runs
//! the requests against one given policy instead. `PEERGUARD_BUILD=native` puts the native build
//! on the peerguard listeners (`just test` runs both). Fails (never skips) without Envoy or the module.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use peerguard_e2e::diff::{self, peer_index, Config, Req};
use serde_json::{json, Value};

/// Policies for `just test`: about 45 s on two cores.
const DEFAULT_POLICIES: usize = 200;

#[test]
fn peerguard_decides_as_istios_rbac_up_to_the_documented_differences() {
    let cfg = Config::from_env(DEFAULT_POLICIES).unwrap();
    eprintln!(
        "diff-istio: seed {} ({}), {} requests per policy",
        cfg.seed,
        cfg.file.as_ref().map_or_else(|| format!("{} random policies", cfg.policies), |f| f.display().to_string()),
        cfg.requests
    );
    let report = diff::run(&cfg).unwrap_or_else(|e| panic!("the differential harness could not run: {e:#}"));
    eprintln!("{report}");
    if let Some(failure) = &report.failure {
        panic!("peerguard and Istio's RBAC disagree outside the documented differences.\n{failure}");
    }
    assert_eq!(report.disagreements, 0);
    assert_eq!(report.policies, if cfg.file.is_some() { 1 } else { cfg.policies });
    assert_eq!(report.requests, report.policies * cfg.requests, "every request was judged");
    if cfg.file.is_none() && cfg.policies >= DEFAULT_POLICIES {
        // The oracle is not vacuous: on the default sequence, each documented difference applied
        // to some requests, and most of them really changed an answer.
        for kind in [
            "host:port",
            "host trailing dot",
            "path normal form",
            "invalid_path",
            "invalid_identity",
            "'*' on an empty header",
            "Envoy principal falls back to DNS SAN / subject",
            "repeated header, fail closed",
        ] {
            let (applied, _) = report.differences.get(kind).copied().unwrap_or_default();
            assert!(applied > 0, "no request exercised {kind:?}: {report}");
        }
        let (_, showed) = report.differences.get("invalid_identity").copied().unwrap_or_default();
        assert!(showed > 0, "invalid_identity never changed an answer: {report}");
        assert!(report.expectations.get("same").copied().unwrap_or_default() > report.requests / 2, "{report}");
    }
}

// ---- Pinned cases: what the random test found, minimized ----

fn req(path: &str, peer: Option<&str>, headers: &[(&str, &str)]) -> Req {
    Req {
        peer: peer.map(|p| peer_index(p).unwrap()),
        sni: None,
        port: 443,
        method: "GET".into(),
        path: path.into(),
        host: "example.com".into(),
        headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
    }
}

fn policy(p: Value) -> Value {
    json!({"mtls": "permissive", "policies": [p]})
}

/// Found by the random test (seed 1): Istio's `{**}` is Envoy's URI template `**`, zero or more
/// characters (istio/api: "`{**}` matches zero or more globs"), so a DENY on `/admin/{**}` also
/// denies `/admin/`. PRODUCT.md asks to match templates "as Istio does".
#[test]
fn a_deny_on_a_rest_template_also_denies_the_bare_prefix_as_istio_does() {
    let doc = policy(
        json!({"name": "deny-admin", "action": "DENY", "rules": [{"to": [{"operation": {"paths": ["/admin/{**}"]}}]}]}),
    );
    let j = diff::check_case(&doc, &req("/admin/", Some("web"), &[])).unwrap();
    assert_eq!(j.rbac.status, 403, "Istio's RBAC denies /admin/ under /admin/{{**}}");
    assert!(j.ok, "peerguard answers {} where Istio's RBAC answers {}", j.peerguard, j.rbac);
}

/// KNOWN, INTENDED DIFFERENCE (`diff::OTHER_URI_UNDOCUMENTED`, docs/policy.md): pinned, so that
/// a change on either side is noticed. Envoy's principal is any URI SAN, so Istio's namespace
/// regex `.*/ns/prod.*/.*` matches `https://example.com/ns/prod/sa/web`; peerguard sees no
/// identity and the `notNamespaces` ALLOW lets the request through.
#[test]
fn known_difference_a_non_spiffe_uri_san_is_a_principal_to_istio_and_none_to_peerguard() {
    let doc = policy(json!({"name": "not-prod", "rules": [{"from": [{"source": {"notNamespaces": ["prod*"]}}]}]}));
    let j = diff::check_case(&doc, &req("/", Some("https-uri"), &[])).unwrap();
    assert_eq!(j.verdict.applies, vec![diff::OTHER_URI_UNDOCUMENTED]);
    assert_eq!((j.peerguard.status, j.rbac_raw.as_ref().map(|a| a.status)), (200, Some(403)));
}

/// KNOWN, INTENDED DIFFERENCE (`diff::REPEATED_UNDOCUMENTED`, docs/policy.md): Envoy 1.40's RBAC matches
/// each copy of a header on its own, not the copies joined with `,` as PRODUCT.md and STYLE.md
/// say. peerguard's joined-value rule then denies where RBAC allows: a DENY `notValues` (a copy
/// with the allowed value no longer hides the other) and an ALLOW `values` (`prod,dev` is not
/// `prod`). Pinned as it is.
#[test]
fn known_difference_envoy_matches_each_copy_of_a_repeated_header() {
    let deny = policy(json!({"name": "only-prod", "action": "DENY",
        "rules": [{"when": [{"key": "request.headers[x-env]", "notValues": ["prod"]}]}]}));
    let j = diff::check_case(&deny, &req("/", None, &[("x-env", "dev"), ("x-env", "prod")])).unwrap();
    assert_eq!(j.verdict.applies, vec![diff::REPEATED_UNDOCUMENTED]);
    assert_eq!((j.peerguard.status, j.rbac.status), (403, 200), "{:?}", j.peerguard.reason);
    let allow =
        policy(json!({"name": "prod", "rules": [{"when": [{"key": "request.headers[x-env]", "values": ["prod"]}]}]}));
    let j = diff::check_case(&allow, &req("/", None, &[("x-env", "prod"), ("x-env", "dev")])).unwrap();
    assert_eq!((j.peerguard.status, j.rbac.status), (403, 200), "{:?}", j.peerguard.reason);
    assert!(j.ok, "the oracle counts it as peerguard failing closed");
}
