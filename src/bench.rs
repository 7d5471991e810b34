//! Benchmarks that print figures: retrieval quality on a question set (recall@k, MRR per
//! ranking mode), search latency percentiles on an index scaled to a passage count, and the
//! LLM engine's prefill/decode speed.

use crate::config::{Config, LexicalFields, SearchMode};
use crate::error::Result;
use crate::filter::{Access, SearchFilter};
use crate::index::{Index, SearchRequest};
use serde::Serialize;
use std::path::Path;
use std::time::Instant;

/// One question of a `dev.jsonl`-style set (the eval suite's type).
pub use anjeon_eval::QaItem as Question;

/// Reads a JSON-lines question set (answerable questions must name their gold document and
/// quote; ids are unique).
pub fn load_questions(path: &Path) -> Result<Vec<Question>> {
    Ok(anjeon_eval::load_questions(path)?)
}

/// Retrieval quality of one ranking configuration.
#[derive(Debug, Clone, Serialize)]
pub struct RetrievalScore {
    pub mode: String,
    pub questions: usize,
    /// Share of questions whose gold document is among the top k hits.
    pub recall_doc: f64,
    /// Share of questions whose gold quote lies in one of the top k passages.
    pub recall_quote: f64,
    /// Mean reciprocal rank of the first hit from the gold document.
    pub mrr_doc: f64,
    /// Mean latency per query, including query embedding for dense and hybrid.
    pub mean_ms: f64,
}

/// Whitespace, Markdown escapes and `**` removed, so quotes match parsed text.
fn squash(s: &str) -> String {
    s.replace("\\.", ".")
        .replace("**", "")
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '\\')
        .collect()
}

/// Scores every ranking configuration on the answerable questions, BM25 scored by tantivy
/// and, as `qdrant.lexical` does, by Qdrant from the passages' sparse vectors.
pub fn retrieval(
    index: &mut Index,
    questions: &[Question],
    k: usize,
) -> Result<Vec<RetrievalScore>> {
    let configs = [
        (
            "bm25 (morph)",
            SearchMode::Bm25,
            LexicalFields::Morph,
            false,
        ),
        (
            "bm25 (bigram)",
            SearchMode::Bm25,
            LexicalFields::Bigram,
            false,
        ),
        ("bm25 (both)", SearchMode::Bm25, LexicalFields::Both, false),
        ("dense", SearchMode::Dense, LexicalFields::Both, false),
        (
            "hybrid (morph)",
            SearchMode::Hybrid,
            LexicalFields::Morph,
            false,
        ),
        (
            "hybrid (both)",
            SearchMode::Hybrid,
            LexicalFields::Both,
            false,
        ),
        (
            "bm25 (both, qdrant)",
            SearchMode::Bm25,
            LexicalFields::Both,
            true,
        ),
        (
            "hybrid (both, qdrant)",
            SearchMode::Hybrid,
            LexicalFields::Both,
            true,
        ),
    ];
    let configured = index.qdrant_lexical();
    let answerable: Vec<&Question> = questions
        .iter()
        .filter(|q| q.answerable && q.gold_doc.is_some())
        .collect();
    let filter = SearchFilter {
        access: vec![Access::Public, Access::Internal],
        ..Default::default()
    };
    let mut scores = Vec::new();
    for (name, mode, lexical, in_qdrant) in configs {
        index.set_qdrant_lexical(in_qdrant);
        let (mut doc_hits, mut quote_hits, mut rr, mut ms) = (0usize, 0usize, 0f64, 0f64);
        for q in &answerable {
            let started = Instant::now();
            let hits = index.search(&SearchRequest {
                query: q.question.clone(),
                top_k: k,
                mode,
                lexical,
                filter: filter.clone(),
            })?;
            ms += started.elapsed().as_secs_f64() * 1e3;
            let gold = q.gold_doc.as_deref().unwrap_or_default();
            if let Some(rank) = hits.iter().position(|h| h.doc == gold) {
                doc_hits += 1;
                rr += 1.0 / (rank as f64 + 1.0);
            }
            if let Some(quote) = &q.gold_quote {
                let quote = squash(quote);
                if hits
                    .iter()
                    .any(|h| h.doc == gold && squash(&h.text).contains(&quote))
                {
                    quote_hits += 1;
                }
            }
        }
        let n = answerable.len().max(1) as f64;
        scores.push(RetrievalScore {
            mode: name.to_string(),
            questions: answerable.len(),
            recall_doc: doc_hits as f64 / n,
            recall_quote: quote_hits as f64 / n,
            mrr_doc: rr / n,
            mean_ms: ms / n,
        });
    }
    index.set_qdrant_lexical(configured);
    Ok(scores)
}

/// Latency percentiles of one mode on the scaled index.
#[derive(Debug, Clone, Serialize)]
pub struct LatencyScore {
    pub mode: String,
    pub passages: usize,
    pub queries: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// Search latency at the index's current size, queries embedded beforehand so that the
/// figures are the search alone; the embedding time is reported separately. BM25 and hybrid
/// are also timed with the BM25 side in Qdrant (`qdrant.lexical`) when the store has sparse
/// vectors.
pub fn search_latency(
    index: &mut Index,
    config: &Config,
    questions: &[Question],
    rounds: usize,
) -> Result<(Vec<LatencyScore>, LatencyScore)> {
    let filter = SearchFilter {
        access: vec![Access::Public],
        ..Default::default()
    };
    let passages = index.passage_count()?;
    // The first query loads the model; that is start-up, not query latency.
    index.embed_query("warm-up")?;
    let mut embed_times = Vec::new();
    let mut vectors = Vec::new();
    for q in questions {
        let started = Instant::now();
        vectors.push(index.embed_query(&q.question)?);
        embed_times.push(started.elapsed().as_secs_f64() * 1e3);
    }
    let mut out = Vec::new();
    let configured = index.qdrant_lexical();
    let mut runs = vec![
        ("bm25", SearchMode::Bm25, false),
        ("dense", SearchMode::Dense, false),
        ("hybrid", SearchMode::Hybrid, false),
    ];
    if index.has_sparse_vectors() {
        runs.extend([
            ("bm25 (qdrant)", SearchMode::Bm25, true),
            ("hybrid (qdrant)", SearchMode::Hybrid, true),
        ]);
    }
    for (name, mode, in_qdrant) in runs {
        index.set_qdrant_lexical(in_qdrant);
        let mut times = Vec::new();
        for _ in 0..rounds.max(1) {
            for (q, v) in questions.iter().zip(&vectors) {
                let req = SearchRequest {
                    query: q.question.clone(),
                    top_k: config.search.top_k,
                    mode,
                    lexical: config.search.lexical,
                    filter: filter.clone(),
                };
                let started = Instant::now();
                index.search_with_vector(&req, Some(v))?;
                times.push(started.elapsed().as_secs_f64() * 1e3);
            }
        }
        out.push(percentiles(name, passages, times));
    }
    index.set_qdrant_lexical(configured);
    let embed = percentiles("query embedding", passages, embed_times);
    Ok((out, embed))
}

fn percentiles(mode: &str, passages: usize, mut times: Vec<f64>) -> LatencyScore {
    times.sort_by(f64::total_cmp);
    let at = |p: f64| anjeon_eval::percentile(&times, p).unwrap_or_default();
    LatencyScore {
        mode: mode.to_string(),
        passages,
        queries: times.len(),
        p50_ms: at(0.5),
        p99_ms: at(0.99),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_ranks() {
        let s = percentiles("x", 1, (1..=100).map(f64::from).collect());
        assert_eq!(s.p50_ms, 51.0);
        assert_eq!(s.p99_ms, 99.0);
    }

    #[test]
    fn quotes_match_across_markdown_escapes() {
        assert!(squash("1\\. 장티푸스\n 2\\. 파라티푸스")
            .contains(&squash("1. 장티푸스 2. 파라티푸스")));
    }
}

/// Speed of the LLM engine, in the shape `benches/generate.sh` compares with llama-bench.
#[derive(Debug, Clone, Serialize)]
pub struct GenerateScore {
    pub model: String,
    pub threads: usize,
    pub prompt_tokens: usize,
    pub gen_tokens: usize,
    pub prefill_tok_s: f64,
    pub decode_tok_s: f64,
    /// Prefill plus choosing the first token.
    pub ttft_ms: f64,
}

/// Korean text the benchmark prompt is made of (our own sentences).
const BENCH_TEXT: &str =
    "식품의약품안전처는 국민이 안심하고 먹을 수 있도록 식품과 의약품의 안전을 관리한다. \
    건강기능식품을 고를 때에는 기능성 원료와 섭취량, 주의사항을 꼼꼼히 확인해야 한다. \
    부적합 판정을 받은 제품은 회수되며, 소비자는 구입처에 반품하거나 신고할 수 있다. ";

/// Prefill of `prompt_tokens` tokens on a fresh cache, then `gen_tokens` greedy decode
/// steps (never stopping early, like llama-bench); the median of `repetitions` runs.
pub fn generate(
    llm: &crate::llm::Llm,
    prompt_tokens: usize,
    gen_tokens: usize,
    repetitions: usize,
) -> Result<GenerateScore> {
    use crate::llm::{sample::argmax, Logits};
    let mut prompt = llm.encode(BENCH_TEXT)?;
    let body = llm.tokenizer.encode(BENCH_TEXT, false, false)?;
    while prompt.len() < prompt_tokens {
        prompt.extend_from_slice(&body);
    }
    prompt.truncate(prompt_tokens.max(1));
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (mut prefill, mut decode, mut ttft) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..repetitions.max(1) {
        let mut cache = llm.model.new_cache();
        let start = Instant::now();
        let logits = llm.forward(&prompt, &mut cache, Logits::Last)?;
        let mut next = argmax(&logits);
        let prefill_s = start.elapsed().as_secs_f64();
        ttft.push(prefill_s * 1e3);
        prefill.push(prompt.len() as f64 / prefill_s);
        let start = Instant::now();
        for _ in 0..gen_tokens {
            next = argmax(&llm.forward(&[next], &mut cache, Logits::Last)?);
        }
        decode.push(gen_tokens as f64 / start.elapsed().as_secs_f64());
    }
    Ok(GenerateScore {
        model: llm.name().to_string(),
        threads: llm.threads(),
        prompt_tokens: prompt.len(),
        gen_tokens,
        prefill_tok_s: median(prefill),
        decode_tok_s: median(decode),
        ttft_ms: median(ttft),
    })
}
