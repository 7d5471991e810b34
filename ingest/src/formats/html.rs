//! HTML pages: visible text in reading order, with h1–h6 starting sections; scripts,
//! styles, navigation and other non-content elements are dropped.
//!
//! Parsing is html5ever's (via `scraper`), which repairs broken markup the way browsers
//! do; the tree is walked iteratively so deeply nested pages cannot overflow the stack.

use super::blocks::{blocks_to_document, collapse_spaces, file_stem, Block};
use super::textfile::{decode_text, has_extension};
use super::DocumentParser;
use crate::{DocKind, Document, IngestError};
use ego_tree::iter::Edge;
use scraper::{Html, Node};
use std::collections::BTreeMap;
use std::path::Path;

pub struct HtmlParser;

/// Elements whose whole subtree is not page content.
const SKIPPED: &[&str] = &[
    "head", "script", "style", "nav", "noscript", "template", "svg", "iframe", "object", "canvas",
    "button", "select",
];

/// Elements that end the current line of text.
const BLOCKS: &[&str] = &[
    "address",
    "article",
    "aside",
    "blockquote",
    "caption",
    "dd",
    "details",
    "dialog",
    "div",
    "dl",
    "dt",
    "fieldset",
    "figcaption",
    "figure",
    "footer",
    "form",
    "header",
    "hr",
    "li",
    "main",
    "ol",
    "p",
    "pre",
    "section",
    "summary",
    "table",
    "tbody",
    "thead",
    "tfoot",
    "tr",
    "ul",
];

impl DocumentParser for HtmlParser {
    fn name(&self) -> &'static str {
        "html"
    }

    fn accepts(&self, path: &Path, _head: &[u8]) -> bool {
        has_extension(path, &["html", "htm", "xhtml"])
    }

    fn parse(&self, file_name: &str, bytes: &[u8]) -> Result<Vec<Document>, IngestError> {
        let source = decode_text(bytes)?;
        let html = Html::parse_document(&source);
        let page = walk(&html);
        let title = page
            .title
            .or_else(|| {
                page.blocks.iter().find_map(|b| match b {
                    Block::Heading(1, h) if !h.trim().is_empty() => Some(h.clone()),
                    _ => None,
                })
            })
            .unwrap_or_else(|| file_stem(file_name));
        let doc = blocks_to_document(title, DocKind::Html, page.blocks, BTreeMap::new())?;
        Ok(vec![doc])
    }
}

struct Page {
    title: Option<String>,
    blocks: Vec<Block>,
}

/// Collects text into blocks. `current` is the block being filled; headings are
/// collected separately so they become their own blocks.
fn walk(html: &Html) -> Page {
    let mut title = None;
    let mut blocks = Vec::new();
    let mut current = String::new();
    let mut heading: Option<(u8, String)> = None;
    // Depth inside a skipped subtree / inside <pre>; counters because they may nest.
    let mut skipping = 0usize;
    let mut in_pre = 0usize;
    let mut in_title = false;
    let mut title_text = String::new();

    for edge in html.tree.root().traverse() {
        match edge {
            Edge::Open(node) => match node.value() {
                Node::Element(el) => {
                    let name = el.name();
                    if name == "title" && title.is_none() {
                        in_title = true;
                    }
                    if skipping > 0 || SKIPPED.contains(&name) {
                        skipping += 1;
                        continue;
                    }
                    if let Some(level) = heading_level(name) {
                        flush(&mut blocks, &mut current);
                        heading = Some((level, String::new()));
                    } else if name == "br" {
                        target(&mut heading, &mut current).push('\n');
                    } else if name == "td" || name == "th" {
                        let line = target(&mut heading, &mut current);
                        let line_start = line.rfind('\n').map_or(0, |i| i + 1);
                        if !line[line_start..].trim().is_empty() {
                            line.push_str(" | ");
                        }
                    } else if BLOCKS.contains(&name) {
                        end_line(&mut current);
                    }
                    if name == "pre" {
                        in_pre += 1;
                    }
                }
                Node::Text(text) => {
                    if in_title {
                        title_text.push_str(text);
                    }
                    if skipping > 0 {
                        continue;
                    }
                    let out = target(&mut heading, &mut current);
                    if in_pre > 0 {
                        out.push_str(text);
                    } else {
                        push_collapsed(out, text);
                    }
                }
                _ => {}
            },
            Edge::Close(node) => {
                let Node::Element(el) = node.value() else {
                    continue;
                };
                let name = el.name();
                if name == "title" && in_title {
                    in_title = false;
                    let t = collapse_spaces(&title_text);
                    title = (!t.is_empty()).then_some(t);
                }
                if skipping > 0 {
                    skipping -= 1;
                    continue;
                }
                if name == "pre" {
                    in_pre = in_pre.saturating_sub(1);
                }
                if heading_level(name).is_some() {
                    if let Some((level, text)) = heading.take() {
                        blocks.push(Block::Heading(level, collapse_spaces(&text)));
                    }
                } else if matches!(
                    name,
                    "p" | "table" | "ul" | "ol" | "pre" | "blockquote" | "dl"
                ) {
                    flush(&mut blocks, &mut current);
                } else if BLOCKS.contains(&name) {
                    end_line(&mut current);
                }
            }
        }
    }
    if let Some((level, text)) = heading {
        blocks.push(Block::Heading(level, collapse_spaces(&text)));
    }
    flush(&mut blocks, &mut current);
    Page { title, blocks }
}

fn heading_level(name: &str) -> Option<u8> {
    match name {
        "h1" => Some(1),
        "h2" => Some(2),
        "h3" => Some(3),
        "h4" => Some(4),
        "h5" => Some(5),
        "h6" => Some(6),
        _ => None,
    }
}

/// Text goes to the open heading if there is one, else to the current block.
fn target<'a>(heading: &'a mut Option<(u8, String)>, current: &'a mut String) -> &'a mut String {
    match heading {
        Some((_, text)) => text,
        None => current,
    }
}

/// Appends text with HTML whitespace rules: runs of whitespace are one space, and no
/// space at the start of a line.
fn push_collapsed(out: &mut String, text: &str) {
    for (i, word) in text.split_whitespace().enumerate() {
        let at_line_start = out.is_empty() || out.ends_with('\n');
        let needs_space = i > 0 || text.starts_with(char::is_whitespace);
        if needs_space && !at_line_start && !out.ends_with(' ') {
            out.push(' ');
        }
        out.push_str(word);
    }
    if text.ends_with(char::is_whitespace) && !text.trim().is_empty() {
        out.push(' ');
    }
}

fn end_line(current: &mut String) {
    let trimmed = current.trim_end_matches([' ', '|']).len();
    current.truncate(trimmed);
    if !current.is_empty() && !current.ends_with('\n') {
        current.push('\n');
    }
}

fn flush(blocks: &mut Vec<Block>, current: &mut String) {
    end_line(current);
    let text = std::mem::take(current);
    if !text.trim().is_empty() {
        blocks.push(Block::Text(text));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = r#"<!DOCTYPE html><html><head><title> 식중독 예방 
    수칙 </title><style>p{color:red}</style><script>var x = "<p>no</p>";</script></head>
    <body><nav><a href="/">홈</a> | <a href="/a">메뉴</a></nav>
    <h1>식중독   예방</h1><p>손은 <b>비누</b>로
    30초 이상 씻습니다.</p><ul><li>익혀 먹기</li><li>끓여 먹기</li></ul>
    <h2>보관</h2><table><tr><th>식품</th><th>온도</th></tr><tr><td>육류</td><td>4℃ 이하</td></tr></table>
    <p>첫 줄<br>둘째 줄</p><pre>  코드
  블록</pre></body></html>"#;

    #[test]
    fn extracts_sections() {
        let docs = HtmlParser.parse("page.html", PAGE.as_bytes()).unwrap();
        let doc = &docs[0];
        assert_eq!(doc.title, "식중독 예방 수칙");
        assert_eq!(
            doc.text,
            "식중독 예방\n\n손은 비누로 30초 이상 씻습니다.\n\n익혀 먹기\n끓여 먹기\n\n보관\n\n식품 | 온도\n육류 | 4℃ 이하\n\n첫 줄\n둘째 줄\n\n  코드\n  블록\n"
        );
        let headings: Vec<Option<&str>> = doc
            .segments
            .iter()
            .map(|s| s.locator.heading.as_deref())
            .collect();
        assert_eq!(headings, [Some("식중독 예방"), Some("보관")]);
        assert!(!doc.text.contains("no") && !doc.text.contains("메뉴"));
    }

    #[test]
    fn bad_input_does_not_panic() {
        let deep = "<div>".repeat(3_000) + "깊은 글";
        let doc = HtmlParser.parse("d.html", deep.as_bytes()).unwrap();
        assert!(doc[0].text.contains("깊은 글"));
        for cut in (0..PAGE.len()).filter(|i| PAGE.is_char_boundary(*i)) {
            let _ = HtmlParser.parse("t.html", &PAGE.as_bytes()[..cut]);
        }
        assert!(HtmlParser
            .parse("e.html", b"<html><script>x</script></html>")
            .is_err());
        assert!(matches!(
            HtmlParser.parse("b.html", &[0xff, 0xfe, 0xfd, 0x00, 0x81]),
            Err(IngestError::Encoding(_))
        ));
    }
}
