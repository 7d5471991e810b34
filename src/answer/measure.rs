//! The RAG measurements of issue 5 on a question set such as `../shared/qa/dev.jsonl`:
//! hallucination rate, refusal recall, coverage, citation precision and latency per answer.

use super::text::{bigram_containment, squash};
use super::{Answer, AnswerMode, Answerer, AskRequest, Role};
use crate::bench::Question;
use crate::error::Result;
use serde::Serialize;

/// A claim counts as faithful when this share of its character bigrams is in the passages
/// it cites: a strict, model-free check, independent of the verifier's own threshold.
const FAITHFUL_CONTAINMENT: f32 = 0.8;
/// A passage holds the gold quote when this share of the quote's bigrams is in it (passages
/// may cut a long quote at their edge).
const GOLD_CONTAINMENT: f32 = 0.9;

/// One question's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct RagItem {
    pub id: String,
    pub answerable: bool,
    pub refused: bool,
    /// Supported claims shown in the answer.
    pub claims: usize,
    /// Shown claims whose cited passages do not contain them (strict check).
    pub unfaithful_claims: usize,
    /// Citations of the answer, and how many hold the gold quote.
    pub citations: usize,
    pub gold_citations: usize,
    pub first_text_ms: f64,
    pub total_ms: f64,
    pub answer: String,
}

/// The figures of one run.
#[derive(Debug, Clone, Serialize)]
pub struct RagReport {
    pub mode: AnswerMode,
    pub prompt_version: String,
    pub questions: usize,
    pub answerable: usize,
    pub unanswerable: usize,
    /// (unfaithful shown claims + shown claims of answered unanswerable questions) / shown
    /// claims; an answered unanswerable question with no claims counts one.
    pub hallucination_rate: f64,
    /// Unanswerable questions refused / unanswerable questions.
    pub refusal_recall: f64,
    /// Answerable questions answered with at least one citation holding the gold quote /
    /// answerable questions.
    pub coverage: f64,
    /// Citations holding the gold quote / citations, over answered answerable questions.
    pub citation_precision: f64,
    /// Answerable questions refused / answerable questions.
    pub false_refusals: f64,
    pub mean_first_text_ms: f64,
    pub mean_total_ms: f64,
    pub p50_total_ms: f64,
    pub max_total_ms: f64,
    pub items: Vec<RagItem>,
}

/// Answers every question as `role` and scores the answers against the gold documents and
/// quotes. This is what `anjeon eval --suite rag` prints.
pub fn measure(answerer: &Answerer, questions: &[Question], role: Role) -> Result<RagReport> {
    let mut items = Vec::with_capacity(questions.len());
    let mut prompt_version = String::new();
    for q in questions {
        let request = AskRequest {
            question: q.question.clone(),
            role,
            history: Vec::new(),
        };
        let answer = answerer.answer(&request, &mut |_| true)?;
        prompt_version = answer.prompt_version.clone();
        items.push(score(q, &answer));
    }
    Ok(report(answerer.config().mode, prompt_version, items))
}

fn holds_gold(q: &Question, doc: &str, text: &str) -> bool {
    match (&q.gold_doc, &q.gold_quote) {
        (Some(gold_doc), Some(quote)) => {
            let quote = quote.replace("\\.", ".");
            doc == gold_doc
                && (squash(text)
                    .iter()
                    .collect::<String>()
                    .contains(&squash(&quote).iter().collect::<String>())
                    || bigram_containment(&quote, text) >= GOLD_CONTAINMENT)
        }
        _ => false,
    }
}

fn score(q: &Question, a: &Answer) -> RagItem {
    let shown: Vec<_> = if a.refused {
        Vec::new()
    } else {
        a.claims.iter().filter(|c| c.supported).collect()
    };
    let unfaithful = shown
        .iter()
        .filter(|c| {
            let sources: String = a
                .citations
                .iter()
                .filter(|cit| c.citations.contains(&cit.n))
                .map(|cit| cit.text.as_str())
                .collect::<Vec<_>>()
                .join("\n");
            bigram_containment(&c.text, &sources) < FAITHFUL_CONTAINMENT
        })
        .count();
    let (citations, gold) = if a.refused {
        (0, 0)
    } else {
        (
            a.citations.len(),
            a.citations
                .iter()
                .filter(|c| holds_gold(q, &c.doc, &c.text))
                .count(),
        )
    };
    RagItem {
        id: q.id.clone(),
        answerable: q.answerable,
        refused: a.refused,
        claims: shown.len(),
        unfaithful_claims: unfaithful,
        citations,
        gold_citations: gold,
        first_text_ms: a.timings.first_text_ms,
        total_ms: a.timings.total_ms,
        answer: a.answer.clone(),
    }
}

fn ratio(num: usize, den: usize) -> f64 {
    if den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    }
}

fn report(mode: AnswerMode, prompt_version: String, items: Vec<RagItem>) -> RagReport {
    let answerable: Vec<&RagItem> = items.iter().filter(|i| i.answerable).collect();
    let unanswerable: Vec<&RagItem> = items.iter().filter(|i| !i.answerable).collect();
    let shown: usize = items.iter().map(|i| i.claims).sum();
    let mut bad: usize = answerable.iter().map(|i| i.unfaithful_claims).sum();
    let mut denominator = shown;
    for i in unanswerable.iter().filter(|i| !i.refused) {
        bad += i.claims.max(1) - i.unfaithful_claims.min(i.claims);
        denominator += usize::from(i.claims == 0);
    }
    let answered: Vec<&&RagItem> = answerable.iter().filter(|i| !i.refused).collect();
    let mut totals: Vec<f64> = items.iter().map(|i| i.total_ms).collect();
    totals.sort_by(f64::total_cmp);
    let n = items.len().max(1) as f64;
    RagReport {
        mode,
        prompt_version,
        questions: items.len(),
        answerable: answerable.len(),
        unanswerable: unanswerable.len(),
        hallucination_rate: ratio(bad, denominator),
        refusal_recall: ratio(
            unanswerable.iter().filter(|i| i.refused).count(),
            unanswerable.len(),
        ),
        coverage: ratio(
            answered.iter().filter(|i| i.gold_citations > 0).count(),
            answerable.len(),
        ),
        citation_precision: ratio(
            answered.iter().map(|i| i.gold_citations).sum(),
            answered.iter().map(|i| i.citations).sum(),
        ),
        false_refusals: ratio(
            answerable.iter().filter(|i| i.refused).count(),
            answerable.len(),
        ),
        mean_first_text_ms: items.iter().map(|i| i.first_text_ms).sum::<f64>() / n,
        mean_total_ms: items.iter().map(|i| i.total_ms).sum::<f64>() / n,
        p50_total_ms: totals.get(totals.len() / 2).copied().unwrap_or_default(),
        max_total_ms: totals.last().copied().unwrap_or_default(),
        items,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(answerable: bool, refused: bool, claims: usize, gold: usize) -> RagItem {
        RagItem {
            id: String::new(),
            answerable,
            refused,
            claims,
            unfaithful_claims: 0,
            citations: claims,
            gold_citations: gold,
            first_text_ms: 1.0,
            total_ms: 2.0,
            answer: String::new(),
        }
    }

    #[test]
    fn figures_follow_the_definitions() {
        let items = vec![
            item(true, false, 2, 1),
            item(true, false, 1, 0),
            item(true, true, 0, 0),
            item(false, true, 0, 0),
            item(false, false, 1, 0),
        ];
        let r = report(AnswerMode::Extractive, "v".into(), items);
        assert!((r.coverage - 1.0 / 3.0).abs() < 1e-9);
        assert!((r.citation_precision - 1.0 / 3.0).abs() < 1e-9);
        assert!((r.refusal_recall - 0.5).abs() < 1e-9);
        // 4 shown claims, one of them answers an unanswerable question.
        assert!((r.hallucination_rate - 0.25).abs() < 1e-9);
        assert!((r.false_refusals - 1.0 / 3.0).abs() < 1e-9);
    }

    #[test]
    fn gold_quotes_match_across_spacing_and_escapes() {
        let q = Question {
            id: "q".into(),
            question: "?".into(),
            answerable: true,
            gold_doc: Some("a.md".into()),
            gold_quote: Some("영 제21조제2호 및 제8호의 영업을 하려는 자: 6시간".into()),
            reference_answer: String::new(),
            kind: None,
        };
        assert!(holds_gold(
            &q,
            "a.md",
            "가. 영 제21조제2호 및  제8호의 영업을 하려는 자 : 6시간 나."
        ));
        assert!(!holds_gold(
            &q,
            "b.md",
            "영 제21조제2호 및 제8호의 영업을 하려는 자: 6시간"
        ));
        assert!(!holds_gold(
            &q,
            "a.md",
            "영 제21조제1호의 영업을 하려는 자: 8시간"
        ));
    }
}
