//! `trustBundles`: trust anchors per SPIFFE trust domain, from PEM or SPIFFE bundles (JWK Sets with `x509-svid` keys).
//!
//! docs/policy.md "Trust bundles": a leaf verifies only against the anchors of the trust domain
//! of its SPIFFE ID, so a partner's CA can mint the partner's identities and never
//! `spiffe://cluster.local/...`. A SPIFFE bundle is read as the SPIFFE Trust Domain and Bundle
//! specification (section 4) and the X509-SVID specification define it: `keys` must be present;
//! a key whose `use` or `kty` is unknown is ignored; an `x509-svid` key carries its CA
//! certificate as the single element of `x5c` (base64 DER), and that certificate is the anchor.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde_json::{Map, Value};

use super::anchor::{self, Anchor};
use super::crl::CrlSigner;
use super::pem_der_list;
use crate::alias::is_trust_domain;
use crate::cert::CertFacts;
use crate::error::ConfigError;
use crate::spiffe::{is_spiffe_uri, SpiffeId};

/// Key types of RFC 7518 section 6.1 and RFC 8037 (`OKP`, Ed25519); any other is ignored.
const KNOWN_KEY_TYPES: [&str; 3] = ["EC", "RSA", "OKP"];

/// Compiles `trustBundles`, each anchor tagged with its trust domain; every certificate is also
/// a possible CRL signer.
pub(super) fn compile(
    bundles: &BTreeMap<String, Vec<Value>>,
    path: &str,
    signers: &mut Vec<CrlSigner>,
    errors: &mut Vec<ConfigError>,
) -> Vec<Anchor> {
    let mut anchors = Vec::new();
    if bundles.is_empty() {
        errors.push(ConfigError::new(
            format!("{path}.trustBundles"),
            "empty map trusts nothing; remove the field to disable chain verification",
        ));
    }
    for (domain, entries) in bundles {
        let at = format!("{path}.trustBundles[{domain:?}]");
        if !is_trust_domain(domain) {
            errors.push(ConfigError::new(
                at.clone(),
                format!("{domain:?} is not a SPIFFE trust domain (lower-case letters, digits, '.', '-', '_'); each key names the one trust domain its anchors may vouch for"),
            ));
        }
        if entries.is_empty() {
            errors
                .push(ConfigError::new(at.clone(), "empty list trusts nothing for this trust domain; remove the key"));
        }
        for (i, entry) in entries.iter().enumerate() {
            let at = format!("{at}[{i}]");
            let ders = match entry {
                Value::String(text) if text.trim_start().starts_with('{') => {
                    match serde_json::from_str::<Map<String, Value>>(text) {
                        Ok(doc) => jwks_certificates(&doc, &at, errors),
                        Err(e) => {
                            errors.push(ConfigError::new(at.clone(), format!("not a SPIFFE bundle (JSON): {e}")));
                            Vec::new()
                        }
                    }
                }
                Value::String(pem) => pem_der_list(pem, &at, errors),
                Value::Object(doc) => jwks_certificates(doc, &at, errors),
                _ => {
                    errors.push(ConfigError::new(
                        at.clone(),
                        "expected PEM text or a SPIFFE bundle (a JWK Set, as JSON text or a mapping)",
                    ));
                    Vec::new()
                }
            };
            for der in ders {
                signers.extend(CrlSigner::from_der(&der));
                match anchor::anchor_from_der(der, &at, Some(domain)) {
                    Ok(a) => anchors.push(a),
                    Err(msg) => errors.push(ConfigError::new(at.clone(), msg)),
                }
            }
        }
    }
    anchors
}

/// The CA certificates (DER) of a SPIFFE bundle's `x509-svid` keys.
fn jwks_certificates(doc: &Map<String, Value>, at: &str, errors: &mut Vec<ConfigError>) -> Vec<Vec<u8>> {
    let Some(keys) = doc.get("keys").and_then(Value::as_array) else {
        errors.push(ConfigError::new(format!("{at}.keys"), "a SPIFFE bundle needs a keys array (a JWK Set)"));
        return Vec::new();
    };
    let errors_before = errors.len();
    let mut out = Vec::new();
    for (k, key) in keys.iter().enumerate() {
        let key_at = format!("{at}.keys[{k}]");
        let Some(key) = key.as_object() else {
            errors.push(ConfigError::new(key_at, "a JWK must be a JSON object"));
            continue;
        };
        let (Some(key_use), Some(kty)) =
            (key.get("use").and_then(Value::as_str), key.get("kty").and_then(Value::as_str))
        else {
            errors.push(ConfigError::new(key_at, "a SPIFFE bundle key needs the string parameters use and kty"));
            continue;
        };
        // Unknown uses (jwt-svid among them, for this purpose) and key types are ignored, as the
        // specification requires.
        if key_use != "x509-svid" || !KNOWN_KEY_TYPES.contains(&kty) {
            continue;
        }
        let x5c = key.get("x5c").and_then(Value::as_array).map(Vec::as_slice);
        let Some([Value::String(b64)]) = x5c else {
            errors.push(ConfigError::new(
                format!("{key_at}.x5c"),
                "an x509-svid key carries exactly one certificate in x5c (the X509-SVID specification)",
            ));
            continue;
        };
        match base64::engine::general_purpose::STANDARD.decode(b64) {
            Ok(der) => out.push(der),
            Err(_) => {
                errors.push(ConfigError::new(format!("{key_at}.x5c[0]"), "not base64 (RFC 7517 x5c: base64 DER)"))
            }
        }
    }
    // A bundle that yields no anchor (only jwt-svid keys, or x509-svid keys of unknown types)
    // would silently make its trust domain untrusted: say so, unless a key's own error already did.
    if out.is_empty() && errors.len() == errors_before {
        errors.push(ConfigError::new(
            format!("{at}.keys"),
            "no usable x509-svid key (use x509-svid, kty EC, RSA or OKP): this bundle holds no X.509 authority, so it verifies no certificate",
        ));
    }
    out
}

/// The trust domain of the leaf's SPIFFE ID, which selects its bundle. `None` (no bundle, so
/// `untrusted_chain`) when the leaf has no SPIFFE URI SAN, more than one, or one that breaks
/// the SPIFFE ID spec: with no single trust domain there is no bundle to verify against.
pub(super) fn leaf_trust_domain(leaf: &CertFacts) -> Option<String> {
    let mut ids = leaf.uri_sans.iter().filter(|u| is_spiffe_uri(u));
    let (Some(one), None) = (ids.next(), ids.next()) else { return None };
    one.parse::<SpiffeId>().ok().map(|id| id.trust_domain().to_owned())
}
