//! Our LLM engine: GGUF weights used in place ([`weight`]), the transformer forward pass on
//! our CPU kernels ([`model`]) or on a candle device such as a CUDA GPU ([`device`]),
//! tokenizers ([`tokenizer`]), sampling ([`sample`]), and generation with stop sequences,
//! streaming and prompt-prefix reuse ([`Llm`]).

pub mod assets;
mod bpe;
mod chat;
pub mod device;
pub mod engine;
pub mod generator;
pub mod gguf;
pub mod model;
mod quant;
pub mod remote;
pub mod safetensors;
pub mod sample;
pub mod scoring;
mod team;
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
    team: team::Team,
    name: String,
    /// The Jinja chat template from the model's metadata, if it has one.
    chat_template: Option<String>,
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
    /// Loads a GGUF checkpoint and makes a team of `threads` threads (0: one per core).
    pub fn load(path: &Path, threads: usize) -> Result<Self> {
        let (model, tokenizer, name, chat_template) = if safetensors::is_checkpoint(path) {
            let checkpoint = safetensors::Checkpoint::open(path)?;
            let model = Model::load(checkpoint.config()?, &checkpoint)?;
            let mut tokenizer = Tokenizer::load(None, &checkpoint.dir().join("tokenizer.json"))?;
            tokenizer.set_special(checkpoint.special_ids());
            let name = dir_name(checkpoint.dir());
            (model, tokenizer, name, checkpoint.chat_template())
        } else {
            let gguf = gguf::GgufFile::open(path)?;
            let model = Model::from_gguf(&gguf)?;
            let tokenizer = Tokenizer::load(Some(&gguf), path)?;
            let name = gguf
                .string("general.name")
                .map(str::to_string)
                .unwrap_or_else(|| dir_name(path));
            let template = gguf.string("tokenizer.chat_template").map(str::to_string);
            (model, tokenizer, name, template)
        };
        if tokenizer.vocab_size() > model.config.vocab {
            return Err(Error::Model(format!(
                "{}: tokenizer has {} tokens but the output layer only {}",
                path.display(),
                tokenizer.vocab_size(),
                model.config.vocab
            )));
        }
        let team =
            team::Team::new(threads).map_err(|e| Error::Model(format!("engine threads: {e}")))?;
        Ok(Llm {
            model,
            tokenizer,
            team,
            name,
            chat_template,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn chat_template(&self) -> Option<&str> {
        self.chat_template.as_deref()
    }

    pub fn threads(&self) -> usize {
        self.team.threads()
    }

    /// Runs `f` on the engine's threads.
    pub fn install<R>(&self, f: impl FnOnce() -> R) -> R {
        self.team.install(f)
    }

    /// Prompt ids for plain text (BOS as the model wants it; specials in the text are text).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let add_bos = self.tokenizer.special().add_bos;
        self.tokenizer.encode(text, add_bos, false)
    }

    /// Logits of `tokens` after what `cache` holds, on the engine's threads.
    pub fn forward(&self, tokens: &[u32], cache: &mut Cache, logits: Logits) -> Result<Vec<f32>> {
        self.install(|| self.model.forward(tokens, cache, logits))
    }

    /// Runs the prompt tokens `todo` after what `cache` holds and returns the logits after the
    /// last one. All but the last run as one prefill; the last runs alone, as a cached
    /// prompt's last token does when the same prompt comes again (reuse keeps all but the
    /// last token), so an identical request decodes identically whether or not its prefix
    /// came from the cache (the one-row and many-row products round differently).
    pub fn prefill(&self, todo: &[u32], cache: &mut Cache) -> Result<Vec<f32>> {
        let Some((last, prefix)) = todo.split_last() else {
            return Err(Error::InvalidInput("no tokens to run".into()));
        };
        if !prefix.is_empty() {
            self.forward(prefix, cache, Logits::None)?;
        }
        self.forward(std::slice::from_ref(last), cache, Logits::Last)
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
        let taken = std::mem::replace(cache, self.model.new_cache());
        let (mut seq, todo) = Sequence::start(self, taken, prompt, params.clone())?;
        let mut logits = self.prefill(&todo, &mut seq.cache);
        let outcome = loop {
            let mut row = match logits {
                Ok(l) => l,
                Err(e) => break Err(e),
            };
            let step = seq.step(self, &mut row);
            if !step.text.is_empty() && !on_text(&step.text) {
                seq.cancel();
            }
            match step.next {
                Some(id) if !seq.is_done() => {
                    logits = self.forward(&[id], &mut seq.cache, Logits::Last);
                }
                _ => break Ok(()),
            }
        };
        let (generation, tail, used) = seq.finish();
        *cache = used;
        outcome?;
        if !tail.is_empty() {
            on_text(&tail);
        }
        Ok(generation)
    }

    pub(crate) fn is_end_of_turn(&self, id: u32) -> bool {
        ["<end_of_turn>", "<|im_end|>", "<|eot_id|>", "[|endofturn|]"]
            .iter()
            .any(|t| self.tokenizer.piece_id(t) == Some(id))
    }

    /// Log-probabilities of each continuation's tokens after `context` (summed), and whether
    /// each continuation is the greedy one, one continuation at a time: the plain reference
    /// that tests hold the batched scorer (`scoring::score_tokens`) to.
    #[cfg(test)]
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

    /// For each token after the first: its log-probability given the tokens before it, and
    /// the most likely token at that position (OpenAI's `echo` + `logprobs`).
    pub fn token_logprobs(&self, ids: &[u32]) -> Result<Vec<(f64, u32)>> {
        if ids.len() < 2 {
            return Ok(Vec::new());
        }
        let vocab = self.model.config.vocab;
        let mut cache = self.model.new_cache();
        let logits = self.forward(&ids[..ids.len() - 1], &mut cache, Logits::All)?;
        Ok(logits
            .chunks_exact(vocab)
            .zip(&ids[1..])
            .map(|(row, &id)| (log_softmax_at(row, id as usize), sample::argmax(row)))
            .collect())
    }

    #[cfg(test)]
    fn forward_no_logits(&self, tokens: &[u32], cache: &mut Cache) -> Result<()> {
        if !tokens.is_empty() {
            self.forward(tokens, cache, Logits::None)?;
        }
        Ok(())
    }
}

/// One generation in progress: its cache, sampler and output filters. The single-shot
/// [`Llm::generate`] and the batching engine drive the same state machine.
pub struct Sequence {
    cache: Cache,
    sampler: Sampler,
    detok: Detokenizer,
    stop: StopFilter,
    history: Vec<u32>,
    max_tokens: usize,
    produced: usize,
    prompt_tokens: usize,
    reused_tokens: usize,
    finish: Option<Finish>,
    started: Instant,
    ttft_ms: Option<f64>,
}

/// What one step produced: text now safe to show, and the token to feed next (none when the
/// sequence has ended).
pub struct Step {
    pub text: String,
    pub next: Option<u32>,
}

impl Sequence {
    /// Prepares `prompt` on `cache` (keeping the prefix it shares with the cached tokens) and
    /// returns the sequence and the tokens still to run through the model.
    pub fn start(
        llm: &Llm,
        mut cache: Cache,
        prompt: &[u32],
        params: GenerateParams,
    ) -> Result<(Self, Vec<u32>)> {
        if prompt.is_empty() {
            return Err(Error::InvalidInput("the prompt is empty".into()));
        }
        let context = llm.model.config.context;
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
        cache.truncate(shared, llm.model.kv_dim());
        let seq = Sequence {
            cache,
            sampler: Sampler::new(params.sampling),
            detok: Detokenizer::default(),
            stop: StopFilter::new(params.stop),
            history: prompt.to_vec(),
            max_tokens: params.max_tokens,
            produced: 0,
            prompt_tokens: prompt.len(),
            reused_tokens: shared,
            finish: None,
            started: Instant::now(),
            ttft_ms: None,
        };
        Ok((seq, prompt[shared..].to_vec()))
    }

    pub fn cache_mut(&mut self) -> &mut Cache {
        &mut self.cache
    }

    pub fn is_done(&self) -> bool {
        self.finish.is_some()
    }

    /// Ends the sequence because its receiver went away.
    pub fn cancel(&mut self) {
        self.finish.get_or_insert(Finish::Cancelled);
    }

    /// Takes the logits after the last token run and picks the next token.
    pub fn step(&mut self, llm: &Llm, logits: &mut [f32]) -> Step {
        self.ttft_ms
            .get_or_insert_with(|| self.started.elapsed().as_secs_f64() * 1e3);
        let context = llm.model.config.context;
        if self.finish.is_some() {
            return Step {
                text: String::new(),
                next: None,
            };
        }
        if self.produced >= self.max_tokens || self.cache.len() >= context {
            self.finish = Some(Finish::Length);
            return Step {
                text: String::new(),
                next: None,
            };
        }
        let id = self.sampler.sample(logits, &self.history);
        if Some(id) == llm.tokenizer.special().eos || llm.is_end_of_turn(id) {
            self.finish = Some(Finish::Stop);
            return Step {
                text: String::new(),
                next: None,
            };
        }
        self.produced += 1;
        self.history.push(id);
        let piece = self.detok.push(&llm.tokenizer, id);
        let (text, stopped) = self.stop.push(&piece);
        if stopped {
            self.finish = Some(Finish::Stop);
        } else if self.produced >= self.max_tokens || self.cache.len() >= context {
            self.finish = Some(Finish::Length);
        }
        Step {
            text,
            next: Some(id),
        }
    }

    /// The result, the text still held back (to be shown unless cancelled), and the cache.
    pub fn finish(mut self) -> (Generation, String, Cache) {
        let finish = self.finish.unwrap_or(Finish::Length);
        let tail = if finish == Finish::Cancelled {
            String::new()
        } else {
            let (ready, _) = self.stop.push(&self.detok.finish());
            ready + &self.stop.flush()
        };
        let generation = Generation {
            text: self.stop.text,
            prompt_tokens: self.prompt_tokens,
            completion_tokens: self.produced,
            reused_tokens: self.reused_tokens,
            finish,
            ttft_ms: self.ttft_ms.unwrap_or_default(),
            total_ms: self.started.elapsed().as_secs_f64() * 1e3,
        };
        (generation, tail, self.cache)
    }
}

/// `log softmax(row)[target]`, accumulated in f64.
pub fn log_softmax_at(row: &[f32], target: usize) -> f64 {
    row[target] as f64 - crate::kernels::log_sum_exp(row)
}

/// Holds back generated text that might be the start of a stop sequence, and cuts the text
/// at the first complete one.
struct StopFilter {
    stops: Vec<String>,
    text: String,
    emitted: usize,
    /// A stop sequence was seen: nothing more is taken.
    done: bool,
}

impl StopFilter {
    fn new(stops: Vec<String>) -> Self {
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

/// A model's name from its file or folder name.
fn dir_name(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into())
}

#[cfg(test)]
mod tests;
