//! Retrieval for answers: the hybrid search under the caller's access filter, a rerank of its
//! candidates by question-term coverage and dense similarity, and packing into a token budget.

use super::question::{AskedAgent, AskedTerms};
use crate::config::SearchMode;
use crate::error::Result;
use crate::filter::SearchFilter;
use crate::index::{Candidate, Hit, Index, SearchRequest};
use std::collections::{HashMap, HashSet};

/// A candidate passage with the evidence that it answers the question.
#[derive(Debug, Clone)]
pub struct Scored {
    pub hit: Hit,
    /// IDF-weighted share of the question's terms the passage (title and text) contains.
    pub coverage: f32,
    /// Cosine of question and passage embeddings (e5), when the dense side ranked it.
    pub cosine: Option<f32>,
    /// BM25 score, when the lexical side ranked it.
    pub bm25: Option<f32>,
    /// Coverage and similarity mixed, in 0..=1: how well the passage matches the question,
    /// which the refusal threshold reads.
    pub evidence: f32,
    /// What the rerank orders by: the evidence plus what a definition or a named body that
    /// the question asks for adds (unbounded, so that passages near the top stay apart).
    /// These choose among passages that match; they make no weak match strong.
    pub relevance: f32,
}

/// The question's analysed terms with their inverse document frequencies, computed over
/// only what the caller may read.
#[derive(Debug, Clone)]
pub struct QuestionTerms {
    pub terms: Vec<String>,
    /// What the question asks the definition of, when it asks for one.
    pub asked: Option<AskedTerms>,
    /// The body a who-or-where question asks for, in its role.
    pub agent: Option<AskedAgent>,
    /// The question's words that name things, as written (nouns written together joined:
    /// 식품공전, 전화번호), without the ones that ask (무엇, 어디): what a refusal says was
    /// searched.
    pub subjects: Vec<String>,
    pub idf: Vec<f32>,
    /// Per term, statutory phrasings (each a set of analysed terms) that count as the term
    /// being present (see [`super::thesaurus`]).
    pub alternatives: Vec<Vec<Vec<String>>>,
    /// Nouns of the question that no passage the caller may read mentions, not even inside
    /// a longer word or misspelt, and that no thesaurus entry rephrases: things the documents
    /// say nothing about (해외직구 … 멜라토닌), so no passage can answer the question.
    pub unknown: Vec<String>,
}

/// Nouns that ask rather than name (얼마나, 언제까지): never a question's subject.
const QUESTION_NOUNS: [&str; 6] = ["얼마", "무엇", "언제", "어디", "누구", "몇"];

impl QuestionTerms {
    pub fn new(index: &Index, question: &str, filter: &SearchFilter) -> Result<QuestionTerms> {
        let mut terms: Vec<String> = Vec::new();
        for t in index.analyse(question)? {
            if !terms.contains(&t) {
                terms.push(t);
            }
        }
        let mut alternatives = vec![Vec::new(); terms.len()];
        let rephrased = super::thesaurus::matches(super::thesaurus::builtin(), question);
        for entry in &rephrased {
            let word_terms = index.analyse(&entry.word)?;
            for phrase in &entry.terms {
                let phrase_terms = index.analyse(phrase)?;
                for (i, t) in terms.iter().enumerate() {
                    if word_terms.contains(t) {
                        alternatives[i].push(phrase_terms.clone());
                    }
                }
            }
        }
        let stats = index.term_stats(&terms, filter)?;
        let n = stats.passages as f32;
        let idf = stats
            .doc_freqs
            .iter()
            .map(|&df| {
                let df = df as f32;
                (1.0 + (n - df + 0.5) / (df + 0.5)).ln()
            })
            .collect();
        let mut unknown: Vec<String> = Vec::new();
        let rephrases = |word: &str| {
            rephrased
                .iter()
                .any(|e| e.word.contains(word) || word.contains(e.word.as_str()))
        };
        let nouns = index.nouns(question)?;
        for group in &nouns {
            let mut missing = Vec::new();
            for noun in group {
                // one syllable is too ambiguous to judge (약, 물, 암)
                if noun.chars().count() < 2
                    || QUESTION_NOUNS.contains(&noun.as_str())
                    || unknown.contains(noun)
                    || missing.contains(noun)
                    || rephrases(noun)
                {
                    continue;
                }
                if !index.mentions(noun, filter)? {
                    missing.push(noun.clone());
                }
            }
            // Nouns written together are judged together too: 건강진담 is 건강진단 misspelt,
            // though 진담 alone is another word.
            let whole = group.concat();
            if missing.is_empty()
                || (group.len() > 1 && (rephrases(&whole) || index.mentions(&whole, filter)?))
            {
                continue;
            }
            // A name the dictionary lacks can swallow the particle after it: 온장환은 reads
            // as 온장 + 환은 (a word of its own), though the letters name 온장환.
            if group.len() > 1 {
                if let Some(name) = without_particle(&whole) {
                    if index.mentions(name, filter)? {
                        continue;
                    }
                }
            }
            unknown.extend(missing);
        }
        Ok(QuestionTerms {
            terms,
            asked: AskedTerms::of(question, &nouns),
            agent: AskedAgent::of(question),
            subjects: subjects(&nouns),
            idf,
            alternatives,
            unknown,
        })
    }

    /// IDF-weighted share of the question's terms among `present` (analysed terms of a text).
    pub fn coverage(&self, present: &HashSet<String>) -> f32 {
        self.share(present, &HashSet::new()).unwrap_or(0.0)
    }

    /// The same share over only the terms that `known` lacks — for the sentences of one
    /// passage, the terms of its title (a letter's product name, a law's name), which every
    /// sentence of it shares and which tell none of them apart. All of them known: the plain
    /// share.
    pub fn coverage_beyond(&self, present: &HashSet<String>, known: &HashSet<String>) -> f32 {
        self.share(present, known)
            .unwrap_or_else(|| self.coverage(present))
    }

    /// Share of the weight of the terms not in `skip` that `present` holds; `None` when no
    /// weight is left to share.
    fn share(&self, present: &HashSet<String>, skip: &HashSet<String>) -> Option<f32> {
        let weighed = || {
            self.terms
                .iter()
                .zip(&self.idf)
                .enumerate()
                .filter(|(_, (t, _))| !skip.contains(*t))
        };
        let total: f32 = weighed().map(|(_, (_, w))| w).sum();
        if total <= 0.0 {
            return None;
        }
        let found: f32 = weighed()
            .filter(|(i, (t, _))| {
                present.contains(*t)
                    || self.alternatives.get(*i).is_some_and(|alts| {
                        alts.iter()
                            .any(|alt| !alt.is_empty() && alt.iter().all(|m| present.contains(m)))
                    })
            })
            .map(|(_, (_, w))| w)
            .sum();
        Some(found / total)
    }
}

/// Particles that follow a noun, one syllable each.
const PARTICLES: [char; 12] = [
    '은', '는', '이', '가', '을', '를', '의', '도', '에', '와', '과', '로',
];

/// `word` without the particle it ends with, when what is left has two syllables or more.
fn without_particle(word: &str) -> Option<&str> {
    word.strip_suffix(PARTICLES)
        .filter(|rest| rest.chars().count() >= 2)
}

/// Each group of nouns written together as one word, once, unless it is a single syllable
/// or asks rather than names.
fn subjects(nouns: &[Vec<String>]) -> Vec<String> {
    let mut words: Vec<String> = Vec::new();
    for group in nouns {
        let word = group.concat();
        if word.chars().count() >= 2
            && !QUESTION_NOUNS.contains(&word.as_str())
            && !words.contains(&word)
        {
            words.push(word);
        }
    }
    words
}

/// How relevance is computed from the two signals.
#[derive(Debug, Clone, Copy)]
pub struct RerankWeights {
    /// Weight of term coverage; the rest goes to the scaled cosine.
    pub coverage: f32,
    /// Cosines at or below this count as 0 (unrelated Korean texts score ~0.75 with e5).
    pub cosine_floor: f32,
    /// Cosines at or above this count as 1.
    pub cosine_ceiling: f32,
    /// Added for a passage that defines a term the question names, when the question asks
    /// what it means or whether something counts as it.
    pub definition: f32,
    /// Times the question coverage of the passage's best sentence that names the body a
    /// who-or-where question asks for, added to relevance.
    pub agent: f32,
}

impl RerankWeights {
    /// The weights an answer configuration sets.
    pub fn of(config: &crate::config::AnswerConfig) -> RerankWeights {
        RerankWeights {
            coverage: config.coverage_weight,
            cosine_floor: config.cosine_floor,
            cosine_ceiling: config.cosine_ceiling,
            definition: config.definition_weight,
            agent: config.agent_weight,
        }
    }

    pub fn relevance(&self, coverage: f32, cosine: Option<f32>) -> f32 {
        let span = (self.cosine_ceiling - self.cosine_floor).max(1e-3);
        let dense = cosine
            .map(|c| ((c - self.cosine_floor) / span).clamp(0.0, 1.0))
            .unwrap_or(0.0);
        self.coverage * coverage + (1.0 - self.coverage) * dense
    }
}

/// How many hybrid search hits the rerank reads.
#[derive(Debug, Clone, Copy)]
pub struct Pool {
    /// The first hits of the fused order, all scored.
    pub candidates: usize,
    /// For a who-or-where question, hits up to this rank also compete when a sentence of
    /// theirs names a body in the asked role: a test precise enough to look further than the
    /// fused order's agreement.
    pub agent_candidates: usize,
}

impl Pool {
    /// The pool an answer configuration sets.
    pub fn of(config: &crate::config::AnswerConfig) -> Pool {
        Pool {
            candidates: config.candidates,
            agent_candidates: config.agent_candidates,
        }
    }
}

/// Hybrid candidates for `question` under `filter`, each scored; reranked by relevance when
/// `rerank` is set, else in the fused order.
pub fn retrieve(
    index: &Index,
    question: &str,
    terms: &QuestionTerms,
    filter: &SearchFilter,
    pool: Pool,
    weights: &RerankWeights,
    rerank: bool,
) -> Result<Vec<Scored>> {
    let agent = terms.agent.filter(|_| weights.agent > 0.0);
    let candidates = pool.candidates.max(1);
    let top_k = match agent {
        Some(_) => pool.agent_candidates.max(candidates),
        None => candidates,
    };
    // the statutory terms of everyday words are searched too
    let mut query = question.to_string();
    for entry in super::thesaurus::matches(super::thesaurus::builtin(), question) {
        for term in &entry.terms {
            query.push(' ');
            query.push_str(term);
        }
    }
    let vector = index.embed_query(&query)?;
    let request = SearchRequest {
        query,
        top_k,
        mode: SearchMode::Hybrid,
        lexical: crate::config::LexicalFields::Both,
        filter: filter.clone(),
    };
    let found: Vec<Candidate> = index.candidates(&request, Some(&vector))?;
    let mut scored = Vec::with_capacity(found.len());
    for (rank, c) in found.into_iter().enumerate() {
        // A sentence that only points elsewhere ("…은 총리령으로 정한다") or a list item that
        // only names a matter ("…에 관한 사항") covers nothing: the passage that states the
        // rule should outrank the one that delegates or lists it.
        let stated: Vec<String> = super::text::sentences(&c.hit.text)
            .into_iter()
            .filter(|s| !super::text::is_pointer(s) && !super::text::is_topic_only(s))
            .collect();
        // "…어디에 보고하나요?" is answered where a body is named, as the one reported to,
        // beside what is reported: the best such sentence's coverage, read under its title
        // as the passage's coverage is
        let mut named: f32 = 0.0;
        if let Some(agent) = agent {
            let naming: Vec<&String> = stated.iter().filter(|s| agent.named_in(s)).collect();
            if !naming.is_empty() {
                // the title analysed once for all its sentences
                let title: HashSet<String> = index.analyse(&c.hit.title)?.into_iter().collect();
                for s in naming {
                    let mut present = title.clone();
                    present.extend(index.analyse(s)?);
                    named = named.max(terms.coverage(&present));
                }
            }
        }
        if rank >= candidates && named <= 0.0 {
            continue;
        }
        let present: HashSet<String> = index
            .analyse(&format!("{}\n{}", c.hit.title, stated.join("\n")))?
            .into_iter()
            .collect();
        let coverage = terms.coverage(&present);
        let evidence = weights.relevance(coverage, c.cosine);
        let mut relevance = evidence;
        // "…도 화장품으로 볼 수 있나요?" is answered where the law says what 화장품 is
        if let Some(asked) = &terms.asked {
            if stated.iter().any(|s| asked.defined_in(s)) {
                relevance += weights.definition;
            }
        }
        relevance += weights.agent * named;
        scored.push(Scored {
            hit: c.hit,
            coverage,
            cosine: c.cosine,
            bm25: c.bm25,
            evidence,
            relevance,
        });
    }
    if rerank {
        // Stable: ties keep the fused order.
        scored.sort_by(|a, b| b.relevance.total_cmp(&a.relevance));
    }
    // `ANJEON_LOG=anjeon::answer=debug` shows why a passage was quoted (or not)
    for (rank, s) in scored.iter().enumerate() {
        tracing::debug!(
            rank = rank + 1,
            relevance = s.relevance,
            evidence = s.evidence,
            coverage = s.coverage,
            cosine = s.cosine,
            bm25 = s.bm25,
            doc = %s.hit.doc,
            locator = %s.hit.locator,
            "answer candidate"
        );
    }
    Ok(scored)
}

/// The passages that fit: at most `max_passages`, in order, while their rendered size stays
/// within `budget_tokens` (the first always goes in, cut to the budget if it must be).
pub fn pack<'a>(
    ranked: &'a [Scored],
    max_passages: usize,
    budget_tokens: usize,
    count_tokens: &dyn Fn(&str) -> Result<usize>,
) -> Result<Vec<&'a Scored>> {
    let mut out = Vec::new();
    let mut used = 0;
    let mut seen_text: HashMap<&str, ()> = HashMap::new();
    for s in ranked {
        if out.len() >= max_passages {
            break;
        }
        // Identical text under two keys (a file and its copy) would waste the budget.
        if seen_text.insert(s.hit.text.as_str(), ()).is_some() {
            continue;
        }
        let cost = count_tokens(&format!("{} {}", s.hit.title, s.hit.text))? + 16;
        if used + cost > budget_tokens && !out.is_empty() {
            break;
        }
        used += cost;
        out.push(s);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(text: &str) -> Hit {
        Hit {
            doc: "d".into(),
            title: "t".into(),
            locator: "l".into(),
            score: 0.0,
            text: text.into(),
            highlight: String::new(),
            id: 0,
            kind: "text".into(),
            law: None,
            access: "public".into(),
            date: None,
            start: 0,
            end: 0,
        }
    }

    #[test]
    fn coverage_weights_rare_terms() {
        let terms = QuestionTerms {
            asked: None,
            agent: None,
            subjects: Vec::new(),
            terms: vec!["배추김치".into(), "기준".into()],
            idf: vec![8.0, 1.0],
            alternatives: vec![vec![vec!["김치".into(), "배추".into()]], vec![]],
            unknown: Vec::new(),
        };
        let common: HashSet<String> = ["기준".to_string()].into();
        let rare: HashSet<String> = ["배추김치".to_string()].into();
        assert!((terms.coverage(&common) - 1.0 / 9.0).abs() < 1e-6);
        assert!((terms.coverage(&rare) - 8.0 / 9.0).abs() < 1e-6);
        // a statutory phrasing of a term counts as the term
        let phrased: HashSet<String> = ["배추".to_string(), "김치".to_string()].into();
        assert!((terms.coverage(&phrased) - 8.0 / 9.0).abs() < 1e-6);
        // beyond a title that names 배추김치, only 기준 tells sentences apart
        let title: HashSet<String> = ["배추김치".to_string()].into();
        assert!((terms.coverage_beyond(&common, &title) - 1.0).abs() < 1e-6);
        assert!(terms.coverage_beyond(&rare, &title).abs() < 1e-6);
        let everything: HashSet<String> = ["배추김치".to_string(), "기준".to_string()].into();
        assert!((terms.coverage_beyond(&rare, &everything) - 8.0 / 9.0).abs() < 1e-6);
    }

    #[test]
    fn a_swallowed_particle_comes_off() {
        assert_eq!(without_particle("온장환은"), Some("온장환"));
        assert_eq!(without_particle("우황청심환을"), Some("우황청심환"));
        assert_eq!(without_particle("환은"), None);
        assert_eq!(without_particle("식품안전"), None);
    }

    #[test]
    fn subjects_are_whole_words() {
        let nouns: Vec<Vec<String>> = [
            &["불량", "식품"][..],
            &["신고"],
            &["전화", "번호"],
            &["몇"],
            &["신고"],
            &["무엇"],
        ]
        .iter()
        .map(|g| g.iter().map(|n| n.to_string()).collect())
        .collect();
        assert_eq!(subjects(&nouns), ["불량식품", "신고", "전화번호"]);
    }

    #[test]
    fn relevance_mixes_both_signals() {
        let w = RerankWeights {
            coverage: 0.5,
            cosine_floor: 0.75,
            cosine_ceiling: 0.95,
            definition: 0.1,
            agent: 0.1,
        };
        assert!((w.relevance(1.0, Some(0.95)) - 1.0).abs() < 1e-6);
        assert!((w.relevance(1.0, None) - 0.5).abs() < 1e-6);
        assert!((w.relevance(0.0, Some(0.85)) - 0.25).abs() < 1e-6);
    }

    #[test]
    fn packing_respects_count_and_budget() {
        let ranked: Vec<Scored> = ["가나다", "가나다", "라마바", "사아자"]
            .iter()
            .map(|t| Scored {
                hit: hit(t),
                coverage: 0.0,
                cosine: None,
                bm25: None,
                evidence: 0.0,
                relevance: 0.0,
            })
            .collect();
        let chars = |t: &str| Ok(t.chars().count());
        let packed = pack(&ranked, 5, 1000, &chars).unwrap();
        assert_eq!(packed.len(), 3, "duplicates are skipped");
        assert_eq!(pack(&ranked, 2, 1000, &chars).unwrap().len(), 2);
        assert_eq!(pack(&ranked, 5, 25, &chars).unwrap().len(), 1);
        assert_eq!(
            pack(&ranked, 5, 1, &chars).unwrap().len(),
            1,
            "the first always fits"
        );
    }
}
