//! The seam between what needs a language model (answers, the eval suite, the HTTP API) and
//! what runs it: our own engine in this process, or a remote OpenAI-compatible server.

use super::{GenerateParams, Generation};
use crate::error::Result;
use serde::{Deserialize, Serialize};

/// One message of a chat, in OpenAI's shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

/// What the model is asked to continue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prompt {
    /// Raw text, continued as a document (base models, few-shot prompts).
    Text(String),
    /// A conversation, rendered with the model's chat template.
    Chat(Vec<ChatMessage>),
}

/// The score of one continuation: summed log-probability of its tokens after the context,
/// and whether greedy decoding would have produced exactly it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Scored {
    pub logprob: f64,
    pub is_greedy: bool,
    pub tokens: usize,
}

/// A language model that can generate and score text.
pub trait Generator: Send + Sync {
    /// The model's id, as `/v1/models` lists it.
    fn model_id(&self) -> String;

    /// Generates a continuation of `prompt`. Text arrives at `on_text` piece by piece as it
    /// becomes final; returning `false` cancels (the result then says `Finish::Cancelled`).
    fn generate(
        &self,
        prompt: &Prompt,
        params: &GenerateParams,
        on_text: &mut dyn FnMut(&str) -> bool,
    ) -> Result<Generation>;

    /// Scores each continuation after `context` (the same context is computed once).
    /// Tokenisation follows lm-evaluation-harness: context and continuation are encoded
    /// together and the continuation's tokens are those after the context's.
    fn loglikelihood(&self, context: &str, continuations: &[String]) -> Result<Vec<Scored>>;

    /// Tokens of `text` as the model counts them (for packing prompts into the context).
    fn count_tokens(&self, text: &str) -> Result<usize>;

    /// The model's context window in tokens.
    fn context_tokens(&self) -> usize;
}
