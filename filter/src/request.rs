//! Per-request glue: gather facts from the host, ask the engine, apply the decision.

use std::cell::RefCell;
use std::rc::Rc;

use peerguard_policy::{
    path, resolve_peer, xfcc, CertCache, ConfigErrors, Decision, Engine, Peer, PeerAttributes, PeerEvidence,
    PreparedCert, Proxy, Reason, RequestSource, ResolvedPeer, Verdict as Outcome, LINKERD_CLIENT_ID_HEADER,
};

use crate::audit::{audit_line, suppressed_line, AuditLimiter, AuditRequest};
use crate::host::Host;
use crate::metrics::Counters;

/// Prepared certificates kept per worker.
pub const CERT_CACHE_CAPACITY: usize = 4096;

/// The header that carries the reason when `exposeReason` is set, and always for `config_invalid`.
pub const REASON_HEADER: &str = "x-peerguard-reason";

/// Header used when the configuration is invalid and so names no identity header.
pub const DEFAULT_IDENTITY_HEADER: &str = "x-peerguard-principal";

/// Everything a worker shares between requests: the compiled policy (or why there is none),
/// the certificate cache, the counters and the audit limiter.
pub struct Worker {
    /// The compiled policy, or the errors of the last configuration.
    pub engine: Result<Engine, ConfigErrors>,
    /// Prepared certificates by connection digest; replaced on every reload.
    pub cache: RefCell<CertCache>,
    /// Peers known only by Envoy's attributes, by connection digest (see [`AttributeCache`]).
    pub attributes: RefCell<AttributeCache>,
    /// Envoy stats.
    pub counters: Rc<Counters>,
    /// Audit rate limit.
    pub audit: Rc<RefCell<AuditLimiter>>,
    /// Ignore `connection.peer_certificate`, as an Envoy older than 1.38 would (VM option).
    pub ignore_peer_certificate_attribute: bool,
    /// Per-identity peer certificate expiry (shared with whatever reports it: the Wasm root
    /// context, or the native build's config tick).
    pub expiry: Rc<dyn crate::expiry::ExpiryObserver>,
    /// The host clock as the root context last read it (docs/policy.md "Certificates and revocation").
    pub clock: Rc<Clock>,
}

/// The attributes of peers whose certificate Envoy does not give (the native build without
/// `cert` in XFCC, an older Envoy), by connection digest. They are facts of the certificate, so
/// the same digest always has the same attributes; caching them saves four host calls and an
/// XFCC read per request. `several_spiffe_uris` comes from the first request's XFCC: only the
/// connection's own client can add an element with its digest, and Envoy's own element always
/// lists every URI SAN, so a second SPIFFE ID is never missed, and a forged element can only
/// make the client ambiguous to itself.
#[derive(Debug, Default)]
pub struct AttributeCache(std::collections::HashMap<String, Rc<PeerAttributes>>);

impl AttributeCache {
    /// The cached attributes of `digest`.
    pub fn get(&self, digest: &str) -> Option<Rc<PeerAttributes>> {
        self.0.get(digest).cloned()
    }

    /// Caches `attrs` for `digest`; when full, it starts over (at most [`CERT_CACHE_CAPACITY`]).
    pub fn insert(&mut self, digest: String, attrs: PeerAttributes) -> Rc<PeerAttributes> {
        if self.0.len() >= CERT_CACHE_CAPACITY {
            self.0.clear();
        }
        let attrs = Rc::new(attrs);
        self.0.insert(digest, attrs.clone());
        attrs
    }
}

/// The host clock in Unix seconds, read by the root context on configure and on every tick
/// (once a second) rather than by every request: certificate times have one-second resolution,
/// so a reading at most one tick old (never more than 2 s) decides the same, one host call fewer
/// per request.
#[derive(Debug, Default)]
pub struct Clock(std::cell::Cell<i64>);

impl Clock {
    /// A clock showing `now`.
    pub fn at(now: i64) -> Clock {
        Clock(std::cell::Cell::new(now))
    }
    /// The last reading.
    pub fn now(&self) -> i64 {
        self.0.get()
    }
    /// Stores a new reading from the host.
    pub fn set(&self, now: i64) {
        self.0.set(now);
    }
}

/// The request as Envoy holds it; the engine asks for each attribute only when a rule reads it.
/// Non-UTF-8 bytes in header values are replaced (U+FFFD), so a prefix such as `admin*` still
/// matches `admin\xff`, never failing open by turning into "absent".
struct HostRequest<'h>(&'h dyn Host);

impl RequestSource for HostRequest<'_> {
    fn method(&self) -> Option<String> {
        text(self.0.request_header(":method"))
    }
    fn path(&self) -> Option<String> {
        text(self.0.request_header(":path"))
    }
    fn authority(&self) -> Option<String> {
        text(self.0.request_header(":authority"))
    }
    fn destination_port(&self) -> Option<u32> {
        port_property(self.0.property(&["destination", "port"]))
    }
    fn sni(&self) -> Option<String> {
        text(self.0.property(&["connection", "requested_server_name"]))
    }
    fn header_values(&self, name: &str) -> Vec<String> {
        self.0.request_header_values(name).into_iter().filter_map(|v| text(Some(v))).collect()
    }
}

fn text(bytes: Option<Vec<u8>>) -> Option<String> {
    bytes.map(|b| match String::from_utf8(b) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    })
}

/// The filter state key an Istio waypoint keeps the HBONE client's URI SAN under (set from
/// `%DOWNSTREAM_PEER_URI_SAN%` on the CONNECT-terminating listener, shared with the internal
/// listener the filter runs on).
pub const WAYPOINT_PEER_PRINCIPAL: &str = "io.istio.peer_principal";

/// The peer at an ambient waypoint: the SPIFFE ID the waypoint's own TLS handshake with the
/// client's ztunnel verified, never a header. Absent, empty, `-` (what Envoy's formatter writes
/// for a certificate without a URI SAN), or more than one URI SAN (Envoy joins them with `,`) is
/// no peer: fail closed with `no_peer_certificate` under `mtls: strict`.
fn waypoint_peer(host: &dyn Host) -> PeerLookup {
    match text(host.property(&["filter_state", WAYPOINT_PEER_PRINCIPAL])) {
        Some(uri) if !uri.is_empty() && uri != "-" && !uri.contains(',') => {
            PeerLookup::Attributes(Rc::new(PeerAttributes {
                uri_san: Some(uri),
                dns_san: None,
                subject: None,
                several_spiffe_uris: false,
            }))
        }
        _ => PeerLookup::None,
    }
}

/// Behind Linkerd (docs/policy.md "Behind Linkerd"): `l5d-client-id` is the peer only on a
/// connection from a listed linkerd-proxy. From anywhere else the header is removed, so that the
/// upstream never sees a client's own copy either, and the request has no principal. The
/// connection's certificate attributes are never read: Envoy's downstream is the proxy.
fn linkerd_peer(engine: &Engine, host: &dyn Host) -> PeerLookup {
    let from_proxy = text(host.property(&["source", "address"])).is_some_and(|a| engine.is_linkerd_proxy(&a));
    let values: Vec<String> =
        host.request_header_values(LINKERD_CLIENT_ID_HEADER).into_iter().filter_map(|v| text(Some(v))).collect();
    if !from_proxy {
        if !values.is_empty() {
            host.set_request_header(LINKERD_CLIENT_ID_HEADER, None);
        }
        return PeerLookup::None;
    }
    if values.is_empty() {
        PeerLookup::None
    } else {
        PeerLookup::LinkerdClientId(values)
    }
}

fn port_property(bytes: Option<Vec<u8>>) -> Option<u32> {
    let b = bytes?;
    let arr: [u8; 8] = b.get(..8)?.try_into().ok()?;
    u32::try_from(u64::from_le_bytes(arr)).ok()
}

/// The outcome the filter applies.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Continue to the upstream.
    Continue,
    /// A local reply was sent.
    Replied,
}

/// What the peer certificate looks like once looked up.
enum PeerLookup {
    None,
    Unparseable,
    Attributes(Rc<PeerAttributes>),
    Certificate(Rc<PreparedCert>),
    /// `identity: [linkerdHeader]`: every copy of `l5d-client-id`, from a listed proxy.
    LinkerdClientId(Vec<String>),
}

impl Worker {
    /// Handles request headers: strip the identity header, decide, then reply or annotate.
    pub fn on_request_headers(&self, host: &dyn Host) -> Verdict {
        let engine = match &self.engine {
            Ok(e) => e,
            Err(_) => {
                host.set_request_header(DEFAULT_IDENTITY_HEADER, None);
                self.counters.denied(host, Reason::ConfigInvalid);
                host.send_response(
                    503,
                    &[(REASON_HEADER, Reason::ConfigInvalid.code())],
                    b"peerguard: policy configuration invalid (config_invalid)\n",
                );
                return Verdict::Replied;
            }
        };
        let now = self.clock.now();
        let peer = self.lookup_peer(engine, host, now);
        let req = HostRequest(host);
        let decision = match &peer {
            PeerLookup::None => engine.decide(&req, &Peer::None, now),
            PeerLookup::Unparseable => engine.decide(&req, &Peer::Unparseable, now),
            PeerLookup::Attributes(a) => engine.decide(&req, &Peer::Attributes(a), now),
            PeerLookup::Certificate(p) => engine.decide(&req, &Peer::Certificate(p), now),
            PeerLookup::LinkerdClientId(v) => engine.decide(&req, &Peer::LinkerdClientId(v), now),
        };
        let cert = match &peer {
            PeerLookup::Certificate(p) => Some(p.as_ref()),
            _ => None,
        };
        self.observe(host, &decision, cert, now);
        // The expiry gauges report the clients this service serves (allowed, or let through by
        // dry run), not the ones it refuses.
        if let (Some(p), Some(principal), true) = (cert, decision.principal(), decision.allowed()) {
            self.expiry.observe(principal, p.facts.not_after, now);
        }

        let reason = match decision.verdict {
            Outcome::Deny(reason) => reason,
            Outcome::Allow | Outcome::WouldDeny(_) => {
                Self::forward(engine, host, &decision);
                return Verdict::Continue;
            }
        };
        let resp = engine.deny_response();
        // A path with no normal form is a bad request, whatever the configured deny status.
        let status = if reason == Reason::InvalidPath { 400 } else { u32::from(resp.status) };
        if resp.expose_reason {
            let body = format!("{}: {}\n", resp.body, reason.code());
            host.send_response(status, &[(REASON_HEADER, reason.code())], body.as_bytes());
        } else {
            let body = format!("{}\n", resp.body);
            host.send_response(status, &[], body.as_bytes());
        }
        Verdict::Replied
    }

    /// An allowed request (or a would-deny) goes on: the verified identity header, and the path
    /// in the form the rules matched.
    fn forward(engine: &Engine, host: &dyn Host, decision: &Decision) {
        // Clients must never supply their own identity header. A replace drops every copy the
        // client sent and sets the verified principal in one host call; without a principal the
        // header is removed. A denied request never reaches the upstream.
        host.set_request_header(engine.identity_header(), decision.principal());
        // The upstream must receive exactly the path the rules matched. Envoy clears the route
        // cache when a module of ABI 0.2.1 replaces a request header, so the route is chosen
        // again on the path that is sent (tests/tests/e2e_paths_headers.rs checks it).
        if let Some(p) = &decision.path_rewrite {
            host.set_request_header(":path", Some(p));
        }
    }

    fn lookup_peer(&self, engine: &Engine, host: &dyn Host, now: i64) -> PeerLookup {
        if engine.proxy() == Proxy::Waypoint {
            return waypoint_peer(host);
        }
        if engine.linkerd_header() {
            return linkerd_peer(engine, host);
        }
        let digest = match text(host.property(&["connection", "sha256_peer_certificate_digest"])) {
            // Envoy gives lower-case hex; only a differently written digest pays for a copy.
            Some(d) if !d.is_empty() && !d.bytes().any(|b| b.is_ascii_uppercase()) => d,
            Some(d) if !d.is_empty() => d.to_ascii_lowercase(),
            _ => return PeerLookup::None,
        };
        if let Some(p) = self.cache.borrow_mut().get(&digest, now) {
            return PeerLookup::Certificate(p);
        }
        if let Some(a) = self.attributes.borrow().get(&digest) {
            return PeerLookup::Attributes(a);
        }
        // Envoy 1.38+ gives the leaf; older Envoys only through XFCC, bound by digest. Which
        // evidence to trust is decided by the engine (peer.rs), the same for the CLI.
        let from_envoy = if self.ignore_peer_certificate_attribute {
            None
        } else {
            host.property(&["connection", "peer_certificate"])
        };
        let xfcc = text(host.request_header("x-forwarded-client-cert"));
        let evidence = PeerEvidence {
            digest: Some(&digest),
            certificate_pem: from_envoy.as_deref(),
            xfcc: xfcc.as_deref(),
            presented_chain: Vec::new(),
        };
        match resolve_peer(evidence) {
            ResolvedPeer::Certificate { facts, chain } => {
                let prepared = engine.prepare(*facts, &chain, now);
                self.expiry.certificate_seen(prepared.facts.not_after, now);
                PeerLookup::Certificate(self.cache.borrow_mut().insert(digest, prepared))
            }
            ResolvedPeer::AttributesOnly => {
                let attrs = PeerAttributes {
                    uri_san: text(host.property(&["connection", "uri_san_peer_certificate"])),
                    dns_san: text(host.property(&["connection", "dns_san_peer_certificate"])),
                    subject: text(host.property(&["connection", "subject_peer_certificate"])),
                    // The attributes give the first URI SAN only; Envoy's own XFCC element lists
                    // them all (docs/policy.md "Where the certificate comes from").
                    several_spiffe_uris: xfcc.as_deref().is_some_and(|h| xfcc::several_spiffe_uris(h, &digest)),
                };
                PeerLookup::Attributes(self.attributes.borrow_mut().insert(digest, attrs))
            }
            ResolvedPeer::Unparseable(e) => {
                log::warn!("peerguard: peer certificate does not parse: {e}");
                PeerLookup::Unparseable
            }
        }
    }

    /// Counters and audit lines. An audit line fetches `:method`, `:path` and `:authority`
    /// itself: only denies and audit matches pay for them.
    fn observe(&self, host: &dyn Host, d: &Decision, cert: Option<&PreparedCert>, now: i64) {
        let c = &self.counters;
        if d.expiring {
            c.cert_expiring(host);
        }
        let label = match d.verdict {
            // Dry run lets the request through: it is both allowed and a would-deny, so that
            // allowed + denied always adds up to the requests decided.
            Outcome::WouldDeny(r) => {
                c.allowed(host);
                c.would_deny(host, r);
                Some("would_deny")
            }
            Outcome::Allow => {
                c.allowed(host);
                None
            }
            Outcome::Deny(r) => {
                c.denied(host, r);
                Some("deny")
            }
        };
        if let Some(p) = &d.policy {
            c.policy_matched(host, p);
        }
        for p in &d.audit {
            c.audit(host);
            c.policy_matched(host, p);
        }
        if label.is_none() && d.audit.is_empty() {
            return;
        }
        let fetch = |name: &str| text(host.request_header(name)).unwrap_or_default();
        let (method, authority) = (fetch(":method"), fetch(":authority"));
        // The normalized path without the query string, which often carries tokens.
        let raw_path = fetch(":path");
        let path = path::for_log(&raw_path);
        let request_id = text(host.request_header("x-request-id"));
        let areq = AuditRequest { method: &method, path: &path, host: &authority, request_id: request_id.as_deref() };
        let mut limiter = self.audit.borrow_mut();
        let mut emit = |line: String| {
            let (ok, suppressed) = limiter.admit(now);
            if suppressed > 0 {
                log::warn!("peerguard audit: {}", suppressed_line(now, suppressed));
            }
            if ok {
                log::warn!("peerguard audit: {line}");
            }
        };
        if let Some(label) = label {
            emit(audit_line(now, label, d, d.policy.as_deref(), &areq, cert));
        }
        for p in &d.audit {
            emit(audit_line(now, "audit", d, Some(p), &areq, cert));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::collections::HashMap;

    /// A local reply: status, headers, body.
    type Reply = (u32, Vec<(String, String)>, String);

    /// A scripted host: fixed properties and headers, recording what the filter did.
    #[derive(Default)]
    struct FakeHost {
        properties: HashMap<String, Vec<u8>>,
        headers: RefCell<HashMap<String, Vec<u8>>>,
        reply: RefCell<Option<Reply>>,
        /// Host clock reads: requests must not make any (the root context's tick does).
        clock_reads: std::cell::Cell<u32>,
    }

    impl FakeHost {
        fn with_header(self, k: &str, v: &str) -> Self {
            self.headers.borrow_mut().insert(k.to_owned(), v.as_bytes().to_vec());
            self
        }
        fn with_property(mut self, k: &str, v: &[u8]) -> Self {
            self.properties.insert(k.to_owned(), v.to_vec());
            self
        }
    }

    impl Host for FakeHost {
        fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
            self.properties.get(&path.join(".")).cloned()
        }
        fn request_header(&self, name: &str) -> Option<Vec<u8>> {
            self.headers.borrow().get(name).cloned()
        }
        fn request_header_values(&self, name: &str) -> Vec<Vec<u8>> {
            self.headers.borrow().get(name).cloned().into_iter().collect()
        }
        fn set_request_header(&self, name: &str, value: Option<&str>) {
            let mut h = self.headers.borrow_mut();
            match value {
                Some(v) => h.insert(name.to_owned(), v.as_bytes().to_vec()),
                None => h.remove(name),
            };
        }
        fn send_response(&self, status: u32, headers: &[(&str, &str)], body: &[u8]) {
            let hs = headers.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
            *self.reply.borrow_mut() = Some((status, hs, String::from_utf8_lossy(body).into_owned()));
        }
        fn now_unix(&self) -> i64 {
            self.clock_reads.set(self.clock_reads.get() + 1);
            1_800_000_000
        }
        fn increment_metric(&self, _id: u32) {}
        fn define_counter(&self, _name: &str) -> Option<u32> {
            None
        }
    }

    fn worker(policy: &str) -> Worker {
        Worker {
            engine: Engine::from_json(policy),
            cache: RefCell::new(CertCache::new(8)),
            attributes: RefCell::default(),
            counters: Rc::new(Counters::default()),
            audit: Rc::new(RefCell::new(AuditLimiter::default())),
            ignore_peer_certificate_attribute: false,
            expiry: Rc::new(RefCell::new(crate::expiry::ExpiryTracker::default())),
            clock: Rc::new(Clock::at(1_800_000_000)),
        }
    }

    fn request() -> FakeHost {
        FakeHost::default()
            .with_header(":method", "GET")
            .with_header(":path", "/api/x")
            .with_header(":authority", "svc")
    }

    #[test]
    fn invalid_policy_answers_503_config_invalid_and_never_continues() {
        let w = worker(r#"{"mtls":"strict","bogus":1}"#);
        let host = request().with_header(DEFAULT_IDENTITY_HEADER, "forged");
        assert_eq!(w.on_request_headers(&host), Verdict::Replied);
        let (status, headers, _) = host.reply.borrow().clone().unwrap();
        assert_eq!(status, 503);
        assert!(headers.contains(&(REASON_HEADER.to_owned(), "config_invalid".to_owned())));
        assert!(host.request_header(DEFAULT_IDENTITY_HEADER).is_none());
    }

    #[test]
    fn attributes_only_peer_is_allowed_with_identity_header_replacing_the_forged_one() {
        let w = worker(
            r#"{"policies":[{"name":"p","action":"ALLOW","rules":[{"from":[{"source":{"principals":["td/ns/a/sa/b"]}}]}]}]}"#,
        );
        let host = request()
            .with_header("x-peerguard-principal", "td/ns/admin/sa/root")
            .with_property("connection.sha256_peer_certificate_digest", b"abcd")
            .with_property("connection.uri_san_peer_certificate", b"spiffe://td/ns/a/sa/b");
        assert_eq!(w.on_request_headers(&host), Verdict::Continue);
        assert_eq!(host.request_header("x-peerguard-principal").as_deref(), Some(&b"td/ns/a/sa/b"[..]));
    }

    #[test]
    fn waypoint_reads_only_the_hbone_principal_from_filter_state() {
        let allow_b = r#"{"proxy":"waypoint","denyResponse":{"exposeReason":true},"policies":[{"name":"p","rules":[{"from":[{"source":{"principals":["td/ns/a/sa/b"]}}]}]}]}"#;
        let w = worker(allow_b);
        let fs = "filter_state.io.istio.peer_principal";
        let host = request().with_header("x-peerguard-principal", "forged").with_property(fs, b"spiffe://td/ns/a/sa/b");
        assert_eq!(w.on_request_headers(&host), Verdict::Continue);
        assert_eq!(host.request_header("x-peerguard-principal").as_deref(), Some(&b"td/ns/a/sa/b"[..]));
        // The connection's own certificate attributes (the internal listener has none; a sidecar
        // listener would) are not the waypoint's peer.
        let host = request().with_property("connection.uri_san_peer_certificate", b"spiffe://td/ns/a/sa/b");
        assert_eq!(w.on_request_headers(&host), Verdict::Replied);
        assert!(host.reply.borrow().as_ref().unwrap().2.contains("no_peer_certificate"));
        // Two URI SANs (Envoy joins them with ','), none ('-'), or an empty value: no peer.
        for v in [&b"spiffe://td/ns/a/sa/b,spiffe://td/ns/x/sa/y"[..], b"-", b""] {
            let host = request().with_property(fs, v);
            assert_eq!(w.on_request_headers(&host), Verdict::Replied, "{v:?}");
        }
    }

    #[test]
    fn linkerd_client_id_counts_only_from_a_listed_proxy_and_is_removed_otherwise() {
        let w = worker(
            r#"{"identity":["linkerdHeader"],"mtls":"permissive","denyResponse":{"exposeReason":true},"policies":[{"name":"p","rules":[{"from":[{"source":{"principals":["cluster.local/ns/a/sa/b"]}}]}]}]}"#,
        );
        let id = "b.a.serviceaccount.identity.linkerd.cluster.local";
        let from =
            |addr: &str| request().with_header("l5d-client-id", id).with_property("source.address", addr.as_bytes());
        let host = from("127.0.0.1:50123");
        assert_eq!(w.on_request_headers(&host), Verdict::Continue);
        assert_eq!(host.request_header("x-peerguard-principal").as_deref(), Some(&b"cluster.local/ns/a/sa/b"[..]));
        assert_eq!(host.request_header("l5d-client-id").as_deref(), Some(id.as_bytes()), "the proxy's header stays");
        // Another address, an address from x-forwarded-for (port 0), or none at all.
        for addr in [Some("127.0.0.2:50123"), Some("127.0.0.1:0"), Some("10.0.0.1:4143"), None] {
            let host = match addr {
                Some(a) => from(a),
                None => request().with_header("l5d-client-id", id),
            };
            assert_eq!(w.on_request_headers(&host), Verdict::Replied, "{addr:?}");
            assert!(host.reply.borrow().as_ref().unwrap().2.contains("no_matching_allow"), "{addr:?}");
            assert!(host.request_header("l5d-client-id").is_none(), "{addr:?}: the forged header is removed");
        }
        // A certificate on the connection is not the peer in this mode.
        let host = request()
            .with_property("source.address", b"10.0.0.1:4143")
            .with_property("connection.sha256_peer_certificate_digest", b"abcd")
            .with_property("connection.uri_san_peer_certificate", b"spiffe://cluster.local/ns/a/sa/b");
        assert_eq!(w.on_request_headers(&host), Verdict::Replied);
    }

    #[test]
    fn garbage_peer_certificate_is_denied_as_invalid_certificate() {
        let w = worker(r#"{"denyResponse":{"exposeReason":true}}"#);
        let host = request().with_property("connection.sha256_peer_certificate_digest", b"abcd").with_property(
            "connection.peer_certificate",
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        );
        assert_eq!(w.on_request_headers(&host), Verdict::Replied);
        let (status, headers, body) = host.reply.borrow().clone().unwrap();
        assert_eq!(status, 403);
        assert!(headers.contains(&(REASON_HEADER.to_owned(), "invalid_certificate".to_owned())));
        assert_eq!(body, "access denied: invalid_certificate\n");
    }

    #[test]
    fn forged_xfcc_element_is_ignored_and_the_policy_that_needs_the_certificate_denies() {
        let w = worker(r#"{"certificate":{"maxLifetime":"24h"},"denyResponse":{"exposeReason":true}}"#);
        let host = request()
            .with_header("x-forwarded-client-cert", "Hash=abcd;Cert=\"-----BEGIN%20CERTIFICATE-----\"")
            .with_property("connection.sha256_peer_certificate_digest", b"abcd");
        assert_eq!(w.on_request_headers(&host), Verdict::Replied);
        let (_, headers, _) = host.reply.borrow().clone().unwrap();
        assert!(headers.contains(&(REASON_HEADER.to_owned(), "certificate_unavailable".to_owned())));
    }

    #[test]
    fn a_second_spiffe_uri_in_envoys_xfcc_element_denies_when_only_attributes_are_there() {
        let w = worker(r#"{"denyResponse":{"exposeReason":true}}"#);
        // No `connection.peer_certificate` property: as in the native build, or an older Envoy.
        let attrs = |digest: &str, xfcc: &str| {
            request()
                .with_header("x-forwarded-client-cert", xfcc)
                .with_property("connection.sha256_peer_certificate_digest", digest.as_bytes())
                .with_property("connection.uri_san_peer_certificate", b"spiffe://td/ns/a/sa/x")
        };
        // Envoy's element (no Cert=) lists both URI SANs; the attribute shows only the first.
        let host = attrs("abcd", "Hash=abcd;URI=spiffe://td/ns/a/sa/x;URI=spiffe://td/ns/b/sa/admin");
        assert_eq!(w.on_request_headers(&host), Verdict::Replied);
        let (_, headers, _) = host.reply.borrow().clone().unwrap();
        assert!(headers.contains(&(REASON_HEADER.to_owned(), "invalid_identity".to_owned())), "{headers:?}");
        // The same certificate again, with no XFCC header at all: still ambiguous (what the first
        // request showed is a fact of the certificate).
        let host = attrs("abcd", "");
        assert_eq!(w.on_request_headers(&host), Verdict::Replied);
        // Another certificate with one URI SAN: the attribute identity stands.
        let host = attrs("ef01", "Hash=ef01;URI=spiffe://td/ns/a/sa/x");
        assert_eq!(w.on_request_headers(&host), Verdict::Continue);
        assert_eq!(host.request_header(DEFAULT_IDENTITY_HEADER).as_deref(), Some(&b"td/ns/a/sa/x"[..]));
    }

    #[test]
    fn attributes_are_read_once_per_certificate_digest() {
        let w = worker("{}");
        let peer = |digest: &str, uri: &str| {
            request()
                .with_property("connection.sha256_peer_certificate_digest", digest.as_bytes())
                .with_property("connection.uri_san_peer_certificate", uri.as_bytes())
        };
        let principal = |host: &FakeHost| host.request_header(DEFAULT_IDENTITY_HEADER);
        let host = peer("aa", "spiffe://td/ns/a/sa/first");
        assert_eq!(w.on_request_headers(&host), Verdict::Continue);
        assert_eq!(principal(&host).as_deref(), Some(&b"td/ns/a/sa/first"[..]));
        // A digest names one certificate, whose SANs never change: the cached attributes decide.
        let host = peer("aa", "spiffe://td/ns/a/sa/other");
        assert_eq!(w.on_request_headers(&host), Verdict::Continue);
        assert_eq!(principal(&host).as_deref(), Some(&b"td/ns/a/sa/first"[..]));
        let host = peer("bb", "spiffe://td/ns/a/sa/other");
        assert_eq!(w.on_request_headers(&host), Verdict::Continue);
        assert_eq!(principal(&host).as_deref(), Some(&b"td/ns/a/sa/other"[..]));
        // Bounded: a flood of digests starts the cache over instead of growing it.
        for i in 0..CERT_CACHE_CAPACITY + 10 {
            w.attributes.borrow_mut().insert(format!("{i:x}"), PeerAttributes::default());
        }
        assert!(w.attributes.borrow().get("aa").is_none());
        assert!(w.attributes.borrow().0.len() <= CERT_CACHE_CAPACITY);
    }

    #[test]
    fn plaintext_under_strict_mtls_is_denied_without_exposing_the_reason_by_default() {
        let w = worker("{}");
        let host = request();
        assert_eq!(w.on_request_headers(&host), Verdict::Replied);
        let (status, headers, body) = host.reply.borrow().clone().unwrap();
        assert_eq!(status, 403);
        assert!(headers.is_empty());
        assert_eq!(body, "access denied\n");
    }

    /// Captures log lines, so that tests can read audit lines.
    struct CaptureLog;
    static LINES: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

    impl log::Log for CaptureLog {
        fn enabled(&self, _: &log::Metadata<'_>) -> bool {
            true
        }
        fn log(&self, record: &log::Record<'_>) {
            LINES.lock().unwrap().push(record.args().to_string());
        }
        fn flush(&self) {}
    }

    fn captured_audit_lines(marker: &str) -> Vec<String> {
        static LOGGER: CaptureLog = CaptureLog;
        let _ = log::set_logger(&LOGGER);
        log::set_max_level(log::LevelFilter::Trace);
        LINES.lock().unwrap().iter().filter(|l| l.contains("peerguard audit") && l.contains(marker)).cloned().collect()
    }

    #[test]
    fn audit_line_never_carries_the_query_string() {
        let _ = captured_audit_lines("");
        let w = worker(r#"{"mtls":"permissive","policies":[{"name":"deny-all","action":"DENY","rules":[{}]}]}"#);
        let host = FakeHost::default()
            .with_header(":method", "GET")
            .with_header(":path", "/audit-marker/./x?token=s3cret")
            .with_header(":authority", "svc");
        assert_eq!(w.on_request_headers(&host), Verdict::Replied);
        let lines = captured_audit_lines("audit-marker");
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].contains("\"path\":\"/audit-marker/x\""), "{}", lines[0]);
        assert!(!lines[0].contains("s3cret"), "{}", lines[0]);
    }

    #[test]
    fn requests_use_the_tick_clock_and_never_read_the_host_clock() {
        let _ = captured_audit_lines("");
        let mut w = worker(r#"{"mtls":"permissive","policies":[{"name":"deny-all","action":"DENY","rules":[{}]}]}"#);
        // An hour after the host's 08:00: the audit line's time is the tick's reading.
        w.clock = Rc::new(Clock::at(1_800_003_600));
        let host = request().with_header(":path", "/clock-marker");
        assert_eq!(w.on_request_headers(&host), Verdict::Replied);
        let lines = captured_audit_lines("clock-marker");
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].contains("2027-01-15T09:00:00"), "{}", lines[0]);
        assert_eq!(host.clock_reads.get(), 0);
        w.clock.set(1_800_007_200);
        let host = request().with_header(":path", "/clock-marker");
        assert_eq!(w.on_request_headers(&host), Verdict::Replied);
        assert!(captured_audit_lines("clock-marker")[1].contains("2027-01-15T10:00:00"));
        assert_eq!(host.clock_reads.get(), 0);
    }

    #[test]
    fn invalid_path_is_a_400_whatever_the_deny_status() {
        let w = worker(
            r#"{"mtls":"permissive","denyResponse":{"status":403,"exposeReason":true},"policies":[{"name":"d","action":"DENY","rules":[{"to":[{"operation":{"paths":["/admin*"]}}]}]}]}"#,
        );
        let host = request().with_header(":path", "/admin/..%2Fusers");
        assert_eq!(w.on_request_headers(&host), Verdict::Replied);
        let (status, headers, _) = host.reply.borrow().clone().unwrap();
        assert_eq!(status, 400);
        assert!(headers.contains(&(REASON_HEADER.to_owned(), "invalid_path".to_owned())));
    }

    #[test]
    fn allowed_path_reaches_the_upstream_in_the_form_that_was_matched() {
        let w = worker(
            r#"{"mtls":"permissive","policies":[{"name":"d","action":"DENY","rules":[{"to":[{"operation":{"paths":["/admin*"]}}]}]}]}"#,
        );
        let host = request().with_header(":path", "/a/./b//c?x=1&y=%2F");
        assert_eq!(w.on_request_headers(&host), Verdict::Continue);
        assert_eq!(host.request_header(":path").as_deref(), Some(&b"/a/b/c?x=1&y=%2F"[..]));
        let untouched = request().with_header(":path", "/a/b?q");
        assert_eq!(w.on_request_headers(&untouched), Verdict::Continue);
        assert_eq!(untouched.request_header(":path").as_deref(), Some(&b"/a/b?q"[..]));
    }
}
