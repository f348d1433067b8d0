//! The server-side Envoy under test: its bootstrap (mTLS listener, direct_response 200), its start
//! through the test kit's launcher, timed to the first response, and /proc sampling of CPU and RSS.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use peerguard_e2e::client::{Client, Request, Response};
use peerguard_e2e::envoy::downstream_tls;
use peerguard_e2e::launcher::{self, Launch};
use rustls::ClientConfig;
use serde_json::{json, Value};

use crate::certs::Pki;

/// A bootstrap with one mTLS listener whose only route answers 200 "ok" itself, behind `http_filters`.
pub fn bootstrap(pki: &Pki, http_filters: &[Value]) -> Value {
    let mut filters = http_filters.to_vec();
    filters.push(json!({
        "name": "envoy.filters.http.router",
        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}
    }));
    json!({
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
        "static_resources": {"listeners": [{
            "name": "bench",
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
            "filter_chains": [{
                "filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                        "stat_prefix": "bench",
                        "route_config": {"name": "local", "virtual_hosts": [{
                            "name": "all", "domains": ["*"],
                            "routes": [{"match": {"prefix": "/"},
                                        "direct_response": {"status": 200, "body": {"inline_string": "ok"}}}]
                        }]},
                        "http_filters": filters
                    }
                }],
                "transport_socket": downstream_tls(&pki.server_cert, &pki.server_key, &pki.ca_path, true)
            }]
        }]}
    })
}

/// [`bootstrap`] with Envoy setting a fresh XFCC header carrying the client certificate
/// (`SANITIZE_SET`, `cert: true`), which the native build needs for certificate checks: the
/// dynamic-module ABI gives the certificate's digest and SANs, not the certificate.
pub fn bootstrap_with_xfcc(pki: &Pki, http_filters: &[Value]) -> Value {
    let mut b = bootstrap(pki, http_filters);
    let hcm = &mut b["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"];
    hcm["forward_client_cert_details"] = json!("SANITIZE_SET");
    hcm["set_current_client_cert_details"] = json!({"cert": true, "chain": true});
    b
}

/// The Envoy under test, started by the test kit's launcher (hard timeout, stopped by PID on drop).
pub struct Envoy {
    process: launcher::Envoy,
    /// Envoy's own PID (not its `timeout` wrapper's): its /proc entries give CPU time and RSS.
    pub pid: u32,
    /// The listener's port on 127.0.0.1.
    pub port: u16,
    /// Spawn until the first response on the listener.
    pub start_to_first_200: Duration,
}

impl Envoy {
    /// Starts Envoy with `config` in `dir` and sends requests until the first response arrives.
    /// Returns the Envoy and that first response (which need not be a 200). `timeout` is the
    /// instance's hard limit: its whole measurement must fit in it.
    pub fn start(
        config: &Value,
        dir: &Path,
        tls: &Arc<ClientConfig>,
        path: &str,
        timeout: Duration,
    ) -> Result<(Envoy, Response)> {
        // wasm at info: peerguard logs VM start and "policy loaded", which time on_configure.
        // Readiness is polled every 5 ms: startup time is one of the figures.
        let process = Launch::new(dir)
            .log_level("warning")
            .component_log_level(Some("wasm:info"))
            .timeout(timeout)
            .ready_within(STARTUP_LIMIT)
            .poll_interval(Duration::from_millis(5))
            .start_bootstrap("envoy.json", &serde_json::to_string_pretty(config)?)?;
        let pid = process
            .envoy_pid()
            .ok_or_else(|| anyhow!("no Envoy process under its timeout wrapper (pid {}) to sample", process.pid()))?;
        let port = process.port();
        let mut envoy = Envoy { process, pid, port, start_to_first_200: Duration::ZERO };
        if port == 0 {
            bail!("Envoy has no listener; log tail:\n{}", envoy.log_tail());
        }
        let client = Client::with_tls_config(tls.clone()).timeout(Duration::from_secs(10));
        let deadline = envoy.process.spawned_at() + STARTUP_LIMIT;
        loop {
            match client.send(port, &Request::get(path)) {
                Ok(first) => {
                    envoy.start_to_first_200 = envoy.process.spawned_at().elapsed();
                    return Ok((envoy, first));
                }
                Err(e) if Instant::now() > deadline => bail!(
                    "Envoy did not serve within {STARTUP_LIMIT:?} (last error: {e:#}); log tail:\n{}",
                    envoy.log_tail()
                ),
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    }

    /// peerguard's on_configure calls so far, from its log lines: (count, total ms). Each VM
    /// (Envoy's main thread and each worker) logs "starting" then "policy loaded".
    pub fn configure_times(&self) -> (usize, f64) {
        let text = self.process.log();
        // Default log format: "[2026-11-29 09:28:02.052][pid][level][component] ...".
        let ms = |line: &str| -> Option<f64> {
            let t = line.get(12..24)?;
            let (h, rest) = t.split_once(':')?;
            let (m, sec) = rest.split_once(':')?;
            Some((h.parse::<f64>().ok()? * 3600.0 + m.parse::<f64>().ok()? * 60.0 + sec.parse::<f64>().ok()?) * 1e3)
        };
        let (mut count, mut total, mut started) = (0, 0.0, None);
        for line in text.lines() {
            if line.contains("peerguard: peerguard") && line.ends_with(" starting") {
                started = ms(line);
            } else if line.contains(": policy loaded (") {
                if let (Some(a), Some(b)) = (started.take(), ms(line)) {
                    count += 1;
                    total += (b - a).rem_euclid(86_400_000.0);
                }
            }
        }
        (count, total)
    }

    pub fn log_tail(&self) -> String {
        self.process.log_tail(30)
    }
}

/// How long an Envoy may take from spawn to its first response (a 10,000-rule policy or a large
/// CRL is compiled during startup).
pub const STARTUP_LIMIT: Duration = Duration::from_secs(90);

/// Clock ticks per second for /proc/<pid>/stat.
pub fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// utime + stime of a process (all threads), in ticks.
pub fn cpu_ticks(pid: &str) -> Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).ok_or_else(|| anyhow!("bad stat"))?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = f.get(11).and_then(|s| s.parse().ok()).ok_or_else(|| anyhow!("bad utime"))?;
    let stime: u64 = f.get(12).and_then(|s| s.parse().ok()).ok_or_else(|| anyhow!("bad stime"))?;
    Ok(utime + stime)
}

/// VmRSS in KiB.
pub fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| anyhow!("no VmRSS"))
}
