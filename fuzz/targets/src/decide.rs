//! Target `decide`: an arbitrary request and peer against fixed policies that read every attribute.
//!
//! Input, one field per line (a missing line is an absent attribute):
//! `<pathNormalization> <peer>` / method / `:path` / `:authority` / port / SNI / `name: value`...
//! where pathNormalization is `rewrite`, `reject` or `none` (anything else: `rewrite`) and peer is
//! `none`, `unparseable`, `attrs:<uri SAN>|<DNS SAN>|<subject>` or a certificate fixture name
//! (`healthy`, `admin`, `expired`, `revoked`, `long-lived`, `self-signed`; anything else: `healthy`).
//! Properties:
//! - deciding never panics;
//! - deciding is deterministic.

use std::sync::OnceLock;

use peerguard_policy::{CertFacts, Decision, Engine, Peer, PeerAttributes, PreparedCert};
use serde_json::json;

use crate::fixtures::{self, NOW};
use crate::request::{self, Parts};

/// The target body.
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut lines = text.split('\n');
    let (mode, peer) = lines.next().unwrap_or_default().split_once(' ').unwrap_or(("rewrite", "healthy"));
    let engines = engines();
    let engine = match mode {
        "reject" => &engines.reject,
        "none" => &engines.none,
        _ => &engines.rewrite,
    };
    let method = lines.next().unwrap_or_default();
    let path = lines.next().unwrap_or_default();
    let host = lines.next().unwrap_or_default();
    let port = lines.next().and_then(|p| p.parse().ok());
    let sni = lines.next().filter(|s| !s.is_empty());
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let parts = Parts { method, path, host, port, sni, headers: &headers };

    let attrs;
    let peer = match peer {
        "none" => Peer::None,
        "unparseable" => Peer::Unparseable,
        p if p.starts_with("attrs:") => {
            let mut it = p["attrs:".len()..].split('|').map(|s| Some(s.to_owned()).filter(|s| !s.is_empty()));
            attrs = PeerAttributes {
                uri_san: it.next().flatten(),
                dns_san: it.next().flatten(),
                subject: it.next().flatten(),
            };
            Peer::Attributes(&attrs)
        }
        name => Peer::Certificate(certificate(engine, name)),
    };
    let first = request::decide(engine, &parts, &peer, NOW);
    check(&first);
    assert_eq!(first, request::decide(engine, &parts, &peer, NOW), "two decisions for one request");
}

fn check(d: &Decision) {
    assert!(d.allowed || d.reason.is_some(), "a deny without a reason: {d:?}");
    assert!(!d.dry_run || d.reason.is_some(), "a dry-run decision without a would-deny reason: {d:?}");
}

/// A certificate fixture prepared for `engine` (each engine keeps its own, as the filter's cache does).
fn certificate(engine: &Engine, name: &str) -> &'static PreparedCert {
    let engines = engines();
    let certs = if std::ptr::eq(engine, &engines.reject) {
        &engines.reject_certs
    } else if std::ptr::eq(engine, &engines.none) {
        &engines.none_certs
    } else {
        &engines.rewrite_certs
    };
    let index = CERTS.iter().position(|(n, _)| *n == name).unwrap_or(0);
    &certs[index]
}

const CERTS: [(&str, &str); 6] = [
    ("healthy", fixtures::HEALTHY),
    ("admin", fixtures::ADMIN),
    ("expired", fixtures::EXPIRED),
    ("revoked", fixtures::REVOKED),
    ("long-lived", fixtures::LONG_LIVED),
    ("self-signed", fixtures::SELF_SIGNED),
];

struct Engines {
    rewrite: Engine,
    reject: Engine,
    none: Engine,
    rewrite_certs: Vec<PreparedCert>,
    reject_certs: Vec<PreparedCert>,
    none_certs: Vec<PreparedCert>,
}

fn engines() -> &'static Engines {
    static ENGINES: OnceLock<Result<Engines, String>> = OnceLock::new();
    fixtures::built(ENGINES.get_or_init(build), "the decide policies")
}

fn build() -> Result<Engines, String> {
    let compile =
        |normalization: &str| Engine::from_json(&policy(normalization).to_string()).map_err(|e| e.to_string());
    let prepare = |engine: &Engine| -> Result<Vec<PreparedCert>, String> {
        CERTS
            .iter()
            .map(|(name, pem)| {
                let facts = CertFacts::from_pem(pem.as_bytes()).map_err(|e| format!("{name}: {e}"))?;
                Ok(engine.prepare(facts, &[], NOW))
            })
            .collect()
    };
    let (rewrite, reject, none) = (compile("rewrite")?, compile("reject")?, compile("none")?);
    Ok(Engines {
        rewrite_certs: prepare(&rewrite)?,
        reject_certs: prepare(&reject)?,
        none_certs: prepare(&none)?,
        rewrite,
        reject,
        none,
    })
}

/// A policy in which every request attribute decides something, most of all the path.
fn policy(normalization: &str) -> serde_json::Value {
    json!({
        "mtls": "permissive",
        "pathNormalization": normalization,
        "identity": ["spiffe", "dns", "subject"],
        "certificate": {"requireClientAuth": true, "trustAnchors": [fixtures::ROOT, fixtures::ADMIN_CA], "intermediates": [fixtures::INTERMEDIATE]},
        "certificateRules": [
            {"name": "admin-short-lived", "to": [{"operation": {"paths": ["/admin/*", "/admin"]}}], "require": {"maxLifetime": "25h"}},
        ],
        "policies": [
            {"name": "no-admin", "action": "DENY", "rules": [
                {"to": [{"operation": {"paths": ["/admin", "/admin/*", "/internal*"], "notMethods": ["OPTIONS"]}}]},
                {"to": [{"operation": {"hosts": ["admin.example"]}}]},
                {"when": [{"key": "request.headers[x-role]", "values": ["admin*", "*admin"]}]},
            ]},
            {"name": "audit-files", "action": "AUDIT", "rules": [{"to": [{"operation": {"paths": ["/files/*"]}}]}]},
            {"name": "workloads-read-api", "action": "ALLOW", "rules": [{
                "from": [{"source": {"principals": ["cluster.local/ns/*"], "notPrincipals": ["*/sa/blocked"]}}],
                "to": [{"operation": {"methods": ["GET", "HEAD"], "paths": ["/api/*", "/files/*"], "notPaths": ["/api/private*"], "ports": ["8443"]}}],
            }]},
            {"name": "admins", "action": "ALLOW", "rules": [{
                "from": [{"source": {"principals": ["admin", "cluster.local/ns/ops/sa/admin"]}}],
                "to": [{"operation": {"paths": ["/admin/*"], "hosts": ["api.example"]}}],
                "when": [{"key": "connection.sni", "values": ["api.example"]}],
            }]},
            {"name": "public", "action": "ALLOW", "rules": [{"to": [{"operation": {"paths": ["/public/*", "/"], "notPaths": ["*.secret"]}}]}]},
        ],
    })
}
