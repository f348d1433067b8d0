//! Istio path templates in `paths` and `notPaths`: `{*}` is one path segment, `{**}` the rest.
//!
//! Istio hands a path containing `{*}` or `{**}` to Envoy's URI template matcher, where `*`
//! matches exactly one non-empty segment and `**`, which must be the last operator, zero or more
//! characters, slashes included (istio/api: "`{**}` matches zero or more globs"; found by the
//! differential test against Envoy: `/admin/{**}` matches `/admin/`). Literal segments may follow
//! `{**}` (`/{**}/path/template`), operators may not. Operators are whole segments. Any other
//! `{`, `}` or an inner `*` is refused when the policy is compiled.

use std::fmt;

/// One segment of a template.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    Literal(String),
    /// `{*}`
    One,
}

/// A compiled path template, e.g. `/api/{*}/admin` or `/files/{**}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PathTemplate {
    /// The segments before `{**}` (or all of them when there is none).
    head: Vec<Segment>,
    /// With `{**}`: what must follow it, `/` plus the literal segments after it (or empty).
    rest_then: Option<String>,
}

/// Why a template was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum TemplateError {
    /// An operator follows `{**}`, or there are two.
    RestNotLast,
    /// An operator is not a whole segment (`/a{*}`), or `{`/`}` is used otherwise.
    BadOperator(String),
    /// A glob `*` outside an operator.
    Glob,
    /// The template does not start with `/`.
    NotAbsolute,
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TemplateError::RestNotLast => {
                f.write_str("{**} must be the last operator (only literal segments may follow it), as in Istio")
            }
            TemplateError::BadOperator(s) => {
                write!(f, "{s:?}: path template operators are whole segments, exactly {{*}} or {{**}}")
            }
            TemplateError::Glob => f.write_str("a path template cannot also use '*' outside {*} and {**}"),
            TemplateError::NotAbsolute => f.write_str("a path template starts with '/'"),
        }
    }
}

/// Whether a pattern is a path template (holds `{*}` or `{**}`; Istio's own test).
pub(crate) fn is_template(pattern: &str) -> bool {
    pattern.contains("{*}") || pattern.contains("{**}")
}

impl PathTemplate {
    pub(crate) fn parse(pattern: &str) -> Result<PathTemplate, TemplateError> {
        let rest = pattern.strip_prefix('/').ok_or(TemplateError::NotAbsolute)?;
        let mut head = Vec::new();
        let mut after: Option<Vec<&str>> = None;
        for part in rest.split('/') {
            let operator = match part {
                "{*}" => Some(Segment::One),
                "{**}" => None,
                p if p.contains(['{', '}']) => return Err(TemplateError::BadOperator(p.to_owned())),
                p if p.contains('*') => return Err(TemplateError::Glob),
                p => Some(Segment::Literal(p.to_owned())),
            };
            match (&mut after, operator) {
                (None, None) => after = Some(Vec::new()),
                (None, Some(seg)) => head.push(seg),
                (Some(_), None | Some(Segment::One)) => return Err(TemplateError::RestNotLast),
                (Some(lits), Some(Segment::Literal(_))) => lits.push(part),
            }
        }
        let rest_then = after.map(|lits| lits.iter().map(|l| format!("/{l}")).collect::<String>());
        Ok(PathTemplate { head, rest_then })
    }

    /// The literal segments, for the normal-form check of the pattern.
    pub(crate) fn literals(&self) -> impl Iterator<Item = &str> {
        let head = self.head.iter().filter_map(|s| match s {
            Segment::Literal(l) => Some(l.as_str()),
            Segment::One => None,
        });
        let tail = self.rest_then.iter().flat_map(|t| t.split('/').skip(1));
        head.chain(tail)
    }

    /// Whether a normalized path (no query) matches.
    pub(crate) fn matches(&self, path: &str) -> bool {
        let Some(mut rest) = path.strip_prefix('/') else { return false };
        let n = self.head.len();
        for (i, seg) in self.head.iter().enumerate() {
            let is_last = i + 1 == n && self.rest_then.is_none();
            let (segment, tail) = match rest.split_once('/') {
                Some((h, t)) => (h, Some(t)),
                None => (rest, None),
            };
            match seg {
                Segment::One if segment.is_empty() => return false,
                Segment::One => {}
                Segment::Literal(l) if segment != l => return false,
                Segment::Literal(_) => {}
            }
            match (is_last, tail) {
                (true, None) => return true,
                (true, Some(_)) | (false, None) => return false,
                (false, Some(t)) => rest = t,
            }
        }
        match &self.rest_then {
            // `{**}`: anything (also nothing), then the literal segments after it.
            Some(then) => rest.len() >= then.len() && rest.ends_with(then.as_str()),
            // Only reached for the template `/` itself.
            None => rest.is_empty(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn t(p: &str) -> PathTemplate {
        PathTemplate::parse(p).unwrap()
    }

    #[test]
    fn one_segment_operator_matches_exactly_one_non_empty_segment() {
        let tpl = t("/api/{*}/admin");
        assert!(tpl.matches("/api/v1/admin"));
        assert!(!tpl.matches("/api/v1/v2/admin"));
        assert!(!tpl.matches("/api//admin"));
        assert!(!tpl.matches("/api/admin"));
        assert!(!tpl.matches("/api/v1/admin/x"));
        assert!(t("/{*}").matches("/x"));
        assert!(!t("/{*}").matches("/"));
    }

    #[test]
    fn rest_operator_matches_zero_or_more_characters_as_envoy_does() {
        let tpl = t("/files/{**}");
        assert!(tpl.matches("/files/a"));
        assert!(tpl.matches("/files/a/b/c"));
        assert!(tpl.matches("/files/a/"));
        assert!(tpl.matches("/files/"), "zero characters");
        assert!(!tpl.matches("/files"));
        assert!(!tpl.matches("/filesx/a"));
        assert!(t("/{*}/x/{**}").matches("/a/x/b/c"));
        assert!(t("/{**}").matches("/") && t("/{**}").matches("/a/b"));
    }

    #[test]
    fn literal_segments_may_follow_the_rest_operator() {
        let tpl = t("/{**}/path/template");
        assert!(tpl.matches("/a/path/template"));
        assert!(tpl.matches("/a/b/path/template"));
        assert!(!tpl.matches("/path/template"));
        assert!(!tpl.matches("/a/path/template/x"));
        assert_eq!(tpl.literals().collect::<Vec<_>>(), vec!["path", "template"]);
    }

    #[test]
    fn templates_are_validated_as_istio_does() {
        assert_eq!(PathTemplate::parse("/a/{**}/{*}"), Err(TemplateError::RestNotLast));
        assert_eq!(PathTemplate::parse("/{**}/a/{**}"), Err(TemplateError::RestNotLast));
        assert!(PathTemplate::parse("/a/{**}/b").is_ok());
        assert!(matches!(PathTemplate::parse("/a{*}"), Err(TemplateError::BadOperator(_))));
        assert!(matches!(PathTemplate::parse("/{x}/{*}"), Err(TemplateError::BadOperator(_))));
        assert_eq!(PathTemplate::parse("/a*/{*}"), Err(TemplateError::Glob));
        assert_eq!(PathTemplate::parse("{*}/a"), Err(TemplateError::NotAbsolute));
        assert!(is_template("/a/{*}") && is_template("/{**}") && !is_template("/a/{x}"));
    }
}
