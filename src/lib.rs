//! anjeon: a question-answering assistant for Korean food and drug safety.
//!
//! This crate holds everything above the pure parsers of `anjeon-ingest`: configuration,
//! set-up of default assets, the indexes (tantivy + Qdrant), hybrid search and the CLI.

pub mod assets;
pub mod embed;
pub mod error;
pub mod filter;

pub use error::{Error, Result};
