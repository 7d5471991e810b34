//! The decoder-only transformer forward pass for the architectures we serve (gemma3, llama,
//! qwen2, qwen3), read from GGUF metadata, with a KV cache in half precision (as llama.cpp
//! keeps it: half the bytes a decode step reads) and causal (optionally sliding-window)
//! attention computed block-wise by GEMM.

use super::device::{self, DeviceKv, DeviceModel};
use super::gguf::GgufFile;
use super::safetensors::TensorSource;
use super::team;
use super::weight::{matmul_many, SharedMut, Weight};
use crate::error::{Error, Result};
use crate::kernels::{self, Gated};
use gemm::{gemm, Parallelism};
use half::f16;
use half::slice::HalfFloatSliceExt;

/// The architecture family, as GGUF's `general.architecture` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    Gemma3,
    Llama,
    Qwen2,
    Qwen3,
}

impl Arch {
    fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "gemma3" => Arch::Gemma3,
            // EXAONE-style and SOLAR checkpoints are llama-family in their GGUF conversion
            "llama" | "exaone" | "mistral" => Arch::Llama,
            "qwen2" => Arch::Qwen2,
            "qwen3" => Arch::Qwen3,
            _ => return None,
        })
    }
}

/// Shape and numerics of a model, from its metadata.
#[derive(Debug, Clone)]
pub struct Config {
    pub arch: Arch,
    pub arch_name: String,
    pub layers: usize,
    pub hidden: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub eps: f32,
    pub context: usize,
    pub rope_base: f32,
    /// Rope base of the sliding-window layers, where it differs (gemma3).
    pub rope_base_local: f32,
    pub rope_scale: f32,
    /// Rotate halves (GPT-NeoX) rather than adjacent pairs.
    pub rope_neox: bool,
    pub sliding_window: Option<usize>,
    /// Every `n`th layer is global, the others use the sliding window (gemma3: 6).
    pub global_every: usize,
    pub attn_scale: f32,
    pub embed_scale: f32,
    pub(crate) activation: Gated,
    pub vocab: usize,
}

impl Config {
    pub(crate) fn from_gguf(g: &GgufFile) -> Result<Self> {
        let name = g
            .string("general.architecture")
            .ok_or_else(|| {
                Error::Model(format!("{}: no general.architecture", g.path().display()))
            })?
            .to_string();
        let arch = Arch::from_name(&name).ok_or_else(|| {
            Error::Model(format!(
                "{}: architecture {name:?} is not supported (gemma3, llama, exaone, mistral, qwen2, qwen3 are)",
                g.path().display()
            ))
        })?;
        let key = |k: &str| format!("{name}.{k}");
        let hidden = g.usize(&key("embedding_length"))?;
        let heads = g.usize(&key("attention.head_count"))?;
        let head_dim = g.usize_or(&key("attention.key_length"), hidden / heads);
        let gemma = arch == Arch::Gemma3;
        let rope_scale = match g.string(&key("rope.scaling.type")) {
            Some("linear") => g.f32_or(&key("rope.scaling.factor"), 1.0),
            _ => 1.0,
        };
        let sliding_window = if gemma {
            Some(g.usize_or(&key("attention.sliding_window"), 512))
        } else {
            None
        };
        Ok(Config {
            arch,
            layers: g.usize(&key("block_count"))?,
            hidden,
            heads,
            kv_heads: g.usize_or(&key("attention.head_count_kv"), heads),
            head_dim,
            eps: g.f32_or(&key("attention.layer_norm_rms_epsilon"), 1e-6),
            context: g.usize_or(&key("context_length"), 4096),
            rope_base: g.f32_or(&key("rope.freq_base"), if gemma { 1e6 } else { 10_000.0 }),
            rope_base_local: g.f32_or(&key("rope.local_freq_base"), 10_000.0),
            rope_scale,
            rope_neox: arch != Arch::Llama,
            sliding_window,
            global_every: if gemma {
                g.usize_or(&key("attention.sliding_window_type"), 6).max(1)
            } else {
                1
            },
            attn_scale: 1.0 / (head_dim as f32).sqrt(),
            embed_scale: if gemma { (hidden as f32).sqrt() } else { 1.0 },
            activation: if gemma { Gated::GeluTanh } else { Gated::Silu },
            vocab: 0,
            arch_name: name,
        })
    }

    fn is_sliding(&self, layer: usize) -> bool {
        self.sliding_window.is_some() && !(layer + 1).is_multiple_of(self.global_every)
    }

    fn q_dim(&self) -> usize {
        self.heads * self.head_dim
    }

    fn kv_dim(&self) -> usize {
        self.kv_heads * self.head_dim
    }
}

pub(super) struct Layer {
    pub(super) attn_norm: Vec<f32>,
    pub(super) q: Weight,
    pub(super) k: Weight,
    pub(super) v: Weight,
    pub(super) o: Weight,
    pub(super) q_bias: Option<Vec<f32>>,
    pub(super) k_bias: Option<Vec<f32>>,
    pub(super) v_bias: Option<Vec<f32>>,
    pub(super) q_norm: Option<Vec<f32>>,
    pub(super) k_norm: Option<Vec<f32>>,
    pub(super) post_attn_norm: Option<Vec<f32>>,
    pub(super) ffn_norm: Vec<f32>,
    pub(super) gate: Weight,
    pub(super) up: Weight,
    pub(super) down: Weight,
    pub(super) post_ffn_norm: Option<Vec<f32>>,
    pub(super) sliding: bool,
}

/// A loaded model: weights stay in the mapped file (and, once moved to a device, are copied
/// there too).
pub struct Model {
    pub config: Config,
    embed: Weight,
    pub(super) layers: Vec<Layer>,
    pub(super) out_norm: Vec<f32>,
    pub(super) output: Weight,
    rope_factors: Option<Vec<f32>>,
    /// The copy that computes instead of our CPU kernels (see [`Model::to_device`]).
    device: Option<DeviceModel>,
}

/// Per-sequence attention state: keys and values of every position seen so far (on the
/// host in half precision, or on the model's device).
#[derive(Clone)]
pub struct Cache {
    k: Vec<Vec<f16>>,
    v: Vec<Vec<f16>>,
    device_kv: DeviceKv,
    tokens: Vec<u32>,
}

impl Cache {
    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }

    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Keeps the first `len` positions (to reuse a shared prompt prefix).
    pub fn truncate(&mut self, len: usize, kv_dim: usize) {
        let len = len.min(self.tokens.len());
        self.tokens.truncate(len);
        for buf in self.k.iter_mut().chain(self.v.iter_mut()) {
            buf.truncate(len * kv_dim);
        }
        device::truncate(&mut self.device_kv, len);
    }

    pub(super) fn device_kv_mut(&mut self) -> &mut DeviceKv {
        &mut self.device_kv
    }

    pub(super) fn push_tokens(&mut self, tokens: &[u32]) {
        self.tokens.extend_from_slice(tokens);
    }
}

/// Which positions of a forward pass need logits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Logits {
    /// None (a prompt's prefix, whose keys and values are all that is wanted).
    None,
    /// Only the last position (generation).
    Last,
    /// Every position (log-likelihood scoring).
    All,
}

impl Logits {
    /// Which of `n` new positions get logits.
    pub(super) fn rows(self, n: usize) -> std::ops::Range<usize> {
        match self {
            Logits::None => n..n,
            Logits::Last => n - 1..n,
            Logits::All => 0..n,
        }
    }
}

/// Query rows per attention block in prefill.
const QUERY_BLOCK: usize = 64;
/// Up to this many new rows use the decoding attention (as the dot-product matmul path).
const DECODE_ROWS: usize = super::weight::DOT_MAX_ROWS;

impl Model {
    pub fn from_gguf(g: &GgufFile) -> Result<Self> {
        Self::load(Config::from_gguf(g)?, g)
    }

    /// The decoder of shape `config` over the tensors of `g` (by their GGUF names).
    pub fn load(mut config: Config, g: &dyn TensorSource) -> Result<Self> {
        let opt_vec = |name: String| -> Result<Option<Vec<f32>>> {
            if g.has_tensor(&name) {
                Ok(Some(g.weight(&name)?.to_f32()))
            } else {
                Ok(None)
            }
        };
        let mut layers = Vec::with_capacity(config.layers);
        for i in 0..config.layers {
            let t = |n: &str| format!("blk.{i}.{n}");
            layers.push(Layer {
                attn_norm: g.weight(&t("attn_norm.weight"))?.to_f32(),
                q: g.weight(&t("attn_q.weight"))?,
                k: g.weight(&t("attn_k.weight"))?,
                v: g.weight(&t("attn_v.weight"))?,
                o: g.weight(&t("attn_output.weight"))?,
                q_bias: opt_vec(t("attn_q.bias"))?,
                k_bias: opt_vec(t("attn_k.bias"))?,
                v_bias: opt_vec(t("attn_v.bias"))?,
                q_norm: opt_vec(t("attn_q_norm.weight"))?,
                k_norm: opt_vec(t("attn_k_norm.weight"))?,
                post_attn_norm: opt_vec(t("post_attention_norm.weight"))?,
                ffn_norm: g.weight(&t("ffn_norm.weight"))?.to_f32(),
                gate: g.weight(&t("ffn_gate.weight"))?,
                up: g.weight(&t("ffn_up.weight"))?,
                down: g.weight(&t("ffn_down.weight"))?,
                post_ffn_norm: opt_vec(t("post_ffw_norm.weight"))?,
                sliding: config.is_sliding(i),
            });
        }
        let embed = g.weight("token_embd.weight")?;
        let mut output = if g.has_tensor("output.weight") {
            g.weight("output.weight")?
        } else {
            embed.clone()
        };
        output.pack_for_decoding();
        config.vocab = output.rows();
        let model = Model {
            embed,
            layers,
            out_norm: g.weight("output_norm.weight")?.to_f32(),
            output,
            rope_factors: opt_vec("rope_freqs.weight".to_string())?,
            config,
            device: None,
        };
        model.check_shapes()?;
        Ok(model)
    }

    fn check_shapes(&self) -> Result<()> {
        let c = &self.config;
        let ok = self.embed.cols() == c.hidden
            && self.output.cols() == c.hidden
            && self.layers.iter().all(|l| {
                l.q.rows() == c.q_dim()
                    && l.k.rows() == c.kv_dim()
                    && l.v.rows() == c.kv_dim()
                    && l.o.cols() == c.q_dim()
                    && l.gate.rows() == l.up.rows()
                    && l.down.cols() == l.up.rows()
            })
            && c.heads.is_multiple_of(c.kv_heads)
            && c.head_dim.is_multiple_of(2);
        if ok {
            Ok(())
        } else {
            Err(Error::Model(format!(
                "tensor shapes do not match the {} metadata",
                c.arch_name
            )))
        }
    }

    /// Moves the computation to `device` (weights are uploaded once). Caches made before
    /// hold host keys and must not be used afterwards.
    pub fn to_device(&mut self, device: &candle_core::Device) -> Result<()> {
        self.device = Some(DeviceModel::upload(self, device)?);
        // the device multiplies by the output layer now: the host's regrouped copy of it
        // (178 MB for the default model) would only take memory
        self.output.drop_packed();
        Ok(())
    }

    /// The candle device the model computes on, if it was moved to one.
    pub fn device(&self) -> Option<&candle_core::Device> {
        self.device.as_ref().map(DeviceModel::device)
    }

    pub fn new_cache(&self) -> Cache {
        Cache {
            k: vec![Vec::new(); self.config.layers],
            v: vec![Vec::new(); self.config.layers],
            device_kv: vec![None; self.config.layers],
            tokens: Vec::new(),
        }
    }

    pub fn kv_dim(&self) -> usize {
        self.config.kv_dim()
    }

    /// Runs `tokens` after what `cache` holds and returns logits (`vocab` per requested
    /// position, row-major), on the current [`team`].
    pub fn forward(&self, tokens: &[u32], cache: &mut Cache, logits: Logits) -> Result<Vec<f32>> {
        let mut out = self.forward_batch(&mut [(tokens, cache)], logits)?;
        Ok(out.pop().unwrap_or_default())
    }

    /// One forward pass over several sequences at once: every linear layer multiplies the
    /// rows of all of them together (one read of the weights), attention runs per sequence
    /// over its own cache. Returns each sequence's logits.
    pub fn forward_batch(
        &self,
        batch: &mut [(&[u32], &mut Cache)],
        logits: Logits,
    ) -> Result<Vec<Vec<f32>>> {
        let c = &self.config;
        for (tokens, cache) in batch.iter() {
            if tokens.is_empty() {
                return Err(Error::InvalidInput("no tokens to run".into()));
            }
            if cache.len() + tokens.len() > c.context {
                return Err(Error::InvalidInput(format!(
                    "{} tokens exceed the model's context of {}",
                    cache.len() + tokens.len(),
                    c.context
                )));
            }
            if let Some(&bad) = tokens.iter().find(|&&id| id as usize >= self.embed.rows()) {
                return Err(Error::InvalidInput(format!(
                    "token id {bad} is outside the vocabulary"
                )));
            }
        }
        if let Some(device) = &self.device {
            return device.forward_batch(self, batch, logits);
        }
        let t: usize = batch.iter().map(|(tokens, _)| tokens.len()).sum();
        let h = c.hidden;
        let mut x = self.embed_rows(batch.iter().flat_map(|(tokens, _)| tokens.iter()));
        let positions: Vec<usize> = batch
            .iter()
            .flat_map(|(tokens, cache)| cache.len()..cache.len() + tokens.len())
            .collect();
        let rope_global = self.rope_table(c.rope_base, &positions);
        let rope_local = (c.sliding_window.is_some() && c.rope_base_local != c.rope_base)
            .then(|| self.rope_table(c.rope_base_local, &positions));
        let mut normed = vec![0f32; t * h];
        let mut q = vec![0f32; t * c.q_dim()];
        let mut k = vec![0f32; t * c.kv_dim()];
        let mut v = vec![0f32; t * c.kv_dim()];
        let mut att = vec![0f32; t * c.q_dim()];
        let mut proj = vec![0f32; t * h];
        let ffn = self.layers.first().map_or(0, |l| l.up.rows());
        let mut gate = vec![0f32; t * ffn];
        let mut up = vec![0f32; t * ffn];
        for (li, layer) in self.layers.iter().enumerate() {
            normed.copy_from_slice(&x);
            kernels::rms_norm(&mut normed, &layer.attn_norm, c.eps);
            matmul_many(
                &[&layer.q, &layer.k, &layer.v],
                &normed,
                t,
                &mut [&mut q, &mut k, &mut v],
            );
            add_bias(&mut q, &layer.q_bias);
            add_bias(&mut k, &layer.k_bias);
            add_bias(&mut v, &layer.v_bias);
            if let Some(w) = &layer.q_norm {
                kernels::rms_norm(&mut q, w, c.eps);
            }
            if let Some(w) = &layer.k_norm {
                kernels::rms_norm(&mut k, w, c.eps);
            }
            let table = match (&rope_local, layer.sliding) {
                (Some(local), true) => local,
                _ => &rope_global,
            };
            self.apply_rope(&mut q, table);
            self.apply_rope(&mut k, table);
            let window = if layer.sliding {
                c.sliding_window
            } else {
                None
            };
            let mut row = 0;
            for (tokens, cache) in batch.iter_mut() {
                let n = tokens.len();
                let pos0 = cache.len();
                append_f16(
                    &mut cache.k[li],
                    &k[row * c.kv_dim()..(row + n) * c.kv_dim()],
                );
                append_f16(
                    &mut cache.v[li],
                    &v[row * c.kv_dim()..(row + n) * c.kv_dim()],
                );
                self.attention(
                    &q[row * c.q_dim()..(row + n) * c.q_dim()],
                    &cache.k[li],
                    &cache.v[li],
                    pos0,
                    window,
                    &mut att[row * c.q_dim()..(row + n) * c.q_dim()],
                );
                row += n;
            }
            layer.o.matmul(&att, t, &mut proj);
            if let Some(w) = &layer.post_attn_norm {
                kernels::rms_norm(&mut proj, w, c.eps);
            }
            x.iter_mut().zip(&proj).for_each(|(a, b)| *a += b);

            normed.copy_from_slice(&x);
            kernels::rms_norm(&mut normed, &layer.ffn_norm, c.eps);
            matmul_many(
                &[&layer.gate, &layer.up],
                &normed,
                t,
                &mut [&mut gate, &mut up],
            );
            let rows = SharedMut(gate.as_mut_ptr());
            team::for_each(t, |r| {
                // SAFETY: task r alone writes row r of `gate`.
                let g = unsafe { rows.slice(r * ffn, ffn) };
                kernels::gated(c.activation, g, &up[r * ffn..(r + 1) * ffn]);
            });
            layer.down.matmul(&gate, t, &mut proj);
            if let Some(w) = &layer.post_ffn_norm {
                kernels::rms_norm(&mut proj, w, c.eps);
            }
            x.iter_mut().zip(&proj).for_each(|(a, b)| *a += b);
        }
        let mut results = Vec::with_capacity(batch.len());
        let mut row = 0;
        for (tokens, cache) in batch.iter_mut() {
            let n = tokens.len();
            cache.tokens.extend_from_slice(tokens);
            let wanted = logits.rows(n);
            let mut out = vec![0f32; wanted.len() * c.vocab];
            if !wanted.is_empty() {
                let mut rows = x[(row + wanted.start) * h..(row + wanted.end) * h].to_vec();
                kernels::rms_norm(&mut rows, &self.out_norm, c.eps);
                self.output.matmul(&rows, wanted.len(), &mut out);
            }
            results.push(out);
            row += n;
        }
        Ok(results)
    }

    /// The scaled embedding rows of `tokens` (ids checked by the caller), row-major.
    pub(super) fn embed_rows<'a>(&self, tokens: impl Iterator<Item = &'a u32>) -> Vec<f32> {
        let (h, scale) = (self.config.hidden, self.config.embed_scale);
        let mut x = Vec::new();
        for &id in tokens {
            let start = x.len();
            x.resize(start + h, 0.0);
            let row = &mut x[start..];
            self.embed.row_into(id as usize, row);
            if scale != 1.0 {
                row.iter_mut().for_each(|v| *v *= scale);
            }
        }
        x
    }

    /// cos/sin of every rotation angle at `positions`: `[positions][head_dim/2]` each.
    pub(super) fn rope_table(&self, base: f32, positions: &[usize]) -> (Vec<f32>, Vec<f32>) {
        let half = self.config.head_dim / 2;
        let inv: Vec<f32> = (0..half)
            .map(|i| {
                let f = base.powf(-2.0 * i as f32 / self.config.head_dim as f32);
                match &self.rope_factors {
                    Some(factors) => f / factors.get(i).copied().unwrap_or(1.0),
                    None => f,
                }
            })
            .collect();
        let mut cos = Vec::with_capacity(positions.len() * half);
        let mut sin = Vec::with_capacity(positions.len() * half);
        for &p in positions {
            let p = p as f32 / self.config.rope_scale;
            for f in &inv {
                let (s, c) = (p * f).sin_cos();
                cos.push(c);
                sin.push(s);
            }
        }
        (cos, sin)
    }

    fn apply_rope(&self, x: &mut [f32], (cos, sin): &(Vec<f32>, Vec<f32>)) {
        let hd = self.config.head_dim;
        let half = hd / 2;
        let per_token = x.len() / (cos.len() / half);
        for (row, (c, s)) in x
            .chunks_exact_mut(per_token)
            .zip(cos.chunks_exact(half).zip(sin.chunks_exact(half)))
        {
            for head in row.chunks_exact_mut(hd) {
                for i in 0..half {
                    let (a, b) = if self.config.rope_neox {
                        (i, i + half)
                    } else {
                        (2 * i, 2 * i + 1)
                    };
                    let (x0, x1) = (head[a], head[b]);
                    head[a] = x0 * c[i] - x1 * s[i];
                    head[b] = x0 * s[i] + x1 * c[i];
                }
            }
        }
    }

    /// Causal attention of the new queries `q` (positions `pos0..`) over the cached
    /// keys/values (which already include the new positions).
    fn attention(
        &self,
        q: &[f32],
        keys: &[f16],
        values: &[f16],
        pos0: usize,
        window: Option<usize>,
        out: &mut [f32],
    ) {
        let c = &self.config;
        let (hd, qd, kvd) = (c.head_dim, c.q_dim(), c.kv_dim());
        let t = q.len() / qd;
        let group = c.heads / c.kv_heads;
        if t <= DECODE_ROWS {
            self.attention_decode(q, keys, values, pos0, window, out);
            return;
        }
        let blocks = t.div_ceil(QUERY_BLOCK);
        let dst = SharedMut(out.as_mut_ptr());
        // Jobs run block by block, heads innermost: the query heads that share a kv head come
        // one after another, so a thread converts that head's keys and values once for them.
        team::for_each_init(
            c.heads * blocks,
            || (Vec::new(), Vec::new(), Vec::new(), None),
            |(scores, k32, v32, converted): &mut PrefillScratch, job| {
                let (block, head) = (job / c.heads, job % c.heads);
                let kv_head = head / group;
                let i0 = block * QUERY_BLOCK;
                let rows = QUERY_BLOCK.min(t - i0);
                // keys any row of this block may see
                let last = pos0 + i0 + rows; // exclusive
                let first = window.map_or(0, |w| (pos0 + i0 + 1).saturating_sub(w));
                let n = last - first;
                scores.resize(rows * n, 0.0);
                // this kv head's keys and values in single precision, for GEMM
                if *converted != Some((kv_head, first, n)) {
                    for (cached, wide) in [(keys, &mut *k32), (values, &mut *v32)] {
                        wide.resize(n * hd, 0.0);
                        for (j, row) in wide.chunks_exact_mut(hd).enumerate() {
                            let at = (first + j) * kvd + kv_head * hd;
                            cached[at..at + hd].convert_to_f32_slice(row);
                        }
                    }
                    *converted = Some((kv_head, first, n));
                }
                // SAFETY: all operands lie inside their buffers (rows i0..i0+rows of q, head
                // columns; the n converted positions), and each job writes only its own rows ×
                // head columns of `out`.
                unsafe {
                    gemm(
                        rows,
                        n,
                        hd,
                        scores.as_mut_ptr(),
                        1,
                        n as isize,
                        false,
                        q.as_ptr().add(i0 * qd + head * hd),
                        1,
                        qd as isize,
                        k32.as_ptr(),
                        hd as isize,
                        1,
                        0.0,
                        c.attn_scale,
                        false,
                        false,
                        false,
                        Parallelism::None,
                    );
                }
                for (r, row) in scores.chunks_exact_mut(n).enumerate() {
                    let pos = pos0 + i0 + r;
                    let lo = window.map_or(0, |w| (pos + 1).saturating_sub(w)) - first;
                    let hi = pos + 1 - first;
                    kernels::softmax(&mut row[lo..hi]);
                    row[..lo].fill(0.0);
                    row[hi..].fill(0.0);
                }
                unsafe {
                    gemm(
                        rows,
                        hd,
                        n,
                        dst.ptr().add(i0 * qd + head * hd),
                        1,
                        qd as isize,
                        false,
                        scores.as_ptr(),
                        1,
                        n as isize,
                        v32.as_ptr(),
                        1,
                        hd as isize,
                        0.0,
                        1.0,
                        false,
                        false,
                        false,
                        Parallelism::None,
                    );
                }
            },
        );
    }

    /// Attention for a few new rows (decoding), by plain dot products and sums in a fixed
    /// order: the result depends only on the values, never on where the cache sits in memory,
    /// so greedy decoding is reproducible across runs and cache reuse.
    fn attention_decode(
        &self,
        q: &[f32],
        keys: &[f16],
        values: &[f16],
        pos0: usize,
        window: Option<usize>,
        out: &mut [f32],
    ) {
        let c = &self.config;
        let (hd, qd, kvd) = (c.head_dim, c.q_dim(), c.kv_dim());
        let group = c.heads / c.kv_heads;
        let t = q.len() / qd;
        // The query heads that share a key/value head read its cache once per job, not once
        // per head; the group is split only as far as it takes to keep every thread busy.
        let parts = team::current_threads()
            .div_ceil(c.kv_heads * t)
            .clamp(1, group);
        let per_part = group.div_ceil(parts);
        let dst = SharedMut(out.as_mut_ptr());
        team::for_each(c.kv_heads * t * parts, |job| {
            let (kv_head, r, part) = (job / (t * parts), job / parts % t, job % parts);
            let heads = kv_head * group + (part * per_part).min(group)
                ..kv_head * group + ((part + 1) * per_part).min(group);
            let pos = pos0 + r;
            let first = window.map_or(0, |w| (pos + 1).saturating_sub(w));
            let span = pos + 1 - first;
            let at = |j: usize| j * kvd + kv_head * hd..j * kvd + (kv_head + 1) * hd;
            let query = |head: usize| &q[r * qd + head * hd..r * qd + (head + 1) * hd];
            let mut scores = vec![0f32; heads.len() * span];
            for (i, j) in (first..=pos).enumerate() {
                let key = &keys[at(j)];
                for (h, head) in heads.clone().enumerate() {
                    scores[h * span + i] = kernels::dot_f16(query(head), key) * c.attn_scale;
                }
            }
            scores.chunks_exact_mut(span).for_each(kernels::softmax);
            let start = at(first).start;
            for (weights, head) in scores.chunks_exact(span).zip(heads) {
                // SAFETY: each job owns row r × its heads' columns of `out`.
                let o = unsafe { dst.slice(r * qd + head * hd, hd) };
                kernels::weighted_sum_f16(weights, &values[start..], kvd, o);
            }
        });
    }
}

/// A prefill attention job's buffers: scores, one kv head's keys and values widened to f32,
/// and which (kv head, first position, positions) those hold.
type PrefillScratch = (Vec<f32>, Vec<f32>, Vec<f32>, Option<(usize, usize, usize)>);

/// Appends `values` to a half-precision cache buffer.
fn append_f16(buf: &mut Vec<f16>, values: &[f32]) {
    let start = buf.len();
    buf.resize(start + values.len(), f16::ZERO);
    buf[start..].convert_from_f32_slice(values);
}

fn add_bias(x: &mut [f32], bias: &Option<Vec<f32>>) {
    if let Some(b) = bias {
        for row in x.chunks_exact_mut(b.len()) {
            row.iter_mut().zip(b).for_each(|(v, b)| *v += b);
        }
    }
}
