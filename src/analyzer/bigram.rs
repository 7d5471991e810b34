//! A dictionary-free tantivy tokenizer for Korean: overlapping syllable bigrams.
//!
//! It finds what segmentation misses (new words, misspellings, words glued together) at the
//! cost of precision, so it backs up the morphological field rather than replacing it.

use super::text::NfcText;
use super::tokenizer::BufferedTokens;
use tantivy::tokenizer::{Token, Tokenizer};

/// Hangul runs become overlapping syllable bigrams (a one-syllable run stays a unigram);
/// runs of other letters and digits become lowercased words; everything else separates.
#[derive(Clone, Default)]
pub struct BigramTokenizer {
    tokens: Vec<Token>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    Hangul,
    Word,
    Separator,
}

fn class(c: char) -> Class {
    if matches!(c, '가'..='힣') {
        Class::Hangul
    } else if c.is_alphanumeric() {
        Class::Word
    } else {
        Class::Separator
    }
}

impl Tokenizer for BigramTokenizer {
    type TokenStream<'a> = BufferedTokens<'a>;

    fn token_stream<'a>(&'a mut self, original: &'a str) -> BufferedTokens<'a> {
        self.tokens.clear();
        let nfc = NfcText::new(original);
        let text = nfc.as_str();
        let mut push = |range: std::ops::Range<usize>| {
            let original = nfc.original_range(range.clone());
            let position = self.tokens.len();
            self.tokens.push(Token {
                offset_from: original.start,
                offset_to: original.end,
                position,
                text: text[range].to_lowercase(),
                position_length: 1,
            });
        };
        let chars: Vec<(usize, char)> = text.char_indices().collect();
        let end_of = |i: usize| chars.get(i).map_or(text.len(), |&(at, _)| at);
        let mut i = 0;
        while i < chars.len() {
            let kind = class(chars[i].1);
            let run = chars[i..]
                .iter()
                .take_while(|&&(_, c)| class(c) == kind)
                .count();
            match kind {
                Class::Hangul if run == 1 => push(chars[i].0..end_of(i + 1)),
                Class::Hangul => {
                    for (j, &(start, _)) in chars.iter().enumerate().skip(i).take(run - 1) {
                        push(start..end_of(j + 2));
                    }
                }
                Class::Word => push(chars[i].0..end_of(i + run)),
                Class::Separator => {}
            }
            i += run;
        }
        BufferedTokens::new(&mut self.tokens)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tantivy::tokenizer::TokenStream;
    use unicode_normalization::UnicodeNormalization;

    fn tokens(text: &str) -> Vec<(String, usize, usize, usize)> {
        let mut tokenizer = BigramTokenizer::default();
        let mut stream = tokenizer.token_stream(text);
        let mut out = Vec::new();
        while let Some(t) = stream.next() {
            out.push((t.text.clone(), t.offset_from, t.offset_to, t.position));
        }
        out
    }

    fn texts(text: &str) -> Vec<String> {
        tokens(text).into_iter().map(|t| t.0).collect()
    }

    #[test]
    fn hangul_runs_become_overlapping_bigrams() {
        assert_eq!(texts("건강진단"), ["건강", "강진", "진단"]);
        assert_eq!(texts("식품의 안전"), ["식품", "품의", "안전"]);
    }

    #[test]
    fn a_single_syllable_stays_a_unigram() {
        assert_eq!(texts("법 제44조"), ["법", "제", "44", "조"]);
    }

    #[test]
    fn latin_and_digits_are_lowercased_words() {
        assert_eq!(
            texts("HACCP 인증, COVID-19"),
            ["haccp", "인증", "covid", "19"]
        );
    }

    #[test]
    fn offsets_point_into_the_original_and_positions_count_up() {
        let text = "「식품위생법」 제44조(HACCP)";
        for (i, (token, from, to, position)) in tokens(text).into_iter().enumerate() {
            assert_eq!(text[from..to].to_lowercase(), token);
            assert_eq!(position, i);
        }
    }

    #[test]
    fn decomposed_hangul_gives_the_same_terms_with_original_offsets() {
        let nfc = "위생 교육을 받다";
        let nfd: String = nfc.nfd().collect();
        let (a, b) = (tokens(nfc), tokens(&nfd));
        assert_eq!(
            a.iter().map(|t| &t.0).collect::<Vec<_>>(),
            b.iter().map(|t| &t.0).collect::<Vec<_>>()
        );
        for (token, from, to, _) in b {
            assert_eq!(nfd[from..to].nfc().collect::<String>(), token);
        }
    }

    #[test]
    fn empty_and_punctuation_only_text_gives_no_tokens() {
        assert!(tokens("").is_empty());
        assert!(tokens(" .,!? 「」").is_empty());
    }
}
