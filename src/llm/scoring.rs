//! Log-likelihood of continuations after a context, tokenised and scored exactly as
//! lm-evaluation-harness does it (`_encode_pair`, `_loglikelihood_tokens`) — the eval suite's use of the engine.
//!
//! The context is encoded alone and run once; every continuation's tokens are the tail of
//! `encode(context + continuation)` after the context's token count, so a word that merges
//! across the boundary is scored the way the harness scores it. The continuations of one
//! context then run together in batched forward passes over copies of the context's cache,
//! each distinct prefix of them once ([`score_tokens`]).

use super::generator::Scored;
use super::model::{Cache, Logits};
use super::{sample, team, Llm};
use crate::error::{Error, Result};

/// Rows of logits one batched pass may produce (each row is `vocab` floats: 1 MiB for
/// gemma-3's 262k vocabulary), so a document with many long choices stays within memory.
const MAX_BATCH_ROWS: usize = 128;

/// Scores each continuation after `context`: summed log-probability of its tokens, whether
/// greedy decoding would produce exactly them, and how many tokens it has.
pub fn score_continuations(
    llm: &Llm,
    context: &str,
    continuations: &[String],
) -> Result<Vec<Scored>> {
    let (context_ids, continuation_ids) = encode_pairs(llm, context, continuations)?;
    score_tokens(llm, &context_ids, &continuation_ids)
}

/// The harness's `_encode_pair` for one context and several continuations: trailing
/// whitespace of the context moves onto every continuation, the context is encoded alone
/// (with BOS when the model wants one) and each continuation's ids are those of
/// `context + continuation` after the context's length. An empty context is the BOS token
/// alone (the harness's `prefix_token_id`), and its continuations are encoded alone.
pub fn encode_pairs(
    llm: &Llm,
    context: &str,
    continuations: &[String],
) -> Result<(Vec<u32>, Vec<Vec<u32>>)> {
    // Python's str.rstrip() strips what str.isspace() calls whitespace, which adds the
    // four information separators to Unicode's White_Space.
    let kept =
        context.trim_end_matches(|c: char| c.is_whitespace() || ('\x1c'..='\x1f').contains(&c));
    let moved = &context[kept.len()..];
    if kept.is_empty() {
        let special = llm.tokenizer.special();
        let prefix = special.bos.or(special.eos).ok_or_else(|| {
            Error::InvalidInput("an empty context needs a BOS or EOS token to start from".into())
        })?;
        let conts = continuations
            .iter()
            .map(|c| {
                let ids = llm.tokenizer.encode(&format!("{moved}{c}"), false, false)?;
                non_empty(ids, c)
            })
            .collect::<Result<Vec<_>>>()?;
        return Ok((vec![prefix], conts));
    }
    let context_ids = llm.encode(kept)?;
    let conts = continuations
        .iter()
        .map(|c| {
            let whole = llm.encode(&format!("{context}{c}"))?;
            non_empty(
                whole.get(context_ids.len()..).unwrap_or_default().to_vec(),
                c,
            )
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((context_ids, conts))
}

fn non_empty(ids: Vec<u32>, continuation: &str) -> Result<Vec<u32>> {
    if ids.is_empty() {
        return Err(Error::InvalidInput(format!(
            "the continuation {continuation:?} has no tokens of its own after the context"
        )));
    }
    Ok(ids)
}

/// Scores token continuations after `context` (non-empty ids).
///
/// The context runs once, and its last position's logits score every continuation's first
/// token. The rest is a walk down the trie of the continuations: continuations that go on
/// with the same token share the run of tokens they have in common, fed once over a copy of
/// the cache they branch from, so each distinct prefix is computed once. Every branch of
/// one level runs in one batched forward pass (split when its logits would exceed
/// [`MAX_BATCH_ROWS`] rows). Single-token answers (`A`/`B`/`C`/`D`) thus cost no more than
/// the context; answers that differ from the first token cost one pass for all of them.
pub fn score_tokens(llm: &Llm, context: &[u32], continuations: &[Vec<u32>]) -> Result<Vec<Scored>> {
    if context.is_empty() {
        return Err(Error::InvalidInput("the context has no tokens".into()));
    }
    if let Some(i) = continuations.iter().position(Vec::is_empty) {
        return Err(Error::InvalidInput(format!(
            "continuation {i} has no tokens"
        )));
    }
    let total = context.len() + continuations.iter().map(Vec::len).max().unwrap_or(0);
    if total > llm.model.config.context {
        return Err(Error::InvalidInput(format!(
            "context and continuation take {total} tokens; the model's context holds {}",
            llm.model.config.context
        )));
    }
    let vocab = llm.model.config.vocab;
    let mut cache = llm.model.new_cache();
    let row = llm.forward(context, &mut cache, Logits::Last)?;
    let mut sums = vec![(0.0f64, true); continuations.len()];
    let mut frontier = vec![Branch {
        cache,
        row,
        items: (0..continuations.len()).map(|c| (c, 0)).collect(),
    }];
    while !frontier.is_empty() {
        let stats: Vec<RowStats> =
            llm.install(|| team::map(frontier.len(), |i| RowStats::of(&frontier[i].row)));
        let mut forks: Vec<Fork> = Vec::new();
        for (parent, (branch, stat)) in frontier.iter().zip(&stats).enumerate() {
            for &(c, pos) in &branch.items {
                stat.add(&branch.row, continuations[c][pos], &mut sums[c]);
            }
            let first_fork = forks.len();
            for &(c, pos) in &branch.items {
                let cont = &continuations[c];
                // the tokens still to feed: all but the last, whose logits nothing needs
                let feed = &cont[pos..cont.len() - 1];
                if feed.is_empty() {
                    continue;
                }
                match forks[first_fork..]
                    .iter_mut()
                    .find(|f| f.feed[0] == feed[0])
                {
                    Some(fork) => {
                        let common = fork
                            .feed
                            .iter()
                            .zip(feed)
                            .take_while(|(a, b)| a == b)
                            .count();
                        fork.feed.truncate(common);
                        fork.members.push((c, pos));
                    }
                    None => forks.push(Fork {
                        parent,
                        feed: feed.to_vec(),
                        members: vec![(c, pos)],
                    }),
                }
            }
        }
        let mut next = Vec::with_capacity(forks.len());
        let mut start = 0;
        while start < forks.len() {
            let mut end = start + 1;
            let mut rows = forks[start].feed.len();
            while end < forks.len() && rows + forks[end].feed.len() <= MAX_BATCH_ROWS {
                rows += forks[end].feed.len();
                end += 1;
            }
            let mut caches: Vec<Cache> = forks[start..end]
                .iter()
                .map(|f| frontier[f.parent].cache.clone())
                .collect();
            let mut batch: Vec<(&[u32], &mut Cache)> = forks[start..end]
                .iter()
                .map(|f| f.feed.as_slice())
                .zip(caches.iter_mut())
                .collect();
            let logits = llm.install(|| llm.model.forward_batch(&mut batch, Logits::All))?;
            for ((fork, rows), cache) in forks[start..end].iter().zip(logits).zip(caches) {
                let n = fork.feed.len();
                let stats: Vec<RowStats> = llm
                    .install(|| team::map(n, |k| RowStats::of(&rows[k * vocab..(k + 1) * vocab])));
                // row k holds the logits after feed[..=k]: it scores token pos + k + 1
                for &(c, pos) in &fork.members {
                    for (k, stat) in stats[..n - 1].iter().enumerate() {
                        let row = &rows[k * vocab..(k + 1) * vocab];
                        stat.add(row, continuations[c][pos + k + 1], &mut sums[c]);
                    }
                }
                next.push(Branch {
                    cache,
                    row: rows[(n - 1) * vocab..].to_vec(),
                    items: fork.members.iter().map(|&(c, pos)| (c, pos + n)).collect(),
                });
            }
            start = end;
        }
        frontier = next;
    }
    Ok(sums
        .into_iter()
        .zip(continuations)
        .map(|((logprob, is_greedy), cont)| Scored {
            logprob,
            is_greedy,
            tokens: cont.len(),
        })
        .collect())
}

/// A point of the continuation trie: the cache after some prefix, the logits that predict
/// the next token, and the continuations (index, position of that next token) passing here.
struct Branch {
    cache: Cache,
    row: Vec<f32>,
    items: Vec<(usize, usize)>,
}

/// Continuations of one branch that go on with the same tokens: `feed`, their common run.
struct Fork {
    parent: usize,
    feed: Vec<u32>,
    members: Vec<(usize, usize)>,
}

/// What scoring a token needs from a row of logits: its log-normaliser and its argmax.
struct RowStats {
    log_norm: f64,
    argmax: u32,
}

impl RowStats {
    /// `log Σ exp(row)` and the row's greedy token.
    fn of(row: &[f32]) -> RowStats {
        RowStats {
            log_norm: crate::kernels::log_sum_exp(row),
            argmax: sample::argmax(row),
        }
    }

    /// Adds `target`'s log-probability to a running (sum, all greedy so far).
    fn add(&self, row: &[f32], target: u32, sum: &mut (f64, bool)) {
        sum.0 += row[target as usize] as f64 - self.log_norm;
        sum.1 &= self.argmax == target;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::ensure_default_model;
    use std::sync::OnceLock;

    fn llm() -> &'static Llm {
        static LLM: OnceLock<Llm> = OnceLock::new();
        LLM.get_or_init(|| {
            let path = ensure_default_model(&crate::test_cache_dir()).expect("default model");
            Llm::load(&path, 2).expect("load")
        })
    }

    #[test]
    fn trailing_space_of_the_context_moves_onto_the_continuation() {
        let llm = llm();
        let conts = vec!["그래서 비가 왔다.".to_string()];
        let (ctx, tails) = encode_pairs(llm, "하늘이 흐렸다. ", &conts).unwrap();
        assert_eq!(ctx, llm.encode("하늘이 흐렸다.").unwrap());
        let whole = llm.encode("하늘이 흐렸다. 그래서 비가 왔다.").unwrap();
        assert_eq!([ctx.as_slice(), tails[0].as_slice()].concat(), whole);
        // the moved space is part of the continuation's first token
        let first = llm.tokenizer.decode(&tails[0][..1]);
        assert!(first.starts_with(' '), "{first:?}");
    }

    #[test]
    fn continuation_tokens_are_the_tail_after_the_context_length() {
        let llm = llm();
        // "식품의약" + "품" may merge across the boundary; the tail is still taken by length
        let conts = vec!["품안전처".to_string(), " 안전".to_string()];
        let (ctx, tails) = encode_pairs(llm, "식품의약", &conts).unwrap();
        for (c, tail) in conts.iter().zip(&tails) {
            let whole = llm.encode(&format!("식품의약{c}")).unwrap();
            assert_eq!(tail.as_slice(), &whole[ctx.len()..]);
        }
        assert!(encode_pairs(llm, "식품", &["".to_string()]).is_err());
    }

    #[test]
    fn shared_prefixes_score_as_if_each_continuation_ran_alone() {
        let llm = llm();
        let context = "다음 중 옳은 것은?\n(A) 사과\n(B) 배\n정답:";
        let conts: Vec<String> = [" (A)", " (B)", " (A) 사과", " A", " (A)", " 배"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let (ctx, tails) = encode_pairs(llm, context, &conts).unwrap();
        assert_eq!(
            tails[0][0], tails[1][0],
            "the test needs a shared first token"
        );
        let ours = score_tokens(llm, &ctx, &tails).unwrap();
        for (i, tail) in tails.iter().enumerate() {
            let (alone, greedy) = llm.loglikelihood(&ctx, std::slice::from_ref(tail)).unwrap()[0];
            // Rows computed in a longer or shorter pass round their 8-bit products
            // differently: " 배" scores -4.45 from the context's prefill row, -4.86 through
            // the decoding path, and -4.63 in llama.cpp. A row used for the wrong position
            // would be off by several nats.
            assert!(
                (ours[i].logprob - alone).abs() < 0.5 * tail.len() as f64,
                "{i}: {} vs {alone}",
                ours[i].logprob
            );
            assert_eq!(ours[i].is_greedy, greedy, "{i}");
            assert_eq!(ours[i].tokens, tail.len());
        }
        assert_eq!(
            ours[0], ours[4],
            "the same continuation twice scores the same"
        );
    }

    #[test]
    fn batched_scores_match_one_by_one_and_the_engine() {
        let llm = llm();
        let context = "질문: 식품의약품안전처는 무엇을 하는 기관인가?\n답:";
        let conts: Vec<String> = [
            " 식품과 의약품의 안전을 관리한다.",
            " 날씨를 예보한다.",
            " 세금",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let batched = score_continuations(llm, context, &conts).unwrap();
        let (ctx, tails) = encode_pairs(llm, context, &conts).unwrap();
        let reference = llm.loglikelihood(&ctx, &tails).unwrap();
        for ((b, (lp, greedy)), tail) in batched.iter().zip(&reference).zip(&tails) {
            assert_eq!(b.tokens, tail.len());
            assert!(b.logprob < 0.0);
            // one batch or one pass per continuation: the same up to the rounding of products
            assert!(
                (b.logprob - lp).abs() < 0.25 * b.tokens as f64,
                "{} vs {lp}",
                b.logprob
            );
            assert_eq!(b.is_greedy, *greedy);
        }
        // The agency's job is likelier than the weather.
        assert!(
            batched[0].logprob / batched[0].tokens as f64
                > batched[1].logprob / batched[1].tokens as f64
        );
        // deterministic
        assert_eq!(score_continuations(llm, context, &conts).unwrap(), batched);
    }
}
