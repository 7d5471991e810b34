//! NFC normalisation that remembers where each normalised byte came from, so that tokens
//! found in the normalised text carry byte offsets into the original (for highlighting).
//!
//! mecab-ko-dic only knows precomposed syllables, but text from HWP files or macOS often spells
//! Hangul with conjoining jamo (NFD); both must analyse the same.

use std::borrow::Cow;
use std::ops::Range;
use unicode_normalization::char::{canonical_combining_class, compose};
use unicode_normalization::{is_nfc, UnicodeNormalization};

/// Text in NFC with a map back to the original.
pub(super) struct NfcText<'a> {
    text: Cow<'a, str>,
    /// `(normalised start, original start)` of each cluster, in order; empty when the
    /// original was NFC already and the offsets are the same.
    clusters: Vec<(usize, usize)>,
    original_len: usize,
}

impl<'a> NfcText<'a> {
    pub(super) fn new(original: &'a str) -> Self {
        if is_nfc(original) {
            return Self {
                text: Cow::Borrowed(original),
                clusters: Vec::new(),
                original_len: original.len(),
            };
        }
        // A cluster starts at a character that cannot combine with what precedes it: a
        // starter (combining class 0) that does not compose with the cluster so far (as a
        // jamo vowel composes with a leading consonant). Clusters normalise independently.
        let mut text = String::with_capacity(original.len());
        let mut clusters = Vec::new();
        let mut cluster_start = 0;
        for (at, c) in original.char_indices() {
            let joins = at > cluster_start
                && (canonical_combining_class(c) != 0
                    || original[cluster_start..at]
                        .nfc()
                        .last()
                        .is_some_and(|last| compose(last, c).is_some()));
            if !joins && at > cluster_start {
                clusters.push((text.len(), cluster_start));
                text.extend(original[cluster_start..at].nfc());
                cluster_start = at;
            }
        }
        if cluster_start < original.len() {
            clusters.push((text.len(), cluster_start));
            text.extend(original[cluster_start..].nfc());
        }
        Self {
            text: Cow::Owned(text),
            clusters,
            original_len: original.len(),
        }
    }

    pub(super) fn as_str(&self) -> &str {
        &self.text
    }

    /// The original byte range that produced the normalised range `range`: from the start of
    /// the cluster holding its first byte to the end of the cluster holding its last.
    pub(super) fn original_range(&self, range: Range<usize>) -> Range<usize> {
        if self.clusters.is_empty() {
            return range;
        }
        let cluster_of = |at: usize| self.clusters.partition_point(|&(norm, _)| norm <= at) - 1;
        let first = cluster_of(range.start);
        let last = cluster_of(range.end.saturating_sub(1).max(range.start));
        let end = self
            .clusters
            .get(last + 1)
            .map_or(self.original_len, |&(_, original)| original);
        self.clusters[first].1..end
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nfc_text_is_borrowed_as_is() {
        let text = NfcText::new("건강진단 HACCP");
        assert!(matches!(text.text, Cow::Borrowed(_)));
        assert_eq!(text.original_range(3..6), 3..6);
    }

    #[test]
    fn conjoining_jamo_map_back_to_their_syllables() {
        let original = "식품 위생"; // NFC
        let decomposed: String = original.nfd().collect();
        let text = NfcText::new(&decomposed);
        assert_eq!(text.as_str(), original);
        // "위생" is bytes 7..13 in NFC; in NFD it is the last 4 jamo + 2 jamo.
        let range = text.original_range(7..13);
        assert_eq!(decomposed[range].nfc().collect::<String>(), "위생");
        let range = text.original_range(0..6);
        assert_eq!(decomposed[range].nfc().collect::<String>(), "식품");
    }

    #[test]
    fn latin_combining_marks_stay_with_their_base() {
        let original = "cafe\u{301} 식품";
        let text = NfcText::new(original);
        assert_eq!(text.as_str(), "café 식품");
        let cafe = text.original_range(0.."café".len());
        assert_eq!(&original[cafe], "cafe\u{301}");
        let food = text.original_range("café ".len().."café 식품".len());
        assert_eq!(&original[food], "식품");
    }
}
