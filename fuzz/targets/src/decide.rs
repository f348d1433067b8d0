//! Target `decide`: an arbitrary request and peer against fixed policies that read every attribute.
//!
//! Input, one field per line (a missing line is an absent attribute):
//! `<engine> <peer>` / method / `:path` / `:authority` / port / SNI / `name: value`...
//! where engine is `rewrite`, `reject` (with `allowPathParameters`), `none`, `dryRun` (rewrite
//! under `mode: dryRun`), `plain` (rewrite, without the certificate requirements that make
//! Envoy's attributes insufficient) or `linkerd` (`plain` with `identity: [linkerdHeader]` and
//! trust-domain aliases); anything else is `rewrite`. Peer is `none`, `unparseable`,
//! `attrs:<uri SAN>|<DNS SAN>|<subject>`, `l5d:<l5d-client-id>|<another copy>...` or a
//! certificate fixture name (`healthy`, `admin`,
//! `expired`, `revoked`, `long-lived`, `self-signed`; anything else: `healthy`).
//! Properties:
//! - deciding never panics and is deterministic; a deny always has a reason, and
//!   `invalid_path` comes with its path error and only then;
//! - an allow forwards the path it matched: under `rewrite` the forwarded `:path` (the rewrite,
//!   or the path as sent) is the normal form of the path as sent, already normal itself, with
//!   the query as sent, and a rewrite happens exactly when the path was not normal; under
//!   `reject` and `none` nothing is rewritten; and the forwarded request, decided again (the next
//!   hop), is allowed by the same policy with the same audit matches and no further rewrite;
//! - nothing is rewritten on a deny, nor ever under `mode: dryRun`, which never denies.

use std::sync::OnceLock;

use peerguard_policy::path;
use peerguard_policy::{CertFacts, Decision, Engine, Peer, PeerAttributes, PreparedCert, Reason};
use serde_json::json;

use crate::fixtures::{self, NOW};
use crate::request::{self, Parts};

/// The target body.
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut lines = text.split('\n');
    let (mode, peer) = lines.next().unwrap_or_default().split_once(' ').unwrap_or(("rewrite", "healthy"));
    let fixed = fixed();
    let policy = fixed.iter().find(|p| p.name == mode).or(fixed.first());
    let Some(policy) = policy else { return };
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
    let client_ids: Vec<String>;
    let peer = match peer {
        // Every copy of l5d-client-id, as the filter passes them from a listed Linkerd proxy.
        p if p.starts_with("l5d:") => {
            client_ids = p["l5d:".len()..].split('|').map(str::to_owned).collect();
            Peer::LinkerdClientId(&client_ids)
        }
        "none" => Peer::None,
        "unparseable" => Peer::Unparseable,
        p if p.starts_with("attrs:") => {
            let mut it = p["attrs:".len()..].split('|').map(|s| Some(s.to_owned()).filter(|s| !s.is_empty()));
            attrs = PeerAttributes {
                uri_san: it.next().flatten(),
                dns_san: it.next().flatten(),
                subject: it.next().flatten(),
                several_spiffe_uris: it.next().flatten().is_some(),
            };
            Peer::Attributes(&attrs)
        }
        name => {
            let index = CERTS.iter().position(|(n, _)| *n == name).unwrap_or(0);
            match policy.certs.get(index) {
                Some(prepared) => Peer::Certificate(prepared),
                None => return,
            }
        }
    };
    let d = request::decide(&policy.engine, &parts, &peer, NOW);
    assert_eq!(d, request::decide(&policy.engine, &parts, &peer, NOW), "two decisions for one request");
    check(policy, &parts, &peer, &d);
}

fn check(policy: &Fixed, parts: &Parts<'_>, peer: &Peer<'_>, d: &Decision) {
    let ctx = crate::Lazy(|f| write!(f, "{} engine, :path {:?}: {d:?}", policy.name, parts.path));
    assert!(d.allowed() || d.reason().is_some(), "a deny without a reason: {ctx}");
    assert!(!d.dry_run() || d.reason().is_some(), "a dry-run decision without a would-deny reason: {ctx}");
    assert_eq!(
        d.reason() == Some(Reason::InvalidPath),
        d.path_error.is_some(),
        "invalid_path without its error: {ctx}"
    );
    if policy.dry_run {
        assert!(d.allowed() && d.path_rewrite.is_none(), "dry run denied or rewrote: {ctx}");
        return;
    }
    if !d.allowed() {
        assert!(d.path_rewrite.is_none(), "a deny rewrote the path: {ctx}");
        return;
    }
    let forwarded = d.path_rewrite.clone().unwrap_or_else(|| parts.path.to_owned());
    match policy.normalization {
        "rewrite" => {
            let normal = path::normalize(parts.path, false);
            let again = path::normalize(&forwarded, false);
            assert!(normal.is_ok(), "allowed a path without a normal form: {ctx}");
            if let (Ok(normal), Ok(again)) = (&normal, &again) {
                assert_eq!(again.path, normal.path, "forwarded {forwarded:?}, not the normal form: {ctx}");
                assert!(!again.changed(), "the forwarded path {forwarded:?} is not normal: {ctx}");
                assert_eq!(again.query, normal.query, "the query changed: {ctx}");
                assert_eq!(d.path_rewrite.is_some(), normal.changed(), "rewrite without need, or need without: {ctx}");
            }
            assert!(again.is_ok(), "the forwarded path {forwarded:?} has no normal form: {ctx}");
        }
        "reject" => {
            assert!(d.path_rewrite.is_none(), "reject mode rewrote: {ctx}");
            assert!(path::require_normal(parts.path, true).is_ok(), "reject mode allowed a path not normal: {ctx}");
        }
        _ => {
            assert!(d.path_rewrite.is_none(), "none mode rewrote: {ctx}");
            assert!(path::as_received(parts.path).is_ok(), "none mode allowed a path it cannot read: {ctx}");
        }
    }
    let next = Parts { path: &forwarded, ..*parts };
    let hop = request::decide(&policy.engine, &next, peer, NOW);
    assert!(
        hop.allowed() && hop.policy == d.policy && hop.audit == d.audit && hop.path_rewrite.is_none(),
        "the forwarded path {forwarded:?} decides differently at the next hop: {hop:?}; first: {ctx}"
    );
}

const CERTS: [(&str, &str); 6] = [
    ("healthy", fixtures::HEALTHY),
    ("admin", fixtures::ADMIN),
    ("expired", fixtures::EXPIRED),
    ("revoked", fixtures::REVOKED),
    ("long-lived", fixtures::LONG_LIVED),
    ("self-signed", fixtures::SELF_SIGNED),
];

/// One fixed policy, with the certificate fixtures prepared for it (as the filter's cache would).
struct Fixed {
    name: &'static str,
    normalization: &'static str,
    dry_run: bool,
    engine: Engine,
    certs: Vec<PreparedCert>,
}

fn fixed() -> &'static Vec<Fixed> {
    static FIXED: OnceLock<Result<Vec<Fixed>, String>> = OnceLock::new();
    fixtures::built(FIXED.get_or_init(build), "the decide policies")
}

fn build() -> Result<Vec<Fixed>, String> {
    let variants = [
        ("rewrite", "rewrite", json!({})),
        ("reject", "reject", json!({"allowPathParameters": true})),
        ("none", "none", json!({})),
        ("dryRun", "rewrite", json!({"mode": "dryRun"})),
        ("plain", "rewrite", json!({"certificate": null, "certificateRules": null})),
        (
            "linkerd",
            "rewrite",
            json!({"identity": ["linkerdHeader"], "trustDomainAliases": ["old.local", "*.partner.example"],
                   "certificate": null, "certificateRules": null}),
        ),
    ];
    let mut out = Vec::new();
    for (name, normalization, extra) in variants {
        let mut doc = policy();
        if let (Some(doc), Some(extra)) = (doc.as_object_mut(), extra.as_object()) {
            doc.insert("pathNormalization".to_owned(), json!(normalization));
            for (k, v) in extra {
                if v.is_null() {
                    doc.remove(k);
                } else {
                    doc.insert(k.clone(), v.clone());
                }
            }
        }
        let engine = Engine::from_json(&doc.to_string()).map_err(|e| format!("{name}: {e}"))?;
        let certs = CERTS
            .iter()
            .map(|(cert, pem)| {
                let facts = CertFacts::from_pem(pem.as_bytes()).map_err(|e| format!("{cert}: {e}"))?;
                Ok(engine.prepare(facts, &[], NOW))
            })
            .collect::<Result<Vec<_>, String>>()?;
        out.push(Fixed { name, normalization, dry_run: name == "dryRun", engine, certs });
    }
    Ok(out)
}

/// A policy in which every request attribute decides something, most of all the path.
fn policy() -> serde_json::Value {
    json!({
        "mtls": "permissive",
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
            {"name": "audit-files", "action": "AUDIT", "rules": [{"to": [{"operation": {"paths": ["/files/{**}"]}}]}]},
            {"name": "workloads-read-api", "action": "ALLOW", "rules": [{
                "from": [{"source": {"principals": ["cluster.local/ns/*"], "notPrincipals": ["*/sa/blocked"]}}],
                "to": [{"operation": {"methods": ["GET", "HEAD"], "paths": ["/api/*", "/api/{*}/items", "/files/{**}"], "notPaths": ["/api/private*"], "ports": ["8443"]}}],
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
