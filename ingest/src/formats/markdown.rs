//! Generic Markdown (anything that is not a statute export): rendered to plain text with
//! `pulldown-cmark`, headings starting sections; front matter `title`/`제목` is the title.
//!
//! Markup is dropped (emphasis, links keep their text); lists keep `- `/`1. ` markers
//! and tables become `a | b` lines, so the text stays readable for answers.

use super::blocks::{blocks_to_document, collapse_spaces, file_stem, Block};
use super::front_matter::{parse_front_matter, split_front_matter};
use super::textfile::{decode_text, has_extension};
use super::DocumentParser;
use crate::{DocKind, Document, IngestError};
use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd};
use std::collections::BTreeMap;
use std::path::Path;

pub struct MarkdownParser;

impl DocumentParser for MarkdownParser {
    fn name(&self) -> &'static str {
        "markdown"
    }

    fn accepts(&self, path: &Path, _head: &[u8]) -> bool {
        has_extension(path, &["md", "markdown"])
    }

    fn parse(&self, file_name: &str, bytes: &[u8]) -> Result<Vec<Document>, IngestError> {
        let source = decode_text(bytes)?;
        // Front matter is optional metadata: a block we cannot read only loses the title.
        let (fm_title, body) = match split_front_matter(&source) {
            Some((yaml, body)) => {
                let title = parse_front_matter(yaml).ok().and_then(|fm| {
                    fm.str("title")
                        .or_else(|| fm.str("제목"))
                        .map(str::to_owned)
                });
                (title, body)
            }
            None => (None, source.as_str()),
        };
        let blocks = render(body);
        let title = fm_title
            .or_else(|| {
                blocks.iter().find_map(|b| match b {
                    Block::Heading(1, h) if !h.trim().is_empty() => Some(h.clone()),
                    _ => None,
                })
            })
            .unwrap_or_else(|| file_stem(file_name));
        let doc = blocks_to_document(title, DocKind::Markdown, blocks, BTreeMap::new())?;
        Ok(vec![doc])
    }
}

fn render(markdown: &str) -> Vec<Block> {
    let options = Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH;
    let mut blocks = Vec::new();
    let mut current = String::new();
    let mut heading: Option<String> = None;
    // One entry per open list: the next number of an ordered list, None for bullets.
    let mut lists: Vec<Option<u64>> = Vec::new();
    let mut in_html = false;

    for event in Parser::new_ext(markdown, options) {
        match event {
            Event::Start(Tag::Heading { .. }) => {
                flush(&mut blocks, &mut current);
                heading = Some(String::new());
            }
            Event::End(TagEnd::Heading(level)) => {
                let text = heading.take().unwrap_or_default();
                blocks.push(Block::Heading(level as u8, collapse_spaces(&text)));
            }
            Event::Start(Tag::List(start)) => {
                new_line(&mut current);
                lists.push(start);
            }
            Event::End(TagEnd::List(_)) => {
                lists.pop();
                if lists.is_empty() {
                    flush(&mut blocks, &mut current);
                }
            }
            Event::Start(Tag::Item) => {
                new_line(&mut current);
                let indent = "  ".repeat(lists.len().saturating_sub(1));
                let marker = match lists.last_mut() {
                    Some(Some(n)) => {
                        let marker = format!("{n}. ");
                        *n += 1;
                        marker
                    }
                    _ => "- ".to_owned(),
                };
                current.push_str(&indent);
                current.push_str(&marker);
            }
            Event::End(TagEnd::Paragraph) if !lists.is_empty() => new_line(&mut current),
            Event::End(
                TagEnd::Paragraph | TagEnd::CodeBlock | TagEnd::Table | TagEnd::BlockQuote(_),
            )
            | Event::Rule => flush(&mut blocks, &mut current),
            Event::End(TagEnd::TableHead | TagEnd::TableRow) => new_line(&mut current),
            Event::Start(Tag::TableCell) => {
                let line_start = current.rfind('\n').map_or(0, |i| i + 1);
                if !current[line_start..].is_empty() {
                    current.push_str(" | ");
                }
            }
            Event::Start(Tag::HtmlBlock) => in_html = true,
            Event::End(TagEnd::HtmlBlock) => in_html = false,
            Event::Text(text) | Event::Code(text) if !in_html => match &mut heading {
                Some(h) => h.push_str(&text),
                None => current.push_str(&text),
            },
            Event::SoftBreak | Event::HardBreak => match &mut heading {
                Some(h) => h.push(' '),
                None => current.push('\n'),
            },
            _ => {}
        }
    }
    if let Some(text) = heading {
        blocks.push(Block::Heading(1, collapse_spaces(&text)));
    }
    flush(&mut blocks, &mut current);
    blocks
}

fn new_line(current: &mut String) {
    if !current.is_empty() && !current.ends_with('\n') {
        current.push('\n');
    }
}

fn flush(blocks: &mut Vec<Block>, current: &mut String) {
    let text = std::mem::take(current);
    if !text.trim().is_empty() {
        blocks.push(Block::Text(text));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "---\ntitle: 보관 안내\n---\n# 냉장 보관\n\n**육류**는 *4℃* 이하에서\n[보관](http://x)합니다.\n\n- 하나\n- 둘\n  1. 셋\n\n## 표\n\n| 식품 | 온도 |\n|---|---|\n| 육류 | 4℃ |\n\n```\ncode  line\n```\n\n<div>html</div>\n";

    #[test]
    fn renders_plain_text_sections() {
        let docs = MarkdownParser.parse("a.md", DOC.as_bytes()).unwrap();
        let doc = &docs[0];
        assert_eq!(doc.title, "보관 안내");
        assert_eq!(
            doc.text,
            "냉장 보관\n\n육류는 4℃ 이하에서\n보관합니다.\n\n- 하나\n- 둘\n  1. 셋\n\n표\n\n식품 | 온도\n육류 | 4℃\n\ncode  line\n"
        );
        let headings: Vec<Option<&str>> = doc
            .segments
            .iter()
            .map(|s| s.locator.heading.as_deref())
            .collect();
        assert_eq!(headings, [Some("냉장 보관"), Some("표")]);
    }

    #[test]
    fn bad_input_does_not_panic() {
        for cut in (0..DOC.len()).filter(|i| DOC.is_char_boundary(*i)) {
            let _ = MarkdownParser.parse("t.md", &DOC.as_bytes()[..cut]);
        }
        let deep = "> ".repeat(5_000) + "- ".repeat(5_000).as_str() + "글";
        let _ = MarkdownParser.parse("d.md", deep.as_bytes());
        assert!(MarkdownParser.parse("e.md", b"   \n\n").is_err());
    }
}
