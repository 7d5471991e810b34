//! Calibration of the answer thresholds on a question set (run by hand, prints figures):
//! rerank weights by gold-passage rank, and the refusal threshold on relevance.

use super::retrieve::{retrieve, Pool, QuestionTerms, RerankWeights, Scored};
use super::text::{bigram_containment, squash};
use crate::bench::{load_questions, Question};
use crate::config::Config;
use crate::filter::{Access, SearchFilter};
use crate::index::Index;

fn is_gold(q: &Question, s: &Scored) -> bool {
    match (&q.gold_doc, &q.gold_quote) {
        (Some(d), Some(quote)) => {
            let quote = quote.replace("\\.", ".");
            &s.hit.doc == d
                && (squash(&s.hit.text)
                    .iter()
                    .collect::<String>()
                    .contains(&squash(&quote).iter().collect::<String>())
                    || bigram_containment(&quote, &s.hit.text) >= 0.9)
        }
        _ => false,
    }
}

/// The index named by `ANJEON_RAG_DATA`, the dev questions, and the public caller's filter.
fn dev_setup() -> (Index, Vec<Question>, SearchFilter) {
    let data = std::env::var("ANJEON_RAG_DATA").expect("ANJEON_RAG_DATA: an index of the corpus");
    let config = Config {
        data_dir: data.into(),
        cache_dir: crate::test_cache_dir(),
        ..Default::default()
    };
    let index = Index::open(&config).expect("index");
    let qa = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/qa/dev.jsonl");
    let questions = load_questions(&qa).expect("questions");
    let filter = SearchFilter {
        access: vec![Access::Public],
        ..Default::default()
    };
    (index, questions, filter)
}

/// The question's terms and its `n` hybrid candidates, scored with the default answer
/// settings (reranked when `rerank`, else in the fused order).
fn candidates(
    index: &Index,
    q: &Question,
    filter: &SearchFilter,
    n: usize,
    rerank: bool,
) -> (QuestionTerms, Vec<Scored>) {
    let weights = RerankWeights::of(&crate::config::AnswerConfig::default());
    let terms = QuestionTerms::new(index, &q.question, filter).expect("terms");
    let pool = Pool {
        candidates: n,
        agent_candidates: n,
    };
    let ranked =
        retrieve(index, &q.question, &terms, filter, pool, &weights, rerank).expect("retrieve");
    (terms, ranked)
}

/// `ANJEON_RAG_DATA=/tmp/answer-data cargo test --lib calibrate_on_dev -- --ignored --nocapture`
#[test]
#[ignore]
fn calibrate_on_dev() {
    let (index, questions, filter) = dev_setup();
    let per_question: Vec<(&Question, Vec<Scored>)> = questions
        .iter()
        .map(|q| (q, candidates(&index, q, &filter, 30, false).1))
        .collect();
    println!("weight  floor  top1(gold)  mrr(gold)  | threshold sweep: t answered-answerable refused-unanswerable");
    for floor in [0.70f32, 0.75, 0.80] {
        for w in [0.0f32, 0.25, 0.4, 0.5, 0.6, 0.75, 1.0] {
            let weights = RerankWeights {
                coverage: w,
                cosine_floor: floor,
                cosine_ceiling: 0.92,
                definition: 0.0,
                agent: 0.0,
            };
            let mut top1 = 0;
            let mut mrr = 0.0;
            let mut best_answerable = Vec::new();
            let mut best_unanswerable = Vec::new();
            for (q, ranked) in &per_question {
                let mut order: Vec<(f32, &Scored)> = ranked
                    .iter()
                    .map(|s| (weights.relevance(s.coverage, s.cosine), s))
                    .collect();
                order.sort_by(|a, b| b.0.total_cmp(&a.0));
                if let Some(rank) = order.iter().position(|(_, s)| is_gold(q, s)) {
                    top1 += usize::from(rank == 0);
                    mrr += 1.0 / (rank + 1) as f64;
                }
                let best = order.first().map(|o| o.0).unwrap_or(0.0);
                if q.answerable {
                    best_answerable.push(best);
                } else {
                    best_unanswerable.push(best);
                }
            }
            let n = best_answerable.len();
            let mut sweep = String::new();
            for t in [0.3f32, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7] {
                let answered = best_answerable.iter().filter(|&&b| b >= t).count();
                let refused = best_unanswerable.iter().filter(|&&b| b < t).count();
                sweep.push_str(&format!(" {t:.2}:{answered}/{refused}"));
            }
            println!(
                "{w:.2}  {floor:.2}  {top1:>2}/{n}  {:.3}  |{sweep}",
                mrr / n as f64
            );
        }
    }
    println!("fused order (no rerank):");
    let mut top1 = 0;
    let mut mrr = 0.0;
    for (q, ranked) in &per_question {
        if let Some(rank) = ranked.iter().position(|s| is_gold(q, s)) {
            top1 += usize::from(rank == 0);
            mrr += 1.0 / (rank + 1) as f64;
        }
    }
    println!("top1 {top1}, mrr {:.3}", mrr / 26.0);
    for (q, ranked) in &per_question {
        let gold = ranked.iter().position(|s| is_gold(q, s));
        let top = &ranked[..ranked.len().min(3)];
        let feats: Vec<String> = top
            .iter()
            .map(|s| format!("cov {:.2} cos {:.3}", s.coverage, s.cosine.unwrap_or(0.0)))
            .collect();
        println!(
            "{} {} gold@{gold:?} {}",
            q.id,
            q.answerable,
            feats.join(" | ")
        );
    }
}

/// Which questions name something no readable passage mentions (refused as an unknown
/// subject), answerable or not.
/// `ANJEON_RAG_DATA=/tmp/full cargo test --lib unknown_subjects_on_dev -- --ignored --nocapture`
#[test]
#[ignore]
fn unknown_subjects_on_dev() {
    let (index, questions, filter) = dev_setup();
    let (mut answerable, mut unanswerable) = (0, 0);
    for q in &questions {
        let terms = QuestionTerms::new(&index, &q.question, &filter).expect("terms");
        if terms.unknown.is_empty() {
            continue;
        }
        if q.answerable {
            answerable += 1;
        } else {
            unanswerable += 1;
        }
        println!(
            "{} answerable {} unknown {:?}",
            q.id, q.answerable, terms.unknown
        );
    }
    println!("unknown subject: {answerable} answerable, {unanswerable} unanswerable questions");
}

/// What tells a wrong first passage from a right one: the first passage's features per
/// question; with `ANJEON_DUMP=FILE` also the 30 best candidates of each, as JSON lines.
/// `ANJEON_RAG_DATA=/tmp/full cargo test --lib abstain_features_on_dev -- --ignored --nocapture`
#[test]
#[ignore]
fn abstain_features_on_dev() {
    let (index, questions, filter) = dev_setup();
    let config = crate::config::AnswerConfig::default();
    for q in &questions {
        let (terms, ranked) = candidates(&index, q, &filter, config.candidates, true);
        if let Ok(path) = std::env::var("ANJEON_DUMP") {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .expect("dump");
            let (_, wide) = candidates(&index, q, &filter, 30, true);
            for s in &wide {
                let row = serde_json::json!({"id": q.id, "answerable": q.answerable,
                    "question": q.question, "gold": is_gold(q, s), "doc": s.hit.doc,
                    "title": s.hit.title, "locator": s.hit.locator, "text": s.hit.text,
                    "coverage": s.coverage, "cosine": s.cosine, "bm25": s.bm25,
                    "relevance": s.relevance, "sentences": super::text::sentences(&s.hit.text)});
                writeln!(f, "{row}").expect("write");
            }
        }
        let Some(top) = ranked.first() else { continue };
        let rank_by = |key: &dyn Fn(&Scored) -> f32| {
            let mut order: Vec<&Scored> = ranked.iter().collect();
            order.sort_by(|a, b| key(b).total_cmp(&key(a)));
            order
                .iter()
                .position(|s| s.hit.id == top.hit.id)
                .unwrap_or(99)
                + 1
        };
        let bm25_rank = rank_by(&|s| s.bm25.unwrap_or(0.0));
        let dense_rank = rank_by(&|s| s.cosine.unwrap_or(0.0));
        let second = ranked.get(1);
        let other_doc = ranked
            .iter()
            .skip(1)
            .find(|s| s.hit.doc != top.hit.doc)
            .map(|s| top.relevance - s.relevance)
            .unwrap_or(1.0);
        println!(
            "{} {} {:<5} rel {:.3} cov {:.2} cos {:.3} margin {:.3} otherdoc {:.3} bm25# {} dense# {} unknown {}",
            q.id,
            if q.answerable { "A" } else { "U" },
            if !q.answerable { "-" } else if is_gold(q, top) { "right" } else { "WRONG" },
            top.relevance,
            top.coverage,
            top.cosine.unwrap_or(0.0),
            second.map(|s| top.relevance - s.relevance).unwrap_or(1.0),
            other_doc,
            bm25_rank,
            dense_rank,
            !terms.unknown.is_empty(),
        );
    }
}
