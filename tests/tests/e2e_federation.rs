//! Trust domains in a real Envoy over real mTLS: `trustBundles` keeps a partner's CA to the
//! partner's trust domain (its `spiffe://cluster.local/...` is `untrusted_chain`), a bundle given
//! as the SPIFFE bundle that `peerguard cert ca --trust-domain` writes works, and a
//! `*.partner.example` alias admits `eu.partner.example` as the main trust domain but not
//! `evil-partner.example`.
//!
//! The listener uses `trust_chain_verification: ACCEPT_UNTRUSTED` and trusts both CAs, so every
//! certificate reaches the filter and the filter's chain check decides, as with SPIFFE federation
//! where the proxy holds several trust domains' roots. Fails (never skips) without Envoy or the
//! wasm.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::path::{Path, PathBuf};

use peerguard_cli::cert::{run, CaArgs, CertCommand, IssueArgs, KeyType, Usage};
use peerguard_e2e::client::{Client, Request, Response};
use peerguard_e2e::envoy::{Envoy, EnvoyConfig, ListenerTls};
use peerguard_e2e::upstream::EchoServer;
use serde_json::json;

/// `peerguard cert ca` into `dir` as `<name>.pem`, for `trust_domain` (which also writes its
/// SPIFFE bundle, `<name>-bundle.json`).
fn ca(dir: &Path, name: &str, trust_domain: Option<&str>) {
    run(&CertCommand::Ca(CaArgs {
        out_dir: dir.to_path_buf(),
        name: name.to_owned(),
        cn: format!("{name} root"),
        org: trust_domain.unwrap_or("cluster.local").to_owned(),
        ttl: "24h".to_owned(),
        key_type: KeyType::EcdsaP256,
        issuer: None,
        issuer_key: None,
        istio_cacerts: false,
        trust_domain: trust_domain.map(str::to_owned),
    }))
    .unwrap();
}

/// `peerguard cert issue` of `<name>.pem` by `ca`, with a SPIFFE ID (or, for the server, the
/// DNS name localhost).
fn issue(dir: &Path, ca: &str, name: &str, spiffe: Option<&str>) {
    run(&CertCommand::Issue(IssueArgs {
        ca: dir.join(format!("{ca}.pem")),
        ca_key: dir.join(format!("{ca}-key.pem")),
        out_dir: dir.to_path_buf(),
        name: name.to_owned(),
        spiffe: spiffe.map(str::to_owned),
        workload: None,
        trust_domain: "cluster.local".to_owned(),
        dns: if spiffe.is_none() { vec!["localhost".to_owned()] } else { Vec::new() },
        ip: Vec::new(),
        cn: None,
        org: None,
        ttl: "1h".to_owned(),
        key_type: KeyType::EcdsaP256,
        usage: if spiffe.is_none() { Usage::Server } else { Usage::Client },
        k8s_secret: false,
        secret_name: None,
        namespace: None,
    }))
    .unwrap();
}

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap()
}

struct Stack {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    envoy: Envoy,
    upstream: EchoServer,
}

impl Stack {
    fn send(&self, identity: &str) -> Response {
        let d = &self.dir;
        let client = Client::mtls(
            &d.join("local.pem"),
            &d.join(format!("{identity}.pem")),
            &d.join(format!("{identity}-key.pem")),
        )
        .unwrap();
        client.send(self.envoy.port(), &Request::get("/api/items")).unwrap()
    }

    fn expect(&self, identity: &str, status: u16, reason: Option<&str>, principal: Option<&str>) {
        let resp = self.send(identity);
        assert_eq!(
            (resp.status, resp.reason().as_deref()),
            (status, reason),
            "{identity}: body {:?}\nenvoy log tail:\n{}",
            resp.body_text(),
            self.envoy.log_tail(30)
        );
        if status == 200 {
            assert_eq!(resp.echo().unwrap().header("x-peerguard-principal"), principal, "{identity}");
        }
    }
}

fn stack() -> Stack {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    ca(&dir, "local", Some("cluster.local"));
    ca(&dir, "partner", Some("partner.example"));
    issue(&dir, "local", "server", None);
    issue(&dir, "local", "admin", Some("spiffe://cluster.local/ns/prod/sa/admin"));
    issue(&dir, "partner", "partner-billing", Some("spiffe://partner.example/ns/billing/sa/api"));
    // The attack: the partner's CA signs an identity of the local trust domain.
    issue(&dir, "partner", "mint", Some("spiffe://cluster.local/ns/prod/sa/admin"));
    issue(&dir, "partner", "eu-billing", Some("spiffe://eu.partner.example/ns/billing/sa/api"));
    issue(&dir, "partner", "evil-billing", Some("spiffe://evil-partner.example/ns/billing/sa/api"));
    let both = dir.join("client-cas.pem");
    std::fs::write(&both, format!("{}{}", read(&dir, "local.pem"), read(&dir, "partner.pem"))).unwrap();

    let partner_pem = read(&dir, "partner.pem");
    let policy = json!({
        "certificate": {"trustBundles": {
            "cluster.local": [read(&dir, "local.pem")],
            "partner.example": [read(&dir, "partner-bundle.json")],
            "eu.partner.example": [partner_pem],
            "evil-partner.example": [partner_pem],
        }},
        "trustDomainAliases": ["*.partner.example"],
        "policies": [
            {"name": "admin", "rules": [{"from": [{"source": {"principals": ["cluster.local/ns/prod/sa/admin"]}}]}]},
            {"name": "billing", "rules": [{"from": [{"source": {"principals": ["cluster.local/ns/billing/sa/api", "partner.example/ns/billing/sa/api"]}}]}]},
        ],
        "denyResponse": {"exposeReason": true},
    });
    let upstream = EchoServer::start().unwrap();
    let tls = ListenerTls {
        server_cert: dir.join("server.pem"),
        server_key: dir.join("server-key.pem"),
        trusted_ca: both,
        require_client_certificate: true,
    };
    let config = EnvoyConfig::new(upstream.port(), Some(tls))
        .with_policy(&policy.to_string())
        .with_accept_untrusted_client_certs();
    let envoy = Envoy::start(&config, &dir).unwrap();
    Stack { _tmp: tmp, dir, envoy, upstream }
}

#[test]
fn each_trust_domain_is_vouched_for_only_by_its_own_bundle_in_envoy() {
    let s = stack();
    s.expect("admin", 200, None, Some("cluster.local/ns/prod/sa/admin"));
    // Same SPIFFE ID, same listener, a chain that verifies: but to the partner's anchor.
    s.expect("mint", 403, Some("untrusted_chain"), None);
    // The partner's own identity, verified with the SPIFFE bundle from `peerguard cert ca`.
    s.expect("partner-billing", 200, None, Some("partner.example/ns/billing/sa/api"));
    // *.partner.example: matched as the main trust domain; a lookalike is not under it.
    s.expect("eu-billing", 200, None, Some("cluster.local/ns/billing/sa/api"));
    s.expect("evil-billing", 403, Some("no_matching_allow"), None);
    assert_eq!(s.upstream.count(), 3, "only the allowed requests reach the upstream");
    // Again, from the certificate cache: the same answers.
    s.expect("mint", 403, Some("untrusted_chain"), None);
    s.expect("admin", 200, None, Some("cluster.local/ns/prod/sa/admin"));
}

#[test]
fn the_demo_federation_cases_answer_as_the_demo_table_says() {
    use peerguard_e2e::demo::{federation_cases, Stack as DemoStack};
    let stack = DemoStack::federation(None).unwrap();
    for case in federation_cases() {
        let resp = stack.send(case.identity, &case.request()).unwrap();
        case.check(&resp).unwrap_or_else(|e| panic!("{}: {e:#}\n{}", case.name, stack.envoy.log_tail(30)));
    }
}
