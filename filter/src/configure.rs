//! A plugin configuration to a compiled policy, the same for both builds (proxy-wasm and the native dynamic module).

use peerguard_policy::{ConfigErrors, Engine};

use crate::host::Host;
use crate::metrics::Counters;

/// Compiles the policy document Envoy hands the filter (`configuration` of the Wasm plugin,
/// `filter_config` of the dynamic module). An empty or non-UTF-8 configuration is an error like
/// any other invalid policy: every request is then answered 503 `config_invalid`
/// (docs/policy.md "Decision order").
pub fn compile(raw: &[u8]) -> Result<Engine, ConfigErrors> {
    match std::str::from_utf8(raw) {
        Ok(text) if text.trim().is_empty() => {
            Err(ConfigErrors::one(".", "empty plugin configuration: peerguard needs a policy document"))
        }
        Ok(text) => Engine::from_json(text),
        Err(_) => Err(ConfigErrors::one(".", "plugin configuration is not UTF-8")),
    }
}

/// Logs what a configuration gave (policy count and load warnings, or every error with its
/// path) and counts an invalid one.
pub fn report(engine: &Result<Engine, ConfigErrors>, build: &str, counters: &Counters, host: &dyn Host, now: i64) {
    match engine {
        Ok(e) => {
            log::info!("peerguard {build}: policy loaded ({} policies and certificate rules)", e.policy_names().len());
            for warning in e.load_warnings(now) {
                log::warn!("peerguard: {warning}");
            }
        }
        Err(errors) => {
            counters.config_error(host);
            for err in errors.iter() {
                log::error!("peerguard: invalid policy at {}: {}", err.path, err.message);
            }
            log::error!("peerguard: refusing every request with 503 config_invalid until a valid policy arrives");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_blank_and_non_utf8_configurations_are_errors() {
        for raw in [&b""[..], b"  \n", b"\xff{}"] {
            assert!(compile(raw).is_err(), "{raw:?}");
        }
        assert!(compile(b"{}").is_ok());
    }
}
