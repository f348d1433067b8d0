//! The docker-compose topology of `envoy/` without Docker: the app (an echo server) and one
//! Envoy per Envoy service of `envoy/docker-compose.yaml`, started from the very config files the
//! compose file names, then the calls of `envoy/compose-client.sh`.
//!
//! The shipped files keep their documented ports (app 8080, inbound 15006, outbound 15001, front
//! proxy 8443, admins 990x). Anything else on the machine may hold those, so each config runs
//! from a scratch copy in which every listener and admin address asks the OS for a port (port 0)
//! and every cluster points at the port the service it names really got ([`rewrite_ports`]).
//! The calls are written with the documented ports and translated at send time.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;

use crate::client::{Client, Request};
use crate::repo_root;
use crate::sidecar::RawEnvoy;
use crate::upstream::EchoServer;

/// `envoy/docker-compose.yaml` as JSON, with YAML merge keys (`<<: *envoy`) applied.
pub fn compose_file() -> Result<Value> {
    let path = repo_root().join("envoy/docker-compose.yaml");
    let text = std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
    let mut v: serde_yaml::Value = serde_yaml::from_str(&text).context("parse docker-compose.yaml")?;
    v.apply_merge().context("apply YAML merge keys")?;
    serde_json::to_value(v).context("compose file as JSON")
}

/// The Envoy services of the compose file: (service name, config file relative to the repo root).
pub fn compose_envoys(compose: &Value) -> Result<Vec<(String, PathBuf)>> {
    let services = compose["services"].as_object().ok_or_else(|| anyhow!("no services"))?;
    let mut out = Vec::new();
    for (name, svc) in services {
        let cmd: Vec<&str> = svc["command"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        if cmd.first() == Some(&"envoy") {
            let i = cmd.iter().position(|a| *a == "-c").ok_or_else(|| anyhow!("{name}: no -c"))?;
            let cfg = cmd.get(i + 1).ok_or_else(|| anyhow!("{name}: -c without a file"))?;
            out.push((name.clone(), PathBuf::from(cfg)));
        }
    }
    Ok(out)
}

/// One call of the client and its outcome.
#[derive(Debug, Clone)]
pub struct Call {
    pub name: &'static str,
    /// Expected status; 0 = the TLS handshake must fail.
    pub want: u16,
    /// Expected `x-peerguard-reason` (`-` for none); ignored when the handshake fails.
    pub want_reason: &'static str,
    pub got: u16,
    pub reason: String,
}

impl Call {
    pub fn ok(&self) -> bool {
        self.want == self.got && (self.got == 0 || self.reason == self.want_reason)
    }
}

fn certs() -> PathBuf {
    repo_root().join("envoy/certs")
}

fn mtls(id: &str) -> Result<Client> {
    let d = certs();
    Client::mtls(&d.join("ca.pem"), &d.join(format!("{id}.pem")), &d.join(format!("{id}-key.pem")))
}

/// The port of the `app` service as the compose file documents it (`-listen=HOST:PORT`).
pub fn documented_app_port(compose: &Value) -> Result<u16> {
    let cmd = compose["services"]["app"]["command"].as_array().ok_or_else(|| anyhow!("app: no command"))?;
    cmd.iter()
        .filter_map(Value::as_str)
        .find_map(|a| a.strip_prefix("-listen="))
        .and_then(|addr| addr.rsplit_once(':'))
        .and_then(|(_, port)| port.parse().ok())
        .ok_or_else(|| anyhow!("app: no -listen=HOST:PORT in {cmd:?}"))
}

/// A listener of a shipped config: its name and documented port.
fn listeners(doc: &Value) -> Vec<(String, u16)> {
    doc["static_resources"]["listeners"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| {
            let port = l["address"]["socket_address"]["port_value"].as_u64()?;
            Some((l["name"].as_str()?.to_string(), u16::try_from(port).ok()?))
        })
        .collect()
}

/// Every `socket_address` under the clusters' endpoints, mutably.
fn cluster_sockets(doc: &mut Value) -> Vec<&mut Value> {
    let mut out = Vec::new();
    let clusters = doc.pointer_mut("/static_resources/clusters").and_then(Value::as_array_mut);
    for c in clusters.into_iter().flatten() {
        let endpoints = c.pointer_mut("/load_assignment/endpoints").and_then(Value::as_array_mut);
        for e in endpoints.into_iter().flatten() {
            let lbs = e.get_mut("lb_endpoints").and_then(Value::as_array_mut);
            for lb in lbs.into_iter().flatten() {
                if let Some(s) = lb.pointer_mut("/endpoint/address/socket_address") {
                    out.push(s);
                }
            }
        }
    }
    out
}

fn set_port(socket_address: Option<&mut Value>, port: u16) {
    if let Some(o) = socket_address.and_then(Value::as_object_mut) {
        o.insert("port_value".into(), port.into());
    }
}

/// The documented ports the clusters of `doc` send to.
fn cluster_ports(doc: &Value) -> Vec<u16> {
    let mut doc = doc.clone();
    cluster_sockets(&mut doc)
        .into_iter()
        .filter_map(|s| s["port_value"].as_u64().and_then(|p| u16::try_from(p).ok()))
        .collect()
}

/// Every `port_value` anywhere in `v`.
fn all_port_values(v: &Value, out: &mut Vec<u64>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                match (k.as_str(), child.as_u64()) {
                    ("port_value", Some(p)) => out.push(p),
                    _ => all_port_values(child, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|c| all_port_values(c, out)),
        _ => {}
    }
}

/// Rewrites a shipped config for a run on a busy machine: the admin address and every listener
/// bind port 0 (the OS picks; the real ports are read back from the admin API), and every
/// cluster endpoint's documented port becomes the runtime port in `ports`. A cluster port that
/// `ports` does not know, or any other `port_value` left over, is an error rather than a fixed port.
pub fn rewrite_ports(doc: &mut Value, ports: &BTreeMap<u16, u16>) -> Result<()> {
    set_port(doc.pointer_mut("/admin/address/socket_address"), 0);
    let listeners = doc.pointer_mut("/static_resources/listeners").and_then(Value::as_array_mut);
    for l in listeners.into_iter().flatten() {
        set_port(l.pointer_mut("/address/socket_address"), 0);
    }
    let mut rewritten = Vec::new();
    for s in cluster_sockets(doc) {
        let documented = s["port_value"].as_u64().and_then(|p| u16::try_from(p).ok()).unwrap_or(0);
        let Some(&actual) = ports.get(&documented) else {
            bail!("a cluster sends to port {documented}, which no service of the topology provides (known: {ports:?})");
        };
        set_port(Some(s), actual);
        rewritten.push(u64::from(actual));
    }
    let mut left = Vec::new();
    all_port_values(doc, &mut left);
    left.retain(|p| *p != 0 && !rewritten.contains(p));
    if !left.is_empty() {
        bail!("fixed ports left after rewriting: {left:?}");
    }
    Ok(())
}

/// The topology, running: the app and the Envoys, with the documented-to-runtime port map.
pub struct Topology {
    // Field order is drop order: Envoys first, then the app.
    pub envoys: Vec<RawEnvoy>,
    pub app: EchoServer,
    /// Documented port (as in the shipped files) -> the port it really listens on.
    pub ports: BTreeMap<u16, u16>,
}

impl Topology {
    /// Starts the app and every Envoy of the compose file. An Envoy starts once every port its
    /// clusters send to is known (the outbound sidecar after the inbound one). Rewritten configs
    /// and Envoy logs go to `workdir`; Envoy runs from the repository root, so the configs'
    /// relative paths (`envoy/certs`, `dist/peerguard.wasm`) resolve as they do for a user.
    pub fn start(workdir: &Path) -> Result<Self> {
        std::fs::create_dir_all(workdir).with_context(|| format!("create {}", workdir.display()))?;
        let repo = repo_root();
        let compose = compose_file()?;
        let app = EchoServer::start()?;
        let mut ports = BTreeMap::from([(documented_app_port(&compose)?, app.port())]);
        let mut pending = Vec::new();
        for (name, cfg) in compose_envoys(&compose)? {
            let path = repo.join(&cfg);
            let text = std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
            let doc: Value = serde_yaml::from_str(&text).with_context(|| format!("parse {}", path.display()))?;
            pending.push((name, cfg, doc));
        }
        let mut envoys = Vec::new();
        while !pending.is_empty() {
            let ready = pending
                .iter()
                .position(|(_, _, doc)| cluster_ports(doc).iter().all(|p| ports.contains_key(p)))
                .ok_or_else(|| {
                    let names: Vec<&str> = pending.iter().map(|(n, _, _)| n.as_str()).collect();
                    anyhow!(
                        "cannot start {names:?}: their clusters send to ports no started service provides ({ports:?})"
                    )
                })?;
            let (name, cfg, mut doc) = pending.remove(ready);
            let documented = listeners(&doc);
            rewrite_ports(&mut doc, &ports).with_context(|| format!("{}", cfg.display()))?;
            let scratch = workdir.join(format!("{name}.yaml"));
            std::fs::write(&scratch, serde_yaml::to_string(&doc)?)
                .with_context(|| format!("write {}", scratch.display()))?;
            let envoy = RawEnvoy::start(&name, &scratch, &repo, workdir, Duration::from_secs(300))?;
            for (listener, port) in documented {
                ports.insert(port, envoy.listener_port(&listener)?);
            }
            envoys.push(envoy);
        }
        Ok(Self { envoys, app, ports })
    }

    /// The runtime port of a documented port.
    pub fn port(&self, documented: u16) -> Result<u16> {
        self.ports.get(&documented).copied().ok_or_else(|| anyhow!("no service documents port {documented}"))
    }
}

/// Starts the topology, makes the calls, stops everything. Scratch configs and Envoy logs go to
/// `logdir`.
pub fn run(logdir: &Path) -> Result<Vec<Call>> {
    let topo = Topology::start(logdir)?;
    let plain = Client::plaintext();
    let d = certs();
    type Send = Box<dyn Fn(&Topology) -> Result<crate::client::Response>>;
    let to = |t: &Topology, documented: u16| t.port(documented);
    let cases: Vec<(&'static str, u16, &'static str, Send)> = vec![
        (
            "outbound sidecar -> inbound, GET /api/items",
            200,
            "-",
            Box::new(move |t| plain.send(to(t, 15001)?, &Request::get("/api/items"))),
        ),
        ("outbound sidecar -> inbound, POST /api/items", 403, "no_matching_allow", {
            let c = Client::plaintext();
            Box::new(move |t| c.send(to(t, 15001)?, &Request::new("POST", "/api/items")))
        }),
        ("frontend cert -> inbound, GET /api/admin/users", 403, "denied_by_policy", {
            let c = mtls("frontend")?;
            Box::new(move |t| c.send(to(t, 15006)?, &Request::get("/api/admin/users")))
        }),
        ("other cert -> inbound, GET /api/items", 403, "no_matching_allow", {
            let c = mtls("other")?;
            Box::new(move |t| c.send(to(t, 15006)?, &Request::get("/api/items")))
        }),
        ("no client cert -> inbound, GET /api/items", 403, "no_peer_certificate", {
            let c = Client::tls(&d.join("ca.pem"))?;
            Box::new(move |t| c.send(to(t, 15006)?, &Request::get("/api/items")))
        }),
        ("alice -> front proxy, GET /", 200, "-", {
            let c = mtls("alice")?;
            Box::new(move |t| c.send(to(t, 8443)?, &Request::get("/")))
        }),
        ("frontend cert -> front proxy, GET /", 403, "no_matching_allow", {
            let c = mtls("frontend")?;
            Box::new(move |t| c.send(to(t, 8443)?, &Request::get("/")))
        }),
        ("no client cert -> front proxy (handshake)", 0, "-", {
            let c = Client::tls(&d.join("ca.pem"))?;
            Box::new(move |t| c.send(to(t, 8443)?, &Request::get("/")))
        }),
    ];
    let mut out = Vec::new();
    for (name, want, want_reason, send) in cases {
        let (got, reason) = match send(&topo) {
            Ok(r) => (r.status, r.reason().unwrap_or_else(|| "-".into())),
            Err(e) => (0, format!("connection failed: {}", e.root_cause())),
        };
        out.push(Call { name, want, want_reason, got, reason });
    }
    drop(topo);
    Ok(out)
}

/// The calls as a table.
pub fn table(calls: &[Call]) -> String {
    let mut s = format!("| {:<48} | {:>4} | {:>4} | {:<40} | {} |\n", "call", "want", "got", "reason", "ok");
    s.push_str(&format!("|{}|{}|{}|{}|----|\n", "-".repeat(50), "-".repeat(6), "-".repeat(6), "-".repeat(42)));
    for c in calls {
        let reason: String = c.reason.chars().take(40).collect();
        s.push_str(&format!(
            "| {:<48} | {:>4} | {:>4} | {:<40} | {} |\n",
            c.name,
            c.want,
            c.got,
            reason,
            if c.ok() { "OK" } else { "FAIL" }
        ));
    }
    s
}
