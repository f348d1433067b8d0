//! `peerguard cert`: a CA and workload certificates (SPIFFE, DNS or CN), as PEM files and Kubernetes Secrets.
//!
//! It replaces the OpenSSL steps of the seed article. Workload certificates carry both the
//! clientAuth and serverAuth EKUs by default, as Istio's do, so one file serves a sidecar's
//! inbound and outbound sides. `cert ca --istio-cacerts` writes the plug-in CA layout that
//! istiod reads from the `cacerts` Secret in `istio-system`
//! (<https://istio.io/latest/docs/tasks/security/cert-management/plugin-ca-cert/>).

use std::fmt;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand, ValueEnum};
use peerguard_certkit::{
    write_file, write_key, Ca, CaSpec, DnType, ExtendedKeyUsagePurpose, KeyUsagePurpose, Leaf, SignatureAlgorithm,
};
use serde::Serialize;
use time::OffsetDateTime;

/// Errors of `peerguard cert`; each names the file or flag at fault.
#[derive(Debug)]
#[non_exhaustive]
pub enum CertCommandError {
    /// A flag value that cannot be used (bad TTL, bad SPIFFE ID, no identity).
    Usage(String),
    /// Reading or writing a file failed.
    Io { path: PathBuf, source: std::io::Error },
    /// rcgen refused to build or sign the certificate.
    Generate { what: String, source: rcgen::Error },
    /// The certificate factory refused a value (a DN, a SAN, a time).
    Certificate(peerguard_certkit::Error),
}

impl fmt::Display for CertCommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CertCommandError::Usage(m) => write!(f, "{m}"),
            CertCommandError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            CertCommandError::Generate { what, source } => write!(f, "cannot generate {what}: {source}"),
            CertCommandError::Certificate(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for CertCommandError {}

impl From<peerguard_certkit::Error> for CertCommandError {
    fn from(e: peerguard_certkit::Error) -> CertCommandError {
        match e {
            peerguard_certkit::Error::Generate { what, source } => CertCommandError::Generate { what, source },
            peerguard_certkit::Error::Io { path, source } => CertCommandError::Io { path, source },
            other => CertCommandError::Certificate(other),
        }
    }
}

/// `peerguard cert ...`
#[derive(Debug, Subcommand)]
pub enum CertCommand {
    /// Create a certificate authority (self-signed root, or an intermediate signed by --issuer)
    #[command(after_help = CA_HELP)]
    Ca(CaArgs),
    /// Issue a workload certificate signed by a CA (SPIFFE URI, DNS names and/or a subject CN)
    #[command(after_help = ISSUE_HELP)]
    Issue(IssueArgs),
}

const CA_HELP: &str = "\
Writes <OUT_DIR>/<NAME>.pem and <OUT_DIR>/<NAME>-key.pem and prints a JSON summary.

Examples:
  # A mesh root CA, valid 10 years:
  peerguard cert ca --out-dir certs --cn 'peerguard mesh CA' --ttl 87600h
  # An intermediate for Istio's plug-in CA (writes ca-cert.pem, ca-key.pem, root-cert.pem,
  # cert-chain.pem and cacerts.yaml, the Secret istiod reads in istio-system):
  peerguard cert ca --out-dir certs/cluster1 --cn 'cluster1 intermediate' \\
      --issuer certs/ca.pem --issuer-key certs/ca-key.pem --istio-cacerts
  # A second trust domain's CA for SPIFFE federation: URI SAN spiffe://partner.example, and
  # partner-ca-bundle.json, its SPIFFE bundle for certificate.trustBundles:
  peerguard cert ca --out-dir certs --name partner-ca --org partner.example --trust-domain partner.example
  peerguard cert issue --ca certs/partner-ca.pem --ca-key certs/partner-ca-key.pem --out-dir certs \\
      --name billing --trust-domain partner.example --workload billing/api";

const ISSUE_HELP: &str = "\
Writes <OUT_DIR>/<NAME>.pem (the leaf) and <OUT_DIR>/<NAME>-key.pem (PKCS#8) and prints a JSON
summary. With --k8s-secret also <OUT_DIR>/<NAME>-secret.yaml, a kubernetes.io/tls Secret.

Examples:
  # An Istio workload identity spiffe://cluster.local/ns/frontend/sa/web, valid 24h:
  peerguard cert issue --ca certs/ca.pem --ca-key certs/ca-key.pem --out-dir certs \\
      --name frontend --workload frontend/web --ttl 24h
  # A server certificate for api.example.com with a Secret for an ingress gateway:
  peerguard cert issue --ca certs/ca.pem --ca-key certs/ca-key.pem --out-dir certs \\
      --name api --dns api.example.com --usage server --k8s-secret --namespace istio-system
  # A CN-only client certificate, as the seed article's OpenSSL CA makes:
  peerguard cert issue --ca certs/ca.pem --ca-key certs/ca-key.pem --name alice --cn alice";

/// The key algorithm of a generated certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyType {
    EcdsaP256,
    EcdsaP384,
    Ed25519,
}

impl KeyType {
    fn alg(self) -> &'static SignatureAlgorithm {
        match self {
            KeyType::EcdsaP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            KeyType::EcdsaP384 => &rcgen::PKCS_ECDSA_P384_SHA384,
            KeyType::Ed25519 => &rcgen::PKCS_ED25519,
        }
    }
}

/// Which extended key usages a leaf gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Usage {
    /// clientAuth and serverAuth, like Istio workload certificates
    Both,
    Client,
    Server,
}

#[derive(Debug, Args)]
pub struct CaArgs {
    /// Directory to write into (created if missing)
    #[arg(long, default_value = ".")]
    pub out_dir: PathBuf,
    /// File stem: <NAME>.pem and <NAME>-key.pem
    #[arg(long, default_value = "ca")]
    pub name: String,
    /// Subject common name; `--cn ''` leaves it out (Istio's self-signed CA is just O=cluster.local)
    #[arg(long, default_value = "peerguard CA")]
    pub cn: String,
    /// Subject organization (Istio's self-signed CA uses the trust domain, O=cluster.local)
    #[arg(long, default_value = "cluster.local")]
    pub org: String,
    /// Validity, e.g. 8760h; starts 5 minutes in the past to absorb clock skew
    #[arg(long, default_value = "87600h")]
    pub ttl: String,
    #[arg(long, value_enum, default_value = "ecdsa-p256")]
    pub key_type: KeyType,
    /// Sign with this CA certificate instead of self-signing (makes an intermediate)
    #[arg(long, requires = "issuer_key")]
    pub issuer: Option<PathBuf>,
    /// The key of --issuer
    #[arg(long, requires = "issuer")]
    pub issuer_key: Option<PathBuf>,
    /// Also write Istio's plug-in CA files and the `cacerts` Secret (cacerts.yaml); needs --issuer
    #[arg(long, requires = "issuer")]
    pub istio_cacerts: bool,
    /// The SPIFFE trust domain this CA issues for: adds the URI SAN spiffe://TRUST_DOMAIN and
    /// writes <NAME>-bundle.json, its SPIFFE bundle (JWKS) for certificate.trustBundles
    #[arg(long, value_name = "TRUST_DOMAIN")]
    pub trust_domain: Option<String>,
}

#[derive(Debug, Args)]
pub struct IssueArgs {
    /// The signing CA certificate (PEM)
    #[arg(long)]
    pub ca: PathBuf,
    /// The signing CA key (PEM)
    #[arg(long)]
    pub ca_key: PathBuf,
    /// Directory to write into (created if missing)
    #[arg(long, default_value = ".")]
    pub out_dir: PathBuf,
    /// File stem: <NAME>.pem and <NAME>-key.pem
    #[arg(long)]
    pub name: String,
    /// A SPIFFE ID URI SAN, e.g. spiffe://cluster.local/ns/frontend/sa/web
    #[arg(long)]
    pub spiffe: Option<String>,
    /// Istio shorthand NAMESPACE/SERVICEACCOUNT for spiffe://<trust-domain>/ns/NAMESPACE/sa/SERVICEACCOUNT
    #[arg(long, conflicts_with = "spiffe")]
    pub workload: Option<String>,
    /// Trust domain for --workload
    #[arg(long, default_value = "cluster.local")]
    pub trust_domain: String,
    /// DNS SAN (repeatable)
    #[arg(long)]
    pub dns: Vec<String>,
    /// IP SAN (repeatable)
    #[arg(long)]
    pub ip: Vec<std::net::IpAddr>,
    /// Subject common name (defaults to the service account, or the first DNS name)
    #[arg(long)]
    pub cn: Option<String>,
    /// Subject organization
    #[arg(long)]
    pub org: Option<String>,
    /// Validity, e.g. 24h; starts 5 minutes in the past to absorb clock skew
    #[arg(long, default_value = "24h")]
    pub ttl: String,
    #[arg(long, value_enum, default_value = "ecdsa-p256")]
    pub key_type: KeyType,
    #[arg(long, value_enum, default_value = "both")]
    pub usage: Usage,
    /// Also write <NAME>-secret.yaml, a kubernetes.io/tls Secret with tls.crt, tls.key and ca.crt
    #[arg(long)]
    pub k8s_secret: bool,
    /// Secret name (default: NAME)
    #[arg(long)]
    pub secret_name: Option<String>,
    /// Secret namespace
    #[arg(long)]
    pub namespace: Option<String>,
}

/// What `cert ca` and `cert issue` print: the files written and what the certificate says.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub subject: String,
    pub sans: Vec<String>,
    pub not_before: String,
    pub not_after: String,
    pub key_type: KeyType,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extra_files: Vec<PathBuf>,
}

/// Runs a `cert` subcommand and returns its summary.
pub fn run(cmd: &CertCommand) -> Result<Summary, CertCommandError> {
    match cmd {
        CertCommand::Ca(a) => ca(a),
        CertCommand::Issue(a) => issue(a),
    }
}

/// Parses a TTL such as `90s`, `15m`, `24h` (the policy document's duration syntax) or `30d`.
pub fn parse_ttl(s: &str) -> Result<std::time::Duration, CertCommandError> {
    let bad = || CertCommandError::Usage(format!("invalid --ttl {s:?}: use a duration such as 90s, 15m, 24h or 30d"));
    let secs = if let Some(days) = s.strip_suffix('d') {
        days.parse::<u64>().map_err(|_| bad())?.checked_mul(86_400).ok_or_else(bad)?
    } else {
        peerguard_policy::Duration::parse(s).map_err(|_| bad())?.as_secs()
    };
    if secs == 0 {
        return Err(bad());
    }
    Ok(std::time::Duration::from_secs(secs))
}

const SKEW: std::time::Duration = std::time::Duration::from_secs(300);

/// notBefore and notAfter for a `--ttl`.
fn validity(ttl: &str) -> Result<(OffsetDateTime, OffsetDateTime), CertCommandError> {
    let ttl = parse_ttl(ttl)?;
    let now = OffsetDateTime::now_utc();
    // The TTL is the whole lifetime (notAfter - notBefore), which is what a policy's
    // `maxLifetime` measures; backdating eats into it rather than extending it.
    let back = SKEW.min(ttl / 10);
    Ok((now - back, now - back + ttl))
}

fn read(path: &Path) -> Result<String, CertCommandError> {
    std::fs::read_to_string(path).map_err(|source| CertCommandError::Io { path: path.to_path_buf(), source })
}

fn write(path: &Path, contents: &str) -> Result<(), CertCommandError> {
    Ok(write_file(path, contents)?)
}

fn mkdir(dir: &Path) -> Result<(), CertCommandError> {
    std::fs::create_dir_all(dir).map_err(|source| CertCommandError::Io { path: dir.to_path_buf(), source })
}

fn load_issuer(cert: &Path, key: &Path) -> Result<Ca, CertCommandError> {
    Ok(Ca::from_pem(&read(cert)?, &read(key)?)?)
}

fn subject_string(dn: &[(&str, &str)]) -> String {
    // Most specific first, as Envoy renders it (RFC 4514).
    dn.iter().rev().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

fn ca(a: &CaArgs) -> Result<Summary, CertCommandError> {
    mkdir(&a.out_dir)?;
    let mut subject = vec![(DnType::OrganizationName, a.org.clone())];
    if !a.cn.is_empty() {
        subject.push((DnType::CommonName, a.cn.clone()));
    }
    let (not_before, not_after) = validity(&a.ttl)?;
    let mut spec = CaSpec::new(subject, not_before, not_after);
    spec.alg = a.key_type.alg();
    let mut sans = Vec::new();
    if let Some(td) = &a.trust_domain {
        // A SPIFFE CA names its trust domain with a path-less SPIFFE ID (SPIFFE Trust Domain and
        // Bundle, appendix A).
        let valid = !td.is_empty()
            && td.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_'));
        if !valid {
            return Err(CertCommandError::Usage(format!(
                "--trust-domain {td:?} is not a SPIFFE trust domain (lower-case letters, digits, '.', '-', '_')"
            )));
        }
        let uri = format!("spiffe://{td}");
        spec.uris.push(uri.clone());
        sans.push(format!("URI:{uri}"));
    }
    let (cert, root_pem) = match (&a.issuer, &a.issuer_key) {
        (Some(ic), Some(ik)) => {
            let issuer = load_issuer(ic, ik)?;
            (issuer.intermediate(&spec)?, Some(issuer.cert_pem().to_owned()))
        }
        _ => (Ca::self_signed(&spec)?, None),
    };
    let (cert_path, key_path) = cert.write(&a.out_dir, &a.name)?;
    let mut extra_files = Vec::new();
    if a.trust_domain.is_some() {
        let path = a.out_dir.join(format!("{}-bundle.json", a.name));
        let bundle = spiffe_bundle(cert.cert_der(), cert.public_key_raw(), a.key_type);
        let text = serde_json::to_string_pretty(&bundle)
            .map_err(|e| CertCommandError::Usage(format!("cannot write the SPIFFE bundle: {e}")))?;
        write(&path, &format!("{text}\n"))?;
        extra_files.push(path);
    }
    if a.istio_cacerts {
        // The plug-in CA layout: the intermediate istiod signs with, its key, the root, and the
        // chain from the intermediate up to the root.
        let root_pem = root_pem.unwrap_or_default();
        let files = [
            ("ca-cert.pem", cert.cert_pem().to_owned()),
            ("ca-key.pem", cert.key_pem()),
            ("root-cert.pem", root_pem.clone()),
            ("cert-chain.pem", format!("{}{}", cert.cert_pem(), root_pem)),
        ];
        let mut data = serde_yaml::Mapping::new();
        for (name, contents) in &files {
            let path = a.out_dir.join(name);
            if *name == "ca-key.pem" {
                write_key(&path, contents)?;
            } else {
                write(&path, contents)?;
            }
            extra_files.push(path);
            data.insert((*name).into(), contents.clone().into());
        }
        let secret = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "cacerts", "namespace": "istio-system"},
            "type": "Opaque",
            "stringData": data,
        });
        let path = a.out_dir.join("cacerts.yaml");
        write(&path, &yaml(&secret)?)?;
        extra_files.push(path);
    }
    Ok(Summary {
        cert: cert_path,
        key: key_path,
        subject: subject_string(
            &[("O", a.org.as_str()), ("CN", a.cn.as_str())]
                .into_iter()
                .filter(|(_, v)| !v.is_empty())
                .collect::<Vec<_>>(),
        ),
        sans,
        not_before: rfc3339(not_before),
        not_after: rfc3339(not_after),
        key_type: a.key_type,
        extra_files,
    })
}

/// A SPIFFE bundle (a JWK Set, SPIFFE Trust Domain and Bundle section 4) with the CA as its one
/// `x509-svid` key: `x5c` holds the certificate, and the key parameters are those of its public
/// key (RFC 7518 section 6.2 for EC, RFC 8037 for Ed25519), from rcgen's raw public key.
fn spiffe_bundle(der: &[u8], raw_public_key: &[u8], key_type: KeyType) -> serde_json::Value {
    use base64::Engine as _;
    let url = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let mut key = match key_type {
        // The uncompressed point 04 || X || Y.
        KeyType::EcdsaP256 | KeyType::EcdsaP384 => {
            let (crv, n) = if key_type == KeyType::EcdsaP256 { ("P-256", 32) } else { ("P-384", 48) };
            let (x, y) =
                raw_public_key.get(1..).unwrap_or_default().split_at(n.min(raw_public_key.len().saturating_sub(1)));
            serde_json::json!({"kty": "EC", "crv": crv, "x": url(x), "y": url(y)})
        }
        KeyType::Ed25519 => serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": url(raw_public_key)}),
    };
    key["use"] = "x509-svid".into();
    key["x5c"] = serde_json::json!([base64::engine::general_purpose::STANDARD.encode(der)]);
    serde_json::json!({"spiffe_sequence": 1, "keys": [key]})
}

fn yaml(v: &serde_json::Value) -> Result<String, CertCommandError> {
    serde_yaml::to_string(v).map_err(|e| CertCommandError::Usage(format!("cannot render YAML: {e}")))
}

/// The SPIFFE ID a leaf gets, from `--spiffe` or `--workload NS/SA`; checked against the SPIFFE ID spec.
fn spiffe_of(a: &IssueArgs) -> Result<Option<(String, Option<String>)>, CertCommandError> {
    let (uri, sa) = match (&a.spiffe, &a.workload) {
        (Some(uri), _) => (uri.clone(), None),
        (None, Some(w)) => {
            let (ns, sa) =
                w.split_once('/').filter(|(ns, sa)| !ns.is_empty() && !sa.is_empty() && !sa.contains('/')).ok_or_else(
                    || CertCommandError::Usage(format!("--workload {w:?}: expected NAMESPACE/SERVICEACCOUNT")),
                )?;
            (format!("spiffe://{}/ns/{ns}/sa/{sa}", a.trust_domain), Some(sa.to_string()))
        }
        (None, None) => return Ok(None),
    };
    uri.parse::<peerguard_policy::SpiffeId>()
        .map_err(|e| CertCommandError::Usage(format!("invalid SPIFFE ID {uri:?}: {e}")))?;
    Ok(Some((uri, sa)))
}

fn issue(a: &IssueArgs) -> Result<Summary, CertCommandError> {
    let spiffe = spiffe_of(a)?;
    let cn = a.cn.clone().or_else(|| spiffe.as_ref().and_then(|(_, sa)| sa.clone())).or_else(|| a.dns.first().cloned());
    if spiffe.is_none() && a.dns.is_empty() && a.ip.is_empty() && cn.is_none() {
        return Err(CertCommandError::Usage(
            "no identity: give --spiffe, --workload, --dns, --ip and/or --cn".to_string(),
        ));
    }
    mkdir(&a.out_dir)?;
    let issuer = load_issuer(&a.ca, &a.ca_key)?;
    let mut subject_dn = Vec::new();
    let mut subject = Vec::new();
    if let Some(o) = &a.org {
        subject_dn.push((DnType::OrganizationName, o.clone()));
        subject.push(("O", o.as_str()));
    }
    if let Some(cn) = &cn {
        subject_dn.push((DnType::CommonName, cn.clone()));
        subject.push(("CN", cn.as_str()));
    }
    let mut sans = Vec::new();
    let uris: Vec<String> = spiffe.iter().map(|(uri, _)| uri.clone()).collect();
    sans.extend(uris.iter().map(|u| format!("URI:{u}")));
    sans.extend(a.dns.iter().map(|d| format!("DNS:{d}")));
    sans.extend(a.ip.iter().map(|ip| format!("IP:{ip}")));
    let (not_before, not_after) = validity(&a.ttl)?;
    let leaf = Leaf {
        subject: subject_dn,
        uris,
        dns: a.dns.clone(),
        ips: a.ip.clone(),
        not_before,
        not_after,
        key_usages: vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment],
        ekus: match a.usage {
            Usage::Both => vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth],
            Usage::Client => vec![ExtendedKeyUsagePurpose::ClientAuth],
            Usage::Server => vec![ExtendedKeyUsagePurpose::ServerAuth],
        },
        alg: a.key_type.alg(),
        serial: None,
    };
    let cert = issuer.issue(&leaf)?;
    let (cert_path, key_path) = cert.write(&a.out_dir, &a.name)?;
    let mut extra_files = Vec::new();
    if a.k8s_secret {
        let mut metadata = serde_json::json!({"name": a.secret_name.clone().unwrap_or_else(|| a.name.clone())});
        if let Some(ns) = &a.namespace {
            metadata["namespace"] = ns.clone().into();
        }
        let secret = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": metadata,
            "type": "kubernetes.io/tls",
            "stringData": {"tls.crt": cert.cert_pem, "tls.key": cert.key_pem, "ca.crt": issuer.cert_pem()},
        });
        let path = a.out_dir.join(format!("{}-secret.yaml", a.name));
        write(&path, &yaml(&secret)?)?;
        extra_files.push(path);
    }
    Ok(Summary {
        cert: cert_path,
        key: key_path,
        subject: subject_string(&subject),
        sans,
        not_before: rfc3339(not_before),
        not_after: rfc3339(not_after),
        key_type: a.key_type,
        extra_files,
    })
}
