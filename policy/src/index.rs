//! The rules of each action, indexed by principal (exact or prefix), namespace, host or path
//! (exact or prefix) so that a decision does not scan every rule.

use std::sync::Arc;

use crate::fnv::{FnvHashMap, FnvHashSet};
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

/// Rules reachable from one attribute of the request: exact values in a map, prefixes in a map
/// probed once per distinct prefix length (a handful in real policies), so a lookup costs a few
/// hash probes whatever the number of rules.
#[derive(Debug, Default)]
pub(crate) struct KeyIndex {
    exact: FnvHashMap<String, Vec<u32>>,
    prefixes: FnvHashMap<String, Vec<u32>>,
    /// Distinct lengths (bytes) of the keys in `prefixes`, ascending.
    prefix_lens: Vec<usize>,
}

impl KeyIndex {
    fn insert(&mut self, exact: &FnvHashSet<String>, prefixes: &[String], id: u32) {
        for k in exact {
            push_once(self.exact.entry(k.clone()).or_default(), id);
        }
        for p in prefixes {
            push_once(self.prefixes.entry(p.clone()).or_default(), id);
            if let Err(at) = self.prefix_lens.binary_search(&p.len()) {
                self.prefix_lens.insert(at, p.len());
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.prefixes.is_empty()
    }

    /// Every list of rules whose key matches `v` exactly or is a prefix of it.
    fn lookup<'s>(&'s self, v: &str, out: &mut Vec<&'s [u32]>) {
        if let Some(ids) = self.exact.get(v) {
            out.push(ids);
        }
        for &n in &self.prefix_lens {
            // `get` is None past the end or inside a character, where no UTF-8 prefix can end.
            match v.get(..n) {
                Some(head) => {
                    if let Some(ids) = self.prefixes.get(head) {
                        out.push(ids);
                    }
                }
                None if n > v.len() => break,
                None => {}
            }
        }
    }
}

/// Ids are pushed in ascending order; a rule listing one key twice is listed once.
fn push_once(ids: &mut Vec<u32>, id: u32) {
    if ids.last() != Some(&id) {
        ids.push(id);
    }
}

/// Rules of one action, with an index so that a decision does not scan every rule.
///
/// A rule goes under one index whose attribute EVERY alternative of the rule constrains (each
/// `from` source for principals and namespaces, each `to` operation for hosts and paths), so a
/// rule that matches a request is always among the candidates for it; rules no index covers are
/// always evaluated. Debug builds check each answer against a scan of every rule.
#[derive(Debug, Default)]
pub(crate) struct RuleSet {
    pub rules: Vec<CompiledRule>,
    /// Rules whose every source lists only exact or prefix principals.
    pub by_principal: KeyIndex,
    /// Rules whose every source lists only exact namespaces (without `/`), by namespace.
    pub by_namespace: FnvHashMap<String, Vec<u32>>,
    /// Rules whose every operation lists only exact or prefix hosts.
    pub by_host: KeyIndex,
    /// Rules whose every operation lists only exact or prefix paths (no templates).
    pub by_path: KeyIndex,
    /// Rules that must always be evaluated.
    pub unindexed: Vec<u32>,
}

/// The union of `keys` over every alternative, or None when one alternative has no such keys.
fn every<'r, T: 'r>(
    alternatives: Option<&'r [T]>,
    keys: impl Fn(&'r T) -> Option<(&'r FnvHashSet<String>, &'r [String])>,
) -> Option<Vec<(&'r FnvHashSet<String>, &'r [String])>> {
    alternatives.filter(|a| !a.is_empty())?.iter().map(keys).collect()
}

impl RuleSet {
    pub(crate) fn push(&mut self, rule: CompiledRule) {
        let id = u32::try_from(self.rules.len()).unwrap_or(u32::MAX);
        let sources = rule.from.as_deref();
        let ops = rule.to.as_deref();
        let namespace_keys = sources.filter(|s| !s.is_empty()).and_then(|ss| {
            ss.iter()
                .map(|s| s.namespaces.as_deref().and_then(NamespaceMatcher::exact_only))
                .collect::<Option<Vec<_>>>()
        });
        if let Some(sets) = every(sources, |s| s.principals.as_deref().and_then(StringMatcher::exact_and_prefixes)) {
            for (exact, prefixes) in sets {
                self.by_principal.insert(exact, prefixes, id);
            }
        } else if let Some(sets) = namespace_keys {
            for k in sets.into_iter().flatten() {
                push_once(self.by_namespace.entry(k.clone()).or_default(), id);
            }
        } else if let Some(sets) = every(ops, |o| o.hosts.as_deref().and_then(StringMatcher::exact_and_prefixes)) {
            for (exact, prefixes) in sets {
                self.by_host.insert(exact, prefixes, id);
            }
        } else if let Some(sets) = every(ops, |o| {
            o.paths.as_deref().filter(|p| p.templates.is_empty()).and_then(|p| p.strings.exact_and_prefixes())
        }) {
            for (exact, prefixes) in sets {
                self.by_path.insert(exact, prefixes, id);
            }
        } else {
            self.unindexed.push(id);
        }
        self.rules.push(rule);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The candidate rule ids for this request: indexed hits and the unindexed rules. The host
    /// and path are read only when rules are indexed by them (they would be read to match anyway).
    fn candidates<'s>(&'s self, ctx: &EvalCtx<'_>) -> Vec<&'s [u32]> {
        let mut lists: Vec<&[u32]> = Vec::with_capacity(4);
        if let Some(p) = ctx.principal() {
            self.by_principal.lookup(p, &mut lists);
            if !self.by_namespace.is_empty() {
                for ns in namespace::index_keys(p) {
                    if let Some(ids) = self.by_namespace.get(ns) {
                        lists.push(ids);
                    }
                }
            }
        }
        if !self.by_host.is_empty() {
            if let Some(host) = ctx.req.host() {
                self.by_host.lookup(host, &mut lists);
                // `host:port` also matches a rule for `host` (as the rule itself matches).
                if let (name, Some(_)) = crate::request::split_host_port(host) {
                    self.by_host.lookup(name, &mut lists);
                }
            }
        }
        if !self.by_path.is_empty() {
            if let Some(path) = ctx.req.path() {
                self.by_path.lookup(path, &mut lists);
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
        debug_assert_eq!(best, self.scan_first(ctx), "the index missed a matching rule");
        best.and_then(|id| self.rules.get(id as usize))
    }

    /// The first matching rule by scanning every rule: what the index must agree with (called
    /// only with debug assertions on).
    fn scan_first(&self, ctx: &EvalCtx<'_>) -> Option<u32> {
        self.rules.iter().position(|r| r.matches(ctx)).and_then(|i| u32::try_from(i).ok())
    }

    /// Every matching rule's policy, once per policy, in document order.
    pub(crate) fn all_matching_policies(&self, ctx: &EvalCtx<'_>) -> Vec<Arc<str>> {
        let mut ids: Vec<u32> = self.candidates(ctx).into_iter().flatten().copied().collect();
        ids.sort_unstable();
        ids.dedup();
        #[cfg(debug_assertions)]
        for (i, r) in self.rules.iter().enumerate() {
            debug_assert!(!r.matches(ctx) || ids.binary_search(&(i as u32)).is_ok(), "the index missed rule {i}");
        }
        let mut out: Vec<Arc<str>> = Vec::new();
        for r in ids.iter().filter_map(|&id| self.rules.get(id as usize)) {
            if r.matches(ctx) && !out.iter().any(|p| Arc::ptr_eq(p, &r.policy)) {
                out.push(r.policy.clone());
            }
        }
        out
    }
}
