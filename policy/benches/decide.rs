//! Decision time against the number of principal rules: indexed evaluation must keep 10,000
//! rules close to the cost of 10 (PRODUCT.md, "Performance principles").
//!
//! Run: `cargo bench -p peerguard-policy --bench decide -- --warm-up-time 1 --measurement-time 3`

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use peerguard_policy::{Engine, Peer, PeerAttributes, Request};

/// One ALLOW policy per workload (one exact principal plus a path prefix), and one DENY policy.
fn policy(rules: usize) -> String {
    let mut policies: Vec<serde_json::Value> = (0..rules)
        .map(|i| {
            serde_json::json!({
                "name": format!("allow-{i}"),
                "action": "ALLOW",
                "rules": [{
                    "from": [{"source": {"principals": [format!("cluster.local/ns/ns{i}/sa/sa{i}")]}}],
                    "to": [{"operation": {"paths": [format!("/api/{i}/*")]}}]
                }]
            })
        })
        .collect();
    policies.push(serde_json::json!({
        "name": "deny-attacker",
        "action": "DENY",
        "rules": [{"from": [{"source": {"principals": ["cluster.local/ns/evil/sa/attacker"]}}]}]
    }));
    serde_json::json!({ "policies": policies }).to_string()
}

fn peer(principal: &str) -> PeerAttributes {
    PeerAttributes {
        uri_san: Some(format!("spiffe://{principal}")),
        dns_san: None,
        subject: None,
        several_spiffe_uris: false,
    }
}

fn bench_decide(c: &mut Criterion) {
    let mut group = c.benchmark_group("decide");
    let headers: Vec<(String, String)> = Vec::new();
    for rules in [10usize, 1_000, 10_000] {
        let engine = match Engine::from_json(&policy(rules)) {
            Ok(e) => e,
            Err(e) => {
                eprintln!("bench policy does not compile: {e}");
                return;
            }
        };
        let last = rules - 1;
        let allow_path = format!("/api/{last}/items");
        let cases = [
            ("allow-hit", peer(&format!("cluster.local/ns/ns{last}/sa/sa{last}")), allow_path.as_str(), true),
            ("deny-hit", peer("cluster.local/ns/evil/sa/attacker"), "/api/0/items", false),
            ("no-match", peer("cluster.local/ns/nobody/sa/nobody"), "/api/0/items", false),
        ];
        for (name, attrs, path, expect_allow) in cases {
            let req = Request { method: "GET", path, host: "api.local", port: None, sni: None, headers: &headers };
            let peer = Peer::Attributes(&attrs);
            assert_eq!(engine.decide(&req, &peer, 0).allowed(), expect_allow, "{name} with {rules} rules");
            group.bench_with_input(BenchmarkId::new(name, rules), &rules, |b, _| {
                b.iter(|| black_box(engine.decide(black_box(&req), black_box(&peer), 0)))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench_decide);
criterion_main!(benches);
