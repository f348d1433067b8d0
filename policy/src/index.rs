//! The rules of each action, indexed by exact principal and namespace so that a decision does not scan every rule.

use std::sync::Arc;

use crate::fnv::FnvHashMap;
use crate::namespace::{self, NamespaceMatcher};
use crate::pattern::StringMatcher;
use crate::rule::{CompiledRule, EvalCtx};

/// The rule sets of every action, in the order the decision reads them, filled while compiling
/// the policies.
#[derive(Debug, Default)]
pub(crate) struct PolicySets {
    pub deny: RuleSet,
    pub dry_deny: RuleSet,
    pub audit: RuleSet,
    pub allow: RuleSet,
    pub dry_allow: RuleSet,
    /// Number of ALLOW policies (a policy with no rules still counts: it denies everything).
    pub allow_policies: usize,
    pub dry_allow_policies: usize,
}

/// Rules of one action, with an index so that a decision does not scan every rule.
#[derive(Debug, Default)]
pub(crate) struct RuleSet {
    pub rules: Vec<CompiledRule>,
    /// Rules whose every source lists only exact principals, by principal.
    pub by_principal: FnvHashMap<String, Vec<u32>>,
    /// Rules whose every source lists only exact namespaces (without `/`), by namespace.
    pub by_namespace: FnvHashMap<String, Vec<u32>>,
    /// Rules that must always be evaluated.
    pub unindexed: Vec<u32>,
}

impl RuleSet {
    pub(crate) fn push(&mut self, rule: CompiledRule) {
        let id = u32::try_from(self.rules.len()).unwrap_or(u32::MAX);
        let sources = rule.from.as_deref().filter(|s| !s.is_empty());
        let principal_keys = sources.and_then(|ss| {
            ss.iter().map(|s| s.principals.as_deref().and_then(StringMatcher::exact_only)).collect::<Option<Vec<_>>>()
        });
        let namespace_keys = sources.and_then(|ss| {
            ss.iter()
                .map(|s| s.namespaces.as_deref().and_then(NamespaceMatcher::exact_only))
                .collect::<Option<Vec<_>>>()
        });
        if let Some(sets) = principal_keys {
            for k in sets.into_iter().flatten() {
                self.by_principal.entry(k.clone()).or_default().push(id);
            }
        } else if let Some(sets) = namespace_keys {
            for k in sets.into_iter().flatten() {
                self.by_namespace.entry(k.clone()).or_default().push(id);
            }
        } else {
            self.unindexed.push(id);
        }
        self.rules.push(rule);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The candidate rule ids for this request: indexed hits and the unindexed rules.
    fn candidates<'s>(&'s self, ctx: &EvalCtx<'_>) -> Vec<&'s [u32]> {
        let mut lists: Vec<&[u32]> = Vec::with_capacity(3);
        if let Some(p) = ctx.principal() {
            if let Some(ids) = self.by_principal.get(p) {
                lists.push(ids);
            }
            if !self.by_namespace.is_empty() {
                for ns in namespace::index_keys(p) {
                    if let Some(ids) = self.by_namespace.get(ns) {
                        lists.push(ids);
                    }
                }
            }
        }
        lists.push(&self.unindexed);
        lists
    }

    /// The first rule, in document order, that matches.
    pub(crate) fn first_match(&self, ctx: &EvalCtx<'_>) -> Option<&CompiledRule> {
        let mut best: Option<u32> = None;
        for ids in self.candidates(ctx) {
            for &id in ids {
                if best.is_some_and(|b| b <= id) {
                    break;
                }
                if self.rules.get(id as usize).is_some_and(|r| r.matches(ctx)) {
                    best = Some(id);
                    break;
                }
            }
        }
        best.and_then(|id| self.rules.get(id as usize))
    }

    /// Every matching rule's policy, once per policy, in document order.
    pub(crate) fn all_matching_policies(&self, ctx: &EvalCtx<'_>) -> Vec<Arc<str>> {
        let mut ids: Vec<u32> = self.candidates(ctx).into_iter().flatten().copied().collect();
        ids.sort_unstable();
        ids.dedup();
        let mut out: Vec<Arc<str>> = Vec::new();
        for r in ids.iter().filter_map(|&id| self.rules.get(id as usize)) {
            if r.matches(ctx) && !out.iter().any(|p| Arc::ptr_eq(p, &r.policy)) {
                out.push(r.policy.clone());
            }
        }
        out
    }
}
