//! The morphological tantivy tokenizer for Korean: mecab-ko-dic segmentation reduced to the
//! morphemes that carry meaning, with article citations and numbers kept searchable.
//!
//! What is indexed, and why:
//! - nouns (NNG, NNP, counters NNBC, numerals NR), verb and adjective stems (VV, VA, as their
//!   dictionary form: 받아야 → 받), roots (XR), adverbs (MAG: 다시, 즉시 matter in statutes),
//!   foreign words (SL, lowercased), hanja (SH), numbers (SN) and unknown words;
//! - dropped: particles (J*) and endings (E*), which only mark grammar; the copula (VCP, VCN),
//!   auxiliary verbs (VX), affixes (XP*, XS*: the 하 of 판매하다, 들, 제), bound nouns (NNB:
//!   것, 수, 등), pronouns and determiners (NP, MM), conjunctive adverbs and interjections
//!   (MAJ, IC), and punctuation (SF, SE, SS*, SC, SY); also the lemmas 수, 하, 되, 있, which
//!   carry no meaning in 할 수 있다 / 하여야 한다 and which lindera, unlike mecab-ko, reads as
//!   content words after a space;
//! - compounds (mecab-ko-dic's `Compound` entries and the nouns of our user dictionary) are
//!   indexed whole and as their parts of two or more syllables, at the same and following
//!   positions, so 건강기능식품 is found by "기능식품" and 의약품 by "약품";
//! - article citations are read before segmentation, because mecab-ko cuts them badly
//!   (제44조제1항 → 제/44/조제/1/항): 제44조, 44조 and "제 44조" all index as `44조`,
//!   제44조의2 as `44조의2`, 제1항 as `1항`; other numbers lose their thousands separators.

use super::dictionary::{KoreanDictionary, Morpheme};
use super::text::NfcText;
use std::ops::Range;
use tantivy::tokenizer::{Token, TokenStream, Tokenizer};

/// Tags whose morphemes are indexed (the first tag, for inflected forms such as `VV+EC`).
const INDEXED_TAGS: [&str; 12] = [
    "NNG", "NNP", "NNBC", "NR", "VV", "VA", "XR", "MAG", "SL", "SH", "SN", "UNKNOWN",
];
/// Lemmas too frequent to mean anything (할 수 있다, 하여야 한다, 되다) and which lindera reads as
/// content words after a space where mecab-ko reads them as bound noun or auxiliary verb.
const STOP_LEMMAS: [&str; 4] = ["수", "하", "되", "있"];
/// Units of a statute citation: 조 (article), 항 (paragraph), 호 (item).
const CITATION_UNITS: [char; 3] = ['조', '항', '호'];
/// Compound parts shorter than this are too ambiguous to index on their own (의약품 = 의+약품).
const MIN_PART_CHARS: usize = 2;

/// A tantivy tokenizer over [`KoreanDictionary`]; cheap to clone.
#[derive(Clone)]
pub struct KoreanTokenizer {
    dictionary: KoreanDictionary,
    tokens: Vec<Token>,
}

impl KoreanTokenizer {
    pub fn new(dictionary: KoreanDictionary) -> Self {
        Self {
            dictionary,
            tokens: Vec::new(),
        }
    }
}

impl Tokenizer for KoreanTokenizer {
    type TokenStream<'a> = BufferedTokens<'a>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> BufferedTokens<'a> {
        self.tokens.clear();
        if let Err(e) = analyze(&self.dictionary, text, &mut self.tokens) {
            // tantivy gives a tokenizer no way to fail; the text stays unindexed by this field.
            tracing::warn!("Korean analysis failed, text not indexed: {e}");
            self.tokens.clear();
        }
        BufferedTokens::new(&mut self.tokens)
    }
}

/// Tags of the words that name things: common and proper nouns, foreign words, hanja and
/// words the dictionary does not know.
const NOUN_TAGS: [&str; 5] = ["NNG", "NNP", "SL", "SH", "UNKNOWN"];

/// The words of `text` that name things, each whole (a compound as one word) and spelled as
/// the morpheme field indexes it (lowercased), grouped as they are written together: 건강진담
/// (a misspelt 건강진단) is the group [건강, 진담]. What a question is about.
pub fn nouns(dictionary: &KoreanDictionary, text: &str) -> crate::Result<Vec<Vec<String>>> {
    let nfc = NfcText::new(text);
    let mut groups: Vec<Vec<String>> = Vec::new();
    let mut end = usize::MAX;
    for m in morphemes(dictionary, nfc.as_str())? {
        if !NOUN_TAGS.contains(&m.first_tag()) || m.kind == "Inflect" {
            continue;
        }
        let word = m.surface.to_lowercase();
        match groups.last_mut() {
            Some(group) if m.range.start == end => group.push(word),
            _ => groups.push(vec![word]),
        }
        end = m.range.end;
    }
    Ok(groups)
}

/// First syllables of the 하다, 받다 and 되다 that make a verb of the noun before them
/// (보고하여야, 보고해야, 보고한, 보고받은, 보고된): the surface, since mecab-ko's reading of
/// them varies (보고하나요 ends in 하/VX read as 않).
const VERBALISERS: [char; 15] = [
    '하', '해', '했', '한', '할', '함', '합', '받', '되', '돼', '됐', '된', '될', '됨', '됩',
];

/// `text` segmented, with one systematic misreading of mecab-ko undone: after an object,
/// 보고하여야 reads as 보/VV + 고/EC + 하, "see and do", instead of the noun 보고 (report) +
/// 하다; a statute says 보고하여야 and 보고받은 far more often than it says "see". A verb
/// stem, the ending 고 and a 하/받/되 written together make the noun when the dictionary has
/// it (보고, 신고); with a space between (광고를 보고 샀다) nothing changes.
fn morphemes(dictionary: &KoreanDictionary, text: &str) -> crate::Result<Vec<Morpheme>> {
    let mut segmented = dictionary.segment(text)?;
    let mut i = 0;
    while i + 2 < segmented.len() {
        let (stem, ending, next) = (&segmented[i], &segmented[i + 1], &segmented[i + 2]);
        let noun = || format!("{}{}", stem.surface, ending.surface);
        if stem.pos == "VV"
            && ending.surface == "고"
            && ending.pos == "EC"
            && stem.range.end == ending.range.start
            && ending.range.end == next.range.start
            && next.surface.starts_with(VERBALISERS)
            && dictionary.is_common_noun(&noun())
        {
            let noun = noun();
            let range = stem.range.start..ending.range.end;
            segmented.splice(
                i..i + 2,
                [Morpheme {
                    surface: noun,
                    pos: "NNG".into(),
                    kind: "*".into(),
                    expression: "*".into(),
                    range,
                }],
            );
        }
        i += 1;
    }
    Ok(segmented)
}

/// Tokens produced up front, streamed to tantivy.
pub struct BufferedTokens<'a> {
    tokens: &'a mut [Token],
    /// Index of the current token plus one; 0 before the first `advance`.
    next: usize,
}

impl<'a> BufferedTokens<'a> {
    pub(super) fn new(tokens: &'a mut [Token]) -> Self {
        Self { tokens, next: 0 }
    }
}

impl TokenStream for BufferedTokens<'_> {
    fn advance(&mut self) -> bool {
        if self.next < self.tokens.len() {
            self.next += 1;
            true
        } else {
            false
        }
    }

    fn token(&self) -> &Token {
        &self.tokens[self.next.saturating_sub(1)]
    }

    fn token_mut(&mut self) -> &mut Token {
        &mut self.tokens[self.next.saturating_sub(1)]
    }
}

/// A term to index, with its byte range in the normalised text.
struct Term {
    text: String,
    range: Range<usize>,
}

/// A unit of meaning in reading order: a word with its compound parts, or a number.
struct Unit {
    whole: Term,
    parts: Vec<Term>,
}

/// Appends the indexed tokens of `original` to `out`, offsets into `original`.
fn analyze(
    dictionary: &KoreanDictionary,
    original: &str,
    out: &mut Vec<Token>,
) -> crate::Result<()> {
    let nfc = NfcText::new(original);
    let text = nfc.as_str();
    let numbers = scan_numbers(text);
    let mut units: Vec<Unit> = numbers
        .iter()
        .map(|n| Unit {
            whole: Term {
                text: n.text.clone(),
                range: n.token.clone(),
            },
            parts: Vec::new(),
        })
        .collect();
    // Morphemes that overlap a number were cut from it (or from a citation's 제/조) by
    // mecab-ko; the scanner's reading replaces them. Numbers are in text order and disjoint,
    // so the only candidate is the first one ending after the morpheme starts.
    let overlaps_number = |r: &Range<usize>| {
        let next = numbers.partition_point(|n| n.span.end <= r.start);
        numbers.get(next).is_some_and(|n| n.span.start < r.end)
    };
    for morpheme in morphemes(dictionary, text)? {
        if !overlaps_number(&morpheme.range) {
            if let Some(unit) = morpheme_unit(&morpheme) {
                units.push(unit);
            }
        }
    }
    units.sort_by_key(|u| u.whole.range.start);

    let mut position = 0;
    for unit in units {
        let width = unit.parts.len().max(1);
        out.push(token(&nfc, unit.whole, position, width));
        for (i, part) in unit.parts.into_iter().enumerate() {
            out.push(token(&nfc, part, position + i, 1));
        }
        position += width;
    }
    Ok(())
}

fn token(nfc: &NfcText<'_>, term: Term, position: usize, position_length: usize) -> Token {
    let original = nfc.original_range(term.range);
    Token {
        offset_from: original.start,
        offset_to: original.end,
        position,
        text: term.text.to_lowercase(),
        position_length,
    }
}

/// What a morpheme contributes to the index, if anything.
fn morpheme_unit(m: &Morpheme) -> Option<Unit> {
    if !INDEXED_TAGS.contains(&m.first_tag()) || STOP_LEMMAS.contains(&m.surface.as_str()) {
        return None;
    }
    let parts = m.parts();
    let whole = |text: &str| Term {
        text: text.to_string(),
        range: m.range.clone(),
    };
    let unit = match m.kind.as_str() {
        // An inflected form indexes as the dictionary form of its first morpheme
        // (지난 = 지나/VV + ㄴ/ETM → 지나); its offsets are those of the whole form.
        "Inflect" | "Preanalysis" => {
            let lemma = parts.first()?.0;
            if STOP_LEMMAS.contains(&lemma) {
                return None;
            }
            Unit {
                whole: whole(lemma),
                parts: Vec::new(),
            }
        }
        "Compound" => Unit {
            whole: whole(&m.surface),
            parts: compound_parts(m, &parts),
        },
        _ => Unit {
            whole: whole(&m.surface),
            parts: Vec::new(),
        },
    };
    Some(unit)
}

/// The parts of a compound worth indexing, located inside its surface; none when the parts
/// do not spell the surface (then their offsets would be guesses).
fn compound_parts(m: &Morpheme, parts: &[(&str, &str)]) -> Vec<Term> {
    let spelled: String = parts.iter().map(|(surface, _)| *surface).collect();
    if spelled != m.surface {
        return Vec::new();
    }
    let mut at = m.range.start;
    let mut terms = Vec::new();
    for (surface, _) in parts {
        let range = at..at + surface.len();
        at = range.end;
        if surface.chars().count() >= MIN_PART_CHARS {
            terms.push(Term {
                text: surface.to_string(),
                range,
            });
        }
    }
    terms
}

/// A number or an article citation found by [`scan_numbers`].
struct Number {
    /// Everything it covers, including a leading 제 and thousands separators.
    span: Range<usize>,
    /// What its token's offsets cover: the span without a leading 제.
    token: Range<usize>,
    text: String,
}

/// Finds numbers (`1,000`, `3.5`) and article citations (`제44조`, `44조의2`, `1항`) in `text`.
/// Digits glued to Latin letters (H5N1, COVID-19) are left to the segmenter as part of a name.
fn scan_numbers(text: &str) -> Vec<Number> {
    let bytes = text.as_bytes();
    let mut found: Vec<Number> = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        if !bytes[at].is_ascii_digit() || (at > 0 && bytes[at - 1].is_ascii_alphanumeric()) {
            at += 1;
            continue;
        }
        let start = at;
        let mut end = digits_end(bytes, at);
        let mut is_integer = true;
        while bytes.get(end) == Some(&b',') && digits_end(bytes, end + 1) == end + 4 {
            end += 4;
        }
        if bytes.get(end) == Some(&b'.') && bytes.get(end + 1).is_some_and(u8::is_ascii_digit) {
            end = digits_end(bytes, end + 1);
            is_integer = false;
        }
        at = end;
        if bytes.get(end).is_some_and(u8::is_ascii_alphabetic) {
            continue;
        }
        let digits: String = text[start..end].chars().filter(|&c| c != ',').collect();
        let citation = is_integer
            .then(|| citation_at(text, end, &digits))
            .flatten();
        let number = match citation {
            Some((span_end, citation_text)) => {
                let previous_end = found.last().map(|n| n.span.end);
                Number {
                    span: leading_je(text, start, previous_end)..span_end,
                    token: start..span_end,
                    text: citation_text,
                }
            }
            None => Number {
                span: start..end,
                token: start..end,
                text: digits,
            },
        };
        at = number.span.end;
        found.push(number);
    }
    found
}

fn digits_end(bytes: &[u8], from: usize) -> usize {
    from + bytes[from.min(bytes.len())..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count()
}

/// If a citation unit follows the integer `digits` at `text[end..]`, its end and token text
/// (`44조`, or `44조의2` for an inserted article).
fn citation_at(text: &str, end: usize, digits: &str) -> Option<(usize, String)> {
    let rest = &text[end..];
    let unit = rest.chars().next().filter(|c| CITATION_UNITS.contains(c))?;
    let mut span_end = end + unit.len_utf8();
    let mut token = format!("{digits}{unit}");
    if let Some(after) = text[span_end..].strip_prefix('의') {
        let branch_len = after.bytes().take_while(u8::is_ascii_digit).count();
        if branch_len > 0 {
            token.push('의');
            token.push_str(&after[..branch_len]);
            span_end += '의'.len_utf8() + branch_len;
        }
    }
    Some((span_end, token))
}

/// Where a citation starting with digits at `start` really begins: at a preceding 제 (with
/// optional spaces between), if that 제 starts a word or follows the previous citation
/// (제2조제1항); otherwise at the digits.
fn leading_je(text: &str, start: usize, previous_end: Option<usize>) -> usize {
    let before = text[..start].trim_end_matches(' ');
    let Some(je_start) = before.strip_suffix('제').map(str::len) else {
        return start;
    };
    let word_start = text[..je_start]
        .chars()
        .next_back()
        .is_none_or(|c| !matches!(c, '가'..='힣'));
    if word_start || previous_end == Some(je_start) {
        je_start
    } else {
        start
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::dictionary;
    use super::*;
    use unicode_normalization::UnicodeNormalization;

    fn tokens(text: &str) -> Vec<Token> {
        let mut tokenizer = KoreanTokenizer::new(dictionary().clone());
        let mut stream = tokenizer.token_stream(text);
        let mut out = Vec::new();
        while let Some(token) = stream.next() {
            out.push(token.clone());
        }
        out
    }

    fn terms(text: &str) -> Vec<String> {
        tokens(text).into_iter().map(|t| t.text).collect()
    }

    #[test]
    fn a_report_is_a_noun_even_after_an_object() {
        // mecab-ko reads these as 보/VV + 고/EC: "see and do"
        let report = terms("회수계획을 보고하여야 한다");
        assert!(report.contains(&"보고".to_string()), "{report:?}");
        assert!(!report.contains(&"보".to_string()), "{report:?}");
        let received = terms("의약품등의 회수계획을 보고받으면");
        assert!(received.contains(&"보고".to_string()), "{received:?}");
        assert!(received.contains(&"받".to_string()), "{received:?}");
        let asked = terms("부작용이 생기면 어디에 보고하나요?");
        assert!(asked.contains(&"보고".to_string()), "{asked:?}");
        // with a space, 보고 is still "having seen"
        let seen = terms("광고를 보고 샀다");
        assert!(seen.contains(&"보".to_string()), "{seen:?}");
        assert!(!seen.contains(&"보고".to_string()), "{seen:?}");
        // offsets cover the two syllables
        let t = tokens("계획을 보고하여야");
        let report = t.iter().find(|t| t.text == "보고").expect("보고");
        assert_eq!(
            &"계획을 보고하여야"[report.offset_from..report.offset_to],
            "보고"
        );
    }

    #[test]
    fn nouns_are_the_words_that_name_things() {
        let groups = nouns(
            dictionary(),
            "해외직구로 반입이 차단되는 식품 원료 목록에 멜라토닌이 있나요? HACCP 건강기능식품",
        )
        .unwrap();
        let found: Vec<&String> = groups.iter().flatten().collect();
        for noun in ["멜라토닌", "식품", "원료", "목록", "haccp", "건강기능식품"] {
            assert!(found.iter().any(|n| *n == noun), "{noun} in {found:?}");
        }
        for not_a_noun in ["있", "되", "이", "에", "기능"] {
            assert!(
                !found.iter().any(|n| *n == not_a_noun),
                "{not_a_noun} in {found:?}"
            );
        }
        assert!(
            groups.contains(&vec!["해외".to_string(), "직구".to_string()]),
            "{groups:?}"
        );
        assert!(groups.contains(&vec!["원료".to_string()]), "{groups:?}");
    }

    #[test]
    fn keeps_content_morphemes_in_dictionary_form() {
        assert_eq!(
            terms("건강진단 유효기간이 끝나가는데, 언제까지 다시 받아야 하나요?"),
            [
                "건강진단",
                "건강",
                "진단",
                "유효",
                "기간",
                "끝",
                "나가",
                "다시",
                "받"
            ]
        );
        assert_eq!(
            terms("식품의약품안전처장은 위해식품의 판매를 금지할 수 있다."),
            ["식품의약품안전처", "장", "위해식품", "판매", "금지"]
        );
        assert_eq!(
            terms("HACCP 인증을 받은 업체"),
            ["haccp", "인증", "받", "업체"]
        );
    }

    #[test]
    fn citations_index_the_same_however_they_are_typed() {
        for typed in [
            "44조",
            "제44조",
            "제 44조",
            "식품위생법 44조",
            "법 제44조에 따라",
        ] {
            assert!(terms(typed).contains(&"44조".to_string()), "{typed}");
        }
        assert_eq!(terms("제21조제8호"), ["21조", "8호"]);
        assert_eq!(terms("제44조의2제1항"), ["44조의2", "1항"]);
        assert_eq!(
            terms("1,000만원 이하, 3.5%"),
            ["1000", "만", "원", "이하", "3.5"]
        );
    }

    #[test]
    fn compounds_are_indexed_whole_and_in_parts() {
        let found: Vec<(String, usize)> = tokens("건강기능식품 판매")
            .into_iter()
            .map(|t| (t.text, t.position))
            .collect();
        let expected = [
            ("건강기능식품", 0),
            ("건강", 0),
            ("기능", 1),
            ("식품", 2),
            ("판매", 3),
        ];
        assert_eq!(found, expected.map(|(t, p)| (t.to_string(), p)));
        let query = terms("기능식품");
        assert!(query.contains(&"기능".to_string()) && query.contains(&"식품".to_string()));
        assert!(terms("의약품").contains(&"약품".to_string()));
    }

    #[test]
    fn domain_terms_stay_whole() {
        assert_eq!(terms("식품의약품안전처"), ["식품의약품안전처"]);
        assert_eq!(terms("식약처"), ["식약처"]);
    }

    fn questions() -> Vec<String> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/qa/dev.jsonl");
        let text = std::fs::read_to_string(&path).expect("shared/qa/dev.jsonl");
        text.lines()
            .map(|line| {
                let value: serde_json::Value = serde_json::from_str(line).expect("json line");
                value["question"].as_str().expect("question").to_string()
            })
            .collect()
    }

    #[test]
    fn offsets_point_into_the_original_text() {
        for question in questions() {
            let inflected: Vec<Range<usize>> = dictionary()
                .segment(&question)
                .expect("segmentation")
                .into_iter()
                .filter(|m| m.kind == "Inflect" || m.kind == "Preanalysis")
                .map(|m| m.range)
                .collect();
            let mut last_position = 0;
            for t in tokens(&question) {
                let slice = question[t.offset_from..t.offset_to].to_lowercase();
                let lemma = inflected.contains(&(t.offset_from..t.offset_to));
                assert!(
                    slice == t.text || slice.replace(',', "") == t.text || lemma,
                    "{question}: {slice} → {}",
                    t.text
                );
                assert!(t.position >= last_position, "{question}: positions go back");
                last_position = t.position;
            }
        }
    }

    #[test]
    fn decomposed_hangul_analyses_like_composed() {
        for question in questions() {
            let decomposed: String = question.nfd().collect();
            let (composed, spelled) = (tokens(&question), tokens(&decomposed));
            assert_eq!(composed.len(), spelled.len(), "{question}");
            for (c, d) in composed.iter().zip(&spelled) {
                assert_eq!((&c.text, c.position), (&d.text, d.position));
                let original: String = decomposed[d.offset_from..d.offset_to].nfc().collect();
                assert_eq!(original, question[c.offset_from..c.offset_to]);
            }
        }
    }
}
