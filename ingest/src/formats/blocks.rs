//! The document builder shared by the heading-structured formats (HTML, generic
//! Markdown, plain text): a flat list of headings and text blocks in reading order.
//!
//! Each heading starts a segment that runs to the next heading; the chunker then packs
//! or splits the blocks of a segment at blank lines to fit its size limit.

use super::textfile::nfc;
use crate::{DocKind, Document, IngestError, Locator, Segment};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Block {
    /// A heading of level 1–6.
    Heading(u8, String),
    /// A paragraph, list item, table or code block; may span several lines.
    Text(String),
}

/// Lays the blocks out blank-line separated and makes one segment per heading section
/// (plus one for text before the first heading). Blank blocks are dropped.
pub(crate) fn blocks_to_document(
    title: String,
    kind: DocKind,
    blocks: Vec<Block>,
    meta: BTreeMap<String, String>,
) -> Result<Document, IngestError> {
    let mut text = String::new();
    let mut segments: Vec<Segment> = Vec::new();
    let mut open: Option<(usize, usize, Option<String>)> = None;
    for block in blocks {
        let (heading, body) = match block {
            Block::Heading(_, h) => {
                let h = collapse_spaces(&h);
                (Some(h.clone()), h)
            }
            Block::Text(t) => (None, tidy_lines(&t)),
        };
        if body.is_empty() {
            continue;
        }
        if !text.is_empty() {
            text.push_str("\n\n");
        }
        let start = text.len();
        text.push_str(&nfc(&body));
        let end = text.len();
        match (heading, &mut open) {
            (Some(h), _) => {
                close(&mut segments, open.take());
                open = Some((start, end, Some(nfc(&h).into_owned())));
            }
            (None, Some(current)) => current.1 = end,
            (None, None) => open = Some((start, end, None)),
        }
    }
    close(&mut segments, open);
    if text.is_empty() {
        return Err(IngestError::NoText(format!("{title}: no text content")));
    }
    text.push('\n');
    Ok(Document {
        title: nfc(title.trim()).into_owned(),
        kind,
        text,
        meta,
        segments,
    })
}

fn close(segments: &mut Vec<Segment>, open: Option<(usize, usize, Option<String>)>) {
    if let Some((start, end, heading)) = open {
        segments.push(Segment {
            range: start..end,
            locator: Locator {
                heading,
                ..Locator::default()
            },
        });
    }
}

/// Trims trailing spaces of each line, drops leading/trailing blank lines and squeezes
/// runs of blank lines, so blocks never contain the blank-line separator themselves
/// more than once in a row.
pub(crate) fn tidy_lines(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blank_run = 0;
    for line in text.lines().map(str::trim_end) {
        if line.trim().is_empty() {
            blank_run += 1;
            continue;
        }
        if !out.is_empty() {
            out.push_str(if blank_run > 0 { "\n\n" } else { "\n" });
        }
        blank_run = 0;
        out.push_str(line);
    }
    out
}

/// Collapses all whitespace runs (including newlines) to single spaces.
pub(crate) fn collapse_spaces(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The file name without its extension, the title of last resort.
pub(crate) fn file_stem(file_name: &str) -> String {
    std::path::Path::new(file_name)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heading_sections() {
        let doc = blocks_to_document(
            "T".into(),
            DocKind::Text,
            vec![
                Block::Text("서문".into()),
                Block::Heading(1, " 제목  하나 ".into()),
                Block::Text("가\n\n\n\n나  ".into()),
                Block::Text("  ".into()),
                Block::Heading(2, "둘".into()),
            ],
            BTreeMap::new(),
        )
        .unwrap();
        assert_eq!(doc.text, "서문\n\n제목 하나\n\n가\n\n나\n\n둘\n");
        let parts: Vec<(&str, Option<&str>)> = doc
            .segments
            .iter()
            .map(|s| (&doc.text[s.range.clone()], s.locator.heading.as_deref()))
            .collect();
        assert_eq!(
            parts,
            [
                ("서문", None),
                ("제목 하나\n\n가\n\n나", Some("제목 하나")),
                ("둘", Some("둘"))
            ]
        );
    }

    #[test]
    fn empty_is_no_text() {
        let err = blocks_to_document("T".into(), DocKind::Text, vec![], BTreeMap::new());
        assert!(matches!(err, Err(IngestError::NoText(_))));
    }
}
