//! The transformer on a candle device: a CUDA GPU when built with `--features cuda`.
//!
//! The same architectures and numerics as [`super::model`] (it reads the model's config, its
//! rope table and its host weights), computed with candle tensors: every weight matrix is
//! uploaded once in its GGUF encoding and multiplied by candle's quantized kernels, and each
//! sequence keeps its keys and values on the device. Token embeddings are looked up on the
//! host (one row per token) and uploaded, so the embedding table never occupies the device.
//! Caches, batching, prefix reuse and scoring stay the engine's: [`Model::forward_batch`]
//! hands its work here when the model has been moved to a device.

use super::model::{Cache, Logits, Model};
use super::weight::Weight;
use crate::error::{Error, Result};
use crate::kernels::Gated;
use candle_core::quantized::{QMatMul, QStorage, QTensor};
use candle_core::{DType, Device, Module, Tensor};
use std::borrow::Cow;

/// Where the model runs, as `llm.device` names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// Our own CPU kernels (the default).
    Cpu,
    /// CUDA device `n` (needs a build with `--features cuda`).
    Cuda(usize),
}

impl Placement {
    /// Reads `cpu`, `cuda` or `cuda:N`.
    pub fn parse(name: &str) -> Result<Self> {
        let name = name.trim().to_ascii_lowercase();
        match name.as_str() {
            "" | "cpu" => Ok(Placement::Cpu),
            "cuda" | "gpu" => Ok(Placement::Cuda(0)),
            _ => name
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(Placement::Cuda)
                .ok_or_else(|| {
                    Error::Config(format!(
                        "llm.device = {name:?}: expected \"cpu\", \"cuda\" or \"cuda:N\""
                    ))
                }),
        }
    }

    /// The candle device, or `None` for our CPU kernels.
    pub fn device(&self) -> Result<Option<Device>> {
        match self {
            Placement::Cpu => Ok(None),
            Placement::Cuda(n) => {
                if !candle_core::utils::cuda_is_available() {
                    return Err(Error::Config(format!(
                        "llm.device = \"cuda:{n}\" but this binary was built without CUDA; rebuild with `cargo build --release --features cuda` (see README, \"GPU\")"
                    )));
                }
                Device::new_cuda(*n)
                    .map(Some)
                    .map_err(|e| Error::Model(format!("cannot open CUDA device {n}: {e}")))
            }
        }
    }
}

struct Layer {
    attn_norm: Tensor,
    q: QMatMul,
    k: QMatMul,
    v: QMatMul,
    o: QMatMul,
    q_bias: Option<Tensor>,
    k_bias: Option<Tensor>,
    v_bias: Option<Tensor>,
    q_norm: Option<Tensor>,
    k_norm: Option<Tensor>,
    post_attn_norm: Option<Tensor>,
    ffn_norm: Tensor,
    gate: QMatMul,
    up: QMatMul,
    down: QMatMul,
    post_ffn_norm: Option<Tensor>,
}

/// A model's weights on a device.
pub struct DeviceModel {
    device: Device,
    layers: Vec<Layer>,
    out_norm: Tensor,
    output: QMatMul,
}

/// One sequence's keys and values on the device, per layer: `[1, kv_heads, len, head_dim]`.
pub type DeviceKv = Vec<Option<(Tensor, Tensor)>>;

fn model_err(e: candle_core::Error) -> Error {
    Error::Model(format!("on the device: {e}"))
}

fn matrix(w: &Weight, device: &Device) -> candle_core::Result<QMatMul> {
    let storage = QStorage::from_data(Cow::Borrowed(w.raw()), device, w.dtype())?;
    QMatMul::from_qtensor(QTensor::new(storage, (w.rows(), w.cols()))?)
}

fn vector(values: &[f32], device: &Device) -> candle_core::Result<Tensor> {
    Tensor::from_slice(values, values.len(), device)
}

fn opt_vector(values: &Option<Vec<f32>>, device: &Device) -> candle_core::Result<Option<Tensor>> {
    values.as_deref().map(|v| vector(v, device)).transpose()
}

/// `x · w` over the last dimension, then `x + bias`.
fn linear(w: &QMatMul, bias: &Option<Tensor>, x: &Tensor) -> candle_core::Result<Tensor> {
    let y = w.forward(x)?;
    match bias {
        Some(b) => y.broadcast_add(b),
        None => Ok(y),
    }
}

fn rms_norm(x: &Tensor, weight: &Tensor, eps: f32) -> candle_core::Result<Tensor> {
    candle_nn::ops::rms_norm(&x.contiguous()?, weight, eps)
}

fn opt_norm(x: Tensor, weight: &Option<Tensor>, eps: f32) -> candle_core::Result<Tensor> {
    match weight {
        Some(w) => rms_norm(&x, w, eps),
        None => Ok(x),
    }
}

impl DeviceModel {
    /// Uploads `model`'s weights (in their stored encodings) to `device`.
    pub fn upload(model: &Model, device: &Device) -> Result<Self> {
        Self::upload_inner(model, device).map_err(model_err)
    }

    fn upload_inner(model: &Model, device: &Device) -> candle_core::Result<Self> {
        let layers = model
            .layers
            .iter()
            .map(|l| {
                Ok(Layer {
                    attn_norm: vector(&l.attn_norm, device)?,
                    q: matrix(&l.q, device)?,
                    k: matrix(&l.k, device)?,
                    v: matrix(&l.v, device)?,
                    o: matrix(&l.o, device)?,
                    q_bias: opt_vector(&l.q_bias, device)?,
                    k_bias: opt_vector(&l.k_bias, device)?,
                    v_bias: opt_vector(&l.v_bias, device)?,
                    q_norm: opt_vector(&l.q_norm, device)?,
                    k_norm: opt_vector(&l.k_norm, device)?,
                    post_attn_norm: opt_vector(&l.post_attn_norm, device)?,
                    ffn_norm: vector(&l.ffn_norm, device)?,
                    gate: matrix(&l.gate, device)?,
                    up: matrix(&l.up, device)?,
                    down: matrix(&l.down, device)?,
                    post_ffn_norm: opt_vector(&l.post_ffn_norm, device)?,
                })
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(DeviceModel {
            device: device.clone(),
            layers,
            out_norm: vector(&model.out_norm, device)?,
            output: matrix(&model.output, device)?,
        })
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// [`Model::forward_batch`] on the device; `batch` has been checked by the caller.
    pub fn forward_batch(
        &self,
        model: &Model,
        batch: &mut [(&[u32], &mut Cache)],
        logits: Logits,
    ) -> Result<Vec<Vec<f32>>> {
        self.forward_inner(model, batch, logits).map_err(model_err)
    }

    fn forward_inner(
        &self,
        model: &Model,
        batch: &mut [(&[u32], &mut Cache)],
        logits: Logits,
    ) -> candle_core::Result<Vec<Vec<f32>>> {
        let c = &model.config;
        let dev = &self.device;
        let (h, hd) = (c.hidden, c.head_dim);
        let t: usize = batch.iter().map(|(tokens, _)| tokens.len()).sum();
        let embedded = model.embed_rows(batch.iter().flat_map(|(tokens, _)| tokens.iter()));
        let mut x = Tensor::from_vec(embedded, (t, h), dev)?;
        let positions: Vec<usize> = batch
            .iter()
            .flat_map(|(tokens, cache)| cache.len()..cache.len() + tokens.len())
            .collect();
        let table = |base: f32| -> candle_core::Result<(Tensor, Tensor)> {
            let (cos, sin) = model.rope_table(base, &positions);
            Ok((
                Tensor::from_vec(cos, (t, hd / 2), dev)?,
                Tensor::from_vec(sin, (t, hd / 2), dev)?,
            ))
        };
        let rope_global = table(c.rope_base)?;
        let rope_local = match c.sliding_window.is_some() && c.rope_base_local != c.rope_base {
            true => Some(table(c.rope_base_local)?),
            false => None,
        };
        let group = c.heads / c.kv_heads;
        for (li, layer) in self.layers.iter().enumerate() {
            let sliding = model.layers[li].sliding;
            let normed = rms_norm(&x, &layer.attn_norm, c.eps)?;
            let q = linear(&layer.q, &layer.q_bias, &normed)?.reshape((t, c.heads, hd))?;
            let k = linear(&layer.k, &layer.k_bias, &normed)?.reshape((t, c.kv_heads, hd))?;
            let v = linear(&layer.v, &layer.v_bias, &normed)?.reshape((t, c.kv_heads, hd))?;
            let q = opt_norm(q, &layer.q_norm, c.eps)?;
            let k = opt_norm(k, &layer.k_norm, c.eps)?;
            // [1, heads, t, head_dim], as candle's rope kernels take them
            let heads_first = |x: Tensor| x.transpose(0, 1)?.contiguous()?.unsqueeze(0);
            let (cos, sin) = match (&rope_local, sliding) {
                (Some(local), true) => local,
                _ => &rope_global,
            };
            let rope = |x: Tensor| match c.rope_neox {
                true => candle_nn::rotary_emb::rope(&x, cos, sin),
                false => candle_nn::rotary_emb::rope_i(&x, cos, sin),
            };
            let q = rope(heads_first(q)?)?;
            let k = rope(heads_first(k)?)?;
            let v = heads_first(v)?;
            let window = if sliding { c.sliding_window } else { None };
            let mut outs = Vec::with_capacity(batch.len());
            let mut row = 0;
            for (tokens, cache) in batch.iter_mut() {
                let n = tokens.len();
                let pos0 = cache.len();
                let k_new = k.narrow(2, row, n)?;
                let v_new = v.narrow(2, row, n)?;
                let slot = &mut cache.device_kv_mut()[li];
                let (keys, values) = match slot.take() {
                    Some((pk, pv)) => (
                        Tensor::cat(&[&pk, &k_new], 2)?,
                        Tensor::cat(&[&pv, &v_new], 2)?,
                    ),
                    None => (k_new.contiguous()?, v_new.contiguous()?),
                };
                let len = keys.dim(2)?;
                // the heads sharing a kv head become rows of one matrix product
                let q_s =
                    q.narrow(2, row, n)?
                        .contiguous()?
                        .reshape((c.kv_heads, group * n, hd))?;
                let scores = (q_s.matmul(&keys.squeeze(0)?.t()?)? * f64::from(c.attn_scale))?;
                let scores = match causal_mask(n, pos0, len, window) {
                    Some(mask) => {
                        let mask = Tensor::from_vec(mask, (n, len), dev)?;
                        scores
                            .reshape((c.kv_heads, group, n, len))?
                            .broadcast_add(&mask)?
                            .reshape((c.kv_heads, group * n, len))?
                    }
                    None => scores,
                };
                let probs = candle_nn::ops::softmax_last_dim(&scores)?;
                let att = probs.matmul(&values.squeeze(0)?)?; // [kv_heads, group·n, hd]
                outs.push(
                    att.reshape((c.heads, n, hd))?
                        .transpose(0, 1)?
                        .reshape((n, c.heads * hd))?,
                );
                *slot = Some((keys, values));
                row += n;
            }
            let att = Tensor::cat(&outs, 0)?;
            let proj = opt_norm(layer.o.forward(&att)?, &layer.post_attn_norm, c.eps)?;
            x = (x + proj)?;
            let normed = rms_norm(&x, &layer.ffn_norm, c.eps)?;
            let gate = layer.gate.forward(&normed)?;
            let gate = match c.activation {
                Gated::GeluTanh => gate.gelu()?,
                Gated::Silu => gate.silu()?,
            };
            let ffn = layer.down.forward(&(gate * layer.up.forward(&normed)?)?)?;
            x = (x + opt_norm(ffn, &layer.post_ffn_norm, c.eps)?)?;
        }
        let mut results = Vec::with_capacity(batch.len());
        let mut row = 0;
        for (tokens, cache) in batch.iter_mut() {
            let n = tokens.len();
            cache.push_tokens(tokens);
            let wanted = logits.rows(n);
            if wanted.is_empty() {
                results.push(Vec::new());
            } else {
                let rows = x.narrow(0, row + wanted.start, wanted.len())?;
                let normed = rms_norm(&rows, &self.out_norm, c.eps)?;
                let out = self.output.forward(&normed)?.to_dtype(DType::F32)?;
                results.push(out.flatten_all()?.to_vec1::<f32>()?);
            }
            row += n;
        }
        Ok(results)
    }
}

/// Additive attention mask of `n` new queries (positions `pos0..`) over `len` cached keys:
/// 0 where a query may look, −∞ after it and (with a window) too far before it. `None` when
/// every query may see every key (one new token, no window cut).
fn causal_mask(n: usize, pos0: usize, len: usize, window: Option<usize>) -> Option<Vec<f32>> {
    let first = |pos: usize| window.map_or(0, |w| (pos + 1).saturating_sub(w));
    if n == 1 && first(pos0) == 0 {
        return None;
    }
    let mut mask = vec![f32::NEG_INFINITY; n * len];
    for (r, row) in mask.chunks_exact_mut(len).enumerate() {
        let pos = pos0 + r;
        row[first(pos)..=pos].fill(0.0);
    }
    Some(mask)
}

/// Keeps the first `len` positions of a device cache.
pub(super) fn truncate(kv: &mut DeviceKv, len: usize) {
    for slot in kv.iter_mut() {
        if let Some((k, v)) = slot.take() {
            let keep = len.min(k.dim(2).unwrap_or(0));
            if keep > 0 {
                // in range by construction, so narrowing cannot fail
                *slot = k.narrow(2, 0, keep).ok().zip(v.narrow(2, 0, keep).ok());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_are_causal_and_windowed() {
        assert!(causal_mask(1, 7, 8, None).is_none());
        assert!(causal_mask(1, 7, 8, Some(16)).is_none());
        let m = causal_mask(2, 1, 3, None).unwrap();
        let inf = f32::NEG_INFINITY;
        assert_eq!(m, vec![0.0, 0.0, inf, 0.0, 0.0, 0.0]);
        // a window of 2: position 2 sees 1 and 2, position 3 sees 2 and 3
        let m = causal_mask(2, 2, 4, Some(2)).unwrap();
        assert_eq!(m, vec![inf, 0.0, 0.0, inf, inf, inf, 0.0, 0.0]);
        // one new token beyond the window still needs a mask
        assert!(causal_mask(1, 5, 6, Some(2)).is_some());
    }

    #[test]
    fn device_names() {
        assert_eq!(Placement::parse("cpu").unwrap(), Placement::Cpu);
        assert_eq!(Placement::parse("").unwrap(), Placement::Cpu);
        assert_eq!(Placement::parse("CUDA").unwrap(), Placement::Cuda(0));
        assert_eq!(Placement::parse("cuda:1").unwrap(), Placement::Cuda(1));
        assert!(Placement::parse("tpu").is_err());
        assert!(Placement::parse("cuda:x").is_err());
        if !candle_core::utils::cuda_is_available() {
            let err = Placement::Cuda(0).device().unwrap_err().to_string();
            assert!(err.contains("--features cuda"), "{err}");
        }
    }
}
