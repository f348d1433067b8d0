//! Reading RFC 4514 distinguished names, as Envoy renders `connection.subject_peer_certificate`.
//!
//! One reader serves Envoy's subject string and anything else in that form, so that an escaped
//! `\+` or `\,` never splits an attribute: `CN=admin\+O=x` is one CN, `admin+O=x`, never the CN
//! `admin` next to an O. Envoy (OpenSSL/BoringSSL `XN_FLAG_RFC2253`) escapes `,+"\<>;` with a
//! backslash, control characters as `\XX` hex, and a leading `#` or space.

/// One `type=value` of a DN, value unescaped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnAttribute {
    /// The attribute type as written (`CN`, `O`, `2.5.4.3`, ...).
    pub kind: String,
    /// The unescaped value.
    pub value: String,
}

impl DnAttribute {
    /// Whether this is a common name (`CN` in any case, or its OID).
    pub fn is_cn(&self) -> bool {
        self.kind.eq_ignore_ascii_case("CN") || self.kind == "2.5.4.3"
    }
}

/// Why a DN string could not be read; a subject that cannot be read yields no identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DnError {
    /// An attribute without `=`.
    MissingEquals,
    /// A `\` at the end, or followed by something that is neither a special character nor two hex digits.
    BadEscape,
    /// Hex escapes that do not form UTF-8.
    NotUtf8,
    /// An unescaped `"`, `<`, `>`, `;` or `\0`, which Envoy always escapes.
    UnescapedSpecial,
}

/// Every attribute of the DN, in the order written (RDNs flattened: `CN=a+CN=b` is two).
pub fn attributes(dn: &str) -> Result<Vec<DnAttribute>, DnError> {
    let mut out = Vec::new();
    if dn.is_empty() {
        return Ok(out);
    }
    let bytes = dn.as_bytes();
    let mut kind: Option<String> = None;
    let mut cur: Vec<u8> = Vec::new();
    let mut i = 0;
    let mut finish = |kind: &mut Option<String>, cur: &mut Vec<u8>| -> Result<(), DnError> {
        let k = kind.take().ok_or(DnError::MissingEquals)?;
        let value = String::from_utf8(std::mem::take(cur)).map_err(|_| DnError::NotUtf8)?;
        out.push(DnAttribute { kind: k, value });
        Ok(())
    };
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'\\' => {
                let next = *bytes.get(i + 1).ok_or(DnError::BadEscape)?;
                let hex = |c: u8| char::from(c).to_digit(16);
                match (hex(next), bytes.get(i + 2).and_then(|c| hex(*c))) {
                    (Some(h), Some(l)) => {
                        cur.push(u8::try_from(h * 16 + l).map_err(|_| DnError::BadEscape)?);
                        i += 3;
                        continue;
                    }
                    _ if matches!(next, b',' | b'+' | b'"' | b'\\' | b'<' | b'>' | b';' | b'=' | b'#' | b' ') => {
                        cur.push(next);
                        i += 2;
                        continue;
                    }
                    _ => return Err(DnError::BadEscape),
                }
            }
            b'=' if kind.is_none() => {
                kind = Some(String::from_utf8(std::mem::take(&mut cur)).map_err(|_| DnError::NotUtf8)?);
            }
            b',' | b'+' => finish(&mut kind, &mut cur)?,
            b'"' | b'<' | b'>' | b';' | 0 => return Err(DnError::UnescapedSpecial),
            _ => cur.push(b),
        }
        i += 1;
    }
    finish(&mut kind, &mut cur)?;
    Ok(out)
}

/// The CN values of a DN string; `None` when it cannot be read.
pub fn common_names(dn: &str) -> Option<Vec<String>> {
    let attrs = attributes(dn).ok()?;
    Some(attrs.into_iter().filter(DnAttribute::is_cn).map(|a| a.value).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn cns(dn: &str) -> Option<Vec<String>> {
        common_names(dn)
    }

    #[test]
    fn escaped_plus_never_splits_a_common_name() {
        assert_eq!(cns(r"CN=admin\+O=x"), Some(vec!["admin+O=x".to_owned()]));
        assert_eq!(cns(r"CN=a\,b,O=x"), Some(vec!["a,b".to_owned()]));
        assert_eq!(cns(r"CN=a\\,CN=b"), Some(vec![r"a\".to_owned(), "b".to_owned()]));
    }

    #[test]
    fn multi_valued_rdn_counts_every_common_name() {
        assert_eq!(cns("CN=a+CN=b,O=x"), Some(vec!["a".to_owned(), "b".to_owned()]));
        assert_eq!(cns("2.5.4.3=a,cn=b"), Some(vec!["a".to_owned(), "b".to_owned()]));
    }

    #[test]
    fn hex_escapes_decode_to_the_bytes_they_name() {
        // Envoy renders a CR LF inside a CN as \0D\0A.
        assert_eq!(cns(r"CN=web\0D\0Ax"), Some(vec!["web\r\nx".to_owned()]));
        assert_eq!(cns(r"CN=caf\C3\A9"), Some(vec!["café".to_owned()]));
        assert_eq!(cns(r"CN=\FF"), None, "not UTF-8");
    }

    #[test]
    fn malformed_names_are_unreadable() {
        assert_eq!(attributes("CN"), Err(DnError::MissingEquals));
        assert_eq!(attributes(r"CN=a\"), Err(DnError::BadEscape));
        assert_eq!(attributes(r"CN=a\q"), Err(DnError::BadEscape));
        assert_eq!(attributes("CN=a\"b"), Err(DnError::UnescapedSpecial));
        assert_eq!(attributes("CN=a,"), Err(DnError::MissingEquals));
        assert_eq!(attributes(""), Ok(vec![]));
    }
}
