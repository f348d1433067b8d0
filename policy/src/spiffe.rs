//! SPIFFE IDs, validated to the SPIFFE ID spec (trust domain, path, length).

use core::fmt;
use core::str::FromStr;

/// The maximum length of a SPIFFE ID in bytes (SPIFFE ID spec, section 2.3).
pub const MAX_SPIFFE_ID_LEN: usize = 2048;

/// A SPIFFE ID that passed validation.
///
/// See <https://github.com/spiffe/spiffe/blob/main/standards/SPIFFE-ID.md>.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpiffeId {
    trust_domain: String,
    path: String,
}

/// Why a SPIFFE ID was refused; each variant names the clause of the spec it breaks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SpiffeIdError {
    /// The scheme is not exactly `spiffe://` (section 2).
    WrongScheme,
    /// The trust domain is empty (section 2.1).
    EmptyTrustDomain,
    /// The trust domain has a character outside `[a-z0-9.-_]`, for example an upper-case letter,
    /// a port or userinfo (section 2.1).
    BadTrustDomainChar(char),
    /// A path segment is empty, for example `//` or a trailing `/` (section 2.2).
    EmptySegment,
    /// A path segment is `.` or `..` (section 2.2).
    DotSegment,
    /// A path character outside `[a-zA-Z0-9.-_]`; percent-encoding is not allowed (section 2.2).
    BadPathChar(char),
    /// A query or fragment is present (section 2).
    QueryOrFragment,
    /// Longer than 2048 bytes (section 2.3).
    TooLong,
}

impl fmt::Display for SpiffeIdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpiffeIdError::WrongScheme => f.write_str("scheme must be exactly \"spiffe://\""),
            SpiffeIdError::EmptyTrustDomain => f.write_str("trust domain is empty"),
            SpiffeIdError::BadTrustDomainChar(c) => {
                write!(f, "trust domain contains {c:?}; only a-z, 0-9, '.', '-' and '_' are allowed")
            }
            SpiffeIdError::EmptySegment => f.write_str("path has an empty segment"),
            SpiffeIdError::DotSegment => f.write_str("path has a '.' or '..' segment"),
            SpiffeIdError::BadPathChar(c) => {
                write!(f, "path contains {c:?}; only a-z, A-Z, 0-9, '.', '-' and '_' are allowed")
            }
            SpiffeIdError::QueryOrFragment => f.write_str("query and fragment are not allowed"),
            SpiffeIdError::TooLong => write!(f, "longer than {MAX_SPIFFE_ID_LEN} bytes"),
        }
    }
}

impl SpiffeId {
    /// The trust domain, e.g. `cluster.local`.
    pub fn trust_domain(&self) -> &str {
        &self.trust_domain
    }

    /// The path, e.g. `/ns/default/sa/sleep`, or empty.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The principal in Istio's form: the ID without `spiffe://`.
    pub fn principal(&self) -> String {
        format!("{}{}", self.trust_domain, self.path)
    }

    /// The namespace when the path has Istio's `/ns/NS/sa/SA` form.
    pub fn istio_namespace(&self) -> Option<&str> {
        let mut segs = self.path.strip_prefix('/')?.split('/');
        match (segs.next(), segs.next(), segs.next(), segs.next(), segs.next()) {
            (Some("ns"), Some(ns), Some("sa"), Some(_sa), None) => Some(ns),
            _ => None,
        }
    }
}

impl FromStr for SpiffeId {
    type Err = SpiffeIdError;

    fn from_str(s: &str) -> Result<SpiffeId, SpiffeIdError> {
        if s.len() > MAX_SPIFFE_ID_LEN {
            return Err(SpiffeIdError::TooLong);
        }
        let rest = s.strip_prefix("spiffe://").ok_or(SpiffeIdError::WrongScheme)?;
        if rest.contains(['?', '#']) {
            return Err(SpiffeIdError::QueryOrFragment);
        }
        let (td, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if td.is_empty() {
            return Err(SpiffeIdError::EmptyTrustDomain);
        }
        if let Some(c) =
            td.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-' | '_')))
        {
            return Err(SpiffeIdError::BadTrustDomainChar(c));
        }
        if !path.is_empty() {
            for seg in path[1..].split('/') {
                if seg.is_empty() {
                    return Err(SpiffeIdError::EmptySegment);
                }
                if seg == "." || seg == ".." {
                    return Err(SpiffeIdError::DotSegment);
                }
                if let Some(c) = seg.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))) {
                    return Err(SpiffeIdError::BadPathChar(c));
                }
            }
        }
        Ok(SpiffeId { trust_domain: td.to_owned(), path: path.to_owned() })
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "spiffe://{}{}", self.trust_domain, self.path)
    }
}

/// Whether a URI SAN claims the `spiffe` scheme (compared case-insensitively, as RFC 3986 does
/// for schemes, so that `SPIFFE://` is validated and refused rather than silently skipped).
pub(crate) fn is_spiffe_uri(u: &str) -> bool {
    u.get(..9).is_some_and(|s| s.eq_ignore_ascii_case("spiffe://"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    type Expected = Result<(&'static str, &'static str), SpiffeIdError>;

    #[test]
    fn spiffe_id_table() {
        use SpiffeIdError::*;
        let long = format!("spiffe://td/{}", "a".repeat(MAX_SPIFFE_ID_LEN));
        let cases: Vec<(&str, Expected)> = vec![
            ("spiffe://cluster.local/ns/default/sa/sleep", Ok(("cluster.local", "/ns/default/sa/sleep"))),
            ("spiffe://example.org", Ok(("example.org", ""))),
            ("spiffe://td-1_x.y/a.b-c_D/E", Ok(("td-1_x.y", "/a.b-c_D/E"))),
            ("http://example.org/a", Err(WrongScheme)),
            ("SPIFFE://example.org/a", Err(WrongScheme)),
            ("spiffe:/example.org", Err(WrongScheme)),
            ("spiffe://", Err(EmptyTrustDomain)),
            ("spiffe:///a", Err(EmptyTrustDomain)),
            ("spiffe://Example.org/a", Err(BadTrustDomainChar('E'))),
            ("spiffe://example.org:8080/a", Err(BadTrustDomainChar(':'))),
            ("spiffe://user@example.org/a", Err(BadTrustDomainChar('@'))),
            ("spiffe://example.org/", Err(EmptySegment)),
            ("spiffe://example.org/a//b", Err(EmptySegment)),
            ("spiffe://example.org/a/", Err(EmptySegment)),
            ("spiffe://example.org/a/./b", Err(DotSegment)),
            ("spiffe://example.org/a/..", Err(DotSegment)),
            ("spiffe://example.org/a%20b", Err(BadPathChar('%'))),
            ("spiffe://example.org/a b", Err(BadPathChar(' '))),
            ("spiffe://example.org/a?x=1", Err(QueryOrFragment)),
            ("spiffe://example.org/a#f", Err(QueryOrFragment)),
            (long.as_str(), Err(TooLong)),
        ];
        for (input, expected) in cases {
            let got = input.parse::<SpiffeId>();
            match expected {
                Ok((td, path)) => {
                    let id = got.unwrap_or_else(|e| panic!("{input} should be valid: {e}"));
                    assert_eq!((id.trust_domain(), id.path()), (td, path), "{input}");
                    assert_eq!(id.to_string(), input, "display round-trips");
                }
                Err(e) => assert_eq!(got, Err(e), "{input}"),
            }
        }
    }
}
