//! Envoy configs in the shape istiod generates for a sidecar with a peerguard WasmPlugin.
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

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use peerguard_filter::envoy_config::WasmFilter;
use serde_json::{json, Value};

/// A WasmPlugin as istiod would deliver it to this proxy.
#[derive(Debug, Clone)]
pub struct WasmPlugin {
    pub namespace: String,
    pub name: String,
    /// `spec.pluginName`: becomes `root_id`.
    pub plugin_name: String,
    /// The module as istio-agent stores it after pulling the image.
    pub wasm: PathBuf,
    /// `spec.pluginConfig`, serialized to JSON by istiod.
    pub plugin_config: Value,
    /// `vm_config.configuration` (the filter's VM options), as a JSON string.
    pub vm_configuration: Option<String>,
}

impl WasmPlugin {
    /// The HTTP filter, as istiod renders it into the inbound chain (phase AUTHZ, FAIL_CLOSE):
    /// named `NAMESPACE.NAME`, no VM id, built by the filter's own [`WasmFilter`].
    pub fn http_filter(&self) -> Value {
        let name = format!("{}.{}", self.namespace, self.name);
        let wasm = self.wasm.display().to_string();
        let config = self.plugin_config.to_string();
        let filter = WasmFilter {
            name: &name,
            root_id: &self.plugin_name,
            vm_id: None,
            wasm: &wasm,
            configuration: &config,
            vm_configuration: self.vm_configuration.as_deref(),
        };
        filter.http_filter(&name)
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

/// What the inbound HCM puts into XFCC (Istio: Subject, URI, DNS).
#[derive(Debug, Clone, Copy)]
pub struct Xfcc {
    pub cert: bool,
}

/// The inbound listener (`virtualInbound`) for an app port, with the Wasm filter if any.
pub fn inbound_listener(
    listen: SocketAddr,
    app_port: u16,
    trust_domain: &str,
    plugin: Option<&WasmPlugin>,
    xfcc: Xfcc,
) -> Value {
    let mut filters = Vec::new();
    if let Some(p) = plugin {
        filters.push(p.http_filter());
    }
    filters.push(json!({"name": "envoy.filters.http.router", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}));
    let cluster = format!("inbound|{app_port}||");
    json!({
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
    })
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
