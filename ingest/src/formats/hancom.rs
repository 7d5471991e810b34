//! What the HWP and HWPX parsers share once their containers are open: a builder that
//! flattens paragraphs, tables and nested text into lines, and the assembly of those lines
//! into a [`Document`] whose segments follow the document's headings.

use crate::{DocKind, Document, IngestError, Locator, Segment};
use std::collections::BTreeMap;
use unicode_normalization::UnicodeNormalization;

/// Separates the cells of one table row on its line.
const CELL_SEPARATOR: &str = " | ";
/// Headings are short; a longer marked line is a body paragraph with a bullet.
const MAX_HEADING_CHARS: usize = 60;
/// Headings kept in a locator are cut to this many characters.
const MAX_LOCATOR_CHARS: usize = 80;

/// One open element of the text flow.
enum Frame {
    /// A paragraph: its own text, then the lines of objects anchored in it (tables, text
    /// boxes, footnotes), which follow the text so that both formats agree on the order.
    Paragraph {
        text: String,
        anchored: Vec<String>,
    },
    Table {
        rows: Vec<String>,
        row: Vec<String>,
    },
    Cell {
        lines: Vec<String>,
    },
}

/// Collects the text flow of a Hancom document as lines: one per paragraph and one per
/// table row. Parsers open and close frames as they meet the format's structure; closing
/// a frame hands its lines to the frame around it.
#[derive(Default)]
pub(crate) struct FlowBuilder {
    stack: Vec<Frame>,
    lines: Vec<String>,
}

impl FlowBuilder {
    pub(crate) fn open_paragraph(&mut self) {
        self.stack.push(Frame::Paragraph {
            text: String::new(),
            anchored: Vec::new(),
        });
    }

    pub(crate) fn open_table(&mut self) {
        self.stack.push(Frame::Table {
            rows: Vec::new(),
            row: Vec::new(),
        });
    }

    pub(crate) fn open_cell(&mut self) {
        self.stack.push(Frame::Cell { lines: Vec::new() });
    }

    /// Ends the current row of the innermost open table (the next cell starts a new one).
    pub(crate) fn end_row(&mut self) {
        if let Some(Frame::Table { rows, row }) = self.stack.last_mut() {
            flush_row(rows, row);
        }
    }

    /// Appends text to the innermost open paragraph; text outside any paragraph is noise
    /// (it does not occur in well-formed files) and is dropped.
    pub(crate) fn push_str(&mut self, s: &str) {
        if let Some(Frame::Paragraph { text, .. }) = self.stack.last_mut() {
            text.push_str(s);
        }
    }

    pub(crate) fn push_char(&mut self, c: char) {
        if let Some(Frame::Paragraph { text, .. }) = self.stack.last_mut() {
            text.push(c);
        }
    }

    /// Closes the innermost open frame.
    pub(crate) fn close(&mut self) {
        match self.stack.pop() {
            Some(Frame::Paragraph { text, anchored }) => {
                let own = collapse_whitespace(&text);
                let lines = (!own.is_empty()).then_some(own).into_iter();
                self.emit(lines.chain(anchored));
            }
            Some(Frame::Table { mut rows, mut row }) => {
                flush_row(&mut rows, &mut row);
                self.emit(rows);
            }
            Some(Frame::Cell { lines }) => {
                let joined = lines.join(" ");
                match self.stack.last_mut() {
                    Some(Frame::Table { row, .. }) => {
                        if !joined.is_empty() {
                            row.push(joined);
                        }
                    }
                    _ => self.emit((!joined.is_empty()).then_some(joined)),
                }
            }
            None => {}
        }
    }

    /// Closes every open frame and returns the lines in reading order.
    pub(crate) fn finish(mut self) -> Vec<String> {
        while !self.stack.is_empty() {
            self.close();
        }
        self.lines
    }

    fn emit(&mut self, new: impl IntoIterator<Item = String>) {
        match self.stack.last_mut() {
            Some(Frame::Paragraph { anchored, .. }) => anchored.extend(new),
            Some(Frame::Cell { lines }) => lines.extend(new),
            // A paragraph directly in a table (no cell) only comes from damaged files;
            // keep its text as a cell of the current row rather than lose it.
            Some(Frame::Table { row, .. }) => row.extend(new),
            None => self.lines.extend(new),
        }
    }
}

fn flush_row(rows: &mut Vec<String>, row: &mut Vec<String>) {
    if !row.is_empty() {
        rows.push(row.join(CELL_SEPARATOR));
        row.clear();
    }
}

/// Collapses every run of whitespace (tabs, line breaks, no-break and ideographic spaces)
/// to one space and trims the ends: layout spacing carries no meaning for search.
fn collapse_whitespace(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// What a format knows about its document besides the text.
pub(crate) struct DocumentInfo<'a> {
    pub kind: DocKind,
    pub format: &'static str,
    pub file_name: &'a str,
    /// Title from the file's metadata, used when it looks like a real title.
    pub title: Option<String>,
    pub meta: BTreeMap<String, String>,
}

/// Joins the lines into the document text (one line per paragraph or table row, NFC) and
/// groups them into segments at heading-like lines.
pub(crate) fn assemble(
    info: DocumentInfo<'_>,
    lines: Vec<String>,
) -> Result<Document, IngestError> {
    let lines: Vec<String> = lines
        .into_iter()
        .map(|l| l.nfc().collect::<String>())
        .filter(|l| !l.is_empty())
        .collect();
    if lines.is_empty() {
        return Err(IngestError::NoText(format!(
            "{} file {} has no text",
            info.format, info.file_name
        )));
    }

    let mut text = String::new();
    let mut starts = Vec::with_capacity(lines.len());
    for line in &lines {
        if !text.is_empty() {
            text.push('\n');
        }
        starts.push(text.len());
        text.push_str(line);
    }

    let title = info
        .title
        .map(|t| collapse_whitespace(&t).nfc().collect::<String>())
        .filter(|t| looks_like_title(t))
        .or_else(|| lines.iter().find(|l| looks_like_title(l)).cloned())
        .unwrap_or_else(|| file_stem(info.file_name));

    Ok(Document {
        title,
        kind: info.kind,
        segments: segments(&lines, &starts, text.len()),
        text,
        meta: info.meta,
    })
}

/// A title has a few words of real text: metadata titles are often template leftovers
/// ("3", "제목"), and a document's first lines are often a "보도자료" banner or a table row.
fn looks_like_title(s: &str) -> bool {
    let letters = s.chars().filter(|c| c.is_alphabetic()).count();
    letters >= 6 && s.chars().count() <= 150 && !s.contains(CELL_SEPARATOR)
}

fn file_stem(file_name: &str) -> String {
    let stem = file_name
        .rsplit_once('.')
        .map_or(file_name, |(stem, _)| stem);
    stem.nfc().collect()
}

/// Groups lines into segments, one per heading and the lines up to the next one; the
/// locator names the heading path ("Ⅰ. 개요 > 1. 배경"). Lines before the first heading
/// form a segment without a heading.
fn segments(lines: &[String], starts: &[usize], text_len: usize) -> Vec<Segment> {
    let mut segments = Vec::new();
    let mut path: Vec<(u8, String)> = Vec::new();
    let mut open: Option<(usize, Option<String>)> = None;
    for (line, &start) in lines.iter().zip(starts) {
        let Some(rank) = heading_rank(line) else {
            if open.is_none() {
                open = Some((start, None));
            }
            continue;
        };
        if let Some((from, heading)) = open.take() {
            segments.push(segment(from, start.saturating_sub(1), heading));
        }
        path.retain(|(r, _)| *r < rank);
        path.push((rank, truncate_chars(line, MAX_LOCATOR_CHARS)));
        let heading = path
            .iter()
            .map(|(_, h)| h.as_str())
            .collect::<Vec<_>>()
            .join(" > ");
        open = Some((start, Some(heading)));
    }
    if let Some((from, heading)) = open {
        segments.push(segment(from, text_len, heading));
    }
    segments
}

fn segment(from: usize, to: usize, heading: Option<String>) -> Segment {
    Segment {
        range: from..to,
        locator: Locator {
            heading,
            ..Locator::default()
        },
    }
}

/// The level of a heading-like line (0 is the highest), or `None` for body text.
/// Korean official documents number their outline Ⅰ. → 1. → 가. and press releases bullet
/// it □ → ○; a marked line counts as a heading only while it is short.
fn heading_rank(line: &str) -> Option<u8> {
    if line.chars().count() > MAX_HEADING_CHARS || line.contains(CELL_SEPARATOR) {
        return None;
    }
    let first = line.chars().next()?;
    match first {
        'Ⅰ'..='Ⅻ' | 'ⅰ'..='ⅻ' => Some(0),
        '□' | '■' | '◇' | '◆' => Some(3),
        '○' | '●' | '◦' => Some(4),
        _ => {
            // "1." / "12." and "가." / "나.": a number or one Hangul syllable, then a dot.
            let (label, after) = line.split_once('.')?;
            if !after.is_empty() && !after.starts_with(' ') {
                return None; // "1.5배" is a number, not a heading
            }
            if !label.is_empty() && label.len() <= 2 && label.chars().all(|c| c.is_ascii_digit()) {
                Some(1)
            } else if label.chars().count() == 1 && ('가'..='하').contains(&first) {
                Some(2)
            } else {
                None
            }
        }
    }
}

fn truncate_chars(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Share of `a`'s Hangul syllables (as a multiset) that also occur in `b`.
    pub(crate) fn hangul_overlap(a: &str, b: &str) -> f64 {
        let count = |s: &str| {
            let mut m: HashMap<char, usize> = HashMap::new();
            for c in s.chars().filter(|c| ('가'..='힣').contains(c)) {
                *m.entry(c).or_default() += 1;
            }
            m
        };
        let (ca, cb) = (count(a), count(b));
        let total: usize = ca.values().sum();
        let shared: usize = ca
            .iter()
            .map(|(c, n)| (*n).min(cb.get(c).copied().unwrap_or(0)))
            .sum();
        if total == 0 {
            return 0.0;
        }
        shared as f64 / total as f64
    }

    fn info() -> DocumentInfo<'static> {
        DocumentInfo {
            kind: DocKind::Hwpx,
            format: "hwpx",
            file_name: "보도자료.hwpx",
            title: Some("3".into()),
            meta: BTreeMap::new(),
        }
    }

    #[test]
    fn tables_become_one_line_per_row_after_their_paragraph() {
        let mut b = FlowBuilder::default();
        b.open_paragraph();
        b.push_str("표  앞\t글");
        b.open_table();
        for row in [["구분", "2024년"], ["총투자", "150.9"]] {
            b.end_row();
            for cell in row {
                b.open_cell();
                b.open_paragraph();
                b.push_str(cell);
                b.close();
                b.close();
            }
        }
        b.close(); // table
        b.close(); // paragraph
        assert_eq!(b.finish(), ["표 앞 글", "구분 | 2024년", "총투자 | 150.9"]);
    }

    #[test]
    fn unclosed_frames_are_kept_at_finish() {
        let mut b = FlowBuilder::default();
        b.open_table();
        b.open_cell();
        b.open_paragraph();
        b.push_str("셀");
        assert_eq!(b.finish(), ["셀"]);
    }

    #[test]
    fn segments_follow_heading_path() {
        let lines: Vec<String> = [
            "해외직접투자 동향 보도자료 본문",
            "Ⅰ. 개요",
            "본문 하나",
            "1. 업종별",
            "본문 둘",
            "□ 지역별 동향",
            "Ⅱ. 향후 계획",
            "1.5배 증가했다.",
        ]
        .map(String::from)
        .to_vec();
        let doc = assemble(info(), lines).unwrap();
        assert_eq!(doc.title, "해외직접투자 동향 보도자료 본문");
        let headings: Vec<_> = doc
            .segments
            .iter()
            .map(|s| s.locator.heading.clone().unwrap_or_default())
            .collect();
        assert_eq!(
            headings,
            [
                "",
                "Ⅰ. 개요",
                "Ⅰ. 개요 > 1. 업종별",
                "Ⅰ. 개요 > 1. 업종별 > □ 지역별 동향",
                "Ⅱ. 향후 계획"
            ]
        );
        assert_eq!(
            &doc.text[doc.segments[1].range.clone()],
            "Ⅰ. 개요\n본문 하나"
        );
        assert_eq!(doc.segments.last().unwrap().range.end, doc.text.len());
    }

    #[test]
    fn empty_flow_is_no_text_and_text_is_nfc() {
        assert!(matches!(
            assemble(info(), vec![String::new()]),
            Err(IngestError::NoText(_))
        ));
        // Decomposed jamo (ᄒ ᅡ ᆫ) compose to one syllable.
        let doc = assemble(info(), vec!["\u{1112}\u{1161}\u{11ab}".into()]).unwrap();
        assert_eq!(doc.text, "한");
        assert_eq!(doc.title, "보도자료");
    }
}
