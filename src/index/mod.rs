//! The index: source files in, passages out of two stores (tantivy for BM25, Qdrant for
//! vectors) kept consistent through the manifest, and hybrid search over both.

mod highlight;
pub mod lexical;
pub mod sparse;

use crate::analyzer::KoreanDictionary;
use crate::config::{Config, LexicalFields, SearchMode};
use crate::embed::Embedder;
use crate::error::{Error, Result};
use crate::filter::{Access, PointPayload, SearchFilter};
use crate::manifest::{Entry, EntryState, Manifest};
use crate::vector::{SparseVector, VectorConfig, VectorPoint, VectorStore};
use anjeon_ingest::{chunk_document, ChunkOptions, Document};
pub use lexical::FacetCounts;
use lexical::LexicalIndex;
pub use lexical::StoredPassage;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// A file that could not be ingested, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Skipped {
    pub path: String,
    pub error: String,
}

/// The summary `anjeon ingest --json` prints.
#[derive(Debug, Clone, Default, Serialize)]
pub struct IngestReport {
    /// Files newly indexed (or re-indexed because they changed).
    pub files: usize,
    /// Passages written.
    pub chunks: usize,
    pub skipped: Vec<Skipped>,
    /// Files whose content was already indexed.
    pub unchanged: usize,
}

/// Progress of an ingest run, for a progress bar.
pub enum IngestEvent<'a> {
    Found(usize),
    /// A file is about to be read, parsed and embedded.
    File(&'a Path),
    /// A file was prepared (its passages are written with the batch it joined, durable once
    /// the run returns), found unchanged, or skipped.
    Finished(&'a Path, FileOutcome<'a>),
}

/// What became of one file of an ingest run.
pub enum FileOutcome<'a> {
    /// Parsed into this many passages (0 for a duplicate of an indexed file).
    Indexed(usize),
    Unchanged,
    Skipped(&'a str),
}

/// One indexed document with its passages in document order, as a caller may read them.
#[derive(Debug, Clone)]
pub struct DocumentView {
    pub key: String,
    pub entry: Entry,
    pub passages: Vec<StoredPassage>,
}

/// One search result.
#[derive(Debug, Clone, Serialize)]
pub struct Hit {
    /// Source document key: the file's path relative to the folder it was ingested from.
    pub doc: String,
    pub title: String,
    pub locator: String,
    pub score: f32,
    pub text: String,
    /// The best fragment with query terms in `<b>…</b>`.
    pub highlight: String,
    pub id: u64,
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub law: Option<String>,
    pub access: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub date: Option<i64>,
    /// Byte range of `text` in the parsed document.
    pub start: u64,
    pub end: u64,
}

/// A hit with the scores each side gave it before fusion (`None`: not among that side's
/// candidates).
#[derive(Debug, Clone)]
pub struct Candidate {
    pub hit: Hit,
    /// BM25 score, when the lexical search ranked it.
    pub bm25: Option<f32>,
    /// e5 cosine to the question: in dense and hybrid search, of every candidate (those the
    /// dense search did not rank are scored apart).
    pub cosine: Option<f32>,
}

/// Document frequencies within what a filter allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TermStats {
    pub passages: usize,
    pub doc_freqs: Vec<usize>,
}

/// A search as callers state it.
#[derive(Debug, Clone)]
pub struct SearchRequest {
    pub query: String,
    pub top_k: usize,
    pub mode: SearchMode,
    /// Which BM25 fields to use (normally `index.lexical` of the configuration).
    pub lexical: LexicalFields,
    pub filter: SearchFilter,
}

/// A source file found under an ingest root.
struct SourceFile {
    key: String,
    path: PathBuf,
}

/// A parsed, chunked and embedded file, ready to be written to both stores.
struct PreparedFile {
    key: String,
    entry: Entry,
    passages: Vec<StoredPassage>,
    vectors: Vec<Vec<f32>>,
    /// Each passage's BM25 term weights (`None` for a passage with no terms).
    sparse: Vec<Option<SparseVector>>,
}

pub struct Index {
    config: Config,
    dictionary: KoreanDictionary,
    lexical: LexicalIndex,
    vectors: Box<dyn VectorStore>,
    manifest: Mutex<Manifest>,
}

impl Index {
    /// Opens (creating when new) the index under the configured data directory, fetching
    /// the Korean dictionary if needed, and recovers from an interrupted ingest.
    pub fn open(config: &Config) -> Result<Index> {
        let data = &config.data_dir;
        std::fs::create_dir_all(data).map_err(|e| Error::io(data, e))?;
        check_writable(data)?;
        let dictionary = KoreanDictionary::open(&config.cache_dir)?;
        let lexical = LexicalIndex::open(&data.join("tantivy"), |idx| {
            crate::analyzer::register(idx, &dictionary)
        })?;
        let vectors = crate::vector::open(&vector_config(config))?;
        let manifest = Manifest::load(&data.join("manifest.json"))?;
        let index = Index {
            config: config.clone(),
            dictionary,
            lexical,
            vectors,
            manifest: Mutex::new(manifest),
        };
        index.recover()?;
        if config.qdrant.lexical {
            if !index.vectors.has_sparse() {
                return Err(Error::Config(format!(
                    "qdrant.lexical needs sparse vectors, and the vector store under {} was \
                     made before they existed: move it away and ingest again",
                    data.display()
                )));
            }
            let missing = index
                .manifest()
                .entries
                .values()
                .filter(|e| !e.sparse && !e.passages.is_empty())
                .count();
            if missing > 0 {
                tracing::warn!(
                    "{missing} document(s) were indexed before passages carried sparse vectors, \
                     so Qdrant's BM25 (qdrant.lexical) cannot find them: ingest them again, \
                     which re-indexes them"
                );
            }
        }
        Ok(index)
    }

    fn manifest(&self) -> std::sync::MutexGuard<'_, Manifest> {
        self.manifest.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The embedding model, loaded on first use (once per process: [`Embedder::shared`]).
    pub fn embedder(&self) -> Result<&'static Embedder> {
        Embedder::shared(&self.config.cache_dir)
    }

    /// Undoes batches that were being written when the process died: their passages are
    /// removed from both stores and their entries dropped, so the next ingest redoes them.
    fn recover(&self) -> Result<()> {
        let mut manifest = self.manifest();
        let pending = manifest.pending_keys();
        if pending.is_empty() {
            return Ok(());
        }
        tracing::warn!(
            "recovering {} file(s) from an interrupted ingest",
            pending.len()
        );
        for key in &pending {
            self.lexical.delete_doc(key);
            self.vectors.delete_doc(key)?;
        }
        self.lexical.commit()?;
        self.vectors.flush()?;
        for key in &pending {
            manifest.entries.remove(key);
        }
        manifest.save()
    }

    /// Ingests files and folders (recursively). Bad files are reported, never fatal.
    pub fn ingest(
        &self,
        roots: &[PathBuf],
        access: Access,
        progress: &dyn Fn(IngestEvent),
    ) -> Result<IngestReport> {
        self.ingest_copies(roots, access, 1, progress)
    }

    /// Like [`ingest`](Self::ingest), but writes every new file `copies` times, the extra
    /// copies under the keys `copy-<n>/<key>`: scales an index for load benchmarks without
    /// parsing and embedding the same text again.
    pub fn ingest_copies(
        &self,
        roots: &[PathBuf],
        access: Access,
        copies: usize,
        progress: &dyn Fn(IngestEvent),
    ) -> Result<IngestReport> {
        let mut report = IngestReport::default();
        let files = collect_sources(roots, &mut report.skipped);
        self.ingest_sources(&files, access, copies, false, report, progress)
    }

    /// Ingests files under the keys given (an upload's name, a document's own key when it
    /// is read again); with `force`, files whose bytes are already indexed are parsed and
    /// written again (a re-ingest after a parser change).
    pub fn ingest_files(
        &self,
        files: &[(String, PathBuf)],
        access: Access,
        force: bool,
        progress: &dyn Fn(IngestEvent),
    ) -> Result<IngestReport> {
        let files: Vec<SourceFile> = files
            .iter()
            .map(|(key, path)| SourceFile {
                key: key.clone(),
                path: path.clone(),
            })
            .collect();
        self.ingest_sources(&files, access, 1, force, IngestReport::default(), progress)
    }

    fn ingest_sources(
        &self,
        files: &[SourceFile],
        access: Access,
        copies: usize,
        force: bool,
        mut report: IngestReport,
        progress: &dyn Fn(IngestEvent),
    ) -> Result<IngestReport> {
        progress(IngestEvent::Found(files.len()));
        let mut batch: Vec<PreparedFile> = Vec::new();
        for file in files {
            progress(IngestEvent::File(&file.path));
            match self.prepare(file, access, force) {
                Ok(Some(prepared)) => {
                    progress(IngestEvent::Finished(
                        &file.path,
                        FileOutcome::Indexed(prepared.passages.len()),
                    ));
                    self.pause_point("prepared");
                    report.files += 1;
                    report.chunks += prepared.passages.len() * copies.max(1);
                    for n in 1..copies {
                        batch.push(prepared.copy(n));
                    }
                    batch.push(prepared);
                }
                Ok(None) => {
                    progress(IngestEvent::Finished(&file.path, FileOutcome::Unchanged));
                    report.unchanged += 1
                }
                Err(e) => {
                    let error = e.to_string();
                    progress(IngestEvent::Finished(
                        &file.path,
                        FileOutcome::Skipped(&error),
                    ));
                    report.skipped.push(Skipped {
                        path: file.path.display().to_string(),
                        error,
                    })
                }
            }
            let batch_chunks: usize = batch.iter().map(|p| p.passages.len()).sum();
            if batch.len() >= self.config.index.batch_files.max(1) || batch_chunks >= 4096 {
                self.write_batch(std::mem::take(&mut batch))?;
            }
        }
        self.write_batch(batch)?;
        if report.files > 0 {
            self.vectors.optimize()?;
        }
        Ok(report)
    }

    /// Passages the files under `roots` would produce (parsing and chunking only).
    pub fn count_passages(&self, roots: &[PathBuf]) -> usize {
        collect_sources(roots, &mut Vec::new())
            .iter()
            .filter_map(|f| std::fs::read(&f.path).ok().map(|b| (f, b)))
            .filter_map(|(f, bytes)| anjeon_ingest::parse_file(&f.path, &bytes).ok())
            .flatten()
            .map(|doc| chunk_document(&doc, self.chunk_options()).len())
            .sum()
    }

    fn chunk_options(&self) -> ChunkOptions {
        ChunkOptions {
            max_chars: self.config.index.chunk_max_chars,
            ..ChunkOptions::default()
        }
    }

    /// Reads, parses, chunks and embeds one file; `None` when it is already indexed.
    fn prepare(
        &self,
        file: &SourceFile,
        access: Access,
        force: bool,
    ) -> Result<Option<PreparedFile>> {
        let meta = std::fs::metadata(&file.path).map_err(|e| Error::io(&file.path, e))?;
        let limit = self.config.index.max_file_bytes;
        if meta.len() > limit {
            return Err(Error::InvalidInput(format!(
                "file is {} bytes, more than the limit of {limit} (index.max_file_bytes)",
                meta.len()
            )));
        }
        let bytes = std::fs::read(&file.path).map_err(|e| Error::io(&file.path, e))?;
        let hash = hex::encode(Sha256::digest(&bytes));
        let duplicate_of = {
            let manifest = self.manifest();
            if let Some(e) = manifest.entries.get(&file.key) {
                if !force
                    && e.hash == hash
                    && e.access == access
                    && e.state == EntryState::Committed
                    && (e.sparse || !self.config.qdrant.lexical)
                {
                    return Ok(None);
                }
            }
            manifest
                .committed_with_hash(&hash, &file.key)
                .map(str::to_string)
        };
        let mut entry = Entry {
            hash,
            source: file
                .path
                .canonicalize()
                .unwrap_or_else(|_| file.path.clone()),
            access,
            state: EntryState::Pending,
            passages: Vec::new(),
            duplicate_of,
            titles: Vec::new(),
            sparse: self.vectors.has_sparse(),
        };
        if entry.duplicate_of.is_some() {
            return Ok(Some(PreparedFile {
                key: file.key.clone(),
                entry,
                passages: Vec::new(),
                vectors: Vec::new(),
                sparse: Vec::new(),
            }));
        }
        let docs = anjeon_ingest::parse_file(&file.path, &bytes)?;
        let opts = self.chunk_options();
        let mut passages = Vec::new();
        let mut inputs = Vec::new();
        for doc in &docs {
            entry.titles.push(doc.title.clone());
            for p in chunk_document(doc, opts) {
                let id = passage_id(&file.key, &entry.hash, passages.len());
                // The title (law, article) goes into the vector: passage bodies often leave
                // it implicit.
                inputs.push(p.contextual_text());
                passages.push(stored_passage(id, &file.key, doc, access, p));
            }
        }
        if passages.is_empty() {
            return Err(anjeon_ingest::IngestError::NoText(file.key.clone()).into());
        }
        entry.passages = passages.iter().map(|p| p.id).collect();
        let vectors = self.embed_passages(&inputs)?;
        let sparse = passages
            .iter()
            .map(|p| self.passage_sparse(p))
            .collect::<Result<_>>()?;
        Ok(Some(PreparedFile {
            key: file.key.clone(),
            entry,
            passages,
            vectors,
            sparse,
        }))
    }

    /// A passage's BM25 weights over both analyses, title included as tantivy indexes it.
    fn passage_sparse(&self, p: &StoredPassage) -> Result<Option<SparseVector>> {
        let analysed = |bigram: bool| -> Result<Vec<String>> {
            let mut terms = self.lexical.analyse(&p.text, bigram)?;
            terms.extend(self.lexical.analyse(&p.title, bigram)?);
            Ok(terms)
        };
        let (morphs, bigrams) = (analysed(false)?, analysed(true)?);
        let v = sparse::passage_vector(&[
            (sparse::Field::Morph, &morphs),
            (sparse::Field::Bigram, &bigrams),
        ]);
        Ok((!v.is_empty()).then_some(v))
    }

    /// The BM25 query of `query` over `lexical`'s fields, as a sparse vector.
    fn query_sparse(&self, query: &str, lexical: LexicalFields) -> Result<SparseVector> {
        let mut fields = Vec::new();
        for &field in sparse::Field::of(lexical) {
            fields.push((
                field,
                self.lexical
                    .analyse(query, field == sparse::Field::Bigram)?,
            ));
        }
        let refs: Vec<(sparse::Field, &[String])> =
            fields.iter().map(|(f, t)| (*f, t.as_slice())).collect();
        Ok(sparse::query_vector(&refs))
    }

    /// Whether the BM25 side of searches is scored by Qdrant (`qdrant.lexical`).
    pub fn qdrant_lexical(&self) -> bool {
        self.config.qdrant.lexical
    }

    /// Whether the vector store keeps sparse vectors (see [`VectorStore::has_sparse`]).
    pub fn has_sparse_vectors(&self) -> bool {
        self.vectors.has_sparse()
    }

    /// Scores the BM25 side in Qdrant from the sparse vectors (`true`) or in tantivy, as
    /// `qdrant.lexical` would: for benchmarks that compare the two on one index.
    pub fn set_qdrant_lexical(&mut self, on: bool) {
        self.config.qdrant.lexical = on;
    }

    /// The query-side embedding of a question.
    pub fn embed_query(&self, question: &str) -> Result<Vec<f32>> {
        let mut v = self.embedder()?.embed_queries(&[question])?;
        v.pop()
            .ok_or_else(|| Error::Model("the embedder returned no vector".into()))
    }

    /// Passages in the index, all access levels.
    pub fn passage_count(&self) -> Result<usize> {
        self.lexical.count(&SearchFilter {
            access: vec![Access::Public, Access::Internal],
            ..Default::default()
        })
    }

    fn embed_passages(&self, inputs: &[String]) -> Result<Vec<Vec<f32>>> {
        let embedder = self.embedder()?;
        let mut out = Vec::with_capacity(inputs.len());
        for chunk in inputs.chunks(self.config.embed.batch_size.max(1)) {
            let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
            out.extend(embedder.embed_passages(&refs)?);
        }
        Ok(out)
    }

    /// Writes a batch crash-safely: manifest entries pending → both stores → committed.
    fn write_batch(&self, batch: Vec<PreparedFile>) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let vector_bytes: usize = batch
            .iter()
            .flat_map(|f| &f.vectors)
            .map(|v| v.len() * 4)
            .sum();
        self.ensure_free_space(vector_bytes as u64 * 8)?;
        let mut manifest = self.manifest();
        for f in &batch {
            manifest.entries.insert(f.key.clone(), f.entry.clone());
        }
        manifest.save()?;
        self.pause_point("manifest-pending");
        for f in &batch {
            self.lexical.delete_doc(&f.key);
            for p in &f.passages {
                self.lexical.add(p)?;
            }
        }
        self.pause_point("lexical-added");
        self.lexical.commit()?;
        self.pause_point("lexical-commit");
        for f in batch.iter() {
            self.vectors.delete_doc(&f.key)?;
        }
        let points: Vec<VectorPoint> = batch
            .iter()
            .flat_map(|f| {
                f.passages
                    .iter()
                    .zip(&f.vectors)
                    .zip(&f.sparse)
                    .map(|((p, v), s)| VectorPoint {
                        id: p.id,
                        vector: v.clone(),
                        sparse: s.clone(),
                        payload: PointPayload {
                            doc: p.doc.clone(),
                            kind: p.kind.clone(),
                            law: p.law.clone(),
                            access: f.entry.access,
                            date: p.date,
                        },
                    })
            })
            .collect();
        if !points.is_empty() {
            self.vectors.upsert(points)?;
        }
        self.pause_point("vector-upserted");
        self.vectors.flush()?;
        self.pause_point("vector-flush");
        for f in &batch {
            if let Some(e) = manifest.entries.get_mut(&f.key) {
                e.state = EntryState::Committed;
            }
        }
        manifest.save()
    }

    /// Refuses a batch before anything is written when the data directory's disk lacks room
    /// for it: the embedded vector store writes through memory maps, and a map that cannot be
    /// backed kills the process (SIGBUS) instead of returning an error.
    fn ensure_free_space(&self, batch_bytes: u64) -> Result<()> {
        let data = &self.config.data_dir;
        let Ok(available) = fs4::available_space(data) else {
            return Ok(()); // unknown: let the writes report what happens
        };
        let needed = MIN_FREE_BYTES + batch_bytes;
        if available < needed {
            return Err(Error::Index(format!(
                "not enough free space for the index under {}: {} MiB available, {} MiB needed (No space left on device); free some space and run again",
                data.display(),
                available >> 20,
                needed.div_ceil(1 << 20)
            )));
        }
        Ok(())
    }

    /// Fault injection for crash tests: with `ANJEON_PAUSE_AT=<stage>` (or `<stage>@<n>`,
    /// the n-th time the stage is reached) the process writes the marker file
    /// `paused-at-<stage>` into the data directory and sleeps there until it is killed.
    /// Stages: `prepared` (a file parsed and embedded, nothing written), `manifest-pending`,
    /// `lexical-added` (passages in tantivy's writer, not committed), `lexical-commit`,
    /// `vector-upserted` (points written, not flushed), `vector-flush`.
    fn pause_point(&self, stage: &str) {
        let Ok(wanted) = std::env::var("ANJEON_PAUSE_AT") else {
            return;
        };
        let (name, nth) = match wanted.split_once('@') {
            Some((name, n)) => (name, n.parse::<usize>().unwrap_or(1)),
            None => (wanted.as_str(), 1),
        };
        if name != stage {
            return;
        }
        static REACHED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        if REACHED.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1 != nth {
            return;
        }
        let marker = self.config.data_dir.join(format!("paused-at-{stage}"));
        let _ = std::fs::write(&marker, b"");
        loop {
            std::thread::sleep(std::time::Duration::from_secs(60));
        }
    }

    /// Ranked passages for a query, restricted by the request's filter in both stores.
    pub fn search(&self, req: &SearchRequest) -> Result<Vec<Hit>> {
        self.search_with_vector(req, None)
    }

    /// [`search`](Self::search) with the query's embedding given (when already known).
    pub fn search_with_vector(
        &self,
        req: &SearchRequest,
        vector: Option<&[f32]>,
    ) -> Result<Vec<Hit>> {
        Ok(self
            .fused(req, vector, false)?
            .into_iter()
            .map(|c| c.hit)
            .collect())
    }

    /// [`search_with_vector`](Self::search_with_vector), keeping each side's own score of
    /// every hit (BM25 and cosine), for rerankers that want more than the fused rank.
    pub fn candidates(
        &self,
        req: &SearchRequest,
        vector: Option<&[f32]>,
    ) -> Result<Vec<Candidate>> {
        self.fused(req, vector, true)
    }

    /// The ranked hits with each side's score; with `score_unranked`, a hybrid search also
    /// scores against the question the hits that only the lexical side ranked.
    fn fused(
        &self,
        req: &SearchRequest,
        vector: Option<&[f32]>,
        score_unranked: bool,
    ) -> Result<Vec<Candidate>> {
        let k = req.top_k.max(1);
        let pool = self.config.search.candidates.max(k);
        let lexical = || -> Result<Vec<(u64, f32)>> {
            if self.config.qdrant.lexical {
                let query = self.query_sparse(&req.query, req.lexical)?;
                return Ok(self
                    .vectors
                    .search_sparse(&query, pool, &req.filter)?
                    .into_iter()
                    .map(|h| (h.id, h.score))
                    .collect());
            }
            Ok(self
                .lexical
                .search(&req.query, req.lexical, pool, &req.filter)?
                .into_iter()
                .map(|h| (h.id, h.score))
                .collect())
        };
        // the question embedded once, for the dense search and the scores of what only BM25
        // reached
        let embedded;
        let vector = match (vector, req.mode) {
            (None, SearchMode::Dense | SearchMode::Hybrid) => {
                embedded = self.embed_query(&req.query)?;
                Some(embedded.as_slice())
            }
            (given, _) => given,
        };
        let dense = |v: &[f32]| -> Result<Vec<(u64, f32)>> {
            Ok(self
                .vectors
                .search(v, pool, &req.filter)?
                .into_iter()
                .map(|h| (h.id, h.score))
                .collect())
        };
        let (ranked, lex, den) = match req.mode {
            SearchMode::Bm25 => {
                let lex = lexical()?;
                (lex.clone(), lex, Vec::new())
            }
            SearchMode::Dense => {
                let den = dense(vector.unwrap_or_default())?;
                (den.clone(), Vec::new(), den)
            }
            SearchMode::Hybrid => {
                let lex = lexical()?;
                let den = dense(vector.unwrap_or_default())?;
                let lex_ids: Vec<u64> = lex.iter().map(|h| h.0).collect();
                let den_ids: Vec<u64> = den.iter().map(|h| h.0).collect();
                let fused = reciprocal_rank_fusion(&[&lex_ids, &den_ids], self.config.search.rrf_k);
                (fused, lex, den)
            }
        };
        let lex: HashMap<u64, f32> = lex.into_iter().collect();
        let mut den: HashMap<u64, f32> = den.into_iter().collect();
        let ranked: Vec<(u64, f32)> = ranked.into_iter().take(k).collect();
        let ids: Vec<u64> = ranked.iter().map(|(id, _)| *id).collect();
        // A passage only BM25 reached still has a similarity to the question; the rerank
        // reads it.
        if let Some(v) = vector.filter(|_| score_unranked && req.mode == SearchMode::Hybrid) {
            let unscored: Vec<u64> = ids
                .iter()
                .copied()
                .filter(|id| !den.contains_key(id))
                .collect();
            if !unscored.is_empty() {
                for hit in self.vectors.score(v, &unscored, &req.filter)? {
                    den.insert(hit.id, hit.score);
                }
            }
        }
        let stored: HashMap<u64, StoredPassage> = self
            .lexical
            .get(&ids)?
            .into_iter()
            .map(|p| (p.id, p))
            .collect();
        let highlighter = self.lexical.highlighter(&req.query)?;
        Ok(ranked
            .into_iter()
            .filter_map(|(id, score)| {
                let p = stored.get(&id)?.clone();
                Some(Candidate {
                    bm25: lex.get(&id).copied(),
                    cosine: den.get(&id).copied(),
                    hit: Hit {
                        highlight: highlighter.highlight(&p.text),
                        doc: p.doc,
                        title: p.title,
                        locator: p.locator,
                        score,
                        text: p.text,
                        id,
                        kind: p.kind,
                        law: p.law,
                        access: p.access,
                        date: p.date,
                        start: p.start,
                        end: p.end,
                    },
                })
            })
            .collect())
    }

    /// The morphemes the index makes of `text` (as BM25 sees it), repeats included.
    pub fn analyse(&self, text: &str) -> Result<Vec<String>> {
        self.lexical.analyse(text, false)
    }

    /// The words of `text` that name things, spelled as the index spells them and grouped as
    /// written together ([`crate::analyzer::nouns`]).
    pub fn nouns(&self, text: &str) -> Result<Vec<Vec<String>>> {
        crate::analyzer::nouns(&self.dictionary, text)
    }

    /// Whether a passage the filter allows mentions `word`, even inside a longer word or
    /// misspelt ([`LexicalIndex::mentions`]).
    pub fn mentions(&self, word: &str, filter: &SearchFilter) -> Result<bool> {
        self.lexical.mentions(word, filter)
    }

    /// The Hangul bigrams the index makes of `text`, repeats included.
    pub fn analyse_bigrams(&self, text: &str) -> Result<Vec<String>> {
        self.lexical.analyse(text, true)
    }

    /// How many passages the filter allows, and how many of them contain each morpheme:
    /// statistics restricted to what the caller may read, so they reveal nothing else.
    pub fn term_stats(&self, terms: &[String], filter: &SearchFilter) -> Result<TermStats> {
        let passages = self.lexical.count(filter)?;
        let doc_freqs = terms
            .iter()
            .map(|t| self.lexical.doc_freq(t, false, filter))
            .collect::<Result<Vec<_>>>()?;
        Ok(TermStats {
            passages,
            doc_freqs,
        })
    }

    /// Checks that the manifest, tantivy and the vector store hold exactly the same
    /// passages per document; returns the problems found (empty when consistent).
    pub fn check_consistency(&self) -> Result<Vec<String>> {
        let manifest = self.manifest();
        let mut problems = Vec::new();
        for (key, entry) in &manifest.entries {
            let mut expected = entry.passages.clone();
            expected.sort_unstable();
            let lexical = self.lexical.ids_of_doc(key)?;
            let mut vectors = self.vectors.ids_of_doc(key)?;
            vectors.sort_unstable();
            if lexical != expected {
                problems.push(format!(
                    "{key}: tantivy has {} passages, manifest {}",
                    lexical.len(),
                    expected.len()
                ));
            }
            if vectors != expected {
                problems.push(format!(
                    "{key}: vector store has {} passages, manifest {}",
                    vectors.len(),
                    expected.len()
                ));
            }
        }
        let all = SearchFilter {
            access: vec![Access::Public, Access::Internal],
            ..Default::default()
        };
        let total: usize = manifest.entries.values().map(|e| e.passages.len()).sum();
        let lexical_total = self.lexical.count(&all)?;
        let vector_total = self.vectors.count(&all)? as usize;
        if lexical_total != total || vector_total != total {
            problems.push(format!(
                "totals differ: manifest {total}, tantivy {lexical_total}, vectors {vector_total}"
            ));
        }
        Ok(problems)
    }

    /// Removes a document from both stores and the manifest, crash-safely: its entry is
    /// first saved as pending, which is what recovery deletes if the process dies midway.
    /// Documents recorded as duplicates of it are removed with it (they own no passages).
    /// Returns the keys removed (empty when `key` is not indexed).
    pub fn delete(&self, key: &str) -> Result<Vec<String>> {
        let mut manifest = self.manifest();
        if !manifest.entries.contains_key(key) {
            return Ok(Vec::new());
        }
        let mut keys = vec![key.to_string()];
        keys.extend(
            manifest
                .entries
                .iter()
                .filter(|(_, e)| e.duplicate_of.as_deref() == Some(key))
                .map(|(k, _)| k.clone()),
        );
        for k in &keys {
            if let Some(e) = manifest.entries.get_mut(k) {
                e.state = EntryState::Pending;
            }
        }
        manifest.save()?;
        for k in &keys {
            self.lexical.delete_doc(k);
            self.vectors.delete_doc(k)?;
        }
        self.lexical.commit()?;
        self.vectors.flush()?;
        for k in &keys {
            manifest.entries.remove(k);
        }
        manifest.save()?;
        Ok(keys)
    }

    /// One manifest entry.
    pub fn entry(&self, key: &str) -> Option<Entry> {
        self.manifest().entries.get(key).cloned()
    }

    /// How many passages the filter allows that match `query` by BM25, and their counts
    /// per law and per document kind (one query; see [`lexical::LexicalIndex::facet_counts`]).
    pub fn facets(
        &self,
        query: &str,
        lexical: LexicalFields,
        filter: &SearchFilter,
    ) -> Result<FacetCounts> {
        self.lexical.facet_counts(query, lexical, filter)
    }

    /// A committed document with the passages `access` may read, in document order; `None`
    /// when there is no such document or the caller may read none of it (so a caller
    /// cannot tell a document it may not read from one that does not exist).
    pub fn document(&self, key: &str, access: &[Access]) -> Result<Option<DocumentView>> {
        let Some(entry) = self.entry(key) else {
            return Ok(None);
        };
        if entry.state != EntryState::Committed || !access.contains(&entry.access) {
            return Ok(None);
        }
        // A duplicate's passages are stored once, under the document it duplicates.
        let (owner, order) = match &entry.duplicate_of {
            Some(original) => match self.entry(original) {
                Some(o) => (original.clone(), o.passages),
                None => return Ok(None),
            },
            None => (key.to_string(), entry.passages.clone()),
        };
        let filter = SearchFilter {
            access: access.to_vec(),
            ..Default::default()
        };
        let mut passages = self.lexical.passages_of_doc(&owner, &filter)?;
        if passages.is_empty() {
            return Ok(None);
        }
        let position: HashMap<u64, usize> =
            order.iter().enumerate().map(|(i, id)| (*id, i)).collect();
        passages.sort_by_key(|p| (position.get(&p.id).copied().unwrap_or(usize::MAX), p.start));
        Ok(Some(DocumentView {
            key: key.to_string(),
            entry,
            passages,
        }))
    }

    /// Manifest entries, for listings and tests.
    pub fn entries(&self) -> Vec<(String, Entry)> {
        self.manifest()
            .entries
            .iter()
            .map(|(k, e)| (k.clone(), e.clone()))
            .collect()
    }
}

impl PreparedFile {
    /// The same passages under the key `copy-<n>/<key>`, with their own ids.
    fn copy(&self, n: usize) -> PreparedFile {
        let key = format!("copy-{n}/{}", self.key);
        let passages: Vec<StoredPassage> = self
            .passages
            .iter()
            .enumerate()
            .map(|(i, p)| StoredPassage {
                id: passage_id(&key, &self.entry.hash, i),
                doc: key.clone(),
                ..p.clone()
            })
            .collect();
        let mut entry = self.entry.clone();
        entry.passages = passages.iter().map(|p| p.id).collect();
        entry.duplicate_of = None;
        PreparedFile {
            key,
            entry,
            passages,
            vectors: self.vectors.clone(),
            sparse: self.sparse.clone(),
        }
    }
}

/// Room kept free on the data directory's disk beyond each batch's own size: the embedded
/// vector store grows its files in 32 MiB pages.
const MIN_FREE_BYTES: u64 = 64 << 20;

/// Fails clearly when the data directory cannot be written (read-only mount, permissions,
/// full disk) instead of letting a store report a confusing lock error later.
fn check_writable(data: &Path) -> Result<()> {
    let probe = data.join(".anjeon-write-probe");
    let written = std::fs::write(&probe, b"ok");
    let _ = std::fs::remove_file(&probe);
    written.map_err(|e| {
        Error::Index(format!(
            "the data directory {} is not writable ({e}); anjeon keeps its index and manifest there and needs write access (--data-dir or ANJEON_DATA_DIR)",
            data.display()
        ))
    })
}

/// The embedded engine under the data directory, unless a server URL is configured.
fn vector_config(config: &Config) -> VectorConfig {
    let q = &config.qdrant;
    if q.url.is_empty() {
        VectorConfig::Embedded {
            path: config.data_dir.join("qdrant"),
        }
    } else {
        VectorConfig::Server {
            url: q.url.clone(),
            api_key: (!q.api_key.is_empty()).then(|| q.api_key.clone()),
            collection: q.collection.clone(),
        }
    }
}

/// Reciprocal-rank fusion: each list contributes 1 / (k + rank) for every id it ranks.
pub fn reciprocal_rank_fusion(lists: &[&[u64]], k: f32) -> Vec<(u64, f32)> {
    let mut scores: HashMap<u64, f32> = HashMap::new();
    for list in lists {
        for (rank, id) in list.iter().enumerate() {
            *scores.entry(*id).or_default() += 1.0 / (k + rank as f32 + 1.0);
        }
    }
    let mut fused: Vec<(u64, f32)> = scores.into_iter().collect();
    fused.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    fused
}

/// Stable ids: the same file content yields the same ids, so a redone batch overwrites
/// rather than duplicates.
fn passage_id(key: &str, hash: &str, n: usize) -> u64 {
    let d = Sha256::new()
        .chain_update(key.as_bytes())
        .chain_update([0])
        .chain_update(hash.as_bytes())
        .chain_update((n as u64).to_le_bytes())
        .finalize();
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    u64::from_le_bytes(b) & (u64::MAX >> 1)
}

fn stored_passage(
    id: u64,
    key: &str,
    doc: &Document,
    access: Access,
    p: anjeon_ingest::Passage,
) -> StoredPassage {
    let date = ["effective_date", "date"]
        .iter()
        .find_map(|k| doc.meta.get(*k))
        .and_then(|d| parse_date(d));
    StoredPassage {
        id,
        doc: key.to_string(),
        kind: doc.kind.as_str().to_string(),
        law: doc.meta.get("law").cloned(),
        access: access.as_str().to_string(),
        date,
        title: p.title,
        locator: p.locator.display(),
        text: p.text,
        start: p.range.start as u64,
        end: p.range.end as u64,
    }
}

/// `YYYY-MM-DD` (or `YYYYMMDD`, `YYYY.MM.DD`) → `YYYYMMDD`.
pub fn parse_date(s: &str) -> Option<i64> {
    let digits: String = s.chars().filter(char::is_ascii_digit).take(8).collect();
    if digits.len() == 8 {
        digits.parse().ok()
    } else {
        None
    }
}

/// Files under the roots with their document keys: the path relative to a folder root,
/// or the file name for a file root.
fn collect_sources(roots: &[PathBuf], skipped: &mut Vec<Skipped>) -> Vec<SourceFile> {
    let mut out = Vec::new();
    for root in roots {
        if root.is_file() {
            let key = root
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            out.push(SourceFile {
                key,
                path: root.clone(),
            });
            continue;
        }
        if !root.is_dir() {
            skipped.push(Skipped {
                path: root.display().to_string(),
                error: "no such file or folder".into(),
            });
            continue;
        }
        for entry in walkdir::WalkDir::new(root).sort_by_file_name() {
            match entry {
                Ok(e) if e.file_type().is_file() => {
                    let rel = e.path().strip_prefix(root).unwrap_or(e.path());
                    let key = rel
                        .components()
                        .map(|c| c.as_os_str().to_string_lossy())
                        .collect::<Vec<_>>()
                        .join("/");
                    if key.starts_with('.') || key.contains("/.") {
                        continue;
                    }
                    out.push(SourceFile {
                        key,
                        path: e.into_path(),
                    });
                }
                Ok(_) => {}
                Err(err) => skipped.push(Skipped {
                    path: err
                        .path()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default(),
                    error: err.to_string(),
                }),
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rrf_rewards_agreement() {
        let fused = reciprocal_rank_fusion(&[&[1, 2, 3], &[3, 1, 4]], 60.0);
        assert_eq!(fused[0].0, 1);
        assert_eq!(fused[1].0, 3);
        assert_eq!(fused.len(), 4);
    }

    #[test]
    fn dates_normalise() {
        assert_eq!(parse_date("2026-12-31"), Some(20261231));
        assert_eq!(parse_date("2026.05.21"), Some(20260521));
        assert_eq!(parse_date("2026"), None);
    }

    #[test]
    fn passage_ids_are_stable_and_distinct() {
        assert_eq!(passage_id("a", "h", 0), passage_id("a", "h", 0));
        assert_ne!(passage_id("a", "h", 0), passage_id("a", "h", 1));
        assert_ne!(passage_id("a", "h", 0), passage_id("b", "h", 0));
    }

    #[test]
    fn keys_are_relative_to_folder_roots() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("statutes")).unwrap();
        std::fs::write(dir.path().join("statutes/a.md"), "x").unwrap();
        std::fs::write(dir.path().join(".hidden"), "x").unwrap();
        let mut skipped = Vec::new();
        let files = collect_sources(
            &[dir.path().to_path_buf(), dir.path().join("missing")],
            &mut skipped,
        );
        let keys: Vec<&str> = files.iter().map(|f| f.key.as_str()).collect();
        assert_eq!(keys, ["statutes/a.md"]);
        assert_eq!(skipped.len(), 1);
    }
}
