//! Helpers shared by the text-based parsers: extension checks and decoding (UTF-8 first,
//! then the EUC-KR/CP949 family that Korean public-sector text files often still use).

use crate::IngestError;
use std::borrow::Cow;
use std::path::Path;
use unicode_normalization::{is_nfc_quick, IsNormalized, UnicodeNormalization};

/// Whether `path` ends in one of `extensions` (lower-case, without the dot), ignoring case.
pub(crate) fn has_extension(path: &Path, extensions: &[&str]) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| extensions.iter().any(|x| e.eq_ignore_ascii_case(x)))
}

/// Decodes a text file. A UTF-8 BOM is dropped. Bytes that are not UTF-8 are tried as
/// CP949 (a superset of EUC-KR, which is what `encoding_rs` calls EUC-KR) and accepted
/// only if every byte decodes, so binary junk is rejected instead of becoming mojibake.
pub(crate) fn decode_text(bytes: &[u8]) -> Result<String, IngestError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    match std::str::from_utf8(bytes) {
        Ok(s) => Ok(s.to_owned()),
        Err(utf8_err) => encoding_rs::EUC_KR
            .decode_without_bom_handling_and_without_replacement(bytes)
            .map(Cow::into_owned)
            .ok_or_else(|| {
                IngestError::Encoding(format!(
                    "invalid byte at offset {} and not decodable as EUC-KR/CP949 either",
                    utf8_err.valid_up_to()
                ))
            }),
    }
}

/// NFC form of `s`, borrowing when it already is (the common case for Korean text, so
/// most lines are not copied).
pub(crate) fn nfc(s: &str) -> Cow<'_, str> {
    if is_nfc_quick(s.chars()) == IsNormalized::Yes {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(s.nfc().collect())
    }
}

/// Replaces the few HTML entities that law.go.kr leaves in its text (`&lt;개정&gt;`).
pub(crate) fn unescape_entities(s: &str) -> Cow<'_, str> {
    if !s.contains('&') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find('&') {
        out.push_str(&rest[..pos]);
        rest = &rest[pos..];
        let replaced = [
            ("&lt;", '<'),
            ("&gt;", '>'),
            ("&amp;", '&'),
            ("&quot;", '"'),
            ("&#39;", '\''),
            ("&apos;", '\''),
            ("&nbsp;", ' '),
        ]
        .iter()
        .find(|(entity, _)| rest.starts_with(entity));
        match replaced {
            Some((entity, ch)) => {
                out.push(*ch);
                rest = &rest[entity.len()..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_with_bom() {
        assert_eq!(decode_text(b"\xEF\xBB\xBF\xEA\xB0\x80").unwrap(), "가");
    }

    #[test]
    fn euc_kr_fallback() {
        let (bytes, _, _) = encoding_rs::EUC_KR.encode("식품위생법 제44조");
        assert_eq!(decode_text(&bytes).unwrap(), "식품위생법 제44조");
    }

    #[test]
    fn garbage_is_an_encoding_error() {
        let err = decode_text(&[0xB0, 0xFF, 0xFF, 0x00, 0x81]).unwrap_err();
        assert!(matches!(err, IngestError::Encoding(_)), "{err}");
    }

    #[test]
    fn nfc_composes_jamo() {
        // 가 as decomposed jamo (U+1100 U+1161) becomes the precomposed syllable.
        assert_eq!(nfc("\u{1100}\u{1161}"), "가");
    }

    #[test]
    fn entities() {
        assert_eq!(
            unescape_entities("삭제 &lt;2023. 12. 7.&gt; &x"),
            "삭제 <2023. 12. 7.> &x"
        );
    }
}
