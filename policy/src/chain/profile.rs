//! The RFC 5280 certificate profile where webpki does not check it, and the CA/B Forum rules for serverAuth.
//!
//! The parts of the RFC 5280 certificate profile that webpki leaves unchecked, and, for
//! serverAuth only, the CA/Browser Forum Baseline Requirements rules that limbo's webpki cases
//! test (BR govern TLS server certificates; peerguard verifies client certificates, so those run
//! only through the conformance entry).
//!
//! A certificate that a conforming CA never issues proves nothing about its issuer's intent, so
//! the path is refused (`untrusted_chain`), or, for a configured trust anchor, the anchor anchors
//! nothing and the load warnings name it (docs/policy.md "Certificates and revocation").

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
