//! Extractive answers: the packed passages' sentences that cover the question best, quoted
//! verbatim with their passage numbers (instruction-like sentences are never quoted).

use super::guard::is_instruction;
use super::retrieve::{QuestionTerms, Scored};
use super::text::{sentences, CitedSentence};
use crate::config::AnswerConfig;
use crate::error::Result;
use crate::index::Index;
use std::collections::HashSet;

/// Sentences shorter than this (in characters) are headings or fragments.
const MIN_SENTENCE_CHARS: usize = 8;

/// The sentences to quote, best first, citing their packed passage numbers.
pub fn best_sentences(
    index: &Index,
    terms: &QuestionTerms,
    packed: &[&Scored],
    config: &AnswerConfig,
) -> Result<Vec<CitedSentence>> {
    let mut candidates: Vec<(f32, usize, String)> = Vec::new();
    for (i, s) in packed.iter().enumerate().take(config.quote_passages.max(1)) {
        for sentence in sentences(&s.hit.text) {
            if sentence.chars().count() < MIN_SENTENCE_CHARS || is_instruction(&sentence) {
                continue;
            }
            let present: HashSet<String> = index.analyse(&sentence)?.into_iter().collect();
            let w = config.sentence_weight;
            let score = w * terms.coverage(&present) + (1.0 - w) * s.relevance;
            candidates.push((score, i + 1, sentence));
        }
    }
    // Stable sort: among equals, the better passage and the earlier sentence win.
    candidates.sort_by(|a, b| b.0.total_cmp(&a.0));
    let Some(best) = candidates.first().map(|c| c.0) else {
        return Ok(Vec::new());
    };
    let mut chosen: Vec<CitedSentence> = Vec::new();
    for (score, n, sentence) in candidates {
        if chosen.len() >= config.max_quotes.max(1) || score < config.quote_ratio * best {
            break;
        }
        if chosen.iter().any(|c| c.text == sentence) {
            continue;
        }
        chosen.push(CitedSentence {
            text: sentence,
            citations: vec![n],
        });
    }
    Ok(chosen)
}

/// The sentence of `text` that covers the question best (for showing a closest passage).
pub fn closest_sentence(index: &Index, terms: &QuestionTerms, text: &str) -> Result<String> {
    let mut best: Option<(f32, String)> = None;
    for sentence in sentences(text) {
        let present: HashSet<String> = index.analyse(&sentence)?.into_iter().collect();
        let score = terms.coverage(&present);
        if best.as_ref().is_none_or(|b| score > b.0) {
            best = Some((score, sentence));
        }
    }
    Ok(best.map(|b| b.1).unwrap_or_else(|| text.to_string()))
}
