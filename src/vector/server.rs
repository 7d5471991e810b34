//! Vector store on a Qdrant server or cluster over gRPC (`qdrant-client`), one collection,
//! created on first use with 384-d cosine vectors, a sparse `bm25` vector with Qdrant's IDF
//! modifier, and payload indexes for every filtered field.
//!
//! The client is async; this store owns a small tokio runtime, spawns each request on it and
//! waits on a std channel. That never nests runtimes, whatever thread calls in, so the store
//! is safe to use from an axum handler (through `spawn_blocking`, as any blocking call).

use std::future::Future;
use std::sync::mpsc;

use qdrant_client::qdrant::point_id::PointIdOptions;
use qdrant_client::qdrant::r#match::MatchValue;
use std::collections::HashMap;

use qdrant_client::qdrant::{
    vectors_config, CollectionInfo, Condition, CountPointsBuilder, CreateCollectionBuilder,
    CreateFieldIndexCollectionBuilder, DeletePointsBuilder, Distance, FieldType, Filter, Modifier,
    PointId, PointStruct, PointsIdsList, Query, QueryPointsBuilder, Range, ScrollPointsBuilder,
    SearchParamsBuilder, SparseVectorParamsBuilder, SparseVectorsConfigBuilder,
    UpsertPointsBuilder, Vector, VectorInput, VectorParamsBuilder, Vectors,
};
use qdrant_client::{Payload, Qdrant};
use tokio::runtime::Runtime;

use super::{
    check_sparse, check_vector, keys, store_error, FilterParts, SparseVector, VectorHit,
    VectorPoint, VectorStore, DIM, SPARSE,
};
use crate::filter::{PointPayload, SearchFilter};
use crate::{Error, Result};

/// Query-time HNSW beam width, the same as the embedded engine's so both rank alike.
const HNSW_EF_SEARCH: u64 = 128;
/// Page size when listing the ids of a document.
const SCROLL_PAGE: u32 = 1_000;
/// Points per upsert request; keeps each gRPC message well under the 32 MiB default limit.
const UPSERT_BATCH: usize = 512;

pub struct ServerStore {
    client: Qdrant,
    collection: String,
    /// `Some` until drop, where it is shut down without blocking: dropping a runtime the
    /// normal way panics when that happens on a thread inside another runtime.
    runtime: Option<Runtime>,
}

impl ServerStore {
    /// Connects to `url` (gRPC, e.g. `http://localhost:6334`) and creates the collection and
    /// its payload indexes if they are missing.
    pub fn open(url: &str, api_key: Option<&str>, collection: &str) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("anjeon-qdrant")
            .enable_all()
            .build()
            .map_err(|e| store_error("starting the Qdrant client runtime", e))?;
        // Building the client starts tonic's connection machinery, which needs a runtime.
        // The client's own version check prints to stdout, where it would corrupt `--json`
        // output; the server's version goes to the log instead (see `ensure_collection`).
        let client = {
            let _entered = runtime.enter();
            Qdrant::from_url(url)
                .api_key(api_key.map(str::to_owned))
                .skip_compatibility_check()
                .build()
                .map_err(|e| store_error(&format!("connecting to {url}"), e))?
        };
        let store = ServerStore {
            client,
            collection: collection.to_owned(),
            runtime: Some(runtime),
        };
        store.ensure_collection()?;
        Ok(store)
    }

    /// Runs `fut` on the private runtime and waits for it from this (any) thread.
    fn run<T, F>(&self, fut: F) -> Result<T>
    where
        T: Send + 'static,
        F: Future<Output = Result<T>> + Send + 'static,
    {
        let runtime = self
            .runtime
            .as_ref()
            .ok_or_else(|| Error::VectorStore("Qdrant client runtime is shut down".into()))?;
        let (tx, rx) = mpsc::sync_channel(1);
        runtime.spawn(async move {
            // The receiver only disappears if the caller is gone; nothing to report to then.
            let _ = tx.send(fut.await);
        });
        rx.recv()
            .map_err(|_| Error::VectorStore("Qdrant request task was dropped".into()))?
    }

    fn ensure_collection(&self) -> Result<()> {
        let client = self.client.clone();
        let name = self.collection.clone();
        self.run(async move {
            let health = client
                .health_check()
                .await
                .map_err(|e| store_error("checking the server", e))?;
            tracing::info!(server_version = %health.version, "connected to Qdrant");
            let exists = client
                .collection_exists(&name)
                .await
                .map_err(|e| store_error("checking the collection", e))?;
            if !exists {
                let mut sparse = SparseVectorsConfigBuilder::default();
                sparse.add_named_vector_params(
                    SPARSE,
                    SparseVectorParamsBuilder::default().modifier(Modifier::Idf),
                );
                client
                    .create_collection(
                        CreateCollectionBuilder::new(&name)
                            .vectors_config(VectorParamsBuilder::new(DIM as u64, Distance::Cosine))
                            .sparse_vectors_config(sparse),
                    )
                    .await
                    .map_err(|e| store_error(&format!("creating collection {name}"), e))?;
            }
            let info = client
                .collection_info(&name)
                .await
                .map_err(|e| store_error("reading the collection info", e))?;
            let info = info
                .result
                .ok_or_else(|| Error::VectorStore(format!("no info for collection {name}")))?;
            check_vector_params(&name, &info)?;
            let schema = info.payload_schema;
            let wanted = keys::KEYWORDS
                .iter()
                .map(|k| (*k, FieldType::Keyword))
                .chain([(keys::DATE, FieldType::Integer)]);
            for (key, field_type) in wanted {
                if schema.contains_key(key) {
                    continue;
                }
                client
                    .create_field_index(
                        CreateFieldIndexCollectionBuilder::new(&name, key, field_type).wait(true),
                    )
                    .await
                    .map_err(|e| store_error(&format!("creating the index on {key}"), e))?;
            }
            Ok(())
        })
    }

    /// Deletes the whole collection; for tests that create throw-away collections.
    #[cfg(test)]
    fn drop_collection(&self) -> Result<()> {
        let client = self.client.clone();
        let name = self.collection.clone();
        self.run(async move {
            client
                .delete_collection(name)
                .await
                .map(|_| ())
                .map_err(|e| store_error("deleting the collection", e))
        })
    }
}

impl Drop for ServerStore {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Refuses an existing collection whose unnamed vector is not 384-d cosine or that lacks the
/// sparse `bm25` vector with the IDF modifier: writing into it would fail point by point, or
/// worse, rank with another metric.
fn check_vector_params(name: &str, info: &CollectionInfo) -> Result<()> {
    let params = info.config.as_ref().and_then(|c| c.params.as_ref());
    let dense = params
        .and_then(|p| p.vectors_config.as_ref())
        .and_then(|v| v.config.as_ref());
    match dense {
        Some(vectors_config::Config::Params(p))
            if p.size == DIM as u64 && p.distance() == Distance::Cosine => {}
        other => {
            return Err(Error::VectorStore(format!(
                "collection {name} exists with vectors {other:?}; expected one unnamed {DIM}-d cosine vector"
            )))
        }
    }
    let sparse = params
        .and_then(|p| p.sparse_vectors_config.as_ref())
        .and_then(|s| s.map.get(SPARSE));
    match sparse {
        Some(s) if s.modifier == Some(Modifier::Idf as i32) => Ok(()),
        other => Err(Error::VectorStore(format!(
            "collection {name} exists with sparse vector {SPARSE} = {other:?}; expected one with \
             the IDF modifier (a collection made by an older anjeon: delete it and ingest again)"
        ))),
    }
}

/// The one translation of a [`SearchFilter`] into a Qdrant filter; `None` admits nothing.
fn server_filter(filter: &SearchFilter) -> Option<Filter> {
    let parts = FilterParts::of(filter)?;
    let mut must = vec![Condition::matches(keys::ACCESS, parts.access)];
    if !parts.kinds.is_empty() {
        must.push(Condition::matches(keys::KIND, parts.kinds.to_vec()));
    }
    if let Some(law) = parts.law {
        must.push(keyword(keys::LAW, law));
    }
    if let Some(doc) = parts.doc {
        must.push(keyword(keys::DOC, doc));
    }
    if parts.date_from.is_some() || parts.date_to.is_some() {
        // YYYYMMDD integers are exact in f64, so the float range compares them exactly.
        must.push(Condition::range(
            keys::DATE,
            Range {
                gte: parts.date_from.map(|d| d as f64),
                lte: parts.date_to.map(|d| d as f64),
                lt: None,
                gt: None,
            },
        ));
    }
    Some(Filter::must(must))
}

fn doc_filter(doc: &str) -> Filter {
    Filter::must([keyword(keys::DOC, doc)])
}

/// An exact match of one value on a keyword field, spelt out: `Condition::matches` turns a
/// `String` that contains whitespace into a full-text match, under which the document
/// "…보도자료 ff.hwp" also matched "…보도자료 ff.hwpx" (and deleting one deleted both).
fn keyword(field: &str, value: &str) -> Condition {
    Condition::matches(field, MatchValue::Keyword(value.to_owned()))
}

fn server_payload(p: &PointPayload) -> Payload {
    let mut payload = Payload::with_capacity(5);
    payload.insert(keys::DOC, p.doc.as_str());
    payload.insert(keys::KIND, p.kind.as_str());
    payload.insert(keys::ACCESS, p.access.as_str());
    if let Some(law) = &p.law {
        payload.insert(keys::LAW, law.as_str());
    }
    if let Some(date) = p.date {
        payload.insert(keys::DATE, date);
    }
    payload
}

fn num_id(id: Option<PointId>) -> Result<u64> {
    match id.and_then(|id| id.point_id_options) {
        Some(PointIdOptions::Num(n)) => Ok(n),
        other => Err(Error::VectorStore(format!(
            "unexpected point id {other:?}: this store only writes numeric ids"
        ))),
    }
}

impl ServerStore {
    /// Runs a point query and returns its hits, best first.
    fn query(&self, request: QueryPointsBuilder) -> Result<Vec<VectorHit>> {
        let client = self.client.clone();
        self.run(async move {
            let response = client
                .query(request)
                .await
                .map_err(|e| store_error("search", e))?;
            response
                .result
                .into_iter()
                .map(|p| {
                    Ok(VectorHit {
                        id: num_id(p.id)?,
                        score: p.score,
                    })
                })
                .collect()
        })
    }

    /// Deletes the selected points and waits until the server has applied it.
    fn delete(
        &self,
        selector: impl Into<qdrant_client::qdrant::points_selector::PointsSelectorOneOf>,
        what: &'static str,
    ) -> Result<()> {
        let client = self.client.clone();
        let request = DeletePointsBuilder::new(&self.collection)
            .points(selector)
            .wait(true);
        self.run(async move {
            client
                .delete_points(request)
                .await
                .map(|_| ())
                .map_err(|e| store_error(what, e))
        })
    }
}

impl VectorStore for ServerStore {
    fn upsert(&self, points: Vec<VectorPoint>) -> Result<()> {
        let mut structs = Vec::with_capacity(points.len());
        for p in points {
            check_vector(&p.vector)?;
            let vectors: Vectors = match p.sparse {
                Some(sparse) => {
                    check_sparse(&sparse)?;
                    HashMap::from([
                        (String::new(), Vector::new_dense(p.vector)),
                        (
                            SPARSE.to_owned(),
                            Vector::new_sparse(sparse.indices, sparse.values),
                        ),
                    ])
                    .into()
                }
                None => p.vector.into(),
            };
            structs.push(PointStruct::new(p.id, vectors, server_payload(&p.payload)));
        }
        let client = self.client.clone();
        let name = self.collection.clone();
        self.run(async move {
            while !structs.is_empty() {
                let rest = structs.split_off(structs.len().min(UPSERT_BATCH));
                let batch = std::mem::replace(&mut structs, rest);
                client
                    .upsert_points(UpsertPointsBuilder::new(&name, batch).wait(true))
                    .await
                    .map_err(|e| store_error("upsert", e))?;
            }
            Ok(())
        })
    }

    fn delete_doc(&self, doc: &str) -> Result<()> {
        self.delete(doc_filter(doc), "delete by document")
    }

    fn delete_ids(&self, ids: &[u64]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        self.delete(PointsIdsList::from(ids.to_vec()), "delete by id")
    }

    fn search(&self, vector: &[f32], k: usize, filter: &SearchFilter) -> Result<Vec<VectorHit>> {
        check_vector(vector)?;
        let Some(filter) = server_filter(filter) else {
            return Ok(Vec::new());
        };
        if k == 0 {
            return Ok(Vec::new());
        }
        let request = QueryPointsBuilder::new(&self.collection)
            .query(vector.to_vec())
            .filter(filter)
            .limit(k as u64)
            .params(SearchParamsBuilder::default().hnsw_ef(HNSW_EF_SEARCH.max(k as u64)))
            .with_payload(false);
        self.query(request)
    }

    fn score(&self, vector: &[f32], ids: &[u64], filter: &SearchFilter) -> Result<Vec<VectorHit>> {
        check_vector(vector)?;
        let Some(mut filter) = server_filter(filter) else {
            return Ok(Vec::new());
        };
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        filter.must.push(Condition::has_id(ids.iter().copied()));
        let request = QueryPointsBuilder::new(&self.collection)
            .query(vector.to_vec())
            .filter(filter)
            .limit(ids.len() as u64)
            .params(SearchParamsBuilder::default().exact(true))
            .with_payload(false);
        self.query(request)
    }

    fn search_sparse(
        &self,
        query: &SparseVector,
        k: usize,
        filter: &SearchFilter,
    ) -> Result<Vec<VectorHit>> {
        check_sparse(query)?;
        let Some(filter) = server_filter(filter) else {
            return Ok(Vec::new());
        };
        if k == 0 || query.is_empty() {
            return Ok(Vec::new());
        }
        let input = VectorInput::new_sparse(query.indices.clone(), query.values.clone());
        let request = QueryPointsBuilder::new(&self.collection)
            .query(Query::new_nearest(input))
            .using(SPARSE)
            .filter(filter)
            .limit(k as u64)
            .with_payload(false);
        self.query(request)
    }

    /// `open` refuses a collection without the sparse vector.
    fn has_sparse(&self) -> bool {
        true
    }

    fn ids_of_doc(&self, doc: &str) -> Result<Vec<u64>> {
        let client = self.client.clone();
        let name = self.collection.clone();
        let filter = doc_filter(doc);
        self.run(async move {
            let mut ids = Vec::new();
            let mut offset: Option<PointId> = None;
            loop {
                let mut request = ScrollPointsBuilder::new(&name)
                    .filter(filter.clone())
                    .limit(SCROLL_PAGE)
                    .with_payload(false);
                if let Some(offset) = offset.take() {
                    request = request.offset(offset);
                }
                let page = client
                    .scroll(request)
                    .await
                    .map_err(|e| store_error("scroll", e))?;
                for point in page.result {
                    ids.push(num_id(point.id)?);
                }
                match page.next_page_offset {
                    Some(next) => offset = Some(next),
                    None => return Ok(ids),
                }
            }
        })
    }

    fn count(&self, filter: &SearchFilter) -> Result<u64> {
        let Some(filter) = server_filter(filter) else {
            return Ok(0);
        };
        let client = self.client.clone();
        let request = CountPointsBuilder::new(&self.collection)
            .filter(filter)
            .exact(true);
        self.run(async move {
            let response = client
                .count(request)
                .await
                .map_err(|e| store_error("count", e))?;
            Ok(response.result.map(|r| r.count).unwrap_or(0))
        })
    }

    /// Every write above waits for the server to apply it (`wait=true`), and the server
    /// logs it to its own WAL first, so there is nothing left to push from this side.
    fn flush(&self) -> Result<()> {
        Ok(())
    }

    /// The server indexes in the background according to the collection's optimizer config.
    fn optimize(&self) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the shared suite against a real server when `ANJEON_QDRANT_URL` names one, in a
    /// throw-away collection; otherwise says it was skipped.
    #[test]
    fn server_suite() {
        let Ok(url) = std::env::var("ANJEON_QDRANT_URL") else {
            eprintln!("server_suite skipped: set ANJEON_QDRANT_URL (e.g. http://localhost:6334)");
            return;
        };
        let api_key = std::env::var("ANJEON_QDRANT_API_KEY").ok();
        let collection = format!(
            "anjeon_test_{}_{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default()
        );
        let store = ServerStore::open(&url, api_key.as_deref(), &collection).expect("open");
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            crate::vector::suite::run_all(&store)
        }));
        store.drop_collection().expect("drop test collection");
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
    }
}
