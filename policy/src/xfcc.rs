//! `x-forwarded-client-cert` parsing, and binding an element to the connection by its digest.
//!
//! Format: <https://www.envoyproxy.io/docs/envoy/latest/configuration/http/http_conn_man/headers#x-forwarded-client-cert>.
//! Under APPEND_FORWARD (Istio sidecars) earlier elements come from the client and are
//! untrusted, so an element is used only when its `Hash` equals the connection's
//! `sha256_peer_certificate_digest` *and* the SHA-256 of its `Cert` equals that digest too.

use sha2::{Digest, Sha256};

use crate::pem::{pem_certificates, percent_decode};

/// Longest XFCC header considered; longer ones are treated as carrying no bound element.
pub const MAX_XFCC_BYTES: usize = 256 * 1024;

/// One comma-separated element of the header.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Element {
    /// `Hash=`: hex SHA-256 of the client certificate.
    pub hash: Option<String>,
    /// `Cert=`: URL-encoded PEM leaf.
    pub cert: Option<String>,
    /// `Chain=`: URL-encoded PEM chain (leaf first).
    pub chain: Option<String>,
    /// `Subject=`.
    pub subject: Option<String>,
    /// `URI=` (the first; Envoy repeats the key for more).
    pub uri: Vec<String>,
    /// `DNS=`.
    pub dns: Vec<String>,
}

/// Splits on `sep` outside double quotes.
fn split_quoted(s: &str, sep: char) -> Vec<&str> {
    let mut out = Vec::new();
    let mut in_quotes = false;
    let mut escaped = false;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if in_quotes => escaped = true,
            '"' => in_quotes = !in_quotes,
            c if c == sep && !in_quotes => {
                out.push(&s[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn unquote(v: &str) -> String {
    let v = v.trim();
    match v.strip_prefix('"').and_then(|x| x.strip_suffix('"')) {
        Some(inner) => {
            let mut out = String::with_capacity(inner.len());
            let mut escaped = false;
            for c in inner.chars() {
                if escaped {
                    out.push(c);
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else {
                    out.push(c);
                }
            }
            out
        }
        None => v.to_owned(),
    }
}

/// Parses every element. Unknown keys are ignored; malformed pairs are skipped.
pub fn parse(header: &str) -> Vec<Element> {
    if header.len() > MAX_XFCC_BYTES {
        return Vec::new();
    }
    split_quoted(header, ',')
        .into_iter()
        .map(|el| {
            let mut e = Element::default();
            for pair in split_quoted(el, ';') {
                let Some((k, v)) = pair.split_once('=') else { continue };
                let v = unquote(v);
                match k.trim().to_ascii_lowercase().as_str() {
                    "hash" => e.hash = Some(v),
                    "cert" => e.cert = Some(v),
                    "chain" => e.chain = Some(v),
                    "subject" => e.subject = Some(v),
                    "uri" => e.uri.push(v),
                    "dns" => e.dns.push(v),
                    _ => {}
                }
            }
            e
        })
        .collect()
}

/// The leaf DER and the other chain certificates of the last element bound to `digest_hex`.
/// `None` when no element is bound (forged, missing, or a `Cert` that does not hash to the digest).
pub fn bound_certificate(header: &str, digest_hex: &str) -> Option<(Vec<u8>, Vec<Vec<u8>>)> {
    let digest = digest_hex.to_ascii_lowercase();
    for e in parse(header).into_iter().rev() {
        if !e.hash.as_deref().is_some_and(|h| h.eq_ignore_ascii_case(&digest)) {
            continue;
        }
        let Some(cert) = e.cert.as_deref() else { continue };
        let Ok(ders) = pem_certificates(&percent_decode(cert.as_bytes())) else { continue };
        let Some(leaf) = ders.into_iter().next() else { continue };
        if hex::encode(Sha256::digest(&leaf)) != digest {
            continue;
        }
        let chain = e
            .chain
            .as_deref()
            .and_then(|c| pem_certificates(&percent_decode(c.as_bytes())).ok())
            .unwrap_or_default()
            .into_iter()
            .filter(|der| *der != leaf)
            .collect();
        return Some((leaf, chain));
    }
    None
}

/// Whether an element whose `Hash` is `digest_hex` lists two or more SPIFFE URI SANs. Without a
/// `Cert`, the `Hash` alone binds nothing, but only the connection's own peer can make an element
/// carry its digest: a forged one can make the peer look ambiguous to itself, never hide the
/// URI SANs of the element Envoy wrote.
pub fn several_spiffe_uris(header: &str, digest_hex: &str) -> bool {
    parse(header).iter().any(|e| {
        e.hash.as_deref().is_some_and(|h| h.eq_ignore_ascii_case(digest_hex))
            && e.uri.iter().filter(|u| crate::spiffe::is_spiffe_uri(u)).count() >= 2
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn parses_quoted_values_and_repeated_keys() {
        let h = r#"By=spiffe://a;Hash=abc;Subject="CN=x,O=y";URI=spiffe://b;DNS=d1;DNS=d2,Hash=def;Cert="%2D%2D""#;
        let els = parse(h);
        assert_eq!(els.len(), 2);
        assert_eq!(els[0].hash.as_deref(), Some("abc"));
        assert_eq!(els[0].subject.as_deref(), Some("CN=x,O=y"));
        assert_eq!(els[0].dns, vec!["d1", "d2"]);
        assert_eq!(els[1].cert.as_deref(), Some("%2D%2D"));
    }

    #[test]
    fn unbound_or_garbage_elements_are_never_used() {
        assert_eq!(bound_certificate("Hash=abc;Cert=\"garbage\"", "abc"), None);
        assert_eq!(bound_certificate("Hash=abc", "abc"), None);
        assert_eq!(bound_certificate("", "abc"), None);
        assert_eq!(bound_certificate("\"unterminated", "abc"), None);
        assert_eq!(bound_certificate(&"a".repeat(MAX_XFCC_BYTES + 1), "abc"), None);
    }

    #[test]
    fn several_spiffe_uris_counts_only_the_elements_bound_to_the_digest() {
        let two = "Hash=ABC;URI=spiffe://td/ns/a/sa/x;URI=spiffe://td/ns/b/sa/y";
        assert!(several_spiffe_uris(two, "abc"), "the hash is compared without case");
        assert!(!several_spiffe_uris(two, "def"), "another connection's element");
        assert!(!several_spiffe_uris("Hash=abc;URI=spiffe://td/ns/a/sa/x;URI=https://x", "abc"));
        assert!(!several_spiffe_uris("Hash=abc;URI=spiffe://td/ns/a/sa/x", "abc"));
        assert!(!several_spiffe_uris("URI=spiffe://td/a;URI=spiffe://td/b", "abc"), "no hash binds nothing");
        // A forged element with the same hash and one URI before Envoy's own: Envoy's still counts.
        let forged_first = format!("Hash=abc;URI=spiffe://td/ns/a/sa/x,{two}");
        assert!(several_spiffe_uris(&forged_first, "abc"));
        assert!(several_spiffe_uris("Hash=abc;URI=SPIFFE://td/a;URI=spiffe://td/b", "abc"), "scheme in any case");
    }
}
