//! Envoy configs in the shape istiod generates for a sidecar with a peerguard WasmPlugin (or,
//! for the native build, the filter an EnvoyFilter inserts).
//!
//! What is Istio's: the listener and cluster names (`virtualInbound`, `inbound|8080||`,
//! `outbound|8080||api.mesh.svc.cluster.local`), the workload certificate and root CA as the SDS
//! secrets `default` and `ROOTCA`, SPIFFE SAN matching through `combined_validation_context`,
//! `require_client_certificate` under STRICT, the inbound HCM with `APPEND_FORWARD` and
//! Subject, URI and DNS in `set_current_client_cert_details`, and the Wasm filter as istiod
//! renders a WasmPlugin: named `NAMESPACE.NAME`, `root_id` = `pluginName`, the V8 runtime, and
//! `pluginConfig` as a JSON `google.protobuf.StringValue`. What is not: istiod sends the Wasm
//! filter by ECDS and the secrets by SDS from istio-agent, and the agent rewrites the `oci://`
//! URL to a local file; here they are static, with the same contents.
//!
//! The native build has no Istio resource of its own: an `EnvoyFilter` inserts its
//! `DynamicModuleFilter` before the router (`INSERT_BEFORE envoy.filters.http.router`) and, since
//! the native build reads the certificate only from the digest-bound XFCC element (README "The
//! native build"), also merges `set_current_client_cert_details: {cert: true}` into the inbound
//! HCM ([`Xfcc::for_build`]). Envoy finds the module through `ENVOY_DYNAMIC_MODULES_SEARCH_PATH`,
//! which [`crate::sidecar::RawEnvoy`] sets like every launcher here.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use peerguard_filter::envoy_config::{NativeFilter, WasmFilter};
use serde_json::{json, Value};

use crate::repo::{native_path, wasm_path, Build};

/// peerguard as Istio delivers it to this proxy: a WasmPlugin (or TrafficExtension, rendered the
/// same) for the Wasm build, an EnvoyFilter for the native build.
#[derive(Debug, Clone)]
pub struct Plugin {
    pub namespace: String,
    pub name: String,
    /// `spec.pluginName`: becomes `root_id` (Wasm build).
    pub plugin_name: String,
    /// The module as istio-agent stores it after pulling the image (Wasm build); `None` is
    /// [`wasm_path`].
    pub wasm: Option<PathBuf>,
    /// `spec.pluginConfig`, serialized to JSON by istiod (for the native build, the
    /// `filter_config` the EnvoyFilter carries: the same policy JSON).
    pub plugin_config: Value,
    /// `vm_config.configuration` (the Wasm filter's VM options), as a JSON string. The native
    /// build has none: setting it there is an error, never silently dropped.
    pub vm_configuration: Option<String>,
    /// Which build runs the policy; `None` is `PEERGUARD_BUILD` ([`Build::from_env`]).
    pub build: Option<Build>,
}

impl Plugin {
    /// The build this plugin renders ([`Plugin::build`], else `PEERGUARD_BUILD`).
    pub fn build(&self) -> Result<Build> {
        self.build.map_or_else(Build::from_env, Ok)
    }

    /// The filter's name in the chain: `NAMESPACE.NAME`, as istiod names a WasmPlugin's filter
    /// (the EnvoyFilter of the native build names its filter the same way, so that logs and
    /// config dumps read alike).
    pub fn filter_name(&self) -> String {
        format!("{}.{}", self.namespace, self.name)
    }

    /// The HTTP filter for the inbound chain, before the router. Wasm: as istiod renders a
    /// WasmPlugin (phase AUTHZ, FAIL_CLOSE): no VM id, built by the filter's own [`WasmFilter`].
    /// Native: the EnvoyFilter's patch value, the filter's own [`NativeFilter`] with the same
    /// policy JSON. A missing module is an error.
    pub fn http_filter(&self) -> Result<Value> {
        let name = self.filter_name();
        let config = self.plugin_config.to_string();
        match self.build()? {
            Build::Wasm => {
                let wasm = match &self.wasm {
                    Some(p) => p.clone(),
                    None => wasm_path()?,
                };
                let wasm = wasm.display().to_string();
                let filter = WasmFilter {
                    name: &name,
                    root_id: &self.plugin_name,
                    vm_id: None,
                    wasm: &wasm,
                    configuration: &config,
                    vm_configuration: self.vm_configuration.as_deref(),
                };
                Ok(filter.http_filter(&name))
            }
            Build::Native => {
                if let Some(vm) = &self.vm_configuration {
                    bail!("{name}: the native build has no Wasm VM options ({vm}); run this with Build::Wasm");
                }
                native_path()?;
                Ok(NativeFilter { configuration: &config }.http_filter(&name))
            }
        }
    }
}

/// The workload's certificate material (what istio-agent serves over SDS).
#[derive(Debug, Clone)]
pub struct Workload {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub root_ca: PathBuf,
}

/// The static SDS secrets `default` and `ROOTCA`.
pub fn secrets(w: &Workload) -> Value {
    json!([
        {"name": "default", "tls_certificate": {
            "certificate_chain": {"filename": w.cert.display().to_string()},
            "private_key": {"filename": w.key.display().to_string()}}},
        {"name": "ROOTCA", "validation_context": {"trusted_ca": {"filename": w.root_ca.display().to_string()}}}
    ])
}

fn sock(a: SocketAddr) -> Value {
    json!({"socket_address": {"address": a.ip().to_string(), "port_value": a.port()}})
}

/// What the inbound HCM puts into XFCC besides Subject, URI and DNS (Istio's default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Xfcc {
    /// `cert` and `chain`: the URL-encoded PEM certificate and chain.
    pub cert: bool,
}

impl Xfcc {
    /// Istio's default: Subject, URI and DNS, no certificate.
    pub const ISTIO_DEFAULT: Xfcc = Xfcc { cert: false };

    /// What the inbound HCM sets when `build` runs peerguard: Istio's default for the Wasm
    /// build; for the native build, which reads the certificate only from the XFCC element bound
    /// to the connection's digest, the EnvoyFilter also sets `cert` (and `chain`).
    pub fn for_build(build: Build) -> Xfcc {
        match build {
            Build::Wasm => Xfcc::ISTIO_DEFAULT,
            Build::Native => Xfcc { cert: true },
        }
    }
}

/// The inbound listener (`virtualInbound`) for an app port, with peerguard (if any) before the
/// router.
pub fn inbound_listener(
    listen: SocketAddr,
    app_port: u16,
    trust_domain: &str,
    plugin: Option<&Plugin>,
    xfcc: Xfcc,
) -> Result<Value> {
    let mut filters = Vec::new();
    if let Some(p) = plugin {
        filters.push(p.http_filter()?);
    }
    filters.push(json!({"name": "envoy.filters.http.router", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}));
    let cluster = format!("inbound|{app_port}||");
    Ok(json!({
        "name": "virtualInbound",
        "address": sock(listen),
        "traffic_direction": "INBOUND",
        "listener_filters": [{"name": "envoy.filters.listener.tls_inspector",
            "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector"}}],
        "filter_chains": [{
            "name": format!("0.0.0.0_{app_port}"),
            "filter_chain_match": {"transport_protocol": "tls"},
            "transport_socket": {
                "name": "envoy.transport_sockets.tls",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
                    "require_client_certificate": true,
                    "common_tls_context": {
                        "alpn_protocols": ["h2", "http/1.1"],
                        "tls_params": {"tls_minimum_protocol_version": "TLSv1_2"},
                        "tls_certificate_sds_secret_configs": [{"name": "default"}],
                        "combined_validation_context": {
                            "default_validation_context": {"match_typed_subject_alt_names": [
                                {"san_type": "URI", "matcher": {"prefix": format!("spiffe://{trust_domain}/")}}]},
                            "validation_context_sds_secret_config": {"name": "ROOTCA"}
                        }
                    }
                }
            },
            "filters": [{
                "name": "envoy.filters.network.http_connection_manager",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                    "stat_prefix": format!("inbound_0.0.0.0_{app_port}"),
                    "forward_client_cert_details": "APPEND_FORWARD",
                    "set_current_client_cert_details": {"subject": true, "uri": true, "dns": true, "cert": xfcc.cert, "chain": xfcc.cert},
                    "route_config": {
                        "name": cluster,
                        "virtual_hosts": [{"name": format!("inbound|http|{app_port}"), "domains": ["*"],
                            "routes": [{"name": "default", "match": {"prefix": "/"}, "route": {"cluster": cluster}}]}]
                    },
                    "http_filters": filters
                }
            }]
        }]
    }))
}

/// `inbound|PORT||`: the app behind the sidecar.
pub fn inbound_cluster(app: SocketAddr) -> Value {
    inbound_cluster_for(app.port(), app)
}

/// `inbound|SERVICE_PORT||`: the app behind the sidecar, named after the service port (as
/// [`inbound_listener`] routes to it) while the app itself listens on `app`.
pub fn inbound_cluster_for(service_port: u16, app: SocketAddr) -> Value {
    let name = format!("inbound|{service_port}||");
    json!({
        "name": name, "type": "STATIC", "connect_timeout": "2s",
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [{"endpoint": {"address": sock(app)}}]}]}
    })
}

/// A destination of the outbound listener: a service and its identity.
#[derive(Debug, Clone)]
pub struct Destination {
    /// Short host name the app uses, e.g. `api`.
    pub host: String,
    /// FQDN as in the cluster name, e.g. `api.mesh.svc.cluster.local`.
    pub fqdn: String,
    pub port: u16,
    /// The peer sidecar's inbound address.
    pub inbound: SocketAddr,
    /// The SPIFFE ID the server must present.
    pub spiffe: String,
}

impl Destination {
    pub fn cluster_name(&self) -> String {
        format!("outbound|{}||{}", self.port, self.fqdn)
    }
}

/// The outbound HTTP listener the app sends plaintext to; routes by Host to the destinations.
pub fn outbound_listener(listen: SocketAddr, dests: &[Destination]) -> Value {
    let vhosts: Vec<Value> = dests
        .iter()
        .map(|d| {
            json!({"name": format!("{}:{}", d.fqdn, d.port),
                "domains": [d.host, format!("{}:{}", d.host, d.port), d.fqdn, format!("{}:{}", d.fqdn, d.port)],
                "routes": [{"name": "default", "match": {"prefix": "/"}, "route": {"cluster": d.cluster_name()}}]})
        })
        .collect();
    json!({
        "name": "virtualOutbound",
        "address": sock(listen),
        "traffic_direction": "OUTBOUND",
        "filter_chains": [{"filters": [{
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                "stat_prefix": "outbound_0.0.0.0_8080",
                "route_config": {"name": "8080", "virtual_hosts": vhosts},
                "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]
            }
        }]}]
    })
}

/// `outbound|PORT||FQDN`: mTLS to the destination's sidecar with this workload's certificate.
pub fn outbound_cluster(d: &Destination) -> Value {
    let name = d.cluster_name();
    json!({
        "name": name, "type": "STATIC", "connect_timeout": "2s",
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [{"endpoint": {"address": sock(d.inbound)}}]}]},
        "transport_socket": {
            "name": "envoy.transport_sockets.tls",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
                "sni": format!("outbound_.{}_._.{}", d.port, d.fqdn),
                "common_tls_context": {
                    "tls_certificate_sds_secret_configs": [{"name": "default"}],
                    "combined_validation_context": {
                        "default_validation_context": {"match_typed_subject_alt_names": [
                            {"san_type": "URI", "matcher": {"exact": d.spiffe}}]},
                        "validation_context_sds_secret_config": {"name": "ROOTCA"}
                    }
                }
            }
        }
    })
}

/// A whole sidecar bootstrap.
pub fn bootstrap(admin: SocketAddr, workload: &Workload, listeners: Vec<Value>, clusters: Vec<Value>) -> Value {
    json!({
        "admin": {"address": sock(admin)},
        "static_resources": {"listeners": listeners, "clusters": clusters, "secrets": secrets(workload)}
    })
}

/// Writes a bootstrap as YAML.
pub fn write(path: &Path, bootstrap: &Value) -> anyhow::Result<()> {
    std::fs::write(path, serde_yaml::to_string(bootstrap)?)?;
    Ok(())
}
