//! The policy document as users write it: plain serde structs that reject unknown keys.
//!
//! Nothing here is evaluated; `compile` turns a [`PolicyDocument`] into an `Engine`.

use serde::{Deserialize, Serialize};

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
    /// Accepted SPIFFE trust domains; absent means any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_domains: Option<Vec<String>>,
    /// Where the principal comes from; the first source present decides (default `[spiffe]`).
    #[serde(default = "default_identity")]
    pub identity: Vec<IdentitySource>,
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

/// Requirements on a peer leaf certificate. Every field is optional; a check runs only when set.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CertificateRequirements {
    /// Longest allowed notAfter - notBefore, e.g. `24h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_lifetime: Option<String>,
    /// Shortest allowed notAfter - now, e.g. `5m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_remaining: Option<String>,
    /// When the EKU extension is present, it must allow clientAuth.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_client_auth: Option<bool>,
    /// Refuse certificates whose issuer is their own subject and whose signature verifies with their own key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reject_self_signed: Option<bool>,
    /// Allowed key types: ecdsaP256, ecdsaP384, ecdsaP521, ed25519, rsa2048, rsa3072, rsa4096 (rsaN = at
    /// least N bits, N >= 2048). The weak-key floor applies whatever this says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_types: Option<Vec<String>>,
    /// Issuer DN patterns, RFC 4514 form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuers: Option<Vec<String>>,
    /// Base64 SHA-256 of the SubjectPublicKeyInfo, as Envoy's `verify_certificate_spki`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spki_pins: Option<Vec<String>>,
    /// Hex SHA-256 of the DER, as Envoy's `verify_certificate_hash`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_pins: Option<Vec<String>>,
    /// PEM trust anchors; the chain must verify to one of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_anchors: Option<Vec<String>>,
    /// PEM intermediates offered for chain building.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intermediates: Option<Vec<String>>,
    /// PEM CRLs. Each needs nextUpdate and a non-critical CRLNumber, and is proof of status only
    /// from its thisUpdate through its nextUpdate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crls: Option<Vec<String>>,
    /// How CRLs apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation: Option<Revocation>,
}

/// CRL revocation options.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Revocation {
    /// `chain` (default) checks every certificate in the path, `leaf` only the end entity.
    #[serde(default)]
    pub depth: RevocationDepth,
    /// What to do when no CRL covers a certificate's issuer at all: `allow` (default) or `deny`.
    #[serde(default)]
    pub unknown_status: UnknownStatus,
    /// What to do when the issuer has CRLs but none is fresh (all past `nextUpdate`): `deny`
    /// (default, `revocation_unknown`) or `allow`.
    #[serde(default = "default_stale_status")]
    pub stale_status: UnknownStatus,
}

fn default_stale_status() -> UnknownStatus {
    UnknownStatus::Deny
}

impl Default for Revocation {
    fn default() -> Self {
        Revocation {
            depth: RevocationDepth::default(),
            unknown_status: UnknownStatus::default(),
            stale_status: default_stale_status(),
        }
    }
}

/// Which certificates CRLs are checked for.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum RevocationDepth {
    /// Every certificate in the verified path.
    #[default]
    Chain,
    /// Only the end entity.
    Leaf,
}

/// The verdict when a certificate's revocation status is unknown (`unknownStatus`) or stale
/// (`staleStatus`).
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum UnknownStatus {
    /// Treat as not revoked.
    #[default]
    Allow,
    /// Deny with `revocation_unknown` (never `revoked`: a missing or stale CRL is not a revocation).
    Deny,
}

/// A per-route certificate requirement.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CertificateRule {
    /// Named in audit lines and metrics.
    pub name: String,
    /// Operations this rule applies to, with policy semantics; absent means every request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Vec<To>>,
    /// What the certificate must satisfy on those operations.
    pub require: CertificateRequirements,
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
    pub from: Option<Vec<From>>,
    /// Any one operation matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Vec<To>>,
    /// Every condition must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<Vec<Condition>>,
}

/// `from[]` entry.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct From {
    /// The peer's fields.
    pub source: Source,
}

/// `to[]` entry.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct To {
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
