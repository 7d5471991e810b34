//! The parsed form of one source document: its NFC text and the structural segments
//! (statute article/paragraph, page, heading, record) that locate each part of it.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::ops::Range;

/// What kind of document a file is; stored with every passage and usable as a filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocKind {
    Statute,
    Pdf,
    Hwpx,
    Hwp,
    SafetyLetter,
    Html,
    Markdown,
    Text,
}

impl DocKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DocKind::Statute => "statute",
            DocKind::Pdf => "pdf",
            DocKind::Hwpx => "hwpx",
            DocKind::Hwp => "hwp",
            DocKind::SafetyLetter => "safety_letter",
            DocKind::Html => "html",
            DocKind::Markdown => "markdown",
            DocKind::Text => "text",
        }
    }
}

/// Where a segment sits in its document. Only the fields that apply are set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Locator {
    /// 장/절 heading the article belongs to, e.g. "제2장 식품과 식품첨가물".
    pub chapter: Option<String>,
    /// Article number as written, e.g. "제44조" or "제44조의2".
    pub article: Option<String>,
    /// Article title without parentheses, e.g. "영업자 등의 준수사항".
    pub article_title: Option<String>,
    /// Paragraph as written, e.g. "제1항".
    pub paragraph: Option<String>,
    /// 1-based page number (PDF).
    pub page: Option<u32>,
    /// Nearest heading for documents without statute structure.
    pub heading: Option<String>,
    /// Title of a record inside a multi-record file (e.g. one safety letter).
    pub record: Option<String>,
}

impl Locator {
    /// The short form users see: "제44조 제1항", "부칙 제1조", "p. 3", or a heading.
    pub fn display(&self) -> String {
        let supplement = self
            .chapter
            .as_deref()
            .is_some_and(|c| c.starts_with("부칙"));
        if let Some(article) = &self.article {
            let article = if supplement {
                format!("부칙 {article}")
            } else {
                article.clone()
            };
            return match &self.paragraph {
                Some(p) => format!("{article} {p}"),
                None => article,
            };
        }
        if supplement {
            // 부칙 text outside any article ("이 법은 공포한 날부터 시행한다.").
            return self.chapter.clone().unwrap_or_default();
        }
        if let Some(page) = self.page {
            return format!("p. {page}");
        }
        self.record
            .as_ref()
            .or(self.heading.as_ref())
            .cloned()
            .unwrap_or_default()
    }
}

/// A structural unit of a document: a byte range of [`Document::text`] and its locator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    pub range: Range<usize>,
    pub locator: Locator,
}

/// One parsed document. `text` is NFC-normalised; every segment range indexes into it
/// on char boundaries, segments are in reading order and do not overlap.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Document {
    pub title: String,
    pub kind: DocKind,
    pub text: String,
    /// Metadata usable as search filters: `law`, `effective_date` (YYYY-MM-DD), `date`,
    /// `department`, ...
    pub meta: BTreeMap<String, String>,
    pub segments: Vec<Segment>,
}
