//! Launches a real Envoy with an mTLS listener, optionally the peerguard wasm filter, and an echo upstream.
//!
//! The bootstrap is generated from [`EnvoyConfig`]. Listener and admin bind 127.0.0.1 port 0; the
//! real ports are read back from the admin API, so parallel tests never race for ports. Each
//! instance is started by [`Launch`]: it has a hard timeout and is killed on drop.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use peerguard_filter::envoy_config::{native_layered_runtime, stats_tags, WasmFilter};
// The ECDS/SDS files and their names are `peerguard live`'s: the tests swap policies and
// certificates the way users do.
use peerguard_cli::live::{
    write_ecds, write_server_sds, FilterBuild, ECDS_FILE, ECDS_RESOURCE, SDS_FILE, SDS_SERVER_SECRET,
};
use serde_json::{json, Value};

// The launcher, the admin client and the repository paths live in their own modules; they are
// re-exported here because the end-to-end tests import them from `envoy`.
pub use crate::admin::admin_get;
pub use crate::launcher::{default_timeout, Envoy, Launch};
pub use crate::repo::{envoy_bin, native_path, wasm_path, Build};

/// `forward_client_cert_details` of the HTTP connection manager.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardClientCert {
    Sanitize,
    ForwardOnly,
    AppendForward,
    SanitizeSet,
    AlwaysForwardOnly,
}

impl ForwardClientCert {
    fn as_str(self) -> &'static str {
        match self {
            Self::Sanitize => "SANITIZE",
            Self::ForwardOnly => "FORWARD_ONLY",
            Self::AppendForward => "APPEND_FORWARD",
            Self::SanitizeSet => "SANITIZE_SET",
            Self::AlwaysForwardOnly => "ALWAYS_FORWARD_ONLY",
        }
    }
}

/// `set_current_client_cert_details` of the HTTP connection manager.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientCertDetails {
    pub subject: bool,
    pub cert: bool,
    pub chain: bool,
    pub uri: bool,
    pub dns: bool,
}

impl ClientCertDetails {
    pub fn all() -> Self {
        Self { subject: true, cert: true, chain: true, uri: true, dns: true }
    }
}

/// Where the listener's TLS material lives.
#[derive(Debug, Clone)]
pub struct ListenerTls {
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    /// CA(s) that client certificates are validated against.
    pub trusted_ca: PathBuf,
    /// `require_client_certificate`; false by default so the filter decides on plaintext-auth.
    pub require_client_certificate: bool,
}

/// Everything that varies between Envoy instances.
#[derive(Debug, Clone)]
pub struct EnvoyConfig {
    /// Upstream (echo server) port on 127.0.0.1.
    pub upstream_port: u16,
    /// TLS on the listener; `None` for a plaintext listener.
    pub tls: Option<ListenerTls>,
    /// The policy JSON handed to the filter as its plugin configuration; `None` = no wasm filter.
    pub policy: Option<String>,
    /// The wasm module; defaults to [`wasm_path`] when a policy is set.
    pub wasm: Option<PathBuf>,
    /// Which build runs the policy; `None` is `PEERGUARD_BUILD` ([`Build::from_env`]), so that
    /// `just test` runs every end-to-end test against both builds.
    pub build: Option<Build>,
    pub forward_client_cert: ForwardClientCert,
    pub client_cert_details: ClientCertDetails,
    /// Envoy's `-l` log level.
    pub log_level: String,
    /// Extra `--component-log-level`, e.g. `wasm:debug`.
    pub component_log_level: Option<String>,
    /// Hard limit on this instance's lifetime.
    pub timeout: Duration,
    /// Deliver the filter's configuration by ECDS from `<dir>/peerguard.yaml` (directory watched),
    /// instead of inline, so [`write_ecds`] can swap the policy while Envoy runs.
    pub ecds_dir: Option<PathBuf>,
    /// Deliver the server certificate by SDS from `<dir>/server.yaml`; the certificate and key
    /// files are then watched through their parent directory, so [`peerguard_cli::live::rotate_cert_dir`] can swap
    /// them while Envoy runs.
    pub sds_dir: Option<PathBuf>,
    /// `trust_chain_verification: ACCEPT_UNTRUSTED` on the listener: Envoy completes the handshake
    /// with any client certificate (expired, unknown CA) and leaves the verdict to the filter.
    pub accept_untrusted_client_certs: bool,
    /// Routes tried, in order, before the catch-all route to `upstream_port` (see [`ExtraRoute`]).
    pub extra_routes: Vec<ExtraRoute>,
}

/// Name of the header each route adds when [`EnvoyConfig::extra_routes`] is set, so that the
/// upstream reports which route Envoy chose (`default` for the catch-all route).
pub const ROUTE_MARKER_HEADER: &str = "x-peerguard-e2e-route";

/// A route before the catch-all one: a path starting with `prefix` goes to the echo upstream on
/// 127.0.0.1:`upstream_port` (cluster `route-<name>`), and the route adds
/// [`ROUTE_MARKER_HEADER`]`: <name>`.
#[derive(Debug, Clone)]
pub struct ExtraRoute {
    pub name: String,
    pub prefix: String,
    pub upstream_port: u16,
}

impl EnvoyConfig {
    /// An mTLS listener (client cert optional), SANITIZE_SET with every XFCC detail, no filter.
    pub fn new(upstream_port: u16, tls: Option<ListenerTls>) -> Self {
        Self {
            upstream_port,
            tls,
            policy: None,
            wasm: None,
            build: None,
            forward_client_cert: ForwardClientCert::SanitizeSet,
            client_cert_details: ClientCertDetails::all(),
            log_level: "info".into(),
            component_log_level: None,
            timeout: default_timeout(),
            ecds_dir: None,
            sds_dir: None,
            accept_untrusted_client_certs: false,
            extra_routes: Vec::new(),
        }
    }

    /// Adds a route before the catch-all one (see [`ExtraRoute`]).
    pub fn with_route(mut self, name: &str, prefix: &str, upstream_port: u16) -> Self {
        self.extra_routes.push(ExtraRoute { name: name.into(), prefix: prefix.into(), upstream_port });
        self
    }

    /// Lets Envoy accept client certificates that fail its own validation (see
    /// [`EnvoyConfig::accept_untrusted_client_certs`]), so the filter's certificate checks are what decides.
    pub fn with_accept_untrusted_client_certs(mut self) -> Self {
        self.accept_untrusted_client_certs = true;
        self
    }

    /// Delivers the policy by ECDS from files in `dir` (see [`EnvoyConfig::ecds_dir`]).
    pub fn with_ecds(mut self, dir: &Path) -> Self {
        self.ecds_dir = Some(dir.to_path_buf());
        self
    }

    /// Delivers the server certificate by SDS from files in `dir` (see [`EnvoyConfig::sds_dir`]).
    pub fn with_sds(mut self, dir: &Path) -> Self {
        self.sds_dir = Some(dir.to_path_buf());
        self
    }

    fn wasm_file(&self) -> Result<PathBuf> {
        match &self.wasm {
            Some(p) => Ok(p.clone()),
            None => wasm_path(),
        }
    }

    /// The build this instance runs ([`EnvoyConfig::build`], else `PEERGUARD_BUILD`).
    pub fn build(&self) -> Result<Build> {
        self.build.map_or_else(Build::from_env, Ok)
    }

    /// The chosen build as `peerguard live` writes it: the Wasm module's path, or the native
    /// module (which must be built: Envoy finds it through the launcher's search path).
    pub fn filter_build(&self) -> Result<FilterBuild> {
        match self.build()? {
            Build::Wasm => Ok(FilterBuild::Wasm(self.wasm_file()?.display().to_string())),
            Build::Native => {
                native_path()?;
                Ok(FilterBuild::Native)
            }
        }
    }

    /// Writes the files the ECDS and SDS sources read at startup; call before [`Envoy::start`].
    pub fn write_dynamic_files(&self) -> Result<()> {
        if let (Some(dir), Some(policy)) = (&self.ecds_dir, &self.policy) {
            write_ecds(&dir.join(ECDS_FILE), policy, &self.filter_build()?)?;
        }
        if let (Some(dir), Some(tls)) = (&self.sds_dir, &self.tls) {
            write_server_sds(&dir.join(SDS_FILE), &tls.server_cert, &tls.server_key)?;
        }
        Ok(())
    }

    /// Adds the peerguard filter with this policy (a JSON string).
    pub fn with_policy(mut self, policy_json: &str) -> Self {
        self.policy = Some(policy_json.to_string());
        self
    }

    /// Runs this build whatever `PEERGUARD_BUILD` says.
    pub fn with_build(mut self, build: Build) -> Self {
        self.build = Some(build);
        self
    }

    pub fn with_wasm(mut self, wasm: &Path) -> Self {
        self.wasm = Some(wasm.to_path_buf());
        self
    }

    pub fn with_forward_client_cert(mut self, fcc: ForwardClientCert) -> Self {
        self.forward_client_cert = fcc;
        self
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The bootstrap as a JSON value (Envoy reads it as YAML).
    pub fn bootstrap(&self) -> Result<Value> {
        let mut http_filters = Vec::new();
        if let (Some(_), Some(dir)) = (&self.policy, &self.ecds_dir) {
            // The filter's config comes from ECDS; the listener warms until the file is read.
            http_filters.push(json!({
                "name": ECDS_RESOURCE,
                "config_discovery": {
                    "config_source": watched_file_source(&dir.join(ECDS_FILE), dir),
                    "type_urls": [self.filter_build()?.type_url()]
                }
            }));
        } else if let Some(policy) = &self.policy {
            http_filters.push(json!({
                "name": "envoy.filters.http.wasm",
                "typed_config": self.filter_build()?.typed_config(policy)
            }));
        }
        http_filters.push(json!({
            "name": "envoy.filters.http.router",
            "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}
        }));
        let d = self.client_cert_details;
        let hcm = json!({
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                "stat_prefix": "peerguard",
                "forward_client_cert_details": self.forward_client_cert.as_str(),
                "set_current_client_cert_details": {
                    "subject": d.subject, "cert": d.cert, "chain": d.chain, "uri": d.uri, "dns": d.dns
                },
                // Envoy's own path normalization stays OFF here, explicitly (these are also the
                // defaults): the shipped configs turn all three on as a second layer under the
                // filter, but with them on, Envoy would rewrite or refuse `/a/../b`, `//admin` or
                // `%2F` before the filter runs, and the end-to-end tests would test Envoy instead
                // of peerguard's own `pathNormalization` (PRODUCT.md, "Paths").
                "normalize_path": false,
                "merge_slashes": false,
                "path_with_escaped_slashes_action": "KEEP_UNCHANGED",
                "route_config": {
                    "name": "local",
                    "virtual_hosts": [{
                        "name": "all",
                        "domains": ["*"],
                        "routes": self.routes()
                    }]
                },
                "http_filters": http_filters
            }
        });
        let mut chain = json!({"filters": [hcm]});
        if let Some(tls) = &self.tls {
            chain["transport_socket"] =
                downstream_tls(&tls.server_cert, &tls.server_key, &tls.trusted_ca, tls.require_client_certificate);
            if self.accept_untrusted_client_certs {
                chain["transport_socket"]["typed_config"]["common_tls_context"]["validation_context"]
                    ["trust_chain_verification"] = json!("ACCEPT_UNTRUSTED");
            }
            if let Some(dir) = &self.sds_dir {
                let ctx = &mut chain["transport_socket"]["typed_config"]["common_tls_context"];
                if let Some(o) = ctx.as_object_mut() {
                    o.remove("tls_certificates");
                }
                ctx["tls_certificate_sds_secret_configs"] = json!([{
                    "name": SDS_SERVER_SECRET,
                    "sds_config": watched_file_source(&dir.join(SDS_FILE), dir)
                }]);
            }
        }
        let mut boot = json!({
            "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
            // xDS from files (ECDS, SDS) requires a node id and cluster.
            "node": {"id": "peerguard-e2e", "cluster": "peerguard-e2e"},
            "stats_config": {"stats_tags": stats_tags()},
            "static_resources": {
                "listeners": [{
                    "name": "peerguard",
                    "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
                    "filter_chains": [chain]
                }],
                "clusters": self.clusters()
            }
        });
        if self.policy.is_some() && self.build()? == Build::Native {
            // The Wasm build's metric names in Prometheus (envoy_config::NATIVE_STRIP_PREFIX_FLAG).
            boot["layered_runtime"] = native_layered_runtime();
        }
        Ok(boot)
    }

    /// The routes: [`EnvoyConfig::extra_routes`] in order, then the catch-all route to `upstream`.
    /// With extra routes, every route marks the request with [`ROUTE_MARKER_HEADER`].
    fn routes(&self) -> Value {
        let marker = |name: &str| {
            json!([{"header": {"key": ROUTE_MARKER_HEADER, "value": name},
            "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}])
        };
        let mut routes: Vec<Value> = self
            .extra_routes
            .iter()
            .map(|r| {
                json!({"name": r.name, "match": {"prefix": r.prefix},
                    "route": {"cluster": format!("route-{}", r.name)}, "request_headers_to_add": marker(&r.name)})
            })
            .collect();
        let mut default = json!({"name": "default", "match": {"prefix": "/"}, "route": {"cluster": "upstream"}});
        if !self.extra_routes.is_empty() {
            default["request_headers_to_add"] = marker("default");
        }
        routes.push(default);
        Value::Array(routes)
    }

    /// The clusters: `upstream` (the catch-all route's) and one per extra route.
    fn clusters(&self) -> Value {
        let cluster = |name: String, port: u16| {
            json!({
                "name": name,
                "type": "STATIC",
                "connect_timeout": "2s",
                "load_assignment": {
                    "cluster_name": name,
                    "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {
                        "address": "127.0.0.1", "port_value": port
                    }}}}]}]
                }
            })
        };
        let mut clusters = vec![cluster("upstream".into(), self.upstream_port)];
        clusters.extend(self.extra_routes.iter().map(|r| cluster(format!("route-{}", r.name), r.upstream_port)));
        Value::Array(clusters)
    }

    /// The bootstrap rendered as YAML.
    pub fn bootstrap_yaml(&self) -> Result<String> {
        serde_yaml::to_string(&self.bootstrap()?).context("render bootstrap YAML")
    }
}

/// A `ConfigSource` reading `file`, reloaded whenever a file is moved into `dir`.
fn watched_file_source(file: &Path, dir: &Path) -> Value {
    json!({"path_config_source": {
        "path": file.display().to_string(),
        "watched_directory": {"path": dir.display().to_string()}
    }})
}

/// A listener's TLS transport socket from files: the server's certificate and key, and the CA
/// that client certificates must chain to (demanded when `require_client_certificate`). The e2e
/// launcher, the differential test and the bench all terminate mTLS with it.
pub fn downstream_tls(cert: &Path, key: &Path, trusted_ca: &Path, require_client_certificate: bool) -> Value {
    json!({
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
            "require_client_certificate": require_client_certificate,
            "common_tls_context": {
                "tls_certificates": [{
                    "certificate_chain": {"filename": cert.display().to_string()},
                    "private_key": {"filename": key.display().to_string()}
                }],
                "validation_context": {"trusted_ca": {"filename": trusted_ca.display().to_string()}}
            }
        }
    })
}

/// The body of the wasm HTTP filter config that runs peerguard with `policy` (a JSON string): the
/// filter's own [`WasmFilter`], which `peerguard render envoy` and the bench use too.
pub fn wasm_filter_config(wasm: &Path, policy: &str) -> Value {
    WasmFilter::new(&wasm.display().to_string(), policy).typed_config()
}

impl Envoy {
    /// Writes the bootstrap of `config` into `workdir`, starts Envoy and waits until it is ready.
    pub fn start(config: &EnvoyConfig, workdir: &Path) -> Result<Self> {
        let yaml = config.bootstrap_yaml()?;
        Self::start_yaml(&yaml, workdir, config.timeout, &config.log_level, config.component_log_level.as_deref())
    }

    /// Starts Envoy on any bootstrap (YAML or JSON text), written to `workdir/envoy.yaml`, through
    /// [`Launch`] (hard timeout, cleanup by PID, readiness wait). Listeners should bind port 0;
    /// [`Envoy::port`] is the first one's, [`Envoy::listener_ports`] has them all. No listener is an error.
    pub fn start_yaml(
        bootstrap: &str,
        workdir: &Path,
        timeout: Duration,
        log_level: &str,
        component_log_level: Option<&str>,
    ) -> Result<Self> {
        let envoy = Launch::new(workdir)
            .timeout(timeout)
            .log_level(log_level)
            .component_log_level(component_log_level)
            .start_bootstrap("envoy.yaml", bootstrap)?;
        if envoy.port() == 0 {
            bail!("Envoy has no listener; config {}; log tail:\n{}", envoy.config_path().display(), envoy.log_tail(40));
        }
        Ok(envoy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootstrap_without_policy_has_only_the_router() {
        let cfg = EnvoyConfig::new(1234, None);
        let v = cfg.bootstrap().unwrap();
        let filters =
            &v["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"];
        assert_eq!(filters.as_array().unwrap().len(), 1);
        assert!(cfg.bootstrap_yaml().unwrap().contains("envoy.filters.http.router"));
    }

    #[test]
    fn bootstrap_with_policy_embeds_the_json_as_a_string_value() {
        let cfg = EnvoyConfig::new(1234, None)
            .with_policy(r#"{"mtls":"strict"}"#)
            .with_wasm(Path::new("/x/peerguard.wasm"))
            .with_build(Build::Wasm);
        let v = cfg.bootstrap().unwrap();
        let wasm = &v["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
            ["http_filters"][0]["typed_config"]["config"];
        assert_eq!(wasm["configuration"]["value"], r#"{"mtls":"strict"}"#);
        assert_eq!(wasm["vm_config"]["code"]["local"]["filename"], "/x/peerguard.wasm");
    }

    #[test]
    fn bootstrap_keeps_envoys_path_normalization_off_so_the_filter_is_what_is_tested() {
        let v = EnvoyConfig::new(1234, None).bootstrap().unwrap();
        let hcm = &v["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"];
        assert_eq!(hcm["normalize_path"], false);
        assert_eq!(hcm["merge_slashes"], false);
        assert_eq!(hcm["path_with_escaped_slashes_action"], "KEEP_UNCHANGED");
    }

    #[test]
    fn extra_routes_come_before_the_catch_all_route_and_mark_the_request() {
        let v = EnvoyConfig::new(1234, None).with_route("b", "/b", 5678).bootstrap().unwrap();
        let hcm = &v["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"];
        let routes = &hcm["route_config"]["virtual_hosts"][0]["routes"];
        assert_eq!(routes[0]["match"]["prefix"], "/b");
        assert_eq!(routes[0]["route"]["cluster"], "route-b");
        assert_eq!(routes[0]["request_headers_to_add"][0]["header"]["value"], "b");
        assert_eq!(routes[1]["match"]["prefix"], "/");
        assert_eq!(routes[1]["request_headers_to_add"][0]["header"]["value"], "default");
        let clusters = &v["static_resources"]["clusters"];
        assert_eq!(clusters[1]["name"], "route-b");
        assert_eq!(
            clusters[1]["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]
                ["port_value"],
            5678
        );
    }
}
