//! Decisions per second for each rule shape the Envoy bench runs (exact principal, path
//! prefixes, hosts, namespaces, principal prefixes) at 10, 1,000 and 10,000 rules, with the very
//! policies `just bench` loads: the client matches only the LAST rule, so a shape the engine
//! does not index pays for every rule. Target (README "Performance"): each within 2× of its
//! 10-rule figure.
//!
//! Run: `cargo bench -p peerguard-bench --bench shapes -- --warm-up-time 1 --measurement-time 2`

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)] // benchmark code: a policy that does not compile is a bug in the bench

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use peerguard_bench::certs::CLIENT_SPIFFE;
use peerguard_bench::configs::{peerguard_policy, shape_policy, Shape};
use peerguard_policy::{Engine, Peer, PeerAttributes, Request};

fn bench_shapes(c: &mut Criterion) {
    let mut group = c.benchmark_group("shape");
    let headers: Vec<(String, String)> = Vec::new();
    let attrs = PeerAttributes {
        uri_san: Some(CLIENT_SPIFFE.to_string()),
        dns_san: None,
        subject: None,
        several_spiffe_uris: false,
    };
    let peer = Peer::Attributes(&attrs);
    let req = Request { method: "GET", path: "/api/bench", host: "bench", port: None, sni: None, headers: &headers };
    let shapes = std::iter::once(("exact-principal", None)).chain(Shape::ALL.map(|s| (s.name(), Some(s))));
    for (name, shape) in shapes {
        for rules in [10usize, 1_000, 10_000] {
            let policy = match shape {
                Some(s) => shape_policy(s, rules),
                None => peerguard_policy(rules, None),
            };
            let engine = match Engine::from_json(&policy.to_string()) {
                Ok(e) => e,
                Err(e) => panic!("{name} with {rules} rules does not compile: {e}"),
            };
            // The bench measures allowed requests: a policy that denies would measure the wrong path.
            assert!(engine.decide(&req, &peer, 0).allowed(), "{name} with {rules} rules must allow the client");
            group.bench_with_input(BenchmarkId::new(name, rules), &rules, |b, _| {
                b.iter(|| black_box(engine.decide(black_box(&req), black_box(&peer), 0)))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench_shapes);
criterion_main!(benches);
