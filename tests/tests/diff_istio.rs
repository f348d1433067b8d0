//! Differential test: random policies as istiod's RBAC and as peerguard, in one real Envoy, must decide alike
//! (up to the documented differences; see `peerguard_e2e::diff` for the oracle).
//!
//! `just test` runs a bounded number of policies. `just diff-istio N` runs N
//! (`PEERGUARD_DIFF_POLICIES`); `PEERGUARD_DIFF_SEED` picks another sequence,
//! `PEERGUARD_DIFF_REQUESTS` the requests per policy, and `PEERGUARD_DIFF_POLICY_FILE=path` runs
//! the requests against one given policy instead. Fails (never skips) without Envoy or the module.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use peerguard_e2e::diff::{self, Config};

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
