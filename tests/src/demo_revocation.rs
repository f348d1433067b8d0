//! The demo's revocation case: a CRL source (docs/policy.md "CRL sources") served from loopback, and a client refused once the served CRL lists it, without a policy reload.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::certs::{DemoCa, LeafSpec};
use crate::client::{Client, Request, Response};
use crate::crl_server::CrlServer;
use crate::envoy::{Envoy, EnvoyConfig, ListenerTls};
use crate::upstream::EchoServer;

/// One step of the revocation demo and its result.
#[derive(Debug, Clone)]
pub struct Step {
    pub name: &'static str,
    pub identity: String,
    pub status: u16,
    pub reason: Option<String>,
    /// `Ok` when the step did what the demo promises.
    pub result: Result<(), String>,
}

/// A CRL signed by the demo CA that revokes the certificates in `revoke` (paths), made as an
/// operator would with `peerguard crl make`.
fn crl(ca: &DemoCa, revoke: &[&std::path::Path], number: u64) -> Result<Vec<u8>> {
    use peerguard_cli::crl::{run, CrlCommand, MakeArgs};
    let args = MakeArgs {
        ca: ca.cert_path.clone(),
        ca_key: ca.dir().join("ca-key.pem"),
        revoke: Vec::new(),
        revoke_cert: revoke.iter().map(|p| p.to_path_buf()).collect(),
        number: Some(number),
        next_update: "1h".into(),
        out: None,
    };
    Ok(run(&CrlCommand::Make(args)).map_err(|e| anyhow::anyhow!("{e}"))?.into_bytes())
}

/// Runs the revocation demo in its own Envoy: `frontend` and `batch` are served, the CRL
/// server starts listing `batch`, and within one refresh (1 s) `batch` is refused `revoked`
/// while `frontend` is still served.
pub fn run(timeout: Duration) -> Result<Vec<Step>> {
    let dir = tempfile::Builder::new().prefix("peerguard-demo-crl-").tempdir().context("create temp dir")?;
    let ca = DemoCa::create(dir.path())?;
    let server = ca.issue("server", &LeafSpec::server())?;
    let frontend = ca.issue("frontend", &LeafSpec::workload("frontend", "web"))?;
    let batch = ca.issue("batch", &LeafSpec::workload("other", "batch"))?;
    let mut crl_server = CrlServer::start(&crl(&ca, &[], 1)?)?;
    let upstream = EchoServer::start()?;
    let policy = serde_json::json!({
        "certificate": {
            "trustAnchors": [ca.cert_pem],
            "crlSources": [{"name": "demo-ca", "cluster": "route-crl", "path": "/ca.crl", "refresh": "1s", "maxStale": "1m"}],
            "revocation": {"unknownStatus": "deny"},
        },
        "denyResponse": {"status": 403, "body": "access denied", "exposeReason": true},
    });
    let tls = ListenerTls {
        server_cert: server.cert_path.clone(),
        server_key: server.key_path.clone(),
        trusted_ca: ca.cert_path.clone(),
        require_client_certificate: true,
    };
    // The extra route's cluster, route-crl, is the CRL server; nothing is routed to it.
    let cfg = EnvoyConfig::new(upstream.port(), Some(tls))
        .with_route("crl", "/__crl-server-not-routed", crl_server.port())
        .with_policy(&policy.to_string())
        .with_timeout(timeout);
    let envoy = Envoy::start(&cfg, dir.path())?;
    let client = |who: &crate::certs::Issued| Client::mtls(&ca.cert_path, &who.cert_path, &who.key_path);
    let (frontend_client, batch_client) = (client(&frontend)?, client(&batch)?);
    let send = |c: &Client| -> Result<Response> { c.send(envoy.port(), &Request::get("/api/items")) };
    // Until the first CRL is fetched every status is unknown (unknownStatus: deny).
    let start = Instant::now();
    while send(&batch_client)?.status != 200 {
        if start.elapsed() > Duration::from_secs(10) {
            bail!("the first CRL was not in force after 10 s; envoy log:\n{}", envoy.log_tail(20));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let step = |name, identity: &str, resp: &Response, want: (u16, Option<&str>)| {
        let got = (resp.status, resp.reason());
        Step {
            name,
            identity: identity.to_owned(),
            status: got.0,
            reason: got.1.clone(),
            result: if (got.0, got.1.as_deref()) == want { Ok(()) } else { Err(format!("want {want:?}")) },
        }
    };
    let batch_id = crate::certs::spiffe_id("other", "batch");
    let frontend_id = crate::certs::spiffe_id("frontend", "web");
    let mut steps =
        vec![step("revocation: served while the CRL lists nothing", &batch_id, &send(&batch_client)?, (200, None))];
    crl_server.serve(&crl(&ca, &[&batch.cert_path], 2)?);
    let start = Instant::now();
    let mut resp = send(&batch_client)?;
    while resp.status == 200 && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(100));
        resp = send(&batch_client)?;
    }
    let name = "revocation: refused once the served CRL lists it (refresh 1s)";
    let mut s = step(name, &batch_id, &resp, (403, Some("revoked")));
    if s.result.is_ok() {
        s.result =
            if start.elapsed() <= Duration::from_secs(2) { Ok(()) } else { Err(format!("took {:?}", start.elapsed())) };
    }
    steps.push(s);
    steps.push(step("revocation: another client is still served", &frontend_id, &send(&frontend_client)?, (200, None)));
    crl_server.stop();
    Ok(steps)
}
