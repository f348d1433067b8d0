//! Which rules a request matched: a read-only view beside [`Engine::decide`], for test coverage and the playground.
//!
//! [`Engine::explain`] returns the decision `decide` gives, unchanged, and the rules whose
//! conditions held for the request. A rule counts only when the decision reached the rules: a
//! request refused at steps 0-3 (path, peer, certificate, identity) matched none, and one refused
//! by a `certificateRules` entry reached no policy. Every rule that held is listed, not only the
//! one that decided: an ALLOW rule that matched a request a DENY refused is listed too.

use std::sync::Arc;

use crate::config::Mode;
use crate::decision::{Decision, Peer};
use crate::engine::Engine;
use crate::index::RuleSet;
use crate::reason::Reason;
use crate::request::{CheckedPath, RequestSource};
use crate::rule::EvalCtx;

/// One rule of the document: `policies[policy_index].rules[rule_index]`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct RuleRef {
    /// The index of the policy in `policies`.
    pub policy_index: usize,
    /// The index of the rule in that policy's `rules`.
    pub rule_index: usize,
    /// The policy's name.
    pub policy: Arc<str>,
}

impl RuleRef {
    /// The rule's path in the document, e.g. `policies[1].rules[0]`.
    pub fn path(&self) -> String {
        format!("policies[{}].rules[{}]", self.policy_index, self.rule_index)
    }
}

/// A decision and the rules behind it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Explanation {
    /// Exactly what [`Engine::decide`] returns for the same input.
    pub decision: Decision,
    /// Whether the decision got as far as the policies (steps 5-7).
    pub reached_policies: bool,
    /// Indexes of the `certificateRules` entries whose `to` matched, up to the one that decided.
    pub certificate_rules: Vec<usize>,
    /// The policy rules whose `from`, `to` and `when` all held, in document order.
    pub rules: Vec<RuleRef>,
}

impl Engine {
    /// The names of the `certificateRules` entries, in document order.
    pub fn certificate_rule_names(&self) -> &[Arc<str>] {
        self.policy_names.get(..self.cert_rules.len()).unwrap_or_default()
    }

    /// The names of the policies, in document order (`policies[i]` is the i-th).
    pub fn policy_list(&self) -> &[Arc<str>] {
        self.policy_names.get(self.cert_rules.len()..).unwrap_or_default()
    }

    /// Every policy rule of the document, in document order.
    pub fn rule_refs(&self) -> Vec<RuleRef> {
        let mut out: Vec<RuleRef> =
            self.rule_sets().into_iter().flat_map(|s| self.refs_of(s)).map(|(r, _)| r).collect();
        out.sort();
        out
    }

    /// Decides the request as [`Engine::decide`] does and lists the rules whose conditions held.
    pub fn explain(&self, req: &dyn RequestSource, peer: &Peer<'_>, now: i64) -> Explanation {
        let decision = self.decide(req, peer, now);
        let mut out =
            Explanation { decision, reached_policies: false, certificate_rules: Vec::new(), rules: Vec::new() };
        let lazy = self.lazy_request(req);
        // Step 0, as `decide` runs it: an enforced invalid path stops before the rules.
        let enforce_path = self.enforces_paths && self.mode != Mode::DryRun;
        if enforce_path && matches!(lazy.checked_path(), CheckedPath::Invalid { .. }) {
            return out;
        }
        // Steps 1-7 alone tell how far the request got: steps 1-3 deny without naming a policy,
        // step 4 names its certificate rule, steps 5 and 7 have their own reasons.
        let enforced = self.decide_enforced(&lazy, peer, now);
        let by_policy = matches!(enforced.reason(), Some(Reason::DeniedByPolicy | Reason::NoMatchingAllow));
        let stopped_at_cert_rule = if enforced.allowed() || by_policy {
            None
        } else {
            match &enforced.policy {
                None => return out,
                Some(name) => Some(self.certificate_rule_names().iter().position(|n| n == name).unwrap_or(usize::MAX)),
            }
        };
        let (cert, attrs) = match peer {
            Peer::Certificate(p) => (Some(&p.facts), None),
            Peer::Attributes(a) => (None, Some(*a)),
            Peer::None | Peer::Unparseable | Peer::LinkerdClientId(_) => (None, None),
        };
        let ctx = EvalCtx {
            identity: enforced.identity.as_deref(),
            cert,
            attr_subject: attrs.and_then(|a| a.subject.as_deref()),
            attr_uri_san: attrs.and_then(|a| a.uri_san.as_deref()),
            req: &lazy,
        };
        for (i, rule) in self.cert_rules.iter().enumerate() {
            if stopped_at_cert_rule.is_some_and(|k| i > k) {
                break;
            }
            if rule.to.as_ref().is_none_or(|t| t.iter().any(|o| o.matches(&ctx))) {
                out.certificate_rules.push(i);
            }
        }
        if stopped_at_cert_rule.is_some() {
            return out;
        }
        out.reached_policies = true;
        for set in self.rule_sets() {
            for (r, rule) in self.refs_of(set) {
                if rule.matches(&ctx) {
                    out.rules.push(r);
                }
            }
        }
        out.rules.sort();
        out
    }

    fn rule_sets(&self) -> [&RuleSet; 5] {
        let p = &self.policies;
        [&p.deny, &p.dry_deny, &p.audit, &p.allow, &p.dry_allow]
    }

    /// The rules of one set with their place in the document. A policy's rules all go to one set,
    /// in order, so the j-th rule of policy P in a set is `rules[j]` of P.
    fn refs_of<'s>(&self, set: &'s RuleSet) -> Vec<(RuleRef, &'s crate::rule::CompiledRule)> {
        let policies = self.policy_list();
        let mut counts = vec![0usize; policies.len()];
        let mut out = Vec::with_capacity(set.rules.len());
        for rule in &set.rules {
            let index = policies
                .iter()
                .position(|p| Arc::ptr_eq(p, &rule.policy))
                .or_else(|| policies.iter().position(|p| *p == rule.policy));
            let Some(pi) = index else { continue };
            let Some(count) = counts.get_mut(pi) else { continue };
            out.push((RuleRef { policy_index: pi, rule_index: *count, policy: rule.policy.clone() }, rule));
            *count += 1;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::Request;

    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    const POLICY: &str = r#"{
      "mtls": "permissive",
      "policies": [
        {"name": "block-admin", "action": "DENY", "rules": [{"to": [{"operation": {"paths": ["/admin*"]}}]}]},
        {"name": "reads", "action": "ALLOW", "rules": [
          {"to": [{"operation": {"methods": ["GET"]}}]},
          {"to": [{"operation": {"paths": ["/admin*", "/healthz"]}}]}
        ]},
        {"name": "empty", "action": "ALLOW"}
      ]
    }"#;

    fn explain(engine: &Engine, method: &str, path: &str) -> Explanation {
        let headers: Vec<(String, String)> = Vec::new();
        let req = Request { method, path, host: "localhost", port: None, sni: None, headers: &headers };
        let e = engine.explain(&req, &Peer::None, 0);
        assert_eq!(e.decision, engine.decide(&req, &Peer::None, 0), "explain must not change the decision");
        e
    }

    #[test]
    fn lists_every_rule_that_held_with_its_document_path() {
        let engine = Engine::from_json(POLICY).unwrap();
        let paths: Vec<String> = engine.rule_refs().iter().map(RuleRef::path).collect();
        assert_eq!(paths, ["policies[0].rules[0]", "policies[1].rules[0]", "policies[1].rules[1]"]);
        assert_eq!(&*engine.policy_list()[2], "empty");

        let e = explain(&engine, "GET", "/admin/x");
        assert!(!e.decision.allowed());
        assert!(e.reached_policies);
        let got: Vec<String> = e.rules.iter().map(RuleRef::path).collect();
        assert_eq!(got, ["policies[0].rules[0]", "policies[1].rules[0]", "policies[1].rules[1]"]);

        let e = explain(&engine, "POST", "/healthz");
        assert!(e.decision.allowed());
        let got: Vec<String> = e.rules.iter().map(RuleRef::path).collect();
        assert_eq!(got, ["policies[1].rules[1]"]);
    }

    #[test]
    fn a_request_refused_before_the_rules_matched_none() {
        let strict = POLICY.replace("permissive", "strict");
        let engine = Engine::from_json(&strict).unwrap();
        let e = explain(&engine, "GET", "/healthz");
        assert_eq!(e.decision.reason(), Some(Reason::NoPeerCertificate));
        assert!(!e.reached_policies);
        assert!(e.rules.is_empty());
        // An enforced invalid path stops at step 0.
        let engine = Engine::from_json(POLICY).unwrap();
        let e = explain(&engine, "GET", "/a%2Fb");
        assert_eq!(e.decision.reason(), Some(Reason::InvalidPath));
        assert!(e.rules.is_empty());
    }
}
