//! The one error type of the ingest crate.

/// Why a file could not be turned into a document. Messages are shown to users as the
/// reason a file was skipped, so they say what is wrong with the file, not with us.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("unsupported file type: {0}")]
    Unsupported(String),
    #[error("file is not valid UTF-8 text: {0}")]
    Encoding(String),
    #[error("malformed {format} file: {detail}")]
    Malformed {
        format: &'static str,
        detail: String,
    },
    #[error("no extractable text (scanned or image-only document?): {0}")]
    NoText(String),
}

impl IngestError {
    pub fn malformed(format: &'static str, detail: impl ToString) -> Self {
        IngestError::Malformed {
            format,
            detail: detail.to_string(),
        }
    }
}
