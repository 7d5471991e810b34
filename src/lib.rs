//! anjeon: a question-answering assistant for Korean food and drug safety.
//!
//! This crate holds everything above the pure parsers of `anjeon-ingest`: configuration,
//! set-up of default assets, the indexes (tantivy + Qdrant), hybrid search and the CLI.

pub mod analyzer;
pub mod answer;
pub mod assets;
pub mod auth;
pub mod bench;
pub mod cli;
pub mod config;
pub mod embed;
pub mod error;
pub mod evaluate;
pub mod filter;
pub mod index;
mod kernels;
pub mod llm;
pub mod loadtest;
pub mod logs;
pub mod manifest;
pub mod server;
pub mod setup;
pub mod vector;
pub mod web;

pub use error::{Error, Result};

/// The asset cache unit tests share: `ANJEON_CACHE_DIR`, or `<repo>/.cache` (gitignored).
#[cfg(test)]
pub(crate) fn test_cache_dir() -> std::path::PathBuf {
    std::env::var_os("ANJEON_CACHE_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache"))
}
