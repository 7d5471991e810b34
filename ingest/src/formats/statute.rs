//! The statute builder shared by the Markdown and law.go.kr parsers: both feed it the
//! same events (division, 부칙, article, paragraph, line) and get identical documents.
//!
//! Text layout: the law's name, then blank-line-separated divisions and articles. An
//! article is its heading line `제44조(제목)` followed by one line per 항/호/목, 호 and
//! 목 indented by two spaces a level. Segments cover one 항 each (the first 항 also
//! covers the article heading line), or the whole article when it has no 항.

use super::textfile::nfc;
use crate::{DocKind, Document, IngestError, Locator, Segment};
use std::collections::BTreeMap;

/// Front-matter / 기본정보 facts about a statute, already in our spelling.
#[derive(Debug, Default, Clone)]
pub(crate) struct StatuteInfo {
    pub title: String,
    /// 법률, 대통령령, 총리령, 부령...
    pub law_kind: Option<String>,
    pub departments: Vec<String>,
    /// YYYY-MM-DD.
    pub promulgation_date: Option<String>,
    /// YYYY-MM-DD.
    pub effective_date: Option<String>,
    /// Further meta entries (e.g. `mst`, `source_url`).
    pub extra: Vec<(&'static str, String)>,
}

/// Deepest division level we track: 편, 장, 절, 관.
const DIVISION_LEVELS: usize = 4;

struct OpenSegment {
    start: usize,
    end: usize,
    locator: Locator,
    /// False while the segment holds only an article heading line, so the article's
    /// first 항 joins it instead of starting a new segment.
    has_body: bool,
}

pub(crate) struct StatuteBuilder {
    info: StatuteInfo,
    text: String,
    segments: Vec<Segment>,
    divisions: [Option<String>; DIVISION_LEVELS],
    supplement: Option<String>,
    article: Option<(String, Option<String>)>,
    open: Option<OpenSegment>,
}

impl StatuteBuilder {
    pub(crate) fn new(info: StatuteInfo) -> Self {
        let mut builder = StatuteBuilder {
            info,
            text: String::new(),
            segments: Vec::new(),
            divisions: Default::default(),
            supplement: None,
            article: None,
            open: None,
        };
        let title = builder.info.title.clone();
        builder.push_line(&title);
        builder
    }

    /// A 편/장/절/관 heading such as `제2장 식품과 식품첨가물` or `제1절 기준 <신설 ..>`.
    pub(crate) fn division(&mut self, heading: &str) {
        let heading = heading.trim();
        if heading.is_empty() {
            return;
        }
        self.close();
        self.article = None;
        self.supplement = None;
        let level = division_level(heading).unwrap_or(1);
        self.divisions[level] = Some(strip_notes(heading).to_owned());
        for deeper in &mut self.divisions[level + 1..] {
            *deeper = None;
        }
        self.blank_line();
        self.push_line(heading);
    }

    /// Start of one 부칙, e.g. `부칙 <제9432호,2009.2.6>`.
    pub(crate) fn supplement(&mut self, label: &str) {
        let label = label.trim();
        self.close();
        self.article = None;
        self.supplement = Some(label.to_owned());
        self.blank_line();
        self.push_line(label);
    }

    /// Start of an article: `number` as written (`제44조의2`), title without parentheses.
    pub(crate) fn article(&mut self, number: &str, title: Option<&str>) {
        self.close();
        let title = title.map(str::trim).filter(|t| !t.is_empty());
        self.article = Some((number.to_owned(), title.map(str::to_owned)));
        self.blank_line();
        let start = self.text.len();
        match title {
            Some(t) => self.push_line(&format!("{number}({t})")),
            None => self.push_line(number),
        }
        self.open = Some(OpenSegment {
            start,
            end: self.text.len() - 1,
            locator: self.locator(None),
            has_body: false,
        });
    }

    /// Start of a 항: its circled label (`①`) and its first line, label included.
    pub(crate) fn paragraph(&mut self, label: char, line: &str) {
        let paragraph = circled_number(label).map(|n| format!("제{n}항"));
        let start = self.text.len();
        match &mut self.open {
            Some(open) if !open.has_body => open.locator.paragraph = paragraph,
            _ => {
                self.close();
                self.open = Some(OpenSegment {
                    start,
                    end: start,
                    locator: self.locator(paragraph),
                    has_body: false,
                });
            }
        }
        self.body_line(line.trim());
    }

    /// A line of article text; `depth` 1 is a 호, 2 a 목, 0 running text.
    pub(crate) fn line(&mut self, depth: usize, content: &str) {
        let content = content.trim();
        if content.is_empty() {
            return;
        }
        if self.open.is_none() {
            let start = self.text.len();
            self.open = Some(OpenSegment {
                start,
                end: start,
                locator: self.locator(None),
                has_body: false,
            });
        }
        let indent = "  ".repeat(depth.min(DIVISION_LEVELS));
        self.body_line(&format!("{indent}{content}"));
    }

    pub(crate) fn finish(mut self, format: &'static str) -> Result<Document, IngestError> {
        self.close();
        if self.segments.is_empty() {
            return Err(IngestError::malformed(format, "no articles found"));
        }
        let info = self.info;
        let mut meta = BTreeMap::new();
        meta.insert("law".to_owned(), info.title.clone());
        let optional = [
            ("law_kind", info.law_kind),
            ("promulgation_date", info.promulgation_date),
            ("effective_date", info.effective_date),
        ];
        for (key, value) in optional {
            if let Some(v) = value.filter(|v| !v.is_empty()) {
                meta.insert(key.to_owned(), v);
            }
        }
        if !info.departments.is_empty() {
            meta.insert("department".to_owned(), info.departments.join(", "));
        }
        for (key, value) in info.extra {
            meta.insert(key.to_owned(), value);
        }
        Ok(Document {
            title: info.title,
            kind: DocKind::Statute,
            text: self.text,
            meta,
            segments: self.segments,
        })
    }

    fn locator(&self, paragraph: Option<String>) -> Locator {
        let chapter = match &self.supplement {
            Some(label) => Some(label.clone()),
            None => {
                let parts: Vec<&str> = self
                    .divisions
                    .iter()
                    .flatten()
                    .map(String::as_str)
                    .collect();
                (!parts.is_empty()).then(|| parts.join(" > "))
            }
        };
        Locator {
            chapter,
            article: self.article.as_ref().map(|(n, _)| n.clone()),
            article_title: self.article.as_ref().and_then(|(_, t)| t.clone()),
            paragraph,
            ..Locator::default()
        }
    }

    fn body_line(&mut self, line: &str) {
        self.push_line(line);
        if let Some(open) = &mut self.open {
            open.end = self.text.len() - 1;
            open.has_body = true;
        }
    }

    fn close(&mut self) {
        if let Some(open) = self.open.take() {
            self.segments.push(Segment {
                range: open.start..open.end,
                locator: open.locator,
            });
        }
    }

    fn push_line(&mut self, line: &str) {
        self.text.push_str(&nfc(line.trim_end()));
        self.text.push('\n');
    }

    fn blank_line(&mut self) {
        if !self.text.ends_with("\n\n") {
            self.text.push('\n');
        }
    }
}

/// Feeds 부칙 text, one source line at a time, to the builder. Both formats carry 부칙 as
/// loose lines: `부칙 <제1919호,2023.12.7>` labels, `제1조(시행일) ...` articles, `①` 항.
pub(crate) fn supplement_lines<'a>(
    builder: &mut StatuteBuilder,
    lines: impl IntoIterator<Item = &'a str>,
) {
    for raw in lines {
        let line = raw.trim();
        if line.is_empty() || (line.len() >= 3 && line.chars().all(|c| c == '-')) {
            continue;
        }
        if is_supplement_label(line) {
            builder.supplement(line);
        } else if let Some((number, title, rest)) = split_article_heading(line)
            .filter(|(_, title, rest)| title.is_some() || is_elided(rest))
        {
            builder.article(number, title);
            content_line(builder, 0, rest);
        } else {
            let indent = raw.len() - raw.trim_start().len();
            content_line(builder, indent.div_ceil(2), line);
        }
    }
}

/// `생략` / `삭제 <..>`: the whole text of an untitled 부칙 article (`제8조 생략`). Other
/// untitled `제N조 ...` lines in 부칙 quote amended provisions and stay running text.
fn is_elided(rest: &str) -> bool {
    rest == "생략" || rest.starts_with("삭제")
}

/// A content line that may open a 항: a circled number at the start (`① 본문`, and in
/// old 부칙 `②제1항 ...`), unless a connective follows it: `①부터 <549>까지 생략` is
/// running text that mentions 항, not a 항.
pub(crate) fn content_line(builder: &mut StatuteBuilder, depth: usize, line: &str) {
    let line = line.trim();
    match paragraph_label(line) {
        Some(label) => builder.paragraph(label, line),
        None => builder.line(depth, line),
    }
}

/// The circled label opening a 항 line, if the line is one.
pub(crate) fn paragraph_label(line: &str) -> Option<char> {
    let mut chars = line.chars();
    let label = chars.next().filter(|c| circled_number(*c).is_some())?;
    let rest = chars.as_str();
    const CONNECTIVES: &[&str] = &[
        "부터", "내지", "까지", "및", "의 ", "ㆍ", "·", ",", "~", "∼",
    ];
    let rest = rest.trim_start();
    (!CONNECTIVES.iter().any(|c| rest.starts_with(c))).then_some(label)
}

/// `부칙`, `부칙 <제1919호,2023.12.7>`, `부칙(정부조직법) <...>`.
pub(crate) fn is_supplement_label(line: &str) -> bool {
    line.strip_prefix("부칙")
        .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '(', '<']))
}

/// The number of a circled paragraph label: ① → 1 ... ㊿ → 50.
pub(crate) fn circled_number(c: char) -> Option<u32> {
    let code = c as u32;
    match code {
        0x2460..=0x2473 => Some(code - 0x2460 + 1),
        0x3251..=0x325F => Some(code - 0x3251 + 21),
        0x32B1..=0x32BF => Some(code - 0x32B1 + 36),
        _ => None,
    }
}

/// Splits `제44조의2 (제목) rest` into (`제44조의2`, `Some("제목")`, `rest`). The title is
/// taken only when the parenthesis directly follows the number (after optional spaces)
/// and is balanced; nested parentheses inside the title are kept.
pub(crate) fn split_article_heading(line: &str) -> Option<(&str, Option<&str>, &str)> {
    let end = article_number_len(line)?;
    let (number, rest) = line.split_at(end);
    let after = rest.trim_start();
    if let Some(inner) = after.strip_prefix('(') {
        let mut depth = 1usize;
        for (i, c) in inner.char_indices() {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        return Some((number, Some(&inner[..i]), inner[i + 1..].trim_start()));
                    }
                }
                _ => {}
            }
        }
    }
    // A bare number must end the line or be followed by a space (`제10조 삭제 <..>`),
    // so references such as `제18조제1항` are not taken for articles.
    (rest.is_empty() || rest.starts_with(' ')).then_some((number, None, rest.trim_start()))
}

/// Length in bytes of a leading `제N조` or `제N조의M`.
fn article_number_len(line: &str) -> Option<usize> {
    let rest = line.strip_prefix('제')?;
    let digits = leading_digits(rest);
    let rest = rest[digits..].strip_prefix('조').filter(|_| digits > 0)?;
    let mut len = line.len() - rest.len();
    if let Some(branch) = rest.strip_prefix('의') {
        let d = leading_digits(branch);
        if d > 0 {
            len += '의'.len_utf8() + d;
        }
    }
    Some(len)
}

fn leading_digits(s: &str) -> usize {
    s.bytes().take_while(u8::is_ascii_digit).count()
}

/// 편 0, 장 1, 절 2, 관 3 for a heading `제N[의M](편|장|절|관) ...`.
pub(crate) fn division_level(heading: &str) -> Option<usize> {
    let rest = heading.strip_prefix('제')?;
    let digits = leading_digits(rest);
    if digits == 0 {
        return None;
    }
    let mut rest = &rest[digits..];
    if let Some(branch) = rest.strip_prefix('의') {
        rest = &branch[leading_digits(branch)..];
    }
    match rest.chars().next()? {
        '편' => Some(0),
        '장' => Some(1),
        '절' => Some(2),
        '관' => Some(3),
        _ => None,
    }
}

/// Drops trailing amendment notes (`<개정 2011.8.4>`) from a heading for use in locators.
fn strip_notes(heading: &str) -> &str {
    heading
        .find(" <")
        .map_or(heading, |i| heading[..i].trim_end())
}

/// `20231207` or `2023-12-07` or `2023.12.7` → `2023-12-07`; anything else unchanged.
pub(crate) fn iso_date(raw: &str) -> String {
    let raw = raw.trim();
    let digits: String = raw.chars().filter(char::is_ascii_digit).collect();
    if raw.len() == 8 && digits.len() == 8 {
        return format!("{}-{}-{}", &digits[..4], &digits[4..6], &digits[6..]);
    }
    let parts: Vec<&str> = raw
        .split(['-', '.', '/'])
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    if let [y, m, d] = parts[..] {
        if y.len() == 4
            && [y, m, d]
                .iter()
                .all(|p| p.bytes().all(|b| b.is_ascii_digit()))
            && m.len() <= 2
            && d.len() <= 2
        {
            return format!("{y}-{m:0>2}-{d:0>2}");
        }
    }
    raw.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn article_headings() {
        assert_eq!(
            split_article_heading("제44조 (영업자 등의 준수사항)"),
            Some(("제44조", Some("영업자 등의 준수사항"), ""))
        );
        assert_eq!(
            split_article_heading("제7조의2(권장규격) ① 본문"),
            Some(("제7조의2", Some("권장규격"), "① 본문"))
        );
        assert_eq!(
            split_article_heading("제3조(식품 등의 취급(取扱))"),
            Some(("제3조", Some("식품 등의 취급(取扱)"), ""))
        );
        assert_eq!(split_article_heading("제10조"), Some(("제10조", None, "")));
        assert_eq!(
            split_article_heading("제10조 삭제 <2018.3.13>"),
            Some(("제10조", None, "삭제 <2018.3.13>"))
        );
        assert_eq!(split_article_heading("제18조제1항제2호 중"), None);
        assert_eq!(split_article_heading("제조업"), None);
        assert_eq!(split_article_heading("제"), None);
    }

    #[test]
    fn divisions_and_labels() {
        assert_eq!(division_level("제2장 식품과 식품첨가물"), Some(1));
        assert_eq!(division_level("제1절 기준"), Some(2));
        assert_eq!(division_level("제3장의2 기타"), Some(1));
        assert_eq!(division_level("부칙"), None);
        assert_eq!(
            strip_notes("제6절 안전관리원 <신설 2011.6.7>"),
            "제6절 안전관리원"
        );
        assert!(is_supplement_label("부칙 <제1919호,2023.12.7>"));
        assert!(is_supplement_label("부칙(정부조직법) <제8852호,2008.2.29>"));
        assert!(!is_supplement_label("부칙의 개정규정은"));
        assert_eq!(circled_number('①'), Some(1));
        assert_eq!(circled_number('⑳'), Some(20));
        assert_eq!(circled_number('㉑'), Some(21));
        assert_eq!(circled_number('1'), None);
    }

    #[test]
    fn dates() {
        assert_eq!(iso_date("20240108"), "2024-01-08");
        assert_eq!(iso_date("2024-01-08"), "2024-01-08");
        assert_eq!(iso_date("2009.2.6"), "2009-02-06");
        assert_eq!(iso_date("미상"), "미상");
    }

    #[test]
    fn builder_layout_and_segments() {
        let mut b = StatuteBuilder::new(StatuteInfo {
            title: "시험법".into(),
            ..StatuteInfo::default()
        });
        b.division("제1장 총칙");
        b.article("제1조", Some("목적"));
        b.line(0, "이 법은 목적을 정한다.");
        b.article("제2조", Some("정의"));
        b.paragraph('①', "① 정의는 다음과 같다.");
        b.line(1, "1. 가");
        content_line(&mut b, 0, "② 둘째 항.");
        content_line(&mut b, 0, "③부터 ⑤까지 생략");
        content_line(&mut b, 0, "⑥ 부터 ⑧ 까지 생략");
        supplement_lines(
            &mut b,
            [
                "부칙 <제1호,2024.1.1>",
                "",
                "이 법은 공포한 날부터 시행한다.",
                "제2조 생략",
                "제3조 중 \"가\"를 \"나\"로 한다.",
            ],
        );
        let doc = b.finish("test").unwrap();
        assert_eq!(
            doc.text,
            "시험법\n\n제1장 총칙\n\n제1조(목적)\n이 법은 목적을 정한다.\n\n제2조(정의)\n① 정의는 다음과 같다.\n  1. 가\n② 둘째 항.\n③부터 ⑤까지 생략\n⑥ 부터 ⑧ 까지 생략\n\n부칙 <제1호,2024.1.1>\n이 법은 공포한 날부터 시행한다.\n\n제2조\n생략\n제3조 중 \"가\"를 \"나\"로 한다.\n"
        );
        let parts: Vec<(&str, String)> = doc
            .segments
            .iter()
            .map(|s| (&doc.text[s.range.clone()], s.locator.display()))
            .collect();
        assert_eq!(
            parts,
            vec![
                ("제1조(목적)\n이 법은 목적을 정한다.", "제1조".to_owned()),
                (
                    "제2조(정의)\n① 정의는 다음과 같다.\n  1. 가",
                    "제2조 제1항".to_owned()
                ),
                (
                    "② 둘째 항.\n③부터 ⑤까지 생략\n⑥ 부터 ⑧ 까지 생략",
                    "제2조 제2항".to_owned()
                ),
                (
                    "이 법은 공포한 날부터 시행한다.",
                    "부칙 <제1호,2024.1.1>".to_owned()
                ),
                (
                    "제2조\n생략\n제3조 중 \"가\"를 \"나\"로 한다.",
                    "부칙 제2조".to_owned()
                ),
            ]
        );
        assert_eq!(
            doc.segments[0].locator.chapter.as_deref(),
            Some("제1장 총칙")
        );
        assert_eq!(
            doc.segments[3].locator.chapter.as_deref(),
            Some("부칙 <제1호,2024.1.1>")
        );
    }
}
