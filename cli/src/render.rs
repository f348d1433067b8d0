//! `peerguard render`: embed a policy file into a WasmPlugin manifest or an Envoy config, and
//! build the module's OCI image.
//!
//! The policy is validated with the engine before anything is written, so a rendered manifest
//! never carries a policy the filter would answer with `503 config_invalid`.

pub mod oci;
pub mod rbac;
pub mod trafficextension;

use std::fmt;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand, ValueEnum};
use peerguard_filter::envoy_config::{
    native_layered_runtime, stats_tags, NativeFilter, WasmFilter, DEFAULT_NAME, NATIVE_SEARCH_PATH_ENV,
};
use peerguard_policy::ConfigErrors;
use serde_json::{json, Value};

use crate::policy_file::{describe_errors, LoadError, PolicyFile};

/// Errors of `peerguard render`.
#[derive(Debug)]
#[non_exhaustive]
pub enum RenderError {
    /// The policy does not validate; every error with its path.
    Policy {
        path: PathBuf,
        errors: ConfigErrors,
    },
    /// A flag value that cannot be used.
    Usage(String),
    /// A combination of flags and policy that would let requests through unchecked.
    Unsafe(String),
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl fmt::Display for RenderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RenderError::Policy { path, errors } => f.write_str(&describe_errors(path, errors)),
            RenderError::Usage(m) | RenderError::Unsafe(m) => write!(f, "{m}"),
            RenderError::Io { path, source } => write!(f, "{}: {source}", path.display()),
        }
    }
}

impl std::error::Error for RenderError {}

impl From<LoadError> for RenderError {
    fn from(e: LoadError) -> RenderError {
        match e {
            LoadError::Read { file, source } => RenderError::Io { path: file, source },
            LoadError::Invalid { file, errors } => RenderError::Policy { path: file, errors },
        }
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RenderError + '_ {
    move |source| RenderError::Io { path: path.to_path_buf(), source }
}

/// `peerguard render ...`
#[derive(Debug, Subcommand)]
pub enum RenderCommand {
    /// An Istio WasmPlugin with the policy as pluginConfig and the module's sha256
    #[command(after_help = WASMPLUGIN_HELP)]
    Wasmplugin(WasmPluginArgs),
    /// An Istio TrafficExtension (Istio 1.30+): the WasmPlugin's settings, for sidecars, gateways or waypoints
    #[command(after_help = trafficextension::TRAFFICEXTENSION_HELP)]
    Trafficextension(trafficextension::TrafficExtensionArgs),
    /// A standalone inbound-sidecar Envoy config with the policy embedded as a StringValue
    #[command(after_help = ENVOY_HELP)]
    Envoy(EnvoyArgs),
    /// The module as an OCI image (Istio's compat Wasm format): layout directory and tar; prints the digest
    #[command(after_help = OCI_HELP)]
    Oci(OciArgs),
    /// The Envoy RBAC HTTP filters istiod would generate for the policy's Istio part
    #[command(after_help = rbac::RBAC_HELP)]
    Rbac(rbac::RbacArgs),
}

const WASMPLUGIN_HELP: &str = "\
The `sha256` field: for an oci:// URL, Istio compares it with the image's manifest digest
(pkg/wasm/cache.go), which `render` computes from --wasm by building the same deterministic image
as `render oci`; for http(s):// and file:// URLs it is the SHA-256 of the module itself.

A policy with `proxy: waypoint` (Istio ambient) is refused with --selector, which a waypoint
ignores: attach it to a Service's waypoint with `render trafficextension --waypoint-service
SERVICE`, or use --gateway WAYPOINT (docs/policy.md \"Ambient waypoints\").

Examples:
  peerguard render wasmplugin --policy istio/policy.yaml --namespace server --selector app=server \\
      --url oci://ghcr.io/example/peerguard:0.1.0 --wasm dist/peerguard.wasm > peerguard.yaml
  # On an ingress gateway (Gateway API):
  peerguard render wasmplugin --policy istio/policy.yaml --namespace istio-ingress \\
      --gateway ingress --url oci://ghcr.io/example/peerguard:0.1.0 --wasm dist/peerguard.wasm";

const ENVOY_HELP: &str = "\
The HTTP connection manager also normalizes the path, merges repeated slashes and rejects escaped
slashes (normalize_path, merge_slashes, path_with_escaped_slashes_action: REJECT_REQUEST): a
second layer under peerguard's own path checks.

--trust-chain-verification ACCEPT_UNTRUSTED lets Envoy complete the handshake with any client
certificate, so that peerguard's chain check gives a reason instead of a handshake failure. It is
refused unless the policy has certificate.trustAnchors or certificate.trustBundles: without them,
nothing checks who signed the certificate, and any self-made certificate passes.

--native runs the native build (an Envoy dynamic module, `just build-native`) instead of the Wasm
module: the same policy, decisions, counters and audit lines. Envoy loads libpeerguard_native.so
from the directory in ENVOY_DYNAMIC_MODULES_SEARCH_PATH; the module only runs on the Envoy
version it was built for (README \"The native build\").

Example:
  peerguard render envoy --policy envoy/policy.yaml > my-inbound.yaml
  envoy --mode validate -c my-inbound.yaml && envoy -c my-inbound.yaml
  peerguard render envoy --native --policy envoy/policy.yaml > my-native.yaml
  ENVOY_DYNAMIC_MODULES_SEARCH_PATH=dist envoy -c my-native.yaml";

const OCI_HELP: &str = "\
Example:
  peerguard render oci --wasm dist/peerguard.wasm --out dist/oci --tar dist/peerguard-oci.tar
  skopeo copy oci:dist/oci:0.1.0 docker://ghcr.io/example/peerguard:0.1.0";

#[derive(Debug, Args)]
pub struct WasmPluginArgs {
    /// Policy document, YAML or JSON
    #[arg(long)]
    pub policy: PathBuf,
    /// Module URL: oci://REGISTRY/REPO:TAG, https://..., or file://...
    #[arg(long)]
    pub url: String,
    /// The built module; fills in `sha256`
    #[arg(long)]
    pub wasm: Option<PathBuf>,
    /// Explicit `sha256` (overrides --wasm)
    #[arg(long)]
    pub sha256: Option<String>,
    /// metadata.name
    #[arg(long, default_value = "peerguard")]
    pub name: String,
    /// metadata.namespace
    #[arg(long)]
    pub namespace: Option<String>,
    /// spec.pluginName, the filter's root_id
    #[arg(long, default_value = "peerguard")]
    pub plugin_name: String,
    /// Workload selector label KEY=VALUE (repeatable); sidecar variant
    #[arg(long, conflicts_with = "gateway")]
    pub selector: Vec<String>,
    /// Attach to this Gateway API Gateway through targetRefs instead of a selector
    #[arg(long)]
    pub gateway: Option<String>,
    /// Write here instead of stdout
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct EnvoyArgs {
    /// Policy document, YAML or JSON
    #[arg(long)]
    pub policy: PathBuf,
    /// Module path as Envoy should open it (relative paths resolve against Envoy's working directory)
    #[arg(long, default_value = "dist/peerguard.wasm")]
    pub wasm: String,
    /// Listener address (the Istio inbound port is 15006)
    #[arg(long, default_value = "127.0.0.1:15006")]
    pub listen: String,
    /// The application behind the sidecar
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub upstream: String,
    /// Admin address
    #[arg(long, default_value = "127.0.0.1:9901")]
    pub admin: String,
    /// Server certificate chain
    #[arg(long, default_value = "envoy/certs/server.pem")]
    pub cert: String,
    /// Server key
    #[arg(long, default_value = "envoy/certs/server-key.pem")]
    pub key: String,
    /// CA that client certificates must chain to
    #[arg(long, default_value = "envoy/certs/ca.pem")]
    pub ca: String,
    /// Let the TLS handshake succeed without a client certificate, so peerguard answers
    /// `no_peer_certificate` itself (a PERMISSIVE-style listener); default is STRICT at TLS level
    #[arg(long)]
    pub optional_client_cert: bool,
    /// The listener's `trust_chain_verification`. ACCEPT_UNTRUSTED leaves the chain check to
    /// peerguard and needs `certificate.trustAnchors` or `certificate.trustBundles` in the policy
    #[arg(long, value_enum, default_value_t = TrustChainVerification::VerifyTrustChain)]
    pub trust_chain_verification: TrustChainVerification,
    /// The filter's root_id (Istio's pluginName)
    #[arg(long, default_value = "peerguard")]
    pub plugin_name: String,
    /// Run the native build (dynamic module libpeerguard_native.so, found through
    /// ENVOY_DYNAMIC_MODULES_SEARCH_PATH) instead of the Wasm module
    #[arg(long, conflicts_with_all = ["wasm", "plugin_name"])]
    pub native: bool,
    /// Write here instead of stdout
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Envoy's `CertificateValidationContext.trust_chain_verification`, spelled as in Envoy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TrustChainVerification {
    /// Envoy verifies the client certificate's chain against --ca (the default)
    #[value(name = "VERIFY_TRUST_CHAIN")]
    VerifyTrustChain,
    /// Envoy accepts any client certificate; peerguard's certificate.trustAnchors/trustBundles decide
    #[value(name = "ACCEPT_UNTRUSTED")]
    AcceptUntrusted,
}

impl TrustChainVerification {
    fn as_str(self) -> &'static str {
        match self {
            Self::VerifyTrustChain => "VERIFY_TRUST_CHAIN",
            Self::AcceptUntrusted => "ACCEPT_UNTRUSTED",
        }
    }
}

#[derive(Debug, Args)]
pub struct OciArgs {
    /// The module
    #[arg(long, default_value = "dist/peerguard.wasm")]
    pub wasm: PathBuf,
    /// OCI image layout directory (replaced)
    #[arg(long, default_value = "dist/oci")]
    pub out: PathBuf,
    /// The same layout as a tar (skopeo's oci-archive:)
    #[arg(long, default_value = "dist/peerguard-oci.tar")]
    pub tar: PathBuf,
    /// Tag recorded in index.json (org.opencontainers.image.ref.name)
    #[arg(long, default_value = env!("CARGO_PKG_VERSION"))]
    pub tag: String,
}

/// What a render produced: the text (for stdout) or a summary of files written.
pub fn run(cmd: &RenderCommand) -> Result<String, RenderError> {
    match cmd {
        RenderCommand::Wasmplugin(a) => emit(&wasmplugin(a)?, a.out.as_deref()),
        RenderCommand::Trafficextension(a) => trafficextension::run(a),
        RenderCommand::Envoy(a) => emit(&envoy(a)?, a.out.as_deref()),
        RenderCommand::Oci(a) => oci_cmd(a),
        RenderCommand::Rbac(a) => rbac::run(a),
    }
}

fn emit(text: &str, out: Option<&Path>) -> Result<String, RenderError> {
    match out {
        Some(p) => {
            std::fs::write(p, text).map_err(io(p))?;
            Ok(String::new())
        }
        None => Ok(text.to_string()),
    }
}

/// Reads a policy file with the loader every command uses ([`PolicyFile`]) and returns it as the
/// JSON the filter receives; only a policy the filter accepts is rendered. Load warnings go to stderr.
pub fn load_policy(path: &Path) -> Result<Value, RenderError> {
    let policy = PolicyFile::load(path)?;
    policy.print_warnings();
    Ok(policy.value)
}

fn yaml(v: &Value) -> Result<String, RenderError> {
    serde_yaml::to_string(v).map_err(|e| RenderError::Usage(format!("cannot render YAML: {e}")))
}

/// The `sha256` Istio expects for `url`, computed from the module bytes.
pub fn sha256_for_url(url: &str, wasm: &[u8]) -> Result<String, RenderError> {
    if url.starts_with("oci://") {
        let img = oci::build(wasm, "latest").map_err(|e| RenderError::Usage(format!("--wasm: {e}")))?;
        Ok(img.manifest_hex())
    } else {
        Ok(oci::sha256_hex(wasm))
    }
}

/// The WasmPlugin manifest as a JSON value.
pub fn wasmplugin_value(a: &WasmPluginArgs) -> Result<Value, RenderError> {
    let policy = load_policy(&a.policy)?;
    let scheme_ok = ["oci://", "http://", "https://", "file://"].iter().any(|s| a.url.starts_with(s));
    if !scheme_ok {
        return Err(RenderError::Usage(format!("--url {:?}: use oci://, https://, http:// or file://", a.url)));
    }
    let sha256 = match (&a.sha256, &a.wasm) {
        (Some(s), _) => {
            if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
                return Err(RenderError::Usage("--sha256: expected 64 lowercase hex digits".into()));
            }
            Some(s.clone())
        }
        (None, Some(w)) => Some(sha256_for_url(&a.url, &std::fs::read(w).map_err(io(w))?)?),
        (None, None) => None,
    };
    let mut metadata = json!({"name": a.name});
    if let Some(ns) = &a.namespace {
        metadata["namespace"] = ns.clone().into();
    }
    let mut spec = serde_json::Map::new();
    if let Some(gw) = &a.gateway {
        spec.insert(
            "targetRefs".into(),
            json!([{"kind": "Gateway", "group": "gateway.networking.k8s.io", "name": gw}]),
        );
    } else if !a.selector.is_empty() {
        let mut labels = serde_json::Map::new();
        for s in &a.selector {
            let (k, v) =
                s.split_once('=').ok_or_else(|| RenderError::Usage(format!("--selector {s:?}: expected KEY=VALUE")))?;
            labels.insert(k.into(), v.into());
        }
        spec.insert("selector".into(), json!({"matchLabels": labels}));
    }
    spec.insert("url".into(), a.url.clone().into());
    if let Some(s) = sha256 {
        spec.insert("sha256".into(), s.into());
    }
    spec.insert("imagePullPolicy".into(), "IfNotPresent".into());
    spec.insert("phase".into(), "AUTHZ".into());
    spec.insert("failStrategy".into(), "FAIL_CLOSE".into());
    spec.insert("pluginName".into(), a.plugin_name.clone().into());
    if a.gateway.is_none() {
        // Inbound only: peerguard authorizes the peer that calls this workload.
        spec.insert("match".into(), json!([{"mode": "SERVER"}]));
    }
    spec.insert("pluginConfig".into(), policy);
    Ok(json!({
        "apiVersion": "extensions.istio.io/v1alpha1",
        "kind": "WasmPlugin",
        "metadata": metadata,
        "spec": spec,
    }))
}

/// Refuses a `proxy: waypoint` policy attached with --selector (docs/policy.md "Ambient
/// waypoints"): a waypoint ignores `selector`, so the filter would run only in the selected
/// sidecars, where no HBONE identity exists and every request is `no_peer_certificate`.
/// `instead` says how this command attaches to a waypoint.
fn refuse_waypoint_selector(a: &WasmPluginArgs, plugin: &Value, instead: &str) -> Result<(), RenderError> {
    if plugin["spec"]["pluginConfig"]["proxy"] == "waypoint" && !a.selector.is_empty() {
        return Err(RenderError::Usage(format!(
            "{} sets `proxy: waypoint`, but --selector attaches to sidecars, and a waypoint ignores `selector`: \
             {instead}",
            a.policy.display()
        )));
    }
    Ok(())
}

fn wasmplugin(a: &WasmPluginArgs) -> Result<String, RenderError> {
    let v = wasmplugin_value(a)?;
    refuse_waypoint_selector(
        a,
        &v,
        "attach to a Service's waypoint with `peerguard render trafficextension --waypoint-service SERVICE` \
         (Istio 1.30+), or use --gateway WAYPOINT (targetRefs to the waypoint's Gateway)",
    )?;
    Ok(format!("# Rendered by `peerguard render wasmplugin` from {}\n{}", a.policy.display(), yaml(&v)?))
}

fn socket(addr: &str, flag: &str) -> Result<Value, RenderError> {
    let sa: std::net::SocketAddr =
        addr.parse().map_err(|_| RenderError::Usage(format!("{flag} {addr:?}: expected IP:PORT")))?;
    Ok(json!({"socket_address": {"address": sa.ip().to_string(), "port_value": sa.port()}}))
}

/// Whether the policy checks the chain itself: a non-empty `certificate.trustAnchors` or
/// `certificate.trustBundles` (a `certificateRules` entry only covers its own routes).
fn policy_checks_the_chain(policy: &Value) -> bool {
    let cert = &policy["certificate"];
    cert["trustAnchors"].as_array().is_some_and(|a| !a.is_empty())
        || cert["trustBundles"].as_object().is_some_and(|m| !m.is_empty())
}

/// Refuses ACCEPT_UNTRUSTED on a policy that cannot tell a real client certificate from a
/// self-made one.
fn check_trust_chain_verification(a: &EnvoyArgs, policy: &Value) -> Result<(), RenderError> {
    if a.trust_chain_verification == TrustChainVerification::AcceptUntrusted && !policy_checks_the_chain(policy) {
        return Err(RenderError::Unsafe(format!(
            "refusing --trust-chain-verification ACCEPT_UNTRUSTED: {} has neither certificate.trustAnchors nor \
             certificate.trustBundles. With ACCEPT_UNTRUSTED, Envoy completes the TLS handshake with any client \
             certificate and leaves the chain check to peerguard; without trust anchors peerguard checks no chain, \
             so any self-made certificate (any SPIFFE ID, subject or SAN the client likes) would pass. Add \
             certificate.trustAnchors (the CAs that sign your clients) or certificate.trustBundles to the policy, \
             or keep the default --trust-chain-verification VERIFY_TRUST_CHAIN so that Envoy checks the chain \
             against --ca.",
            a.policy.display()
        )));
    }
    Ok(())
}

/// The inbound-sidecar bootstrap as a JSON value.
pub fn envoy_value(a: &EnvoyArgs) -> Result<Value, RenderError> {
    let policy = load_policy(&a.policy)?;
    check_trust_chain_verification(a, &policy)?;
    let policy_json = serde_json::to_string(&policy).map_err(|e| RenderError::Usage(e.to_string()))?;
    let mut boot = json!({
        "admin": {"address": socket(&a.admin, "--admin")?},
        // The reason and policy in peerguard's counter names become Prometheus labels.
        "stats_config": {"stats_tags": stats_tags()},
        "static_resources": {
            "listeners": [{
                "name": "inbound",
                "address": socket(&a.listen, "--listen")?,
                "filter_chains": [{
                    "transport_socket": {
                        "name": "envoy.transport_sockets.tls",
                        "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
                            "require_client_certificate": !a.optional_client_cert,
                            "common_tls_context": {
                                "tls_certificates": [{
                                    "certificate_chain": {"filename": a.cert},
                                    "private_key": {"filename": a.key}
                                }],
                                "validation_context": {
                                    "trusted_ca": {"filename": a.ca},
                                    "trust_chain_verification": a.trust_chain_verification.as_str()
                                }
                            }
                        }
                    },
                    "filters": [{
                        "name": "envoy.filters.network.http_connection_manager",
                        "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                            "stat_prefix": "inbound",
                            "forward_client_cert_details": "SANITIZE_SET",
                            "set_current_client_cert_details": {"subject": true, "cert": true, "chain": true, "uri": true, "dns": true},
                            // A second layer under peerguard's own path checks: Envoy puts the path
                            // in normal form and refuses escaped slashes before any filter runs.
                            "normalize_path": true,
                            "merge_slashes": true,
                            "path_with_escaped_slashes_action": "REJECT_REQUEST",
                            "route_config": {
                                "name": "inbound",
                                "virtual_hosts": [{"name": "app", "domains": ["*"],
                                    "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "app"}}]}]
                            },
                            "http_filters": [
                                if a.native {
                                    NativeFilter { configuration: &policy_json }.http_filter(DEFAULT_NAME)
                                } else {
                                    WasmFilter::new(&a.wasm, &policy_json).named(&a.plugin_name).http_filter(DEFAULT_NAME)
                                },
                                {"name": "envoy.filters.http.router", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}
                            ]
                        }
                    }]
                }]
            }],
            "clusters": [{
                "name": "app",
                "type": "STATIC",
                "connect_timeout": "2s",
                "load_assignment": {"cluster_name": "app", "endpoints": [{"lb_endpoints": [{"endpoint": {"address": socket(&a.upstream, "--upstream")?}}]}]}
            }]
        }
    });
    if a.native {
        // Prometheus then shows the Wasm build's metric names (`peerguard_allowed`), so the
        // shipped rules and dashboard apply to either build.
        boot["layered_runtime"] = native_layered_runtime();
    }
    Ok(boot)
}

fn envoy(a: &EnvoyArgs) -> Result<String, RenderError> {
    let v = envoy_value(a)?;
    let run = if a.native {
        format!("\n# The native build: run with {NATIVE_SEARCH_PATH_ENV}=<directory of libpeerguard_native.so> (`just build-native` puts it in dist/).")
    } else {
        String::new()
    };
    Ok(format!("# Rendered by `peerguard render envoy` from {}{run}\n{}", a.policy.display(), yaml(&v)?))
}

fn oci_cmd(a: &OciArgs) -> Result<String, RenderError> {
    let wasm = std::fs::read(&a.wasm).map_err(io(&a.wasm))?;
    let img = oci::build(&wasm, &a.tag).map_err(|e| RenderError::Usage(format!("{}: {e}", a.wasm.display())))?;
    oci::write_layout(&img, &a.out, &a.tar).map_err(io(&a.out))?;
    let summary = json!({
        "layout": a.out,
        "tar": a.tar,
        "tag": a.tag,
        "manifestDigest": img.manifest.digest(),
        "pluginWasmSha256": img.wasm_sha256,
        "layerDigest": img.layer.digest(),
        "wasmPluginSha256": img.manifest_hex(),
    });
    serde_json::to_string_pretty(&summary).map(|s| s + "\n").map_err(|e| RenderError::Usage(e.to_string()))
}
