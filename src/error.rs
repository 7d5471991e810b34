//! The one error type of the anjeon crate.

use std::path::Path;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("configuration error: {0}")]
    Config(String),
    #[error("set-up failed: {0}")]
    Setup(String),
    #[error(transparent)]
    Ingest(#[from] anjeon_ingest::IngestError),
    #[error(transparent)]
    Eval(#[from] anjeon_eval::EvalError),
    #[error("index error: {0}")]
    Index(String),
    #[error("vector store error: {0}")]
    VectorStore(String),
    #[error("model error: {0}")]
    Model(String),
    #[error("invalid request: {0}")]
    InvalidInput(String),
    /// A bounded queue is full; the caller may retry later.
    #[error("busy: {0}")]
    Busy(String),
}

impl Error {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io {
            path: path.display().to_string(),
            source,
        }
    }
}
