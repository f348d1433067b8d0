//! External conformance check of chain verification against x509-limbo (issue 4).
//!
//! `tests/limbo/limbo.json` is a vendored copy of the x509-limbo test vectors (see
//! `tests/limbo/README.md`). Every testcase is driven through the public engine API exactly as a
//! request would be: a policy `{certificate: {trustAnchors: <trusted_certs>}}` compiled by
//! `Engine::from_json`, the case's `untrusted_intermediates` presented as the chain (as a bound
//! XFCC `Chain=` would be), `Engine::prepare` + `Engine::decide` at the validation time. peerguard
//! passes a case when the decision is `allowed`; x509-limbo's `expected_result` says whether it
//! should. A policy that does not compile (e.g. a trust anchor webpki refuses) counts as a deny:
//! the filter then denies every request. A leaf that does not parse is `Peer::Unparseable`, also
//! a deny.
//!
//! What runs and what is skipped (data-driven: see `skip_reason`, `NAME_MATCHING_IDS`,
//! `SKIP_FEATURES`):
//! - peerguard verifies the peer for **client** authentication (webpki `KeyUsage::client_auth`)
//!   and never matches the peer's names against an expected name. CLIENT-kind cases run as they
//!   are.
//! - SERVER-kind cases run only when their outcome cannot hinge on what peerguard does not do:
//!   a case is skipped when its id matches a server-name-matching pattern (`NAME_MATCHING_IDS`),
//!   or when its leaf has an EKU extension without clientAuth/anyExtendedKeyUsage (peerguard would
//!   deny it for the EKU, whatever the case is about; the EKU is read with x509-parser, not with
//!   the engine, so a leaf the engine refuses is still classified). SERVER-kind cases that run are
//!   counted separately in the summary.
//! - Cases that need validator options peerguard has no setting for are skipped: a maximum chain
//!   depth (`max-chain-depth` feature / `max_chain_depth`), a restricted set of signature
//!   algorithms, or required key usages / EKUs other than clientAuth.
//!
//! Validation time: the case's `validation_time` (RFC 3339) when set. x509-limbo's `null` means
//! "now"; the test uses a fixed "now", `DEFAULT_NOW` (2025-01-01T00:00:00Z), so the outcome never
//! depends on the clock. The corpus' certificates for cases without a time are valid from 1970 to
//! 2969 (apart from deliberately expired ones), so any present-day instant gives the same verdicts.
//!
//! `KNOWN_DIVERGENCES` lists the cases where peerguard (rustls-webpki 0.103 with peerguard's
//! signature algorithms) disagrees with x509-limbo, each with the reason. The test fails when a
//! case that is not listed diverges, and when a listed case no longer diverges (or is no longer
//! run), so the list stays exact. Run it with
//!
//!     cargo test -p peerguard-policy --test limbo -- --ignored --nocapture
//!
//! `just test` runs it (without `--nocapture`; the summary is printed on failure).

#![cfg(not(target_arch = "wasm32"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::collections::{BTreeMap, BTreeSet};

use peerguard_policy::{CertFacts, Decision, Engine, Peer, Request};
use serde::Deserialize;
use serde_json::json;

/// 2025-01-01T00:00:00Z: "now" for cases whose `validation_time` is null.
const DEFAULT_NOW: i64 = 1_735_689_600;

/// Cases where peerguard's verdict differs from x509-limbo's expected result, with the reason.
const KNOWN_DIVERGENCES: &[(&str, &str)] = &[(
    "pathlen::validation-ignores-pathlen-in-leaf",
    "the leaf is a CA certificate (basicConstraints cA=TRUE); RFC 5280 lets a CA certificate end a \
     path, but rustls-webpki rejects a CA certificate used as the end entity (CaUsedAsEndEntity), \
     so peerguard denies it (UntrustedChain). Stricter, and intended: a workload peer is never a CA",
)];

/// Id patterns (one `*` wildcard) of SERVER-kind cases whose outcome is decided by matching the
/// expected peer name against the leaf's names, which peerguard never does (it authorizes on the
/// identity in its policies instead).
const NAME_MATCHING_IDS: &[&str] = &[
    "webpki::*-san",   // exact/mismatch/wildcard/unicode SAN matching
    "webpki::no-san",  // no SAN to match the expected name against
    "webpki::cn::*",   // CN fallback matching (later corpus versions)
    "rfc5280::san::*", // SAN matching (later corpus versions)
];

/// Limbo features that need a validator option peerguard does not expose.
const SKIP_FEATURES: &[(&str, &str)] = &[("max-chain-depth", "needs a maximum chain depth setting")];

#[derive(Deserialize)]
struct Limbo {
    version: u32,
    testcases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    id: String,
    features: Option<Vec<String>>,
    validation_kind: String,
    trusted_certs: Vec<String>,
    untrusted_intermediates: Vec<String>,
    peer_certificate: String,
    validation_time: Option<String>,
    signature_algorithms: Option<Vec<String>>,
    key_usage: Option<Vec<String>>,
    extended_key_usage: Option<Vec<String>>,
    expected_result: String,
    max_chain_depth: Option<u32>,
}

/// Why a case is not run, or `None` to run it.
fn skip_reason(case: &Case) -> Option<&'static str> {
    let features = case.features.iter().flatten();
    if let Some((_, why)) = features.flat_map(|f| SKIP_FEATURES.iter().filter(move |(n, _)| n == f)).next() {
        return Some(why);
    }
    if case.max_chain_depth.is_some() {
        return Some("needs a maximum chain depth setting");
    }
    if case.signature_algorithms.as_ref().is_some_and(|a| !a.is_empty()) {
        return Some("needs a restricted set of signature algorithms");
    }
    if case.key_usage.as_ref().is_some_and(|k| !k.is_empty()) {
        return Some("needs required key usages");
    }
    if case.extended_key_usage.as_ref().is_some_and(|e| e.iter().any(|u| u != "clientAuth")) {
        return Some("needs an EKU other than clientAuth");
    }
    match case.validation_kind.as_str() {
        "CLIENT" => None,
        "SERVER" => {
            if NAME_MATCHING_IDS.iter().any(|p| glob(p, &case.id)) {
                return Some("SERVER case about server-name matching (peerguard never matches peer names)");
            }
            if leaf_eku_excludes_client_auth(&case.peer_certificate) {
                return Some(
                    "SERVER case with a leaf EKU that excludes clientAuth (peerguard verifies for clientAuth)",
                );
            }
            None
        }
        _ => Some("unknown validation_kind"),
    }
}

/// `pattern` with at most one `*` matches `s`.
fn glob(pattern: &str, s: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == s,
        Some((pre, post)) => s.len() >= pre.len() + post.len() && s.starts_with(pre) && s.ends_with(post),
    }
}

/// The leaf has an extendedKeyUsage extension without clientAuth or anyExtendedKeyUsage.
fn leaf_eku_excludes_client_auth(pem: &str) -> bool {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let Ok(ders) = peerguard_policy::pem_certificates(pem.as_bytes()) else {
        return false;
    };
    let Some(der) = ders.first() else {
        return false;
    };
    match X509Certificate::from_der(der) {
        Ok((_, cert)) => match cert.extended_key_usage() {
            Ok(Some(eku)) => !(eku.value.client_auth || eku.value.any),
            _ => false,
        },
        Err(_) => false,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Unix seconds of an RFC 3339 timestamp (`YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`).
fn rfc3339(s: &str) -> i64 {
    let bad = || panic!("validation_time {s:?} is not RFC 3339");
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        bad();
    }
    let num = |r: std::ops::Range<usize>| s.get(r).and_then(|t| t.parse::<i64>().ok()).unwrap_or_else(&bad);
    let (y, mo, d, h, mi, se) = (num(0..4), num(5..7), num(8..10), num(11..13), num(14..16), num(17..19));
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        rest = frac.trim_start_matches(|c: char| c.is_ascii_digit());
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6 && (rest.starts_with('+') || rest.starts_with('-')) => {
            let oh: i64 = rest[1..3].parse().unwrap_or_else(|_| bad());
            let om: i64 = rest[4..6].parse().unwrap_or_else(|_| bad());
            let sign = if rest.starts_with('-') { -1 } else { 1 };
            sign * (oh * 3600 + om * 60)
        }
        _ => bad(),
    };
    days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + se - offset
}

/// peerguard's verdict on a case: `Ok(())` allowed, `Err(why)` denied.
fn peerguard_verdict(case: &Case, now: i64) -> Result<(), String> {
    let policy = json!({ "certificate": { "trustAnchors": case.trusted_certs } });
    let engine = Engine::from_json(&policy.to_string()).map_err(|e| format!("policy does not compile: {e}"))?;
    let presented: Vec<Vec<u8>> = case
        .untrusted_intermediates
        .iter()
        .map(|pem| peerguard_policy::pem_certificates(pem.as_bytes()).map(|mut v| v.remove(0)))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("intermediate does not decode: {e:?}"))?;
    let headers: Vec<(String, String)> = Vec::new();
    let req = Request { method: "GET", path: "/", host: "example.com", port: Some(443), sni: None, headers: &headers };
    let decision: Decision = match CertFacts::from_pem(case.peer_certificate.as_bytes()) {
        Ok(facts) => {
            let prepared = engine.prepare(facts, &presented, now);
            engine.decide(&req, &Peer::Certificate(&prepared), now)
        }
        Err(_) => engine.decide(&req, &Peer::Unparseable, now),
    };
    if decision.allowed {
        Ok(())
    } else {
        Err(format!("{:?}", decision.reason))
    }
}

#[test]
#[ignore = "external conformance corpus; run with --ignored (just test does)"]
fn chain_verification_agrees_with_x509_limbo_except_listed_divergences() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/limbo/limbo.json");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let limbo: Limbo = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert_eq!(limbo.version, 1, "limbo.json format version");

    let known: BTreeMap<&str, &str> = KNOWN_DIVERGENCES.iter().copied().collect();
    assert_eq!(known.len(), KNOWN_DIVERGENCES.len(), "KNOWN_DIVERGENCES has a duplicate id");
    let mut ran_by_kind: BTreeMap<String, usize> = BTreeMap::new();
    let mut agreed = 0usize;
    let mut divergent: Vec<(String, String)> = Vec::new();
    let mut unexpected: Vec<String> = Vec::new();
    let mut skipped: BTreeMap<&str, usize> = BTreeMap::new();
    let mut ran_ids: Vec<&str> = Vec::new();
    let mut seen_divergent: BTreeSet<String> = BTreeSet::new();

    for case in &limbo.testcases {
        if let Some(why) = skip_reason(case) {
            *skipped.entry(why).or_default() += 1;
            continue;
        }
        *ran_by_kind.entry(case.validation_kind.clone()).or_default() += 1;
        ran_ids.push(&case.id);
        let now = case.validation_time.as_deref().map_or(DEFAULT_NOW, rfc3339);
        let expected_pass = match case.expected_result.as_str() {
            "SUCCESS" => true,
            "FAILURE" => false,
            other => panic!("{}: expected_result {other:?}", case.id),
        };
        let verdict = peerguard_verdict(case, now);
        if verdict.is_ok() == expected_pass {
            agreed += 1;
            continue;
        }
        let got = match &verdict {
            Ok(()) => "allowed".to_owned(),
            Err(why) => format!("denied ({why})"),
        };
        seen_divergent.insert(case.id.clone());
        match known.get(case.id.as_str()) {
            Some(reason) => divergent.push((case.id.clone(), (*reason).to_owned())),
            None => unexpected.push(format!("{}: expected {}, peerguard {got}", case.id, case.expected_result)),
        }
    }
    let stale: Vec<&str> = known.keys().copied().filter(|id| !seen_divergent.contains(*id)).collect();

    let ran: usize = ran_by_kind.values().sum();
    println!("x509-limbo: {} testcases", limbo.testcases.len());
    println!(
        "ran {ran} ({}), agreed {agreed}, divergent {} (listed {}, unlisted {})",
        ran_by_kind.iter().map(|(k, n)| format!("{k} {n}")).collect::<Vec<_>>().join(", "),
        divergent.len() + unexpected.len(),
        divergent.len(),
        unexpected.len()
    );
    println!("ran: {}", ran_ids.join(", "));
    println!("skipped {}:", skipped.values().sum::<usize>());
    for (why, n) in &skipped {
        println!("  {n:4}  {why}");
    }
    for (id, reason) in &divergent {
        println!("known divergence {id}: {reason}");
    }
    assert!(
        unexpected.is_empty() && stale.is_empty(),
        "unlisted divergences (fix peerguard or add them to KNOWN_DIVERGENCES with a reason):\n  {}\n\
         listed in KNOWN_DIVERGENCES but no longer divergent or not run (remove them):\n  {}",
        unexpected.join("\n  "),
        stale.join("\n  ")
    );
}
