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
                    format!("at most {MAX_EXPIRY_IDENTITIES}: every gauge is an Envoy stat for the life of the process"),
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
