//! The docker-compose topology of `envoy/` without Docker: the app (echo server) on
//! 127.0.0.1:8080 and one Envoy per Envoy service of `envoy/docker-compose.yaml`, started from
//! the very config files the compose file names, then the calls of `envoy/compose-client.sh`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use serde_json::Value;

use crate::client::{Client, Request};
use crate::repo_root;
use crate::sidecar::{fixed_ports_lock, RawEnvoy};
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

/// Starts the topology, makes the calls, stops everything. Envoy logs go to `logdir`.
pub fn run(logdir: &Path) -> Result<Vec<Call>> {
    let _ports = fixed_ports_lock();
    let repo = repo_root();
    let compose = compose_file()?;
    let _app = EchoServer::bind("127.0.0.1:8080")?;
    let mut envoys = Vec::new();
    for (name, cfg) in compose_envoys(&compose)? {
        envoys.push(RawEnvoy::start(&name, &repo.join(cfg), &repo, logdir, Duration::from_secs(300))?);
    }
    let plain = Client::plaintext();
    let d = certs();
    type Send = Box<dyn Fn() -> Result<crate::client::Response>>;
    let cases: Vec<(&'static str, u16, &'static str, Send)> = vec![
        (
            "outbound sidecar -> inbound, GET /api/items",
            200,
            "-",
            Box::new(move || plain.send(15001, &Request::get("/api/items"))),
        ),
        ("outbound sidecar -> inbound, POST /api/items", 403, "no_matching_allow", {
            let c = Client::plaintext();
            Box::new(move || c.send(15001, &Request::new("POST", "/api/items")))
        }),
        ("frontend cert -> inbound, GET /api/admin/users", 403, "denied_by_policy", {
            let c = mtls("frontend")?;
            Box::new(move || c.send(15006, &Request::get("/api/admin/users")))
        }),
        ("other cert -> inbound, GET /api/items", 403, "no_matching_allow", {
            let c = mtls("other")?;
            Box::new(move || c.send(15006, &Request::get("/api/items")))
        }),
        ("no client cert -> inbound, GET /api/items", 403, "no_peer_certificate", {
            let c = Client::tls(&d.join("ca.pem"))?;
            Box::new(move || c.send(15006, &Request::get("/api/items")))
        }),
        ("alice -> front proxy, GET /", 200, "-", {
            let c = mtls("alice")?;
            Box::new(move || c.send(8443, &Request::get("/")))
        }),
        ("frontend cert -> front proxy, GET /", 403, "no_matching_allow", {
            let c = mtls("frontend")?;
            Box::new(move || c.send(8443, &Request::get("/")))
        }),
        ("no client cert -> front proxy (handshake)", 0, "-", {
            let c = Client::tls(&d.join("ca.pem"))?;
            Box::new(move || c.send(8443, &Request::get("/")))
        }),
    ];
    let mut out = Vec::new();
    for (name, want, want_reason, send) in cases {
        let (got, reason) = match send() {
            Ok(r) => (r.status, r.reason().unwrap_or_else(|| "-".into())),
            Err(e) => (0, format!("connection failed: {}", e.root_cause())),
        };
        out.push(Call { name, want, want_reason, got, reason });
    }
    drop(envoys);
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
