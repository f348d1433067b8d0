//! The server configurations under test and the equivalent policies for each filter.
//!
//! Every policy allows one principal per rule on paths under `/api/`, and the client matches only
//! the LAST rule: a linear scan pays for every rule, an index does not.

use peerguard_filter::envoy_config::WasmFilter;
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
}

/// One configuration of the server Envoy.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Config {
    pub id: String,
    pub label: String,
    pub kind: Kind,
    /// Principal rules in the policy (0 for no filter and the floor).
    pub rules: usize,
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
        };
        Config { id, label, kind, rules }
    }
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
