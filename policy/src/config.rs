//! The policy document as users write it: plain serde structs that reject unknown keys.
//!
//! Nothing here is evaluated; `compile` turns a [`PolicyDocument`] into an `Engine`.

mod certificate;
mod metrics;

use serde::{Deserialize, Serialize};

pub use self::certificate::{
    CertificateRequirements, CertificateRule, CrlSource, Revocation, RevocationDepth, UnknownStatus,
};
pub use self::metrics::{MetricsOptions, PeerCertExpiry, PeerCertExpiryOptions, MAX_EXPIRY_IDENTITIES};
use crate::identity::IdentitySource;

/// The whole policy document, as `WasmPlugin.spec.pluginConfig` or a file holds it.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PolicyDocument {
    /// `enforce` or `dryRun`.
    #[serde(default)]
    pub mode: Mode,
    /// `strict` or `permissive`.
    #[serde(default)]
    pub mtls: Mtls,
    /// Where the filter runs, and so where the peer's identity comes from: `sidecar` (the
    /// default: the TLS connection the filter sees) or `waypoint` (Istio ambient: the HBONE
    /// tunnel's client identity, kept in filter state by the waypoint).
    #[serde(default, skip_serializing_if = "Proxy::is_sidecar")]
    pub proxy: Proxy,
    /// Accepted SPIFFE trust domains; absent means any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_domains: Option<Vec<String>>,
    /// Where the principal comes from; the first source present decides (default `[spiffe]`).
    #[serde(default = "default_identity")]
    pub identity: Vec<IdentitySource>,
    /// The main trust domain, as Istio's mesh config `trustDomain` (default `cluster.local`);
    /// read only with `trustDomainAliases`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_domain: Option<String>,
    /// Trust domains whose identities are matched as the main trust domain's, as Istio's mesh
    /// config `trustDomainAliases`; `*.suffix` covers every trust domain under `suffix`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_domain_aliases: Option<Vec<String>>,
    /// Where `identity: [linkerdHeader]` trusts `l5d-client-id` from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linkerd: Option<crate::linkerd::LinkerdOptions>,
    /// How the request path is made the same for matching and for the upstream.
    #[serde(default)]
    pub path_normalization: PathNormalization,
    /// Accept `;` in paths (matched as sent); refused with `invalid_path` by default, because
    /// Tomcat and Spring drop `;...` segments.
    #[serde(default, skip_serializing_if = "is_false")]
    pub allow_path_parameters: bool,
    /// Requirements on every peer leaf certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<CertificateRequirements>,
    /// Per-route certificate requirements, on top of `certificate`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificate_rules: Vec<CertificateRule>,
    /// Istio AuthorizationPolicy specs, each with a name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<AuthorizationPolicy>,
    /// What a denied request receives.
    #[serde(default)]
    pub deny_response: DenyResponse,
    /// The header that carries the verified principal to the application.
    #[serde(default = "default_identity_header")]
    pub identity_header: String,
    /// What the filter reports beyond its counters (per-identity certificate expiry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<MetricsOptions>,
}

fn default_identity() -> Vec<IdentitySource> {
    // As in Istio. `dns` and `subject` are opt-in: a CA that may sign any CN or DNS name must not
    // be able to mint a mesh principal by default.
    vec![IdentitySource::Spiffe]
}

/// How the filter makes the path it matches the path the upstream receives.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum PathNormalization {
    /// Match the normal form and send it upstream (`:path` rewritten, query kept as sent).
    #[default]
    Rewrite,
    /// Match the normal form; a path not already in it is `invalid_path`.
    Reject,
    /// Match the path as received (without the query): only behind Envoy's own normalization.
    None,
}

fn default_identity_header() -> String {
    "x-peerguard-principal".to_owned()
}

/// Whether denials are enforced.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum Mode {
    /// Deny requests that fail the policy.
    #[default]
    Enforce,
    /// Decide, log and count, but never deny.
    DryRun,
}

/// Whether a request without a verified peer certificate may proceed.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum Mtls {
    /// No peer certificate: deny with `no_peer_certificate`.
    #[default]
    Strict,
    /// No peer certificate: the request is unauthenticated.
    Permissive,
}

/// Where the filter runs (docs/policy.md "Ambient waypoints").
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum Proxy {
    /// The filter's downstream connection is the client's mTLS connection: an Istio sidecar, a
    /// gateway that terminates mTLS, or a standalone Envoy.
    #[default]
    Sidecar,
    /// An Istio ambient waypoint: the client's ztunnel ends mTLS at the waypoint's HBONE
    /// listener, and the filter runs on an internal listener behind it. Only the client's
    /// SPIFFE ID reaches the filter (filter state `io.istio.peer_principal`), never its
    /// certificate.
    Waypoint,
}

impl Proxy {
    fn is_sidecar(&self) -> bool {
        *self == Proxy::Sidecar
    }
}

/// The response to a denied request.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DenyResponse {
    /// HTTP status, 400-599.
    #[serde(default = "default_deny_status")]
    pub status: u16,
    /// Short text body.
    #[serde(default = "default_deny_body")]
    pub body: String,
    /// Put the reason in the body and in `x-peerguard-reason`.
    #[serde(default)]
    pub expose_reason: bool,
}

fn default_deny_status() -> u16 {
    403
}

fn default_deny_body() -> String {
    "access denied".to_owned()
}

impl Default for DenyResponse {
    fn default() -> Self {
        DenyResponse { status: default_deny_status(), body: default_deny_body(), expose_reason: false }
    }
}

/// An Istio AuthorizationPolicy `.spec` plus a name.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AuthorizationPolicy {
    /// Named in decisions, audit lines and metrics.
    pub name: String,
    /// ALLOW (Istio's default), DENY or AUDIT.
    #[serde(default)]
    pub action: Action,
    /// Evaluate, log and count, but never deny.
    #[serde(default, skip_serializing_if = "is_false")]
    pub dry_run: bool,
    /// A policy with no rules matches nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<Vec<Rule>>,
    /// Istio workload selector: rejected, see `compile`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<serde_json::Value>,
    /// Istio targetRef: rejected, see `compile`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<serde_json::Value>,
    /// Istio targetRefs: rejected, see `compile`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_refs: Option<serde_json::Value>,
    /// Istio CUSTOM provider: rejected, see `compile`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<serde_json::Value>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// An AuthorizationPolicy action.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
pub enum Action {
    /// Requests must match some ALLOW rule when any ALLOW policy exists.
    #[default]
    #[serde(rename = "ALLOW")]
    Allow,
    /// A matching rule denies.
    #[serde(rename = "DENY")]
    Deny,
    /// A matching rule is logged and counted.
    #[serde(rename = "AUDIT")]
    Audit,
    /// Istio's external authorization action: rejected.
    #[serde(rename = "CUSTOM")]
    Custom,
}

impl core::fmt::Display for Action {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Action::Allow => "ALLOW",
            Action::Deny => "DENY",
            Action::Audit => "AUDIT",
            Action::Custom => "CUSTOM",
        })
    }
}

/// One rule: `from`, `to` and `when` are ANDed.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Rule {
    /// Any one source matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Vec<RuleFrom>>,
    /// Any one operation matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Vec<RuleTo>>,
    /// Every condition must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<Vec<Condition>>,
}

/// `from[]` entry.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RuleFrom {
    /// The peer's fields.
    pub source: Source,
}

/// `to[]` entry.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RuleTo {
    /// The request's fields.
    pub operation: Operation,
}

/// Istio `Source`: fields are ANDed, values within a field ORed.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct Source {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principals: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_principals: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_namespaces: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_domains: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_trust_domains: Option<Vec<String>>,
    // Istio fields that peerguard refuses with a reason (see `compile`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_principals: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_request_principals: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_blocks: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_ip_blocks: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_ip_blocks: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_remote_ip_blocks: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_accounts: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_service_accounts: Option<serde_json::Value>,
}

/// Istio `Operation`: fields are ANDed, values within a field ORed.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct Operation {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosts: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_hosts: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ports: Option<Vec<PortValue>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_ports: Option<Vec<PortValue>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub methods: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_methods: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paths: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_paths: Option<Vec<String>>,
}

/// A port, written as a string (Istio's schema) or a number.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(untagged)]
pub enum PortValue {
    /// `8080`
    Number(u64),
    /// `"8080"`
    Text(String),
}

/// A `when` condition: the key's value must match one of `values` and none of `notValues`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Condition {
    /// e.g. `request.headers[x-env]` or `cert.issuer.cn`.
    pub key: String,
    /// ORed patterns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<String>>,
    /// ORed excluded patterns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_values: Option<Vec<String>>,
}
