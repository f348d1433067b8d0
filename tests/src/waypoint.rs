//! Envoy configs in the shape istiod generates for an Istio ambient waypoint, and a stand-in for
//! the client's ztunnel that reaches it over HBONE.
//!
//! What is Istio's (pilot/pkg/networking/core/listener_waypoint.go, pilot/pkg/xds/filters): the
//! waypoint's `connect_terminate` listener ends the HBONE mTLS from the client's ztunnel
//! (`require_client_certificate`, the workload certificate `default` and `ROOTCA` from SDS), and
//! its HCM accepts HTTP/2 CONNECT and routes the tunnel to the internal listener `main_internal`.
//! Before routing, the `connect_authority` set_filter_state filter stores
//! `%DOWNSTREAM_PEER_URI_SAN%` as `io.istio.peer_principal` (and the waypoint's own URI SAN as
//! `io.istio.local_principal`, the CONNECT authority as the original destination), shared with
//! the upstream connection, so that they reach `main_internal`, where the HTTP filters (Istio's
//! RBAC, and a TrafficExtension's Wasm filter) run on the request inside the tunnel. That inner
//! connection is an Envoy internal connection: it has no TLS, so `connection.*_peer_certificate`
//! are empty there. What is not Istio's: istiod sends all of this by xDS and uses the factory
//! `istio.hashable_string`, which only Istio's Envoy build has; here the config is static and the
//! factory is upstream Envoy's equivalent, `envoy.hashable_string`. It must be hashable: Envoy
//! keys its upstream connection pools by the hashable filter state shared with the upstream, and
//! with a plain `envoy.string` (istiod before 1.29.2) tunnels of different clients can share one
//! connection to `main_internal` and its filter state. This file's tests with `envoy.string` saw
//! `other` served as `frontend` in two runs of three. The native build reads the same filter
//! state through the dynamic-module ABI (`get_filter_state_bytes`): Envoy answers with the
//! string of a `Router::StringAccessor` object, which an `envoy.hashable_string` is, and with
//! nothing (no peer, so a denial) for an object of another type. The ztunnel
//! stand-in is an Envoy `tcp_proxy` with `tunneling_config` (HTTP/2 CONNECT over mTLS with the
//! client workload's certificate), which is what ztunnel does on the wire.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Result;
use serde_json::{json, Value};

use crate::istio_shaped::{secrets, Plugin, Workload};

fn sock(a: SocketAddr) -> Value {
    json!({"socket_address": {"address": a.ip().to_string(), "port_value": a.port()}})
}

fn router() -> Value {
    json!({"name": "envoy.filters.http.router", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}})
}

/// One `set_filter_state` value: `key` from a format string, shared with the upstream (ONCE).
fn shared_state(key: &str, format: &str) -> Value {
    json!({
        "object_key": key,
        "factory_key": "envoy.hashable_string",
        "format_string": {"text_format_source": {"inline_string": format}},
        "shared_with_upstream": "ONCE"
    })
}

/// The `connect_terminate` listener: HBONE (mTLS + HTTP/2 CONNECT) in, the tunnel to
/// `main_internal`.
pub fn connect_terminate_listener(listen: SocketAddr) -> Value {
    json!({
        "name": "connect_terminate",
        "address": sock(listen),
        "filter_chains": [{
            "name": "default",
            "transport_socket": {
                "name": "tls",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
                    "require_client_certificate": true,
                    "common_tls_context": {
                        "alpn_protocols": ["h2"],
                        "tls_certificate_sds_secret_configs": [{"name": "default"}],
                        "validation_context_sds_secret_config": {"name": "ROOTCA"}
                    }
                }
            },
            "filters": [{
                "name": "envoy.filters.network.http_connection_manager",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                    "stat_prefix": "connect_terminate",
                    "forward_client_cert_details": "APPEND_FORWARD",
                    "set_current_client_cert_details": {"subject": true, "uri": true, "dns": true},
                    "use_remote_address": false,
                    "upgrade_configs": [{"upgrade_type": "CONNECT"}],
                    "http2_protocol_options": {"allow_connect": true},
                    "route_config": {
                        "name": "default",
                        "virtual_hosts": [{"name": "default", "domains": ["*"], "routes": [{
                            "match": {"connect_matcher": {}},
                            "route": {"cluster": "main_internal",
                                "upgrade_configs": [{"upgrade_type": "CONNECT", "connect_config": {}}]}
                        }]}]
                    },
                    "http_filters": [
                        {
                            "name": "connect_authority",
                            "typed_config": {
                                "@type": "type.googleapis.com/envoy.extensions.filters.http.set_filter_state.v3.Config",
                                "on_request_headers": [
                                    shared_state("envoy.filters.listener.original_dst.local_ip", "%REQ(:AUTHORITY)%"),
                                    shared_state("io.istio.peer_principal", "%DOWNSTREAM_PEER_URI_SAN%"),
                                    shared_state("io.istio.local_principal", "%DOWNSTREAM_LOCAL_URI_SAN%")
                                ]
                            }
                        },
                        router()
                    ]
                }
            }]
        }]
    })
}

/// `main_internal`: the internal listener where the request inside the tunnel is served, with
/// peerguard (if any: a TrafficExtension's Wasm filter, or the native build as an EnvoyFilter
/// inserts it) before the router to the app.
pub fn main_internal_listener(plugin: Option<&Plugin>, app_cluster: &str) -> Result<Value> {
    let mut filters = Vec::new();
    if let Some(p) = plugin {
        filters.push(p.http_filter()?);
    }
    filters.push(router());
    Ok(json!({
        "name": "main_internal",
        "internal_listener": {},
        "filter_chains": [{
            "name": app_cluster,
            "filters": [{
                "name": "envoy.filters.network.http_connection_manager",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                    "stat_prefix": "inbound-vip|8080|http|api.backend.svc.cluster.local",
                    "route_config": {
                        "name": app_cluster,
                        "virtual_hosts": [{"name": "app", "domains": ["*"],
                            "routes": [{"name": "default", "match": {"prefix": "/"}, "route": {"cluster": app_cluster}}]}]
                    },
                    "http_filters": filters
                }
            }]
        }]
    }))
}

/// The cluster that hands the tunnel to `main_internal` (an internal address).
pub fn main_internal_cluster() -> Value {
    json!({
        "name": "main_internal",
        "type": "STATIC",
        "connect_timeout": "2s",
        "load_assignment": {"cluster_name": "main_internal", "endpoints": [{"lb_endpoints": [{"endpoint": {
            "address": {"envoy_internal_address": {"server_listener_name": "main_internal"}}}}]}]},
        "transport_socket": {
            "name": "internal_upstream",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.internal_upstream.v3.InternalUpstreamTransport",
                "transport_socket": {"name": "raw_buffer", "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer"}}
            }
        }
    })
}

/// `app`: the workload behind the waypoint (plaintext here; ztunnel on the server side in Istio).
pub fn app_cluster(app: SocketAddr) -> Value {
    json!({
        "name": "app", "type": "STATIC", "connect_timeout": "2s",
        "load_assignment": {"cluster_name": "app", "endpoints": [{"lb_endpoints": [{"endpoint": {"address": sock(app)}}]}]}
    })
}

/// The waypoint's bootstrap: the two listeners, their clusters, the SDS secrets, and the
/// internal listener extension.
pub fn waypoint_bootstrap(
    admin: SocketAddr,
    waypoint: &Workload,
    plugin: Option<&Plugin>,
    app: SocketAddr,
) -> Result<Value> {
    Ok(json!({
        "admin": {"address": sock(admin)},
        "bootstrap_extensions": [{"name": "envoy.bootstrap.internal_listener", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.bootstrap.internal_listener.v3.InternalListener"}}],
        "static_resources": {
            "listeners": [connect_terminate_listener(SocketAddr::from(([127, 0, 0, 1], 0))), main_internal_listener(plugin, "app")?],
            "clusters": [main_internal_cluster(), app_cluster(app)],
            "secrets": secrets(waypoint)
        }
    }))
}

/// One client workload behind the ztunnel stand-in: its name and its certificate.
#[derive(Debug, Clone)]
pub struct ClientWorkload {
    pub name: String,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The client-side ztunnel stand-in: per workload, a plaintext listener `ztunnel_<name>` whose
/// connections are tunnelled (HTTP/2 CONNECT to `authority`) over mTLS with that workload's
/// certificate to the waypoint's `connect_terminate` port.
pub fn ztunnel_bootstrap(
    admin: SocketAddr,
    clients: &[ClientWorkload],
    root_ca: &Path,
    waypoint: SocketAddr,
    authority: &str,
) -> Value {
    let mut listeners = Vec::new();
    let mut clusters = Vec::new();
    for c in clients {
        let cluster = format!("hbone_{}", c.name);
        listeners.push(json!({
            "name": format!("ztunnel_{}", c.name),
            "address": sock(SocketAddr::from(([127, 0, 0, 1], 0))),
            "filter_chains": [{"filters": [{
                "name": "envoy.filters.network.tcp_proxy",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
                    "stat_prefix": cluster,
                    "cluster": cluster,
                    "tunneling_config": {"hostname": authority}
                }
            }]}]
        }));
        clusters.push(json!({
            "name": cluster, "type": "STATIC", "connect_timeout": "2s",
            "load_assignment": {"cluster_name": cluster, "endpoints": [{"lb_endpoints": [{"endpoint": {"address": sock(waypoint)}}]}]},
            "typed_extension_protocol_options": {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {}}}},
            "transport_socket": {
                "name": "envoy.transport_sockets.tls",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
                    "common_tls_context": {
                        "alpn_protocols": ["h2"],
                        "tls_certificates": [{
                            "certificate_chain": {"filename": c.cert.display().to_string()},
                            "private_key": {"filename": c.key.display().to_string()}}],
                        "validation_context": {"trusted_ca": {"filename": root_ca.display().to_string()}}
                    }
                }
            }
        }));
    }
    json!({"admin": {"address": sock(admin)}, "static_resources": {"listeners": listeners, "clusters": clusters}})
}
