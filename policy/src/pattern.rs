//! Istio string patterns (exact, `prefix*`, `*suffix`, `*`) compiled into indexed matchers.

use crate::error::ConfigError;
use crate::fnv::FnvHashSet;

/// One Istio-style string pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pattern {
    /// The value equals the string.
    Exact(String),
    /// `prefix*`: the value starts with the string.
    Prefix(String),
    /// `*suffix`: the value ends with the string.
    Suffix(String),
    /// `*`: the value is present and non-empty.
    Present,
}

/// Why a pattern string was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PatternError {
    /// An empty string matches nothing useful and is almost always a typo.
    Empty,
    /// Istio supports `*` only at the start or end of a pattern.
    InnerWildcard,
}

impl core::fmt::Display for PatternError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            PatternError::Empty => f.write_str("empty pattern; use \"*\" to mean any non-empty value"),
            PatternError::InnerWildcard => f.write_str(
                "'*' is allowed only as the whole pattern, at the start (\"*suffix\") or at the end (\"prefix*\"), as in Istio",
            ),
        }
    }
}

impl Pattern {
    /// Parses one pattern in Istio's syntax.
    pub fn parse(s: &str) -> Result<Pattern, PatternError> {
        if s.is_empty() {
            return Err(PatternError::Empty);
        }
        if s == "*" {
            return Ok(Pattern::Present);
        }
        if let Some(rest) = s.strip_suffix('*') {
            if rest.contains('*') {
                return Err(PatternError::InnerWildcard);
            }
            return Ok(Pattern::Prefix(rest.to_owned()));
        }
        if let Some(rest) = s.strip_prefix('*') {
            if rest.contains('*') {
                return Err(PatternError::InnerWildcard);
            }
            return Ok(Pattern::Suffix(rest.to_owned()));
        }
        if s.contains('*') {
            return Err(PatternError::InnerWildcard);
        }
        Ok(Pattern::Exact(s.to_owned()))
    }

    /// Lower-cases the pattern text, for case-insensitive fields such as hosts.
    pub fn to_lowercase(&self) -> Pattern {
        match self {
            Pattern::Exact(s) => Pattern::Exact(s.to_ascii_lowercase()),
            Pattern::Prefix(s) => Pattern::Prefix(s.to_ascii_lowercase()),
            Pattern::Suffix(s) => Pattern::Suffix(s.to_ascii_lowercase()),
            Pattern::Present => Pattern::Present,
        }
    }

    /// Whether `value` matches this one pattern.
    pub fn matches(&self, value: &str) -> bool {
        match self {
            Pattern::Exact(s) => value == s,
            Pattern::Prefix(p) => value.starts_with(p.as_str()),
            Pattern::Suffix(p) => value.ends_with(p.as_str()),
            Pattern::Present => !value.is_empty(),
        }
    }
}

/// Parses a policy's list of patterns found at `path`, recording every bad entry (and an empty
/// list, which in Istio would mean "unset" and widen the rule) in `errors`; `lowercase` for
/// values compared without case (hosts).
pub(crate) fn parse_list(
    values: &[String],
    path: &str,
    lowercase: bool,
    errors: &mut Vec<ConfigError>,
) -> Vec<Pattern> {
    if values.is_empty() {
        errors.push(ConfigError::new(path, "empty list; remove the field, or use [\"*\"] to mean any value"));
    }
    let mut out = Vec::with_capacity(values.len());
    for (i, v) in values.iter().enumerate() {
        match Pattern::parse(v) {
            Ok(p) => out.push(if lowercase { p.to_lowercase() } else { p }),
            Err(e) => errors.push(ConfigError::new(format!("{path}[{i}]"), e.to_string())),
        }
    }
    out
}

/// A set of ORed patterns, with the exact values in a hash set so that
/// large lists cost one lookup instead of a scan.
#[derive(Clone, Debug, Default)]
pub struct StringMatcher {
    exact: FnvHashSet<String>,
    prefixes: Vec<String>,
    suffixes: Vec<String>,
    present: bool,
}

impl StringMatcher {
    /// Builds a matcher from parsed patterns.
    pub fn new(patterns: impl IntoIterator<Item = Pattern>) -> StringMatcher {
        let mut m = StringMatcher::default();
        for p in patterns {
            match p {
                Pattern::Exact(s) => {
                    m.exact.insert(s);
                }
                Pattern::Prefix(s) => m.prefixes.push(s),
                Pattern::Suffix(s) => m.suffixes.push(s),
                Pattern::Present => m.present = true,
            }
        }
        m
    }

    /// The exact values and the prefixes when the matcher has no suffix and no `*`; used for
    /// indexing (a prefix is never empty: a lone `*` is presence).
    pub fn exact_and_prefixes(&self) -> Option<(&FnvHashSet<String>, &[String])> {
        (self.suffixes.is_empty() && !self.present).then_some((&self.exact, self.prefixes.as_slice()))
    }

    /// Whether a present value matches any pattern. An absent value never matches.
    pub fn matches(&self, value: Option<&str>) -> bool {
        let Some(v) = value else { return false };
        if self.present && !v.is_empty() {
            return true;
        }
        self.exact.contains(v)
            || self.prefixes.iter().any(|p| v.starts_with(p.as_str()))
            || self.suffixes.iter().any(|s| v.ends_with(s.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn m(patterns: &[&str]) -> StringMatcher {
        StringMatcher::new(patterns.iter().map(|p| Pattern::parse(p).unwrap()))
    }

    #[test]
    fn pattern_syntax_follows_istio() {
        assert_eq!(Pattern::parse("a"), Ok(Pattern::Exact("a".into())));
        assert_eq!(Pattern::parse("a*"), Ok(Pattern::Prefix("a".into())));
        assert_eq!(Pattern::parse("*a"), Ok(Pattern::Suffix("a".into())));
        assert_eq!(Pattern::parse("*"), Ok(Pattern::Present));
        assert_eq!(Pattern::parse(""), Err(PatternError::Empty));
        assert_eq!(Pattern::parse("a*b"), Err(PatternError::InnerWildcard));
        assert_eq!(Pattern::parse("**"), Err(PatternError::InnerWildcard));
        assert_eq!(Pattern::parse("*a*"), Err(PatternError::InnerWildcard));
    }

    #[test]
    fn matcher_table() {
        // (patterns, value, expected)
        let cases: &[(&[&str], Option<&str>, bool)] = &[
            (&["a"], Some("a"), true),
            (&["a"], Some("ab"), false),
            (&["a*"], Some("ab"), true),
            (&["a*"], Some("ba"), false),
            (&["*b"], Some("ab"), true),
            (&["*b"], Some("ba"), false),
            (&["*"], Some("x"), true),
            (&["*"], Some(""), false),
            (&["*"], None, false),
            (&["a"], None, false),
            (&["x", "y*", "*z"], Some("yes"), true),
            (&["x", "y*", "*z"], Some("quiz"), true),
            (&["x", "y*", "*z"], Some("nope"), false),
            // The prefix "" is not expressible; a lone "*" is presence, not prefix "".
            (&["*"], Some("anything"), true),
        ];
        for (patterns, value, expected) in cases {
            assert_eq!(m(patterns).matches(*value), *expected, "{patterns:?} vs {value:?}");
        }
    }

    #[test]
    fn exact_and_prefixes_are_reported_only_without_suffixes_or_presence() {
        let both = m(&["a", "b*"]);
        let (exact, prefixes) = both.exact_and_prefixes().unwrap();
        assert!(exact.contains("a") && exact.len() == 1);
        assert_eq!(prefixes, ["b".to_owned()]);
        assert!(m(&["a", "*b"]).exact_and_prefixes().is_none());
        assert!(m(&["*"]).exact_and_prefixes().is_none());
    }
}
