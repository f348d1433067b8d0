//! Trust domains done right, through the public engine API: `trustBundles` (a partner's CA vouches
//! only for the partner's trust domain), `trustDomainAliases` (an alias is matched as the main
//! trust domain, `*.suffix` exactly as documented), and `identity: [linkerdHeader]` (the
//! principal from `l5d-client-id`, which the filter passes only from a listed proxy). Runs
//! natively and in wasm. Fixtures are in `tests/fixtures` and `tests/fixtures/federation`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use peerguard_policy::{CertFacts, Decision, Engine, Peer, PeerAttributes, Reason, Request};
use serde_json::{json, Value};

/// 2030-06-01T12:00:00Z, the instant the fixtures are built around.
const T: i64 = 1_906_545_600;

const ROOT: &str = include_str!("fixtures/root-ca.pem");
const INTERMEDIATE: &str = include_str!("fixtures/intermediate-ca.pem");
const HEALTHY: &str = include_str!("fixtures/healthy.pem");
const PARTNER_CA: &str = include_str!("fixtures/federation/partner-ca.pem");
const PARTNER_BUNDLE: &str = include_str!("fixtures/federation/partner-bundle.json");
const PARTNER: &str = include_str!("fixtures/federation/partner.pem");
const PARTNER_MINTS_CLUSTER_LOCAL: &str = include_str!("fixtures/federation/partner-mints-cluster-local.pem");
const PARTNER_NO_SPIFFE: &str = include_str!("fixtures/federation/partner-no-spiffe.pem");
const EU_PARTNER: &str = include_str!("fixtures/federation/eu-partner.pem");
const EVIL_PARTNER: &str = include_str!("fixtures/federation/evil-partner.pem");

fn engine(policy: Value) -> Engine {
    Engine::from_json(&policy.to_string()).unwrap_or_else(|e| panic!("policy does not compile: {e}"))
}

fn errors(policy: Value) -> Vec<String> {
    match Engine::from_json(&policy.to_string()) {
        Ok(_) => panic!("policy compiled: {policy}"),
        Err(e) => e.0.iter().map(|e| format!("{}: {}", e.path, e.message)).collect(),
    }
}

fn der(pem: &str) -> Vec<u8> {
    peerguard_policy::pem_certificates(pem.as_bytes()).unwrap().remove(0)
}

/// The `HeaderSource` of requests without headers.
static NO_HEADERS: Vec<(String, String)> = Vec::new();

fn get() -> Request<'static> {
    Request {
        method: "GET",
        path: "/api/items",
        host: "api.example",
        port: Some(8443),
        sni: None,
        headers: &NO_HEADERS,
    }
}

/// `leaf` presented with `chain`, as a full certificate.
fn decide(e: &Engine, leaf: &str, chain: &[&str]) -> Decision {
    let chain: Vec<Vec<u8>> = chain.iter().map(|p| der(p)).collect();
    let prepared = e.prepare(CertFacts::from_pem(leaf.as_bytes()).unwrap(), &chain, T);
    e.decide(&get(), &Peer::Certificate(&prepared), T)
}

/// Local and partner trust domains, each with its own anchors.
fn federated(extra: Value) -> Engine {
    let mut policy = json!({
        "certificate": {"trustBundles": {"cluster.local": [ROOT], "partner.example": [PARTNER_CA]}},
    });
    policy.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    engine(policy)
}

#[test]
fn each_trust_domain_verifies_against_its_own_bundle() {
    let e = federated(json!({}));
    assert_eq!(decide(&e, HEALTHY, &[INTERMEDIATE]).reason(), None);
    let d = decide(&e, PARTNER, &[]);
    assert_eq!(d.reason(), None);
    assert_eq!(d.principal(), Some("partner.example/ns/billing/sa/api"));
}

#[test]
fn a_partner_ca_minting_a_local_identity_is_untrusted_chain() {
    // The chain verifies under the partner's anchor, but the leaf claims cluster.local.
    let e = federated(json!({}));
    assert_eq!(decide(&e, PARTNER_MINTS_CLUSTER_LOCAL, &[]).reason(), Some(Reason::UntrustedChain));
    // A single trustAnchors pool is exactly what lets it through: the reason trustBundles exists.
    let pool = engine(json!({"certificate": {"trustAnchors": [ROOT, PARTNER_CA]}}));
    let d = decide(&pool, PARTNER_MINTS_CLUSTER_LOCAL, &[]);
    assert_eq!(d.reason(), None);
    assert_eq!(d.principal(), Some("cluster.local/ns/default/sa/healthy"));
    // And the local CA cannot mint the partner's identities either.
    let swapped =
        engine(json!({"certificate": {"trustBundles": {"cluster.local": [PARTNER_CA], "partner.example": [ROOT]}}}));
    assert_eq!(decide(&swapped, HEALTHY, &[INTERMEDIATE]).reason(), Some(Reason::UntrustedChain));
    assert_eq!(decide(&swapped, PARTNER, &[]).reason(), Some(Reason::UntrustedChain));
}

#[test]
fn a_leaf_from_a_trust_domain_without_a_bundle_or_without_a_spiffe_id_is_untrusted_chain() {
    let e = federated(json!({}));
    // eu.partner.example is signed by the partner's CA but has no bundle of its own.
    assert_eq!(decide(&e, EU_PARTNER, &[]).reason(), Some(Reason::UntrustedChain));
    // No SPIFFE ID, so no trust domain and no bundle, even with a DNS identity source.
    let dns = federated(json!({"identity": ["dns"]}));
    assert_eq!(decide(&dns, PARTNER_NO_SPIFFE, &[]).reason(), Some(Reason::UntrustedChain));
}

#[test]
fn a_spiffe_bundle_loads_as_text_or_as_a_document_and_its_jwt_key_is_ignored() {
    let doc: Value = serde_json::from_str(PARTNER_BUNDLE).unwrap();
    for entry in [Value::String(PARTNER_BUNDLE.to_owned()), doc] {
        let e = engine(json!({"certificate": {"trustBundles": {"cluster.local": [ROOT], "partner.example": [entry]}}}));
        assert_eq!(decide(&e, PARTNER, &[]).reason(), None);
        assert_eq!(decide(&e, PARTNER_MINTS_CLUSTER_LOCAL, &[]).reason(), Some(Reason::UntrustedChain));
    }
}

#[test]
fn trust_bundle_errors_name_their_path() {
    let both = errors(json!({"certificate": {"trustAnchors": [ROOT], "trustBundles": {"cluster.local": [ROOT]}}}));
    assert!(
        both.iter()
            .any(|e| e.starts_with("certificate.trustBundles: trustBundles and trustAnchors exclude each other")),
        "{both:?}"
    );
    let in_rule = errors(
        json!({"certificateRules": [{"name": "r", "require": {"trustAnchors": [ROOT], "trustBundles": {"cluster.local": [ROOT]}}}]}),
    );
    assert!(in_rule.iter().any(|e| e.starts_with("certificateRules[0].require.trustBundles: ")), "{in_rule:?}");
    let cases = [
        (json!({}), "certificate.trustBundles: empty map"),
        (
            json!({"cluster.local": [7]}),
            r#"certificate.trustBundles["cluster.local"][0]: expected PEM text or a SPIFFE bundle"#,
        ),
        (
            json!({"Cluster.local": [ROOT]}),
            r#"certificate.trustBundles["Cluster.local"]: "Cluster.local" is not a SPIFFE trust domain"#,
        ),
        (json!({"cluster.local": []}), r#"certificate.trustBundles["cluster.local"]: empty list"#),
        (
            json!({"cluster.local": ["not pem"]}),
            r#"certificate.trustBundles["cluster.local"][0]: expected a PEM certificate"#,
        ),
        (
            json!({"cluster.local": ["{not json"]}),
            r#"certificate.trustBundles["cluster.local"][0]: not a SPIFFE bundle (JSON)"#,
        ),
        (
            json!({"cluster.local": [{"spiffe_sequence": 1}]}),
            r#"certificate.trustBundles["cluster.local"][0].keys: a SPIFFE bundle needs a keys array"#,
        ),
        (
            json!({"cluster.local": [{"keys": [{"use": "jwt-svid", "kty": "EC"}]}]}),
            r#"certificate.trustBundles["cluster.local"][0].keys: no usable x509-svid key"#,
        ),
        (
            json!({"cluster.local": [{"keys": [{"kty": "EC", "x5c": ["AA=="]}]}]}),
            r#"certificate.trustBundles["cluster.local"][0].keys[0]: a SPIFFE bundle key needs"#,
        ),
        (
            json!({"cluster.local": [{"keys": [{"use": "x509-svid", "kty": "EC", "x5c": ["AA==", "AA=="]}]}]}),
            r#"certificate.trustBundles["cluster.local"][0].keys[0].x5c: an x509-svid key carries exactly one certificate"#,
        ),
        (
            json!({"cluster.local": [{"keys": [{"use": "x509-svid", "kty": "EC", "x5c": ["%%%"]}]}]}),
            r#"certificate.trustBundles["cluster.local"][0].keys[0].x5c[0]: not base64"#,
        ),
        (
            json!({"cluster.local": [{"keys": [{"use": "x509-svid", "kty": "EC", "x5c": ["AAAA"]}]}]}),
            r#"certificate.trustBundles["cluster.local"][0]: not an X.509 certificate"#,
        ),
    ];
    for (bundles, want) in cases {
        let got = errors(json!({"certificate": {"trustBundles": bundles}}));
        assert!(got.iter().any(|e| e.starts_with(want)), "want {want:?}, got {got:?}");
    }
    // An unknown key type is ignored, as the SPIFFE bundle format requires; the x509-svid key beside it counts.
    let doc: Value = serde_json::from_str(PARTNER_BUNDLE).unwrap();
    let mut keys = doc["keys"].as_array().unwrap().clone();
    keys.push(json!({"use": "x509-svid", "kty": "oct", "x5c": ["not even base64"]}));
    let e = engine(json!({"certificate": {"trustBundles": {"partner.example": [{"keys": keys}]}}}));
    // Only such a key: no anchor at all, which is an error rather than a silently empty bundle.
    let only =
        errors(json!({"certificate": {"trustBundles": {"partner.example": [{"keys": [keys.last().unwrap()]}]}}}));
    assert!(only.iter().any(|e| e.contains(".keys: no usable x509-svid key")), "{only:?}");
    assert_eq!(decide(&e, PARTNER, &[]).reason(), None);
}

#[test]
fn intermediates_and_crls_work_with_trust_bundles() {
    let e =
        engine(json!({"certificate": {"trustBundles": {"cluster.local": [ROOT]}, "intermediates": [INTERMEDIATE]}}));
    assert_eq!(decide(&e, HEALTHY, &[]).reason(), None);
    let errs = errors(json!({"certificate": {"intermediates": [INTERMEDIATE]}}));
    assert!(errs.iter().any(|e| e.contains("need trustAnchors or trustBundles")), "{errs:?}");
}

/// The policy of the alias tests: the main domain's rule, and aliases.
fn aliased(aliases: Value) -> Engine {
    engine(json!({
        "trustDomainAliases": aliases,
        "policies": [{"name": "billing", "rules": [{"from": [{"source": {"principals": ["cluster.local/ns/billing/sa/api"]}}]}]}],
    }))
}

fn spiffe(uri: &str) -> PeerAttributes {
    PeerAttributes { uri_san: Some(uri.to_owned()), dns_san: None, subject: None, several_spiffe_uris: false }
}

fn decide_attrs(e: &Engine, uri: &str) -> Decision {
    e.decide(&get(), &Peer::Attributes(&spiffe(uri)), T)
}

#[test]
fn an_alias_allows_exactly_what_its_main_domain_allows() {
    let e = aliased(json!(["old.local"]));
    for (uri, allowed) in [
        ("spiffe://cluster.local/ns/billing/sa/api", true),
        ("spiffe://old.local/ns/billing/sa/api", true),
        ("spiffe://old.local/ns/billing/sa/other", false),
        ("spiffe://old.local/ns/other/sa/api", false),
        ("spiffe://other.local/ns/billing/sa/api", false),
        ("spiffe://new.old.local/ns/billing/sa/api", false),
    ] {
        assert_eq!(decide_attrs(&e, uri).allowed(), allowed, "{uri}");
    }
    let d = decide_attrs(&e, "spiffe://old.local/ns/billing/sa/api");
    // Matched (and forwarded) as the main domain's principal; the presented one is kept for logs.
    assert_eq!(d.principal(), Some("cluster.local/ns/billing/sa/api"));
    assert_eq!(d.identity.as_ref().unwrap().presented.as_deref(), Some("old.local/ns/billing/sa/api"));
}

#[test]
fn a_wildcard_alias_covers_subdomains_and_never_a_lookalike() {
    let e = aliased(json!(["*.partner.example"]));
    for (uri, allowed) in [
        ("spiffe://eu.partner.example/ns/billing/sa/api", true),
        ("spiffe://a.b.partner.example/ns/billing/sa/api", true),
        ("spiffe://partner.example/ns/billing/sa/api", false),
        ("spiffe://evil-partner.example/ns/billing/sa/api", false),
        ("spiffe://eu.partner.example.evil/ns/billing/sa/api", false),
        ("spiffe://eupartner.example/ns/billing/sa/api", false),
    ] {
        assert_eq!(decide_attrs(&e, uri).allowed(), allowed, "{uri}");
    }
}

#[test]
fn rules_written_for_an_alias_match_the_main_domain_too_as_in_istio() {
    let e = engine(json!({
        "trustDomainAliases": ["old.local"],
        "policies": [
            {"name": "by-alias", "rules": [{"from": [{"source": {"principals": ["old.local/ns/billing/*"]}}]}]},
            {"name": "deny-td", "action": "DENY", "rules": [{"from": [{"source": {"trustDomains": ["old.local"]}}], "to": [{"operation": {"paths": ["/admin"]}}]}]},
            {"name": "deny-when", "action": "DENY", "rules": [{"when": [{"key": "source.principal", "values": ["old.local/ns/billing/sa/banned"]}]}]},
        ],
    }));
    assert!(decide_attrs(&e, "spiffe://cluster.local/ns/billing/sa/api").allowed());
    assert!(decide_attrs(&e, "spiffe://old.local/ns/billing/sa/api").allowed());
    for banned in ["spiffe://cluster.local/ns/billing/sa/banned", "spiffe://old.local/ns/billing/sa/banned"] {
        assert_eq!(decide_attrs(&e, banned).reason(), Some(Reason::DeniedByPolicy), "{banned}");
    }
    let admin = Request { path: "/admin", ..get() };
    let d = e.decide(&admin, &Peer::Attributes(&spiffe("spiffe://cluster.local/ns/billing/sa/api")), T);
    assert_eq!(d.reason(), Some(Reason::DeniedByPolicy));
}

#[test]
fn an_alias_counts_as_the_main_domain_for_top_level_trust_domains() {
    let e = engine(json!({"trustDomains": ["cluster.local"], "trustDomainAliases": ["old.local"]}));
    assert!(decide_attrs(&e, "spiffe://old.local/ns/a/sa/b").allowed());
    assert_eq!(decide_attrs(&e, "spiffe://partner.example/ns/a/sa/b").reason(), Some(Reason::UntrustedTrustDomain));
    let main = engine(
        json!({"trustDomain": "new.local", "trustDomainAliases": ["cluster.local"], "trustDomains": ["new.local"]}),
    );
    assert_eq!(decide_attrs(&main, "spiffe://cluster.local/ns/a/sa/b").principal(), Some("new.local/ns/a/sa/b"));
}

#[test]
fn aliases_and_trust_bundles_together_verify_each_leaf_in_its_own_domain() {
    // The partner's identities are matched as local ones, but only its own CA may sign them, and
    // it still cannot sign cluster.local identities.
    let e = federated(json!({
        "trustDomainAliases": ["partner.example"],
        "policies": [{"name": "billing", "rules": [{"from": [{"source": {"principals": ["cluster.local/ns/billing/sa/api"]}}]}]}],
    }));
    let d = decide(&e, PARTNER, &[]);
    assert_eq!(d.reason(), None);
    assert_eq!(d.principal(), Some("cluster.local/ns/billing/sa/api"));
    assert_eq!(decide(&e, PARTNER_MINTS_CLUSTER_LOCAL, &[]).reason(), Some(Reason::UntrustedChain));
    assert_eq!(decide(&e, EVIL_PARTNER, &[]).reason(), Some(Reason::UntrustedChain));
}

#[test]
fn alias_errors_name_their_path() {
    let got = errors(json!({"trustDomain": "Cluster", "trustDomainAliases": ["*.", "x.local", "x.local", "Cluster"]}));
    for want in ["trustDomain: ", "trustDomainAliases[0]: ", "trustDomainAliases[2]: ", "trustDomainAliases[3]: "] {
        assert!(got.iter().any(|e| e.starts_with(want)), "want {want:?}, got {got:?}");
    }
    assert!(!got.iter().any(|e| e.starts_with("trustDomainAliases[1]")), "{got:?}");
}

/// The Linkerd tests' policy: only billing's API may read.
fn linkerd(extra: Value) -> Engine {
    let mut policy = json!({
        "identity": ["linkerdHeader"],
        "policies": [{"name": "billing", "rules": [{"from": [{"source": {"principals": ["cluster.local/ns/billing/sa/api"]}}]}]}],
    });
    policy.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    engine(policy)
}

fn client_id(e: &Engine, values: &[&str]) -> Decision {
    let values: Vec<String> = values.iter().map(|v| (*v).to_owned()).collect();
    e.decide(&get(), &Peer::LinkerdClientId(&values), T)
}

const BILLING_API: &str = "api.billing.serviceaccount.identity.linkerd.cluster.local";

#[test]
fn linkerd_client_id_is_the_principal() {
    let e = linkerd(json!({}));
    assert!(e.linkerd_header());
    let d = client_id(&e, &[BILLING_API]);
    assert_eq!(d.reason(), None);
    assert_eq!(d.principal(), Some("cluster.local/ns/billing/sa/api"));
    let other = client_id(&e, &["web.shop.serviceaccount.identity.linkerd.cluster.local"]);
    assert_eq!(other.reason(), Some(Reason::NoMatchingAllow));
}

#[test]
fn two_copies_an_empty_header_and_malformed_identities_are_invalid_identity() {
    let e = linkerd(json!({}));
    for values in [
        &[BILLING_API, BILLING_API][..],
        &[BILLING_API, "web.shop.serviceaccount.identity.linkerd.cluster.local"],
        &[""],
        &["api.example.com"],
        &["cluster.local/ns/billing/sa/api"],
        &["api.billing.serviceaccount.identity.linkerd.cluster.local, evil"],
        &["spiffe://Cluster.local/ns/billing/sa/api"],
    ] {
        assert_eq!(client_id(&e, values).reason(), Some(Reason::InvalidIdentity), "{values:?}");
    }
}

#[test]
fn no_trusted_header_is_no_principal() {
    // The filter passes Peer::None when the request is not from a listed proxy, or has no header.
    let strict = linkerd(json!({}));
    assert_eq!(strict.decide(&get(), &Peer::None, T).reason(), Some(Reason::NoPeerCertificate));
    let permissive = linkerd(json!({"mtls": "permissive"}));
    let d = permissive.decide(&get(), &Peer::None, T);
    assert_eq!(d.reason(), Some(Reason::NoMatchingAllow));
    assert_eq!(d.principal(), None);
    assert!(strict.is_linkerd_proxy("127.0.0.1:50000"));
    assert!(!strict.is_linkerd_proxy("127.0.0.2:50000"));
    assert!(!strict.is_linkerd_proxy("127.0.0.1:0"), "an address taken from x-forwarded-for has port 0");
    let listed = linkerd(json!({"linkerd": {"proxyAddresses": ["10.0.0.0/8"]}}));
    assert!(listed.is_linkerd_proxy("10.1.2.3:4143"));
    assert!(!listed.is_linkerd_proxy("127.0.0.1:4143"));
}

#[test]
fn l5d_client_id_is_no_peer_without_identity_linkerd_header() {
    let spiffe = engine(
        json!({"mtls": "permissive", "policies": [{"name": "any", "rules": [{"from": [{"source": {"principals": ["*"]}}]}]}]}),
    );
    assert!(!spiffe.linkerd_header());
    let d = client_id(&spiffe, &[BILLING_API]);
    assert_eq!((d.reason(), d.principal()), (Some(Reason::NoMatchingAllow), None));
    let strict = engine(json!({}));
    assert_eq!(client_id(&strict, &[BILLING_API]).reason(), Some(Reason::NoPeerCertificate));
}

#[test]
fn certificate_checks_behind_linkerd_are_certificate_unavailable() {
    let e = linkerd(json!({"certificate": {"maxLifetime": "24h"}}));
    assert_eq!(client_id(&e, &[BILLING_API]).reason(), Some(Reason::CertificateUnavailable));
    let rule = linkerd(
        json!({"certificateRules": [{"name": "admin", "to": [{"operation": {"paths": ["/admin"]}}], "require": {"maxLifetime": "1h"}}]}),
    );
    assert_eq!(client_id(&rule, &[BILLING_API]).reason(), None, "the rule's route is not this one");
    let values = vec![BILLING_API.to_owned()];
    let admin = Request { path: "/admin", ..get() };
    assert_eq!(rule.decide(&admin, &Peer::LinkerdClientId(&values), T).reason(), Some(Reason::CertificateUnavailable));
    let when = linkerd(
        json!({"policies": [{"name": "p", "rules": [{"when": [{"key": "cert.issuer.cn", "values": ["x"]}]}]}]}),
    );
    assert_eq!(client_id(&when, &[BILLING_API]).reason(), Some(Reason::CertificateUnavailable));
}

#[test]
fn trust_domains_and_aliases_apply_to_linkerd_identities() {
    let e = linkerd(json!({"trustDomains": ["cluster.local"], "trustDomainAliases": ["old.local"]}));
    assert_eq!(client_id(&e, &["api.billing.serviceaccount.identity.linkerd.old.local"]).reason(), None);
    assert_eq!(
        client_id(&e, &["api.billing.serviceaccount.identity.linkerd.partner.example"]).reason(),
        Some(Reason::UntrustedTrustDomain)
    );
}

#[test]
fn linkerd_header_config_errors_name_their_path() {
    let mixed = errors(json!({"identity": ["spiffe", "linkerdHeader"]}));
    assert!(
        mixed.iter().any(|e| e.starts_with("identity[1]: linkerdHeader must be the only identity source")),
        "{mixed:?}"
    );
    let orphan = errors(json!({"linkerd": {"proxyAddresses": ["127.0.0.1/32"]}}));
    assert!(orphan.iter().any(|e| e.starts_with("linkerd: applies only with identity: [linkerdHeader]")), "{orphan:?}");
    let bad = errors(json!({"identity": ["linkerdHeader"], "linkerd": {"proxyAddresses": ["127.0.0.1/40"]}}));
    assert!(bad.iter().any(|e| e.starts_with("linkerd.proxyAddresses[0]: ")), "{bad:?}");
    let unknown = errors(json!({"identity": ["linkerdheader"]}));
    assert!(!unknown.is_empty());
    let key = errors(json!({"identity": ["linkerdHeader"], "linkerd": {"proxies": []}}));
    assert!(key.iter().any(|e| e.contains("proxies")), "{key:?}");
}

#[test]
fn a_certificate_rule_can_require_a_trust_domain_bundle_on_its_routes() {
    let e = engine(json!({"certificateRules": [{
        "name": "admin-only-local",
        "to": [{"operation": {"paths": ["/admin/*"]}}],
        "require": {"trustBundles": {"cluster.local": [ROOT]}},
    }]}));
    let chain: Vec<Vec<u8>> = vec![der(INTERMEDIATE)];
    let at = |leaf: &str, path: &str| {
        let prepared = e.prepare(CertFacts::from_pem(leaf.as_bytes()).unwrap(), &chain, T);
        e.decide(&Request { path, ..get() }, &Peer::Certificate(&prepared), T)
    };
    assert_eq!(at(PARTNER, "/api/items").reason(), None);
    let d = at(PARTNER, "/admin/users");
    assert_eq!((d.reason(), d.policy.as_deref()), (Some(Reason::UntrustedChain), Some("admin-only-local")));
    assert_eq!(at(HEALTHY, "/admin/users").reason(), None);
}
