//! The lexical side of the index: passages in tantivy with BM25 over Korean morphemes
//! and Hangul bigrams, filters applied inside the query, stored text and highlights.

use crate::analyzer::{KO_BIGRAM, KO_MORPH};
use crate::config::LexicalFields;
use crate::error::{Error, Result};
use crate::filter::SearchFilter;
use crate::index::highlight::Highlighter;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;
use std::path::Path;
use std::sync::{Arc, Mutex};
use tantivy::collector::{Collector, Count, DocSetCollector, SegmentCollector, TopDocs};
use tantivy::index::SegmentId;
use tantivy::query::{
    BooleanQuery, ConstScoreQuery, EmptyQuery, Occur, PhraseQuery, Query, RangeQuery, RegexQuery,
    TermQuery, TermSetQuery,
};
use tantivy::schema::{
    Field, IndexRecordOption, OwnedValue, Schema, TextFieldIndexing, TextOptions, FAST, INDEXED,
    STORED, STRING,
};
use tantivy::{
    doc, DocId, DocSet, Index, IndexReader, IndexWriter, ReloadPolicy, Score, SegmentReader,
    TantivyDocument, Term, TERMINATED,
};

/// One passage as the lexical index stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredPassage {
    pub id: u64,
    pub doc: String,
    pub kind: String,
    pub law: Option<String>,
    pub access: String,
    pub date: Option<i64>,
    pub title: String,
    pub locator: String,
    pub text: String,
    /// Byte range of `text` in the parsed document.
    pub start: u64,
    pub end: u64,
}

#[derive(Clone, Copy)]
struct Fields {
    id: Field,
    doc: Field,
    kind: Field,
    law: Field,
    access: Field,
    date: Field,
    title: Field,
    locator: Field,
    text: Field,
    text_bigram: Field,
    start: Field,
    end: Field,
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let analysed = |tokenizer: &str, stored: bool| {
        let opts = TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(tokenizer)
                .set_index_option(IndexRecordOption::WithFreqsAndPositions),
        );
        if stored {
            opts.set_stored()
        } else {
            opts
        }
    };
    let fields = Fields {
        id: b.add_u64_field("id", INDEXED | STORED | FAST),
        doc: b.add_text_field("doc", STRING | STORED | FAST),
        kind: b.add_text_field("kind", STRING | STORED),
        law: b.add_text_field("law", STRING | STORED),
        access: b.add_text_field("access", STRING | STORED),
        date: b.add_i64_field("date", INDEXED | STORED | FAST),
        // Titles are searched as a second value of the text fields: one field per analysis
        // keeps BM25 queries at half the terms (the latency budget at 100k passages).
        title: b.add_text_field("title", STORED),
        locator: b.add_text_field("locator", STRING | STORED),
        text: b.add_text_field("text", analysed(KO_MORPH, true)),
        text_bigram: b.add_text_field("text_bigram", analysed(KO_BIGRAM, false)),
        start: b.add_u64_field("start", STORED),
        end: b.add_u64_field("end", STORED),
    };
    (b.build(), fields)
}

/// A BM25 hit before fusion.
#[derive(Debug, Clone)]
pub struct LexicalHit {
    pub id: u64,
    pub score: f32,
}

/// The tantivy index of passages.
pub struct LexicalIndex {
    index: Index,
    reader: IndexReader,
    writer: std::sync::Mutex<IndexWriter<TantivyDocument>>,
    fields: Fields,
    /// Law and kind of every document of a segment, read once from the postings of those
    /// fields (segments never change, so this is valid as long as the segment lives).
    facet_columns: Mutex<HashMap<SegmentId, Arc<FacetColumns>>>,
}

/// Passages matching a query and how they spread over laws and document kinds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FacetCounts {
    pub total: usize,
    /// Law name → passages, for passages that belong to a law.
    pub laws: BTreeMap<String, usize>,
    /// Document kind → passages.
    pub kinds: BTreeMap<String, usize>,
}

/// One segment's `law` and `kind` values by document, as ordinals into `names`.
struct FacetColumns {
    law_names: Vec<String>,
    /// `u32::MAX`: no law.
    law: Vec<u32>,
    kind_names: Vec<String>,
    kind: Vec<u32>,
}

impl FacetColumns {
    /// Un-inverts the postings of the two fields: every document appears under at most
    /// one term of each.
    fn read(segment: &SegmentReader, fields: &Fields) -> tantivy::Result<FacetColumns> {
        let max_doc = segment.max_doc() as usize;
        let column = |field: Field| -> tantivy::Result<(Vec<String>, Vec<u32>)> {
            let inverted = segment.inverted_index(field)?;
            let mut names = Vec::new();
            let mut of_doc = vec![u32::MAX; max_doc];
            let mut terms = inverted.terms().stream()?;
            while terms.advance() {
                let ord = names.len() as u32;
                names.push(String::from_utf8_lossy(terms.key()).into_owned());
                let mut postings = inverted
                    .read_postings_from_terminfo(terms.value(), IndexRecordOption::Basic)?;
                let mut doc = postings.doc();
                while doc != TERMINATED {
                    if let Some(slot) = of_doc.get_mut(doc as usize) {
                        *slot = ord;
                    }
                    doc = postings.advance();
                }
            }
            Ok((names, of_doc))
        };
        let (law_names, law) = column(fields.law)?;
        let (kind_names, kind) = column(fields.kind)?;
        Ok(FacetColumns {
            law_names,
            law,
            kind_names,
            kind,
        })
    }
}

/// Counts matching documents per law and kind ordinal of each segment.
struct FacetCollector {
    columns: Vec<Arc<FacetColumns>>,
}

struct SegmentFacets {
    columns: Arc<FacetColumns>,
    total: usize,
    law: Vec<usize>,
    kind: Vec<usize>,
}

impl Collector for FacetCollector {
    type Fruit = FacetCounts;
    type Child = SegmentFacets;

    fn for_segment(&self, ord: u32, _: &SegmentReader) -> tantivy::Result<SegmentFacets> {
        let columns = self.columns[ord as usize].clone();
        Ok(SegmentFacets {
            law: vec![0; columns.law_names.len()],
            kind: vec![0; columns.kind_names.len()],
            columns,
            total: 0,
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<FacetCounts>) -> tantivy::Result<FacetCounts> {
        let mut all = FacetCounts::default();
        for f in fruits {
            all.total += f.total;
            for (k, n) in f.laws {
                *all.laws.entry(k).or_default() += n;
            }
            for (k, n) in f.kinds {
                *all.kinds.entry(k).or_default() += n;
            }
        }
        Ok(all)
    }
}

impl SegmentCollector for SegmentFacets {
    type Fruit = FacetCounts;

    fn collect(&mut self, doc: DocId, _: Score) {
        self.total += 1;
        let c = &self.columns;
        if let Some(&ord) = c.law.get(doc as usize).filter(|&&o| o != u32::MAX) {
            self.law[ord as usize] += 1;
        }
        if let Some(&ord) = c.kind.get(doc as usize).filter(|&&o| o != u32::MAX) {
            self.kind[ord as usize] += 1;
        }
    }

    fn harvest(self) -> FacetCounts {
        let named = |names: &[String], counts: Vec<usize>| {
            names
                .iter()
                .zip(counts)
                .filter(|(_, n)| *n > 0)
                .map(|(k, n)| (k.clone(), n))
                .collect()
        };
        FacetCounts {
            total: self.total,
            laws: named(&self.columns.law_names, self.law),
            kinds: named(&self.columns.kind_names, self.kind),
        }
    }
}

fn tv(e: tantivy::TantivyError) -> Error {
    Error::Index(e.to_string())
}

impl LexicalIndex {
    /// Opens or creates the index in `dir`; `register` installs the Korean tokenizers.
    pub fn open(dir: &Path, register: impl FnOnce(&Index)) -> Result<LexicalIndex> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let (schema, fields) = schema();
        let directory = tantivy::directory::MmapDirectory::open(dir)
            .map_err(|e| Error::Index(format!("{}: {e}", dir.display())))?;
        let index = Index::open_or_create(directory, schema).map_err(tv)?;
        register(&index);
        // One indexing thread: the machine has two cores and embedding needs the other.
        let writer = index
            .writer_with_num_threads(1, 64 * 1024 * 1024)
            .map_err(tv)?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(tv)?;
        Ok(LexicalIndex {
            index,
            reader,
            writer: std::sync::Mutex::new(writer),
            fields,
            facet_columns: Mutex::new(HashMap::new()),
        })
    }

    fn writer(&self) -> std::sync::MutexGuard<'_, IndexWriter<TantivyDocument>> {
        // A panic while holding the writer leaves nothing half-applied that a commit would
        // publish (tantivy only publishes on commit), so the poisoned guard is safe to reuse.
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stages deletion of every passage of `doc`; visible after [`commit`](Self::commit).
    pub fn delete_doc(&self, doc: &str) {
        self.writer()
            .delete_term(Term::from_field_text(self.fields.doc, doc));
    }

    /// Stages one passage; visible after [`commit`](Self::commit).
    pub fn add(&self, p: &StoredPassage) -> Result<()> {
        let f = &self.fields;
        let mut d = doc!(
            f.id => p.id,
            f.doc => p.doc.as_str(),
            f.kind => p.kind.as_str(),
            f.access => p.access.as_str(),
            f.title => p.title.as_str(),
            f.locator => p.locator.as_str(),
            // The passage first: stored-field reads take the first value.
            f.text => p.text.as_str(),
            f.text => p.title.as_str(),
            f.text_bigram => p.text.as_str(),
            f.text_bigram => p.title.as_str(),
            f.start => p.start,
            f.end => p.end,
        );
        if let Some(law) = &p.law {
            d.add_text(f.law, law);
        }
        if let Some(date) = p.date {
            d.add_i64(f.date, date);
        }
        self.writer().add_document(d).map_err(tv)?;
        Ok(())
    }

    /// Makes staged changes durable and visible, atomically.
    pub fn commit(&self) -> Result<()> {
        self.writer().commit().map_err(tv)?;
        self.reader.reload().map_err(tv)
    }

    /// The filter as a query that scores nothing; an empty access list matches nothing.
    fn filter_query(&self, filter: &SearchFilter) -> Box<dyn Query> {
        let f = &self.fields;
        if filter.access.is_empty() {
            return Box::new(EmptyQuery);
        }
        let mut must: Vec<(Occur, Box<dyn Query>)> = vec![(
            Occur::Must,
            Box::new(TermSetQuery::new(
                filter
                    .access
                    .iter()
                    .map(|a| Term::from_field_text(f.access, a.as_str())),
            )),
        )];
        if !filter.kinds.is_empty() {
            must.push((
                Occur::Must,
                Box::new(TermSetQuery::new(
                    filter
                        .kinds
                        .iter()
                        .map(|k| Term::from_field_text(f.kind, k)),
                )),
            ));
        }
        for (field, value) in [(f.law, &filter.law), (f.doc, &filter.doc)] {
            if let Some(v) = value {
                must.push((
                    Occur::Must,
                    Box::new(TermQuery::new(
                        Term::from_field_text(field, v),
                        IndexRecordOption::Basic,
                    )),
                ));
            }
        }
        if filter.date_from.is_some() || filter.date_to.is_some() {
            let bound = |v: Option<i64>| match v {
                Some(v) => Bound::Included(Term::from_field_i64(f.date, v)),
                None => Bound::Unbounded,
            };
            must.push((
                Occur::Must,
                Box::new(RangeQuery::new(
                    bound(filter.date_from),
                    bound(filter.date_to),
                )),
            ));
        }
        Box::new(ConstScoreQuery::new(Box::new(BooleanQuery::new(must)), 0.0))
    }

    /// The BM25 part: every analysed term of the question, over the configured fields.
    fn text_query(&self, question: &str, lexical: LexicalFields) -> Result<Box<dyn Query>> {
        let f = &self.fields;
        let mut fields: Vec<Field> = Vec::new();
        if matches!(lexical, LexicalFields::Morph | LexicalFields::Both) {
            fields.push(f.text);
        }
        if matches!(lexical, LexicalFields::Bigram | LexicalFields::Both) {
            fields.push(f.text_bigram);
        }
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        for field in fields {
            let mut analyzer = self.index.tokenizer_for_field(field).map_err(tv)?;
            let mut terms = BTreeSet::new();
            let mut stream = analyzer.token_stream(question);
            while let Some(token) = stream.next() {
                terms.insert(token.text.clone());
            }
            for t in terms {
                let q = TermQuery::new(
                    Term::from_field_text(field, &t),
                    IndexRecordOption::WithFreqs,
                );
                clauses.push((Occur::Should, Box::new(q)));
            }
        }
        Ok(Box::new(BooleanQuery::new(clauses)))
    }

    /// Top `k` passages by BM25 among those the filter allows.
    pub fn search(
        &self,
        question: &str,
        lexical: LexicalFields,
        k: usize,
        filter: &SearchFilter,
    ) -> Result<Vec<LexicalHit>> {
        let query = BooleanQuery::new(vec![
            (Occur::Must, self.text_query(question, lexical)?),
            (Occur::Must, self.filter_query(filter)),
        ]);
        let searcher = self.reader.searcher();
        let top = searcher
            .search(&query, &TopDocs::with_limit(k.max(1)).order_by_score())
            .map_err(tv)?;
        // Ids come from the fast field: reading stored documents for every candidate would
        // decompress a doc-store block each and cost more than the search itself.
        let mut columns = Vec::with_capacity(searcher.segment_readers().len());
        for segment in searcher.segment_readers() {
            columns.push(segment.fast_fields().u64("id").map_err(tv)?);
        }
        Ok(top
            .into_iter()
            .filter_map(|(score, addr)| {
                let id = columns.get(addr.segment_ord as usize)?.first(addr.doc_id)?;
                Some(LexicalHit { id, score })
            })
            .collect())
    }

    /// How many passages the filter allows that match `question` (any of its terms), and
    /// how they spread over laws and kinds: one query, counted by a collector that reads
    /// each document's law and kind from per-segment columns, so nothing outside the
    /// filter is ever counted.
    pub fn facet_counts(
        &self,
        question: &str,
        lexical: LexicalFields,
        filter: &SearchFilter,
    ) -> Result<FacetCounts> {
        // An empty question counts everything the filter allows.
        let query: Box<dyn Query> = if question.trim().is_empty() {
            self.filter_query(filter)
        } else {
            Box::new(BooleanQuery::new(vec![
                (Occur::Must, self.text_query(question, lexical)?),
                (Occur::Must, self.filter_query(filter)),
            ]))
        };
        let searcher = self.reader.searcher();
        let columns = {
            let mut cache = self.facet_columns.lock().unwrap_or_else(|p| p.into_inner());
            let mut columns = Vec::with_capacity(searcher.segment_readers().len());
            for segment in searcher.segment_readers() {
                let id = segment.segment_id();
                let c = match cache.get(&id) {
                    Some(c) => c.clone(),
                    None => {
                        let c = Arc::new(FacetColumns::read(segment, &self.fields).map_err(tv)?);
                        cache.insert(id, c.clone());
                        c
                    }
                };
                columns.push(c);
            }
            // Forget segments merged away since.
            let live: std::collections::HashSet<SegmentId> = searcher
                .segment_readers()
                .iter()
                .map(|s| s.segment_id())
                .collect();
            cache.retain(|id, _| live.contains(id));
            columns
        };
        searcher
            .search(query.as_ref(), &FacetCollector { columns })
            .map_err(tv)
    }

    /// Every stored passage of a source document that the filter allows, in no order.
    pub fn passages_of_doc(&self, doc: &str, filter: &SearchFilter) -> Result<Vec<StoredPassage>> {
        let searcher = self.reader.searcher();
        let query = BooleanQuery::new(vec![
            (
                Occur::Must,
                Box::new(TermQuery::new(
                    Term::from_field_text(self.fields.doc, doc),
                    IndexRecordOption::Basic,
                )) as Box<dyn Query>,
            ),
            (Occur::Must, self.filter_query(filter)),
        ]);
        let mut out = Vec::new();
        for addr in searcher.search(&query, &DocSetCollector).map_err(tv)? {
            let d: TantivyDocument = searcher.doc(addr).map_err(tv)?;
            out.push(self.passage_of(&d));
        }
        Ok(out)
    }

    /// The terms the morpheme (or, with `bigram`, the bigram) field makes of `text`, in order,
    /// repeats included: callers score text with exactly the analysis the index uses.
    pub fn analyse(&self, text: &str, bigram: bool) -> Result<Vec<String>> {
        let field = if bigram {
            self.fields.text_bigram
        } else {
            self.fields.text
        };
        let mut analyzer = self.index.tokenizer_for_field(field).map_err(tv)?;
        let mut stream = analyzer.token_stream(text);
        let mut out = Vec::new();
        while let Some(token) = stream.next() {
            out.push(token.text.clone());
        }
        Ok(out)
    }

    /// Passages the filter allows that contain the morpheme (or bigram) `term`: document
    /// frequencies that count only what the caller may see.
    pub fn doc_freq(&self, term: &str, bigram: bool, filter: &SearchFilter) -> Result<usize> {
        let field = if bigram {
            self.fields.text_bigram
        } else {
            self.fields.text
        };
        let query = TermQuery::new(Term::from_field_text(field, term), IndexRecordOption::Basic);
        self.count_matching(Box::new(query), filter)
    }

    /// Passages the filter allows that match `query`.
    fn count_matching(&self, query: Box<dyn Query>, filter: &SearchFilter) -> Result<usize> {
        let query = BooleanQuery::new(vec![
            (Occur::Must, query),
            (Occur::Must, self.filter_query(filter)),
        ]);
        self.reader.searcher().search(&query, &Count).map_err(tv)
    }

    /// Whether a passage the filter allows mentions `word` (a noun as [`Self::analyse`]
    /// spells it): as a morpheme; inside a longer word (its Hangul bigrams in a row: 저영 in
    /// 저영양, 대장균 in 대장균군); or, for a word of three or more characters, with one
    /// character mistyped (식품의약퓸 for 식품의약품). Only a substitution counts: a word one
    /// character longer or shorter is another word (멜라토닌 and 멜라닌), and so is a
    /// two-character word one character off (라돈, 라면). A word written together also
    /// matches where the passage writes it apart at one point, with a space or an interpunct
    /// (즉석판매제조가공업, 즉석판매제조ㆍ가공업).
    pub fn mentions(&self, word: &str, filter: &SearchFilter) -> Result<bool> {
        if self.doc_freq(word, false, filter)? > 0 {
            return Ok(true);
        }
        let field = self.fields.text_bigram;
        let mut analyzer = self.index.tokenizer_for_field(field).map_err(tv)?;
        let mut stream = analyzer.token_stream(word);
        let mut grams: Vec<(usize, Term)> = Vec::new();
        while let Some(t) = stream.next() {
            grams.push((t.position, Term::from_field_text(field, &t.text)));
        }
        let inside: Option<Box<dyn Query>> = match grams.len() {
            0 => None,
            1 => Some(Box::new(TermQuery::new(
                grams[0].1.clone(),
                IndexRecordOption::Basic,
            ))),
            _ => Some(Box::new(PhraseQuery::new_with_offset(grams.clone()))),
        };
        if let Some(q) = inside {
            if self.count_matching(q, filter)? > 0 {
                return Ok(true);
            }
        }
        // Written apart at one point (즉석판매제조가공업 for 즉석판매제조ㆍ가공업, 제조 가공업):
        // the bigram that spans the gap is missing there, and the ones after it move up by one
        // (a space) or stay (ㆍ, a letter, is a token of its own).
        for gap in 1..grams.len().saturating_sub(1) {
            for shift in [0, 1] {
                let apart: Vec<(usize, Term)> = grams
                    .iter()
                    .enumerate()
                    .filter(|&(i, _)| i != gap)
                    .map(|(i, (at, term))| (if i > gap { at - shift } else { *at }, term.clone()))
                    .collect();
                let query = PhraseQuery::new_with_offset(apart);
                if self.count_matching(Box::new(query), filter)? > 0 {
                    return Ok(true);
                }
            }
        }
        let chars: Vec<char> = word.chars().collect();
        if chars.len() < 3 || !chars.iter().all(|c| c.is_alphanumeric()) {
            return Ok(false);
        }
        for i in 0..chars.len() {
            let pattern: String = chars
                .iter()
                .enumerate()
                .map(|(j, &c)| if i == j { '.' } else { c })
                .collect();
            let query = RegexQuery::from_pattern(&pattern, self.fields.text).map_err(tv)?;
            if self.count_matching(Box::new(query), filter)? > 0 {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Number of passages the filter allows.
    pub fn count(&self, filter: &SearchFilter) -> Result<usize> {
        self.reader
            .searcher()
            .search(self.filter_query(filter).as_ref(), &Count)
            .map_err(tv)
    }

    /// Stored passages by id, in the order asked; unknown ids are left out.
    pub fn get(&self, ids: &[u64]) -> Result<Vec<StoredPassage>> {
        let searcher = self.reader.searcher();
        let mut out = Vec::with_capacity(ids.len());
        for &id in ids {
            let q = TermQuery::new(
                Term::from_field_u64(self.fields.id, id),
                IndexRecordOption::Basic,
            );
            if let Some((_, addr)) = searcher
                .search(&q, &TopDocs::with_limit(1).order_by_score())
                .map_err(tv)?
                .into_iter()
                .next()
            {
                let d: TantivyDocument = searcher.doc(addr).map_err(tv)?;
                out.push(self.passage_of(&d));
            }
        }
        Ok(out)
    }

    /// Passage ids stored for a source document (consistency checks).
    pub fn ids_of_doc(&self, doc: &str) -> Result<Vec<u64>> {
        let searcher = self.reader.searcher();
        let q = TermQuery::new(
            Term::from_field_text(self.fields.doc, doc),
            IndexRecordOption::Basic,
        );
        let mut ids = Vec::new();
        for addr in searcher.search(&q, &DocSetCollector).map_err(tv)? {
            let d: TantivyDocument = searcher.doc(addr).map_err(tv)?;
            ids.extend(u64_of(&d, self.fields.id));
        }
        ids.sort_unstable();
        Ok(ids)
    }

    /// A highlighter for `question` over passage text, using the passage field's analyzer.
    pub fn highlighter(&self, question: &str) -> Result<Highlighter> {
        let analyzer = self
            .index
            .tokenizer_for_field(self.fields.text)
            .map_err(tv)?;
        Ok(Highlighter::new(analyzer, question))
    }

    fn passage_of(&self, d: &TantivyDocument) -> StoredPassage {
        let f = &self.fields;
        let text = |field| str_of(d, field).unwrap_or_default();
        StoredPassage {
            id: u64_of(d, f.id).unwrap_or_default(),
            doc: text(f.doc),
            kind: text(f.kind),
            law: str_of(d, f.law),
            access: text(f.access),
            date: d.get_first(f.date).and_then(|v| match OwnedValue::from(v) {
                OwnedValue::I64(i) => Some(i),
                _ => None,
            }),
            title: text(f.title),
            locator: text(f.locator),
            text: text(f.text),
            start: u64_of(d, f.start).unwrap_or_default(),
            end: u64_of(d, f.end).unwrap_or_default(),
        }
    }
}

fn u64_of(d: &TantivyDocument, f: Field) -> Option<u64> {
    d.get_first(f).and_then(|v| match OwnedValue::from(v) {
        OwnedValue::U64(u) => Some(u),
        _ => None,
    })
}

fn str_of(d: &TantivyDocument, f: Field) -> Option<String> {
    d.get_first(f).and_then(|v| match OwnedValue::from(v) {
        OwnedValue::Str(s) => Some(s),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::Access;

    fn passage(id: u64, access: &str, text: &str) -> StoredPassage {
        StoredPassage {
            id,
            doc: format!("{id}.md"),
            kind: "text".into(),
            law: None,
            access: access.into(),
            date: None,
            title: String::new(),
            locator: String::new(),
            text: text.into(),
            start: 0,
            end: text.len() as u64,
        }
    }

    #[test]
    fn mentions_reach_inside_words_and_past_typos_but_not_to_other_words() {
        let dir = tempfile::tempdir().unwrap();
        let index = LexicalIndex::open(dir.path(), |idx| {
            crate::analyzer::register(idx, crate::analyzer::test_support::dictionary())
        })
        .unwrap();
        let public_text =
            "고열량ㆍ저영양 식품은 식품의약품안전처장이 정한다. 멜라닌색소 침착을 방지한다. \
             즉석판매제조ㆍ가공업을 하려는 자는 식품접객 영업자와 같이 신고하여야 한다.";
        index.add(&passage(1, "public", public_text)).unwrap();
        index
            .add(&passage(2, "internal", "가나다식품 현장점검 결과"))
            .unwrap();
        index.commit().unwrap();
        let public = SearchFilter {
            access: vec![Access::Public],
            ..Default::default()
        };
        let officials = SearchFilter {
            access: vec![Access::Public, Access::Internal],
            ..Default::default()
        };
        let mentions = |word: &str, filter: &SearchFilter| index.mentions(word, filter).unwrap();
        assert!(mentions("식품", &public), "a morpheme");
        assert!(mentions("저영", &public), "inside 저영양");
        assert!(
            mentions("식품의약퓸안전처", &public),
            "one syllable mistyped"
        );
        assert!(!mentions("멜라토닌", &public), "멜라닌 is another word");
        assert!(!mentions("라돈", &public));
        assert!(
            mentions("즉석판매제조가공업", &public),
            "written apart at one point"
        );
        assert!(mentions("고열량저영양", &public));
        assert!(mentions("식품접객영업자", &public), "apart at a space");
        assert!(
            !mentions("고열량저가공", &public),
            "apart, but not the same word"
        );
        // what only an internal document says is unknown to the public
        assert!(!mentions("가나다식품", &public));
        assert!(mentions("가나다식품", &officials));
    }
}
