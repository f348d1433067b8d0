//! `peerguard crl make` and `crl show` through the binary, and the engine installing what `make` wrote.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use common::{ok, peerguard};
use peerguard_policy::{CertFacts, Engine, Peer, Reason, Request};

#[test]
fn a_crl_made_from_a_ca_revokes_the_certificate_it_names_and_shows_what_it_holds() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().to_str().unwrap();
    ok(&["cert", "ca", "--out-dir", d, "--cn", "crl test CA"]);
    for name in ["alice", "bob"] {
        ok(&[
            "cert",
            "issue",
            "--ca",
            &format!("{d}/ca.pem"),
            "--ca-key",
            &format!("{d}/ca-key.pem"),
            "--out-dir",
            d,
            "--name",
            name,
            "--workload",
            &format!("default/{name}"),
            "--ttl",
            "1h",
        ]);
    }
    let crl = format!("{d}/ca.crl");
    let out = ok(&[
        "crl",
        "make",
        "--ca",
        &format!("{d}/ca.pem"),
        "--ca-key",
        &format!("{d}/ca-key.pem"),
        "--revoke-cert",
        &format!("{d}/alice.pem"),
        "--revoke",
        "0x5f:01",
        "--number",
        "7",
        "--next-update",
        "2h",
        "--out",
        &crl,
    ])
    .stdout;
    assert!(out.contains("wrote"), "{out}");
    let shown: serde_json::Value = serde_json::from_str(&ok(&["crl", "show", &crl]).stdout).unwrap();
    assert_eq!(shown["number"], "7");
    assert!(shown["issuer"].as_str().unwrap().contains("CN=crl test CA"), "{shown}");
    let entries = shown["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert!(entries.iter().any(|e| e["serial"] == "5f:01"), "{shown}");
    let this = time::OffsetDateTime::parse(
        shown["thisUpdate"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let next = time::OffsetDateTime::parse(
        shown["nextUpdate"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    // nextUpdate 2 h from now; thisUpdate backdated by a minute for clock skew.
    assert_eq!((next - this).whole_seconds(), 7200 + 60);
    let age = (time::OffsetDateTime::now_utc() - this).whole_seconds();
    assert!((60..70).contains(&age), "thisUpdate {age} s ago");

    // The engine takes it as a CRL source's fetch: alice revoked, bob not.
    let ca = std::fs::read_to_string(format!("{d}/ca.pem")).unwrap();
    let policy = serde_json::json!({"certificate": {"trustAnchors": [ca],
        "crlSources": [{"cluster": "c", "path": "/ca.crl"}], "revocation": {"unknownStatus": "deny"}}});
    let engine = Engine::from_json(&policy.to_string()).unwrap();
    let installed = engine.install_crl(0, &std::fs::read(&crl).unwrap()).unwrap();
    assert_eq!((installed.info.number.as_str(), installed.info.entries), ("7", 2));
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let reason = |name: &str| {
        let pem = std::fs::read(format!("{d}/{name}.pem")).unwrap();
        let prepared = engine.prepare(CertFacts::from_pem(&pem).unwrap(), &[], now);
        let headers: Vec<(String, String)> = Vec::new();
        let req = Request { method: "GET", path: "/", host: "h", port: None, sni: None, headers: &headers };
        engine.decide(&req, &Peer::Certificate(&prepared), now).reason()
    };
    assert_eq!(reason("alice"), Some(Reason::Revoked));
    assert_eq!(reason("bob"), None);

    // Without --number a later CRL gets a higher number (the Unix time) and replaces it.
    let later = format!("{d}/later.crl");
    ok(&["crl", "make", "--ca", &format!("{d}/ca.pem"), "--ca-key", &format!("{d}/ca-key.pem"), "--out", &later]);
    assert!(engine.install_crl(0, &std::fs::read(&later).unwrap()).unwrap().changed);
    assert_eq!(reason("alice"), None);
}

#[test]
fn bad_input_is_refused_with_exit_code_2_and_a_message() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().to_str().unwrap();
    ok(&["cert", "ca", "--out-dir", d]);
    let out = peerguard(&[
        "crl",
        "make",
        "--ca",
        &format!("{d}/ca.pem"),
        "--ca-key",
        &format!("{d}/ca-key.pem"),
        "--revoke",
        "xyz",
    ]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("invalid serial \"xyz\""));
    std::fs::write(format!("{d}/junk.crl"), "junk").unwrap();
    let out = peerguard(&["crl", "show", &format!("{d}/junk.crl")]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("junk.crl"));
}
