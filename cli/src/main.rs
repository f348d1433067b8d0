//! The `peerguard` command line: evaluate one request, validate, import, render and live-reload policies.
//!
//! It runs the same engine as the filter, so `peerguard check` answers exactly as Envoy would.
//! Exit codes are a scripting contract (PRODUCT.md, "The peerguard CLI"): 0 allow / valid,
//! 1 deny, 2 invalid input.
#![forbid(unsafe_code)]

mod import;
mod testing;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use peerguard_cli::policy_file::{LoadError, PolicyFile};
use peerguard_policy::{pem_certificates, resolve_peer, Decision, Peer, PeerEvidence, Request, ResolvedPeer};
use serde::Serialize;

/// Exit code for a deny.
const EXIT_DENY: u8 = 1;
/// Exit code for invalid input: a bad policy, a bad flag, an unreadable file.
const EXIT_INVALID: u8 = 2;

#[derive(Parser)]
#[command(
    name = "peerguard",
    version,
    about = "mTLS peer authorization for Envoy: check requests, validate and import policies",
    after_help = "Examples:\n  peerguard validate policy.yaml\n  peerguard check --policy policy.yaml --cert client.pem --method GET --path /api/items\n  peerguard import istio-authz.yaml > policy.yaml\n  peerguard live reload policy.yaml\n\nExit codes: 0 allow (or valid), 1 deny, 2 invalid input."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Evaluate one request against a policy and print the decision as JSON
    #[command(after_help = CHECK_HELP)]
    Check(CheckArgs),
    /// Check a policy document; list every error with its path
    #[command(after_help = VALIDATE_HELP)]
    Validate(ValidateArgs),
    /// Convert Istio AuthorizationPolicy resources into a peerguard policy document
    #[command(after_help = IMPORT_HELP)]
    Import(import::ImportArgs),
    /// Generate a CA and workload certificates (SPIFFE, DNS or CN), PEM and Kubernetes Secrets
    #[command(subcommand)]
    Cert(peerguard_cli::cert::CertCommand),
    /// Make a CRL from a CA and serials, or show what a CRL holds
    #[command(subcommand)]
    Crl(peerguard_cli::crl::CrlCommand),
    /// Embed a policy into a WasmPlugin or an Envoy config; build the OCI image
    #[command(subcommand)]
    Render(peerguard_cli::render::RenderCommand),
    /// Run policy test files (YAML cases with expected decisions); --init writes a starter file
    #[command(after_help = testing::TEST_HELP)]
    Test(testing::TestArgs),
    /// Swap the policy or the server certificate of a running Envoy (ECDS and SDS files it watches)
    #[command(subcommand)]
    Live(peerguard_cli::live::LiveCommand),
}

const CHECK_HELP: &str = "\
Output: one JSON object on stdout,
  {\"decision\":\"allow\"|\"deny\",\"reason\":CODE|null,\"policy\":NAME|null,\"principal\":ID|null}
plus \"dryRun\":true and \"wouldDeny\":CODE when a dry-run policy would have denied.
Exit codes: 0 allow, 1 deny, 2 invalid input (the policy's errors go to stderr).

Examples:
  # A workload certificate calling GET /api/items:
  peerguard check --policy policy.yaml --cert client.pem --path /api/items
  # With intermediates (as XFCC Chain= would carry them), at a fixed time:
  peerguard check --policy policy.yaml --cert leaf.pem --chain chain.pem --at 2026-01-01T12:00:00Z
  # A plaintext request (no --cert) with a header and a port:
  peerguard check --policy policy.yaml --method POST --path /admin --port 8080 --header 'x-env: prod'
  # Behind Linkerd (identity: [linkerdHeader]), from the proxy and from elsewhere:
  peerguard check --policy policy.yaml --l5d-client-id web.shop.serviceaccount.identity.linkerd.cluster.local
  peerguard check --policy policy.yaml --l5d-client-id web.shop.serviceaccount.identity.linkerd.cluster.local --source-address 10.0.0.7:41000";

const VALIDATE_HELP: &str = "\
Exit codes: 0 valid, 2 invalid (every error is printed with its JSON path).

Example:
  peerguard validate policy.yaml
  ok: 2 policies, 3 rules, 0 certificate rules (mode enforce, mtls strict)";

const IMPORT_HELP: &str = "\
Reads one or many `---`-separated YAML documents (or a `kind: List`). Other kinds are skipped
with a warning. Each AuthorizationPolicy becomes a policy named NAMESPACE.NAME; its selector or
targetRefs are dropped (the WasmPlugin's selector decides where the filter runs), and the
`istio.io/dry-run` annotation becomes `dryRun: true`. CUSTOM actions and fields peerguard does
not support are errors (exit 2) that name the field.

Examples:
  peerguard import authz.yaml > policy.yaml && peerguard validate policy.yaml
  kubectl get authorizationpolicies -A -o yaml | peerguard import - --json";

#[derive(Args)]
struct CheckArgs {
    /// Policy document (YAML or JSON)
    #[arg(long, value_name = "FILE")]
    policy: PathBuf,
    /// Peer leaf certificate (PEM); without it the request is plaintext
    #[arg(long, value_name = "LEAF.pem")]
    cert: Option<PathBuf>,
    /// Intermediate certificates (PEM), as XFCC Chain= carries them; a copy of the leaf is ignored
    #[arg(long, value_name = "INTERMEDIATES.pem", requires = "cert")]
    chain: Option<PathBuf>,
    /// :method
    #[arg(long, default_value = "GET")]
    method: String,
    /// :path, with any query string
    #[arg(long, default_value = "/")]
    path: String,
    /// :authority
    #[arg(long, default_value = "localhost")]
    host: String,
    /// Destination port
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=65535))]
    port: Option<u32>,
    /// A request header, 'NAME: VALUE' (repeatable)
    #[arg(long = "header", value_name = "NAME: VALUE", value_parser = parse_header)]
    headers: Vec<(String, String)>,
    /// TLS SNI of the connection
    #[arg(long)]
    sni: Option<String>,
    /// Evaluate at this time (RFC 3339, e.g. 2026-01-01T12:00:00Z) instead of now
    #[arg(long, value_name = "RFC3339", value_parser = parse_rfc3339)]
    at: Option<i64>,
    /// Under identity: [linkerdHeader]: a copy of l5d-client-id the request carries (repeatable)
    #[arg(long = "l5d-client-id", value_name = "IDENTITY", conflicts_with = "cert")]
    l5d_client_ids: Vec<String>,
    /// Under identity: [linkerdHeader]: Envoy's source.address (IP:PORT); l5d-client-id counts
    /// only from linkerd.proxyAddresses
    #[arg(long, value_name = "IP:PORT", default_value = "127.0.0.1:50000")]
    source_address: String,
}

#[derive(Args)]
struct ValidateArgs {
    /// Policy document (YAML or JSON)
    file: PathBuf,
}

fn parse_header(s: &str) -> Result<(String, String), String> {
    let (name, value) = s.split_once(':').ok_or_else(|| format!("{s:?} is not 'NAME: VALUE'"))?;
    let name = name.trim();
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic() && b != b':') {
        return Err(format!("{name:?} is not a header name"));
    }
    Ok((name.to_ascii_lowercase(), value.trim().to_owned()))
}

fn parse_rfc3339(s: &str) -> Result<i64, String> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map(|t| t.unix_timestamp())
        .map_err(|e| format!("{s:?} is not an RFC 3339 time such as 2026-01-01T12:00:00Z: {e}"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check(args) => check(&args),
        Command::Validate(args) => validate(&args),
        Command::Import(args) => import::run(&args),
        Command::Cert(cmd) => shipping(
            peerguard_cli::cert::run(&cmd)
                .map(|s| serde_json::to_string_pretty(&s).map(|j| j + "\n").unwrap_or_default()),
        ),
        Command::Crl(cmd) => shipping(peerguard_cli::crl::run(&cmd)),
        Command::Render(cmd) => shipping(peerguard_cli::render::run(&cmd)),
        Command::Test(args) => testing::run(&args),
        Command::Live(cmd) => shipping(peerguard_cli::live::run(&cmd)),
    };
    match result {
        Ok(code) => code,
        Err(Failure(msg)) => {
            if !msg.is_empty() {
                eprintln!("peerguard: {msg}");
            }
            ExitCode::from(EXIT_INVALID)
        }
    }
}

/// `cert`, `render` and `live` print their output and exit 0, or fail with exit code 2.
fn shipping<E: std::fmt::Display>(r: Result<String, E>) -> Result<ExitCode, Failure> {
    let out = r.map_err(|e| Failure(e.to_string()))?;
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}

/// Invalid input: the message goes to stderr and the exit code is 2.
pub(crate) struct Failure(pub String);

pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>, Failure> {
    peerguard_cli::policy_file::read_input(path).map_err(|e| Failure(format!("cannot read {}: {e}", path.display())))
}

pub(crate) fn read_text(path: &Path) -> Result<String, Failure> {
    String::from_utf8(read_file(path)?).map_err(|_| Failure(format!("{} is not UTF-8 text", path.display())))
}

/// Loads a policy with the one loader every command uses; prints its load warnings, or every
/// error with its path (exit code 2).
pub(crate) fn load_policy(path: &Path) -> Result<PolicyFile, Failure> {
    report_load(PolicyFile::load(path))
}

/// Prints a loaded policy's warnings, or every error with its path; a read error is the message.
pub(crate) fn report_load(loaded: Result<PolicyFile, LoadError>) -> Result<PolicyFile, Failure> {
    match loaded {
        Ok(policy) => {
            policy.print_warnings();
            Ok(policy)
        }
        Err(e @ LoadError::Invalid { .. }) => {
            eprintln!("{e}");
            Err(Failure(String::new()))
        }
        Err(e) => Err(Failure(e.to_string())),
    }
}

fn validate(args: &ValidateArgs) -> Result<ExitCode, Failure> {
    let doc = load_policy(&args.file)?.document;
    let rules: usize = doc.policies.iter().map(|p| p.rules.as_ref().map_or(0, Vec::len)).sum();
    let plural = |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    println!(
        "ok: {}, {}, {} (mode {}, mtls {})",
        plural(doc.policies.len(), "policy", "policies"),
        plural(rules, "rule", "rules"),
        plural(doc.certificate_rules.len(), "certificate rule", "certificate rules"),
        serde_name(&doc.mode),
        serde_name(&doc.mtls),
    );
    Ok(ExitCode::SUCCESS)
}

/// The name a unit enum has in the policy document (`dryRun`, `strict`, ...).
fn serde_name<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::from("?"),
    }
}

/// `peerguard check` output. Field order is part of the contract; the four first keys are always
/// present, `null` when they do not apply.
#[derive(Serialize)]
struct CheckOutput<'a> {
    decision: &'static str,
    reason: Option<&'static str>,
    policy: Option<&'a str>,
    principal: Option<&'a str>,
    #[serde(rename = "dryRun", skip_serializing_if = "std::ops::Not::not")]
    dry_run: bool,
    #[serde(rename = "wouldDeny", skip_serializing_if = "Option::is_none")]
    would_deny: Option<&'static str>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    audit: Vec<&'a str>,
    /// The `:path` the filter would send upstream, when it differs from `--path` (rewrite mode).
    #[serde(rename = "forwardedPath", skip_serializing_if = "Option::is_none")]
    forwarded_path: Option<&'a str>,
    /// Why the path has no normal form, with the reason `invalid_path`.
    #[serde(rename = "pathError", skip_serializing_if = "Option::is_none")]
    path_error: Option<String>,
}

impl<'a> CheckOutput<'a> {
    fn new(d: &'a Decision) -> CheckOutput<'a> {
        let code = d.reason().map(|r| r.code());
        CheckOutput {
            decision: if d.allowed() { "allow" } else { "deny" },
            reason: if d.allowed() { None } else { code },
            policy: d.policy.as_deref(),
            principal: d.principal(),
            dry_run: d.dry_run(),
            would_deny: if d.allowed() && d.dry_run() { code } else { None },
            audit: d.audit.iter().map(|a| &**a).collect(),
            forwarded_path: d.path_rewrite.as_deref(),
            path_error: d.path_error.map(|e| e.to_string()),
        }
    }
}

fn check(args: &CheckArgs) -> Result<ExitCode, Failure> {
    let engine = load_policy(&args.policy)?.engine;
    let now = match args.at {
        Some(t) => t,
        None => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(|e| Failure(format!("the system clock is before 1970: {e}")))?
            .as_secs()
            .try_into()
            .map_err(|_| Failure("the system clock is out of range".into()))?,
    };
    let headers = args.headers.clone();
    let req = Request {
        method: &args.method,
        path: &args.path,
        host: &args.host,
        port: args.port,
        sni: args.sni.as_deref(),
        headers: &headers,
    };

    let decision = match &args.cert {
        // As the filter does behind Linkerd (docs/policy.md "Behind Linkerd").
        _ if engine.linkerd_header() => {
            if args.l5d_client_ids.is_empty() || !engine.is_linkerd_proxy(&args.source_address) {
                engine.decide(&req, &Peer::None, now)
            } else {
                engine.decide(&req, &Peer::LinkerdClientId(&args.l5d_client_ids), now)
            }
        }
        None => engine.decide(&req, &Peer::None, now),
        Some(cert_path) => {
            // A certificate the filter cannot parse is denied there as invalid_certificate, so
            // it is a deny here too; a file that cannot be read at all is a usage error.
            let leaf = read_file(cert_path)?;
            let presented_chain = match &args.chain {
                Some(p) => {
                    let pem = read_file(p)?;
                    pem_certificates(&pem).map_err(|e| Failure(format!("{}: no PEM certificates: {e}", p.display())))?
                }
                None => Vec::new(),
            };
            // The same resolution as the filter: --cert plays connection.peer_certificate (it
            // may hold the leaf followed by its intermediates), --chain plays XFCC Chain=.
            let evidence = PeerEvidence { digest: None, certificate_pem: Some(&leaf), xfcc: None, presented_chain };
            match resolve_peer(evidence) {
                ResolvedPeer::Certificate { facts, chain } => {
                    let prepared = engine.prepare(*facts, &chain, now);
                    engine.decide(&req, &Peer::Certificate(&prepared), now)
                }
                ResolvedPeer::Unparseable(e) => {
                    eprintln!("peerguard: {}: {e}", cert_path.display());
                    engine.decide(&req, &Peer::Unparseable, now)
                }
                ResolvedPeer::AttributesOnly => engine.decide(&req, &Peer::Unparseable, now),
            }
        }
    };

    let out = CheckOutput::new(&decision);
    let json = serde_json::to_string(&out).map_err(|e| Failure(format!("cannot print the decision: {e}")))?;
    println!("{json}");
    Ok(if decision.allowed() { ExitCode::SUCCESS } else { ExitCode::from(EXIT_DENY) })
}
