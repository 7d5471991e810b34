//! The structure-aware chunker: turns a document's segments into passages of bounded size.

use crate::{Document, Locator};
use serde::{Deserialize, Serialize};
use std::ops::Range;

/// Size limits for passages, in characters.
#[derive(Debug, Clone, Copy)]
pub struct ChunkOptions {
    pub max_chars: usize,
}

impl Default for ChunkOptions {
    fn default() -> Self {
        ChunkOptions { max_chars: 800 }
    }
}

/// One retrievable unit: text with its place in the document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Passage {
    pub title: String,
    pub locator: Locator,
    pub text: String,
    /// Byte range of `text` within [`Document::text`].
    pub range: Range<usize>,
}

pub fn chunk_document(doc: &Document, _opts: ChunkOptions) -> Vec<Passage> {
    doc.segments
        .iter()
        .map(|s| Passage {
            title: doc.title.clone(),
            locator: s.locator.clone(),
            text: doc.text[s.range.clone()].to_string(),
            range: s.range.clone(),
        })
        .collect()
}
