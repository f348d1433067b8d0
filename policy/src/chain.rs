//! Chain verification of a peer leaf to pinned trust anchors, with CRLs, using rustls-webpki.
//!
//! webpki does the path building (RFC 5280 section 6, as webpki profiles it), the EKU check,
//! validity at the request time, and the CRL lookup (RFC 5280 section 6.3). Signatures are checked
//! by [`crate::sigalg`], so the same code runs natively, in wasm32-wasip1 and in
//! wasm32-unknown-unknown. What webpki leaves to its caller is done beside this module:
//! - trust anchor validity and the load warnings: `anchor`;
//! - CRL freshness (inclusive `nextUpdate`, a stale-only issuer under `staleStatus: deny`) and
//!   CRL conformance (RFC 5280 section 5): `crl`;
//! - the certificate profile (RFC 5280 section 4) where webpki does not check it, on the leaf,
//!   the intermediates and the anchors: `profile`. The CA/Browser Forum rules that x509-limbo's
//!   webpki cases test run only for serverAuth, i.e. in the conformance entry.
//!
//! How webpki errors become reasons:
//! - `CertRevoked` gives `revoked`.
//! - `UnknownRevocationStatus` (no CRL at all for an issuer and `unknownStatus: deny`, or only
//!   stale CRLs and `staleStatus: deny`) gives `revocation_unknown`.
//! - Everything else gives `untrusted_chain`: an unknown issuer, an expired or non-conforming
//!   trust anchor, a certificate that breaks the profile, a bad signature, an unsupported
//!   signature algorithm, an expired or not-yet-valid intermediate, a wrong EKU on an issuer, a CA
//!   certificate used as a leaf, and also a CRL whose signature does not verify with its issuer's
//!   key (a forged CRL proves nothing, so the chain is not trusted).

mod anchor;
mod bundle;
mod crl;
mod der;
mod profile;
mod source;

use rustls_pki_types::{CertificateDer, UnixTime};
use webpki::{
    EndEntityCert, ExpirationPolicy, KeyUsage, RevocationCheckDepth, RevocationOptionsBuilder, UnknownStatusPolicy,
    VerifiedPath,
};
use x509_parser::prelude::{FromDer as _, X509Certificate};

use self::anchor::Anchor;
use self::crl::{Crl, CrlSigner};
pub(crate) use self::der::self_signature_verifies;
pub(crate) use self::source::SourceSlot;
pub use self::source::{CrlInfo, CrlInstalled, CrlSourceSpec};
use crate::cert::CertFacts;
use crate::config::{CertificateRequirements, RevocationDepth, UnknownStatus};
use crate::error::ConfigError;
use crate::pem::pem_certificates;
use crate::reason::Reason;
use crate::sigalg;

/// Most intermediates (presented plus configured) offered to one path build. webpki also
/// bounds its own work (path length, signature budget); this keeps a hostile XFCC `Chain=`
/// from making every request pay for hundreds of certificates.
pub const MAX_INTERMEDIATES: usize = 16;

/// A failed verification is re-checked after this many seconds: a failure caused by time (an
/// intermediate not yet valid) must not be cached until the leaf's notAfter.
const FAILURE_RECHECK_SECS: i64 = 300;

/// Verifies a leaf (plus presented intermediates) to configured trust anchors, with CRLs.
#[derive(Debug)]
pub struct ChainVerifier {
    anchors: Vec<Anchor>,
    /// `trustBundles`: a leaf verifies only against the anchors of its SPIFFE ID's trust domain.
    by_domain: bool,
    intermediates: Vec<CertificateDer<'static>>,
    /// Newest (latest thisUpdate) first, so that webpki, which takes the first CRL of an issuer,
    /// takes the newest one.
    crls: Vec<Crl>,
    /// `crlSources`: CRLs installed at run time (`source`).
    sources: Vec<SourceSlot>,
    /// The configured certificates that may sign a fetched CRL.
    signers: Vec<CrlSigner>,
    depth: RevocationCheckDepth,
    unknown_status: UnknownStatusPolicy,
    stale_status: UnknownStatus,
}

/// The outcome of one chain verification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainVerdict {
    /// `Err(UntrustedChain | Revoked | RevocationUnknown)` on failure.
    pub result: Result<(), Reason>,
    /// The verdict holds until this Unix time, inclusive: never before the time it was computed,
    /// never after the earliest notAfter on the verified path or a CRL status change.
    pub valid_until: i64,
}

impl ChainVerifier {
    /// Compiles `trustAnchors`, `intermediates`, `crls` and `revocation`; `None` when none is set.
    pub fn compile(reqs: &CertificateRequirements, path: &str) -> Result<Option<ChainVerifier>, Vec<ConfigError>> {
        if reqs.trust_anchors.is_none()
            && reqs.trust_bundles.is_none()
            && reqs.crls.is_none()
            && reqs.crl_sources.is_none()
            && reqs.intermediates.is_none()
            && reqs.revocation.is_none()
        {
            return Ok(None);
        }
        let mut errors = Vec::new();
        let mut signers = Vec::new();
        let anchors = match &reqs.trust_bundles {
            Some(bundles) => {
                if reqs.trust_anchors.is_some() {
                    errors.push(ConfigError::new(
                        format!("{path}.trustBundles"),
                        "trustBundles and trustAnchors exclude each other: with trustBundles each anchor vouches only for its own trust domain, which one trustAnchors pool would undo; move the anchors into the bundle of their trust domain",
                    ));
                }
                bundle::compile(bundles, path, &mut signers, &mut errors)
            }
            None => anchor::compile(reqs.trust_anchors.as_deref(), path, &mut signers, &mut errors),
        };
        let mut intermediates = Vec::new();
        if reqs.intermediates.as_ref().is_some_and(Vec::is_empty) {
            errors.push(ConfigError::new(
                format!("{path}.intermediates"),
                "empty list; remove the field when there are no intermediates to configure",
            ));
        }
        for (i, pem) in reqs.intermediates.iter().flatten().enumerate() {
            let at = format!("{path}.intermediates[{i}]");
            for der in pem_der_list(pem, &at, &mut errors) {
                match X509Certificate::from_der(&der) {
                    Ok(([], _)) => {
                        signers.extend(CrlSigner::from_der(&der));
                        intermediates.push(CertificateDer::from(der));
                    }
                    _ => errors.push(ConfigError::new(at.clone(), "not an X.509 certificate")),
                }
            }
        }
        if intermediates.len() > MAX_INTERMEDIATES {
            errors.push(ConfigError::new(
                format!("{path}.intermediates"),
                format!("{} certificates is over the budget of {MAX_INTERMEDIATES}", intermediates.len()),
            ));
        }
        let crls = match &reqs.crls {
            Some(list) => crl::compile(list, path, &signers, &mut errors),
            None => Vec::new(),
        };
        let sources = match &reqs.crl_sources {
            Some(list) => source::compile(list, path, &mut errors),
            None => Vec::new(),
        };
        let revocation = reqs.revocation.clone().unwrap_or_default();
        if reqs.revocation.is_some() && reqs.crls.is_none() && reqs.crl_sources.is_none() {
            errors.push(ConfigError::new(
                format!("{path}.revocation"),
                "revocation options need crls or crlSources: peerguard checks revocation only through configured CRLs",
            ));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Some(ChainVerifier {
            anchors,
            by_domain: reqs.trust_bundles.is_some(),
            intermediates,
            crls,
            sources,
            signers,
            depth: match revocation.depth {
                RevocationDepth::Chain => RevocationCheckDepth::Chain,
                RevocationDepth::Leaf => RevocationCheckDepth::EndEntity,
            },
            unknown_status: match revocation.unknown_status {
                UnknownStatus::Allow => UnknownStatusPolicy::Allow,
                UnknownStatus::Deny => UnknownStatusPolicy::Deny,
            },
            stale_status: revocation.stale_status,
        }))
    }

    /// Verifies `leaf` at `now` (Unix seconds) for client authentication, with `presented`
    /// (DER, e.g. from a bound XFCC `Chain=`) and the configured intermediates.
    pub fn verify(&self, leaf: &CertFacts, presented: &[Vec<u8>], now: i64) -> ChainVerdict {
        self.verify_for(leaf, presented, now, false)
    }

    /// [`ChainVerifier::verify`], or, with `server_auth`, for a TLS server (conformance only).
    fn verify_for(&self, leaf: &CertFacts, presented: &[Vec<u8>], now: i64, server_auth: bool) -> ChainVerdict {
        let usage = if server_auth { KeyUsage::server_auth() } else { KeyUsage::client_auth() };
        // Every CRL status change after `now` bounds the verdict, whatever it is: a fresh CRL
        // going stale turns an allow into revocation_unknown, a CRL reaching its thisUpdate can
        // turn revocation_unknown into an allow or a revoked.
        let installed: Vec<_> = self.sources.iter().filter_map(SourceSlot::current).collect();
        let mut crls: Vec<&Crl> = self.crls.iter().chain(installed.iter().map(|c| &**c)).collect();
        if !installed.is_empty() {
            // Newest first, as `crls` is (webpki takes the first CRL of an issuer).
            crls.sort_by_key(|c| core::cmp::Reverse(c.this_update));
        }
        let crl_until = crls.iter().map(|c| c.status_until(now)).min().unwrap_or(i64::MAX);
        let fail = |reason| ChainVerdict {
            result: Err(reason),
            // Never before `now`: an entry born expired would be re-verified on every request.
            valid_until: now.saturating_add(FAILURE_RECHECK_SECS).min(crl_until).min(leaf.not_after.max(now)).max(now),
        };
        let leaf_der = CertificateDer::from(leaf.der.as_slice());
        let Ok(ee) = EndEntityCert::try_from(&leaf_der) else {
            return fail(Reason::UntrustedChain);
        };
        // A copy of the leaf in the presented chain is ignored (XFCC Chain= usually repeats it).
        let mut pool: Vec<CertificateDer<'_>> = presented
            .iter()
            .filter(|d| d.as_slice() != leaf.der.as_slice())
            .map(|d| CertificateDer::from(d.as_slice()))
            .collect();
        if pool.len() + self.intermediates.len() > MAX_INTERMEDIATES {
            return fail(Reason::UntrustedChain);
        }
        pool.extend(self.intermediates.iter().map(|c| CertificateDer::from(c.as_ref())));

        // An anchor past its notAfter, or one that breaks the profile, verifies nothing.
        // With trustBundles, only the bundle of the leaf's own trust domain (docs/policy.md
        // "Trust bundles"); a leaf without one SPIFFE ID has no bundle.
        let domain = match self.by_domain {
            true => match bundle::leaf_trust_domain(leaf) {
                Some(td) => Some(td),
                None => return fail(Reason::UntrustedChain),
            },
            false => None,
        };
        let anchors = anchor::usable(&self.anchors, now, server_auth, domain.as_deref());
        if anchors.is_empty() {
            return fail(Reason::UntrustedChain);
        }

        // Fresh CRLs first (newest first), then the stale ones of issuers that have no fresh CRL.
        let crl::ForVerification { crls: crl_refs, stale_only, unknown_only } = crl::for_verification(&crls, now);
        let revocation = RevocationOptionsBuilder::new(&crl_refs).ok().map(|b| {
            b.with_depth(self.depth)
                .with_status_policy(self.unknown_status)
                // Freshness is decided above (`crl`): nextUpdate is inclusive (docs/policy.md
                // "Certificates and revocation"), plus a CRL source's grace.
                .with_expiration_policy(ExpirationPolicy::Ignore)
                .build()
        });
        // A path whose status rests on a stale-only issuer is refused under `staleStatus: deny`;
        // webpki then tries the other paths, and reports this one as UnknownRevocationStatus.
        let chain_depth = self.depth == RevocationCheckDepth::Chain;
        let stale_deny = self.stale_status == UnknownStatus::Deny && !stale_only.is_empty();
        // A CRL source's CRL past nextUpdate + maxStale leaves its issuer's status unknown.
        let unknown_deny = self.unknown_status == UnknownStatusPolicy::Deny && !unknown_only.is_empty();
        let check_path = |path: &VerifiedPath<'_>| -> Result<(), webpki::Error> {
            // The profile rules webpki leaves out, on every certificate it verified.
            let ee = (path.end_entity().der(), profile::Role::Leaf);
            let cas = path.intermediate_certificates().map(|c| (c.der(), profile::Role::Intermediate));
            for (der, role) in core::iter::once(ee).chain(cas) {
                if profile::violation(der.as_ref(), role, server_auth).is_some() {
                    return Err(webpki::Error::BadDer);
                }
            }
            if !stale_deny && !unknown_deny {
                return Ok(());
            }
            let leaf_issuer = core::iter::once(path.end_entity().issuer());
            let issuers: Vec<&[u8]> = if chain_depth {
                leaf_issuer.chain(path.intermediate_certificates().map(|c| c.issuer())).collect()
            } else {
                leaf_issuer.collect()
            };
            if issuers
                .iter()
                .any(|i| (stale_deny && stale_only.contains(i)) || (unknown_deny && unknown_only.contains(i)))
            {
                Err(webpki::Error::UnknownRevocationStatus)
            } else {
                Ok(())
            }
        };
        let time = UnixTime::since_unix_epoch(core::time::Duration::from_secs(u64::try_from(now).unwrap_or(0)));
        let no_crls = revocation.is_none();
        let verified = ee.verify_for_usage(sigalg::ALL, &anchors, &pool, time, usage, revocation, Some(&check_path));
        match verified {
            // No CRL at all (only CRL sources, none delivered yet): every status is unknown.
            Ok(_) if no_crls && self.unknown_status == UnknownStatusPolicy::Deny => fail(Reason::RevocationUnknown),
            Ok(path) => {
                let mut valid_until = leaf.not_after.min(crl_until);
                for c in path.intermediate_certificates() {
                    if let Some(t) = not_after(c.der().as_ref()) {
                        valid_until = valid_until.min(t);
                    }
                }
                if let Some(t) = anchor::not_after_of(&self.anchors, path.anchor()) {
                    valid_until = valid_until.min(t);
                }
                ChainVerdict { result: Ok(()), valid_until }
            }
            Err(webpki::Error::CertRevoked) => fail(Reason::Revoked),
            Err(webpki::Error::UnknownRevocationStatus) | Err(webpki::Error::CrlExpired { .. }) => {
                fail(Reason::RevocationUnknown)
            }
            Err(_) => fail(Reason::UntrustedChain),
        }
    }

    /// The configured CRL sources.
    pub(crate) fn sources(&self) -> &[SourceSlot] {
        &self.sources
    }

    /// Checks and installs the CRL fetched for `sources()[i]`.
    pub(crate) fn install(&self, i: usize, body: &[u8]) -> Result<CrlInstalled, String> {
        match self.sources.get(i) {
            Some(slot) => slot.install(body, &self.signers),
            None => Err("no such CRL source".to_owned()),
        }
    }

    /// One line per configured trust anchor that is unusable, expired at `now` or expires within
    /// 30 days, for the filter to log when it loads the policy.
    pub(crate) fn anchor_warnings(&self, now: i64) -> Vec<String> {
        self.anchors.iter().filter_map(|a| a.warning(now)).collect()
    }
}

impl CertFacts {
    /// Test-only entry for the x509-limbo conformance test: the certificate checks of the engine's
    /// step 2 that concern a chain (validity, weak-key floor, then the chain of
    /// `requirements`), for TLS server authentication when `server_auth` is true (limbo's SERVER
    /// cases), else for client authentication as [`crate::Engine`] always does. `Err` carries the
    /// reason code, or the configuration error.
    #[doc(hidden)]
    pub fn verify_chain_for_conformance(
        &self,
        requirements: &CertificateRequirements,
        presented: &[Vec<u8>],
        now: i64,
        server_auth: bool,
    ) -> Result<(), String> {
        let verifier = match ChainVerifier::compile(requirements, "certificate") {
            Ok(Some(v)) => v,
            Ok(None) => return Err("no trustAnchors".to_owned()),
            Err(errors) => {
                let lines: Vec<String> = errors.iter().map(|e| format!("{}: {}", e.path, e.message)).collect();
                return Err(format!("config_invalid ({})", lines.join("; ")));
            }
        };
        if now < self.not_before {
            return Err(Reason::NotYetValid.code().to_owned());
        }
        if now > self.not_after {
            return Err(Reason::Expired.code().to_owned());
        }
        if crate::certreq::below_key_floor(self) {
            return Err(Reason::KeyNotAllowed.code().to_owned());
        }
        verifier.verify_for(self, presented, now, server_auth).result.map_err(|r| r.code().to_owned())
    }
}

/// Every certificate of a PEM bundle at `at`, recording an error when there is none.
fn pem_der_list(pem: &str, at: &str, errors: &mut Vec<ConfigError>) -> Vec<Vec<u8>> {
    match pem_certificates(pem.as_bytes()) {
        Ok(ders) => ders,
        Err(_) => {
            errors.push(ConfigError::new(at, "expected a PEM certificate (-----BEGIN CERTIFICATE-----)"));
            Vec::new()
        }
    }
}

fn not_after(der: &[u8]) -> Option<i64> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    Some(cert.validity().not_after.timestamp())
}
