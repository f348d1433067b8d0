//! Smoke test of the bench harness (not a benchmark): a tiny run starts Envoy, puts load on it and
//! writes valid JSON, markdown and a PNG. It asserts no timing, only that the harness works.

use peerguard_bench::{report, run, Options};

#[test]
fn tiny_run_measures_both_configurations_and_writes_valid_json() {
    let out = tempfile::tempdir().unwrap();
    let opts = Options::smoke(out.path());
    let r = run(&opts).unwrap();
    let files = report::write_outputs(&r).unwrap();
    assert_eq!(files.len(), 3);

    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("results.json")).unwrap()).unwrap();
    let results = json["results"].as_array().unwrap();
    let ids: Vec<&str> = results.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["none", "peerguard-10"]);
    for r in results {
        assert_eq!(r["status"], "ok", "{r}");
        let s = &r["summary"];
        assert!(s["rps"].as_f64().unwrap() > 0.0, "{r}");
        assert!(s["cpu_us_per_req"].as_f64().unwrap() > 0.0, "{r}");
        assert!(s["rss_kib"].as_f64().unwrap() > 0.0, "{r}");
        assert_eq!(r["samples"][0]["non_200"], 0, "{r}");
    }
    assert!(json["wasm_bytes"].as_u64().unwrap() > 0);
    assert!(json["targets"].as_array().is_some_and(|t| !t.is_empty()));
    let png = std::fs::read(out.path().join("throughput-vs-rules.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let md = std::fs::read_to_string(out.path().join("results.md")).unwrap();
    assert!(md.contains("| peerguard, 10 rules |"), "{md}");
}
