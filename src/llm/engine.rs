//! The engine thread: owns the model's compute, takes requests through a bounded queue, and
//! batches every running generation into one forward pass per step (continuous batching).
//!
//! Requests wait in the queue until a batch slot frees; when the queue is full a request is
//! refused at once with [`Error::Busy`] (HTTP 429) instead of piling up. A caller that stops
//! listening (a closed stream) frees its slot at the next step. Finished sequences leave their
//! KV cache behind for the next request that shares their prompt prefix.

use super::chat::ChatTemplate;
use super::generator::{Generator, Prompt, Scored};
use super::scoring;
use super::{Cache, GenerateParams, Generation, Llm, Logits, Sequence};
use crate::error::{Error, Result};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender, TryRecvError, TrySendError};
use std::sync::Arc;

/// Limits of the engine.
#[derive(Debug, Clone, Copy)]
pub struct EngineLimits {
    /// Generations decoded together.
    pub max_batch: usize,
    /// Requests waiting for a slot before new ones are refused.
    pub queue: usize,
    /// Finished caches kept for prefix reuse.
    pub cached_prompts: usize,
}

impl Default for EngineLimits {
    fn default() -> Self {
        EngineLimits {
            max_batch: 8,
            queue: 32,
            cached_prompts: 4,
        }
    }
}

enum Job {
    Generate {
        prompt: Vec<u32>,
        params: GenerateParams,
        events: Sender<Event>,
        cancelled: Arc<AtomicBool>,
    },
    Score {
        context: Vec<u32>,
        continuations: Vec<Vec<u32>>,
        reply: Sender<Result<Vec<Scored>>>,
    },
    Logprobs {
        ids: Vec<u32>,
        reply: Sender<Result<Vec<(f64, u32)>>>,
    },
}

/// Per-token log-probabilities of a text (the first token has none), with each token's text,
/// its character offset in the text, and the most likely token at its position.
#[derive(Debug, Clone)]
pub struct EchoLogprobs {
    pub tokens: Vec<String>,
    pub logprobs: Vec<Option<f64>>,
    pub offsets: Vec<usize>,
    pub top: Vec<Option<String>>,
}

enum Event {
    Text(String),
    Done(Result<Generation>),
}

/// A handle to the engine thread; cheap to share (`Arc`) between request handlers.
pub struct Engine {
    llm: Arc<Llm>,
    template: ChatTemplate,
    jobs: SyncSender<Job>,
    waiting: Arc<AtomicUsize>,
    model_id: String,
    thread: std::thread::JoinHandle<()>,
}

struct Running {
    seq: Sequence,
    next: u32,
    events: Sender<Event>,
    cancelled: Arc<AtomicBool>,
}

impl Engine {
    /// Starts the engine thread for `llm`.
    pub fn start(llm: Llm, limits: EngineLimits) -> Result<Self> {
        let llm = Arc::new(llm);
        let template = ChatTemplate::from_model(&llm)?;
        let (jobs, queue) = mpsc::sync_channel(limits.queue.max(1));
        let waiting = Arc::new(AtomicUsize::new(0));
        let worker = Worker {
            llm: llm.clone(),
            limits,
            queue,
            waiting: waiting.clone(),
            running: Vec::new(),
            idle: Vec::new(),
        };
        let thread = std::thread::Builder::new()
            .name("anjeon-engine".into())
            .spawn(move || worker.run())
            .map_err(|e| Error::Model(format!("cannot start the engine thread: {e}")))?;
        let model_id = llm.name().to_string();
        Ok(Engine {
            llm,
            template,
            jobs,
            waiting,
            model_id,
            thread,
        })
    }

    /// Whether the engine thread still runs (it ends only by a panic in the compute).
    pub fn is_alive(&self) -> bool {
        !self.thread.is_finished()
    }

    pub fn llm(&self) -> &Llm {
        &self.llm
    }

    /// Requests queued and not yet running.
    pub fn queue_depth(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    fn submit(&self, job: Job) -> Result<()> {
        self.waiting.fetch_add(1, Ordering::Relaxed);
        match self.jobs.try_send(job) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.waiting.fetch_sub(1, Ordering::Relaxed);
                Err(match e {
                    TrySendError::Full(_) => Error::Busy(
                        "the model is busy with other requests; try again shortly".into(),
                    ),
                    TrySendError::Disconnected(_) => Error::Model("the engine has stopped".into()),
                })
            }
        }
    }

    /// Token ids of a prompt, rendered with the chat template when it is a conversation.
    pub fn prompt_ids(&self, prompt: &Prompt) -> Result<Vec<u32>> {
        match prompt {
            Prompt::Text(text) => self.llm.encode(text),
            Prompt::Chat(messages) => self.template.encode(&self.llm, messages),
        }
    }

    /// Stop sequences a prompt implies (the transcript fallback needs one).
    fn implied_stops(&self, prompt: &Prompt) -> Vec<String> {
        match prompt {
            Prompt::Chat(_) => self.template.stops(),
            Prompt::Text(_) => Vec::new(),
        }
    }

    /// Log-probabilities of every token of `text` (OpenAI completions with `echo`).
    pub fn echo_logprobs(&self, text: &str) -> Result<EchoLogprobs> {
        let ids = self.llm.encode(text)?;
        if ids.len() >= self.context_tokens() {
            return Err(Error::InvalidInput(format!(
                "the prompt has {} tokens; the model's context holds {}",
                ids.len(),
                self.context_tokens()
            )));
        }
        let (reply, answer) = mpsc::channel();
        self.submit(Job::Logprobs {
            ids: ids.clone(),
            reply,
        })?;
        let scored = answer
            .recv()
            .map_err(|_| Error::Model("the engine stopped while scoring".into()))??;
        let tok = &self.llm.tokenizer;
        let bos = tok.special().bos;
        let mut out = EchoLogprobs {
            tokens: Vec::new(),
            logprobs: Vec::new(),
            offsets: Vec::new(),
            top: Vec::new(),
        };
        let mut offset = 0;
        for (i, &id) in ids.iter().enumerate() {
            // a BOS the tokenizer added is not part of the text
            if i == 0 && Some(id) == bos {
                continue;
            }
            let piece = String::from_utf8_lossy(&tok.token_bytes(id)).into_owned();
            out.offsets.push(offset);
            offset += piece.chars().count();
            out.tokens.push(piece);
            let score = i.checked_sub(1).and_then(|j| scored.get(j));
            out.logprobs.push(score.map(|s| s.0));
            out.top
                .push(score.map(|s| String::from_utf8_lossy(&tok.token_bytes(s.1)).into_owned()));
        }
        Ok(out)
    }
}

impl Generator for Engine {
    fn model_id(&self) -> String {
        self.model_id.clone()
    }

    fn generate(
        &self,
        prompt: &Prompt,
        params: &GenerateParams,
        on_text: &mut dyn FnMut(&str) -> bool,
    ) -> Result<Generation> {
        let ids = self.prompt_ids(prompt)?;
        let context = self.context_tokens();
        if ids.len() >= context {
            return Err(Error::InvalidInput(format!(
                "the prompt has {} tokens; the model's context holds {context}",
                ids.len()
            )));
        }
        let mut params = params.clone();
        params.stop.extend(self.implied_stops(prompt));
        let (events, inbox) = mpsc::channel();
        let cancelled = Arc::new(AtomicBool::new(false));
        self.submit(Job::Generate {
            prompt: ids,
            params,
            events,
            cancelled: cancelled.clone(),
        })?;
        for event in inbox {
            match event {
                Event::Text(text) => {
                    if !cancelled.load(Ordering::Relaxed) && !on_text(&text) {
                        cancelled.store(true, Ordering::Relaxed);
                    }
                }
                Event::Done(result) => return result,
            }
        }
        Err(Error::Model("the engine stopped during generation".into()))
    }

    fn loglikelihood(&self, context: &str, continuations: &[String]) -> Result<Vec<Scored>> {
        if continuations.is_empty() {
            return Ok(Vec::new());
        }
        let (context, continuations) = scoring::encode_pairs(&self.llm, context, continuations)?;
        let (reply, answer) = mpsc::channel();
        self.submit(Job::Score {
            context,
            continuations,
            reply,
        })?;
        answer
            .recv()
            .map_err(|_| Error::Model("the engine stopped while scoring".into()))?
    }

    fn count_tokens(&self, text: &str) -> Result<usize> {
        Ok(self.llm.tokenizer.encode(text, false, false)?.len())
    }

    fn context_tokens(&self) -> usize {
        self.llm.model.config.context
    }
}

/// The engine thread's state.
struct Worker {
    llm: Arc<Llm>,
    limits: EngineLimits,
    queue: Receiver<Job>,
    waiting: Arc<AtomicUsize>,
    running: Vec<Running>,
    /// Caches of finished generations, most recent last.
    idle: Vec<Cache>,
}

impl Worker {
    fn run(mut self) {
        loop {
            // admit waiting jobs while there are free slots; block only when idle
            while self.running.len() < self.limits.max_batch.max(1) {
                let job = if self.running.is_empty() {
                    match self.queue.recv() {
                        Ok(job) => job,
                        Err(_) => return,
                    }
                } else {
                    match self.queue.try_recv() {
                        Ok(job) => job,
                        Err(TryRecvError::Empty) => break,
                        Err(TryRecvError::Disconnected) => return,
                    }
                };
                self.waiting.fetch_sub(1, Ordering::Relaxed);
                self.admit(job);
            }
            if !self.running.is_empty() {
                self.decode_step();
            }
        }
    }

    fn admit(&mut self, job: Job) {
        match job {
            Job::Score {
                context,
                continuations,
                reply,
            } => {
                let _ = reply.send(scoring::score_tokens(&self.llm, &context, &continuations));
            }
            Job::Logprobs { ids, reply } => {
                let _ = reply.send(self.llm.token_logprobs(&ids));
            }
            Job::Generate {
                prompt,
                params,
                events,
                cancelled,
            } => {
                let cache = self.take_cache(&prompt);
                let started = Sequence::start(&self.llm, cache, &prompt, params).and_then(
                    |(mut seq, todo)| {
                        let mut logits = self.llm.prefill(&todo, seq.cache_mut())?;
                        let step = seq.step(&self.llm, &mut logits);
                        Ok((seq, step))
                    },
                );
                match started {
                    Err(e) => {
                        let _ = events.send(Event::Done(Err(e)));
                    }
                    Ok((seq, step)) => {
                        let mut running = Running {
                            seq,
                            next: step.next.unwrap_or_default(),
                            events,
                            cancelled,
                        };
                        if deliver(&mut running, step.text) && !running.seq.is_done() {
                            self.running.push(running);
                        } else {
                            self.retire(running);
                        }
                    }
                }
            }
        }
    }

    /// The idle cache sharing the longest prefix with `prompt`, or a fresh one.
    fn take_cache(&mut self, prompt: &[u32]) -> Cache {
        let best = self
            .idle
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let shared = c
                    .tokens()
                    .iter()
                    .zip(prompt)
                    .take_while(|(a, b)| a == b)
                    .count();
                (shared, i)
            })
            .max();
        match best {
            Some((shared, i)) if shared > 0 => self.idle.remove(i),
            _ => self.llm.model.new_cache(),
        }
    }

    fn decode_step(&mut self) {
        let llm = self.llm.clone();
        let nexts: Vec<u32> = self.running.iter().map(|r| r.next).collect();
        let mut batch: Vec<(&[u32], &mut Cache)> = self
            .running
            .iter_mut()
            .zip(&nexts)
            .map(|(r, next)| (std::slice::from_ref(next), r.seq.cache_mut()))
            .collect();
        let result = llm.install(|| llm.model.forward_batch(&mut batch, Logits::Last));
        drop(batch);
        let running = std::mem::take(&mut self.running);
        match result {
            Err(e) => {
                for r in running {
                    let _ = r.events.send(Event::Done(Err(Error::Model(e.to_string()))));
                }
            }
            Ok(all_logits) => {
                for (mut r, mut logits) in running.into_iter().zip(all_logits) {
                    if r.cancelled.load(Ordering::Relaxed) {
                        r.seq.cancel();
                    }
                    let step = r.seq.step(&llm, &mut logits);
                    if let Some(next) = step.next {
                        r.next = next;
                    }
                    if deliver(&mut r, step.text) && !r.seq.is_done() {
                        self.running.push(r);
                    } else {
                        self.retire(r);
                    }
                }
            }
        }
    }

    fn retire(&mut self, running: Running) {
        let (generation, tail, cache) = running.seq.finish();
        if !tail.is_empty() {
            let _ = running.events.send(Event::Text(tail));
        }
        let _ = running.events.send(Event::Done(Ok(generation)));
        self.idle.push(cache);
        if self.idle.len() > self.limits.cached_prompts {
            self.idle.remove(0);
        }
    }
}

/// Sends `text` to the requester; a requester that has gone away cancels its sequence.
fn deliver(running: &mut Running, text: String) -> bool {
    if running.cancelled.load(Ordering::Relaxed) {
        running.seq.cancel();
        return false;
    }
    if !text.is_empty() && running.events.send(Event::Text(text)).is_err() {
        running.seq.cancel();
        return false;
    }
    true
}
