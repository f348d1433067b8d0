//! Request paths in normal form: what a rule matches must be exactly what the upstream receives.
//!
//! Normalizing only for matching is a bypass: `/admin/..%2Fusers` was matched as `/users` while
//! the upstream received a path under `/admin`. So the filter matches the normal form and, in
//! `rewrite` mode, sends that same form upstream. The normal form (docs/policy.md "Paths"):
//! percent-encoded unreserved characters (RFC 3986 §2.3) decoded, other escapes upper-cased,
//! raw bytes that a URI cannot carry (non-ASCII, space, `"<>`{}|^`) percent-encoded, repeated
//! slashes merged, then dot segments removed (RFC 3986 §5.2.4). What upstreams disagree on is
//! refused instead: escaped slashes and backslashes, raw backslashes, control characters raw or
//! escaped, malformed escapes, fragments, and `;` path parameters unless allowed.

use std::borrow::Cow;
use std::fmt;

use crate::pem::hex_val;

/// Why a path has no normal form (every one is the deny reason `invalid_path`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathError {
    /// No `:path` at all.
    Missing,
    /// The path does not start with `/` (e.g. `*` or an absolute URI).
    NotAbsolute,
    /// A `#`: fragments are never sent to servers, so one in `:path` is an attack or a bug.
    Fragment,
    /// `%2F` or `%5C` in any case: some upstreams decode it into a separator, some do not.
    EscapedSlash,
    /// A raw `\`: a separator to some upstreams (and Windows), a character to others.
    Backslash,
    /// A control character, raw or escaped (`%00`-`%1F`, `%7F`).
    ControlCharacter,
    /// A `%` not followed by two hex digits.
    MalformedEscape,
    /// A `;`: Tomcat and Spring drop `;...` segments, so `/api/.;/admin` reaches them as `/api/admin`.
    PathParameter,
    /// Under `pathNormalization: reject`, a path that differs from its normal form.
    NotNormal,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PathError::Missing => "no :path",
            PathError::NotAbsolute => "the path does not start with '/'",
            PathError::Fragment => "a '#' in the path",
            PathError::EscapedSlash => "an escaped slash or backslash (%2F, %5C)",
            PathError::Backslash => "a backslash",
            PathError::ControlCharacter => "a control character, raw or escaped",
            PathError::MalformedEscape => "a '%' not followed by two hex digits",
            PathError::PathParameter => "a ';' (path parameters are refused unless allowPathParameters)",
            PathError::NotNormal => "not in normal form (pathNormalization: reject)",
        })
    }
}

/// A request path split into its normal form and the query as sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NormalPath<'a> {
    /// The path in normal form, without the query.
    pub path: Cow<'a, str>,
    /// The query string as sent, without the `?`; `None` when there is no `?`.
    pub query: Option<&'a str>,
}

impl NormalPath<'_> {
    /// Whether the normal form differs from the path as sent (so `rewrite` must set `:path`).
    pub fn changed(&self) -> bool {
        matches!(self.path, Cow::Owned(_))
    }

    /// The `:path` to send upstream: the normal form with the query as sent.
    pub fn to_request_path(&self) -> String {
        match self.query {
            Some(q) => format!("{}?{q}", self.path),
            None => self.path.clone().into_owned(),
        }
    }
}

/// Splits `raw` at the first `?`. A `#` anywhere is refused.
fn split_query(raw: &str) -> Result<(&str, Option<&str>), PathError> {
    if raw.contains('#') {
        return Err(PathError::Fragment);
    }
    Ok(match raw.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (raw, None),
    })
}

/// The path as received, without the query (`pathNormalization: none`).
pub fn as_received(raw: &str) -> Result<&str, PathError> {
    let (path, _) = split_query(raw)?;
    if !path.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    Ok(path)
}

/// Puts `raw` (a `:path`, query included) in normal form, or says why it has none.
/// The result borrows `raw` when the path part is already normal.
pub fn normalize(raw: &str, allow_parameters: bool) -> Result<NormalPath<'_>, PathError> {
    let (path, query) = split_query(raw)?;
    if !path.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    let canonical = canonical_bytes(path, allow_parameters)?;
    let merged = merge_slashes(&canonical);
    let normal = remove_dot_segments(&merged);
    let path = if normal == path { Cow::Borrowed(path) } else { Cow::Owned(normal) };
    Ok(NormalPath { path, query })
}

/// Like [`normalize`], but only a path already in normal form passes (`pathNormalization: reject`).
pub fn require_normal(raw: &str, allow_parameters: bool) -> Result<NormalPath<'_>, PathError> {
    let n = normalize(raw, allow_parameters)?;
    if n.changed() {
        return Err(PathError::NotNormal);
    }
    Ok(n)
}

/// The path an audit line shows: the normal form when there is one, else the path as sent,
/// never the query (it often carries tokens).
pub fn for_log(raw: &str) -> Cow<'_, str> {
    match normalize(raw, true) {
        Ok(n) => n.path,
        Err(_) => Cow::Borrowed(raw.split(['?', '#']).next().unwrap_or_default()),
    }
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Raw bytes a URI path cannot carry as they are; encoded, as Envoy's (Chromium's) path
/// canonicalizer does, so that each path has one spelling.
fn must_encode(b: u8) -> bool {
    b >= 0x80 || matches!(b, b' ' | b'"' | b'<' | b'>' | b'`' | b'{' | b'}' | b'|' | b'^')
}

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

fn push_escape(out: &mut String, b: u8) {
    out.push('%');
    out.push(char::from(HEX_UPPER[usize::from(b >> 4)]));
    out.push(char::from(HEX_UPPER[usize::from(b & 0x0f)]));
}

/// Step 1: one spelling per character. Unreserved escapes decoded, other escapes upper-cased,
/// unsafe raw bytes encoded; refuses what upstreams disagree on.
fn canonical_bytes(path: &str, allow_parameters: bool) -> Result<String, PathError> {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'%' => {
                let decoded =
                    match (bytes.get(i + 1).copied().and_then(hex_val), bytes.get(i + 2).copied().and_then(hex_val)) {
                        (Some(h), Some(l)) => (h << 4) | l,
                        _ => return Err(PathError::MalformedEscape),
                    };
                match decoded {
                    b'/' | b'\\' => return Err(PathError::EscapedSlash),
                    0x00..=0x1f | 0x7f => return Err(PathError::ControlCharacter),
                    d if is_unreserved(d) => out.push(char::from(d)),
                    d => push_escape(&mut out, d),
                }
                i += 3;
                continue;
            }
            0x00..=0x1f | 0x7f => return Err(PathError::ControlCharacter),
            b'\\' => return Err(PathError::Backslash),
            b';' if !allow_parameters => return Err(PathError::PathParameter),
            b if must_encode(b) => push_escape(&mut out, b),
            b => out.push(char::from(b)),
        }
        i += 1;
    }
    Ok(out)
}

/// Step 2: `//` and longer runs become one `/` (nginx's `merge_slashes`, Envoy's option of that name).
fn merge_slashes(path: &str) -> Cow<'_, str> {
    if !path.contains("//") {
        return Cow::Borrowed(path);
    }
    let mut out = String::with_capacity(path.len());
    let mut prev_slash = false;
    for c in path.chars() {
        if c == '/' && prev_slash {
            continue;
        }
        prev_slash = c == '/';
        out.push(c);
    }
    Cow::Owned(out)
}

/// Step 3: RFC 3986 §5.2.4 on an absolute path without empty segments. `..` above the root
/// stays at the root; a trailing `.` or `..` leaves a trailing `/`.
fn remove_dot_segments(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let last = segments.len().saturating_sub(1);
    for (i, seg) in segments.iter().enumerate() {
        match *seg {
            "." | ".." => {
                if *seg == ".." {
                    out.pop();
                }
                if i == last {
                    out.push("");
                }
            }
            s => out.push(s),
        }
    }
    let mut joined = String::with_capacity(path.len());
    for s in &out {
        joined.push('/');
        joined.push_str(s);
    }
    if joined.is_empty() {
        joined.push('/');
    }
    joined
}

/// Whether a path pattern's literal text can ever equal (part of) a normal-form path: patterns
/// are matched against the normal form, so `/api//x` or `/%61dmin` could never match and is
/// refused when the policy is compiled. `prefix` and `suffix` say whether the text is open on
/// the right (`/api/*`) or on the left (`*.php`); an open end may cut a segment short.
pub fn pattern_problem(text: &str, open_left: bool, open_right: bool, allow_parameters: bool) -> Option<String> {
    let canonical = match canonical_bytes(text, allow_parameters) {
        Ok(c) => c,
        Err(e) => return Some(format!("{e}: such a path is refused with invalid_path, so the pattern never matches")),
    };
    if canonical != text {
        return Some(format!("not in normal form; write {canonical:?}"));
    }
    if text.contains("//") {
        return Some("'//' never occurs in a normalized path (slashes are merged)".to_owned());
    }
    let segments: Vec<&str> = text.split('/').collect();
    let last = segments.len().saturating_sub(1);
    for (i, seg) in segments.iter().enumerate() {
        // A segment cut short by an open end may be the start or end of a longer one.
        let partial = (i == 0 && open_left) || (i == last && open_right);
        if !partial && (i > 0 || open_left) && (*seg == "." || *seg == "..") {
            return Some("'.' and '..' segments never occur in a normalized path".to_owned());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn normal_form_table() {
        let cases = [
            ("/api/items", "/api/items", None),
            ("/api/items?x=1", "/api/items", Some("x=1")),
            ("/api/items?", "/api/items", Some("")),
            ("/a/./b//c?x=1&y=%2F", "/a/b/c", Some("x=1&y=%2F")),
            ("/public/../admin", "/admin", None),
            ("/public/./x", "/public/x", None),
            ("/a/b/..", "/a/", None),
            ("/a/b/.", "/a/b/", None),
            ("/../../etc", "/etc", None),
            ("/..", "/", None),
            ("/%61dmin", "/admin", None),
            ("/api/%2e%2e/admin", "/admin", None),
            ("/api/%2E%2e/admin", "/admin", None),
            ("/x%7e", "/x~", None),
            ("/a%3bb", "/a%3Bb", None),
            ("/a%40b", "/a%40b", None),
            ("/a%3a", "/a%3A", None),
            ("//admin", "/admin", None),
            ("///admin//x/", "/admin/x/", None),
            ("/caf\u{e9}", "/caf%C3%A9", None),
            ("/a b", "/a%20b", None),
            ("/", "/", None),
        ];
        for (raw, want, query) in cases {
            let n = normalize(raw, false).unwrap_or_else(|e| panic!("{raw}: {e}"));
            assert_eq!(n.path, want, "{raw}");
            assert_eq!(n.query, query, "{raw}");
        }
    }

    #[test]
    fn what_upstreams_disagree_on_has_no_normal_form() {
        let cases = [
            ("", PathError::NotAbsolute),
            ("*", PathError::NotAbsolute),
            ("http://h/admin", PathError::NotAbsolute),
            ("/admin/..%2Fusers", PathError::EscapedSlash),
            ("/admin/..%2fusers", PathError::EscapedSlash),
            ("/admin%5c..%5cx", PathError::EscapedSlash),
            ("/admin\\..\\x", PathError::Backslash),
            ("/api/.;/admin", PathError::PathParameter),
            ("/api;jsessionid=1", PathError::PathParameter),
            ("/x%00", PathError::ControlCharacter),
            ("/x%1f", PathError::ControlCharacter),
            ("/x%7F", PathError::ControlCharacter),
            ("/x\ty", PathError::ControlCharacter),
            ("/x\u{7f}", PathError::ControlCharacter),
            ("/100%", PathError::MalformedEscape),
            ("/1%g0", PathError::MalformedEscape),
            ("/x%2", PathError::MalformedEscape),
            ("/a#frag", PathError::Fragment),
            ("/a?q#frag", PathError::Fragment),
        ];
        for (raw, want) in cases {
            assert_eq!(normalize(raw, false), Err(want), "{raw:?}");
        }
    }

    #[test]
    fn path_parameters_pass_only_when_allowed() {
        let n = normalize("/api/x;v=1", true).unwrap();
        assert_eq!(n.path, "/api/x;v=1");
        assert_eq!(normalize("/api/x;v=1", false), Err(PathError::PathParameter));
    }

    #[test]
    fn reject_mode_refuses_what_rewrite_would_change() {
        assert_eq!(require_normal("/a/./b", false), Err(PathError::NotNormal));
        assert_eq!(require_normal("//a", false), Err(PathError::NotNormal));
        assert_eq!(require_normal("/%7Ea", false), Err(PathError::NotNormal));
        assert!(require_normal("/a/b?x=/../", false).is_ok(), "the query is not the path");
    }

    #[test]
    fn the_forwarded_path_keeps_the_query_as_sent() {
        let n = normalize("/a/./b//c?x=1&y=%2F", false).unwrap();
        assert!(n.changed());
        assert_eq!(n.to_request_path(), "/a/b/c?x=1&y=%2F");
        let same = normalize("/a/b?q", false).unwrap();
        assert!(!same.changed());
        assert_eq!(same.to_request_path(), "/a/b?q");
    }

    #[test]
    fn normalizing_twice_changes_nothing() {
        for raw in ["/a/./b//c", "/%2e%2e/%2e/x/%7e", "/%25252e", "/a%3b/..", "/caf\u{e9}/../x", "/.%2e/a"] {
            let once = normalize(raw, false).unwrap().path.into_owned();
            let twice = normalize(&once, false).unwrap();
            assert!(!twice.changed(), "{raw} -> {once} -> {}", twice.path);
        }
    }

    #[test]
    fn audit_path_never_carries_the_query() {
        assert_eq!(for_log("/a/./b?token=secret"), "/a/b");
        assert_eq!(for_log("/a%2Fb?token=secret"), "/a%2Fb");
        assert_eq!(for_log("/a#x?token=secret"), "/a");
    }

    #[test]
    fn patterns_must_be_in_normal_form() {
        assert!(pattern_problem("/api/", false, true, false).is_none());
        assert!(pattern_problem("/.well-known/", false, true, false).is_none());
        assert!(pattern_problem("/api/.", false, true, false).is_none(), "prefix of /api/.well-known");
        assert!(pattern_problem(".php", true, false, false).is_none());
        assert!(pattern_problem("/api//x", false, false, false).is_some());
        assert!(pattern_problem("/%61dmin", false, false, false).is_some());
        assert!(pattern_problem("/a/../b", false, false, false).is_some());
        assert!(pattern_problem("/a/./", false, true, false).is_some());
        assert!(pattern_problem("/a%2fb", false, false, false).is_some());
        assert!(pattern_problem("/a;b", false, false, false).is_some());
        assert!(pattern_problem("/a;b", false, false, true).is_none());
        assert!(pattern_problem("/a%3b", false, false, false).is_some(), "escapes are upper-case");
    }
}
