//! The server configurations under test and the equivalent policies for each filter.
//!
//! Every policy allows one principal per rule on paths under `/api/`, and the client matches only
//! the LAST rule: a linear scan pays for every rule, an index does not.

use peerguard_filter::envoy_config::{NativeFilter, WasmFilter};
use serde_json::{json, Value};

use crate::certs::CLIENT_SPIFFE;

/// Which filter a configuration runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    NoFilter,
    WasmFloor,
    Rbac,
    Lua,
    Peerguard,
    /// peerguard with certificate checks that need the parsed certificate but no chain (lifetime,
    /// remaining validity, EKU, self-signed, key type, issuer, SPKI and certificate pins).
    PeerguardCertChecks,
    /// The above plus chain to a pinned CA and a CRL with 10,000 entries.
    PeerguardFullCert,
    /// Envoy's RBAC with the unified matcher API: an `exact_match_map` on the peer's URI SAN
    /// (`envoy.matching.inputs.uri_san`), RBAC at its best for exact principals.
    RbacMatcher,
    /// The floor filter making `rules` property reads (N = 1 is the floor): the cost per host call.
    WasmFloorReads,
    /// peerguard with `rules` rules of a realistic shape other than one exact principal.
    PeerguardShape(Shape),
    /// The native build (Envoy dynamic module, `just build-native`) with `rules` rules.
    PeerguardNative,
    /// The native build with the full certificate checks of [`Kind::PeerguardFullCert`]; the
    /// certificate comes from the digest-bound XFCC element Envoy sets (SANITIZE_SET, cert: true).
    PeerguardNativeFullCert,
    /// The native floor (bench/floor-native, `scripts/build-native.sh floor`): a dynamic module
    /// doing the wasm floor's work, one attribute read and one header set. What any dynamic
    /// module costs, against which the native build's own work is measured.
    NativeFloor,
}

/// Rule shapes the scale curve also runs: each needs its own index to stay flat.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Shape {
    /// `paths: ["/tenant-N/*"]`.
    PathPrefix,
    /// `hosts: ["svc-N.example.com"]`.
    Host,
    /// `namespaces: ["team-N"]`.
    Namespace,
    /// `principals: ["cluster.local/ns/team-N/*"]`.
    PrincipalPrefix,
}

impl Shape {
    pub const ALL: [Shape; 4] = [Shape::PathPrefix, Shape::Host, Shape::Namespace, Shape::PrincipalPrefix];

    pub fn name(self) -> &'static str {
        match self {
            Shape::PathPrefix => "path-prefix",
            Shape::Host => "host",
            Shape::Namespace => "namespace",
            Shape::PrincipalPrefix => "principal-prefix",
        }
    }
}

/// One configuration of the server Envoy.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Config {
    pub id: String,
    pub label: String,
    pub kind: Kind,
    /// Principal rules in the policy (0 for no filter and the floor).
    pub rules: usize,
    /// The latency mode: Envoy routes to a loopback HTTP/1.1 upstream instead of answering.
    pub upstream: Option<UpstreamLoad>,
}

/// How a configuration behind the upstream is loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UpstreamLoad {
    /// Closed loop: the maximum throughput (measured for no filter, first in each round).
    Max,
    /// A fixed rate of half that round's no-filter maximum: latency below saturation.
    HalfOfMax,
}

impl Config {
    pub fn new(kind: Kind, rules: usize) -> Config {
        let (id, label) = match kind {
            Kind::NoFilter => ("none".to_string(), "no filter".to_string()),
            Kind::WasmFloor => ("wasm-floor".to_string(), "wasm floor (1 property read, 1 header set)".to_string()),
            Kind::Rbac => (format!("rbac-{rules}"), format!("native RBAC, {rules} rules")),
            Kind::Lua => (format!("lua-{rules}"), format!("Lua, {rules} principals")),
            Kind::Peerguard => (format!("peerguard-{rules}"), format!("peerguard, {rules} rules")),
            Kind::PeerguardCertChecks => {
                (format!("peerguard-certs-{rules}"), format!("peerguard, {rules} rules + cert checks (no chain/CRL)"))
            }
            Kind::PeerguardFullCert => (
                format!("peerguard-full-{rules}"),
                format!("peerguard, {rules} rules + full cert checks (chain, 10k CRL)"),
            ),
            Kind::RbacMatcher => {
                (format!("rbac-matcher-{rules}"), format!("native RBAC (matcher, exact map), {rules} principals"))
            }
            Kind::WasmFloorReads => {
                (format!("wasm-floor-reads-{rules}"), format!("floor filter, {rules} property reads"))
            }
            Kind::PeerguardShape(shape) => {
                (format!("shape-{}-{rules}", shape.name()), format!("peerguard, {rules} {} rules", shape.name()))
            }
            Kind::PeerguardNative | Kind::PeerguardNativeFullCert => native_id_label(kind, rules),
            Kind::NativeFloor => {
                ("native-floor".to_string(), "native floor (1 attribute read, 1 header set)".to_string())
            }
        };
        Config { id, label, kind, rules, upstream: None }
    }

    /// The same configuration routed to the loopback upstream (the latency mode).
    pub fn via_upstream(kind: Kind, rules: usize, load: UpstreamLoad) -> Config {
        let mut c = Config::new(kind, rules);
        let (id, label) = match load {
            UpstreamLoad::Max => ("upstream-max", "via upstream, max rps"),
            UpstreamLoad::HalfOfMax => ("upstream", "via upstream at 50% of max"),
        };
        c.id = format!("{}-{id}", c.id);
        c.label = format!("{}, {label}", c.label);
        c.upstream = Some(load);
        c
    }
}

/// Id and label of the native build's configurations.
fn native_id_label(kind: Kind, rules: usize) -> (String, String) {
    if kind == Kind::PeerguardNativeFullCert {
        (
            format!("native-full-{rules}"),
            format!("peerguard native, {rules} rules + full cert checks (chain, 10k CRL, cert from XFCC)"),
        )
    } else {
        (format!("native-{rules}"), format!("peerguard native (dynamic module), {rules} rules"))
    }
}

/// The native build's HTTP filter running `configuration`.
pub fn native_filter(configuration: &str) -> Value {
    NativeFilter { configuration }.http_filter("peerguard")
}

/// The dynamic-module name of the native floor: Envoy loads `lib<it>.so` from the search path.
pub const NATIVE_FLOOR_MODULE: &str = "peerguard_floor_native";

/// The native floor's HTTP filter: the native build's filter config with the floor's module
/// (which ignores its config), so that only the module differs.
pub fn native_floor_filter() -> Value {
    let mut f = native_filter("");
    f["name"] = json!("floor");
    f["typed_config"]["dynamic_module_config"]["name"] = json!(NATIVE_FLOOR_MODULE);
    f
}

/// The principal of rule `i` of `n` (without `spiffe://`): only the last one is the client.
pub fn principal(i: usize, n: usize) -> String {
    if i + 1 == n {
        CLIENT_SPIFFE.trim_start_matches("spiffe://").to_string()
    } else {
        format!("cluster.local/ns/other-{i}/sa/svc-{i}")
    }
}

/// Policy names sort in rule order (RBAC keeps its policies in a sorted map).
fn policy_name(i: usize) -> String {
    format!("p{i:05}")
}

/// The peerguard policy document: one ALLOW policy per principal, as in RBAC.
pub fn peerguard_policy(n: usize, certificate: Option<Value>) -> Value {
    let policies: Vec<Value> = (0..n)
        .map(|i| {
            json!({
                "name": policy_name(i),
                "action": "ALLOW",
                "rules": [{
                    "from": [{"source": {"principals": [principal(i, n)]}}],
                    "to": [{"operation": {"paths": ["/api/*"]}}]
                }]
            })
        })
        .collect();
    let mut doc = json!({"mode": "enforce", "mtls": "strict", "trustDomains": ["cluster.local"], "policies": policies});
    if let Some(c) = certificate {
        doc["certificate"] = c;
    }
    doc
}

/// Envoy's RBAC filter with the same rules.
pub fn rbac_filter(n: usize) -> Value {
    let mut policies = serde_json::Map::new();
    for i in 0..n {
        policies.insert(
            policy_name(i),
            json!({
                "permissions": [{"url_path": {"path": {"prefix": "/api/"}}}],
                "principals": [{"authenticated": {"principal_name": {"exact": format!("spiffe://{}", principal(i, n))}}}]
            }),
        );
    }
    json!({
        "name": "envoy.filters.http.rbac",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC",
            "rules": {"action": "ALLOW", "policies": policies}
        }
    })
}

/// A Lua filter doing the same principal and path check, with a hash set of principals.
pub fn lua_filter(n: usize) -> Value {
    let set: String = (0..n).map(|i| format!("  [\"spiffe://{}\"] = true,\n", principal(i, n))).collect();
    let code = format!(
        r#"local allowed = {{
{set}}}
function envoy_on_request(h)
  local ok = false
  local ssl = h:connection():ssl()
  if ssl ~= nil then
    local sans = ssl:uriSanPeerCertificate()
    local path = h:headers():get(":path")
    if sans[1] ~= nil and allowed[sans[1]] and path ~= nil and string.sub(path, 1, 5) == "/api/" then
      ok = true
    end
  end
  if not ok then
    h:respond({{[":status"] = "403"}}, "access denied")
  end
end
"#
    );
    json!({
        "name": "envoy.filters.http.lua",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua",
            "default_source_code": {"inline_string": code}
        }
    })
}

/// A proxy-wasm filter on V8 with `configuration` as its plugin configuration: peerguard's own
/// filter JSON (the wasm floor runs in the same shape, so that only the module differs).
pub fn wasm_filter(name: &str, wasm: &str, configuration: &str) -> Value {
    WasmFilter::new(wasm, configuration).named(name).http_filter("envoy.filters.http.wasm")
}

/// RBAC's unified matcher: one `exact_match_map` from URI SAN to an ALLOW action per principal;
/// no match falls through to the `on_no_match` DENY. Paths are checked by the same prefix as the
/// `rules` form, in a matcher nested under each principal (as the issue's "matcher, exact map").
pub fn rbac_matcher_filter(n: usize) -> Value {
    let mut map = serde_json::Map::new();
    for i in 0..n {
        map.insert(
            format!("spiffe://{}", principal(i, n)),
            json!({"matcher": {"matcher_list": {"matchers": [{
                "predicate": {"single_predicate": {
                    "input": {"name": "path", "typed_config": {
                        "@type": "type.googleapis.com/envoy.type.matcher.v3.HttpRequestHeaderMatchInput",
                        "header_name": ":path"}},
                    "value_match": {"prefix": "/api/"}
                }},
                "on_match": {"action": {"name": policy_name(i), "typed_config": {
                    "@type": "type.googleapis.com/envoy.config.rbac.v3.Action", "name": policy_name(i), "action": "ALLOW"}}}
            }]}}}),
        );
    }
    let deny = json!({"action": {"name": "deny", "typed_config": {
        "@type": "type.googleapis.com/envoy.config.rbac.v3.Action", "name": "deny", "action": "DENY"}}});
    json!({
        "name": "envoy.filters.http.rbac",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC",
            "matcher": {
                "matcher_tree": {
                    "input": {"name": "uri_san", "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.matching.common_inputs.ssl.v3.UriSanInput"}},
                    "exact_match_map": {"map": map}
                },
                "on_no_match": deny
            }
        }
    })
}

/// The namespace of the benchmark client (`spiffe://cluster.local/ns/<it>/sa/client`).
fn client_namespace() -> &'static str {
    CLIENT_SPIFFE.split("/ns/").nth(1).and_then(|r| r.split('/').next()).unwrap_or("bench")
}

/// peerguard with `n` rules of `shape`; as in [`peerguard_policy`], only the LAST rule matches
/// the client's request (`GET /api/bench`, host `bench`).
pub fn shape_policy(shape: Shape, n: usize) -> Value {
    let last = |i: usize| i + 1 == n;
    let policies: Vec<Value> = (0..n)
        .map(|i| {
            let rule = match shape {
                Shape::PathPrefix => {
                    let p = if last(i) { "/api/*".to_string() } else { format!("/tenant-{i}/*") };
                    json!({"to": [{"operation": {"paths": [p]}}]})
                }
                Shape::Host => {
                    // The load sends `host: bench`; the readiness probe sends `localhost`.
                    let h =
                        if last(i) { json!(["bench", "localhost"]) } else { json!([format!("svc-{i}.example.com")]) };
                    json!({"to": [{"operation": {"hosts": h}}]})
                }
                Shape::Namespace => {
                    let ns = if last(i) { client_namespace().to_string() } else { format!("team-{i}") };
                    json!({"from": [{"source": {"namespaces": [ns]}}]})
                }
                Shape::PrincipalPrefix => {
                    let ns = if last(i) { client_namespace().to_string() } else { format!("team-{i}") };
                    json!({"from": [{"source": {"principals": [format!("cluster.local/ns/{ns}/*")]}}]})
                }
            };
            json!({"name": policy_name(i), "action": "ALLOW", "rules": [rule]})
        })
        .collect();
    json!({"mode": "enforce", "mtls": "strict", "trustDomains": ["cluster.local"], "policies": policies})
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code
    use super::*;

    #[test]
    fn the_native_floor_differs_from_the_native_build_only_in_its_module() {
        let floor = native_floor_filter();
        let mut native = native_filter("");
        assert_eq!(floor["typed_config"]["dynamic_module_config"]["name"], NATIVE_FLOOR_MODULE);
        assert_ne!(native["typed_config"]["dynamic_module_config"]["name"], NATIVE_FLOOR_MODULE);
        native["name"] = json!("floor");
        native["typed_config"]["dynamic_module_config"]["name"] = json!(NATIVE_FLOOR_MODULE);
        assert_eq!(floor, native);
        assert_eq!(Config::new(Kind::NativeFloor, 0).id, "native-floor");
    }
}
