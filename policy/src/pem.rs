//! PEM decoding (plain or URL-encoded, as Envoy may send it) within a size budget.

use base64::Engine as _;

use crate::cert::CertError;

/// Largest PEM input accepted (leaf plus a generous chain).
pub const MAX_PEM_BYTES: usize = 64 * 1024;

/// Largest PEM accepted from the policy itself (trusted input): a CRL with 10,000 entries is
/// about 500 KB, so the peer budget above would refuse real revocation lists.
pub const MAX_CONFIG_PEM_BYTES: usize = 32 * 1024 * 1024;

/// Decodes every `CERTIFICATE` block of a PEM bundle into DER, in order.
/// Accepts URL-encoded PEM, as Envoy may send it.
pub fn pem_certificates(input: &[u8]) -> Result<Vec<Vec<u8>>, CertError> {
    pem_blocks(input, "CERTIFICATE")
}

/// Decodes every PEM block with the given label (e.g. `X509 CRL`) from peer input, within the
/// peer size budget.
pub fn pem_blocks(input: &[u8], label: &str) -> Result<Vec<Vec<u8>>, CertError> {
    pem_blocks_within(input, label, MAX_PEM_BYTES * 4)
}

/// Decodes every PEM block with the given label, refusing input over `max_bytes`.
///
/// URL-encoded input is decoded first. Envoy's encoding keeps the unreserved `-` (so
/// `-----BEGIN` survives) but encodes spaces, newlines, `+`, `/` and `=`. A `%` never occurs in
/// plain PEM (labels and base64 have none), so its presence is what tells the two forms apart.
pub fn pem_blocks_within(input: &[u8], label: &str, max_bytes: usize) -> Result<Vec<Vec<u8>>, CertError> {
    if input.len() > max_bytes {
        return Err(CertError::TooLarge(input.len()));
    }
    let decoded;
    let text: &[u8] = if input.contains(&b'%') {
        decoded = percent_decode(input);
        &decoded
    } else {
        input
    };
    let text = core::str::from_utf8(text).map_err(|_| CertError::BadPem)?;
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(&begin) {
        let after = &rest[start + begin.len()..];
        let stop = after.find(&end).ok_or(CertError::BadPem)?;
        let body: String = after[..stop].chars().filter(|c| !c.is_ascii_whitespace()).collect();
        let der = base64::engine::general_purpose::STANDARD.decode(body.as_bytes()).map_err(|_| CertError::BadPem)?;
        out.push(der);
        rest = &after[stop + end.len()..];
    }
    if out.is_empty() {
        return Err(CertError::BadPem);
    }
    Ok(out)
}

/// Percent-decodes `%XX` sequences; invalid sequences are kept as they are.
pub fn percent_decode(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        if input[i] == b'%' && i + 2 < input.len() {
            if let (Some(h), Some(l)) = (hex_val(input[i + 1]), hex_val(input[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(input[i]);
        i += 1;
    }
    out
}

/// The value of one hex digit, either case (percent-escapes in PEM and in paths).
pub(crate) fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn percent_decoding_handles_envoy_url_encoding() {
        assert_eq!(percent_decode(b"-----BEGIN%20CERT%0A"), b"-----BEGIN CERT\n".to_vec());
        assert_eq!(percent_decode(b"100%"), b"100%".to_vec());
        assert_eq!(percent_decode(b"%zz%4"), b"%zz%4".to_vec());
    }

    #[test]
    fn url_encoded_pem_is_decoded_even_though_dashes_stay_plain() {
        // Only the decision to decode is tested here; a real certificate is in tests/certificates.rs.
        let plain = b"-----BEGIN X-----\nAAEC\n-----END X-----\n";
        let encoded = b"-----BEGIN%20X-----%0AAAEC%0A-----END%20X-----%0A";
        assert_eq!(pem_blocks(plain, "X"), Ok(vec![vec![0, 1, 2]]));
        assert_eq!(pem_blocks(encoded, "X"), Ok(vec![vec![0, 1, 2]]));
    }
}
