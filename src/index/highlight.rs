//! Highlights: the best window of a passage with the question's terms marked `<b>…</b>`.
//! The question is analysed once; its terms are then found in each passage by substring
//! search, which is ~100× cheaper than segmenting every hit again and also marks a
//! compound and its parts as one span.

use std::collections::HashSet;
use std::ops::Range;
use tantivy::tokenizer::TextAnalyzer;

/// Characters of passage text a highlight shows at most.
const WINDOW_CHARS: usize = 240;
/// Characters of context kept before the first match of the window.
const LEAD_CHARS: usize = 20;

/// Marks the terms of one question in passage texts.
pub struct Highlighter {
    /// Analysed question terms of two characters or more (single syllables such as verb
    /// stems would light up half of any Korean text).
    terms: Vec<String>,
}

impl Highlighter {
    /// A highlighter for `question`, analysed with `analyzer` (the passage field's).
    pub fn new(mut analyzer: TextAnalyzer, question: &str) -> Highlighter {
        let mut terms = HashSet::new();
        let mut stream = analyzer.token_stream(question);
        while let Some(t) = stream.next() {
            if t.text.chars().count() >= 2 {
                terms.insert(t.text.clone());
            }
        }
        Highlighter {
            terms: terms.into_iter().collect(),
        }
    }

    /// The window of `text` with the most matches, HTML-escaped, matches in `<b>…</b>`;
    /// the start of the text when nothing matches.
    pub fn highlight(&self, text: &str) -> String {
        // Terms are lowercased by the analyzer; ASCII lowercasing keeps byte offsets.
        let haystack = text.to_ascii_lowercase();
        let matches = self
            .terms
            .iter()
            .flat_map(|t| {
                haystack
                    .match_indices(t.as_str())
                    .map(|(i, m)| i..i + m.len())
            })
            .collect();
        render(text, &merge(matches), WINDOW_CHARS)
    }
}

/// Sorted, non-overlapping ranges covering the same bytes.
fn merge(mut ranges: Vec<Range<usize>>) -> Vec<Range<usize>> {
    ranges.sort_by_key(|r| (r.start, r.end));
    let mut out: Vec<Range<usize>> = Vec::with_capacity(ranges.len());
    for r in ranges {
        match out.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => out.push(r),
        }
    }
    out
}

/// Byte offset `chars` characters after `from` (or the end of the text).
fn advance(text: &str, from: usize, chars: usize) -> usize {
    text[from..]
        .char_indices()
        .nth(chars)
        .map_or(text.len(), |(i, _)| from + i)
}

/// Byte offset `chars` characters before `to` (or 0).
fn back(text: &str, to: usize, chars: usize) -> usize {
    text[..to]
        .char_indices()
        .rev()
        .nth(chars.saturating_sub(1))
        .map_or(0, |(i, _)| i)
}

fn render(text: &str, matches: &[Range<usize>], window_chars: usize) -> String {
    // The window starting a little before some match that covers the most matches.
    let mut best = (0usize, 0usize, advance(text, 0, window_chars));
    for m in matches {
        let start = back(text, m.start, LEAD_CHARS);
        let end = advance(text, start, window_chars);
        let covered = matches
            .iter()
            .filter(|r| r.start >= start && r.end <= end)
            .count();
        if covered > best.0 {
            best = (covered, start, end);
        }
    }
    let (_, start, end) = best;
    let mut out = String::new();
    if start > 0 {
        out.push('…');
    }
    let mut at = start;
    for m in matches {
        let (from, to) = (m.start.max(start), m.end.min(end));
        if from >= to {
            continue;
        }
        escape_into(&mut out, &text[at..from]);
        out.push_str("<b>");
        escape_into(&mut out, &text[from..to]);
        out.push_str("</b>");
        at = to;
    }
    escape_into(&mut out, &text[at..end]);
    if end < text.len() {
        out.push('…');
    }
    out
}

/// Appends `s` escaped for HTML, as askama escapes template values.
fn escape_into(out: &mut String, s: &str) {
    use askama::filters::Escaper;
    // writing into a String cannot fail
    let _ = askama::filters::Html.write_escaped_str(out, s);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_matches_merge() {
        assert_eq!(merge(vec![6..12, 0..18, 20..22]), vec![0..18, 20..22]);
    }

    #[test]
    fn marks_and_escapes_within_the_window() {
        let text = "가<나> 건강기능식품 & 식품";
        let a = text.find("건강기능식품").unwrap();
        let b = text.rfind("식품").unwrap();
        let html = render(text, &[a..a + "건강기능식품".len(), b..b + 6], 240);
        assert_eq!(html, "가&#60;나&#62; <b>건강기능식품</b> &#38; <b>식품</b>");
    }

    #[test]
    fn picks_the_densest_window_and_clips_matches_at_its_edge() {
        let text = format!("{}검사 검사 검사{}", "가".repeat(300), "나".repeat(300));
        let start = text.find("검사").unwrap();
        let ms: Vec<_> = (0..3).map(|i| start + i * 7..start + i * 7 + 6).collect();
        let html = render(&text, &ms, 40);
        assert!(html.starts_with('…') && html.ends_with('…'), "{html}");
        assert_eq!(html.matches("<b>검사</b>").count(), 3, "{html}");
        // A match running past the window's end is cut at the window, on a char boundary.
        let clipped = vec![Range { start: 3, end: 21 }];
        let html = render("가나다라마바사", &clipped, 3);
        assert_eq!(html, "가<b>나다</b>…");
    }

    #[test]
    fn question_terms_are_found_case_insensitively() {
        use tantivy::tokenizer::{LowerCaser, SimpleTokenizer};
        let analyzer = TextAnalyzer::builder(SimpleTokenizer::default())
            .filter(LowerCaser)
            .build();
        let h = Highlighter::new(analyzer, "HACCP 인증 기준?");
        assert_eq!(
            h.highlight("HaCcp 인증 기준 a"),
            "<b>HaCcp</b> <b>인증</b> <b>기준</b> a"
        );
    }

    #[test]
    fn no_match_shows_the_start() {
        assert_eq!(render("가나다", &[], 2), "가나…");
        assert_eq!(render("", &[], 2), "");
    }
}
