//! Vector store: one synchronous trait with two Qdrant engines behind it, embedded
//! (qdrant-edge, in-process, on a local directory) or a Qdrant server reached over gRPC.
//! Each passage is a point with its dense embedding and, optionally, a sparse vector of BM25
//! term weights (see [`crate::index::sparse`]) that Qdrant scores with its IDF modifier, so
//! the lexical side of the search can live in Qdrant too.
//!
//! Both engines apply the caller's [`SearchFilter`] inside the engine query (never after it),
//! so a caller restricted to public passages cannot see internal ones, not even in counts.
//! An empty access list fails closed: it matches nothing.
//!
//! The API is blocking on purpose: the embedded engine is CPU and disk work with no async
//! interface, and the server engine runs its requests on a private tokio runtime and waits on a
//! plain channel, so no call can hit tokio's "runtime within runtime" panic. From async code
//! (an axum handler) call the store through `tokio::task::spawn_blocking`.

pub mod edge;
pub mod server;

#[cfg(test)]
mod suite;

use std::path::PathBuf;

use crate::filter::{PointPayload, SearchFilter};
use crate::{Error, Result};

/// Dimension of every stored vector (the embedding model's output size).
pub const DIM: usize = 384;

/// Name of the sparse (BM25) vector in both engines; the dense vector is the unnamed one.
pub const SPARSE: &str = "bm25";

/// Payload keys, shared by both engines so their filters and indexes agree.
pub(crate) mod keys {
    pub const DOC: &str = "doc";
    pub const KIND: &str = "kind";
    pub const LAW: &str = "law";
    pub const ACCESS: &str = "access";
    pub const DATE: &str = "date";
    /// Fields matched by exact keyword (`date` is the only integer field).
    pub const KEYWORDS: [&str; 4] = [DOC, KIND, LAW, ACCESS];
}

/// One passage embedding with what filters need about it.
#[derive(Debug, Clone, PartialEq)]
pub struct VectorPoint {
    pub id: u64,
    pub vector: Vec<f32>,
    /// BM25 term weights of the passage (without IDF, which the engine applies).
    pub sparse: Option<SparseVector>,
    pub payload: PointPayload,
}

/// A sparse vector: strictly increasing dimension ids and their finite weights.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SparseVector {
    pub indices: Vec<u32>,
    pub values: Vec<f32>,
}

impl SparseVector {
    /// From (dimension, weight) pairs in any order; weights of a repeated dimension add up.
    pub fn from_pairs(mut pairs: Vec<(u32, f32)>) -> SparseVector {
        pairs.sort_unstable_by_key(|p| p.0);
        let mut v = SparseVector::default();
        for (i, w) in pairs {
            if v.indices.last() == Some(&i) {
                if let Some(last) = v.values.last_mut() {
                    *last += w;
                }
            } else {
                v.indices.push(i);
                v.values.push(w);
            }
        }
        v
    }

    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }
}

/// One search result: the passage id and its cosine similarity (higher is closer).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VectorHit {
    pub id: u64,
    pub score: f32,
}

/// Where the vectors live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VectorConfig {
    /// qdrant-edge inside this process, on this directory (created on first use).
    Embedded { path: PathBuf },
    /// A Qdrant server or cluster; `url` is its gRPC endpoint, e.g. `http://localhost:6334`.
    Server {
        url: String,
        api_key: Option<String>,
        collection: String,
    },
}

/// A store of passage vectors. All methods may block; see the module docs for async callers.
pub trait VectorStore: Send + Sync {
    /// Inserts the points, replacing any point that already has the same id.
    fn upsert(&self, points: Vec<VectorPoint>) -> Result<()>;
    /// Removes every point of a source document.
    fn delete_doc(&self, doc: &str) -> Result<()>;
    fn delete_ids(&self, ids: &[u64]) -> Result<()>;
    /// The `k` points closest to `vector` among those the filter admits, best first.
    fn search(&self, vector: &[f32], k: usize, filter: &SearchFilter) -> Result<Vec<VectorHit>>;
    /// The similarity of `vector` to each point of `ids` that exists and the filter admits,
    /// scored as [`search`](Self::search) scores, best first: for passages that another
    /// search found beyond this one's reach.
    fn score(&self, vector: &[f32], ids: &[u64], filter: &SearchFilter) -> Result<Vec<VectorHit>>;
    /// The `k` points with the highest sparse score (Σ over shared dimensions of query weight ×
    /// stored weight × the dimension's IDF over the whole store) among those the filter admits
    /// and that have a sparse vector, best first. An empty query matches nothing.
    fn search_sparse(
        &self,
        query: &SparseVector,
        k: usize,
        filter: &SearchFilter,
    ) -> Result<Vec<VectorHit>>;
    /// Whether points keep their sparse vectors and [`search_sparse`](Self::search_sparse)
    /// works (a store made before sparse vectors existed has none).
    fn has_sparse(&self) -> bool;
    /// Ids of all points of a document, whatever their access level: an administrative call
    /// for consistency checks after a crash, never for answering a caller.
    fn ids_of_doc(&self, doc: &str) -> Result<Vec<u64>>;
    /// Exact number of points the filter admits.
    fn count(&self, filter: &SearchFilter) -> Result<u64>;
    /// Makes every accepted write durable: after it returns, the writes survive a killed
    /// process.
    fn flush(&self) -> Result<()>;
    /// Builds the vector (HNSW) indexes for what was written since the last call; call it after
    /// a bulk ingest. Search works without it, but by full scan.
    fn optimize(&self) -> Result<()>;
}

/// Opens (creating if needed) the store a configuration names.
pub fn open(config: &VectorConfig) -> Result<Box<dyn VectorStore>> {
    match config {
        VectorConfig::Embedded { path } => Ok(Box::new(edge::EdgeStore::open(path)?)),
        VectorConfig::Server {
            url,
            api_key,
            collection,
        } => Ok(Box::new(server::ServerStore::open(
            url,
            api_key.as_deref(),
            collection,
        )?)),
    }
}

/// Rejects vectors the engines would store but could not compare sensibly.
fn check_vector(vector: &[f32]) -> Result<()> {
    if vector.len() != DIM {
        return Err(Error::InvalidInput(format!(
            "vector has {} dimensions, expected {DIM}",
            vector.len()
        )));
    }
    if !vector.iter().all(|x| x.is_finite()) {
        return Err(Error::InvalidInput(
            "vector contains NaN or infinite values".into(),
        ));
    }
    if vector.iter().all(|x| *x == 0.0) {
        return Err(Error::InvalidInput(
            "zero vector has no cosine similarity".into(),
        ));
    }
    Ok(())
}

/// Rejects sparse vectors the engines would refuse or misrank: unsorted or repeated
/// dimensions, mismatched lengths, weights that are not finite and positive.
fn check_sparse(v: &SparseVector) -> Result<()> {
    if v.indices.len() != v.values.len() {
        return Err(Error::InvalidInput(format!(
            "sparse vector has {} indices and {} values",
            v.indices.len(),
            v.values.len()
        )));
    }
    if !v.indices.windows(2).all(|w| w[0] < w[1]) {
        return Err(Error::InvalidInput(
            "sparse vector indices must be strictly increasing".into(),
        ));
    }
    if !v.values.iter().all(|x| x.is_finite() && *x > 0.0) {
        return Err(Error::InvalidInput(
            "sparse vector weights must be finite and positive".into(),
        ));
    }
    Ok(())
}

/// The filter conditions both engines translate, or `None` when the filter admits nothing.
/// Keeping this engine-neutral step in one place is what makes the two translations agree.
struct FilterParts<'a> {
    access: Vec<String>,
    kinds: &'a [String],
    law: Option<&'a str>,
    doc: Option<&'a str>,
    /// Inclusive `YYYYMMDD` bounds; points without a date fail any date bound.
    date_from: Option<i64>,
    date_to: Option<i64>,
}

impl<'a> FilterParts<'a> {
    fn of(filter: &'a SearchFilter) -> Option<Self> {
        // Fail closed: a caller allowed no access level sees nothing.
        if filter.access.is_empty() {
            return None;
        }
        Some(FilterParts {
            access: filter
                .access
                .iter()
                .map(|a| a.as_str().to_owned())
                .collect(),
            kinds: &filter.kinds,
            law: filter.law.as_deref(),
            doc: filter.doc.as_deref(),
            date_from: filter.date_from,
            date_to: filter.date_to,
        })
    }
}

fn store_error(context: &str, err: impl std::fmt::Display) -> Error {
    Error::VectorStore(format!("{context}: {err}"))
}
