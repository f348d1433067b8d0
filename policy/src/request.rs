//! The request as the engine sees it: a source it asks lazily, so no attribute can be forgotten.
//!
//! The engine asks a [`RequestSource`] for an attribute the first time a rule reads it and keeps
//! the answer for the rest of the decision. Nothing is fetched up front on the strength of a
//! "this policy uses paths" flag: a forgotten flag once made an ALLOW with `notPaths` match every
//! request, because the glue passed `""` for the path.

use std::cell::OnceCell;

use crate::config::PathNormalization;
use crate::path::{self, PathError};

/// Where the engine reads request attributes. Each method is called at most once per decision,
/// and only when a rule (or the path check) needs the attribute.
pub trait RequestSource {
    /// `:method`.
    fn method(&self) -> Option<String>;
    /// `:path` as the client sent it, query included.
    fn path(&self) -> Option<String>;
    /// `:authority`.
    fn authority(&self) -> Option<String>;
    /// The destination port of the connection.
    fn destination_port(&self) -> Option<u32>;
    /// The TLS SNI.
    fn sni(&self) -> Option<String>;
    /// Every value of a (lower-case) header, in the order received; empty when absent.
    fn header_values(&self, name: &str) -> Vec<String>;
}

/// Looks up request headers by lower-case name.
pub trait HeaderSource {
    /// Every value of the header, in the order received; empty when absent.
    fn header_values(&self, name: &str) -> Vec<String>;
}

impl HeaderSource for [(String, String)] {
    fn header_values(&self, name: &str) -> Vec<String> {
        self.iter().filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone()).collect()
    }
}

impl HeaderSource for Vec<(String, String)> {
    fn header_values(&self, name: &str) -> Vec<String> {
        self.as_slice().header_values(name)
    }
}

/// A request held in memory (the CLI, tests and benches); the filter asks Envoy instead.
pub struct Request<'a> {
    /// `:method`.
    pub method: &'a str,
    /// `:path`, raw, with any query string; empty means absent.
    pub path: &'a str,
    /// `:authority`.
    pub host: &'a str,
    /// Destination port.
    pub port: Option<u32>,
    /// TLS SNI.
    pub sni: Option<&'a str>,
    /// Other headers (`request.headers[...]` conditions).
    pub headers: &'a dyn HeaderSource,
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

impl RequestSource for Request<'_> {
    fn method(&self) -> Option<String> {
        non_empty(self.method)
    }
    fn path(&self) -> Option<String> {
        non_empty(self.path)
    }
    fn authority(&self) -> Option<String> {
        non_empty(self.host)
    }
    fn destination_port(&self) -> Option<u32> {
        self.port
    }
    fn sni(&self) -> Option<String> {
        self.sni.map(str::to_owned)
    }
    fn header_values(&self, name: &str) -> Vec<String> {
        self.headers.header_values(name)
    }
}

/// A header as the matchers see it: every copy, and the copies joined with `,` in the order
/// received (what Envoy's RBAC matches).
#[derive(Debug, Default)]
pub(crate) struct HeaderValues {
    pub joined: Option<String>,
    pub each: Vec<String>,
}

/// The path after the check of docs/policy.md "Paths".
#[derive(Debug)]
pub(crate) enum CheckedPath {
    /// The path rules match, and the `:path` to send upstream when it must change.
    Ok { matched: String, rewrite: Option<String> },
    /// No normal form: `invalid_path`. `matched` is what dry run evaluates on (the path as sent).
    Invalid { error: PathError, matched: Option<String> },
}

/// One decision's view of the request: each attribute fetched on first use, then kept.
pub(crate) struct LazyRequest<'a> {
    source: &'a dyn RequestSource,
    normalization: PathNormalization,
    allow_parameters: bool,
    identity_header: &'a str,
    method: OnceCell<Option<String>>,
    path: OnceCell<CheckedPath>,
    host: OnceCell<Option<String>>,
    port: OnceCell<Option<u32>>,
    sni: OnceCell<Option<String>>,
    /// Indexed like `Engine::header_names`.
    headers: Vec<OnceCell<HeaderValues>>,
    header_names: &'a [String],
}

impl<'a> LazyRequest<'a> {
    pub(crate) fn new(
        source: &'a dyn RequestSource,
        normalization: PathNormalization,
        allow_parameters: bool,
        identity_header: &'a str,
        header_names: &'a [String],
    ) -> LazyRequest<'a> {
        LazyRequest {
            source,
            normalization,
            allow_parameters,
            identity_header,
            method: OnceCell::new(),
            path: OnceCell::new(),
            host: OnceCell::new(),
            port: OnceCell::new(),
            sni: OnceCell::new(),
            headers: header_names.iter().map(|_| OnceCell::new()).collect(),
            header_names,
        }
    }

    pub(crate) fn method(&self) -> Option<&str> {
        self.method.get_or_init(|| self.source.method()).as_deref()
    }

    /// The checked path (fetched and normalized on first use).
    pub(crate) fn checked_path(&self) -> &CheckedPath {
        self.path.get_or_init(|| {
            let Some(raw) = self.source.path() else {
                return CheckedPath::Invalid { error: PathError::Missing, matched: None };
            };
            let checked = match self.normalization {
                PathNormalization::None => path::as_received(&raw).map(|p| (p.to_owned(), None)),
                PathNormalization::Rewrite => path::normalize(&raw, self.allow_parameters)
                    .map(|n| (n.path.to_string(), n.changed().then(|| n.to_request_path()))),
                PathNormalization::Reject => {
                    path::require_normal(&raw, self.allow_parameters).map(|n| (n.path.into_owned(), None))
                }
            };
            match checked {
                Ok((matched, rewrite)) => CheckedPath::Ok { matched, rewrite },
                Err(error) => {
                    // Dry run still evaluates policies: on the normal form where one exists
                    // (`reject` refused only because the path was not already normal).
                    let matched = path::normalize(&raw, self.allow_parameters)
                        .map(|n| n.path.into_owned())
                        .ok()
                        .or_else(|| Some(raw.split(['?', '#']).next().unwrap_or_default().to_owned()));
                    CheckedPath::Invalid { error, matched }
                }
            }
        })
    }

    /// The path rules match against; `None` when there is none.
    pub(crate) fn path(&self) -> Option<&str> {
        match self.checked_path() {
            CheckedPath::Ok { matched, .. } => Some(matched),
            CheckedPath::Invalid { matched, .. } => matched.as_deref(),
        }
    }

    /// Whether the path was read in this decision (so the filter may have to rewrite it).
    pub(crate) fn path_if_read(&self) -> Option<&CheckedPath> {
        self.path.get()
    }

    /// `:authority`, lower-cased, with one trailing dot of the host name removed
    /// (`Admin.Example.com.:8443` is `admin.example.com:8443`).
    pub(crate) fn host(&self) -> Option<&str> {
        self.host
            .get_or_init(|| {
                let raw = self.source.authority()?;
                let lower = raw.to_ascii_lowercase();
                let (name, port) = split_host_port(&lower);
                let name = name.strip_suffix('.').unwrap_or(name);
                Some(match port {
                    Some(p) => format!("{name}:{p}"),
                    None => name.to_owned(),
                })
            })
            .as_deref()
    }

    pub(crate) fn port(&self) -> Option<u32> {
        *self.port.get_or_init(|| self.source.destination_port())
    }

    pub(crate) fn sni(&self) -> Option<&str> {
        self.sni.get_or_init(|| self.source.sni()).as_deref()
    }

    /// A header by its index in `Engine::header_names`. The client's copy of the identity
    /// header is removed before evaluation, so a condition on it sees it absent.
    pub(crate) fn header(&self, index: usize) -> Option<&HeaderValues> {
        let name = self.header_names.get(index)?;
        let cell = self.headers.get(index)?;
        Some(cell.get_or_init(|| {
            if name == self.identity_header {
                return HeaderValues::default();
            }
            let each = self.source.header_values(name);
            let joined = (!each.is_empty()).then(|| each.join(","));
            HeaderValues { joined, each }
        }))
    }
}

/// Splits `host:port` (also `[v6]:port`); the port part only when it is all digits.
pub(crate) fn split_host_port(host: &str) -> (&str, Option<&str>) {
    match host.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() && !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
            if h.starts_with('[') && !h.ends_with(']') {
                (host, None)
            } else if !h.starts_with('[') && h.contains(':') {
                // A bare IPv6 address has no port.
                (host, None)
            } else {
                (h, Some(p))
            }
        }
        _ => (host, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn host_and_port_split() {
        assert_eq!(split_host_port("a.example:8080"), ("a.example", Some("8080")));
        assert_eq!(split_host_port("a.example"), ("a.example", None));
        assert_eq!(split_host_port("[::1]:8080"), ("[::1]", Some("8080")));
        assert_eq!(split_host_port("::1"), ("::1", None));
        assert_eq!(split_host_port("a.example:"), ("a.example:", None));
        assert_eq!(split_host_port("a.example:x1"), ("a.example:x1", None));
    }
}
