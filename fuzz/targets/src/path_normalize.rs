//! Target `path_normalize`: `peerguard_policy::path`, the normal form rules match and upstreams receive.
//!
//! The input is a raw `:path` (query included), tried with and without `allowPathParameters`.
//! Properties, for a path that has a normal form:
//! - the normal form starts with `/` and never contains `//`, `/./`, `/../`, a trailing `/.` or
//!   `/..`, an escaped slash or backslash (`%2F`, `%5C`, any case), a raw `\`, `?`, `#`, control
//!   or non-ASCII byte, a `;` unless allowed, or an escape that is lower-case, malformed, or of
//!   an unreserved character;
//! - normalizing is idempotent (also on the forwarded `:path`, query included), the query is
//!   kept exactly as sent, and `require_normal` accepts exactly the paths normalizing leaves alone;
//! - allowing path parameters never refuses a path that was accepted without them, nor changes
//!   its normal form; `as_received` accepts it; a normal form is itself a valid path pattern.
//!
//! For a path without one: `require_normal` refuses it with the same error, and the audit path
//! (`for_log`) never carries the query.

use peerguard_policy::path::{self, PathError};

/// The target body.
pub fn run(data: &[u8]) {
    let Ok(raw) = std::str::from_utf8(data) else { return };
    let strict = path::normalize(raw, false);
    let lenient = path::normalize(raw, true);
    for (allow, result) in [(false, &strict), (true, &lenient)] {
        match result {
            Ok(n) => check_normal(raw, allow, &n.path, n.query, n.changed()),
            Err(e) => check_refused(raw, allow, *e),
        }
    }
    if let Ok(n) = &strict {
        let lenient_path = lenient.as_ref().map(|l| &l.path);
        assert_eq!(lenient_path, Ok(&n.path), "allowPathParameters changed the normal form of {raw:?}");
    }
}

fn check_normal(raw: &str, allow: bool, normal: &str, query: Option<&str>, changed: bool) {
    let ctx = crate::Lazy(|f| write!(f, "{raw:?} -> {normal:?} (allowPathParameters: {allow})"));
    assert!(normal.starts_with('/'), "not absolute: {ctx}");
    for bad in ["//", "/./", "/../"] {
        assert!(!normal.contains(bad), "contains {bad:?}: {ctx}");
    }
    assert!(!normal.ends_with("/.") && !normal.ends_with("/.."), "ends in a dot segment: {ctx}");
    let upper = normal.to_ascii_uppercase();
    assert!(!upper.contains("%2F") && !upper.contains("%5C"), "an escaped slash or backslash: {ctx}");
    for (i, b) in normal.bytes().enumerate() {
        assert!(
            b.is_ascii() && !b.is_ascii_control() && !matches!(b, b'\\' | b'?' | b'#'),
            "byte {b:#04x} at {i}: {ctx}"
        );
        assert!(allow || b != b';', "a ';' without allowPathParameters: {ctx}");
    }
    for (i, _) in normal.match_indices('%') {
        let hex = normal.get(i + 1..i + 3).unwrap_or_default();
        assert!(
            hex.len() == 2 && hex.bytes().all(|h| h.is_ascii_digit() || (b'A'..=b'F').contains(&h)),
            "escape {:?} at {i} is not two upper-case hex digits: {ctx}",
            normal.get(i..).unwrap_or_default()
        );
        let byte = u8::from_str_radix(hex, 16).unwrap_or_default();
        assert!(
            !(byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~')),
            "escape of an unreserved character %{hex}: {ctx}"
        );
    }
    assert_eq!(query, raw.split_once('?').map(|(_, q)| q), "the query changed: {ctx}");
    assert_eq!(changed, raw.split('?').next() != Some(normal), "changed() is wrong: {ctx}");

    let again = path::normalize(normal, allow);
    assert!(again.as_ref().is_ok_and(|a| a.path == normal && !a.changed()), "not idempotent: {ctx} -> {again:?}");
    let forwarded = match query {
        Some(q) => format!("{normal}?{q}"),
        None => normal.to_owned(),
    };
    let hop = path::normalize(&forwarded, allow);
    assert!(
        hop.as_ref().is_ok_and(|h| h.path == normal && h.query == query && !h.changed()),
        "the forwarded :path {forwarded:?} normalizes differently: {ctx} -> {hop:?}"
    );
    let reject = path::require_normal(raw, allow);
    assert_eq!(reject.is_ok(), !changed, "require_normal disagrees with changed(): {ctx} -> {reject:?}");
    if changed {
        assert_eq!(reject.err(), Some(PathError::NotNormal), "{ctx}");
    }
    assert!(path::require_normal(&forwarded, allow).is_ok(), "reject mode refuses the forwarded path: {ctx}");
    assert!(path::as_received(raw).is_ok(), "as_received refuses a path with a normal form: {ctx}");
    if allow {
        assert_eq!(path::for_log(raw), normal, "the audit path is not the normal form: {ctx}");
    }
    let problem = path::pattern_problem(normal, false, false, allow);
    assert!(problem.is_none(), "a normal form is not a valid exact pattern ({problem:?}): {ctx}");
}

fn check_refused(raw: &str, allow: bool, error: PathError) {
    let ctx = crate::Lazy(|f| write!(f, "{raw:?} (allowPathParameters: {allow}): {error:?}"));
    assert!(!matches!(error, PathError::Missing | PathError::NotNormal), "normalize gave {ctx}");
    assert_eq!(path::require_normal(raw, allow), Err(error), "require_normal refuses differently: {ctx}");
    let logged = path::for_log(raw);
    assert!(!logged.contains('?') && !logged.contains('#'), "the audit path {logged:?} carries the query: {ctx}");
}
