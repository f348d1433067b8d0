//! `peerguard test`: runs policy test files (YAML cases with expected decisions) through the engine `check` uses.
//!
//! A test file names a policy (`policy: FILE` relative to the test file, or an inline mapping)
//! and `cases`. Each case is a request, a peer (`cert`/`chain` files, `principal` for a
//! certificate made in memory, or `noCertificate: true`), an optional time `at`, and `expect`.
//! Every case goes through `resolve_peer`, `Engine::prepare` and `Engine::decide`, as
//! `peerguard check` and the filter do, so a passing case is what Envoy will answer.

mod init;

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use peerguard_cli::policy_file::{LoadError, PolicyFile, Syntax};
use peerguard_policy::explain::RuleRef;
use peerguard_policy::{
    pem_certificates, resolve_peer, Decision, Engine, Peer, PeerEvidence, Reason, Request, ResolvedPeer,
};
use serde::Deserialize;

use crate::{Failure, EXIT_DENY};
use peerguard_certkit::{CertFactory, PrincipalLeaf, DEFAULT_ISSUER, DEFAULT_LIFETIME_SECS};

pub(crate) const TEST_HELP: &str = "\
A test file (NAME.test.yaml) names a policy and lists cases:

  policy: policy.yaml            # relative to the test file; or an inline mapping
  at: 2026-01-01T12:00:00Z       # optional default time for every case (RFC 3339)
  cases:
    - name: frontend reads the API
      principal: cluster.local/ns/frontend/sa/web   # a certificate made in memory
      method: GET                                   # defaults: GET / localhost
      path: /api/items
      headers: [\"x-env: prod\"]                      # or a map; repeated headers allowed
      expect: {decision: allow, policy: frontend-reads-api}
    - name: plaintext is refused
      noCertificate: true
      expect: {decision: deny, reason: no_peer_certificate}

Peers: principal (optional issuer: \"CN=ca,O=org\", lifetime: 24h), cert: FILE (chain: FILE),
or noCertificate: true. Other request keys: host, port, sni. expect: decision (allow|deny),
reason, policy, principal, wouldDeny (null means: none).

A DIR is searched for *.test.yaml and *.test.yml files.
Output: a line per failing case, then `N passed, N failed`.
Exit codes: 0 all passed, 1 a case failed, 2 a file is unreadable or invalid.

Examples:
  peerguard test envoy istio
  peerguard test policy.test.yaml --junit target/policy-tests.xml --coverage
  peerguard test --init policy.yaml        # writes policy.test.yaml";

#[derive(Args)]
pub(crate) struct TestArgs {
    /// Test files, or directories searched for *.test.yaml
    #[arg(value_name = "FILE|DIR", required_unless_present = "init")]
    paths: Vec<PathBuf>,
    /// Also write the results as JUnit XML
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// List the policies, rules and certificate rules that no case matched
    #[arg(long)]
    coverage: bool,
    /// Write a starter test file for POLICY (one allow and one deny case per policy), then run it
    #[arg(long, value_name = "POLICY", conflicts_with_all = ["paths", "junit", "coverage"])]
    init: Option<PathBuf>,
    /// Where --init writes (default: NAME.test.yaml beside the policy)
    #[arg(long, value_name = "FILE", requires = "init")]
    out: Option<PathBuf>,
    /// Let --init replace an existing file
    #[arg(long, requires = "init")]
    force: bool,
}

pub(crate) fn run(args: &TestArgs) -> Result<ExitCode, Failure> {
    if let Some(policy) = &args.init {
        let written = init::write(policy, args.out.as_deref(), args.force)?;
        println!("wrote {}", written.display());
        return run_files(&[written], None, false);
    }
    let mut files = Vec::new();
    for p in &args.paths {
        if p.is_dir() {
            let found = test_files(p).map_err(Failure)?;
            if found.is_empty() {
                return Err(Failure(format!("{}: no test files (*.test.yaml) in this directory", p.display())));
            }
            files.extend(found);
        } else {
            files.push(p.clone());
        }
    }
    run_files(&files, args.junit.as_deref(), args.coverage)
}

/// `*.test.yaml` and `*.test.yml` under `dir`, sorted.
fn test_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).map_err(|e| format!("cannot read {}: {e}", d.display()))?;
        for entry in entries {
            let p = entry.map_err(|e| format!("cannot read {}: {e}", d.display()))?.path();
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if p.is_dir() {
                stack.push(p);
            } else if name.ends_with(".test.yaml") || name.ends_with(".test.yml") {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// The file format.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    policy: serde_yaml::Value,
    #[serde(default)]
    at: Option<String>,
    cases: Vec<RawCase>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawCase {
    name: String,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    host: Option<String>,
    #[serde(default)]
    port: Option<u32>,
    #[serde(default)]
    headers: Option<serde_yaml::Value>,
    #[serde(default)]
    sni: Option<String>,
    #[serde(default)]
    cert: Option<String>,
    #[serde(default)]
    chain: Option<String>,
    #[serde(default)]
    no_certificate: bool,
    #[serde(default)]
    principal: Option<String>,
    #[serde(default)]
    issuer: Option<String>,
    #[serde(default)]
    lifetime: Option<String>,
    #[serde(default)]
    at: Option<String>,
    expect: Expect,
}

#[derive(Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Verdict {
    Allow,
    Deny,
}

/// `reason: null` (no reason) differs from a missing `reason` (not checked).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Expect {
    decision: Verdict,
    #[serde(default, deserialize_with = "present")]
    reason: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    policy: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    principal: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    would_deny: Option<Option<String>>,
}

/// A case ready to run: the request, the peer's evidence and the time.
struct Case {
    name: String,
    method: String,
    path: String,
    host: String,
    port: Option<u32>,
    headers: Vec<(String, String)>,
    sni: Option<String>,
    peer: PeerSpec,
    at: i64,
    expect: Expect,
}

enum PeerSpec {
    None,
    /// PEM of the leaf (perhaps followed by intermediates) and the presented chain, as `check`
    /// takes `--cert` and `--chain`.
    Pem {
        leaf: Vec<u8>,
        chain: Vec<Vec<u8>>,
        label: String,
    },
}

/// A test file with its compiled policy.
struct Loaded {
    policy_key: String,
    policy_display: String,
    engine: Arc<Engine>,
    cases: Vec<Case>,
}

struct Loader {
    certs: CertFactory,
    /// Compiled policies by canonical path, so that files sharing a policy compile it once.
    engines: HashMap<PathBuf, Arc<Engine>>,
    now: i64,
}

fn rfc3339(s: &str) -> Result<i64, String> {
    crate::parse_rfc3339(s)
}

fn lifetime_secs(s: &str) -> Result<i64, String> {
    let d = peerguard_policy::Duration::parse(s).map_err(|e| format!("lifetime {s:?}: {e}"))?;
    i64::try_from(d.as_secs()).map_err(|_| format!("lifetime {s:?} is too long"))
}

impl Loader {
    fn load(&mut self, file: &Path) -> Result<Loaded, String> {
        let bytes = std::fs::read(file).map_err(|e| format!("cannot read: {e}"))?;
        let text = String::from_utf8(bytes).map_err(|_| "not UTF-8 text".to_owned())?;
        // serde_yaml's messages name the path and the line (`cases[0]: unknown field ...`).
        let raw: RawFile = serde_yaml::from_str(&text).map_err(|e| e.to_string())?;
        let dir = file.parent().unwrap_or(Path::new(""));
        let (policy_key, policy_display, engine) = self.policy(&raw.policy, dir, file)?;
        let default_at = raw.at.as_deref().map(rfc3339).transpose().map_err(|e| format!("at: {e}"))?;
        let known_names: Vec<&str> =
            engine.certificate_rule_names().iter().chain(engine.policy_list()).map(|n| &**n).collect();
        let mut cases = Vec::with_capacity(raw.cases.len());
        let mut names = BTreeSet::new();
        for (i, rc) in raw.cases.into_iter().enumerate() {
            let at = format!("cases[{i}]");
            if !names.insert(rc.name.clone()) {
                return Err(format!("{at}.name: {:?} is used twice; case names must be unique", rc.name));
            }
            let case = self.case(rc, dir, default_at, &known_names).map_err(|e| format!("{at}.{e}"))?;
            cases.push(case);
        }
        if cases.is_empty() {
            return Err("cases: no cases".to_owned());
        }
        Ok(Loaded { policy_key, policy_display, engine, cases })
    }

    fn policy(
        &mut self,
        v: &serde_yaml::Value,
        dir: &Path,
        file: &Path,
    ) -> Result<(String, String, Arc<Engine>), String> {
        match v {
            serde_yaml::Value::String(rel) => {
                let path = dir.join(rel);
                let canonical =
                    path.canonicalize().map_err(|e| format!("policy: cannot read {}: {e}", path.display()))?;
                if let Some(engine) = self.engines.get(&canonical) {
                    return Ok((canonical.display().to_string(), path.display().to_string(), engine.clone()));
                }
                let engine = compile(&path, PolicyFile::load(&path))?;
                self.engines.insert(canonical.clone(), engine.clone());
                Ok((canonical.display().to_string(), path.display().to_string(), engine))
            }
            serde_yaml::Value::Mapping(_) => {
                let text = serde_yaml::to_string(v).map_err(|e| format!("policy: {e}"))?;
                let label = PathBuf::from(format!("{} (inline policy)", file.display()));
                let engine = compile(&label, PolicyFile::from_text(&label, &text, Syntax::Yaml))?;
                let key = format!("{} (inline policy)", file.display());
                Ok((key.clone(), key, engine))
            }
            _ => Err("policy: expected a file name or a policy mapping".to_owned()),
        }
    }

    fn case(&mut self, rc: RawCase, dir: &Path, default_at: Option<i64>, known: &[&str]) -> Result<Case, String> {
        let at = match &rc.at {
            Some(s) => rfc3339(s).map_err(|e| format!("at: {e}"))?,
            None => default_at.unwrap_or(self.now),
        };
        if let Some(p) = rc.port {
            if !(1..=65535).contains(&p) {
                return Err(format!("port: {p} is not a port (1-65535)"));
            }
        }
        let headers = match &rc.headers {
            None => Vec::new(),
            Some(v) => headers(v).map_err(|e| format!("headers: {e}"))?,
        };
        let chosen = [rc.cert.is_some(), rc.principal.is_some(), rc.no_certificate];
        match chosen.iter().filter(|b| **b).count() {
            1 => {}
            0 => return Err("name: give the peer: principal, cert, or noCertificate: true".to_owned()),
            _ => return Err("name: give only one of principal, cert and noCertificate".to_owned()),
        }
        if rc.chain.is_some() && rc.cert.is_none() {
            return Err("chain: needs cert".to_owned());
        }
        if (rc.issuer.is_some() || rc.lifetime.is_some()) && rc.principal.is_none() {
            return Err("issuer: issuer and lifetime shape the certificate made for a principal".to_owned());
        }
        let peer = if let Some(principal) = &rc.principal {
            let lifetime =
                rc.lifetime.as_deref().map(lifetime_secs).transpose().map_err(|e| format!("lifetime: {e}"))?;
            let spec = PrincipalLeaf {
                principal,
                issuer: rc.issuer.as_deref().unwrap_or(DEFAULT_ISSUER),
                lifetime_secs: lifetime.unwrap_or(DEFAULT_LIFETIME_SECS),
                at,
            };
            let pem = self.certs.leaf_pem(&spec).map_err(|e| format!("principal: {e}"))?;
            PeerSpec::Pem { leaf: pem.into_bytes(), chain: Vec::new(), label: format!("principal {principal}") }
        } else if let Some(cert) = &rc.cert {
            let path = dir.join(cert);
            let leaf = std::fs::read(&path).map_err(|e| format!("cert: cannot read {}: {e}", path.display()))?;
            let chain = match &rc.chain {
                None => Vec::new(),
                Some(c) => {
                    let p = dir.join(c);
                    let pem = std::fs::read(&p).map_err(|e| format!("chain: cannot read {}: {e}", p.display()))?;
                    pem_certificates(&pem).map_err(|e| format!("chain: {}: no PEM certificates: {e}", p.display()))?
                }
            };
            PeerSpec::Pem { leaf, chain, label: path.display().to_string() }
        } else {
            PeerSpec::None
        };
        let e = &rc.expect;
        for (key, value) in [("reason", &e.reason), ("wouldDeny", &e.would_deny)] {
            if let Some(Some(code)) = value {
                if Reason::from_code(code).is_none() {
                    return Err(format!(
                        "expect.{key}: {code:?} is not a reason code (see docs/policy.md, Decision order)"
                    ));
                }
            }
        }
        if let Some(Some(name)) = &e.policy {
            if !known.contains(&name.as_str()) {
                return Err(format!("expect.policy: the policy has no policy or certificate rule named {name:?}"));
            }
        }
        Ok(Case {
            name: rc.name,
            method: rc.method.unwrap_or_else(|| "GET".to_owned()),
            path: rc.path.unwrap_or_else(|| "/".to_owned()),
            host: rc.host.unwrap_or_else(|| "localhost".to_owned()),
            port: rc.port,
            headers,
            sni: rc.sni,
            peer,
            at,
            expect: rc.expect,
        })
    }
}

/// The engine of a loaded policy (its load warnings, or every error with its path, on stderr).
fn compile(label: &Path, loaded: Result<PolicyFile, LoadError>) -> Result<Arc<Engine>, String> {
    crate::report_load(loaded).map(|policy| Arc::new(policy.engine)).map_err(|Failure(m)| match m.is_empty() {
        true => format!("policy {} is invalid", label.display()),
        false => format!("policy: {m}"),
    })
}

/// `["name: value", ...]` or `{name: value, other: [v1, v2]}`.
fn headers(v: &serde_yaml::Value) -> Result<Vec<(String, String)>, String> {
    use serde_yaml::Value;
    let scalar = |v: &Value| -> Result<String, String> {
        match v {
            Value::String(s) => Ok(s.clone()),
            Value::Number(n) => Ok(n.to_string()),
            Value::Bool(b) => Ok(b.to_string()),
            _ => Err(format!("{v:?} is not a header value")),
        }
    };
    let mut out = Vec::new();
    match v {
        Value::Sequence(items) => {
            for item in items {
                let line = scalar(item)?;
                out.push(crate::parse_header(&line)?);
            }
        }
        Value::Mapping(map) => {
            for (k, val) in map {
                let name = scalar(k)?;
                let values = match val {
                    Value::Sequence(vs) => vs.iter().map(scalar).collect::<Result<Vec<_>, _>>()?,
                    other => vec![scalar(other)?],
                };
                for value in values {
                    out.push(crate::parse_header(&format!("{name}: {value}"))?);
                }
            }
        }
        _ => return Err("expected a list of \"NAME: VALUE\" strings or a map".to_owned()),
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Running.

/// What a case's request got, in `peerguard check`'s terms.
struct Outcome {
    allowed: bool,
    reason: Option<&'static str>,
    would_deny: Option<&'static str>,
    policy: Option<String>,
    principal: Option<String>,
}

impl Outcome {
    fn new(d: &Decision) -> Outcome {
        let code = d.reason().map(Reason::code);
        Outcome {
            allowed: d.allowed(),
            reason: if d.allowed() { None } else { code },
            would_deny: if d.allowed() && d.dry_run() { code } else { None },
            policy: d.policy.as_deref().map(str::to_owned),
            principal: d.principal().map(str::to_owned),
        }
    }

    fn describe(&self) -> String {
        let mut s = String::from(if self.allowed { "allow" } else { "deny" });
        if let Some(r) = self.reason {
            let _ = write!(s, " {r}");
        }
        let mut details = Vec::new();
        if let Some(w) = self.would_deny {
            details.push(format!("would deny {w}"));
        }
        details.push(match &self.policy {
            Some(p) => format!("policy {p}"),
            None => "no policy".to_owned(),
        });
        details.push(match &self.principal {
            Some(p) => format!("principal {p}"),
            None => "no principal".to_owned(),
        });
        let _ = write!(s, " ({})", details.join(", "));
        s
    }
}

impl Expect {
    fn matches(&self, o: &Outcome) -> bool {
        let same = |want: &Option<Option<String>>, got: Option<&str>| want.as_ref().is_none_or(|w| w.as_deref() == got);
        (self.decision == Verdict::Allow) == o.allowed
            && same(&self.reason, o.reason)
            && same(&self.would_deny, o.would_deny)
            && same(&self.policy, o.policy.as_deref())
            && same(&self.principal, o.principal.as_deref())
    }

    fn describe(&self) -> String {
        let mut s = String::from(if self.decision == Verdict::Allow { "allow" } else { "deny" });
        if let Some(Some(r)) = &self.reason {
            let _ = write!(s, " {r}");
        }
        let mut details = Vec::new();
        let mut field = |label: &str, none: &str, v: &Option<Option<String>>| match v {
            Some(Some(x)) => details.push(format!("{label} {x}")),
            Some(None) => details.push(none.to_owned()),
            None => {}
        };
        field("would deny", "no would-deny", &self.would_deny);
        field("policy", "no policy", &self.policy);
        field("principal", "no principal", &self.principal);
        if matches!(self.reason, Some(None)) {
            details.push("no reason".to_owned());
        }
        if !details.is_empty() {
            let _ = write!(s, " ({})", details.join(", "));
        }
        s
    }
}

/// Decides a case exactly as `peerguard check` does, and explains it for coverage.
fn decide(engine: &Engine, case: &Case) -> (Decision, peerguard_policy::explain::Explanation) {
    let req = Request {
        method: &case.method,
        path: &case.path,
        host: &case.host,
        port: case.port,
        sni: case.sni.as_deref(),
        headers: &case.headers,
    };
    let now = case.at;
    match &case.peer {
        PeerSpec::None => (engine.decide(&req, &Peer::None, now), engine.explain(&req, &Peer::None, now)),
        PeerSpec::Pem { leaf, chain, label } => {
            let evidence =
                PeerEvidence { digest: None, certificate_pem: Some(leaf), xfcc: None, presented_chain: chain.clone() };
            match resolve_peer(evidence) {
                ResolvedPeer::Certificate { facts, chain } => {
                    let prepared = engine.prepare(*facts, &chain, now);
                    let peer = Peer::Certificate(&prepared);
                    (engine.decide(&req, &peer, now), engine.explain(&req, &peer, now))
                }
                ResolvedPeer::Unparseable(e) => {
                    eprintln!("peerguard: {label}: {e}");
                    (engine.decide(&req, &Peer::Unparseable, now), engine.explain(&req, &Peer::Unparseable, now))
                }
                ResolvedPeer::AttributesOnly => {
                    (engine.decide(&req, &Peer::Unparseable, now), engine.explain(&req, &Peer::Unparseable, now))
                }
            }
        }
    }
}

struct CaseResult {
    name: String,
    /// `expected ..., got ...` when the case failed.
    failure: Option<String>,
}

enum FileResult {
    Invalid(String),
    Ran(Vec<CaseResult>),
}

/// What the cases of every file matched, per policy.
struct Coverage {
    display: String,
    engine: Arc<Engine>,
    rules: BTreeSet<(usize, usize)>,
    certificate_rules: BTreeSet<usize>,
}

fn run_files(files: &[PathBuf], junit: Option<&Path>, coverage: bool) -> Result<ExitCode, Failure> {
    let now = now()?;
    let mut loader = Loader { certs: CertFactory::default(), engines: HashMap::new(), now };
    let mut results: Vec<(String, FileResult)> = Vec::new();
    let mut covered: Vec<Coverage> = Vec::new();
    let mut cover_index: HashMap<String, usize> = HashMap::new();
    let (mut passed, mut failed) = (0usize, 0usize);
    for file in files {
        let display = file.display().to_string();
        let loaded = match loader.load(file) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("ERROR {display}: {e}");
                results.push((display, FileResult::Invalid(e)));
                continue;
            }
        };
        let slot = *cover_index.entry(loaded.policy_key.clone()).or_insert_with(|| {
            covered.push(Coverage {
                display: loaded.policy_display.clone(),
                engine: loaded.engine.clone(),
                rules: BTreeSet::new(),
                certificate_rules: BTreeSet::new(),
            });
            covered.len() - 1
        });
        let mut case_results = Vec::with_capacity(loaded.cases.len());
        for case in &loaded.cases {
            let (decision, explanation) = decide(&loaded.engine, case);
            if let Some(c) = covered.get_mut(slot) {
                c.rules.extend(explanation.rules.iter().map(|r| (r.policy_index, r.rule_index)));
                c.certificate_rules.extend(explanation.certificate_rules.iter().copied());
            }
            let got = Outcome::new(&decision);
            let failure = if case.expect.matches(&got) {
                passed += 1;
                None
            } else {
                failed += 1;
                let msg = format!("expected {}, got {}", case.expect.describe(), got.describe());
                println!("FAIL {display}: {}: {msg}", case.name);
                Some(msg)
            };
            case_results.push(CaseResult { name: case.name.clone(), failure });
        }
        let fails = case_results.iter().filter(|c| c.failure.is_some()).count();
        if fails == 0 {
            let n = case_results.len();
            println!("ok   {display} ({n} case{})", if n == 1 { "" } else { "s" });
        }
        results.push((display, FileResult::Ran(case_results)));
    }
    if coverage {
        for c in &covered {
            print!("{}", coverage_report(c));
        }
    }
    let invalid = results.iter().filter(|(_, r)| matches!(r, FileResult::Invalid(_))).count();
    println!("{passed} passed, {failed} failed");
    if let Some(path) = junit {
        std::fs::write(path, junit_xml(&results))
            .map_err(|e| Failure(format!("cannot write {}: {e}", path.display())))?;
    }
    if invalid > 0 {
        return Err(Failure(format!("{invalid} test file{} could not be run", if invalid == 1 { "" } else { "s" })));
    }
    Ok(if failed > 0 { ExitCode::from(EXIT_DENY) } else { ExitCode::SUCCESS })
}

fn coverage_report(c: &Coverage) -> String {
    let engine = &c.engine;
    let rules: Vec<RuleRef> = engine.rule_refs();
    let matched = rules.iter().filter(|r| c.rules.contains(&(r.policy_index, r.rule_index))).count();
    let cert_names = engine.certificate_rule_names();
    let mut out = format!("coverage {}: {matched} of {} rules matched", c.display, rules.len());
    if !cert_names.is_empty() {
        let _ = write!(out, ", {} of {} certificate rules applied", c.certificate_rules.len(), cert_names.len());
    }
    out.push('\n');
    for (i, name) in engine.policy_list().iter().enumerate() {
        let own: Vec<&RuleRef> = rules.iter().filter(|r| r.policy_index == i).collect();
        if own.is_empty() {
            let _ = writeln!(out, "  unmatched policies[{i}] ({name}): it has no rules");
            continue;
        }
        if !own.iter().any(|r| c.rules.contains(&(r.policy_index, r.rule_index))) {
            let _ = writeln!(out, "  unmatched policies[{i}] ({name})");
        }
        for r in own {
            if !c.rules.contains(&(r.policy_index, r.rule_index)) {
                let _ = writeln!(out, "  unmatched {} ({name})", r.path());
            }
        }
    }
    for (i, name) in cert_names.iter().enumerate() {
        if !c.certificate_rules.contains(&i) {
            let _ = writeln!(out, "  unmatched certificateRules[{i}] ({name})");
        }
    }
    out
}

fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\t' | '\r') => {}
            c => out.push(c),
        }
    }
    out
}

fn junit_xml(results: &[(String, FileResult)]) -> String {
    let mut tests = 0;
    let mut failures = 0;
    let mut errors = 0;
    let mut body = String::new();
    for (file, r) in results {
        let f = xml_escape(file);
        match r {
            FileResult::Invalid(e) => {
                tests += 1;
                errors += 1;
                let _ = writeln!(body, "  <testsuite name=\"{f}\" tests=\"1\" failures=\"0\" errors=\"1\">");
                let _ = writeln!(body, "    <testcase classname=\"{f}\" name=\"(file)\">");
                let _ = writeln!(body, "      <error message=\"{}\"/>", xml_escape(e));
                let _ = writeln!(body, "    </testcase>\n  </testsuite>");
            }
            FileResult::Ran(cases) => {
                let fails = cases.iter().filter(|c| c.failure.is_some()).count();
                tests += cases.len();
                failures += fails;
                let _ = writeln!(
                    body,
                    "  <testsuite name=\"{f}\" tests=\"{}\" failures=\"{fails}\" errors=\"0\">",
                    cases.len()
                );
                for c in cases {
                    let name = xml_escape(&c.name);
                    match &c.failure {
                        None => {
                            let _ = writeln!(body, "    <testcase classname=\"{f}\" name=\"{name}\"/>");
                        }
                        Some(msg) => {
                            let _ = writeln!(body, "    <testcase classname=\"{f}\" name=\"{name}\">");
                            let _ = writeln!(body, "      <failure message=\"{}\"/>", xml_escape(msg));
                            let _ = writeln!(body, "    </testcase>");
                        }
                    }
                }
                let _ = writeln!(body, "  </testsuite>");
            }
        }
    }
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"peerguard test\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\">\n{body}</testsuites>\n"
    )
}

fn now() -> Result<i64, Failure> {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|e| Failure(format!("the system clock is before 1970: {e}")))?
        .as_secs()
        .try_into()
        .map_err(|_| Failure("the system clock is out of range".into()))
}
