//! CRL sources through the public engine API: what a fetched CRL must be to be installed, and what
//! an installed, missing or too-old one decides (docs/policy.md "CRL sources"). Fixtures are in
//! `tests/fixtures/crl-source` (made by `gen_crl_source_fixtures`); every test passes `now`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use peerguard_policy::{CertCache, CertFacts, Engine, Peer, Reason, Request};
use serde_json::{json, Value};

/// 2030-06-01T12:00:00Z.
const T: i64 = 1_906_545_600;
const MIN: i64 = 60;

macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!("fixtures/crl-source/", $name))
    };
}

const CA: &str = fixture!("ca.pem");
const LEAF_A: &str = fixture!("leaf-a.pem");
const LEAF_B: &str = fixture!("leaf-b.pem");
const CRL_1_EMPTY: &str = fixture!("crl-1-empty.pem");
const CRL_2_REVOKES_A: &str = fixture!("crl-2-revokes-a.pem");
const CRL_2_REVOKES_A_DER: &[u8] = include_bytes!("fixtures/crl-source/crl-2-revokes-a.der");
const CRL_2_REVOKES_B: &str = fixture!("crl-2-revokes-b.pem");
const CRL_3_STALE_10M: &str = fixture!("crl-3-revokes-a-next-update-t-minus-10m.pem");
const CRL_MAX_NUMBER: &str = fixture!("crl-max-number-empty.pem");
const CRL_ANOTHER_CA: &str = fixture!("crl-another-ca.pem");
const CRL_IMPOSTOR: &str = fixture!("crl-impostor-9-empty.pem");
// A configured CRL of another PKI, to show that crlSources and crls combine.
const ROOT: &str = include_str!("fixtures/root-ca.pem");

fn engine(policy: Value) -> Engine {
    match Engine::from_json(&policy.to_string()) {
        Ok(e) => e,
        Err(e) => panic!("policy does not compile: {e}"),
    }
}

fn source(max_stale: &str) -> Value {
    json!({"cluster": "crl-server", "path": "/ca.crl", "refresh": "2s", "maxStale": max_stale})
}

fn sources_policy(max_stale: &str, unknown_status: &str) -> Engine {
    engine(json!({"certificate": {
        "trustAnchors": [CA],
        "crlSources": [source(max_stale)],
        "revocation": {"unknownStatus": unknown_status},
    }}))
}

/// The decision for `leaf` at `now`, prepared afresh (no cache).
fn reason(e: &Engine, leaf: &str, now: i64) -> Option<Reason> {
    let prepared = e.prepare(CertFacts::from_pem(leaf.as_bytes()).unwrap(), &[], now);
    let headers: Vec<(String, String)> = Vec::new();
    let req = Request { method: "GET", path: "/", host: "api", port: Some(8443), sni: None, headers: &headers };
    e.decide(&req, &Peer::Certificate(&prepared), now).reason()
}

fn config_errors(policy: Value) -> Vec<(String, String)> {
    match Engine::from_json(&policy.to_string()) {
        Ok(_) => panic!("policy compiled: {policy}"),
        Err(errors) => errors.iter().map(|e| (e.path.clone(), e.message.clone())).collect(),
    }
}

#[test]
fn a_source_is_compiled_for_the_filter_with_its_defaults() {
    let e = engine(json!({
        "certificate": {"trustAnchors": [CA], "crlSources": [{"cluster": "crl-server", "path": "/ca.crl"}]},
        "certificateRules": [{"name": "admin", "require": {"trustAnchors": [CA], "crlSources": [
            {"name": "admin-crl", "cluster": "pki", "path": "/admin.crl", "authority": "pki.example",
             "refresh": "1m", "maxStale": "1h", "timeout": "2s", "maxBytes": 1000}]}}],
    }));
    let specs = e.crl_sources();
    assert_eq!(specs.len(), 2);
    let (a, b) = (specs[0], specs[1]);
    assert_eq!(
        (a.name.as_str(), a.cluster.as_str(), a.path.as_str(), a.authority.as_str()),
        ("crl-server_ca_crl", "crl-server", "/ca.crl", "crl-server")
    );
    assert_eq!((a.refresh_secs, a.max_stale_secs, a.timeout_secs, a.max_bytes), (300, 0, 5, 8 << 20));
    assert_eq!(a.at, "certificate.crlSources[0]");
    assert_eq!((b.name.as_str(), b.authority.as_str()), ("admin-crl", "pki.example"));
    assert_eq!((b.refresh_secs, b.max_stale_secs, b.timeout_secs, b.max_bytes), (60, 3600, 2, 1000));
    assert_eq!(b.at, "certificateRules[0].require.crlSources[0]");
}

#[test]
fn bad_sources_are_config_errors_with_their_paths() {
    let errors = config_errors(json!({"certificate": {"trustAnchors": [CA], "crlSources": [
        {"cluster": "", "path": "ca.crl", "refresh": "0s", "maxStale": "soon", "timeout": "1", "maxBytes": 0, "name": "a.b"},
        {"cluster": "c", "path": "/x y"},
    ]}}));
    let paths: Vec<&str> = errors.iter().map(|(p, _)| p.as_str()).collect();
    for want in [
        "certificate.crlSources[0].cluster",
        "certificate.crlSources[0].path",
        "certificate.crlSources[0].refresh",
        "certificate.crlSources[0].maxStale",
        "certificate.crlSources[0].timeout",
        "certificate.crlSources[0].maxBytes",
        "certificate.crlSources[0].name",
        "certificate.crlSources[1].path",
    ] {
        assert!(paths.contains(&want), "{want} missing from {errors:?}");
    }
    // Without trust anchors nothing could verify a fetched CRL; an empty list fetches nothing.
    let errors = config_errors(json!({"certificate": {"crlSources": [source("0s")]}}));
    assert_eq!(errors[0].0, "certificate.trustAnchors", "{errors:?}");
    let errors = config_errors(json!({"certificate": {"trustAnchors": [CA], "crlSources": []}}));
    assert_eq!(errors[0].0, "certificate.crlSources", "{errors:?}");
    // Unknown keys are refused, as everywhere.
    let errors = config_errors(
        json!({"certificate": {"trustAnchors": [CA], "crlSources": [{"cluster": "c", "path": "/a", "url": "http://x"}]}}),
    );
    assert!(errors[0].1.contains("url"), "{errors:?}");
    // Two sources that would share their metrics.
    let errors = config_errors(json!({
        "certificate": {"trustAnchors": [CA], "crlSources": [source("0s")]},
        "certificateRules": [{"name": "r", "require": {"trustAnchors": [CA], "crlSources": [source("0s")]}}],
    }));
    assert_eq!(
        errors,
        vec![(
            "certificateRules[0].require.crlSources[0].name".to_owned(),
            "another CRL source is already named \"crl-server_ca_crl\"; give each source its own name".to_owned()
        )]
    );
}

#[test]
fn revocation_options_may_rest_on_crl_sources_alone() {
    let e = sources_policy("0s", "deny");
    assert_eq!(e.crl_sources().len(), 1);
}

#[test]
fn before_the_first_good_crl_unknown_status_decides() {
    assert_eq!(reason(&sources_policy("0s", "deny"), LEAF_A, T), Some(Reason::RevocationUnknown));
    assert_eq!(reason(&sources_policy("0s", "allow"), LEAF_A, T), None);
    // A refused CRL changes nothing.
    let e = sources_policy("0s", "deny");
    assert!(e.install_crl(0, CRL_IMPOSTOR.as_bytes()).is_err());
    assert_eq!(reason(&e, LEAF_A, T), Some(Reason::RevocationUnknown));
    assert_eq!(e.crl_info(0), None);
}

#[test]
fn an_installed_crl_revokes_what_it_lists_in_pem_or_der() {
    for body in [CRL_2_REVOKES_A.as_bytes(), CRL_2_REVOKES_A_DER] {
        let e = sources_policy("0s", "deny");
        let installed = e.install_crl(0, body).unwrap();
        assert!(installed.changed);
        assert_eq!(installed.info.number, "2");
        assert_eq!(installed.info.entries, 1);
        assert_eq!((installed.info.this_update, installed.info.next_update), (T - 60 * MIN, T + 60 * MIN));
        assert_eq!(reason(&e, LEAF_A, T), Some(Reason::Revoked));
        assert_eq!(reason(&e, LEAF_B, T), None);
    }
}

#[test]
fn a_newer_crl_replaces_the_old_one_and_the_same_bytes_change_nothing() {
    let e = sources_policy("0s", "deny");
    assert!(e.install_crl(0, CRL_1_EMPTY.as_bytes()).unwrap().changed);
    assert_eq!(reason(&e, LEAF_A, T), None);
    assert!(!e.install_crl(0, CRL_1_EMPTY.as_bytes()).unwrap().changed);
    assert!(e.install_crl(0, CRL_2_REVOKES_A.as_bytes()).unwrap().changed);
    assert_eq!(reason(&e, LEAF_A, T), Some(Reason::Revoked));
    assert_eq!(e.crl_info(0).unwrap().number, "2");
}

#[test]
fn crl_number_never_goes_down_nor_repeats_with_other_content() {
    let e = sources_policy("0s", "deny");
    e.install_crl(0, CRL_2_REVOKES_A.as_bytes()).unwrap();
    // A replayed older CRL would un-revoke leaf A.
    let err = e.install_crl(0, CRL_1_EMPTY.as_bytes()).unwrap_err();
    assert!(err.contains("CRLNumber 1 is lower than the installed CRL's 2"), "{err}");
    let err = e.install_crl(0, CRL_2_REVOKES_B.as_bytes()).unwrap_err();
    assert!(err.contains("CRLNumber 2 is the installed CRL's"), "{err}");
    assert_eq!(reason(&e, LEAF_A, T), Some(Reason::Revoked));
    assert_eq!(reason(&e, LEAF_B, T), None);
    // Twenty octets compare as numbers, not as strings.
    let installed = e.install_crl(0, CRL_MAX_NUMBER.as_bytes()).unwrap();
    // 0x7f repeated 20 times.
    assert_eq!(installed.info.number, "727885129180488904360266563744972327436484050815");
    assert!(e.install_crl(0, CRL_2_REVOKES_A.as_bytes()).is_err());
}

#[test]
fn forged_foreign_oversized_and_garbage_crls_are_refused() {
    let e = sources_policy("0s", "deny");
    let err = e.install_crl(0, CRL_IMPOSTOR.as_bytes()).unwrap_err();
    assert!(err.contains("not signed by a configured trust anchor"), "{err}");
    let err = e.install_crl(0, CRL_ANOTHER_CA.as_bytes()).unwrap_err();
    assert!(err.contains("not signed by a configured trust anchor"), "{err}");
    for garbage in [
        &b""[..],
        b"not a crl",
        b"-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n",
        &CRL_2_REVOKES_A_DER[..100],
    ] {
        assert!(e.install_crl(0, garbage).is_err(), "{garbage:?}");
    }
    let two = format!("{CRL_1_EMPTY}{CRL_2_REVOKES_A}");
    assert!(e.install_crl(0, two.as_bytes()).unwrap_err().contains("expected one PEM CRL, found 2"));
    let small = engine(json!({"certificate": {"trustAnchors": [CA], "crlSources": [
        {"cluster": "c", "path": "/a", "maxBytes": 100}]}}));
    assert!(small.install_crl(0, CRL_2_REVOKES_A_DER).unwrap_err().contains("over maxBytes (100)"));
    assert!(e.install_crl(1, CRL_2_REVOKES_A.as_bytes()).is_err(), "no such source");
    assert_eq!(reason(&e, LEAF_A, T), Some(Reason::RevocationUnknown));
}

#[test]
fn past_next_update_plus_max_stale_unknown_status_decides_and_listed_serials_stay_revoked() {
    // nextUpdate T - 10m: within maxStale 10m it is fresh (inclusive), past it the status is unknown.
    let fresh = sources_policy("10m", "deny");
    fresh.install_crl(0, CRL_3_STALE_10M.as_bytes()).unwrap();
    assert_eq!(reason(&fresh, LEAF_B, T), None);
    assert_eq!(reason(&fresh, LEAF_B, T + 1), Some(Reason::RevocationUnknown));
    assert_eq!(reason(&fresh, LEAF_A, T), Some(Reason::Revoked));
    let allow = sources_policy("5m", "allow");
    allow.install_crl(0, CRL_3_STALE_10M.as_bytes()).unwrap();
    assert_eq!(reason(&allow, LEAF_B, T), None);
    // A too-old CRL is still a blocklist: unknownStatus allow never un-revokes.
    assert_eq!(reason(&allow, LEAF_A, T), Some(Reason::Revoked));
    // staleStatus is for configured CRLs; it does not decide for a source.
    let stale_allow = engine(json!({"certificate": {"trustAnchors": [CA], "crlSources": [source("0s")],
        "revocation": {"unknownStatus": "deny", "staleStatus": "allow"}}}));
    stale_allow.install_crl(0, CRL_3_STALE_10M.as_bytes()).unwrap();
    assert_eq!(reason(&stale_allow, LEAF_B, T), Some(Reason::RevocationUnknown));
}

#[test]
fn a_verdict_never_outlives_the_grace_of_the_crl_it_relied_on() {
    let e = sources_policy("10m", "deny");
    e.install_crl(0, CRL_3_STALE_10M.as_bytes()).unwrap();
    let prepared = e.prepare(CertFacts::from_pem(LEAF_B.as_bytes()).unwrap(), &[], T - 30 * MIN);
    assert_eq!(prepared.valid_until, T, "nextUpdate T - 10m plus 10m of maxStale");
    let mut cache = CertCache::new(4);
    cache.insert("b".to_owned(), prepared);
    assert!(cache.get("b", T).is_some());
    assert!(cache.get("b", T + 1).is_none());
}

#[test]
fn sources_and_configured_crls_combine_and_each_block_has_its_own_sources() {
    let e = engine(json!({
        "certificate": {"trustAnchors": [CA, ROOT], "crlSources": [source("0s")],
            "crls": [include_str!("fixtures/crl-root-empty.pem")]},
        "certificateRules": [{"name": "r", "require": {"trustAnchors": [CA], "crlSources": [
            {"name": "second", "cluster": "c", "path": "/b"}], "revocation": {"unknownStatus": "deny"}}}],
    }));
    // The rule's source has delivered nothing: its status is unknown, the block's is not asked.
    e.install_crl(0, CRL_1_EMPTY.as_bytes()).unwrap();
    assert_eq!(reason(&e, LEAF_B, T), Some(Reason::RevocationUnknown));
    e.install_crl(1, CRL_2_REVOKES_A.as_bytes()).unwrap();
    assert_eq!(reason(&e, LEAF_B, T), None);
    assert_eq!(reason(&e, LEAF_A, T), Some(Reason::Revoked));
    assert_eq!(e.crl_info(0).unwrap().number, "1");
    assert_eq!(e.crl_info(1).unwrap().number, "2");
}
