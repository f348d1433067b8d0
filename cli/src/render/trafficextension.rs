//! `peerguard render trafficextension`: the policy in an Istio `TrafficExtension`
//! (`extensions.istio.io/v1alpha1`, Istio 1.30+), for a sidecar, a gateway or an ambient waypoint.
//!
//! A TrafficExtension holds the same settings as a WasmPlugin, with the Wasm ones under
//! `spec.wasm` and the placement (`selector` or `targetRefs`, `phase`, `match`) at the top, so the
//! WasmPlugin is built first (policy validated, `sha256` computed) and then regrouped.

use clap::Args;
use serde_json::{json, Map, Value};

use super::{emit, refuse_waypoint_selector, wasmplugin_value, RenderError, WasmPluginArgs};

/// `spec` keys that stay at the top of a TrafficExtension; every other WasmPlugin key moves
/// under `spec.wasm`.
const PLACEMENT: [&str; 5] = ["selector", "targetRefs", "phase", "priority", "match"];

pub const TRAFFICEXTENSION_HELP: &str = "\
Istio 1.30 and later: TrafficExtension is the recommended resource (Istio turns every WasmPlugin
into one internally). For older Istio releases use `render wasmplugin`.

An ambient waypoint is attached with --waypoint-service SERVICE (targetRefs to the Service whose
waypoint runs the filter; a waypoint ignores `selector`). The policy must say `proxy: waypoint`:
there the filter learns the client's SPIFFE ID from the HBONE tunnel, and certificate checks are
refused because the waypoint never sees the client's certificate (docs/policy.md \"Ambient waypoints\").

Examples:
  peerguard render trafficextension --policy istio/peerguard/policy.yaml --namespace server \\
      --selector app=nginx --url oci://ghcr.io/example/peerguard:0.1.0 --wasm dist/peerguard.wasm
  peerguard render trafficextension --policy istio/peerguard/waypoint-policy.yaml --namespace server \\
      --waypoint-service nginx --name peerguard-waypoint \\
      --url oci://ghcr.io/example/peerguard:0.1.0 --wasm dist/peerguard.wasm";

#[derive(Debug, Args)]
pub struct TrafficExtensionArgs {
    #[command(flatten)]
    pub plugin: WasmPluginArgs,
    /// Attach to the ambient waypoint of this Service through targetRefs (kind Service); the
    /// policy must set `proxy: waypoint`
    #[arg(long, conflicts_with_all = ["selector", "gateway"])]
    pub waypoint_service: Option<String>,
}

/// The TrafficExtension manifest as a JSON value.
pub fn trafficextension_value(a: &TrafficExtensionArgs) -> Result<Value, RenderError> {
    let mut plugin = wasmplugin_value(&a.plugin)?;
    let proxy_is_waypoint = plugin["spec"]["pluginConfig"]["proxy"] == "waypoint";
    if let (Some(svc), false) = (&a.waypoint_service, proxy_is_waypoint) {
        return Err(RenderError::Unsafe(format!(
            "--waypoint-service {svc}: {} does not set `proxy: waypoint`. At a waypoint the filter runs behind \
             the HBONE listener and sees no client certificate, so a sidecar policy would deny every request \
             with no_peer_certificate. Add `proxy: waypoint` to the policy (docs/policy.md \"Ambient waypoints\").",
            a.plugin.policy.display()
        )));
    }
    refuse_waypoint_selector(&a.plugin, &plugin, "use --waypoint-service SERVICE (or --gateway WAYPOINT)")?;
    let Value::Object(plugin_spec) = plugin["spec"].take() else {
        return Err(RenderError::Usage("internal: the WasmPlugin has no spec".into()));
    };
    let mut spec = Map::new();
    let mut wasm = Map::new();
    for (k, v) in plugin_spec {
        if PLACEMENT.contains(&k.as_str()) {
            spec.insert(k, v);
        } else {
            wasm.insert(k, v);
        }
    }
    if let Some(svc) = &a.waypoint_service {
        // The core group is the empty string; no `match`: a waypoint has no sidecar directions.
        spec.remove("match");
        spec.insert("targetRefs".into(), json!([{"kind": "Service", "group": "", "name": svc}]));
    }
    spec.insert("wasm".into(), Value::Object(wasm));
    Ok(json!({
        "apiVersion": "extensions.istio.io/v1alpha1",
        "kind": "TrafficExtension",
        "metadata": plugin["metadata"].take(),
        "spec": spec,
    }))
}

/// `peerguard render trafficextension`.
pub fn run(a: &TrafficExtensionArgs) -> Result<String, RenderError> {
    let v = trafficextension_value(a)?;
    let text = serde_yaml::to_string(&v).map_err(|e| RenderError::Usage(format!("cannot render YAML: {e}")))?;
    emit(
        &format!("# Rendered by `peerguard render trafficextension` from {}\n{text}", a.plugin.policy.display()),
        a.plugin.out.as_deref(),
    )
}
