//! Our in-process engine ([`Llm`]) behind the [`Generator`] seam, for `anjeon ask` and the
//! RAG measurements: one prompt cache reused across calls (the few-shot prefix is shared).

use crate::error::{Error, Result};
use crate::llm::{Cache, GenerateParams, Generation, Generator, Llm, Prompt, Scored};
use std::sync::Mutex;

/// An [`Llm`] serving one request at a time.
pub struct LocalGenerator {
    llm: Llm,
    cache: Mutex<Cache>,
}

impl LocalGenerator {
    pub fn new(llm: Llm) -> Self {
        let cache = llm.model.new_cache();
        LocalGenerator {
            llm,
            cache: Mutex::new(cache),
        }
    }
}

impl Generator for LocalGenerator {
    fn model_id(&self) -> String {
        self.llm.name().to_string()
    }

    fn generate(
        &self,
        prompt: &Prompt,
        params: &GenerateParams,
        on_text: &mut dyn FnMut(&str) -> bool,
    ) -> Result<Generation> {
        let Prompt::Text(text) = prompt else {
            return Err(Error::InvalidInput(
                "this model has no chat template; send a text prompt".into(),
            ));
        };
        let ids = self.llm.encode(text)?;
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        self.llm.generate(&mut cache, &ids, params, on_text)
    }

    fn loglikelihood(&self, context: &str, continuations: &[String]) -> Result<Vec<Scored>> {
        let context_ids = self.llm.encode(context)?;
        let mut out = Vec::with_capacity(continuations.len());
        for c in continuations {
            let whole = self.llm.encode(&format!("{context}{c}"))?;
            // Context and continuation are encoded together; the continuation is what follows
            // the tokens they share (a merge across the boundary moves it left).
            let shared = whole
                .iter()
                .zip(&context_ids)
                .take_while(|(a, b)| a == b)
                .count()
                .clamp(1, whole.len());
            let cont = whole[shared..].to_vec();
            let (logprob, is_greedy) = self
                .llm
                .loglikelihood(&whole[..shared], std::slice::from_ref(&cont))?
                .pop()
                .unwrap_or((0.0, true));
            out.push(Scored {
                logprob,
                is_greedy,
                tokens: cont.len(),
            });
        }
        Ok(out)
    }

    fn count_tokens(&self, text: &str) -> Result<usize> {
        Ok(self.llm.tokenizer.encode(text, false, false)?.len())
    }

    fn context_tokens(&self) -> usize {
        self.llm.model.config.context
    }
}
