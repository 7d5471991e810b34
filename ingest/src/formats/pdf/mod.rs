//! PDF parser: text from the content streams of each page, laid out in reading order,
//! with running headers and footers dropped and one segment per page.

mod cmap;
mod content;
mod font;
mod layout;
mod objects;

use crate::formats::DocumentParser;
use crate::{DocKind, Document, IngestError, Locator, Segment};
use content::{FontCache, Rect};
use layout::Line;
use lopdf::{Dictionary, ObjectId};
use objects::{array_of, dict_get, number};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use unicode_normalization::UnicodeNormalization;

const FORMAT: &str = "pdf";

/// Parses PDF files with a text layer. Scanned, image-only files yield
/// [`IngestError::NoText`].
pub struct PdfParser;

impl DocumentParser for PdfParser {
    fn name(&self) -> &'static str {
        FORMAT
    }

    fn accepts(&self, path: &Path, head: &[u8]) -> bool {
        head.starts_with(b"%PDF-")
            || path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("pdf"))
    }

    fn parse(&self, file_name: &str, bytes: &[u8]) -> Result<Vec<Document>, IngestError> {
        parse_pdf(file_name, bytes).map(|doc| vec![doc])
    }
}

fn parse_pdf(file_name: &str, bytes: &[u8]) -> Result<Document, IngestError> {
    let doc = lopdf::Document::load_mem(bytes).map_err(load_error)?;
    if doc.is_encrypted() && !doc.was_encrypted() {
        return Err(IngestError::malformed(
            FORMAT,
            "the file is encrypted and needs a password",
        ));
    }
    let pages = doc.get_pages();
    if pages.is_empty() {
        return Err(IngestError::malformed(
            FORMAT,
            "no pages (truncated or damaged file?)",
        ));
    }

    let mut fonts = FontCache::default();
    let mut page_lines = Vec::with_capacity(pages.len());
    let mut missing_data = None;
    for &page_id in pages.values() {
        let content = content::page_content(&doc, page_id, &mut fonts);
        let bbox = page_box(&doc, page_id);
        page_lines.push((layout::page_lines(&content, bbox), bbox));
        missing_data = missing_data.or(content.missing_data);
    }
    if let Some(reason) = missing_data {
        return Err(IngestError::Unsupported(reason));
    }
    if page_lines.iter().all(|(lines, _)| lines.is_empty()) {
        return Err(IngestError::NoText(format!(
            "{file_name}: {} page(s), none with a text layer",
            pages.len()
        )));
    }
    drop_running_lines(&mut page_lines);

    let mut text = String::new();
    let mut segments = Vec::with_capacity(page_lines.len());
    for (number, (lines, _)) in (1u32..).zip(&page_lines) {
        let page_text: String = join_lines(lines).nfc().collect();
        if !page_text.is_empty() && !text.is_empty() {
            text.push_str("\n\n");
        }
        let start = text.len();
        text.push_str(&page_text);
        segments.push(Segment {
            range: start..text.len(),
            locator: Locator {
                page: Some(number),
                ..Locator::default()
            },
        });
    }

    let info = dict_get(&doc, &doc.trailer, b"Info").and_then(|o| o.as_dict().ok());
    let info_text = |key: &[u8]| {
        info.and_then(|d| dict_get(&doc, d, key))
            .and_then(|o| lopdf::decode_text_string(o).ok())
    };
    let title = info_text(b"Title")
        .filter(|t| is_meaningful_title(t))
        .map(|t| t.trim().nfc().collect())
        .unwrap_or_else(|| file_stem(file_name));
    let mut meta = BTreeMap::new();
    if let Some(date) = info_text(b"CreationDate").as_deref().and_then(pdf_date) {
        meta.insert("date".to_string(), date);
    }
    Ok(Document {
        title,
        kind: DocKind::Pdf,
        text,
        meta,
        segments,
    })
}

fn load_error(err: lopdf::Error) -> IngestError {
    let detail = match err {
        lopdf::Error::InvalidPassword | lopdf::Error::Decryption(_) => {
            "the file is encrypted and needs a password".to_string()
        }
        lopdf::Error::Parse(_)
        | lopdf::Error::Xref(_)
        | lopdf::Error::InvalidOffset(_)
        | lopdf::Error::MissingXrefEntry => {
            format!("cannot read the PDF structure ({err}); truncated or damaged file?")
        }
        other => format!("cannot read the PDF ({other})"),
    };
    IngestError::malformed(FORMAT, detail)
}

/// The visible page area: CropBox within MediaBox, both inheritable.
fn page_box(doc: &lopdf::Document, page_id: ObjectId) -> Rect {
    let letter = Rect {
        x0: 0.0,
        y0: 0.0,
        x1: 612.0,
        y1: 792.0,
    };
    let Ok(mut node) = doc.get_dictionary(page_id) else {
        return letter;
    };
    let (mut media, mut crop) = (None, None);
    for _ in 0..32 {
        media = media.or_else(|| rect_entry(doc, node, b"MediaBox"));
        crop = crop.or_else(|| rect_entry(doc, node, b"CropBox"));
        match dict_get(doc, node, b"Parent").and_then(|o| o.as_dict().ok()) {
            Some(parent) => node = parent,
            None => break,
        }
    }
    let media = media.unwrap_or(letter);
    crop.map(|c| c.intersect(media))
        .filter(|r| r.width() > 1.0 && r.height() > 1.0)
        .unwrap_or(media)
}

fn rect_entry(doc: &lopdf::Document, dict: &Dictionary, key: &[u8]) -> Option<Rect> {
    let values: Vec<f32> = array_of(doc, dict_get(doc, dict, key)?)?
        .iter()
        .filter_map(|o| number(doc, o))
        .collect();
    let [a, b, c, d] = values.as_slice() else {
        return None;
    };
    let rect = Rect {
        x0: a.min(*c),
        y0: b.min(*d),
        x1: a.max(*c),
        y1: b.max(*d),
    };
    (rect.width() > 1.0 && rect.height() > 1.0).then_some(rect)
}

/// Removes running headers and footers: bare page numbers in the top or bottom margin,
/// and margin lines that recur (digits aside) on most pages of a document of 3+ pages.
fn drop_running_lines(pages: &mut [(Vec<Line>, Rect)]) {
    const EDGE_LINES: usize = 3;
    const MARGIN_SHARE: f32 = 0.12;
    let in_margin = |line: &Line, page: &Rect| {
        let centre = (line.top + line.bottom) / 2.0;
        let margin = MARGIN_SHARE * page.height();
        centre > page.y1 - margin || centre < page.y0 + margin
    };
    let candidates = |lines: &[Line], page: &Rect| -> Vec<usize> {
        let n = lines.len();
        (0..n)
            .filter(|&i| i < EDGE_LINES || i + EDGE_LINES >= n)
            .filter(|&i| lines.get(i).is_some_and(|l| in_margin(l, page)))
            .collect()
    };

    let mut recurring: HashMap<String, usize> = HashMap::new();
    for (lines, page) in pages.iter() {
        let mut keys: Vec<String> = candidates(lines, page)
            .into_iter()
            .filter_map(|i| lines.get(i))
            .map(|l| running_key(&l.text))
            .collect();
        keys.sort();
        keys.dedup();
        for key in keys {
            *recurring.entry(key).or_default() += 1;
        }
    }
    let threshold = (pages.len() * 3).div_ceil(5).max(3);
    for (lines, page) in pages.iter_mut() {
        let drop: Vec<usize> = candidates(lines, page)
            .into_iter()
            .filter(|&i| {
                lines.get(i).is_some_and(|l| {
                    is_page_number(&l.text)
                        || recurring
                            .get(&running_key(&l.text))
                            .is_some_and(|&n| n >= threshold)
                })
            })
            .collect();
        for &i in drop.iter().rev() {
            lines.remove(i);
        }
        if let Some(first) = lines.first_mut() {
            first.block_start = true;
        }
    }
}

/// Page furniture differs between pages only in its numbers.
fn running_key(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| if c.is_ascii_digit() { '#' } else { c })
        .collect()
}

/// "3", "- 3 -", "— 3 —", "3 / 10", "(3)", "iv".
fn is_page_number(text: &str) -> bool {
    let core: String = text
        .chars()
        .filter(|c| {
            !c.is_whitespace() && !matches!(c, '-' | '–' | '—' | '−' | '(' | ')' | '[' | ']')
        })
        .collect();
    if core.is_empty() || core.len() > 12 {
        return false;
    }
    let mut parts = core.split('/');
    let number_like = |s: &str| {
        (!s.is_empty() && s.len() <= 4 && s.chars().all(|c| c.is_ascii_digit()))
            || (!s.is_empty() && s.len() <= 6 && s.chars().all(|c| "ivxlc".contains(c)))
    };
    match (parts.next(), parts.next(), parts.next()) {
        (Some(a), None, None) => number_like(a),
        (Some(a), Some(b), None) => number_like(a) && number_like(b),
        _ => false,
    }
}

/// Lines of one block join with a newline; blocks are separated by a blank line.
fn join_lines(lines: &[Line]) -> String {
    let mut out = String::new();
    for line in lines {
        if !out.is_empty() {
            out.push_str(if line.block_start { "\n\n" } else { "\n" });
        }
        out.push_str(&line.text);
    }
    out
}

/// Producers often put a file name, a template name or nothing in /Title.
fn is_meaningful_title(title: &str) -> bool {
    let t = title.trim();
    let lower = t.to_lowercase();
    let file_like = [
        ".hwp", ".hwpx", ".doc", ".docx", ".pdf", ".ppt", ".pptx", ".xls", ".xlsx", ".txt",
    ]
    .iter()
    .any(|ext| lower.ends_with(ext));
    t.chars().filter(|c| c.is_alphabetic()).count() >= 2
        && !file_like
        && !matches!(
            lower.as_str(),
            "untitled" | "제목 없음" | "제목없음" | "noname"
        )
}

fn file_stem(file_name: &str) -> String {
    let stem = Path::new(file_name)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    stem.nfc().collect()
}

/// `D:YYYYMMDDHHmmSS+hh'mm'` → `YYYY-MM-DD`; month and day default to 01 when omitted.
fn pdf_date(raw: &str) -> Option<String> {
    let raw = raw.trim();
    let digits: String = raw
        .strip_prefix("D:")
        .unwrap_or(raw)
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let field = |range: std::ops::Range<usize>, default: u32| -> Option<u32> {
        match digits.get(range) {
            Some(s) if !s.is_empty() => s.parse().ok(),
            _ => Some(default),
        }
    };
    if digits.len() < 4 {
        return None;
    }
    let year = field(0..4, 0)?;
    let month = if digits.len() >= 6 {
        field(4..6, 1)?
    } else {
        1
    };
    let day = if digits.len() >= 8 {
        field(6..8, 1)?
    } else {
        1
    };
    ((1900..=2200).contains(&year) && (1..=12).contains(&month) && (1..=31).contains(&day))
        .then(|| format!("{year:04}-{month:02}-{day:02}"))
}

#[cfg(test)]
mod tests;
