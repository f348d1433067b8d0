//! `peerguard crl`: make a CRL from a CA and a list of serials, and show what a CRL holds, so that CRL sources need no OpenSSL (docs/policy.md "CRL sources").

use std::fmt;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use peerguard_certkit::{Ca, CrlSpec, RevocationReason, SerialNumber};
use serde::Serialize;
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer as _, X509Certificate};
use x509_parser::revocation_list::CertificateRevocationList;

/// Errors of `peerguard crl`; each names the file or flag at fault.
#[derive(Debug)]
pub enum CrlCommandError {
    Usage(String),
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    Parse {
        path: PathBuf,
        message: String,
    },
    /// The CA could not be loaded, or the CRL not signed.
    Generate(peerguard_certkit::Error),
}

impl fmt::Display for CrlCommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CrlCommandError::Usage(m) => write!(f, "{m}"),
            CrlCommandError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            CrlCommandError::Parse { path, message } => write!(f, "{}: {message}", path.display()),
            CrlCommandError::Generate(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for CrlCommandError {}

/// `peerguard crl ...`
#[derive(Debug, Subcommand)]
pub enum CrlCommand {
    /// Make a CRL signed by a CA that revokes the given serials (PEM, to --out or stdout)
    #[command(after_help = MAKE_HELP)]
    Make(MakeArgs),
    /// Print what a CRL holds (issuer, number, dates, entries) as JSON
    Show(ShowArgs),
}

const MAKE_HELP: &str = "\
The CRLNumber defaults to the current Unix time, so each CRL made later has a higher number, as a
CRL source requires (a CRL with a lower number than the one in force is refused).

Examples:
  # Revoke two serials (hex, as `peerguard crl show` and openssl print them), valid 24h:
  peerguard crl make --ca certs/ca.pem --ca-key certs/ca-key.pem --revoke 5f:01 --revoke 0x5f02 --out ca.crl
  # Revoke the certificate in a file:
  peerguard crl make --ca certs/ca.pem --ca-key certs/ca-key.pem --revoke-cert certs/alice.pem --out ca.crl
  # An empty CRL (nothing revoked), to publish before anything is:
  peerguard crl make --ca certs/ca.pem --ca-key certs/ca-key.pem --out ca.crl";

#[derive(Debug, Args)]
pub struct MakeArgs {
    /// The CA certificate (PEM) that issues the CRL
    #[arg(long)]
    pub ca: PathBuf,
    /// The CA's private key (PEM)
    #[arg(long)]
    pub ca_key: PathBuf,
    /// A serial to revoke, in hex (colons and a 0x prefix allowed); repeatable
    #[arg(long = "revoke", value_name = "SERIAL")]
    pub revoke: Vec<String>,
    /// A certificate (PEM) whose serial to revoke; repeatable
    #[arg(long = "revoke-cert", value_name = "FILE")]
    pub revoke_cert: Vec<PathBuf>,
    /// The CRLNumber (decimal); default: the current Unix time
    #[arg(long)]
    pub number: Option<u64>,
    /// How long until nextUpdate, e.g. 24h (default), 7d; thisUpdate is one minute ago, for
    /// verifiers whose clock is a little behind
    #[arg(long, default_value = "24h")]
    pub next_update: String,
    /// Write the PEM here instead of stdout
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// A CRL file, PEM or DER
    pub file: PathBuf,
}

/// What `crl show` prints.
#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CrlSummary {
    pub issuer: String,
    /// Decimal; absent when the CRL has none (a CRL source refuses such a CRL).
    pub number: Option<String>,
    pub this_update: String,
    pub next_update: Option<String>,
    pub entries: Vec<CrlEntry>,
}

/// One revoked certificate.
#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CrlEntry {
    /// Hex, lower case, colon-separated bytes.
    pub serial: String,
    pub revocation_date: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Runs a `crl` subcommand; returns what to print.
pub fn run(cmd: &CrlCommand) -> Result<String, CrlCommandError> {
    match cmd {
        CrlCommand::Make(a) => {
            let pem = make(a)?;
            match &a.out {
                Some(path) => {
                    std::fs::write(path, &pem).map_err(|source| CrlCommandError::Io { path: path.clone(), source })?;
                    Ok(format!("wrote {}\n", path.display()))
                }
                None => Ok(pem),
            }
        }
        CrlCommand::Show(a) => {
            let bytes = read(&a.file)?;
            let s = show(&bytes).map_err(|message| CrlCommandError::Parse { path: a.file.clone(), message })?;
            Ok(serde_json::to_string_pretty(&s).map(|j| j + "\n").unwrap_or_default())
        }
    }
}

fn read(path: &Path) -> Result<Vec<u8>, CrlCommandError> {
    std::fs::read(path).map_err(|source| CrlCommandError::Io { path: path.to_path_buf(), source })
}

fn text(path: &Path) -> Result<String, CrlCommandError> {
    String::from_utf8(read(path)?).map_err(|_| CrlCommandError::Usage(format!("{} is not PEM text", path.display())))
}

/// A hex serial, with optional `0x` and colons, as big-endian bytes.
pub fn parse_serial(s: &str) -> Result<Vec<u8>, CrlCommandError> {
    let bad = || CrlCommandError::Usage(format!("invalid serial {s:?}: expected hex such as 5f01, 0x5f01 or 5f:01"));
    let hex: String = s.trim().trim_start_matches("0x").chars().filter(|c| *c != ':').collect();
    if hex.is_empty() || hex.len() > 40 {
        return Err(bad());
    }
    let padded = if hex.len() % 2 == 1 { format!("0{hex}") } else { hex };
    let bytes = hex::decode(&padded).map_err(|_| bad())?;
    // An INTEGER with the high bit set would be negative: RFC 5280 serials are positive.
    Ok(if bytes.first().is_some_and(|b| b & 0x80 != 0) { [&[0u8][..], &bytes].concat() } else { bytes })
}

/// The first PEM block labelled `label`.
fn pem_block(bytes: &[u8], label: &str) -> Option<Vec<u8>> {
    x509_parser::pem::Pem::iter_from_buffer(bytes).filter_map(Result::ok).find(|p| p.label == label).map(|p| p.contents)
}

fn pem_der(bytes: &[u8], label: &str, path: &Path) -> Result<Vec<u8>, CrlCommandError> {
    pem_block(bytes, label)
        .ok_or_else(|| CrlCommandError::Parse { path: path.to_path_buf(), message: format!("no PEM {label} block") })
}

/// How far before now `crl make` puts thisUpdate (see `make`).
pub const THIS_UPDATE_BACKDATE: time::Duration = time::Duration::minutes(1);

fn make(a: &MakeArgs) -> Result<String, CrlCommandError> {
    let ca = Ca::from_pem(&text(&a.ca)?, &text(&a.ca_key)?).map_err(CrlCommandError::Generate)?;
    let mut serials: Vec<Vec<u8>> = a.revoke.iter().map(|s| parse_serial(s)).collect::<Result<_, _>>()?;
    for path in &a.revoke_cert {
        let der = pem_der(&read(path)?, "CERTIFICATE", path)?;
        let (_, cert) = X509Certificate::from_der(&der)
            .map_err(|e| CrlCommandError::Parse { path: path.clone(), message: format!("not a certificate: {e}") })?;
        serials.push(cert.raw_serial().to_vec());
    }
    let ttl = crate::cert::parse_ttl(&a.next_update).map_err(|_| {
        CrlCommandError::Usage(format!("invalid --next-update {:?}: use e.g. 1h, 24h or 7d", a.next_update))
    })?;
    let now = OffsetDateTime::now_utc();
    let number = a.number.unwrap_or_else(|| u64::try_from(now.unix_timestamp()).unwrap_or(0));
    // thisUpdate a little in the past: a verifier whose clock is behind this machine's would
    // otherwise hold a CRL from its future, proof of nothing until its clock gets there
    // (revocation_unknown under unknownStatus: deny).
    let mut spec = CrlSpec::new(now - THIS_UPDATE_BACKDATE, now + ttl);
    spec.number = number;
    for serial in serials {
        spec = spec.revoke(SerialNumber::from_slice(&serial), now, Some(RevocationReason::Unspecified));
    }
    ca.crl(&spec).map_err(CrlCommandError::Generate)
}

fn rfc3339(t: i64) -> String {
    OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| t.to_string())
}

fn colon_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// What a CRL (PEM or DER) holds.
pub fn show(bytes: &[u8]) -> Result<CrlSummary, String> {
    let der = if bytes.starts_with(b"-----BEGIN") {
        pem_block(bytes, "X509 CRL").ok_or_else(|| "expected a PEM X509 CRL block".to_owned())?
    } else {
        bytes.to_vec()
    };
    let (_, crl) = CertificateRevocationList::from_der(&der).map_err(|e| format!("not a CRL: {e}"))?;
    let entries = crl
        .iter_revoked_certificates()
        .map(|r| CrlEntry {
            serial: colon_hex(r.raw_serial()),
            revocation_date: rfc3339(r.revocation_date.timestamp()),
            reason: r.reason_code().map(|(_, rc)| format!("{rc}")),
        })
        .collect();
    Ok(CrlSummary {
        issuer: crl.issuer().to_string(),
        number: crl.crl_number().map(|n| n.to_string()),
        this_update: rfc3339(crl.last_update().timestamp()),
        next_update: crl.next_update().map(|t| rfc3339(t.timestamp())),
        entries,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code
    use super::*;

    #[test]
    fn serials_parse_as_hex_in_the_usual_spellings_and_stay_positive() {
        assert_eq!(parse_serial("5f01").unwrap(), vec![0x5f, 0x01]);
        assert_eq!(parse_serial("0x5f01").unwrap(), vec![0x5f, 0x01]);
        assert_eq!(parse_serial("5f:01").unwrap(), vec![0x5f, 0x01]);
        assert_eq!(parse_serial("abc").unwrap(), vec![0x0a, 0xbc]);
        assert_eq!(parse_serial("ff").unwrap(), vec![0x00, 0xff]);
        for bad in ["", "0x", "zz", &"1".repeat(41)] {
            assert!(parse_serial(bad).is_err(), "{bad}");
        }
    }
}
