//! The monitoring pack in deploy/monitoring against real parts: a Prometheus server (Debian's
//! `prometheus`) scrapes a real Envoy running peerguard, with the shipped alerting rules (their
//! windows shortened to seconds), while clients get denied and fail TLS handshakes; the expected
//! alerts must fire through Prometheus's HTTP API within a minute. A second Envoy, with CRL sources
//! (one good whose CRL goes stale, one serving garbage, one down) and no traffic, is scraped too,
//! so the CRL source alerts must fire for exactly those sources. The Grafana dashboard and the
//! rules may name only metrics those scrapes returned. Fails (never skips) when Envoy, the module
//! or Prometheus is missing, with how to get them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use peerguard_certkit::{Ca, CaSpec, CrlSpec, DnType};
use peerguard_e2e::certs::{DemoCa, LeafSpec};
use peerguard_e2e::client::{Client, Request};
use peerguard_e2e::crl_server::CrlServer;
use peerguard_e2e::demo::Stack;
use peerguard_e2e::envoy::{Envoy, EnvoyConfig, ListenerTls};
use peerguard_e2e::repo_root;
use serde_json::{json, Value};
use time::OffsetDateTime;

/// The alerts the traffic and the CRL sources below must make fire.
const EXPECTED: [&str; 4] = [
    "PeerguardCertificateDenials",
    "EnvoyMtlsHandshakeFailures",
    "PeerguardCrlSourceFetchFailing",
    "PeerguardCrlSourceStale",
];
/// The sources each CRL alert must fire for, and only for.
const CRL_ALERTS: [(&str, &[&str]); 2] =
    [("PeerguardCrlSourceFetchFailing", &["down", "garbage"]), ("PeerguardCrlSourceStale", &["good"])];
/// How far away the good source's nextUpdate is when its CRL is made: it goes stale within the test.
const NEXT_UPDATE_SECS: i64 = 4;
const LIMIT: Duration = Duration::from_secs(60);

fn monitoring(file: &str) -> PathBuf {
    repo_root().join("deploy/monitoring").join(file)
}

/// `prometheus` from $PROMETHEUS_BIN_DIR or PATH; an error that says how to install it otherwise.
fn prometheus_bin() -> PathBuf {
    let from_dir = std::env::var_os("PROMETHEUS_BIN_DIR").map(|d| PathBuf::from(d).join("prometheus"));
    let from_path = std::env::var_os("PATH")
        .and_then(|p| std::env::split_paths(&p).map(|d| d.join("prometheus")).find(|f| f.is_file()));
    match from_dir.filter(|f| f.is_file()).or(from_path) {
        Some(p) => p,
        None => panic!(
            "prometheus not found (PROMETHEUS_BIN_DIR or PATH): run scripts/ensure-prometheus.sh \
             (installs Debian's `prometheus` package, as `just test` does) or `apt-get install prometheus`"
        ),
    }
}

/// The shipped rules with every range, offset and `for:` shortened to seconds, so that the same
/// expressions fire within the test's minute.
fn fast_rules(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let mut l = line.to_string();
        for m in ["5m", "10m", "15m"] {
            l = l.replace(&format!("[{m}]"), "[15s]").replace(&format!("offset {m}"), "offset 15s");
        }
        if let Some(i) = l.find("for: ") {
            l = format!("{}for: 2s", &l[..i]);
        }
        out.push_str(&l);
        out.push('\n');
    }
    out
}

/// A free port on 127.0.0.1, as the OS hands it out (Prometheus cannot report a port 0 bind).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A Prometheus server under `timeout`, killed on drop.
struct Prometheus {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Prometheus {
    /// Scrapes `/stats/prometheus` of the Envoys with these admin ports, as one job.
    fn start(dir: &Path, admin_ports: &[u16], rules: &str) -> Prometheus {
        std::fs::write(dir.join("rules.yaml"), rules).unwrap();
        let targets: Vec<String> = admin_ports.iter().map(|p| format!("'127.0.0.1:{p}'")).collect();
        let targets = targets.join(", ");
        let config = format!(
            "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\n\
             rule_files: [rules.yaml]\n\
             scrape_configs:\n\
             - job_name: peerguard\n  metrics_path: /stats/prometheus\n  static_configs: [{{targets: [{targets}]}}]\n"
        );
        std::fs::write(dir.join("prometheus.yml"), config).unwrap();
        let port = free_port();
        let log = dir.join("prometheus.log");
        let child = Command::new("timeout")
            .args(["-k", "5", "150"])
            .arg(prometheus_bin())
            .arg(format!("--config.file={}", dir.join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(dir.join("prometheus.err")).unwrap())
            .spawn()
            .unwrap();
        Prometheus { child, port, log }
    }

    fn api(&self, path: &str) -> Option<Value> {
        let r = Client::plaintext().timeout(Duration::from_secs(2)).send(self.port, &Request::get(path)).ok()?;
        (r.status == 200).then(|| serde_json::from_str(&r.body_text()).ok()).flatten()
    }

    /// The firing alerts: (alertname, its `source` label or "").
    fn firing_with_source(&self) -> BTreeSet<(String, String)> {
        let Some(v) = self.api("/api/v1/alerts") else { return BTreeSet::new() };
        v["data"]["alerts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| a["state"] == "firing")
            .filter_map(|a| {
                let name = a["labels"]["alertname"].as_str()?;
                Some((name.to_owned(), a["labels"]["source"].as_str().unwrap_or("").to_owned()))
            })
            .collect()
    }

    fn firing(&self) -> BTreeSet<String> {
        self.firing_with_source().into_iter().map(|(name, _)| name).collect()
    }

    /// The sources `alert` fires for.
    fn firing_sources(&self, alert: &str) -> BTreeSet<String> {
        self.firing_with_source().into_iter().filter(|(name, _)| name == alert).map(|(_, s)| s).collect()
    }

    /// Prometheus's log (it writes to stderr) and what it says about the rules and the target.
    fn report(&self) -> String {
        let err = std::fs::read_to_string(self.log.with_extension("err")).unwrap_or_default();
        let tail: Vec<&str> = err.lines().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect();
        let rules = self.api("/api/v1/rules").map(|v| {
            let mut out = Vec::new();
            for g in v["data"]["groups"].as_array().into_iter().flatten() {
                for r in g["rules"].as_array().into_iter().flatten() {
                    out.push(format!(
                        "{} health={} state={} {}",
                        r["name"],
                        r["health"],
                        r["state"],
                        r["lastError"].as_str().unwrap_or("")
                    ));
                }
            }
            out.join("\n")
        });
        let targets = self.api("/api/v1/targets").map(|v| v["data"]["activeTargets"].to_string());
        format!(
            "prometheus log:\n{}\nrules:\n{}\ntargets: {}",
            tail.join("\n"),
            rules.unwrap_or_default(),
            targets.unwrap_or_default()
        )
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// PromQL without what cannot name a metric: string literals, label matchers (`{...}`) and
/// label lists (`by (...)`, `without (...)`, `on (...)`, `ignoring (...)`, `group_left (...)`).
fn strip_non_metrics(promql: &str) -> String {
    let mut out = String::new();
    let mut chars = promql.chars().peekable();
    let mut depth_braces = 0;
    while let Some(c) = chars.next() {
        match c {
            '"' | '\'' | '`' => {
                // Skip to the closing quote (PromQL escapes with a backslash).
                while let Some(d) = chars.next() {
                    if d == '\\' {
                        chars.next();
                    } else if d == c {
                        break;
                    }
                }
            }
            '{' => depth_braces += 1,
            '}' => depth_braces -= 1,
            _ if depth_braces > 0 => {}
            _ => out.push(c),
        }
    }
    let mut result = String::new();
    let mut rest = out.as_str();
    while let Some(i) = ["by", "without", "on", "ignoring", "group_left", "group_right"]
        .iter()
        .filter_map(|k| find_clause(rest, k))
        .min()
    {
        result.push_str(&rest[..i]);
        let close = rest[i..].find(')').map_or(rest.len(), |j| i + j + 1);
        rest = &rest[close..];
    }
    result.push_str(rest);
    result
}

/// Where `keyword (` starts in `s` as a whole word, if anywhere.
fn find_clause(s: &str, keyword: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = s[from..].find(keyword).map(|i| from + i) {
        let before_ok = i == 0 || !s.as_bytes()[i - 1].is_ascii_alphanumeric() && s.as_bytes()[i - 1] != b'_';
        let after = s[i + keyword.len()..].trim_start();
        if before_ok && after.starts_with('(') {
            return Some(i);
        }
        from = i + keyword.len();
    }
    None
}

/// Metric names in PromQL: identifiers starting with `peerguard_` or `envoy_` outside strings,
/// label matchers and label lists (recording rule names have a `:` and are not scraped).
fn metric_names(promql: &str) -> BTreeSet<String> {
    let text = strip_non_metrics(promql);
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|w| (w.starts_with("peerguard_") || w.starts_with("envoy_")) && !w.contains(':'))
        .map(String::from)
        .collect()
}

/// Every `expr` of the shipped rules.
fn rule_exprs() -> Vec<String> {
    let v: Value = serde_yaml::from_str(&std::fs::read_to_string(monitoring("peerguard-rules.yaml")).unwrap()).unwrap();
    let mut out = Vec::new();
    for g in v["groups"].as_array().unwrap() {
        for r in g["rules"].as_array().unwrap() {
            out.push(r["expr"].as_str().unwrap().to_string());
        }
    }
    out
}

/// Every PromQL expression of the Grafana dashboard (`targets[].expr` of every panel).
fn dashboard_exprs() -> Vec<String> {
    let text = std::fs::read_to_string(monitoring("grafana-dashboard.json")).unwrap();
    let v: Value = serde_json::from_str(&text).expect("grafana-dashboard.json is not valid JSON");
    let mut out = Vec::new();
    for p in v["panels"].as_array().expect("no panels") {
        for t in p["targets"].as_array().into_iter().flatten() {
            out.push(
                t["expr"].as_str().unwrap_or_else(|| panic!("panel {} target without expr", p["title"])).to_string(),
            );
        }
    }
    out
}

/// A second Envoy whose policy fetches three CRL sources every second and which gets no
/// requests: `good` serves a CRL signed by the policy's trust anchor whose nextUpdate is
/// [`NEXT_UPDATE_SECS`] away (installed, then answered 304, then stale), `garbage` serves bytes
/// that are no CRL (refused), and `down` is a port nothing listens on any more (failed).
struct CrlSources {
    envoy: Envoy,
    _good: CrlServer,
    _garbage: CrlServer,
}

impl CrlSources {
    fn start(stack: &Stack, dir: &Path) -> CrlSources {
        let day = Duration::from_secs(86_400);
        let subject = vec![(DnType::CommonName, "monitoring CRL CA".to_owned())];
        let ca = Ca::self_signed(&CaSpec::around_now(subject, day, 365 * day)).unwrap();
        let now = OffsetDateTime::now_utc();
        let mut spec = CrlSpec::new(now - Duration::from_secs(3600), now + time::Duration::seconds(NEXT_UPDATE_SECS));
        spec.number = 1;
        let good = CrlServer::start(ca.crl(&spec).unwrap().as_bytes()).unwrap();
        let garbage = CrlServer::start(b"not a CRL").unwrap();
        let down_port = CrlServer::start(b"").unwrap().port(); // dropped at once: stopped, port closed
        let source = |name: &str| json!({"name": name, "cluster": format!("route-crl-{name}"), "path": "/ca.crl", "refresh": "1s", "timeout": "1s"});
        let policy = json!({
            "certificate": {"trustAnchors": [ca.cert_pem()], "crlSources": [source("good"), source("garbage"), source("down")]},
        });
        let tls = ListenerTls {
            server_cert: stack.server.cert_path.clone(),
            server_key: stack.server.key_path.clone(),
            trusted_ca: stack.ca.cert_path.clone(),
            require_client_certificate: false,
        };
        // The routes only make the clusters; no request is sent to them.
        let config = EnvoyConfig::new(stack.upstream.port(), Some(tls))
            .with_route("crl-good", "/__crl-good", good.port())
            .with_route("crl-garbage", "/__crl-garbage", garbage.port())
            .with_route("crl-down", "/__crl-down", down_port)
            .with_policy(&policy.to_string());
        let envoy_dir = dir.join("crl-envoy");
        std::fs::create_dir_all(&envoy_dir).unwrap();
        let envoy = Envoy::start(&config, &envoy_dir).unwrap();
        CrlSources { envoy, _good: good, _garbage: garbage }
    }
}

#[test]
fn dashboard_is_valid_grafana_json_with_a_panel_for_each_concern() {
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(monitoring("grafana-dashboard.json")).unwrap()).unwrap();
    assert!(v["title"].is_string() && v["uid"].is_string() && v["schemaVersion"].is_u64(), "dashboard envelope");
    let titles: Vec<String> =
        v["panels"].as_array().unwrap().iter().map(|p| p["title"].as_str().unwrap().to_lowercase()).collect();
    for want in ["decisions", "denies by reason", "policy", "handshake", "expir", "per identity", "crl source"] {
        assert!(titles.iter().any(|t| t.contains(want)), "no panel about {want:?} in {titles:?}");
    }
    let exprs = dashboard_exprs();
    assert!(exprs.len() >= 6, "{exprs:?}");
    for e in &exprs {
        assert!(!metric_names(e).is_empty(), "expression names no peerguard_/envoy_ metric: {e}");
    }
    // The name scanner itself: recording rules and label values are not metric names.
    let n = metric_names(
        r#"sum by (envoy_listener_address) (rate(peerguard_denied_reason{reason="envoy_x", envoy_tls_certificate=~"a"}[5m])) / on (job) peerguard:denied:rate5m + envoy_listener_ssl_handshake"#,
    );
    let want = ["peerguard_denied_reason", "envoy_listener_ssl_handshake"];
    assert_eq!(n, want.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>());
    let rules: BTreeSet<String> = rule_exprs().iter().flat_map(|e| metric_names(e)).collect();
    assert!(
        rules.contains("envoy_listener_ssl_fail_verify_no_cert") && rules.contains("peerguard_config_errors"),
        "{rules:?}"
    );
}

#[test]
fn fast_rules_shorten_every_window_of_the_shipped_rules() {
    let shipped = std::fs::read_to_string(monitoring("peerguard-rules.yaml")).unwrap();
    let fast = fast_rules(&shipped);
    for slow in ["[5m]", "[10m]", "[15m]", "offset 15m", "for: 5m", "for: 10m"] {
        assert!(!fast.contains(slow), "{slow} left in the fast rules");
    }
    assert!(fast.contains("[15s]") && fast.contains("for: 2s"));
    assert!(
        fast.lines().filter(|l| l.contains("expr:")).count() == shipped.lines().filter(|l| l.contains("expr:")).count()
    );
}

#[test]
fn alerts_fire_in_a_real_prometheus_scraping_a_real_envoy_with_peerguard() {
    let prometheus = prometheus_bin();
    let stack = Stack::demo().unwrap();
    let admin = stack.envoy.admin_addr().port();
    let dir = tempfile::Builder::new().prefix("peerguard-prometheus-").tempdir().unwrap();
    // A client certificate from a CA the listener does not trust: the handshake fails before
    // any HTTP filter runs (Envoy counts it as ssl.fail_verify_error).
    let rogue = DemoCa::create_named(dir.path(), "rogue-ca", "rogue CA").unwrap();
    let rogue_leaf = rogue.issue("rogue", &LeafSpec::workload("frontend", "web")).unwrap();
    let rogue_client = Client::mtls(&stack.ca.cert_path, &rogue_leaf.cert_path, &rogue_leaf.key_path).unwrap();
    let crl = CrlSources::start(&stack, dir.path());
    let rules = fast_rules(&std::fs::read_to_string(monitoring("peerguard-rules.yaml")).unwrap());
    let prom = Prometheus::start(dir.path(), &[admin, crl.envoy.admin_addr().port()], &rules);
    let start = Instant::now();
    let mut handshake_refused = 0;
    let mut firing = BTreeSet::new();
    while start.elapsed() < LIMIT {
        // Each round: an allowed request, a policy deny, a request without a certificate
        // (peerguard: no_peer_certificate), and two handshakes the listener refuses.
        assert_eq!(stack.send(Some("frontend"), &Request::get("/api/items")).unwrap().status, 200);
        assert_eq!(stack.send(Some("other"), &Request::get("/api/items")).unwrap().status, 403);
        assert_eq!(stack.send(None, &Request::get("/api/items")).unwrap().status, 403);
        for _ in 0..2 {
            if rogue_client.send(stack.port(), &Request::get("/api/items")).is_err() {
                handshake_refused += 1;
            }
        }
        firing = prom.firing();
        let crl_complete = CRL_ALERTS.iter().all(|(a, want)| prom.firing_sources(a).len() >= want.len());
        if EXPECTED.iter().all(|a| firing.contains(*a)) && crl_complete {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(handshake_refused > 0, "the rogue client's handshakes were never refused");
    assert!(
        EXPECTED.iter().all(|a| firing.contains(*a)),
        "after {:?}: firing {firing:?}, expected {EXPECTED:?}\n{}\nprometheus: {}",
        start.elapsed(),
        prom.report(),
        prometheus.display()
    );
    eprintln!("alerts {firing:?} fired after {:?}", start.elapsed());
    // The CRL alerts name exactly the sources that fail or went stale: never the good source
    // for failing fetches (its fetches succeed or are answered 304).
    for (alert, want) in CRL_ALERTS {
        let got = prom.firing_sources(alert);
        let want: BTreeSet<String> = want.iter().map(|s| s.to_string()).collect();
        assert_eq!(got, want, "{alert}\n{}\ncrl envoy log:\n{}", prom.report(), crl.envoy.log_tail(30));
    }
    // No alert that the traffic does not justify: the policy is valid, no certificate expires.
    for quiet in ["PeerguardConfigInvalid", "PeerguardClientCertificatesExpiring"] {
        assert!(!firing.contains(quiet), "{quiet} fired\n{}", prom.report());
    }

    // Every metric the dashboard and the rules name was in this scrape.
    let names: BTreeSet<String> = prom.api("/api/v1/label/__name__/values").unwrap()["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str().map(String::from))
        .collect();
    let mut missing = Vec::new();
    for (what, exprs) in [("grafana-dashboard.json", dashboard_exprs()), ("peerguard-rules.yaml", rule_exprs())] {
        for e in exprs {
            for n in metric_names(&e) {
                if !names.contains(&n) {
                    missing.push(format!("{what}: {n}"));
                }
            }
        }
    }
    assert!(missing.is_empty(), "not in the scrape: {missing:?}\nscraped: {names:?}");
}
