//! Our LLM engine on the CPU: GGUF weights used in place ([`weight`]), the transformer forward
//! pass ([`model`]), tokenizers ([`tokenizer`]), sampling ([`sample`]), and generation with
//! stop sequences, streaming and prompt-prefix reuse ([`Llm`]).

pub mod assets;
pub mod generator;
pub mod gguf;
pub mod model;
pub mod sample;
pub mod tokenizer;
pub mod weight;

pub use assets::ensure_default_model;
pub use generator::{ChatMessage, Generator, Prompt, Scored};
pub use model::{Cache, Logits, Model};
pub use sample::{Sampler, SamplingParams};
pub use tokenizer::{Detokenizer, Tokenizer};

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Instant;

/// A model ready to run: weights, tokenizer and the threads it runs on.
pub struct Llm {
    pub model: Model,
    pub tokenizer: Tokenizer,
    pool: rayon::ThreadPool,
    name: String,
}

/// What to generate and when to stop.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct GenerateParams {
    pub max_tokens: usize,
    pub stop: Vec<String>,
    #[serde(flatten)]
    pub sampling: SamplingParams,
}

impl Default for GenerateParams {
    fn default() -> Self {
        GenerateParams {
            max_tokens: 256,
            stop: Vec::new(),
            sampling: SamplingParams::default(),
        }
    }
}

/// Why generation ended, in OpenAI's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Finish {
    /// End-of-sequence token or a stop sequence.
    Stop,
    /// `max_tokens` or the context filled up.
    Length,
    /// The receiver of the stream went away.
    Cancelled,
}

/// The result of one generation.
#[derive(Debug, Clone, Serialize)]
pub struct Generation {
    pub text: String,
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    /// Prompt tokens served from the cache instead of being recomputed.
    pub reused_tokens: usize,
    pub finish: Finish,
    pub ttft_ms: f64,
    pub total_ms: f64,
}

impl Llm {
    /// Loads a GGUF checkpoint and makes a pool of `threads` workers (0: one per core).
    pub fn load(path: &Path, threads: usize) -> Result<Self> {
        let gguf = gguf::GgufFile::open(path)?;
        let model = Model::from_gguf(&gguf)?;
        let tokenizer = Tokenizer::load(Some(&gguf), path)?;
        if tokenizer.vocab_size() > model.config.vocab {
            return Err(Error::Model(format!(
                "{}: tokenizer has {} tokens but the output layer only {}",
                path.display(),
                tokenizer.vocab_size(),
                model.config.vocab
            )));
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("anjeon-llm-{i}"))
            .build()
            .map_err(|e| Error::Model(format!("thread pool: {e}")))?;
        let name = gguf
            .string("general.name")
            .map(str::to_string)
            .or_else(|| path.file_stem().map(|s| s.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "model".into());
        Ok(Llm {
            model,
            tokenizer,
            pool,
            name,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn threads(&self) -> usize {
        self.pool.current_num_threads()
    }

    /// Runs `f` on the engine's threads.
    pub fn install<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        self.pool.install(f)
    }

    /// Prompt ids for plain text (BOS as the model wants it; specials in the text are text).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let add_bos = self.tokenizer.special().add_bos;
        self.tokenizer.encode(text, add_bos, false)
    }

    /// Logits of `tokens` after what `cache` holds, on the engine's threads.
    pub fn forward(&self, tokens: &[u32], cache: &mut Cache, logits: Logits) -> Result<Vec<f32>> {
        self.pool
            .install(|| self.model.forward(tokens, cache, logits))
    }

    /// Generates a continuation of `prompt`, reusing whatever prefix of it `cache` already
    /// holds. `on_text` receives each piece of text as soon as it is final (never half a
    /// character, never part of a stop sequence) and returns `false` to cancel.
    pub fn generate(
        &self,
        cache: &mut Cache,
        prompt: &[u32],
        params: &GenerateParams,
        on_text: &mut dyn FnMut(&str) -> bool,
    ) -> Result<Generation> {
        let start = Instant::now();
        if prompt.is_empty() {
            return Err(Error::InvalidInput("the prompt is empty".into()));
        }
        let context = self.model.config.context;
        if prompt.len() >= context {
            return Err(Error::InvalidInput(format!(
                "the prompt has {} tokens; the model's context holds {context}",
                prompt.len()
            )));
        }
        let shared = cache
            .tokens()
            .iter()
            .zip(prompt)
            .take_while(|(a, b)| a == b)
            .count()
            .min(prompt.len() - 1);
        cache.truncate(shared, self.model.kv_dim());
        let mut logits = self.forward(&prompt[shared..], cache, Logits::Last)?;
        let ttft_ms = start.elapsed().as_secs_f64() * 1e3;
        let mut sampler = Sampler::new(params.sampling.clone());
        let eos = self.tokenizer.special().eos;
        let mut detok = Detokenizer::default();
        let mut stream = StopFilter::new(&params.stop);
        let mut history = prompt.to_vec();
        let mut produced = 0;
        let finish = loop {
            if produced >= params.max_tokens || cache.len() >= context {
                break Finish::Length;
            }
            let id = sampler.sample(&mut logits, &history);
            if Some(id) == eos || self.is_end_of_turn(id) {
                break Finish::Stop;
            }
            produced += 1;
            history.push(id);
            let piece = detok.push(&self.tokenizer, id);
            let (ready, stopped) = stream.push(&piece);
            if !ready.is_empty() && !on_text(&ready) {
                break Finish::Cancelled;
            }
            if stopped {
                break Finish::Stop;
            }
            if produced >= params.max_tokens || cache.len() >= context {
                break Finish::Length;
            }
            logits = self.forward(&[id], cache, Logits::Last)?;
        };
        if finish != Finish::Cancelled {
            let (ready, _) = stream.push(&detok.finish());
            let tail = ready + &stream.flush();
            if !tail.is_empty() {
                on_text(&tail);
            }
        }
        Ok(Generation {
            text: stream.text,
            prompt_tokens: prompt.len(),
            completion_tokens: produced,
            reused_tokens: shared,
            finish,
            ttft_ms,
            total_ms: start.elapsed().as_secs_f64() * 1e3,
        })
    }

    fn is_end_of_turn(&self, id: u32) -> bool {
        ["<end_of_turn>", "<|im_end|>", "<|eot_id|>", "[|endofturn|]"]
            .iter()
            .any(|t| self.tokenizer.piece_id(t) == Some(id))
    }

    /// Log-probabilities of each continuation's tokens after `context` (summed), and whether
    /// each continuation is the greedy one — the scoring the eval suite needs. The context is
    /// computed once and every continuation starts from its cached state.
    pub fn loglikelihood(
        &self,
        context: &[u32],
        continuations: &[Vec<u32>],
    ) -> Result<Vec<(f64, bool)>> {
        if context.is_empty() {
            return Err(Error::InvalidInput("the context is empty".into()));
        }
        let vocab = self.model.config.vocab;
        let mut base = self.model.new_cache();
        // everything but the last context token: its logits come with each continuation
        self.forward_no_logits(&context[..context.len() - 1], &mut base)?;
        let mut out = Vec::with_capacity(continuations.len());
        for cont in continuations {
            if cont.is_empty() {
                out.push((0.0, true));
                continue;
            }
            base.truncate(context.len() - 1, self.model.kv_dim());
            let mut input = vec![context[context.len() - 1]];
            input.extend_from_slice(&cont[..cont.len() - 1]);
            let logits = self.forward(&input, &mut base, Logits::All)?;
            let mut sum = 0.0f64;
            let mut greedy = true;
            for (row, &target) in logits.chunks_exact(vocab).zip(cont) {
                sum += log_softmax_at(row, target as usize);
                greedy &= sample::argmax(row) == target;
            }
            out.push((sum, greedy));
        }
        Ok(out)
    }

    fn forward_no_logits(&self, tokens: &[u32], cache: &mut Cache) -> Result<()> {
        if !tokens.is_empty() {
            self.forward(tokens, cache, Logits::Last)?;
        }
        Ok(())
    }
}

/// `log softmax(row)[target]`, accumulated in f64.
pub fn log_softmax_at(row: &[f32], target: usize) -> f64 {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let sum: f64 = row.iter().map(|&l| (l as f64 - max).exp()).sum();
    row[target] as f64 - max - sum.ln()
}

/// Holds back generated text that might be the start of a stop sequence, and cuts the text
/// at the first complete one.
struct StopFilter<'a> {
    stops: &'a [String],
    text: String,
    emitted: usize,
    /// A stop sequence was seen: nothing more is taken.
    done: bool,
}

impl<'a> StopFilter<'a> {
    fn new(stops: &'a [String]) -> Self {
        StopFilter {
            stops,
            text: String::new(),
            emitted: 0,
            done: false,
        }
    }

    /// Adds `piece`; returns the text now safe to show and whether a stop sequence was hit.
    fn push(&mut self, piece: &str) -> (String, bool) {
        if self.done {
            return (String::new(), true);
        }
        let search_from = self.emitted;
        self.text.push_str(piece);
        let hit = self
            .stops
            .iter()
            .filter(|s| !s.is_empty())
            .filter_map(|s| {
                self.text[search_from..]
                    .find(s.as_str())
                    .map(|p| search_from + p)
            })
            .min();
        if let Some(at) = hit {
            self.text.truncate(at);
            self.done = true;
            return (self.flush(), true);
        }
        let held = self
            .stops
            .iter()
            .map(|s| longest_suffix_prefix(&self.text[self.emitted..], s))
            .max()
            .unwrap_or(0);
        let end = self.text.len() - held;
        let ready = self.text[self.emitted..end].to_string();
        self.emitted = end;
        (ready, false)
    }

    fn flush(&mut self) -> String {
        let rest = self.text[self.emitted..].to_string();
        self.emitted = self.text.len();
        rest
    }
}

/// Length in bytes of the longest suffix of `text` that is a proper prefix of `stop`.
fn longest_suffix_prefix(text: &str, stop: &str) -> usize {
    (1..stop.len().min(text.len() + 1))
        .rev()
        .find(|&n| {
            stop.is_char_boundary(n)
                && text.is_char_boundary(text.len() - n)
                && text.ends_with(&stop[..n])
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests;
