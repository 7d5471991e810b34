//! Claim verification: every sentence of an answer is scored against the passages it cites
//! (character-bigram and morpheme containment, optionally e5 similarity to the closest
//! sentence), re-cited to another packed passage that supports it better, or marked unsupported.

use super::retrieve::Scored;
use super::text::{bigram_containment, sentences, CitedSentence};
use super::{Claim, Verdict};
use crate::error::Result;
use crate::index::Index;
use std::collections::HashSet;

/// How support is scored and judged.
#[derive(Debug, Clone, Copy)]
pub struct SupportSettings {
    /// A claim whose best score reaches this is supported.
    pub threshold: f32,
    /// Weight of embedding similarity in the score (0: lexical only, no embedding cost).
    pub embedding_weight: f32,
    /// Cosines at or below this count as 0 (see `RerankWeights`).
    pub cosine_floor: f32,
    pub cosine_ceiling: f32,
}

/// Scores claims against passages.
pub struct Verifier<'a> {
    index: &'a Index,
    settings: SupportSettings,
}

impl<'a> Verifier<'a> {
    pub fn new(index: &'a Index, settings: SupportSettings) -> Self {
        Verifier { index, settings }
    }

    /// Lexical support of `claim` by `passage` in 0..=1: the mean of the share of the
    /// claim's character bigrams and of its morphemes that the passage contains.
    pub fn lexical_support(&self, claim: &str, passage: &str) -> Result<f32> {
        let bigrams = bigram_containment(claim, passage);
        let claim_terms: Vec<String> = self.index.analyse(claim)?;
        if claim_terms.is_empty() {
            return Ok(bigrams);
        }
        let passage_terms: HashSet<String> = self.index.analyse(passage)?.into_iter().collect();
        let found = claim_terms
            .iter()
            .filter(|t| passage_terms.contains(*t))
            .count();
        Ok(0.5 * bigrams + 0.5 * found as f32 / claim_terms.len() as f32)
    }

    /// e5 similarity of the claim to the passage's sentence most like it, scaled to 0..=1.
    fn semantic_support(&self, claim: &str, passage: &str) -> Result<f32> {
        let mut pieces = sentences(passage);
        pieces
            .sort_by(|a, b| bigram_containment(claim, b).total_cmp(&bigram_containment(claim, a)));
        pieces.truncate(2);
        let mut texts: Vec<&str> = vec![claim];
        texts.extend(pieces.iter().map(String::as_str));
        let vectors = self.index.embedder()?.embed_passages(&texts)?;
        let Some((first, rest)) = vectors.split_first() else {
            return Ok(0.0);
        };
        let best = rest
            .iter()
            .map(|v| v.iter().zip(first).map(|(a, b)| a * b).sum::<f32>())
            .fold(f32::MIN, f32::max);
        let s = &self.settings;
        let span = (s.cosine_ceiling - s.cosine_floor).max(1e-3);
        Ok(((best - s.cosine_floor) / span).clamp(0.0, 1.0))
    }

    /// The support score of `claim` by `passage`.
    pub fn support(&self, claim: &str, passage: &str) -> Result<f32> {
        let lexical = self.lexical_support(claim, passage)?;
        let w = self.settings.embedding_weight;
        if w <= 0.0 {
            return Ok(lexical);
        }
        Ok((1.0 - w) * lexical + w * self.semantic_support(claim, passage)?)
    }

    /// Verdicts for the sentences of an answer. `packed` are the passages numbered 1..=k.
    /// A claim keeps its citations when they support it; otherwise the packed passage that
    /// supports it best is cited instead (re-cited); otherwise it is unsupported.
    pub fn check(&self, answer: &[CitedSentence], packed: &[&Scored]) -> Result<Vec<Claim>> {
        let mut claims = Vec::with_capacity(answer.len());
        for sentence in answer {
            let passage = |n: usize| packed.get(n.wrapping_sub(1)).map(|s| s.hit.text.as_str());
            let mut cited_best = (0.0f32, None);
            for &n in &sentence.citations {
                if let Some(text) = passage(n) {
                    let score = self.support(&sentence.text, text)?;
                    if score > cited_best.0 || cited_best.1.is_none() {
                        cited_best = (score, Some(n));
                    }
                }
            }
            let threshold = self.settings.threshold;
            if let (score, Some(_)) = cited_best {
                if score >= threshold {
                    let citations = supporting(&sentence.citations, |n| {
                        passage(n)
                            .map(|t| self.support(&sentence.text, t))
                            .transpose()
                            .map(|s| s.unwrap_or(0.0) >= threshold)
                    })?;
                    claims.push(Claim {
                        text: sentence.text.clone(),
                        citations,
                        supported: true,
                        score,
                        verdict: Verdict::Supported,
                    });
                    continue;
                }
            }
            // Look for a better source among the other packed passages.
            let mut best = (cited_best.0, None);
            for n in 1..=packed.len() {
                if sentence.citations.contains(&n) {
                    continue;
                }
                if let Some(text) = passage(n) {
                    let score = self.support(&sentence.text, text)?;
                    if score > best.0 {
                        best = (score, Some(n));
                    }
                }
            }
            claims.push(match best {
                (score, Some(n)) if score >= threshold => Claim {
                    text: sentence.text.clone(),
                    citations: vec![n],
                    supported: true,
                    score,
                    verdict: Verdict::Recited,
                },
                (score, _) => Claim {
                    text: sentence.text.clone(),
                    citations: sentence.citations.clone(),
                    supported: false,
                    score: score.max(cited_best.0),
                    verdict: Verdict::Unsupported,
                },
            });
        }
        Ok(claims)
    }
}

/// The citations for which `supports` holds, in order.
fn supporting(
    citations: &[usize],
    mut supports: impl FnMut(usize) -> Result<bool>,
) -> Result<Vec<usize>> {
    let mut out = Vec::new();
    for &n in citations {
        if supports(n)? {
            out.push(n);
        }
    }
    Ok(out)
}
