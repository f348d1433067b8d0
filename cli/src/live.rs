//! `peerguard live init|reload|rotate`: the files a running Envoy watches for its peerguard policy (ECDS) and server certificate (SDS).
//!
//! `envoy/live-reload.yaml` (and the e2e tests' launcher) take the filter's configuration by ECDS
//! from `DIR/ecds/peerguard.yaml` and the listener certificate by SDS from `DIR/sds/server.yaml`,
//! whose certificate and key sit in `DIR/server-certs/` behind a `..data` symlink (the layout of a
//! Kubernetes Secret volume). Envoy watches those directories.
//!
//! Every write is atomic (a temp file and a rename, or a `..data` symlink swap), so Envoy's watch
//! sees one move and never a half-written file. A policy is loaded with the loader every command
//! uses and compiled before anything is written: a policy the filter would refuse never replaces
//! the one Envoy runs (`--force` writes it anyway, and the filter then fails closed with
//! `503 config_invalid`, docs/policy.md "Validation").

use std::fmt;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use peerguard_filter::envoy_config::{
    NativeFilter, WasmFilter, NATIVE_MODULE_NAME, NATIVE_SEARCH_PATH_ENV, NATIVE_TYPE_URL, WASM_TYPE_URL,
};
use peerguard_policy::CertFacts;
use serde_json::{json, Value};

use crate::policy_file::{LoadError, PolicyFile};

/// File in the ECDS directory holding the discovery response with the filter's configuration.
pub const ECDS_FILE: &str = "peerguard.yaml";
/// Name of the ECDS resource (and of the HTTP filter) that carries peerguard's configuration.
pub const ECDS_RESOURCE: &str = "peerguard";
/// File in the SDS directory holding the server certificate secret.
pub const SDS_FILE: &str = "server.yaml";
/// Name of the SDS secret for the listener's certificate.
pub const SDS_SERVER_SECRET: &str = "server";

/// Errors of `peerguard live` and its file helpers.
#[derive(Debug)]
#[non_exhaustive]
pub enum LiveError {
    /// The policy does not load; nothing was written.
    Policy(LoadError),
    /// A certificate or key that Envoy could not use; nothing was written.
    Certificate(String),
    /// A flag or a directory that cannot be used.
    Usage(String),
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl fmt::Display for LiveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LiveError::Policy(e) => write!(f, "{e}\nnothing written: Envoy keeps the policy it runs"),
            LiveError::Certificate(m) => write!(f, "{m}\nnothing written: Envoy keeps the certificate it has"),
            LiveError::Usage(m) => f.write_str(m),
            LiveError::Io { path, source } => write!(f, "{}: {source}", path.display()),
        }
    }
}

impl std::error::Error for LiveError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LiveError::Policy(e) => Some(e),
            LiveError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> LiveError + '_ {
    move |source| LiveError::Io { path: path.to_path_buf(), source }
}

/// `peerguard live ...`
#[derive(Debug, Subcommand)]
pub enum LiveCommand {
    /// Prepare DIR for a live-reload Envoy: the ECDS file with POLICY and the server certificate
    #[command(after_help = INIT_HELP)]
    Init(InitArgs),
    /// Validate POLICY, then swap it into the running Envoy with one atomic rename
    #[command(after_help = RELOAD_HELP)]
    Reload(ReloadArgs),
    /// Swap the server certificate and key together with one atomic rename of `..data`
    #[command(after_help = ROTATE_HELP)]
    Rotate(RotateArgs),
}

const INIT_HELP: &str = "\
DIR (default .run/live, relative to where Envoy runs) receives:
  ecds/peerguard.yaml   the ECDS discovery response: the peerguard filter (Wasm, or with --native
                        the dynamic module) with POLICY
  sds/server.yaml       the SDS secret naming server-certs/cert.pem and key.pem
  server-certs/         cert.pem and key.pem behind a ..data symlink (a Kubernetes Secret's layout)

Envoy's `peerguard` filter must take its config by ECDS from that file, with the build's type URL
in `config_discovery.type_urls` (envoy/live-reload.yaml allows both builds). The native build is
libpeerguard_native.so, which Envoy loads from the directory in ENVOY_DYNAMIC_MODULES_SEARCH_PATH.

Examples (from the repository root; envoy/live-reload.yaml reads .run/live):
  peerguard live init --policy envoy/policy.yaml
  envoy -c envoy/live-reload.yaml --disable-hot-restart

  peerguard live init --native --policy envoy/policy.yaml
  ENVOY_DYNAMIC_MODULES_SEARCH_PATH=dist envoy -c envoy/live-reload.yaml --disable-hot-restart";

const RELOAD_HELP: &str = "\
The policy is loaded and compiled as the filter will (every error with its JSON path); if it
fails, nothing is written and Envoy keeps the policy it runs (exit code 2). New requests get the
new policy within about a second; requests already running finish under the old one.

The build in DIR/ecds/peerguard.yaml is kept: a Wasm file gets a Wasm reload (without --wasm,
with the module path it names), a native file (`live init --native`) a native one. --wasm on a
native file is refused (exit code 2): run `peerguard live init` to change builds.

Examples:
  peerguard live reload my-policy.yaml
  peerguard live reload --dir /etc/peerguard/live my-policy.json";

const ROTATE_HELP: &str = "\
CERT is the server certificate chain (PEM, leaf first), KEY its private key (PEM). Both are
checked (the key must belong to the leaf) before anything is written; then they go into a new
..gen-N directory and one rename of the ..data link switches Envoy to both at once.

Example:
  peerguard live rotate new-server.pem new-server-key.pem
  curl -s localhost:9911/certs | grep serial_number";

/// The default of `--dir`: where `envoy/live-reload.yaml` looks, relative to the repository root.
pub const DEFAULT_DIR: &str = ".run/live";
/// The default module path written into the ECDS file (relative to where Envoy runs).
pub const DEFAULT_WASM: &str = "dist/peerguard.wasm";

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Directory Envoy watches (ecds/, sds/ and server-certs/ inside)
    #[arg(long, default_value = DEFAULT_DIR)]
    pub dir: PathBuf,
    /// Policy document, YAML or JSON
    #[arg(long, default_value = "envoy/policy.yaml")]
    pub policy: PathBuf,
    /// Server certificate chain (PEM)
    #[arg(long, value_name = "PEM", default_value = "envoy/certs/server.pem")]
    pub cert: PathBuf,
    /// Server private key (PEM)
    #[arg(long, value_name = "PEM", default_value = "envoy/certs/server-key.pem")]
    pub key: PathBuf,
    /// Wasm module path as Envoy should open it (relative paths resolve against Envoy's working
    /// directory) [default: dist/peerguard.wasm]
    #[arg(long)]
    pub wasm: Option<String>,
    /// Run the native build (libpeerguard_native.so as an Envoy dynamic module, loaded from
    /// ENVOY_DYNAMIC_MODULES_SEARCH_PATH) instead of the Wasm module
    #[arg(long, conflicts_with = "wasm")]
    pub native: bool,
}

#[derive(Debug, Args)]
pub struct ReloadArgs {
    /// Policy document, YAML or JSON
    pub policy: PathBuf,
    /// Directory Envoy watches (as given to `live init`)
    #[arg(long, default_value = DEFAULT_DIR)]
    pub dir: PathBuf,
    /// Wasm module path as Envoy should open it; default: the one already in the ECDS file.
    /// Refused when the ECDS file runs the native build
    #[arg(long)]
    pub wasm: Option<String>,
    /// Write the policy even if it does not compile: the filter then answers every request with
    /// 503 config_invalid until a valid policy arrives (to see fail-closed behaviour)
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct RotateArgs {
    /// New server certificate chain (PEM, leaf first)
    pub cert: PathBuf,
    /// Its private key (PEM)
    pub key: PathBuf,
    /// Directory Envoy watches (as given to `live init`)
    #[arg(long, default_value = DEFAULT_DIR)]
    pub dir: PathBuf,
}

/// Runs a `live` command; returns what to print on stdout. Load warnings go to stderr.
pub fn run(cmd: &LiveCommand) -> Result<String, LiveError> {
    match cmd {
        LiveCommand::Init(a) => init(a),
        LiveCommand::Reload(a) => reload(a),
        LiveCommand::Rotate(a) => rotate(a),
    }
}

/// Which build of the filter an ECDS file runs: what [`write_ecds`] writes and `live reload`
/// keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilterBuild {
    /// The Wasm module at this path (as Envoy opens it) in Envoy's Wasm filter.
    Wasm(String),
    /// `libpeerguard_native.so` as an Envoy dynamic module, which Envoy loads from the directory
    /// in `ENVOY_DYNAMIC_MODULES_SEARCH_PATH` (README "The native build").
    Native,
}

impl FilterBuild {
    /// The HTTP filter's `typed_config` running `policy_json` in this build.
    pub fn typed_config(&self, policy_json: &str) -> Value {
        match self {
            FilterBuild::Wasm(module) => WasmFilter::new(module, policy_json).typed_config(),
            FilterBuild::Native => NativeFilter { configuration: policy_json }.typed_config(),
        }
    }

    /// The type URL Envoy's `config_discovery.type_urls` must allow for this build's ECDS file.
    pub fn type_url(&self) -> &'static str {
        match self {
            FilterBuild::Wasm(_) => WASM_TYPE_URL,
            FilterBuild::Native => NATIVE_TYPE_URL,
        }
    }

    /// What to tell the user after `live init`: the module Envoy loads and how it finds it.
    fn describe(&self) -> String {
        match self {
            FilterBuild::Wasm(module) => format!("Wasm module {module}"),
            FilterBuild::Native => format!(
                "native build: Envoy loads lib{NATIVE_MODULE_NAME}.so from the directory in {NATIVE_SEARCH_PATH_ENV}"
            ),
        }
    }
}

/// `live init`: validates the policy and the certificate, then writes the ECDS file, the
/// certificate directory and the SDS file.
pub fn init(a: &InitArgs) -> Result<String, LiveError> {
    let build = match (&a.wasm, a.native) {
        (Some(_), true) => return Err(LiveError::Usage("--native and --wasm exclude each other".into())),
        (None, true) => FilterBuild::Native,
        (Some(w), false) => FilterBuild::Wasm(w.clone()),
        (None, false) => FilterBuild::Wasm(DEFAULT_WASM.into()),
    };
    let policy = load(&a.policy)?;
    let (cert_pem, key_pem) = read_server_pair(&a.cert, &a.key)?;
    let ecds = a.dir.join("ecds").join(ECDS_FILE);
    let sds = a.dir.join("sds").join(SDS_FILE);
    write_ecds(&ecds, &policy.json, &build)?;
    let (cert, key) = rotate_cert_dir(&a.dir.join("server-certs"), &cert_pem, &key_pem)?;
    write_server_sds(&sds, &cert, &key)?;
    let mut out = format!(
        "wrote {} (policy {}, {}) and {} (certificate {})\n\
         Envoy: the `peerguard` HTTP filter takes its config by ECDS from {} (config_discovery.type_urls: [{}]), \
         the listener certificate by SDS from {}\n",
        ecds.display(),
        a.policy.display(),
        build.describe(),
        sds.display(),
        a.cert.display(),
        ecds.display(),
        build.type_url(),
        sds.display(),
    );
    if a.dir == Path::new(DEFAULT_DIR) {
        let env = match build {
            FilterBuild::Wasm(_) => String::new(),
            FilterBuild::Native => format!("{NATIVE_SEARCH_PATH_ENV}=dist "),
        };
        out.push_str(&format!(
            "next (from the repository root): {env}envoy -c envoy/live-reload.yaml --disable-hot-restart\n"
        ));
    }
    Ok(out)
}

/// `live reload`: validates the policy, then swaps the ECDS file, keeping the build it runs.
/// Nothing is written when the policy does not load (unless `force`).
pub fn reload(a: &ReloadArgs) -> Result<String, LiveError> {
    let ecds = a.dir.join("ecds").join(ECDS_FILE);
    let current = std::fs::read_to_string(&ecds).map_err(|e| {
        LiveError::Usage(format!(
            "cannot read {}: {e}; run `peerguard live init --dir {}` first, and start Envoy on it",
            ecds.display(),
            a.dir.display()
        ))
    })?;
    let build = reload_build(&ecds, &current, a.wasm.as_deref())?;
    let json = match load(&a.policy) {
        Ok(policy) => policy.json,
        Err(LiveError::Policy(e @ LoadError::Invalid { .. })) if a.force => {
            eprintln!("{e}");
            eprintln!(
                "peerguard: --force: writing it anyway; the filter answers every request with 503 config_invalid \
                 until a valid policy arrives"
            );
            crate::policy_file::unchecked_json(&a.policy).map_err(LiveError::Policy)?
        }
        Err(e) => return Err(e),
    };
    write_ecds(&ecds, &json, &build)?;
    Ok(format!("swapped {} to {}; Envoy applies it to new requests\n", ecds.display(), a.policy.display()))
}

/// The build a reload writes: the one the ECDS file at `path` (text `ecds`) runs, with `wasm` as
/// the new module path of a Wasm file. Envoy only accepts the type URLs its bootstrap allows, so
/// a reload never changes the build; `--wasm` on a native file is refused rather than ignored.
fn reload_build(path: &Path, ecds: &str, wasm: Option<&str>) -> Result<FilterBuild, LiveError> {
    let v: Option<Value> = serde_json::from_str(ecds).ok();
    let typed = v.as_ref().map(|v| &v["resources"][0]["typed_config"]);
    let type_url = typed.and_then(|t| t["@type"].as_str());
    match (type_url, wasm) {
        (Some(NATIVE_TYPE_URL), Some(_)) => Err(LiveError::Usage(format!(
            "{} runs the native build (the dynamic module lib{NATIVE_MODULE_NAME}.so), and --wasm names a \
             Wasm module; a reload keeps the build (drop --wasm), `peerguard live init --dir {} --wasm ...` changes it",
            path.display(),
            path.parent().and_then(Path::parent).unwrap_or(Path::new(".")).display()
        ))),
        (Some(NATIVE_TYPE_URL), None) => Ok(FilterBuild::Native),
        (_, Some(w)) => Ok(FilterBuild::Wasm(w.to_owned())),
        (Some(WASM_TYPE_URL), None) => typed
            .and_then(|t| t["config"]["vm_config"]["code"]["local"]["filename"].as_str())
            .map(|m| FilterBuild::Wasm(m.to_owned()))
            .ok_or_else(|| LiveError::Usage(format!("{} names no Wasm module; pass --wasm", path.display()))),
        (other, None) => Err(LiveError::Usage(format!(
            "{} holds neither the Wasm nor the native peerguard filter (typed_config @type {}); \
             run `peerguard live init` to write it",
            path.display(),
            other.unwrap_or("missing")
        ))),
    }
}

/// `live rotate`: checks the pair, then installs it with one rename of `..data`.
pub fn rotate(a: &RotateArgs) -> Result<String, LiveError> {
    let (cert_pem, key_pem) = read_server_pair(&a.cert, &a.key)?;
    let certs = a.dir.join("server-certs");
    if !certs.join("..data").exists() {
        return Err(LiveError::Usage(format!(
            "{} has no ..data link; run `peerguard live init --dir {}` first",
            certs.display(),
            a.dir.display()
        )));
    }
    rotate_cert_dir(&certs, &cert_pem, &key_pem)?;
    Ok(format!("rotated {} to {}\n", certs.display(), a.cert.display()))
}

/// Loads a policy and prints its load warnings.
fn load(file: &Path) -> Result<PolicyFile, LiveError> {
    let policy = PolicyFile::load(file).map_err(LiveError::Policy)?;
    policy.print_warnings();
    Ok(policy)
}

/// Reads a server certificate and key, refusing what Envoy could not serve: a certificate that
/// does not parse, a key that does not parse, or a key that is not the certificate's.
fn read_server_pair(cert: &Path, key: &Path) -> Result<(String, String), LiveError> {
    let cert_pem = std::fs::read_to_string(cert).map_err(io(cert))?;
    let key_pem = std::fs::read_to_string(key).map_err(io(key))?;
    let facts = CertFacts::from_pem(cert_pem.as_bytes())
        .map_err(|e| LiveError::Certificate(format!("{}: {e}", cert.display())))?;
    let pair = rcgen::KeyPair::from_pem(&key_pem)
        .map_err(|e| LiveError::Certificate(format!("{}: not a PEM private key: {e}", key.display())))?;
    if rcgen::PublicKeyData::subject_public_key_info(&pair) != facts.spki_der {
        return Err(LiveError::Certificate(format!(
            "{} is not the private key of {} (subject {})",
            key.display(),
            cert.display(),
            facts.subject
        )));
    }
    Ok((cert_pem, key_pem))
}

/// Writes `contents` to `path` atomically: a temp file in the same directory, then a rename. A
/// watched directory therefore sees one move and never a half-written file.
pub fn atomic_write(path: &Path, contents: &[u8]) -> Result<(), LiveError> {
    let dir = path.parent().ok_or_else(|| LiveError::Usage(format!("{} has no parent directory", path.display())))?;
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    std::fs::write(&tmp, contents).map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

fn pretty(v: &Value) -> Vec<u8> {
    // Serializing a `Value` cannot fail (its keys are strings).
    serde_json::to_vec_pretty(v).unwrap_or_default()
}

/// Writes (atomically) the ECDS discovery response that gives the `peerguard` filter this
/// policy (the plugin configuration string, as [`PolicyFile::json`]) in this build. Envoy watching
/// the directory applies it to new streams; streams already running finish under the policy they
/// started with. Nothing is checked here: [`reload`] checks the policy first.
pub fn write_ecds(path: &Path, policy_json: &str, build: &FilterBuild) -> Result<(), LiveError> {
    let doc = json!({
        "resources": [{
            "@type": "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig",
            "name": ECDS_RESOURCE,
            "typed_config": build.typed_config(policy_json)
        }]
    });
    atomic_write(path, &pretty(&doc))
}

/// Writes (atomically) the SDS secret for the listener certificate. `cert` and `key` should be
/// symlinks through a `..data` link in their directory (see [`rotate_cert_dir`]): Envoy watches
/// that directory and reloads both files together when the link moves.
pub fn write_server_sds(path: &Path, cert: &Path, key: &Path) -> Result<(), LiveError> {
    let watched =
        cert.parent().ok_or_else(|| LiveError::Usage(format!("{} has no parent directory", cert.display())))?;
    let doc = json!({
        "resources": [{
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret",
            "name": SDS_SERVER_SECRET,
            "tls_certificate": {
                "certificate_chain": {"filename": cert.display().to_string()},
                "private_key": {"filename": key.display().to_string()},
                "watched_directory": {"path": watched.display().to_string()}
            }
        }]
    });
    atomic_write(path, &pretty(&doc))
}

/// Installs a certificate and key into `dir` the way Kubernetes updates a mounted Secret:
/// `dir/cert.pem -> ..data/cert.pem`, `dir/key.pem -> ..data/key.pem`, and `..data` points to a
/// fresh `..gen-N` directory. The switch is one atomic rename of the `..data` link, so a reader
/// never sees a new certificate with the old key. Returns the paths of `cert.pem` and `key.pem`.
pub fn rotate_cert_dir(dir: &Path, cert_pem: &str, key_pem: &str) -> Result<(PathBuf, PathBuf), LiveError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let generation = 1 + std::fs::read_dir(dir)
        .map_err(io(dir))?
        .filter_map(|e| e.ok()?.file_name().to_str()?.strip_prefix("..gen-")?.parse::<u32>().ok())
        .max()
        .unwrap_or(0);
    let gen_name = format!("..gen-{generation}");
    let gen_dir = dir.join(&gen_name);
    std::fs::create_dir(&gen_dir).map_err(io(&gen_dir))?;
    for (file, contents) in [("cert.pem", cert_pem), ("key.pem", key_pem)] {
        let path = gen_dir.join(file);
        std::fs::write(&path, contents).map_err(io(&path))?;
    }
    let tmp_link = dir.join("..data_tmp");
    // A leftover from an interrupted run; absent is the usual case.
    let _ = std::fs::remove_file(&tmp_link);
    std::os::unix::fs::symlink(&gen_name, &tmp_link).map_err(io(&tmp_link))?;
    std::fs::rename(&tmp_link, dir.join("..data")).map_err(io(&dir.join("..data")))?;
    // Keep the previous generation (a reader may still be opening it), drop older ones.
    for old in 1..generation.saturating_sub(1) {
        let _ = std::fs::remove_dir_all(dir.join(format!("..gen-{old}")));
    }
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    for (link, target) in [(&cert, "..data/cert.pem"), (&key, "..data/key.pem")] {
        if std::fs::symlink_metadata(link).is_err() {
            std::os::unix::fs::symlink(target, link).map_err(io(link))?;
        }
    }
    Ok((cert, key))
}
