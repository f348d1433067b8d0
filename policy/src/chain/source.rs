//! CRL sources: CRLs the filter fetches and installs at run time, checked as configured CRLs are.
//!
//! The engine does no I/O (docs/policy.md "CRL sources"): it compiles each source's settings for
//! the filter, and [`SourceSlot::install`] accepts or refuses the bytes the filter fetched. A
//! fetched CRL must conform as a configured one must (`crl`), must be signed by a configured trust
//! anchor or intermediate (a configured CRL with a bad signature is caught when a path is built;
//! a fetched one is refused at once, so that a forged CRL never replaces a good one), and its
//! CRLNumber must not go down (RFC 5280 section 5.2.3: a replayed older CRL could un-revoke a
//! certificate).

use std::sync::{Arc, Mutex, MutexGuard};

use super::crl::{self, Crl, CrlSigner};
use super::der;
use crate::config::CrlSource;
use crate::duration::Duration;
use crate::error::ConfigError;
use crate::pem::{pem_blocks_within, MAX_CONFIG_PEM_BYTES};

/// Default `refresh`: 5 minutes.
const DEFAULT_REFRESH_SECS: u64 = 300;
/// Default `timeout` of one fetch.
const DEFAULT_TIMEOUT_SECS: u64 = 5;
/// Default `maxBytes`.
pub const DEFAULT_MAX_BYTES: u64 = 8 << 20;
/// Largest `maxBytes`: the same bound as one configured `crls` entry.
pub const LIMIT_MAX_BYTES: u64 = MAX_CONFIG_PEM_BYTES as u64;

/// What the filter needs to fetch one source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CrlSourceSpec {
    /// The name in metrics and logs: ASCII letters, digits, `-` and `_` only.
    pub name: String,
    /// Where it is configured, e.g. `certificate.crlSources[0]`.
    pub at: String,
    pub cluster: String,
    pub path: String,
    /// The `:authority` to send.
    pub authority: String,
    pub refresh_secs: u64,
    pub max_stale_secs: u64,
    pub timeout_secs: u64,
    pub max_bytes: u64,
}

/// What an installed CRL holds, for logs and gauges.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CrlInfo {
    /// The CRLNumber, in decimal.
    pub number: String,
    pub this_update: i64,
    pub next_update: i64,
    /// Revoked serials listed.
    pub entries: usize,
}

/// The outcome of a successful [`crate::Engine::install_crl`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CrlInstalled {
    pub info: CrlInfo,
    /// False when the bytes are those of the CRL already installed: nothing changed, and cached
    /// verdicts stay valid.
    pub changed: bool,
}

/// The last good CRL of a source.
#[derive(Debug)]
struct Installed {
    crl: Arc<Crl>,
    der: Vec<u8>,
    issuer: Vec<u8>,
    /// CRLNumber, big-endian without leading zero bytes.
    number: Vec<u8>,
    info: CrlInfo,
}

/// One configured source and its last good CRL. The lock is never held across a call out of
/// this module; the filter is single-threaded per VM, the lock only keeps the engine `Sync`.
#[derive(Debug)]
pub(crate) struct SourceSlot {
    pub(crate) spec: CrlSourceSpec,
    installed: Mutex<Option<Installed>>,
}

impl SourceSlot {
    fn lock(&self) -> MutexGuard<'_, Option<Installed>> {
        // A poisoned lock only means a panic elsewhere (not possible in the filter); the data is
        // a plain replace-on-success value, so it is still consistent.
        self.installed.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The CRL in force, if one was installed.
    pub(super) fn current(&self) -> Option<Arc<Crl>> {
        self.lock().as_ref().map(|i| i.crl.clone())
    }

    /// What the installed CRL holds.
    pub(crate) fn info(&self) -> Option<CrlInfo> {
        self.lock().as_ref().map(|i| i.info.clone())
    }

    /// Checks `body` (DER, or one PEM `X509 CRL` block) and installs it when it is good.
    pub(super) fn install(&self, body: &[u8], signers: &[CrlSigner]) -> Result<CrlInstalled, String> {
        if body.len() as u64 > self.spec.max_bytes {
            return Err(format!("{} bytes is over maxBytes ({})", body.len(), self.spec.max_bytes));
        }
        let der = if body.starts_with(b"-----BEGIN") {
            match pem_blocks_within(body, "X509 CRL", MAX_CONFIG_PEM_BYTES) {
                Ok(mut blocks) if blocks.len() == 1 => blocks.remove(0),
                Ok(blocks) => return Err(format!("expected one PEM CRL, found {}", blocks.len())),
                Err(_) => return Err("expected a DER CRL or one PEM CRL (-----BEGIN X509 CRL-----)".to_owned()),
            }
        } else {
            body.to_vec()
        };
        let fields = der::crl_fields(&der).ok_or_else(|| "CRL does not parse: not a DER CertificateList".to_owned())?;
        if !signers.iter().any(|s| s.subject() == fields.issuer_whole && der::signed_by(&der, s.spki())) {
            return Err("CRL is not signed by a configured trust anchor or intermediate".to_owned());
        }
        let number = match fields.crl_number {
            Some([first, ..]) if first & 0x80 != 0 => return Err("CRLNumber is negative".to_owned()),
            Some(n) => n.iter().copied().skip_while(|b| *b == 0).collect::<Vec<u8>>(),
            None => Vec::new(), // crl_from_der refuses it below
        };
        let issuer = fields.issuer_contents.to_vec();
        let mut crl = crl::crl_from_der(&der, signers)?;
        crl.grace = i64::try_from(self.spec.max_stale_secs).unwrap_or(i64::MAX);
        crl.source = true;
        let info = CrlInfo {
            number: decimal(&number),
            this_update: crl.this_update,
            next_update: crl.next_update,
            entries: fields.revoked,
        };
        let mut slot = self.lock();
        if let Some(old) = slot.as_ref() {
            if old.der == der {
                return Ok(CrlInstalled { info: old.info.clone(), changed: false });
            }
            if old.issuer == issuer {
                // Compared as unsigned big-endian integers.
                match (number.len(), number.as_slice()).cmp(&(old.number.len(), old.number.as_slice())) {
                    core::cmp::Ordering::Less => {
                        return Err(format!(
                            "CRLNumber {} is lower than the installed CRL's {}: an older CRL never replaces a newer one",
                            info.number, old.info.number
                        ))
                    }
                    core::cmp::Ordering::Equal => {
                        return Err(format!(
                            "CRLNumber {} is the installed CRL's, but the content differs (RFC 5280 section 5.2.3: each new CRL gets a higher number)",
                            info.number
                        ))
                    }
                    core::cmp::Ordering::Greater => {}
                }
            }
        }
        *slot = Some(Installed { crl: Arc::new(crl), der, issuer, number, info: info.clone() });
        Ok(CrlInstalled { info, changed: true })
    }
}

/// Decimal rendering of a big-endian unsigned integer (CRLNumber is at most 20 octets).
fn decimal(be: &[u8]) -> String {
    let mut digits: Vec<u8> = vec![0];
    for &byte in be {
        let mut carry = u32::from(byte);
        for d in digits.iter_mut() {
            let v = u32::from(*d) * 256 + carry;
            *d = (v % 10) as u8;
            carry = v / 10;
        }
        while carry > 0 {
            digits.push((carry % 10) as u8);
            carry /= 10;
        }
    }
    digits.iter().rev().map(|d| char::from(b'0' + d)).collect()
}

/// Characters other than ASCII letters, digits, `-` and `_` become `_`, so that the name is one
/// stats path segment that the `source` tag regex extracts.
pub fn metric_safe(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect()
}

/// Compiles `{path}.crlSources`, recording every error.
pub(super) fn compile(list: &[CrlSource], path: &str, errors: &mut Vec<ConfigError>) -> Vec<SourceSlot> {
    if list.is_empty() {
        errors.push(ConfigError::new(format!("{path}.crlSources"), "empty list; remove the field to fetch no CRL"));
    }
    let mut out = Vec::new();
    for (i, src) in list.iter().enumerate() {
        let at = format!("{path}.crlSources[{i}]");
        let mut secs = |field: &str, v: &Option<String>, default: u64, min: u64| -> u64 {
            let Some(s) = v else { return default };
            match Duration::parse(s) {
                Ok(d) if d.as_secs() >= min => d.as_secs(),
                Ok(_) => {
                    errors.push(ConfigError::new(format!("{at}.{field}"), format!("must be at least {min}s")));
                    default
                }
                Err(e) => {
                    errors.push(ConfigError::new(format!("{at}.{field}"), e.to_string()));
                    default
                }
            }
        };
        let refresh_secs = secs("refresh", &src.refresh, DEFAULT_REFRESH_SECS, 1);
        let max_stale_secs = secs("maxStale", &src.max_stale, 0, 0);
        let timeout_secs = secs("timeout", &src.timeout, DEFAULT_TIMEOUT_SECS, 1);
        if src.cluster.is_empty() || src.cluster.bytes().any(|b| b.is_ascii_whitespace() || b.is_ascii_control()) {
            errors.push(ConfigError::new(
                format!("{at}.cluster"),
                "must be an Envoy cluster name (non-empty, no spaces)",
            ));
        }
        if !src.path.starts_with('/') || src.path.bytes().any(|b| !(0x21..0x7f).contains(&b)) {
            errors.push(ConfigError::new(
                format!("{at}.path"),
                "must be a request path starting with '/', printable ASCII without spaces, e.g. /ca.crl",
            ));
        }
        if let Some(a) = &src.authority {
            if a.is_empty() || a.bytes().any(|b| !(0x21..0x7f).contains(&b)) {
                errors.push(ConfigError::new(format!("{at}.authority"), "must be a host[:port], printable ASCII"));
            }
        }
        let max_bytes = src.max_bytes.unwrap_or(DEFAULT_MAX_BYTES);
        if !(1..=LIMIT_MAX_BYTES).contains(&max_bytes) {
            errors.push(ConfigError::new(format!("{at}.maxBytes"), format!("must be 1 to {LIMIT_MAX_BYTES}")));
        }
        let name = match &src.name {
            Some(n) => {
                if n.is_empty() || metric_safe(n) != *n {
                    errors.push(ConfigError::new(
                        format!("{at}.name"),
                        "must be non-empty ASCII letters, digits, '-' and '_' (it names the source's metrics)",
                    ));
                }
                n.clone()
            }
            None => metric_safe(&format!("{}{}", src.cluster, src.path)),
        };
        out.push(SourceSlot {
            spec: CrlSourceSpec {
                name,
                at,
                cluster: src.cluster.clone(),
                path: src.path.clone(),
                authority: src.authority.clone().unwrap_or_else(|| src.cluster.clone()),
                refresh_secs,
                max_stale_secs,
                timeout_secs,
                max_bytes,
            },
            installed: Mutex::new(None),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn crl_numbers_print_in_decimal_up_to_twenty_octets() {
        assert_eq!(decimal(&[]), "0");
        assert_eq!(decimal(&[1]), "1");
        assert_eq!(decimal(&[1, 0]), "256");
        assert_eq!(decimal(&[0xff; 8]), u64::MAX.to_string());
        assert_eq!(decimal(&[0xff; 16]), u128::MAX.to_string());
        assert_eq!(decimal(&[0xff; 20]), "1461501637330902918203684832716283019655932542975");
    }

    #[test]
    fn default_names_are_one_metric_segment() {
        assert_eq!(metric_safe("crl-server/ca.crl"), "crl-server_ca_crl");
        assert_eq!(metric_safe("a.b:c d"), "a_b_c_d");
    }
}
