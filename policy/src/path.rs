//! Request-path normalization for matching: strip the query, decode, and remove dot segments.
//!
//! Envoy forwards `:path` as the client sent it unless `normalize_path` is configured, and an
//! upstream may resolve `/public/../admin` to `/admin`. Matching the raw string would let such a
//! request slip past a DENY on `/admin*`, so rules see the path an upstream would act on:
//! RFC 3986 section 6.2.2.2 percent-decoding (including `%2F` and `%5C`, which Istio's
//! DECODE_AND_MERGE_SLASHES treats the same way) and section 5.2.4 dot-segment removal.

use std::borrow::Cow;

/// The path without its query string or fragment, decoded and with dot segments removed.
pub fn normalize(raw: &str) -> Cow<'_, str> {
    let end = raw.find(['?', '#']).unwrap_or(raw.len());
    let path = &raw[..end];
    if path.is_empty() {
        return Cow::Borrowed("/");
    }
    let needs_decode = path.contains('%');
    let needs_dots = path.split(['/', '\\']).any(|seg| seg == "." || seg == "..") || path.contains('\\');
    if !needs_decode && !needs_dots {
        return Cow::Borrowed(path);
    }
    let decoded: String = if needs_decode {
        String::from_utf8_lossy(&crate::cert::percent_decode(path.as_bytes())).into_owned()
    } else {
        path.to_owned()
    };
    // Backslashes are path separators to some upstreams (and Envoy's own normalization).
    let decoded = decoded.replace('\\', "/");
    Cow::Owned(remove_dot_segments(&decoded))
}

fn remove_dot_segments(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').collect();
    let last = segments.len().saturating_sub(1);
    for (i, seg) in segments.iter().enumerate() {
        match *seg {
            "." => {
                if i == last {
                    out.push("");
                }
            }
            ".." => {
                if out.len() > 1 {
                    out.pop();
                }
                if i == last {
                    out.push("");
                }
            }
            s => out.push(s),
        }
    }
    let joined = out.join("/");
    if joined.starts_with('/') {
        joined
    } else {
        format!("/{joined}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn path_normalization_table() {
        let cases = [
            ("/api/items", "/api/items"),
            ("/api/items?x=1", "/api/items"),
            ("/api/items#frag", "/api/items"),
            ("/public/../admin", "/admin"),
            ("/public/./x", "/public/x"),
            ("/a/b/..", "/a/"),
            ("/../../etc", "/etc"),
            ("/api%2F..%2Fadmin", "/admin"),
            ("/%61dmin", "/admin"),
            ("/api/%2e%2e/admin", "/admin"),
            ("/api\\..\\admin", "/admin"),
            ("/100%", "/100%"),
            ("/", "/"),
            ("", "/"),
        ];
        for (raw, want) in cases {
            assert_eq!(normalize(raw), want, "{raw}");
        }
    }
}
