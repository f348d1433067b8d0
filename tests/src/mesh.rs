//! `just mesh`: frontend, api and db, each an app behind its own Istio-shaped sidecar Envoy
//! (inbound listener with peerguard, outbound listener originating mTLS) on its own loopback
//! address, with SPIFFE certificates from one mesh CA made by `peerguard cert`. Prints the call
//! matrix and says whether it matches the policies in `envoy/mesh/`.
//!
//! No fixed ports: apps, outbound listeners and admin APIs bind port 0 (the OS picks, the real
//! ports are read back), and each inbound listener gets a port the OS reported free on that
//! service's address just before the sidecars start (the other sidecars' outbound clusters must
//! know it in advance). Names keep Istio's service port, 8080 (`inbound|8080||`,
//! `outbound|8080||api.api.svc.cluster.local`), as istiod would render them.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::client::{Client, Request};
use crate::envoy::wasm_path;
use crate::istio_shaped::{self as istio, Destination, Plugin, Workload, Xfcc};
use crate::repo::Build;
use crate::repo_root;
use crate::sidecar::RawEnvoy;
use crate::upstream::EchoServer;

pub const TRUST_DOMAIN: &str = "cluster.local";
/// The service port, as istiod names clusters and virtual hosts after it; no socket uses it.
const SERVICE_PORT: u16 = 8080;

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

/// The peerguard policy (pluginConfig) of a service, from `envoy/mesh/<name>.yaml`, loaded as
/// every `peerguard` command loads a policy (so an invalid one stops the mesh with its paths).
pub fn policy(name: &str) -> Result<Value> {
    let path = repo_root().join(format!("envoy/mesh/{name}.yaml"));
    Ok(peerguard_cli::policy_file::PolicyFile::load(&path)?.value)
}

/// Where the services of one run listen: the apps and the inbound sidecars (chosen before any
/// sidecar starts, since every outbound cluster names the inbound addresses of the others).
#[derive(Debug, Clone, Default)]
pub struct Addresses {
    pub app: BTreeMap<&'static str, SocketAddr>,
    pub inbound: BTreeMap<&'static str, SocketAddr>,
}

impl Addresses {
    fn get(map: &BTreeMap<&'static str, SocketAddr>, name: &str) -> Result<SocketAddr> {
        map.get(name).copied().with_context(|| format!("no address for {name}"))
    }
}

/// A port the OS reports free on `ip` now. Every probe of one call is held until all are taken,
/// so the ports differ; they are released before the sidecars bind them.
fn free_ports(ips: &[IpAddr]) -> Result<Vec<u16>> {
    let probes: Vec<TcpListener> = ips
        .iter()
        .map(|ip| TcpListener::bind(SocketAddr::new(*ip, 0)).with_context(|| format!("probe a free port on {ip}")))
        .collect::<Result<_>>()?;
    probes.iter().map(|p| Ok(p.local_addr()?.port())).collect()
}

/// The sidecar bootstrap of one service: the inbound listener on its address in `addrs`, the
/// outbound listener and the admin API on port 0.
pub fn sidecar_bootstrap(s: &Service, certs: &Path, wasm: &Path, addrs: &Addresses) -> Result<Value> {
    let workload = Workload {
        cert: certs.join(format!("{}.pem", s.name)),
        key: certs.join(format!("{}-key.pem", s.name)),
        root_ca: certs.join("ca.pem"),
    };
    // `just mesh` runs the Wasm module it was given, as Istio would (WasmPlugin).
    let plugin = Plugin {
        namespace: s.name.into(),
        name: "peerguard".into(),
        plugin_name: "peerguard".into(),
        wasm: Some(wasm.to_path_buf()),
        plugin_config: policy(s.name)?,
        vm_configuration: None,
        build: Some(Build::Wasm),
    };
    let mut dests = Vec::new();
    for d in SERVICES.iter().filter(|d| d.name != s.name) {
        dests.push(Destination {
            host: d.name.into(),
            fqdn: format!("{0}.{0}.svc.cluster.local", d.name),
            port: SERVICE_PORT,
            inbound: Addresses::get(&addrs.inbound, d.name)?,
            spiffe: d.spiffe(),
        });
    }
    let mut listeners = vec![istio::inbound_listener(
        Addresses::get(&addrs.inbound, s.name)?,
        SERVICE_PORT,
        TRUST_DOMAIN,
        Some(&plugin),
        Xfcc::ISTIO_DEFAULT,
    )?];
    listeners.push(istio::outbound_listener(s.addr(0), &dests));
    let mut clusters = vec![istio::inbound_cluster_for(SERVICE_PORT, Addresses::get(&addrs.app, s.name)?)];
    clusters.extend(dests.iter().map(istio::outbound_cluster));
    Ok(istio::bootstrap(s.addr(0), &workload, listeners, clusters))
}

/// The running mesh: apps and sidecars, and where each listens.
struct Mesh {
    // Field order is drop order: sidecars first, then the apps.
    envoys: BTreeMap<&'static str, RawEnvoy>,
    _apps: Vec<EchoServer>,
    addrs: Addresses,
}

impl Mesh {
    fn start(certs: &Path, wasm: &Path, workdir: &Path) -> Result<Self> {
        let mut addrs = Addresses::default();
        let mut apps = Vec::new();
        for s in SERVICES {
            let app = EchoServer::bind(&s.addr(0).to_string())?;
            addrs.app.insert(s.name, s.addr(app.port()));
            apps.push(app);
        }
        let ips: Vec<IpAddr> = SERVICES.iter().map(Service::ip).collect();
        for (s, port) in SERVICES.iter().zip(free_ports(&ips)?) {
            addrs.inbound.insert(s.name, s.addr(port));
        }
        let mut envoys = BTreeMap::new();
        for s in SERVICES {
            let cfg: PathBuf = workdir.join(format!("{}-sidecar.yaml", s.name));
            istio::write(&cfg, &sidecar_bootstrap(s, certs, wasm, &addrs)?)?;
            envoys.insert(s.name, RawEnvoy::start(s.name, &cfg, &repo_root(), workdir, Duration::from_secs(300))?);
        }
        Ok(Self { envoys, _apps: apps, addrs })
    }

    /// Where the caller's app sends its plaintext requests: its sidecar's outbound listener.
    fn outbound(&self, s: &Service) -> Result<SocketAddr> {
        let envoy = self.envoys.get(s.name).with_context(|| format!("no sidecar for {}", s.name))?;
        Ok(s.addr(envoy.listener_port("virtualOutbound")?))
    }
}

/// Brings the mesh up in `workdir`, makes every call of [`EXPECTED`], tears it down.
pub fn run(peerguard: &Path, workdir: &Path) -> Result<Vec<Row>> {
    let certs = workdir.join("certs");
    std::fs::create_dir_all(&certs)?;
    make_certs(peerguard, &certs)?;
    let wasm = wasm_path()?;
    // The inbound ports are probed, then released, then bound by Envoy: should another process
    // take one in between, that sidecar fails to start and the mesh starts again on new ports.
    let mut attempt = 0;
    let mesh = loop {
        attempt += 1;
        match Mesh::start(&certs, &wasm, workdir) {
            Ok(m) => break m,
            Err(e) if attempt < 3 && format!("{e:#}").contains("ddress already in use") => continue,
            Err(e) => return Err(e),
        }
    };
    let mut rows = Vec::new();
    for (caller, callee, method, path, want_status, want_reason) in EXPECTED {
        let dst = service(callee)?;
        let req = Request::new(method, path);
        let (status, reason) = match service(caller) {
            Ok(src) => {
                // The caller's app talks plaintext to its own sidecar, naming the service by Host.
                let c = Client::plaintext().server_name(callee);
                match c.send_to(mesh.outbound(&src)?, &req) {
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
            Err(_) => match Client::plaintext().send_to(Addresses::get(&mesh.addrs.inbound, dst.name)?, &req) {
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
    drop(mesh);
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
