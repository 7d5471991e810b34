//! Dense sentence embeddings with multilingual-e5-small: candle's BERT on the CPU, mean pooling
//! over real tokens, L2 normalisation, and e5's `query: ` / `passage: ` prefixes.

mod charsmap;
mod convert;
#[cfg(test)]
mod tests;

pub use convert::ensure_e5_model;

use crate::error::{Error, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use std::fs;
use std::path::Path;
use tokenizers::{Encoding, Tokenizer, TruncationParams};

/// Width of every embedding.
pub const DIM: usize = 384;

/// Upper bound on padded tokens (texts × longest text) per forward pass. Measured on 2 cores
/// with ~150-token passages: batches of 4–8 texts ran fastest; at 32, candle's attention
/// (separate mask, softmax and per-head products over 12·b·L² scores) fell out of cache and
/// cost more than the larger matrix products saved.
const BATCH_TOKENS: usize = 1024;
/// Upper bound on texts per forward pass.
const BATCH_TEXTS: usize = 32;

/// multilingual-e5-small, loaded once and shared: `Send + Sync`, so one instance serves every
/// thread. candle's matrix products use as many threads as `RAYON_NUM_THREADS` allows (all cores
/// when unset).
pub struct Embedder {
    model: BertModel,
    tokenizer: Tokenizer,
    device: Device,
    pad_id: u32,
}

// Embedders are shared across threads; keep that a compile-time fact.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Embedder>();
};

impl Embedder {
    /// Converts the model into `cache` if needed (see [`ensure_e5_model`]) and loads it.
    pub fn from_cache(cache: &Path) -> Result<Self> {
        Self::load(&ensure_e5_model(cache)?)
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
        let pad_id = u32::try_from(config.pad_token_id)
            .map_err(|_| Error::Model("pad token id out of range".into()))?;

        let weights = dir.join(convert::WEIGHTS_FILE);
        let device = Device::Cpu;
        // SAFETY: the file is our own conversion output in the cache, which nothing rewrites in
        // place (conversions land by rename); candle copies the tensors out during `load`, and
        // the mapping is dropped with the VarBuilder right after.
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[&weights], DType::F32, &device) }
            .map_err(|e| Error::Model(format!("{}: {e}", weights.display())))?;
        let model = BertModel::load(vb, &config)
            .map_err(|e| Error::Model(format!("{}: {e}", weights.display())))?;
        Ok(Embedder {
            model,
            tokenizer,
            device,
            pad_id,
        })
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

    fn embed(&self, prefix: &str, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let encodings = texts
            .iter()
            .map(|t| {
                self.tokenizer
                    .encode(format!("{prefix}{t}"), true)
                    .map_err(|e| Error::Model(format!("tokenizing: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        // Longest first, so each batch pads to a length close to all of its texts.
        let mut order: Vec<usize> = (0..encodings.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(encodings[i].len()));
        let mut out = vec![Vec::new(); texts.len()];
        let mut rest = &order[..];
        while let Some(&first) = rest.first() {
            let longest = encodings[first].len().max(1);
            let take = (BATCH_TOKENS / longest)
                .clamp(1, BATCH_TEXTS)
                .min(rest.len());
            let (batch, tail) = rest.split_at(take);
            let batch_encodings: Vec<&Encoding> = batch.iter().map(|&i| &encodings[i]).collect();
            for (&i, vector) in batch.iter().zip(self.forward(&batch_encodings)?) {
                out[i] = vector;
            }
            rest = tail;
        }
        Ok(out)
    }

    /// One forward pass over texts padded to the longest; returns their pooled, normalised
    /// embeddings in the same order.
    fn forward(&self, batch: &[&Encoding]) -> Result<Vec<Vec<f32>>> {
        let width = batch.iter().map(|e| e.len()).max().unwrap_or(0);
        let mut ids = vec![self.pad_id; batch.len() * width];
        let mut mask = vec![0f32; batch.len() * width];
        for (row, encoding) in batch.iter().enumerate() {
            let start = row * width;
            let n = encoding.len();
            ids[start..start + n].copy_from_slice(encoding.get_ids());
            mask[start..start + n].fill(1.0);
        }
        let shape = (batch.len(), width);
        let ids = Tensor::from_vec(ids, shape, &self.device).map_err(model_err)?;
        let mask = Tensor::from_vec(mask, shape, &self.device).map_err(model_err)?;
        let type_ids = ids.zeros_like().map_err(model_err)?;
        let hidden = self
            .model
            .forward(&ids, &type_ids, Some(&mask))
            .map_err(model_err)?;
        // Mean over the real tokens only: padded positions carry no meaning.
        let summed = hidden
            .broadcast_mul(&mask.unsqueeze(2).map_err(model_err)?)
            .and_then(|h| h.sum(1))
            .map_err(model_err)?;
        let counts = mask.sum_keepdim(1).map_err(model_err)?;
        let mean = summed.broadcast_div(&counts).map_err(model_err)?;
        let norm = mean
            .sqr()
            .and_then(|s| s.sum_keepdim(1))
            .and_then(|s| s.sqrt())
            .and_then(|n| n.clamp(1e-12, f64::INFINITY))
            .map_err(model_err)?;
        mean.broadcast_div(&norm)
            .and_then(|m| m.to_vec2::<f32>())
            .map_err(model_err)
    }
}

fn model_err(e: candle_core::Error) -> Error {
    Error::Model(format!("embedding: {e}"))
}
