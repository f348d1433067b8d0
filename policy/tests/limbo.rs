//! External conformance check of chain verification against x509-limbo (issue 4; whole corpus
//! since the hardening issue).
//!
//! `tests/limbo/limbo.json` is a copy of the x509-limbo test vectors (see `tests/limbo/README.md`).
//! Every testcase that peerguard can express is run, with its CRLs:
//! - **CLIENT** cases go through the public engine API exactly as a request would: a policy
//!   `{certificate: {trustAnchors: <trusted_certs>, crls: <crls>}}` compiled by `Engine::from_json`,
//!   the case's `untrusted_intermediates` presented as the chain (as a bound XFCC `Chain=` would
//!   be), `Engine::prepare` + `Engine::decide` at the validation time. A policy that does not
//!   compile counts as a deny (the filter then denies every request); a leaf that does not parse
//!   is `Peer::Unparseable`, also a deny.
//! - **SERVER** cases go through `CertFacts::verify_chain_for_conformance`, the test-only entry of
//!   the same chain verifier with a serverAuth usage instead of clientAuth: the same compile step
//!   (trust anchors, CRLs), the same leaf checks as the engine's step 2 (validity, weak-key floor)
//!   and the same path building and revocation. peerguard never matches a peer's names (it
//!   authorizes on the identity in its policies), so for a case with an `expected_peer_name` the
//!   harness itself checks the name with rustls-webpki's `verify_is_valid_for_subject_name` after
//!   peerguard's verdict. The name check can only turn an allow into a deny; the summary counts
//!   the cases it decided.
//!
//! Skipped, with the reason printed: cases that need validator options peerguard has no setting
//! for (a maximum chain depth, a restricted set of signature algorithms, required key usages, or
//! an EKU other than the one of the case's kind).
//!
//! Validation time: the case's `validation_time` (RFC 3339) when set. x509-limbo's `null` means
//! "now"; the test uses a fixed "now", `DEFAULT_NOW` (2025-01-01T00:00:00Z), so the outcome never
//! depends on the clock. (The corpus' certificates for cases without a time are valid from 1970 to
//! 2969, apart from deliberately expired ones.)
//!
//! `conflicts_with`: a few cases come in pairs with the same inputs and opposite expectations (an
//! RFC 5280 reading and a webpki/CA-B Forum reading). peerguard can agree with one side only; the
//! side it diverges on is listed in `KNOWN_DIVERGENCES` with the reason, and the test checks that
//! its partner agrees.
//!
//! `KNOWN_DIVERGENCES` lists every case where peerguard disagrees with x509-limbo, with the
//! reason. The test fails when a case that is not listed diverges, when a listed case no longer
//! diverges (or is no longer run), and when a listed divergence is an allow of a case that expects
//! failure without being marked as allowed by PRODUCT.md or a `conflicts_with` pair. Run it with
//!
//!     cargo test -p peerguard-policy --test limbo -- --ignored --nocapture
//!
//! `just test` runs it (without `--nocapture`; the summary is printed on failure).

#![cfg(not(target_arch = "wasm32"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::collections::{BTreeMap, BTreeSet};

use peerguard_policy::{CertFacts, CertificateRequirements, Decision, Engine, Peer, Request};
use serde::Deserialize;
use serde_json::json;

/// 2025-01-01T00:00:00Z: "now" for cases whose `validation_time` is null.
const DEFAULT_NOW: i64 = 1_735_689_600;

/// Why a divergence is acceptable. An allow of a case that expects failure needs one of the
/// first two.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Grounds {
    /// PRODUCT.md asks for this verdict.
    Product,
    /// The case has a `conflicts_with` partner with the opposite expectation, and peerguard agrees
    /// with the partner.
    ConflictPair,
    /// peerguard is stricter than the case: it denies what the case expects to pass.
    Stricter,
}

/// Cases where peerguard's verdict differs from x509-limbo's expected result, with the reason.
const KNOWN_DIVERGENCES: &[(&str, Grounds, &str)] = &[
    (
        "pathlen::validation-ignores-pathlen-in-leaf",
        Grounds::Stricter,
        "the leaf is a CA certificate (basicConstraints cA=TRUE); RFC 5280 lets a CA certificate end a \
         path, but rustls-webpki rejects a CA certificate used as the end entity (CaUsedAsEndEntity), \
         so peerguard denies it (untrusted_chain). Stricter, and intended: a workload peer is never a CA",
    ),
    (
        "rfc5280::ca-as-leaf",
        Grounds::ConflictPair,
        "conflicts_with webpki::ca-as-leaf: peerguard follows webpki and refuses a CA certificate as the \
         end entity (CaUsedAsEndEntity): a workload peer is never a CA",
    ),
    (
        "webpki::eku::ee-without-eku",
        Grounds::ConflictPair,
        "conflicts_with rfc5280::eku::ee-without-eku: peerguard follows RFC 5280, where a leaf without \
         extKeyUsage may be used for any purpose, as PRODUCT.md says for requireClientAuth (\"EKU must \
         allow clientAuth when the EKU extension is present\")",
    ),
    (
        "webpki::nc::permitted-dns-match-noncritical",
        Grounds::ConflictPair,
        "conflicts_with rfc5280::nc::permitted-dns-match-noncritical: peerguard follows RFC 5280 section \
         4.2.1.10 (conforming CAs MUST mark nameConstraints critical), so the anchor is unusable",
    ),
    (
        "cve::cve-2024-0567",
        Grounds::Stricter,
        "the trusted \"Root A\" is cross-signed (issuer differs from subject) and has no \
         authorityKeyIdentifier, which RFC 5280 section 4.2.1.1 requires of every certificate a \
         conforming CA issues; peerguard does not use such an anchor. The same rule makes \
         rfc5280::aki::cross-signed-root-missing-aki fail as it expects: the two cases disagree on it",
    ),
    (
        "pathlen::self-issued-certs-pathlen",
        Grounds::Stricter,
        "rustls-webpki counts a self-issued intermediate against pathLenConstraint (RFC 5280 section \
         4.2.1.9 exempts it), so the path is too long for it (untrusted_chain)",
    ),
    (
        "rfc5280::nc::permitted-self-issued",
        Grounds::Stricter,
        "rustls-webpki applies name constraints to a self-issued intermediate (RFC 5280 section 6.1.3 \
         (b) exempts it), so the intermediate's SAN violates the root's constraint (untrusted_chain)",
    ),
    (
        "rfc5280::nc::permitted-dn-match",
        Grounds::Stricter,
        "rustls-webpki does not implement directoryName constraints and fails closed: a permitted \
         directoryName never matches (untrusted_chain)",
    ),
    (
        "rfc5280::nc::nc-permits-email-exact",
        Grounds::Stricter,
        "rustls-webpki does not implement rfc822Name constraints and fails closed: an email SAN under an \
         email constraint is a NameConstraintViolation (untrusted_chain)",
    ),
    (
        "rfc5280::nc::nc-permits-email-domain",
        Grounds::Stricter,
        "rustls-webpki does not implement rfc822Name constraints and fails closed (untrusted_chain)",
    ),
    (
        "rfc5280::nc::nc-permits-email-literal-asterisk-exact-match",
        Grounds::Stricter,
        "rustls-webpki does not implement rfc822Name constraints and fails closed (untrusted_chain)",
    ),
    (
        "rfc5280::nc::nc-permits-email-literal-double-asterisk",
        Grounds::Stricter,
        "rustls-webpki does not implement rfc822Name constraints and fails closed (untrusted_chain)",
    ),
    (
        "rfc5280::nc::nc-permits-email-literal-mid-asterisk",
        Grounds::Stricter,
        "rustls-webpki does not implement rfc822Name constraints and fails closed (untrusted_chain)",
    ),
    (
        "online::google.com",
        Grounds::Stricter,
        "the leaf has 137 SAN entries, over peerguard's budget of 128 per peer certificate \
         (MAX_SAN_ENTRIES, a parser DoS bound sized for workload certificates): invalid_certificate",
    ),
    (
        "online::microsoft.com",
        Grounds::Stricter,
        "the leaf has 163 SAN entries, over peerguard's budget of 128 per peer certificate \
         (MAX_SAN_ENTRIES): invalid_certificate",
    ),
    ("webpki::cn::ipv4-hex-mismatch", Grounds::Product, CN_IS_AN_IDENTITY),
    ("webpki::cn::ipv4-leading-zeros-mismatch", Grounds::Product, CN_IS_AN_IDENTITY),
    ("webpki::cn::ipv6-uppercase-mismatch", Grounds::Product, CN_IS_AN_IDENTITY),
    ("webpki::cn::ipv6-uncompressed-mismatch", Grounds::Product, CN_IS_AN_IDENTITY),
    ("webpki::cn::ipv6-non-rfc5952-mismatch", Grounds::Product, CN_IS_AN_IDENTITY),
    ("webpki::cn::punycode-not-in-san", Grounds::Product, CN_IS_AN_IDENTITY),
    ("webpki::cn::utf8-vs-punycode-mismatch", Grounds::Product, CN_IS_AN_IDENTITY),
    ("webpki::cn::not-in-san", Grounds::Product, CN_IS_AN_IDENTITY),
    ("webpki::cn::case-mismatch", Grounds::Product, CN_IS_AN_IDENTITY),
];

/// Why peerguard does not require a subject CN to copy a SAN (CA/B Forum BR 7.1.4.3, a rule for
/// TLS server certificates).
const CN_IS_AN_IDENTITY: &str = "the case expects a leaf refused because its subject CN is not a \
     character-for-character copy of a SAN (CA/B Forum BR 7.1.4.3, for TLS server certificates). \
     PRODUCT.md (\"Identity\") makes the CN an identity of its own (`identity: [subject]`, for private \
     CAs), independent of the SANs, so peerguard does not tie the two; x509-limbo's own SUCCESS cases \
     (e.g. rfc5280::nc::permitted-dns-match-more, CN example.com, not a SAN) rely on the same";

/// Limbo features that need a validator option peerguard does not expose.
const SKIP_FEATURES: &[(&str, &str)] = &[
    ("max-chain-depth", "needs a maximum chain depth setting"),
    (
        "pedantic-public-suffix-wildcard",
        "decided by matching a wildcard peer name against the public suffix list (peerguard never matches peer names)",
    ),
];

#[derive(Deserialize)]
struct Limbo {
    version: u32,
    testcases: Vec<Case>,
}

#[derive(Deserialize)]
struct PeerName {
    kind: String,
    value: String,
}

#[derive(Deserialize)]
struct Case {
    id: String,
    features: Option<Vec<String>>,
    validation_kind: String,
    trusted_certs: Vec<String>,
    untrusted_intermediates: Vec<String>,
    peer_certificate: String,
    validation_time: Option<String>,
    signature_algorithms: Option<Vec<String>>,
    key_usage: Option<Vec<String>>,
    extended_key_usage: Option<Vec<String>>,
    expected_result: String,
    expected_peer_name: Option<PeerName>,
    max_chain_depth: Option<u32>,
    #[serde(default)]
    crls: Vec<String>,
    #[serde(default)]
    conflicts_with: Vec<String>,
}

/// Why a case is not run, or `None` to run it.
fn skip_reason(case: &Case) -> Option<&'static str> {
    let features = case.features.iter().flatten();
    if let Some((_, why)) = features.flat_map(|f| SKIP_FEATURES.iter().filter(move |(n, _)| n == f)).next() {
        return Some(why);
    }
    if case.max_chain_depth.is_some() {
        return Some("needs a maximum chain depth setting");
    }
    if case.signature_algorithms.as_ref().is_some_and(|a| !a.is_empty()) {
        return Some("needs a restricted set of signature algorithms");
    }
    if case.key_usage.as_ref().is_some_and(|k| !k.is_empty()) {
        return Some("needs required key usages");
    }
    let own_eku = match case.validation_kind.as_str() {
        "CLIENT" => "clientAuth",
        "SERVER" => "serverAuth",
        _ => return Some("unknown validation_kind"),
    };
    if case.extended_key_usage.as_ref().is_some_and(|e| e.iter().any(|u| u != own_eku)) {
        return Some("needs an EKU other than the one of its validation kind");
    }
    None
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Unix seconds of an RFC 3339 timestamp (`YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`).
fn rfc3339(s: &str) -> i64 {
    let bad = || panic!("validation_time {s:?} is not RFC 3339");
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        bad();
    }
    let num = |r: std::ops::Range<usize>| s.get(r).and_then(|t| t.parse::<i64>().ok()).unwrap_or_else(&bad);
    let (y, mo, d, h, mi, se) = (num(0..4), num(5..7), num(8..10), num(11..13), num(14..16), num(17..19));
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        rest = frac.trim_start_matches(|c: char| c.is_ascii_digit());
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6 && (rest.starts_with('+') || rest.starts_with('-')) => {
            let oh: i64 = rest[1..3].parse().unwrap_or_else(|_| bad());
            let om: i64 = rest[4..6].parse().unwrap_or_else(|_| bad());
            let sign = if rest.starts_with('-') { -1 } else { 1 };
            sign * (oh * 3600 + om * 60)
        }
        _ => bad(),
    };
    days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + se - offset
}

/// The `certificate:` block of a case: its trust anchors, and its CRLs when it has any.
fn certificate_block(case: &Case) -> serde_json::Value {
    let mut block = json!({ "trustAnchors": case.trusted_certs });
    if !case.crls.is_empty() {
        block["crls"] = json!(case.crls);
    }
    block
}

fn presented_chain(case: &Case) -> Result<Vec<Vec<u8>>, String> {
    case.untrusted_intermediates
        .iter()
        .map(|pem| peerguard_policy::pem_certificates(pem.as_bytes()).map(|mut v| v.remove(0)))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("intermediate does not decode: {e:?}"))
}

/// peerguard's verdict on a CLIENT case, through the engine: `Ok(())` allowed, `Err(why)` denied.
fn engine_verdict(case: &Case, now: i64) -> Result<(), String> {
    let policy = json!({ "certificate": certificate_block(case) });
    let engine = Engine::from_json(&policy.to_string()).map_err(|e| format!("policy does not compile: {e}"))?;
    let presented = presented_chain(case)?;
    let headers: Vec<(String, String)> = Vec::new();
    let req = Request { method: "GET", path: "/", host: "example.com", port: Some(443), sni: None, headers: &headers };
    let decision: Decision = match CertFacts::from_pem(case.peer_certificate.as_bytes()) {
        Ok(facts) => {
            let prepared = engine.prepare(facts, &presented, now);
            engine.decide(&req, &Peer::Certificate(&prepared), now)
        }
        Err(_) => engine.decide(&req, &Peer::Unparseable, now),
    };
    if decision.allowed() {
        Ok(())
    } else {
        Err(format!("{:?}", decision.reason()))
    }
}

/// peerguard's verdict on a SERVER case, through the chain verifier's conformance entry.
fn server_verdict(case: &Case, now: i64) -> Result<(), String> {
    let requirements: CertificateRequirements =
        serde_json::from_value(certificate_block(case)).map_err(|e| format!("policy: {e}"))?;
    let facts =
        CertFacts::from_pem(case.peer_certificate.as_bytes()).map_err(|e| format!("invalid_certificate: {e}"))?;
    facts.verify_chain_for_conformance(&requirements, &presented_chain(case)?, now, true)
}

/// The harness' own name check (peerguard never matches names): rustls-webpki's.
fn name_matches(case: &Case) -> Result<(), String> {
    let Some(name) = &case.expected_peer_name else {
        return Ok(());
    };
    let server_name = match name.kind.as_str() {
        "DNS" | "IP" => rustls_pki_types::ServerName::try_from(name.value.as_str())
            .map_err(|e| format!("expected peer name {:?} does not parse: {e}", name.value))?,
        other => return Err(format!("peer name kind {other} is not checked by the harness")),
    };
    let der = peerguard_policy::pem_certificates(case.peer_certificate.as_bytes()).map_err(|e| format!("{e:?}"))?;
    let der = rustls_pki_types::CertificateDer::from(der[0].as_slice());
    let ee = webpki::EndEntityCert::try_from(&der).map_err(|e| format!("{e:?}"))?;
    ee.verify_is_valid_for_subject_name(&server_name).map_err(|e| format!("name: {e:?}"))
}

#[test]
#[ignore = "external conformance corpus; run with --ignored (just test does)"]
fn chain_verification_agrees_with_x509_limbo_except_listed_divergences() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/limbo/limbo.json");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let limbo: Limbo = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert_eq!(limbo.version, 1, "limbo.json format version");

    let known: BTreeMap<&str, (Grounds, &str)> = KNOWN_DIVERGENCES.iter().map(|(id, g, r)| (*id, (*g, *r))).collect();
    assert_eq!(known.len(), KNOWN_DIVERGENCES.len(), "KNOWN_DIVERGENCES has a duplicate id");
    let by_id: BTreeMap<&str, &Case> = limbo.testcases.iter().map(|c| (c.id.as_str(), c)).collect();
    let mut ran_by_kind: BTreeMap<String, usize> = BTreeMap::new();
    let mut agreed = 0usize;
    let mut agreed_ids: BTreeSet<&str> = BTreeSet::new();
    let mut with_crls = 0usize;
    let mut decided_by_name = 0usize;
    let mut divergent: Vec<(String, Grounds, String)> = Vec::new();
    let mut unexpected: Vec<String> = Vec::new();
    let mut skipped: BTreeMap<&str, usize> = BTreeMap::new();
    let mut seen_divergent: BTreeSet<&str> = BTreeSet::new();
    let mut allowed_failures: Vec<&str> = Vec::new();

    for case in &limbo.testcases {
        if let Some(why) = skip_reason(case) {
            *skipped.entry(why).or_default() += 1;
            continue;
        }
        *ran_by_kind.entry(case.validation_kind.clone()).or_default() += 1;
        with_crls += usize::from(!case.crls.is_empty());
        let now = case.validation_time.as_deref().map_or(DEFAULT_NOW, rfc3339);
        let expected_pass = match case.expected_result.as_str() {
            "SUCCESS" => true,
            "FAILURE" => false,
            other => panic!("{}: expected_result {other:?}", case.id),
        };
        let verdict = match case.validation_kind.as_str() {
            "CLIENT" => engine_verdict(case, now),
            _ => server_verdict(case, now).and_then(|()| name_matches(case).inspect_err(|_| decided_by_name += 1)),
        };
        if verdict.is_ok() == expected_pass {
            agreed += 1;
            agreed_ids.insert(&case.id);
            continue;
        }
        let got = match &verdict {
            Ok(()) => "allowed".to_owned(),
            Err(why) => format!("denied ({why})"),
        };
        seen_divergent.insert(&case.id);
        match known.get(case.id.as_str()) {
            Some((grounds, reason)) => {
                if verdict.is_ok() {
                    allowed_failures.push(&case.id);
                }
                divergent.push((case.id.clone(), *grounds, format!("{reason} [peerguard {got}]")));
            }
            None => unexpected.push(format!("{}: expected {}, peerguard {got}", case.id, case.expected_result)),
        }
    }
    let stale: Vec<&str> = known.keys().copied().filter(|id| !seen_divergent.contains(*id)).collect();
    // An allow of a case that expects failure needs PRODUCT.md or a conflicts_with pair behind it;
    // a conflict-pair divergence needs a partner that peerguard agrees with.
    let mut bad_grounds: Vec<String> = Vec::new();
    for (id, grounds, _) in &divergent {
        let case = by_id[id.as_str()];
        if allowed_failures.contains(&id.as_str()) && *grounds == Grounds::Stricter {
            bad_grounds.push(format!("{id}: an allow of an expected failure cannot be 'stricter'"));
        }
        if *grounds == Grounds::ConflictPair
            && (case.conflicts_with.is_empty() || !case.conflicts_with.iter().all(|p| agreed_ids.contains(p.as_str())))
        {
            bad_grounds.push(format!("{id}: listed as a conflict pair, but peerguard does not agree with its partner"));
        }
        if *grounds == Grounds::Stricter
            && !allowed_failures.contains(&id.as_str())
            && case.expected_result != "SUCCESS"
        {
            bad_grounds.push(format!("{id}: 'stricter' but the case expects failure"));
        }
    }

    let ran: usize = ran_by_kind.values().sum();
    println!("x509-limbo: {} testcases", limbo.testcases.len());
    println!(
        "ran {ran} ({}; {with_crls} with CRLs), agreed {agreed}, divergent {} (listed {}, unlisted {}), \
         failures decided by the harness' name check: {decided_by_name}",
        ran_by_kind.iter().map(|(k, n)| format!("{k} {n}")).collect::<Vec<_>>().join(", "),
        divergent.len() + unexpected.len(),
        divergent.len(),
        unexpected.len()
    );
    println!("skipped {}:", skipped.values().sum::<usize>());
    for (why, n) in &skipped {
        println!("  {n:4}  {why}");
    }
    for (id, grounds, reason) in &divergent {
        println!("known divergence {id} ({grounds:?}): {reason}");
    }
    assert!(
        unexpected.is_empty() && stale.is_empty() && bad_grounds.is_empty(),
        "unlisted divergences (fix peerguard or add them to KNOWN_DIVERGENCES with a reason):\n  {}\n\
         listed in KNOWN_DIVERGENCES but no longer divergent or not run (remove them):\n  {}\n\
         divergences whose grounds do not hold:\n  {}",
        unexpected.join("\n  "),
        stale.join("\n  "),
        bad_grounds.join("\n  ")
    );
}
