//! The structure-aware chunker: turns a document's segments into passages of bounded
//! size, each an exact byte range of the document text with its locator and a title.
//!
//! Segments are kept whole when they fit; tiny neighbours under the same article,
//! heading or page are merged, and the sections of one record packed; long ones are split at the most natural boundary
//! inside the size limit: blank line, line break before an item or after a sentence,
//! sentence end, any line break, whitespace, and only then anywhere between characters.

use crate::{DocKind, Document, Locator};
use serde::{Deserialize, Serialize};
use std::ops::Range;

/// Size limits for passages, in characters.
#[derive(Debug, Clone, Copy)]
pub struct ChunkOptions {
    /// No passage is longer than this (values below 1 count as 1).
    pub max_chars: usize,
    /// Adjacent segments with the same locator (ignoring the 항) are merged while the
    /// passage is shorter than this and the merge stays within `max_chars`. Sections of
    /// one record (safety letter) are always packed up to `max_chars`.
    pub min_chars: usize,
}

impl Default for ChunkOptions {
    fn default() -> Self {
        ChunkOptions {
            max_chars: 800,
            min_chars: 100,
        }
    }
}

/// One retrievable unit: text with its place in the document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Passage {
    /// Where the passage comes from, for display and for indexing with the text:
    /// "식품위생법 제44조(영업자 등의 준수사항)", a safety letter's title, or the
    /// document title (plus the section heading).
    pub title: String,
    pub locator: Locator,
    /// Exactly `doc.text[range]`.
    pub text: String,
    /// Byte range of `text` within [`Document::text`].
    pub range: Range<usize>,
}

impl Passage {
    /// The text to index or embed: title (and 항) on the first line, then the text, so a
    /// passage from the middle of an article still carries the law and article names.
    pub fn contextual_text(&self) -> String {
        match &self.locator.paragraph {
            Some(p) => format!("{} {p}\n{}", self.title, self.text),
            None => format!("{}\n{}", self.title, self.text),
        }
    }
}

/// Cuts a document into passages, in document order, non-overlapping.
pub fn chunk_document(doc: &Document, opts: ChunkOptions) -> Vec<Passage> {
    let max_chars = opts.max_chars.max(1);
    let mut passages = Vec::new();
    for (range, locator) in merge_small(doc, opts.min_chars, max_chars) {
        let title = passage_title(doc, &locator);
        for piece in split(&doc.text, range, max_chars) {
            passages.push(Passage {
                title: title.clone(),
                locator: locator.clone(),
                text: doc.text[piece.clone()].to_owned(),
                range: piece,
            });
        }
    }
    passages
}

/// Groups adjacent segments that share everything but the 항 while the group is small.
fn merge_small(doc: &Document, min_chars: usize, max_chars: usize) -> Vec<(Range<usize>, Locator)> {
    let mut groups: Vec<(Range<usize>, Locator, Option<String>)> = Vec::new();
    for segment in &doc.segments {
        // Guard against ranges a buggy parser might produce; the chunker never panics.
        if doc.text.get(segment.range.clone()).is_none() {
            continue;
        }
        if let Some((range, locator, last_paragraph)) = groups.last_mut() {
            let group_chars = char_len(&doc.text[range.clone()]);
            let merged = range.start..segment.range.end;
            let fits = segment.range.start >= range.end
                && doc
                    .text
                    .get(merged.clone())
                    .is_some_and(|t| char_len(t) <= max_chars);
            // A record (one safety letter) is a short unit read as a whole: its sections
            // are packed up to the size limit rather than only while tiny.
            let small = group_chars < min_chars || locator.record.is_some();
            if small && fits && same_place(locator, &segment.locator) {
                *range = merged;
                if segment.locator.paragraph.is_some() {
                    *last_paragraph = segment.locator.paragraph.clone();
                }
                continue;
            }
        }
        groups.push((segment.range.clone(), segment.locator.clone(), None));
    }
    groups
        .into_iter()
        .map(|(range, mut locator, last_paragraph)| {
            if let (Some(first), Some(last)) = (&locator.paragraph, last_paragraph) {
                if *first != last {
                    locator.paragraph = Some(format!("{first}~{last}"));
                }
            }
            (range, locator)
        })
        .collect()
}

fn same_place(a: &Locator, b: &Locator) -> bool {
    a.chapter == b.chapter
        && a.article == b.article
        && a.page == b.page
        && a.heading == b.heading
        && a.record == b.record
}

fn passage_title(doc: &Document, locator: &Locator) -> String {
    if doc.kind == DocKind::Statute {
        let mut title = doc.meta.get("law").unwrap_or(&doc.title).clone();
        if let Some(chapter) = locator.chapter.as_deref().filter(|c| c.starts_with("부칙")) {
            title.push(' ');
            title.push_str(chapter);
        }
        if let Some(article) = &locator.article {
            title.push(' ');
            title.push_str(article);
            if let Some(t) = &locator.article_title {
                title.push_str(&format!("({t})"));
            }
        }
        return title;
    }
    if let Some(record) = &locator.record {
        return record.clone();
    }
    match &locator.heading {
        Some(h) if *h != doc.title => format!("{} > {h}", doc.title),
        _ => doc.title.clone(),
    }
}

fn char_len(s: &str) -> usize {
    s.chars().count()
}

/// Splits `text[range]` into whitespace-trimmed pieces of at most `max_chars` chars.
fn split(text: &str, range: Range<usize>, max_chars: usize) -> Vec<Range<usize>> {
    let mut pieces = Vec::new();
    let end = range.end;
    let mut pos = range.start;
    loop {
        pos += text[pos..end].len() - text[pos..end].trim_start().len();
        if pos >= end {
            break;
        }
        let rest = &text[pos..end];
        let window_len = rest
            .char_indices()
            .nth(max_chars)
            .map_or(rest.len(), |(i, _)| i);
        let cut = if window_len == rest.len() {
            end
        } else {
            pos + best_cut(&rest[..window_len], max_chars / 3)
        };
        let piece = &text[pos..cut];
        let trimmed_end = pos + piece.trim_end().len();
        if trimmed_end > pos {
            pieces.push(pos..trimmed_end);
        }
        pos = cut;
    }
    pieces
}

/// Where to end a piece inside `window` (which is `max_chars` long and followed by more
/// text): the byte offset of the best boundary at or after `min_chars` chars, so that
/// pieces do not come out tiny when the only boundary is near the start.
fn best_cut(window: &str, min_chars: usize) -> usize {
    let min_byte = window
        .char_indices()
        .nth(min_chars)
        .map_or(0, |(i, _)| i)
        .max(1);
    let chars: Vec<(usize, char)> = window.char_indices().collect();
    let prev = |k: usize| k.checked_sub(1).map(|j| chars[j].1);
    let next_line_is_item = |k: usize| {
        let rest = &window[chars[k].0 + 1..];
        rest.starts_with([' ', '\t', '-', '•', '·', '○', '□', '*'])
            || rest.starts_with(|c: char| c.is_ascii_digit() || is_circled(c))
            || rest.chars().nth(1) == Some('.')
    };
    let sentence_end = |k: usize| {
        matches!(prev(k), Some('.' | '?' | '!' | '。'))
            && !k
                .checked_sub(2)
                .is_some_and(|j| chars[j].1.is_ascii_digit())
    };
    // Boundary kinds from best to worst; each gets the cut offset for char index k.
    type Rule<'a> = &'a dyn Fn(usize, char) -> bool;
    let blank_line = |k: usize, c: char| c == '\n' && prev(k) == Some('\n');
    let item_or_sentence_line = |k: usize, c: char| {
        c == '\n' && (sentence_end(k) || prev(k) == Some('다') || next_line_is_item(k))
    };
    let sentence = |k: usize, c: char| c.is_whitespace() && sentence_end(k);
    let any_line = |_: usize, c: char| c == '\n';
    let space = |_: usize, c: char| c.is_whitespace();
    let rules: [Rule; 5] = [
        &blank_line,
        &item_or_sentence_line,
        &sentence,
        &any_line,
        &space,
    ];
    for rule in rules {
        let found = chars
            .iter()
            .enumerate()
            .rev()
            .take_while(|(_, (i, _))| *i >= min_byte)
            .find(|(k, (_, c))| rule(*k, *c));
        if let Some((_, (i, _))) = found {
            return *i;
        }
    }
    window.len()
}

fn is_circled(c: char) -> bool {
    ('\u{2460}'..='\u{2473}').contains(&c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Segment;
    use std::collections::BTreeMap;

    fn doc(kind: DocKind, text: &str, segments: Vec<(Range<usize>, Locator)>) -> Document {
        Document {
            title: "문서".into(),
            kind,
            text: text.into(),
            meta: BTreeMap::from([("law".to_owned(), "식품위생법".to_owned())]),
            segments: segments
                .into_iter()
                .map(|(range, locator)| Segment { range, locator })
                .collect(),
        }
    }

    fn article(a: &str, p: Option<&str>) -> Locator {
        Locator {
            article: Some(a.into()),
            article_title: Some("준수사항".into()),
            paragraph: p.map(Into::into),
            ..Locator::default()
        }
    }

    fn check(doc: &Document, passages: &[Passage], max: usize) {
        let mut last_end = 0;
        for p in passages {
            assert_eq!(p.text, doc.text[p.range.clone()]);
            assert!(p.range.start >= last_end, "overlap at {:?}", p.range);
            assert!(
                p.text.chars().count() <= max,
                "{} > {max}",
                p.text.chars().count()
            );
            assert_eq!(p.text.trim(), p.text);
            assert!(!p.text.is_empty());
            last_end = p.range.end;
        }
    }

    #[test]
    fn statute_titles_and_merging() {
        let text = "제44조(준수사항)\n① 짧다.\n② 짧다.\n③ 이 항은 조금 더 길어서 합쳐지지 않는다.";
        let a = 0..text.find("\n②").unwrap();
        let b = text.find("②").unwrap()..text.find("\n③").unwrap();
        let c = text.find("③").unwrap()..text.len();
        let d = doc(
            DocKind::Statute,
            text,
            vec![
                (a, article("제44조", Some("제1항"))),
                (b, article("제44조", Some("제2항"))),
                (c, article("제44조", Some("제3항"))),
            ],
        );
        let opts = ChunkOptions {
            max_chars: 800,
            min_chars: 20,
        };
        let passages = chunk_document(&d, opts);
        check(&d, &passages, 800);
        assert_eq!(passages.len(), 2);
        assert_eq!(passages[0].title, "식품위생법 제44조(준수사항)");
        assert_eq!(
            passages[0].locator.paragraph.as_deref(),
            Some("제1항~제2항")
        );
        assert_eq!(passages[0].text, "제44조(준수사항)\n① 짧다.\n② 짧다.");
        assert_eq!(passages[1].locator.display(), "제44조 제3항");
        assert!(passages[1]
            .contextual_text()
            .starts_with("식품위생법 제44조(준수사항) 제3항\n③"));
        let unmerged = chunk_document(
            &d,
            ChunkOptions {
                max_chars: 800,
                min_chars: 0,
            },
        );
        assert_eq!(unmerged.len(), 3);
    }

    #[test]
    fn splits_at_the_best_boundary() {
        let para = "첫 문장이다. 둘째 문장이다. 셋째 문장이다.";
        let text = format!("{para}\n\n{para}\n\n{para}");
        let d = doc(
            DocKind::Text,
            &text,
            vec![(0..text.len(), Locator::default())],
        );
        let passages = chunk_document(
            &d,
            ChunkOptions {
                max_chars: 40,
                min_chars: 0,
            },
        );
        check(&d, &passages, 40);
        assert_eq!(
            passages.iter().map(|p| p.text.as_str()).collect::<Vec<_>>(),
            [para; 3]
        );
        // Paragraphs are packed while they fit.
        let passages = chunk_document(
            &d,
            ChunkOptions {
                max_chars: 60,
                min_chars: 0,
            },
        );
        assert_eq!(passages[0].text, format!("{para}\n\n{para}"));

        let passages = chunk_document(
            &d,
            ChunkOptions {
                max_chars: 20,
                min_chars: 0,
            },
        );
        check(&d, &passages, 20);
        assert_eq!(passages[0].text, "첫 문장이다. 둘째 문장이다.");

        let items = "① 다음 각 호의 사항을 지켜야 한다.\n  1. 첫째 것을 하지 말 것\n  2. 둘째 것을 하지 말 것\n  3. 셋째 것";
        let d = doc(
            DocKind::Statute,
            items,
            vec![(0..items.len(), article("제1조", None))],
        );
        let passages = chunk_document(
            &d,
            ChunkOptions {
                max_chars: 40,
                min_chars: 0,
            },
        );
        check(&d, &passages, 40);
        assert!(passages
            .iter()
            .skip(1)
            .all(|p| p.text.starts_with(|c: char| c.is_ascii_digit())));
    }

    #[test]
    fn hard_cases_stay_in_bounds() {
        let unbroken = "가".repeat(100) + &"a".repeat(100);
        let text = format!("{unbroken} {unbroken}\n\n\n   ");
        let d = doc(
            DocKind::Html,
            &text,
            vec![(0..text.len(), Locator::default())],
        );
        for max in [0, 1, 2, 7, 33, 150, 1000] {
            let passages = chunk_document(
                &d,
                ChunkOptions {
                    max_chars: max,
                    min_chars: 50,
                },
            );
            check(&d, &passages, max.max(1));
            let joined: String = passages.iter().map(|p| p.text.as_str()).collect();
            assert_eq!(
                joined.replace(' ', ""),
                text.split_whitespace().collect::<String>()
            );
        }
        // Out-of-range or mid-character ranges from a broken parser are skipped.
        let bad = doc(
            DocKind::Text,
            "가나",
            vec![(0..1, Locator::default()), (0..99, Locator::default())],
        );
        assert!(chunk_document(&bad, ChunkOptions::default()).is_empty());
    }

    #[test]
    fn titles_for_other_kinds() {
        let text = "본문";
        let heading = Locator {
            heading: Some("보관".into()),
            ..Locator::default()
        };
        let record = Locator {
            record: Some("서한 제목".into()),
            ..Locator::default()
        };
        let d = doc(DocKind::Html, text, vec![(0..text.len(), heading)]);
        assert_eq!(
            chunk_document(&d, ChunkOptions::default())[0].title,
            "문서 > 보관"
        );
        let text = "서한 제목\n\n요약:\n요약문\n\n내용:\n본문이 이어진다.";
        let sections = [0..13, 15..32, 34..text.len()]
            .map(|r| (r, record.clone()))
            .to_vec();
        let d = doc(DocKind::SafetyLetter, text, sections);
        let passages = chunk_document(
            &d,
            ChunkOptions {
                max_chars: 800,
                min_chars: 0,
            },
        );
        assert_eq!(passages.len(), 1, "a short letter is one passage");
        assert_eq!(
            (passages[0].title.as_str(), passages[0].text.as_str()),
            ("서한 제목", text)
        );
        let passages = chunk_document(
            &d,
            ChunkOptions {
                max_chars: 16,
                min_chars: 0,
            },
        );
        assert_eq!(passages.len(), 2);
        let d = doc(
            DocKind::Pdf,
            text,
            vec![(
                0..text.len(),
                Locator {
                    page: Some(3),
                    ..Locator::default()
                },
            )],
        );
        let p = &chunk_document(&d, ChunkOptions::default())[0];
        assert_eq!(
            (p.title.as_str(), p.locator.display().as_str()),
            ("문서", "p. 3")
        );
    }
}
