//! Cost of certificate checks: full certificate policy (chain to a pinned root, CRLs, pins,
//! lifetime, keys) against SAN-only identity, on a cache miss (parse + prepare + decide) and a
//! cache hit (lookup by digest + decide).
//!
//! Run: `cargo bench -p peerguard-policy --bench certs -- --warm-up-time 1 --measurement-time 3`

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use peerguard_policy::{CertCache, CertFacts, Engine, Peer, PeerAttributes, Request};

/// 2030-06-01T12:00:00Z, the instant the fixtures are built around.
const T: i64 = 1_906_545_600;
const ROOT: &str = include_str!("../tests/fixtures/root-ca.pem");
const INTERMEDIATE: &str = include_str!("../tests/fixtures/intermediate-ca.pem");
const HEALTHY: &str = include_str!("../tests/fixtures/healthy.pem");
const CRL_LEAF: &str = include_str!("../tests/fixtures/crl-intermediate-revokes-leaf.pem");
const CRL_ROOT: &str = include_str!("../tests/fixtures/crl-root-empty.pem");

const PRINCIPAL: &str = "cluster.local/ns/default/sa/healthy";

fn policies() -> serde_json::Value {
    serde_json::json!([{
        "name": "allow-healthy",
        "rules": [{"from": [{"source": {"principals": [PRINCIPAL]}}]}]
    }])
}

fn engine(doc: serde_json::Value) -> Option<Engine> {
    match Engine::from_json(&doc.to_string()) {
        Ok(e) => Some(e),
        Err(e) => {
            eprintln!("bench policy does not compile: {e}");
            None
        }
    }
}

fn bench_certs(c: &mut Criterion) {
    let Ok(facts) = CertFacts::from_pem(HEALTHY.as_bytes()) else {
        eprintln!("fixture does not parse");
        return;
    };
    let Some(full) = engine(serde_json::json!({
        "certificate": {
            "maxLifetime": "1h", "minRemaining": "5m", "requireClientAuth": true, "rejectSelfSigned": true,
            "keyTypes": ["ecdsaP256"], "issuers": ["CN=intermediate-ca,*"], "spkiPins": [facts.spki_sha256_b64],
            "trustAnchors": [ROOT], "intermediates": [INTERMEDIATE], "crls": [CRL_LEAF, CRL_ROOT],
            "revocation": {"depth": "chain", "unknownStatus": "deny"},
        },
        "policies": policies(),
    })) else {
        return;
    };
    let Some(san_only) = engine(serde_json::json!({ "policies": policies() })) else {
        return;
    };
    let headers: Vec<(String, String)> = Vec::new();
    let req =
        Request { method: "GET", path: "/api/items", host: "api.local", port: None, sni: None, headers: &headers };
    let digest = facts.sha256_hex.clone();

    let mut group = c.benchmark_group("certs");
    for (name, engine) in [("full", &full), ("san_only", &san_only)] {
        let first = engine.prepare(facts.clone(), &[], T);
        assert!(engine.decide(&req, &Peer::Certificate(&first), T).allowed(), "{name}");
        group.bench_function(format!("{name}/cache_miss"), |b| {
            b.iter(|| {
                let mut cache = CertCache::new(16);
                let parsed = CertFacts::from_pem(black_box(HEALTHY.as_bytes())).ok();
                let prepared = parsed.map(|f| cache.insert(digest.clone(), engine.prepare(f, &[], T)));
                prepared.map(|p| black_box(engine.decide(&req, &Peer::Certificate(&p), T)))
            })
        });
        let mut cache = CertCache::new(16);
        cache.insert(digest.clone(), engine.prepare(facts.clone(), &[], T));
        group.bench_function(format!("{name}/cache_hit"), |b| {
            b.iter(|| {
                let prepared = cache.get(black_box(&digest), T);
                prepared.map(|p| black_box(engine.decide(&req, &Peer::Certificate(&p), T)))
            })
        });
    }
    // SAN-only with Envoy's connection attributes: no certificate parse at all.
    let attrs = PeerAttributes {
        uri_san: Some(format!("spiffe://{PRINCIPAL}")),
        dns_san: None,
        subject: None,
        several_spiffe_uris: false,
    };
    assert!(san_only.decide(&req, &Peer::Attributes(&attrs), T).allowed());
    group.bench_function("san_only/attributes", |b| {
        b.iter(|| black_box(san_only.decide(black_box(&req), &Peer::Attributes(&attrs), T)))
    });
    group.finish();
}

criterion_group!(benches, bench_certs);
criterion_main!(benches);
