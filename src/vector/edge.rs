//! Embedded vector store: Qdrant's own shard engine (crate `qdrant-edge`) running in-process
//! on a local directory, created on first use and reopened from disk afterwards.
//!
//! Durability: qdrant-edge 0.7 appends every update to its WAL but never replays that WAL on
//! load, so what survives a killed process is exactly what the last [`VectorStore::flush`]
//! wrote to the segments. Writes after the last flush may be lost; callers that need to know
//! (the ingest) check with [`VectorStore::ids_of_doc`] after a restart.
//!
//! Vector indexes: new points go to a plain (full-scan) segment; [`VectorStore::optimize`] runs
//! Qdrant's optimizers, which turn segments above the indexing threshold into HNSW segments.

use std::collections::HashMap;
use std::panic::{self, AssertUnwindSafe};
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use qdrant_edge::external::ordered_float::OrderedFloat;
use qdrant_edge::external::serde_json::{Map, Value};
use qdrant_edge::{
    AcornSearchParams, Condition, CountRequest, CreateIndex, Distance, EdgeConfig,
    EdgeOptimizersConfig, EdgeShard, EdgeSparseVectorParams, EdgeVectorParams, FieldCondition,
    FieldIndexOperations, Filter, HasIdCondition, HnswIndexConfig, JsonPath, Match, Modifier,
    NamedQuery, Payload, PayloadFieldSchema, PayloadSchemaType, PointId, PointInsertOperations,
    PointOperations, PointStructPersisted, QueryEnum, Range, ScrollRequest, SearchParams,
    SearchRequest, UpdateOperation, Vector, VectorInternal, VectorStructPersisted, Vectors,
    WithPayloadInterface, WithVector, DEFAULT_VECTOR_NAME,
};

use super::{
    check_sparse, check_vector, keys, store_error, FilterParts, SparseVector, VectorHit,
    VectorPoint, VectorStore, DIM, SPARSE,
};
use crate::filter::{PointPayload, SearchFilter};
use crate::{Error, Result};

/// HNSW graph degree and build beam: Qdrant's defaults. On the 100k benchmark (clustered
/// 384-d vectors) they build in 1.5-3.5 minutes on 2 cores and reach the recall below.
const HNSW_M: usize = 16;
const HNSW_EF_CONSTRUCT: usize = 100;
/// Query-time beam width (raised to k when k is larger). Measured at 100k points with an
/// access filter: ef 64 → p50 0.5 ms, recall@10 0.89; ef 128 → p50 1.1 ms, recall@10 0.93-0.95.
/// 128 buys recall inside the ~3 ms the dense side may spend.
const HNSW_EF_SEARCH: usize = 128;
/// ACORN (two-hop expansion for filters admitting under 40 % of a segment) lifts recall@10
/// of mid-selectivity filters from 0.64-0.86 to 0.99, but costs 7-13 ms at 100k points:
/// off, so hybrid search stays within budget and BM25 (filtered exactly) covers the gap.
/// Raising Qdrant's full-scan threshold to answer such filters exactly cost 8.5 ms too.
const USE_ACORN: bool = false;
/// Segments above this many KiB of vectors get an HNSW index (about 6.6k points of 384 f32).
/// Below it a full scan is as fast as the graph.
const INDEXING_THRESHOLD_KB: usize = 10_000;
/// Page size when listing the ids of a document.
const SCROLL_PAGE: usize = 1_000;

pub struct EdgeStore {
    shard: EdgeShard,
    /// Serialises writes, flushes and optimisation. `EdgeShard::flush` takes its WAL and
    /// segment locks with `try_lock` and panics when a concurrent update holds them; searches
    /// need no such guard, Qdrant's segment locks cover them.
    writer: Mutex<()>,
    /// Whether the store has the sparse vector (stores made before it existed do not).
    sparse: bool,
}

impl EdgeStore {
    /// Opens the store at `path`, creating the directory and an empty shard on first use.
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_with(path, edge_config())
    }

    /// [`EdgeStore::open`] with a given engine configuration (tests shrink the thresholds).
    fn open_with(path: &Path, mut config: EdgeConfig) -> Result<Self> {
        std::fs::create_dir_all(path).map_err(|e| Error::io(path, e))?;
        let opening = |e| store_error(&format!("opening {}", path.display()), e);
        // Segments written before points carried sparse vectors refuse a config that has
        // one (and qdrant-edge 0.7 cannot add one to them cleanly: the segments it extends
        // lack the IDF modifier and refuse the next open), so such a store opens as it is.
        let sparse = !lacks_sparse_vector(path)?;
        if !sparse {
            tracing::warn!(
                "the vector store under {} predates sparse vectors: it keeps working for dense \
                 search, but qdrant.lexical needs a new one (move it away and ingest again)",
                path.display()
            );
            config.sparse_vectors.clear();
        }
        // `load` with a config both creates a fresh shard and reopens an existing one, and
        // rewrites `edge_config.json`, so tuning changes here reach existing stores.
        let shard = EdgeShard::load(path, Some(config)).map_err(opening)?;
        let store = EdgeStore {
            shard,
            writer: Mutex::new(()),
            sparse,
        };
        store.ensure_payload_indexes()?;
        Ok(store)
    }

    fn write_lock(&self) -> MutexGuard<'_, ()> {
        // The guarded value is `()`: a panic elsewhere leaves nothing inconsistent behind.
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn update(&self, operation: UpdateOperation) -> Result<()> {
        let _guard = self.write_lock();
        self.shard
            .update(operation)
            .map_err(|e| store_error("update", e))
    }

    /// Flushes WAL and segments; the caller holds the writer lock.
    fn flush_locked(&self) -> Result<()> {
        // qdrant-edge reports flush I/O errors by panicking; turn that into an error so a full
        // disk fails the ingest instead of the process.
        panic::catch_unwind(AssertUnwindSafe(|| self.shard.flush()))
            .map_err(|p| store_error("flush", panic_message(p.as_ref())))
    }

    /// [`VectorStore::search`] with explicit HNSW beam width and ACORN switch, so the
    /// benchmark can weigh recall against latency.
    fn search_tuned(
        &self,
        vector: &[f32],
        k: usize,
        filter: &SearchFilter,
        ef: usize,
        acorn: bool,
    ) -> Result<Vec<VectorHit>> {
        check_vector(vector)?;
        let params = SearchParams {
            hnsw_ef: Some(ef.max(k)),
            acorn: Some(AcornSearchParams {
                enable: acorn,
                max_selectivity: None,
            }),
            ..SearchParams::default()
        };
        let query = NamedQuery::default_dense(vector.to_vec());
        self.nearest(query, Some(params), k, filter, None)
    }

    /// The `k` nearest points to a (dense or sparse) query among those `filter` admits (and,
    /// given `only`, among those points).
    fn nearest(
        &self,
        query: NamedQuery<VectorInternal>,
        params: Option<SearchParams>,
        k: usize,
        filter: &SearchFilter,
        only: Option<&[u64]>,
    ) -> Result<Vec<VectorHit>> {
        let Some(mut filter) = edge_filter(filter) else {
            return Ok(Vec::new());
        };
        if let Some(ids) = only {
            let ids: HasIdCondition = ids.iter().map(|&id| PointId::NumId(id)).collect();
            filter
                .must
                .get_or_insert_with(Vec::new)
                .push(Condition::HasId(ids));
        }
        if k == 0 {
            return Ok(Vec::new());
        }
        let request = SearchRequest {
            query: QueryEnum::Nearest(query),
            filter: Some(filter),
            params,
            limit: k,
            offset: 0,
            with_payload: Some(WithPayloadInterface::Bool(false)),
            with_vector: Some(WithVector::Bool(false)),
            score_threshold: None,
        };
        let points = self
            .shard
            .search(request)
            .map_err(|e| store_error("search", e))?;
        points
            .into_iter()
            .map(|p| {
                Ok(VectorHit {
                    id: num_id(p.id)?,
                    score: p.score,
                })
            })
            .collect()
    }

    /// Creates the payload indexes the filters use, skipping those already built, so that
    /// reopening a large store does not rebuild them.
    fn ensure_payload_indexes(&self) -> Result<()> {
        let existing = self.shard.info().payload_schema;
        let wanted = keys::KEYWORDS
            .iter()
            .map(|k| (*k, PayloadSchemaType::Keyword))
            .chain([(keys::DATE, PayloadSchemaType::Integer)]);
        for (key, schema) in wanted {
            let path = key_path(key);
            if existing.contains_key(&path) {
                continue;
            }
            self.update(UpdateOperation::FieldIndexOperation(
                FieldIndexOperations::CreateIndex(CreateIndex {
                    field_name: path,
                    field_schema: Some(PayloadFieldSchema::FieldType(schema)),
                }),
            ))?;
        }
        Ok(())
    }
}

/// Whether `path` holds a store whose saved config has no sparse vector (one written before
/// passages carried BM25 weights).
fn lacks_sparse_vector(path: &Path) -> Result<bool> {
    let file = path.join("edge_config.json");
    let bytes = match std::fs::read(&file) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(Error::io(&file, e)),
    };
    let saved: EdgeConfig = qdrant_edge::external::serde_json::from_slice(&bytes)
        .map_err(|e| store_error(&format!("reading {}", file.display()), e))?;
    Ok(!saved.sparse_vectors.contains_key(SPARSE))
}

fn edge_config() -> EdgeConfig {
    let hnsw = HnswIndexConfig {
        m: HNSW_M,
        ef_construct: HNSW_EF_CONSTRUCT,
        ..HnswIndexConfig::default()
    };
    EdgeConfig {
        // Payloads are five short fields; keeping them in RAM makes filtering cheap.
        on_disk_payload: false,
        vectors: HashMap::from([(
            DEFAULT_VECTOR_NAME.to_owned(),
            EdgeVectorParams {
                size: DIM,
                distance: Distance::Cosine,
                on_disk: Some(false),
                multivector_config: None,
                datatype: None,
                quantization_config: None,
                hnsw_config: None,
            },
        )]),
        // BM25 term weights; Qdrant multiplies each query dimension by its IDF over the store.
        sparse_vectors: HashMap::from([(
            SPARSE.to_owned(),
            EdgeSparseVectorParams {
                full_scan_threshold: None,
                on_disk: Some(false),
                modifier: Some(Modifier::Idf),
                datatype: None,
            },
        )]),
        hnsw_config: hnsw,
        quantization_config: None,
        optimizers: EdgeOptimizersConfig {
            indexing_threshold: Some(INDEXING_THRESHOLD_KB),
            ..EdgeOptimizersConfig::default()
        },
        wal_options: None,
    }
}

/// The one translation of a [`SearchFilter`] into a qdrant-edge filter; `None` admits nothing.
fn edge_filter(filter: &SearchFilter) -> Option<Filter> {
    let parts = FilterParts::of(filter)?;
    let mut must = vec![keyword_any(keys::ACCESS, parts.access)];
    if !parts.kinds.is_empty() {
        must.push(keyword_any(keys::KIND, parts.kinds.to_vec()));
    }
    if let Some(law) = parts.law {
        must.push(keyword_eq(keys::LAW, law));
    }
    if let Some(doc) = parts.doc {
        must.push(keyword_eq(keys::DOC, doc));
    }
    if parts.date_from.is_some() || parts.date_to.is_some() {
        // YYYYMMDD integers are exact in f64, so the float range compares them exactly.
        let bound = |d: Option<i64>| d.map(|d| OrderedFloat(d as f64));
        must.push(Condition::Field(FieldCondition::new_range(
            key_path(keys::DATE),
            Range {
                gte: bound(parts.date_from),
                lte: bound(parts.date_to),
                lt: None,
                gt: None,
            },
        )));
    }
    Some(Filter {
        must: Some(must),
        ..Filter::new()
    })
}

fn keyword_any(key: &str, values: Vec<String>) -> Condition {
    Condition::Field(FieldCondition::new_match(
        key_path(key),
        Match::from(values),
    ))
}

fn keyword_eq(key: &str, value: &str) -> Condition {
    Condition::Field(FieldCondition::new_match(
        key_path(key),
        Match::from(value.to_owned()),
    ))
}

/// A top-level payload key as a JSON path; built directly because `JsonPath::new` is
/// test-only upstream and parsing would make a constant key fallible.
fn key_path(key: &str) -> JsonPath {
    JsonPath {
        first_key: key.to_owned(),
        rest: Vec::new(),
    }
}

fn doc_filter(doc: &str) -> Filter {
    Filter::new_must(keyword_eq(keys::DOC, doc))
}

fn edge_payload(p: &PointPayload) -> Payload {
    let mut map = Map::new();
    map.insert(keys::DOC.into(), Value::from(p.doc.as_str()));
    map.insert(keys::KIND.into(), Value::from(p.kind.as_str()));
    map.insert(keys::ACCESS.into(), Value::from(p.access.as_str()));
    if let Some(law) = &p.law {
        map.insert(keys::LAW.into(), Value::from(law.as_str()));
    }
    if let Some(date) = p.date {
        map.insert(keys::DATE.into(), Value::from(date));
    }
    Payload(map)
}

fn num_id(id: PointId) -> Result<u64> {
    match id {
        PointId::NumId(n) => Ok(n),
        PointId::Uuid(u) => Err(Error::VectorStore(format!(
            "unexpected UUID point id {u}: this store only writes numeric ids"
        ))),
    }
}

impl VectorStore for EdgeStore {
    fn upsert(&self, points: Vec<VectorPoint>) -> Result<()> {
        if points.is_empty() {
            return Ok(());
        }
        let mut persisted = Vec::with_capacity(points.len());
        for p in points {
            check_vector(&p.vector)?;
            let vectors = match p.sparse.filter(|_| self.sparse) {
                Some(sparse) => {
                    check_sparse(&sparse)?;
                    let sparse = Vector::new_sparse(sparse.indices, sparse.values)
                        .map_err(|e| Error::InvalidInput(format!("sparse vector: {e}")))?;
                    Vectors::new_named([
                        (DEFAULT_VECTOR_NAME.to_owned(), Vector::new_dense(p.vector)),
                        (SPARSE.to_owned(), sparse),
                    ])
                }
                None => Vectors::from(p.vector),
            };
            persisted.push(PointStructPersisted {
                id: PointId::NumId(p.id),
                vector: VectorStructPersisted::from(vectors.0),
                payload: Some(edge_payload(&p.payload)),
            });
        }
        self.update(UpdateOperation::PointOperation(
            PointOperations::UpsertPoints(PointInsertOperations::PointsList(persisted)),
        ))
    }

    fn delete_doc(&self, doc: &str) -> Result<()> {
        self.update(UpdateOperation::PointOperation(
            PointOperations::DeletePointsByFilter(doc_filter(doc)),
        ))
    }

    fn delete_ids(&self, ids: &[u64]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        self.update(UpdateOperation::PointOperation(
            PointOperations::DeletePoints {
                ids: ids.iter().map(|id| PointId::NumId(*id)).collect(),
            },
        ))
    }

    fn search(&self, vector: &[f32], k: usize, filter: &SearchFilter) -> Result<Vec<VectorHit>> {
        self.search_tuned(vector, k, filter, HNSW_EF_SEARCH, USE_ACORN)
    }

    fn score(&self, vector: &[f32], ids: &[u64], filter: &SearchFilter) -> Result<Vec<VectorHit>> {
        check_vector(vector)?;
        // a full scan of the few points named: exact scores
        let params = SearchParams {
            exact: true,
            ..SearchParams::default()
        };
        let query = NamedQuery::default_dense(vector.to_vec());
        self.nearest(query, Some(params), ids.len(), filter, Some(ids))
    }

    fn has_sparse(&self) -> bool {
        self.sparse
    }

    fn search_sparse(
        &self,
        query: &SparseVector,
        k: usize,
        filter: &SearchFilter,
    ) -> Result<Vec<VectorHit>> {
        check_sparse(query)?;
        if !self.sparse {
            return Err(Error::VectorStore(
                "this vector store was made before passages carried sparse vectors; \
                 move it away and ingest again to search BM25 in Qdrant"
                    .into(),
            ));
        }
        if query.is_empty() {
            return Ok(Vec::new());
        }
        let vector = Vector::new_sparse(query.indices.clone(), query.values.clone())
            .map_err(|e| Error::InvalidInput(format!("sparse query: {e}")))?;
        self.nearest(NamedQuery::new(vector.0, SPARSE), None, k, filter, None)
    }

    fn ids_of_doc(&self, doc: &str) -> Result<Vec<u64>> {
        let mut ids = Vec::new();
        let mut offset = None;
        loop {
            let (records, next) = self
                .shard
                .scroll(ScrollRequest {
                    offset,
                    limit: Some(SCROLL_PAGE),
                    filter: Some(doc_filter(doc)),
                    with_payload: Some(WithPayloadInterface::Bool(false)),
                    with_vector: WithVector::Bool(false),
                    order_by: None,
                })
                .map_err(|e| store_error("scroll", e))?;
            for r in records {
                ids.push(num_id(r.id)?);
            }
            match next {
                Some(next) => offset = Some(next),
                None => return Ok(ids),
            }
        }
    }

    fn count(&self, filter: &SearchFilter) -> Result<u64> {
        let Some(filter) = edge_filter(filter) else {
            return Ok(0);
        };
        let n = self
            .shard
            .count(CountRequest {
                filter: Some(filter),
                exact: true,
            })
            .map_err(|e| store_error("count", e))?;
        Ok(n as u64)
    }

    fn flush(&self) -> Result<()> {
        let _guard = self.write_lock();
        self.flush_locked()
    }

    fn optimize(&self) -> Result<()> {
        let _guard = self.write_lock();
        self.shard
            .optimize()
            .map_err(|e| store_error("optimize", e))?;
        // The optimisers swap segments on disk; make the new layout the one a restart sees.
        self.flush_locked()
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic without message".to_owned())
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use super::*;
    use crate::filter::Access;
    use crate::vector::suite::{everyone, payload, point, public, tilted};

    #[test]
    fn edge_suite() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = EdgeStore::open(dir.path()).expect("open");
        crate::vector::suite::run_all(&store);
    }

    /// A store written before points carried sparse vectors (its config has none) opens and
    /// works as before; sparse weights are not stored and a sparse search says why.
    #[test]
    fn a_store_without_the_sparse_vector_still_opens() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let mut old = edge_config();
            old.sparse_vectors.clear();
            let shard = EdgeShard::load(dir.path(), Some(old)).expect("old store");
            let store = EdgeStore {
                shard,
                writer: Mutex::new(()),
                sparse: false,
            };
            store
                .upsert(vec![point(
                    1,
                    tilted(0, 1, 0.0),
                    payload("old.md", "statute", Access::Public),
                )])
                .expect("old upsert");
            store.flush().expect("flush");
        }
        for _ in 0..2 {
            let store = EdgeStore::open(dir.path()).expect("open");
            assert!(!store.has_sparse());
            store
                .upsert(vec![crate::vector::suite::sparse_point(
                    2,
                    &[(5, 1.0)],
                    payload("new.md", "statute", Access::Public),
                )])
                .expect("upsert with sparse weights");
            store.flush().expect("flush");
            let dense = store
                .search(&tilted(0, 1, 0.0), 10, &public())
                .expect("search");
            assert_eq!(dense.len(), 2, "{dense:?}");
            let q = SparseVector::from_pairs(vec![(5, 1.0)]);
            let err = store.search_sparse(&q, 10, &public()).unwrap_err();
            assert!(err.to_string().contains("ingest again"), "{err}");
        }
        let fresh = tempfile::tempdir().expect("tempdir");
        assert!(EdgeStore::open(fresh.path()).expect("open").has_sparse());
    }

    #[test]
    fn reopen_keeps_points_and_indexes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let q = tilted(0, 1, 0.0);
        {
            let store = EdgeStore::open(dir.path()).expect("open");
            store
                .upsert(vec![
                    point(
                        1,
                        tilted(0, 1, 0.1),
                        payload("a.pdf", "pdf", Access::Public),
                    ),
                    point(
                        2,
                        tilted(0, 1, 0.0),
                        payload("a.pdf", "pdf", Access::Internal),
                    ),
                    point(
                        3,
                        tilted(0, 1, 0.5),
                        payload("b.pdf", "pdf", Access::Public),
                    ),
                ])
                .expect("upsert");
            store.delete_ids(&[3]).expect("delete");
            store.flush().expect("flush");
        }
        let store = EdgeStore::open(dir.path()).expect("reopen");
        // The WAL holds an exclusive lock on its directory: a second writer is refused.
        assert!(EdgeStore::open(dir.path()).is_err(), "opened twice");
        assert_eq!(store.count(&everyone()).expect("count"), 2);
        let hits = store.search(&q, 10, &public()).expect("search");
        assert_eq!(hits.iter().map(|h| h.id).collect::<Vec<_>>(), vec![1]);
        let schema = store.shard.info().payload_schema;
        for key in keys::KEYWORDS.iter().chain([&keys::DATE]) {
            assert!(schema.contains_key(&key_path(key)), "index on {key} lost");
        }
        // Still writable after reopening: new operations must not lose to stale versions.
        store
            .upsert(vec![point(
                1,
                tilted(1, 0, 0.0),
                payload("a.pdf", "pdf", Access::Internal),
            )])
            .expect("upsert after reopen");
        assert!(store.search(&q, 10, &public()).expect("search").is_empty());
    }

    #[test]
    fn optimize_builds_hnsw_and_survives_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        // The production thresholds scaled down 10× and a narrower build beam, so the graph
        // (and its payload subgraphs, and a filtered search that walks it) is built from 1,200
        // points rather than 8,000: Qdrant builds it on low-priority threads, which other
        // tests running beside this one starve.
        let small = || {
            let mut config = edge_config();
            config.optimizers.indexing_threshold = Some(INDEXING_THRESHOLD_KB / 10);
            config.hnsw_config.full_scan_threshold /= 10;
            config.hnsw_config.ef_construct = HNSW_EF_CONSTRUCT / 4;
            config
        };
        let n = 1_200u64;
        let points: Vec<_> = (0..n)
            .map(|i| {
                let access = if i.is_multiple_of(5) {
                    Access::Internal
                } else {
                    Access::Public
                };
                point(
                    i,
                    random_unit(i),
                    payload(&format!("d{}", i / 100), "pdf", access),
                )
            })
            .collect();
        let q = points[42].vector.clone();
        {
            let store = EdgeStore::open_with(dir.path(), small()).expect("open");
            for chunk in points.chunks(500) {
                store.upsert(chunk.to_vec()).expect("upsert");
            }
            store.optimize().expect("optimize");
            let info = store.shard.info();
            print_disk_use(dir.path());
            assert!(
                info.indexed_vectors_count >= n as usize,
                "not indexed: {info:?}"
            );
            assert_eq!(store.search(&q, 1, &public()).expect("search")[0].id, 42);
        }
        let store = EdgeStore::open_with(dir.path(), small()).expect("reopen");
        assert!(store.shard.info().indexed_vectors_count >= n as usize);
        assert_eq!(store.count(&everyone()).expect("count"), n);
        assert_eq!(store.count(&public()).expect("count"), n - n / 5);
        let hits = store.search(&q, 10, &public()).expect("search");
        assert_eq!(hits[0].id, 42);
        assert!(
            hits.iter().all(|h| !h.id.is_multiple_of(5)),
            "internal point leaked: {hits:?}"
        );
        // Updating a point that lives in an indexed segment moves it, without duplicates.
        store
            .upsert(vec![point(
                42,
                tilted(3, 4, 0.0),
                payload("moved", "pdf", Access::Public),
            )])
            .expect("upsert");
        assert_eq!(store.count(&everyone()).expect("count"), n);
        assert_eq!(store.ids_of_doc("moved").expect("ids"), vec![42]);
    }

    #[test]
    fn concurrent_search_during_writes_and_flushes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(EdgeStore::open(dir.path()).expect("open"));
        let writer = {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                for round in 0..40u64 {
                    let points = (0..25)
                        .map(|i| {
                            let id = round * 25 + i;
                            point(id, random_unit(id), payload("c.pdf", "pdf", Access::Public))
                        })
                        .collect();
                    store.upsert(points).expect("upsert");
                    store.flush().expect("flush");
                }
            })
        };
        let readers: Vec<_> = (0..2)
            .map(|r| {
                let store = Arc::clone(&store);
                std::thread::spawn(move || {
                    for i in 0..200 {
                        store
                            .search(&random_unit(r * 1_000 + i), 5, &public())
                            .expect("search");
                        store.count(&public()).expect("count");
                    }
                })
            })
            .collect();
        writer.join().expect("writer thread");
        for r in readers {
            r.join().expect("reader thread");
        }
        assert_eq!(store.count(&everyone()).expect("count"), 1_000);
    }

    const CRASH_DIR_ENV: &str = "ANJEON_VECTOR_CRASH_CHILD_DIR";
    const FLUSHED_MARK: &str = "ANJEON-FLUSHED";
    const FLUSHED_POINTS: u64 = 500;

    /// Child half of `sigkill_after_flush_keeps_points`; a no-op in a normal test run.
    /// Writes and flushes, says so on stdout, then keeps writing unflushed points until killed.
    #[test]
    fn crash_child() {
        let Ok(dir) = std::env::var(CRASH_DIR_ENV) else {
            return;
        };
        let store = EdgeStore::open(Path::new(&dir)).expect("open");
        let points = (0..FLUSHED_POINTS)
            .map(|i| {
                point(
                    i,
                    random_unit(i),
                    payload("flushed.pdf", "pdf", Access::Public),
                )
            })
            .collect();
        store.upsert(points).expect("upsert");
        store.flush().expect("flush");
        println!("{FLUSHED_MARK}");
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut id = 1_000_000;
        while Instant::now() < deadline {
            let batch = (id..id + 50)
                .map(|i| {
                    point(
                        i,
                        random_unit(i),
                        payload("unflushed.pdf", "pdf", Access::Public),
                    )
                })
                .collect();
            store.upsert(batch).expect("upsert");
            id += 50;
        }
        // Not killed in time: fail loudly rather than pass as a normal test.
        std::process::abort();
    }

    #[test]
    fn sigkill_after_flush_keeps_points() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut child = Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "--exact",
                "vector::edge::tests::crash_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CRASH_DIR_ENV, dir.path())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().expect("child stdout");
        let flushed = BufReader::new(stdout)
            .lines()
            .map_while(|l| l.ok())
            .any(|l| l.contains(FLUSHED_MARK));
        if flushed {
            // Let it get well into unflushed writes, so the kill lands mid-update.
            std::thread::sleep(Duration::from_millis(300));
        }
        child.kill().expect("SIGKILL child");
        child.wait().expect("reap child");
        assert!(flushed, "child never reported its flush");

        let store = EdgeStore::open(dir.path()).expect("reopen after SIGKILL");
        let mut ids = store.ids_of_doc("flushed.pdf").expect("ids");
        ids.sort_unstable();
        assert_eq!(ids, (0..FLUSHED_POINTS).collect::<Vec<_>>());
        let hits = store.search(&random_unit(7), 1, &public()).expect("search");
        assert_eq!(hits[0].id, 7);
        let lost_tail = store.ids_of_doc("unflushed.pdf").expect("ids").len();
        eprintln!("unflushed points that survived SIGKILL: {lost_tail}");
        // The reopened store takes new writes and makes them durable again.
        store
            .upsert(vec![point(
                5,
                tilted(0, 1, 0.0),
                payload("after.pdf", "pdf", Access::Public),
            )])
            .expect("upsert after crash");
        store.flush().expect("flush after crash");
        drop(store);
        let store = EdgeStore::open(dir.path()).expect("second reopen");
        assert_eq!(store.ids_of_doc("after.pdf").expect("ids"), vec![5]);
        assert_eq!(
            store.ids_of_doc("flushed.pdf").expect("ids").len(),
            FLUSHED_POINTS as usize - 1
        );
    }

    /// Deterministic pseudo-random unit vector (splitmix64 → uniform in [-1, 1), normalised);
    /// random directions are the hard case for HNSW recall, real embeddings cluster.
    fn random_unit(seed: u64) -> Vec<f32> {
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(1);
        let mut next = || {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            ((z >> 40) as f32 / (1u64 << 23) as f32) - 1.0
        };
        let v: Vec<f32> = (0..DIM).map(|_| next()).collect();
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.into_iter().map(|x| x / norm).collect()
    }

    /// Throughput, latency and recall at `ANJEON_VECTOR_BENCH_N` points (default 10 000), on
    /// uniform random vectors (`ANJEON_VECTOR_BENCH_DATA=random`, HNSW's worst case) or on
    /// clustered ones (default; closer to text embeddings, which crowd around topics):
    /// `ANJEON_VECTOR_BENCH_N=100000 cargo test -p anjeon --lib bench_edge -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn bench_edge() {
        let n: u64 = std::env::var("ANJEON_VECTOR_BENCH_N")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(10_000);
        let clustered = std::env::var("ANJEON_VECTOR_BENCH_DATA").as_deref() != Ok("random");
        // Point i sits near topic i % TOPICS; a query near topic t.
        const TOPICS: u64 = 1_000;
        let make = |seed: u64, topic: u64| -> Vec<f32> {
            if !clustered {
                return random_unit(seed);
            }
            let centre = random_unit(u64::MAX / 2 + topic);
            let noise = random_unit(seed);
            let v: Vec<f32> = centre
                .iter()
                .zip(&noise)
                .map(|(c, e)| c + 0.8 * e)
                .collect();
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.into_iter().map(|x| x / norm).collect()
        };
        let kinds = ["statute", "pdf", "safety_letter"];
        let dir = tempfile::tempdir().expect("tempdir");
        let store = EdgeStore::open(dir.path()).expect("open");
        let vectors: Vec<Vec<f32>> = (0..n).map(|i| make(i, i % TOPICS)).collect();
        let meta = |i: u64| PointPayload {
            doc: format!("doc{}", i / 50),
            kind: kinds[(i % 3) as usize].into(),
            law: None,
            access: if i.is_multiple_of(5) {
                Access::Internal
            } else {
                Access::Public
            },
            date: Some(20_000_101 + (i % 20) as i64 * 10_000),
        };

        let start = Instant::now();
        for chunk in (0..n).collect::<Vec<_>>().chunks(1_000) {
            let points = chunk
                .iter()
                .map(|&i| point(i, vectors[i as usize].clone(), meta(i)))
                .collect();
            store.upsert(points).expect("upsert");
        }
        store.flush().expect("flush");
        let upsert_s = start.elapsed().as_secs_f64();
        let start = Instant::now();
        store.optimize().expect("optimize");
        let optimize_s = start.elapsed().as_secs_f64();
        let info = store.shard.info();
        print_disk_use(dir.path());
        eprintln!(
            "n={n} clustered={clustered}: upsert+flush {upsert_s:.2}s = {:.0} points/s; \
             optimize {optimize_s:.1}s; {} segments, {} indexed vectors",
            n as f64 / upsert_s,
            info.segments_count,
            info.indexed_vectors_count,
        );

        let filters = [
            ("public", public()),
            (
                "public+statute",
                SearchFilter {
                    kinds: vec!["statute".into()],
                    ..public()
                },
            ),
            (
                "public+statute+date>=2010",
                SearchFilter {
                    kinds: vec!["statute".into()],
                    date_from: Some(20_100_101),
                    ..public()
                },
            ),
        ];
        let queries: Vec<Vec<f32>> = (0..500u64)
            .map(|q| make(u64::MAX - q, q * 7 % TOPICS))
            .collect();
        for (ef, acorn) in [(128, false), (64, false), (128, true)] {
            for (name, filter) in &filters {
                let mut times = Vec::with_capacity(queries.len());
                let mut found = 0usize;
                for (qi, q) in queries.iter().enumerate() {
                    let t = Instant::now();
                    let hits = store
                        .search_tuned(q, 10, filter, ef, acorn)
                        .expect("search");
                    times.push(t.elapsed());
                    if qi < 50 {
                        let exact = exact_top10(q, &vectors, |i| admitted(filter, &meta(i)));
                        found += hits.iter().filter(|h| exact.contains(&h.id)).count();
                    }
                }
                times.sort_unstable();
                eprintln!(
                    "n={n} ef={ef} acorn={acorn} filter={name}: p50 {:?} p99 {:?} recall@10 {:.3}",
                    times[times.len() / 2],
                    times[times.len() * 99 / 100],
                    found as f64 / 500.0
                );
            }
        }
    }

    fn admitted(filter: &SearchFilter, p: &PointPayload) -> bool {
        filter.access.contains(&p.access)
            && (filter.kinds.is_empty() || filter.kinds.contains(&p.kind))
            && filter
                .date_from
                .is_none_or(|from| p.date.is_some_and(|d| d >= from))
    }

    fn exact_top10(q: &[f32], vectors: &[Vec<f32>], keep: impl Fn(u64) -> bool) -> Vec<u64> {
        let mut scored: Vec<(f32, u64)> = vectors
            .iter()
            .enumerate()
            .filter(|(i, _)| keep(*i as u64))
            .map(|(i, v)| (v.iter().zip(q).map(|(a, b)| a * b).sum(), i as u64))
            .collect();
        scored.sort_unstable_by(|a, b| b.0.total_cmp(&a.0));
        scored.into_iter().take(10).map(|(_, i)| i).collect()
    }

    /// Prints how much disk the WAL and the segments of a store take.
    fn print_disk_use(dir: &Path) {
        let size_mib = |sub: &str| {
            walkdir::WalkDir::new(dir.join(sub))
                .into_iter()
                .filter_map(|e| e.ok()?.metadata().ok())
                .map(|m| m.len())
                .sum::<u64>() as f64
                / (1 << 20) as f64
        };
        eprintln!(
            "on disk: wal {:.0} MiB, segments {:.0} MiB",
            size_mib("wal"),
            size_mib("segments")
        );
    }
}
