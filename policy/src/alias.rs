//! Trust-domain aliases, as Istio's mesh config `trustDomain` and `trustDomainAliases`: an alias's identities are matched as the main trust domain's.
//!
//! docs/policy.md "Trust-domain aliases": a peer whose trust domain is an alias is matched as
//! if its principal named the main trust domain, and a rule that names an alias (written out,
//! without `*`) is compiled to the main trust domain, so that both sides meet as in istiod's
//! expansion of policies over the trust domain and its aliases. `*.suffix` trusts every trust
//! domain that ends in `.suffix` with at least one more label, never `suffix` itself and never a
//! name that merely ends in the same characters (`evil-partner.example` is not under
//! `*.partner.example`).

use std::sync::Arc;

use crate::error::ConfigError;
use crate::identity::Identity;

/// Istio's default mesh trust domain, the main trust domain when `trustDomain` is absent.
pub const DEFAULT_TRUST_DOMAIN: &str = "cluster.local";

/// The compiled `trustDomain` and `trustDomainAliases`.
#[derive(Debug, Default)]
pub struct TrustDomainAliases {
    main: String,
    exact: Vec<String>,
    /// `*.partner.example` is kept as `.partner.example`.
    suffixes: Vec<String>,
}

/// A SPIFFE trust domain: lower-case letters, digits, `.`, `-` and `_` (SPIFFE ID spec 2.1).
pub(crate) fn is_trust_domain(td: &str) -> bool {
    !td.is_empty()
        && td.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_'))
}

impl TrustDomainAliases {
    /// Compiles the two keys; `None` when no alias is configured (then nothing is rewritten).
    pub fn compile(
        trust_domain: Option<&str>,
        aliases: Option<&[String]>,
        errors: &mut Vec<ConfigError>,
    ) -> Option<TrustDomainAliases> {
        let main = trust_domain.unwrap_or(DEFAULT_TRUST_DOMAIN);
        if !is_trust_domain(main) {
            errors.push(ConfigError::new(
                "trustDomain",
                format!("{main:?} is not a SPIFFE trust domain (lower-case letters, digits, '.', '-', '_')"),
            ));
        }
        let aliases = aliases?;
        if aliases.is_empty() {
            errors
                .push(ConfigError::new("trustDomainAliases", "empty list; remove the field when there are no aliases"));
        }
        let mut out = TrustDomainAliases { main: main.to_owned(), ..TrustDomainAliases::default() };
        for (i, alias) in aliases.iter().enumerate() {
            let at = format!("trustDomainAliases[{i}]");
            let (name, wildcard) = match alias.strip_prefix("*.") {
                Some(rest) => (rest, true),
                None => (alias.as_str(), false),
            };
            if !is_trust_domain(name) || name.starts_with('.') || name.ends_with('.') {
                errors.push(ConfigError::new(
                    at,
                    format!("{alias:?} is neither a SPIFFE trust domain (lower-case letters, digits, '.', '-', '_') nor '*.' followed by one"),
                ));
                continue;
            }
            if !wildcard && name == main {
                errors.push(ConfigError::new(at, format!("{alias:?} is the main trustDomain itself")));
                continue;
            }
            if aliases[..i].contains(alias) {
                errors.push(ConfigError::new(at, format!("{alias:?} is listed twice")));
                continue;
            }
            if wildcard {
                out.suffixes.push(format!(".{name}"));
            } else {
                out.exact.push(name.to_owned());
            }
        }
        Some(out)
    }

    /// The main trust domain when `td` is an alias of it (never for the main domain itself).
    pub fn main_for(&self, td: &str) -> Option<&str> {
        let alias = td != self.main
            && (self.exact.iter().any(|a| a == td)
                || self.suffixes.iter().any(|s| td.len() > s.len() && td.ends_with(s.as_str())));
        alias.then_some(self.main.as_str())
    }

    /// The identity as the policy matches it: an alias's principal and trust domain become the
    /// main trust domain's; `presented` keeps the principal as the peer stated it.
    pub fn apply(&self, identity: Arc<Identity>) -> Arc<Identity> {
        let Some(td) = identity.trust_domain.as_deref() else { return identity };
        let Some(main) = self.main_for(td) else { return identity };
        // SPIFFE and Linkerd principals start with their trust domain and a '/'.
        let Some(rest) = identity.principal.strip_prefix(td).filter(|r| r.starts_with('/')) else {
            return identity;
        };
        Arc::new(Identity {
            principal: format!("{main}{rest}"),
            trust_domain: Some(main.to_owned()),
            namespace: identity.namespace.clone(),
            source: identity.source,
            presented: Some(identity.principal.clone()),
        })
    }

    /// A rule's principal pattern written with an alias (`old.local/ns/a/sa/b`,
    /// `old.local/ns/a/*`) in the main trust domain's form; every other pattern as it is.
    pub fn principal_pattern(&self, pattern: &str) -> String {
        match pattern.split_once('/') {
            Some((td, rest)) if !td.contains('*') => match self.main_for(td) {
                Some(main) => format!("{main}/{rest}"),
                None => pattern.to_owned(),
            },
            _ => pattern.to_owned(),
        }
    }

    /// A rule's trust-domain pattern that names an alias, as the main trust domain.
    pub fn trust_domain_pattern(&self, pattern: &str) -> String {
        match self.main_for(pattern) {
            Some(main) if !pattern.contains('*') => main.to_owned(),
            _ => pattern.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code
    use super::*;

    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn aliases(list: &[&str]) -> TrustDomainAliases {
        let list: Vec<String> = list.iter().map(|s| (*s).to_owned()).collect();
        let mut errors = Vec::new();
        let out = TrustDomainAliases::compile(None, Some(&list), &mut errors).unwrap();
        assert!(errors.is_empty(), "{errors:?}");
        out
    }

    #[test]
    fn a_wildcard_alias_covers_subdomains_only() {
        let a = aliases(&["old.local", "*.partner.example"]);
        assert_eq!(a.main_for("old.local"), Some("cluster.local"));
        assert_eq!(a.main_for("eu.partner.example"), Some("cluster.local"));
        assert_eq!(a.main_for("a.b.partner.example"), Some("cluster.local"));
        for not_alias in [
            "partner.example",
            "evil-partner.example",
            "xpartner.example",
            ".partner.example",
            "cluster.local",
            "old.local.evil",
            "evil.old.local",
        ] {
            assert_eq!(a.main_for(not_alias), None, "{not_alias}");
        }
    }

    #[test]
    fn rules_naming_an_alias_meet_the_main_domain() {
        let a = aliases(&["old.local"]);
        assert_eq!(a.principal_pattern("old.local/ns/a/sa/b"), "cluster.local/ns/a/sa/b");
        assert_eq!(a.principal_pattern("old.local/ns/a/*"), "cluster.local/ns/a/*");
        assert_eq!(a.principal_pattern("*/ns/a/sa/b"), "*/ns/a/sa/b");
        assert_eq!(a.principal_pattern("other.local/ns/a/sa/b"), "other.local/ns/a/sa/b");
        assert_eq!(a.principal_pattern("old.local"), "old.local");
        assert_eq!(a.trust_domain_pattern("old.local"), "cluster.local");
        assert_eq!(a.trust_domain_pattern("old.*"), "old.*");
    }

    #[test]
    fn bad_aliases_are_errors_with_their_path() {
        let list: Vec<String> = ["*.", "Old.local", "cluster.local", "a.*", "*partner.example", "x.local", "x.local"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        let mut errors = Vec::new();
        TrustDomainAliases::compile(None, Some(&list), &mut errors);
        let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "trustDomainAliases[0]",
                "trustDomainAliases[1]",
                "trustDomainAliases[2]",
                "trustDomainAliases[3]",
                "trustDomainAliases[4]",
                "trustDomainAliases[6]"
            ]
        );
        let mut errors = Vec::new();
        TrustDomainAliases::compile(Some("Bad"), Some(&[]), &mut errors);
        assert_eq!(errors.len(), 2, "{errors:?}");
    }
}
