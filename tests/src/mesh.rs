//! `just mesh`: frontend, api and db, each an app behind its own Istio-shaped sidecar Envoy
//! (inbound listener with peerguard, outbound listener originating mTLS) on its own loopback
//! address, with SPIFFE certificates from one mesh CA made by `peerguard cert`. Prints the call
//! matrix and says whether it matches the policies in `envoy/mesh/`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::client::{Client, Request};
use crate::envoy::wasm_path;
use crate::istio_shaped::{self as istio, Destination, WasmPlugin, Workload, Xfcc};
use crate::repo_root;
use crate::sidecar::{fixed_ports_lock, RawEnvoy};
use crate::upstream::EchoServer;

pub const TRUST_DOMAIN: &str = "cluster.local";
const APP_PORT: u16 = 8080;
const INBOUND_PORT: u16 = 15006;
const OUTBOUND_PORT: u16 = 15001;
const ADMIN_PORT: u16 = 15000;

/// A mesh service: namespace = service account = name, on 127.0.0.<octet>.
#[derive(Debug, Clone, Copy)]
pub struct Service {
    pub name: &'static str,
    pub octet: u8,
}

pub const SERVICES: &[Service] =
    &[Service { name: "frontend", octet: 11 }, Service { name: "api", octet: 12 }, Service { name: "db", octet: 13 }];

impl Service {
    pub fn ip(&self) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, self.octet))
    }
    pub fn addr(&self, port: u16) -> SocketAddr {
        SocketAddr::new(self.ip(), port)
    }
    pub fn spiffe(&self) -> String {
        format!("spiffe://{TRUST_DOMAIN}/ns/{0}/sa/{0}", self.name)
    }
    pub fn principal(&self) -> String {
        format!("{TRUST_DOMAIN}/ns/{0}/sa/{0}", self.name)
    }
}

fn service(name: &str) -> Result<Service> {
    SERVICES.iter().copied().find(|s| s.name == name).with_context(|| format!("no service {name}"))
}

/// One cell of the matrix.
#[derive(Debug, Clone)]
pub struct Row {
    pub caller: String,
    pub callee: String,
    pub request: String,
    pub want_status: u16,
    pub want_reason: &'static str,
    pub status: u16,
    pub reason: String,
}

impl Row {
    pub fn ok(&self) -> bool {
        self.status == self.want_status && self.reason == self.want_reason
    }
}

/// (caller, callee, method, path, expected status, expected reason). Status 0: no HTTP answer.
pub const EXPECTED: &[(&str, &str, &str, &str, u16, &str)] = &[
    ("frontend", "api", "GET", "/api/items", 200, "-"),
    ("frontend", "api", "POST", "/api/items", 403, "no_matching_allow"),
    ("frontend", "api", "GET", "/admin", 403, "no_matching_allow"),
    ("api", "db", "GET", "/query", 200, "-"),
    ("frontend", "db", "GET", "/query", 403, "no_matching_allow"),
    ("db", "api", "GET", "/api/items", 403, "no_matching_allow"),
    ("api", "frontend", "GET", "/", 403, "no_matching_allow"),
    ("outsider (plaintext)", "api", "GET", "/api/items", 0, "refused: STRICT mTLS"),
];

fn pg(bin: &Path, args: &[&str]) -> Result<()> {
    let out = Command::new(bin).args(args).output().with_context(|| format!("run {}", bin.display()))?;
    if !out.status.success() {
        bail!("peerguard {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// Makes the mesh CA and one SPIFFE workload certificate per service with `peerguard cert`.
pub fn make_certs(peerguard: &Path, dir: &Path) -> Result<()> {
    let d = dir.to_str().context("non-UTF-8 dir")?;
    pg(peerguard, &["cert", "ca", "--out-dir", d, "--cn", "peerguard mesh CA", "--ttl", "720h"])?;
    let (ca, key) = (format!("{d}/ca.pem"), format!("{d}/ca-key.pem"));
    for s in SERVICES {
        let w = format!("{0}/{0}", s.name);
        pg(
            peerguard,
            &[
                "cert",
                "issue",
                "--ca",
                &ca,
                "--ca-key",
                &key,
                "--out-dir",
                d,
                "--name",
                s.name,
                "--workload",
                &w,
                "--ttl",
                "24h",
            ],
        )?;
    }
    Ok(())
}

/// The peerguard policy (pluginConfig) of a service, from `envoy/mesh/<name>.yaml`.
pub fn policy(name: &str) -> Result<Value> {
    let path = repo_root().join(format!("envoy/mesh/{name}.yaml"));
    let text = std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
    Ok(serde_yaml::from_str(&text)?)
}

/// The sidecar bootstrap of one service.
pub fn sidecar_bootstrap(s: &Service, certs: &Path, wasm: &Path) -> Result<Value> {
    let workload = Workload {
        cert: certs.join(format!("{}.pem", s.name)),
        key: certs.join(format!("{}-key.pem", s.name)),
        root_ca: certs.join("ca.pem"),
    };
    let plugin = WasmPlugin {
        namespace: s.name.into(),
        name: "peerguard".into(),
        plugin_name: "peerguard".into(),
        wasm: wasm.to_path_buf(),
        plugin_config: policy(s.name)?,
        vm_configuration: None,
    };
    let dests: Vec<Destination> = SERVICES
        .iter()
        .filter(|d| d.name != s.name)
        .map(|d| Destination {
            host: d.name.into(),
            fqdn: format!("{0}.{0}.svc.cluster.local", d.name),
            port: APP_PORT,
            inbound: d.addr(INBOUND_PORT),
            spiffe: d.spiffe(),
        })
        .collect();
    let mut listeners = vec![istio::inbound_listener(
        s.addr(INBOUND_PORT),
        APP_PORT,
        TRUST_DOMAIN,
        Some(&plugin),
        Xfcc { cert: false },
    )];
    listeners.push(istio::outbound_listener(s.addr(OUTBOUND_PORT), &dests));
    let mut clusters = vec![istio::inbound_cluster(s.addr(APP_PORT))];
    clusters.extend(dests.iter().map(istio::outbound_cluster));
    Ok(istio::bootstrap(s.addr(ADMIN_PORT), &workload, listeners, clusters))
}

/// Brings the mesh up in `workdir`, makes every call of [`EXPECTED`], tears it down.
pub fn run(peerguard: &Path, workdir: &Path) -> Result<Vec<Row>> {
    let _ports = fixed_ports_lock();
    let certs = workdir.join("certs");
    std::fs::create_dir_all(&certs)?;
    make_certs(peerguard, &certs)?;
    let wasm = wasm_path()?;
    let mut apps = Vec::new();
    let mut envoys = Vec::new();
    for s in SERVICES {
        apps.push(EchoServer::bind(&s.addr(APP_PORT).to_string())?);
        let cfg: PathBuf = workdir.join(format!("{}-sidecar.yaml", s.name));
        istio::write(&cfg, &sidecar_bootstrap(s, &certs, &wasm)?)?;
        envoys.push(RawEnvoy::start(s.name, &cfg, &repo_root(), workdir, Duration::from_secs(300))?);
    }
    let mut rows = Vec::new();
    for (caller, callee, method, path, want_status, want_reason) in EXPECTED {
        let dst = service(callee)?;
        let req = Request::new(method, path);
        let (status, reason) = match service(caller) {
            Ok(src) => {
                // The caller's app talks plaintext to its own sidecar, naming the service by Host.
                let c = Client::plaintext().server_name(callee);
                match c.send_to(src.addr(OUTBOUND_PORT), &req) {
                    Ok(r) => {
                        let mut reason = r.reason().unwrap_or_else(|| "-".into());
                        if r.status == 200 {
                            // The app must see the caller's verified identity.
                            let seen = r.echo().ok().and_then(|e| e.header("x-peerguard-principal").map(String::from));
                            if seen.as_deref() != Some(src.principal().as_str()) {
                                reason = format!("identity header {seen:?}");
                            }
                        }
                        (r.status, reason)
                    }
                    Err(e) => (0, format!("error: {}", e.root_cause())),
                }
            }
            Err(_) => match Client::plaintext().send_to(dst.addr(INBOUND_PORT), &req) {
                Ok(r) => (r.status, r.reason().unwrap_or_else(|| "-".into())),
                Err(_) => (0, "refused: STRICT mTLS".to_string()),
            },
        };
        rows.push(Row {
            caller: caller.to_string(),
            callee: callee.to_string(),
            request: format!("{method} {path}"),
            want_status: *want_status,
            want_reason,
            status,
            reason,
        });
    }
    drop(envoys);
    drop(apps);
    Ok(rows)
}

/// The matrix as a table.
pub fn table(rows: &[Row]) -> String {
    let mut s = format!(
        "| {:<20} | {:<8} | {:<15} | {:>6} | {:<22} | {} |\n|{}|{}|{}|{}|{}|----|\n",
        "caller",
        "callee",
        "request",
        "status",
        "reason",
        "ok",
        "-".repeat(22),
        "-".repeat(10),
        "-".repeat(17),
        "-".repeat(8),
        "-".repeat(24)
    );
    for r in rows {
        let status = if r.status == 0 { "-".to_string() } else { r.status.to_string() };
        s.push_str(&format!(
            "| {:<20} | {:<8} | {:<15} | {:>6} | {:<22} | {} |\n",
            r.caller,
            r.callee,
            r.request,
            status,
            r.reason,
            if r.ok() { "OK" } else { "FAIL" }
        ));
    }
    s
}
