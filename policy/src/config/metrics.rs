//! The document's `metrics` block: what the filter reports beyond its counters (docs/policy.md "Metrics").

use serde::{Deserialize, Serialize};

use crate::duration::Duration;
use crate::error::ConfigError;

/// `metrics`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MetricsOptions {
    /// Per-identity peer certificate expiry gauges.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_cert_expiry: Option<PeerCertExpiryOptions>,
}

/// `metrics.peerCertExpiry`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PeerCertExpiryOptions {
    /// How many identities get a gauge: the ones closest to expiry (default 100, 0 for none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_identities: Option<u32>,
    /// How recently an identity must have been seen to be reported (default `1h`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
}

/// `metrics.peerCertExpiry`, compiled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerCertExpiry {
    pub max_identities: usize,
    pub window_secs: i64,
}

/// Most gauges one filter may ask for: each is an Envoy stat that lives as long as the process.
pub const MAX_EXPIRY_IDENTITIES: u32 = 10_000;

impl Default for PeerCertExpiry {
    fn default() -> Self {
        PeerCertExpiry { max_identities: 100, window_secs: 3600 }
    }
}

impl PeerCertExpiry {
    /// Compiles `metrics` (absent means the defaults), recording every error.
    pub(crate) fn compile(opts: Option<&MetricsOptions>, errors: &mut Vec<ConfigError>) -> PeerCertExpiry {
        let mut out = PeerCertExpiry::default();
        let Some(o) = opts.and_then(|m| m.peer_cert_expiry.as_ref()) else {
            return out;
        };
        if let Some(n) = o.max_identities {
            if n > MAX_EXPIRY_IDENTITIES {
                errors.push(ConfigError::new(
                    "metrics.peerCertExpiry.maxIdentities",
                    format!(
                        "at most {MAX_EXPIRY_IDENTITIES}: every gauge is an Envoy stat for the life of the process"
                    ),
                ));
            }
            out.max_identities = n.min(MAX_EXPIRY_IDENTITIES) as usize;
        }
        if let Some(w) = &o.window {
            match Duration::parse(w) {
                Ok(d) if d.as_secs() >= 1 => out.window_secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
                Ok(_) => errors.push(ConfigError::new("metrics.peerCertExpiry.window", "must be at least 1s")),
                Err(e) => errors.push(ConfigError::new("metrics.peerCertExpiry.window", e.to_string())),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code
    use crate::Engine;

    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn errors(metrics: serde_json::Value) -> Vec<(String, String)> {
        match Engine::from_json(&serde_json::json!({ "metrics": metrics }).to_string()) {
            Ok(_) => Vec::new(),
            Err(e) => e.iter().map(|e| (e.path.clone(), e.message.clone())).collect(),
        }
    }

    #[test]
    fn peer_cert_expiry_defaults_and_limits() {
        let e = Engine::from_json("{}").unwrap();
        assert_eq!((e.peer_cert_expiry().max_identities, e.peer_cert_expiry().window_secs), (100, 3600));
        let e = Engine::from_json(r#"{"metrics":{"peerCertExpiry":{"maxIdentities":0,"window":"10m"}}}"#).unwrap();
        assert_eq!((e.peer_cert_expiry().max_identities, e.peer_cert_expiry().window_secs), (0, 600));
        let paths = |v| errors(v).into_iter().map(|(p, _)| p).collect::<Vec<_>>();
        assert_eq!(
            paths(serde_json::json!({"peerCertExpiry": {"maxIdentities": 10_001}})),
            ["metrics.peerCertExpiry.maxIdentities"]
        );
        assert_eq!(paths(serde_json::json!({"peerCertExpiry": {"window": "0s"}})), ["metrics.peerCertExpiry.window"]);
        assert_eq!(paths(serde_json::json!({"peerCertExpiry": {"window": "1"}})), ["metrics.peerCertExpiry.window"]);
        assert!(!errors(serde_json::json!({"peerCertExpiry": {"top": 3}})).is_empty(), "unknown key");
        assert_eq!(paths(serde_json::json!({"peerCertExpiry": {"maxIdentities": 10_000}})), Vec::<String>::new());
    }
}
