//! Plain text files (`.txt`): blank-line-separated paragraphs, UTF-8 or EUC-KR/CP949.
//!
//! Without headings the whole file is one section; the chunker packs its paragraphs into
//! passages at blank lines, so paragraphs are grouped rather than cut.

use super::blocks::{blocks_to_document, file_stem, Block};
use super::textfile::{decode_text, has_extension};
use super::DocumentParser;
use crate::{DocKind, Document, IngestError};
use std::collections::BTreeMap;
use std::path::Path;

pub struct TextParser;

impl DocumentParser for TextParser {
    fn name(&self) -> &'static str {
        "text"
    }

    fn accepts(&self, path: &Path, _head: &[u8]) -> bool {
        has_extension(path, &["txt", "text"])
    }

    fn parse(&self, file_name: &str, bytes: &[u8]) -> Result<Vec<Document>, IngestError> {
        let source = decode_text(bytes)?;
        if source.contains('\0') {
            return Err(IngestError::Encoding(format!(
                "{file_name} holds NUL bytes: a binary file, or UTF-16 text"
            )));
        }
        let source = source.replace("\r\n", "\n").replace('\r', "\n");
        let mut blocks = Vec::new();
        let mut paragraph = String::new();
        for line in source.lines() {
            if line.trim().is_empty() {
                if !paragraph.is_empty() {
                    blocks.push(Block::Text(std::mem::take(&mut paragraph)));
                }
            } else {
                if !paragraph.is_empty() {
                    paragraph.push('\n');
                }
                paragraph.push_str(line);
            }
        }
        if !paragraph.is_empty() {
            blocks.push(Block::Text(paragraph));
        }
        let doc = blocks_to_document(file_stem(file_name), DocKind::Text, blocks, BTreeMap::new())?;
        Ok(vec![doc])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paragraphs_and_euc_kr() {
        let (bytes, _, _) =
            encoding_rs::EUC_KR.encode("첫 문단\r\n둘째 줄\r\n\r\n\r\n둘째 문단  \r\n");
        let docs = TextParser.parse("공지.txt", &bytes).unwrap();
        let doc = &docs[0];
        assert_eq!(doc.title, "공지");
        assert_eq!(doc.text, "첫 문단\n둘째 줄\n\n둘째 문단\n");
        assert_eq!(doc.segments.len(), 1);
    }

    #[test]
    fn bad_input() {
        assert!(matches!(
            TextParser.parse("b.txt", &[0x80, 0xff, 0x00, 0xfe]),
            Err(IngestError::Encoding(_))
        ));
        assert!(matches!(
            TextParser.parse("u16.txt", b"a\0b\0"),
            Err(IngestError::Encoding(_))
        ));
        assert!(matches!(
            TextParser.parse("e.txt", b"\n \n"),
            Err(IngestError::NoText(_))
        ));
    }
}
