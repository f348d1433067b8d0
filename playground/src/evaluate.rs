//! One playground evaluation: policy text, peer and request in; decision, certificate facts, matched rules and errors out.
//!
//! The peer goes through `resolve_peer`, `Engine::prepare` and `Engine::decide`, the calls
//! `peerguard check` and the filter make, so the page answers as Envoy would.

use peerguard_policy::explain::RuleRef;
use peerguard_policy::load::{LoadedPolicy, Syntax};
use peerguard_policy::{
    pem_certificates, resolve_peer, CertFacts, ConfigErrors, Decision, Peer, PeerEvidence, PolicyDocument,
    PreparedCert, Reason, Request, ResolvedPeer,
};
use serde::{Deserialize, Serialize};

use crate::certs::{leaf_pem, LeafSpec, DEFAULT_ISSUER};

/// What the page sends.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Input {
    /// The policy document, YAML or JSON.
    pub policy: String,
    /// The peer.
    pub peer: PeerInput,
    /// The request.
    pub request: RequestInput,
    /// The time of the request, Unix seconds.
    pub at: i64,
}

/// The peer as the page describes it.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct PeerInput {
    /// `none` (plaintext), `principal` (a certificate made here) or `pem`.
    pub kind: String,
    /// For `principal`.
    pub principal: String,
    /// For `principal`: the CA's DN (default `O=cluster.local`).
    pub issuer: String,
    /// For `principal`: the lifetime (default `24h`).
    pub lifetime: String,
    /// For `pem`: the leaf, perhaps followed by intermediates.
    pub pem: String,
    /// For `pem`: more intermediates (XFCC `Chain=`).
    pub chain: String,
}

/// The request as the page describes it (text fields).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct RequestInput {
    /// `:method`.
    pub method: String,
    /// `:path`, with any query.
    pub path: String,
    /// `:authority`.
    pub host: String,
    /// The destination port; empty for none.
    pub port: String,
    /// `NAME: VALUE` lines.
    pub headers: String,
    /// The TLS SNI; empty for none.
    pub sni: String,
}

/// An error with where it is.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Problem {
    /// `policies[0].rules[1].to[0].operation.paths[0]`, `request.port`, ...
    pub path: String,
    /// What is wrong.
    pub message: String,
}

fn problem(path: impl Into<String>, message: impl Into<String>) -> Problem {
    Problem { path: path.into(), message: message.into() }
}

/// The decision in `peerguard check`'s terms, plus the response the filter would send.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct DecisionOut {
    /// `allow` or `deny`.
    pub decision: &'static str,
    /// The deny reason.
    pub reason: Option<&'static str>,
    /// The policy or certificate rule that decided, or the ALLOW policy that allowed.
    pub policy: Option<String>,
    /// The verified principal.
    pub principal: Option<String>,
    /// A dry-run policy (or `mode: dryRun`) would have denied with this reason.
    pub would_deny: Option<&'static str>,
    /// AUDIT policies that matched.
    pub audit: Vec<String>,
    /// The `:path` sent upstream, when it differs from the request's.
    pub forwarded_path: Option<String>,
    /// Why the path has no normal form.
    pub path_error: Option<String>,
    /// The HTTP status of the deny (400 for invalid_path, 503 for config_invalid).
    pub status: Option<u16>,
}

impl DecisionOut {
    fn new(d: &Decision, deny_status: u16) -> DecisionOut {
        let code = d.reason().map(Reason::code);
        DecisionOut {
            decision: if d.allowed() { "allow" } else { "deny" },
            reason: if d.allowed() { None } else { code },
            policy: d.policy.as_deref().map(str::to_owned),
            principal: d.principal().map(str::to_owned),
            would_deny: if d.allowed() && d.dry_run() { code } else { None },
            audit: d.audit.iter().map(|a| a.to_string()).collect(),
            forwarded_path: d.path_rewrite.clone(),
            path_error: d.path_error.map(|e| e.to_string()),
            status: (!d.allowed()).then_some(match d.reason() {
                Some(Reason::InvalidPath) => 400,
                Some(Reason::ConfigInvalid) => 503,
                _ => deny_status,
            }),
        }
    }
}

/// Every fact of the certificate that the engine reads.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CertOut {
    /// Subject DN, RFC 4514.
    pub subject: String,
    /// Issuer DN, RFC 4514.
    pub issuer: String,
    /// URI SANs.
    pub uri_sans: Vec<String>,
    /// DNS SANs.
    pub dns_sans: Vec<String>,
    /// notBefore, Unix seconds.
    pub not_before: i64,
    /// notAfter, Unix seconds.
    pub not_after: i64,
    /// notAfter - notBefore, seconds.
    pub lifetime_secs: i64,
    /// The key (`ecdsaP256`, `rsa2048`, ...).
    pub key: String,
    /// Serial, lower-case hex.
    pub serial: String,
    /// SHA-256 of the DER, hex (`cert.sha256`, Envoy's `verify_certificate_hash`).
    pub sha256: String,
    /// SHA-256 of the SPKI, base64 (`cert.spki.sha256`).
    pub spki_sha256: String,
    /// Whether the EKU allows clientAuth; absent without an EKU extension.
    pub client_auth: Option<bool>,
    /// Issuer DN equals subject DN.
    pub self_issued: bool,
    /// The identity the policy's `identity` sources give.
    pub identity: Option<IdentityOut>,
    /// Why the identity is invalid (`invalid_identity`).
    pub identity_error: Option<&'static str>,
    /// Intermediates presented with the leaf.
    pub presented_chain: usize,
}

/// The identity of the certificate.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct IdentityOut {
    /// The principal.
    pub principal: String,
    /// Its trust domain, when it has one.
    pub trust_domain: Option<String>,
    /// Which source gave it (`spiffe`, `dns`, `subject`).
    pub source: String,
}

fn cert_out(p: &PreparedCert, chain: usize) -> CertOut {
    let f: &CertFacts = &p.facts;
    let (identity, identity_error) = match &p.identity {
        Ok(Some(i)) => (
            Some(IdentityOut {
                principal: i.principal.clone(),
                trust_domain: i.trust_domain.clone(),
                source: serde_json::to_value(i.source)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
            }),
            None,
        ),
        Ok(None) => (None, None),
        Err(r) => (None, Some(r.code())),
    };
    CertOut {
        subject: f.subject.clone(),
        issuer: f.issuer.clone(),
        uri_sans: f.uri_sans.clone(),
        dns_sans: f.dns_sans.clone(),
        not_before: f.not_before,
        not_after: f.not_after,
        lifetime_secs: f.lifetime_secs(),
        key: f.key.to_string(),
        serial: f.serial_hex.clone(),
        sha256: f.sha256_hex.clone(),
        spki_sha256: f.spki_sha256_b64.clone(),
        client_auth: f.eku_allows_client_auth,
        self_issued: f.self_issued,
        identity,
        identity_error,
        presented_chain: chain,
    }
}

/// A rule whose conditions held.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct RuleOut {
    /// `policies[i].rules[j]`.
    pub path: String,
    /// The policy's name.
    pub policy: String,
}

/// What the page shows.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Output {
    /// `2 policies, 3 rules, 0 certificate rules (mode enforce, mtls strict)` for a valid policy.
    pub summary: Option<String>,
    /// Policy errors, each with its path in the document.
    pub errors: Vec<Problem>,
    /// Problems with the request or the peer.
    pub input_errors: Vec<Problem>,
    /// The decision (`config_invalid` while the policy is invalid, as in the filter).
    pub decision: Option<DecisionOut>,
    /// The certificate's facts, when there is a parsed certificate.
    pub certificate: Option<CertOut>,
    /// Why the certificate does not parse (`invalid_certificate`).
    pub certificate_error: Option<String>,
    /// The PEM made for a principal.
    pub generated_pem: Option<String>,
    /// The policy rules whose conditions held.
    pub matched_rules: Vec<RuleOut>,
    /// The certificate rules whose `to` matched.
    pub certificate_rules: Vec<String>,
    /// Trust anchors expired or expiring at this time.
    pub warnings: Vec<String>,
}

/// The policy as `peerguard` loads a file: the JSON string the filter would receive, compiled.
fn load(text: &str) -> Result<LoadedPolicy, ConfigErrors> {
    LoadedPolicy::from_text(text, Syntax::of("", text))
}

fn summary(doc: &PolicyDocument) -> String {
    let rules: usize = doc.policies.iter().map(|p| p.rules.as_ref().map_or(0, Vec::len)).sum();
    let plural = |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let name = |v: serde_json::Result<serde_json::Value>| {
        v.ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
    };
    format!(
        "{}, {}, {} (mode {}, mtls {})",
        plural(doc.policies.len(), "policy", "policies"),
        plural(rules, "rule", "rules"),
        plural(doc.certificate_rules.len(), "certificate rule", "certificate rules"),
        name(serde_json::to_value(doc.mode)),
        name(serde_json::to_value(doc.mtls)),
    )
}

/// `NAME: VALUE` lines; blank lines are skipped.
fn headers(text: &str, errors: &mut Vec<Problem>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            errors.push(problem(format!("request.headers (line {})", i + 1), format!("{line:?} is not NAME: VALUE")));
            continue;
        };
        let name = name.trim();
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic() && b != b':') {
            errors.push(problem(format!("request.headers (line {})", i + 1), format!("{name:?} is not a header name")));
            continue;
        }
        out.push((name.to_ascii_lowercase(), value.trim().to_owned()));
    }
    out
}

/// Evaluates one input.
pub fn evaluate(input: &Input) -> Output {
    let mut out = Output::default();
    let engine = match load(&input.policy) {
        Ok(loaded) => {
            out.summary = Some(summary(&loaded.document));
            Some(loaded.engine)
        }
        Err(errors) => {
            out.errors = errors.iter().map(|e| problem(e.path.clone(), e.message.clone())).collect();
            None
        }
    };

    let r = &input.request;
    let port = match r.port.trim() {
        "" => None,
        p => match p.parse::<u32>() {
            Ok(n) if (1..=65535).contains(&n) => Some(n),
            _ => {
                out.input_errors.push(problem("request.port", format!("{p:?} is not a port (1-65535)")));
                None
            }
        },
    };
    let headers = headers(&r.headers, &mut out.input_errors);
    let sni = Some(r.sni.trim()).filter(|s| !s.is_empty());
    let req = Request { method: &r.method, path: &r.path, host: &r.host, port, sni, headers: &headers };

    // The peer's evidence, as `check --cert/--chain` gives it.
    let p = &input.peer;
    let evidence: Option<(Vec<u8>, Vec<Vec<u8>>)> = match p.kind.as_str() {
        "principal" => {
            let issuer = Some(p.issuer.trim()).filter(|s| !s.is_empty()).unwrap_or(DEFAULT_ISSUER);
            let lifetime = match Some(p.lifetime.trim()).filter(|s| !s.is_empty()) {
                None => Ok(24 * 3600),
                Some(l) => peerguard_policy::Duration::parse(l)
                    .map_err(|e| format!("{l:?}: {e}"))
                    .and_then(|d| i64::try_from(d.as_secs()).map_err(|_| format!("{l:?} is too long"))),
            };
            match lifetime {
                Err(e) => {
                    out.input_errors.push(problem("peer.lifetime", e));
                    None
                }
                Ok(lifetime_secs) => {
                    let spec = LeafSpec { principal: &p.principal, issuer, lifetime_secs, at: input.at };
                    match leaf_pem(&spec) {
                        Ok(pem) => {
                            out.generated_pem = Some(pem.clone());
                            Some((pem.into_bytes(), Vec::new()))
                        }
                        Err(e) => {
                            out.input_errors.push(problem("peer.principal", e));
                            None
                        }
                    }
                }
            }
        }
        "pem" => {
            let chain = if p.chain.trim().is_empty() {
                Vec::new()
            } else {
                match pem_certificates(p.chain.as_bytes()) {
                    Ok(c) => c,
                    Err(e) => {
                        out.input_errors.push(problem("peer.chain", format!("no PEM certificates: {e}")));
                        Vec::new()
                    }
                }
            };
            Some((p.pem.clone().into_bytes(), chain))
        }
        _ => None,
    };
    // A principal or chain the page cannot use leaves no decision to show.
    let peer_unusable = out.input_errors.iter().any(|e| e.path.starts_with("peer."));

    let Some(engine) = engine else {
        // As in the filter: every request is refused while the policy is invalid.
        out.decision = Some(DecisionOut::new(&Decision::config_invalid(), 503));
        return out;
    };
    if peer_unusable {
        return out;
    }
    out.warnings = engine.load_warnings(input.at);
    let status = engine.deny_response().status;
    let now = input.at;
    let (decision, explanation) = match evidence {
        None => (engine.decide(&req, &Peer::None, now), engine.explain(&req, &Peer::None, now)),
        Some((leaf, presented_chain)) => {
            let ev = PeerEvidence { digest: None, certificate_pem: Some(&leaf), xfcc: None, presented_chain };
            match resolve_peer(ev) {
                ResolvedPeer::Certificate { facts, chain } => {
                    let prepared = engine.prepare(*facts, &chain, now);
                    out.certificate = Some(cert_out(&prepared, chain.len()));
                    let peer = Peer::Certificate(&prepared);
                    (engine.decide(&req, &peer, now), engine.explain(&req, &peer, now))
                }
                ResolvedPeer::Unparseable(e) => {
                    out.certificate_error = Some(e.to_string());
                    (engine.decide(&req, &Peer::Unparseable, now), engine.explain(&req, &Peer::Unparseable, now))
                }
                ResolvedPeer::AttributesOnly => {
                    out.certificate_error = Some("no certificate in the PEM field".to_owned());
                    (engine.decide(&req, &Peer::Unparseable, now), engine.explain(&req, &Peer::Unparseable, now))
                }
            }
        }
    };
    out.decision = Some(DecisionOut::new(&decision, status));
    out.matched_rules =
        explanation.rules.iter().map(|r: &RuleRef| RuleOut { path: r.path(), policy: r.policy.to_string() }).collect();
    let names = engine.certificate_rule_names();
    out.certificate_rules = explanation
        .certificate_rules
        .iter()
        .map(|i| format!("certificateRules[{i}] ({})", names.get(*i).map(|n| &**n).unwrap_or("?")))
        .collect();
    out
}
