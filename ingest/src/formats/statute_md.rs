//! Statutes as law.go.kr-derived Markdown: YAML front matter (제목, 시행일자, ...), then
//! `##`/`###` divisions, `##### 제N조 (제목)` articles, `**①**` 항, `  1\.` 호, `## 부칙`.
//!
//! Lines are unescaped and handed to the shared [`StatuteBuilder`], so the document is
//! identical to the one built from the law.go.kr XML/JSON of the same statute.

use super::blocks::file_stem;
use super::front_matter::{parse_front_matter, split_front_matter, FrontMatter};
use super::statute::{
    circled_number, content_line, is_supplement_label, iso_date, split_article_heading,
    supplement_lines, StatuteBuilder, StatuteInfo,
};
use super::textfile::{decode_text, has_extension, unescape_entities};
use super::{markdown, DocumentParser};
use crate::{Document, IngestError};
use std::borrow::Cow;
use std::path::Path;

pub struct StatuteMarkdownParser;

/// Front matter keys that only law.go.kr statute exports carry (besides 제목).
const STATUTE_KEYS: &[&str] = &["법령MST", "법령ID", "법령구분", "시행일자", "공포일자"];

impl DocumentParser for StatuteMarkdownParser {
    fn name(&self) -> &'static str {
        "statute-markdown"
    }

    /// Judged on the front matter alone: the head may end before the first article when
    /// the attachment list is long. Files without articles are handed to the generic
    /// Markdown parser in [`Self::parse`].
    fn accepts(&self, path: &Path, head: &[u8]) -> bool {
        if !has_extension(path, &["md", "markdown"]) {
            return false;
        }
        let head = String::from_utf8_lossy(head);
        let Some(rest) = head.strip_prefix("---") else {
            return false;
        };
        let fence_end = rest.find("\n---").unwrap_or(rest.len());
        let yaml = &rest[..fence_end];
        yaml.contains("\n제목:")
            && STATUTE_KEYS
                .iter()
                .any(|k| yaml.contains(&format!("\n{k}:")))
    }

    fn parse(&self, file_name: &str, bytes: &[u8]) -> Result<Vec<Document>, IngestError> {
        let text = decode_text(bytes)?;
        let Some((yaml, body)) = split_front_matter(&text) else {
            return markdown::MarkdownParser.parse(file_name, bytes);
        };
        if !body.lines().any(is_article_heading) {
            return markdown::MarkdownParser.parse(file_name, bytes);
        }
        let fm = parse_front_matter(yaml)
            .map_err(|e| IngestError::malformed("statute Markdown", format!("front matter {e}")))?;
        let info = statute_info(&fm, body, file_name);
        let mut builder = StatuteBuilder::new(info);
        feed_body(&mut builder, body);
        Ok(vec![builder.finish("statute Markdown")?])
    }
}

fn is_article_heading(line: &str) -> bool {
    line.strip_prefix("##### ")
        .is_some_and(|h| split_article_heading(h.trim()).is_some())
}

fn statute_info(fm: &FrontMatter, body: &str, file_name: &str) -> StatuteInfo {
    let title = fm
        .str("제목")
        .map(str::to_owned)
        .or_else(|| {
            body.lines()
                .find_map(|l| l.strip_prefix("# "))
                .map(|t| unescape_markdown(t.trim()).into_owned())
        })
        .unwrap_or_else(|| file_stem(file_name));
    let mut extra = Vec::new();
    for (meta_key, fm_key) in [
        ("mst", "법령MST"),
        ("law_id", "법령ID"),
        ("source_url", "출처"),
    ] {
        if let Some(v) = fm.str(fm_key) {
            extra.push((meta_key, v.to_owned()));
        }
    }
    StatuteInfo {
        title: unescape_entities(&title).into_owned(),
        law_kind: fm.str("법령구분").map(str::to_owned),
        departments: fm
            .strings("소관부처")
            .into_iter()
            .map(str::to_owned)
            .collect(),
        promulgation_date: fm.str("공포일자").map(iso_date),
        effective_date: fm.str("시행일자").map(iso_date),
        extra,
    }
}

fn feed_body(builder: &mut StatuteBuilder, body: &str) {
    let mut in_supplement = false;
    for raw in body.lines() {
        let line = unescape_markdown(raw.trim_end());
        if let Some((level, heading)) = atx_heading(&line) {
            let heading = heading.trim();
            if level == 1 {
                continue; // the law's name, already the document title
            }
            if let Some((number, title, rest)) = split_article_heading(heading) {
                builder.article(number, title);
                content_line(builder, 0, rest);
            } else if is_supplement_label(heading) {
                in_supplement = true;
                builder.supplement(heading);
            } else {
                in_supplement = false;
                builder.division(heading);
            }
        } else if in_supplement {
            supplement_lines(builder, [line.as_ref()]);
        } else {
            // In the article body only the bold `**①**` mark opens a 항; a plain circled
            // number there belongs to the text of an item.
            let content = line.trim_start();
            match paragraph_line(content) {
                Some((label, line)) => builder.paragraph(label, &line),
                None => builder.line((line.len() - content.len()).div_ceil(2), content),
            }
        }
    }
}

/// `### 제1절 기준` → (3, "제1절 기준").
fn atx_heading(line: &str) -> Option<(usize, &str)> {
    let level = line.bytes().take_while(|b| *b == b'#').count();
    if !(1..=6).contains(&level) {
        return None;
    }
    let rest = &line[level..];
    (rest.is_empty() || rest.starts_with(' ')).then_some((level, rest))
}

/// `**①** 본문` → (`①`, `① 본문`): the bold marks only decorate the 항 label.
fn paragraph_line(line: &str) -> Option<(char, String)> {
    let rest = line.strip_prefix("**")?;
    let end = rest.find("**")?;
    let mut label = rest[..end].chars();
    let c = label.next().filter(|c| circled_number(*c).is_some())?;
    if label.next().is_some() {
        return None;
    }
    Some((c, format!("{c}{}", &rest[end + 2..])))
}

/// Removes Markdown backslash escapes (`1\.` → `1.`); a backslash before anything but
/// ASCII punctuation is a real backslash and stays.
pub(crate) fn unescape_markdown(line: &str) -> Cow<'_, str> {
    if !line.contains('\\') {
        return Cow::Borrowed(line);
    }
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(&next) = chars.peek() {
                if next.is_ascii_punctuation() {
                    out.push(next);
                    chars.next();
                    continue;
                }
            }
        }
        out.push(c);
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "---\n제목: 시험법\n법령구분: 법률\n소관부처:\n- 식품의약품안전처\n- 보건복지부\n공포일자: 2023-12-07\n시행일자: 2024-01-08\n---\n\n# 시험법\n\n## 제1장 총칙\n\n##### 제1조 (목적)\n\n이 법은 목적을 정한다.\n\n##### 제2조 (정의)\n\n**①** 정의는 다음과 같다. <개정 2023.12.7>\n\n  1\\. 장티푸스\n    가\\. 세부\n\n**②** 둘째 항.\n\n##### 제3조\n\n삭제 <2018.3.13>\n\n## 부칙\n\n부칙 <제1호,2024.1.1>\n\n\n제1조(시행일) 이 법은 공포한 날부터 시행한다.\n\n----\n";

    #[test]
    fn parses_a_small_statute() {
        let path = Path::new("시험법.md");
        assert!(StatuteMarkdownParser.accepts(path, SAMPLE.as_bytes()));
        let docs = StatuteMarkdownParser
            .parse("시험법.md", SAMPLE.as_bytes())
            .unwrap();
        let doc = &docs[0];
        assert_eq!(doc.title, "시험법");
        assert_eq!(doc.meta["effective_date"], "2024-01-08");
        assert_eq!(doc.meta["promulgation_date"], "2023-12-07");
        assert_eq!(doc.meta["department"], "식품의약품안전처, 보건복지부");
        assert_eq!(doc.meta["law_kind"], "법률");
        assert!(doc.text.contains("\n제2조(정의)\n① 정의는 다음과 같다. <개정 2023.12.7>\n  1. 장티푸스\n    가. 세부\n② 둘째 항.\n"), "{}", doc.text);
        let shown: Vec<String> = doc.segments.iter().map(|s| s.locator.display()).collect();
        assert_eq!(
            shown,
            ["제1조", "제2조 제1항", "제2조 제2항", "제3조", "부칙 제1조"]
        );
        assert_eq!(
            doc.segments[4].locator.article_title.as_deref(),
            Some("시행일")
        );
        assert_eq!(
            &doc.text[doc.segments[3].range.clone()],
            "제3조\n삭제 <2018.3.13>"
        );
    }

    #[test]
    fn other_markdown_is_not_a_statute() {
        assert!(!StatuteMarkdownParser.accepts(Path::new("a.md"), b"---\ntitle: x\n---\n# A\n"));
        assert!(!StatuteMarkdownParser.accepts(Path::new("a.md"), b"# A\n"));
        assert!(!StatuteMarkdownParser.accepts(Path::new("a.txt"), SAMPLE.as_bytes()));
    }

    #[test]
    fn garbage_and_truncation_do_not_panic() {
        for cut in (0..SAMPLE.len()).filter(|i| SAMPLE.is_char_boundary(*i)) {
            let _ = StatuteMarkdownParser.parse("t.md", &SAMPLE.as_bytes()[..cut]);
        }
        for bad in [
            &b"---\n\xff\xfe\x00garbage"[..],
            b"---\n: :\n---\n##### \xc0",
            b"---\n---\n",
        ] {
            let _ = StatuteMarkdownParser.parse("t.md", bad);
        }
    }

    #[test]
    fn unescapes() {
        assert_eq!(unescape_markdown(r"1\. 가\* \a"), r"1. 가* \a");
        assert_eq!(
            paragraph_line("**①** 본문"),
            Some(('①', "① 본문".to_owned()))
        );
        assert_eq!(paragraph_line("**굵게 쓴 말** 본문"), None);
        assert_eq!(paragraph_line("**가** 본문"), None);
        assert_eq!(paragraph_line("① 본문"), None);
    }
}
