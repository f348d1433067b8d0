//! The server-side Envoy under test: bootstrap generation (mTLS listener, direct_response 200),
//! process start with `--concurrency 1`, readiness, and /proc sampling of CPU time and RSS.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};
use serde_json::{json, Value};

use crate::certs::Pki;

/// The Envoy binary: `$ENVOY_BIN`, else `<repo>/.tools/envoy/envoy`.
pub fn envoy_bin() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("ENVOY_BIN").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        if p.is_file() {
            return Ok(p);
        }
        bail!("ENVOY_BIN={} does not exist; run `just envoy`", p.display());
    }
    let p = crate::repo_root().join(".tools/envoy/envoy");
    if p.is_file() {
        return Ok(p);
    }
    bail!("Envoy not found: set ENVOY_BIN or run `just envoy` (looked for {})", p.display())
}

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
                "transport_socket": {
                    "name": "envoy.transport_sockets.tls",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
                        "require_client_certificate": true,
                        "common_tls_context": {
                            "tls_certificates": [{
                                "certificate_chain": {"filename": pki.server_cert.display().to_string()},
                                "private_key": {"filename": pki.server_key.display().to_string()}
                            }],
                            "validation_context": {"trusted_ca": {"filename": pki.ca_path.display().to_string()}}
                        }
                    }
                }
            }]
        }]}
    })
}

/// A running Envoy, killed on drop.
pub struct Envoy {
    child: Child,
    pub pid: u32,
    pub port: u16,
    pub log_path: PathBuf,
    /// Spawn until the first 200 on the listener.
    pub start_to_first_200: Duration,
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Result of the first request.
pub struct FirstResponse {
    pub status: u16,
    pub body: String,
}

impl Envoy {
    /// Starts Envoy with `config` in `dir` and sends requests until the first response arrives.
    /// Returns the Envoy and that first response (which need not be a 200).
    pub fn start(config: &Value, dir: &Path, tls: &Arc<ClientConfig>, path: &str) -> Result<(Envoy, FirstResponse)> {
        let bin = envoy_bin()?;
        std::fs::create_dir_all(dir)?;
        let config_path = dir.join("envoy.json");
        std::fs::write(&config_path, serde_json::to_vec_pretty(config)?)?;
        let log_path = dir.join("envoy.log");
        let admin_path = dir.join("admin-address.txt");
        let _ = std::fs::remove_file(&admin_path);
        let log = std::fs::File::create(&log_path)?;
        let spawned = Instant::now();
        let child = Command::new(&bin)
            .arg("-c")
            .arg(&config_path)
            // wasm at info: peerguard logs VM start and "policy loaded", which time on_configure.
            .args([
                "--concurrency",
                "1",
                "--disable-hot-restart",
                "-l",
                "warning",
                "--component-log-level",
                "wasm:info",
            ])
            .arg("--admin-address-path")
            .arg(&admin_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("spawn {}", bin.display()))?;
        let pid = child.id();
        let mut envoy = Envoy { child, pid, port: 0, log_path, start_to_first_200: Duration::ZERO };
        let deadline = spawned + Duration::from_secs(90);
        let mut admin: Option<SocketAddr> = None;
        let mut last_error = String::from("no listener port yet");
        loop {
            if let Ok(Some(status)) = envoy.child.try_wait() {
                bail!("Envoy exited during startup ({status}); log tail:\n{}", envoy.log_tail());
            }
            if Instant::now() > deadline {
                bail!("Envoy did not serve within 90 s (last error: {last_error}); log tail:\n{}", envoy.log_tail());
            }
            if admin.is_none() {
                admin = std::fs::read_to_string(&admin_path).ok().and_then(|t| t.trim().parse().ok());
            }
            if let (Some(a), 0) = (admin, envoy.port) {
                if let Ok(text) = admin_get(a, "/listeners?format=json") {
                    if let Ok(v) = serde_json::from_str::<Value>(&text) {
                        let port = v["listener_statuses"][0]["local_address"]["socket_address"]["port_value"].as_u64();
                        envoy.port = port.and_then(|p| u16::try_from(p).ok()).unwrap_or(0);
                    }
                }
            }
            if envoy.port != 0 {
                match one_request(envoy.port, tls, path) {
                    Ok(first) => {
                        envoy.start_to_first_200 = spawned.elapsed();
                        return Ok((envoy, first));
                    }
                    Err(e) => last_error = format!("{e:#}"),
                }
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// peerguard's on_configure calls so far, from its log lines: (count, total ms). Each VM
    /// (Envoy's main thread and each worker) logs "starting" then "policy loaded".
    pub fn configure_times(&self) -> (usize, f64) {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
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
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

fn admin_get(addr: SocketAddr, path: &str) -> Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(s, "GET {path} HTTP/1.1\r\nhost: admin\r\nconnection: close\r\n\r\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    let (head, body) = out.split_once("\r\n\r\n").ok_or_else(|| anyhow!("bad admin response"))?;
    if head.get(8..12) != Some(" 200") {
        bail!("admin {path}: {head}");
    }
    if !head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        return Ok(body.to_string());
    }
    let (mut rest, mut out) = (body, String::new());
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16)?;
        if n == 0 {
            break;
        }
        out.push_str(tail.get(..n).ok_or_else(|| anyhow!("truncated chunk"))?);
        rest = tail.get(n + 2..).unwrap_or("");
    }
    Ok(out)
}

/// One request on a fresh mTLS connection (`connection: close`), returning status and body.
pub fn one_request(port: u16, tls: &Arc<ClientConfig>, path: &str) -> Result<FirstResponse> {
    let sock = TcpStream::connect_timeout(&SocketAddr::from(([127, 0, 0, 1], port)), Duration::from_secs(2))?;
    sock.set_read_timeout(Some(Duration::from_secs(10)))?;
    let conn = ClientConnection::new(tls.clone(), ServerName::try_from("localhost")?)?;
    let mut s = StreamOwned::new(conn, sock);
    write!(s, "GET {path} HTTP/1.1\r\nhost: bench\r\nconnection: close\r\n\r\n")?;
    s.flush()?;
    let mut raw = Vec::new();
    match s.read_to_end(&mut raw) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => {}
        Err(e) => return Err(e.into()),
    }
    let text = String::from_utf8_lossy(&raw);
    let status = text.get(9..12).and_then(|s| s.parse().ok()).ok_or_else(|| anyhow!("no response"))?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Ok(FirstResponse { status, body })
}

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
