//! Chain verification to pinned trust anchors, with CRL revocation (rustls-webpki, pure-Rust signatures).
//!
//! webpki does the path building (RFC 5280 section 6, as webpki profiles it), the EKU check,
//! validity at the request time, and the CRL lookup (RFC 5280 section 6.3). Signatures are checked
//! by [`crate::sigalg`], so the same code runs natively, in wasm32-wasip1 and in
//! wasm32-unknown-unknown. What webpki leaves to its caller is done here:
//! - Trust anchors have no validity in webpki. An anchor past its notAfter is dropped before path
//!   building (PRODUCT.md: it verifies nothing), and [`ChainVerifier::anchor_warnings`] names the
//!   anchors that are expired or expire within 30 days.
//! - CRL freshness. webpki's `ExpirationPolicy::Enforce` is not used: it treats `nextUpdate`
//!   itself as stale (PRODUCT.md says inclusive), it has no grace for a CRL source's `maxStale`,
//!   it never looks at `thisUpdate`, and it takes the first CRL of an issuer even when a newer one
//!   is configured. Instead each verification hands webpki the fresh CRLs (newest first), then,
//!   for issuers that have no fresh CRL, their stale ones (still a blocklist: a serial a stale CRL
//!   lists stays revoked), and rejects a path that relies on a stale-only issuer when
//!   `staleStatus: deny`.
//! - CRL conformance (RFC 5280 section 5): no `nextUpdate`, no CRLNumber or a critical one, or a
//!   configured issuer whose keyUsage lacks cRLSign is a configuration error naming the CRL (webpki
//!   checks cRLSign only on intermediates, never on a trust anchor).
//! - The certificate profile (RFC 5280 section 4) where webpki does not check it: serial numbers,
//!   AKI/SKI presence and criticality, basicConstraints and keyUsage of CA certificates,
//!   nameConstraints form, dNSName syntax, and, on trust anchors (which webpki reduces to a name
//!   and a key), unknown critical extensions. A leaf or intermediate that breaks it fails the path
//!   (`untrusted_chain`); an anchor that breaks it anchors nothing and is named by
//!   `anchor_warnings` (see `profile`). The CA/Browser Forum rules that x509-limbo's webpki cases
//!   test run only for serverAuth, i.e. in the conformance entry.
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

use rustls_pki_types::{CertificateDer, Der, TrustAnchor, UnixTime};
use webpki::{
    CertRevocationList, EndEntityCert, ExpirationPolicy, KeyUsage, OwnedCertRevocationList, RevocationCheckDepth,
    RevocationOptionsBuilder, UnknownStatusPolicy, VerifiedPath,
};
use x509_parser::prelude::{FromDer as _, X509Certificate};

use crate::cert::{pem_blocks_within, pem_certificates, CertError, CertFacts, MAX_CONFIG_PEM_BYTES};
use crate::config::{CertificateRequirements, RevocationDepth, UnknownStatus};
use crate::error::ConfigError;
use crate::reason::Reason;
use crate::sigalg;

/// Most intermediates (presented plus configured) offered to one path build. webpki also
/// bounds its own work (path length, signature budget); this keeps a hostile XFCC `Chain=`
/// from making every request pay for hundreds of certificates.
pub const MAX_INTERMEDIATES: usize = 16;

/// A failed verification is re-checked after this many seconds: a failure caused by time (an
/// intermediate not yet valid) must not be cached until the leaf's notAfter.
const FAILURE_RECHECK_SECS: i64 = 300;

/// An anchor that expires within this many seconds is named by [`ChainVerifier::anchor_warnings`].
const ANCHOR_WARNING_SECS: i64 = 30 * 86_400;

/// A configured trust anchor, the notAfter of the certificate it came from, and where it was
/// configured (for warnings).
#[derive(Debug)]
struct Anchor {
    anchor: TrustAnchor<'static>,
    not_after: i64,
    path: String,
    subject: String,
    /// Why the anchor breaks the RFC 5280 profile, if it does: it then anchors no path.
    violation: Option<String>,
    /// Why the anchor breaks the CA/Browser Forum rules for TLS server roots, if it does: it then
    /// anchors no serverAuth path (conformance only; client paths are not held to those rules).
    server_violation: Option<String>,
}

/// A configured CRL with the times that decide whether it is proof of status.
#[derive(Debug)]
struct Crl {
    crl: CertRevocationList<'static>,
    /// The contents of the issuer Name (what webpki compares with a certificate's issuer).
    issuer: Vec<u8>,
    this_update: i64,
    next_update: i64,
    /// Seconds after `nextUpdate` during which the CRL still counts as fresh: a CRL source's
    /// `maxStale`, 0 for a CRL written in the policy.
    grace: i64,
}

impl Crl {
    /// Proof of status at `now`: from thisUpdate through nextUpdate (+ grace), both inclusive.
    fn fresh_at(&self, now: i64) -> bool {
        self.this_update <= now && now <= self.next_update.saturating_add(self.grace)
    }

    /// The last second at which this CRL is still as fresh or stale as it is at `now`: a verdict
    /// that relied on it must be recomputed after that (a CRL from the future becomes proof at its
    /// thisUpdate, a fresh one stops being proof after its nextUpdate).
    fn status_until(&self, now: i64) -> i64 {
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

/// Verifies a leaf (plus presented intermediates) to configured trust anchors, with CRLs.
#[derive(Debug)]
pub struct ChainVerifier {
    anchors: Vec<Anchor>,
    intermediates: Vec<CertificateDer<'static>>,
    /// Newest (latest thisUpdate) first, so that webpki, which takes the first CRL of an issuer,
    /// takes the newest one.
    crls: Vec<Crl>,
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

/// A configured certificate that may have issued a CRL: its subject Name (whole DER), its SPKI and
/// whether its keyUsage, when present, allows cRLSign.
struct CrlSigner {
    subject: Vec<u8>,
    spki: Vec<u8>,
    crl_sign: Option<bool>,
}

impl CrlSigner {
    fn from_der(der: &[u8]) -> Option<CrlSigner> {
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

impl ChainVerifier {
    /// Compiles `trustAnchors`, `intermediates`, `crls` and `revocation`; `None` when none is set.
    pub fn compile(reqs: &CertificateRequirements, path: &str) -> Result<Option<ChainVerifier>, Vec<ConfigError>> {
        if reqs.trust_anchors.is_none()
            && reqs.crls.is_none()
            && reqs.intermediates.is_none()
            && reqs.revocation.is_none()
        {
            return Ok(None);
        }
        let mut errors = Vec::new();
        let mut anchors = Vec::new();
        let mut signers = Vec::new();
        match &reqs.trust_anchors {
            None => errors.push(ConfigError::new(
                format!("{path}.trustAnchors"),
                "intermediates, crls and revocation need trustAnchors: chain verification and CRL checks run on a path that verifies to a trust anchor",
            )),
            Some(list) if list.is_empty() => errors.push(ConfigError::new(
                format!("{path}.trustAnchors"),
                "empty list trusts nothing; remove the field to disable chain verification",
            )),
            Some(list) => {
                for (i, pem) in list.iter().enumerate() {
                    let at = format!("{path}.trustAnchors[{i}]");
                    for der in pem_der_list(pem, &at, &mut errors) {
                        signers.extend(CrlSigner::from_der(&der));
                        match anchor_from_der(der, &at) {
                            Ok(a) => anchors.push(a),
                            Err(msg) => errors.push(ConfigError::new(at.clone(), msg)),
                        }
                    }
                }
            }
        }
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
        let mut crls = Vec::new();
        if let Some(list) = &reqs.crls {
            if list.is_empty() {
                errors.push(ConfigError::new(
                    format!("{path}.crls"),
                    "empty list; remove the field to disable CRL checks",
                ));
            }
            for (i, pem) in list.iter().enumerate() {
                let at = format!("{path}.crls[{i}]");
                match pem_blocks_within(pem.as_bytes(), "X509 CRL", MAX_CONFIG_PEM_BYTES) {
                    Ok(ders) => {
                        for der in ders {
                            match crl_from_der(&der, &signers) {
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
        }
        let revocation = reqs.revocation.clone().unwrap_or_default();
        if reqs.revocation.is_some() && reqs.crls.is_none() {
            errors.push(ConfigError::new(
                format!("{path}.revocation"),
                "revocation options need crls: peerguard checks revocation only through configured CRLs",
            ));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        // Newest first; the sort is stable, so equal thisUpdates keep their configured order.
        crls.sort_by_key(|c| core::cmp::Reverse(c.this_update));
        Ok(Some(ChainVerifier {
            anchors,
            intermediates,
            crls,
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
        let crl_until = self.crls.iter().map(|c| c.status_until(now)).min().unwrap_or(i64::MAX);
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

        // An anchor past its notAfter verifies nothing (webpki itself never looks at an anchor's
        // validity). notAfter is inclusive, as for every certificate.
        let anchors: Vec<TrustAnchor<'_>> = self
            .anchors
            .iter()
            .filter(|a| now <= a.not_after && a.violation.is_none() && !(server_auth && a.server_violation.is_some()))
            .map(|a| TrustAnchor {
                subject: Der::from(a.anchor.subject.as_ref()),
                subject_public_key_info: Der::from(a.anchor.subject_public_key_info.as_ref()),
                name_constraints: a.anchor.name_constraints.as_ref().map(|n| Der::from(n.as_ref())),
            })
            .collect();
        if anchors.is_empty() {
            return fail(Reason::UntrustedChain);
        }

        // Fresh CRLs first (newest first), then the stale ones of issuers that have no fresh CRL.
        let has_fresh = |issuer: &[u8]| self.crls.iter().any(|c| c.issuer == issuer && c.fresh_at(now));
        let mut crl_refs: Vec<&CertRevocationList<'_>> =
            self.crls.iter().filter(|c| c.fresh_at(now)).map(|c| &c.crl).collect();
        let mut stale_only: Vec<&[u8]> = Vec::new();
        for c in self.crls.iter().filter(|c| !c.fresh_at(now) && !has_fresh(&c.issuer)) {
            crl_refs.push(&c.crl);
            stale_only.push(&c.issuer);
        }
        let revocation = RevocationOptionsBuilder::new(&crl_refs).ok().map(|b| {
            b.with_depth(self.depth)
                .with_status_policy(self.unknown_status)
                // Freshness is decided above, with PRODUCT.md's inclusive nextUpdate and grace.
                .with_expiration_policy(ExpirationPolicy::Ignore)
                .build()
        });
        // A path whose status rests on a stale-only issuer is refused under `staleStatus: deny`;
        // webpki then tries the other paths, and reports this one as UnknownRevocationStatus.
        let chain_depth = self.depth == RevocationCheckDepth::Chain;
        let stale_deny = self.stale_status == UnknownStatus::Deny && !stale_only.is_empty();
        let check_path = |path: &VerifiedPath<'_>| -> Result<(), webpki::Error> {
            // The profile rules webpki leaves out, on every certificate it verified.
            let ee = (path.end_entity().der(), profile::Role::Leaf);
            let cas = path.intermediate_certificates().map(|c| (c.der(), profile::Role::Intermediate));
            for (der, role) in core::iter::once(ee).chain(cas) {
                if profile::violation(der.as_ref(), role, server_auth).is_some() {
                    return Err(webpki::Error::BadDer);
                }
            }
            if !stale_deny {
                return Ok(());
            }
            let leaf_issuer = core::iter::once(path.end_entity().issuer());
            let issuers: Vec<&[u8]> = if chain_depth {
                leaf_issuer.chain(path.intermediate_certificates().map(|c| c.issuer())).collect()
            } else {
                leaf_issuer.collect()
            };
            if issuers.iter().any(|i| stale_only.contains(i)) {
                Err(webpki::Error::UnknownRevocationStatus)
            } else {
                Ok(())
            }
        };
        let time = UnixTime::since_unix_epoch(core::time::Duration::from_secs(u64::try_from(now).unwrap_or(0)));
        let verified = ee.verify_for_usage(sigalg::ALL, &anchors, &pool, time, usage, revocation, Some(&check_path));
        match verified {
            Ok(path) => {
                let mut valid_until = leaf.not_after.min(crl_until);
                for c in path.intermediate_certificates() {
                    if let Some(t) = not_after(c.der().as_ref()) {
                        valid_until = valid_until.min(t);
                    }
                }
                let anchor = path.anchor();
                if let Some(a) = self.anchors.iter().find(|a| {
                    a.anchor.subject.as_ref() == anchor.subject.as_ref()
                        && a.anchor.subject_public_key_info.as_ref() == anchor.subject_public_key_info.as_ref()
                }) {
                    valid_until = valid_until.min(a.not_after);
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

    /// One line per configured trust anchor that is expired at `now` or expires within 30 days,
    /// for the filter to log when it loads the policy.
    pub(crate) fn anchor_warnings(&self, now: i64) -> Vec<String> {
        let mut out = Vec::new();
        for a in &self.anchors {
            if let Some(why) = &a.violation {
                out.push(format!(
                    "{}: trust anchor {} is unusable, so every chain to it is untrusted_chain: {why}",
                    a.path, a.subject
                ));
            } else if a.not_after < now {
                out.push(format!(
                    "{}: trust anchor {} expired at {}; it verifies nothing, so every chain to it is untrusted_chain",
                    a.path,
                    a.subject,
                    rfc3339(a.not_after)
                ));
            } else if a.not_after - now <= ANCHOR_WARNING_SECS {
                out.push(format!(
                    "{}: trust anchor {} expires at {} (within 30 days); chains to it are untrusted_chain after that",
                    a.path,
                    a.subject,
                    rfc3339(a.not_after)
                ));
            }
        }
        out
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

fn anchor_from_der(der: Vec<u8>, at: &str) -> Result<Anchor, String> {
    let Some(not_after) = not_after(&der) else {
        return Err("not an X.509 certificate".to_owned());
    };
    // The subject as peerguard renders DNs everywhere (x509-parser's own rendering would link its
    // whole OID registry into the module).
    let subject = CertFacts::from_der(&der).map(|f| f.subject).unwrap_or_default();
    // A non-conforming anchor anchors nothing, but does not make the policy invalid: the other
    // anchors still work, and the filter logs the reason at load (`anchor_warnings`).
    let violation = profile::violation(&der, profile::Role::Anchor, false);
    let server_violation = profile::violation(&der, profile::Role::Anchor, true);
    let cert = CertificateDer::from(der);
    let anchor =
        webpki::anchor_from_trusted_cert(&cert).map_err(|e| format!("not usable as a trust anchor: {e:?}"))?.to_owned();
    Ok(Anchor { anchor, not_after, path: at.to_owned(), subject, violation, server_violation })
}

/// Parses one CRL and refuses what RFC 5280 section 5 says a conforming issuer never produces.
fn crl_from_der(der: &[u8], signers: &[CrlSigner]) -> Result<Crl, String> {
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
    })
}

fn not_after(der: &[u8]) -> Option<i64> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    Some(cert.validity().not_after.timestamp())
}

/// `YYYY-MM-DDTHH:MM:SSZ` for Unix seconds (no clock or time crate needed, so it runs in wasm).
fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Whether a certificate's signature verifies with its own public key (RFC 5280 section 6.1:
/// "self-signed" means self-issued and verifiable with the key in the certificate).
///
/// A certificate whose algorithms peerguard cannot verify counts as self-signed when it is
/// self-issued: `rejectSelfSigned` then fails closed rather than open.
pub fn self_signature_verifies(facts: &CertFacts) -> bool {
    let Some(parts) = der::certificate_parts(&facts.der) else {
        return facts.self_issued;
    };
    let Some((key_alg, key_bits)) = der::spki_parts(&facts.spki_der) else {
        return facts.self_issued;
    };
    match sigalg::find(key_alg, parts.signature_alg) {
        Some(alg) => alg.verify_signature(key_bits, parts.tbs, parts.signature).is_ok(),
        None => facts.self_issued,
    }
}

/// Just enough DER (X.690) to split a certificate, a CRL and an SPKI into the parts a signature
/// check and the CRL conformance checks need.
mod der {
    use x509_parser::prelude::{ASN1Time, FromDer as _};

    /// One TLV: its tag, its contents, the whole encoding, and what follows.
    struct Tlv<'a> {
        tag: u8,
        contents: &'a [u8],
        whole: &'a [u8],
        rest: &'a [u8],
    }

    fn tlv(input: &[u8]) -> Option<Tlv<'_>> {
        let (&tag, after_tag) = input.split_first()?;
        let (&first, after_len) = after_tag.split_first()?;
        let (len, body) = if first < 0x80 {
            (usize::from(first), after_len)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 || after_len.len() < n {
                return None;
            }
            let len = after_len[..n].iter().fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            (len, &after_len[n..])
        };
        if body.len() < len {
            return None;
        }
        let header = input.len() - body.len();
        Some(Tlv { tag, contents: &body[..len], whole: &input[..header + len], rest: &body[len..] })
    }

    const BOOLEAN: u8 = 0x01;
    const INTEGER: u8 = 0x02;
    const BIT_STRING: u8 = 0x03;
    const OID: u8 = 0x06;
    const UTC_TIME: u8 = 0x17;
    const GENERALIZED_TIME: u8 = 0x18;
    const SEQUENCE: u8 = 0x30;
    const EXPLICIT_0: u8 = 0xa0;
    /// 2.5.29.20, id-ce-cRLNumber.
    const CRL_NUMBER: &[u8] = &[0x55, 0x1d, 0x14];

    /// A BIT STRING's bytes, when it has no unused bits.
    fn bit_string_bytes<'a>(t: &Tlv<'a>) -> Option<&'a [u8]> {
        if t.tag != BIT_STRING {
            return None;
        }
        match t.contents.split_first() {
            Some((0, bytes)) => Some(bytes),
            _ => None,
        }
    }

    pub(super) struct CertParts<'a> {
        pub tbs: &'a [u8],
        pub signature_alg: &'a [u8],
        pub signature: &'a [u8],
    }

    /// `Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue BIT STRING }`
    /// (RFC 5280 section 4.1); a CRL's `CertificateList` has the same shape (section 5.1).
    pub(super) fn certificate_parts(der: &[u8]) -> Option<CertParts<'_>> {
        let cert = tlv(der).filter(|t| t.tag == SEQUENCE)?;
        let tbs = tlv(cert.contents).filter(|t| t.tag == SEQUENCE)?;
        let alg = tlv(tbs.rest).filter(|t| t.tag == SEQUENCE)?;
        let sig = tlv(alg.rest)?;
        Some(CertParts { tbs: tbs.whole, signature_alg: alg.contents, signature: bit_string_bytes(&sig)? })
    }

    /// `SubjectPublicKeyInfo ::= SEQUENCE { algorithm, subjectPublicKey BIT STRING }`: the
    /// algorithm's contents and the key bytes.
    pub(super) fn spki_parts(der: &[u8]) -> Option<(&[u8], &[u8])> {
        let spki = tlv(der).filter(|t| t.tag == SEQUENCE)?;
        let alg = tlv(spki.contents).filter(|t| t.tag == SEQUENCE)?;
        let key = tlv(alg.rest)?;
        Some((alg.contents, bit_string_bytes(&key)?))
    }

    /// Whether the signature of a certificate or CRL verifies with the key of `spki`.
    pub(super) fn signed_by(der: &[u8], spki: &[u8]) -> bool {
        let (Some(parts), Some((key_alg, key))) = (certificate_parts(der), spki_parts(spki)) else {
            return false;
        };
        super::sigalg::find(key_alg, parts.signature_alg)
            .is_some_and(|alg| alg.verify_signature(key, parts.tbs, parts.signature).is_ok())
    }

    /// What the CRL checks read from a `TBSCertList` (RFC 5280 section 5.1).
    pub(super) struct CrlFields<'a> {
        /// The issuer Name, whole (as x509-parser's `as_raw`) and its contents (as webpki keeps it).
        pub issuer_whole: &'a [u8],
        pub issuer_contents: &'a [u8],
        /// The Time TLVs.
        pub this_update: &'a [u8],
        pub next_update: Option<&'a [u8]>,
        /// `None` without a CRLNumber extension, else whether it is marked critical.
        pub crl_number_critical: Option<bool>,
    }

    pub(super) fn crl_fields(der: &[u8]) -> Option<CrlFields<'_>> {
        let list = tlv(der).filter(|t| t.tag == SEQUENCE)?;
        let tbs = tlv(list.contents).filter(|t| t.tag == SEQUENCE)?;
        let mut next = tlv(tbs.contents)?;
        if next.tag == INTEGER {
            next = tlv(next.rest)?;
        }
        let signature = Some(next).filter(|t| t.tag == SEQUENCE)?;
        let issuer = tlv(signature.rest).filter(|t| t.tag == SEQUENCE)?;
        let this_update = tlv(issuer.rest).filter(|t| t.tag == UTC_TIME || t.tag == GENERALIZED_TIME)?;
        let mut rest = this_update.rest;
        let mut next_update = None;
        if let Some(t) = tlv(rest).filter(|t| t.tag == UTC_TIME || t.tag == GENERALIZED_TIME) {
            next_update = Some(t.whole);
            rest = t.rest;
        }
        if let Some(t) = tlv(rest).filter(|t| t.tag == SEQUENCE) {
            rest = t.rest; // revokedCertificates
        }
        let mut crl_number_critical = None;
        if let Some(t) = tlv(rest).filter(|t| t.tag == EXPLICIT_0) {
            let exts = tlv(t.contents).filter(|t| t.tag == SEQUENCE)?;
            let mut items = exts.contents;
            while !items.is_empty() {
                let ext = tlv(items).filter(|t| t.tag == SEQUENCE)?;
                items = ext.rest;
                let oid = tlv(ext.contents).filter(|t| t.tag == OID)?;
                if oid.contents == CRL_NUMBER {
                    let critical = tlv(oid.rest).filter(|t| t.tag == BOOLEAN).is_some_and(|b| b.contents != [0]);
                    crl_number_critical = Some(critical);
                }
            }
        }
        Some(CrlFields {
            issuer_whole: issuer.whole,
            issuer_contents: issuer.contents,
            this_update: this_update.whole,
            next_update,
            crl_number_critical,
        })
    }

    /// Unix seconds of a UTCTime or GeneralizedTime TLV.
    pub(super) fn time(der: &[u8]) -> Option<i64> {
        ASN1Time::from_der(der).ok().map(|(_, t)| t.timestamp())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code
    use super::*;

    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    /// 2030-06-01T12:00:00Z, the instant the fixtures are built around.
    const T: i64 = 1_906_545_600;

    fn verifier(anchors: &[&str]) -> ChainVerifier {
        let reqs = CertificateRequirements {
            trust_anchors: Some(anchors.iter().map(|a| (*a).to_owned()).collect()),
            ..CertificateRequirements::default()
        };
        ChainVerifier::compile(&reqs, "certificate").unwrap().unwrap()
    }

    #[test]
    fn expired_and_soon_expiring_anchors_are_named_for_the_load_log() {
        let v = verifier(&[
            include_str!("../tests/fixtures/root-ca.pem"),
            include_str!("../tests/fixtures/expired-root-ca.pem"),
            include_str!("../tests/fixtures/expiring-root-ca.pem"),
        ]);
        let warnings = v.anchor_warnings(T);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].starts_with("certificate.trustAnchors[1]: "), "{}", warnings[0]);
        assert!(warnings[0].contains("expired at 2030-05-01T00:00:00Z"), "{}", warnings[0]);
        assert!(warnings[0].contains("expired root CA"), "{}", warnings[0]);
        assert!(warnings[1].starts_with("certificate.trustAnchors[2]: "), "{}", warnings[1]);
        assert!(warnings[1].contains("expires at 2030-06-11T12:00:00Z (within 30 days)"), "{}", warnings[1]);
        // 31 days before its notAfter, the expiring anchor is not worth a warning yet.
        assert_eq!(v.anchor_warnings(T + 10 * 86_400 - 31 * 86_400).len(), 1);
    }

    #[test]
    fn rfc3339_renders_unix_seconds_in_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(T), "2030-06-01T12:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn crl_freshness_is_inclusive_at_both_ends_and_its_changes_bound_a_verdict() {
        let crl = |this_update, next_update, grace| Crl {
            crl: CertRevocationList::Owned(
                OwnedCertRevocationList::from_der(
                    &pem_blocks_within(
                        include_str!("../tests/fixtures/crl-root-empty.pem").as_bytes(),
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

/// The parts of the RFC 5280 certificate profile that webpki leaves unchecked, and, for
/// serverAuth only, the CA/Browser Forum Baseline Requirements rules that limbo's webpki cases
/// test (BR govern TLS server certificates; peerguard verifies client certificates, so those run
/// only through the conformance entry).
///
/// A certificate that a conforming CA never issues proves nothing about its issuer's intent, so
/// the path is refused (`untrusted_chain`), or, for a configured trust anchor, the policy is
/// refused at load.
mod profile {
    use x509_parser::extensions::{GeneralName, ParsedExtension};
    use x509_parser::prelude::{FromDer as _, X509Certificate};

    /// Where a certificate sits in the path.
    #[derive(Clone, Copy, PartialEq, Eq)]
    pub(super) enum Role {
        Anchor,
        Intermediate,
        Leaf,
    }

    /// The first profile violation of `der` in `role`, if any.
    pub(super) fn violation(der: &[u8], role: Role, server: bool) -> Option<String> {
        let Ok((_, cert)) = X509Certificate::from_der(der) else {
            return Some("does not parse as an X.509 certificate".to_owned());
        };
        rfc5280(&cert, role).err().or_else(|| if server { cabf(&cert, role).err() } else { None })
    }

    fn rfc5280(cert: &X509Certificate<'_>, role: Role) -> Result<(), String> {
        let fail = |why: &str| Err(why.to_owned());
        // Serial: a positive integer of at most 20 octets (section 4.1.2.2); one leading zero octet
        // only carries the sign.
        // Not for anchors: a trust anchor is a name and a key (RFC 5280 section 6.1.1 (d)), and
        // some long-trusted roots have serial 0.
        let serial = cert.raw_serial();
        let value = serial.strip_prefix(&[0]).unwrap_or(serial);
        if role != Role::Anchor && (serial.first().is_some_and(|b| b & 0x80 != 0) || serial.iter().all(|b| *b == 0)) {
            return fail("serial number is not a positive integer (RFC 5280 section 4.1.2.2)");
        }
        if role != Role::Anchor && value.len() > 20 {
            return fail("serial number is longer than 20 octets (RFC 5280 section 4.1.2.2)");
        }
        let self_issued = cert.subject().as_raw() == cert.issuer().as_raw();
        let subject_empty = cert.subject().iter_rdn().next().is_none();
        let bc = cert.basic_constraints().map_err(|_| "basicConstraints does not parse".to_owned())?;
        let is_ca = bc.as_ref().is_some_and(|b| b.value.ca);
        let mut aki_key_id = false;
        let mut ski = false;
        for ext in cert.extensions() {
            match ext.parsed_extension() {
                ParsedExtension::ParseError { .. } => {
                    return Err(format!("extension {} does not parse", ext.oid));
                }
                ParsedExtension::UnsupportedExtension { .. } if ext.critical && role == Role::Anchor => {
                    // webpki refuses these on the path, never on an anchor.
                    return Err(format!("unknown critical extension {}", ext.oid));
                }
                ParsedExtension::AuthorityKeyIdentifier(aki) => {
                    if ext.critical {
                        return fail("authorityKeyIdentifier is critical (RFC 5280 section 4.2.1.1)");
                    }
                    aki_key_id = aki.key_identifier.is_some();
                }
                ParsedExtension::SubjectKeyIdentifier(_) => {
                    if ext.critical {
                        return fail("subjectKeyIdentifier is critical (RFC 5280 section 4.2.1.2)");
                    }
                    ski = true;
                }
                ParsedExtension::SubjectAlternativeName(san) => {
                    if subject_empty && !ext.critical {
                        return fail("empty subject with a non-critical subjectAltName (RFC 5280 section 4.2.1.6)");
                    }
                    for name in &san.general_names {
                        if let GeneralName::DNSName(d) = name {
                            if !preferred_name_syntax(d) {
                                return Err(format!(
                                    "dNSName {d:?} is not in preferred name syntax (RFC 5280 section 4.2.1.6)"
                                ));
                            }
                        }
                    }
                }
                ParsedExtension::NameConstraints(nc) => {
                    if !is_ca {
                        return fail("nameConstraints in a certificate that is not a CA (RFC 5280 section 4.2.1.10)");
                    }
                    // Also the RFC 5280 side of limbo's conflict pair with webpki, which accepts it.
                    if !ext.critical {
                        return fail("nameConstraints is not critical (RFC 5280 section 4.2.1.10)");
                    }
                    let subtrees = [&nc.permitted_subtrees, &nc.excluded_subtrees];
                    if subtrees.iter().all(|s| s.as_ref().is_none_or(Vec::is_empty)) {
                        return fail(
                            "nameConstraints with neither permitted nor excluded subtrees (RFC 5280 section 4.2.1.10)",
                        );
                    }
                    if subtrees.iter().any(|s| s.as_ref().is_some_and(Vec::is_empty)) {
                        return fail("nameConstraints with an empty list of subtrees (RFC 5280 section 4.2.1.10)");
                    }
                    let dns_bases = subtrees.iter().copied().flatten().flatten().filter_map(|s| match s.base {
                        GeneralName::DNSName(d) => Some(d),
                        _ => None,
                    });
                    for d in dns_bases {
                        if d.starts_with('.') {
                            return Err(format!(
                                "nameConstraints dNSName {d:?} starts with a period (RFC 5280 section 4.2.1.10)"
                            ));
                        }
                    }
                }
                ParsedExtension::PolicyConstraints(_) if !ext.critical => {
                    return fail("policyConstraints is not critical (RFC 5280 section 4.2.1.11)");
                }
                ParsedExtension::AuthorityInfoAccess(aia) if aia.accessdescs.is_empty() => {
                    return fail("authorityInfoAccess without access descriptions (RFC 5280 section 4.2.2.1)");
                }
                _ => {}
            }
        }
        let ku = cert.key_usage().map_err(|_| "keyUsage does not parse".to_owned())?;
        let key_cert_sign = ku.as_ref().map(|k| k.value.key_cert_sign());
        if key_cert_sign == Some(true) && !is_ca {
            return fail("keyUsage keyCertSign without basicConstraints cA (RFC 5280 section 4.2.1.9)");
        }
        if !self_issued && !aki_key_id {
            return fail("no authorityKeyIdentifier keyIdentifier (RFC 5280 section 4.2.1.1)");
        }
        if role != Role::Leaf {
            match &bc {
                Some(b) if b.value.ca && b.critical => {}
                Some(b) if b.value.ca => {
                    return fail("CA certificate with a non-critical basicConstraints (RFC 5280 section 4.2.1.9)")
                }
                _ => return fail("CA certificate without basicConstraints cA=TRUE (RFC 5280 section 4.2.1.9)"),
            }
            if key_cert_sign == Some(false) {
                return fail("CA certificate whose keyUsage lacks keyCertSign (RFC 5280 sections 4.2.1.3, 4.2.1.9)");
            }
            if !ski {
                return fail("CA certificate without subjectKeyIdentifier (RFC 5280 section 4.2.1.2)");
            }
            if subject_empty {
                return fail("CA certificate with an empty subject (RFC 5280 section 4.1.2.6)");
            }
        }
        Ok(())
    }

    /// RFC 1034 preferred name syntax as RFC 1123 relaxed it (a label may start with a digit),
    /// with a leading `*` label for wildcards.
    fn preferred_name_syntax(name: &str) -> bool {
        let name = name.strip_prefix("*.").unwrap_or(name);
        !name.is_empty()
            && name.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            })
    }

    fn cabf(cert: &X509Certificate<'_>, role: Role) -> Result<(), String> {
        let fail = |why: &str| Err(why.to_owned());
        let subject_empty = cert.subject().iter_rdn().next().is_none();
        // A root is a self-issued anchor; an intermediate configured as an anchor is not one.
        let root = role == Role::Anchor && cert.subject().as_raw() == cert.issuer().as_raw();
        if let Ok(Some(eku)) = cert.extended_key_usage() {
            if root {
                return fail("root CA with extKeyUsage (CA/B Forum BR 7.1.2.1.2)");
            }
            if role == Role::Leaf && eku.critical {
                return fail("critical extKeyUsage (CA/B Forum BR 7.1.2.7.6)");
            }
            if role == Role::Leaf && eku.value.any {
                return fail("anyExtendedKeyUsage in a subscriber certificate (CA/B Forum BR 7.1.2.7.10)");
            }
        }
        let san = cert.subject_alternative_name().ok().flatten();
        if san.as_ref().is_some_and(|s| s.critical) && !subject_empty {
            return fail("critical subjectAltName with a non-empty subject (CA/B Forum BR 7.1.2.7.12)");
        }
        if root {
            let ski = cert.extensions().iter().find_map(|e| match e.parsed_extension() {
                ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0),
                _ => None,
            });
            for ext in cert.extensions() {
                if let ParsedExtension::AuthorityKeyIdentifier(aki) = ext.parsed_extension() {
                    if aki.authority_cert_issuer.is_some() || aki.authority_cert_serial.is_some() {
                        return fail("root CA authorityKeyIdentifier with issuer or serial (CA/B Forum BR 7.1.2.1.3)");
                    }
                    if aki.key_identifier.as_ref().map(|k| k.0) != ski {
                        return fail("root CA authorityKeyIdentifier differs from its subjectKeyIdentifier (CA/B Forum BR 7.1.2.1.3)");
                    }
                }
            }
        }
        Ok(())
    }
}
