//! RFC 4514 distinguished names: the writer for certificate Names and the reader for DN strings, one escape set.
//!
//! The reader serves Envoy's subject string and anything else in that form, so that an escaped
//! `\+` or `\,` never splits an attribute: `CN=admin\+O=x` is one CN, `admin+O=x`, never the CN
//! `admin` next to an O. Envoy (OpenSSL/BoringSSL `XN_FLAG_RFC2253`) escapes `,+"\<>;` with a
//! backslash, control characters as `\XX` hex, and a leading `#` or space.
//!
//! The writer renders a certificate's subject and issuer ([`rfc4514`]) the way Envoy renders
//! `connection.subject_peer_certificate`, and the reader reads every value it writes back
//! unchanged (see the round-trip test).

use x509_parser::prelude::{AttributeTypeAndValue, X509Name};

/// What RFC 4514 section 2.4 escapes with a backslash anywhere in a value (a leading `#` or space
/// and a trailing space are escaped too). The writer escapes exactly these; the reader accepts
/// them, and `=`, `#` and space, after a backslash.
const SPECIAL: [char; 7] = [',', '+', '"', '\\', '<', '>', ';'];

// The reader.

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
                    _ if SPECIAL.contains(&char::from(next)) || matches!(next, b'=' | b'#' | b' ') => {
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

// The writer.

/// The OIDs of the attributes that [`crate::CertFacts`] lists apart: CN, O and OU.
pub(crate) const OID_CN: &str = "2.5.4.3";
pub(crate) const OID_O: &str = "2.5.4.10";
pub(crate) const OID_OU: &str = "2.5.4.11";

fn attr_short_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "STREET",
        "2.5.4.5" => "serialNumber",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        "1.2.840.113549.1.9.1" => "emailAddress",
        _ => return None,
    })
}

/// The text of every attribute of type `oid` in `name`, in order.
pub(crate) fn attr_values(name: &X509Name<'_>, oid: &str) -> Vec<String> {
    name.iter_attributes().filter(|a| a.attr_type().to_id_string() == oid).map(attr_text).collect()
}

fn attr_text(attr: &AttributeTypeAndValue<'_>) -> String {
    match attr.as_str() {
        Ok(s) => s.to_owned(),
        // BMPString, T61String etc.: render the bytes lossily rather than fail the whole cert.
        Err(_) => String::from_utf8_lossy(attr.as_slice()).into_owned(),
    }
}

/// Renders a DN as RFC 4514 text, most specific RDN first, `,` between RDNs, no spaces,
/// which is how Envoy renders `connection.subject_peer_certificate`.
/// See <https://www.rfc-editor.org/rfc/rfc4514#section-2>.
pub(crate) fn rfc4514(name: &X509Name<'_>) -> String {
    let rdns: Vec<_> = name.iter_rdn().collect();
    let mut out = String::new();
    for (i, rdn) in rdns.iter().rev().enumerate() {
        if i > 0 {
            out.push(',');
        }
        for (j, attr) in rdn.iter().enumerate() {
            if j > 0 {
                out.push('+');
            }
            let oid = attr.attr_type().to_id_string();
            match attr_short_name(&oid) {
                Some(short) => out.push_str(short),
                None => out.push_str(&oid),
            }
            out.push('=');
            escape_rfc4514_value(&attr_text(attr), &mut out);
        }
    }
    out
}

/// Appends `v` as an RFC 4514 attribute value: a backslash before `,+"\<>;`, before a leading
/// `#` or space and before a trailing space (section 2.4), and NUL as `\00`. Other control
/// characters are written as they are; [`attributes`] reads them, and Envoy's `\XX` form, back.
fn escape_rfc4514_value(v: &str, out: &mut String) {
    let n = v.chars().count();
    for (i, c) in v.chars().enumerate() {
        let needs = SPECIAL.contains(&c) || (i == 0 && (c == '#' || c == ' ')) || (i + 1 == n && c == ' ');
        if needs {
            out.push('\\');
        }
        if c == '\0' {
            out.push_str("\\00");
        } else {
            out.push(c);
        }
    }
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

    /// `value` written by the writer, as three attributes in two RDNs, read back by the reader.
    fn assert_reads_back(value: &str) {
        let mut dn = String::from("CN=");
        escape_rfc4514_value(value, &mut dn);
        dn.push_str("+O=");
        escape_rfc4514_value(value, &mut dn);
        dn.push_str(",2.5.4.11=");
        escape_rfc4514_value(value, &mut dn);
        let attr = |kind: &str| DnAttribute { kind: kind.to_owned(), value: value.to_owned() };
        assert_eq!(attributes(&dn), Ok(vec![attr("CN"), attr("O"), attr("2.5.4.11")]), "{value:?} written as {dn:?}");
    }

    #[test]
    fn every_value_the_writer_escapes_reads_back_identically() {
        for value in [
            ",",
            "+",
            "\"",
            "\\",
            "<",
            ">",
            ";",
            "=",
            "#",
            " ",
            "#a",
            " a",
            "a ",
            "  ",
            "a#",
            "a=b",
            "a b",
            "\0",
            "a\0",
            "\r\n",
            "\u{1}\u{1f}\u{7f}",
            "\t",
            "café",
            "CN=admin+O=x",
            r"\41",
            r"a\,b",
            "#01",
            "",
        ] {
            assert_reads_back(value);
        }
        // Every string of up to three characters over the special characters, `=`, `#`, space, a
        // letter, a hex digit, control characters and a multi-byte character.
        let alphabet =
            [',', '+', '"', '\\', '<', '>', ';', '=', '#', ' ', 'a', '4', '\0', '\n', '\u{1f}', '\u{7f}', 'é'];
        let mut values = vec![String::new()];
        for _ in 0..3 {
            values = values.iter().flat_map(|v| alphabet.iter().map(move |c| format!("{v}{c}"))).collect();
            values.iter().for_each(|v| assert_reads_back(v));
        }
    }
}
