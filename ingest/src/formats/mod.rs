//! Format detection and the [`DocumentParser`] trait with one implementation per format.

use crate::{Document, IngestError};
use std::path::Path;

mod blocks;
mod front_matter;
mod hancom;
pub mod html;
mod hwp;
mod hwpx;
pub mod markdown;
pub mod mfds_json;
pub mod pdf;
mod statute;
pub mod statute_law;
pub mod statute_md;
pub mod text;
mod textfile;

pub use hwp::HwpParser;
pub use hwpx::HwpxParser;

/// Turns the bytes of one file of a given format into documents.
pub trait DocumentParser: Sync {
    /// Short format name used in logs and errors.
    fn name(&self) -> &'static str;
    /// Whether this parser handles the file, judged by its extension and first bytes.
    fn accepts(&self, path: &Path, head: &[u8]) -> bool;
    /// Parses the whole file. A file may hold several documents (e.g. a JSON array of
    /// safety letters); `file_name` is used as a fallback title.
    fn parse(&self, file_name: &str, bytes: &[u8]) -> Result<Vec<Document>, IngestError>;
}

static PARSERS: &[&dyn DocumentParser] = &[
    // Statute Markdown before generic Markdown, statute JSON before other JSON.
    &pdf::PdfParser,
    &HwpxParser,
    &HwpParser,
    &statute_md::StatuteMarkdownParser,
    &markdown::MarkdownParser,
    &statute_law::StatuteLawParser,
    &mfds_json::MfdsJsonParser,
    &html::HtmlParser,
    &text::TextParser,
];

/// The parser for a file, if any format accepts it.
pub fn parser_for(path: &Path, bytes: &[u8]) -> Option<&'static dyn DocumentParser> {
    let head = &bytes[..bytes.len().min(4096)];
    PARSERS.iter().copied().find(|p| p.accepts(path, head))
}

/// The parser whose [`DocumentParser::name`] is `name` (fuzz targets and the crasher
/// regression tests drive one format directly).
pub fn parser_named(name: &str) -> Option<&'static dyn DocumentParser> {
    PARSERS.iter().copied().find(|p| p.name() == name)
}

/// Parses a file with the parser that accepts it.
pub fn parse_file(path: &Path, bytes: &[u8]) -> Result<Vec<Document>, IngestError> {
    let parser = parser_for(path, bytes).ok_or_else(|| {
        IngestError::Unsupported(
            path.extension()
                .map(|e| format!(".{}", e.to_string_lossy()))
                .unwrap_or_else(|| "no extension".into()),
        )
    })?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    parser.parse(&name, bytes)
}
