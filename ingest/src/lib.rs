//! Document ingest for anjeon: one parser per format turns file bytes into a
//! [`Document`] (NFC text plus its structure), and the chunker cuts it into [`Passage`]s.
//!
//! The crate is pure: bytes in, passages out (and [`redact`] for PII in what is shown). It
//! knows nothing of indexes or models.

pub mod chunk;
mod document;
mod error;
pub mod formats;
pub mod redact;

pub use chunk::{chunk_document, ChunkOptions, Passage};
pub use document::{DocKind, Document, Locator, Segment};
pub use error::IngestError;
pub use formats::{parse_file, parser_for, DocumentParser};
pub use redact::{find_pii, redact, PiiKind, PiiMatch};
