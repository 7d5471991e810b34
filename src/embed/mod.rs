//! Dense sentence embeddings with multilingual-e5-small: our own BERT forward pass on the CPU
//! (packed, unpadded batches; see [`encoder`]), mean pooling over the tokens, L2 normalisation,
//! and e5's `query: ` / `passage: ` prefixes.

mod charsmap;
mod convert;
mod encoder;

#[cfg(test)]
mod tests;

pub use convert::ensure_e5_model;

use crate::error::{Error, Result};
use candle_transformers::models::bert::{Config, HiddenAct};
use encoder::Encoder;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use tokenizers::{Tokenizer, TruncationParams};

/// Width of every embedding.
pub const DIM: usize = 384;

/// Upper bound on tokens per forward pass (texts are packed end to end, without padding): the
/// activations take ~15 KiB a token, ~30 MiB at the cap.
const BATCH_TOKENS: usize = 2048;

/// multilingual-e5-small, loaded once and shared: `Send + Sync`, so one instance serves every
/// thread. Matrix products and attention use as many threads as `RAYON_NUM_THREADS` allows (all
/// cores when unset).
pub struct Embedder {
    encoder: Encoder,
    tokenizer: Tokenizer,
}

// Embedders are shared across threads; keep that a compile-time fact.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Embedder>();
};

impl Embedder {
    /// The model of `cache`, converted there if needed (see [`ensure_e5_model`]) and loaded
    /// once per process: every index and the server share it. It is never unloaded: it is
    /// read-only, and freeing its ~0.5 GB of tables at exit only costs time.
    pub fn shared(cache: &Path) -> Result<&'static Embedder> {
        static LOADED: Mutex<Vec<(PathBuf, &'static Embedder)>> = Mutex::new(Vec::new());
        // held while loading, so that two first users load it once
        let mut loaded = LOADED.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, embedder)) = loaded.iter().find(|(c, _)| c == cache) {
            return Ok(embedder);
        }
        let embedder: &'static Embedder =
            Box::leak(Box::new(Self::load(&ensure_e5_model(cache)?)?));
        loaded.push((cache.to_path_buf(), embedder));
        Ok(embedder)
    }

    /// Loads a converted model folder: `model.safetensors`, `config.json`, `tokenizer.json`.
    pub fn load(dir: &Path) -> Result<Self> {
        let config_path = dir.join(convert::CONFIG_FILE);
        let config_text =
            fs::read_to_string(&config_path).map_err(|e| Error::io(&config_path, e))?;
        let config: Config = serde_json::from_str(&config_text)
            .map_err(|e| Error::Model(format!("{}: {e}", config_path.display())))?;
        if config.hidden_size != DIM {
            return Err(Error::Model(format!(
                "{}: hidden size {} but embeddings are {DIM}-d",
                config_path.display(),
                config.hidden_size
            )));
        }

        let tokenizer_path = dir.join(convert::TOKENIZER_FILE);
        let mut tokenizer = Tokenizer::from_file(&tokenizer_path)
            .map_err(|e| Error::Model(format!("{}: {e}", tokenizer_path.display())))?;
        // Positions beyond the table do not exist, whatever the file says about truncation.
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: config.max_position_embeddings,
                ..Default::default()
            }))
            .map_err(|e| Error::Model(format!("{}: {e}", tokenizer_path.display())))?;
        tokenizer.with_padding(None);
        if !matches!(config.hidden_act, HiddenAct::Gelu) || config.num_attention_heads == 0 {
            return Err(Error::Model(format!(
                "{}: only exact-GELU BERT with attention heads is supported",
                config_path.display()
            )));
        }

        let shape = encoder::Shape {
            hidden: config.hidden_size,
            heads: config.num_attention_heads,
            intermediate: config.intermediate_size,
            layers: config.num_hidden_layers,
            eps: config.layer_norm_eps as f32,
        };
        let encoder = Encoder::load(&dir.join(convert::WEIGHTS_FILE), &shape)?;
        Ok(Embedder { encoder, tokenizer })
    }

    /// Embeds search queries (prefixed `query: `): one L2-normalised [`DIM`]-vector per text.
    pub fn embed_queries(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        self.embed("query: ", texts)
    }

    /// Embeds passages to be searched (prefixed `passage: `): one L2-normalised [`DIM`]-vector
    /// per text. Texts longer than 512 tokens are truncated.
    pub fn embed_passages(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        self.embed("passage: ", texts)
    }

    /// Tokens of `text` as the model sees it (for usage reports).
    pub fn count_tokens(&self, text: &str) -> Result<usize> {
        self.tokenizer
            .encode(text, true)
            .map(|e| e.len())
            .map_err(|e| Error::Model(format!("tokenizing: {e}")))
    }

    fn embed(&self, prefix: &str, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let encodings = texts
            .iter()
            .map(|t| {
                self.tokenizer
                    .encode(format!("{prefix}{t}"), true)
                    .map_err(|e| Error::Model(format!("tokenizing: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        let mut out = Vec::with_capacity(texts.len());
        let mut batch: Vec<&[u32]> = Vec::new();
        let mut tokens = 0;
        for encoding in &encodings {
            let ids = encoding.get_ids();
            let ids = &ids[..ids.len().min(self.encoder.max_positions())];
            if ids.is_empty() {
                return Err(Error::Model("tokenizing produced no tokens".into()));
            }
            if tokens + ids.len() > BATCH_TOKENS && !batch.is_empty() {
                out.extend(self.encoder.embed(&batch));
                batch.clear();
                tokens = 0;
            }
            batch.push(ids);
            tokens += ids.len();
        }
        if !batch.is_empty() {
            out.extend(self.encoder.embed(&batch));
        }
        Ok(out)
    }
}
