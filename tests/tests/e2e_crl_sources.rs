//! CRL sources and per-identity expiry gauges in a real Envoy (docs/policy.md "CRL sources" and
//! "Metrics"): a loopback CRL server is an Envoy cluster, the filter fetches from it on its tick;
//! a client certificate revoked by changing the served file is refused within one refresh while
//! other clients keep being served; with the server stopped the last good CRL holds until
//! nextUpdate + maxStale, then unknownStatus decides. Fails (never skips) without Envoy or the wasm.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use peerguard_certkit::{spiffe_id, Ca, CaSpec, CrlSpec, DnType, Leaf, RevocationReason, SerialNumber};
use peerguard_cli::live::{write_ecds, ECDS_FILE};
use peerguard_e2e::client::{Client, Request};
use peerguard_e2e::crl_server::CrlServer;
use peerguard_e2e::envoy::{Envoy, EnvoyConfig, ListenerTls};
use peerguard_e2e::repo::Build;
use peerguard_e2e::upstream::EchoServer;
use serde_json::json;
use time::OffsetDateTime;

/// The refresh of every source here: a new CRL must be in force within about this long.
const REFRESH_SECS: u64 = 1;
/// The Envoy cluster of the CRL server: `with_route("crl", ...)` names it `route-crl`.
const CRL_CLUSTER: &str = "route-crl";

struct Pki {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    ca_pem: String,
    ca: Ca,
}

impl Pki {
    /// A CA from the certificate factory, written as `ca.pem`, and the server's leaf.
    fn new() -> Pki {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let subject = vec![
            (DnType::OrganizationName, "cluster.local".to_owned()),
            (DnType::CommonName, "crl source e2e CA".to_owned()),
        ];
        let day = Duration::from_secs(86_400);
        let ca = Ca::self_signed(&CaSpec::around_now(subject, day, 365 * day)).unwrap();
        ca.write(&dir, "ca").unwrap();
        let pki = Pki { _tmp: tmp, dir, ca_pem: ca.cert_pem().to_owned(), ca };
        pki.leaf("server", 1, 3600, true);
        pki
    }

    /// Writes `<name>.pem` and `<name>-key.pem`, valid from an hour ago for `remaining` seconds;
    /// returns notAfter (Unix seconds).
    fn leaf(&self, name: &str, serial: u64, remaining: i64, server: bool) -> i64 {
        let spec = if server { Leaf::server() } else { Leaf::client().cn(name).uri(&spiffe_id("default", name)) };
        // Whole seconds, as the certificate holds them, so that the returned notAfter is exact.
        let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
        let spec =
            spec.serial(serial).validity(now - time::Duration::hours(1), now + time::Duration::seconds(remaining));
        self.ca.issue(&spec).unwrap().write(&self.dir, name).unwrap();
        spec.not_after.unix_timestamp()
    }

    /// A PEM CRL numbered `number`, revoking `revoked`, from an hour ago to `next_update_in` seconds from now.
    fn crl(&self, number: u64, revoked: &[u64], next_update_in: i64) -> Vec<u8> {
        let now = OffsetDateTime::now_utc();
        let mut spec = CrlSpec::new(now - Duration::from_secs(3600), now + time::Duration::seconds(next_update_in));
        spec.number = number;
        for s in revoked {
            spec = spec.revoke(
                SerialNumber::from(*s),
                now - Duration::from_secs(60),
                Some(RevocationReason::KeyCompromise),
            );
        }
        self.ca.crl(&spec).unwrap().into_bytes()
    }

    fn client(&self, name: &str) -> Client {
        let d = &self.dir;
        Client::mtls(&d.join("ca.pem"), &d.join(format!("{name}.pem")), &d.join(format!("{name}-key.pem")))
            .unwrap()
            .timeout(Duration::from_secs(5))
    }

    /// The listener's config: mTLS with this PKI, the policy, and a cluster for the CRL server
    /// (the extra route's cluster; the route itself is never used here).
    fn config(&self, policy: &str, crl_port: u16, upstream: &EchoServer) -> EnvoyConfig {
        let tls = ListenerTls {
            server_cert: self.dir.join("server.pem"),
            server_key: self.dir.join("server-key.pem"),
            trusted_ca: self.dir.join("ca.pem"),
            require_client_certificate: true,
        };
        EnvoyConfig::new(upstream.port(), Some(tls))
            .with_route("crl", "/__crl-server-not-routed", crl_port)
            .with_policy(policy)
    }

    fn envoy(&self, policy: serde_json::Value, crl_port: u16, upstream: &EchoServer) -> Envoy {
        Envoy::start(&self.config(&policy.to_string(), crl_port, upstream), &self.dir).unwrap()
    }

    /// Like [`Pki::envoy`], with the policy delivered by ECDS from `dir` (swap it with `write_ecds`).
    fn ecds_envoy(&self, policy: &str, crl_port: u16, upstream: &EchoServer, dir: &Path) -> (EnvoyConfig, Envoy) {
        let config = self.config(policy, crl_port, upstream).with_ecds(dir);
        config.write_dynamic_files().unwrap();
        let envoy = Envoy::start(&config, &self.dir).unwrap();
        (config, envoy)
    }
}

fn source(max_stale: &str) -> serde_json::Value {
    json!({"name": "ca-crl", "cluster": CRL_CLUSTER, "path": "/ca.crl", "refresh": format!("{REFRESH_SECS}s"),
           "maxStale": max_stale, "timeout": "1s"})
}

/// (status, reason header) of one GET.
fn call(client: &Client, envoy: &Envoy) -> (u16, Option<String>) {
    call_path(client, envoy, "/api")
}

/// (status, reason header) of one GET of `path`.
fn call_path(client: &Client, envoy: &Envoy, path: &str) -> (u16, Option<String>) {
    match client.send(envoy.port(), &Request::get(path)) {
        Ok(r) => (r.status, r.reason()),
        Err(e) => (0, Some(format!("transport error: {e}"))),
    }
}

/// Polls until `call` gives `want`; returns how long it took.
fn wait_for(client: &Client, envoy: &Envoy, want: (u16, Option<&str>), limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let (status, reason) = call(client, envoy);
        if (status, reason.as_deref()) == want {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "no {want:?} within {limit:?}; last ({status}, {reason:?}); envoy log tail:\n{}",
            envoy.log_tail(30)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn metric(envoy: &Envoy, name: &str) -> u64 {
    envoy.stat(name).unwrap().unwrap_or(0)
}

#[test]
fn a_revoked_client_is_refused_within_one_refresh_under_load_and_no_other_request_fails() {
    let pki = Pki::new();
    pki.leaf("victim", 0x20, 3600, false);
    for i in 0..4 {
        pki.leaf(&format!("good{i}"), 0x30 + i, 3600, false);
    }
    let mut server = CrlServer::start(&pki.crl(1, &[], 3600)).unwrap();
    let upstream = EchoServer::start().unwrap();
    let policy = json!({
        "certificate": {"trustAnchors": [pki.ca_pem], "crlSources": [source("0s")],
                        "revocation": {"unknownStatus": "deny"}},
        "denyResponse": {"exposeReason": true},
    });
    let envoy = pki.envoy(policy, server.port(), &upstream);
    let victim = pki.client("victim");
    wait_for(&victim, &envoy, (200, None), Duration::from_secs(10));

    // Load: four clients whose certificates stay good, each sending back to back.
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(Mutex::new(Vec::new()));
    let port = envoy.port();
    let workers: Vec<_> = (0..4)
        .map(|i| {
            let (client, stop, failures) = (pki.client(&format!("good{i}")), stop.clone(), failures.clone());
            std::thread::spawn(move || {
                let mut sent = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    match client.send(port, &Request::get("/api")) {
                        Ok(r) if r.status == 200 => {}
                        Ok(r) => failures.lock().unwrap().push(format!("good{i}: {} {:?}", r.status, r.reason())),
                        Err(e) => failures.lock().unwrap().push(format!("good{i}: {e}")),
                    }
                    sent += 1;
                }
                sent
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(call(&victim, &envoy), (200, None), "not revoked yet");

    // Revoke by changing the served file.
    server.serve(&pki.crl(2, &[0x20], 3600));
    let took = wait_for(&victim, &envoy, (403, Some("revoked")), Duration::from_secs(10));
    // One refresh, plus the tick that notices it is due and the fetch itself.
    assert!(took <= Duration::from_secs(REFRESH_SECS + 1), "revoked only after {took:?}; refresh is {REFRESH_SECS}s");
    eprintln!("revocation in force after {took:?} (refresh {REFRESH_SECS}s)");
    // It stays revoked: no request of the victim gets through once the CRL is in force.
    for _ in 0..20 {
        assert_eq!(call(&victim, &envoy), (403, Some("revoked".to_owned())));
    }
    std::thread::sleep(Duration::from_millis(1500));
    stop.store(true, Ordering::SeqCst);
    let sent: u64 = workers.into_iter().map(|w| w.join().unwrap()).sum();
    let failures = failures.lock().unwrap();
    assert!(
        failures.is_empty(),
        "{} of {sent} other requests failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(sent > 50, "only {sent} requests of load");
    eprintln!("{sent} requests of load, none failed");

    // Conditional requests: the unchanged file was answered 304 between the changes.
    assert!(server.conditional_requests() > 0 && server.not_modified() > 0, "no conditional fetch");
    assert!(
        metric(&envoy, "wasmcustom.peerguard.crl_source.ca-crl.fetch_ok") >= 2,
        "{}",
        envoy.stats("crl_source").unwrap()
    );
    let (_, prom) = envoy.admin_get("/stats/prometheus").unwrap();
    assert!(prom.contains("peerguard_crl_source_fetch_ok{source=\"ca-crl\"}"), "no source label:\n{prom}");
    assert!(prom.contains("peerguard_crl_source_entries{source=\"ca-crl\"} 1"), "{prom}");
    server.stop();
}

#[test]
fn before_the_first_good_crl_and_past_max_stale_unknown_status_decides() {
    let pki = Pki::new();
    pki.leaf("client", 0x40, 3600, false);
    let mut server = CrlServer::start(b"not a CRL").unwrap();
    let upstream = EchoServer::start().unwrap();
    let policy = |unknown: &str| {
        json!({
            "certificate": {"trustAnchors": [pki.ca_pem], "crlSources": [source("3s")],
                            "revocation": {"unknownStatus": unknown}},
            "denyResponse": {"exposeReason": true},
        })
    };
    let deny = pki.envoy(policy("deny"), server.port(), &upstream);
    let client = pki.client("client");
    // Nothing good fetched yet: the status is unknown and unknownStatus deny refuses.
    assert_eq!(call(&client, &deny), (403, Some("revocation_unknown".to_owned())));
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(call(&client, &deny), (403, Some("revocation_unknown".to_owned())));
    assert!(
        metric(&deny, "wasmcustom.peerguard.crl_source.ca-crl.rejected") >= 1,
        "{}",
        deny.stats("crl_source").unwrap()
    );

    // A good CRL whose nextUpdate is 4 s away; maxStale adds 3 s.
    server.serve(&pki.crl(1, &[], 4));
    let next_update = Instant::now() + Duration::from_secs(4);
    wait_for(&client, &deny, (200, None), Duration::from_secs(5));
    let allow = pki.envoy(policy("allow"), server.port(), &upstream);
    wait_for(&client, &allow, (200, None), Duration::from_secs(5));

    // The server goes away: failed fetches keep the last good CRL until nextUpdate + maxStale.
    server.stop();
    let failed_before = metric(&deny, "wasmcustom.peerguard.crl_source.ca-crl.fetch_failed");
    while Instant::now() + Duration::from_millis(700) < next_update + Duration::from_secs(3) {
        assert_eq!(call(&client, &deny), (200, None), "within maxStale the last good CRL holds");
        std::thread::sleep(Duration::from_millis(200));
    }
    let took = wait_for(&client, &deny, (403, Some("revocation_unknown")), Duration::from_secs(5));
    eprintln!("unknown {took:?} after the last moment of maxStale was near");
    assert!(metric(&deny, "wasmcustom.peerguard.crl_source.ca-crl.fetch_failed") > failed_before);
    // The same state under unknownStatus allow lets the client through.
    assert_eq!(call(&client, &allow), (200, None));
    assert!(deny.log().contains("fetch failed"), "no failure logged");
}

#[test]
fn a_reload_keeps_the_last_good_crl_while_the_source_is_down() {
    let pki = Pki::new();
    pki.leaf("revoked", 0x70, 3600, false);
    pki.leaf("other", 0x71, 3600, false);
    let mut server = CrlServer::start(&pki.crl(1, &[0x70], 3600)).unwrap();
    let upstream = EchoServer::start().unwrap();
    // unknownStatus allow (the default): forgetting the CRL on a reload would let `revoked` in.
    let policy = |deny_path: &str| {
        json!({
            "certificate": {"trustAnchors": [pki.ca_pem], "crlSources": [source("1h")]},
            "denyResponse": {"exposeReason": true},
            "policies": [
                {"name": "marker", "action": "DENY", "rules": [{"to": [{"operation": {"paths": [deny_path]}}]}]},
                {"name": "all", "action": "ALLOW", "rules": [{}]}
            ],
        })
        .to_string()
    };
    let ecds = tempfile::tempdir().unwrap();
    let (config, envoy) = pki.ecds_envoy(&policy("/before"), server.port(), &upstream, ecds.path());
    let (revoked, other) = (pki.client("revoked"), pki.client("other"));
    wait_for(&revoked, &envoy, (403, Some("revoked")), Duration::from_secs(5));
    assert_eq!(call(&other, &envoy), (200, None));

    // The CRL server goes away, then a new policy arrives by ECDS: a new filter config, whose
    // first fetch fails. It must start from the last good CRL of the same source.
    server.stop();
    write_ecds(&ecds.path().join(ECDS_FILE), &policy("/after"), &config.filter_build().unwrap()).unwrap();
    let probe = |path: &str| call_path(&other, &envoy, path);
    let start = Instant::now();
    while probe("/after") != (403, Some("denied_by_policy".to_owned())) {
        assert!(start.elapsed() < Duration::from_secs(10), "the new policy never took effect:\n{}", envoy.log_tail(30));
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(probe("/before"), (200, None), "the old policy is still in force");
    // Several refresh periods of failed fetches under the new policy: still revoked.
    let failed_before = metric(&envoy, "wasmcustom.peerguard.crl_source.ca-crl.fetch_failed");
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        assert_eq!(call(&revoked, &envoy), (403, Some("revoked".to_owned())), "{}", envoy.log_tail(30));
        assert_eq!(call(&other, &envoy), (200, None));
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        metric(&envoy, "wasmcustom.peerguard.crl_source.ca-crl.fetch_failed") > failed_before,
        "the new config never tried the source: {}",
        envoy.stats("crl_source").unwrap()
    );
}

/// A sample `name{label="value"} number` line of `/stats/prometheus`.
fn prom_value(prom: &str, name: &str, label: &str) -> Option<u64> {
    let prefix = format!("{name}{{{label}}} ");
    prom.lines().find_map(|l| l.strip_prefix(&prefix)).and_then(|v| v.trim().parse::<f64>().ok()).map(|v| v as u64)
}

#[test]
fn expiry_gauges_report_the_n_identities_closest_to_expiry_with_principal_labels() {
    let pki = Pki::new();
    let not_after: Vec<i64> = [("soon", 3600), ("later", 7200), ("latest", 10_800)]
        .iter()
        .enumerate()
        .map(|(i, (name, remaining))| pki.leaf(name, 0x50 + i as u64, *remaining, false))
        .collect();
    let server = CrlServer::start(b"").unwrap();
    let upstream = EchoServer::start().unwrap();
    let policy = json!({"metrics": {"peerCertExpiry": {"maxIdentities": 2, "window": "1h"}}});
    let envoy = pki.envoy(policy, server.port(), &upstream);
    for name in ["latest", "later", "soon"] {
        assert_eq!(call(&pki.client(name), &envoy), (200, None), "{name}");
    }
    // The gauges follow on the next tick.
    let start = Instant::now();
    let prom = loop {
        let (_, prom) = envoy.admin_get("/stats/prometheus").unwrap();
        // Histograms reach the admin output on Envoy's stats flush (every 5 s by default).
        let ready = prom.contains("peerguard_peer_cert_expiry_identities{} 2")
            && prom.contains("peerguard_peer_cert_remaining_seconds_count{} 3");
        if ready || start.elapsed() > Duration::from_secs(12) {
            break prom;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let gauge = |sa: &str| {
        prom_value(
            &prom,
            "peerguard_peer_cert_expiry_seconds",
            &format!("principal=\"cluster.local/ns/default/sa/{sa}\""),
        )
    };
    assert_eq!(gauge("soon"), Some(not_after[0] as u64), "{prom}");
    assert_eq!(gauge("later"), Some(not_after[1] as u64), "{prom}");
    assert_eq!(gauge("latest"), None, "the third is over maxIdentities 2:\n{prom}");
    assert!(prom.contains("peerguard_peer_cert_expiry_left_out{} 1"), "{prom}");
    assert!(prom.contains("peerguard_peer_cert_expiry_identities{} 2"), "{prom}");
    // The histogram of remaining lifetimes saw all three certificates.
    assert!(prom.contains("peerguard_peer_cert_remaining_seconds_count{} 3"), "{prom}");
    // The raw stat name carries the principal: in the Wasm build the tag regex takes it out of
    // the name; the native build defines a gauge with a `principal` label, which Envoy appends.
    let raw = match Build::from_env().unwrap() {
        Build::Wasm => "wasmcustom.peerguard.peer_cert_expiry.cluster.local/ns/default/sa/soon.seconds",
        Build::Native => "wasmcustom.peerguard.peer_cert_expiry.seconds.principal.cluster.local/ns/default/sa/soon",
    };
    let stats = envoy.stats("peer_cert_expiry").unwrap();
    assert!(stats.contains(raw), "{raw} not in:\n{stats}");
    drop(server);
}

#[test]
fn a_reload_keeps_reporting_and_zeroes_a_principal_that_left_the_window() {
    let pki = Pki::new();
    let not_after: Vec<i64> =
        ["gone", "stays"].iter().enumerate().map(|(i, n)| pki.leaf(n, 0x80 + i as u64, 7200, false)).collect();
    let server = CrlServer::start(b"").unwrap();
    let upstream = EchoServer::start().unwrap();
    let policy =
        |header: &str| json!({"metrics": {"peerCertExpiry": {"window": "3s"}}, "identityHeader": header}).to_string();
    let ecds = tempfile::tempdir().unwrap();
    let (config, envoy) = pki.ecds_envoy(&policy("x-peer-a"), server.port(), &upstream, ecds.path());
    let (gone, stays) = (pki.client("gone"), pki.client("stays"));
    let gauge = |sa: &str| {
        let (_, prom) = envoy.admin_get("/stats/prometheus").unwrap();
        let label = format!("principal=\"cluster.local/ns/default/sa/{sa}\"");
        prom_value(&prom, "peerguard_peer_cert_expiry_seconds", &label)
    };
    let wait_gauge = |sa: &str, want: u64| {
        let start = Instant::now();
        while gauge(sa) != Some(want) {
            assert!(start.elapsed() < Duration::from_secs(10), "{sa}: {:?}, want {want}", gauge(sa));
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    assert_eq!(call(&gone, &envoy), (200, None));
    wait_gauge("gone", not_after[0] as u64);

    // A new policy (a new filter config); only `stays` calls from now on.
    write_ecds(&ecds.path().join(ECDS_FILE), &policy("x-peer-b"), &config.filter_build().unwrap()).unwrap();
    let start = Instant::now();
    loop {
        let r = stays.send(envoy.port(), &Request::get("/api")).unwrap();
        if r.echo().unwrap().header("x-peer-b").is_some() {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "the new policy never took effect");
        std::thread::sleep(Duration::from_millis(100));
    }
    // `gone` leaves the 3 s window: its gauge must drop to 0, not keep the old policy's value.
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        assert_eq!(call(&stays, &envoy), (200, None));
        std::thread::sleep(Duration::from_millis(250));
    }
    wait_gauge("stays", not_after[1] as u64);
    wait_gauge("gone", 0);
}

#[test]
fn a_principal_that_is_not_a_spiffe_id_is_percent_encoded_in_its_label() {
    let pki = Pki::new();
    // A CN identity with a space and a colon: neither may reach a stat name as it is.
    let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    let spec = Leaf::client()
        .cn("ops team:1")
        .serial(0x60)
        .validity(now - time::Duration::hours(1), now + time::Duration::hours(5));
    pki.ca.issue(&spec).unwrap().write(&pki.dir, "ops").unwrap();
    let server = CrlServer::start(b"").unwrap();
    let upstream = EchoServer::start().unwrap();
    let envoy = pki.envoy(json!({"identity": ["subject"]}), server.port(), &upstream);
    assert_eq!(call(&pki.client("ops"), &envoy), (200, None));
    let start = Instant::now();
    let label = "principal=\"ops%20team%3A1\"";
    let prom = loop {
        let (_, prom) = envoy.admin_get("/stats/prometheus").unwrap();
        if prom.contains(label) || start.elapsed() > Duration::from_secs(5) {
            break prom;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(
        prom_value(&prom, "peerguard_peer_cert_expiry_seconds", label),
        Some(spec.not_after.unix_timestamp() as u64),
        "{prom}"
    );
}
