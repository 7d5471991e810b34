//! Format detection and the [`DocumentParser`] trait with one implementation per format.

use crate::{Document, IngestError};
use std::path::Path;

mod hancom;
mod hwp;
mod hwpx;
pub mod pdf;

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

static PARSERS: &[&dyn DocumentParser] = &[&pdf::PdfParser, &HwpxParser, &HwpParser];

/// The parser for a file, if any format accepts it.
pub fn parser_for(path: &Path, bytes: &[u8]) -> Option<&'static dyn DocumentParser> {
    let head = &bytes[..bytes.len().min(4096)];
    PARSERS.iter().copied().find(|p| p.accepts(path, head))
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
