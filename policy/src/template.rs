//! Istio path templates in `paths` and `notPaths`: `{*}` is one path segment, `{**}` the rest.
//!
//! Istio hands a path containing `{*}` or `{**}` to Envoy's URI template matcher, where `*`
//! matches exactly one non-empty segment and `**`, which must be the last operator, one or more
//! characters up to the end of the path (so one or more segments). Operators are whole
//! segments. Any other `{`, `}` or an inner `*` is refused when the policy is compiled.

use std::fmt;

/// One segment of a template.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    Literal(String),
    /// `{*}`
    One,
    /// `{**}`: only last.
    Rest,
}

/// A compiled path template, e.g. `/api/{*}/admin` or `/files/{**}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PathTemplate {
    segments: Vec<Segment>,
}

/// Why a template was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum TemplateError {
    /// `{**}` is not the last segment.
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
            TemplateError::RestNotLast => f.write_str("{**} is allowed only as the last segment, as in Istio"),
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
        let parts: Vec<&str> = rest.split('/').collect();
        let last = parts.len().saturating_sub(1);
        let mut segments = Vec::with_capacity(parts.len());
        for (i, part) in parts.iter().enumerate() {
            segments.push(match *part {
                "{*}" => Segment::One,
                "{**}" if i == last => Segment::Rest,
                "{**}" => return Err(TemplateError::RestNotLast),
                p if p.contains(['{', '}']) => return Err(TemplateError::BadOperator((*p).to_owned())),
                p if p.contains('*') => return Err(TemplateError::Glob),
                p => Segment::Literal(p.to_owned()),
            });
        }
        Ok(PathTemplate { segments })
    }

    /// The literal segments, for the normal-form check of the pattern.
    pub(crate) fn literals(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().filter_map(|s| match s {
            Segment::Literal(l) => Some(l.as_str()),
            _ => None,
        })
    }

    /// Whether a normalized path (no query) matches.
    pub(crate) fn matches(&self, path: &str) -> bool {
        let Some(mut rest) = path.strip_prefix('/') else { return false };
        let n = self.segments.len();
        for (i, seg) in self.segments.iter().enumerate() {
            let is_last = i + 1 == n;
            let (head, tail) = match rest.split_once('/') {
                Some((h, t)) => (h, Some(t)),
                None => (rest, None),
            };
            match seg {
                // One or more characters to the end of the path.
                Segment::Rest => return !rest.is_empty(),
                Segment::One if head.is_empty() => return false,
                Segment::One => {}
                Segment::Literal(l) if head != l => return false,
                Segment::Literal(_) => {}
            }
            match (is_last, tail) {
                (true, None) => return true,
                (true, Some(_)) | (false, None) => return false,
                (false, Some(t)) => rest = t,
            }
        }
        false
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
    fn rest_operator_matches_one_or_more_segments_at_the_end() {
        let tpl = t("/files/{**}");
        assert!(tpl.matches("/files/a"));
        assert!(tpl.matches("/files/a/b/c"));
        assert!(tpl.matches("/files/a/"));
        assert!(!tpl.matches("/files/"));
        assert!(!tpl.matches("/files"));
        assert!(t("/{*}/x/{**}").matches("/a/x/b/c"));
    }

    #[test]
    fn templates_are_validated_as_istio_does() {
        assert_eq!(PathTemplate::parse("/a/{**}/b"), Err(TemplateError::RestNotLast));
        assert!(matches!(PathTemplate::parse("/a{*}"), Err(TemplateError::BadOperator(_))));
        assert!(matches!(PathTemplate::parse("/{x}/{*}"), Err(TemplateError::BadOperator(_))));
        assert_eq!(PathTemplate::parse("/a*/{*}"), Err(TemplateError::Glob));
        assert_eq!(PathTemplate::parse("{*}/a"), Err(TemplateError::NotAbsolute));
        assert!(is_template("/a/{*}") && is_template("/{**}") && !is_template("/a/{x}"));
    }
}
