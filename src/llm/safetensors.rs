//! Hugging Face checkpoints: `config.json`, `model.safetensors` (or shards listed in
//! `model.safetensors.index.json`), `tokenizer.json` and `tokenizer_config.json` in one folder.
//!
//! Tensors are memory-mapped in their F32/F16/BF16 encoding and served under the GGUF names
//! the decoder asks for, with the two differences of the Hugging Face layout undone the way
//! llama.cpp's converter does: Gemma stores RMSNorm weights minus one, and rotary embeddings
//! there rotate halves (GPT-NeoX style) for every architecture, so the model is configured so.

use super::gguf::GgufFile;
use super::model::{Arch, Config};
use super::weight::{Storage, Weight};
use crate::error::{Error, Result};
use candle_core::quantized::GgmlDType;
use memmap2::Mmap;
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where the decoder's tensors come from.
pub trait TensorSource {
    fn has_tensor(&self, name: &str) -> bool;
    /// Tensor `name` (a GGUF name such as `blk.0.attn_q.weight`) as a `[rows, cols]` matrix.
    fn weight(&self, name: &str) -> Result<Weight>;
}

impl TensorSource for GgufFile {
    fn has_tensor(&self, name: &str) -> bool {
        GgufFile::has_tensor(self, name)
    }

    fn weight(&self, name: &str) -> Result<Weight> {
        GgufFile::weight(self, name)
    }
}

struct Entry {
    file: usize,
    dtype: GgmlDType,
    shape: Vec<usize>,
    range: std::ops::Range<usize>,
}

/// A Hugging Face checkpoint folder.
pub struct Checkpoint {
    dir: PathBuf,
    config: Value,
    maps: Vec<Arc<Mmap>>,
    tensors: HashMap<String, Entry>,
    arch: Arch,
    /// Llama 3.1's scaled-rope divisors, when `config.json` asks for them
    /// ([`Checkpoint::llama3_rope_factors`]), served as the tensor `rope_freqs.weight`.
    rope_freqs: Option<Vec<f32>>,
}

/// Whether `path` names a Hugging Face checkpoint rather than a GGUF file.
pub fn is_checkpoint(path: &Path) -> bool {
    path.is_dir() || path.extension().is_some_and(|e| e == "safetensors")
}

impl Checkpoint {
    /// Opens the folder `path` (or the folder of the `.safetensors` file `path`).
    pub fn open(path: &Path) -> Result<Checkpoint> {
        let dir = if path.is_dir() {
            path.to_path_buf()
        } else {
            path.parent().unwrap_or(Path::new(".")).to_path_buf()
        };
        let err = |what: String| Error::Model(format!("{}: {what}", dir.display()));
        let config: Value = read_json(&dir.join("config.json"))?;
        let model_type = config["model_type"].as_str().unwrap_or_default();
        let arch = match model_type {
            "gemma3" | "gemma3_text" => Arch::Gemma3,
            "llama" | "mistral" => Arch::Llama,
            "qwen2" => Arch::Qwen2,
            "qwen3" => Arch::Qwen3,
            other => {
                return Err(err(format!(
                "model_type {other:?} is not supported (gemma3, llama, mistral, qwen2, qwen3 are)"
            )))
            }
        };
        let files: Vec<PathBuf> = if path.is_file() {
            vec![path.to_path_buf()]
        } else if dir.join("model.safetensors").is_file() {
            vec![dir.join("model.safetensors")]
        } else {
            let index = read_json(&dir.join("model.safetensors.index.json"))?;
            let mut shards: Vec<String> = index["weight_map"]
                .as_object()
                .ok_or_else(|| err("model.safetensors.index.json has no weight_map".into()))?
                .values()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect();
            shards.sort();
            shards.dedup();
            shards.iter().map(|s| dir.join(s)).collect()
        };
        let mut maps = Vec::new();
        let mut tensors = HashMap::new();
        for (file, path) in files.iter().enumerate() {
            let handle = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
            // SAFETY: the mapping is read-only; a checkpoint changed while mapped is the
            // user's error, as for every memory-mapped model file.
            let map = unsafe { Mmap::map(&handle) }.map_err(|e| Error::io(path, e))?;
            let (header, meta) = safetensors::SafeTensors::read_metadata(&map).map_err(|e| {
                Error::Model(format!("{}: not a safetensors file ({e})", path.display()))
            })?;
            let data_start = 8 + header;
            for (name, info) in meta.tensors() {
                let dtype = match info.dtype {
                    safetensors::Dtype::F32 => GgmlDType::F32,
                    safetensors::Dtype::F16 => GgmlDType::F16,
                    safetensors::Dtype::BF16 => GgmlDType::BF16,
                    other => {
                        return Err(Error::Model(format!(
                            "{}: tensor {name} is {other:?}; F32, F16 and BF16 are supported",
                            path.display()
                        )))
                    }
                };
                let (start, end) = info.data_offsets;
                tensors.insert(
                    name.clone(),
                    Entry {
                        file,
                        dtype,
                        shape: info.shape.clone(),
                        range: data_start + start..data_start + end,
                    },
                );
            }
            maps.push(Arc::new(map));
        }
        let mut checkpoint = Checkpoint {
            dir,
            config,
            maps,
            tensors,
            arch,
            rope_freqs: None,
        };
        if rope_type(&checkpoint.config) == Some("llama3") {
            let head_dim = checkpoint.config()?.head_dim;
            checkpoint.rope_freqs = Some(checkpoint.llama3_rope_factors(head_dim)?);
        }
        Ok(checkpoint)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The model's shape and numerics from `config.json`.
    pub fn config(&self) -> Result<Config> {
        let c = &self.config;
        let err = |what: &str| Error::Model(format!("{}: config.json: {what}", self.dir.display()));
        let num = |key: &str| c[key].as_u64().map(|v| v as usize);
        let float = |key: &str| c[key].as_f64().map(|v| v as f32);
        let hidden = num("hidden_size").ok_or_else(|| err("no hidden_size"))?;
        let heads = num("num_attention_heads").ok_or_else(|| err("no num_attention_heads"))?;
        let head_dim = num("head_dim").unwrap_or(hidden / heads);
        let gemma = self.arch == Arch::Gemma3;
        let rope_scale = match rope_type(c) {
            None => 1.0,
            Some("linear") => c["rope_scaling"]["factor"].as_f64().unwrap_or(1.0) as f32,
            // per-frequency divisors instead, as the tensor `rope_freqs.weight`
            Some("llama3") => 1.0,
            Some(other) => {
                return Err(err(&format!(
                    "rope_scaling {other:?} is not supported for safetensors checkpoints; convert to GGUF"
                )))
            }
        };
        Ok(Config {
            arch: self.arch,
            arch_name: c["model_type"].as_str().unwrap_or_default().to_string(),
            layers: num("num_hidden_layers").ok_or_else(|| err("no num_hidden_layers"))?,
            hidden,
            heads,
            kv_heads: num("num_key_value_heads").unwrap_or(heads),
            head_dim,
            eps: float("rms_norm_eps").unwrap_or(1e-6),
            context: num("max_position_embeddings").unwrap_or(4096),
            rope_base: float("rope_theta").unwrap_or(if gemma { 1e6 } else { 10_000.0 }),
            rope_base_local: float("rope_local_base_freq").unwrap_or(10_000.0),
            rope_scale,
            // Hugging Face weights rotate halves whatever the architecture
            rope_neox: true,
            sliding_window: if gemma {
                Some(num("sliding_window").unwrap_or(512))
            } else {
                None
            },
            global_every: if gemma {
                num("sliding_window_pattern").unwrap_or(6).max(1)
            } else {
                1
            },
            attn_scale: 1.0
                / float("query_pre_attn_scalar")
                    .filter(|_| gemma)
                    .unwrap_or(head_dim as f32)
                    .sqrt(),
            embed_scale: if gemma { (hidden as f32).sqrt() } else { 1.0 },
            activation: if gemma {
                crate::kernels::Gated::GeluTanh
            } else {
                crate::kernels::Gated::Silu
            },
            vocab: 0,
        })
    }

    /// Llama 3.1's rope scaling (`rope_scaling.rope_type = "llama3"`) as one divisor per
    /// rotation frequency, what GGUF conversions store as `rope_freqs.weight`: frequencies
    /// whose wavelength is shorter than `original_max_position_embeddings / high_freq_factor`
    /// keep their value, those longer than `… / low_freq_factor` are divided by `factor`, and
    /// the ones between move smoothly from one to the other.
    fn llama3_rope_factors(&self, head_dim: usize) -> Result<Vec<f32>> {
        let c = &self.config;
        let scaling = &c["rope_scaling"];
        let get = |key: &str| {
            scaling[key].as_f64().ok_or_else(|| {
                Error::Model(format!(
                    "{}: config.json: rope_scaling of type llama3 has no {key}",
                    self.dir.display()
                ))
            })
        };
        let factor = get("factor")?;
        let (low, high) = (get("low_freq_factor")?, get("high_freq_factor")?);
        let original = get("original_max_position_embeddings")?;
        if factor < 1.0 || high <= low {
            return Err(Error::Model(format!(
                "{}: config.json: rope_scaling {scaling} is not a llama3 scaling",
                self.dir.display()
            )));
        }
        let base = c["rope_theta"].as_f64().unwrap_or(10_000.0);
        let (low_wavelen, high_wavelen) = (original / low, original / high);
        Ok((0..head_dim / 2)
            .map(|i| {
                let freq = base.powf(-2.0 * i as f64 / head_dim as f64);
                let wavelen = 2.0 * std::f64::consts::PI / freq;
                let divisor = if wavelen < high_wavelen {
                    1.0
                } else if wavelen > low_wavelen {
                    factor
                } else {
                    let smooth = (original / wavelen - low) / (high - low);
                    1.0 / ((1.0 - smooth) / factor + smooth)
                };
                divisor as f32
            })
            .collect())
    }

    /// `bos_token_id` and `eos_token_id` of `config.json` (the first, when it lists several).
    pub fn special_ids(&self) -> (Option<u32>, Option<u32>) {
        let id = |v: &Value| {
            v.as_u64()
                .or_else(|| v.as_array().and_then(|a| a.first()?.as_u64()))
                .map(|x| x as u32)
        };
        (
            id(&self.config["bos_token_id"]),
            id(&self.config["eos_token_id"]),
        )
    }

    /// The chat template of `tokenizer_config.json`, when it has one.
    pub fn chat_template(&self) -> Option<String> {
        let config = read_json(&self.dir.join("tokenizer_config.json")).ok()?;
        match &config["chat_template"] {
            Value::String(t) => Some(t.clone()),
            // a list of named templates: the default one
            Value::Array(list) => list
                .iter()
                .find(|t| t["name"] == "default")
                .and_then(|t| t["template"].as_str().map(str::to_string)),
            _ => None,
        }
    }

    /// The Hugging Face name of GGUF tensor `name`, and whether it is a norm weight.
    fn hf_name(&self, name: &str) -> Option<(String, bool)> {
        let fixed = match name {
            "token_embd.weight" => Some("model.embed_tokens.weight"),
            "output.weight" => Some("lm_head.weight"),
            "output_norm.weight" => Some("model.norm.weight"),
            _ => None,
        };
        if let Some(fixed) = fixed {
            return Some((fixed.to_string(), name == "output_norm.weight"));
        }
        let rest = name.strip_prefix("blk.")?;
        let (layer, tensor) = rest.split_once('.')?;
        let gemma = self.arch == Arch::Gemma3;
        let (hf, norm) = match tensor {
            "attn_norm.weight" => ("input_layernorm.weight", true),
            "attn_q.weight" => ("self_attn.q_proj.weight", false),
            "attn_k.weight" => ("self_attn.k_proj.weight", false),
            "attn_v.weight" => ("self_attn.v_proj.weight", false),
            "attn_q.bias" => ("self_attn.q_proj.bias", false),
            "attn_k.bias" => ("self_attn.k_proj.bias", false),
            "attn_v.bias" => ("self_attn.v_proj.bias", false),
            "attn_output.weight" => ("self_attn.o_proj.weight", false),
            "attn_q_norm.weight" => ("self_attn.q_norm.weight", true),
            "attn_k_norm.weight" => ("self_attn.k_norm.weight", true),
            "ffn_norm.weight" if gemma => ("pre_feedforward_layernorm.weight", true),
            "ffn_norm.weight" => ("post_attention_layernorm.weight", true),
            "post_attention_norm.weight" if gemma => ("post_attention_layernorm.weight", true),
            "post_ffw_norm.weight" if gemma => ("post_feedforward_layernorm.weight", true),
            "ffn_gate.weight" => ("mlp.gate_proj.weight", false),
            "ffn_up.weight" => ("mlp.up_proj.weight", false),
            "ffn_down.weight" => ("mlp.down_proj.weight", false),
            _ => return None,
        };
        Some((format!("model.layers.{layer}.{hf}"), norm))
    }

    /// The stored tensor behind GGUF name `name` (multimodal Gemma checkpoints keep the text
    /// model under `language_model.`).
    fn entry(&self, name: &str) -> Option<(&Entry, bool)> {
        let (hf, norm) = self.hf_name(name)?;
        self.tensors
            .get(&hf)
            .or_else(|| self.tensors.get(&format!("language_model.{hf}")))
            .map(|e| (e, norm))
    }
}

/// `rope_scaling.rope_type` of a `config.json` (older configs call it `type`).
fn rope_type(config: &Value) -> Option<&str> {
    let scaling = &config["rope_scaling"];
    scaling["rope_type"].as_str().or(scaling["type"].as_str())
}

/// The GGUF name of the scaled-rope divisors, which a checkpoint derives from its config.
const ROPE_FREQS: &str = "rope_freqs.weight";

impl TensorSource for Checkpoint {
    fn has_tensor(&self, name: &str) -> bool {
        self.entry(name).is_some() || (name == ROPE_FREQS && self.rope_freqs.is_some())
    }

    fn weight(&self, name: &str) -> Result<Weight> {
        if name == ROPE_FREQS {
            if let Some(factors) = &self.rope_freqs {
                return Weight::from_f32(name, 1, factors.len(), factors.clone());
            }
        }
        let (entry, norm) = self.entry(name).ok_or_else(|| {
            Error::Model(format!("{}: tensor {name} is missing", self.dir.display()))
        })?;
        let (rows, cols) = match entry.shape[..] {
            [n] => (1, n),
            [r, c] => (r, c),
            ref other => {
                return Err(Error::Model(format!(
                    "{}: tensor {name} has shape {other:?}",
                    self.dir.display()
                )))
            }
        };
        let map = &self.maps[entry.file];
        if entry.range.end > map.len() {
            return Err(Error::Model(format!(
                "{}: tensor {name} lies past the end of its file (truncated?)",
                self.dir.display()
            )));
        }
        let mapped = Weight::from_storage(
            name,
            entry.dtype,
            rows,
            cols,
            Storage::Mapped(map.clone()),
            entry.range.clone(),
        );
        let weight = match mapped {
            Ok(w) => w,
            // a header of odd length leaves the data unaligned: decode it into f32 instead
            Err(_) => Weight::from_f32(
                name,
                rows,
                cols,
                decode_f32(&map[entry.range.clone()], entry.dtype),
            )?,
        };
        if norm && self.arch == Arch::Gemma3 {
            // Gemma scales by (1 + w); GGUF stores 1 + w, as the decoder expects
            let values: Vec<f32> = weight.to_f32().iter().map(|w| w + 1.0).collect();
            return Weight::from_f32(name, rows, cols, values);
        }
        Ok(weight)
    }
}

/// Little-endian F32/F16/BF16 bytes as f32 values.
fn decode_f32(bytes: &[u8], dtype: GgmlDType) -> Vec<f32> {
    match dtype {
        GgmlDType::F16 => bytes
            .chunks_exact(2)
            .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        GgmlDType::BF16 => bytes
            .chunks_exact(2)
            .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        _ => bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
    }
}

fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text)
        .map_err(|e| Error::Model(format!("{}: invalid JSON ({e})", path.display())))
}
