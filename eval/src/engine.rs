//! The seam between the eval suite and a language model: score continuations after a
//! context. The engine in `src/llm/` implements it; the suite never sees tokens or weights.

use crate::error::Result;

/// A continuation's score: the summed log-probability of its tokens given the context,
/// whether greedy decoding would have produced exactly those tokens, and how many tokens
/// the engine's tokenizer made of it (recorded so another engine's scores can be compared).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scored {
    pub logprob: f64,
    pub is_greedy: bool,
    pub tokens: usize,
}

/// Anything that can score continuations of a context, like lm-evaluation-harness's
/// `loglikelihood` requests. All continuations of one call share the context, so an
/// engine can evaluate the context once and score each continuation from its cached state.
pub trait LogLikelihood {
    /// One [`Scored`] per continuation, in order. Continuations start with the task's target
    /// delimiter (usually a space). To match the harness, an engine moves trailing whitespace
    /// of the context onto the continuation, encodes `context + continuation` whole, and
    /// scores the tokens after those of the context alone (`_encode_pair` in the harness).
    fn loglikelihood(&mut self, context: &str, continuations: &[String]) -> Result<Vec<Scored>>;
}
