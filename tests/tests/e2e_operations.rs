//! Operations against a real Envoy: counters in /stats and /stats/prometheus (with reason and
//! policy labels), audit lines and their rate limit, live policy reload over ECDS, and
//! certificate rotation over SDS, both while a bounded client loop keeps sending requests.
//!
//! Nothing here asserts on timing: loops are bounded by counts and generous deadlines, and every
//! wait polls for a state rather than sleeping a fixed time.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use peerguard_cli::live::{rotate_cert_dir, InitArgs, LiveError, ReloadArgs, RotateArgs, ECDS_FILE};
use peerguard_e2e::certs::{DemoCa, Issued, LeafSpec};
use peerguard_e2e::client::{Client, Request, Response};
use peerguard_e2e::envoy::{wasm_path, Build, Envoy, EnvoyConfig, ListenerTls};
use peerguard_e2e::upstream::EchoServer;
use serde_json::Value;
use tempfile::TempDir;

const IDENTITY_HEADER: &str = "x-peerguard-principal";

/// Allows the frontend namespace to read the API, denies admin paths, audits exports, and
/// would deny (dry run) debug paths.
const MIX_POLICY: &str = r#"{"mtls":"strict","identity":["spiffe"],
 "policies":[
  {"name":"frontend-reads-api","action":"ALLOW","rules":[{"from":[{"source":{"principals":["cluster.local/ns/frontend/sa/*"]}}],"to":[{"operation":{"methods":["GET"],"paths":["/api/*"]}}]}]},
  {"name":"block-admin","action":"DENY","rules":[{"to":[{"operation":{"paths":["/api/admin*"]}}]}]},
  {"name":"watch-exports","action":"AUDIT","rules":[{"to":[{"operation":{"paths":["/api/export*"]}}]}]},
  {"name":"maybe-block-debug","action":"DENY","dryRun":true,"rules":[{"to":[{"operation":{"paths":["/api/debug*"]}}]}]}],
 "denyResponse":{"status":403,"body":"access denied","exposeReason":true}}"#;

/// Policy A of the reload test: only the frontend may read.
const POLICY_A: &str = r#"{"mtls":"strict","identity":["spiffe"],"policies":[{"name":"a-frontend","action":"ALLOW","rules":[{"from":[{"source":{"namespaces":["frontend"]}}]}]}],"denyResponse":{"exposeReason":true}}"#;
/// Policy B of the reload test: only the other namespace may read.
const POLICY_B: &str = r#"{"mtls":"strict","identity":["spiffe"],"policies":[{"name":"b-other","action":"ALLOW","rules":[{"from":[{"source":{"namespaces":["other"]}}]}]}],"denyResponse":{"exposeReason":true}}"#;
/// An invalid policy (unknown key): the filter must answer 503 config_invalid while it is live.
const POLICY_INVALID: &str = r#"{"mtls":"strict","policies":[{"name":"broken","action":"ALLOW","rulez":[]}]}"#;

/// CA, identities, echo upstream and Envoy, with the policy by ECDS and the server certificate
/// by SDS from files in a temp directory, written by `peerguard live init` (with `--native` when
/// `PEERGUARD_BUILD=native`). Dropped in field order: Envoy first.
struct Live {
    envoy: Envoy,
    upstream: EchoServer,
    ca: DemoCa,
    cfg: EnvoyConfig,
    certs_dir: PathBuf,
    dir: TempDir,
}

impl Live {
    fn start(policy: &str) -> Live {
        let dir = tempfile::Builder::new()
            .prefix("peerguard-ops-")
            .disable_cleanup(std::env::var_os("PEERGUARD_E2E_KEEP").is_some())
            .tempdir()
            .unwrap();
        let ca = DemoCa::create(dir.path()).unwrap();
        for (name, ns, sa) in [("frontend", "frontend", "web"), ("other", "other", "batch")] {
            ca.issue(name, &LeafSpec::workload(ns, sa)).unwrap();
        }
        ca.issue("server-gen1", &LeafSpec::server()).unwrap();
        // `peerguard live init` writes DIR/ecds, DIR/sds and DIR/server-certs, as for a user.
        let build = Build::from_env().unwrap();
        let policy_file = dir.path().join("policy-init.json");
        std::fs::write(&policy_file, policy).unwrap();
        peerguard_cli::live::init(&InitArgs {
            dir: dir.path().to_path_buf(),
            policy: policy_file,
            cert: dir.path().join("server-gen1.pem"),
            key: dir.path().join("server-gen1-key.pem"),
            wasm: match build {
                Build::Wasm => Some(wasm_path().unwrap().display().to_string()),
                Build::Native => None,
            },
            native: build == Build::Native,
        })
        .unwrap();
        let certs_dir = dir.path().join("server-certs");
        let upstream = EchoServer::start().unwrap();
        let tls = ListenerTls {
            server_cert: certs_dir.join("cert.pem"),
            server_key: certs_dir.join("key.pem"),
            trusted_ca: ca.cert_path.clone(),
            require_client_certificate: false,
        };
        let cfg = EnvoyConfig::new(upstream.port(), Some(tls))
            .with_build(build)
            .with_policy(policy)
            .with_ecds(&dir.path().join("ecds"))
            .with_sds(&dir.path().join("sds"))
            .with_timeout(Duration::from_secs(240));
        let envoy = Envoy::start(&cfg, dir.path()).unwrap();
        Live { envoy, upstream, ca, cfg, certs_dir, dir }
    }

    fn client(&self, identity: Option<&str>) -> Client {
        match identity {
            None => Client::tls(&self.ca.cert_path).unwrap(),
            Some(name) => {
                let d = self.dir.path();
                Client::mtls(&self.ca.cert_path, &d.join(format!("{name}.pem")), &d.join(format!("{name}-key.pem")))
                    .unwrap()
            }
        }
    }

    fn send(&self, identity: Option<&str>, req: &Request) -> Response {
        self.client(identity).send(self.envoy.port(), req).unwrap()
    }

    /// Swaps the policy as `peerguard live reload` (and `just reload`) does: the policy from a
    /// file, checked, then one atomic rename of the ECDS file. `force` writes a policy the filter
    /// will refuse (`FORCE=1 just reload`).
    fn reload(&self, policy: &str, force: bool) -> Result<String, LiveError> {
        static N: AtomicUsize = AtomicUsize::new(0);
        let file = self.dir.path().join(format!("policy-{}.json", N.fetch_add(1, Ordering::SeqCst)));
        std::fs::write(&file, policy).unwrap();
        peerguard_cli::live::reload(&ReloadArgs { policy: file, dir: self.dir.path().to_path_buf(), wasm: None, force })
    }

    /// The ECDS file Envoy watches, as it is now.
    fn ecds_file(&self) -> Vec<u8> {
        std::fs::read(self.cfg.ecds_dir.as_ref().unwrap().join(ECDS_FILE)).unwrap()
    }

    /// Every JSON object Envoy logged after `peerguard audit: `.
    fn audit_lines(&self) -> Vec<Value> {
        audit_lines(&self.envoy.log())
    }

    /// Polls until `pred` holds for the audit lines, or panics after `limit`.
    fn wait_audit(&self, what: &str, limit: Duration, pred: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + limit;
        loop {
            let lines = self.audit_lines();
            if pred(&lines) {
                return lines;
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out waiting for {what}; audit lines:\n{lines:#?}\nlog tail:\n{}",
                    self.envoy.log_tail(30)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `/stats?filter=^wasmcustom.peerguard&format=json` as name → value.
    fn peerguard_stats(&self) -> BTreeMap<String, u64> {
        let (status, body) = self.envoy.admin_get("/stats?format=json&filter=%5Ewasmcustom%5C.peerguard").unwrap();
        assert_eq!(status, 200, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        v["stats"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|s| Some((s["name"].as_str()?.to_string(), s["value"].as_u64()?)))
            .collect()
    }
}

fn audit_lines(log: &str) -> Vec<Value> {
    log.lines()
        .filter_map(|l| l.split_once("peerguard audit: ").map(|(_, json)| json))
        .map(|json| serde_json::from_str(json).unwrap_or_else(|e| panic!("audit line is not JSON ({e}): {json}")))
        .collect()
}

/// Whether `s` is an RFC 3339 UTC timestamp as the filter writes it: `YYYY-MM-DDTHH:MM:SSZ`.
fn is_rfc3339_utc(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 20
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

/// One sample of the Prometheus text format: name, labels, value.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A strict parser for the subset of the Prometheus text exposition format Envoy writes:
/// `# TYPE`/`# HELP` comments and `name{k="v",...} value` samples. Any other line is an error.
fn parse_prometheus(text: &str) -> Result<Vec<Sample>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let err = |what: &str| format!("line {}: {what}: {line:?}", n + 1);
        if line.is_empty() {
            continue;
        }
        if let Some(c) = line.strip_prefix("# ") {
            if !(c.starts_with("TYPE ") || c.starts_with("HELP ")) {
                return Err(err("unknown comment"));
            }
            continue;
        }
        let name_end = line.find(['{', ' ']).ok_or_else(|| err("no value"))?;
        let name = &line[..name_end];
        let valid_name = name
            .chars()
            .enumerate()
            .all(|(i, c)| c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit()));
        if name.is_empty() || !valid_name {
            return Err(err("bad metric name"));
        }
        let mut rest = &line[name_end..];
        let mut labels = BTreeMap::new();
        if let Some(r) = rest.strip_prefix('{') {
            let mut r = r;
            loop {
                if let Some(after) = r.strip_prefix('}') {
                    r = after;
                    break;
                }
                let eq = r.find("=\"").ok_or_else(|| err("bad label"))?;
                let key = &r[..eq];
                if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return Err(err("bad label name"));
                }
                let mut value = String::new();
                let mut chars = r[eq + 2..].char_indices();
                let end = loop {
                    match chars.next() {
                        Some((i, '"')) => break i,
                        Some((_, '\\')) => match chars.next() {
                            Some((_, 'n')) => value.push('\n'),
                            Some((_, c)) => value.push(c),
                            None => return Err(err("dangling escape")),
                        },
                        Some((_, c)) => value.push(c),
                        None => return Err(err("unterminated label value")),
                    }
                };
                labels.insert(key.to_string(), value);
                r = &r[eq + 2 + end + 1..];
                r = r.strip_prefix(',').unwrap_or(r);
            }
            rest = r;
        }
        let value_text = rest.strip_prefix(' ').ok_or_else(|| err("no space before value"))?;
        let value_text = value_text.split(' ').next().unwrap_or_default(); // an optional timestamp follows
        let value = match value_text {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            v => v.parse::<f64>().map_err(|_| err("bad value"))?,
        };
        out.push(Sample { name: name.to_string(), labels, value });
    }
    Ok(out)
}

#[test]
fn prometheus_parser_reads_labels_and_rejects_garbage() {
    let s = parse_prometheus("# TYPE a counter\na{} 1\nb{reason=\"x\\\"y\",p=\"q\"} 2.5\nc 3\n").unwrap();
    assert_eq!(s.len(), 3);
    assert_eq!(s[1].labels["reason"], "x\"y");
    assert_eq!(s[1].labels["p"], "q");
    assert_eq!(s[2].value, 3.0);
    assert!(parse_prometheus("a{b=\"c} 1").is_err());
    assert!(parse_prometheus("9a 1").is_err());
    assert!(parse_prometheus("a one").is_err());
}

fn sample<'a>(samples: &'a [Sample], name: &str, label: Option<(&str, &str)>) -> Option<&'a Sample> {
    samples.iter().find(|s| {
        s.name == name
            && match label {
                None => s.labels.is_empty(),
                Some((k, v)) => s.labels.get(k).map(String::as_str) == Some(v) && s.labels.len() == 1,
            }
    })
}

#[test]
fn counters_prometheus_labels_and_audit_lines_match_a_mix_of_requests() {
    let live = Live::start(MIX_POLICY);
    let mut expect_status = Vec::new();
    // (identity, path, x-request-id, status)
    let plan: &[(Option<&str>, &str, &str, u16)] = &[
        (Some("frontend"), "/api/items", "rq-allow-1", 200),
        (Some("frontend"), "/api/items", "rq-allow-2", 200),
        (Some("frontend"), "/api/items", "rq-allow-3", 200),
        (Some("frontend"), "/api/export/1", "rq-export-1", 200),
        (Some("frontend"), "/api/export/2", "rq-export-2", 200),
        (Some("frontend"), "/api/debug", "rq-debug-1", 200),
        (Some("other"), "/api/items", "rq-other-1", 403),
        (Some("other"), "/api/items", "rq-other-2", 403),
        (Some("other"), "/api/items", "rq-other-3", 403),
        (Some("other"), "/api/items", "rq-other-4", 403),
        (Some("frontend"), "/api/admin/users", "rq-admin-1", 403),
        (Some("frontend"), "/api/admin/users", "rq-admin-2", 403),
        (None, "/api/items", "rq-nocert-1", 403),
    ];
    for (identity, path, rid, status) in plan {
        let resp = live.send(*identity, &Request::get(path).header("x-request-id", rid));
        assert_eq!(resp.status, *status, "{identity:?} {path}: {}", resp.body_text());
        expect_status.push(resp.status);
    }

    // Exact counters from /stats.
    let stats = live.peerguard_stats();
    let want: &[(&str, u64)] = &[
        ("wasmcustom.peerguard.allowed", 6),
        ("wasmcustom.peerguard.denied", 7),
        ("wasmcustom.peerguard.denied.reason.no_matching_allow", 4),
        ("wasmcustom.peerguard.denied.reason.denied_by_policy", 2),
        ("wasmcustom.peerguard.denied.reason.no_peer_certificate", 1),
        ("wasmcustom.peerguard.denied.reason.config_invalid", 0),
        ("wasmcustom.peerguard.would_deny", 1),
        ("wasmcustom.peerguard.would_deny.reason.denied_by_policy", 1),
        ("wasmcustom.peerguard.audit", 2),
        ("wasmcustom.peerguard.config_errors", 0),
        ("wasmcustom.peerguard.cert_expiring", 0),
        // The ALLOW policy names the 5 plain allows; the dry-run DENY the debug request.
        ("wasmcustom.peerguard.policy.frontend-reads-api.matched", 5),
        ("wasmcustom.peerguard.policy.block-admin.matched", 2),
        ("wasmcustom.peerguard.policy.watch-exports.matched", 2),
        ("wasmcustom.peerguard.policy.maybe-block-debug.matched", 1),
    ];
    for (name, value) in want {
        assert_eq!(stats.get(*name), Some(value), "{name}; all peerguard stats: {stats:#?}");
    }
    let reason_sum: u64 =
        stats.iter().filter(|(k, _)| k.starts_with("wasmcustom.peerguard.denied.reason.")).map(|(_, v)| v).sum();
    assert_eq!(reason_sum, 7, "per-reason counters add up to denied");

    // Prometheus: the whole page parses, and reason/policy are labels on one metric each.
    let (status, prom) = live.envoy.admin_get("/stats/prometheus").unwrap();
    assert_eq!(status, 200);
    let samples = parse_prometheus(&prom).unwrap_or_else(|e| panic!("{e}"));
    // The same names in both builds: the native Envoy runs with the runtime flag that strips the
    // module's stats namespace (README "The native build", "Metric names").
    let val = |name: &str, label: Option<(&str, &str)>| {
        sample(&samples, name, label)
            .unwrap_or_else(|| {
                let ours: Vec<_> = samples.iter().filter(|s| s.name.contains("peerguard")).collect();
                panic!("no sample {name} {label:?}; peerguard samples: {ours:#?}")
            })
            .value
    };
    assert_eq!(val("peerguard_allowed", None), 6.0);
    assert_eq!(val("peerguard_denied", None), 7.0);
    assert_eq!(val("peerguard_denied_reason", Some(("reason", "no_matching_allow"))), 4.0);
    assert_eq!(val("peerguard_denied_reason", Some(("reason", "denied_by_policy"))), 2.0);
    assert_eq!(val("peerguard_denied_reason", Some(("reason", "no_peer_certificate"))), 1.0);
    assert_eq!(val("peerguard_would_deny_reason", Some(("reason", "denied_by_policy"))), 1.0);
    assert_eq!(val("peerguard_policy_matched", Some(("policy", "frontend-reads-api"))), 5.0);
    assert_eq!(val("peerguard_policy_matched", Some(("policy", "block-admin"))), 2.0);
    assert_eq!(val("peerguard_audit", None), 2.0);
    // No label value leaked into a metric name.
    assert!(!samples.iter().any(|s| s.name.contains("no_matching_allow") || s.name.contains("block_admin")));

    // Audit lines: 7 denies, 1 would-deny, 2 AUDIT matches; no allow is logged.
    let lines = live.wait_audit("10 audit lines", Duration::from_secs(10), |l| l.len() >= 10);
    assert_eq!(lines.len(), 10, "{lines:#?}");
    let by_rid = |rid: &str| -> &Value {
        lines.iter().find(|l| l["requestId"] == rid).unwrap_or_else(|| panic!("no audit line for {rid}: {lines:#?}"))
    };
    for l in &lines {
        assert_eq!(l["peerguard"], "audit");
        assert!(is_rfc3339_utc(l["time"].as_str().unwrap_or_default()), "time: {l}");
        assert_eq!(l["method"], "GET");
        assert_eq!(l["host"], "localhost");
    }
    let frontend_serial = serial_of(&live.dir.path().join("frontend.pem"));
    let other = by_rid("rq-other-1");
    assert_eq!(other["decision"], "deny");
    assert_eq!(other["reason"], "no_matching_allow");
    assert_eq!(other["policy"], Value::Null);
    assert_eq!(other["principal"], "cluster.local/ns/other/sa/batch");
    assert_eq!(other["trustDomain"], "cluster.local");
    assert_eq!(other["path"], "/api/items");
    assert_eq!(other["certSerial"], serial_of(&live.dir.path().join("other.pem")).as_str());
    assert_eq!(other["certSha256"].as_str().map(str::len), Some(64));
    assert!(is_rfc3339_utc(other["certNotAfter"].as_str().unwrap_or_default()), "{other}");
    let admin = by_rid("rq-admin-1");
    assert_eq!(
        (&admin["decision"], &admin["reason"], &admin["policy"]),
        (&"deny".into(), &"denied_by_policy".into(), &"block-admin".into())
    );
    assert_eq!(admin["certSerial"], frontend_serial.as_str());
    let nocert = by_rid("rq-nocert-1");
    assert_eq!(
        (&nocert["reason"], &nocert["principal"], &nocert["certSerial"]),
        (&"no_peer_certificate".into(), &Value::Null, &Value::Null)
    );
    let debug = by_rid("rq-debug-1");
    assert_eq!(
        (&debug["decision"], &debug["reason"], &debug["policy"]),
        (&"would_deny".into(), &"denied_by_policy".into(), &"maybe-block-debug".into())
    );
    for rid in ["rq-export-1", "rq-export-2"] {
        let l = by_rid(rid);
        assert_eq!(
            (&l["decision"], &l["reason"], &l["policy"]),
            (&"audit".into(), &Value::Null, &"watch-exports".into())
        );
        assert_eq!(l["principal"], "cluster.local/ns/frontend/sa/web");
    }
    assert!(!lines.iter().any(|l| l["requestId"].as_str().is_some_and(|r| r.starts_with("rq-allow"))));
    // Never a certificate or key in the log.
    let log = live.envoy.log();
    assert!(!log.contains("BEGIN CERTIFICATE") && !log.contains("PRIVATE KEY"), "PEM material in the Envoy log");
}

/// The serial of a PEM certificate as the filter prints it (lowercase hex, no leading zeros).
fn serial_of(pem: &Path) -> String {
    let pem = std::fs::read(pem).unwrap();
    peerguard_policy::CertFacts::from_pem(&pem).unwrap().serial_hex
}

#[test]
fn audit_log_is_rate_limited_and_reports_how_many_lines_it_suppressed() {
    // Every request is denied (no_matching_allow), so each one wants an audit line.
    let live = Live::start(POLICY_B);
    let client = Arc::new(live.client(Some("frontend")));
    let port = live.envoy.port();
    let sent = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    // Bounded: at most 6000 requests or 120 s; stops as soon as a suppression report shows up.
    // The report is written by the first line of the window after one that overflowed, so
    // whatever the window boundaries, a loop faster than 100 denials/s produces one.
    const MAX_REQUESTS: usize = 6000;
    let deadline = Instant::now() + Duration::from_secs(120);
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (client, sent, failed, stop) = (client.clone(), sent.clone(), failed.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
                    if sent.fetch_add(1, Ordering::SeqCst) >= MAX_REQUESTS {
                        sent.fetch_sub(1, Ordering::SeqCst);
                        break;
                    }
                    match client.get(port, "/api/items") {
                        Ok(r) if r.status == 403 => {}
                        _ => {
                            failed.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                }
            })
        })
        .collect();
    let mut report = None;
    while report.is_none() && Instant::now() < deadline && workers.iter().any(|w| !w.is_finished()) {
        std::thread::sleep(Duration::from_millis(200));
        report = live.audit_lines().into_iter().find(|l| l["peerguard"] == "audit_suppressed");
    }
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.join().unwrap();
    }
    let total = sent.load(Ordering::SeqCst);
    // One more denial in a later window flushes a report if the loop ended without one.
    if report.is_none() {
        std::thread::sleep(Duration::from_millis(1100));
        live.client(Some("frontend")).get(port, "/api/items").unwrap();
        report = live
            .wait_audit("a suppression report", Duration::from_secs(5), |l| {
                l.iter().any(|x| x["peerguard"] == "audit_suppressed")
            })
            .into_iter()
            .find(|l| l["peerguard"] == "audit_suppressed");
    }
    let report = report.unwrap();
    let lines = live.audit_lines();
    let denials: Vec<_> = lines.iter().filter(|l| l["peerguard"] == "audit").collect();
    let reports: Vec<_> = lines.iter().filter(|l| l["peerguard"] == "audit_suppressed").collect();
    let suppressed: u64 = reports.iter().map(|l| l["suppressed"].as_u64().unwrap()).sum();
    eprintln!(
        "audit rate limit: {total} denied requests, {} audit lines, {} suppression reports totalling {suppressed} suppressed, {} failed",
        denials.len(),
        reports.len(),
        failed.load(Ordering::SeqCst)
    );
    assert_eq!(failed.load(Ordering::SeqCst), 0);
    assert!(report["suppressed"].as_u64().unwrap() > 0, "{report}");
    assert!(is_rfc3339_utc(report["time"].as_str().unwrap_or_default()), "{report}");
    // The budget holds in every one-second window.
    let mut per_second: BTreeMap<&str, usize> = BTreeMap::new();
    for l in &denials {
        *per_second.entry(l["time"].as_str().unwrap()).or_default() += 1;
    }
    assert!(per_second.values().all(|n| *n <= 100), "{per_second:?}");
    // Counters are never rate-limited.
    let denied = live.peerguard_stats()["wasmcustom.peerguard.denied"];
    assert!(denied as usize >= total, "denied counter {denied} < {total} requests");
    // Every denial is either written or counted as suppressed (the last window may be unreported).
    assert!(denials.len() as u64 + suppressed <= denied);
}

/// What one response was, for the per-outcome tally.
fn outcome(resp: &Response) -> String {
    format!("{} {}", resp.status, resp.reason().unwrap_or_default())
}

/// The answer each policy phase gives to (identity): frontend and other namespaces.
fn phase_answer(policy: &str, identity: &str) -> (u16, Option<&'static str>) {
    match (policy, identity) {
        (POLICY_A, "frontend") | (POLICY_B, "other") => (200, None),
        (POLICY_A, _) | (POLICY_B, _) => (403, Some("no_matching_allow")),
        _ => (503, Some("config_invalid")),
    }
}

#[test]
fn policy_reload_under_load_answers_with_the_old_or_new_policy_and_fails_closed_when_invalid() {
    let live = Arc::new(Live::start(POLICY_A));
    let phases = [POLICY_A, POLICY_B, POLICY_INVALID, POLICY_A, POLICY_B];
    let phase = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let tally: Arc<Mutex<BTreeMap<String, usize>>> = Arc::default();
    let failures: Arc<Mutex<Vec<String>>> = Arc::default();
    let clients = Arc::new([("frontend", live.client(Some("frontend"))), ("other", live.client(Some("other")))]);
    // Two client threads, each bounded to 3000 requests; the controller stops them earlier.
    let workers: Vec<_> = (0..2)
        .map(|t| {
            let (live, phase, stop, tally, failures, clients) =
                (live.clone(), phase.clone(), stop.clone(), tally.clone(), failures.clone(), clients.clone());
            std::thread::spawn(move || {
                for i in 0..3000usize {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let (who, client) = &clients[(i + t) % 2];
                    let p0 = phase.load(Ordering::SeqCst);
                    let res = client.get(live.envoy.port(), "/api/items");
                    let p1 = phase.load(Ordering::SeqCst);
                    let resp = match res {
                        Ok(r) => r,
                        Err(e) => {
                            failures.lock().unwrap().push(format!("{who}: transport error {e:#}"));
                            continue;
                        }
                    };
                    *tally.lock().unwrap().entry(format!("{who} -> {}", outcome(&resp))).or_default() += 1;
                    // The policy in force was set no earlier than phase p0 - 1 (the controller only
                    // moves on once a phase is live) and no later than p1.
                    let ok = (p0.saturating_sub(1)..=p1).any(|p| {
                        let (status, reason) = phase_answer(phases[p], who);
                        resp.status == status && resp.reason().as_deref() == reason
                    });
                    if !ok {
                        failures.lock().unwrap().push(format!(
                            "{who} in phases {p0}..={p1}: unexpected {} {:?}",
                            resp.status,
                            resp.body_text()
                        ));
                    }
                }
            })
        })
        .collect();

    let started = Instant::now();
    for (i, policy) in phases.iter().enumerate() {
        if i > 0 {
            phase.store(i, Ordering::SeqCst);
            live.reload(policy, *policy == POLICY_INVALID).unwrap();
        }
        // Wait (bounded) until the new policy answers, then let the load run under it a while.
        wait_answer(&live, "frontend", phase_answer(policy, "frontend"));
        eprintln!("reload: phase {i} live after {:?}", started.elapsed());
        std::thread::sleep(Duration::from_millis(1500));
    }
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.join().unwrap();
    }

    let tally = tally.lock().unwrap();
    let failures = failures.lock().unwrap();
    let total: usize = tally.values().sum::<usize>() + failures.iter().filter(|f| f.contains("transport")).count();
    eprintln!(
        "reload under load: {total} requests in {:?}, {} failed; per outcome: {tally:#?}",
        started.elapsed(),
        failures.len()
    );
    assert!(failures.is_empty(), "{} failures, first ones: {:#?}", failures.len(), &failures[..failures.len().min(10)]);
    assert!(tally.keys().any(|k| k.contains("config_invalid")), "the load never saw the invalid window: {tally:?}");
    assert!(tally.get("frontend -> 200 ").is_some() && tally.get("other -> 200 ").is_some(), "{tally:?}");
    // Envoy took the invalid policy (fail closed), it did not keep the old one.
    assert!(live.envoy.log().contains("invalid policy at"), "{}", live.envoy.log_tail(30));
    let stats = live.peerguard_stats();
    assert!(stats["wasmcustom.peerguard.denied.reason.config_invalid"] > 0, "{stats:#?}");
    // Counted once per Envoy thread that loads the bad policy (main and worker), so at least once.
    assert!(stats["wasmcustom.peerguard.config_errors"] >= 1, "{stats:#?}");
    assert_eq!(live.upstream.seen().iter().filter(|e| e.header(IDENTITY_HEADER).is_none()).count(), 0);
}

/// Waits (bounded) until `identity` gets `want` for GET /api/items.
fn wait_answer(live: &Live, identity: &str, want: (u16, Option<&str>)) {
    let client = live.client(Some(identity));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = client.get(live.envoy.port(), "/api/items").unwrap();
        if (r.status, r.reason().as_deref()) == want {
            return;
        }
        assert!(Instant::now() < deadline, "{identity} never got {want:?}:\n{}", live.envoy.log_tail(30));
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn live_reload_and_rotate_refuse_what_envoy_cannot_use_and_write_nothing() {
    let live = Live::start(POLICY_A);
    wait_answer(&live, "frontend", (200, None));
    let ecds_before = live.ecds_file();

    // An invalid policy: a clear error that names the file and the path, and not a byte written.
    let err = live.reload(POLICY_INVALID, false).unwrap_err();
    assert!(matches!(err, LiveError::Policy(_)), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("policy-") && msg.contains(": policies[0].rulez: "), "{msg}");
    assert!(msg.contains("nothing written"), "{msg}");
    // A policy that parses but does not compile, and one that is not even JSON.
    for bad in [r#"{"policies":[{"name":"a"},{"name":"a"}]}"#, r#"{"policies": ["#] {
        let err = live.reload(bad, false).unwrap_err();
        assert!(matches!(err, LiveError::Policy(_)), "{bad}: {err}");
    }
    assert_eq!(live.ecds_file(), ecds_before, "a refused policy changed the ECDS file");

    // A server key that is not the certificate's: refused, the ..data link does not move.
    let data_before = std::fs::read_link(live.certs_dir.join("..data")).unwrap();
    let serial_before = server_serials(&live.envoy);
    let new_server = live.ca.issue("server-gen2", &LeafSpec::server()).unwrap();
    let frontend_key = live.dir.path().join("frontend-key.pem");
    let err = peerguard_cli::live::rotate(&RotateArgs {
        cert: new_server.cert_path.clone(),
        key: frontend_key,
        dir: live.dir.path().to_path_buf(),
    })
    .unwrap_err();
    assert!(matches!(err, LiveError::Certificate(_)), "{err}");
    assert!(err.to_string().contains("is not the private key of"), "{err}");
    assert_eq!(std::fs::read_link(live.certs_dir.join("..data")).unwrap(), data_before);

    // A valid policy after them goes live: the watch works, so the refused ones would have been
    // seen had they been written. Envoy never loaded an invalid policy.
    live.reload(POLICY_B, false).unwrap();
    wait_answer(&live, "frontend", (403, Some("no_matching_allow")));
    wait_answer(&live, "other", (200, None));
    assert!(!live.envoy.log().contains("invalid policy at"), "{}", live.envoy.log_tail(30));
    let stats = live.peerguard_stats();
    assert_eq!(stats.get("wasmcustom.peerguard.config_errors").copied().unwrap_or(0), 0, "{stats:#?}");
    assert_eq!(stats.get("wasmcustom.peerguard.denied.reason.config_invalid").copied().unwrap_or(0), 0, "{stats:#?}");
    assert_eq!(server_serials(&live.envoy), serial_before, "the refused certificate reached Envoy");
}

/// Reads the serial numbers of the listener certificates from the admin `/certs` endpoint.
fn server_serials(envoy: &Envoy) -> HashSet<String> {
    let (_, body) = envoy.admin_get("/certs").unwrap();
    let v: Value = serde_json::from_str(&body).unwrap();
    let mut out = HashSet::new();
    for c in v["certificates"].as_array().into_iter().flatten() {
        for chain in c["cert_chain"].as_array().into_iter().flatten() {
            if let Some(s) = chain["serial_number"].as_str() {
                out.insert(s.trim_start_matches('0').to_ascii_lowercase());
            }
        }
    }
    out
}

#[test]
fn certificate_rotation_under_load_loses_no_request_and_the_filter_sees_the_new_client_cert() {
    // An AUDIT policy on every request writes the certificate serial the filter saw.
    let policy = r#"{"mtls":"strict","identity":["spiffe"],"policies":[
      {"name":"frontend","action":"ALLOW","rules":[{"from":[{"source":{"namespaces":["frontend"]}}]}]},
      {"name":"probe","action":"AUDIT","rules":[{"to":[{"operation":{"paths":["/probe"]}}]}]}]}"#;
    let live = Arc::new(Live::start(policy));
    let ca = &live.ca;
    let port = live.envoy.port();
    let issue_client = |generation: u32| -> Issued {
        let spec = if generation == 1 {
            LeafSpec::workload("frontend", "web")
        } else {
            LeafSpec::workload("frontend", "web-v2")
        };
        ca.issue(&format!("client-gen{generation}"), &spec).unwrap()
    };
    let mtls = |i: &Issued| Client::mtls(&ca.cert_path, &i.cert_path, &i.key_path).unwrap();
    let client_gen1 = issue_client(1);
    let current: Arc<RwLock<Arc<Client>>> = Arc::new(RwLock::new(Arc::new(mtls(&client_gen1))));
    let stop = Arc::new(AtomicBool::new(false));
    let tally: Arc<Mutex<BTreeMap<String, usize>>> = Arc::default();
    let failures: Arc<Mutex<Vec<String>>> = Arc::default();
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let (current, stop, tally, failures) = (current.clone(), stop.clone(), tally.clone(), failures.clone());
            std::thread::spawn(move || {
                for _ in 0..3000 {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let client = current.read().unwrap().clone();
                    match client.get(port, "/api/items") {
                        Ok(r) if r.status == 200 => {
                            let who = r.echo().ok().and_then(|e| e.header(IDENTITY_HEADER).map(str::to_string));
                            *tally.lock().unwrap().entry(format!("200 as {}", who.unwrap_or_default())).or_default() +=
                                1;
                        }
                        Ok(r) => failures.lock().unwrap().push(format!("{} {:?}", r.status, r.body_text())),
                        Err(e) => failures.lock().unwrap().push(format!("transport error {e:#}")),
                    }
                }
            })
        })
        .collect();

    let probe_serial = |client: &Client, rid: &str| -> String {
        let r = client.send(port, &Request::get("/probe").header("x-request-id", rid)).unwrap();
        assert_eq!(r.status, 200, "{}", r.body_text());
        let lines = live.wait_audit(rid, Duration::from_secs(10), |l| l.iter().any(|x| x["requestId"] == rid));
        let line = lines.into_iter().find(|x| x["requestId"] == rid).unwrap();
        line["certSerial"].as_str().unwrap().to_string()
    };
    let serial = |i: &Issued| peerguard_policy::CertFacts::from_pem(i.cert_pem.as_bytes()).unwrap().serial_hex;
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(probe_serial(&current.read().unwrap(), "probe-1"), serial(&client_gen1));

    for generation in 2..=3u32 {
        // Server: a new certificate and key, swapped in one rename; Envoy reloads it over SDS.
        let server = ca.issue(&format!("server-gen{generation}"), &LeafSpec::server()).unwrap();
        rotate_cert_dir(&live.certs_dir, &server.cert_pem, &server.key_pem).unwrap();
        let want = serial(&server);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !server_serials(&live.envoy).contains(&want) {
            assert!(
                Instant::now() < deadline,
                "server cert gen{generation} never loaded:\n{}",
                live.envoy.log_tail(30)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        std::thread::sleep(Duration::from_millis(1000));
        // Client: new connections present the new certificate; the filter's cache keys by digest.
        let client = issue_client(generation);
        *current.write().unwrap() = Arc::new(mtls(&client));
        let seen = probe_serial(&current.read().unwrap(), &format!("probe-gen{generation}"));
        assert_eq!(seen, serial(&client), "the filter did not pick up client cert gen{generation}");
        std::thread::sleep(Duration::from_millis(1000));
    }
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.join().unwrap();
    }
    let tally = tally.lock().unwrap();
    let failures = failures.lock().unwrap();
    let total = tally.values().sum::<usize>() + failures.len();
    eprintln!("rotation under load: {total} requests, {} failed; per outcome: {tally:#?}", failures.len());
    assert!(failures.is_empty(), "{} failures: {:#?}", failures.len(), &failures[..failures.len().min(10)]);
    assert!(tally.contains_key("200 as cluster.local/ns/frontend/sa/web"), "{tally:?}");
    assert!(tally.contains_key("200 as cluster.local/ns/frontend/sa/web-v2"), "{tally:?}");
}
