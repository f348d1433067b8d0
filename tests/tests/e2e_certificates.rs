//! Certificate policy in a real Envoy: expired, revoked, wrong issuer, untrusted chain and the
//! per-route admin rule are denied with their reason, and a healthy certificate passes.
//!
//! The listener uses `trust_chain_verification: ACCEPT_UNTRUSTED`, so Envoy's handshake lets
//! every client certificate through (even expired or from an unknown CA) and the filter's own
//! checks decide. Fails (never skips) without Envoy or the wasm.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::path::{Path, PathBuf};
use std::time::Duration;

use peerguard_certkit::{spiffe_id, Ca, CaSpec, CrlSpec, DnType, Leaf, RevocationReason, SerialNumber};
use peerguard_e2e::client::{Client, Request, Response};
use peerguard_e2e::envoy::{Envoy, EnvoyConfig, ListenerTls};
use peerguard_e2e::upstream::EchoServer;
use time::OffsetDateTime;

const REVOKED_SERIAL: u64 = 0x5001;

/// A root CA `CN=<cn>,O=cluster.local` from the certificate factory, valid from a day ago for a year.
fn ca(cn: &str) -> Ca {
    let subject = vec![(DnType::OrganizationName, "cluster.local".to_owned()), (DnType::CommonName, cn.to_owned())];
    let day = Duration::from_secs(86_400);
    Ca::self_signed(&CaSpec::around_now(subject, day, 365 * day)).unwrap()
}

/// Writes `<name>.pem` and `<name>-key.pem`, valid from `from` to `to` seconds around now: the
/// server's for `localhost`, a client's for `spiffe://cluster.local/ns/default/sa/<name>`.
fn leaf(dir: &Path, ca: &Ca, name: &str, serial: u64, from: i64, to: i64, server: bool) -> (PathBuf, PathBuf) {
    let now = OffsetDateTime::now_utc();
    let spec = if server { Leaf::server() } else { Leaf::client().cn(name).uri(&spiffe_id("default", name)) };
    let spec = spec.serial(serial).validity(now + time::Duration::seconds(from), now + time::Duration::seconds(to));
    ca.issue(&spec).unwrap().write(dir, name).unwrap()
}

/// A CRL revoking `revoked` (key compromise, a minute ago), from an hour ago for a day.
fn crl(ca: &Ca, revoked: &[u64]) -> String {
    let now = OffsetDateTime::now_utc();
    let mut spec = CrlSpec::new(now - Duration::from_secs(3600), now + Duration::from_secs(86_400));
    for s in revoked {
        spec =
            spec.revoke(SerialNumber::from(*s), now - Duration::from_secs(60), Some(RevocationReason::KeyCompromise));
    }
    ca.crl(&spec).unwrap()
}

struct Stack {
    _dir: tempfile::TempDir,
    dir: PathBuf,
    root_pem: PathBuf,
    envoy: Envoy,
    upstream: EchoServer,
    root: Ca,
}

impl Stack {
    fn send(&self, identity: &str, path: &str) -> Response {
        let client = Client::mtls(
            &self.root_pem,
            &self.dir.join(format!("{identity}.pem")),
            &self.dir.join(format!("{identity}-key.pem")),
        )
        .unwrap();
        client.send(self.envoy.port(), &Request::get(path)).unwrap()
    }

    fn expect(&self, identity: &str, path: &str, status: u16, reason: Option<&str>) {
        let resp = self.send(identity, path);
        assert_eq!(
            (resp.status, resp.reason().as_deref()),
            (status, reason),
            "{identity} {path}: body {:?}\nenvoy log tail:\n{}",
            resp.body_text(),
            self.envoy.log_tail(30)
        );
    }
}

/// Root, admin-ca and rogue-ca PKIs; Envoy trusts all three but accepts even untrusted certs.
fn stack() -> Stack {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let root = ca("peerguard e2e root");
    let admin = ca("admin-ca");
    let rogue = ca("rogue-ca");
    // Same name as the root, another key: passes `issuers`, fails the chain.
    let impostor = ca("peerguard e2e root");
    let hour = 3600;
    leaf(&dir, &root, "server", 0x4000, -hour, hour, true);
    leaf(&dir, &root, "healthy", 0x5000, -hour / 2, hour / 2, false);
    leaf(&dir, &root, "revoked", REVOKED_SERIAL, -hour / 2, hour / 2, false);
    leaf(&dir, &root, "expired", 0x5002, -2 * hour, -hour, false);
    leaf(&dir, &root, "day", 0x5003, -12 * hour, 12 * hour, false);
    leaf(&dir, &admin, "admin", 0x5004, -hour / 2, hour / 2, false);
    leaf(&dir, &rogue, "rogue", 0x5005, -hour / 2, hour / 2, false);
    leaf(&dir, &impostor, "impostor", 0x5006, -hour / 2, hour / 2, false);
    let root_pem = dir.join("root.pem");
    std::fs::write(&root_pem, root.cert_pem()).unwrap();
    let bundle = dir.join("client-cas.pem");
    std::fs::write(&bundle, format!("{}{}{}", root.cert_pem(), admin.cert_pem(), rogue.cert_pem())).unwrap();

    let policy = serde_json::json!({
        "certificate": {
            "maxLifetime": "24h",
            "issuers": ["CN=peerguard e2e root,*", "CN=admin-ca,*"],
            "trustAnchors": [root.cert_pem(), admin.cert_pem()],
            "crls": [crl(&root, &[REVOKED_SERIAL]), crl(&admin, &[])],
            "revocation": {"depth": "leaf", "unknownStatus": "deny"},
        },
        "certificateRules": [{
            "name": "admin-needs-short-lived",
            "to": [{"operation": {"paths": ["/admin/*"]}}],
            "require": {"maxLifetime": "1h", "issuers": ["CN=admin-ca*"]},
        }],
        "denyResponse": {"exposeReason": true},
    });
    let upstream = EchoServer::start().unwrap();
    let tls = ListenerTls {
        server_cert: dir.join("server.pem"),
        server_key: dir.join("server-key.pem"),
        trusted_ca: bundle,
        require_client_certificate: true,
    };
    let config = EnvoyConfig::new(upstream.port(), Some(tls))
        .with_policy(&policy.to_string())
        .with_accept_untrusted_client_certs();
    let envoy = Envoy::start(&config, &dir).unwrap();
    Stack { _dir: tmp, dir, root_pem, envoy, upstream, root }
}

#[test]
fn certificate_policy_is_enforced_by_the_filter_in_envoy() {
    let s = stack();
    s.expect("healthy", "/api/items", 200, None);
    s.expect("expired", "/api/items", 403, Some("expired"));
    s.expect("revoked", "/api/items", 403, Some("revoked"));
    s.expect("rogue", "/api/items", 403, Some("issuer_not_allowed"));
    s.expect("impostor", "/api/items", 403, Some("untrusted_chain"));
    // Per route: /admin/* needs admin-ca and at most 1h; the rest accepts 24h from the root.
    s.expect("day", "/api/items", 200, None);
    s.expect("day", "/admin/users", 403, Some("lifetime_too_long"));
    s.expect("healthy", "/admin/users", 403, Some("issuer_not_allowed"));
    s.expect("admin", "/admin/users", 200, None);
    assert_eq!(s.upstream.count(), 3, "only the allowed requests reach the upstream");
    // The same certificate twice: the second decision comes from the cache and agrees.
    s.expect("revoked", "/api/other", 403, Some("revoked"));
    s.expect("healthy", "/api/other", 200, None);
}

/// The filter reads the clock on its root context's one-second tick, not per request
/// (docs/policy.md "Certificates and revocation", "The clock"): the reading must never be more than 2 s
/// stale. A leaf that expires a few seconds from now passes, then, 3 s after its `notAfter`
/// second (2 s of staleness plus the second itself), is `expired` on the same cached
/// certificate: a clock that stopped (no tick without CRL sources) or lagged would still allow it.
#[test]
fn the_tick_clock_expires_a_certificate_within_two_seconds() {
    let s = stack();
    let now = OffsetDateTime::now_utc();
    let not_after = now.unix_timestamp() + 3;
    let spec = Leaf::client()
        .cn("short")
        .uri(&spiffe_id("default", "short"))
        .serial(0x5100)
        .validity(now - time::Duration::minutes(5), OffsetDateTime::from_unix_timestamp(not_after).unwrap());
    s.root.issue(&spec).unwrap().write(&s.dir, "short").unwrap();
    s.expect("short", "/api/items", 200, None);
    let deadline = std::time::UNIX_EPOCH + Duration::from_secs(u64::try_from(not_after + 3).unwrap());
    // Requests keep the prepared certificate in the filter's cache until the deadline.
    while std::time::SystemTime::now() < deadline {
        let status = s.send("short", "/api/items").status;
        let wall = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        assert!(status == 200 || i64::try_from(wall).unwrap() > not_after, "{status} at {wall} (notAfter {not_after})");
        std::thread::sleep(Duration::from_millis(200));
    }
    s.expect("short", "/api/items", 403, Some("expired"));
}
