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
    #[error("not found: {0}")]
    NotFound(String),
    /// No credentials, or credentials nobody holds.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// Valid credentials of a role that may not do this.
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("too large: {0}")]
    TooLarge(String),
    /// An upload of a type no parser reads.
    #[error("unsupported type: {0}")]
    UnsupportedType(String),
    /// A well-formed request whose content cannot be used (an empty file, a bad name).
    #[error("unprocessable: {0}")]
    Unprocessable(String),
    /// A remote service (a Qdrant server, a remote LLM) failed or could not be reached.
    #[error("upstream error: {0}")]
    Upstream(String),
    /// A request within the body limit that breaks another limit (question or conversation
    /// length): the message says which, in Korean first.
    #[error("{0}")]
    LimitExceeded(String),
    /// One client sent more than its share; it may retry after `retry_after_secs`.
    #[error("{message}")]
    RateLimited {
        message: String,
        retry_after_secs: u64,
    },
    /// The server as a whole is at capacity (or shutting down); retry after a moment.
    #[error("{message}")]
    Overloaded {
        message: String,
        retry_after_secs: u64,
    },
    /// A stage (retrieval, generation, a silent stream) ran past its time limit.
    #[error("timed out: {0}")]
    Timeout(String),
}

impl Error {
    /// The HTTP status of each kind of error: the one place where that is decided.
    pub fn http_status(&self) -> u16 {
        match self {
            Error::InvalidInput(_) | Error::Ingest(_) => 400,
            Error::Unauthorized(_) => 401,
            Error::Forbidden(_) => 403,
            Error::NotFound(_) => 404,
            Error::TooLarge(_) => 413,
            Error::UnsupportedType(_) => 415,
            Error::Unprocessable(_) => 422,
            Error::Busy(_) => 429,
            Error::Upstream(_) => 502,
            Error::LimitExceeded(_) => 422,
            Error::RateLimited { .. } => 429,
            Error::Overloaded { .. } => 503,
            Error::Timeout(_) => 504,
            Error::Io { .. }
            | Error::Config(_)
            | Error::Setup(_)
            | Error::Index(_)
            | Error::VectorStore(_)
            | Error::Model(_)
            | Error::Eval(_) => 500,
        }
    }

    /// A short label for metrics and API error bodies.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::InvalidInput(_) | Error::Ingest(_) => "invalid_request_error",
            Error::Unauthorized(_) => "authentication_error",
            Error::Forbidden(_) => "permission_error",
            Error::NotFound(_) => "not_found_error",
            Error::TooLarge(_) => "request_too_large",
            Error::UnsupportedType(_) => "unsupported_media_type",
            Error::Unprocessable(_) => "unprocessable_entity",
            Error::Busy(_) => "rate_limit_error",
            Error::Upstream(_) => "upstream_error",
            Error::Io { .. } => "io_error",
            Error::Config(_) | Error::Setup(_) => "server_error",
            Error::Index(_) | Error::VectorStore(_) => "index_error",
            Error::Model(_) => "model_error",
            Error::Eval(_) => "eval_error",
            Error::LimitExceeded(_) => "limit_exceeded",
            Error::RateLimited { .. } => "rate_limit_error",
            Error::Overloaded { .. } => "overloaded_error",
            Error::Timeout(_) => "timeout_error",
        }
    }

    /// Seconds a refused client should wait before retrying (the `Retry-After` header), for
    /// the errors that mean "not now" rather than "not this".
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Error::Busy(_) => Some(2),
            Error::RateLimited {
                retry_after_secs, ..
            }
            | Error::Overloaded {
                retry_after_secs, ..
            } => Some((*retry_after_secs).max(1)),
            _ => None,
        }
    }

    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io {
            path: path.display().to_string(),
            source,
        }
    }
}
