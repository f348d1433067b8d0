//! Differential test against Istio: each policy runs as istiod's RBAC and as the peerguard filter in one real Envoy.
//!
//! For every generated policy, `peerguard render rbac` gives the RBAC HTTP filters istiod would
//! generate, and one Envoy serves a pair of listeners per policy: `rbac-K` (those filters) and
//! `pg-K` (the peerguard module with the same policy). Up to a batch of policies share one Envoy,
//! so start-up (about a second) is paid once per batch. `pg-K` runs the build
//! `PEERGUARD_BUILD` names: the Wasm module, or the native dynamic module, whose listeners also
//! set the XFCC element it reads the certificate from (`SANITIZE_SET`; the RBAC listeners keep
//! `SANITIZE`, and only statuses are compared). Every listener has the same HTTP
//! connection manager, TLS (client certificate optional: `mtls: permissive`, so requests
//! without a certificate are decided too) and a PROXY protocol listener filter: the client
//! states the destination port in the PROXY header, so `ports` and `destination.port` can be
//! tested on any port while the listeners themselves bind port 0.
//!
//! Paths: both HTTP connection managers set `normalize_path: true` and `merge_slashes: true`
//! (as the README asks of RBAC users), and the remaining difference is modelled in the oracle: a
//! `probe` listener without filters reports the path Envoy hands to the filters, and the oracle
//! puts it in peerguard's normal form (decoded unreserved escapes, upper-case escapes, merged
//! slashes, no dot segments) before the RBAC listener sees it.
//!
//! The oracle (PRODUCT.md "Known, intended differences from Istio", "Matching, as in Istio") is
//! small and explicit. A request that one of these differences applies to is sent to RBAC as
//! peerguard sees it, or must get peerguard's documented answer:
//! - `host:port` matches a rule for `host`, and one trailing dot of the host is ignored: RBAC
//!   gets the host without port and dot (the generator's host patterns hold no `:` or digit,
//!   which makes this exact);
//! - paths in peerguard's normal form, see above; an escaped slash or backslash, `;`, a control
//!   character or a malformed escape is `invalid_path`: peerguard answers 400 whenever a
//!   policy reads paths;
//! - an invalid SPIFFE ID or two SPIFFE URI SANs is `invalid_identity`: peerguard answers 403;
//! - Envoy's principal falls back to the DNS SAN and the subject without a URI SAN, peerguard
//!   uses only SPIFFE: RBAC gets a certificate with neither;
//! - `*` means present and non-empty for headers too: RBAC does not get empty header values;
//! - a certificate whose only URI SAN is not SPIFFE: Envoy's principal is that URI, peerguard
//!   has none ([`OTHER_URI_UNDOCUMENTED`], documented in docs/policy.md "Known differences from
//!   Istio": RBAC gets a certificate without SANs, counted and reported);
//! - several copies of a header that a DENY or ALLOW condition reads: peerguard fails closed, so
//!   it may deny where RBAC allows, never the other way round. PRODUCT.md expects this only for
//!   DENY `values` and ALLOW `notValues`, because it takes RBAC to match the copies joined with
//!   `,`; Envoy 1.40 matches each copy on its own, which moves the difference to DENY
//!   `notValues` and ALLOW `values` ([`REPEATED_UNDOCUMENTED`], documented in docs/policy.md
//!   "Known differences from Istio", always fail-closed: counted and reported, not failed).
//!
//! Everything else must agree, status for status. A disagreement is shrunk (policies, rules,
//! sources, fields, values, then the request's parts) while it still disagrees, and reported
//! with the policy, the request and the rendered RBAC.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme, StreamOwned};
use serde_json::{json, Value};

use crate::certs::{DemoCa, LeafSpec};
use crate::envoy::{self, Envoy};
use crate::repo::{native_path, Build};
use crate::upstream::EchoServer;
use peerguard_filter::envoy_config::{native_layered_runtime, NativeFilter};

// ---------------------------------------------------------------------------------------------
// A small seeded generator: xorshift64*.

/// xorshift64*: deterministic, no dependency.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng((seed ^ 0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    /// True with `percent` % probability.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }

    /// One item of a non-empty slice.
    pub fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())].clone()
    }

    /// `1..=max` items made by `f`.
    fn some<T>(&mut self, max: usize, mut f: impl FnMut(&mut Rng) -> T) -> Vec<T> {
        let n = 1 + self.below(max);
        (0..n).map(|_| f(self)).collect()
    }
}

// ---------------------------------------------------------------------------------------------
// Peers: the client certificates, all from one CA the listeners trust.

/// What kind of identity a client certificate carries, for the oracle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerKind {
    /// One valid SPIFFE URI SAN, empty subject: both sides see the same principal.
    Workload,
    /// No SAN, empty subject: no principal on either side.
    Bare,
    /// No URI SAN, but a DNS SAN or a subject CN, which Envoy's `authenticated` principal falls
    /// back to and peerguard (identity: [spiffe]) ignores: RBAC gets [`PeerKind::Bare`] instead.
    EnvoyFallback,
    /// A SPIFFE ID that breaks the spec, or two SPIFFE URI SANs: peerguard's `invalid_identity`.
    InvalidIdentity,
    /// Only a URI SAN that is not SPIFFE: Envoy's principal is that URI, peerguard has none
    /// (see [`OTHER_URI_UNDOCUMENTED`]).
    OtherUri,
}

/// One client certificate of the pool.
#[derive(Clone, Copy, Debug)]
pub struct PeerSpec {
    pub name: &'static str,
    pub uris: &'static [&'static str],
    pub dns: &'static [&'static str],
    pub cn: Option<&'static str>,
    pub kind: PeerKind,
}

const fn peer(name: &'static str, uris: &'static [&'static str], kind: PeerKind) -> PeerSpec {
    PeerSpec { name, uris, dns: &[], cn: None, kind }
}

/// The certificate pool. Principal patterns are made from the workload IDs, so requests hit
/// their boundaries; the nested paths are Istio's namespace regex at work.
pub const PEERS: &[PeerSpec] = &[
    peer("web", &["spiffe://cluster.local/ns/prod/sa/web"], PeerKind::Workload),
    peer("api", &["spiffe://cluster.local/ns/prod/sa/api"], PeerKind::Workload),
    peer("admin-dev", &["spiffe://cluster.local/ns/dev/sa/admin"], PeerKind::Workload),
    peer("eu", &["spiffe://cluster.local/ns/prod-eu/sa/web"], PeerKind::Workload),
    peer("nested", &["spiffe://td/k8s/ns/prod/sa/x"], PeerKind::Workload),
    peer("ns-td", &["spiffe://ns/prod/x"], PeerKind::Workload),
    peer("other-td", &["spiffe://other.local/ns/prod/sa/web"], PeerKind::Workload),
    peer("test", &["spiffe://td/ns/test/sa/api"], PeerKind::Workload),
    peer("deep", &["spiffe://cluster.local/ns/prod/sa/web/extra"], PeerKind::Workload),
    peer("bare", &[], PeerKind::Bare),
    PeerSpec { name: "cn-only", uris: &[], dns: &[], cn: Some("web"), kind: PeerKind::EnvoyFallback },
    PeerSpec { name: "dns-only", uris: &[], dns: &["web.prod.svc"], cn: None, kind: PeerKind::EnvoyFallback },
    peer("upper-td", &["spiffe://Cluster.local/ns/prod/sa/web"], PeerKind::InvalidIdentity),
    peer("td-only", &["spiffe://cluster.local"], PeerKind::InvalidIdentity),
    peer("trailing-slash", &["spiffe://cluster.local/ns/prod/sa/web/"], PeerKind::InvalidIdentity),
    peer("escaped", &["spiffe://cluster.local/ns/pr%6Fd/sa/web"], PeerKind::InvalidIdentity),
    peer(
        "two-spiffe",
        &["spiffe://cluster.local/ns/prod/sa/web", "spiffe://cluster.local/ns/dev/sa/admin"],
        PeerKind::InvalidIdentity,
    ),
    peer("https-uri", &["https://example.com/ns/prod/sa/web"], PeerKind::OtherUri),
];

/// The index in [`PEERS`] of the peer with that name.
pub fn peer_index(name: &str) -> Option<usize> {
    PEERS.iter().position(|p| p.name == name)
}

// ---------------------------------------------------------------------------------------------
// Vocabulary and policy generation.

const NAMESPACES: &[&str] = &["prod", "dev", "prod-eu", "test", "k8s", "prod*", "pro*", "*eu", "*-eu", "*"];
const TRUST_DOMAINS: &[&str] = &["cluster.local", "td", "other.local", "ns", "*.local", "clus*", "*", "cluster.loca"];
/// No `:` and no digit: with these, peerguard's `host:port` rule is exactly "match the host".
const HOSTS: &[&str] =
    &["example.com", "api.example.com", "*.example.com", "api.*", "*", "Admin.Example.com", "www.other.org", "*.com"];
const METHODS: &[&str] = &["GET", "POST", "DELETE", "PUT", "P*", "*T", "*", "PATCH"];
const PATHS: &[&str] = &[
    "/",
    "/api",
    "/api/*",
    "/api/v1/items",
    "*/info",
    "/admin",
    "/admin/*",
    "/admin*",
    "/files/{**}",
    "/api/{*}/admin",
    "/api/{*}",
    "/{*}/info",
    "*",
    "/a.b",
    "/~user",
];
const PORTS: &[u16] = &[80, 443, 8080, 9000];
/// Methods Envoy's HTTP/1 codec accepts (it refuses custom ones by default).
const STANDARD_METHODS: &[&str] = &["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"];
const HEADER_KEYS: &[(&str, &str)] = &[("request.headers[x-env]", "x-env"), ("request.headers[X-Team]", "x-team")];
const HEADER_VALUES: &[&str] = &["prod", "prod*", "*-eu", "*", "dev", "staging", "prod-eu"];
const SNIS: &[&str] = &["api.example.com", "*.example.com", "api.*", "*", "localhost", "www.other.org"];

fn workload_ids() -> Vec<&'static str> {
    PEERS
        .iter()
        .filter(|p| p.kind == PeerKind::Workload)
        .filter_map(|p| p.uris.first().and_then(|u| u.strip_prefix("spiffe://")))
        .collect()
}

/// A principal pattern made from a workload ID: exact, prefix, suffix, presence or a near miss.
fn principal_pattern(rng: &mut Rng) -> String {
    let id = rng.pick(&workload_ids());
    let n = id.len();
    match rng.below(7) {
        0 | 1 => id.to_owned(),
        2 => format!("{}*", &id[..1 + rng.below(n - 1)]),
        3 => format!("*{}", &id[1 + rng.below(n - 1)..]),
        4 => "*".to_owned(),
        5 => format!("{id}x"),
        _ => id[..n - 1].to_owned(),
    }
}

fn port_value(rng: &mut Rng) -> Value {
    let p = rng.pick(PORTS);
    match rng.below(5) {
        0 => json!(p),
        1 => json!(format!("0{p}")),
        _ => json!(p.to_string()),
    }
}

fn strings(rng: &mut Rng, max: usize, f: impl FnMut(&mut Rng) -> String) -> Value {
    json!(rng.some(max, f))
}

fn source(rng: &mut Rng) -> Value {
    let mut s = serde_json::Map::new();
    let fields = ["principals", "notPrincipals", "namespaces", "notNamespaces", "trustDomains", "notTrustDomains"];
    for _ in 0..1 + rng.below(2) {
        let f = rng.pick(&fields);
        let v = match f {
            "principals" | "notPrincipals" => strings(rng, 3, principal_pattern),
            "namespaces" | "notNamespaces" => strings(rng, 3, |r| r.pick(NAMESPACES).to_owned()),
            _ => strings(rng, 2, |r| r.pick(TRUST_DOMAINS).to_owned()),
        };
        s.insert(f.to_owned(), v);
    }
    json!({"source": s})
}

fn operation(rng: &mut Rng) -> Value {
    let mut o = serde_json::Map::new();
    let fields = ["hosts", "notHosts", "methods", "notMethods", "paths", "notPaths", "ports", "notPorts"];
    for _ in 0..1 + rng.below(3) {
        let f = rng.pick(&fields);
        let v = match f {
            "hosts" | "notHosts" => strings(rng, 3, |r| r.pick(HOSTS).to_owned()),
            "methods" | "notMethods" => strings(rng, 3, |r| r.pick(METHODS).to_owned()),
            "paths" | "notPaths" => strings(rng, 3, |r| r.pick(PATHS).to_owned()),
            _ => json!(rng.some(2, port_value)),
        };
        o.insert(f.to_owned(), v);
    }
    json!({"operation": o})
}

fn condition(rng: &mut Rng) -> Value {
    let keys = ["header", "header", "source.principal", "source.namespace", "destination.port", "connection.sni"];
    let (key, gen): (String, fn(&mut Rng) -> String) = match rng.pick(&keys) {
        "header" => (rng.pick(HEADER_KEYS).0.to_owned(), |r| r.pick(HEADER_VALUES).to_owned()),
        "source.principal" => ("source.principal".into(), principal_pattern),
        "source.namespace" => ("source.namespace".into(), |r| r.pick(NAMESPACES).to_owned()),
        "destination.port" => ("destination.port".into(), |r| {
            let p = r.pick(PORTS);
            if r.chance(20) {
                format!("0{p}")
            } else {
                p.to_string()
            }
        }),
        _ => ("connection.sni".into(), |r| r.pick(SNIS).to_owned()),
    };
    let mut c = json!({"key": key});
    match rng.below(10) {
        0..=5 => c["values"] = strings(rng, 2, gen),
        6..=8 => c["notValues"] = strings(rng, 2, gen),
        _ => {
            c["values"] = strings(rng, 2, gen);
            c["notValues"] = strings(rng, 2, gen);
        }
    }
    c
}

fn rule(rng: &mut Rng) -> Value {
    let mut r = serde_json::Map::new();
    if rng.chance(50) {
        r.insert("from".into(), json!(rng.some(2, source)));
    }
    if rng.chance(60) {
        r.insert("to".into(), json!(rng.some(2, operation)));
    }
    if rng.chance(40) {
        r.insert("when".into(), json!(rng.some(2, condition)));
    }
    Value::Object(r)
}

/// One random policy document over the subset peerguard shares with Istio.
pub fn generate_policy(rng: &mut Rng) -> Value {
    let n = 1 + rng.below(3);
    let policies: Vec<Value> = (0..n)
        .map(|i| {
            let action = match rng.below(20) {
                0..=8 => "ALLOW",
                9..=16 => "DENY",
                _ => "AUDIT",
            };
            let name = if rng.chance(50) { format!("ns{i}.p{i}") } else { format!("p{i}") };
            let mut p = json!({"name": name, "action": action});
            if rng.chance(10) {
                p["dryRun"] = true.into();
            }
            match (action, rng.below(20)) {
                ("ALLOW", 0) => {}
                ("ALLOW", 1) => p["rules"] = json!([]),
                _ => p["rules"] = json!(rng.some(3, rule)),
            }
            p
        })
        .collect();
    json!({"mtls": "permissive", "policies": policies})
}

// ---------------------------------------------------------------------------------------------
// Requests, aimed at the policy's boundaries.

/// One request as the client sends it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Req {
    /// Index into [`PEERS`]; `None` = no client certificate.
    pub peer: Option<usize>,
    /// TLS SNI; `None` = none sent.
    pub sni: Option<String>,
    /// The destination port, stated in the PROXY protocol header.
    pub port: u16,
    pub method: String,
    /// The request target, sent verbatim.
    pub path: String,
    pub host: String,
    pub headers: Vec<(String, String)>,
}

impl fmt::Display for Req {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let peer = match self.peer.and_then(|i| PEERS.get(i)) {
            None => "none".to_owned(),
            Some(p) => format!("{} (URI SANs {:?}, DNS SANs {:?}, CN {:?})", p.name, p.uris, p.dns, p.cn),
        };
        writeln!(f, "  {} {} HTTP/1.1", self.method, self.path)?;
        writeln!(f, "  host: {}", self.host)?;
        for (k, v) in &self.headers {
            writeln!(f, "  {k}: {v}")?;
        }
        writeln!(f, "  destination port: {}", self.port)?;
        writeln!(f, "  SNI: {}", self.sni.as_deref().unwrap_or("(none)"))?;
        write!(f, "  client certificate: {peer}")
    }
}

/// The string values a policy document mentions, by kind.
#[derive(Default, Debug)]
struct Mentioned {
    hosts: Vec<String>,
    methods: Vec<String>,
    paths: Vec<String>,
    ports: Vec<u16>,
    snis: Vec<String>,
    headers: BTreeMap<String, Vec<String>>,
}

fn mentioned(doc: &Value) -> Mentioned {
    let mut m = Mentioned::default();
    let strs = |v: &Value| -> Vec<String> {
        v.as_array().into_iter().flatten().filter_map(|x| x.as_str().map(str::to_owned)).collect()
    };
    let port_of = |v: &Value| -> Option<u16> {
        match v {
            Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
            Value::String(s) => s.trim_start_matches('0').parse().ok(),
            _ => None,
        }
    };
    for p in doc["policies"].as_array().into_iter().flatten() {
        for r in p["rules"].as_array().into_iter().flatten() {
            for t in r["to"].as_array().into_iter().flatten() {
                let o = &t["operation"];
                m.hosts.extend(strs(&o["hosts"]).into_iter().chain(strs(&o["notHosts"])));
                m.methods.extend(strs(&o["methods"]).into_iter().chain(strs(&o["notMethods"])));
                m.paths.extend(strs(&o["paths"]).into_iter().chain(strs(&o["notPaths"])));
                for k in ["ports", "notPorts"] {
                    m.ports.extend(o[k].as_array().into_iter().flatten().filter_map(port_of));
                }
            }
            for c in r["when"].as_array().into_iter().flatten() {
                let key = c["key"].as_str().unwrap_or_default();
                let vals: Vec<String> = strs(&c["values"]).into_iter().chain(strs(&c["notValues"])).collect();
                if let Some(name) = key.strip_prefix("request.headers[").and_then(|k| k.strip_suffix(']')) {
                    m.headers.entry(name.to_ascii_lowercase()).or_default().extend(vals);
                } else if key == "connection.sni" {
                    m.snis.extend(vals);
                } else if key == "destination.port" {
                    m.ports.extend(vals.iter().filter_map(|v| v.trim_start_matches('0').parse::<u16>().ok()));
                }
            }
        }
    }
    m
}

/// A value that a pattern matches (for `*`, one of `any`).
fn instance(rng: &mut Rng, pattern: &str, any: &[&str]) -> String {
    if pattern == "*" {
        return rng.pick(any).to_owned();
    }
    if let Some(p) = pattern.strip_suffix('*') {
        return format!("{p}{}", rng.pick(&["", "x", "-eu", "/y", ".example.com"]));
    }
    if let Some(s) = pattern.strip_prefix('*') {
        return format!("{}{s}", rng.pick(&["", "a", "x.", "/z"]));
    }
    pattern.to_owned()
}

/// A value just outside or just inside: one character less or more, or another case.
fn near_miss(rng: &mut Rng, v: &str) -> String {
    match rng.below(3) {
        0 if v.len() > 1 => v[..v.len() - 1].to_owned(),
        1 => format!("{v}x"),
        _ => {
            let mut c = v.chars();
            match c.next() {
                Some(first) if first.is_ascii_lowercase() => format!("{}{}", first.to_ascii_uppercase(), c.as_str()),
                Some(first) => format!("{}{}", first.to_ascii_lowercase(), c.as_str()),
                None => "x".to_owned(),
            }
        }
    }
}

/// Aimed: a value from the policy (instantiated, or a near miss), else one from `any`.
fn aimed(rng: &mut Rng, from_policy: &[String], any: &[&str]) -> String {
    if !from_policy.is_empty() && rng.chance(75) {
        let p = rng.pick(from_policy);
        let v = instance(rng, &p, any);
        if rng.chance(25) {
            near_miss(rng, &v)
        } else {
            v
        }
    } else {
        rng.pick(any).to_owned()
    }
}

fn request_path(rng: &mut Rng, m: &Mentioned) -> String {
    let mut path = if !m.paths.is_empty() && rng.chance(80) {
        let p = rng.pick(&m.paths);
        let one = rng.pick(&["x", "v1", "a.b", "%41", "%3B", "a=b", "~u", "%20"]);
        // `{**}` with nothing after it is the boundary where Envoy's `**` (zero or more) and a
        // one-or-more reading part ways.
        let p = p.replace("{*}", one).replace("{**}", rng.pick(&["a", "a/b", "", "", "a/"]));
        let v = if p == "*" {
            rng.pick(&["/", "/x", "/api/x"]).to_owned()
        } else if let Some(s) = p.strip_prefix('*') {
            format!("{}{s}", rng.pick(&["", "/a", "/api"]))
        } else if let Some(pre) = p.strip_suffix('*') {
            format!("{pre}{}", rng.pick(&["", "x", "/y", "/"]))
        } else {
            p
        };
        if rng.chance(20) {
            near_miss(rng, &v)
        } else {
            v
        }
    } else {
        rng.pick(&["/", "/api/v1/items", "/admin", "/info", "/files/a"]).to_owned()
    };
    if !path.starts_with('/') {
        path.insert(0, '/');
    }
    // Decorations: what normalization and the invalid_path rules are about.
    if rng.chance(30) {
        let deco = rng.below(12);
        path = match deco {
            0 => path.replacen('/', "//", 1),
            1 => format!("/x/..{path}"),
            2 => format!("/.{path}"),
            3 => path.replacen('a', "%61", 1),
            4 => format!("{path}%2Fx"),
            5 => format!("{path};v=1"),
            6 => format!("{path}%zz"),
            7 => format!("{path}\\x"),
            8 => format!("{path}%3b"),
            9 => path.replacen('/', "/%2e/", 1),
            10 => format!("{path}%7f"),
            _ => format!("{path}/"),
        };
    }
    if rng.chance(15) {
        path.push_str(rng.pick(&["?q=1", "?a=/../b", "?x=%2F;y"]));
    }
    path
}

/// A host name made of what a `Host` header and an SNI can carry: letters, digits, `.` and `-`,
/// no empty label at either end.
fn dns_like(v: &str) -> Option<String> {
    let kept: String = v.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '.' || *c == '-').collect();
    let trimmed = kept.trim_matches(|c| c == '.' || c == '-');
    (!trimmed.is_empty() && !trimmed.contains("..")).then(|| trimmed.to_owned())
}

/// A request aimed at the values `doc` mentions and their near misses.
pub fn generate_request(rng: &mut Rng, doc: &Value) -> Req {
    let m = mentioned(doc);
    let peer = if rng.chance(10) { None } else { Some(rng.below(PEERS.len())) };
    let sni = if rng.chance(15) {
        None
    } else {
        dns_like(&aimed(rng, &m.snis, &["localhost", "api.example.com"]))
            .filter(|s| ServerName::try_from(s.clone()).is_ok())
            .or_else(|| Some("localhost".to_owned()))
    };
    let port = if !m.ports.is_empty() && rng.chance(75) {
        let p = rng.pick(&m.ports);
        if rng.chance(25) {
            p.wrapping_add(1).max(1)
        } else {
            p
        }
    } else {
        rng.pick(&[443, 80, 8080, 8081])
    };
    // Envoy refuses methods it does not know (400 before any filter), so requests use real ones:
    // a policy's value when it is one, else any, which covers prefixes, suffixes and misses.
    let method = aimed(rng, &m.methods, STANDARD_METHODS);
    let method =
        if STANDARD_METHODS.contains(&method.as_str()) { method } else { rng.pick(STANDARD_METHODS).to_owned() };
    let path = request_path(rng, &m);
    let mut host = dns_like(&aimed(rng, &m.hosts, &["example.com", "api.example.com", "localhost"]))
        .unwrap_or_else(|| "example.com".to_owned());
    if rng.chance(10) {
        host.push('.');
    }
    if rng.chance(20) {
        host.push_str(rng.pick(&[":8080", ":443", ":80"]));
    }
    let mut headers = Vec::new();
    for (name, values) in &m.headers {
        if !rng.chance(75) {
            continue;
        }
        if rng.chance(6) {
            headers.push((name.clone(), String::new()));
            continue;
        }
        let copies = if rng.chance(20) { 2 } else { 1 };
        for _ in 0..copies {
            let v = aimed(rng, values, &["prod", "dev", "x"]);
            let v = if v.is_empty() || v.contains('*') { "prod".to_owned() } else { v };
            headers.push((name.clone(), v));
        }
    }
    Req { peer, sni, port, method, path, host, headers }
}

// ---------------------------------------------------------------------------------------------
// The oracle.

/// peerguard's normal form of a path (PRODUCT.md "Paths"), written again here from the spec:
/// `Err` names why peerguard refuses it (`invalid_path`).
pub fn normal_form(path: &str) -> Result<String, &'static str> {
    let bytes = path.as_bytes();
    if path.contains('#') {
        return Err("fragment");
    }
    if !path.starts_with('/') {
        return Err("not absolute");
    }
    let mut decoded = String::new();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'\\' => return Err("backslash"),
            b';' => return Err("path parameter"),
            0..=0x1f | 0x7f => return Err("control character"),
            b'%' => {
                let hex = path.get(i + 1..i + 3).filter(|h| h.bytes().all(|c| c.is_ascii_hexdigit()));
                let Some(hex) = hex else { return Err("malformed escape") };
                let v = u8::from_str_radix(hex, 16).map_err(|_| "malformed escape")?;
                match v {
                    b'/' | b'\\' => return Err("escaped slash"),
                    0..=0x1f | 0x7f => return Err("escaped control character"),
                    _ if v.is_ascii_alphanumeric() || b"-._~".contains(&v) => decoded.push(v as char),
                    _ => decoded.push_str(&format!("%{v:02X}")),
                }
                i += 3;
                continue;
            }
            _ => decoded.push(b as char),
        }
        i += 1;
    }
    let mut merged = String::with_capacity(decoded.len());
    for c in decoded.chars() {
        if !(c == '/' && merged.ends_with('/')) {
            merged.push(c);
        }
    }
    Ok(remove_dot_segments(&merged))
}

/// RFC 3986 §5.2.4.
fn remove_dot_segments(path: &str) -> String {
    let mut input = path.to_owned();
    let mut out = String::new();
    while !input.is_empty() {
        if let Some(rest) = input.strip_prefix("../").or_else(|| input.strip_prefix("./")) {
            input = rest.to_owned();
        } else if input.starts_with("/./") {
            input = input[2..].to_owned();
        } else if input == "/." {
            input = "/".to_owned();
        } else if input.starts_with("/../") || input == "/.." {
            input = if input == "/.." { "/".to_owned() } else { input[3..].to_owned() };
            match out.rfind('/') {
                Some(i) => out.truncate(i),
                None => out.clear(),
            }
        } else if input == "." || input == ".." {
            input.clear();
        } else {
            let start = usize::from(input.starts_with('/'));
            let end = input[start..].find('/').map_or(input.len(), |i| i + start);
            out.push_str(&input[..end]);
            input = input[end..].to_owned();
        }
    }
    out
}

/// Splits a request target at the first `?`.
fn split_query(target: &str) -> (&str, Option<&str>) {
    match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    }
}

/// peerguard's host: lower-case, one trailing dot removed, then (for the generator's patterns,
/// which hold no `:`) the port does not matter.
fn host_as_peerguard_sees_it(host: &str) -> String {
    let lower = host.to_ascii_lowercase();
    let name = match lower.rsplit_once(':') {
        Some((name, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => name.to_owned(),
        _ => lower,
    };
    name.strip_suffix('.').unwrap_or(&name).to_owned()
}

/// What the oracle expects of the peerguard listener, given the RBAC listener's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expect {
    /// The same status as RBAC (on the request as peerguard sees it).
    Same,
    /// Exactly this status, whatever RBAC does (`invalid_path`, `invalid_identity`).
    Status(u16, &'static str),
    /// The same status, or 403 where RBAC allows (repeated headers in DENY `values` or ALLOW
    /// `notValues`: peerguard fails closed).
    SameOrStricter,
    /// Envoy refuses the request itself before any filter: both listeners answer this.
    Envoy(u16),
}

/// Whether an enforced DENY or ALLOW policy reads the path: then peerguard denies a path it
/// cannot put in normal form (`invalid_path`). Dry-run and AUDIT policies never deny, so their
/// paths only make it a would-deny.
fn reads_paths(doc: &Value) -> bool {
    let enforced = |p: &Value| p["action"].as_str() != Some("AUDIT") && p["dryRun"].as_bool() != Some(true);
    doc["policies"].as_array().into_iter().flatten().filter(|p| enforced(p)).any(|p| {
        p["rules"].as_array().into_iter().flatten().any(|r| {
            r["to"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|t| t["operation"].get("paths").is_some() || t["operation"].get("notPaths").is_some())
        })
    })
}

/// KNOWN, INTENDED DIFFERENCE (docs/policy.md): Envoy's `authenticated` principal matches every URI SAN,
/// SPIFFE or not, so Istio's principal and namespace patterns (`.+`, `.*/ns/NS/.*`) match a
/// certificate whose only URI SAN is `https://example.com/ns/prod/sa/web`; peerguard
/// (`identity: [spiffe]`) sees no identity there. PRODUCT.md documents the fallback to the DNS
/// SAN and the subject "when there is no URI SAN", not this case; unlike the other differences
/// it can make peerguard the more permissive side (an ALLOW with `notNamespaces`, a DENY with
/// `namespaces`). The oracle gives RBAC a certificate without SANs instead, as for the fallback.
pub const OTHER_URI_UNDOCUMENTED: &str = "non-SPIFFE URI SAN (intended: only `identity` sources name peers)";

/// The documented difference for requests with several copies of a header.
pub const REPEATED_DOCUMENTED: &str = "repeated header, fail closed";
/// KNOWN, INTENDED DIFFERENCE (docs/policy.md): PRODUCT.md says Envoy's RBAC matches the copies joined
/// with `,`; Envoy 1.40 matches each copy on its own (a value matches when any copy does). So
/// peerguard's joined-value rule (a DENY `notValues`, an ALLOW `values`) is stricter than RBAC
/// where PRODUCT.md expects no difference. Always in the fail-closed direction.
pub const REPEATED_UNDOCUMENTED: &str = "repeated header vs Envoy's per-copy matching (intended, fail closed)";

/// Which repeated-header difference applies: several copies of a header that a condition of a
/// DENY or ALLOW policy reads. peerguard may then deny where RBAC allows, never the reverse.
fn repeated_header(doc: &Value, req: &Req) -> Option<&'static str> {
    let repeated = |name: &str| req.headers.iter().filter(|(k, _)| k.eq_ignore_ascii_case(name)).count() > 1;
    let mut found = None;
    for p in doc["policies"].as_array().into_iter().flatten() {
        let action = p["action"].as_str().unwrap_or("ALLOW");
        if action == "AUDIT" {
            continue;
        }
        for r in p["rules"].as_array().into_iter().flatten() {
            for c in r["when"].as_array().into_iter().flatten() {
                let key = c["key"].as_str().unwrap_or_default();
                let name = key.strip_prefix("request.headers[").and_then(|k| k.strip_suffix(']'));
                if !name.is_some_and(repeated) {
                    continue;
                }
                let documented_side = if action == "DENY" { "values" } else { "notValues" };
                let other_side = if action == "DENY" { "notValues" } else { "values" };
                if c.get(other_side).is_some() {
                    found = Some(REPEATED_UNDOCUMENTED);
                } else if c.get(documented_side).is_some() && found.is_none() {
                    found = Some(REPEATED_DOCUMENTED);
                }
            }
        }
    }
    found
}

/// The oracle's verdict on one request: what to expect, the request RBAC must get to see what
/// peerguard sees (when it differs), and which documented differences apply.
#[derive(Clone, Debug)]
pub struct Verdict {
    pub expect: Expect,
    pub for_rbac: Option<Req>,
    pub applies: Vec<&'static str>,
}

/// `forwarded` is the request target Envoy hands to the filters (from the probe listener), or
/// the status Envoy refused the raw one with.
pub fn oracle(doc: &Value, req: &Req, forwarded: Result<&str, u16>) -> Verdict {
    let forwarded = match forwarded {
        Ok(f) => f,
        Err(status) => return Verdict { expect: Expect::Envoy(status), for_rbac: None, applies: Vec::new() },
    };
    let mut applies = Vec::new();
    let mut t = req.clone();
    let (path, query) = split_query(forwarded);
    let normal = normal_form(path);
    let reads = reads_paths(doc);
    if let Ok(n) = &normal {
        t.path = match query {
            Some(q) => format!("{n}?{q}"),
            None => n.clone(),
        };
        if t.path != req.path {
            applies.push("path normal form");
        }
    }
    let host = host_as_peerguard_sees_it(&req.host);
    if host != req.host.to_ascii_lowercase() {
        applies.push(if req.host.contains(':') { "host:port" } else { "host trailing dot" });
    }
    t.host = host;
    if t.headers.iter().any(|(_, v)| v.is_empty()) {
        applies.push("'*' on an empty header");
        t.headers.retain(|(_, v)| !v.is_empty());
    }
    let kind = req.peer.and_then(|i| PEERS.get(i)).map(|p| p.kind);
    if kind == Some(PeerKind::EnvoyFallback) {
        applies.push("Envoy principal falls back to DNS SAN / subject");
        t.peer = peer_index("bare");
    }
    if kind == Some(PeerKind::OtherUri) {
        applies.push(OTHER_URI_UNDOCUMENTED);
        t.peer = peer_index("bare");
    }
    let for_rbac = (t != *req).then_some(t);
    let expect = if reads && normal.is_err() {
        applies.push("invalid_path");
        Expect::Status(400, "invalid_path")
    } else if kind == Some(PeerKind::InvalidIdentity) {
        applies.push("invalid_identity");
        Expect::Status(403, "invalid_identity")
    } else if let Some(kind) = repeated_header(doc, req) {
        applies.push(kind);
        Expect::SameOrStricter
    } else {
        Expect::Same
    };
    Verdict { expect, for_rbac, applies }
}

// ---------------------------------------------------------------------------------------------
// The client: PROXY protocol header, then TLS (any server certificate), then one HTTP/1.1 request.

#[derive(Debug)]
struct AcceptAnyServer(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn tls_config(identity: Option<(&str, &str)>) -> Result<Arc<ClientConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyServer(provider)));
    let mut config = match identity {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain = CertificateDer::pem_slice_iter(cert.as_bytes()).collect::<Result<Vec<_>, _>>()?;
            let key = PrivateKeyDer::from_pem_slice(key.as_bytes())?;
            builder.with_client_auth_cert(chain, key)?
        }
    };
    // Every request a full handshake: the peer certificate must be there every time.
    config.resumption = rustls::client::Resumption::disabled();
    Ok(Arc::new(config))
}

/// One answer: the status, `x-peerguard-reason` when present, and (from the upstream echo) the
/// path that reached it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub reason: Option<String>,
    pub upstream_path: Option<String>,
}

impl fmt::Display for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.status)?;
        if let Some(r) = &self.reason {
            write!(f, " ({r})")?;
        }
        Ok(())
    }
}

/// The client certificates of [`PEERS`], and a TLS config for each (plus one without).
pub struct Clients {
    configs: Vec<Arc<ClientConfig>>,
    none: Arc<ClientConfig>,
}

impl Clients {
    fn new(ca: &DemoCa) -> Result<Clients> {
        let mut configs = Vec::new();
        for p in PEERS {
            let mut spec = LeafSpec::client().no_cn();
            if let Some(cn) = p.cn {
                spec = spec.cn(cn);
            }
            for u in p.uris {
                spec = spec.uri(u);
            }
            for d in p.dns {
                spec = spec.dns(d);
            }
            let issued = ca.issue(&format!("peer-{}", p.name), &spec)?;
            configs.push(tls_config(Some((&issued.cert_pem, &issued.key_pem)))?);
        }
        Ok(Clients { configs, none: tls_config(None)? })
    }

    /// Sends `req` to 127.0.0.1:`listener`.
    pub fn send(&self, listener: u16, req: &Req) -> Result<Answer> {
        let config = match req.peer {
            Some(i) => self.configs.get(i).ok_or_else(|| anyhow!("no peer {i}"))?.clone(),
            None => self.none.clone(),
        };
        let name = match &req.sni {
            Some(s) => ServerName::try_from(s.clone()).map_err(|e| anyhow!("SNI {s:?}: {e}"))?,
            // An IP address: rustls sends no SNI.
            None => ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()),
        };
        let addr = SocketAddr::from(([127, 0, 0, 1], listener));
        let timeout = Duration::from_secs(20);
        let mut sock = TcpStream::connect_timeout(&addr, timeout).with_context(|| format!("connect {addr}"))?;
        sock.set_read_timeout(Some(timeout))?;
        sock.set_write_timeout(Some(timeout))?;
        sock.set_nodelay(true)?;
        sock.write_all(format!("PROXY TCP4 127.0.0.1 127.0.0.1 40000 {}\r\n", req.port).as_bytes())?;
        let conn = ClientConnection::new(config, name).context("TLS client")?;
        let mut tls = StreamOwned::new(conn, sock);
        let mut wire = format!("{} {} HTTP/1.1\r\nhost: {}\r\n", req.method, req.path, req.host);
        for (k, v) in &req.headers {
            wire.push_str(&format!("{k}: {v}\r\n"));
        }
        wire.push_str("connection: close\r\n\r\n");
        tls.write_all(wire.as_bytes()).context("TLS write")?;
        tls.flush()?;
        read_answer(&mut tls)
    }
}

/// Reads one response (head, then a `content-length` body, or up to EOF).
fn read_answer(r: &mut impl Read) -> Result<Answer> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let len = head.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim().eq_ignore_ascii_case("content-length").then(|| v.trim().parse::<usize>().ok()).flatten()
            });
            if len.is_some_and(|len| buf.len() >= end + 4 + len) {
                break;
            }
        }
        match r.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if !buf.is_empty()
                    && matches!(e.kind(), std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset) =>
            {
                break
            }
            Err(e) => return Err(e).context("read response"),
        }
    }
    let resp = crate::client::parse_response_bytes(&buf)?;
    let upstream_path = if resp.status == 200 { resp.echo().ok().map(|e| e.path) } else { None };
    Ok(Answer { status: resp.status, reason: resp.reason(), upstream_path })
}

// ---------------------------------------------------------------------------------------------
// One Envoy per batch: a probe listener, then an RBAC and a peerguard listener per policy.

/// A policy ready to run: the document RBAC is rendered from, the filters, and the JSON the
/// peerguard filter gets (the same document, reasons exposed).
#[derive(Clone, Debug)]
pub struct Prepared {
    pub doc: Value,
    pub filters: Vec<Value>,
    pub pg_json: String,
}

/// Renders `doc` with `peerguard render rbac`'s library; refuses a document the engine refuses
/// or one with parts RBAC cannot express (except `mtls: strict`, see [`prepare_file`]).
pub fn prepare(doc: &Value) -> Result<Prepared> {
    let rendered = peerguard_cli::render::rbac::render_value(doc).map_err(|e| anyhow!("invalid policy:\n{e}"))?;
    if let Some(u) = rendered.unsupported.first() {
        bail!("RBAC cannot express {u}");
    }
    let mut pg = doc.clone();
    pg["denyResponse"] = json!({"exposeReason": true});
    Ok(Prepared { doc: doc.clone(), filters: rendered.filters, pg_json: pg.to_string() })
}

/// The peerguard build a [`Lab`] runs (`PEERGUARD_BUILD`).
enum Module {
    /// A copy of the Wasm module, loaded by path.
    Wasm(PathBuf),
    /// The dynamic module, which Envoy loads by name from [`crate::repo::native_dir`] through
    /// `ENVOY_DYNAMIC_MODULES_SEARCH_PATH` (the launcher sets it).
    Native,
}

/// Everything one differential run needs that outlives an Envoy: certificates, clients, the
/// echo upstream, the module.
pub struct Lab {
    dir: tempfile::TempDir,
    ca: DemoCa,
    server: (PathBuf, PathBuf),
    clients: Clients,
    echo: EchoServer,
    module: Module,
    /// Envoy starts so far.
    pub starts: usize,
}

impl Lab {
    /// Runs the build `PEERGUARD_BUILD` names ([`Build::from_env`]). Fails (never skips)
    /// without Envoy or that build's module, saying how to get them.
    pub fn new() -> Result<Lab> {
        envoy::envoy_bin()?;
        let dir = tempfile::tempdir()?;
        let module = match Build::from_env()? {
            Build::Wasm => {
                // A copy: one module for the whole run, even if dist/ is rebuilt meanwhile.
                let wasm = dir.path().join("peerguard.wasm");
                std::fs::copy(envoy::wasm_path()?, &wasm).context("copy the module")?;
                Module::Wasm(wasm)
            }
            Build::Native => {
                native_path().context("PEERGUARD_BUILD=native: the differential test needs the native module")?;
                Module::Native
            }
        };
        let ca = DemoCa::create(dir.path())?;
        let server = ca.issue("server", &LeafSpec::server())?;
        let clients = Clients::new(&ca)?;
        let echo = EchoServer::start()?;
        Ok(Lab { server: (server.cert_path, server.key_path), dir, ca, clients, echo, module, starts: 0 })
    }

    /// A listener with `http_filters` before the router. `xfcc` is its
    /// `forward_client_cert_details` and, if any, `set_current_client_cert_details`.
    fn listener(&self, name: &str, http_filters: Vec<Value>, xfcc: (&str, Option<Value>)) -> Value {
        let mut filters = http_filters;
        filters.push(json!({"name": "envoy.filters.http.router",
            "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}));
        let mut l = json!({
            "name": name,
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
            "listener_filters": [{"name": "envoy.filters.listener.proxy_protocol",
                "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.listener.proxy_protocol.v3.ProxyProtocol"}}],
            "filter_chains": [{
                "transport_socket": crate::envoy::downstream_tls(&self.server.0, &self.server.1, &self.ca.cert_path, false),
                "filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                    "stat_prefix": name,
                    // The same on both listeners of a pair (and the probe): Envoy normalizes the
                    // path for RBAC as the README asks; escaped slashes reach the filters.
                    "normalize_path": true,
                    "merge_slashes": true,
                    "path_with_escaped_slashes_action": "KEEP_UNCHANGED",
                    "forward_client_cert_details": xfcc.0,
                    "route_config": {"name": name, "virtual_hosts": [{"name": "all", "domains": ["*"],
                        "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "echo"}}]}]},
                    "http_filters": filters
                }}]
            }]
        });
        if let Some(details) = xfcc.1 {
            l["filter_chains"][0]["filters"][0]["typed_config"]["set_current_client_cert_details"] = details;
        }
        l
    }

    /// The peerguard listener's filter and XFCC settings for this lab's build. The Wasm filter
    /// reads the peer from the connection (`SANITIZE`, as on the RBAC listeners). The native
    /// build reads the certificate only from the XFCC element Envoy sets (docs/policy.md "Where
    /// the certificate comes from"), so its listeners set one as envoy/native.yaml does; the
    /// decision compared here is the status only, so the header the echo upstream then sees
    /// changes nothing that is compared.
    fn peerguard_listener(&self, name: &str, k: usize, p: &Prepared) -> Value {
        match &self.module {
            Module::Wasm(path) => {
                let mut wasm = envoy::wasm_filter_config(path, &p.pg_json);
                // One VM (same vm_id and code) for every listener; one plugin per policy.
                wasm["config"]["name"] = format!("peerguard-{k}").into();
                self.listener(name, vec![json!({"name": "peerguard", "typed_config": wasm})], ("SANITIZE", None))
            }
            Module::Native => {
                // One filter config per listener: each compiles its own policy.
                let native = NativeFilter { configuration: &p.pg_json }.typed_config();
                let details = json!({"subject": true, "cert": true, "chain": true, "uri": true, "dns": true});
                self.listener(
                    name,
                    vec![json!({"name": "peerguard", "typed_config": native})],
                    ("SANITIZE_SET", Some(details)),
                )
            }
        }
    }

    /// Starts one Envoy for `policies`.
    pub fn start(&mut self, policies: &[&Prepared]) -> Result<Running> {
        let mut listeners = vec![self.listener("probe", Vec::new(), ("SANITIZE", None))];
        for (k, p) in policies.iter().enumerate() {
            listeners.push(self.listener(&format!("rbac-{k}"), p.filters.clone(), ("SANITIZE", None)));
            listeners.push(self.peerguard_listener(&format!("pg-{k}"), k, p));
        }
        let mut bootstrap = json!({
            "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
            "static_resources": {
                "listeners": listeners,
                "clusters": [{"name": "echo", "type": "STATIC", "connect_timeout": "2s",
                    "load_assignment": {"cluster_name": "echo", "endpoints": [{"lb_endpoints": [{"endpoint": {"address":
                        {"socket_address": {"address": "127.0.0.1", "port_value": self.echo.port()}}}}]}]}}]
            }
        });
        if matches!(self.module, Module::Native) {
            // Prometheus names as in the Wasm build (not read here, but the same Envoy as shipped).
            bootstrap["layered_runtime"] = native_layered_runtime();
        }
        let workdir = self.dir.path().join(format!("envoy-{}", self.starts));
        std::fs::create_dir_all(&workdir)?;
        self.starts += 1;
        let yaml = serde_json::to_string_pretty(&bootstrap)?;
        let envoy = Envoy::start_yaml(&yaml, &workdir, Duration::from_secs(900), "warning", None)?;
        let ports = envoy.listener_ports()?;
        let port = |name: &str| ports.get(name).copied().ok_or_else(|| anyhow!("no listener {name} in {ports:?}"));
        let pairs = (0..policies.len())
            .map(|k| Ok((port(&format!("rbac-{k}"))?, port(&format!("pg-{k}"))?)))
            .collect::<Result<Vec<_>>>()?;
        let probe = port("probe")?;
        Ok(Running { envoy, probe, pairs })
    }

    pub fn clients(&self) -> &Clients {
        &self.clients
    }
}

/// A running Envoy with its listener pairs.
pub struct Running {
    pub envoy: Envoy,
    probe: u16,
    pairs: Vec<(u16, u16)>,
}

/// What one request did on both sides, judged by the oracle.
#[derive(Clone, Debug)]
pub struct Judged {
    pub verdict: Verdict,
    pub peerguard: Answer,
    /// RBAC on the request as peerguard sees it (`verdict.for_rbac`, else the request itself).
    pub rbac: Answer,
    /// RBAC on the raw request, when that differs: whether a documented difference showed.
    pub rbac_raw: Option<Answer>,
    pub ok: bool,
}

/// Envoy's own answer to a request without filters, cached across policies: the target it
/// forwards, or the status it refuses the request with.
pub type ProbeCache = HashMap<String, std::result::Result<String, u16>>;

impl Running {
    /// The request on the listener without filters (no certificate, no SNI: those never make
    /// Envoy refuse one): the target Envoy forwards, or the status it refuses the request with.
    fn probe(&self, clients: &Clients, cache: &mut ProbeCache, req: &Req) -> Result<std::result::Result<String, u16>> {
        let probe = Req { peer: None, sni: None, port: 443, ..req.clone() };
        let key = format!("{} {} {} {:?}", probe.method, probe.path, probe.host, probe.headers);
        if let Some(hit) = cache.get(&key) {
            return Ok(hit.clone());
        }
        let a = clients.send(self.probe, &probe)?;
        let result = match a.upstream_path {
            Some(p) if a.status == 200 => Ok(p),
            _ => Err(a.status),
        };
        cache.insert(key, result.clone());
        Ok(result)
    }

    /// Sends `req` to policy `k`'s two listeners and judges the answers.
    pub fn judge(&self, clients: &Clients, cache: &mut ProbeCache, k: usize, doc: &Value, req: &Req) -> Result<Judged> {
        let (rbac_port, pg_port) = *self.pairs.get(k).ok_or_else(|| anyhow!("no listener pair {k}"))?;
        let forwarded = self.probe(clients, cache, req)?;
        let verdict = oracle(doc, req, forwarded.as_deref().map_err(|s| *s));
        let peerguard = clients.send(pg_port, req)?;
        let rbac = clients.send(rbac_port, verdict.for_rbac.as_ref().unwrap_or(req))?;
        let rbac_raw = match &verdict.for_rbac {
            Some(_) => Some(clients.send(rbac_port, req)?),
            None => None,
        };
        let (p, r) = (peerguard.status, rbac.status);
        let ok = match verdict.expect {
            Expect::Same => p == r,
            Expect::Status(s, _) => p == s,
            Expect::SameOrStricter => p == r || (p == 403 && r == 200),
            Expect::Envoy(s) => p == s && r == s,
        };
        Ok(Judged { verdict, peerguard, rbac, rbac_raw, ok })
    }
}

// ---------------------------------------------------------------------------------------------
// Shrinking.

/// Every document one step smaller than `doc`, with the path of what was removed: one array
/// element or one object key less, anywhere under `policies` (names, keys, actions and the
/// `source`/`operation` wrappers stay). Bigger steps (a policy, a rule) come first.
fn smaller_docs(doc: &Value) -> Vec<(Vec<PathStep>, Value)> {
    let mut out = Vec::new();
    let mut paths = Vec::new();
    collect_paths(&doc["policies"], &mut vec![PathStep::Key("policies".into())], &mut paths);
    paths.sort_by_key(Vec::len);
    for p in paths {
        let mut d = doc.clone();
        if remove_at(&mut d, &p) {
            out.push((p, d));
        }
    }
    out
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum PathStep {
    Key(String),
    Index(usize),
}

fn collect_paths(v: &Value, at: &mut Vec<PathStep>, out: &mut Vec<Vec<PathStep>>) {
    match v {
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                at.push(PathStep::Index(i));
                out.push(at.clone());
                collect_paths(item, at, out);
                at.pop();
            }
        }
        Value::Object(map) => {
            for (k, item) in map {
                at.push(PathStep::Key(k.clone()));
                if !matches!(k.as_str(), "name" | "key" | "source" | "operation" | "action") {
                    out.push(at.clone());
                }
                collect_paths(item, at, out);
                at.pop();
            }
        }
        _ => {}
    }
}

fn remove_at(v: &mut Value, path: &[PathStep]) -> bool {
    let Some((last, parents)) = path.split_last() else { return false };
    let mut cur = v;
    for step in parents {
        cur = match step {
            PathStep::Key(k) => match cur.get_mut(k.as_str()) {
                Some(x) => x,
                None => return false,
            },
            PathStep::Index(i) => match cur.get_mut(*i) {
                Some(x) => x,
                None => return false,
            },
        };
    }
    match (last, cur) {
        (PathStep::Key(k), Value::Object(m)) => m.remove(k.as_str()).is_some(),
        (PathStep::Index(i), Value::Array(a)) if *i < a.len() => {
            a.remove(*i);
            true
        }
        _ => false,
    }
}

/// `doc` without everything at `paths` (later elements first, so earlier paths stay valid;
/// what lies under another removed path goes with it).
fn remove_all(doc: &Value, paths: &[&Vec<PathStep>]) -> Value {
    let mut sorted: Vec<&Vec<PathStep>> = paths.to_vec();
    sorted.sort();
    sorted.dedup();
    let mut d = doc.clone();
    for p in sorted.iter().rev() {
        let under_another = sorted.iter().any(|q| q.len() < p.len() && p.starts_with(q));
        if !under_another {
            remove_at(&mut d, p);
        }
    }
    d
}

/// The request one step simpler, each with what changed.
fn simpler_requests(req: &Req) -> Vec<Req> {
    let mut out = Vec::new();
    let mut push = |r: Req| {
        if r != *req && !out.contains(&r) {
            out.push(r);
        }
    };
    for i in 0..req.headers.len() {
        let mut r = req.clone();
        r.headers.remove(i);
        push(r);
    }
    // Each step goes one way only (towards none, `web`, `/`, ...), so shrinking cannot cycle.
    push(Req { sni: None, ..req.clone() });
    push(Req { peer: None, ..req.clone() });
    if req.peer.is_some() {
        push(Req { peer: peer_index("web"), ..req.clone() });
    }
    if let Some((path, _)) = req.path.split_once('?') {
        push(Req { path: path.to_owned(), ..req.clone() });
    }
    push(Req { path: "/".into(), ..req.clone() });
    push(Req { host: "example.com".into(), ..req.clone() });
    push(Req { method: "GET".into(), ..req.clone() });
    push(Req { port: 443, ..req.clone() });
    out
}

/// All the simplifications in `simpler` applied together (each changes one part of `req`).
fn combine_requests(req: &Req, simpler: &[&Req]) -> Req {
    let mut out = req.clone();
    let mut dropped = Vec::new();
    for s in simpler {
        if s.headers.len() < req.headers.len() {
            dropped.extend((0..req.headers.len()).filter(|i| s.headers.get(*i) != req.headers.get(*i)).take(1));
        }
        if s.sni != req.sni {
            out.sni = s.sni.clone();
        }
        if s.peer != req.peer {
            out.peer = s.peer;
        }
        if s.path != req.path {
            out.path = s.path.clone();
        }
        if s.host != req.host {
            out.host = s.host.clone();
        }
        if s.method != req.method {
            out.method = s.method.clone();
        }
        if s.port != req.port {
            out.port = s.port;
        }
    }
    out.headers =
        req.headers.iter().enumerate().filter(|(i, _)| !dropped.contains(i)).map(|(_, h)| h.clone()).collect();
    out
}

/// Judges one request against one policy in a fresh Envoy (for pinned cases).
pub fn check_case(doc: &Value, req: &Req) -> Result<Judged> {
    let mut lab = Lab::new()?;
    let prepared = prepare(doc)?;
    let run = lab.start(&[&prepared])?;
    let mut cache = ProbeCache::new();
    run.judge(lab.clients(), &mut cache, 0, doc, req)
}

/// Shrinks a disagreement. Each round judges every one-step-smaller policy (a policy, rule,
/// source, field or value less) with the current request and every one-step-simpler request
/// with the current policy, in as few Envoys as fit, then tries all the steps that still
/// disagreed together; that, or else the first such step, is the next case. Bounded in rounds
/// and time: a shrink that stops early still reports a case that disagrees.
pub fn shrink(lab: &mut Lab, cache: &mut ProbeCache, doc: &Value, req: &Req) -> Result<(Prepared, Req, Judged, usize)> {
    const CHUNK: usize = 40;
    const MAX_ROUNDS: usize = 40;
    let budget = Duration::from_secs(300);
    let started = Instant::now();
    let mut cur = prepare(doc)?;
    let mut cur_req = req.clone();
    let mut rounds = 0;
    while rounds < MAX_ROUNDS && started.elapsed() < budget {
        rounds += 1;
        let smaller: Vec<(Vec<PathStep>, Prepared)> =
            smaller_docs(&cur.doc).into_iter().filter_map(|(p, d)| prepare(&d).ok().map(|d| (p, d))).collect();
        let mut failing_docs: Vec<usize> = Vec::new();
        let mut failing_reqs: Vec<Req> = Vec::new();
        let mut offset = 0;
        loop {
            let chunk: Vec<&Prepared> = smaller.iter().skip(offset).take(CHUNK).map(|(_, p)| p).collect();
            let mut all = vec![&cur];
            all.extend(chunk.iter().copied());
            let run = lab.start(&all)?;
            if offset == 0 {
                for r in simpler_requests(&cur_req) {
                    if !run.judge(lab.clients(), cache, 0, &cur.doc, &r)?.ok {
                        failing_reqs.push(r);
                    }
                }
            }
            for (i, p) in chunk.iter().enumerate() {
                if !run.judge(lab.clients(), cache, i + 1, &p.doc, &cur_req)?.ok {
                    failing_docs.push(offset + i);
                }
            }
            offset += CHUNK;
            if offset >= smaller.len() || started.elapsed() >= budget {
                break;
            }
        }
        if failing_docs.is_empty() && failing_reqs.is_empty() {
            break;
        }
        // Every step that still disagreed, together: usually the whole way down at once.
        let paths: Vec<&Vec<PathStep>> = failing_docs.iter().filter_map(|i| smaller.get(*i)).map(|(p, _)| p).collect();
        let all_reqs: Vec<&Req> = failing_reqs.iter().collect();
        let combined_doc = if paths.len() > 1 { prepare(&remove_all(&cur.doc, &paths)).ok() } else { None };
        let combined_req = (failing_reqs.len() > 1).then(|| combine_requests(&cur_req, &all_reqs));
        if combined_doc.is_some() || combined_req.is_some() {
            let doc_try = combined_doc.clone().unwrap_or_else(|| cur.clone());
            let req_try = combined_req.clone().unwrap_or_else(|| cur_req.clone());
            let run = lab.start(&[&doc_try])?;
            if !run.judge(lab.clients(), cache, 0, &doc_try.doc, &req_try)?.ok {
                cur = doc_try;
                cur_req = req_try;
                continue;
            }
        }
        match (failing_docs.first().and_then(|i| smaller.get(*i)), failing_reqs.first()) {
            (Some((_, d)), _) => cur = d.clone(),
            (None, Some(r)) => cur_req = r.clone(),
            (None, None) => break,
        }
    }
    let run = lab.start(&[&cur])?;
    let judged = run.judge(lab.clients(), cache, 0, &cur.doc, &cur_req)?;
    Ok((cur, cur_req, judged, rounds))
}

// ---------------------------------------------------------------------------------------------
// The run.

/// What to run, from the environment.
#[derive(Clone, Debug)]
pub struct Config {
    /// Random policy documents (`PEERGUARD_DIFF_POLICIES`).
    pub policies: usize,
    /// Requests per policy (`PEERGUARD_DIFF_REQUESTS`).
    pub requests: usize,
    /// `PEERGUARD_DIFF_SEED`.
    pub seed: u64,
    /// Policies per Envoy.
    pub batch: usize,
    /// `PEERGUARD_DIFF_POLICY_FILE`: one given policy instead of random ones.
    pub file: Option<PathBuf>,
}

impl Config {
    /// Defaults for `just test`, overridden by the environment.
    pub fn from_env(default_policies: usize) -> Result<Config> {
        let num = |name: &str, default: u64| -> Result<u64> {
            match std::env::var(name) {
                Ok(v) if !v.trim().is_empty() => {
                    v.trim().parse().with_context(|| format!("{name}={v:?} is not a number"))
                }
                _ => Ok(default),
            }
        };
        let file = std::env::var_os("PEERGUARD_DIFF_POLICY_FILE").filter(|f| !f.is_empty()).map(PathBuf::from);
        let default_requests = if file.is_some() { 400 } else { 16 };
        Ok(Config {
            policies: usize::try_from(num("PEERGUARD_DIFF_POLICIES", default_policies as u64)?)?,
            requests: usize::try_from(num("PEERGUARD_DIFF_REQUESTS", default_requests)?)?,
            seed: num("PEERGUARD_DIFF_SEED", 20261204)?,
            batch: usize::try_from(num("PEERGUARD_DIFF_BATCH", 40)?)?.max(1),
            file,
        })
    }
}

/// The outcome of a run.
#[derive(Debug, Default)]
pub struct Report {
    pub policies: usize,
    pub requests: usize,
    pub envoy_starts: usize,
    /// Documented difference → (requests it applied to, requests where the raw request made RBAC
    /// and peerguard answer differently).
    pub differences: BTreeMap<&'static str, (usize, usize)>,
    /// Expectations met, by kind.
    pub expectations: BTreeMap<String, usize>,
    /// Disagreements found (before shrinking).
    pub disagreements: usize,
    /// The first disagreement, shrunk and described.
    pub failure: Option<String>,
    pub elapsed: Duration,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "diff-istio: {} policies, {} requests (each to peerguard and to RBAC), {} Envoy starts, {:.1}s, {} disagreements",
            self.policies,
            self.requests,
            self.envoy_starts,
            self.elapsed.as_secs_f64(),
            self.disagreements
        )?;
        writeln!(f, "  expectations: {:?}", self.expectations)?;
        writeln!(f, "  documented differences (requests it applied to / of those, RBAC on the raw request answered differently):")?;
        for (k, (applied, showed)) in &self.differences {
            writeln!(f, "    {k}: {applied} / {showed}")?;
        }
        Ok(())
    }
}

/// The work list: random documents, or the one from the file.
fn documents(cfg: &Config) -> Result<(Vec<Prepared>, Vec<Value>, bool)> {
    if let Some(path) = &cfg.file {
        // Loaded as every `peerguard` command loads a policy: an invalid one fails here, with its paths.
        let doc = peerguard_cli::policy_file::PolicyFile::load(path)?.value;
        let (prepared, strict) = prepare_file(&doc).with_context(|| format!("{}", path.display()))?;
        return Ok((vec![prepared], vec![doc], strict));
    }
    let mut rng = Rng::new(cfg.seed);
    let mut out = Vec::new();
    let mut tries = 0;
    while out.len() < cfg.policies {
        tries += 1;
        if tries > cfg.policies * 50 + 100 {
            bail!("the generator made only {} valid policies in {tries} tries", out.len());
        }
        let doc = generate_policy(&mut rng);
        if let Ok(p) = prepare(&doc) {
            out.push(p);
        }
    }
    let docs = out.iter().map(|p| p.doc.clone()).collect();
    Ok((out, docs, false))
}

/// A user's policy (`PEERGUARD_DIFF_POLICY_FILE`). `mtls: strict` is Istio's PeerAuthentication,
/// not RBAC: such a policy is rendered as `permissive` and only requests with a client
/// certificate are sent (under strict, Istio refuses the others in the TLS handshake). Anything
/// else RBAC cannot express is an error naming it.
pub fn prepare_file(doc: &Value) -> Result<(Prepared, bool)> {
    let strict = doc.get("mtls").and_then(Value::as_str) != Some("permissive");
    let mut for_rbac = doc.clone();
    if let Some(o) = for_rbac.as_object_mut() {
        o.insert("mtls".into(), "permissive".into());
    }
    let mut prepared = prepare(&for_rbac)?;
    let mut pg = doc.clone();
    pg["denyResponse"] = json!({"exposeReason": true});
    prepared.pg_json = pg.to_string();
    Ok((prepared, strict))
}

/// Runs the differential test; `Err` only for a broken harness (no Envoy, no module, a port).
pub fn run(cfg: &Config) -> Result<Report> {
    let started = Instant::now();
    let mut lab = Lab::new()?;
    let (prepared, docs, strict) = documents(cfg)?;
    let mut report = Report { policies: prepared.len(), ..Report::default() };
    let mut rng = Rng::new(cfg.seed ^ 0x5EED);
    let mut cache = ProbeCache::new();
    let mut failures: Vec<(usize, Value, Req, Judged)> = Vec::new();
    for (b, batch) in prepared.chunks(cfg.batch).enumerate() {
        let refs: Vec<&Prepared> = batch.iter().collect();
        let t0 = Instant::now();
        let running = lab.start(&refs)?;
        let t1 = Instant::now();
        for (k, p) in batch.iter().enumerate() {
            let doc = docs.get(b * cfg.batch + k).unwrap_or(&p.doc);
            for _ in 0..cfg.requests {
                let mut req = generate_request(&mut rng, doc);
                if strict && req.peer.is_none() {
                    req.peer = Some(rng.below(PEERS.len()));
                }
                let j = running.judge(lab.clients(), &mut cache, k, doc, &req)?;
                report.requests += 1;
                let kind = match &j.verdict.expect {
                    Expect::Same => "same".to_owned(),
                    Expect::Status(s, why) => format!("{s} {why}"),
                    Expect::SameOrStricter => "same or stricter".to_owned(),
                    Expect::Envoy(s) => format!("Envoy {s}"),
                };
                *report.expectations.entry(kind).or_default() += 1;
                let showed = match &j.rbac_raw {
                    Some(raw) => raw.status != j.peerguard.status,
                    None => j.rbac.status != j.peerguard.status,
                };
                for d in &j.verdict.applies {
                    let e = report.differences.entry(*d).or_default();
                    e.0 += 1;
                    e.1 += usize::from(showed);
                }
                if !j.ok {
                    report.disagreements += 1;
                    if failures.len() < 30 {
                        // The rendered form (a policy file's `mtls: strict` made permissive), so
                        // that shrinking can render every smaller policy.
                        failures.push((b * cfg.batch + k, p.doc.clone(), req.clone(), j));
                    }
                }
            }
        }
        eprintln!(
            "diff-istio: batch {b}: {} policies, Envoy ready in {:.1}s, requests {:.1}s",
            batch.len(),
            (t1 - t0).as_secs_f64(),
            t1.elapsed().as_secs_f64()
        );
    }
    report.envoy_starts = lab.starts;
    if let Some((_, doc, req, _)) = failures.first() {
        let mut text = describe_failure(&mut lab, &mut cache, doc, req, report.disagreements)?;
        text.push_str(&format!("\nall disagreements as found (first {}, not shrunk):\n", failures.len()));
        for (i, _, r, j) in &failures {
            text.push_str(&format!(
                "  policy #{i}: {} {} host {:?} port {} peer {} headers {:?}: peerguard {}, RBAC {} (applies {:?})\n",
                r.method,
                r.path,
                r.host,
                r.port,
                r.peer.and_then(|p| PEERS.get(p)).map_or("none", |p| p.name),
                r.headers,
                j.peerguard,
                j.rbac,
                j.verdict.applies
            ));
        }
        report.failure = Some(text);
        report.envoy_starts = lab.starts;
    }
    report.elapsed = started.elapsed();
    Ok(report)
}

fn describe_failure(lab: &mut Lab, cache: &mut ProbeCache, doc: &Value, req: &Req, total: usize) -> Result<String> {
    let (p, r, j, rounds) = shrink(lab, cache, doc, req)?;
    let filters = serde_yaml::to_string(&Value::Array(p.filters.clone())).unwrap_or_default();
    let policy = serde_yaml::to_string(&p.doc).unwrap_or_default();
    let expect = match &j.verdict.expect {
        Expect::Same => "the same status on both sides".to_owned(),
        Expect::Status(s, why) => format!("peerguard answers {s} ({why}), whatever RBAC does"),
        Expect::SameOrStricter => "the same status, or peerguard 403 where RBAC allows".to_owned(),
        Expect::Envoy(s) => format!("Envoy refuses with {s} on both sides"),
    };
    let as_rbac_sees_it = match &j.verdict.for_rbac {
        Some(t) => format!("\nrequest as sent to RBAC (what peerguard sees, by the oracle):\n{t}"),
        None => String::new(),
    };
    let reproduced =
        if j.ok { "\n(NOTE: the shrunk case agreed when run again: the disagreement may be flaky)" } else { "" };
    Ok(format!(
        "{total} requests disagreed; the first one, shrunk in {rounds} rounds:{reproduced}\n\
         policy (peerguard):\n{policy}\
         request:\n{req}{as_rbac_sees_it}\n\
         oracle: {expect} (documented differences that apply: {:?})\n\
         peerguard: {}\n\
         RBAC:      {}{}\n\
         rendered RBAC filters (peerguard render rbac):\n{filters}",
        j.verdict.applies,
        j.peerguard,
        j.rbac,
        j.rbac_raw.as_ref().map(|a| format!("\nRBAC on the raw request: {a}")).unwrap_or_default(),
        req = r,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_form_follows_the_spec() {
        assert_eq!(normal_form("/a//b/./c/../d").unwrap(), "/a/b/d");
        assert_eq!(normal_form("/%61%2e%7e%3b").unwrap(), "/a.~%3B");
        assert_eq!(normal_form("/x/%2e%2e/y").unwrap(), "/y");
        assert_eq!(normal_form("/..").unwrap(), "/");
        assert_eq!(normal_form("/a%2Fb"), Err("escaped slash"));
        assert_eq!(normal_form("/a%5cb"), Err("escaped slash"));
        assert_eq!(normal_form("/a\\b"), Err("backslash"));
        assert_eq!(normal_form("/a;b"), Err("path parameter"));
        assert_eq!(normal_form("/a%zz"), Err("malformed escape"));
        assert_eq!(normal_form("/a%7F"), Err("escaped control character"));
    }

    #[test]
    fn hosts_lose_port_case_and_one_trailing_dot() {
        assert_eq!(host_as_peerguard_sees_it("Api.Example.com.:8080"), "api.example.com");
        assert_eq!(host_as_peerguard_sees_it("example.com.."), "example.com.");
        assert_eq!(host_as_peerguard_sees_it("example.com"), "example.com");
    }

    #[test]
    fn the_generator_is_deterministic_and_mostly_valid() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        let docs: Vec<Value> = (0..50).map(|_| generate_policy(&mut a)).collect();
        assert_eq!(docs, (0..50).map(|_| generate_policy(&mut b)).collect::<Vec<_>>());
        let valid = docs.iter().filter(|d| prepare(d).is_ok()).count();
        assert!(valid >= 35, "only {valid} of 50 generated policies render");
    }

    #[test]
    fn the_oracle_names_each_documented_difference() {
        let doc = json!({"mtls": "permissive", "policies": [{"name": "d", "action": "DENY", "rules": [
            {"to": [{"operation": {"paths": ["/admin"]}}], "when": [{"key": "request.headers[x-env]", "values": ["prod"]}]}]}]});
        let base = Req {
            peer: peer_index("web"),
            sni: None,
            port: 443,
            method: "GET".into(),
            path: "/admin".into(),
            host: "Example.com.:8080".into(),
            headers: vec![("x-env".into(), "a".into()), ("x-env".into(), "prod".into())],
        };
        let v = oracle(&doc, &base, Ok("/admin"));
        assert_eq!(v.expect, Expect::SameOrStricter);
        assert!(v.applies.contains(&REPEATED_DOCUMENTED));
        assert_eq!(v.for_rbac.as_ref().map(|r| r.host.as_str()), Some("example.com"));
        let bad = Req { path: "/admin%2F".into(), ..base.clone() };
        assert_eq!(oracle(&doc, &bad, Ok("/admin%2F")).expect, Expect::Status(400, "invalid_path"));
        let invalid_id = Req { peer: peer_index("two-spiffe"), headers: Vec::new(), ..base.clone() };
        assert_eq!(oracle(&doc, &invalid_id, Ok("/admin")).expect, Expect::Status(403, "invalid_identity"));
        assert_eq!(oracle(&doc, &base, Err(400)).expect, Expect::Envoy(400));
    }

    #[test]
    fn shrinking_removes_one_thing_at_a_time() {
        let doc = json!({"mtls": "permissive", "policies": [{"name": "a", "rules": [{"to": [{"operation": {"methods": ["GET", "POST"]}}]}]}]});
        let smaller: Vec<Value> = smaller_docs(&doc).into_iter().map(|(_, d)| d).collect();
        assert!(smaller.contains(&json!({"mtls": "permissive", "policies": []})));
        assert!(smaller.contains(
            &json!({"mtls": "permissive", "policies": [{"name": "a", "rules": [{"to": [{"operation": {"methods": ["POST"]}}]}]}]})
        ));
        assert!(smaller.contains(&json!({"mtls": "permissive", "policies": [{"name": "a", "rules": [{}]}]})));
        let unnamed = |d: &Value| d["policies"].as_array().unwrap().iter().any(|p| p.get("name").is_none());
        assert!(!smaller.iter().any(unnamed), "a policy lost its name");
        // Several removals at once: later paths first, nested ones only once.
        let paths = [
            vec![
                PathStep::Key("policies".into()),
                PathStep::Index(0),
                PathStep::Key("rules".into()),
                PathStep::Index(0),
                PathStep::Key("to".into()),
                PathStep::Index(0),
                PathStep::Key("operation".into()),
                PathStep::Key("methods".into()),
                PathStep::Index(1),
            ],
            vec![
                PathStep::Key("policies".into()),
                PathStep::Index(0),
                PathStep::Key("rules".into()),
                PathStep::Index(0),
                PathStep::Key("to".into()),
                PathStep::Index(0),
                PathStep::Key("operation".into()),
                PathStep::Key("methods".into()),
                PathStep::Index(0),
            ],
        ];
        let both = remove_all(&doc, &paths.iter().collect::<Vec<_>>());
        assert_eq!(both["policies"][0]["rules"][0]["to"][0]["operation"]["methods"], json!([]));
    }
}
