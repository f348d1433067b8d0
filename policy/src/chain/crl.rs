//! Configured CRLs: parsing, RFC 5280 conformance, and which of them are fresh at a given time.
//!
//! - CRL freshness (docs/policy.md "Certificates and revocation"). webpki's
//!   `ExpirationPolicy::Enforce` is not used: it treats `nextUpdate` itself as stale (the policy
//!   reference says inclusive), it has no grace for a CRL source's `maxStale`, it never looks at
//!   `thisUpdate`, and it takes the first CRL of an issuer even when a newer one is configured.
//!   Instead each verification hands webpki the fresh CRLs (newest first), then, for issuers that
//!   have no fresh CRL, their stale ones (still a blocklist: a serial a stale CRL lists stays
//!   revoked), and rejects a path that relies on a stale-only issuer when `staleStatus: deny`.
//! - CRL conformance (RFC 5280 section 5): no `nextUpdate`, no CRLNumber or a critical one, or a
//!   configured issuer whose keyUsage lacks cRLSign is a configuration error naming the CRL (webpki
//!   checks cRLSign only on intermediates, never on a trust anchor).

use webpki::{CertRevocationList, OwnedCertRevocationList};
use x509_parser::prelude::{FromDer as _, X509Certificate};

use super::der;
use crate::cert::CertError;
use crate::error::ConfigError;
use crate::pem::{pem_blocks_within, MAX_CONFIG_PEM_BYTES};

/// A configured CRL with the times that decide whether it is proof of status.
#[derive(Debug)]
pub(super) struct Crl {
    crl: CertRevocationList<'static>,
    /// The contents of the issuer Name (what webpki compares with a certificate's issuer).
    issuer: Vec<u8>,
    pub(super) this_update: i64,
    pub(super) next_update: i64,
    /// Seconds after `nextUpdate` during which the CRL still counts as fresh: a CRL source's
    /// `maxStale`, 0 for a CRL written in the policy.
    pub(super) grace: i64,
    /// Fetched by a CRL source: once past its grace, the status of what it covers is unknown
    /// (`unknownStatus` decides), not stale (docs/policy.md "CRL sources").
    pub(super) source: bool,
}

impl Crl {
    /// Proof of status at `now`: from thisUpdate through nextUpdate (+ grace), both inclusive.
    fn fresh_at(&self, now: i64) -> bool {
        self.this_update <= now && now <= self.next_update.saturating_add(self.grace)
    }

    /// The last second at which this CRL is still as fresh or stale as it is at `now`: a verdict
    /// that relied on it must be recomputed after that (a CRL from the future becomes proof at its
    /// thisUpdate, a fresh one stops being proof after its nextUpdate).
    pub(super) fn status_until(&self, now: i64) -> i64 {
        let last_fresh = self.next_update.saturating_add(self.grace);
        if now < self.this_update {
            self.this_update.saturating_sub(1)
        } else if now <= last_fresh {
            last_fresh
        } else {
            i64::MAX
        }
    }
}

/// A configured certificate that may have issued a CRL: its subject Name (whole DER), its SPKI and
/// whether its keyUsage, when present, allows cRLSign.
#[derive(Debug)]
pub(super) struct CrlSigner {
    subject: Vec<u8>,
    spki: Vec<u8>,
    crl_sign: Option<bool>,
}

impl CrlSigner {
    pub(super) fn subject(&self) -> &[u8] {
        &self.subject
    }

    pub(super) fn spki(&self) -> &[u8] {
        &self.spki
    }

    pub(super) fn from_der(der: &[u8]) -> Option<CrlSigner> {
        let (_, cert) = X509Certificate::from_der(der).ok()?;
        let crl_sign = match cert.key_usage() {
            Ok(Some(ku)) => Some(ku.value.crl_sign()),
            Ok(None) => None,
            // An unreadable keyUsage cannot show cRLSign.
            Err(_) => Some(false),
        };
        Some(CrlSigner { subject: cert.subject().as_raw().to_vec(), spki: cert.public_key().raw.to_vec(), crl_sign })
    }
}

/// Compiles `crls` (the list at `{path}.crls`), recording every error; newest (latest thisUpdate)
/// first, so that webpki, which takes the first CRL of an issuer, takes the newest one.
pub(super) fn compile(list: &[String], path: &str, signers: &[CrlSigner], errors: &mut Vec<ConfigError>) -> Vec<Crl> {
    let mut crls = Vec::new();
    if list.is_empty() {
        errors.push(ConfigError::new(format!("{path}.crls"), "empty list; remove the field to disable CRL checks"));
    }
    for (i, pem) in list.iter().enumerate() {
        let at = format!("{path}.crls[{i}]");
        match pem_blocks_within(pem.as_bytes(), "X509 CRL", MAX_CONFIG_PEM_BYTES) {
            Ok(ders) => {
                for der in ders {
                    match crl_from_der(&der, signers) {
                        Ok(crl) => crls.push(crl),
                        Err(msg) => errors.push(ConfigError::new(at.clone(), msg)),
                    }
                }
            }
            Err(CertError::TooLarge(n)) => errors.push(ConfigError::new(
                at,
                format!("{n} bytes is over the {MAX_CONFIG_PEM_BYTES}-byte limit for one CRL entry"),
            )),
            Err(_) => errors.push(ConfigError::new(at, "expected a PEM CRL (-----BEGIN X509 CRL-----)")),
        }
    }
    // Newest first; the sort is stable, so equal thisUpdates keep their configured order.
    crls.sort_by_key(|c| core::cmp::Reverse(c.this_update));
    crls
}

/// What one verification at `now` hands webpki (`crls` newest first): the fresh CRLs, then the
/// ones of issuers that have no fresh CRL; and those issuers (Name contents), split into the ones
/// with a stale configured CRL (`staleStatus` decides) and the ones with a CRL source's CRL past
/// its grace (`unknownStatus` decides). Either kind still revokes what it lists.
pub(super) struct ForVerification<'a> {
    pub crls: Vec<&'a CertRevocationList<'static>>,
    pub stale_only: Vec<&'a [u8]>,
    pub unknown_only: Vec<&'a [u8]>,
}

pub(super) fn for_verification<'a>(crls: &[&'a Crl], now: i64) -> ForVerification<'a> {
    let has_fresh = |issuer: &[u8]| crls.iter().any(|c| c.issuer == issuer && c.fresh_at(now));
    let mut out = ForVerification {
        crls: crls.iter().filter(|c| c.fresh_at(now)).map(|c| &c.crl).collect(),
        stale_only: Vec::new(),
        unknown_only: Vec::new(),
    };
    for c in crls.iter().filter(|c| !c.fresh_at(now) && !has_fresh(&c.issuer)) {
        out.crls.push(&c.crl);
        if c.source {
            out.unknown_only.push(&c.issuer);
        } else {
            out.stale_only.push(&c.issuer);
        }
    }
    out
}

/// Parses one CRL and refuses what RFC 5280 section 5 says a conforming issuer never produces.
pub(super) fn crl_from_der(der: &[u8], signers: &[CrlSigner]) -> Result<Crl, String> {
    let fields = der::crl_fields(der).ok_or_else(|| "CRL does not parse: not a DER CertificateList".to_owned())?;
    let this_update = der::time(fields.this_update).ok_or_else(|| "CRL thisUpdate does not parse".to_owned())?;
    let next_update = match fields.next_update {
        Some(t) => der::time(t).ok_or_else(|| "CRL nextUpdate does not parse".to_owned())?,
        None => return Err(
            "CRL has no nextUpdate: it would be proof of status forever (RFC 5280 section 5.1.2.5 requires nextUpdate)"
                .to_owned(),
        ),
    };
    match fields.crl_number_critical {
        None => {
            return Err("CRL has no CRLNumber extension, which RFC 5280 section 5.2.3 requires of every CRL".to_owned())
        }
        Some(true) => {
            return Err(
                "CRL marks its CRLNumber extension critical; RFC 5280 section 5.2.3 says it MUST be non-critical"
                    .to_owned(),
            )
        }
        Some(false) => {}
    }
    // The configured certificates that issued this CRL: same subject, and their key verifies its
    // signature. Such an issuer whose keyUsage lacks cRLSign may not sign CRLs (RFC 5280
    // section 4.2.1.3).
    for signer in signers.iter().filter(|s| s.subject == fields.issuer_whole) {
        if signer.crl_sign == Some(false) && der::signed_by(der, &signer.spki) {
            return Err(
                "CRL issuer's keyUsage lacks cRLSign, so it may not sign CRLs (RFC 5280 section 4.2.1.3)".to_owned()
            );
        }
    }
    let crl = OwnedCertRevocationList::from_der(der).map_err(|e| format!("CRL does not parse: {e:?}"))?;
    Ok(Crl {
        crl: CertRevocationList::Owned(crl),
        issuer: fields.issuer_contents.to_vec(),
        this_update,
        next_update,
        grace: 0,
        source: false,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code
    use super::*;

    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn crl_freshness_is_inclusive_at_both_ends_and_its_changes_bound_a_verdict() {
        let crl = |this_update, next_update, grace| Crl {
            crl: CertRevocationList::Owned(
                OwnedCertRevocationList::from_der(
                    &pem_blocks_within(
                        include_str!("../../tests/fixtures/crl-root-empty.pem").as_bytes(),
                        "X509 CRL",
                        MAX_CONFIG_PEM_BYTES,
                    )
                    .unwrap()[0],
                )
                .unwrap(),
            ),
            issuer: Vec::new(),
            this_update,
            next_update,
            grace,
            source: false,
        };
        let c = crl(100, 200, 0);
        assert!(!c.fresh_at(99) && c.fresh_at(100) && c.fresh_at(200) && !c.fresh_at(201));
        assert_eq!(c.status_until(50), 99);
        assert_eq!(c.status_until(150), 200);
        assert_eq!(c.status_until(201), i64::MAX);
        let g = crl(100, 200, 30);
        assert!(g.fresh_at(230) && !g.fresh_at(231));
        assert_eq!(g.status_until(201), 230);
    }
}
