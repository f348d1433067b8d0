//! Per-request glue: gather facts from the host, ask the engine, apply the decision.

use std::cell::RefCell;
use std::rc::Rc;

use peerguard_policy::{
    xfcc, CertCache, CertFacts, ConfigErrors, Decision, Engine, HeaderSource, Peer, PeerAttributes, PreparedCert,
    Reason, Request,
};

use crate::audit::{audit_line, AuditLimiter, AuditRequest};
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
    /// Envoy stats.
    pub counters: Rc<Counters>,
    /// Audit rate limit.
    pub audit: Rc<RefCell<AuditLimiter>>,
    /// Ignore `connection.peer_certificate`, as an Envoy older than 1.38 would (VM option).
    pub ignore_peer_certificate_attribute: bool,
}

/// Request headers fetched for `when` conditions. Non-UTF-8 bytes are replaced (U+FFFD), so a
/// prefix such as `admin*` still matches `admin\xff`, never failing open by turning into "absent".
struct FetchedHeaders(Vec<(String, String)>);

impl HeaderSource for FetchedHeaders {
    fn header(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

fn text(bytes: Option<Vec<u8>>) -> Option<String> {
    bytes.map(|b| match String::from_utf8(b) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    })
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
    Attributes(PeerAttributes),
    Certificate(Rc<PreparedCert>),
}

impl Worker {
    /// Handles request headers: strip the identity header, decide, then reply or annotate.
    pub fn on_request_headers(&self, host: &dyn Host) -> Verdict {
        let engine = match &self.engine {
            Ok(e) => e,
            Err(_) => {
                host.set_request_header(DEFAULT_IDENTITY_HEADER, None);
                self.counters.denied(Reason::ConfigInvalid);
                host.send_response(
                    503,
                    &[(REASON_HEADER, Reason::ConfigInvalid.code())],
                    b"peerguard: policy configuration invalid (config_invalid)\n",
                );
                return Verdict::Replied;
            }
        };
        // Clients must never supply their own identity header.
        host.set_request_header(engine.identity_header(), None);

        let now = host.now_unix();
        let peer = self.lookup_peer(engine, host, now);
        let method = text(host.request_header(":method")).unwrap_or_default();
        let path = text(host.request_header(":path")).unwrap_or_default();
        let authority = text(host.request_header(":authority")).unwrap_or_default();
        let port = if engine.uses_ports() { port_property(host.property(&["destination", "port"])) } else { None };
        let sni = if engine.uses_sni() { text(host.property(&["connection", "requested_server_name"])) } else { None };
        let headers = FetchedHeaders(
            engine
                .needed_headers()
                .iter()
                .filter_map(|n| text(host.request_header(n)).map(|v| (n.clone(), v)))
                .collect(),
        );
        let req =
            Request { method: &method, path: &path, host: &authority, port, sni: sni.as_deref(), headers: &headers };
        let decision = match &peer {
            PeerLookup::None => engine.decide(&req, &Peer::None, now),
            PeerLookup::Unparseable => engine.decide(&req, &Peer::Unparseable, now),
            PeerLookup::Attributes(a) => engine.decide(&req, &Peer::Attributes(a), now),
            PeerLookup::Certificate(p) => engine.decide(&req, &Peer::Certificate(p), now),
        };
        let cert = match &peer {
            PeerLookup::Certificate(p) => Some(p.as_ref()),
            _ => None,
        };
        self.observe(host, engine, &decision, &req, cert, now);

        if decision.allowed {
            if let Some(principal) = decision.principal() {
                host.set_request_header(engine.identity_header(), Some(principal));
            }
            return Verdict::Continue;
        }
        let reason = decision.reason.unwrap_or(Reason::ConfigInvalid);
        let resp = engine.deny_response();
        let status = u32::from(resp.status);
        if resp.expose_reason {
            let body = format!("{}: {}\n", resp.body, reason.code());
            host.send_response(status, &[(REASON_HEADER, reason.code())], body.as_bytes());
        } else {
            let body = format!("{}\n", resp.body);
            host.send_response(status, &[], body.as_bytes());
        }
        Verdict::Replied
    }

    fn lookup_peer(&self, engine: &Engine, host: &dyn Host, now: i64) -> PeerLookup {
        let digest = match text(host.property(&["connection", "sha256_peer_certificate_digest"])) {
            Some(d) if !d.is_empty() => d.to_ascii_lowercase(),
            _ => return PeerLookup::None,
        };
        if let Some(p) = self.cache.borrow_mut().get(&digest, now) {
            return PeerLookup::Certificate(p);
        }
        // Envoy 1.38+ gives the leaf; older Envoys only through XFCC, bound by digest.
        let from_envoy = if self.ignore_peer_certificate_attribute {
            None
        } else {
            host.property(&["connection", "peer_certificate"]).filter(|b| !b.is_empty())
        };
        let xfcc = text(host.request_header("x-forwarded-client-cert"));
        let bound = xfcc.as_deref().and_then(|h| xfcc::bound_certificate(h, &digest));
        let parsed = match (from_envoy, bound) {
            (Some(pem), bound) => {
                let chain = bound.map(|(_, chain)| chain).unwrap_or_default();
                CertFacts::from_pem(&pem).map(|f| (f, chain))
            }
            (None, Some((leaf, chain))) => CertFacts::from_der(&leaf).map(|f| (f, chain)),
            (None, None) => {
                return PeerLookup::Attributes(PeerAttributes {
                    uri_san: text(host.property(&["connection", "uri_san_peer_certificate"])),
                    dns_san: text(host.property(&["connection", "dns_san_peer_certificate"])),
                    subject: text(host.property(&["connection", "subject_peer_certificate"])),
                })
            }
        };
        match parsed {
            Ok((facts, chain)) => {
                let prepared = engine.prepare(facts, &chain, now);
                PeerLookup::Certificate(self.cache.borrow_mut().insert(digest, prepared))
            }
            Err(e) => {
                log::warn!("peerguard: peer certificate does not parse: {e}");
                PeerLookup::Unparseable
            }
        }
    }

    fn observe(
        &self,
        host: &dyn Host,
        engine: &Engine,
        d: &Decision,
        req: &Request<'_>,
        cert: Option<&PreparedCert>,
        now: i64,
    ) {
        let c = &self.counters;
        if d.expiring {
            c.cert_expiring();
        }
        match (d.allowed, d.reason) {
            (true, Some(r)) => c.would_deny(r),
            (true, None) => c.allowed(),
            (false, r) => c.denied(r.unwrap_or(Reason::ConfigInvalid)),
        }
        if let Some(p) = &d.policy {
            c.policy_matched(p);
        }
        for p in &d.audit {
            c.audit();
            c.policy_matched(p);
        }
        let label = match (d.allowed, d.reason) {
            (false, _) => Some("deny"),
            (true, Some(_)) => Some("would_deny"),
            (true, None) => None,
        };
        if label.is_none() && d.audit.is_empty() {
            return;
        }
        let request_id = text(host.request_header("x-request-id"));
        let areq =
            AuditRequest { method: req.method, path: req.path, host: req.host, request_id: request_id.as_deref() };
        let mut limiter = self.audit.borrow_mut();
        let mut emit = |line: String| {
            let (ok, suppressed) = limiter.admit(now);
            if suppressed > 0 {
                log::warn!("peerguard audit: {{\"peerguard\":\"audit_suppressed\",\"time\":{now},\"suppressed\":{suppressed}}}");
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
        let _ = engine;
    }
}
