//! BM25 as sparse vectors, so Qdrant can score the lexical side of a search.
//!
//! A passage's vector holds, for each term its title and text analyse to, BM25's
//! term-frequency factor `tf·(k1+1) / (tf + k1·(1 − b + b·len/avg_len))`, `len` being the
//! passage's number of terms in that field. Qdrant's IDF modifier multiplies in each term's
//! `ln(1 + (N − df + 0.5)/(df + 0.5))` at query time, over the whole collection: that is
//! tantivy's BM25, except that the average length is a constant here (measured on the MFDS
//! corpus) where tantivy recomputes it as the index grows. A query's vector weighs each
//! distinct term 1, as tantivy's query sums each term's score once.
//!
//! Both analyses the BM25 query can use (morphemes and Hangul bigrams) go into one vector,
//! each term under a dimension from a 32-bit FNV-1a hash of its field's tag and the term.
//! Two terms sharing a dimension (about one pair among 100k distinct terms) add up.

use crate::config::LexicalFields;
use crate::vector::SparseVector;
use std::collections::HashMap;

/// tantivy's BM25 constants.
const K1: f32 = 1.2;
const B: f32 = 0.75;

/// An analysed field of a passage (title and text together, as tantivy indexes them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Morph,
    Bigram,
}

impl Field {
    fn tag(self) -> u8 {
        match self {
            Field::Morph => b'm',
            Field::Bigram => b'b',
        }
    }

    /// Mean terms per passage, title included, in tantivy's index of the 7,134 passages of
    /// `../shared/corpus` (its total tokens per field over its passages: 59.4 and 114.1).
    fn average_len(self) -> f32 {
        match self {
            Field::Morph => 59.0,
            Field::Bigram => 114.0,
        }
    }

    /// The fields a BM25 query over `lexical` searches.
    pub fn of(lexical: LexicalFields) -> &'static [Field] {
        match lexical {
            LexicalFields::Morph => &[Field::Morph],
            LexicalFields::Bigram => &[Field::Bigram],
            LexicalFields::Both => &[Field::Morph, Field::Bigram],
        }
    }
}

/// The dimension of `term` in `field`.
fn dimension(field: Field, term: &str) -> u32 {
    const OFFSET: u32 = 0x811c_9dc5;
    const PRIME: u32 = 0x0100_0193;
    std::iter::once(field.tag())
        .chain(term.bytes())
        .fold(OFFSET, |h, b| (h ^ u32::from(b)).wrapping_mul(PRIME))
}

/// A passage's BM25 term weights, from each field's analysed terms (repeats included).
pub fn passage_vector(fields: &[(Field, &[String])]) -> SparseVector {
    let mut pairs = Vec::new();
    for &(field, terms) in fields {
        let mut tf: HashMap<&str, f32> = HashMap::new();
        for t in terms {
            *tf.entry(t.as_str()).or_default() += 1.0;
        }
        let norm = K1 * (1.0 - B + B * terms.len() as f32 / field.average_len());
        pairs.extend(
            tf.into_iter()
                .map(|(t, f)| (dimension(field, t), f * (K1 + 1.0) / (f + norm))),
        );
    }
    SparseVector::from_pairs(pairs)
}

/// A query's vector: weight 1 for each distinct term of each field searched.
pub fn query_vector(fields: &[(Field, &[String])]) -> SparseVector {
    let mut pairs: Vec<(u32, f32)> = fields
        .iter()
        .flat_map(|&(field, terms)| terms.iter().map(move |t| (dimension(field, t), 1.0)))
        .collect();
    pairs.sort_unstable_by_key(|p| p.0);
    pairs.dedup_by_key(|p| p.0);
    SparseVector::from_pairs(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terms(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn dimensions_are_stable_and_fields_apart() {
        // fixed forever (FNV-1a of the tag byte "m"), or stored vectors stop matching queries
        assert_eq!(
            dimension(Field::Morph, "식품"),
            dimension(Field::Morph, "식품")
        );
        assert_ne!(
            dimension(Field::Morph, "식품"),
            dimension(Field::Bigram, "식품")
        );
        assert_eq!(dimension(Field::Morph, ""), 0xe80c_2f78);
    }

    #[test]
    fn weights_follow_bm25_term_frequency() {
        let morphs = terms("식품 식품 위생 교육");
        let v = passage_vector(&[(Field::Morph, &morphs)]);
        assert_eq!(v.indices.len(), 3);
        let weight = |t: &str| {
            let d = dimension(Field::Morph, t);
            v.values[v.indices.iter().position(|&i| i == d).expect("term")]
        };
        let norm = K1 * (1.0 - B + B * 4.0 / Field::Morph.average_len());
        assert!((weight("식품") - 2.0 * (K1 + 1.0) / (2.0 + norm)).abs() < 1e-6);
        assert!((weight("위생") - (K1 + 1.0) / (1.0 + norm)).abs() < 1e-6);
        assert!(
            weight("식품") > weight("위생"),
            "more occurrences weigh more"
        );
        assert!(weight("식품") < 2.0 * weight("위생"), "but saturate");
        // the same term in a longer passage weighs less
        let long = terms(&format!("위생 {}", "가 ".repeat(300)));
        let w_long = passage_vector(&[(Field::Morph, &long)]);
        let d = dimension(Field::Morph, "위생");
        let i = w_long.indices.iter().position(|&x| x == d).expect("term");
        assert!(w_long.values[i] < weight("위생"));
    }

    #[test]
    fn queries_weigh_each_distinct_term_once() {
        let q = terms("식품 식품 교육");
        let v = query_vector(&[(Field::Morph, &q), (Field::Bigram, &q)]);
        assert_eq!(v.indices.len(), 4);
        assert!(v.values.iter().all(|&w| w == 1.0));
        assert!(v.indices.windows(2).all(|w| w[0] < w[1]));
        assert!(query_vector(&[(Field::Morph, &[])]).is_empty());
    }
}
