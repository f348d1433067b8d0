//! `namespaces` and `source.namespace`, matched exactly as Istio matches them.
//!
//! Istio turns a namespace `NS` into the regex `.*/ns/NS/.*` against the whole URI
//! `spiffe://TD/PATH` (a `*` in the pattern becomes `.*`). So the rule holds wherever `/ns/NS/`
//! occurs: `spiffe://td/k8s/ns/prod/sa/x` is in `prod`, and so is `spiffe://ns/prod/x` (the
//! trust domain is `ns`). Matching only the form `TD/ns/NS/sa/SA` let a DENY on a namespace
//! miss nested paths that Istio denies. CN and DNS principals never contain `/`, so they are in
//! no namespace.

use crate::fnv::FnvHashSet;
use crate::pattern::Pattern;

/// Compiled namespace patterns, ORed.
#[derive(Clone, Debug, Default)]
pub(crate) struct NamespaceMatcher {
    /// Exact namespaces without `/`: looked up by the segment after each `/ns/`.
    segments: FnvHashSet<String>,
    /// Every other pattern (an exact value with `/` is matched literally, as Istio's regex does).
    others: Vec<Pattern>,
}

/// Each text that follows a `/ns/` in `spiffe://` + `principal`, overlapping occurrences included.
fn after_ns(principal: &str) -> impl Iterator<Item = &str> {
    // `spiffe://` ends in `/`, so a principal starting with `ns/` has a `/ns/` at its start.
    let at_start = principal.strip_prefix("ns/");
    let inner = principal
        .char_indices()
        .filter(|&(_, c)| c == '/')
        .filter_map(move |(i, _)| principal.get(i..).and_then(|s| s.strip_prefix("/ns/")));
    at_start.into_iter().chain(inner)
}

/// The namespaces a principal is in, for the rule index: each segment after a `/ns/` that is
/// followed by `/`.
pub(crate) fn index_keys(principal: &str) -> impl Iterator<Item = &str> {
    after_ns(principal).filter_map(|rest| rest.split_once('/').map(|(seg, _)| seg))
}

impl NamespaceMatcher {
    pub(crate) fn new(patterns: impl IntoIterator<Item = Pattern>) -> NamespaceMatcher {
        let mut m = NamespaceMatcher::default();
        for p in patterns {
            match p {
                Pattern::Exact(ns) if !ns.contains('/') => {
                    m.segments.insert(ns);
                }
                other => m.others.push(other),
            }
        }
        m
    }

    /// The exact namespaces when there is no other pattern; used for indexing.
    pub(crate) fn exact_only(&self) -> Option<&FnvHashSet<String>> {
        self.others.is_empty().then_some(&self.segments)
    }

    /// Whether the principal is in one of the namespaces. No principal is in none.
    pub(crate) fn matches(&self, principal: Option<&str>) -> bool {
        let Some(p) = principal else { return false };
        after_ns(p).any(|rest| {
            let segment_hit = rest.split_once('/').is_some_and(|(seg, _)| self.segments.contains(seg));
            segment_hit
                || self.others.iter().any(|pat| match pat {
                    // `.*/ns/NS/.*`
                    Pattern::Exact(ns) => rest.strip_prefix(ns.as_str()).is_some_and(|r| r.starts_with('/')),
                    // `.*/ns/PREFIX.*/.*`
                    Pattern::Prefix(pre) => rest.strip_prefix(pre.as_str()).is_some_and(|r| r.contains('/')),
                    // `.*/ns/.*SUFFIX/.*`
                    Pattern::Suffix(suf) => rest
                        .match_indices(suf.as_str())
                        .any(|(i, _)| rest.get(i + suf.len()..).is_some_and(|r| r.starts_with('/'))),
                    // `.*/ns/.*/.*`
                    Pattern::Present => rest.contains('/'),
                })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn m(patterns: &[&str]) -> NamespaceMatcher {
        NamespaceMatcher::new(patterns.iter().map(|p| Pattern::parse(p).unwrap()))
    }

    #[test]
    fn namespace_is_matched_wherever_istio_regex_matches() {
        let prod = m(&["prod"]);
        for (principal, want) in [
            ("cluster.local/ns/prod/sa/admin", true),
            ("cluster.local/ns/prod/sa/admin/pod/x", true),
            ("cluster.local/k8s/ns/prod/sa/admin", true),
            ("ns/prod/x", true),
            ("cluster.local/ns/ns/prod/x", true),
            ("cluster.local/ns/prod", false),
            ("cluster.local/ns/production/sa/x", false),
            ("cluster.local/ns/dev/sa/prod", false),
            ("prod", false),
        ] {
            assert_eq!(prod.matches(Some(principal)), want, "{principal}");
        }
        assert!(!prod.matches(None));
    }

    #[test]
    fn wildcard_namespaces_follow_istio_regex() {
        assert!(m(&["prod*"]).matches(Some("td/ns/production/sa/x")));
        assert!(m(&["prod*"]).matches(Some("td/ns/prod/x")));
        assert!(!m(&["prod*"]).matches(Some("td/ns/production")));
        assert!(m(&["*prod"]).matches(Some("td/ns/preprod/sa/x")));
        assert!(!m(&["*prod"]).matches(Some("td/ns/prodx/sa/x")));
        assert!(m(&["*"]).matches(Some("td/ns/a/b")));
        assert!(!m(&["*"]).matches(Some("td/sa/a")));
    }

    #[test]
    fn index_keys_list_every_nested_namespace() {
        let keys: Vec<&str> = index_keys("ns/a/x/ns/b/ns/c").collect();
        assert_eq!(keys, vec!["a", "b"]);
    }
}
