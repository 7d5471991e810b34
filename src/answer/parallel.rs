//! Parallel provisions: the same rule, nearly word for word, in another document. 식품위생법
//! 제45조 ① and 식품 등의 표시ㆍ광고에 관한 법률 제15조 ① both oblige a maker who learns of a
//! violation to recall the food at once; a quote from one also cites the other, so the reader
//! sees every law that imposes what they are told.

use super::retrieve::Scored;
use super::text::{bigram_containment, qualifies_previous, sentences, CitedSentence};
use crate::config::{LexicalFields, SearchMode};
use crate::error::Result;
use crate::filter::SearchFilter;
use crate::index::{Index, SearchRequest};

/// Share of a quote's character bigrams that a sentence of another document must hold to
/// state the same rule (the two recall duties above: 0.92; the same duty for 건강기능식품 or
/// 축산물, which names another product, falls below).
const SAME_RULE: f32 = 0.85;
/// Lexical hits read per quote.
const HITS: usize = 5;
/// Quotes this short (in characters) are too generic to have a parallel.
const MIN_QUOTE_CHARS: usize = 40;

/// Whether `quote` states a rule on its own: a whole sentence ("…하여야 한다."), not a list
/// item's fragment ("위생물수건: …포장된 물수건"), nor a proviso or a second sentence ("다만,
/// …", "이 경우 …"), which qualify the rule before them and are worded alike across laws
/// whose rules differ.
fn is_statement(quote: &str) -> bool {
    let end = quote.trim_end().trim_end_matches(['.', ')', ' ']);
    end.ends_with('다') && quote.chars().count() >= MIN_QUOTE_CHARS && !qualifies_previous(quote)
}

/// What [`parallels`] found: a quote and the passage number that states it too.
pub struct Parallels {
    /// (index of the quote, passage number): numbers past `packed` are `extra`'s, in order.
    pub links: Vec<(usize, usize)>,
    /// Passages outside `packed` that state a quote, numbered after it.
    pub extra: Vec<Scored>,
}

/// For each quote of `quotes` that states a rule, the passages of other documents that state
/// it too — a packed one by its number, another as a new passage — at most one per document
/// and quote; 부칙 that amend another law quote its words without stating them and never count.
pub fn parallels(
    index: &Index,
    quotes: &[CitedSentence],
    packed: &[&Scored],
    filter: &SearchFilter,
) -> Result<Parallels> {
    let mut found = Parallels {
        links: Vec::new(),
        extra: Vec::new(),
    };
    for (i, quote) in quotes.iter().enumerate() {
        if !is_statement(&quote.text) {
            continue;
        }
        let mut docs: Vec<String> = quote
            .citations
            .iter()
            .filter_map(|&n| packed.get(n.checked_sub(1)?).map(|s| s.hit.doc.clone()))
            .collect();
        let request = SearchRequest {
            query: quote.text.clone(),
            top_k: HITS,
            mode: SearchMode::Bm25,
            lexical: LexicalFields::Both,
            filter: filter.clone(),
        };
        for hit in index.search(&request)? {
            let states = !docs.contains(&hit.doc)
                && !hit.locator.starts_with("부칙")
                && sentences(&hit.text)
                    .iter()
                    .any(|s| bigram_containment(&quote.text, s) >= SAME_RULE);
            if !states {
                continue;
            }
            docs.push(hit.doc.clone());
            let number = match packed.iter().position(|s| s.hit.id == hit.id) {
                Some(at) => at + 1,
                None => match found.extra.iter().position(|s| s.hit.id == hit.id) {
                    Some(at) => packed.len() + at + 1,
                    None => {
                        let bm25 = Some(hit.score);
                        found.extra.push(Scored {
                            hit,
                            coverage: 0.0,
                            cosine: None,
                            bm25,
                            evidence: 0.0,
                            relevance: 0.0,
                        });
                        packed.len() + found.extra.len()
                    }
                },
            };
            found.links.push((i, number));
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_whole_sentences_have_parallels() {
        assert!(is_statement(
            "① 영업자는 위반 사실을 알게 된 경우에는 지체 없이 유통 중인 해당 식품등을 회수하여야 한다."
        ));
        assert!(!is_statement(
            "위생물수건: 「식품위생법」 제36조제1항제3호에 따른 식품접객업의 영업소에서 손을 닦는 용도 등으로 사용할 수 있도록 포장된 물수건"
        ));
        assert!(
            !is_statement("영업자는 회수하여야 한다."),
            "too short to be told apart"
        );
        assert!(!is_statement(
            "다만, 위생상 위해발생의 우려가 낮거나 없는 경우 등 총리령으로 정하는 경우에는 그러하지 아니하다."
        ));
    }
}
