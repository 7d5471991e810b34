//! The RAG measurements on a question set such as `../shared/qa/dev.jsonl`: every answer
//! judged against the gold document, quote and reference answer into the eval crate's
//! record, and the figures of `anjeon bench rag` and `anjeon eval --suite rag` computed from
//! those records by `anjeon_eval::rag` (one definition of each figure).

use super::text::{bigram_containment, squash};
use super::{Answer, AnswerMode, Answerer, AskRequest, Role};
use crate::bench::Question;
use crate::error::Result;
use anjeon_eval::rag::{
    item_metrics, reference_overlap, CitationRecord, ClaimRecord, Gold, Judged, QuestionRecord,
    RagMetrics,
};
use serde::Serialize;

/// A claim counts as faithful when this share of its character bigrams is in the passages
/// it cites: a strict, model-free check, independent of the verifier's own threshold.
const FAITHFUL_CONTAINMENT: f32 = 0.8;
/// A passage holds the gold quote when this share of the quote's bigrams is in it (passages
/// may cut a long quote at their edge).
const GOLD_CONTAINMENT: f32 = 0.9;

/// One question's outcome, as `anjeon bench rag` lists it.
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
    /// The answer is right: see `anjeon_eval::rag` (reference overlap, or a refusal).
    pub correct: bool,
}

impl From<&QuestionRecord> for RagItem {
    fn from(r: &QuestionRecord) -> Self {
        RagItem {
            id: r.id.clone(),
            answerable: r.answerable,
            refused: r.refused,
            claims: r.judged.shown_claims,
            unfaithful_claims: r.judged.unfaithful_claims,
            citations: r.judged.citations,
            gold_citations: r.judged.gold_citations,
            first_text_ms: r.first_text_ms,
            total_ms: r.latency_ms,
            answer: r.answer.clone(),
            correct: r.metrics.get("answer_correctness") == Some(&1.0),
        }
    }
}

/// The figures of one run (`anjeon bench rag --json`); a figure whose questions are absent
/// from the set is 0.
#[derive(Debug, Clone, Serialize)]
pub struct RagReport {
    pub mode: AnswerMode,
    pub prompt_version: String,
    pub questions: usize,
    pub answerable: usize,
    pub unanswerable: usize,
    /// (shown claims not supported by the gold document's passages + shown claims of
    /// answered unanswerable questions) / shown claims; an answered unanswerable question
    /// with no claims counts one.
    pub hallucination_rate: f64,
    /// As `hallucination_rate`, counting only claims their own citations do not contain.
    pub unfaithful_rate: f64,
    /// Unanswerable questions refused / unanswerable questions.
    pub refusal_recall: f64,
    /// Unanswerable questions refused / questions refused.
    pub refusal_precision: f64,
    /// Answerable questions answered with at least one citation holding the gold quote /
    /// answerable questions.
    pub coverage: f64,
    /// Citations holding the gold quote / citations, over answered answerable questions.
    pub citation_precision: f64,
    /// Mean share of the gold quote in the cited passages of the gold document.
    pub citation_recall: f64,
    /// Questions answered right (reference overlap, or refusal of an unanswerable one).
    pub answer_correctness: f64,
    /// Answerable questions refused / answerable questions.
    pub false_refusals: f64,
    pub mean_first_text_ms: f64,
    pub mean_total_ms: f64,
    pub p50_total_ms: f64,
    pub p95_total_ms: f64,
    pub max_total_ms: f64,
    pub items: Vec<RagItem>,
}

impl RagReport {
    pub fn new(mode: AnswerMode, prompt_version: String, records: &[QuestionRecord]) -> Self {
        let m = RagMetrics::of(records, &[]);
        let mean = |s: Option<anjeon_eval::Summary>| s.map_or(0.0, |s| s.mean);
        let n = records.len().max(1) as f64;
        RagReport {
            mode,
            prompt_version,
            questions: m.questions,
            answerable: m.answerable,
            unanswerable: m.unanswerable,
            hallucination_rate: mean(m.hallucination_rate),
            unfaithful_rate: mean(m.unfaithful_rate),
            refusal_recall: mean(m.refusal_recall),
            refusal_precision: mean(m.refusal_precision),
            coverage: mean(m.coverage),
            citation_precision: mean(m.citation_precision),
            citation_recall: mean(m.citation_recall),
            answer_correctness: mean(m.answer_correctness),
            false_refusals: mean(m.false_refusals),
            mean_first_text_ms: records.iter().map(|r| r.first_text_ms).sum::<f64>() / n,
            mean_total_ms: records.iter().map(|r| r.latency_ms).sum::<f64>() / n,
            p50_total_ms: m.latency_ms_p50.unwrap_or_default(),
            p95_total_ms: m.latency_ms_p95.unwrap_or_default(),
            max_total_ms: records.iter().map(|r| r.latency_ms).fold(0.0, f64::max),
            items: records.iter().map(RagItem::from).collect(),
        }
    }
}

/// Answers every question as `role` and judges each answer; `progress` hears how many are
/// done. Returns the prompt set's version with the records.
pub fn ask_all(
    answerer: &Answerer,
    questions: &[Question],
    role: Role,
    progress: &mut dyn FnMut(usize),
) -> Result<(String, Vec<QuestionRecord>)> {
    let mut records = Vec::with_capacity(questions.len());
    for (i, q) in questions.iter().enumerate() {
        let request = AskRequest {
            question: q.question.clone(),
            role,
            history: Vec::new(),
        };
        let answer = answerer.answer(&request, &mut |_| true)?;
        records.push(judge(q, &answer, role));
        progress(i + 1);
    }
    Ok((answerer.prompts().version.clone(), records))
}

/// Answers every question as `role` and scores the answers against the gold documents and
/// quotes: what `anjeon bench rag` prints.
pub fn measure(answerer: &Answerer, questions: &[Question], role: Role) -> Result<RagReport> {
    let (prompt_version, records) = ask_all(answerer, questions, role, &mut |_| {})?;
    Ok(RagReport::new(
        answerer.config().mode,
        prompt_version,
        &records,
    ))
}

/// The gold quote as written in the question set (Markdown escapes undone).
fn gold_quote(q: &Question) -> Option<String> {
    q.gold_quote.as_ref().map(|quote| quote.replace("\\.", "."))
}

fn holds_gold(q: &Question, doc: &str, text: &str) -> bool {
    match (&q.gold_doc, gold_quote(q)) {
        (Some(gold_doc), Some(quote)) => {
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

/// The judge: one answer to `q` as a record with its verdicts and per-item metrics.
pub fn judge(q: &Question, a: &Answer, role: Role) -> QuestionRecord {
    let cited_text = |numbers: &[usize]| -> String {
        a.citations
            .iter()
            .filter(|cit| numbers.contains(&cit.n))
            .map(|cit| cit.text.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    };
    let claims: Vec<ClaimRecord> = a
        .claims
        .iter()
        .map(|c| {
            let shown = !a.refused && c.supported;
            ClaimRecord {
                text: c.text.clone(),
                citations: c.citations.clone(),
                verdict: serde_name(c.verdict),
                shown,
                faithful: shown.then(|| {
                    bigram_containment(&c.text, &cited_text(&c.citations)) >= FAITHFUL_CONTAINMENT
                }),
            }
        })
        .collect();
    let citations: Vec<CitationRecord> = a
        .citations
        .iter()
        .map(|c| CitationRecord {
            n: c.n,
            doc: c.doc.clone(),
            locator: c.locator.clone(),
            quote: c.quote.clone(),
            holds_gold: holds_gold(q, &c.doc, &c.text),
        })
        .collect();
    let answered = !a.refused;
    let gold_recall = match (answered, &q.gold_doc, gold_quote(q)) {
        (true, Some(doc), Some(quote)) => {
            let from_gold: Vec<usize> = a
                .citations
                .iter()
                .filter(|c| &c.doc == doc)
                .map(|c| c.n)
                .collect();
            f64::from(bigram_containment(&quote, &cited_text(&from_gold)))
        }
        _ => 0.0,
    };
    let gold_numbers: Vec<usize> = a
        .citations
        .iter()
        .filter(|c| q.gold_doc.as_deref() == Some(c.doc.as_str()))
        .map(|c| c.n)
        .collect();
    let judged = Judged {
        shown_claims: claims.iter().filter(|c| c.shown).count(),
        unfaithful_claims: claims.iter().filter(|c| c.faithful == Some(false)).count(),
        off_gold_claims: if q.answerable {
            claims
                .iter()
                .filter(|c| {
                    c.shown
                        && (c.faithful == Some(false)
                            || !c.citations.iter().any(|n| gold_numbers.contains(n)))
                })
                .count()
        } else {
            0
        },
        citations: if answered { citations.len() } else { 0 },
        gold_citations: if answered {
            citations.iter().filter(|c| c.holds_gold).count()
        } else {
            0
        },
        gold_recall,
        reference: if answered {
            reference_overlap(&a.answer, &q.reference_answer)
        } else {
            Default::default()
        },
    };
    QuestionRecord {
        id: q.id.clone(),
        question: q.question.clone(),
        role: serde_name(role),
        answerable: q.answerable,
        gold: Gold {
            doc: q.gold_doc.clone(),
            quote: q.gold_quote.clone(),
            reference_answer: q.reference_answer.clone(),
        },
        answer: a.answer.clone(),
        refused: a.refused,
        refusal_reason: a.refusal_reason.map(serde_name),
        citations,
        claims,
        metrics: item_metrics(q.answerable, a.refused, &judged),
        judged,
        latency_ms: a.timings.total_ms,
        first_text_ms: a.timings.first_text_ms,
    }
}

/// A unit variant's name as the JSON of answers spells it (`public`, `withheld`,
/// `weak_retrieval`), for records that keep it as text.
pub fn serde_name(value: impl Serialize) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::answer::{Citation, Claim, Timings, Verdict};

    fn question(answerable: bool) -> Question {
        Question {
            id: "q".into(),
            question: "?".into(),
            answerable,
            gold_doc: answerable.then(|| "a.md".into()),
            gold_quote: answerable.then(|| {
                "건강진단은 유효기간 만료일 전후 각각 30일 이내에 실시해야 한다\\.".into()
            }),
            reference_answer: "유효기간 만료일 전후 각각 30일 이내에 받아야 합니다.".into(),
            kind: None,
        }
    }

    fn citation(n: usize, doc: &str, text: &str) -> Citation {
        Citation {
            n,
            doc: doc.into(),
            locator: "제2조".into(),
            quote: text.into(),
            title: "규칙".into(),
            text: text.into(),
            id: n as u64,
            access: "public".into(),
        }
    }

    fn claim(text: &str, citations: Vec<usize>, verdict: Verdict) -> Claim {
        Claim {
            text: text.into(),
            citations,
            supported: matches!(verdict, Verdict::Supported | Verdict::Recited),
            score: 1.0,
            verdict,
        }
    }

    fn answer(refused: bool, claims: Vec<Claim>, citations: Vec<Citation>) -> Answer {
        Answer {
            answer: claims
                .iter()
                .filter(|c| c.supported)
                .map(|c| format!("{} [{}]", c.text, c.citations[0]))
                .collect::<Vec<_>>()
                .join("\n"),
            refused,
            citations,
            claims,
            prompt_version: "v".into(),
            question: "?".into(),
            mode: AnswerMode::Extractive,
            refusal_reason: None,
            medical_referral: false,
            timings: Timings {
                first_text_ms: 3.0,
                total_ms: 5.0,
                ..Timings::default()
            },
        }
    }

    const GOLD: &str =
        "④ 건강진단은 건강진단의 유효기간 만료일 전후 각각 30일 이내에 실시해야 한다.";

    #[test]
    fn the_judge_checks_claims_citations_and_the_reference() {
        let a =
            answer(
                false,
                vec![
                claim(
                    "건강진단은 건강진단의 유효기간 만료일 전후 각각 30일 이내에 실시해야 한다.",
                    vec![1],
                    Verdict::Supported,
                ),
                claim("모든 식품은 검사 없이 판매할 수 있다.", vec![2], Verdict::Supported),
                claim("숨긴 문장", vec![1], Verdict::Withheld),
            ],
                vec![
                    citation(1, "a.md", GOLD),
                    citation(2, "b.md", "영업자는 위생교육을 받아야 한다."),
                ],
            );
        let r = judge(&question(true), &a, Role::Public);
        assert_eq!(r.judged.shown_claims, 2);
        assert_eq!(r.judged.unfaithful_claims, 1);
        assert_eq!((r.judged.citations, r.judged.gold_citations), (2, 1));
        assert!(r.judged.gold_recall > 0.9, "{:?}", r.judged);
        assert!(r.judged.reference.recall > 0.5, "{:?}", r.judged);
        assert_eq!(r.metrics["coverage"], 1.0);
        assert_eq!(r.metrics["answer_correctness"], 1.0);
        assert_eq!(r.claims[2].verdict, "withheld");
        assert_eq!((r.claims[2].shown, r.claims[2].faithful), (false, None));
        assert!(r.citations[0].holds_gold);
        assert_eq!(r.latency_ms, 5.0);

        // A refusal shows its closest passages, but cites nothing and says nothing.
        let refusal = answer(true, Vec::new(), vec![citation(1, "a.md", GOLD)]);
        let r = judge(&question(true), &refusal, Role::Public);
        assert_eq!((r.judged.citations, r.judged.gold_citations), (0, 0));
        assert_eq!(r.judged.gold_recall, 0.0);
        assert_eq!(r.metrics["coverage"], 0.0);
        assert_eq!(r.metrics["false_refusals"], 1.0);
        let r = judge(&question(false), &refusal, Role::Official);
        assert_eq!(r.metrics["refusal_recall"], 1.0);
        assert_eq!(r.role, "official");
    }

    #[test]
    fn the_bench_report_keeps_its_figures() {
        let supported = answer(
            false,
            vec![claim(GOLD, vec![1], Verdict::Supported)],
            vec![citation(1, "a.md", GOLD)],
        );
        let refusal = answer(true, Vec::new(), Vec::new());
        let records = vec![
            judge(&question(true), &supported, Role::Public),
            judge(&question(true), &refusal, Role::Public),
            judge(&question(false), &refusal, Role::Public),
            judge(&question(false), &supported, Role::Public),
        ];
        let r = RagReport::new(AnswerMode::Extractive, "v".into(), &records);
        assert_eq!((r.questions, r.answerable, r.unanswerable), (4, 2, 2));
        assert!((r.coverage - 0.5).abs() < 1e-9);
        assert!((r.refusal_recall - 0.5).abs() < 1e-9);
        assert!((r.refusal_precision - 0.5).abs() < 1e-9);
        assert!((r.false_refusals - 0.5).abs() < 1e-9);
        // Two shown claims; the one answering an unanswerable question is a hallucination.
        assert!((r.hallucination_rate - 0.5).abs() < 1e-9);
        assert!((r.citation_precision - 1.0).abs() < 1e-9);
        assert_eq!(r.items.len(), 4);
        assert!(r.items[0].correct && !r.items[1].correct && r.items[2].correct);
        assert_eq!(r.p50_total_ms, 5.0);
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
