//! Extractive answers: the packed passages' sentences that cover the question best, quoted
//! verbatim with their passage numbers (instruction-like sentences, article headings,
//! amendment notes, deleted items, and pointers such as "…은 대통령령으로 정한다", are never
//! quoted). Within a passage, the question's words that its title already names (a letter's
//! product, a law's name) do not tell its sentences apart. A statute's rule and its proviso (the next sentence, "다만, …")
//! are quoted together, so an answer never states a rule without its exception, or an
//! exception without its rule; a sentence that only introduces a list ("…은 다음 각 호와
//! 같다.") is quoted with the list item that covers the question best, an item (but a
//! definition) with the sentence that introduces its list ("누구든지 다음 각 호의 …
//! 판매하여서는 아니 된다"), and an item that only names a matter ("…에 관한 사항") only after
//! its introduction. A question about what a term means is answered by the term's
//! definition when one is packed.

use super::guard::is_instruction;
use super::retrieve::{QuestionTerms, Scored};
use super::text::{
    defined_term, is_article_heading, is_list_intro, is_pointer, is_proviso, is_topic_only,
    is_void, list_intro_of, sentences, CitedSentence,
};
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
    // A pointer ("…은 총리령으로 정한다") tells the reader nothing they asked.
    let quotable = |t: &str| {
        t.chars().count() >= MIN_SENTENCE_CHARS
            && !is_instruction(t)
            && !is_pointer(t)
            && !is_article_heading(t)
            && !is_void(t)
    };
    let passages: Vec<Vec<String>> = packed
        .iter()
        .take(config.quote_passages.max(1))
        .map(|s| sentences(&s.hit.text))
        .collect();
    // (score, passage number, sentence index), and each sentence's question-term coverage
    let mut candidates: Vec<(f32, usize, usize)> = Vec::new();
    let mut coverage: Vec<Vec<f32>> = Vec::with_capacity(passages.len());
    for (i, (s, list)) in packed.iter().zip(&passages).enumerate() {
        let title: HashSet<String> = index.analyse(&s.hit.title)?.into_iter().collect();
        let mut covered = vec![0.0; list.len()];
        for (j, sentence) in list.iter().enumerate() {
            if !quotable(sentence) {
                continue;
            }
            let present: HashSet<String> = index.analyse(sentence)?.into_iter().collect();
            // what the title already names tells this passage's sentences apart no more
            covered[j] = terms.coverage_beyond(&present, &title);
            // "…에 관한 사항" is quoted only after its list's introduction
            if is_topic_only(sentence) {
                continue;
            }
            let w = config.sentence_weight;
            let score = w * covered[j] + (1.0 - w) * s.relevance;
            candidates.push((score, i + 1, j));
        }
        coverage.push(covered);
    }
    // A question about what a term means is answered by the term's definition, when one is
    // packed, not by its neighbours in the law's list of definitions.
    if let Some(asked) = &terms.asked {
        let defines = |&(_, n, j): &(f32, usize, usize)| asked.defined_in(&passages[n - 1][j]);
        if candidates.iter().any(defines) {
            candidates.retain(defines);
        }
    }
    // A who-or-where question is answered by a sentence naming a body in the asked role.
    if let Some(agent) = terms.agent.filter(|_| config.agent_weight > 0.0) {
        // a list item is read with its introduction ("다음 각 호의 … 자는 … 구청장에게
        // 보고하여야 한다" + "1. … 의사")
        let names = |&(_, n, j): &(f32, usize, usize)| {
            let list = &passages[n - 1];
            coverage[n - 1][j] > 0.0
                && (agent.named_in(&list[j])
                    || list_intro_of(list, j).is_some_and(|k| agent.named_in(&list[k])))
        };
        if candidates.iter().any(names) {
            candidates.retain(names);
        }
    }
    // Stable sort: among equals, the better passage and the earlier sentence win.
    candidates.sort_by(|a, b| b.0.total_cmp(&a.0));
    let Some(best) = candidates.first().map(|c| c.0) else {
        return Ok(Vec::new());
    };
    let mut chosen: Vec<CitedSentence> = Vec::new();
    let mut quotes = 0;
    for (score, n, j) in candidates {
        if quotes >= config.max_quotes.max(1) || score < config.quote_ratio * best {
            break;
        }
        let list = &passages[n - 1];
        // a further quote must say something the question asks about
        if chosen.iter().any(|c| c.text == list[j]) || (quotes > 0 && coverage[n - 1][j] <= 0.0) {
            continue;
        }
        quotes += 1;
        let mut quoted = with_proviso(list, j);
        // a definition says all it means itself; any other item needs its list's introduction
        let intro = list_intro_of(list, j).filter(|k| !quoted.contains(k));
        if let Some(intro) = intro.filter(|_| defined_term(&list[j]).is_none()) {
            quoted.insert(0, intro);
        }
        if is_list_intro(&list[j]) {
            // the item after the introduction that covers the question best, if any does
            let item = (j + 1..list.len())
                .filter(|&k| coverage[n - 1][k] > 0.0)
                .max_by(|&a, &b| coverage[n - 1][a].total_cmp(&coverage[n - 1][b]));
            quoted.extend(item.filter(|k| !quoted.contains(k)));
        }
        for k in quoted {
            if quotable(&list[k]) && !chosen.iter().any(|c| c.text == list[k]) {
                chosen.push(CitedSentence {
                    text: list[k].clone(),
                    citations: vec![n],
                });
            }
        }
    }
    Ok(chosen)
}

/// Sentence `j` of `list` with the rule it qualifies (when it is a proviso) or the proviso
/// that qualifies it (when the next sentence is one), in reading order.
fn with_proviso(list: &[String], j: usize) -> Vec<usize> {
    let mut out = Vec::with_capacity(2);
    if is_proviso(&list[j]) && j > 0 {
        out.push(j - 1);
    }
    out.push(j);
    if list.get(j + 1).is_some_and(|next| is_proviso(next)) {
        out.push(j + 1);
    }
    out
}

/// The sentence of `text` that covers the question best (for showing a closest passage);
/// a line that only repeats the passage's `title`, a metadata line such as a letter's
/// "구분: … | 공고일: …" or a heading such as "요약:" is taken only when there is nothing else.
pub fn closest_sentence(
    index: &Index,
    terms: &QuestionTerms,
    text: &str,
    title: &str,
) -> Result<String> {
    let mut best: Option<(f32, String)> = None;
    for sentence in sentences(text) {
        let present: HashSet<String> = index.analyse(&sentence)?.into_iter().collect();
        let aside = sentence.trim() == title.trim()
            || sentence.contains(" | ")
            || sentence.chars().count() < MIN_SENTENCE_CHARS;
        // below any sentence of the text proper, whatever it covers
        let score = terms.coverage(&present) - if aside { 2.0 } else { 0.0 };
        if best.as_ref().is_none_or(|b| score > b.0) {
            best = Some((score, sentence));
        }
    }
    Ok(best.map(|b| b.1).unwrap_or_else(|| text.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rule_and_its_proviso_go_together() {
        let list: Vec<String> = [
            "① 영업자는 건강진단을 받아야 한다.",
            "다만, 완전 포장된 식품을 판매하는 사람은 제외한다.",
            "② 그 밖의 사항은 총리령으로 정한다.",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(with_proviso(&list, 0), vec![0, 1]);
        assert_eq!(with_proviso(&list, 1), vec![0, 1]);
        assert_eq!(with_proviso(&list, 2), vec![2]);
    }

    #[test]
    fn list_introductions_are_recognised() {
        assert!(is_list_intro("② 교육 시간은 다음 각 호와 같다."));
        assert!(is_list_intro("이 법에서 사용하는 용어의 뜻은 다음과 같다."));
        assert!(!is_list_intro("영업자는 6시간의 교육을 받아야 한다."));
        assert!(is_list_intro(
            "허가를 받아야 하는 영업은 다음 각 호와 같다. <개정 2013.3.23, 2016.7.26>"
        ));
        assert!(is_list_intro(
            "1. \"위생용품\"이란 … 다음 각 목의 어느 하나에 해당하는 것을 말한다."
        ));
    }
}
