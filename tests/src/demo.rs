//! The demo stack (certificates, echo upstream, Envoy with peerguard) and the demo cases.
//!
//! Shared by the `demo` binary and the end-to-end tests, so both check the same contract.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{anyhow, Context, Result};
use tempfile::TempDir;

use crate::certs::{spiffe_id, DemoCa, Issued, LeafSpec};
use crate::client::{Client, Request, Response};
use crate::envoy::{Envoy, EnvoyConfig, ListenerTls};
use crate::upstream::EchoServer;

/// The header carrying the verified principal to the upstream.
pub const IDENTITY_HEADER: &str = "x-peerguard-principal";

/// The built-in demo policy, as the filter receives it.
pub const DEMO_POLICY: &str = r#"{"mode":"enforce","mtls":"strict","identity":["spiffe"],
 "policies":[
  {"name":"frontend-reads-api","action":"ALLOW","rules":[{"from":[{"source":{"principals":["cluster.local/ns/frontend/sa/*"]}}],"to":[{"operation":{"methods":["GET"],"paths":["/api/*"]}}]}]},
  {"name":"block-admin","action":"DENY","rules":[{"to":[{"operation":{"paths":["/api/admin*"]}}]}]}],
 "denyResponse":{"status":403,"body":"access denied","exposeReason":true},
 "identityHeader":"x-peerguard-principal"}"#;

/// The partner's workload in the federation demo.
pub const PARTNER_FRONTEND: &str = "spiffe://partner.example/ns/web/sa/frontend";

/// The federation demo's policy: `cluster.local` and `partner.example` each with their own CA
/// (docs/policy.md "Trust bundles"); the local and the partner frontend may read the API.
pub fn federation_policy(local_ca_pem: &str, partner_ca_pem: &str) -> String {
    serde_json::json!({
        "certificate": {"trustBundles": {"cluster.local": [local_ca_pem], "partner.example": [partner_ca_pem]}},
        "policies": [{"name": "frontends-read-api", "rules": [{
            "from": [{"source": {"principals": ["cluster.local/ns/frontend/sa/web", "partner.example/ns/web/sa/frontend"]}}],
            "to": [{"operation": {"methods": ["GET"], "paths": ["/api/*"]}}],
        }]}],
        "denyResponse": {"status": 403, "body": "access denied", "exposeReason": true},
    })
    .to_string()
}

/// The workload identities the demo issues, by file name.
pub const IDENTITIES: &[(&str, &str, &str)] = &[
    // (file name, namespace, service account)
    ("frontend", "frontend", "web"),
    ("other", "other", "batch"),
];

/// Certificates, echo upstream and Envoy, all torn down on drop.
pub struct Stack {
    // Field order is drop order: Envoy first, then the upstream, then the files.
    pub envoy: Envoy,
    pub upstream: EchoServer,
    pub ca: DemoCa,
    pub server: Issued,
    pub identities: BTreeMap<String, Issued>,
    pub dir: TempDir,
}

/// How to build a [`Stack`].
#[derive(Debug, Clone)]
pub struct StackOptions {
    /// Policy JSON for the filter; `None` runs Envoy without the filter.
    pub policy: Option<String>,
    /// Adjusts the generated Envoy config before start.
    pub tweak: fn(EnvoyConfig) -> EnvoyConfig,
    /// Keep the temp dir (certs, envoy.yaml, envoy.log) after drop; also `PEERGUARD_E2E_KEEP=1`.
    pub keep_dir: bool,
    pub timeout: Option<std::time::Duration>,
}

impl Default for StackOptions {
    fn default() -> Self {
        Self { policy: Some(DEMO_POLICY.to_string()), tweak: |c| c, keep_dir: false, timeout: None }
    }
}

impl Stack {
    /// The demo stack with the demo policy.
    pub fn demo() -> Result<Self> {
        Self::start(StackOptions::default())
    }

    /// Envoy with the filter and this policy JSON.
    pub fn with_policy(policy: &str) -> Result<Self> {
        Self::start(StackOptions { policy: Some(policy.to_string()), ..StackOptions::default() })
    }

    pub fn start(opts: StackOptions) -> Result<Self> {
        let keep = opts.keep_dir || std::env::var_os("PEERGUARD_E2E_KEEP").is_some();
        let dir = tempfile::Builder::new()
            .prefix("peerguard-e2e-")
            .disable_cleanup(keep)
            .tempdir()
            .context("create temp dir")?;
        let ca = DemoCa::create(dir.path())?;
        let mut identities = BTreeMap::new();
        for (name, ns, sa) in IDENTITIES {
            identities.insert(name.to_string(), ca.issue(name, &LeafSpec::workload(ns, sa))?);
        }
        let trusted_ca = ca.cert_path.clone();
        Self::launch(opts, dir, ca, identities, trusted_ca)
    }

    /// The federation demo: a second trust domain, `partner.example`, with its own CA, and
    /// [`federation_policy`], which gives each trust domain its own anchors. The partner's CA
    /// issues `partner-web` (its own `spiffe://partner.example/ns/web/sa/frontend`) and
    /// `partner-mint` (`spiffe://cluster.local/ns/frontend/sa/web`, the local frontend's ID).
    /// Envoy's handshake trusts both CAs, as a proxy holding a federated bundle does.
    pub fn federation(timeout: Option<std::time::Duration>) -> Result<Self> {
        let dir = tempfile::Builder::new().prefix("peerguard-e2e-").tempdir().context("create temp dir")?;
        let ca = DemoCa::create(dir.path())?;
        let partner = DemoCa::create_named(dir.path(), "partner-ca", "partner.example CA")?;
        let mut identities = BTreeMap::new();
        identities.insert("frontend".to_owned(), ca.issue("frontend", &LeafSpec::workload("frontend", "web"))?);
        for (name, uri) in [("partner-web", PARTNER_FRONTEND), ("partner-mint", &spiffe_id("frontend", "web"))] {
            identities.insert(name.to_owned(), partner.issue(name, &LeafSpec::client().uri(uri))?);
        }
        let trusted_ca = dir.path().join("federated-cas.pem");
        std::fs::write(&trusted_ca, format!("{}{}", ca.cert_pem, partner.cert_pem)).context("write CA bundle")?;
        let policy = federation_policy(&ca.cert_pem, &partner.cert_pem);
        Self::launch(
            StackOptions { policy: Some(policy), timeout, ..StackOptions::default() },
            dir,
            ca,
            identities,
            trusted_ca,
        )
    }

    /// Issues the server certificate from `ca`, starts the upstream and Envoy (trusting
    /// `trusted_ca` in the handshake) with `opts`.
    fn launch(
        opts: StackOptions,
        dir: TempDir,
        ca: DemoCa,
        identities: BTreeMap<String, Issued>,
        trusted_ca: PathBuf,
    ) -> Result<Self> {
        let server = ca.issue("server", &LeafSpec::server())?;
        let upstream = EchoServer::start()?;
        let tls = ListenerTls {
            server_cert: server.cert_path.clone(),
            server_key: server.key_path.clone(),
            trusted_ca,
            require_client_certificate: false,
        };
        let mut cfg = EnvoyConfig::new(upstream.port(), Some(tls));
        if let Some(p) = &opts.policy {
            cfg = cfg.with_policy(p);
        }
        if let Some(t) = opts.timeout {
            cfg = cfg.with_timeout(t);
        }
        let cfg = (opts.tweak)(cfg);
        let envoy = Envoy::start(&cfg, dir.path())?;
        Ok(Self { envoy, upstream, ca, server, identities, dir })
    }

    pub fn port(&self) -> u16 {
        self.envoy.port()
    }

    pub fn identity(&self, name: &str) -> Result<&Issued> {
        self.identities.get(name).ok_or_else(|| anyhow!("no demo identity {name:?}"))
    }

    /// Issues one more client certificate from the demo CA into the stack's directory.
    pub fn issue(&mut self, name: &str, spec: &LeafSpec) -> Result<Issued> {
        let issued = self.ca.issue(name, spec)?;
        self.identities.insert(name.to_string(), issued.clone());
        Ok(issued)
    }

    /// A TLS client presenting the named identity, or none for `None`.
    pub fn client(&self, identity: Option<&str>) -> Result<Client> {
        match identity {
            None => Client::tls(&self.ca.cert_path),
            Some(name) => {
                let id = self.identity(name)?;
                Client::mtls(&self.ca.cert_path, &id.cert_path, &id.key_path)
            }
        }
    }

    /// Sends `req` as the named identity (or without a client cert).
    pub fn send(&self, identity: Option<&str>, req: &Request) -> Result<Response> {
        self.client(identity)?.send(self.port(), req)
    }

    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }
}

/// One demo case and what the filter must do with it.
#[derive(Debug, Clone)]
pub struct Case {
    pub name: &'static str,
    /// Demo identity file name, or `None` for no client certificate.
    pub identity: Option<&'static str>,
    pub method: &'static str,
    pub path: &'static str,
    pub headers: &'static [(&'static str, &'static str)],
    pub want_status: u16,
    /// Expected `x-peerguard-reason` on a deny.
    pub want_reason: Option<&'static str>,
    /// Expected identity header value seen by the upstream on an allow.
    pub want_principal: Option<&'static str>,
}

impl Case {
    pub fn request(&self) -> Request {
        let mut r = Request::new(self.method, self.path);
        for (n, v) in self.headers {
            r = r.header(n, v);
        }
        r
    }

    /// Human-readable identity for the table.
    pub fn identity_label(&self) -> String {
        match self.identity {
            None => "(no client cert)".into(),
            Some("partner-web") => format!("{PARTNER_FRONTEND} (partner CA)"),
            Some("partner-mint") => format!("{} (partner CA)", crate::certs::spiffe_id("frontend", "web")),
            Some(name) => IDENTITIES
                .iter()
                .find(|(n, _, _)| *n == name)
                .map(|(_, ns, sa)| crate::certs::spiffe_id(ns, sa))
                .unwrap_or_else(|| name.to_string()),
        }
    }

    /// Checks a response against the expectation; `Err` explains the mismatch.
    pub fn check(&self, resp: &Response) -> Result<()> {
        let mut problems = Vec::new();
        if resp.status != self.want_status {
            problems.push(format!("status {} != {}", resp.status, self.want_status));
        }
        let reason = resp.reason();
        if let Some(want) = self.want_reason {
            if reason.as_deref() != Some(want) {
                problems.push(format!("x-peerguard-reason {reason:?} != {want:?}"));
            }
        }
        if let Some(want) = self.want_principal {
            match resp.echo() {
                Ok(echo) => {
                    let got = echo.header(IDENTITY_HEADER);
                    if got != Some(want) {
                        problems.push(format!("upstream saw {IDENTITY_HEADER}={got:?}, want {want:?}"));
                    }
                }
                Err(e) => problems.push(format!("{e:#}")),
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(anyhow!(problems.join("; ")))
        }
    }
}

/// The federation demo's cases ([`Stack::federation`]), in table order.
pub fn federation_cases() -> Vec<Case> {
    let case = |name, identity, want_status, want_reason, want_principal| Case {
        name,
        identity: Some(identity),
        method: "GET",
        path: "/api/items",
        headers: &[],
        want_status,
        want_reason,
        want_principal,
    };
    vec![
        case(
            "federation: the local frontend, local CA",
            "frontend",
            200,
            None,
            Some("cluster.local/ns/frontend/sa/web"),
        ),
        case(
            "federation: the partner's frontend, partner CA",
            "partner-web",
            200,
            None,
            Some("partner.example/ns/web/sa/frontend"),
        ),
        case("federation: the partner CA mints a cluster.local ID", "partner-mint", 403, Some("untrusted_chain"), None),
    ]
}

/// The demo cases, in table order.
pub fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "frontend reads the API",
            identity: Some("frontend"),
            method: "GET",
            path: "/api/items",
            headers: &[],
            want_status: 200,
            want_reason: None,
            want_principal: Some("cluster.local/ns/frontend/sa/web"),
        },
        Case {
            name: "other namespace is not allowed",
            identity: Some("other"),
            method: "GET",
            path: "/api/items",
            headers: &[],
            want_status: 403,
            want_reason: Some("no_matching_allow"),
            want_principal: None,
        },
        Case {
            name: "admin paths are denied to everyone",
            identity: Some("frontend"),
            method: "GET",
            path: "/api/admin/users",
            headers: &[],
            want_status: 403,
            want_reason: Some("denied_by_policy"),
            want_principal: None,
        },
        Case {
            name: "no client certificate under strict mTLS",
            identity: None,
            method: "GET",
            path: "/api/items",
            headers: &[],
            want_status: 403,
            want_reason: Some("no_peer_certificate"),
            want_principal: None,
        },
        Case {
            name: "forged identity header is replaced",
            identity: Some("frontend"),
            method: "GET",
            path: "/api/items",
            headers: &[(IDENTITY_HEADER, "cluster.local/ns/admin/sa/root")],
            want_status: 200,
            want_reason: None,
            want_principal: Some("cluster.local/ns/frontend/sa/web"),
        },
    ]
}
