//! What a policy for an Istio ambient waypoint may not ask for (docs/policy.md "Ambient waypoints").
//!
//! At a waypoint the client's ztunnel ends mTLS at the waypoint's HBONE listener; the filter
//! runs on an internal listener behind it and learns only the client's SPIFFE ID. Every check
//! that needs the certificate itself could never pass there, so it is refused when the policy
//! is compiled rather than denied (or, worse, silently skipped) on every request.

use crate::config::{Condition, PolicyDocument};
use crate::error::ConfigError;
use crate::identity::IdentitySource;

const WHY: &str = "a waypoint never sees the client's certificate (the client's ztunnel ends mTLS; only its SPIFFE ID reaches the waypoint)";

/// Every key of `doc` that cannot work under `proxy: waypoint`, with its JSON path.
pub(super) fn errors(doc: &PolicyDocument) -> Vec<ConfigError> {
    let mut out = Vec::new();
    if doc.certificate.is_some() {
        out.push(ConfigError::new(
            "certificate",
            format!("not available with proxy: waypoint: {WHY}; check certificates at a sidecar or gateway, or remove the block"),
        ));
    }
    if !doc.certificate_rules.is_empty() {
        out.push(ConfigError::new("certificateRules", format!("not available with proxy: waypoint: {WHY}")));
    }
    for (i, s) in doc.identity.iter().enumerate() {
        if *s != IdentitySource::Spiffe {
            out.push(ConfigError::new(
                format!("identity[{i}]"),
                format!("{s} is read from the certificate, which is not available with proxy: waypoint: {WHY}; use [spiffe]"),
            ));
        }
    }
    for (p, policy) in doc.policies.iter().enumerate() {
        for (r, rule) in policy.rules.iter().flatten().enumerate() {
            for (w, Condition { key, .. }) in rule.when.iter().flatten().enumerate() {
                if key.starts_with("cert.") {
                    out.push(ConfigError::new(
                        format!("policies[{p}].rules[{r}].when[{w}].key"),
                        format!("{key:?} is not available with proxy: waypoint: {WHY}; use source.principal or source.namespace"),
                    ));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::Engine;

    fn errors(json: &str) -> Vec<String> {
        match Engine::from_json(json) {
            Ok(_) => Vec::new(),
            Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn identity_only_policy_compiles_at_a_waypoint() {
        let e = Engine::from_json(
            r#"{"proxy": "waypoint", "trustDomains": ["cluster.local"], "policies": [{"name": "a", "rules": [{"from": [{"source": {"principals": ["cluster.local/ns/a/sa/b"]}}], "when": [{"key": "source.namespace", "values": ["a"]}]}]}]}"#,
        )
        .unwrap();
        assert_eq!(e.proxy(), crate::Proxy::Waypoint);
    }

    #[test]
    fn every_certificate_check_is_refused_at_a_waypoint_with_its_path() {
        let errs = errors(
            r#"{"proxy": "waypoint", "identity": ["spiffe", "subject"], "certificate": {"maxLifetime": "24h"},
                "certificateRules": [{"name": "r", "require": {"requireClientAuth": true}}],
                "policies": [{"name": "a", "rules": [{"when": [{"key": "source.principal", "values": ["*"]}, {"key": "cert.issuer.cn", "values": ["x"]}]}]}]}"#,
        );
        let all = errs.join("\n");
        for path in ["certificate:", "certificateRules:", "identity[1]:", "policies[0].rules[0].when[1].key:"] {
            assert!(all.contains(path), "{path} missing in:\n{all}");
        }
        assert_eq!(errs.len(), 4, "{all}");
        assert!(all.contains("never sees the client's certificate"), "{all}");
    }

    #[test]
    fn the_same_checks_compile_on_a_sidecar() {
        let json = r#"{"identity": ["spiffe", "subject"], "certificate": {"maxLifetime": "24h"},
            "policies": [{"name": "a", "rules": [{"when": [{"key": "cert.issuer.cn", "values": ["x"]}]}]}]}"#;
        assert!(errors(json).is_empty(), "{:?}", errors(json));
        assert!(!errors(&json.replacen('{', r#"{"proxy": "waypoint", "#, 1)).is_empty());
        assert!(!errors(r#"{"proxy": "ambient"}"#).is_empty(), "unknown proxy values are refused");
    }
}
