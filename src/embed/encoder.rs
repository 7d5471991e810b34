//! BERT encoder forward pass over packed sequences: the texts of a batch are laid end to end as
//! one `[tokens, hidden]` matrix (no padding), every linear layer is one matrix product over all
//! of them, and attention runs per text and head over that text's own tokens.

use crate::error::{Error, Result};
use crate::kernels;
use gemm::{gemm, Parallelism};
use memmap2::Mmap;
use rayon::prelude::*;
use safetensors::{Dtype, SafeTensors};
use std::fs::File;
use std::path::Path;

/// Head width of multilingual-e5-small (and of BERT-small models in general).
const HEAD_DIM: usize = 32;

/// A linear layer, weight stored input-major (`[in, out]`, row-major) for the products.
struct Linear {
    weight: Vec<f32>,
    bias: Vec<f32>,
    inputs: usize,
    outputs: usize,
}

struct Norm {
    weight: Vec<f32>,
    bias: Vec<f32>,
}

struct Layer {
    /// Query, key and value side by side (`out = 3·hidden`); the query part is pre-scaled by
    /// 1/√head_dim.
    qkv: Linear,
    attention_out: Linear,
    attention_norm: Norm,
    intermediate: Linear,
    output: Linear,
    output_norm: Norm,
}

pub(super) struct Encoder {
    /// The word-embedding table stays in the mapped file: 250k rows, of which a batch reads a
    /// few hundred.
    map: Mmap,
    word_offset: usize,
    vocab: usize,
    positions: Vec<f32>,
    max_positions: usize,
    token_type: Vec<f32>,
    embedding_norm: Norm,
    layers: Vec<Layer>,
    hidden: usize,
    heads: usize,
    eps: f32,
}

pub(super) struct Shape {
    pub hidden: usize,
    pub heads: usize,
    pub intermediate: usize,
    pub layers: usize,
    pub eps: f32,
}

fn model_err(path: &Path, what: impl std::fmt::Display) -> Error {
    Error::Model(format!("{}: {what}", path.display()))
}

fn floats(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

impl Encoder {
    pub fn load(path: &Path, shape: &Shape) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        // SAFETY: the file is our own conversion output in the cache, which nothing rewrites in
        // place (conversions land by rename), so the mapping stays valid while we hold it.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
        let st = SafeTensors::deserialize(&map).map_err(|e| model_err(path, e))?;
        let h = shape.hidden;
        let get = |name: &str, dims: &[usize]| -> Result<&[u8]> {
            let t = st.tensor(name).map_err(|e| model_err(path, e))?;
            if t.dtype() != Dtype::F32 || t.shape() != dims {
                return Err(model_err(
                    path,
                    format!(
                        "{name}: {:?} {:?}, expected F32 {dims:?}",
                        t.dtype(),
                        t.shape()
                    ),
                ));
            }
            Ok(t.data())
        };
        let vector = |name: &str, n: usize| get(name, &[n]).map(floats);
        let norm = |prefix: &str| -> Result<Norm> {
            Ok(Norm {
                weight: vector(&format!("{prefix}.weight"), h)?,
                bias: vector(&format!("{prefix}.bias"), h)?,
            })
        };
        // Weight [out, in] → [in, out]; `scale` multiplies the first `scaled` outputs.
        let linear =
            |prefixes: &[&str], outputs: usize, inputs: usize, scaled: usize, scale: f32| {
                let total = outputs * prefixes.len();
                let mut weight = vec![0f32; inputs * total];
                let mut bias = Vec::with_capacity(total);
                for (part, prefix) in prefixes.iter().enumerate() {
                    let w = floats(get(&format!("{prefix}.weight"), &[outputs, inputs])?);
                    let b = vector(&format!("{prefix}.bias"), outputs)?;
                    for o in 0..outputs {
                        let column = part * outputs + o;
                        let s = if column < scaled { scale } else { 1.0 };
                        for i in 0..inputs {
                            weight[i * total + column] = w[o * inputs + i] * s;
                        }
                        bias.push(b[o] * s);
                    }
                }
                Ok::<_, Error>(Linear {
                    weight,
                    bias,
                    inputs,
                    outputs: total,
                })
            };

        let word = st
            .tensor("embeddings.word_embeddings.weight")
            .map_err(|e| model_err(path, e))?;
        if word.dtype() != Dtype::F32 || word.shape().len() != 2 || word.shape()[1] != h {
            return Err(model_err(
                path,
                "word embeddings are not F32 [vocab, hidden]",
            ));
        }
        let vocab = word.shape()[0];
        let word_offset = word.data().as_ptr() as usize - map.as_ptr() as usize;
        let positions_t = st
            .tensor("embeddings.position_embeddings.weight")
            .map_err(|e| model_err(path, e))?;
        let max_positions = positions_t.shape()[0];
        let positions = floats(get(
            "embeddings.position_embeddings.weight",
            &[max_positions, h],
        )?);
        let token_type =
            floats(get("embeddings.token_type_embeddings.weight", &[2, h])?)[..h].to_vec();
        let embedding_norm = norm("embeddings.LayerNorm")?;

        let scale = 1.0 / ((h / shape.heads) as f32).sqrt();
        let layers = (0..shape.layers)
            .map(|l| {
                let p = format!("encoder.layer.{l}");
                Ok(Layer {
                    qkv: linear(
                        &[
                            &format!("{p}.attention.self.query"),
                            &format!("{p}.attention.self.key"),
                            &format!("{p}.attention.self.value"),
                        ],
                        h,
                        h,
                        h,
                        scale,
                    )?,
                    attention_out: linear(&[&format!("{p}.attention.output.dense")], h, h, 0, 1.0)?,
                    attention_norm: norm(&format!("{p}.attention.output.LayerNorm"))?,
                    intermediate: linear(
                        &[&format!("{p}.intermediate.dense")],
                        shape.intermediate,
                        h,
                        0,
                        1.0,
                    )?,
                    output: linear(
                        &[&format!("{p}.output.dense")],
                        h,
                        shape.intermediate,
                        0,
                        1.0,
                    )?,
                    output_norm: norm(&format!("{p}.output.LayerNorm"))?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        drop(st);
        if h / shape.heads != HEAD_DIM || !h.is_multiple_of(shape.heads) {
            return Err(model_err(path, "unsupported head width"));
        }
        Ok(Encoder {
            map,
            word_offset,
            vocab,
            positions,
            max_positions,
            token_type,
            embedding_norm,
            layers,
            hidden: h,
            heads: shape.heads,
            eps: shape.eps,
        })
    }

    pub fn max_positions(&self) -> usize {
        self.max_positions
    }

    /// Mean-pooled, L2-normalised embeddings of the given token-id sequences (each non-empty
    /// and at most `max_positions` long).
    pub fn embed(&self, sequences: &[&[u32]]) -> Vec<Vec<f32>> {
        let h = self.hidden;
        let total: usize = sequences.iter().map(|s| s.len()).sum();
        let mut starts = Vec::with_capacity(sequences.len());
        let mut x = vec![0f32; total * h];
        let mut row = 0;
        for seq in sequences {
            starts.push(row);
            for (pos, &id) in seq.iter().enumerate() {
                let id = (id as usize).min(self.vocab - 1);
                let word = &self.map[self.word_offset + id * h * 4..][..h * 4];
                let out = &mut x[(row + pos) * h..][..h];
                let position = &self.positions[pos.min(self.max_positions - 1) * h..][..h];
                for (((o, w), p), t) in out
                    .iter_mut()
                    .zip(word.chunks_exact(4))
                    .zip(position)
                    .zip(&self.token_type)
                {
                    *o = f32::from_le_bytes([w[0], w[1], w[2], w[3]]) + p + t;
                }
            }
            row += seq.len();
        }
        let zeros = vec![0f32; total * h];
        let n = &self.embedding_norm;
        kernels::add_layer_norm(&mut x, &zeros, &n.weight, &n.bias, self.eps);

        let spans: Vec<(usize, usize)> = starts
            .iter()
            .zip(sequences)
            .map(|(&s, seq)| (s, seq.len()))
            .collect();
        let ff = self.layers.first().map_or(0, |l| l.intermediate.outputs);
        let mut qkv = vec![0f32; total * 3 * h];
        let mut context = vec![0f32; total * h];
        let mut projected = vec![0f32; total * h];
        let mut inner = vec![0f32; total * ff];
        for layer in &self.layers {
            linear(&x, total, &layer.qkv, &mut qkv);
            self.attention(&qkv, &spans, &mut context);
            linear(&context, total, &layer.attention_out, &mut projected);
            let n = &layer.attention_norm;
            kernels::add_layer_norm(&mut x, &projected, &n.weight, &n.bias, self.eps);
            linear(&x, total, &layer.intermediate, &mut inner);
            gelu_parallel(&mut inner);
            linear(&inner, total, &layer.output, &mut projected);
            let n = &layer.output_norm;
            kernels::add_layer_norm(&mut x, &projected, &n.weight, &n.bias, self.eps);
        }

        spans
            .iter()
            .map(|&(start, len)| {
                let mut mean = vec![0f32; h];
                for r in x[start * h..(start + len) * h].chunks_exact(h) {
                    for (m, v) in mean.iter_mut().zip(r) {
                        *m += v;
                    }
                }
                let norm = mean.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
                for m in &mut mean {
                    *m /= norm;
                }
                mean
            })
            .collect()
    }

    /// Scaled dot-product attention for every (text, head), in parallel; `qkv` rows hold
    /// pre-scaled query, key and value; the result goes to `context` `[tokens, hidden]`.
    fn attention(&self, qkv: &[f32], spans: &[(usize, usize)], context: &mut [f32]) {
        let h = self.hidden;
        let stride = 3 * h;
        let out = SendPtr(context.as_mut_ptr());
        let jobs: Vec<(usize, usize, usize)> = spans
            .iter()
            .flat_map(|&(start, len)| (0..self.heads).map(move |head| (start, len, head)))
            .collect();
        jobs.into_par_iter()
            .for_each_init(Vec::new, |scores, (start, len, head)| {
                let out = &out;
                scores.resize(len * len, 0f32);
                let q = qkv[start * stride + head * HEAD_DIM..].as_ptr();
                let k = qkv[start * stride + h + head * HEAD_DIM..].as_ptr();
                let v = qkv[start * stride + 2 * h + head * HEAD_DIM..].as_ptr();
                // SAFETY: every operand lies within its buffer (rows start..start+len, columns
                // head·32..head·32+32 of each part), and each job writes its own column block of
                // its own rows of `context`, so no two jobs write the same element.
                unsafe {
                    // scores[i, j] = q_i · k_j
                    gemm(
                        len,
                        len,
                        HEAD_DIM,
                        scores.as_mut_ptr(),
                        1,
                        len as isize,
                        false,
                        q,
                        1,
                        stride as isize,
                        k,
                        stride as isize,
                        1,
                        0.0,
                        1.0,
                        false,
                        false,
                        false,
                        Parallelism::None,
                    );
                }
                for row in scores.chunks_exact_mut(len) {
                    kernels::softmax(row);
                }
                unsafe {
                    gemm(
                        len,
                        HEAD_DIM,
                        len,
                        out.0.add(start * h + head * HEAD_DIM),
                        1,
                        h as isize,
                        false,
                        scores.as_ptr(),
                        1,
                        len as isize,
                        v,
                        1,
                        stride as isize,
                        0.0,
                        1.0,
                        false,
                        false,
                        false,
                        Parallelism::None,
                    );
                }
            });
    }
}

struct SendPtr(*mut f32);
// SAFETY: used only to hand disjoint parts of one buffer to parallel jobs (see `attention`).
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

fn gelu_parallel(x: &mut [f32]) {
    let chunk = x.len().div_ceil(rayon::current_num_threads()).max(4096);
    x.par_chunks_mut(chunk).for_each(kernels::gelu);
}

/// `out[rows, outputs] = x[rows, inputs] · W + b`.
fn linear(x: &[f32], rows: usize, layer: &Linear, out: &mut [f32]) {
    let (k, n) = (layer.inputs, layer.outputs);
    assert!(x.len() >= rows * k && out.len() >= rows * n && layer.weight.len() == k * n);
    for r in out[..rows * n].chunks_exact_mut(n) {
        r.copy_from_slice(&layer.bias);
    }
    let threads = rayon::current_num_threads();
    let parallelism = if threads > 1 && rows * n * k >= 1 << 18 {
        Parallelism::Rayon(threads)
    } else {
        Parallelism::None
    };
    // SAFETY: the asserts above bound every access: x is [rows, k], W is [k, n] and out is
    // [rows, n], all row-major.
    unsafe {
        gemm(
            rows,
            n,
            k,
            out.as_mut_ptr(),
            1,
            n as isize,
            true,
            x.as_ptr(),
            1,
            k as isize,
            layer.weight.as_ptr(),
            1,
            n as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}
