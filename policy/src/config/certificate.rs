//! The document's certificate requirements: the `certificate` block, `certificateRules`, and CRL revocation options.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::RuleTo;

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
    /// Trust anchors per SPIFFE trust domain: a leaf verifies only against the anchors of its
    /// SPIFFE ID's trust domain. Each entry is PEM text, or a SPIFFE bundle (a JWK Set whose
    /// `x509-svid` keys carry the CA certificates) as JSON text or as a mapping; anything else is
    /// refused when the policy compiles. Kept as JSON values, which the document already
    /// deserializes, so that the filter carries no second deserializer for this one field.
    /// Exclusive with `trustAnchors`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_bundles: Option<BTreeMap<String, Vec<serde_json::Value>>>,
    /// PEM intermediates offered for chain building.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intermediates: Option<Vec<String>>,
    /// PEM CRLs. Each needs nextUpdate and a non-critical CRLNumber, and is proof of status only
    /// from its thisUpdate through its nextUpdate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crls: Option<Vec<String>>,
    /// CRLs the filter fetches from Envoy clusters and refreshes (docs/policy.md "CRL sources").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crl_sources: Option<Vec<CrlSource>>,
    /// How CRLs apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation: Option<Revocation>,
}

/// A CRL fetched over HTTP through an Envoy cluster and kept fresh by the filter.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CrlSource {
    /// Names the source in metrics and logs; by default the cluster and path, with every
    /// character other than ASCII letters, digits, `-` and `_` as `_`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The Envoy cluster that serves the CRL.
    pub cluster: String,
    /// The request path, e.g. `/ca.crl`.
    pub path: String,
    /// The `:authority` of the request; the cluster name when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authority: Option<String>,
    /// How often to fetch, e.g. `5m` (default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh: Option<String>,
    /// How long past its nextUpdate the last good CRL still counts as fresh (default `0s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_stale: Option<String>,
    /// How long one fetch may take, e.g. `5s` (default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// The largest response body accepted, in bytes (default 8 MiB, at most 32 MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<u64>,
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
    pub to: Option<Vec<RuleTo>>,
    /// What the certificate must satisfy on those operations.
    pub require: CertificateRequirements,
}
